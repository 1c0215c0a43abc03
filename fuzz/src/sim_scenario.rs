//! The `sim_scenario` target: arbitrary scenario files into the
//! simulator's parser, and what it accepts into a short run.
//!
//! A scenario the parser accepts must pass its own validation, come back
//! unchanged from a write and a re-read, and run: shrunk to a small fleet
//! and a short time so each input stays quick, it must finish within its
//! event budget, give the same report twice for one seed, and keep the
//! policy's guarantees (one socket per shard at most, no identify over the
//! gateway's limit, no retry after a fatal code, no dispatch delivered
//! twice) whatever links, faults and gateway rules the file describes.

use crate::Outcome;
use reconnect_sim::{Budget, DEFAULT_MODEL, Scenario, model, run_report};

/// The largest fleet an accepted scenario is run with.
pub const MAX_RUN_SHARDS: u32 = 6;
/// The longest simulated time an accepted scenario is run for: 20 minutes.
pub const MAX_RUN_MS: u64 = 20 * 60_000;
/// Events one shrunk run may take. A fleet of six shards needs tens of
/// thousands in twenty minutes; more is a livelock in the model or the
/// policy.
pub const MAX_RUN_EVENTS: u64 = 2_000_000;

/// Parses `data` as a scenario file and checks what the parser accepts.
///
/// # Panics
///
/// When the parser or the simulator panics, an accepted scenario fails
/// validation or does not round-trip, or its run breaks a guarantee, goes
/// over its budget or does not repeat itself.
pub fn check(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::Refused;
    };
    let Ok(scenario) = Scenario::from_json(text) else {
        return Outcome::Refused;
    };
    if let Err(e) = scenario.validate() {
        panic!("accepted, then refused: {e}: {text:?}");
    }
    let written = serde_json::to_string(&scenario).expect("a scenario serializes");
    let reread = Scenario::from_json(&written)
        .unwrap_or_else(|e| panic!("its own output {written} is refused: {e}"));
    assert_eq!(reread, scenario, "changed by a write and a re-read");

    let small = shrunk(scenario);
    let policy = model(DEFAULT_MODEL).expect("the default model exists");
    let budget = Budget {
        max_events: MAX_RUN_EVENTS,
        max_wall_s: 600,
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
/// of simulated time, still valid.
fn shrunk(mut scenario: Scenario) -> Scenario {
    scenario.shards = scenario.shards.min(MAX_RUN_SHARDS);
    scenario.duration_ms = scenario.duration_ms.min(MAX_RUN_MS);
    scenario.heal_at_ms = scenario.heal_at_ms.min(scenario.duration_ms);
    scenario
}
