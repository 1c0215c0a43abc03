//! The loopback gateway, by hand: a WebSocket server on 127.0.0.1 that
//! speaks enough of the Discord Gateway to drive a client, and injects
//! faults on a schedule or when you type them.
//!
//! ```text
//! cargo run -p reconnect-client --example loopback_gateway -- --port 8080
//! cargo run -p reconnect-client --example loopback_gateway -- --port 8080 \
//!     --faults "op7,drop,op9 true,close 4000" --fault-every-ms 5000
//! cargo run -p reconnect-client --example loopback_gateway -- --port 8080 \
//!     --proxy-port 8081 --latency-ms 40 --jitter-ms 20 --flap-up-ms 2000-8000 --flap-down-ms 500-3000
//! ```
//!
//! Then type a fault and Enter: `drop`, `reset`, `close 4004`, `op7`,
//! `op7+close 4000`, `op9 true`, `op9 false`, `op1`, `acks off`,
//! `stall on`, `refuse on`, `429 5`, `reject 401`, `drop-after 200`,
//! `invalidate`, `text {"op":42}`, `binary`, `big 100000`; with a proxy
//! also `proxy down reset|close|hole` and `proxy up`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use reconnect_testkit::gateway::{Fault, Gateway, GatewayConfig};
use reconnect_testkit::proxy::{Direction, DownMode, FaultProxy, Flap, Toxic, ToxicSpec};
use tokio::io::{AsyncBufReadExt, BufReader};
use tracing::{info, warn};

mod support;

/// A loopback gateway (and an optional fault proxy in front of it).
#[derive(Debug, Parser)]
struct Args {
    /// The port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Hello's heartbeat interval, in ms.
    #[arg(long, default_value_t = 5_000)]
    heartbeat_interval_ms: u64,
    /// One dispatch per session every this many ms (0: none).
    #[arg(long, default_value_t = 1_000)]
    event_interval_ms: u64,
    /// The token Identify and Resume must carry (any, if not given).
    #[arg(long)]
    token: Option<String>,
    /// The shortest time between two Identify payloads, in ms.
    #[arg(long, default_value_t = 5_000)]
    identify_interval_ms: u64,
    /// Faults to inject in turn, comma-separated (as typed on stdin).
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// How often to inject the next of `--faults`, in ms.
    #[arg(long, default_value_t = 5_000)]
    fault_every_ms: u64,
    /// Start a fault proxy on this port in front of the gateway.
    #[arg(long)]
    proxy_port: Option<u16>,
    /// Proxy: latency each way, in ms.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Proxy: jitter around the latency, in ms.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Proxy: flap the link, up for MIN-MAX ms ...
    #[arg(long, value_parser = range)]
    flap_up_ms: Option<(u64, u64)>,
    /// ... and down for MIN-MAX ms.
    #[arg(long, value_parser = range, default_value = "500-3000")]
    flap_down_ms: (u64, u64),
    /// Proxy: the seed of jitter and flapping.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn range(text: &str) -> Result<(u64, u64), String> {
    let (low, high) = text
        .split_once('-')
        .ok_or_else(|| format!("expected MIN-MAX, got {text:?}"))?;
    let parse = |s: &str| s.trim().parse::<u64>().map_err(|e| e.to_string());
    Ok((parse(low)?, parse(high)?))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_tracing();
    let args = Args::parse();
    let faults = args
        .faults
        .iter()
        .map(|f| Fault::parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    let gateway = Gateway::bind(
        SocketAddr::from(([127, 0, 0, 1], args.port)),
        GatewayConfig {
            heartbeat_interval_ms: args.heartbeat_interval_ms,
            event_interval_ms: args.event_interval_ms,
            token: args.token.clone(),
            identify_interval_ms: args.identify_interval_ms,
            ..GatewayConfig::default()
        },
    )
    .await?;
    println!("loopback gateway: {}", gateway.url());

    let proxy = match args.proxy_port {
        Some(port) => {
            let proxy = FaultProxy::start_on(port, gateway.addr(), args.seed).await?;
            gateway.set_resume_url(proxy.url());
            if args.latency_ms > 0 || args.jitter_ms > 0 {
                for direction in [Direction::Upstream, Direction::Downstream] {
                    proxy.add_toxic(ToxicSpec::new(
                        format!("latency-{direction:?}"),
                        Toxic::Latency {
                            latency_ms: args.latency_ms,
                            jitter_ms: args.jitter_ms,
                        },
                        direction,
                    ));
                }
            }
            if let Some(up_ms) = args.flap_up_ms {
                proxy.start_flapping(Flap {
                    up_ms,
                    down_ms: args.flap_down_ms,
                    modes: vec![DownMode::Reset, DownMode::Close, DownMode::BlackHole],
                    seed: args.seed,
                })?;
            }
            println!("fault proxy:      {} (clients connect here)", proxy.url());
            Some(proxy)
        }
        None => None,
    };

    let schedule = async {
        if faults.is_empty() {
            return std::future::pending().await;
        }
        let mut every = tokio::time::interval(Duration::from_millis(args.fault_every_ms.max(1)));
        every.tick().await;
        for fault in faults.iter().cycle() {
            every.tick().await;
            gateway.inject(fault.clone());
        }
    };
    let commands = async {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("proxy") {
                match (&proxy, rest.trim()) {
                    (Some(p), "up") => p.up(),
                    (Some(p), "down reset") => p.down(DownMode::Reset),
                    (Some(p), "down close") => p.down(DownMode::Close),
                    (Some(p), "down hole") => p.down(DownMode::BlackHole),
                    (None, _) => warn!("no proxy (start with --proxy-port)"),
                    _ => warn!("proxy commands: proxy up | proxy down reset|close|hole"),
                }
                continue;
            }
            match Fault::parse(line) {
                Ok(fault) => gateway.inject(fault),
                Err(help) => warn!("{help}"),
            }
        }
        // Stdin closed: keep serving.
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = schedule => {}
        () = commands => {}
        _ = tokio::signal::ctrl_c() => info!("stopping"),
    }
    println!("{:#?}", gateway.stats());
    if let Some(proxy) = proxy {
        println!("{:#?}", proxy.stats());
        proxy.stop().await;
    }
    gateway.stop().await;
    Ok(())
}
