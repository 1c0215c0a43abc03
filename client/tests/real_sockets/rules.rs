//! The policy's rules on real sockets: a gateway's requests cost nothing,
//! a socket dropped after every resume is not punished, and an
//! Identify-rejecting gateway sees no more than the loop limit.

use std::time::Duration;

use reconnect_client::Notice;
use reconnect_policy::{CloseCode, Note, Trigger};
use reconnect_testkit::gateway::Fault;
use tokio::time::Instant;

use crate::support::{Harness, bounded, builder, gateway, gateway_config, policy};

/// op 7 on a session that reached READY or RESUMED resumes at once, every
/// time, without counting as a failure. The loop window is scaled down
/// with the rest of the test timings (one op 7 every 400 ms here, as one
/// every 45 s is at full scale).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op7_on_a_healthy_session_resumes_at_once_every_time() {
    bounded(30, async {
        let gw = gateway(gateway_config()).await;
        let mut config = policy(&gw.url());
        config.server_requests.window_ms = 300;
        let guard_ms = config.guard_ms;
        let h = Harness::start(builder(config));
        h.wait_streaming_past(5, 5).await;
        let identifies = gw.stats().identifies;
        for n in 1..=6 {
            let sent = Instant::now();
            gw.inject(Fault::Reconnect);
            h.wait("the resume after op 7", 5, |h| {
                h.figures().policy.resumes_succeeded >= n
            })
            .await;
            let took = sent.elapsed();
            assert!(
                took < Duration::from_millis(guard_ms + 500),
                "op 7 number {n} took {took:?} to resume"
            );
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        let plans = h.plans();
        assert_eq!(plans.len(), 6, "{plans:?}");
        for plan in &plans {
            assert_eq!(plan.trigger, Trigger::Reconnect, "{plans:?}");
            assert!(!plan.counted, "{plans:?}");
            assert_eq!(plan.backoff_ms, 0, "{plans:?}");
        }
        assert_eq!(gw.stats().identifies, identifies, "a resume was refused");
        h.close().await.unwrap();
    })
    .await;
}

/// A gateway that drops the socket shortly after every RESUMED: the time
/// each connection served repays the failure that ended it, so every
/// retry waits the first retry's delay instead of climbing to the cap.
/// (At full scale: dropped every 5 s, 2 s of credit; here every 500 ms,
/// 200 ms of credit.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_dropped_after_every_resume_keeps_the_first_retrys_wait() {
    bounded(30, async {
        let gw = gateway(gateway_config()).await;
        let mut config = policy(&gw.url());
        config.stability.credit_ms = 200;
        config.resume.max_failed_resumes = 100;
        let backoff = config.backoff;
        let h = Harness::start(builder(config));
        h.wait_streaming_past(5, 5).await;
        gw.inject(Fault::DropAfterEstablished {
            after_ms: Some(500),
        });
        gw.inject(Fault::Drop);
        h.wait("ten plans", 20, |h| h.plans().len() >= 10).await;
        let plans = h.plans();
        for plan in plans.iter().take(10) {
            assert_eq!(plan.retry, 1, "the count climbed: {plans:?}");
            assert_eq!(plan.backoff_ms, backoff.exponential(1), "{plans:?}");
        }
        assert!(
            h.figures().policy.resumes_succeeded >= 9,
            "{:?}",
            h.figures()
        );
        gw.inject(Fault::DropAfterEstablished { after_ms: None });
        h.close().await.unwrap();
    })
    .await;
}

/// A gateway that closes every Identify before READY sees no more than the
/// configured loop limit before the shard switches to the long wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identify_rejecting_gateway_sees_no_more_than_the_loop_limit() {
    bounded(40, async {
        let gw = gateway(gateway_config()).await;
        gw.inject(Fault::RejectIdentify { code: Some(4000) });
        let mut config = policy(&gw.url());
        let limit = config.identify_loop.max_rejected;
        config.identify_loop.wait_ms = 600_000;
        let h = Harness::start(builder(config));
        h.wait("the loop limit", 25, |_| {
            gw.stats().identifies_rejected >= u64::from(limit)
        })
        .await;
        // Well past the identify window that paced the first ones: nothing.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let stats = gw.stats();
        assert_eq!(stats.identifies_rejected, u64::from(limit), "{stats:?}");
        assert_eq!(h.identifies_sent().len(), limit as usize);
        let last = h.plans().last().copied().unwrap();
        assert!(last.at.saturating_since(h.identifies_sent()[0]) >= 600_000);
        // The operator is told, with the code that answered.
        let noticed = h.notices().into_iter().find_map(|n| match n {
            Notice::Note(Note::IdentifyLoop {
                rejected,
                last_code,
                until,
                ..
            }) => Some((rejected, last_code, until)),
            _ => None,
        });
        let (rejected, last_code, until) = noticed.expect("an IdentifyLoop notice");
        assert_eq!(rejected, limit);
        assert_eq!(last_code.map(CloseCode::as_u16), Some(4000));
        assert!(until.saturating_since(h.identifies_sent()[0]) >= 600_000);
        h.close().await.unwrap();
    })
    .await;
}

// ----- the figures, at full scale, by hand -------------------------
//
// `cargo test -p reconnect-client --test real_sockets -- --ignored
// --nocapture --test-threads 1 rules::by_hand` runs them (about 9 minutes);
// each prints its figure and checks the bound.

/// The production defaults, pointed at the loopback gateway.
fn defaults(url: &str) -> reconnect_policy::PolicyConfig {
    reconnect_policy::PolicyConfig::with_gateway_url(url)
}

/// op 7 every 45 s for 5 minutes: each resume within 1 s of its op 7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "by hand: 5 minutes"]
async fn by_hand_op7_every_45_s_for_5_minutes() {
    bounded(400, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(defaults(&gw.url())));
        h.wait_streaming_past(5, 10).await;
        let mut took = Vec::new();
        for n in 1..=6 {
            tokio::time::sleep(Duration::from_secs(45)).await;
            let sent = Instant::now();
            gw.inject(Fault::Reconnect);
            h.wait("the resume after op 7", 10, |h| {
                h.figures().policy.resumes_succeeded >= n
            })
            .await;
            took.push(sent.elapsed());
        }
        println!("op 7 every 45 s: op 7 to RESUMED {took:?}");
        assert!(took.iter().all(|t| *t < Duration::from_secs(1)), "{took:?}");
        h.close().await.unwrap();
    })
    .await;
}

/// A 40 s outage whose first answered Resume gets op 9: READY within 6 s
/// of that op 9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "by hand: about 2 minutes"]
async fn by_hand_op9_after_a_40_s_outage() {
    bounded(200, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(defaults(&gw.url())));
        h.wait_streaming_past(5, 10).await;
        let first = h.current_session().unwrap();
        gw.inject(Fault::Refuse { on: true });
        gw.inject(Fault::Drop);
        tokio::time::sleep(Duration::from_secs(40)).await;
        gw.inject(Fault::InvalidateSessions);
        gw.inject(Fault::Refuse { on: false });
        h.wait("op 9", 90, |h| {
            h.plans()
                .iter()
                .any(|p| matches!(p.trigger, Trigger::InvalidSession { .. }))
        })
        .await;
        let op9 = Instant::now();
        h.wait("READY", 30, |h| {
            h.current_session().is_some_and(|s| s != first)
        })
        .await;
        let took = op9.elapsed();
        let plan = h
            .plans()
            .into_iter()
            .find(|p| matches!(p.trigger, Trigger::InvalidSession { .. }))
            .unwrap();
        println!("40 s outage, op 9 to READY {took:?} ({plan:?})");
        assert!(took < Duration::from_secs(6), "{took:?}");
        h.close().await.unwrap();
    })
    .await;
}

/// A gateway that rejects every Identify: no more than the loop limit
/// before the long wait, watched for a minute past the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "by hand: about 80 s"]
async fn by_hand_identify_rejecting_gateway() {
    bounded(200, async {
        let gw = gateway(gateway_config()).await;
        gw.inject(Fault::RejectIdentify { code: Some(4000) });
        let config = defaults(&gw.url());
        let limit = u64::from(config.identify_loop.max_rejected);
        let h = Harness::start(builder(config));
        h.wait("the loop limit", 60, |_| {
            gw.stats().identifies_rejected >= limit
        })
        .await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let rejected = gw.stats().identifies_rejected;
        println!(
            "identify-rejecting gateway: {rejected} Identifies (limit {limit}), last plan {:?}",
            h.plans().last()
        );
        assert_eq!(rejected, limit);
        h.close().await.unwrap();
    })
    .await;
}

/// A gateway that drops each socket 5 s after it resumed, for 5 minutes:
/// connected at least 80 % of the time. The span is as long as the op 7
/// test's: the attempt ceiling (10 handshakes a minute) caps a link that
/// lives 5 s at 50 s of 60, and a 2-minute span that also holds the
/// handshake of the connection the fault started on measures that start
/// more than the steady state (79.8 %).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "by hand: about 5 minutes"]
async fn by_hand_socket_dropped_every_5_s() {
    bounded(400, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(defaults(&gw.url())));
        h.wait_streaming_past(5, 10).await;
        gw.inject(Fault::DropAfterEstablished {
            after_ms: Some(5_000),
        });
        gw.inject(Fault::Drop);
        let start = gw.stats().accepted_at.len();
        tokio::time::sleep(Duration::from_secs(300)).await;
        let accepted = gw.stats().accepted_at;
        let accepted = &accepted[start..];
        // Each connection is up about 5 s from its start (plus the
        // handshake); the span is from the first to the last.
        let span = accepted
            .last()
            .unwrap()
            .saturating_since(*accepted.first().unwrap());
        let up: u64 = accepted
            .windows(2)
            .map(|w| w[1].saturating_since(w[0]).min(5_000))
            .sum();
        let connected = up as f64 / span as f64;
        println!(
            "socket dropped 5 s after each resume: {} connections in {span} ms, connected {:.1} %",
            accepted.len(),
            connected * 100.0
        );
        assert!(connected >= 0.8, "{connected}");
        h.close().await.unwrap();
    })
    .await;
}
