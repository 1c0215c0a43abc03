//! Memory is bounded by the fleet, not by simulated time: a long outage
//! against a model that retries at once keeps only a window of times per
//! shard, a per-second series as long as the run, and a queue within the
//! fleet's cap.

use reconnect_sim::{Budget, Scenario, model, pending_cap};

/// `shards` shards behind a refused outage of `hours` hours.
fn long_outage(shards: u32, hours: u64) -> Scenario {
    let outage_ms = hours * 3_600_000;
    let json = format!(
        r#"{{"name": "long-outage", "shards": {shards}, "heal_at_ms": {heal},
            "duration_ms": {end},
            "faults": [{{"at_ms": 10000, "duration_ms": {outage_ms},
              "scope": {{"kind": "all"}}, "kind": {{"kind": "outage", "mode": "refuse"}}}}]}}"#,
        heal = 10_000 + outage_ms,
        end = 10_000 + outage_ms + 600_000,
    );
    Scenario::from_json(&json).expect("valid scenario")
}

#[test]
fn a_long_outage_keeps_one_window_of_times_per_shard() {
    let sc = long_outage(4, 2);
    let m = model("policy:none").expect("model");
    let rec = reconnect_sim::run(&sc, &m, 3, Budget::default()).expect("run");
    let dials: u64 = rec.attempts.count();
    assert!(
        dials > 10_000,
        "the model retries all through the outage: {dials}"
    );
    for a in rec.attempts.iter().chain(rec.arrivals.iter()) {
        // Only the times inside the last 60 s are held, never the run's.
        assert!(a.held() as u64 <= u64::from(a.peak()).max(1), "{a:?}");
        assert!((a.held() as u64) < dials / 10);
    }
    for a in rec.arrivals_100ms.iter() {
        assert!(a.held() <= a.peak().max(1) as usize);
    }
    // One counter a simulated second the scenario may last, however many
    // attempts fill it.
    let seconds = ((sc.startup_limit_ms + sc.duration_ms) / 1_000 + 1) as usize;
    assert!(rec.attempts_per_s.len() <= seconds);
    assert!(rec.arrivals_per_s.len() <= seconds);
    assert!(rec.attempts_per_schedule_s.len() <= seconds);
    assert!(rec.sessions.len() <= 64, "sessions: {}", rec.sessions.len());
    assert!(rec.queue_high_water <= pending_cap(sc.shards));
}
