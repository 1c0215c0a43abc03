//! The verdicts on the built-in scenarios at full size: with no fault every
//! model is healthy; the default policy is healthy in every built-in; the
//! naive client fails wherever a fault makes it reconnect (so the oracle is
//! not vacuous).

use reconnect_sim::scenario::{BUILTIN, NO_FAULT};
use reconnect_sim::{Budget, Scenario, model, model_names, run_report};

#[test]
fn with_no_fault_every_model_is_judged_healthy() {
    let sc = Scenario::builtin(NO_FAULT).unwrap();
    for name in model_names() {
        let r = run_report(&sc, &model(&name).unwrap(), 1, Budget::default()).unwrap();
        assert_eq!(r.verdict, "ok", "{name}: {:?}", r.reasons());
        assert_eq!(r.judged_shards, u64::from(sc.shards), "{name}");
        assert!(r.startup_ms.is_some(), "{name}");
    }
}

#[test]
fn the_default_policy_never_storms_in_any_builtin_scenario() {
    let policy = model("policy").unwrap();
    for name in BUILTIN {
        let sc = Scenario::builtin(name).unwrap();
        let r = run_report(&sc, &policy, 1, Budget::default()).unwrap();
        assert_eq!(r.verdict, "ok", "{name}: {:?}", r.reasons());
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
fn the_naive_client_fails_wherever_a_fault_makes_it_reconnect() {
    let naive = model("naive").unwrap();
    // In rolling-restart and zombie-links an immediate resume is the right
    // answer, and the naive client gives it.
    for name in [
        "outage-30s",
        "flapping-link",
        "op9-wave",
        "repeated-outage",
        "session-limit",
        "overload",
    ] {
        let mut sc = Scenario::builtin(name).unwrap();
        // The failure shows at any size; a smaller fleet keeps the test quick.
        sc.shards = sc.shards.min(200);
        let r = run_report(&sc, &naive, 1, Budget::default()).unwrap();
        assert_ne!(r.verdict, "ok", "{name}: the naive client passed: {r:?}");
    }
}

#[test]
fn outages_shorter_than_the_resume_window_are_resumed_not_reidentified() {
    let policy = model("policy").unwrap();
    let sc = Scenario::builtin("outage-30s").unwrap();
    let r = run_report(&sc, &policy, 3, Budget::default()).unwrap();
    assert_eq!(r.identifies, 0, "only the first connects identify");
    assert_eq!(r.resumes_succeeded, u64::from(sc.shards));
    assert_eq!(r.identifies_while_resumable, 0);
    assert_eq!(r.events_lost, 0);
}
