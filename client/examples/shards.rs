//! A bot that runs all its shards in one process with the [`Runner`]: it
//! asks `GET /gateway/bot` where to connect, how many shards to run and how
//! many may identify at once, reads every shard's events from one stream,
//! sets each shard's presence once it is READY (through the policy's send
//! budget), and prints each shard's figures when it stops.
//!
//! Without `--discord` it starts a loopback gateway and a loopback
//! `/gateway/bot` in the same process (8 shards, 4 identify buckets, a link
//! drop every few seconds):
//!
//! ```text
//! cargo run -p reconnect-client --example shards -- --seconds 20
//! ```
//!
//! Against Discord, the token comes from an environment variable (never
//! from the command line, never printed):
//!
//! ```text
//! export DISCORD_TOKEN=...   # the bot's token
//! cargo run -p reconnect-client --example shards -- --discord --intents 513
//! # one process of a bot split in two: shards 0..8 of 16
//! cargo run -p reconnect-client --example shards -- --discord --range 0..8 --total 16
//! # a rolling restart: stop keeping every session, start again resuming them
//! cargo run -p reconnect-client --example shards -- --discord --sessions sessions.json
//! ```
//!
//! (Without `--discord`, each start has a new loopback gateway that does
//! not know the saved sessions: the shards fall back to Identify.)
//!
//! [`Runner`]: reconnect_client::Runner

use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt;
use reconnect_client::gateway_bot::GatewayBotRequest;
use reconnect_client::gateway_command::{ActivityKind, GatewayCommand, Presence};
use reconnect_client::{ClientBuilder, RunnerBuilder, SavedSessions, SendCommandError, Token};
use reconnect_testkit::gateway::{Fault, Gateway, GatewayConfig, ScheduledFault};
use reconnect_testkit::http_api::{ApiAnswer, ApiServer};
use tracing::{info, warn};

mod support;

/// A sharded gateway bot that counts what it receives.
#[derive(Debug, Parser)]
struct Args {
    /// Ask Discord's `GET /gateway/bot` and connect to Discord; without
    /// it, a loopback gateway and API are started in this process.
    #[arg(long)]
    discord: bool,
    /// The environment variable holding the token.
    #[arg(long, default_value = "DISCORD_TOKEN")]
    token_env: String,
    /// Gateway intents (513 = GUILDS | GUILD_MESSAGES).
    #[arg(long, default_value_t = 513)]
    intents: u64,
    /// Run only these shards (`START..END`), of `--total`.
    #[arg(long, value_parser = support::parse_range, requires = "total")]
    range: Option<std::ops::Range<u32>>,
    /// The bot's total shard count, with `--range`.
    #[arg(long)]
    total: Option<u32>,
    /// Shut down (closing every session with 1000) after this many
    /// seconds; otherwise run until Ctrl-C.
    #[arg(long)]
    seconds: Option<u64>,
    /// Keep the sessions across restarts in this JSON file: start by
    /// resuming those it holds, and stop keeping every session (close
    /// 4000) and writing them there. Sessions and sequence numbers only,
    /// never the token.
    #[arg(long)]
    sessions: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    support::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    support::init_tracing();
    let args = Args::parse();

    // The loopback stand-ins live as long as the bot.
    let mut loopback = None;
    let token = if args.discord {
        Token::from_env(&args.token_env)?
    } else {
        Token::new("loopback-demo-token")
    };
    let client = ClientBuilder::new(token).intents(args.intents);
    let mut builder = RunnerBuilder::new(client);
    if !args.discord {
        let gateway = Gateway::start(GatewayConfig {
            max_concurrency: 4,
            heartbeat_interval_ms: 5_000,
            event_interval_ms: 500,
            schedule: (1..=20)
                .map(|i| ScheduledFault {
                    after_ms: 8_000 * i,
                    fault: Fault::Drop,
                })
                .collect(),
            ..GatewayConfig::default()
        })
        .await?;
        let api = ApiServer::start(
            "loopback-demo-token",
            ApiAnswer::gateway_bot(&gateway.url(), 8, 1_000, 4),
        )
        .await?;
        info!(gateway = %gateway.url(), api = %api.api_base(), "started a loopback gateway and API");
        builder = builder.gateway_bot_request(GatewayBotRequest {
            api_base: api.api_base(),
            expected_gateway: gateway.url(),
            ..GatewayBotRequest::default()
        });
        loopback = Some((gateway, api));
    }
    if let (Some(range), Some(total)) = (args.range.clone(), args.total) {
        builder = builder.shards(range, total);
    }
    if let Some(path) = &args.sessions
        && path.exists()
    {
        let saved: SavedSessions = serde_json::from_slice(&std::fs::read(path)?)?;
        info!(shards = saved.len(), file = %path.display(), "resuming the saved sessions");
        builder = builder.resume_from(saved);
    }

    let (runner, mut events) = builder.start().await?;
    info!(
        url = %runner.gateway().url,
        shards = runner.shards().len(),
        total = runner.total_shards(),
        max_concurrency = runner.gateway().session_start_limit.max_concurrency,
        "running"
    );

    let stop = async {
        match args.seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    let mut stopping = false;
    loop {
        tokio::select! {
            next = events.next() => match next {
                Some((shard, event)) if event.name == "READY" => {
                    info!(shard, "ready");
                    // Commands go through the shard's handle, on a task of
                    // their own: the event loop never waits for one.
                    if let Some(handle) = runner.shard(shard).cloned() {
                        tokio::spawn(async move {
                            let presence = GatewayCommand::UpdatePresence(Presence::online(
                                ActivityKind::Watching,
                                format!("shard {shard}"),
                            ));
                            match handle.send(&presence).await {
                                Ok(()) => info!(shard, "presence set"),
                                Err(SendCommandError::Throttled { wait, .. }) => {
                                    warn!(shard, ?wait, "presence refused by the send budget");
                                }
                                Err(error) => warn!(shard, %error, "presence not sent"),
                            }
                        });
                    }
                }
                Some((shard, event)) => {
                    tracing::debug!(shard, seq = ?event.seq, name = %event.name, "event");
                }
                None => break,
            },
            () = &mut stop, if !stopping => {
                info!("shutting down");
                stopping = true;
                if args.sessions.is_some() {
                    break;
                }
                runner.shutdown();
            }
        }
    }
    let figures = match &args.sessions {
        Some(path) => {
            let handles = runner.shards().to_vec();
            let saved = runner.close_keeping_sessions().await?;
            // The dispatches still queued belong to this process; the
            // saved sequence numbers are those of the last ones handed over.
            while let Some((shard, event)) = events.next().await {
                tracing::debug!(shard, seq = ?event.seq, name = %event.name, "event");
            }
            std::fs::write(path, serde_json::to_vec_pretty(&saved)?)?;
            info!(shards = saved.len(), file = %path.display(), "sessions kept for the next start");
            handles.iter().map(|h| (h.id(), h.figures())).collect()
        }
        None => runner.join().await?,
    };
    for (shard, f) in figures {
        info!(
            shard,
            attempts = f.policy.attempts,
            identifies_sent = f.policy.identifies_sent,
            resumes_succeeded = f.policy.resumes_succeeded,
            events = f.events_delivered,
            duplicate_dispatches = f.policy.duplicate_dispatches,
            "stopped"
        );
    }
    drop(loopback);
    Ok(())
}
