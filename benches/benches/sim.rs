//! The simulator's speed and memory: events per second, and the cost of a
//! run and its memory per shard as the fleet grows from 100 to 100,000
//! shards.
//!
//! ```text
//! cargo bench -p reconnect-benches --bench sim
//! ```
//!
//! One fixed workload at every size: the built-in `flapping-link` scenario
//! stretched over the whole run (as `sim/examples/scale.rs` does, but
//! [`MINUTES`] of simulated time instead of an hour; the largest fleet,
//! [`LARGEST`] shards, [`LARGEST_MINUTES`], so that its ten samples fit in a
//! couple of minutes), the default `policy` model, seed [`SEED`]. The
//! gateway grows with the fleet (`Gateway::grown_for`), so that every shard
//! sees the same conditions whatever the fleet's size: one identify bucket
//! per 16 shards (every fleet finishes starting after the same number of
//! identify windows), the built-ins' admission capacity per shard (200
//! handshakes/s per 1,000 shards) and five session starts per shard (with
//! the default allowance of 5,000, a larger fleet would start only 5,000 of
//! its shards). The events per shard then
//! hardly change with the size, and a simulator that scales linearly takes
//! the same time per event at every size.
//!
//! Each size is run once before it is measured, to count its events (a run
//! is deterministic, so criterion reports events per second) and the peak
//! of the heap during the run, read from this binary's global allocator
//! (`allocation-counter`'s, which adds a few thread-local counter updates
//! to each allocation, the same at every size; a run allocates little once
//! its tables have grown). Afterwards the benchmark prints a table built from the
//! medians criterion saved in this run: events per second, nanoseconds per
//! event and its ratio to the smallest fleet's, from which flatness can be
//! read off, and the heap per shard: the peak over the fleet, and the
//! growth from the previous size (the cost of one more shard, without the
//! fixed cost of the event wheels and the tables every run has).
//! Wall time is criterion's to measure; nothing here reads a clock.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, SamplingMode, Throughput};
use reconnect_benches::{criterion, measuring, median_ns};
use reconnect_sim::metrics::Recorder;
use reconnect_sim::{Budget, DEFAULT_MODEL, ModelSpec, Scenario, model, run};

/// The fleet sizes, in shards.
const SIZES: [u32; 4] = [100, 1_000, 10_000, LARGEST];
/// The largest fleet, run for [`LARGEST_MINUTES`].
const LARGEST: u32 = 100_000;
/// Simulated minutes per run.
const MINUTES: u64 = 15;
/// Simulated minutes per run of the largest fleet: its start and four
/// minutes of flapping.
const LARGEST_MINUTES: u64 = 5;
/// The flapping starts here, when every fleet is three quarters through its
/// start (12 of its 16 identify windows).
const FAULT_AT_MS: u64 = 60_000;
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

/// Simulated minutes for a fleet of `shards`.
const fn minutes(shards: u32) -> u64 {
    if shards >= LARGEST {
        LARGEST_MINUTES
    } else {
        MINUTES
    }
}

/// The workload for a fleet of `shards`.
fn workload(shards: u32) -> Scenario {
    let duration_ms = minutes(shards) * 60_000;
    let mut scenario = Scenario::builtin("flapping-link").expect("the built-in flapping-link");
    scenario.shards = shards;
    scenario.heal_at_ms = duration_ms;
    scenario.duration_ms = duration_ms;
    scenario.gateway = scenario.gateway.grown_for(shards);
    for fault in &mut scenario.faults {
        fault.at_ms = FAULT_AT_MS;
        fault.duration_ms = duration_ms;
    }
    scenario
        .validate()
        .unwrap_or_else(|e| panic!("the benchmark's own scenario: {e}"));
    scenario
}

/// One size's figures from its counting run.
#[derive(Clone, Copy, Debug)]
struct Counted {
    shards: u32,
    events: u64,
    /// The heap's peak during the run, less what was in use before it.
    heap_peak: u64,
}

/// Runs the workload of `shards` once, counting its events and its heap.
fn count(scenario: &Scenario, model: &ModelSpec) -> Counted {
    let mut events = 0;
    let heap = allocation_counter::measure(|| events = simulate(scenario, model).events);
    Counted {
        shards: scenario.shards,
        events,
        heap_peak: heap.bytes_max,
    }
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
        let one = count(&scenario, &model);
        let events = one.events;
        assert!(events > 0, "{shards} shards: the run processed no events");
        counted.push(one);
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
fn print_table(counted: &[Counted]) {
    println!();
    println!(
        "{GROUP}/{FUNCTION}: {MINUTES} simulated minutes ({LARGEST_MINUTES} for {LARGEST} shards), \
         model {DEFAULT_MODEL}, seed {SEED}; medians of this run"
    );
    println!(
        "{:>7} {:>4} {:>11} {:>8} {:>10} {:>12} {:>9} {:>10} {:>12} {:>12}",
        "shards",
        "min",
        "events",
        "ev/shard",
        "median",
        "events/s",
        "ns/event",
        "ns/event ×",
        "heap/shard",
        "added/shard"
    );
    let mut first_ns_per_event = None;
    let mut previous: Option<Counted> = None;
    for &c in counted {
        let heap_per_shard = c.heap_peak as f64 / f64::from(c.shards);
        let added = previous.map_or_else(
            || "".to_owned(),
            |p| {
                let bytes = c.heap_peak as f64 - p.heap_peak as f64;
                format!("{:.0} B", bytes / f64::from(c.shards - p.shards))
            },
        );
        previous = Some(c);
        let Some(ns) = median_ns(&format!("{GROUP}/{FUNCTION}/{}", c.shards)) else {
            println!(
                "{:>7} {:>4} {:>11}   (not measured in this run) {:>38.0} B {added:>12}",
                c.shards,
                minutes(c.shards),
                c.events,
                heap_per_shard
            );
            continue;
        };
        let ns_per_event = ns / c.events as f64;
        let relative = ns_per_event / *first_ns_per_event.get_or_insert(ns_per_event);
        println!(
            "{:>7} {:>4} {:>11} {:>8.1} {:>10} {:>10.2} M {:>9.1} {:>9.2}× {:>10.0} B {added:>12}",
            c.shards,
            minutes(c.shards),
            c.events,
            c.events as f64 / f64::from(c.shards),
            duration(ns),
            c.events as f64 / ns * 1e3,
            ns_per_event,
            relative,
            heap_per_shard,
        );
    }
    println!(
        "(ns/event ×: over the first size listed, 1.00× throughout is a flat cost per event; \
         heap/shard: the heap's peak during one run over its shards; added/shard: its growth \
         from the previous size, per shard added)"
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
