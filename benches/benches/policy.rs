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
use reconnect_benches::{criterion, measuring, median_ns};
use reconnect_policy::testing::shard::{SEED, Shard, t};
use reconnect_policy::{CloseCode, DecisionConfig, Jitter, Trigger, decide};

/// The close codes whose decision is measured: resumable, re-identify,
/// fatal, unknown.
const CLOSE_CODES: [u16; 4] = [1006, 4007, 4004, 4999];

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
    group.bench_function("dispatch", |b| b.iter(|| shard.dispatch_at(black_box(now))));
    let stats = shard.policy.stats();
    assert_eq!(shard.policy.last_seq(), Some(shard.seq));
    assert_eq!(stats.duplicate_dispatches, 0);
    assert_eq!(stats.ignored_events, 0);
    assert!(shard.policy.state().is_connected());

    let mut shard = Shard::established();
    let before = shard.policy.stats();
    group.bench_function("heartbeat_ack", |b| b.iter(|| shard.heartbeat()));
    let stats = shard.policy.stats();
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
    let stats = shard.policy.stats();
    assert_eq!(
        stats.resumes_sent, stats.resumes_succeeded,
        "every resume succeeded"
    );
    assert_eq!(stats.reconnects, stats.resumes_succeeded);
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
    let mut rng = Jitter::new(SEED);
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
