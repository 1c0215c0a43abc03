//! The policy's cost per event on the hot path, driven as a real driver
//! drives it: every input is followed by draining `poll_output` and reading
//! `poll_timeout` (the run loop of the crate documentation).
//!
//! - `policy/dispatch`: one op 0 dispatch (`Dispatch::Other`, the next
//!   sequence number) on an established, stable session. The clock stays
//!   between two heartbeats, so nothing but the dispatch is measured.
//! - `policy/heartbeat_ack`: the heartbeat timer firing (`handle_timeout`
//!   at the deadline, `poll_output` yielding the heartbeat `Send`), then its
//!   op 11 ACK 40 ms later.
//! - `decision/close_code/<code>`: [`decide`] for a close code received
//!   from the wire (`CloseCode::from_u16`, classification, decision), for a
//!   resumable (1006), a re-identify (4007), a fatal (4004) and an unknown
//!   (4999) code.
//! - `policy/reconnect_cycle`: the server closes with 4000 → `Plan` → the
//!   wait (the clock jumps to the plan's time) → `Connect` → `Opened` →
//!   Hello → `Resume` sent → RESUMED → connected again. The connection never
//!   lives long enough to prove stable, so this is a flapping link: after
//!   the first cycles the backoff sits at its cap (the delay costs the same
//!   at any retry).
//!
//! Each benchmark keeps one long-lived policy (warmed: its output queue has
//! grown, the session is established) and feeds it the next event; the
//! setup is never timed. After each benchmark the policy's counters are
//! checked, so a run (or `--test`) also proves that the loop did what it
//! claims (no duplicate, no zombie, every resume answered).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use reconnect_benches::{criterion, measuring, median_ns};
use reconnect_policy::{
    CloseCode, Command, ConnectionId, DecisionConfig, Dispatch, Event, Handled, IdentifyLimiter,
    Output, Policy, PolicyConfig, PolicyState, SessionStartLimit, Timestamp, Trigger, decide,
};

/// The heartbeat interval the gateway announces in Hello.
const INTERVAL_MS: u64 = 41_250;
/// Round trip to the gateway.
const RTT_MS: u64 = 40;
/// The seed of every policy's random stream.
const SEED: u64 = 0x5eed;
/// The close codes whose decision is measured: resumable, re-identify,
/// fatal, unknown.
const CLOSE_CODES: [u16; 4] = [1006, 4007, 4004, 4999];
/// The code the server closes with in the reconnect cycle (resumable).
const RECONNECT_CODE: u16 = 4000;

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// How the policy took the last event, and what the outputs of the drain
/// after it asked for.
#[derive(Clone, Copy, Debug, Default)]
struct Drained {
    handled: Option<Handled>,
    heartbeats: u32,
    identifies: u32,
    resumes: u32,
}

/// One shard: a policy, the bot's identify limiter, the driver's clock.
struct Shard {
    policy: Policy,
    gate: IdentifyLimiter,
    /// The connection named by the last `Connect`.
    conn: ConnectionId,
    /// The driver's clock, in ms.
    now: u64,
    /// The last sequence number the gateway sent.
    seq: u64,
}

impl Shard {
    /// A default policy whose first connection has identified, received
    /// READY and stayed up past the stability window, every heartbeat on the
    /// way answered. The clock is then between two heartbeats.
    fn established() -> Self {
        let policy = Policy::new(PolicyConfig::default(), 0, SEED, t(0))
            .expect("the default configuration is valid");
        let mut shard = Self {
            policy,
            gate: IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0)),
            conn: ConnectionId::default(),
            now: 0,
            seq: 0,
        };
        shard.drain(0);
        assert_eq!(
            shard.event(50, Event::Opened).handled,
            Some(Handled::Accepted)
        );
        let sent = shard.event(60, hello());
        assert_eq!(sent.identifies, 1, "Identify is sent after Hello");
        shard.seq = 1;
        let ready = Dispatch::Ready {
            session_id: "benchmark-session".to_owned(),
            resume_gateway_url: "wss://gateway-us-east1-b.discord.gg".to_owned(),
        };
        let ready = Event::Dispatch {
            seq: Some(1),
            event: ready,
        };
        assert_eq!(shard.event(200, ready).handled, Some(Handled::Accepted));
        let stable_at = 200 + shard.policy.config().stability.window_ms + 1;
        shard.run_until(stable_at);
        assert_eq!(
            shard.policy.state(),
            PolicyState::Connected { stable: true }
        );
        shard
    }

    /// Drains every output at `at`, carrying each out as a driver would
    /// (recording the connection a `Connect` names, handing the rest to
    /// `black_box`), then reads the next wake-up.
    fn drain(&mut self, at: u64) -> Drained {
        let mut drained = Drained::default();
        while let Some(output) = self.policy.poll_output(t(at), &mut self.gate) {
            match &output {
                Output::Connect { connection, .. } => self.conn = *connection,
                Output::Send { command, .. } => match command {
                    Command::Heartbeat { .. } => drained.heartbeats += 1,
                    Command::Identify => drained.identifies += 1,
                    Command::Resume { .. } => drained.resumes += 1,
                },
                _ => {}
            }
            black_box(output);
        }
        black_box(self.policy.poll_timeout());
        drained
    }

    /// Feeds `event` about the current connection at `at`, then drains.
    fn event(&mut self, at: u64, event: Event) -> Drained {
        self.now = at;
        let handled = self.policy.handle_event(t(at), self.conn, event);
        Drained {
            handled: Some(handled),
            ..self.drain(at)
        }
    }

    /// Wakes the policy at every instant it asks for up to `end`, answering
    /// each heartbeat one round trip later.
    fn run_until(&mut self, end: u64) {
        while let Some(at) = self.policy.poll_timeout().map(Timestamp::as_millis) {
            if at > end {
                break;
            }
            self.now = at.max(self.now);
            self.policy.handle_timeout(t(self.now));
            if self.drain(self.now).heartbeats > 0 {
                self.event(self.now + RTT_MS, Event::HeartbeatAck);
            }
        }
        self.now = end.max(self.now);
        self.policy.handle_timeout(t(self.now));
        self.drain(self.now);
    }

    /// The next dispatch from the gateway.
    fn dispatch(&mut self, at: u64) -> Drained {
        self.seq += 1;
        let event = Event::Dispatch {
            seq: Some(self.seq),
            event: Dispatch::Other,
        };
        self.event(at, event)
    }

    /// Sleeps until the heartbeat is due, sends it, and takes its ACK.
    fn heartbeat(&mut self) -> Drained {
        let at = self
            .policy
            .poll_timeout()
            .expect("a connected policy has a heartbeat to send")
            .as_millis();
        self.now = at;
        self.policy.handle_timeout(t(at));
        let sent = self.drain(at);
        self.event(at + RTT_MS, Event::HeartbeatAck);
        sent
    }

    /// The server closes with a resumable code; the policy plans, waits,
    /// reconnects and resumes; the gateway answers RESUMED.
    fn reconnect(&mut self) -> Drained {
        let closed = Event::Closed {
            code: Some(RECONNECT_CODE),
        };
        self.event(self.now, closed);
        let at = self
            .policy
            .poll_timeout()
            .expect("a planned reconnect has a time")
            .as_millis();
        self.now = at;
        self.policy.handle_timeout(t(at));
        self.drain(at);
        self.event(at + 2 * RTT_MS, Event::Opened);
        let sent = self.event(at + 3 * RTT_MS, hello());
        self.seq += 1;
        let resumed = Event::Dispatch {
            seq: Some(self.seq),
            event: Dispatch::Resumed,
        };
        self.event(at + 5 * RTT_MS, resumed);
        // The link drops again shortly after.
        self.now = at + 6 * RTT_MS;
        sent
    }
}

fn hello() -> Event {
    Event::Hello {
        heartbeat_interval_ms: INTERVAL_MS,
    }
}

fn main() {
    let mut c = criterion();
    hot_path(&mut c);
    decisions(&mut c);
    c.final_summary();
    if measuring() {
        print_summary();
    }
}

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let mut shard = Shard::established();
    let now = shard.now;
    assert!(
        shard.policy.poll_timeout().is_some_and(|at| at > t(now)),
        "the clock is between two heartbeats"
    );
    group.bench_function("dispatch", |b| b.iter(|| shard.dispatch(black_box(now))));
    let stats = *shard.policy.stats();
    assert_eq!(shard.policy.last_seq(), Some(shard.seq));
    assert_eq!(stats.duplicate_dispatches, 0);
    assert_eq!(stats.ignored_events, 0);
    assert!(shard.policy.state().is_connected());

    let mut shard = Shard::established();
    let before = *shard.policy.stats();
    group.bench_function("heartbeat_ack", |b| b.iter(|| shard.heartbeat()));
    let stats = *shard.policy.stats();
    assert_eq!(
        stats.heartbeats_sent - before.heartbeats_sent,
        stats.heartbeat_acks - before.heartbeat_acks,
        "every heartbeat was sent and acknowledged"
    );
    assert_eq!(stats.zombies, 0);
    assert_eq!(stats.ignored_events, 0);
    assert!(shard.policy.state().is_connected());

    let mut shard = Shard::established();
    // A few cycles first: the backoff reaches its cap, the queue its size.
    for _ in 0..16 {
        assert_eq!(shard.reconnect().resumes, 1);
    }
    group.bench_function("reconnect_cycle", |b| b.iter(|| shard.reconnect()));
    let stats = *shard.policy.stats();
    assert_eq!(stats.resumes_sent, stats.resumed, "every resume succeeded");
    assert_eq!(stats.reconnects, stats.resumed);
    assert_eq!(stats.identifies_sent, 1, "the session was never dropped");
    assert_eq!(stats.zombies, 0);
    assert!(shard.policy.state().is_connected());

    group.finish();
}

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    // Drawn from only for op 9's random wait, never for a close code.
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    for code in CLOSE_CODES {
        group.bench_with_input(BenchmarkId::new("close_code", code), &code, |b, &code| {
            b.iter(|| {
                let trigger = Trigger::Closed {
                    code: Some(CloseCode::from_u16(black_box(code))),
                };
                decide(trigger, black_box(true), &DecisionConfig::DEFAULT, &mut rng)
            });
        });
    }
    group.finish();
}

/// The medians criterion saved in this run, one line each.
fn print_summary() {
    let show =
        |id: &str| median_ns(id).map_or_else(|| "n/a".to_owned(), |ns| format!("{ns:.1} ns"));
    println!();
    println!("Policy hot path, medians of this run:");
    println!(
        "  one dispatch (target < 50 ns)      {}",
        show("policy/dispatch")
    );
    println!(
        "  heartbeat timer + send + ACK       {}",
        show("policy/heartbeat_ack")
    );
    for code in CLOSE_CODES {
        let action = CloseCode::from_u16(code).action();
        println!(
            "  decide(close {code}) → {:<18} {}",
            format!("{action:?}"),
            show(&format!("decision/close_code/{code}"))
        );
    }
    println!(
        "  whole reconnect cycle (resume)     {}",
        show("policy/reconnect_cycle")
    );
}
