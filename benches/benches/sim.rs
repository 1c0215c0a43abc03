//! The simulator's speed: events per second, and the cost of a run as the
//! fleet grows from 100 to 10,000 shards.
//!
//! ```text
//! cargo bench -p reconnect-benches --bench sim
//! ```
//!
//! One fixed workload at every size: the built-in `flapping-link` scenario
//! stretched over the whole run (as `sim/examples/scale.rs` does, but
//! [`MINUTES`] of simulated time instead of an hour), the default `policy`
//! model, seed [`SEED`]. The gateway grows with the fleet, so that every
//! shard sees the same conditions whatever the fleet's size: one identify
//! bucket per [`SHARDS_PER_BUCKET`] shards (every fleet finishes starting
//! after the same number of identify windows) and the built-ins' admission
//! capacity per shard (200 handshakes/s per 1,000 shards). The events per
//! shard then hardly change with the size, and a simulator that scales
//! linearly takes the same time per shard at every size.
//!
//! Each size's events are counted once before it is measured (a run is
//! deterministic), so criterion reports events per second. Afterwards the
//! benchmark prints a table built from the medians criterion saved in this
//! run: events per second, nanoseconds per event, and the cost per shard
//! relative to the smallest fleet, from which linearity can be read off.
//! Wall time is criterion's to measure; nothing here reads a clock.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, SamplingMode, Throughput};
use reconnect_benches::{criterion, measuring, median_ns};
use reconnect_sim::metrics::Recorder;
use reconnect_sim::{Budget, DEFAULT_MODEL, ModelSpec, Scenario, model, run};

/// The fleet sizes, in shards.
const SIZES: [u32; 5] = [100, 300, 1_000, 3_000, 10_000];
/// Simulated minutes per run.
const MINUTES: u64 = 15;
/// The flapping starts here, when every fleet is three quarters through its
/// start (12 of its 16 identify windows).
const FAULT_AT_MS: u64 = 60_000;
/// Shards per identify bucket: every fleet starts in this many 5 s windows.
const SHARDS_PER_BUCKET: u32 = 16;
/// Handshakes per second the gateway admits for every 1,000 shards (the
/// built-in scenarios' 200/s for their 1,000 shards).
const ADMISSION_PER_1000_SHARDS: u32 = 200;
/// The master seed of every run.
const SEED: u64 = 1;
/// Criterion's smallest sample count; each sample of the largest fleet is
/// a couple of runs of about a second.
const SAMPLES: usize = 10;
/// The measurement time is planned at this many nanoseconds per event per
/// sample, and never less than [`MIN_MEASUREMENT`]. Criterion only warns
/// when one run takes longer than a sample's share of it, that is on a
/// machine slower than this per event; on a faster one it fits more runs
/// into each sample.
const PLANNED_NS_PER_EVENT: u64 = 1_000;
/// The shortest measurement time, for the small fleets.
const MIN_MEASUREMENT: Duration = Duration::from_secs(1);
/// The benchmark group: ids are `sim/flapping-link/<shards>`.
const GROUP: &str = "sim";
/// The benchmark function, named after the workload.
const FUNCTION: &str = "flapping-link";

/// The workload for a fleet of `shards`.
fn workload(shards: u32) -> Scenario {
    let duration_ms = MINUTES * 60_000;
    let mut scenario = Scenario::builtin("flapping-link").expect("the built-in flapping-link");
    scenario.shards = shards;
    scenario.heal_at_ms = duration_ms;
    scenario.duration_ms = duration_ms;
    scenario.gateway.max_concurrency =
        u16::try_from(shards.div_ceil(SHARDS_PER_BUCKET)).expect("at most 65,535 identify buckets");
    scenario.gateway.admission_per_s = (shards * ADMISSION_PER_1000_SHARDS).div_ceil(1_000);
    for fault in &mut scenario.faults {
        fault.at_ms = FAULT_AT_MS;
        fault.duration_ms = duration_ms;
    }
    scenario
        .validate()
        .unwrap_or_else(|e| panic!("the benchmark's own scenario: {e}"));
    scenario
}

/// One whole run.
fn simulate(scenario: &Scenario, model: &ModelSpec) -> Recorder {
    run(scenario, model, SEED, Budget::default())
        .unwrap_or_else(|e| panic!("{} shards: {e}", scenario.shards))
}

/// How long criterion should measure a run of `events` events.
fn measurement_time(events: u64) -> Duration {
    let planned = events.saturating_mul(PLANNED_NS_PER_EVENT * SAMPLES as u64);
    Duration::from_nanos(planned).max(MIN_MEASUREMENT)
}

fn main() {
    let mut c = criterion();
    let model = model(DEFAULT_MODEL).expect("the default model");
    let mut counted = Vec::with_capacity(SIZES.len());
    let mut group = c.benchmark_group(GROUP);
    group
        .sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1));
    for shards in SIZES {
        let scenario = workload(shards);
        let events = simulate(&scenario, &model).events;
        assert!(events > 0, "{shards} shards: the run processed no events");
        counted.push((shards, events));
        group
            .throughput(Throughput::Elements(events))
            .measurement_time(measurement_time(events));
        group.bench_with_input(BenchmarkId::new(FUNCTION, shards), &scenario, |b, s| {
            b.iter(|| simulate(black_box(s), &model));
        });
    }
    group.finish();
    if measuring() {
        print_table(&counted);
    }
    c.final_summary();
}

/// The table of this run's medians, one row per fleet size.
fn print_table(counted: &[(u32, u64)]) {
    println!();
    println!(
        "{GROUP}/{FUNCTION}: {MINUTES} simulated minutes, model {DEFAULT_MODEL}, seed {SEED}; \
         medians of this run"
    );
    println!(
        "{:>7} {:>11} {:>8} {:>10} {:>12} {:>9} {:>11} {:>12}",
        "shards", "events", "ev/shard", "median", "events/s", "ns/event", "µs/shard", "per shard ×"
    );
    let mut first_per_shard = None;
    for &(shards, events) in counted {
        let Some(ns) = median_ns(&format!("{GROUP}/{FUNCTION}/{shards}")) else {
            println!("{shards:>7} {events:>11}   (not measured in this run)");
            continue;
        };
        let per_shard = ns / f64::from(shards);
        let relative = per_shard / *first_per_shard.get_or_insert(per_shard);
        println!(
            "{shards:>7} {events:>11} {:>8.1} {:>10} {:>10.2} M {:>9.1} {:>11.1} {:>11.2}×",
            events as f64 / f64::from(shards),
            duration(ns),
            events as f64 / ns * 1e3,
            ns / events as f64,
            per_shard / 1e3,
            relative,
        );
    }
    println!(
        "(per shard ×: the median per shard over that of the first size listed; \
         1.00× throughout is linear)"
    );
}

/// `ns` nanoseconds, in a readable unit.
fn duration(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}
