//! The `sim_scenario` target: arbitrary scenario files into the
//! simulator's parser, and what it accepts into a short run.
//!
//! A scenario the parser accepts (which `from_json` has validated) must
//! come back unchanged from a write and a re-read, and run: shrunk to a
//! small fleet and a short time, and with its densest schedules thinned
//! (see [`MIN_RUN_PERIOD_MS`]) so each input stays quick, it must finish
//! within its event budget, give the same report twice for one seed, and keep the
//! policy's guarantees (one socket per shard at most, no identify over the
//! gateway's limit, no retry after a fatal code, no dispatch delivered
//! twice) whatever links, faults and gateway rules the file describes.

use crate::Outcome;
use reconnect_sim::scenario::FaultKind;
use reconnect_sim::{Budget, DEFAULT_MODEL, Scenario, model, run_report};

/// The largest fleet an accepted scenario is run with.
pub const MAX_RUN_SHARDS: u32 = 6;
/// The longest simulated time an accepted scenario is run for: 20 minutes.
pub const MAX_RUN_MS: u64 = 20 * 60_000;
/// The shortest period between a session's dispatches, and the shortest
/// dwell of a flapping link, in a shrunk run. A file may ask for 1 ms, a
/// valid but dense schedule: six shards with a dispatch every 2 ms are
/// 3.6 M events in twenty minutes, which made the first fuzzing run report
/// a budget overrun that was no livelock.
pub const MIN_RUN_PERIOD_MS: u64 = 100;
/// Events one shrunk run may take. Six shards with dispatches and flaps
/// every [`MIN_RUN_PERIOD_MS`] need some hundreds of thousands in twenty
/// minutes; more is a livelock in the model or the policy.
pub const MAX_RUN_EVENTS: u64 = 2_000_000;

/// Parses `data` as a scenario file and checks what the parser accepts.
///
/// # Panics
///
/// When the parser or the simulator panics, an accepted scenario does not
/// round-trip, or its run breaks a guarantee, goes
/// over its budget or does not repeat itself.
pub fn check(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::Refused;
    };
    let Ok(scenario) = Scenario::from_json(text) else {
        return Outcome::Refused;
    };
    let written = serde_json::to_string(&scenario).expect("a scenario serializes");
    let reread = Scenario::from_json(&written)
        .unwrap_or_else(|e| panic!("its own output {written} is refused: {e}"));
    assert_eq!(reread, scenario, "changed by a write and a re-read");

    let small = shrunk(scenario);
    let policy = model(DEFAULT_MODEL).expect("the default model exists");
    let budget = Budget {
        max_events: MAX_RUN_EVENTS,
    };
    let run = |seed| {
        run_report(&small, &policy, seed, budget)
            .unwrap_or_else(|e| panic!("{e}: {}", serde_json::json!(small)))
    };
    let report = run(1);
    let json = serde_json::to_string(&report).expect("a report serializes");
    let context = || format!("{json}\n{}", serde_json::json!(small));
    assert!(
        report.max_open_sockets_per_shard <= 1,
        "two sockets at once: {}",
        context()
    );
    assert_eq!(report.identify_violations, 0, "{}", context());
    assert_eq!(report.retries_after_fatal, 0, "{}", context());
    assert_eq!(report.events_duplicated, 0, "{}", context());
    let again = serde_json::to_string(&run(1)).expect("a report serializes");
    assert_eq!(json, again, "same seed, different report");
    Outcome::Checked
}

/// The scenario with at most [`MAX_RUN_SHARDS`] shards and [`MAX_RUN_MS`]
/// of simulated time, dispatches and flaps no denser than
/// [`MIN_RUN_PERIOD_MS`], still valid.
fn shrunk(mut scenario: Scenario) -> Scenario {
    scenario.shards = scenario.shards.min(MAX_RUN_SHARDS);
    scenario.duration_ms = scenario.duration_ms.min(MAX_RUN_MS);
    scenario.heal_at_ms = scenario.heal_at_ms.min(scenario.duration_ms);
    let dispatch = &mut scenario.gateway.dispatch_interval_ms;
    if *dispatch > 0 {
        *dispatch = (*dispatch).max(MIN_RUN_PERIOD_MS);
    }
    for fault in &mut scenario.faults {
        if let FaultKind::Flapping {
            min_up_ms,
            max_up_ms,
            min_down_ms,
            max_down_ms,
            ..
        } = &mut fault.kind
        {
            *min_up_ms = (*min_up_ms).max(MIN_RUN_PERIOD_MS);
            *max_up_ms = (*max_up_ms).max(*min_up_ms);
            *min_down_ms = (*min_down_ms).max(MIN_RUN_PERIOD_MS);
            *max_down_ms = (*max_down_ms).max(*min_down_ms);
        }
    }
    if let Err(e) = scenario.validate() {
        panic!("shrinking made the scenario invalid: {e}");
    }
    scenario
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first `sim_scenario` fuzzing run's only failure: a valid file
    /// with a dispatch every 2 ms ran six shards over the event budget.
    /// Shrunk runs now thin dispatches to one per [`MIN_RUN_PERIOD_MS`].
    #[test]
    fn dense_dispatches_are_thinned_not_a_budget_overrun() {
        let data = include_bytes!("../corpus/sim_scenario/regression-dispatch-every-2ms.json");
        assert_eq!(check(data), Outcome::Checked);
    }

    #[test]
    fn one_ms_flapping_is_thinned_and_runs() {
        let file = r#"{"shards":3,"duration_ms":600000,"heal_at_ms":300000,
            "faults":[{"at_ms":1000,"duration_ms":290000,"scope":{"kind":"all"},
            "kind":{"kind":"flapping","min_up_ms":1,"max_up_ms":1,"min_down_ms":1,"max_down_ms":1}}]}"#;
        assert_eq!(check(file.as_bytes()), Outcome::Checked);
    }
}
