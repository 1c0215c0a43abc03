//! Every fault the loopback gateway injects, and what the client must do
//! about it: fatal codes and refused tokens stop it with an error naming
//! the cause; everything else ends in a resumed (or, when the protocol
//! says so, a new) session, paced by the policy.

use std::time::Duration;

use futures_util::StreamExt;
use reconnect_client::testing::watch;
use reconnect_client::{ClientError, Notice, Token};
use reconnect_policy::{Decision, IDENTIFY_WINDOW_MS, Note, PolicyState, Recovery, UrlError};
use reconnect_testkit::gateway::{Fault, GatewayConfig};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{
    Harness, assert_continuous, bounded, builder, gateway, gateway_config, policy,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_close_codes_stop_the_client_with_the_code_named() {
    bounded(30, async {
        // Identify is not rate-limited here: each code gets a new client.
        let gw = gateway(GatewayConfig {
            identify_interval_ms: 0,
            ..gateway_config()
        })
        .await;
        // Each client's run loop is checked: it gives up at the fatal code
        // and does nothing after.
        let checked = watch(gw.url());
        for code in [4004, 4010, 4011, 4012, 4013, 4014] {
            let h = Harness::start(builder(policy(&gw.url())));
            h.wait_streaming_past(2, 5).await;
            let connections = gw.stats().connections;
            gw.inject(Fault::Close { code });
            let error = h.join().await.unwrap_err();
            match &error {
                ClientError::FatalClose { code: got } => assert_eq!(got.as_u16(), code),
                other => panic!("close {code}: {other:?}"),
            }
            assert!(error.to_string().contains(&code.to_string()), "{error}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(
                gw.stats().connections,
                connections,
                "reconnected after {code}"
            );
        }
        checked.assert_clean();
        assert_eq!(checked.run_loops(), 6);
    })
    .await;
}

/// The client answers the server's close frame with its own (RFC 6455
/// §5.5.1) before it drops the socket, whatever the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_close_frame_is_answered() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(policy(&gw.url())));
        for (round, code) in [4000_u16, 4002, 4008].into_iter().enumerate() {
            h.wait_streaming_past(h.events().len() as u64 + 3, 5).await;
            gw.inject(Fault::Close { code });
            h.wait("the close to be answered", 5, |_| {
                gw.stats().close_replies > round as u64
            })
            .await;
        }
        h.close().await.unwrap();
    })
    .await;
}

/// A server's 1000 or 1001 is common during restarts and does not end the
/// session (only a client's does): the client resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_close_with_1000_or_1001_is_resumed() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(policy(&gw.url())));
        for (round, code) in [1000, 1001].into_iter().enumerate() {
            h.wait_streaming_past(h.events().len() as u64 + 3, 5).await;
            gw.inject(Fault::Close { code });
            let round = u64::try_from(round).unwrap() + 1;
            h.wait("the resume", 5, |h| {
                h.figures().policy.resumes_succeeded == round
            })
            .await;
            assert_eq!(
                h.figures().policy.last_close_code.map(u16::from),
                Some(code)
            );
        }
        let stats = gw.stats();
        assert_eq!((stats.identifies, stats.resumes_refused), (1, 0));
        assert_eq!(stats.sessions_ended_by_client, 0);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_or_upgrade_stops_the_client() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(
            reconnect_client::ClientBuilder::new(Token::new("not-the-token"))
                .policy(policy(&gw.url())),
        );
        let error = h.join().await.unwrap_err();
        assert!(matches!(error, ClientError::FatalClose { code } if code.as_u16() == 4004));
        assert!(
            error.to_string().contains("4004 (authentication failed)"),
            "{error}"
        );
        assert_eq!(gw.stats().bad_tokens, 1);

        let gw = gateway(gateway_config()).await;
        gw.inject(Fault::Reject {
            status: 401,
            retry_after: None,
            times: None,
        });
        let h = Harness::start(builder(policy(&gw.url())));
        let error = h.join().await.unwrap_err();
        assert_eq!(error, ClientError::Unauthorized { status: 401 });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(gw.stats().connections, 1);
        assert_eq!(gw.stats().rejected_upgrades, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_upgrade_is_retried_no_sooner_than_retry_after() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let mut config = policy(&gw.url());
        // Keep the session through the failed dial, so the retry resumes
        // and no identify window is in the way of the measurement.
        config.resume.drop_session_on_dial_failure = false;
        let h = Harness::start(builder(config));
        h.wait_streaming_past(5, 5).await;
        gw.inject(Fault::Reject {
            status: 429,
            retry_after: Some("1".to_owned()),
            times: Some(1),
        });
        gw.inject(Fault::Drop);
        h.wait("the resume", 5, |h| {
            h.figures().policy.resumes_succeeded == 1
        })
        .await;
        let plans = h.plans();
        assert_eq!(plans.len(), 2, "{plans:?}");
        assert_eq!(
            plans[1].decision,
            Decision::Wait {
                delay_ms: 1_000,
                then: Recovery::Resume
            }
        );
        let failed_at = h
            .notices()
            .iter()
            .find_map(|n| match n {
                Notice::ConnectFailed { at, .. } => Some(*at),
                _ => None,
            })
            .unwrap();
        let next_dial = *h.dials().last().unwrap();
        assert!(next_dial.saturating_since(failed_at) >= 1_000);
        // The gateway saw the same wait (give or take the millisecond
        // rounding of two clocks).
        let accepted = gw.stats().accepted_at;
        assert_eq!(accepted.len(), 3);
        assert!(
            accepted[2].saturating_since(accepted[1]) >= 998,
            "{accepted:?}"
        );
        assert_eq!(gw.stats().identifies, 1);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op9_resumable_waits_the_protocol_delay_then_resumes() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let config = policy(&gw.url());
        let (low, high) = (
            config.decision.invalid_session_wait_min_ms,
            config.decision.invalid_session_wait_max_ms,
        );
        let h = Harness::start(builder(config));
        h.wait_streaming_past(5, 5).await;
        gw.inject(Fault::InvalidSession { resumable: true });
        h.wait("the resume", 5, |h| {
            h.figures().policy.resumes_succeeded == 1
        })
        .await;
        let plan = h.plans()[0];
        let Decision::Wait { delay_ms, then } = plan.decision else {
            panic!("{plan:?}");
        };
        assert!((low..=high).contains(&delay_ms), "{plan:?}");
        assert_eq!(then, Recovery::Resume);
        assert!(*h.dials().last().unwrap() >= plan.at);
        assert_eq!(gw.stats().identifies, 1);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op9_not_resumable_starts_a_new_session_within_the_identify_limits() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let checked = watch(gw.url());
        let h = Harness::start(builder(policy(&gw.url())));
        h.wait_streaming_past(5, 5).await;
        let first = h.current_session().unwrap();
        gw.inject(Fault::InvalidSession { resumable: false });
        h.wait("a new session", 10, |h| {
            h.current_session().is_some_and(|s| s != first) && h.figures().state.is_connected()
        })
        .await;
        let plan = h.plans()[0];
        assert!(matches!(
            plan.decision,
            Decision::Wait {
                then: Recovery::Reidentify,
                ..
            }
        ));
        let identifies = h.identifies_sent();
        assert_eq!(identifies.len(), 2);
        assert!(identifies[1].saturating_since(identifies[0]) >= IDENTIFY_WINDOW_MS);
        let stats = gw.stats();
        assert_eq!((stats.identifies, stats.identifies_rate_limited), (2, 0));
        assert_eq!(h.figures().reidentifies(), 1);
        h.wait_streaming_past(5, 5).await;
        assert_continuous(&h.events());
        h.close().await.unwrap();
        assert_eq!(checked.assert_clean().identifies, 2);
    })
    .await;
}

/// Some servers send op 9 with no `d` and then close with 4006. A missing
/// `d` means "not resumable": the client identifies anew and never spends a
/// connection on a Resume the server has already refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op9_without_d_starts_a_new_session_without_a_resume() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(policy(&gw.url())));
        h.wait_streaming_past(5, 5).await;
        let first = h.current_session().unwrap();
        gw.inject(Fault::InvalidSessionWithoutData);
        h.wait("a new session", 10, |h| {
            h.current_session().is_some_and(|s| s != first) && h.figures().state.is_connected()
        })
        .await;
        assert!(matches!(
            h.plans()[0].decision,
            Decision::Wait {
                then: Recovery::Reidentify,
                ..
            }
        ));
        let stats = gw.stats();
        assert_eq!(
            (stats.identifies, stats.resumes, stats.resumes_refused),
            (2, 0, 0)
        );
        assert_eq!(
            h.figures().malformed_frames,
            0,
            "op 9 without d is not bad input"
        );
        h.close().await.unwrap();
    })
    .await;
}

/// A server that answers every Identify with a close before READY (a token
/// it refuses without 4004): the client keeps to the identify window
/// between attempts and never holds a session it was not given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifies_closed_before_ready_stay_paced() {
    bounded(30, async {
        let gw = gateway(gateway_config()).await;
        gw.inject(Fault::RejectIdentify { code: Some(4000) });
        let h = Harness::start(builder(policy(&gw.url())));
        h.wait("three rejected identifies", 20, |_| {
            gw.stats().identifies_rejected >= 3
        })
        .await;
        let stats = gw.stats();
        assert_eq!((stats.identifies, stats.resumes), (0, 0));
        assert!(h.current_session().is_none());
        let identifies = h.identifies_sent();
        for pair in identifies.windows(2) {
            assert!(
                pair[1].saturating_since(pair[0]) >= IDENTIFY_WINDOW_MS,
                "identifies {pair:?} closer than the window"
            );
        }
        h.close().await.unwrap();
    })
    .await;
}

/// A gateway that refuses upgrades without a `User-Agent` (closing with
/// 4002 before Hello) sees one on every upgrade: the library's by default,
/// the bot's own when the builder sets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upgrade_carries_a_user_agent() {
    bounded(20, async {
        // Two clients identify one after the other: no identify interval.
        let gw = gateway(GatewayConfig {
            require_user_agent: true,
            identify_interval_ms: 0,
            ..gateway_config()
        })
        .await;
        // The gateway's rule bites: an upgrade without one is closed with
        // 4002 before Hello.
        let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
        let (mut bare, _) = tokio_tungstenite::client_async(gw.url(), tcp)
            .await
            .unwrap();
        let first = bare.next().await.unwrap().unwrap();
        let Message::Close(Some(frame)) = first else {
            panic!("expected a close before Hello, got {first:?}");
        };
        assert_eq!(u16::from(frame.code), 4002);
        assert_eq!(gw.stats().missing_user_agent, 1);
        drop(bare);

        let h = Harness::start(builder(policy(&gw.url())));
        h.wait_streaming_past(3, 5).await;
        gw.inject(Fault::Close { code: 4000 });
        h.wait_streaming_past(h.events().len() as u64 + 3, 5).await;
        let stats = gw.stats();
        assert_eq!(stats.upgrades, 3);
        assert_eq!(stats.missing_user_agent, 1, "the client always sends one");
        assert_eq!(
            stats.last_user_agent.as_deref(),
            Some(reconnect_client::DEFAULT_USER_AGENT)
        );
        h.close().await.unwrap();

        let own =
            Harness::start(builder(policy(&gw.url())).user_agent("DiscordBot (example, 1.0)"));
        own.wait_streaming_past(3, 5).await;
        assert_eq!(
            gw.stats().last_user_agent.as_deref(),
            Some("DiscordBot (example, 1.0)")
        );
        own.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_stops_acking_is_found_to_be_a_zombie() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let interval_ms = gateway_config().heartbeat_interval_ms;
        let h = Harness::start(builder(policy(&gw.url())));
        h.wait_streaming_past(5, 5).await;
        let clock = gw.clock();
        let stopped = clock.now();
        gw.inject(Fault::Acks { on: false });
        h.wait("a zombie", 5, |h| h.figures().policy.zombies == 1)
            .await;
        // At most one unanswered heartbeat, then the next one finds it
        // (plus slack for a loaded machine).
        let took = clock.now().saturating_since(stopped);
        assert!(took <= 2 * interval_ms + 500, "{took} ms");
        gw.inject(Fault::Acks { on: true });
        h.wait("the resume", 5, |h| {
            h.figures().policy.resumes_succeeded == 1
        })
        .await;
        let closing: Vec<u16> = h
            .notices()
            .iter()
            .filter_map(|n| match n {
                Notice::Closing { code, .. } => Some(*code),
                _ => None,
            })
            .collect();
        assert_eq!(closing.len(), 1);
        assert!(!matches!(closing[0], 1000 | 1001), "{closing:?}");
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_gateway_is_left_and_resumed_when_it_answers_again() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(policy(&gw.url())));
        h.wait_streaming_past(5, 5).await;
        gw.inject(Fault::Stall { on: true });
        // Zombie, then a close nobody answers: the socket is dropped at the
        // policy's close deadline.
        h.wait("the socket dropped", 10, |h| {
            h.notices()
                .iter()
                .any(|n| matches!(n, Notice::Aborted { .. }))
        })
        .await;
        assert_eq!(h.figures().policy.zombies, 1);
        // Let a connection or two find a gateway that does not even say
        // Hello.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        gw.inject(Fault::Stall { on: false });
        h.wait("the resume", 10, |h| {
            h.figures().policy.resumes_succeeded == 1
        })
        .await;
        h.wait_streaming_past(h.events().len() as u64, 5).await;
        assert_eq!(gw.stats().max_sockets_per_session, 1);
        assert_eq!(gw.stats().identifies, 1);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_url_outside_the_allowed_domain_never_gets_the_token() {
    bounded(20, async {
        // A listener standing in for the attacker's host: nothing may ever
        // connect to it.
        let evil = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = evil.local_addr().unwrap().port();
        let cases = [
            (format!("wss://127.0.0.1:{port}"), UrlError::SchemeMismatch),
            (
                format!("ws://gateway.evil.invalid:{port}"),
                UrlError::HostNotAllowed,
            ),
        ];
        let runs = cases.iter().map(|(resume_url, reason)| async move {
            let gw = gateway(GatewayConfig {
                resume_url: Some(resume_url.clone()),
                ..gateway_config()
            })
            .await;
            let h = Harness::start(builder(policy(&gw.url())));
            h.wait_streaming_past(2, 5).await;
            let refused = h.notices().into_iter().find_map(|n| match n {
                Notice::Note(Note::ResumeUrlRefused { url, reason }) => Some((url, reason)),
                _ => None,
            });
            assert_eq!(refused, Some((resume_url.clone(), *reason)));
            gw.inject(Fault::Drop);
            // The session was dropped with the URL: the next connection
            // identifies against the base URL (in the next identify window).
            h.wait("a new session", 10, |h| {
                gw.stats().identifies == 2 && h.figures().state.is_connected()
            })
            .await;
            let urls: Vec<String> = h
                .notices()
                .into_iter()
                .filter_map(|n| match n {
                    Notice::Connecting { url, recovery, .. } => {
                        assert_eq!(recovery, Recovery::Reidentify);
                        Some(url)
                    }
                    _ => None,
                })
                .collect();
            assert!(urls.iter().all(|u| *u == gw.url()), "{urls:?}");
            assert_eq!(h.figures().policy.resume_urls_refused, 2);
            assert_eq!(gw.stats().resumes, 0);
            h.close().await.unwrap();
        });
        futures_util::future::join_all(runs).await;
        let nobody = tokio::time::timeout(Duration::from_millis(50), evil.accept()).await;
        assert!(nobody.is_err(), "the client connected to the refused URL");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uptime_is_the_current_connections_and_restarts_with_each() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(policy(&gw.url())));
        h.wait_streaming_past(5, 5).await;
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let before = h.figures().uptime.unwrap();
        assert!(before >= Duration::from_millis(1_200), "{before:?}");
        gw.inject(Fault::Drop);
        h.wait("the resume", 5, |h| {
            h.figures().policy.resumes_succeeded == 1
        })
        .await;
        let after = h.figures().uptime.unwrap();
        assert!(after < before, "{after:?} after {before:?}");
        let figures = h.close().await.unwrap();
        assert_eq!(figures.state, PolicyState::Stopped);
        assert_eq!(figures.uptime, None);
        assert_eq!(figures.policy.attempts, 2);
        assert_eq!(figures.policy.last_close_code, None);
        // The shutdown ended the session; nothing reconnects after it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(gw.stats().connections, 2);
        assert_eq!(gw.stats().sessions_ended_by_client, 1);
    })
    .await;
}
