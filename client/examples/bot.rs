//! A bot that connects to a gateway, prints every event, and logs every
//! reconnect decision the policy makes (through `tracing`).
//!
//! Without `--url` it starts a loopback gateway in the same process, with a
//! fault every few seconds, so the decisions have something to decide:
//!
//! ```text
//! cargo run -p reconnect-client --example bot -- --seconds 30
//! ```
//!
//! Against a real gateway, the token comes from an environment variable
//! (never from the command line, never printed):
//!
//! ```text
//! export DISCORD_TOKEN=...   # the bot's token
//! cargo run -p reconnect-client --example bot -- --url wss://gateway.discord.gg --intents 513
//! ```

use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt;
use reconnect_client::{ClientBuilder, Token};
use reconnect_policy::PolicyConfig;
use reconnect_testkit::gateway::{Fault, Gateway, GatewayConfig, ScheduledFault};
use tracing::info;

mod support;

/// A gateway bot that prints what it receives.
#[derive(Debug, Parser)]
struct Args {
    /// The gateway URL (`wss://gateway.discord.gg`); without it, a loopback
    /// gateway is started in this process.
    #[arg(long)]
    url: Option<String>,
    /// The environment variable holding the token.
    #[arg(long, default_value = "DISCORD_TOKEN")]
    token_env: String,
    /// Gateway intents (513 = GUILDS | GUILD_MESSAGES).
    #[arg(long, default_value_t = 513)]
    intents: u64,
    /// This shard's id.
    #[arg(long, default_value_t = 0)]
    shard: u32,
    /// The number of shards.
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// Shut down (closing the session with 1000) after this many seconds;
    /// otherwise run until Ctrl-C.
    #[arg(long)]
    seconds: Option<u64>,
    /// Loopback only: inject a fault this often, in ms (0: never).
    #[arg(long, default_value_t = 4_000)]
    fault_every_ms: u64,
}

/// The faults the loopback gateway goes through, in turn.
fn demo_faults(every_ms: u64) -> Vec<ScheduledFault> {
    if every_ms == 0 {
        return Vec::new();
    }
    let cycle = [
        Fault::Reconnect,
        Fault::Drop,
        Fault::InvalidSession { resumable: true },
        Fault::Close { code: 4000 },
        Fault::Reset,
        Fault::ReconnectAndClose { code: 1001 },
    ];
    (1..=100_u64)
        .zip(cycle.iter().cycle())
        .map(|(i, fault)| ScheduledFault {
            after_ms: i * every_ms,
            fault: fault.clone(),
        })
        .collect()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    support::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    support::init_tracing();
    let args = Args::parse();

    let (url, token, _loopback) = match &args.url {
        Some(url) => (url.clone(), Token::from_env(&args.token_env)?, None),
        None => {
            let token = Token::from_env(&args.token_env)
                .unwrap_or_else(|_| Token::new("loopback-demo-token"));
            let gateway = Gateway::start(GatewayConfig {
                heartbeat_interval_ms: 5_000,
                event_interval_ms: 500,
                schedule: demo_faults(args.fault_every_ms),
                ..GatewayConfig::default()
            })
            .await?;
            info!(url = %gateway.url(), "started a loopback gateway");
            (gateway.url(), token, Some(gateway))
        }
    };

    let (client, mut events) = ClientBuilder::new(token)
        .policy(PolicyConfig::with_gateway_url(url))
        .intents(args.intents)
        .shard(args.shard, args.shards)
        .start()?;

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
            event = events.next() => match event {
                Some(event) => info!(seq = ?event.seq, name = %event.name, "event"),
                None => break,
            },
            () = &mut stop, if !stopping => {
                info!("shutting down");
                stopping = true;
                client.shutdown();
            }
        }
    }
    match client.join().await {
        Ok(figures) => {
            info!(
                attempts = figures.policy.attempts,
                resumes_succeeded = figures.policy.resumes_succeeded,
                reidentifies = figures.reidentifies(),
                events = figures.events_delivered,
                duplicate_dispatches = figures.policy.duplicate_dispatches,
                last_close_code = ?figures.policy.last_close_code,
                "stopped"
            );
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}
