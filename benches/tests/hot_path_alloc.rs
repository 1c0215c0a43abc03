//! Proves that the policy's hot path never touches the heap.
//!
//! A policy is warmed into an established, stable session (its first
//! outputs may allocate, e.g. the output queue growing once); then
//! thousands of dispatches, heartbeat timers with their `Send` and ACK, and
//! op 1 heartbeat requests run under a per-thread allocation counter
//! (`allocation-counter`, which installs itself as the global allocator of
//! this test binary), and the count must be exactly zero. A whole reconnect
//! cycle is allowed to allocate; how much it does is printed (run with
//! `-- --nocapture` to see it), not asserted.

use std::hint::black_box;

use allocation_counter::{AllocationInfo, measure};
use reconnect_policy::{
    Command, ConnectionId, Dispatch, Event, Handled, IdentifyLimiter, Output, Policy, PolicyConfig,
    PolicyState, SessionStartLimit, Timestamp,
};

/// The heartbeat interval the gateway announces in Hello.
const INTERVAL_MS: u64 = 41_250;
/// Round trip to the gateway.
const RTT_MS: u64 = 40;
/// Heartbeat intervals measured; each has its dispatches, its heartbeat
/// and ACK, and one op 1.
const ROUNDS: u64 = 500;
/// Dispatches per heartbeat interval, 10 ms apart.
const DISPATCHES_PER_ROUND: u64 = 200;
/// Reconnect cycles measured.
const CYCLES: u64 = 100;

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// What the outputs of one drain asked for.
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
    conn: ConnectionId,
    now: u64,
    seq: u64,
}

impl Shard {
    /// A default policy that has identified, received READY and stayed up
    /// past the stability window, every heartbeat on the way answered.
    fn established() -> Self {
        let policy = Policy::new(PolicyConfig::default(), 0, 0x5eed, t(0))
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
        assert_eq!(shard.event(60, hello()).identifies, 1);
        shard.seq = 1;
        let ready = Event::Dispatch {
            seq: Some(1),
            event: Dispatch::Ready {
                session_id: "hot-path-session".to_owned(),
                resume_gateway_url: "wss://gateway-us-east1-b.discord.gg".to_owned(),
            },
        };
        assert_eq!(shard.event(200, ready).handled, Some(Handled::Accepted));
        let stable_at = 200 + shard.policy.config().stability.window_ms + 1;
        while let Some(at) = shard.policy.poll_timeout().map(Timestamp::as_millis) {
            if at > stable_at {
                break;
            }
            shard.heartbeat();
        }
        shard.now = stable_at.max(shard.now);
        shard.policy.handle_timeout(t(shard.now));
        shard.drain(shard.now);
        assert_eq!(
            shard.policy.state(),
            PolicyState::Connected { stable: true }
        );
        shard
    }

    /// Drains every output at `at`, as a driver does after each input.
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

    /// The next dispatch, `after_ms` after the last input.
    fn dispatch(&mut self, after_ms: u64) -> Drained {
        self.seq += 1;
        let event = Event::Dispatch {
            seq: Some(self.seq),
            event: Dispatch::Other,
        };
        self.event(self.now + after_ms, event)
    }

    /// Sleeps until the policy's next wake-up (the heartbeat), and answers
    /// the heartbeat it sends with an ACK one round trip later.
    fn heartbeat(&mut self) -> Drained {
        let at = self
            .policy
            .poll_timeout()
            .expect("a connected policy has a heartbeat to send")
            .as_millis();
        self.now = at.max(self.now);
        self.policy.handle_timeout(t(self.now));
        let sent = self.drain(self.now);
        if sent.heartbeats > 0 {
            let acked = self.event(self.now + RTT_MS, Event::HeartbeatAck);
            assert_eq!(acked.handled, Some(Handled::Accepted));
        }
        sent
    }

    /// op 1 from the server and, when the policy answers it (its send
    /// budget allows one reply per window), the gateway's ACK of the
    /// heartbeat it sent.
    fn heartbeat_request(&mut self) -> Drained {
        let sent = self.event(self.now + 5, Event::HeartbeatRequest);
        if sent.heartbeats > 0 {
            let _ = self.event(self.now + RTT_MS, Event::HeartbeatAck);
        }
        sent
    }

    /// The server closes with 4000; the policy plans, waits, reconnects
    /// and resumes; the gateway answers RESUMED.
    fn reconnect(&mut self) -> Drained {
        self.event(self.now, Event::Closed { code: Some(4000) });
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
        self.now = at + 6 * RTT_MS;
        sent
    }
}

fn hello() -> Event {
    Event::Hello {
        heartbeat_interval_ms: INTERVAL_MS,
    }
}

/// A zero count must mean "no allocation", not "no counter".
#[test]
fn the_counter_counts_this_threads_allocations() {
    let info = measure(|| {
        black_box(Box::new(7_u64));
    });
    assert_eq!(info.count_total, 1);
}

#[test]
fn dispatches_heartbeats_and_heartbeat_requests_never_allocate() {
    let mut shard = Shard::established();
    // One round unmeasured: whatever grows on first use has grown.
    shard.dispatch(10);
    shard.heartbeat();
    shard.heartbeat_request();
    let before = *shard.policy.stats();
    let seq_before = shard.seq;

    let mut dispatched = 0_u64;
    let mut beats = 0_u64;
    let mut requested = 0_u64;
    let info = measure(|| {
        for _ in 0..ROUNDS {
            for _ in 0..DISPATCHES_PER_ROUND {
                if shard.dispatch(10).handled == Some(Handled::Accepted) {
                    dispatched += 1;
                }
            }
            beats += u64::from(shard.heartbeat().heartbeats);
            requested += u64::from(shard.heartbeat_request().heartbeats);
        }
    });
    assert_eq!(info.count_total, 0, "the hot path allocated: {info:?}");

    // And the work measured really happened.
    let stats = *shard.policy.stats();
    assert_eq!(dispatched, ROUNDS * DISPATCHES_PER_ROUND);
    assert_eq!(shard.policy.last_seq(), Some(seq_before + dispatched));
    assert_eq!(beats, ROUNDS, "one heartbeat per timer");
    // One op 1 per heartbeat interval, and the budget allows one reply per
    // 60 s: both the answer and the refusal ran.
    let refused = stats.heartbeat_requests_refused - before.heartbeat_requests_refused;
    assert!(
        requested > 0 && refused > 0,
        "{requested} answered, {refused} refused"
    );
    assert_eq!(requested + refused, ROUNDS, "each op 1 answered or refused");
    assert_eq!(
        stats.heartbeats_sent - before.heartbeats_sent,
        beats + requested
    );
    assert_eq!(stats.heartbeat_acks - before.heartbeat_acks, ROUNDS);
    assert_eq!(stats.zombies, 0);
    assert_eq!(stats.duplicate_dispatches, 0);
    assert_eq!(
        shard.policy.state(),
        PolicyState::Connected { stable: true }
    );
}

#[test]
fn a_reconnect_cycle_reports_its_allocations() {
    let mut shard = Shard::established();
    let first = measure(|| {
        assert_eq!(shard.reconnect().resumes, 1);
    });
    let mut resumes = 0_u64;
    let steady = measure(|| {
        for _ in 0..CYCLES {
            resumes += u64::from(shard.reconnect().resumes);
        }
    });
    let stats = *shard.policy.stats();
    assert_eq!(resumes, CYCLES);
    assert_eq!(stats.resumed, CYCLES + 1, "every resume was answered");
    assert_eq!(stats.identifies_sent, 1, "the session was never dropped");
    assert!(shard.policy.state().is_connected());

    let per_cycle = |info: AllocationInfo, cycles: u64| {
        format!(
            "{:.2} allocations, {:.1} bytes, {:.2} still live",
            info.count_total as f64 / cycles as f64,
            info.bytes_total as f64 / cycles as f64,
            info.count_current as f64 / cycles as f64,
        )
    };
    println!(
        "reconnect cycle (close 4000 → plan → wait → connect → Hello → Resume → RESUMED), per cycle:"
    );
    println!(
        "  first after the session was established: {}",
        per_cycle(first, 1)
    );
    println!("  next {CYCLES}: {}", per_cycle(steady, CYCLES));
}
