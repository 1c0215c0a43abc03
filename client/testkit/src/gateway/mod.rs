//! A loopback gateway: a real WebSocket server on `127.0.0.1` that speaks
//! the part of the Discord Gateway protocol a reconnecting client depends
//! on, and injects faults on command or on a schedule.
//!
//! It sends Hello, answers heartbeats, answers Identify with READY (a
//! `session_id` and a `resume_gateway_url`), answers Resume with a replay
//! of the events the client missed followed by RESUMED, streams dispatches
//! with sequence numbers to every live session (and keeps them for replays
//! while the session has no socket), and rate-limits Identify (op 9 `false`
//! when two come closer than the identify interval). A client closing with
//! 1000 or 1001 ends its session, as on the real gateway, so a client that
//! does so before a resume is caught. It counts the sockets attached to
//! each session at once, and everything else a test wants to assert on
//! ([`GatewayStats`]).
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use reconnect_testkit::gateway::{Fault, Gateway, GatewayConfig};
//!
//! let gateway = Gateway::start(GatewayConfig::default()).await?;
//! println!("listening on {}", gateway.url());
//! gateway.inject(Fault::Reconnect);
//! gateway.stop().await;
//! # Ok(())
//! # }
//! ```

mod connection;
pub mod dispatch_mix;
mod fault;
mod session;
mod stats;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use reconnect_policy::Timestamp;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

pub use fault::{Fault, ScheduledFault};
use session::Session;
pub use stats::{GatewayStats, ResumeRecord, SessionRecord};

use crate::clock::Clock;

/// The event names the gateway cycles through.
const EVENT_NAMES: [&str; 5] = [
    "MESSAGE_CREATE",
    "TYPING_START",
    "PRESENCE_UPDATE",
    "MESSAGE_REACTION_ADD",
    "GUILD_MEMBER_UPDATE",
];
/// The name of the event no client knows.
pub const UNKNOWN_EVENT_NAME: &str = "LOOPBACK_UNKNOWN_EVENT";

/// How the loopback gateway behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The `heartbeat_interval` Hello announces, in ms.
    pub heartbeat_interval_ms: u64,
    /// One dispatch per live session every this many ms (0: none).
    pub event_interval_ms: u64,
    /// The token Identify and Resume must carry (closed with 4004
    /// otherwise); `None` accepts any.
    pub token: Option<String>,
    /// READY's `resume_gateway_url`; `None` is this gateway's own URL.
    pub resume_url: Option<String>,
    /// The shortest time between two accepted Identify payloads of one
    /// bucket, in ms; one that comes sooner gets op 9 `false` (and is
    /// counted in [`GatewayStats::identifies_rate_limited`]).
    pub identify_interval_ms: u64,
    /// The identify buckets (`max_concurrency`): a shard identifies in
    /// bucket `shard_id % max_concurrency`, and the buckets are limited
    /// apart. 0 counts as 1.
    pub max_concurrency: u16,
    /// How long a session without a socket stays resumable, in ms.
    pub session_timeout_ms: u64,
    /// Events kept per session for replays.
    pub max_log: usize,
    /// Every n-th event gets a name no client knows (0: never).
    pub unknown_event_every: u64,
    /// Filler bytes in each event's data.
    pub event_padding: usize,
    /// Faults injected at set times.
    pub schedule: Vec<ScheduledFault>,
    /// Close with 4002 before Hello when the upgrade request has no
    /// `User-Agent`, as some gateway servers do by default.
    pub require_user_agent: bool,
    /// Give each dispatch a body shaped like the real event's (ids, users,
    /// text, timestamps; see [`dispatch_mix`]) instead of a tiny one.
    pub realistic_events: bool,
    /// The send limit: payloads a client may send on one connection in any
    /// `send_window_ms` (every payload counts, heartbeats too); one more
    /// closes the connection with 4008 (counted in
    /// [`GatewayStats::send_limit_exceeded`]). 0: no limit.
    pub send_limit: u32,
    /// The send limit's window, in ms.
    pub send_window_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 41_250,
            event_interval_ms: 1_000,
            token: None,
            resume_url: None,
            identify_interval_ms: 5_000,
            max_concurrency: 1,
            session_timeout_ms: 120_000,
            max_log: 10_000,
            unknown_event_every: 0,
            event_padding: 0,
            schedule: Vec::new(),
            require_user_agent: false,
            realistic_events: false,
            send_limit: 120,
            send_window_ms: 60_000,
        }
    }
}

/// A rejection of upgrades in force.
#[derive(Clone, Debug)]
struct Rejection {
    status: u16,
    retry_after: Option<String>,
    times: Option<u32>,
}

/// The gateway's modes.
#[derive(Debug)]
struct Modes {
    acks: bool,
    stall: bool,
    refuse: bool,
    reject: Option<Rejection>,
    drop_after_ms: Option<u64>,
    /// Close every Identify with this code before READY (a token a server
    /// refuses without 4004, a handshake it rejects).
    reject_identify: Option<u16>,
}

/// Everything behind the lock.
#[derive(Debug)]
struct State {
    sessions: BTreeMap<String, Session>,
    next_session: u64,
    /// The last accepted Identify of each bucket.
    last_identify: BTreeMap<u64, Timestamp>,
    modes: Modes,
    stats: GatewayStats,
    events: u64,
    /// Overrides the configured resume URL.
    resume_url: Option<String>,
}

/// What the gateway's tasks share.
#[derive(Debug)]
struct Shared {
    clock: Clock,
    url: String,
    config: GatewayConfig,
    state: Mutex<State>,
    faults: broadcast::Sender<Fault>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// READY's resume URL: the one set last, else the configured one,
    /// else this gateway's own.
    fn resume_url(&self, state: &State) -> String {
        state
            .resume_url
            .clone()
            .or_else(|| self.config.resume_url.clone())
            .unwrap_or_else(|| self.url.clone())
    }

    fn inject(&self, fault: Fault) {
        info!(?fault, "injecting");
        let mut state = self.lock();
        state.stats.faults += 1;
        match fault {
            Fault::Acks { on } => state.modes.acks = on,
            Fault::Stall { on } => state.modes.stall = on,
            Fault::Refuse { on } => state.modes.refuse = on,
            Fault::Reject {
                status,
                retry_after,
                times,
            } => {
                state.modes.reject = (status != 0).then_some(Rejection {
                    status,
                    retry_after,
                    times,
                });
            }
            Fault::DropAfterEstablished { after_ms } => state.modes.drop_after_ms = after_ms,
            Fault::RejectIdentify { code } => state.modes.reject_identify = code,
            Fault::InvalidateSessions => {
                for session in state.sessions.values_mut() {
                    session.invalid = true;
                }
            }
            connection_fault => {
                drop(state);
                let _ = self.faults.send(connection_fault);
            }
        }
    }

    /// Adds one event to every live session.
    fn tick(&self) {
        let now = self.now();
        let mut state = self.lock();
        state.events += 1;
        let n = state.events;
        let every = self.config.unknown_event_every;
        let name = if every > 0 && n.is_multiple_of(every) {
            UNKNOWN_EVENT_NAME
        } else {
            EVENT_NAMES[usize::try_from(n % 5).unwrap_or(0)]
        };
        let padding = "x".repeat(self.config.event_padding);
        let timeout = self.config.session_timeout_ms;
        let mut generated = 0;
        for session in state.sessions.values_mut() {
            if session.alive(now, timeout) {
                let seq = session.last_seq().saturating_add(1);
                let body = if self.config.realistic_events {
                    let mut body = dispatch_mix::realistic_body(name, n);
                    body["seq"] = json!(seq);
                    body
                } else {
                    json!({"seq": seq, "session": session.id, "pad": padding})
                };
                session.push(name, &body);
                generated += 1;
            }
        }
        state.stats.events_generated += generated;
    }
}

/// A running loopback gateway. Dropping it stops it.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Gateway {
    /// Starts a gateway on `127.0.0.1`, on a port the system picks.
    ///
    /// # Errors
    ///
    /// The listener could not be bound.
    pub async fn start(config: GatewayConfig) -> io::Result<Self> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a gateway on `addr`, which must be a loopback address.
    ///
    /// # Errors
    ///
    /// `addr` is not loopback, or the listener could not be bound.
    pub async fn bind(addr: SocketAddr, config: GatewayConfig) -> io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the loopback gateway only listens on loopback addresses",
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (faults, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            clock: Clock::start(),
            url: format!("ws://{addr}"),
            state: Mutex::new(State {
                sessions: BTreeMap::new(),
                next_session: 0,
                last_identify: BTreeMap::new(),
                modes: Modes {
                    acks: true,
                    stall: false,
                    refuse: false,
                    reject: None,
                    drop_after_ms: None,
                    reject_identify: None,
                },
                stats: GatewayStats::default(),
                events: 0,
                resume_url: None,
            }),
            faults,
            config,
        });
        let mut tasks = vec![tokio::spawn(accept(listener, Arc::clone(&shared)))];
        if shared.config.event_interval_ms > 0 {
            tasks.push(tokio::spawn(ticker(Arc::clone(&shared))));
        }
        if !shared.config.schedule.is_empty() {
            tasks.push(tokio::spawn(schedule(Arc::clone(&shared))));
        }
        info!(url = %shared.url, "loopback gateway listening");
        Ok(Self {
            addr,
            shared,
            tasks,
        })
    }

    /// `ws://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// The address it listens on.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gateway's clock (its timestamps in [`GatewayStats`] are on it).
    #[must_use]
    pub fn clock(&self) -> Clock {
        self.shared.clock
    }

    /// Changes the `resume_gateway_url` of the READYs sent from now on
    /// (to put a fault proxy on the resume path too, say).
    pub fn set_resume_url(&self, url: impl Into<String>) {
        self.shared.lock().resume_url = Some(url.into());
    }

    /// Injects a fault now.
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// What it saw so far.
    #[must_use]
    pub fn stats(&self) -> GatewayStats {
        let state = self.shared.lock();
        let mut stats = state.stats.clone();
        stats.max_sockets_per_session = state
            .sessions
            .values()
            .map(Session::max_sockets)
            .max()
            .unwrap_or(0);
        stats
    }

    /// Every session so far, oldest first.
    #[must_use]
    pub fn sessions(&self) -> Vec<SessionRecord> {
        let state = self.shared.lock();
        let mut sessions: Vec<_> = state.sessions.values().map(Session::record).collect();
        sessions.sort_by_key(|s| {
            s.id.rsplit('-')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        });
        sessions
    }

    /// Stops listening and drops every socket.
    pub async fn stop(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Accepts connections; each gets a task, and all die with this one.
async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut sockets = JoinSet::new();
    let mut next_id = 0_u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    next_id += 1;
                    debug!(%peer, connection = next_id, "accepted");
                    sockets.spawn(connection::serve(Arc::clone(&shared), tcp, next_id));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = sockets.join_next(), if !sockets.is_empty() => {}
        }
    }
}

/// Generates the event stream.
async fn ticker(shared: Arc<Shared>) {
    let mut interval =
        tokio::time::interval(Duration::from_millis(shared.config.event_interval_ms));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        shared.tick();
    }
}

/// Injects the scheduled faults.
async fn schedule(shared: Arc<Shared>) {
    let mut plan = shared.config.schedule.clone();
    plan.sort_by_key(|f| f.after_ms);
    for item in plan {
        let at = shared
            .clock
            .instant_at(Timestamp::from_millis(item.after_ms));
        tokio::time::sleep_until(at).await;
        shared.inject(item.fault);
    }
}
