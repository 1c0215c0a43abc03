//! What the policy asks the driver to do.
//!
//! The driver drains [`Output`]s with
//! [`Policy::poll_output`](crate::Policy::poll_output) after every input and
//! carries each one out in order. None of them carries a secret: the driver
//! fills in the token when it builds Identify or Resume.

use serde::{Deserialize, Serialize};

use crate::close_code::CloseCode;
use crate::decision::{Decision, Recovery, Trigger};
use crate::time::Timestamp;

/// The generation number of one connection attempt.
///
/// Each [`Output::Connect`] carries a new one; events about any other
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
/// connection ended. Emitted as [`Output::Plan`] for logs and health checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReconnectPlan {
    /// Why the last connection ended.
    pub trigger: Trigger,
    /// What [`decide`](crate::decide) said.
    pub decision: Decision,
    /// What the next connection will do.
    pub recovery: Recovery,
    /// Retry number since the connection was last stable (1 = first retry).
    pub retry: u32,
    /// The delay the backoff strategy drew, in ms (0 for an immediate
    /// first retry after op 7).
    pub backoff_ms: u64,
    /// When the attempt may start: the latest of the backoff, the
    /// protocol wait and the guard. Identify limits may push it later.
    pub at: Timestamp,
}

/// Something the driver must do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Output {
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
    /// A reconnect was planned (for logs; nothing to do).
    Plan(ReconnectPlan),
    /// The policy has stopped for good; see the reason.
    GiveUp(crate::decision::GiveUpReason),
    /// READY named a resume URL the policy will not dial (for logs; the
    /// session was dropped and the next connection identifies against the
    /// base URL).
    ResumeUrlRefused {
        /// The URL (at most its first 256 bytes).
        url: String,
        /// Why.
        reason: crate::gateway_url::UrlError,
    },
}
