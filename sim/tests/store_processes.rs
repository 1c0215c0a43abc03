//! A bot split over processes that share an identify store: the gateway
//! (the referee, which knows nothing of the store) judges identify windows
//! and session starts; the store going away in the middle of a fleet-wide
//! recovery must leave no violation and the session-start count exact, and
//! a broken store, or a fallback that grants every bucket in every process,
//! must be caught.

use reconnect_policy::{FallbackBuckets, StoreFallbackConfig};
use reconnect_sim::client::ProcessesFigures;
use reconnect_sim::metrics::Recorder;
use reconnect_sim::scenario::{STORE_OUTAGE, StoreOutage};
use reconnect_sim::{Budget, Report, Scenario, model, run_report, run_with_store};

/// The built-in store scenario at `shards` over `processes`, the gateway
/// grown with the fleet (one bucket per 16 shards, 200 handshakes/s per
/// 1,000 shards, five session starts a day per shard).
fn scenario(shards: u32, processes: u32) -> Scenario {
    let mut sc = Scenario::builtin(STORE_OUTAGE).expect("built-in");
    sc.shards = shards;
    sc.gateway = sc.gateway.grown_for(shards);
    sc.store.as_mut().expect("a store").processes = processes;
    sc.validate().expect("valid");
    sc
}

fn run(sc: &Scenario) -> (Report, Recorder, ProcessesFigures) {
    let m = model("policy").expect("the policy");
    let (rec, figures) = run_with_store(sc, &m, 7, Budget::default()).expect("the run ends");
    let report = Report::new(sc, m.name(), 7, &rec);
    (report, rec, figures.expect("split over processes"))
}

/// What every run through the store must show, whatever the store did.
fn assert_guarantees(sc: &Scenario, report: &Report, rec: &Recorder, figures: &ProcessesFigures) {
    let why = format!("{:?}", report.reasons());
    // Judged by the gateway alone, with no tolerance.
    assert_eq!(report.identify_violations_strict, 0, "{why}");
    assert_eq!(
        rec.count.identify_violations_strict, 0,
        "start-up too: {why}"
    );
    assert!(!report.token_reset, "{why}");
    assert!(
        rec.count.session_starts <= u64::from(sc.gateway.session_start_remaining),
        "{why}"
    );
    // Exact: every start the store and the local shares charged reached
    // the gateway as an Identify, and every Identify was charged.
    assert_eq!(figures.store.charged(), rec.count.identifies, "{figures:?}");
    assert_eq!(rec.count.identifies, rec.count.session_starts, "{why}");
    assert_eq!(
        u64::from(figures.store.remaining),
        u64::from(sc.gateway.session_start_remaining) - rec.count.session_starts,
    );
    // No deadlock: every shard back, none given up.
    assert_eq!(report.unrecovered, 0, "{why}");
    assert_eq!(report.gave_up, 0, "{why}");
    // Every local share kept.
    for p in &figures.processes {
        assert!(p.fallback.local_grants <= u64::from(p.local_share), "{p:?}");
        assert_eq!(p.fallback.returns, p.fallback.fallbacks, "{p:?}");
    }
}

#[test]
fn the_store_going_away_mid_recovery_breaks_no_window_and_loses_no_start() {
    let sc = scenario(400, 8);
    let (report, rec, figures) = run(&sc);
    assert_guarantees(&sc, &report, &rec, &figures);
    // Every shard identified again after the cut (past the resume window).
    assert_eq!(report.session_starts, 400, "{:?}", report.reasons());
    // The outage was felt: every process fell back, the local shares
    // granted some starts, the rest waited for the store.
    assert!(
        figures.processes.iter().all(|p| p.fallback.fallbacks >= 1),
        "{figures:?}"
    );
    let local: u64 = figures
        .processes
        .iter()
        .map(|p| p.fallback.local_grants)
        .sum();
    let parked: u64 = figures.processes.iter().map(|p| p.fallback.parked).sum();
    assert!(local > 0 && parked > 0, "{figures:?}");
    assert!(figures.store.lost_messages > 0 && figures.store.reconciles >= 8);
}

#[test]
fn processes_sharing_the_probe_dial_less_in_the_cut_than_processes_probing_alone() {
    let shared_sc = scenario(400, 8);
    let mut alone_sc = shared_sc.clone();
    alone_sc.store.as_mut().unwrap().share_probe = false;
    let (shared, shared_rec, shared_figures) = run(&shared_sc);
    let (alone, alone_rec, alone_figures) = run(&alone_sc);
    assert_guarantees(&shared_sc, &shared, &shared_rec, &shared_figures);
    assert_guarantees(&alone_sc, &alone, &alone_rec, &alone_figures);
    eprintln!(
        "refused dials {} shared, {} alone; attempts {} and {}; peak handshakes per 100 ms {} and {}; p99 recovery {:?} ms and {:?} ms; probe grants {}",
        shared.refused_dials,
        alone.refused_dials,
        shared.attempts,
        alone.attempts,
        shared.peak_handshakes_100ms,
        alone.peak_handshakes_100ms,
        shared.recovery_p99_ms,
        alone.recovery_p99_ms,
        shared_figures.store.probe_grants
    );
    // The gateway's counts: one probe stream for the bot instead of eight.
    assert!(
        shared.refused_dials * 2 <= alone.refused_dials,
        "{} against {}",
        shared.refused_dials,
        alone.refused_dials
    );
    assert!(shared.attempts < alone.attempts);
    // The store granted the probes and heard of the heal; processes
    // probing alone never asked.
    assert!(shared_figures.store.probe_grants > 0);
    assert!(shared_figures.store.probes_answered >= 1);
    assert_eq!(alone_figures.store.probe_grants, 0);
}

#[test]
fn a_store_away_for_the_rest_of_the_run_starts_the_owned_buckets_and_storms_nothing() {
    let mut sc = scenario(160, 4);
    let store = sc.store.as_mut().unwrap();
    store.outages = vec![StoreOutage {
        at_ms: 215_000,
        duration_ms: 10_000_000,
    }];
    let (report, rec, figures) = run(&sc);
    let why = format!("{:?}", report.reasons());
    assert_eq!(rec.count.identify_violations_strict, 0, "{why}");
    assert!(!report.token_reset);
    // The local shares granted what they could; nothing was reconciled.
    let local: u64 = figures
        .processes
        .iter()
        .map(|p| p.fallback.local_grants)
        .sum();
    assert!(local > 0, "{figures:?}");
    assert!(figures.processes.iter().all(|p| p.fallback.returns == 0));
    assert_eq!(
        figures.store.charged() + local,
        rec.count.identifies,
        "{figures:?}"
    );
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let sc = scenario(160, 4);
    let a = run(&sc);
    let b = run(&sc);
    let bytes = |r: &(Report, Recorder, ProcessesFigures)| {
        (
            serde_json::to_string(&r.0).unwrap(),
            serde_json::to_string(&r.2).unwrap(),
        )
    };
    assert_eq!(bytes(&a), bytes(&b));
    // Another seed draws another run.
    let m = model("policy").unwrap();
    let other = run_report(&sc, &m, 8, Budget::default()).unwrap();
    assert_ne!(other.trace_hash, a.0.trace_hash);
}

#[test]
fn a_broken_store_that_grants_every_acquire_is_caught_by_the_gateway() {
    let mut sc = scenario(400, 8);
    sc.store.as_mut().unwrap().broken = true;
    let (report, rec, _) = run(&sc);
    assert!(rec.count.identify_violations_strict > 0);
    assert!(report.storm, "{:?}", report.reasons());
}

#[test]
fn a_fallback_granting_every_bucket_in_every_process_breaks_windows() {
    // The rule the ownership of buckets replaces: one Identify per bucket
    // per window per process. Eight processes in a fallback at once give a
    // bucket up to eight.
    let mut sc = scenario(400, 8);
    sc.store.as_mut().unwrap().fallback_buckets = FallbackBuckets::Every;
    let (report, _, _) = run(&sc);
    assert!(report.identify_violations > 0, "{:?}", report.reasons());
    assert!(report.storm);
}

#[test]
fn without_a_store_the_run_is_the_one_process_run() {
    let mut sc = scenario(100, 4);
    sc.store = None;
    let m = model("policy").unwrap();
    let (rec, figures) = run_with_store(&sc, &m, 7, Budget::default()).unwrap();
    assert!(figures.is_none());
    let report = Report::new(&sc, m.name(), 7, &rec);
    assert_eq!(report, run_report(&sc, &m, 7, Budget::default()).unwrap());
}

/// The scale: 10,000 shards over 40 processes (by hand, release:
/// `cargo test --release -p reconnect-sim --test store_processes -- --ignored`;
/// the figures come from `cargo run --release -p reconnect-sim --example processes`).
#[test]
#[ignore = "10,000 shards: minutes in debug builds"]
fn ten_thousand_shards_over_forty_processes() {
    let sc = scenario(10_000, 40);
    let (report, rec, figures) = run(&sc);
    assert_guarantees(&sc, &report, &rec, &figures);
    assert_eq!(report.session_starts, 10_000, "{:?}", report.reasons());
}

/// The model's store holds its grants after an outage for as long as the
/// policy's rule says (`StoreFallbackConfig::return_hold_ms`, which the
/// Redis client follows too), the way to the store counted as its round
/// trip and the jitter of both ways.
#[test]
fn the_store_model_holds_as_long_as_the_policy_rule() {
    let sc = Scenario::builtin(STORE_OUTAGE).expect("built-in");
    let spec = sc.store.as_ref().expect("a store");
    let config = StoreFallbackConfig {
        call_timeout_ms: spec.call_timeout_ms,
        check_every_ms: spec.check_every_ms,
        ..StoreFallbackConfig::with_local_share(1)
    };
    let way = spec
        .round_trip_ms
        .saturating_add(spec.jitter_ms.saturating_mul(2));
    assert_eq!(spec.return_hold_ms(), config.return_hold_ms(way));
    assert_eq!(spec.return_hold_ms(), 6_756);
}
