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
//!   limit, shared by every shard of a bot;
//! - [`Policy`]: the per-shard state machine that combines them with
//!   heartbeats, zombie detection, deadlines, the resume breaker and the
//!   guard between attempts.
//!
//! # The contract
//!
//! - **No I/O, no clock, no threads.** Every call takes the current
//!   [`Timestamp`] (milliseconds on the driver's monotonic clock). A time
//!   earlier than one already seen is treated as that one: a clock that
//!   steps backwards never panics and never rewinds a deadline. Times past
//!   [`Timestamp::CEILING`] (2^63 ms) are read as it, so no deadline ever
//!   saturates.
//! - **Seeded randomness.** Jitter comes from a ChaCha8 stream seeded by the
//!   caller; the same seed and the same inputs give the same outputs.
//! - **No secrets.** The policy never sees the token: it asks for
//!   `Identify` or `Resume`, and the driver fills the token in.
//!
//! # The run loop
//!
//! After every input (an [`Event`] for the current connection, or
//! [`Policy::handle_timeout`] when the wake-up time is reached), drain
//! [`Policy::poll_output`] until it returns `None`, carrying out each
//! [`Output`] in order, then sleep until [`Policy::poll_timeout`].
//!
//! ```
//! use reconnect_policy::{
//!     Command, Dispatch, Event, IdentifyLimiter, Output, Policy, PolicyConfig,
//!     SessionStartLimit, Timestamp,
//! };
//!
//! let t = Timestamp::from_millis;
//! let mut limiter = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0));
//! let mut policy = Policy::new(PolicyConfig::default(), 0, 42, t(0)).unwrap();
//!
//! // The first attempt is due at once.
//! let Some(Output::Connect { connection, url, .. }) = policy.poll_output(t(0), &mut limiter) else {
//!     unreachable!()
//! };
//! assert_eq!(url, "wss://gateway.discord.gg");
//! let _ = policy.handle_event(t(80), connection, Event::Opened);
//! let _ = policy.handle_event(t(90), connection, Event::Hello { heartbeat_interval_ms: 41_250 });
//! assert_eq!(
//!     policy.poll_output(t(90), &mut limiter),
//!     Some(Output::Send { connection, command: Command::Identify }),
//! );
//! let ready = Dispatch::Ready {
//!     session_id: "abc".into(),
//!     resume_gateway_url: "wss://gateway-us-east1-b.discord.gg".into(),
//! };
//! let _ = policy.handle_event(t(200), connection, Event::Dispatch { seq: Some(1), event: ready });
//! assert!(policy.state().is_connected());
//!
//! // The link drops without a close frame: the policy plans a resume.
//! let _ = policy.handle_event(t(5_000), connection, Event::Closed { code: None });
//! let Some(Output::Plan(plan)) = policy.poll_output(t(5_000), &mut limiter) else { unreachable!() };
//! // Sleep until the plan's time, then connect to the resume URL.
//! let output = policy.poll_output(plan.at, &mut limiter);
//! assert!(matches!(output, Some(Output::Connect { url, .. }) if url == "wss://gateway-us-east1-b.discord.gg"));
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
mod gateway_url;
mod heartbeat;
mod identify;
mod jitter;
mod output;
mod policy;
mod send_budget;
mod session;
mod state;
mod time;

pub use backoff::{Backoff, BackoffConfig, BackoffStrategy, MAX_DELAY_MS};
pub use close_code::{CloseAction, CloseCode};
pub use config::{ConfigError, GiveUpLimits, PolicyConfig, ResumeBreaker, StabilityRule, Timeouts};
pub use decision::{
    ConnectFailure, Deadline, Decision, DecisionConfig, GiveUpReason, Recovery, Trigger, decide,
};
pub use event::{Dispatch, Event};
pub use gateway_url::{GatewayUrl, MAX_URL_LEN, UrlError, check_resume_url};
pub use heartbeat::{MAX_HEARTBEAT_INTERVAL_MS, MIN_HEARTBEAT_INTERVAL_MS, ZombieRule};
pub use identify::{
    IDENTIFY_WINDOW_MS, IdentifyGate, IdentifyLimiter, IdentifyStats, SESSION_START_PERIOD_MS,
    SessionStartLimit,
};
pub use output::{Command, ConnectionId, Output, ReconnectPlan};
pub use policy::{Handled, Policy};
pub use send_budget::SendLimit;
pub use session::{MAX_SESSION_ID_LEN, Session};
pub use state::{PolicyState, PolicyStats};
pub use time::Timestamp;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
