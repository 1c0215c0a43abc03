//! The proof the issue asks for, on every built-in scenario at full size:
//! the default policy never storms and never breaks an identify window,
//! and the naive client storms (so the oracle is not vacuous).

use reconnect_sim::scenario::BUILTIN;
use reconnect_sim::{Budget, Scenario, model, run_report};

#[test]
fn the_default_policy_never_storms_in_any_builtin_scenario() {
    let policy = model("policy").unwrap();
    for name in BUILTIN {
        let sc = Scenario::builtin(name).unwrap();
        let r = run_report(&sc, &policy, 1, Budget::default()).unwrap();
        assert!(!r.storm, "{name}: {:?}", r.storm_reasons);
        assert_eq!(r.identify_violations, 0, "{name}");
        assert_eq!(r.unrecovered, 0, "{name}");
        assert_eq!(r.gave_up, 0, "{name}");
        assert_eq!(r.retries_after_fatal, 0, "{name}");
        assert_eq!(r.events_duplicated, 0, "{name}");
        assert_eq!(
            r.healthy_link_reconnects, 0,
            "{name}: a reconnect on a healthy link"
        );
        assert_eq!(
            r.max_open_sockets_per_shard, 1,
            "{name}: two sockets at once"
        );
        assert!(r.max_attempts_per_client_60s <= 10, "{name}");
    }
}

#[test]
fn the_naive_client_storms_in_every_builtin_scenario() {
    let naive = model("naive").unwrap();
    for name in BUILTIN {
        let mut sc = Scenario::builtin(name).unwrap();
        // The storm shows at any size; a smaller fleet keeps the test quick.
        sc.shards = sc.shards.min(200);
        let r = run_report(&sc, &naive, 1, Budget::default()).unwrap();
        assert!(r.storm, "{name}: the naive client did not storm: {r:?}");
    }
}

#[test]
fn outages_shorter_than_the_resume_window_are_resumed_not_reidentified() {
    let policy = model("policy").unwrap();
    let sc = Scenario::builtin("outage-30s").unwrap();
    let r = run_report(&sc, &policy, 3, Budget::default()).unwrap();
    assert_eq!(
        r.identifies,
        u64::from(sc.shards),
        "only the first identifies"
    );
    assert_eq!(r.resumes_succeeded, u64::from(sc.shards));
    assert_eq!(r.identifies_while_resumable, 0);
    assert_eq!(r.events_lost, 0);
}
