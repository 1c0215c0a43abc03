//! A bot split over processes that share an identify store, through a
//! fleet-wide cut with the store going away in the middle of the recovery,
//! beside the same fleet in one process.
//!
//! ```text
//! cargo run --release -p reconnect-sim --example processes -- [SHARDS] [PROCESSES] [SEED]
//! ```
//!
//! Defaults: 10,000 shards over 40 processes, seed 1. Runs the built-in
//! `store-outage-in-recovery` scenario with the gateway grown with the
//! fleet as the scale runs grow it (one bucket per 16 shards, 200
//! handshakes/s per 1,000 shards, five session starts a day per shard),
//! once split over the processes and once in one process with its own
//! limiter, and prints every assumption and the figures: identify-window
//! violations and session starts at the gateway (the referee's counts),
//! the starts the store charged, recovery p99 and attempts per shard, and
//! each process's fallbacks.

use reconnect_sim::scenario::STORE_OUTAGE;
use reconnect_sim::{Budget, Report, Scenario, model, run_with_store};

/// Shards per identify bucket.
const SHARDS_PER_BUCKET: u32 = 16;
/// Handshakes per second the gateway admits for every 1,000 shards.
const ADMISSION_PER_1000_SHARDS: u32 = 200;
/// Session starts a day per shard.
const STARTS_PER_SHARD: u32 = 5;

fn main() {
    let mut args = std::env::args().skip(1);
    let shards: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let processes: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(40);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let mut scenario = Scenario::builtin(STORE_OUTAGE).expect("a built-in scenario");
    scenario.shards = shards;
    scenario.gateway.max_concurrency =
        u16::try_from(shards.div_ceil(SHARDS_PER_BUCKET)).unwrap_or(u16::MAX);
    scenario.gateway.admission_per_s = shards
        .saturating_mul(ADMISSION_PER_1000_SHARDS)
        .div_ceil(1_000);
    let starts = shards.saturating_mul(STARTS_PER_SHARD).max(5_000);
    scenario.gateway.session_start_total = starts;
    scenario.gateway.session_start_remaining = starts;
    if let Some(store) = &mut scenario.store {
        store.processes = processes;
    }
    if let Err(e) = scenario.validate() {
        eprintln!("{e}");
        std::process::exit(2);
    }
    let policy = model("policy").expect("the policy");
    let (rec, figures) = run_with_store(&scenario, &policy, seed, Budget::default())
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1);
        });
    let split = Report::new(&scenario, policy.name(), seed, &rec);
    let figures = figures.expect("a run split over processes");
    let mut one = scenario.clone();
    one.store = None;
    let (rec_one, _) = run_with_store(&one, &policy, seed, Budget::default()).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    });
    let single = Report::new(&one, policy.name(), seed, &rec_one);
    let spec = scenario.store.as_ref().expect("the scenario's store");
    println!(
        "scenario {} seed {seed}: {}",
        scenario.name, scenario.description
    );
    println!(
        "assumptions: {shards} shards, {} buckets, {} session starts, {} handshakes/s admitted; \
         store round trip {} ms + 0..{} ms jitter each way, call timeout {} ms, check every {} ms, \
         return hold {} ms, fallback buckets {:?}; store outages (from the schedule's start) {:?}; \
         gateway cut {} ms from {} ms",
        scenario.gateway.max_concurrency,
        starts,
        scenario.gateway.admission_per_s,
        spec.round_trip_ms,
        spec.jitter_ms,
        spec.call_timeout_ms,
        spec.check_every_ms,
        figures.return_hold_ms,
        spec.fallback_buckets,
        spec.outages,
        scenario.faults.first().map_or(0, |f| f.duration_ms),
        scenario.faults.first().map_or(0, |f| f.at_ms),
    );
    for line in &split.assumptions {
        println!("  assumption: {line}");
    }
    for (label, r) in [
        (format!("{processes} processes"), &split),
        ("1 process".to_owned(), &single),
    ] {
        println!(
            "{label:>13}: verdict {}, identify violations {} (strict {}), identifies {}, session starts {} of {starts}, token reset {}, \
             recovery p50 {:?} ms p99 {:?} ms max {:?} ms (lower bound {} ms), unrecovered {}, attempts {} ({:.2} per shard), startup {:?} ms",
            r.verdict,
            r.identify_violations,
            r.identify_violations_strict,
            r.identifies,
            r.session_starts,
            r.token_reset,
            r.recovery_p50_ms,
            r.recovery_p99_ms,
            r.recovery_max_ms,
            r.recovery_lower_bound_ms,
            r.unrecovered,
            r.attempts,
            r.attempts as f64 / f64::from(shards),
            r.startup_ms,
        );
    }
    let s = figures.store;
    println!(
        "store: grants {}, charged locally {}, given back {}, charged in all {} (the gateway saw {} identifies in the whole run, {} session starts), \
         left {}, late acquires {}, held by the return hold {}, reconciles {}, messages lost {}",
        s.grants,
        s.charged_locally,
        s.given_back,
        s.charged(),
        rec.count.identifies,
        rec.count.session_starts,
        s.remaining,
        s.late,
        s.held,
        s.reconciles,
        s.lost_messages
    );
    let parked: u64 = figures.processes.iter().map(|p| p.fallback.parked).sum();
    println!("requests parked until the store was back: {parked}");
    let fell: Vec<u64> = figures
        .processes
        .iter()
        .map(|p| p.fallback.fallbacks)
        .collect();
    let local: u64 = figures
        .processes
        .iter()
        .map(|p| p.fallback.local_grants)
        .sum();
    println!(
        "processes: fallbacks per process {:?} (returns {}), local grants {local}, local share {:?}, owned buckets {:?}",
        fell,
        figures
            .processes
            .iter()
            .map(|p| p.fallback.returns)
            .sum::<u64>(),
        figures
            .processes
            .iter()
            .map(|p| p.local_share)
            .collect::<Vec<_>>(),
        figures
            .processes
            .iter()
            .map(|p| p.owned_buckets)
            .collect::<Vec<_>>(),
    );
}
