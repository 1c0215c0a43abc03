//! Same scenario, model and seed: the same report and the same trace, byte
//! for byte; another seed: another trace.

use reconnect_sim::{Budget, Scenario, model, run_report};

fn small(name: &str) -> Scenario {
    let mut s = Scenario::builtin(name).expect("built-in");
    s.shards = 100;
    s
}

#[test]
fn a_seed_replays_byte_for_byte() {
    for scenario in ["flapping-link", "outage-30s", "zombie-links"] {
        let sc = small(scenario);
        for name in ["policy", "policy:full_jitter", "naive"] {
            let m = model(name).expect("known model");
            let a = run_report(&sc, &m, 42, Budget::default()).expect("runs");
            let b = run_report(&sc, &m, 42, Budget::default()).expect("runs");
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                serde_json::to_string(&b).unwrap(),
                "{scenario} {name}"
            );
            assert!(a.events > 1_000, "{scenario} {name}: {} events", a.events);
        }
    }
}

#[test]
fn another_seed_gives_another_trace() {
    let sc = small("flapping-link");
    let m = model("policy").expect("known model");
    let hashes: std::collections::BTreeSet<String> = (1..=5)
        .map(|seed| {
            run_report(&sc, &m, seed, Budget::default())
                .unwrap()
                .trace_hash
        })
        .collect();
    assert_eq!(hashes.len(), 5);
}

#[test]
fn adding_a_shard_leaves_the_other_shards_streams_alone() {
    // Every shard draws from its own stream: a fleet with one more shard
    // starts its first 100 shards at exactly the same moments. (The naive
    // client connects when it starts; a policy-driven shard would first wait
    // for its identify slot, which the new shard legitimately shares.)
    let a = small("outage-30s");
    let mut b = a.clone();
    b.shards = 101;
    let m = model("naive").unwrap();
    let ra = reconnect_sim::run(&a, &m, 9, Budget::default()).unwrap();
    let rb = reconnect_sim::run(&b, &m, 9, Budget::default()).unwrap();
    let first = |r: &reconnect_sim::metrics::Recorder| -> Vec<u32> {
        r.attempts
            .iter()
            .take(100)
            .map(|a| a.first().unwrap_or(u32::MAX))
            .collect()
    };
    assert_eq!(first(&ra), first(&rb));
    assert!(
        first(&ra).windows(2).any(|w| w[0] != w[1]),
        "starts are spread"
    );
}

#[test]
fn a_run_over_its_budget_fails_loudly_naming_scenario_model_and_seed() {
    let sc = small("flapping-link");
    let m = model("naive").unwrap();
    let err = run_report(&sc, &m, 1234, Budget { max_events: 10_000 }).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("seed 1234")
            && text.contains("event")
            && text.contains("flapping-link")
            && text.contains("naive"),
        "{text}"
    );
}

/// Serialises every result, errors included, so that two paths can be
/// compared byte for byte.
fn bytes<T: serde::Serialize, E: std::fmt::Display>(results: &[Result<T, E>]) -> Vec<String> {
    results
        .iter()
        .map(|r| match r {
            Ok(v) => serde_json::to_string(v).unwrap(),
            Err(e) => format!("error: {e}"),
        })
        .collect()
}

#[test]
fn a_sweep_on_two_threads_equals_a_sweep_on_one() {
    let sc = small("flapping-link");
    let seeds: Vec<u64> = (1..=8).collect();
    for name in ["policy", "naive"] {
        let m = model(name).unwrap();
        let run = || reconnect_sim::sweep(&sc, &m, &seeds, Budget::default(), &|_| {}).unwrap();
        let one = reconnect_sim::with_jobs(1, run).unwrap();
        let two = reconnect_sim::with_jobs(2, run).unwrap();
        let four = reconnect_sim::with_jobs(4, run).unwrap();
        assert_eq!(one.len(), seeds.len());
        assert_eq!(
            one.iter().map(|r| r.seed).collect::<Vec<_>>(),
            seeds,
            "in seed order"
        );
        let one = bytes(&one.into_iter().map(Ok::<_, String>).collect::<Vec<_>>());
        assert_eq!(
            one,
            bytes(&two.into_iter().map(Ok::<_, String>).collect::<Vec<_>>()),
            "{name}"
        );
        assert_eq!(
            one,
            bytes(&four.into_iter().map(Ok::<_, String>).collect::<Vec<_>>()),
            "{name}"
        );
    }
}

#[test]
fn compare_on_two_threads_equals_compare_on_one() {
    let sc = small("outage-30s");
    let models: Vec<_> = reconnect_sim::model_names()
        .iter()
        .map(|n| model(n).unwrap())
        .collect();
    let run = || reconnect_sim::compare(&sc, &models, 3, Budget::default());
    let one = reconnect_sim::with_jobs(1, run).unwrap();
    let two = reconnect_sim::with_jobs(2, run).unwrap();
    assert_eq!(one.len(), models.len());
    assert_eq!(bytes(&one), bytes(&two));
}

#[test]
fn a_frontier_on_two_threads_equals_a_frontier_on_one() {
    let models = [model("policy").unwrap(), model("discordjs").unwrap()];
    let run = || reconnect_sim::frontier::run(&models, 4, 5, Budget::default(), &|_| {});
    let one = reconnect_sim::with_jobs(1, run).unwrap();
    let two = reconnect_sim::with_jobs(2, run).unwrap();
    assert_eq!(
        one.len(),
        models.len()
            * reconnect_sim::frontier::MODES.len()
            * reconnect_sim::frontier::OUTAGE_LENGTHS_S.len()
    );
    assert_eq!(bytes(&one), bytes(&two));
}

#[test]
fn zero_jobs_is_a_clear_error() {
    let err = reconnect_sim::with_jobs(0, || ()).unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[test]
fn a_sweep_split_into_parts_on_different_thread_counts_merges_to_the_single_summary() {
    use reconnect_sim::sweep::{Line, Part, Summary, merge};
    let sc = small("flapping-link");
    let m = model("policy").unwrap();
    let all = 1..14;
    let seeds: Vec<u64> = all.clone().collect();
    let single = reconnect_sim::with_jobs(2, || {
        reconnect_sim::sweep(&sc, &m, &seeds, Budget::default(), &|_| {}).unwrap()
    })
    .unwrap();
    let single = Summary::new(&single);
    let mut lines = Vec::new();
    for (k, jobs) in [(3, 1), (1, 2), (2, 3)] {
        let part = Part { index: k, count: 3 };
        let seeds: Vec<u64> = part.seeds(all.clone()).collect();
        let reports = reconnect_sim::with_jobs(jobs, || {
            reconnect_sim::sweep(&sc, &m, &seeds, Budget::default(), &|_| {}).unwrap()
        })
        .unwrap();
        for r in reports {
            // Through JSON and back, as the parts travel between machines.
            let text = serde_json::to_string(&Line::new(all.clone(), part, r)).unwrap();
            lines.extend(Line::parse_all("part", &text).unwrap());
        }
    }
    let merged = merge(lines).unwrap();
    assert_eq!(merged.seeds, 13);
    assert_eq!(merged.text(), single.text());
    assert_eq!(
        serde_json::to_string(&merged.worst).unwrap(),
        serde_json::to_string(&single.worst).unwrap()
    );
    assert_eq!(merged, single);
}
