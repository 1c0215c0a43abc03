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
use reconnect_policy::testing::shard::Shard;
use reconnect_policy::{Handled, PolicyState};

/// Heartbeat intervals measured; each has its dispatches, its heartbeat
/// and ACK, and one op 1.
const ROUNDS: u64 = 500;
/// Dispatches per heartbeat interval, 10 ms apart.
const DISPATCHES_PER_ROUND: u64 = 200;
/// Reconnect cycles measured.
const CYCLES: u64 = 100;

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
    shard.dispatch_at(shard.now + 10);
    shard.heartbeat();
    shard.heartbeat_request();
    let before = shard.policy.stats();
    let seq_before = shard.seq;

    let mut dispatched = 0_u64;
    let mut beats = 0_u64;
    let mut requested = 0_u64;
    let info = measure(|| {
        for _ in 0..ROUNDS {
            for _ in 0..DISPATCHES_PER_ROUND {
                if shard.dispatch_at(shard.now + 10).handled == Some(Handled::Accepted) {
                    dispatched += 1;
                }
            }
            beats += u64::from(shard.heartbeat().heartbeats);
            requested += u64::from(shard.heartbeat_request().heartbeats);
        }
    });
    assert_eq!(info.count_total, 0, "the hot path allocated: {info:?}");

    // And the work measured really happened.
    let stats = shard.policy.stats();
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
    let stats = shard.policy.stats();
    assert_eq!(resumes, CYCLES);
    assert_eq!(
        stats.resumes_succeeded,
        CYCLES + 1,
        "every resume was answered"
    );
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
