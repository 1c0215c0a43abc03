//! The multi-shard runner over real sockets: 16 shards learnt from the
//! loopback API's `GET /gateway/bot`, started through 4 identify buckets
//! against a gateway that enforces them, one merged stream of events, a
//! fault that drops every shard's link at once, and commands through the
//! policy's send budget. Then the answers of `/gateway/bot` that must stop
//! a runner before it opens a socket.

use std::time::Duration;

use futures_util::StreamExt;
use reconnect_client::gateway_bot::{GatewayBot, GatewayBotError, GatewayBotRequest};
use reconnect_client::gateway_command::{ActivityKind, CommandError, GatewayCommand, Presence};
use reconnect_client::{Clock, RunnerBuilder, RunnerError, SendCommandError};
use reconnect_policy::{SessionStartLimit, Timestamp};
use reconnect_testkit::gateway::{Fault, Gateway, GatewayConfig};
use reconnect_testkit::http_api::{ApiAnswer, ApiServer};

use crate::recorded::RecordedRunner;
use crate::support::{TOKEN, assert_continuous, bounded, builder, gateway, gateway_config, policy};

/// The gateway's identify window, as the real one.
const WINDOW_MS: u64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_shards_start_by_bucket_resume_together_and_send_within_budget() {
    bounded(90, fleet_scenario(16, 4)).await;
}

/// The same with 100 shards in 16 buckets (about 35 s, so run by hand):
/// `cargo test -p reconnect-client --test real_sockets hundred -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "about 35 s; run by hand"]
async fn a_hundred_shards_start_by_bucket_resume_together_and_send_within_budget() {
    bounded(180, fleet_scenario(100, 16)).await;
}

/// `shards` shards learnt from `/gateway/bot` with `buckets` identify
/// buckets: all READY with no identify-window violation at the gateway,
/// every bucket one Identify per window and the buckets side by side; a
/// drop of every link, resumed with no Identify; a burst of commands from
/// one shard's handle until the budget says when to retry; one merged
/// stream with each shard's sequence numbers once and in order.
#[allow(clippy::too_many_lines)]
async fn fleet_scenario(shards: u32, buckets: u16) {
    let gw = gateway(GatewayConfig {
        max_concurrency: buckets,
        identify_interval_ms: WINDOW_MS,
        event_interval_ms: 50,
        ..gateway_config()
    })
    .await;
    // The run loop's inputs and outputs are checked against the policy's
    // guarantees (single flight, guard, identify spacing per bucket, ...).
    let checked = reconnect_client::testing::watch(gw.url());
    let api = ApiServer::start(
        TOKEN,
        ApiAnswer::gateway_bot(&gw.url(), shards, 1_000, buckets),
    )
    .await
    .unwrap();
    let (runner, events) = RunnerBuilder::new(builder(policy("ws://127.0.0.1:9")))
        .gateway_bot_request(GatewayBotRequest {
            api_base: api.api_base(),
            expected_gateway: gw.url(),
            ..GatewayBotRequest::default()
        })
        .start()
        .await
        .unwrap();
    assert_eq!(api.requests(), (1, 1), "one request, with the token");
    assert_eq!(runner.total_shards(), shards);
    assert_eq!(
        runner.gateway().session_start_limit.max_concurrency,
        buckets
    );
    let ids: Vec<u32> = runner.shards().iter().map(|s| s.id()).collect();
    assert_eq!(ids, (0..shards).collect::<Vec<_>>());
    let r = RecordedRunner::with_notices(runner, events);

    // Every shard READY, through the buckets, with no Identify refused.
    let rounds = shards.div_ceil(u32::from(buckets));
    r.wait_all_streaming(2, 15 + 6 * u64::from(rounds)).await;
    let stats = gw.stats();
    assert_eq!(stats.identifies, u64::from(shards), "{stats:?}");
    assert_eq!(
        stats.identifies_rate_limited, 0,
        "identify-window violations"
    );
    let identifies = r.identifies();
    assert_eq!(identifies.len(), shards as usize);
    let first = identifies.values().flatten().min().copied().unwrap();
    for bucket in 0..u32::from(buckets) {
        let mut times: Vec<Timestamp> = identifies
            .iter()
            .filter(|(shard, _)| *shard % u32::from(buckets) == bucket)
            .flat_map(|(_, at)| at.iter().copied())
            .collect();
        times.sort_unstable();
        let members = (0..shards)
            .filter(|s| s % u32::from(buckets) == bucket)
            .count();
        assert_eq!(times.len(), members, "bucket {bucket}: {times:?}");
        assert!(
            times
                .windows(2)
                .all(|w| w[1].saturating_since(w[0]) >= WINDOW_MS),
            "bucket {bucket} identified faster than the window: {times:?}"
        );
        // The buckets run side by side: each starts in the first window.
        assert!(
            times[0].saturating_since(first) < WINDOW_MS,
            "bucket {bucket} waited for another: {times:?}"
        );
    }

    // One fault drops every shard's link: all resume, none identifies.
    gw.inject(Fault::Drop);
    r.wait("every shard to resume", 20, |r| {
        r.runner
            .figures()
            .values()
            .all(|f| f.policy.resumes_succeeded >= 1 && f.state.is_connected())
    })
    .await;
    r.wait_all_streaming(2, 20).await;
    let stats = gw.stats();
    assert_eq!(
        stats.identifies,
        u64::from(shards),
        "a resume became an Identify: {stats:?}"
    );
    assert_eq!(stats.identifies_rate_limited, 0);
    assert_eq!(
        (stats.resumes, stats.resumes_refused),
        (u64::from(shards), 0),
        "{stats:?}"
    );

    // Commands through the send budget: a burst is sent until the
    // budget says when to retry; the refusal holds nothing up.
    let shard = r.runner.shard(5).unwrap().clone();
    let presence = GatewayCommand::UpdatePresence(Presence::online(ActivityKind::Playing, "tests"));
    let mut sent = 0_u64;
    let refused = loop {
        match shard.send(&presence).await {
            Ok(()) => sent += 1,
            Err(error) => break error,
        }
        assert!(sent <= 120, "more commands than the gateway's limit");
    };
    let SendCommandError::Throttled { retry_at, wait } = refused else {
        panic!("the budget should say when to retry: {refused:?}");
    };
    assert!(sent >= 1, "no command fitted the budget");
    assert!(
        !wait.is_zero() && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    assert!(retry_at > first, "{retry_at} is not ahead");
    r.wait("the commands to reach the gateway", 10, |_| {
        gw.stats().commands == sent
    })
    .await;
    // Events keep flowing on that shard and every other.
    r.wait_all_streaming(2, 10).await;
    let invalid = shard
        .send(&GatewayCommand::Raw {
            op: 2,
            d: serde_json::json!({}),
        })
        .await;
    assert_eq!(
        invalid,
        Err(SendCommandError::Invalid(CommandError::ReservedOpcode(2)))
    );
    assert_eq!(gw.stats().commands, sent);

    let (figures, delivered) = r.close().await;
    let figures = figures.unwrap();
    let observed = checked.assert_clean();
    assert_eq!(observed.identifies, u64::from(shards));
    assert_eq!(figures.len(), shards as usize);
    for (id, f) in &figures {
        assert_eq!(f.policy.identifies_sent, 1, "shard {id}: {f:?}");
        assert_eq!(f.max_sockets_open, 1, "shard {id}: {f:?}");
        assert_eq!(
            f.policy.duplicate_dispatches + f.dispatches_ignored,
            0,
            "shard {id}: {f:?}"
        );
    }
    // One merged stream: each shard's session delivered each sequence
    // number once, in order, with nothing lost.
    assert_eq!(delivered.len(), shards as usize);
    for (id, seen) in &delivered {
        assert_continuous(seen);
        assert_eq!(
            seen.len() as u64,
            figures[id].events_delivered,
            "shard {id}"
        );
    }
    let stats = gw.stats();
    assert!(stats.max_sockets_per_session <= 1);
    let last = identifies.values().flatten().max().copied().unwrap();
    eprintln!(
        "{shards} shards, {buckets} buckets: identifies {} (rate-limited {}) over {} ms; resumes {}; \
             commands sent {sent} before the budget said retry in {} ms; events delivered {}",
        stats.identifies,
        stats.identifies_rate_limited,
        last.saturating_since(first),
        stats.resumes,
        wait.as_millis(),
        figures.values().map(|f| f.events_delivered).sum::<u64>(),
    );
}

/// A bad answer of `/gateway/bot` stops the runner before any socket is
/// opened, after exactly one request; so does a shard range outside the
/// total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_gateway_bot_answers_stop_the_runner_after_one_request() {
    bounded(30, async {
        let gw = gateway(gateway_config()).await;
        let api = ApiServer::start(TOKEN, ApiAnswer::status(401, "{}"))
            .await
            .unwrap();
        let request = GatewayBotRequest {
            api_base: api.api_base(),
            expected_gateway: gw.url(),
            ..GatewayBotRequest::default()
        };
        let cases = [
            (
                ApiAnswer::status(401, r#"{"message":"401: Unauthorized","code":0}"#),
                GatewayBotError::Unauthorized,
            ),
            (
                ApiAnswer {
                    status: 429,
                    headers: vec![("Retry-After".into(), "7".into())],
                    body: r#"{"retry_after":6.5,"global":false}"#.into(),
                },
                GatewayBotError::RateLimited {
                    retry_after_ms: 6_500,
                    global: false,
                },
            ),
            (
                ApiAnswer::gateway_bot("ws://evil.example:4567", 4, 1_000, 1),
                GatewayBotError::UrlNotAllowed {
                    url: "ws://evil.example:4567".into(),
                    reason: reconnect_policy::UrlError::HostNotAllowed,
                },
            ),
        ];
        for (n, (answer, expected)) in cases.into_iter().enumerate() {
            api.set_answer(answer);
            let outcome = RunnerBuilder::new(builder(policy("ws://127.0.0.1:9")))
                .gateway_bot_request(request.clone())
                .start()
                .await;
            match outcome {
                Err(RunnerError::GatewayBot(error)) => assert_eq!(error, expected),
                other => panic!("expected {expected:?}, got {other:?}"),
            }
            assert_eq!(api.requests().0, n as u64 + 1, "no retry");
        }
        api.set_answer(ApiAnswer::status(200, r#"{"url":"#));
        let outcome = RunnerBuilder::new(builder(policy("ws://127.0.0.1:9")))
            .gateway_bot_request(request.clone())
            .start()
            .await;
        assert!(
            matches!(
                outcome,
                Err(RunnerError::GatewayBot(GatewayBotError::Malformed(_)))
            ),
            "{outcome:?}"
        );
        let answer = given(&gw, 4, 2);
        for (range, total) in [(2..2, 4), (3..5, 4), (0..1, 0)] {
            let outcome = RunnerBuilder::new(builder(policy("ws://127.0.0.1:9")))
                .gateway_bot(answer.clone())
                .shards(range.clone(), total)
                .start()
                .await;
            assert!(
                matches!(outcome, Err(RunnerError::ShardRange { .. })),
                "{range:?} of {total}: {outcome:?}"
            );
        }
        assert_eq!(api.requests().0, 4, "a given answer asks nothing");
        assert_eq!(gw.stats().connections, 0, "no socket was opened");
    })
    .await;
}

/// A bot split across processes: this one runs shards 2 and 3 of 4, from
/// an answer it already has, and asks the API nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_answer_and_a_shard_range_run_only_those_shards() {
    bounded(30, async {
        let gw = gateway(GatewayConfig {
            max_concurrency: 2,
            ..gateway_config()
        })
        .await;
        let (runner, events) = RunnerBuilder::new(builder(policy("ws://127.0.0.1:9")))
            .gateway_bot(given(&gw, 4, 2))
            .shards(2..4, 4)
            .start()
            .await
            .unwrap();
        let ids: Vec<u32> = runner.shards().iter().map(|s| s.id()).collect();
        assert_eq!(ids, [2, 3]);
        assert!(runner.shard(0).is_none());
        assert_eq!(runner.shard(3).unwrap().count(), 4);
        let r = RecordedRunner::with_notices(runner, events);
        r.wait_all_streaming(3, 20).await;
        let stats = gw.stats();
        assert_eq!((stats.identifies, stats.identifies_rate_limited), (2, 0));
        let figures = r.close().await.0.unwrap();
        assert_eq!(figures.keys().copied().collect::<Vec<_>>(), [2, 3]);
        assert_eq!(gw.stats().sessions_ended_by_client, 2);
    })
    .await;
}

/// What `/gateway/bot` would say for this gateway.
fn given(gw: &Gateway, shards: u32, max_concurrency: u16) -> GatewayBot {
    GatewayBot {
        url: gw.url(),
        shards,
        session_start_limit: SessionStartLimit {
            max_concurrency,
            ..SessionStartLimit::DISCORD_DEFAULT
        },
    }
}

/// A lone client is a fleet of one on the same loop: it sends commands
/// through the same budget, and says so when it has no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_client_sends_commands_only_with_a_session() {
    bounded(30, async {
        let gw = gateway(gateway_config()).await;
        gw.inject(Fault::Refuse { on: true });
        let (client, mut events) = builder(policy(&gw.url())).start().unwrap();
        let presence =
            GatewayCommand::UpdatePresence(Presence::online(ActivityKind::Listening, "tests"));
        assert_eq!(
            client.send(&presence).await,
            Err(SendCommandError::NoSession)
        );
        gw.inject(Fault::Refuse { on: false });
        while let Some(event) = events.next().await {
            if event.name == "READY" {
                break;
            }
        }
        client.send(&presence).await.unwrap();
        client.shard().send(&presence).await.unwrap();
        let clock = Clock::start();
        while gw.stats().commands < 2 {
            assert!(clock.elapsed() < Duration::from_secs(5), "{:?}", gw.stats());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let handle = client.shard();
        let figures = client.close().await.unwrap();
        assert_eq!(
            (figures.policy.identifies_sent, gw.stats().commands),
            (1, 2)
        );
        assert_eq!(handle.send(&presence).await, Err(SendCommandError::Stopped));
    })
    .await;
}
