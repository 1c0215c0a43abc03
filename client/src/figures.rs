//! The figures a user can read while the client runs: the policy's own
//! [`PolicyStats`], the client's counts of what only it sees (frames it
//! could not read, events delivered, sockets open), and the uptime of the
//! current connection.
//!
//! The driver publishes a snapshot after every step; [`Client::figures`]
//! reads the latest one and brings the uptime up to date.
//!
//! [`Client::figures`]: crate::Client::figures

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reconnect_policy::{Policy, PolicyState, PolicyStats, Timestamp};

use crate::clock::Clock;
use crate::identify_store::{IdentifyStoreFigures, StoreStatus};

/// A snapshot of the client's figures: the policy's own counters, as the
/// policy keeps them, and what only the client can count.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Figures {
    /// Where the policy is.
    pub state: PolicyState,
    /// The policy's counters, under the policy's names: connection
    /// attempts, resumes and identifies sent, resumes that succeeded,
    /// reconnects planned, zombies, heartbeats and their ACKs, dispatches
    /// dropped as duplicates, refused resume URLs, the last close code, ...
    pub policy: PolicyStats,
    /// How long the current socket has been open; `None` without one.
    /// Starts again from zero with every new connection.
    pub uptime: Option<Duration>,
    /// Round trip of the last acknowledged heartbeat.
    pub heartbeat_latency: Option<Duration>,
    /// Dispatches handed to the user.
    pub events_delivered: u64,
    /// Dispatches that arrived outside a session (before Identify or
    /// Resume was sent) and were not delivered.
    pub dispatches_ignored: u64,
    /// Text frames that were not valid gateway payloads.
    pub malformed_frames: u64,
    /// Frames over the size limit (each one ends its connection).
    pub oversized_frames: u64,
    /// Binary frames (the client asks for JSON text).
    pub binary_frames: u64,
    /// WebSocket protocol violations by the peer (each one ends its
    /// connection).
    pub protocol_errors: u64,
    /// Payloads with an opcode the client does not know.
    pub unknown_opcodes: u64,
    /// Dispatches with an event name the client does not know (still
    /// delivered).
    pub unknown_events: u64,
    /// The most sockets this client ever held open at once (dialling
    /// included). 1 in a correct client.
    pub max_sockets_open: u64,
    /// How the bot's identify limiter shared across processes is doing
    /// (whether this process answers from its local share because the
    /// store is away, and how often it was); `None` when the limiter lives
    /// in this process.
    pub identify_store: Option<IdentifyStoreFigures>,
}

impl Figures {
    /// Identify commands sent after the first: each one started a new
    /// session because the old one could not be resumed (a shard started
    /// from a saved session that resumed has sent none).
    #[must_use]
    pub const fn reidentifies(&self) -> u64 {
        self.policy.identifies_sent.saturating_sub(1)
    }
}

/// What the driver counts itself (the rest comes from the policy).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) events_delivered: u64,
    pub(crate) dispatches_ignored: u64,
    pub(crate) malformed_frames: u64,
    pub(crate) oversized_frames: u64,
    pub(crate) binary_frames: u64,
    pub(crate) protocol_errors: u64,
    pub(crate) unknown_opcodes: u64,
    pub(crate) unknown_events: u64,
}

/// Whether the `count`-th occurrence of something is worth a warning: the
/// 1st, 2nd, 4th, 8th, ... The others are logged at debug level, so a
/// gateway flooding bad frames cannot flood the logs.
pub(crate) const fn noteworthy(count: u64) -> bool {
    count.is_power_of_two()
}

/// Counts sockets alive at once. Each open or dialling socket holds a
/// [`SocketTicket`]; the ticket's drop is the socket's drop.
#[derive(Debug, Default)]
pub(crate) struct SocketGauge {
    open: AtomicU64,
    max: AtomicU64,
}

impl SocketGauge {
    /// Takes a ticket for a new socket.
    pub(crate) fn ticket(self: &Arc<Self>) -> SocketTicket {
        let open = self.open.fetch_add(1, Ordering::SeqCst).saturating_add(1);
        self.max.fetch_max(open, Ordering::SeqCst);
        SocketTicket(Arc::clone(self))
    }

    /// The most sockets alive at once so far.
    pub(crate) fn max(&self) -> u64 {
        self.max.load(Ordering::SeqCst)
    }
}

/// Proof that a socket is alive; dropped with it.
#[derive(Debug)]
pub(crate) struct SocketTicket(Arc<SocketGauge>);

impl Drop for SocketTicket {
    fn drop(&mut self) {
        // Every ticket was counted by `ticket()` before it existed, so the
        // count is at least one here and the subtraction cannot wrap.
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The latest snapshot, shared between the driver and the handle.
#[derive(Debug)]
pub(crate) struct Published {
    clock: Clock,
    inner: Mutex<(Figures, Timestamp)>,
    /// The shared identify limiter's counters, read live.
    store: Option<Arc<StoreStatus>>,
}

impl Published {
    /// Starts with the figures of a policy that has not run yet.
    pub(crate) fn new(clock: Clock, policy: &Policy, gauge: &SocketGauge) -> Self {
        let now = clock.now();
        Self {
            clock,
            inner: Mutex::new((
                snapshot(now, policy, &Counters::default(), gauge, false),
                now,
            )),
            store: None,
        }
    }

    /// Reports the counters of the identify store the shards ask.
    pub(crate) fn with_identify_store(mut self, store: Option<Arc<StoreStatus>>) -> Self {
        self.store = store;
        self
    }

    /// Publishes the figures as of `now`; `open`: whether the client holds
    /// an open socket.
    pub(crate) fn publish(
        &self,
        now: Timestamp,
        policy: &Policy,
        counters: &Counters,
        gauge: &SocketGauge,
        open: bool,
    ) {
        let figures = snapshot(now, policy, counters, gauge, open);
        *self.inner.lock().unwrap_or_else(PoisonError::into_inner) = (figures, now);
    }

    /// The latest figures, with the uptime brought up to now.
    pub(crate) fn read(&self) -> Figures {
        let (mut figures, at) = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let since = self.clock.now().saturating_since(at);
        figures.uptime = figures
            .uptime
            .map(|u| u.saturating_add(Duration::from_millis(since)));
        figures.identify_store = self.store.as_ref().map(|store| store.figures());
        figures
    }
}

fn snapshot(
    now: Timestamp,
    policy: &Policy,
    counters: &Counters,
    gauge: &SocketGauge,
    open: bool,
) -> Figures {
    Figures {
        state: policy.state(),
        policy: policy.stats(),
        // The policy keeps its open time after a shutdown; the client only
        // reports an uptime while it holds the socket.
        uptime: policy
            .uptime_ms(now)
            .filter(|_| open)
            .map(Duration::from_millis),
        heartbeat_latency: policy.heartbeat_latency_ms().map(Duration::from_millis),
        events_delivered: counters.events_delivered,
        dispatches_ignored: counters.dispatches_ignored,
        malformed_frames: counters.malformed_frames,
        oversized_frames: counters.oversized_frames,
        binary_frames: counters.binary_frames,
        protocol_errors: counters.protocol_errors,
        unknown_opcodes: counters.unknown_opcodes,
        unknown_events: counters.unknown_events,
        max_sockets_open: gauge.max(),
        identify_store: None,
    }
}

#[cfg(test)]
mod tests {
    use reconnect_policy::{
        Action, Event, IdentifyLimiter, Output, PolicyConfig, SessionStartLimit,
    };

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn uptime_runs_on_between_snapshots_and_only_with_a_socket() {
        let clock = Clock::start();
        let mut limiter = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, clock.now());
        let mut policy = Policy::new(PolicyConfig::default(), 0, 1, clock.now()).unwrap();
        let Some(Output::Action(Action::Identify { shard, request })) = policy.poll_output() else {
            panic!("the first output asks for a start slot");
        };
        let answer = limiter.answer(clock.now(), shard, request).unwrap();
        policy.handle_identify(clock.now(), answer);
        let Some(Output::Action(Action::Connect { connection, .. })) = policy.poll_output() else {
            panic!("then comes a Connect");
        };
        let gauge = SocketGauge::default();
        let published = Published::new(clock, &policy, &gauge);
        assert_eq!(published.read().uptime, None);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let _ = policy.handle_event(clock.now(), connection, Event::Opened);
        published.publish(clock.now(), &policy, &Counters::default(), &gauge, true);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(published.read().uptime, Some(Duration::from_millis(1_500)));
        assert_eq!(published.read().policy.attempts, 1);
        published.publish(clock.now(), &policy, &Counters::default(), &gauge, false);
        assert_eq!(published.read().uptime, None);
    }

    #[test]
    fn warnings_thin_out_as_counts_grow() {
        let warned: Vec<u64> = (1..=100).filter(|&n| noteworthy(n)).collect();
        assert_eq!(warned, [1, 2, 4, 8, 16, 32, 64]);
    }

    #[test]
    fn the_gauge_keeps_the_peak() {
        let gauge = Arc::new(SocketGauge::default());
        let a = gauge.ticket();
        drop(a);
        let b = gauge.ticket();
        assert_eq!(gauge.max(), 1);
        let c = gauge.ticket();
        assert_eq!(gauge.max(), 2);
        drop((b, c));
        assert_eq!(gauge.max(), 2);
    }
}
