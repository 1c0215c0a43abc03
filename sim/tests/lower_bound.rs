//! The gateway's lower bound on recovery is a bound: no model, however
//! eager, gets its slowest shard back sooner. It counts zombie detection
//! (a black-holed socket is noticed no sooner than the last heartbeat the
//! gateway heard on it: a client may heartbeat at any time), identify windows and the daily refill.

use reconnect_sim::frontier;
use reconnect_sim::scenario::{DownMode, Scenario};
use reconnect_sim::{Budget, model, model_names, run_report};

fn check(sc: &Scenario) -> Vec<u64> {
    model_names()
        .iter()
        .map(|name| {
            let r = run_report(sc, &model(name).unwrap(), 1, Budget::default()).unwrap();
            if let Some(max) = r.recovery_max_ms {
                assert!(
                    max >= r.recovery_lower_bound_ms,
                    "{} {name}: the slowest shard took {max} ms, under the lower bound of {} ms",
                    sc.name,
                    r.recovery_lower_bound_ms
                );
            }
            r.recovery_lower_bound_ms
        })
        .collect()
}

#[test]
fn a_black_hole_bounds_recovery_only_until_its_last_heartbeat() {
    let sc = frontier::scenario(40, 5, DownMode::Blackhole);
    let interval = sc.gateway.heartbeat_interval_ms;
    for bound in check(&sc) {
        // The heal comes 5 s after the black hole began, and a socket last
        // heard just before it can be noticed soon after: long before the
        // heal, so detection does not bound recovery.
        assert!(bound < interval, "{bound}");
    }
}

#[test]
fn refused_and_op9_faults_never_beat_their_bounds() {
    check(&frontier::scenario(40, 30, DownMode::Refuse));
    let mut op9 = Scenario::builtin("op9-wave").unwrap();
    op9.shards = 40;
    check(&op9);
}

#[test]
fn a_wave_that_needs_more_starts_than_are_left_waits_for_the_refill() {
    let sc = Scenario::builtin("session-limit").unwrap();
    let r = run_report(&sc, &model("policy").unwrap(), 1, Budget::default()).unwrap();
    // The second wave finds no start left: the bound lies past the refill,
    // 900 s from the start of the run, well after the heal.
    let startup = r.startup_ms.unwrap();
    let refill_after_heal = 900_000 - (startup + sc.heal_at_ms);
    assert!(
        r.recovery_lower_bound_ms >= refill_after_heal,
        "bound {} ms, refill {refill_after_heal} ms after the heal",
        r.recovery_lower_bound_ms
    );
    assert!(r.recovery_max_ms.unwrap() >= r.recovery_lower_bound_ms);
    assert!(!r.token_reset);
}
