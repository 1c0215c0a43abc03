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
        r.attempts.iter().take(100).map(|a| a[0]).collect()
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
