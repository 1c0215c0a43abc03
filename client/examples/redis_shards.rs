//! One process of a bot split across processes (feature `redis`): it runs
//! its range of the bot's shards against a gateway, and its shards
//! identify through the bot's buckets and session-start budget in Redis,
//! shared with every other process of the bot.
//!
//! Start Redis and a loopback gateway (one identify bucket, which it
//! enforces across every connection), then two processes of one bot:
//!
//! ```text
//! docker run -d --rm --name bot-redis -p 127.0.0.1:6379:6379 redis:7
//! cargo run -p reconnect-client --example loopback_gateway -- --port 8080
//! cargo run -p reconnect-client --features redis --example redis_shards -- --range 0..3 --total 6
//! cargo run -p reconnect-client --features redis --example redis_shards -- --range 3..6 --total 6
//! ```
//!
//! The six Identify payloads reach the gateway at least 5 s apart, though
//! two processes send them; stop Redis in the middle (`docker stop
//! bot-redis`) and each process says once that it answers from its local
//! share, and says so again when Redis is back.

use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt;
use reconnect_client::gateway_bot::GatewayBot;
use reconnect_client::{ClientBuilder, RedisIdentify, RunnerBuilder, Token};
use reconnect_policy::{PolicyConfig, SessionStartLimit};
use tracing::info;

mod support;

/// One process of a bot whose shards identify through Redis.
#[derive(Debug, Parser)]
struct Args {
    /// The gateway (a loopback one: this example sends a made-up token).
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    gateway: String,
    /// The Redis every process of the bot shares.
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    redis: String,
    /// The bot's id (the keys in Redis carry it, never the token).
    #[arg(long, default_value_t = 1)]
    bot_id: u64,
    /// The shards this process runs (`START..END`), of `--total`.
    #[arg(long, value_parser = support::parse_range, default_value = "0..3")]
    range: std::ops::Range<u32>,
    /// The bot's total shard count.
    #[arg(long, default_value_t = 6)]
    total: u32,
    /// Identify buckets (`max_concurrency`), as the gateway has them.
    #[arg(long, default_value_t = 1)]
    max_concurrency: u16,
    /// Shut down after this many seconds.
    #[arg(long, default_value_t = 45)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    support::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    support::init_tracing();
    let args = Args::parse();
    let store = RedisIdentify::new(&args.redis, args.bot_id)?;
    let client = ClientBuilder::new(Token::new("loopback-demo-token")).policy(PolicyConfig {
        gateway_url: args.gateway.clone(),
        ..PolicyConfig::default()
    });
    let (runner, mut events) = RunnerBuilder::new(client)
        // What `GET /gateway/bot` would say; against Discord, leave this
        // out and the runner asks.
        .gateway_bot(GatewayBot {
            url: args.gateway.clone(),
            shards: args.total,
            session_start_limit: SessionStartLimit {
                max_concurrency: args.max_concurrency,
                ..SessionStartLimit::DISCORD_DEFAULT
            },
        })
        .shards(args.range.clone(), args.total)
        .redis_identify(store)
        .start()
        .await?;
    let stop = tokio::time::sleep(Duration::from_secs(args.seconds));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            next = events.next() => match next {
                Some((shard, event)) if event.name == "READY" => info!(shard, "ready"),
                Some(_) => {}
                None => break,
            },
            () = &mut stop => break,
        }
    }
    let figures = runner.close().await?;
    for (shard, f) in &figures {
        info!(
            shard,
            identifies_sent = f.policy.identifies_sent,
            resumes_succeeded = f.policy.resumes_succeeded,
            "stopped"
        );
    }
    if let Some(store) = figures.values().next().and_then(|f| f.identify_store) {
        info!(
            store_grants = store.store_grants,
            local_grants = store.local_grants,
            fallbacks = store.fallbacks,
            "identify store"
        );
    }
    Ok(())
}
