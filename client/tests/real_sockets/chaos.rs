//! The flapping-link soak: the client against the loopback gateway through
//! the fault proxy, for 30 s of a link that goes down (reset, closed, or a
//! black hole) and comes back, with latency, jitter and sliced frames all
//! along, and protocol faults (op 7, op 9, server closes, op 1) on top.
//!
//! Checked: no storm (every dial paced by a plan, never early, never more
//! attempts than the policy's own floors allow per outage), no dispatch
//! lost across resumes and none delivered twice (sequence continuity), the
//! client caught up with the gateway at the end, one session throughout,
//! and never two sockets open at once for it. The figures are printed
//! (`cargo test -p reconnect-client --test real_sockets chaos -- --nocapture`).

use std::time::Duration;

use reconnect_policy::{BackoffConfig, BackoffStrategy, PolicyConfig, Timestamp};
use reconnect_testkit::gateway::{Fault, GatewayConfig};
use reconnect_testkit::proxy::{Direction, DownMode, Flap, Period, Toxic, ToxicSpec};

use crate::support::{
    Harness, bounded, builder, continuity, gateway_behind_proxy, gateway_config, link_policy,
    sessions,
};

/// How long the link flaps.
const SOAK_MS: u64 = 30_000;
/// The gateway's protocol faults come this often.
const FAULT_EVERY_MS: u64 = 4_500;

/// The soak's policy: the link-fault policy with jittered backoff (equal
/// jitter, 100 ms to 1 s).
fn soak_policy(url: &str) -> PolicyConfig {
    PolicyConfig {
        backoff: BackoffConfig {
            strategy: BackoffStrategy::EqualJitter,
            base_ms: 100,
            cap_ms: 1_000,
        },
        ..link_policy(url)
    }
}

/// The most attempts one outage of `outage_ms` can cost under `config`:
/// the first, then every retry whose wait fits. Each wait is at least the
/// guard and, with equal jitter, at least half the nominal delay.
fn max_attempts_per_outage(config: &PolicyConfig, outage_ms: u64) -> u64 {
    let mut waited = 0;
    let mut attempts = 1;
    for retry in 1.. {
        waited += (config.backoff.exponential(retry) / 2).max(config.guard_ms);
        if waited > outage_ms {
            break;
        }
        attempts += 1;
    }
    attempts
}

/// The periods of `flap` that start within `ms`.
fn schedule_within(flap: &Flap, ms: u64) -> Vec<Period> {
    let mut at = 0;
    flap.periods()
        .take_while(|p| {
            at += p.up_ms;
            let starts = at < ms;
            at += p.down_ms;
            starts
        })
        .collect()
}

/// The most dials in any `window_ms`.
fn busiest_window(dials: &[Timestamp], window_ms: u64) -> usize {
    (0..dials.len())
        .map(|i| {
            dials[i..]
                .iter()
                .take_while(|d| d.saturating_since(dials[i]) < window_ms)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_link_soak() {
    bounded(SOAK_MS / 1_000 + 30, async {
        let (gw, proxy) = gateway_behind_proxy(
            GatewayConfig {
                event_padding: 64,
                session_timeout_ms: 60_000,
                ..gateway_config()
            },
            42,
        )
        .await;
        for direction in [Direction::Upstream, Direction::Downstream] {
            proxy.add_toxic(ToxicSpec::new(
                format!("latency-{direction:?}"),
                Toxic::Latency {
                    latency_ms: 3,
                    jitter_ms: 2,
                },
                direction,
            ));
        }
        proxy.add_toxic(ToxicSpec::new(
            "slicer",
            Toxic::Slicer {
                average_size: 512,
                size_variation: 256,
                delay_us: 0,
            },
            Direction::Downstream,
        ));
        let flap = Flap {
            up_ms: (1_000, 3_000),
            down_ms: (300, 3_000),
            modes: vec![DownMode::Reset, DownMode::Close, DownMode::BlackHole],
            // A seed whose first 30 s go down every way, with black holes
            // long enough to outlast zombie detection (checked below).
            seed: 2,
        };
        let schedule = schedule_within(&flap, SOAK_MS);
        let count = |mode| schedule.iter().filter(|p| p.mode == mode).count();
        let long_holes = schedule
            .iter()
            .filter(|p| p.mode == DownMode::BlackHole && p.down_ms > 2_500)
            .count();
        assert!(
            count(DownMode::Reset) >= 2 && count(DownMode::Close) >= 2 && long_holes >= 2,
            "the flap schedule no longer covers every way down: {schedule:?}"
        );
        let config = soak_policy(&proxy.url());
        let h = Harness::start(builder(config.clone()));
        h.wait_streaming_past(5, 5).await;

        proxy.start_flapping(flap.clone()).unwrap();
        let faults = [
            Fault::Reconnect,
            Fault::InvalidSession { resumable: true },
            Fault::Close { code: 4000 },
            Fault::HeartbeatRequest,
            Fault::ReconnectAndClose { code: 4000 },
            Fault::Close { code: 1001 },
        ];
        let mut episodes_from_faults = 0;
        for i in 0..(SOAK_MS / FAULT_EVERY_MS) {
            tokio::time::sleep(Duration::from_millis(FAULT_EVERY_MS)).await;
            let fault = faults[usize::try_from(i).unwrap() % faults.len()].clone();
            if fault != Fault::HeartbeatRequest {
                episodes_from_faults += 1;
            }
            gw.inject(fault);
        }
        tokio::time::sleep(Duration::from_millis(SOAK_MS % FAULT_EVERY_MS)).await;
        proxy.stop_flapping();

        // Settle: the link is up for good; the client must catch up with
        // everything the gateway generated for its session.
        h.wait("a connection after the soak", 15, |h| {
            h.figures().state.is_connected()
        })
        .await;
        let session = h.current_session().unwrap();
        let target = gw
            .sessions()
            .into_iter()
            .find(|s| s.id == session)
            .unwrap()
            .last_seq;
        h.wait("the client to catch up", 10, |h| {
            h.last_seq(&session).is_some_and(|last| last >= target)
        })
        .await;

        let figures = h.figures();
        let stats = gw.stats();
        let proxy_stats = proxy.stats();
        let plans = h.plans();
        let dials = h.dials();
        let events = h.events();
        h.close().await.unwrap();

        // Sequence continuity: nothing lost across resumes, nothing twice.
        let c = continuity(&events);
        let delivered_by_session = sessions(&events);
        let abandoned: u64 = gw
            .sessions()
            .iter()
            .filter(|s| s.id != session)
            .map(|s| {
                let last = delivered_by_session
                    .get(&s.id)
                    .and_then(|seqs| seqs.last().copied())
                    .unwrap_or(0);
                s.last_seq.saturating_sub(last)
            })
            .sum();

        // No storm.
        let episodes = proxy_stats.downs + episodes_from_faults;
        let outage_ms = flap.down_ms.1
            + 2 * gateway_config().heartbeat_interval_ms
            + config.timeouts.close_ms
            + config.timeouts.connect_ms;
        let per_outage = max_attempts_per_outage(&config, outage_ms);
        let bound = 1 + episodes * per_outage;

        println!(
            "soak: {} s of flapping ({} downs, {} of them black holes), {} protocol faults",
            SOAK_MS / 1_000,
            proxy_stats.downs,
            proxy_stats.black_holes,
            episodes_from_faults
        );
        println!(
            "  attempts {} (bound {bound} = 1 + {episodes} outages x {per_outage}), most in any 5 s: {}",
            figures.policy.attempts,
            busiest_window(&dials, 5_000)
        );
        println!(
            "  resumes {} (sent {}), identifies {}, re-identifies {}, zombies {}, dials held in a black hole {}",
            figures.policy.resumes_succeeded,
            figures.policy.resumes_sent,
            figures.policy.identifies_sent,
            figures.reidentifies(),
            figures.policy.zombies,
            proxy_stats.held
        );
        println!(
            "  events delivered {} (with a sequence number: {}), lost {}, duplicates {}, duplicates dropped by the client {}, left on abandoned sessions {}",
            figures.events_delivered,
            c.delivered,
            c.lost,
            c.duplicates,
            figures.policy.duplicate_dispatches,
            abandoned
        );
        println!(
            "  gateway: {} connections, {} resumes, {} replayed events, max sockets per session {}; proxy: {} dials refused, {} links reset, {} closed",
            stats.connections,
            stats.resumes,
            stats.replayed,
            stats.max_sockets_per_session,
            proxy_stats.refused,
            proxy_stats.resets,
            proxy_stats.closes
        );

        assert_eq!((c.lost, c.duplicates), (0, 0), "{c:?}");
        assert!(c.delivered > 500, "{c:?}");
        assert_eq!(abandoned, 0);
        // The flap and this test's clock start together; a period starting
        // right at the end may fall on either side.
        let downs = |ms| u64::try_from(schedule_within(&flap, ms).len()).unwrap();
        assert!(
            (downs(SOAK_MS - 500)..=downs(SOAK_MS + 500)).contains(&proxy_stats.downs),
            "{proxy_stats:?}"
        );
        // The black holes were long enough to be noticed: a zombie found,
        // or a dial held in the hole.
        assert!(figures.policy.zombies + proxy_stats.held >= 1, "{figures:?} {proxy_stats:?}");
        assert!(figures.policy.resumes_succeeded >= 5, "{figures:?}");
        assert_eq!(figures.policy.identifies_sent, 1, "{figures:?}");
        assert_eq!((stats.identifies_rate_limited, stats.resumes_refused, stats.invalid_seq), (0, 0, 0));
        assert_eq!(stats.sessions_ended_by_client, 0);
        assert_eq!(stats.max_sockets_per_session, 1, "{stats:?}");
        assert_eq!(figures.max_sockets_open, 1);
        assert!(figures.policy.attempts <= bound, "storm: {} attempts > {bound}", figures.policy.attempts);
        assert_eq!(dials.len(), plans.len() + 1, "a dial without a plan");
        for (plan, dial) in plans.iter().zip(&dials[1..]) {
            assert!(*dial >= plan.at, "dialled early: {plan:?} at {dial:?}");
            assert!(plan.backoff_ms <= config.backoff.cap_ms, "{plan:?}");
        }
        for pair in dials.windows(2) {
            assert!(pair[1].saturating_since(pair[0]) >= config.guard_ms, "{dials:?}");
        }
    })
    .await;
}
