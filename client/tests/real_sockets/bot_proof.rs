//! The real-socket proof of a whole bot: 100 shards in one process, learnt
//! from the loopback API's `GET /gateway/bot`, started through its identify
//! buckets, with transport compression on, every link through one fault
//! proxy that flaps (reset, closed, black hole) while every shard's handle
//! sends commands, then a rolling restart of the process (stop keeping the
//! sessions, a new runner resumed from them).
//!
//! The referee is the loopback gateway (its own identify windows per
//! bucket, its own send limit of 120 payloads per connection per 60 s,
//! its sessions and sockets) and the merged stream the bot read, joined
//! across both runner lifetimes: every `(shard, seq)` exactly once, the
//! bot caught up with every session at the end, no identify-window
//! violation, no connection over the send limit, never two sockets on one
//! session, and no Identify after the first one of each shard.
//!
//! The CI runs (`cargo test -p reconnect-client --test real_sockets
//! bot_proof -- --nocapture`) flap for 8 s; the soak is the same for as long as asked
//! (10 minutes by default):
//! `SOAK_SECS=600 nice -n 10 cargo test -p reconnect-client --test real_sockets bot_proof::soak -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use reconnect_client::gateway_bot::GatewayBotRequest;
use reconnect_client::gateway_command::{ActivityKind, GatewayCommand, Presence};
use reconnect_client::{Clock, Compression, RunnerBuilder, SendCommandError, ShardHandle};
use reconnect_testkit::gateway::{Gateway, GatewayConfig};
use reconnect_testkit::http_api::{ApiAnswer, ApiServer};
use reconnect_testkit::proxy::{DownMode, FaultProxy, Flap};
use tokio::task::JoinHandle;

use crate::recorded::RecordedRunner;
use crate::support::{
    TOKEN, bounded, builder, continuity, gateway, gateway_config, link_policy, sessions,
};

/// One run of the proof.
#[derive(Clone, Copy, Debug)]
struct Setup {
    shards: u32,
    buckets: u16,
    compression: Compression,
    /// How long the links flap, in ms.
    flap_ms: u64,
    seed: u64,
}

/// What the command senders got back.
#[derive(Debug, Default)]
struct Sends {
    sent: AtomicU64,
    no_session: AtomicU64,
    throttled: AtomicU64,
    other: AtomicU64,
}

impl Sends {
    fn count(&self, outcome: &Result<(), SendCommandError>) -> bool {
        let counter = match outcome {
            Ok(()) => &self.sent,
            Err(SendCommandError::NoSession) => &self.no_session,
            Err(SendCommandError::Throttled { .. }) => &self.throttled,
            Err(_) => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        outcome.is_ok()
    }
}

/// Every shard's handle, on its own task: a presence update every
/// second, and every fifth second (shards taking turns) as many as the
/// budget takes until it says when to retry; until `stop`.
fn send_commands(
    handles: &[ShardHandle],
    sends: &Arc<Sends>,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<()>> {
    handles
        .iter()
        .cloned()
        .map(|handle| {
            let (sends, stop) = (Arc::clone(sends), Arc::clone(stop));
            tokio::spawn(async move {
                let presence = GatewayCommand::UpdatePresence(Presence::online(
                    ActivityKind::Playing,
                    "the proof",
                ));
                let mut tick = u64::from(handle.id());
                while !stop.load(Ordering::Relaxed) {
                    if sends.count(&handle.send(&presence).await) && tick % 5 == 0 {
                        for _ in 0..200 {
                            if !sends.count(&handle.send(&presence).await) {
                                break;
                            }
                        }
                    }
                    tick += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        })
        .collect()
}

/// CPU time of this process so far (user + system), from `/proc`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line (11 and 12 here),
    // in clock ticks of 1/100 s on Linux.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    #[allow(clippy::cast_precision_loss)]
    Some(ticks as f64 / 100.0)
}

fn runner_builder(setup: Setup, api: &ApiServer, proxy: &FaultProxy) -> RunnerBuilder {
    RunnerBuilder::new(
        builder(link_policy("ws://127.0.0.1:9"))
            .compression(setup.compression)
            .seed(setup.seed),
    )
    .gateway_bot_request(GatewayBotRequest {
        api_base: api.api_base(),
        expected_gateway: proxy.url(),
        ..GatewayBotRequest::default()
    })
}

/// Runs the proof and checks every figure the gateway and the merged
/// stream give.
#[allow(clippy::too_many_lines)]
async fn proof(setup: Setup) {
    let wall = Clock::start();
    let cpu_start = cpu_seconds();
    let gw: Gateway = gateway(GatewayConfig {
        max_concurrency: setup.buckets,
        event_interval_ms: 200,
        realistic_events: true,
        session_timeout_ms: 60_000,
        ..gateway_config()
    })
    .await;
    let proxy = FaultProxy::start(gw.addr(), setup.seed)
        .await
        .expect("bind the fault proxy");
    gw.set_resume_url(proxy.url());
    let api = ApiServer::start(
        TOKEN,
        ApiAnswer::gateway_bot(&proxy.url(), setup.shards, 1_000, setup.buckets),
    )
    .await
    .unwrap();

    // The first process: every shard identifies through its bucket.
    let (runner, events) = runner_builder(setup, &api, &proxy).start().await.unwrap();
    assert_eq!(runner.total_shards(), setup.shards);
    let first = RecordedRunner::events_only(runner, events);
    let rounds = setup.shards.div_ceil(u32::from(setup.buckets));
    first
        .wait_all_past("start", &BTreeMap::new(), 0, 15 + 6 * u64::from(rounds))
        .await;
    let started_ms = wall.elapsed().as_millis();

    // The links flap while every handle sends.
    let sends = Arc::new(Sends::default());
    let stop = Arc::new(AtomicBool::new(false));
    let senders = send_commands(first.runner.shards(), &sends, &stop);
    proxy
        .start_flapping(Flap {
            up_ms: (500, 2_500),
            down_ms: (200, 1_500),
            modes: vec![DownMode::Reset, DownMode::Close, DownMode::BlackHole],
            seed: setup.seed,
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(setup.flap_ms)).await;
    proxy.stop_flapping();
    first
        .wait_all_past("after the flapping", &first.last_seqs(), 0, 30)
        .await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let figures_first = first.runner.figures();

    // The rolling restart: stop keeping every session, start again.
    let (saved, first_events) = first.close_keeping_sessions().await;
    assert_eq!(saved.len(), setup.shards as usize, "every shard's session");
    let before = gw.stats();
    let past: BTreeMap<u32, u64> = saved
        .iter()
        .map(|(shard, s)| (*shard, s.seq.unwrap_or(0)))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (runner, events) = runner_builder(setup, &api, &proxy)
        .resume_from(saved.clone())
        .start()
        .await
        .unwrap();
    let second = RecordedRunner::events_only(runner, events);
    second.wait_all_past("the restart", &past, 0, 30).await;

    // Catch up with everything the gateway generated for each session.
    let targets: BTreeMap<u32, u64> = saved
        .iter()
        .map(|(shard, s)| {
            let last = gw
                .sessions()
                .into_iter()
                .find(|g| g.id == s.session_id)
                .map_or(0, |g| g.last_seq);
            (*shard, last.saturating_sub(1))
        })
        .collect();
    second.wait_all_past("the catch-up", &targets, 0, 30).await;
    let figures_second = second.runner.figures();
    let (_, second_events) = second.close_keeping_sessions().await;
    let stats = gw.stats();
    let proxy_stats = proxy.stats();
    let cpu = match (cpu_start, cpu_seconds()) {
        (Some(a), Some(b)) => format!("{:.1} s", b - a),
        _ => "unknown".to_owned(),
    };

    // Every (shard, seq) exactly once across both lifetimes, one session
    // per shard (and each caught up with it, above).
    let (mut delivered, mut lost, mut duplicates) = (0, 0, 0);
    let mut sessions_per_shard = BTreeMap::new();
    for shard in 0..setup.shards {
        let mut joined = first_events.get(&shard).cloned().unwrap_or_default();
        joined.extend(second_events.get(&shard).cloned().unwrap_or_default());
        let c = continuity(&joined);
        delivered += c.delivered;
        lost += c.lost;
        duplicates += c.duplicates;
        let by_session = sessions(&joined);
        sessions_per_shard.insert(shard, by_session.len());
    }
    let figures = figures_first.values().chain(figures_second.values());
    let (mut zombies, mut dropped, mut reidentifies) = (0, 0, 0);
    for f in figures {
        zombies += f.policy.zombies;
        dropped += f.policy.duplicate_dispatches;
        reidentifies += f.reidentifies();
    }
    let resumed_at_restart = stats.resumes - before.resumes;
    let identified_at_restart = stats.identifies - before.identifies;
    let ratio = stats.payload_bytes_sent as f64 / stats.wire_bytes_sent.max(1) as f64;
    println!(
        "{} shards, {} buckets, {}: started in {started_ms} ms, links flapped {} s ({} downs: {} black holes, {} resets, {} closes), wall {:.1} s, CPU {cpu}",
        setup.shards,
        setup.buckets,
        setup.compression,
        setup.flap_ms / 1_000,
        proxy_stats.downs,
        proxy_stats.black_holes,
        proxy_stats.resets,
        proxy_stats.closes,
        wall.elapsed().as_secs_f64(),
    );
    println!(
        "  events delivered {delivered}, lost {lost}, duplicated {duplicates} (every shard caught up with its session); duplicates the client dropped {dropped}; zombies {zombies}"
    );
    println!(
        "  gateway: connections {}, identifies {} (window violations {}), resumes {} (refused {}), at the restart {resumed_at_restart} resumes and {identified_at_restart} identifies; max sockets per session {}",
        stats.connections,
        stats.identifies,
        stats.identifies_rate_limited,
        stats.resumes,
        stats.resumes_refused,
        stats.max_sockets_per_session,
    );
    println!(
        "  commands: sent {}, refused no session {}, throttled {}, other {}; reached the gateway {}; over the send limit {}, most payloads in one connection's 60 s {}",
        sends.sent.load(Ordering::Relaxed),
        sends.no_session.load(Ordering::Relaxed),
        sends.throttled.load(Ordering::Relaxed),
        sends.other.load(Ordering::Relaxed),
        stats.commands,
        stats.send_limit_exceeded,
        stats.max_sent_per_window,
    );
    println!(
        "  compression: {} payload bytes sent as {} ({ratio:.2}x smaller)",
        stats.payload_bytes_sent, stats.wire_bytes_sent
    );

    assert_eq!((lost, duplicates), (0, 0));
    assert!(delivered > u64::from(setup.shards) * 20, "{delivered}");
    assert!(
        sessions_per_shard.values().all(|&n| n == 1),
        "a shard changed session: {sessions_per_shard:?}"
    );
    assert_eq!(
        stats.identifies_rate_limited, 0,
        "identify-window violations"
    );
    assert_eq!(stats.identifies, u64::from(setup.shards), "{stats:?}");
    assert_eq!(reidentifies, 0);
    assert_eq!(
        (identified_at_restart, resumed_at_restart),
        (0, u64::from(setup.shards))
    );
    assert_eq!(stats.invalid_seq, 0);
    assert_eq!(
        stats.max_sockets_per_session, 1,
        "two sockets on one session"
    );
    assert!(gw.sessions().iter().all(|s| s.max_sockets <= 1));
    assert_eq!(
        stats.send_limit_exceeded, 0,
        "a connection over the send limit"
    );
    assert!(stats.max_sent_per_window <= 120);
    assert_eq!(sends.other.load(Ordering::Relaxed), 0);
    assert!(
        sends.throttled.load(Ordering::Relaxed) > 0,
        "the budget never said wait"
    );
    assert!(stats.commands > 0 && stats.commands <= sends.sent.load(Ordering::Relaxed));
    assert!(proxy_stats.downs >= 2, "{proxy_stats:?}");
    assert_eq!(stats.sessions_ended_by_client, 0, "no 1000/1001");
}

/// 100 shards in 25 buckets (four identify rounds), zlib-stream, 8 s of
/// flapping, then the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_shard_bot_through_flapping_links_and_a_restart_loses_and_repeats_nothing() {
    bounded(
        120,
        proof(Setup {
            shards: 100,
            buckets: 25,
            compression: Compression::ZlibStream,
            flap_ms: 8_000,
            seed: 100,
        }),
    )
    .await;
}

/// The same, smaller, with zstd-stream: 20 shards in one identify round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_shard_zstd_bot_through_flapping_links_and_a_restart_loses_and_repeats_nothing() {
    bounded(
        90,
        proof(Setup {
            shards: 20,
            buckets: 20,
            compression: Compression::ZstdStream,
            flap_ms: 6_000,
            seed: 20,
        }),
    )
    .await;
}

/// The soak: the same 100 shards with the links flapping for `SOAK_SECS`
/// (default 600) seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of 10 minutes; run by hand"]
async fn soak_of_the_100_shard_bot() {
    let seconds: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    bounded(
        seconds + 180,
        proof(Setup {
            shards: 100,
            buckets: 16,
            compression: Compression::ZlibStream,
            flap_ms: seconds.saturating_mul(1_000),
            seed: 600,
        }),
    )
    .await;
}

/// The referee can fail: a raw socket that sends one payload over the
/// gateway's send limit (121 heartbeats at once) is closed with 4008 and
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_closes_a_connection_over_the_send_limit() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
        let (mut ws, _) =
            tokio_tungstenite::client_async(format!("{}/?v=10&encoding=json", gw.url()), tcp)
                .await
                .expect("upgrade");
        for _ in 0..121 {
            ws.send(Message::text(r#"{"op":1,"d":null}"#))
                .await
                .unwrap();
        }
        let mut code = None;
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(frame) = message {
                code = frame.map(|f| u16::from(f.code));
                break;
            }
        }
        assert_eq!(code, Some(4008));
        let stats = gw.stats();
        assert_eq!(stats.send_limit_exceeded, 1, "{stats:?}");
        assert_eq!(stats.max_sent_per_window, 121);
        assert_eq!(stats.heartbeats, 120, "the 121st is not served");
    })
    .await;
}
