//! What a runner whose identify store is away says in its logs (feature
//! `redis`): once that it falls back to its local share, once that the
//! store is back, and never the store's password.
//!
//! A test binary of its own, for the reason given in `secrets_in_logs.rs`:
//! the capturing subscriber must be global and installed before any log
//! call site is reached.

#![cfg(feature = "redis")]

use std::time::Duration;

use reconnect_client::gateway_bot::GatewayBot;
use reconnect_client::{ClientBuilder, Clock, RedisIdentify, RunnerBuilder, Token};
use reconnect_policy::{PolicyConfig, SessionStartLimit};
use reconnect_testkit::gateway::{Gateway, GatewayConfig};

#[path = "logs/capture.rs"]
mod capture;

#[allow(dead_code, unreachable_pub)]
#[path = "redis/server.rs"]
mod server;

use capture::CapturedLogs;
use server::RedisServer;

const PASSWORD: &str = "store-password-never-logged";

/// Redis is down when the runner starts: its shards start on the local
/// share, one window apart; Redis comes up after the first Identify and
/// the runner goes back to it.
#[tokio::test(flavor = "current_thread")]
async fn a_store_down_at_start_is_said_once_and_its_return_once() {
    let captured = CapturedLogs::install();
    let test = "a_store_down_at_start_is_said_once_and_its_return_once";
    let Some(redis) = RedisServer::reserve(test) else {
        return;
    };
    let mut redis = redis.with_args(&["--requirepass", PASSWORD]);
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/", redis.port);
    let gateway = Gateway::start(GatewayConfig {
        max_concurrency: 1,
        event_interval_ms: 0,
        ..GatewayConfig::default()
    })
    .await
    .unwrap();
    let store = RedisIdentify::new(&url, 99)
        .unwrap()
        .call_timeout(Duration::from_millis(200))
        .retry_every(Duration::from_millis(300));
    let client = ClientBuilder::new(Token::new("loopback-token")).policy(PolicyConfig {
        gateway_url: gateway.url(),
        ..PolicyConfig::default()
    });
    let (runner, mut events) = RunnerBuilder::new(client)
        .gateway_bot(GatewayBot {
            url: gateway.url(),
            shards: 3,
            session_start_limit: SessionStartLimit::DISCORD_DEFAULT,
        })
        .redis_identify(store)
        .start()
        .await
        .unwrap();
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let store_figures = || {
        runner
            .shard(0)
            .and_then(|shard| shard.figures().identify_store)
            .unwrap_or_default()
    };
    let waited = Clock::start();
    while gateway.stats().identifies < 1 {
        assert!(waited.elapsed() < Duration::from_secs(30), "no Identify");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store_figures().in_fallback, "{:?}", store_figures());
    redis.launch().unwrap();
    let settled = || {
        runner.figures().values().all(|f| f.state.is_connected()) && !store_figures().in_fallback
    };
    while !settled() {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "{:?} {:?}",
            gateway.stats(),
            store_figures()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let figures = store_figures();
    let stats = gateway.stats();
    runner.close().await.unwrap();
    gateway.stop().await;
    println!(
        "{figures:?}; gateway: {} Identify, {} refused",
        stats.identifies, stats.identifies_rate_limited
    );
    assert_eq!(stats.identifies, 3);
    assert_eq!(stats.identifies_rate_limited, 0);
    assert_eq!((figures.fallbacks, figures.recoveries), (1, 1));
    assert!(
        figures.local_grants >= 1 && figures.store_grants >= 1,
        "{figures:?}"
    );

    let logs = captured.text();
    let said = |what: &str| logs.lines().filter(|line| line.contains(what)).count();
    assert_eq!(
        said("the identify store is unreachable or slow"),
        1,
        "{logs}"
    );
    assert_eq!(said("the identify store is back"), 1, "{logs}");
    assert!(
        !logs.contains(PASSWORD),
        "the store's password is in the logs"
    );
    assert!(!logs.contains("loopback-token"), "the token is in the logs");
}
