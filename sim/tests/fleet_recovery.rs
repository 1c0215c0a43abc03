//! Fleet-aware recovery against the referee: the default policy (fleet
//! recovery on) beside the same policy with it off (`policy:fleet-off`).
//!
//! - a fleet-wide outage costs about one attempt per shard, comes back
//!   sooner than each shard alone, without a herd;
//! - a fault of one shard's own link, or of a tenth of the fleet, is left to
//!   the shards: the run is the same, event for event, as with fleet
//!   recovery off (no shard held, none hurried);
//! - over random schedules of faults that each touch fewer shards than trip
//!   an outage, the same holds.
//!
//! The full 1000-shard figures at every outage length come from
//! `reconnect-sim frontier --models policy,policy:fleet-off`; here a
//! representative subset runs at a size that takes seconds in a debug
//! build.

use proptest::prelude::*;
use reconnect_sim::frontier;
use reconnect_sim::scenario::{DownMode, Fault, FaultKind, Gateway, Scenario, Scope};
use reconnect_sim::{Budget, Report, model, run_report};

fn report(sc: &Scenario, name: &str, seed: u64) -> Report {
    run_report(sc, &model(name).unwrap(), seed, Budget::default()).unwrap()
}

#[test]
fn a_fleet_wide_outage_costs_about_one_attempt_per_shard_and_no_herd() {
    for mode in [DownMode::Refuse, DownMode::Blackhole] {
        for outage_s in [15, 90] {
            let sc = frontier::scenario(300, outage_s, mode);
            let on = report(&sc, "policy", 1);
            let off = report(&sc, "policy:fleet-off", 1);
            let what = format!("{} {outage_s} s", frontier::mode_name(mode));
            let per_shard = on.attempts as f64 / on.judged_shards as f64;
            assert!(per_shard <= 1.2, "{what}: {per_shard} attempts per shard");
            // A black hole shorter than a heartbeat interval is found while
            // it lasts (the fleet's quiet check), and probing it costs a few
            // attempts that shards finding their dead sockets only after the
            // heal never pay; they pay in recovery time instead (checked
            // below for both modes).
            if mode == DownMode::Refuse {
                assert!(
                    on.attempts <= off.attempts,
                    "{what}: {} > {}",
                    on.attempts,
                    off.attempts
                );
            }
            assert!(!on.storm && !on.herd, "{what}: {}", on.verdict);
            assert_eq!(on.unrecovered, 0, "{what}");
            assert_eq!(on.identify_violations, 0, "{what}");
            assert!(on.max_open_sockets_per_shard <= 1, "{what}");
            assert!(
                on.recovery_p99_ms <= off.recovery_p99_ms,
                "{what}: p99 {:?} with, {:?} without",
                on.recovery_p99_ms,
                off.recovery_p99_ms
            );
        }
    }
}

#[test]
fn after_the_gateway_forgot_the_sessions_a_thousand_shards_spend_at_most_one_and_a_fifth_attempts()
{
    // Past the gateway's resume window every session is gone: after three
    // refused Resumes the held shards identify at once instead of each
    // spending an attempt on a Resume sure to be refused. The probes of a
    // long outage are the rest of the budget (about 0.17 per shard over
    // 600 s for 1000 shards; a smaller fleet pays more per shard).
    for (outage_s, mode) in [(180, DownMode::Refuse), (600, DownMode::Blackhole)] {
        let sc = frontier::scenario(1000, outage_s, mode);
        let on = report(&sc, "policy", 1);
        let what = format!("{} {outage_s} s", frontier::mode_name(mode));
        let per_shard = on.attempts as f64 / on.judged_shards as f64;
        assert!(per_shard <= 1.2, "{what}: {per_shard} attempts per shard");
        assert!(!on.storm && !on.herd, "{what}: {}", on.verdict);
        assert_eq!(on.unrecovered, 0, "{what}");
        assert_eq!(on.identify_violations, 0, "{what}");
    }
}

#[test]
fn under_an_admission_cap_the_ramp_adapts_without_a_storm() {
    let sc = Scenario::builtin("overload").unwrap();
    let on = report(&sc, "policy", 1);
    let off = report(&sc, "policy:fleet-off", 1);
    assert!(!on.storm, "{:?}", on.storm_reasons);
    assert_eq!(on.unrecovered, 0);
    assert!(
        on.attempts <= off.attempts,
        "{} > {}",
        on.attempts,
        off.attempts
    );
    assert!(on.rejected_attempts <= off.rejected_attempts);
}

/// The run of `sc` is the same event for event with fleet recovery on and
/// off.
fn left_to_the_shards(sc: &Scenario, seed: u64) -> Result<(), TestCaseError> {
    let on = report(sc, "policy", seed);
    let off = report(sc, "policy:fleet-off", seed);
    prop_assert_eq!(&on.trace_hash, &off.trace_hash, "{:?}", sc.faults);
    prop_assert_eq!(on.attempts, off.attempts);
    prop_assert_eq!(on.recovery_max_ms, off.recovery_max_ms);
    Ok(())
}

#[test]
fn a_partial_fault_is_neither_held_nor_hurried() {
    for mode in [DownMode::Refuse, DownMode::Blackhole] {
        for scope in [
            Scope::Fraction { fraction: 0.1 },
            Scope::Shards { from: 7, to: 8 },
        ] {
            let mut sc = frontier::scenario(1000, 60, mode);
            sc.faults[0].scope = scope;
            left_to_the_shards(&sc, 1).unwrap();
        }
    }
}

const SHARDS: u32 = 40;
const HEAL_MS: u64 = 400_000;

/// A fault of at most two shards' links (fewer than the three that trip).
fn own_link_fault() -> impl Strategy<Value = Fault> {
    let mode = prop_oneof![Just(DownMode::Refuse), Just(DownMode::Blackhole)];
    let kind = prop_oneof![
        mode.clone().prop_map(|mode| FaultKind::Outage { mode }),
        (1_000u64..60_000, 500u64..30_000, mode).prop_map(|(up, down, mode)| {
            FaultKind::Flapping {
                min_up_ms: up,
                max_up_ms: up * 2,
                min_down_ms: down,
                max_down_ms: down * 2,
                mode,
            }
        }),
        Just(FaultKind::HalfOpen),
        (50u64..5_000).prop_map(|after_ms| FaultKind::ConnectThenDrop { after_ms }),
    ];
    (
        30_000u64..HEAL_MS - 20_000,
        1_000u64..180_000,
        0u32..SHARDS,
        1u32..3,
        kind,
    )
        .prop_map(|(at_ms, duration_ms, from, width, kind)| Fault {
            at_ms,
            duration_ms,
            scope: Scope::Shards {
                from,
                to: (from + width).min(SHARDS),
            },
            kind,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(32)
    ))]

    #[test]
    fn faults_of_a_shard_or_two_are_left_to_the_shards(
        seed in any::<u64>().no_shrink(),
        faults in prop::collection::vec(own_link_fault(), 1..4),
    ) {
        // Faults that overlap in time could bring three shards down
        // together; keep them one at a time, as "a shard's own link".
        let mut faults = faults;
        faults.sort_by_key(|f| f.at_ms);
        let mut end: u64 = 0;
        faults.retain(|f| {
            let keep = f.at_ms >= end.saturating_add(60_000);
            if keep {
                end = f.at_ms + f.duration_ms;
            }
            keep
        });
        let sc = Scenario {
            name: "own-links".to_owned(),
            shards: SHARDS,
            heal_at_ms: HEAL_MS,
            recovery_bound_ms: 600_000,
            duration_ms: HEAL_MS + 300_000,
            gateway: Gateway {
                max_concurrency: 4,
                ..Gateway::default()
            },
            faults_after_startup: false,
            faults,
            ..Scenario::default()
        };
        left_to_the_shards(&sc, seed)?;
    }
}
