//! One scenario per reconnect bug gateway clients have shipped (the list
//! in the README): each one provoked over real sockets, with the client's
//! and the gateway's own accounts checked against each other.

use std::time::Duration;

use reconnect_client::Notice;
use reconnect_policy::{ConnectionId, PolicyConfig, Recovery};
use reconnect_testkit::gateway::{Fault, UNKNOWN_EVENT_NAME};

use crate::support::{
    Harness, assert_continuous, bounded, builder, gateway, gateway_config, policy,
};

/// Connection ids in the order they were dialled, each with whether the
/// previous socket was reported gone before it (closed, dropped or failed).
fn old_socket_gone_before_each_dial(notices: &[Notice]) -> Vec<(ConnectionId, bool)> {
    let mut open: Option<ConnectionId> = None;
    let mut order = Vec::new();
    for notice in notices {
        match notice {
            Notice::Connecting { connection, .. } => {
                order.push((*connection, open.is_none()));
                open = Some(*connection);
            }
            Notice::Closed { connection, .. }
            | Notice::Aborted { connection, .. }
            | Notice::ConnectFailed { connection, .. }
                if open == Some(*connection) =>
            {
                open = None;
            }
            _ => {}
        }
    }
    order
}

/// Bug: a client reconnects twice for one event — once for op 7, once
/// more for the close the gateway sends right after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_op7_followed_by_a_server_close_is_one_reconnect() {
    bounded(20, async {
        for code in [4000, 1001] {
            let gw = gateway(gateway_config()).await;
            let h = Harness::start(builder(policy(&gw.url())));
            h.wait_streaming_past(5, 5).await;
            gw.inject(Fault::ReconnectAndClose { code });
            h.wait("the resume", 5, |h| {
                h.figures().policy.resumes_succeeded == 1
            })
            .await;
            // Give a second reconnect every chance to show up.
            tokio::time::sleep(Duration::from_millis(800)).await;
            let figures = h.figures();
            assert_eq!(
                figures.policy.attempts, 2,
                "server close {code}: {figures:?}"
            );
            assert_eq!(h.plans().len(), 1, "server close {code}: {:?}", h.plans());
            assert_eq!(gw.stats().connections, 2);
            assert_eq!(gw.stats().identifies, 1);
            assert_continuous(&h.events());
            h.close().await.unwrap();
        }
    })
    .await;
}

/// Bug: a client opens the new socket while the old one is still open,
/// so the session has two sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_socket_is_closed_before_the_new_one_opens() {
    bounded(30, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(policy(&gw.url())));
        h.wait_streaming_past(5, 5).await;
        let faults = [
            Fault::Reconnect,
            Fault::Close { code: 4000 },
            Fault::Drop,
            Fault::Reset,
            Fault::InvalidSession { resumable: true },
        ];
        for (i, fault) in faults.into_iter().enumerate() {
            let resumes = h.figures().policy.resumes_succeeded;
            gw.inject(fault.clone());
            h.wait("the resume", 5, |h| {
                h.figures().policy.resumes_succeeded > resumes
            })
            .await;
            assert_eq!(
                h.figures().policy.resumes_succeeded,
                u64::try_from(i).unwrap() + 1,
                "{fault:?}"
            );
        }
        // The zombie path: the client closes a socket it cannot hear from.
        gw.inject(Fault::Acks { on: false });
        h.wait("a zombie", 5, |h| h.figures().policy.zombies == 1)
            .await;
        gw.inject(Fault::Acks { on: true });
        h.wait("the resume", 5, |h| {
            h.figures().policy.resumes_succeeded == 6
        })
        .await;

        let order = old_socket_gone_before_each_dial(&h.notices());
        assert_eq!(order.len(), 7, "{order:?}");
        assert!(order.iter().all(|(_, gone)| *gone), "{order:?}");
        assert_eq!(h.figures().max_sockets_open, 1);
        let stats = gw.stats();
        assert_eq!(stats.max_sockets_per_session, 1, "{stats:?}");
        assert_eq!(stats.identifies, 1);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

/// Bug: a client resumes with a sequence number other than the last one
/// it received (one from the new connection, or a stale one), so events
/// are replayed twice or lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_carries_the_last_sequence_received() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(policy(&gw.url())));
        for round in 1..=3 {
            h.wait_streaming_past(10 * round, 5).await;
            gw.inject(Fault::Drop);
            h.wait("the resume", 5, |h| {
                h.figures().policy.resumes_succeeded == round
            })
            .await;
        }
        h.wait_streaming_past(50, 5).await;
        let stats = gw.stats();
        assert_eq!(stats.resume_log.len(), 3);
        for resume in &stats.resume_log {
            // The gateway went on generating events while the client was
            // away (every 20 ms; the client waits at least 50 ms), so the
            // replay is not empty.
            assert!(resume.server_last_seq > resume.seq, "{resume:?}");
        }
        // A number too high is refused with 4007; one too low replays
        // events the client already had, which it would count as
        // duplicates. Neither happened, and nothing is missing.
        assert_eq!(stats.invalid_seq, 0);
        assert_eq!(stats.resumes_refused, 0);
        assert_eq!(h.figures().policy.duplicate_dispatches, 0);
        let continuity = assert_continuous(&h.events());
        assert!(continuity.delivered > 50);
        h.close().await.unwrap();
    })
    .await;
}

/// Bug: a client closes with 1000 or 1001 before resuming, which ends the
/// session on the gateway, so every resume fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_never_closes_with_1000_or_1001_before_a_resume() {
    bounded(30, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(policy(&gw.url())));
        h.wait_streaming_past(5, 5).await;
        // Every way the client itself closes a socket it means to resume.
        gw.inject(Fault::Reconnect);
        h.wait("resume 1", 5, |h| h.figures().policy.resumes_succeeded == 1)
            .await;
        gw.inject(Fault::InvalidSession { resumable: true });
        h.wait("resume 2", 5, |h| h.figures().policy.resumes_succeeded == 2)
            .await;
        gw.inject(Fault::Acks { on: false });
        h.wait("a zombie", 5, |h| h.figures().policy.zombies == 1)
            .await;
        gw.inject(Fault::Acks { on: true });
        h.wait("resume 3", 5, |h| h.figures().policy.resumes_succeeded == 3)
            .await;

        let stats = gw.stats();
        assert!(!stats.client_close_codes.is_empty());
        assert!(
            stats
                .client_close_codes
                .iter()
                .all(|code| !matches!(code, 1000 | 1001)),
            "{:?}",
            stats.client_close_codes
        );
        assert_eq!(stats.sessions_ended_by_client, 0);
        assert_eq!(stats.resumes_refused, 0);
        assert_eq!(stats.identifies, 1);

        // A shutdown, on the other hand, is meant to end the session.
        h.close().await.unwrap();
        let stats = gw.stats();
        assert_eq!(stats.client_close_codes.last(), Some(&1000));
        assert_eq!(stats.sessions_ended_by_client, 1);
    })
    .await;
}

/// Bug: the backoff is applied twice (the delay doubles twice per retry,
/// or the driver waits on top of the policy's wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backoff_grows_once_per_failed_attempt() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        // Keep resuming through the refusals, so every retry is paced by
        // the backoff alone (no identify windows in between).
        let mut config = policy(&gw.url());
        config.resume.drop_session_on_dial_failure = false;
        config.resume.max_failed_resumes = 100;
        let (backoff, config_guard_ms) = (config.backoff, config.guard_ms);
        let h = Harness::start(builder(config));
        h.wait_streaming_past(5, 5).await;
        gw.inject(Fault::Refuse { on: true });
        gw.inject(Fault::Drop);
        h.wait("seven plans", 10, |h| h.plans().len() >= 7).await;
        gw.inject(Fault::Refuse { on: false });
        h.wait("the resume", 5, |h| {
            h.figures().policy.resumes_succeeded == 1
        })
        .await;

        let plans = h.plans();
        for (i, plan) in plans.iter().take(7).enumerate() {
            let retry = u32::try_from(i).unwrap() + 1;
            assert_eq!(plan.retry, retry, "{plans:?}");
            assert_eq!(plan.backoff_ms, backoff.exponential(retry), "{plans:?}");
        }
        // The client dials when the plan says, not later: no wait of its
        // own on top (150 ms of slack for a loaded machine, well under the
        // 200+ ms a second doubling would add from the third retry on).
        let dials = h.dials();
        assert_eq!(dials.len(), plans.len() + 1);
        for (plan, dial) in plans.iter().zip(&dials[1..]) {
            assert!(
                *dial >= plan.at,
                "dialled before the plan: {plan:?} {dial:?}"
            );
            let late = dial.saturating_since(plan.at);
            assert!(late <= 150, "dialled {late} ms after the plan {plan:?}");
        }
        // Never two dials closer than the guard, and the gateway saw each
        // of them (and nothing else).
        for pair in dials.windows(2) {
            assert!(
                pair[1].saturating_since(pair[0]) >= config_guard_ms,
                "{dials:?}"
            );
        }
        assert_eq!(gw.stats().connections, dials.len() as u64);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

/// Bug: the backoff resets as soon as a connection opens (or gets READY),
/// so a link that accepts and then drops at once is retried at full speed
/// for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backoff_is_not_reset_by_a_link_that_drops_at_once() {
    bounded(25, async {
        let gw = gateway(gateway_config()).await;
        let config: PolicyConfig = policy(&gw.url());
        let (backoff, window_ms) = (config.backoff, config.stability.window_ms);
        let h = Harness::start(builder(config));
        h.wait_streaming_past(5, 5).await;
        // Every connection from now on is dropped 100 ms after RESUMED,
        // well inside the 1 s stability window.
        gw.inject(Fault::DropAfterEstablished {
            after_ms: Some(100),
        });
        gw.inject(Fault::Drop);
        h.wait("six plans", 10, |h| h.plans().len() >= 6).await;
        let plans = h.plans();
        for (i, plan) in plans.iter().take(6).enumerate() {
            let retry = u32::try_from(i).unwrap() + 1;
            assert_eq!(plan.retry, retry, "the backoff was reset: {plans:?}");
            assert_eq!(plan.backoff_ms, backoff.exponential(retry));
        }
        assert!(
            h.figures().policy.resumes_succeeded >= 5,
            "{:?}",
            h.figures()
        );

        // A connection that stays up past the window does reset it.
        gw.inject(Fault::DropAfterEstablished { after_ms: None });
        let resumes = h.figures().policy.resumes_succeeded;
        h.wait("a lasting resume", 5, |h| {
            h.figures().policy.resumes_succeeded > resumes
        })
        .await;
        h.wait("a stable connection", 5, |h| {
            matches!(
                h.figures().state,
                reconnect_policy::PolicyState::Connected { stable: true }
            )
        })
        .await;
        let uptime = h.figures().uptime.unwrap();
        assert!(uptime >= Duration::from_millis(window_ms), "{uptime:?}");
        let before = h.plans().len();
        gw.inject(Fault::Drop);
        h.wait("the next plan", 5, |h| h.plans().len() > before)
            .await;
        let last = *h.plans().last().unwrap();
        assert_eq!(last.retry, 1, "{last:?}");
        assert_eq!(last.recovery, Recovery::Resume);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

/// Bug: an event name or opcode the client does not know crashes its loop
/// (and the crash becomes a reconnect, or worse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_events_and_opcodes_do_not_break_the_loop() {
    bounded(20, async {
        let gw = gateway(reconnect_testkit::gateway::GatewayConfig {
            unknown_event_every: 4,
            ..gateway_config()
        })
        .await;
        let h = Harness::start(builder(policy(&gw.url())));
        h.wait_streaming_past(5, 5).await;
        gw.inject(Fault::SendText {
            text: r#"{"op":42,"d":{"future":true}}"#.to_owned(),
        });
        gw.inject(Fault::SendText {
            text: r#"{"op":0,"s":null,"t":"SOME_FUTURE_EVENT","d":[1,2,3]}"#.to_owned(),
        });
        h.wait_streaming_past(60, 5).await;
        let figures = h.figures();
        assert_eq!(figures.policy.attempts, 1, "{figures:?}");
        assert_eq!(figures.unknown_opcodes, 1);
        assert!(figures.unknown_events >= 10, "{figures:?}");
        let events = h.events();
        assert!(events.iter().any(|e| e.name == UNKNOWN_EVENT_NAME));
        assert!(events.iter().any(|e| e.name == "SOME_FUTURE_EVENT"));
        assert_continuous(&events);
        h.close().await.unwrap();
    })
    .await;
}
