//! A sans-IO reconnect policy for gateway WebSocket clients.
//!
//! Chat bots hold one WebSocket to a gateway (the Discord Gateway is the
//! reference). When the network hiccups, a naive client reconnects at once,
//! fails, and reconnects again: a *reconnect storm* that gets it rate
//! limited and, across a fleet of shards, becomes a thundering herd. This
//! crate holds every rule that prevents that, as a pure state machine:
//!
//! - [`decide`]: what a close code or opcode means for the session (resume,
//!   re-identify, wait, give up), usable on its own;
//! - [`BackoffStrategy`]: eight strategies with a hard cap after jitter;
//! - [`IdentifyLimiter`]: identify buckets and the daily session-start
//!   limit, shared by every shard of a bot, answering the shards'
//!   [`IdentifyRequest`]s;
//! - [`Policy`]: the per-shard state machine that combines them with
//!   heartbeats, zombie detection, deadlines, the resume breaker and the
//!   guard between attempts;
//! - [`Fleet`]: the policies of many shards and the bot's identify limiter,
//!   driven the same way as one policy (events for shard N in,
//!   `(shard, output)` out, one wake-up time);
//! - [`SavedSession`]: a session saved across a restart of the process,
//!   resumed by the next one instead of identifying again;
//! - [`StoreFallback`]: a process's side of an identify store shared by
//!   the bot's processes, and its conservative local limit while the store
//!   is away.
//!
//! # The contract
//!
//! - **No I/O, no clock, no threads, nothing shared called.** Every input
//!   takes the current [`Timestamp`] (milliseconds on the driver's monotonic
//!   clock; it converts from and to a [`Duration`](core::time::Duration)). A
//!   time earlier than one already seen is treated as that one: a clock
//!   that steps backwards never panics and never rewinds a deadline. Times
//!   past [`Timestamp::CEILING`] (2^63 ms) are read as it, so no deadline
//!   ever saturates. Anything shared (the identify limiter, in this process
//!   or another) is reached through an output ([`Action::Identify`]) and
//!   answers through an input ([`Policy::handle_identify`]).
//! - **Seeded randomness, one stream per shard.** Jitter comes from the
//!   shard's own [`Jitter`] stream of the caller's seed: the same seed and
//!   the same inputs give the same outputs, and shards given the same seed
//!   still draw independently. No type of a random-number crate is in the
//!   interface.
//! - **No secrets.** The policy never sees the token: it asks for
//!   `Identify` or `Resume`, and the driver fills the token in.
//!
//! # The run loop
//!
//! Inputs: [`Policy::handle_event`] for something that happened on the
//! current connection, [`Policy::handle_identify`] for the identify
//! limiter's answer, and [`Policy::handle_timeout`] when the time from
//! [`Policy::poll_timeout`] has come (the only place timers run; call it
//! before feeding a frame that arrived after that time). After every input,
//! drain [`Policy::poll_output`] until it returns `None`, carrying out each
//! [`Action`] in order (the enum is exhaustive: match every variant) and
//! logging each [`Note`] if you like, then sleep until
//! [`Policy::poll_timeout`].
//!
//! A library that already parses gateway frames adopts the policy like this
//! (then it sleeps until `poll_timeout()`, calls `handle_timeout(now)` and
//! carries out again):
//!
//! ```
//! use reconnect_policy::{Action, Event, IdentifyLimiter, Output, Policy, PolicyConfig, SessionStartLimit, Timestamp};
//!
//! /// Carries out the policy's actions on the library's sockets (a log here).
//! fn carry_out(policy: &mut Policy, limiter: &mut IdentifyLimiter, now: Timestamp, log: &mut Vec<String>) {
//!     while let Some(output) = policy.poll_output() {
//!         let Output::Action(action) = output else { continue }; // a Note: log it if you like
//!         match action {
//!             Action::Connect { url, .. } => log.push(format!("dial {url}")),
//!             Action::Send { command, .. } => log.push(format!("send {command:?}")), // add the token
//!             Action::Close { code, .. } => log.push(format!("close {code}")),
//!             Action::Abort { .. } => log.push("drop the socket".into()),
//!             Action::GiveUp(reason) => log.push(format!("stop: {reason}")),
//!             Action::Identify { shard, request } => if let Some(answer) = limiter.answer(now, shard, request) {
//!                 policy.handle_identify(now, answer);
//!             },
//!             Action::Probe(_) => {} // only a fleet that shares its probes asks
//!         }
//!     }
//! }
//! let (t, mut log) = (Timestamp::from_millis, Vec::new());
//! let mut limiter = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0));
//! let mut policy = Policy::new(PolicyConfig::default(), 0, 0x5eed, t(0)).unwrap();
//! carry_out(&mut policy, &mut limiter, t(0), &mut log);
//! let conn = policy.connection().unwrap();
//! for (ms, frame) in [(80, Event::Opened), (90, Event::Hello { heartbeat_interval_ms: 41_250 })] {
//!     policy.handle_event(t(ms), conn, frame); // frames the library parsed
//!     carry_out(&mut policy, &mut limiter, t(ms), &mut log);
//! }
//! assert_eq!(log, ["dial wss://gateway.discord.gg", "send Identify"]);
//! ```
//!
//! # Modules
//!
//! Each rule lives in one module; [`Policy`] only sequences them.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backoff;
mod close_code;
mod config;
mod decision;
mod event;
mod fleet;
mod fleet_recovery;
mod fleet_timers;
mod gateway_url;
mod heartbeat;
mod identify;
mod jitter;
mod output;
mod policy;
mod probe_share;
mod retry;
mod saved_session;
mod send_budget;
mod session;
mod state;
mod store_fallback;
mod time;

#[cfg(feature = "testing")]
pub mod testing;

pub use backoff::{Backoff, BackoffConfig, BackoffStrategy, MAX_DELAY_MS};
pub use close_code::{CloseAction, CloseCode};
pub use config::{
    AttemptRate, ConfigError, GiveUpLimits, IdentifyLoop, PolicyConfig, RateLimited, ResumeBreaker,
    ServerRequests, StabilityRule, Timeouts,
};
pub use decision::{
    ConnectFailure, Deadline, Decision, DecisionConfig, GiveUpReason, Recovery, Trigger, decide,
};
pub use event::{Dispatch, Event};
pub use fleet::{Fleet, FleetError};
pub use fleet_recovery::FleetRecovery;
pub use gateway_url::{GatewayUrl, MAX_URL_LEN, UrlError, check_resume_url};
pub use heartbeat::{MAX_HEARTBEAT_INTERVAL_MS, MIN_HEARTBEAT_INTERVAL_MS, ZombieRule};
pub use identify::{
    IDENTIFY_WINDOW_MS, IdentifyLimiter, IdentifyStats, SESSION_START_PERIOD_MS, SessionStartLimit,
};
pub use jitter::Jitter;
pub use output::{
    Action, Command, ConnectionId, IdentifyAnswer, IdentifyRequest, Note, Output, ProbeAnswer,
    ProbeRequest, ReconnectPlan,
};
pub use policy::{Handled, Policy};
pub use probe_share::{ProbeCoordinator, SharedRecovery};
pub use saved_session::{SavedSession, SavedSessions};
pub use send_budget::{SendError, SendLimit};
pub use session::{MAX_SESSION_ID_LEN, Session};
pub use state::{PolicyState, PolicyStats};
pub use store_fallback::{
    FallbackBuckets, Reconcile, STORE_WINDOW_MS, StoreFallback, StoreFallbackConfig,
    StoreFallbackStats, StoreOutput, StoreRequestId,
};
pub use time::Timestamp;
