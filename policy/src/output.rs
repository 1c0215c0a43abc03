//! What the policy asks the driver to do.
//!
//! The driver drains [`Output`]s with
//! [`Policy::poll_output`](crate::Policy::poll_output) after every input and
//! carries each one out in order. An output is an [`Action`] (connect, send,
//! close, abort, ask the identify limiter or the probe coordinator, stop),
//! which the driver matches exhaustively, or a [`Note`] for its logs. None
//! of them carries a secret:
//! the driver fills in the token when it builds Identify or Resume.

use serde::{Deserialize, Serialize};

use crate::close_code::CloseCode;
use crate::decision::{Decision, Recovery, Trigger};
use crate::time::Timestamp;

/// The generation number of one connection attempt.
///
/// Each [`Action::Connect`] carries a new one; events about any other
/// connection are stale and ignored.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ConnectionId(pub u64);

impl core::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A gateway command the policy wants sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Command {
    /// op 2 Identify; the driver adds token, intents, shard and properties.
    Identify,
    /// op 6 Resume; the driver adds the token.
    Resume {
        /// The session to resume.
        session_id: String,
        /// The last sequence number received before the disconnect.
        seq: u64,
    },
    /// op 1 Heartbeat.
    Heartbeat {
        /// The last sequence number received (`null` before any).
        seq: Option<u64>,
    },
}

/// How and when the next connection attempt will happen, decided when a
/// connection ended. Emitted as [`Note::Planned`] for logs and health checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReconnectPlan {
    /// Why the last connection ended.
    pub trigger: Trigger,
    /// What [`decide`](crate::decide) said.
    pub decision: Decision,
    /// What the next connection will do.
    pub recovery: Recovery,
    /// Failures not yet repaid since the connection was last stable,
    /// including this one when it counted (1 = first retry).
    pub retry: u32,
    /// Whether this reconnect counted as a failure. A request of the
    /// server (op 7 after READY or RESUMED, op 9 from a gateway that said
    /// Hello, a close that asks for a reconnect after READY or RESUMED)
    /// does not, unless the gateway asked too often
    /// ([`ServerRequests`](crate::ServerRequests)).
    pub counted: bool,
    /// The delay the backoff strategy drew for `retry`, in ms (0 when the
    /// reconnect did not count), kept short while a lost session is likely
    /// resumable ([`ResumeBreaker::max_wait_while_resumable_ms`](crate::ResumeBreaker::max_wait_while_resumable_ms)).
    pub backoff_ms: u64,
    /// When the attempt may start: the latest of the backoff, the
    /// protocol wait and the guard. Identify limits may push it later.
    pub at: Timestamp,
}

/// A request to whatever rations Identify payloads across the bot's shards
/// (an [`IdentifyLimiter`](crate::IdentifyLimiter) in this process, or a
/// service shared between processes). The policy never calls it: it emits
/// the request as [`Action::Identify`] and waits for the answer, which the
/// driver feeds back with [`Policy::handle_identify`](crate::Policy::handle_identify).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "request")]
pub enum IdentifyRequest {
    /// Book a start slot for the next connection, which will identify.
    /// Answer with [`IdentifyAnswer::StartAt`].
    ReserveStart,
    /// Grant the right to send one Identify now. Answer with
    /// [`IdentifyAnswer::Granted`] or [`IdentifyAnswer::RetryAt`].
    Acquire,
    /// The granted Identify's outcome is known: READY arrived (`ready`), or
    /// the connection ended without it. No answer is expected.
    Settle {
        /// Whether READY arrived.
        ready: bool,
    },
}

/// The answer to an [`IdentifyRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "answer")]
pub enum IdentifyAnswer {
    /// The start slot booked for [`IdentifyRequest::ReserveStart`]: connect
    /// no sooner than this.
    StartAt(Timestamp),
    /// [`IdentifyRequest::Acquire`] granted: send Identify now.
    Granted,
    /// [`IdentifyRequest::Acquire`] refused: ask again at this time.
    RetryAt(Timestamp),
}

/// A request of a [`Fleet`](crate::Fleet) built with
/// [`Fleet::with_shared_recovery`](crate::Fleet::with_shared_recovery) to
/// whatever coordinates fleet-wide outage probes across the bot's
/// processes (a [`ProbeCoordinator`](crate::ProbeCoordinator) in this
/// process, or a store shared between processes). The fleet never calls
/// it: it emits the request as [`Action::Probe`]; the answer to an
/// [`ProbeRequest::Acquire`] comes back through
/// [`Fleet::handle_probe`](crate::Fleet::handle_probe). Times are on the
/// fleet's own clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "request")]
pub enum ProbeRequest {
    /// The fleet is in a fleet-wide outage and its own schedule says
    /// probe now: may it? Answer with a [`ProbeAnswer`].
    Acquire {
        /// When the fleet's own schedule would probe next: a coordinator
        /// that grants this probe gives no other process one before then.
        next_at: Timestamp,
        /// When the fleet's outage began: a probe answered since then
        /// means the gateway is back for this fleet too.
        since: Timestamp,
    },
    /// The fleet heard from the gateway during its outage (its probe, or
    /// any frame, was answered): the gateway is back. No answer expected.
    Answered,
    /// A probe of this fleet failed. No answer expected.
    Failed,
    /// The fleet's outage and ramp are over. No answer expected.
    Over,
}

/// The answer to a [`ProbeRequest::Acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "answer")]
pub enum ProbeAnswer {
    /// This process holds the bot's probe: it probes now.
    Granted,
    /// Another process holds the probe: ask again at this time.
    NotYet {
        /// When to ask again (the fleet clamps it to its own bounds).
        retry_at: Timestamp,
    },
    /// Another process's probe was answered after this fleet's outage
    /// began: ramp at once, without probing.
    GatewayBack,
}

/// Something the driver must carry out. The enum is exhaustive on purpose:
/// a driver matches every action, and a new action is a breaking change,
/// never one silently swallowed by a catch-all arm.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    /// Open a WebSocket to `url` and report `Opened` or `ConnectFailed`.
    Connect {
        /// The new connection's id.
        connection: ConnectionId,
        /// Where to connect (the resume URL when resuming); the driver adds
        /// its query string (`v`, `encoding`, compression).
        url: String,
        /// Whether this connection will resume or identify.
        recovery: Recovery,
    },
    /// Send a command on the connection.
    Send {
        /// The connection.
        connection: ConnectionId,
        /// The command.
        command: Command,
    },
    /// Close the connection with this code and report `Closed` when done.
    Close {
        /// The connection.
        connection: ConnectionId,
        /// The code to send. Never 1000/1001 when the session is meant to
        /// be resumed.
        code: CloseCode,
    },
    /// Drop the transport now, without a close handshake (an attempt that
    /// took too long, or a close the peer never finished). No `Closed`
    /// report is expected.
    Abort {
        /// The connection.
        connection: ConnectionId,
    },
    /// Ask the bot's identify limiter, and feed its answer (if the request
    /// expects one) back with
    /// [`Policy::handle_identify`](crate::Policy::handle_identify).
    /// [`IdentifyLimiter::answer`](crate::IdentifyLimiter::answer) answers
    /// it in process.
    Identify {
        /// The shard asking (its bucket is `shard % max_concurrency`).
        shard: u32,
        /// What it asks.
        request: IdentifyRequest,
    },
    /// Ask the bot-wide probe coordinator (only from a fleet built with
    /// [`Fleet::with_shared_recovery`](crate::Fleet::with_shared_recovery)),
    /// and feed its answer, if the request expects one, back with
    /// [`Fleet::handle_probe`](crate::Fleet::handle_probe).
    /// [`ProbeCoordinator::answer`](crate::ProbeCoordinator::answer)
    /// answers it in process. The shard paired with it in
    /// [`Fleet::poll_output`](crate::Fleet::poll_output) is the fleet's
    /// lowest, for logs only.
    Probe(ProbeRequest),
    /// The policy has stopped for good; see the reason. Nothing follows.
    GiveUp(crate::decision::GiveUpReason),
}

/// Something worth a log line or a health check; nothing to carry out.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Note {
    /// A reconnect was planned.
    Planned(ReconnectPlan),
    /// The shard is in an identify loop: this many Identifies in a row were
    /// answered by a close (or op 9) before READY. Until a READY, each
    /// attempt waits the loop's long wait, and once the shard's daily share
    /// of session starts is spent, for the rest of the day. Worth an alert:
    /// the token or the server needs a person.
    IdentifyLoop {
        /// Identifies in a row answered before READY.
        rejected: u32,
        /// The close code of the last answer (`None`: op 9).
        last_code: Option<CloseCode>,
        /// Rejected Identifies in the current 24 h.
        rejected_today: u32,
        /// When the next attempt may start.
        until: Timestamp,
    },
    /// READY, or a saved session the policy was started from
    /// ([`Policy::resuming`](crate::Policy::resuming)), named a resume URL
    /// the policy will not dial: the session was dropped and the next
    /// connection identifies against the base URL.
    ResumeUrlRefused {
        /// The URL (at most its first 256 bytes).
        url: String,
        /// Why.
        reason: crate::gateway_url::UrlError,
    },
}

/// What [`Policy::poll_output`](crate::Policy::poll_output) yields: an
/// action to carry out, or a note to log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "output", content = "of")]
pub enum Output {
    /// Carry this out.
    Action(Action),
    /// Log this, if you like.
    Note(Note),
}

impl Output {
    /// The action, if this is one.
    #[must_use]
    pub const fn action(&self) -> Option<&Action> {
        match self {
            Self::Action(action) => Some(action),
            Self::Note(_) => None,
        }
    }

    /// The action, if this is one, by value.
    #[must_use]
    pub fn into_action(self) -> Option<Action> {
        match self {
            Self::Action(action) => Some(action),
            Self::Note(_) => None,
        }
    }
}
