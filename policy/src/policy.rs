//! The reconnect state machine for one shard.
//!
//! [`Policy`] takes [`Event`]s about the current connection, answers from
//! the identify limiter, and the passing of time
//! ([`Policy::handle_timeout`], the only place its timers run), and is
//! polled for [`Output`]s (connect, send, close, abort, ask the identify
//! limiter) and for the next instant it must be woken. It never reads a
//! clock, never sleeps, never does I/O and never calls anything shared;
//! randomness comes from the shard's own [`Jitter`] stream of the caller's
//! seed, so the same seed and the same inputs give the same outputs. The
//! rules it applies come from the other modules: [`decide`](crate::decide)
//! for what a disconnect means, the retry planner (backoff, guard, give-up
//! limits, resume breaker) for how long to wait and when to stop, the
//! heartbeat for zombie detection, the identify limiter (reached
//! through [`Action::Identify`] requests) for identify limits and the send
//! budget for the gateway's command limit.
//!
//! By construction:
//! - **single flight**: a `Connect` is emitted only when no socket exists
//!   and none is being dialled; a trigger that arrives while a close or a
//!   backoff is under way is absorbed;
//! - **old socket first**: a reconnect the policy starts goes through
//!   `Close` and waits for `Closed` (or aborts the socket after
//!   `timeouts.close_ms`) before the next `Connect`;
//! - **the guard**: two `Connect`s are never closer than `guard_ms`;
//! - **the right sequence**: Resume carries the last sequence number
//!   received on the session, never one from the new connection;
//! - **no early reset**: the backoff resets only when a connection has been
//!   established and has proven stable.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::close_code::{CloseAction, CloseCode};
use crate::config::{ConfigError, PolicyConfig};
use crate::decision::{Deadline, Decision, GiveUpReason, Recovery, Trigger, decide};
use crate::event::{Dispatch, Event};
use crate::gateway_url::{GatewayUrl, check_resume_url};
use crate::heartbeat::{Beat, Heartbeat};
use crate::identify::SETTLE_HOLD_MS;
use crate::jitter::ShardJitter;
use crate::output::{Action, Command, ConnectionId, IdentifyAnswer, IdentifyRequest, Note, Output};
use crate::retry::{Ending, RetryPlanner};
use crate::saved_session::{SavedSession, Unusable};
use crate::send_budget::{SendBudget, SendError};
use crate::session::{Sequence, Session};
use crate::state::{Counter, Counters, PolicyState, PolicyStats};
use crate::time::Timestamp;

/// How an event was taken. Most drivers only look at it for dispatches
/// (deliver or not); everything else the policy acts on by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Handled {
    /// The event was applied. For a dispatch: its sequence number is new,
    /// so the driver should hand it to the user.
    Accepted,
    /// A dispatch whose sequence number is not newer than the last one
    /// received: already delivered, do not deliver it again.
    Duplicate,
    /// The event is about a connection that is no longer current (or an
    /// identify answer nobody is waiting for). The driver should drop that
    /// transport if it still holds it.
    Stale,
    /// The event means nothing in the current state and changed nothing.
    Ignored,
}

/// What to do once a socket the policy asked to close is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterClose {
    Reconnect {
        trigger: Trigger,
        decision: Decision,
        ending: Ending,
    },
    Stop,
}

/// What an open socket carries. It lives in the phase that owns the socket
/// and is dropped with it, so nothing of one connection outlives it.
///
/// `repr(C)`, the heartbeat first: it is read on every input of an open
/// socket, the rest once a connection (see the layout of [`Policy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Link {
    /// From Hello on: what the gateway's answer started.
    answered: Option<Answered>,
    opened_at: Timestamp,
}

/// What Hello starts on an open socket; all of it begins together.
/// `repr(C)`, the heartbeat first (see [`Link`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Answered {
    /// The heartbeat schedule.
    heartbeat: Heartbeat,
    /// The send budget.
    budget: SendBudget,
    /// When Hello arrived: from then on the gateway was answering.
    hello_at: Timestamp,
}

impl Link {
    const fn opened(at: Timestamp) -> Self {
        Self {
            opened_at: at,
            answered: None,
        }
    }

    /// The heartbeat schedule, from Hello on.
    const fn heartbeat(&self) -> Option<&Heartbeat> {
        match &self.answered {
            Some(answered) => Some(&answered.heartbeat),
            None => None,
        }
    }

    /// When Hello arrived, if it did.
    const fn hello_at(&self) -> Option<Timestamp> {
        match &self.answered {
            Some(answered) => Some(answered.hello_at),
            None => None,
        }
    }
}

/// Where the start slot of the next attempt stands, when it identifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StartSlot {
    /// Not asked for yet.
    Unasked,
    /// [`IdentifyRequest::ReserveStart`] is out; waiting for its answer.
    Asked,
    /// Booked: the phase's `at` is its start.
    Reserved,
}

/// The connection-level phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No socket; the next attempt may start at `at`.
    Waiting {
        at: Timestamp,
        slot: StartSlot,
    },
    /// `Connect` emitted; waiting for `Opened`.
    Dialing {
        deadline: Timestamp,
        recovery: Recovery,
        to_resume_url: bool,
    },
    /// Open; waiting for Hello.
    AwaitingHello {
        deadline: Timestamp,
        link: Link,
        recovery: Recovery,
    },
    /// Hello received; waiting for an identify permit, asked for at `at`
    /// (`asked`: the request is out), given up on at `deadline`.
    AwaitingIdentifySlot {
        at: Timestamp,
        deadline: Timestamp,
        link: Link,
        asked: bool,
    },
    /// Identify or Resume sent. While an Identify is out, its outcome is
    /// owed to the identify limiter.
    Handshaking {
        deadline: Timestamp,
        link: Link,
        recovery: Recovery,
    },
    /// READY or RESUMED received at `since`; `stable`: the connection has
    /// proven stable (the backoff is reset).
    Active {
        since: Timestamp,
        link: Link,
        stable: bool,
    },
    /// `Close` emitted with `sent`; waiting for `Closed`. `dispatches`:
    /// whether the session was live on this socket (Identify or Resume
    /// sent), so that dispatches still in flight belong to it.
    Closing {
        deadline: Timestamp,
        then: AfterClose,
        dispatches: bool,
        sent: CloseCode,
    },
    GivenUp(GiveUpReason),
    Stopped,
}

impl Phase {
    /// Whether a socket exists or is being dialled. It is always the
    /// policy's latest connection (see [`Policy::connection`]).
    const fn has_socket(&self) -> bool {
        matches!(self, Self::Dialing { .. } | Self::Closing { .. }) || self.is_open()
    }

    /// Whether a dispatch on this socket belongs to the session: only after
    /// Identify or Resume was sent. One that arrives earlier (before Hello,
    /// say) is a protocol violation and must not move the sequence number
    /// a later Resume will carry.
    const fn carries_dispatches(&self) -> bool {
        matches!(
            self,
            Self::Handshaking { .. }
                | Self::Active { .. }
                | Self::Closing {
                    dispatches: true,
                    ..
                }
        )
    }

    /// The open socket's state, if a socket is open (past `Opened`, before
    /// `Closing`).
    const fn link(&self) -> Option<&Link> {
        match self {
            Self::AwaitingHello { link, .. }
            | Self::AwaitingIdentifySlot { link, .. }
            | Self::Handshaking { link, .. }
            | Self::Active { link, .. } => Some(link),
            _ => None,
        }
    }

    const fn link_mut(&mut self) -> Option<&mut Link> {
        match self {
            Self::AwaitingHello { link, .. }
            | Self::AwaitingIdentifySlot { link, .. }
            | Self::Handshaking { link, .. }
            | Self::Active { link, .. } => Some(link),
            _ => None,
        }
    }

    /// The open socket's heartbeat, from Hello on.
    fn heartbeat_mut(&mut self) -> Option<&mut Heartbeat> {
        self.link_mut()
            .and_then(|link| link.answered.as_mut())
            .map(|answered| &mut answered.heartbeat)
    }

    /// Whether the socket is open (past `Opened`, before `Closing`).
    const fn is_open(&self) -> bool {
        matches!(
            self,
            Self::AwaitingHello { .. }
                | Self::AwaitingIdentifySlot { .. }
                | Self::Handshaking { .. }
                | Self::Active { .. }
        )
    }
}

/// The reconnect policy of one shard. See the [crate documentation](crate)
/// for the run loop.
//
// Laid out by hand (`repr(C)`): a fleet touches a shard's policy on every
// input, and at 10,000 shards and more the policies do not fit the cache,
// so each cache line an input reads is a miss. What every input reads lies
// in one stretch of 100 bytes (two or three cache lines, wherever the
// policy starts): the counters of a heartbeat and of a fleet timeout (the
// last counts), the sequence number, the hold, the output queue, the
// clock, the connection number, the configuration's address, and the
// phase's tag, its deadline and its heartbeat (the phase ends with the
// rest of the link, read once a connection). The rare counters before it,
// the random stream (a fleet of shards `0..n` knows a shard's id without
// it), the retry planner and the session after it, are read once a
// connection; an attempt's start reads the session and writes the end of
// the planner (its moments' flags and its attempt log), so those two lie
// together.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Policy {
    /// The counters, compact; widened by [`Policy::stats`]. The hot ones
    /// last (see [`Counter`]).
    stats: Counters,
    /// The last sequence number received on the session.
    seq: Sequence,
    /// Held by its fleet during a fleet-wide outage (see
    /// [`Policy::set_held`]): the next attempt does not start until released.
    held: bool,
    /// The gateway closed with 4008 (we sent too fast): the driver's send
    /// budget is cut on every connection until one proves stable.
    slowed: bool,
    /// The outputs not yet polled (see [`OutputQueue`]).
    outputs: Option<OutputQueue>,
    /// The latest time seen; earlier times passed in are raised to it.
    now: Timestamp,
    next_connection: u64,
    /// Shared by every shard of a fleet that uses the same configuration,
    /// like everything cold: the base URL is parsed from it when a resume
    /// URL is checked (once a session), not kept per shard.
    config: Arc<PolicyConfig>,
    phase: Phase,
    /// The shard's random stream, made by [`Jitter::for_shard`]: it also
    /// says which shard this is ([`Policy::shard`]). Read when a draw is
    /// made (Hello, the end of a connection) or a request names the shard;
    /// a fleet of shards `0..n` knows the id without it.
    rng: ShardJitter,
    /// Failures in a row: backoff, guard, give-up limits, resume breaker.
    /// What an attempt's start writes ends it, beside the session.
    retries: RetryPlanner,
    session: Option<Session>,
}

/// The outputs not yet polled, oldest first, in a queue on the heap (put
/// there the first time one is needed, and kept, with its memory, for
/// every output after: the hot path allocates nothing once warm).
///
/// `None` costs one word in the policy, where an inline output would take
/// [`Output`]'s 64 bytes. A [`Fleet`](crate::Fleet), which drains a
/// shard's outputs after every input, lends every shard the same queue for
/// the time of an input ([`Policy::lend_outputs`]) and takes it back once
/// drained ([`Policy::reclaim_outputs`]): its shards hold none between
/// inputs.
#[allow(clippy::box_collection)]
pub(crate) type OutputQueue = Box<VecDeque<Output>>;

impl Policy {
    /// Reads a word in each cache line of the stretch every input reads
    /// (see the layout note on [`Policy`]): the hot counters, the clock
    /// and the phase's tag; and, for a shard waiting to dial, the retry
    /// planner and the session, which an attempt's start reads. A caller
    /// with several policies to visit next reads them all first, so that
    /// their cache misses overlap instead of coming one after another; it
    /// hands the result to [`std::hint::black_box`], so that the reads are
    /// made.
    #[inline]
    pub(crate) fn warm(&self) -> u64 {
        let dial = match self.phase {
            Phase::Waiting { .. } => {
                u64::from(self.retries.retries()) ^ u64::from(self.session.is_some())
            }
            _ => 0,
        };
        u64::from(self.count(Counter::Zombies)) ^ self.now.as_millis() ^ dial
    }

    /// A policy for shard `shard` (its id, used for the identify bucket),
    /// with its random stream derived from `seed` and `shard` (shards given
    /// the same seed draw independent jitter), created at `now`. The first
    /// connection attempt is due at once: its first outputs are ready to
    /// poll.
    ///
    /// `config` is a [`PolicyConfig`] or an `Arc` of one: a fleet of shards
    /// can share a single configuration.
    ///
    /// # Errors
    ///
    /// The configuration is checked with [`PolicyConfig::validate`].
    pub fn new(
        config: impl Into<Arc<PolicyConfig>>,
        shard: u32,
        seed: u64,
        now: Timestamp,
    ) -> Result<Self, ConfigError> {
        Self::new_in(config.into(), shard, seed, now, None)
    }

    /// [`Policy::new`], its outputs put in `outputs` (a queue lent by a
    /// fleet, empty) when there is one.
    pub(crate) fn new_in(
        config: Arc<PolicyConfig>,
        shard: u32,
        seed: u64,
        now: Timestamp,
        outputs: Option<OutputQueue>,
    ) -> Result<Self, ConfigError> {
        // Checks the gateway URL too: `base_url` cannot fail afterwards.
        config.validate()?;
        let now = now.min(Timestamp::CEILING);
        let mut policy = Self {
            retries: RetryPlanner::new(&config),
            slowed: false,
            held: false,
            config,
            rng: ShardJitter::for_shard(seed, shard),
            now,
            phase: Phase::Waiting {
                at: now,
                slot: StartSlot::Unasked,
            },
            session: None,
            seq: Sequence::default(),
            next_connection: 0,
            outputs,
            stats: Counters::default(),
        };
        policy.proceed(now);
        Ok(policy)
    }

    // ----- inputs -------------------------------------------------------

    /// Applies an event about connection `conn` that happened at `now`.
    ///
    /// No timer runs here: a driver whose wake-up time
    /// ([`Policy::poll_timeout`]) has come calls [`Policy::handle_timeout`]
    /// first, so a late event never overrides a deadline that has passed.
    pub fn handle_event(&mut self, now: Timestamp, conn: ConnectionId, event: Event) -> Handled {
        let now = self.clock(now);
        if self.connection() != Some(conn) {
            self.stats.bump(Counter::StaleEvents);
            return Handled::Stale;
        }
        if !matches!(event, Event::HeartbeatAck | Event::Closed { .. })
            && let Some(hb) = self.phase.heartbeat_mut()
        {
            hb.activity(self.config.zombie);
        }
        let handled = match event {
            Event::Opened => self.on_opened(now),
            Event::ConnectFailed { failure } => match self.phase {
                Phase::Dialing { .. } => {
                    self.connection_lost(now, Trigger::ConnectFailed { failure });
                    Handled::Accepted
                }
                _ => Handled::Ignored,
            },
            Event::Hello {
                heartbeat_interval_ms,
            } => self.on_hello(now, heartbeat_interval_ms),
            Event::Dispatch { seq, event } => self.on_dispatch(now, seq, event),
            Event::HeartbeatAck => self.on_ack(now),
            Event::HeartbeatRequest => self.on_heartbeat_request(now),
            Event::Reconnect => self.server_asks(now, Trigger::Reconnect),
            Event::InvalidSession { resumable } => {
                self.server_asks(now, Trigger::InvalidSession { resumable })
            }
            Event::OtherFrame => Handled::Accepted,
            Event::Closed { code } => self.on_closed(now, code.map(CloseCode::from_u16)),
        };
        if handled == Handled::Ignored {
            self.stats.bump(Counter::IgnoredEvents);
        }
        handled
    }

    /// Processes everything due at or before `now`: deadlines, heartbeats,
    /// zombie checks, the stability window, the end of a backoff. The only
    /// place timers run. Safe to call at any time, as often as wanted; a
    /// call with nothing due changes nothing.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.clock(now);
        self.advance(now);
    }

    /// Applies the identify limiter's answer to this shard's last
    /// [`Action::Identify`] request.
    ///
    /// An answer nobody waits for any more is [`Handled::Stale`]; a grant
    /// among them is handed back at once ([`IdentifyRequest::Settle`]
    /// without READY), so it never blocks the bucket.
    pub fn handle_identify(&mut self, now: Timestamp, answer: IdentifyAnswer) -> Handled {
        let now = self.clock(now);
        match (answer, self.phase) {
            (
                IdentifyAnswer::StartAt(start),
                Phase::Waiting {
                    slot: StartSlot::Asked,
                    ..
                },
            ) => {
                if start > now {
                    self.stats.bump(Counter::IdentifyWaits);
                }
                self.phase = Phase::Waiting {
                    at: start.max(now),
                    slot: StartSlot::Reserved,
                };
                self.proceed(now);
                Handled::Accepted
            }
            (
                IdentifyAnswer::Granted,
                Phase::AwaitingIdentifySlot {
                    link, asked: true, ..
                },
            ) => {
                self.seq.clear();
                self.stats.bump(Counter::IdentifiesSent);
                self.phase = Phase::Handshaking {
                    link,
                    deadline: now.saturating_add(self.config.timeouts.handshake_ms),
                    recovery: Recovery::Reidentify,
                };
                self.act(Action::Send {
                    connection: self.latest_connection(),
                    command: Command::Identify,
                });
                Handled::Accepted
            }
            (
                IdentifyAnswer::RetryAt(retry_at),
                Phase::AwaitingIdentifySlot {
                    link,
                    deadline,
                    asked: true,
                    ..
                },
            ) => {
                self.stats.bump(Counter::IdentifyWaits);
                // An answer is proof that the limiter is alive and that this
                // shard is in line: a bucket held by other shards' Identifies
                // (each for up to a handshake and its settle window) is no
                // reason to drop a healthy socket and dial again, so a retry
                // within one slot wait renews the deadline. The deadline
                // still ends a wait for an answer that never comes, and a
                // retry further off (the daily allowance) closes the socket
                // to wait without one.
                let wait = self.slot_wait_ms();
                let deadline = if retry_at <= now.saturating_add(wait) {
                    deadline.max(retry_at.max(now).saturating_add(wait))
                } else {
                    deadline
                };
                self.phase = Phase::AwaitingIdentifySlot {
                    link,
                    at: retry_at.max(now.saturating_add(1)).min(deadline),
                    deadline,
                    asked: false,
                };
                Handled::Accepted
            }
            (IdentifyAnswer::Granted, phase) => {
                // While this shard's own Identify is out, a second grant (a
                // responder that answered twice) is not handed back: the
                // limiter tracks one Identify per shard, and settling this
                // one would free the bucket while the real one is out. Its
                // outcome settles both.
                let identifying = matches!(
                    phase,
                    Phase::Handshaking {
                        recovery: Recovery::Reidentify,
                        ..
                    }
                );
                if !identifying {
                    self.act(Action::Identify {
                        shard: self.shard(),
                        request: IdentifyRequest::Settle { ready: false },
                    });
                }
                self.stats.bump(Counter::StaleEvents);
                Handled::Stale
            }
            _ => {
                self.stats.bump(Counter::StaleEvents);
                Handled::Stale
            }
        }
    }

    /// Closes the session for good: the socket, if any, is closed with 1000
    /// (which ends the session on the gateway) and the policy stops.
    pub fn shutdown(&mut self, now: Timestamp) {
        let now = self.clock(now);
        self.settle_identify(false);
        self.drop_session();
        self.stop_closing_with(now, CloseCode::Normal);
    }

    /// Stops: a dial in progress is aborted, an open socket is closed with
    /// `code`, a close already in flight finishes first. The one path both
    /// shutdowns share; whether the session is kept is theirs to decide.
    fn stop_closing_with(&mut self, now: Timestamp, code: CloseCode) {
        match self.phase {
            Phase::Dialing { .. } => {
                self.act(Action::Abort {
                    connection: self.latest_connection(),
                });
                self.phase = Phase::Stopped;
            }
            Phase::Closing {
                deadline,
                dispatches,
                sent,
                ..
            } => {
                self.phase = Phase::Closing {
                    deadline,
                    then: AfterClose::Stop,
                    dispatches,
                    sent,
                };
            }
            phase if phase.is_open() => {
                let conn = self.latest_connection();
                self.act(Action::Close {
                    connection: conn,
                    code,
                });
                self.phase = Phase::Closing {
                    deadline: now.saturating_add(self.config.timeouts.close_ms),
                    then: AfterClose::Stop,
                    dispatches: phase.carries_dispatches(),
                    sent: code,
                };
            }
            Phase::GivenUp(_) => {}
            _ => self.phase = Phase::Stopped,
        }
    }

    /// Asks to send one of the driver's own commands (presence update,
    /// member request, ...) on the current connection now.
    ///
    /// # Errors
    ///
    /// [`SendError::NoSession`] when no session is established on the
    /// current connection, [`SendError::Throttled`] while the connection's
    /// send budget is spent, [`SendError::NoBudget`] when the configured
    /// limit leaves the driver no room at all.
    pub fn try_send_command(&mut self, now: Timestamp) -> Result<(), SendError> {
        let now = self.clock(now);
        match &mut self.phase {
            Phase::Active {
                link:
                    Link {
                        answered: Some(answered),
                        ..
                    },
                ..
            } => answered.budget.take_command(now, self.config.send_limit),
            _ => Err(SendError::NoSession),
        }
    }

    // ----- outputs ------------------------------------------------------

    /// The next thing the driver must do or may log, or `None` when there
    /// is nothing until the next input or [`Policy::poll_timeout`]. Takes no
    /// time and calls nothing: every output was decided by an input.
    #[inline]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.as_mut()?.pop_front()
    }

    /// Takes `spare`, an empty output queue, to put this policy's outputs
    /// in, unless the policy holds a queue already.
    #[inline]
    pub(crate) fn lend_outputs(&mut self, spare: &mut Option<OutputQueue>) {
        if self.outputs.is_none() {
            self.outputs = spare.take();
        }
    }

    /// Whether the policy holds an output queue (drained or not).
    #[cfg(test)]
    pub(crate) const fn holds_outputs(&self) -> bool {
        self.outputs.is_some()
    }

    /// Hands the policy's output queue, once drained, back to `spare` (or
    /// drops it when `spare` holds one already): a policy whose outputs
    /// are drained after every input holds none between inputs.
    #[inline]
    pub(crate) fn reclaim_outputs(&mut self, spare: &mut Option<OutputQueue>) {
        if self.outputs.as_ref().is_some_and(|queue| queue.is_empty()) {
            let queue = self.outputs.take();
            if spare.is_none() {
                *spare = queue;
            }
        }
    }

    /// The next instant at which the policy has something to do, or `None`
    /// when it has stopped or waits only for an input (an identify answer).
    /// Changed by every input; read it after draining
    /// [`Policy::poll_output`].
    #[must_use]
    #[inline]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let phase = match self.phase {
            Phase::Waiting {
                slot: StartSlot::Asked,
                ..
            } => None,
            Phase::Waiting {
                slot: StartSlot::Unasked,
                ..
            } if self.held => None,
            Phase::Waiting { at, .. } => Some(at),
            Phase::AwaitingIdentifySlot {
                deadline,
                asked: true,
                ..
            } => Some(deadline),
            Phase::AwaitingIdentifySlot { at, deadline, .. } => Some(at.min(deadline)),
            Phase::Dialing { deadline, .. }
            | Phase::AwaitingHello { deadline, .. }
            | Phase::Handshaking { deadline, .. }
            | Phase::Closing { deadline, .. } => Some(deadline),
            Phase::Active {
                since,
                stable: false,
                ..
            } => Some(since.saturating_add(self.config.stability.window_ms)),
            Phase::Active { .. } => None,
            Phase::GivenUp(_) | Phase::Stopped => return None,
        };
        let heartbeat = self
            .phase
            .link()
            .and_then(Link::heartbeat)
            .map(Heartbeat::next_at);
        match (phase, heartbeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- getters ------------------------------------------------------

    /// Where the policy is.
    #[must_use]
    pub fn state(&self) -> PolicyState {
        match self.phase {
            Phase::Waiting { at, .. } => PolicyState::BackingOff {
                until: at,
                recovery: self.next_recovery(),
            },
            Phase::Dialing { recovery, .. } | Phase::AwaitingHello { recovery, .. } => {
                PolicyState::Connecting { recovery }
            }
            Phase::AwaitingIdentifySlot { at, .. } => {
                PolicyState::WaitingForIdentifySlot { until: at }
            }
            Phase::Handshaking {
                recovery: Recovery::Resume,
                ..
            } => PolicyState::Resuming,
            Phase::Handshaking { .. } => PolicyState::Identifying,
            Phase::Active { stable, .. } => PolicyState::Connected { stable },
            Phase::Closing { .. } => PolicyState::Closing,
            Phase::GivenUp(reason) => PolicyState::GivenUp { reason },
            Phase::Stopped => PolicyState::Stopped,
        }
    }

    /// The counters, as of now. Returned by value: the policy keeps them
    /// compact (each saturates at `u32::MAX`) and widens them here.
    #[must_use]
    pub fn stats(&self) -> PolicyStats {
        self.stats.stats()
    }

    /// One counter, as stored (saturating at `u32::MAX`): what a
    /// [`Fleet`](crate::Fleet) reads on its hot path instead of widening
    /// them all.
    #[inline]
    pub(crate) const fn count(&self, counter: Counter) -> u32 {
        self.stats.get(counter)
    }

    /// The configuration's gateway URL, parsed: what a saved session's
    /// resume URL is checked against. Parsed when needed rather than kept;
    /// `new` has checked that it parses (READY's resume URL is checked with
    /// [`check_resume_url`], which parses the base in place).
    fn base_url(config: &PolicyConfig) -> Result<GatewayUrl, ConfigError> {
        GatewayUrl::parse(&config.gateway_url).map_err(|_| ConfigError::GatewayUrl)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The shard id.
    #[must_use]
    pub const fn shard(&self) -> u32 {
        self.rng.shard()
    }

    /// The resumable session, if any.
    #[must_use]
    pub const fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// The last sequence number received on the session.
    #[must_use]
    pub const fn last_seq(&self) -> Option<u64> {
        self.seq.last()
    }

    /// The current connection, if a socket exists or is being dialled.
    #[must_use]
    pub const fn connection(&self) -> Option<ConnectionId> {
        if self.phase.has_socket() {
            Some(self.latest_connection())
        } else {
            None
        }
    }

    /// The last connection dialled: the only one a phase with a socket can
    /// be about, since a `Connect` is emitted only from a phase without
    /// one. Not kept in the phase, where it would cost a word.
    const fn latest_connection(&self) -> ConnectionId {
        ConnectionId(self.next_connection.wrapping_sub(1))
    }

    /// Retries since the connection was last stable.
    #[must_use]
    pub const fn retries(&self) -> u32 {
        self.retries.retries()
    }

    /// Milliseconds the current socket has been open, or `None` without one.
    #[must_use]
    pub fn uptime_ms(&self, now: Timestamp) -> Option<u64> {
        self.phase
            .link()
            .map(|link| now.saturating_since(link.opened_at))
    }

    /// Round trip of the last acknowledged heartbeat on this connection.
    #[must_use]
    pub fn heartbeat_latency_ms(&self) -> Option<u64> {
        self.phase
            .link()
            .and_then(Link::heartbeat)
            .and_then(Heartbeat::latency_ms)
    }

    // ----- event handlers -----------------------------------------------

    fn on_opened(&mut self, now: Timestamp) -> Handled {
        let Phase::Dialing { recovery, .. } = self.phase else {
            return Handled::Ignored;
        };
        // The upgrade was answered: the handshake reached the gateway.
        self.retries.attempt_reached(now);
        self.phase = Phase::AwaitingHello {
            link: Link::opened(now),
            deadline: now.saturating_add(self.config.timeouts.hello_ms),
            recovery,
        };
        Handled::Accepted
    }

    fn on_hello(&mut self, now: Timestamp, interval_ms: u64) -> Handled {
        let Phase::AwaitingHello {
            mut link, recovery, ..
        } = self.phase
        else {
            return Handled::Ignored;
        };
        let heartbeat = self.rng.draw(|rng| Heartbeat::start(now, interval_ms, rng));
        let share = if self.slowed {
            self.config.rate_limited.budget_percent
        } else {
            100
        };
        link.answered = Some(Answered {
            hello_at: now,
            budget: SendBudget::new(self.config.send_limit, heartbeat.interval_ms(), now, share),
            heartbeat,
        });
        match (&self.session, recovery) {
            (Some(session), Recovery::Resume) => {
                let command = Command::Resume {
                    session_id: session.id.clone(),
                    seq: self.seq.last().unwrap_or(0),
                };
                self.stats.bump(Counter::ResumesSent);
                self.act(Action::Send {
                    connection: self.latest_connection(),
                    command,
                });
                self.phase = Phase::Handshaking {
                    link,
                    deadline: now.saturating_add(self.config.timeouts.handshake_ms),
                    recovery: Recovery::Resume,
                };
            }
            _ => {
                let wait = self.slot_wait_ms();
                self.phase = Phase::AwaitingIdentifySlot {
                    link,
                    at: now,
                    deadline: now.saturating_add(wait),
                    asked: false,
                };
                self.proceed(now);
            }
        }
        Handled::Accepted
    }

    fn on_dispatch(&mut self, now: Timestamp, seq: Option<u64>, event: Dispatch) -> Handled {
        if !self.phase.carries_dispatches() {
            return Handled::Ignored;
        }
        // A READY taken as the new session restarts the sequence with its
        // own number, whatever came before it. Otherwise numbers only move
        // forward, and a repeat is a duplicate.
        let new_session = matches!(event, Dispatch::Ready { .. })
            && matches!(self.phase, Phase::Handshaking { .. } | Phase::Active { .. });
        let fresh = self.seq.take(seq, new_session);
        match (event, &self.phase) {
            (
                Dispatch::Ready {
                    session_id,
                    resume_gateway_url,
                },
                &(Phase::Handshaking { .. } | Phase::Active { .. }),
            ) => {
                self.stats.bump(Counter::Ready);
                self.settle_identify(true);
                self.retries.identify_succeeded();
                // The base URL is parsed in place (`new` has checked it):
                // nothing is allocated for the check.
                let checked = check_resume_url(
                    &resume_gateway_url,
                    &self.config.gateway_url,
                    &self.config.resume_domains,
                );
                self.session = match checked {
                    Ok(()) => Session::from_ready(&session_id, Some(resume_gateway_url)),
                    Err(reason) => {
                        self.stats.bump(Counter::ResumeUrlsRefused);
                        let mut url = resume_gateway_url;
                        let mut end = url.len().min(256);
                        while !url.is_char_boundary(end) {
                            end -= 1;
                        }
                        url.truncate(end);
                        self.note(Note::ResumeUrlRefused { url, reason });
                        None
                    }
                };
                self.established(now);
            }
            (Dispatch::Resumed, &Phase::Handshaking { .. }) => {
                self.stats.bump(Counter::ResumesSucceeded);
                self.retries.resumes_reset();
                self.established(now);
            }
            _ => {}
        }
        if fresh {
            Handled::Accepted
        } else {
            self.stats.bump(Counter::DuplicateDispatches);
            Handled::Duplicate
        }
    }

    fn on_ack(&mut self, now: Timestamp) -> Handled {
        let Some(hb) = self.phase.heartbeat_mut() else {
            return Handled::Ignored;
        };
        if !hb.ack(now) {
            return Handled::Ignored;
        }
        self.stats.bump(Counter::HeartbeatAcks);
        if self.config.stability.reset_on_first_ack && matches!(self.phase, Phase::Active { .. }) {
            self.mark_stable();
        }
        Handled::Accepted
    }

    fn on_heartbeat_request(&mut self, now: Timestamp) -> Handled {
        let Some(conn) = self.connection() else {
            return Handled::Ignored;
        };
        let Some(answered) = self
            .phase
            .link_mut()
            .and_then(|link| link.answered.as_mut())
        else {
            return Handled::Ignored;
        };
        if answered
            .budget
            .take_heartbeat_request(now, self.config.send_limit)
            .is_err()
        {
            self.stats.bump(Counter::HeartbeatRequestsRefused);
            return Handled::Ignored;
        }
        self.send_heartbeat(conn);
        Handled::Accepted
    }

    /// op 7 or op 9 on an open socket: close it ourselves, then reconnect.
    fn server_asks(&mut self, now: Timestamp, trigger: Trigger) -> Handled {
        if !self.phase.is_open() {
            // Already closing: the reconnect is under way; absorb.
            return Handled::Ignored;
        }
        self.close_and_reconnect(now, trigger);
        Handled::Accepted
    }

    fn on_closed(&mut self, now: Timestamp, code: Option<CloseCode>) -> Handled {
        match self.phase {
            Phase::Closing { then, sent, .. } => {
                // The close we asked for, or the server's own close that
                // crossed ours: a code other than the one we sent is the
                // server's, and counts like any other close.
                match code.filter(|&c| c != sent) {
                    Some(code) => self.server_closed_while_closing(now, code, then),
                    None => self.finish_close(now, then),
                }
                Handled::Accepted
            }
            Phase::Dialing { .. } => {
                self.connection_lost(now, Trigger::Closed { code });
                Handled::Accepted
            }
            phase if phase.is_open() => {
                if code.is_some() {
                    self.stats.last_close_code = code;
                }
                if code == Some(CloseCode::RateLimited) {
                    self.slowed = true;
                }
                self.connection_lost(now, Trigger::Closed { code });
                Handled::Accepted
            }
            _ => Handled::Ignored,
        }
    }

    // ----- transitions --------------------------------------------------

    /// Raises `now` to the latest time seen (time never goes backwards) and
    /// caps it at [`Timestamp::CEILING`] (deadlines never saturate).
    fn clock(&mut self, now: Timestamp) -> Timestamp {
        self.now = self.now.max(now.min(Timestamp::CEILING));
        self.now
    }

    /// Runs every deadline and heartbeat due at or before `now`.
    fn advance(&mut self, now: Timestamp) {
        // Each pass either changes the phase to one without a past deadline
        // or moves the heartbeat past `now`, so this ends; the bound is a
        // belt over those braces.
        for _ in 0..8 {
            if !self.advance_once(now) {
                break;
            }
        }
    }

    fn advance_once(&mut self, now: Timestamp) -> bool {
        match self.phase {
            Phase::Dialing { deadline, .. } if deadline <= now => {
                self.act(Action::Abort {
                    connection: self.latest_connection(),
                });
                self.connection_lost(
                    now,
                    Trigger::Timeout {
                        deadline: Deadline::Connect,
                    },
                );
                return true;
            }
            Phase::AwaitingHello { deadline, .. } if deadline <= now => {
                self.close_and_reconnect(
                    now,
                    Trigger::Timeout {
                        deadline: Deadline::Hello,
                    },
                );
                return true;
            }
            Phase::Handshaking { deadline, .. } | Phase::AwaitingIdentifySlot { deadline, .. }
                if deadline <= now =>
            {
                self.close_and_reconnect(
                    now,
                    Trigger::Timeout {
                        deadline: Deadline::Handshake,
                    },
                );
                return true;
            }
            Phase::Closing { deadline, then, .. } if deadline <= now => {
                self.act(Action::Abort {
                    connection: self.latest_connection(),
                });
                self.finish_close(now, then);
                return true;
            }
            Phase::Waiting { at, slot }
                if at <= now && slot != StartSlot::Asked && !self.holds(slot) =>
            {
                self.proceed(now);
                return true;
            }
            Phase::AwaitingIdentifySlot {
                at, asked: false, ..
            } if at <= now => {
                self.proceed(now);
                return true;
            }
            Phase::Active {
                since,
                stable: false,
                ..
            } if now.saturating_since(since) >= self.config.stability.window_ms => {
                self.mark_stable();
                return true;
            }
            _ => {}
        }
        let conn = self.connection();
        if let (Some(hb), Some(conn)) = (self.phase.heartbeat_mut(), conn)
            && hb.next_at() <= now
        {
            match hb.fire(now) {
                Beat::Send => self.send_heartbeat(conn),
                Beat::Zombie => {
                    self.stats.bump(Counter::Zombies);
                    self.close_and_reconnect(now, Trigger::Zombie);
                }
            }
            return true;
        }
        false
    }

    fn send_heartbeat(&mut self, conn: ConnectionId) {
        self.stats.bump(Counter::HeartbeatsSent);
        self.act(Action::Send {
            connection: conn,
            command: Command::Heartbeat {
                seq: self.seq.last(),
            },
        });
    }

    #[inline]
    fn push(&mut self, output: Output) {
        self.outputs.get_or_insert_default().push_back(output);
    }

    #[inline]
    fn act(&mut self, action: Action) {
        self.push(Output::Action(action));
    }

    #[inline]
    fn note(&mut self, note: Note) {
        self.push(Output::Note(note));
    }

    /// Reports how the Identify the limiter granted ended, when one is out
    /// on the current socket (the phase is still the handshake's).
    fn settle_identify(&mut self, ready: bool) {
        if matches!(
            self.phase,
            Phase::Handshaking {
                recovery: Recovery::Reidentify,
                ..
            }
        ) {
            self.act(Action::Identify {
                shard: self.shard(),
                request: IdentifyRequest::Settle { ready },
            });
        }
    }

    fn established(&mut self, now: Timestamp) {
        let Some(&link) = self.phase.link() else {
            return;
        };
        // A second READY on a stable connection keeps it stable.
        let stable = matches!(self.phase, Phase::Active { stable: true, .. });
        self.phase = Phase::Active {
            link,
            since: now,
            stable,
        };
        if !stable && self.config.stability.window_ms == 0 {
            self.mark_stable();
        }
    }

    fn mark_stable(&mut self) {
        if let Phase::Active { stable, .. } = &mut self.phase {
            *stable = true;
        }
        self.slowed = false;
        self.retries.stable();
    }

    /// Accounts for the end of the current connection attempt: failed
    /// resumes, failed dials to the resume URL. Called with the socket
    /// still described by `self.phase`.
    ///
    /// A resume *fails* only when it was sent and the connection ended
    /// before RESUMED: a dial that fails, or a socket that never says Hello,
    /// says the network is down, not that the session is dead, and must not
    /// cost the session (an outage would otherwise turn every resume of a
    /// fleet into an Identify).
    fn account_for_end(&mut self) {
        let (resume_sent, dial_to_resume_url) = match self.phase {
            Phase::Dialing { to_resume_url, .. } => (false, to_resume_url),
            Phase::Handshaking { recovery, .. } => (recovery == Recovery::Resume, false),
            _ => (false, false),
        };
        if dial_to_resume_url {
            if let Some(session) = &mut self.session {
                session.resume_url = None;
            }
            if self.config.resume.drop_session_on_dial_failure && self.session.is_some() {
                self.stats.bump(Counter::ResumeBreakerTrips);
                self.drop_session();
            }
        }
        if matches!(
            self.phase,
            Phase::Handshaking {
                recovery: Recovery::Reidentify,
                ..
            }
        ) {
            self.settle_identify(false);
        }
        if resume_sent && self.session.is_some() && self.retries.resume_failed(&self.config) {
            self.stats.bump(Counter::ResumeBreakerTrips);
            self.drop_session();
        }
    }

    /// The socket is already gone: decide and schedule.
    fn connection_lost(&mut self, now: Timestamp, trigger: Trigger) {
        let ending = self.ending(trigger);
        self.account_for_end();
        let decision = self.decide(trigger);
        self.schedule(now, trigger, decision, ending);
    }

    /// How long a shard with an open socket waits for an identify grant
    /// before it gives up on the socket: another shard's Identify can hold
    /// the bucket for its whole handshake and the settle window after it
    /// (plus a second of polling slack), so no less than that.
    fn slot_wait_ms(&self) -> u64 {
        self.config
            .timeouts
            .handshake_ms
            .saturating_add(SETTLE_HOLD_MS + 1_000)
    }

    /// The socket is open and the policy wants it gone: decide now, close,
    /// and schedule once it is closed.
    fn close_and_reconnect(&mut self, now: Timestamp, trigger: Trigger) {
        let Some(conn) = self.connection() else {
            return;
        };
        let dispatches = self.phase.carries_dispatches();
        let ending = self.ending(trigger);
        self.account_for_end();
        let decision = self.decide(trigger);
        // A code that keeps the session whenever the session is to be
        // resumed; 1000 only when the session is being dropped anyway.
        let code = match decision.recovery() {
            Some(Recovery::Resume) => CloseCode::UnknownError,
            _ => CloseCode::Normal,
        };
        self.act(Action::Close {
            connection: conn,
            code,
        });
        self.phase = Phase::Closing {
            deadline: now.saturating_add(self.config.timeouts.close_ms),
            then: AfterClose::Reconnect {
                trigger,
                decision,
                ending,
            },
            dispatches,
            sent: code,
        };
    }

    /// The server closed with its own `code` while our close was in
    /// flight. A fatal code gives up; a code that drops the session (4003,
    /// 4007, 4009) re-identifies instead of sending a Resume the server has
    /// already refused; 4008 slows the next attempt. Any other code changes
    /// nothing: the plan made when we closed stands. A protocol wait already
    /// owed (op 9's) is kept.
    fn server_closed_while_closing(&mut self, now: Timestamp, code: CloseCode, then: AfterClose) {
        self.stats.last_close_code = Some(code);
        let overrides = code.action() != CloseAction::Resume || code == CloseCode::RateLimited;
        if !overrides {
            return self.finish_close(now, then);
        }
        if code == CloseCode::RateLimited {
            self.slowed = true;
        }
        let trigger = Trigger::Closed { code: Some(code) };
        let mut decision = self.decide(trigger);
        let mut ending = Ending::default();
        if let AfterClose::Reconnect {
            decision: planned,
            ending: planned_ending,
            ..
        } = then
        {
            if let (Decision::Wait { delay_ms, .. }, Some(then)) = (planned, decision.recovery()) {
                decision = Decision::Wait { delay_ms, then };
            }
            // The reconnect the server asked for stays free, unless the
            // server now says we sent too fast.
            ending = planned_ending;
            ending.server_request &= code != CloseCode::RateLimited;
        }
        match then {
            AfterClose::Reconnect { .. } => self.schedule(now, trigger, decision, ending),
            // Shutting down: only a fatal code changes how it ends.
            AfterClose::Stop => match decision {
                Decision::GiveUp { reason } => self.give_up(reason),
                _ => self.finish_close(now, then),
            },
        }
    }

    fn finish_close(&mut self, now: Timestamp, then: AfterClose) {
        match then {
            AfterClose::Reconnect {
                trigger,
                decision,
                ending,
            } => self.schedule(now, trigger, decision, ending),
            AfterClose::Stop => self.phase = Phase::Stopped,
        }
    }

    fn decide(&mut self, trigger: Trigger) -> Decision {
        let has_session = self.session.is_some();
        let rules = self.config.decision;
        let decision = self
            .rng
            .draw(|rng| decide(trigger, has_session, &rules, rng));
        if decision.recovery() == Some(Recovery::Reidentify) {
            self.drop_session();
        }
        decision
    }

    fn drop_session(&mut self) {
        self.session = None;
        self.seq.clear();
        self.retries.resumes_reset();
    }

    /// How the current connection, ending with `trigger`, counts for the
    /// retry planner: whether the gateway asked for the reconnect, and
    /// from when it was answering. Read before the phase moves on.
    fn ending(&self, trigger: Trigger) -> Ending {
        let hello_at = self.phase.link().and_then(Link::hello_at);
        let established = matches!(self.phase, Phase::Active { .. });
        let server_request = match trigger {
            Trigger::Reconnect => established,
            Trigger::InvalidSession { .. } => hello_at.is_some(),
            Trigger::Closed { code: Some(code) } => established && code.asks_for_reconnect(),
            _ => false,
        };
        // A deadline or a zombie ends a connection that had stopped
        // answering long before: its open time proves nothing.
        let credit = !matches!(trigger, Trigger::Timeout { .. } | Trigger::Zombie);
        // An Identify out on this socket, answered by the server before
        // READY (a drop or a deadline is no answer).
        let identify_rejected = matches!(
            self.phase,
            Phase::Handshaking {
                recovery: Recovery::Reidentify,
                ..
            }
        ) && matches!(
            trigger,
            Trigger::Closed { code: Some(_) } | Trigger::InvalidSession { .. }
        );
        Ending {
            answered_since: hello_at.filter(|_| credit),
            server_request,
            identify_rejected,
            established,
        }
    }

    /// Plans the next attempt after a connection ended.
    fn schedule(&mut self, now: Timestamp, trigger: Trigger, decision: Decision, ending: Ending) {
        let Some(recovery) = decision.recovery() else {
            if let Decision::GiveUp { reason } = decision {
                self.give_up(reason);
            }
            return;
        };
        let (retries, config) = (&mut self.retries, &self.config);
        let planned = self.rng.draw(|rng| {
            retries.plan_with_loop(now, trigger, decision, recovery, ending, config, rng)
        });
        let (plan, in_loop) = match planned {
            Ok(planned) => planned,
            Err(reason) => return self.give_up(reason),
        };
        let at = plan.at;
        self.stats.bump(Counter::Reconnects);
        self.note(Note::Planned(plan));
        if let Some(state) = in_loop {
            let last_code = match trigger {
                Trigger::Closed { code } => code,
                _ => None,
            };
            self.note(Note::IdentifyLoop {
                rejected: state.rejected,
                last_code,
                rejected_today: state.rejected_today,
                until: at,
            });
        }
        self.phase = Phase::Waiting {
            at,
            slot: StartSlot::Unasked,
        };
        if at <= now {
            // No wait at all (op 7 after READY, past the guard): the
            // attempt starts with this input, not at a timer.
            self.proceed(now);
        }
    }

    fn give_up(&mut self, reason: GiveUpReason) {
        self.phase = Phase::GivenUp(reason);
        self.act(Action::GiveUp(reason));
    }

    fn next_recovery(&self) -> Recovery {
        if self.session.is_some() {
            Recovery::Resume
        } else {
            Recovery::Reidentify
        }
    }

    /// Does what a due waiting phase asks for: at the end of a backoff,
    /// connect (or first ask for a start slot, when the attempt will
    /// identify); after Hello, ask for an identify grant.
    fn proceed(&mut self, now: Timestamp) {
        match self.phase {
            Phase::Waiting { at, slot } if at <= now && !self.holds(slot) => {
                let recovery = self.next_recovery();
                match slot {
                    StartSlot::Unasked if recovery == Recovery::Reidentify => {
                        self.phase = Phase::Waiting {
                            at,
                            slot: StartSlot::Asked,
                        };
                        self.act(Action::Identify {
                            shard: self.shard(),
                            request: IdentifyRequest::ReserveStart,
                        });
                    }
                    StartSlot::Asked => {}
                    StartSlot::Unasked | StartSlot::Reserved => self.connect(now, recovery),
                }
            }
            Phase::AwaitingIdentifySlot {
                at, asked: false, ..
            } if at <= now => {
                if let Phase::AwaitingIdentifySlot { asked, .. } = &mut self.phase {
                    *asked = true;
                }
                self.act(Action::Identify {
                    shard: self.shard(),
                    request: IdentifyRequest::Acquire,
                });
            }
            _ => {}
        }
    }

    /// Starts a connection attempt now.
    fn connect(&mut self, now: Timestamp, recovery: Recovery) {
        let resume_url = match (&self.session, recovery) {
            (Some(session), Recovery::Resume) => session.resume_url.clone(),
            _ => None,
        };
        let to_resume_url = resume_url.is_some();
        let url = resume_url.unwrap_or_else(|| self.config.gateway_url.clone());
        let conn = ConnectionId(self.next_connection);
        self.next_connection = self.next_connection.wrapping_add(1);
        self.retries.attempt_started(now);
        self.stats.bump(Counter::Attempts);
        self.phase = Phase::Dialing {
            deadline: now.saturating_add(self.config.timeouts.connect_ms),
            recovery,
            to_resume_url,
        };
        self.act(Action::Connect {
            connection: conn,
            url,
            recovery,
        });
    }
}

/// The fleet's hold: how a [`Fleet`](crate::Fleet) keeps a shard from
/// dialling while the whole fleet has lost the gateway.
impl Policy {
    /// Holds (`true`) or releases (`false`) the shard's next attempt. A held
    /// policy that is waiting to start an attempt does not start it (nor ask
    /// for its start slot) until released; nothing else changes: the plan it
    /// made, its guard, its attempt ceiling and its identify limiter all
    /// still apply once released, and a start slot already booked is used.
    /// A release takes effect at the next [`Policy::handle_timeout`] (the
    /// wake-up time returns), never inside this call: timers run in one
    /// place only.
    pub fn set_held(&mut self, held: bool) {
        self.held = held;
    }

    /// Whether the shard is held (see [`Policy::set_held`]).
    #[must_use]
    pub const fn is_held(&self) -> bool {
        self.held
    }

    /// When the shard, waiting between attempts with no start slot asked
    /// for, may start its next attempt; `None` in every other phase.
    #[must_use]
    pub const fn waiting_until(&self) -> Option<Timestamp> {
        match self.phase {
            Phase::Waiting {
                at,
                slot: StartSlot::Unasked,
            } => Some(at),
            _ => None,
        }
    }

    /// Asks an open connection to prove itself alive: a heartbeat goes out
    /// at the next [`Policy::handle_timeout`] (or the one already out
    /// counts), and one not acknowledged within `within_ms` of being sent
    /// makes the connection a zombie, as at the end of an interval. Does
    /// nothing before Hello or without a connection. A fleet asks this of
    /// every live shard when it trips an outage: a black hole leaves
    /// sockets that look open until their next heartbeat, up to an
    /// interval later.
    pub fn check_alive(&mut self, now: Timestamp, within_ms: u64) {
        let now = self.clock(now);
        if let Some(hb) = self.phase.heartbeat_mut() {
            hb.check(now, within_ms);
        }
    }

    /// Drops the session of a shard that is waiting between attempts, so
    /// that its next attempt identifies instead of sending a Resume the
    /// gateway will refuse. A fleet does this for its held shards once the
    /// gateway has refused the resumes of several shards that lost their
    /// sessions in the same outage and resumed none: it has forgotten them
    /// all. Does nothing in any other phase (a Resume may be out).
    pub fn forget_session(&mut self) {
        if matches!(
            self.phase,
            Phase::Waiting {
                slot: StartSlot::Unasked,
                ..
            }
        ) && self.session.is_some()
        {
            self.drop_session();
        }
    }

    /// Whether the hold keeps an attempt waiting in `slot` from starting.
    const fn holds(&self, slot: StartSlot) -> bool {
        self.held && matches!(slot, StartSlot::Unasked)
    }
}

/// Sessions that outlive the process (see [`SavedSession`]).
impl Policy {
    /// A policy for shard `shard` (as [`Policy::new`]) whose first attempt
    /// resumes `saved`, a session saved by an earlier process: it dials the
    /// saved resume URL (or the gateway URL when there is none) and sends
    /// Resume with the saved sequence number, without asking the identify
    /// limiter. A saved session that fails the checks READY's would (an
    /// empty or oversized id; a resume URL outside the allowed domains,
    /// reported as [`Note::ResumeUrlRefused`]) is not used: the policy
    /// starts as [`Policy::new`] and identifies. When the gateway refuses
    /// the resume, the ordinary rules drop the session and identify.
    ///
    /// # Errors
    ///
    /// As [`Policy::new`].
    pub fn resuming(
        config: impl Into<Arc<PolicyConfig>>,
        shard: u32,
        seed: u64,
        now: Timestamp,
        saved: &SavedSession,
    ) -> Result<Self, ConfigError> {
        Self::resuming_in(config.into(), shard, seed, now, saved, None)
    }

    /// [`Policy::resuming`], its outputs put in `outputs` (a queue lent by
    /// a fleet, empty) when there is one.
    pub(crate) fn resuming_in(
        config: Arc<PolicyConfig>,
        shard: u32,
        seed: u64,
        now: Timestamp,
        saved: &SavedSession,
        outputs: Option<OutputQueue>,
    ) -> Result<Self, ConfigError> {
        let mut policy = Self::new_in(config, shard, seed, now, outputs)?;
        let base = Self::base_url(&policy.config)?;
        match saved.check(&base, &policy.config) {
            Ok(session) => {
                // `new` asked for a start slot to identify; nothing has
                // been polled yet, so the request is withdrawn unseen and
                // the attempt resumes instead.
                if let Some(queue) = &mut policy.outputs {
                    queue.clear();
                }
                policy.session = Some(session);
                policy.seq.take(saved.seq, true);
                policy.phase = Phase::Waiting {
                    at: policy.now,
                    slot: StartSlot::Unasked,
                };
                policy.proceed(policy.now);
            }
            Err(Unusable::Url(reason)) => {
                policy.stats.bump(Counter::ResumeUrlsRefused);
                let mut url = saved.resume_url.clone().unwrap_or_default();
                let mut end = url.len().min(256);
                while !url.is_char_boundary(end) {
                    end -= 1;
                }
                url.truncate(end);
                policy.note(Note::ResumeUrlRefused { url, reason });
            }
            Err(Unusable::BadId) => {}
        }
        Ok(policy)
    }

    /// Stops without ending the session, so that a later process can
    /// resume it: the socket, if open, is closed with 4000 (a code that
    /// keeps the session; 1000 and 1001 end it), a socket still being
    /// dialled is dropped, and the policy stops with its session kept.
    /// Read it with [`Policy::saved_session`] once the policy has stopped.
    /// Without a session this is [`Policy::shutdown`].
    pub fn shutdown_keeping_session(&mut self, now: Timestamp) {
        if self.session.is_none() {
            return self.shutdown(now);
        }
        let now = self.clock(now);
        self.settle_identify(false);
        self.stop_closing_with(now, CloseCode::UnknownError);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fleet keeps one policy per shard, 100,000 of them at the largest
    /// bots: the per-shard state stays small (cold settings live in the
    /// shared configuration, counters are compact).
    #[test]
    fn a_policy_stays_compact() {
        let size = size_of::<Policy>();
        eprintln!(
            "Policy {size} = Phase {} (Link {}: Heartbeat {}, SendBudget {}), RetryPlanner {}, Counters {}, Outputs {}, Option<Session> {}, Jitter {}",
            size_of::<Phase>(),
            size_of::<Link>(),
            size_of::<Heartbeat>(),
            size_of::<SendBudget>(),
            size_of::<RetryPlanner>(),
            size_of::<Counters>(),
            size_of::<Option<OutputQueue>>(),
            size_of::<Option<Session>>(),
            size_of::<ShardJitter>(),
        );
        // Aligned to 8 bytes (the jitter stream keeps its `u128` position
        // in two `u64`s), so sizes move in steps of 8.
        assert_eq!(align_of::<Policy>(), 8);
        assert!(size <= 408, "{size} bytes");
    }

    /// What every input reads of a shard's policy lies in one stretch of
    /// at most 100 bytes: from the hot counters (the last counts) to the
    /// phase's heartbeat. The phase's tag, its deadline (or start) and the
    /// link's heartbeat open the phase (`-Zprint-type-sizes` shows the tag
    /// and a variant's flag in its first word, the time in the second, and
    /// the link from the third); the session and the retry planner, read
    /// once a connection, lie after it.
    #[test]
    fn the_fields_every_input_reads_lie_together() {
        use std::mem::offset_of;
        let hot_counters = [
            Counter::HeartbeatAcks,
            Counter::HeartbeatsSent,
            Counter::Zombies,
        ];
        let counters = Counter::Zombies as usize + 1;
        for counter in hot_counters {
            assert!(
                counter as usize + hot_counters.len() >= counters,
                "{counter:?}"
            );
        }
        let hot_start =
            offset_of!(Policy, stats) + size_of::<u32>() * (counters - hot_counters.len());
        // The link opens with the heartbeat.
        assert_eq!(offset_of!(Link, answered), 0);
        assert_eq!(offset_of!(Answered, heartbeat), 0);
        let hot_end = offset_of!(Policy, phase) + 16 + size_of::<Heartbeat>();
        assert!(hot_end - hot_start <= 100, "{hot_start}..{hot_end}");
        for hot in [
            offset_of!(Policy, seq),
            offset_of!(Policy, held),
            offset_of!(Policy, outputs),
            offset_of!(Policy, now),
            offset_of!(Policy, next_connection),
            offset_of!(Policy, config),
        ] {
            assert!((hot_start..hot_end).contains(&hot), "{hot}");
        }
        for cold in [
            offset_of!(Policy, rng),
            offset_of!(Policy, session),
            offset_of!(Policy, retries),
        ] {
            assert!(
                cold >= offset_of!(Policy, phase) + size_of::<Phase>(),
                "{cold}"
            );
        }
        // An attempt's start reads the session and writes the end of the
        // retry planner: they lie together.
        assert_eq!(
            offset_of!(Policy, retries) + size_of::<RetryPlanner>(),
            offset_of!(Policy, session)
        );
    }

    use crate::identify::{IdentifyLimiter, SessionStartLimit};

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    /// Runs the timers due at `now`, then drains the outputs, answering
    /// identify requests with `gate` and returning the rest.
    fn drain(policy: &mut Policy, now: u64, gate: &mut IdentifyLimiter) -> Vec<Output> {
        policy.handle_timeout(t(now));
        let mut out = Vec::new();
        while let Some(output) = policy.poll_output() {
            match output {
                Output::Action(Action::Identify { shard, request }) => {
                    if let Some(answer) = gate.answer(t(now), shard, request) {
                        let _ = policy.handle_identify(t(now), answer);
                    }
                }
                other => out.push(other),
            }
        }
        out
    }

    fn send(connection: ConnectionId, command: Command) -> Output {
        Output::Action(Action::Send {
            connection,
            command,
        })
    }

    /// A fresh policy that has connected, got Hello at 20 ms and sent
    /// Identify on its first connection.
    fn identifying() -> (Policy, IdentifyLimiter, ConnectionId) {
        let mut gate = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0));
        let mut policy = Policy::new(PolicyConfig::default(), 0, 1, t(0)).unwrap();
        assert!(matches!(
            drain(&mut policy, 0, &mut gate)[..],
            [Output::Action(Action::Connect { .. })]
        ));
        let conn = policy.connection().unwrap();
        let _ = policy.handle_event(t(10), conn, Event::Opened);
        let _ = policy.handle_event(t(20), conn, hello());
        assert!(drain(&mut policy, 20, &mut gate).contains(&send(conn, Command::Identify)));
        (policy, gate, conn)
    }

    fn hello() -> Event {
        Event::Hello {
            heartbeat_interval_ms: 41_250,
        }
    }

    #[test]
    fn a_dispatch_before_the_resume_is_sent_does_not_move_the_sequence() {
        let (mut policy, mut gate, conn) = identifying();
        let ready = Dispatch::Ready {
            session_id: "s".into(),
            resume_gateway_url: "wss://gateway-us-east1-b.discord.gg".into(),
        };
        let _ = policy.handle_event(
            t(30),
            conn,
            Event::Dispatch {
                seq: Some(5),
                event: ready,
            },
        );
        let _ = policy.handle_event(t(40), conn, Event::Closed { code: None });
        drain(&mut policy, 40, &mut gate);
        let at = policy.poll_timeout().unwrap();
        drain(&mut policy, at.as_millis(), &mut gate);
        let conn = policy.connection().unwrap();
        let _ = policy.handle_event(at, conn, Event::Opened);
        // A hostile or broken server sends a dispatch before Hello.
        let handled = policy.handle_event(
            at,
            conn,
            Event::Dispatch {
                seq: Some(99),
                event: Dispatch::Other,
            },
        );
        assert_eq!(handled, Handled::Ignored);
        let _ = policy.handle_event(at, conn, hello());
        let out = drain(&mut policy, at.as_millis(), &mut gate);
        assert!(out.contains(&send(
            conn,
            Command::Resume {
                session_id: "s".into(),
                seq: 5
            }
        )));
    }

    #[test]
    fn shards_of_one_bucket_connect_one_identify_window_apart() {
        let mut gate = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0));
        let mut shards: Vec<Policy> = (0..3)
            .map(|id| Policy::new(PolicyConfig::default(), id, u64::from(id), t(0)).unwrap())
            .collect();
        let first: Vec<bool> = shards
            .iter_mut()
            .map(|p| {
                matches!(
                    drain(p, 0, &mut gate)[..],
                    [Output::Action(Action::Connect { .. })]
                )
            })
            .collect();
        assert_eq!(first, [true, false, false]);
        let wakes: Vec<Option<Timestamp>> = shards.iter().map(Policy::poll_timeout).collect();
        assert_eq!(wakes[1], Some(t(5_250)));
        assert_eq!(wakes[2], Some(t(10_500)));
        // At its slot, a shard connects without asking for another one.
        assert!(matches!(
            drain(&mut shards[2], 10_500, &mut gate)[..],
            [Output::Action(Action::Connect { .. })]
        ));
    }

    #[test]
    fn a_resume_url_outside_the_base_domain_is_refused_and_the_session_dropped() {
        let (mut policy, mut gate, conn) = identifying();
        let ready = Dispatch::Ready {
            session_id: "s".into(),
            resume_gateway_url: "wss://gateway.discord.gg.attacker.example".into(),
        };
        let event = Event::Dispatch {
            seq: Some(1),
            event: ready,
        };
        assert_eq!(policy.handle_event(t(30), conn, event), Handled::Accepted);
        let out = drain(&mut policy, 30, &mut gate);
        assert!(matches!(
            &out[..],
            [Output::Note(Note::ResumeUrlRefused {
                reason: crate::UrlError::HostNotAllowed,
                ..
            })]
        ));
        assert!(policy.state().is_connected());
        assert!(policy.session().is_none());
        assert_eq!(policy.stats().resume_urls_refused, 1);
        // The next connection identifies against the base URL, once the
        // bucket's identify window (5.25 s after the first Identify) is over.
        let _ = policy.handle_event(t(40), conn, Event::Closed { code: None });
        drain(&mut policy, 40, &mut gate);
        let at = policy.poll_timeout().unwrap();
        assert!(drain(&mut policy, at.as_millis(), &mut gate).is_empty());
        assert_eq!(policy.poll_timeout(), Some(t(5_270)));
        let out = drain(&mut policy, 5_270, &mut gate);
        assert!(matches!(
            &out[..],
            [Output::Action(Action::Connect { url, recovery: Recovery::Reidentify, .. })] if url == "wss://gateway.discord.gg"
        ));
    }

    /// Found by the property tests at 100,000 cases: a READY arriving on a
    /// socket being closed is not a new session and must not restart the
    /// sequence the next Resume carries.
    #[test]
    fn a_ready_while_closing_does_not_restart_the_sequence() {
        let (mut policy, mut gate, conn) = identifying();
        let ready = |seq| Event::Dispatch {
            seq,
            event: Dispatch::Ready {
                session_id: "s".into(),
                resume_gateway_url: "wss://gateway-us-east1-b.discord.gg".into(),
            },
        };
        let _ = policy.handle_event(t(30), conn, ready(Some(1)));
        for seq in 2..=8 {
            let other = Event::Dispatch {
                seq: Some(seq),
                event: Dispatch::Other,
            };
            let _ = policy.handle_event(t(40), conn, other);
        }
        let _ = policy.handle_event(t(50), conn, Event::Reconnect);
        drain(&mut policy, 50, &mut gate);
        assert_eq!(policy.state(), PolicyState::Closing);
        let _ = policy.handle_event(t(60), conn, ready(None));
        assert_eq!(policy.last_seq(), Some(8));
        let _ = policy.handle_event(t(70), conn, Event::Closed { code: Some(4000) });
        drain(&mut policy, 70, &mut gate);
        // The connection never proved stable, so the backoff applies.
        let at = policy.poll_timeout().unwrap();
        drain(&mut policy, at.as_millis(), &mut gate);
        let conn = policy.connection().unwrap();
        let _ = policy.handle_event(at, conn, Event::Opened);
        let _ = policy.handle_event(at, conn, hello());
        let out = drain(&mut policy, at.as_millis(), &mut gate);
        assert!(out.contains(&send(
            conn,
            Command::Resume {
                session_id: "s".into(),
                seq: 8
            }
        )));
    }

    #[test]
    fn timers_run_only_in_handle_timeout() {
        let (mut policy, mut gate, conn) = identifying();
        // The handshake deadline (30 s after Identify by default) passes
        // without a timeout call: an event does not run it.
        let late = t(20 + policy.config().timeouts.handshake_ms + 1);
        assert!(policy.poll_timeout().is_some_and(|at| at < late));
        let _ = policy.handle_event(late, conn, Event::OtherFrame);
        assert_eq!(policy.state(), PolicyState::Identifying);
        assert_eq!(policy.poll_output(), None);
        // The timeout call does: close, and report the Identify's outcome.
        let out = drain(&mut policy, late.as_millis(), &mut gate);
        assert!(matches!(
            &out[..],
            [Output::Action(Action::Close { .. }), ..]
        ));
        assert_eq!(policy.state(), PolicyState::Closing);
    }

    #[test]
    fn an_unused_grant_is_handed_back_and_a_stray_answer_is_stale() {
        let mut policy = Policy::new(PolicyConfig::default(), 3, 1, t(0)).unwrap();
        assert_eq!(
            policy.poll_output(),
            Some(Output::Action(Action::Identify {
                shard: 3,
                request: IdentifyRequest::ReserveStart
            }))
        );
        // Nobody asked for a grant: it is handed back at once.
        assert_eq!(
            policy.handle_identify(t(5), IdentifyAnswer::Granted),
            Handled::Stale
        );
        assert_eq!(
            policy.poll_output(),
            Some(Output::Action(Action::Identify {
                shard: 3,
                request: IdentifyRequest::Settle { ready: false }
            }))
        );
        assert_eq!(
            policy.handle_identify(t(5), IdentifyAnswer::RetryAt(t(9))),
            Handled::Stale
        );
        // The slot asked for is still awaited: nothing to do until then.
        assert_eq!(policy.poll_timeout(), None);
        assert_eq!(
            policy.handle_identify(t(6), IdentifyAnswer::StartAt(t(6))),
            Handled::Accepted
        );
        assert!(matches!(
            policy.poll_output(),
            Some(Output::Action(Action::Connect { .. }))
        ));
        assert_eq!(policy.stats().stale_events, 2);
    }

    #[test]
    fn a_second_grant_while_identifying_does_not_free_the_bucket() {
        let (mut policy, _gate, _conn) = identifying();
        assert_eq!(policy.state(), PolicyState::Identifying);
        assert_eq!(
            policy.handle_identify(t(30), IdentifyAnswer::Granted),
            Handled::Stale
        );
        assert_eq!(policy.poll_output(), None);
    }
}
