//! Failures the property tests found, kept as named tests with the seed and
//! the shrunk fault schedule written out.

use reconnect_sim::scenario::{DownMode, Fault, FaultKind, Gateway, Scenario, Scope};
use reconnect_sim::{Budget, model, run_report};

fn scenario(faults: Vec<Fault>) -> Scenario {
    Scenario {
        name: "regression".to_owned(),
        shards: 40,
        heal_at_ms: 720_000,
        recovery_bound_ms: 600_000,
        duration_ms: 1_320_000,
        gateway: Gateway {
            max_concurrency: 4,
            // The schedules were found under the earlier defaults: an assumed
            // cap of 200 handshakes/s and a million session starts.
            admission_per_s: 200,
            session_start_total: 1_000_000,
            session_start_remaining: 1_000_000,
            ..Gateway::default()
        },
        // The fault times count from the start of the run, as when the
        // schedules were found, and the whole run is judged.
        faults_after_startup: false,
        faults,
        ..Scenario::default()
    }
}

/// Packet loss delayed one Identify by retransmissions; the next shard of
/// its bucket, granted 5.25 s later, reached the gateway less than 5 s after
/// it. The limiter now waits 5 s after the previous Identify is settled.
#[test]
fn regression_loss_delays_an_identify_into_the_next_ones_window() {
    let sc = scenario(vec![
        Fault {
            at_ms: 330_968,
            duration_ms: 164_430,
            scope: Scope::All,
            kind: FaultKind::Outage {
                mode: DownMode::Refuse,
            },
        },
        Fault {
            at_ms: 530_929,
            duration_ms: 55_569,
            scope: Scope::All,
            kind: FaultKind::Loss {
                probability: 0.184_515_064_395_339_68,
            },
        },
    ]);
    let r = run_report(
        &sc,
        &model("policy").unwrap(),
        13_314_213_557_641_627_043,
        Budget::default(),
    )
    .unwrap();
    assert_eq!(r.identify_violations, 0);
    assert!(!r.storm, "{:?}", r.storm_reasons);
}

/// A black-holed link leaves the gateway holding a socket the client has
/// rightly given up on; the client itself never holds two.
#[test]
fn regression_black_hole_flapping_never_gives_a_client_two_sockets() {
    let sc = scenario(vec![Fault {
        at_ms: 60_064,
        duration_ms: 123_264,
        scope: Scope::All,
        kind: FaultKind::Flapping {
            min_up_ms: 1_000,
            max_up_ms: 1_000,
            min_down_ms: 3_338,
            max_down_ms: 3_338,
            mode: DownMode::Blackhole,
        },
    }]);
    let r = run_report(
        &sc,
        &model("policy").unwrap(),
        8_984_227_021_745_388_238,
        Budget::default(),
    )
    .unwrap();
    assert_eq!(r.max_open_sockets_per_shard, 1);
    assert!(!r.storm, "{:?}", r.storm_reasons);
}

/// A shard's Identify went into a socket a flapping link had black-holed,
/// so its bucket stayed shut until that handshake timed out and settled
/// (30 s + 7 s); the next shard of the bucket, waiting for its grant on an
/// open socket, gave up after 30 s and reconnected on a healthy link. The
/// wait for a grant now lasts a handshake plus the settle window.
#[test]
fn regression_a_lost_identify_does_not_time_out_the_next_shard_of_its_bucket() {
    let sc = scenario(vec![
        Fault {
            at_ms: 60_000,
            duration_ms: 1_000,
            scope: Scope::Fraction { fraction: 0.05 },
            kind: FaultKind::Outage {
                mode: DownMode::Refuse,
            },
        },
        Fault {
            at_ms: 370_393,
            duration_ms: 16_087,
            scope: Scope::Fraction {
                fraction: 0.942_263_378_750_655_7,
            },
            kind: FaultKind::InvalidSessions { resumable: false },
        },
        Fault {
            at_ms: 435_536,
            duration_ms: 1_000,
            scope: Scope::All,
            kind: FaultKind::Outage {
                mode: DownMode::Refuse,
            },
        },
        Fault {
            at_ms: 367_339,
            duration_ms: 32_857,
            scope: Scope::Fraction {
                fraction: 0.766_040_613_978_089_3,
            },
            kind: FaultKind::Flapping {
                min_up_ms: 27_669,
                max_up_ms: 32_379,
                min_down_ms: 500,
                max_down_ms: 500,
                mode: DownMode::Blackhole,
            },
        },
    ]);
    let r = run_report(
        &sc,
        &model("policy").unwrap(),
        10_784_836_799_261_569_971,
        Budget::default(),
    )
    .unwrap();
    assert_eq!(r.healthy_link_reconnects, 0);
    assert!(!r.storm, "{:?}", r.storm_reasons);
}

/// Extra latency on some links (378 ± 76 ms and 606 ± 10 ms, overlapping)
/// while every socket is cut 3.2 s after it opens: the policy's attempt
/// ceiling, counting attempts by when they were dialled, spaced a shard's
/// first and eleventh dials 61 s apart, but the first reached the gateway
/// about a second later than the eleventh would, so the gateway saw 11
/// handshakes within 60 s. The ceiling now counts each attempt by when it
/// reached the gateway (when its upgrade was answered, or when it ended
/// unanswered), which no difference in latency can move earlier than the
/// gateway saw it, over a window of exactly a minute.
#[test]
fn regression_latency_differences_do_not_squeeze_the_attempt_ceiling_into_a_storm() {
    let sc = scenario(vec![
        Fault {
            at_ms: 315_578,
            duration_ms: 112_417,
            scope: Scope::All,
            kind: FaultKind::InvalidSessions { resumable: false },
        },
        Fault {
            at_ms: 382_426,
            duration_ms: 62_535,
            scope: Scope::Fraction {
                fraction: 0.223_573_905_209_132_92,
            },
            kind: FaultKind::Latency {
                extra_ms: 378,
                jitter_ms: 76,
            },
        },
        Fault {
            at_ms: 443_838,
            duration_ms: 37_278,
            scope: Scope::Fraction {
                fraction: 0.486_461_808_416_976_56,
            },
            kind: FaultKind::Latency {
                extra_ms: 606,
                jitter_ms: 10,
            },
        },
        Fault {
            at_ms: 392_608,
            duration_ms: 161_354,
            scope: Scope::All,
            kind: FaultKind::ConnectThenDrop { after_ms: 3_156 },
        },
    ]);
    let r = run_report(
        &sc,
        &model("policy").unwrap(),
        2_808_660_887_054_864_795,
        Budget::default(),
    )
    .unwrap();
    assert!(!r.storm, "{:?}", r.storm_reasons);
    assert_eq!(r.identify_violations, 0);
}
