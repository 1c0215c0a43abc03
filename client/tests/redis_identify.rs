//! The identify buckets and the session-start budget shared through a real
//! Redis (feature `redis`), against the loopback gateway, which enforces
//! each bucket's window across every connection it gets.
//!
//! Each test starts its own `redis-server` on 127.0.0.1 on a free port
//! (`--save '' --appendonly no`, in a temporary directory) and stops it
//! when done. When `redis-server` cannot be started, the test says why,
//! loudly, and is skipped (`.ci/run` installs it from the system's
//! packages).
//!
//! - Four OS processes of one bot (this test binary, started again in
//!   child mode), 25 shards each, share 32 buckets: no Identify inside a
//!   bucket's window at the gateway, and the budget counts exactly one
//!   start per Identify.
//! - Redis restarted, and Redis behind a black-holed link: the runner falls
//!   back to its local share, keeps every bucket's window, and returns to
//!   Redis.
//! - Two processes of one bot, Redis killed during their fallback and
//!   restarted empty: the store's return hold keeps every bucket's window
//!   across both.
//! - Two processes whose clocks differ by 3 s keep the window.
//! - Four OS processes of one bot, 25 shards each, each behind its own
//!   fault proxy, cut together for 20 s: the proxies see one probe stream
//!   for the bot (never two probes within the grant's shortest gap), then
//!   every shard of every process resumes in the ramp.

#![cfg(feature = "redis")]

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use reconnect_client::gateway_bot::GatewayBot;
use reconnect_client::{ClientBuilder, Clock, RedisIdentify, Runner, RunnerBuilder, Token};
use reconnect_policy::{PolicyConfig, SessionStartLimit, Timestamp};
use reconnect_testkit::gateway::{Gateway, GatewayConfig, GatewayStats};
use reconnect_testkit::proxy::{CutWindow, DialOutcome, DownMode, FaultProxy};

/// The bot id the tests' keys carry.
const BOT_ID: u64 = 81_234_567_890_123_456;
/// The session starts the tests' bot has left.
const REMAINING: u32 = 900;
/// The child-mode switch (see [`child_process`]).
const CHILD: &str = "RECONNECT_REDIS_TEST_CHILD";
/// The child-mode switch of the fleet-wide cut (see
/// [`probe_child_process`]).
const PROBE_CHILD: &str = "RECONNECT_REDIS_PROBE_CHILD";

#[allow(dead_code, unreachable_pub)]
#[path = "redis/server.rs"]
mod server;

#[allow(dead_code, unreachable_pub)]
#[path = "redis/children.rs"]
mod children;

use children::Children;
use server::RedisServer;

// ----- the gateway's verdict ----------------------------------------------

/// The smallest gap between two accepted Identify payloads of each bucket
/// (`None` for a bucket with fewer than two), and how many each had.
fn spacing(stats: &GatewayStats, buckets: u32) -> BTreeMap<u32, (usize, Option<u64>)> {
    let mut times: BTreeMap<u32, Vec<Timestamp>> = BTreeMap::new();
    for &(at, shard) in &stats.identify_log {
        times.entry(shard % buckets).or_default().push(at);
    }
    times
        .into_iter()
        .map(|(bucket, mut at)| {
            at.sort_unstable();
            let min = at
                .windows(2)
                .map(|pair| pair[1].saturating_since(pair[0]))
                .min();
            (bucket, (at.len(), min))
        })
        .collect()
}

/// Asserts the gateway saw `expected` Identify payloads, none refused, and
/// each bucket's at least 5 s apart; prints the timeline.
fn assert_windows_kept(what: &str, stats: &GatewayStats, buckets: u32, expected: u64) {
    let per_bucket = spacing(stats, buckets);
    let first = stats.identify_log.iter().map(|(at, _)| *at).min();
    let last = stats.identify_log.iter().map(|(at, _)| *at).max();
    let overall = per_bucket.values().filter_map(|(_, min)| *min).min();
    println!(
        "{what}: {} Identify in {} buckets over {} ms; minimum spacing in a bucket {overall:?} ms; refused by the gateway {}",
        stats.identifies,
        per_bucket.len(),
        last.zip(first)
            .map_or(0, |(last, first)| last.saturating_since(first)),
        stats.identifies_rate_limited
    );
    for (bucket, (count, min)) in &per_bucket {
        println!("  bucket {bucket:>2}: {count} Identify, minimum spacing {min:?} ms");
    }
    assert_eq!(
        stats.identifies_rate_limited, 0,
        "{what}: window violations"
    );
    assert_eq!(stats.identifies, expected, "{what}: {stats:?}");
    assert!(
        overall.is_none_or(|min| min >= 5_000),
        "{what}: a bucket's Identify payloads came {overall:?} ms apart"
    );
}

// ----- one process of a bot -----------------------------------------------

fn gateway_config(buckets: u16) -> GatewayConfig {
    GatewayConfig {
        max_concurrency: buckets,
        event_interval_ms: 0,
        ..GatewayConfig::default()
    }
}

fn limit(buckets: u16) -> SessionStartLimit {
    SessionStartLimit {
        total: 1_000,
        remaining: REMAINING,
        reset_after_ms: 3_600_000,
        max_concurrency: buckets,
    }
}

/// Starts a runner of shards `range` of `total` on the current runtime,
/// its identify requests going to `store`; its events are read and
/// dropped.
async fn start_runner(
    gateway_url: &str,
    store: RedisIdentify,
    range: std::ops::Range<u32>,
    total: u32,
    buckets: u16,
) -> Runner {
    let client = ClientBuilder::new(Token::new("loopback-token")).policy(PolicyConfig {
        gateway_url: gateway_url.to_owned(),
        ..PolicyConfig::default()
    });
    let (runner, mut events) = RunnerBuilder::new(client)
        .gateway_bot(GatewayBot {
            url: gateway_url.to_owned(),
            shards: total,
            session_start_limit: limit(buckets),
        })
        .shards(range, total)
        .redis_identify(store)
        .start()
        .await
        .expect("the runner starts");
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    runner
}

/// Waits until `done` holds, at most `seconds`.
async fn wait_for(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let clock = Clock::start();
    while !done() {
        assert!(
            clock.elapsed() < Duration::from_secs(seconds),
            "timed out after {seconds} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn all_connected(runner: &Runner) -> bool {
    runner
        .figures()
        .values()
        .all(|figures| figures.state.is_connected())
}

/// In child mode (the environment variable [`CHILD`] set by
/// [`four_processes_of_one_bot_share_the_buckets_and_the_budget`]), this
/// is one process of the bot: it runs its shards until every one is
/// connected, prints `READY` and its figures, and closes when its standard
/// input ends. Otherwise it has nothing to do.
#[test]
fn child_process() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let parts: Vec<&str> = spec.split(' ').collect();
    let [gateway_url, redis_url, start, end, total, buckets] = parts[..] else {
        panic!("bad child spec {spec:?}");
    };
    let range = start.parse().unwrap()..end.parse().unwrap();
    let total: u32 = total.parse().unwrap();
    let buckets: u16 = buckets.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = RedisIdentify::new(redis_url, BOT_ID).unwrap();
        let runner = start_runner(gateway_url, store, range, total, buckets).await;
        wait_for("every shard of this process to connect", 120, || {
            all_connected(&runner)
        })
        .await;
        let figures = runner.figures();
        let identifies: u64 = figures.values().map(|f| f.policy.identifies_sent).sum();
        let store_figures = figures.values().next().and_then(|f| f.identify_store);
        println!("READY identifies={identifies} store={store_figures:?}");
        // The parent closes our stdin when it has seen every process ready.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .unwrap();
        runner.close().await.expect("the runner closes cleanly");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_of_one_bot_share_the_buckets_and_the_budget() {
    let test = "four_processes_of_one_bot_share_the_buckets_and_the_budget";
    let Some(redis) = RedisServer::start(test) else {
        return;
    };
    const PROCESSES: u32 = 4;
    const PER_PROCESS: u32 = 25;
    const BUCKETS: u16 = 32;
    let total = PROCESSES * PER_PROCESS;
    let gateway = Gateway::start(gateway_config(BUCKETS)).await.unwrap();
    let specs: Vec<String> = (0..PROCESSES)
        .map(|p| {
            format!(
                "{} {} {} {} {total} {BUCKETS}",
                gateway.url(),
                redis.url(),
                p * PER_PROCESS,
                (p + 1) * PER_PROCESS
            )
        })
        .collect();
    let mut children = Children::spawn("child_process", CHILD, &specs, &["READY"]);
    let ready = children
        .wait_each("READY", Duration::from_secs(150))
        .unwrap_or_else(|got| {
            panic!(
                "only {got} of {PROCESSES} processes got every shard connected: {:?}",
                gateway.stats()
            )
        });
    for (p, line) in &ready {
        println!("process {p}: {line}");
    }
    let stats = gateway.stats();
    // Every child closes once its stdin ends.
    children.close_inputs();
    children.wait_exit();
    assert_windows_kept(
        "4 processes x 25 shards, 32 buckets",
        &stats,
        u32::from(BUCKETS),
        u64::from(total),
    );
    let shards: std::collections::BTreeSet<u32> =
        stats.identify_log.iter().map(|(_, shard)| *shard).collect();
    assert_eq!(shards.len(), total as usize, "each shard identified once");
    let left = redis.command(&[
        "HGET",
        &format!("reconnect:{{{BOT_ID}}}:budget"),
        "remaining",
    ]);
    println!("session starts left in Redis: {left} (of {REMAINING})");
    assert_eq!(
        left,
        (REMAINING - total).to_string(),
        "one start per Identify"
    );
    // Every key carries the bot id, none the token, and each expires on
    // its own: a bucket within its lease (15 s), unused start slots a
    // minute after their time, the budget a period after its reset.
    let keys = redis.keys();
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(
            key.starts_with(&format!("reconnect:{{{BOT_ID}}}:")),
            "{key}"
        );
        assert!(!key.contains("loopback-token"), "{key}");
        let ttl: i64 = redis
            .command(&["PTTL", key])
            .trim_start_matches(':')
            .parse()
            .unwrap();
        let most = if key.ends_with(":probe") {
            600_000
        } else if key.ends_with(":budget") {
            3_600_000 + 24 * 3_600_000
        } else if key.ends_with(":reservations") {
            // A minute after the latest slot booked.
            120_000
        } else {
            15_000
        };
        assert!(ttl > 0 && ttl <= most, "{key} expires in {ttl} ms");
    }
    println!("{} keys in Redis, each with its own expiry", keys.len());
    gateway.stop().await;
}

/// A runner of `shards` shards in `buckets` buckets whose Redis goes away
/// after the first Identify payloads and comes back `outage` later, as
/// `cut` and `mend` say.
async fn store_outage(
    what: &str,
    redis_url: String,
    buckets: u16,
    shards: u32,
    outage: Duration,
    cut: impl FnOnce(),
    mend: impl FnOnce(),
) {
    let gateway = Gateway::start(gateway_config(buckets)).await.unwrap();
    let store = RedisIdentify::new(&redis_url, BOT_ID)
        .unwrap()
        .call_timeout(Duration::from_millis(200))
        .retry_every(Duration::from_millis(300));
    let runner = start_runner(&gateway.url(), store, 0..shards, shards, buckets).await;
    wait_for("the first Identify payloads", 60, || {
        gateway.stats().identifies >= u64::from(buckets)
    })
    .await;
    cut();
    let store_figures = |runner: &Runner| {
        runner
            .shard(0)
            .and_then(|shard| shard.figures().identify_store)
            .unwrap_or_default()
    };
    wait_for("the runner to fall back", 30, || {
        store_figures(&runner).in_fallback
    })
    .await;
    tokio::time::sleep(outage).await;
    let during = store_figures(&runner);
    mend();
    wait_for("every shard to connect", 120, || all_connected(&runner)).await;
    wait_for("the runner to return to Redis", 30, || {
        !store_figures(&runner).in_fallback
    })
    .await;
    let after = store_figures(&runner);
    println!("{what}: during the outage {during:?}; at the end {after:?}");
    assert_windows_kept(
        what,
        &gateway.stats(),
        u32::from(buckets),
        u64::from(shards),
    );
    assert_eq!(after.fallbacks, 1, "one fallback for one outage: {after:?}");
    assert_eq!(after.recoveries, 1, "{after:?}");
    assert!(
        during.local_grants >= 1,
        "the local share kept shards starting: {during:?}"
    );
    assert!(
        after.store_grants > during.store_grants,
        "Redis granted again once back: {during:?} then {after:?}"
    );
    assert_eq!(
        after.store_grants + after.local_grants,
        u64::from(shards),
        "{after:?}"
    );
    runner.close().await.expect("the runner closes cleanly");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_is_a_fallback_to_the_local_share_then_back() {
    let test = "a_redis_restart_is_a_fallback_to_the_local_share_then_back";
    let Some(redis) = RedisServer::start(test) else {
        return;
    };
    let redis = std::sync::Arc::new(std::sync::Mutex::new(redis));
    let url = redis.lock().unwrap().url();
    let (down, up) = (std::sync::Arc::clone(&redis), std::sync::Arc::clone(&redis));
    store_outage(
        "Redis killed and restarted",
        url,
        2,
        10,
        Duration::from_secs(6),
        move || down.lock().unwrap().stop(),
        move || {
            let mut server = up.lock().unwrap();
            let port = server.port;
            server
                .launch()
                .unwrap_or_else(|e| panic!("restart on {port}: {e}"));
        },
    )
    .await;
    // The restarted Redis lost the budget; the process filled it back
    // from what it knew, less every start it granted.
    let left = redis.lock().unwrap().command(&[
        "HGET",
        &format!("reconnect:{{{BOT_ID}}}:budget"),
        "remaining",
    ]);
    assert_eq!(left, (REMAINING - 10).to_string());
    redis.lock().unwrap().restart();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_to_redis_is_a_fallback_to_the_local_share_then_back() {
    let test = "a_partition_to_redis_is_a_fallback_to_the_local_share_then_back";
    let Some(redis) = RedisServer::start(test) else {
        return;
    };
    let proxy = FaultProxy::start(redis.addr(), 7).await.unwrap();
    let url = proxy.url().replace("ws://", "redis://");
    store_outage(
        "Redis behind a black-holed link",
        url,
        2,
        10,
        Duration::from_secs(6),
        || proxy.down(DownMode::BlackHole),
        || proxy.up(),
    )
    .await;
    let left = redis.command(&[
        "HGET",
        &format!("reconnect:{{{BOT_ID}}}:budget"),
        "remaining",
    ]);
    assert_eq!(
        left,
        (REMAINING - 10).to_string(),
        "local starts charged on return"
    );
    proxy.stop().await;
}

/// Two processes of one bot (two runners, each with its own responder,
/// owner names and fallback, as Redis sees two processes) identify
/// through one Redis in 2 buckets; Redis is killed while they do, both
/// fall back (the first owns both buckets in a fallback and grants
/// locally, the second parks its shards), and Redis comes back empty.
/// The first process to reach it again finds the bot's data gone, or
/// reconciles its fallback, and the store then grants nothing for its
/// return hold (`StoreFallbackConfig::return_hold_ms`): at the gateway no
/// bucket ever sees two Identify payloads within its window, across both
/// processes, and the session starts are counted exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_the_store_holds_its_grants_and_no_window_breaks_across_processes() {
    let test = "after_a_redis_restart_the_store_holds_its_grants";
    let Some(mut redis) = RedisServer::start(test) else {
        return;
    };
    const BUCKETS: u16 = 2;
    const TOTAL: u32 = 12;
    let gateway = Gateway::start(gateway_config(BUCKETS)).await.unwrap();
    let store = || {
        RedisIdentify::new(&redis.url(), BOT_ID)
            .unwrap()
            .call_timeout(Duration::from_millis(200))
            .retry_every(Duration::from_millis(300))
    };
    let first = start_runner(&gateway.url(), store(), 0..6, TOTAL, BUCKETS).await;
    let second = start_runner(&gateway.url(), store(), 6..12, TOTAL, BUCKETS).await;
    let figures_of = |runner: &Runner, shard: u32| {
        runner
            .shard(shard)
            .and_then(|shard| shard.figures().identify_store)
            .unwrap_or_default()
    };
    wait_for("the first Identify payloads", 60, || {
        gateway.stats().identifies >= u64::from(BUCKETS)
    })
    .await;
    redis.stop();
    wait_for("both processes to fall back", 30, || {
        figures_of(&first, 0).in_fallback && figures_of(&second, 6).in_fallback
    })
    .await;
    // Long enough for the owner of the buckets to grant locally (a window
    // after its fallback began).
    wait_for("a local grant", 30, || {
        figures_of(&first, 0).local_grants >= 1
    })
    .await;
    redis.launch().expect("redis-server starts again");
    wait_for("every shard to connect", 120, || {
        all_connected(&first) && all_connected(&second)
    })
    .await;
    let (a, b) = (figures_of(&first, 0), figures_of(&second, 6));
    println!("after a Redis restart: process 1 {a:?}; process 2 {b:?}");
    assert_windows_kept(
        "2 processes, Redis restarted during their fallback",
        &gateway.stats(),
        u32::from(BUCKETS),
        u64::from(TOTAL),
    );
    for (p, f) in [(1, a), (2, b)] {
        assert!(!f.in_fallback, "process {p} returned to Redis: {f:?}");
        assert_eq!(f.fallbacks, 1, "process {p}: {f:?}");
        assert_eq!(f.recoveries, 1, "process {p}: {f:?}");
    }
    assert_eq!(b.local_grants, 0, "the second process owns no bucket");
    assert!(
        a.store_held + b.store_held >= 1,
        "the store held its grants after the restart: {a:?} {b:?}"
    );
    assert_eq!(
        a.store_grants + a.local_grants + b.store_grants + b.local_grants,
        u64::from(TOTAL)
    );
    // Redis lost the budget; the first process back filled it from what it
    // knew (its own starts), so the other's starts before the restart are
    // not in it: a restart without persistence loses them.
    let left = redis.command(&[
        "HGET",
        &format!("reconnect:{{{BOT_ID}}}:budget"),
        "remaining",
    ]);
    println!("session starts left in the restarted Redis: {left} (of {REMAINING}, {TOTAL} used)");
    first.close().await.unwrap();
    second.close().await.unwrap();
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_whose_clocks_differ_keep_the_window() {
    let test = "processes_whose_clocks_differ_keep_the_window";
    let Some(redis) = RedisServer::start(test) else {
        return;
    };
    // One bucket, two processes of the bot. Each process's timestamps
    // count from its own start, so the second's clock reads 3 s less than
    // the first's at every instant; only Redis's clock decides.
    let gateway = Gateway::start(gateway_config(1)).await.unwrap();
    let store = || RedisIdentify::new(&redis.url(), BOT_ID).unwrap();
    let first = start_runner(&gateway.url(), store(), 0..2, 4, 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = start_runner(&gateway.url(), store(), 2..4, 4, 1).await;
    assert!(first.clock().now().saturating_since(second.clock().now()) >= 2_900);
    wait_for("every shard to connect", 120, || {
        all_connected(&first) && all_connected(&second)
    })
    .await;
    assert_windows_kept("clocks 3 s apart, 1 bucket", &gateway.stats(), 1, 4);
    first.close().await.unwrap();
    second.close().await.unwrap();
    gateway.stop().await;
}

// ----- one probe for the bot ----------------------------------------------

/// In child mode (the environment variable [`PROBE_CHILD`] set by
/// [`four_processes_cut_together`]), one process of the bot: it runs its
/// shards through its own proxy, prints `READY` once every one is
/// connected, keeps running through the cut, and when its standard input
/// ends prints its store figures as `FIGURES …` and closes.
#[test]
fn probe_child_process() {
    let Ok(spec) = std::env::var(PROBE_CHILD) else {
        return;
    };
    let parts: Vec<&str> = spec.split(' ').collect();
    let [gateway_url, redis_url, start, end, total, buckets, share] = parts[..] else {
        panic!("bad child spec {spec:?}");
    };
    let range = start.parse().unwrap()..end.parse().unwrap();
    let total: u32 = total.parse().unwrap();
    let buckets: u16 = buckets.parse().unwrap();
    let share = share == "share";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = RedisIdentify::new(redis_url, BOT_ID)
            .unwrap()
            .share_probe(share);
        let runner = start_runner(gateway_url, store, range, total, buckets).await;
        wait_for("every shard of this process to connect", 120, || {
            all_connected(&runner)
        })
        .await;
        println!("READY");
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .unwrap();
        let figures = runner.figures();
        let store_figures = figures.values().next().and_then(|f| f.identify_store);
        let attempts: u64 = figures.values().map(|f| f.policy.attempts).sum();
        println!("FIGURES attempts={attempts} store={store_figures:?}");
        runner.close().await.expect("the runner closes cleanly");
    });
}

/// What the proxies and gateways saw of one fleet-wide cut of a bot's
/// processes.
struct BotCut {
    /// Per process, the dials its proxy refused during the cut, in ms
    /// after the cut started (on one clock for all).
    refused: Vec<Vec<u64>>,
    /// Per process, its shards' RESUMED after the heal, in ms after it.
    resumed: Vec<Vec<u64>>,
    /// Identify payloads the gateways accepted after the cut.
    identifies_after: u64,
    /// Each process's closing `FIGURES` line.
    figures: Vec<String>,
}

impl BotCut {
    /// Every refused dial from `from_ms` after the cut on, by time, with
    /// its process.
    fn stream(&self, from_ms: u64) -> Vec<(u64, usize)> {
        let mut all: Vec<(u64, usize)> = self
            .refused
            .iter()
            .enumerate()
            .flat_map(|(p, at)| at.iter().map(move |&at| (at, p)))
            .filter(|&(at, _)| at >= from_ms)
            .collect();
        all.sort_unstable();
        all
    }

    fn last_resumed(&self) -> u64 {
        self.resumed.iter().flatten().copied().max().unwrap_or(0)
    }

    fn print(&self, what: &str) {
        println!("{what}:");
        for (p, at) in self.refused.iter().enumerate() {
            let resumed = &self.resumed[p];
            println!(
                "  process {p}: {} dials refused during the cut at {at:?} ms; {} shards resumed {}..{} ms after the heal",
                at.len(),
                resumed.len(),
                resumed.iter().min().unwrap_or(&0),
                resumed.iter().max().unwrap_or(&0),
            );
        }
        let total: usize = self.refused.iter().map(Vec::len).sum();
        println!(
            "  the bot: {total} dials refused during the cut; last RESUMED {} ms after the heal; {} Identify after the cut",
            self.last_resumed(),
            self.identifies_after
        );
        let mut bins = vec![0_u32; usize::try_from(self.last_resumed() / 100 + 1).unwrap()];
        for &at in self.resumed.iter().flatten() {
            bins[usize::try_from(at / 100).unwrap()] += 1;
        }
        println!("  RESUMED per 100 ms after the heal: {bins:?}");
        for line in &self.figures {
            println!("  {line}");
        }
    }
}

/// Runs 4 OS processes of one bot (25 shards each, each process through
/// its own fault proxy in front of its own loopback gateway, identify
/// through one Redis), cuts every proxy at once for 20 s (connections
/// reset, dials refused), waits until every shard has resumed, and reads
/// what the proxies and gateways saw. `share` turns the shared probe on.
async fn four_processes_cut_together(redis: &RedisServer, share: bool) -> BotCut {
    const PROCESSES: usize = 4;
    const PER_PROCESS: u32 = 25;
    const BUCKETS: u16 = 100;
    const CUT: Duration = Duration::from_secs(20);
    let total = PER_PROCESS * PROCESSES as u32;
    let mut gateways = Vec::new();
    let mut proxies = Vec::new();
    for p in 0..PROCESSES {
        let gateway = Gateway::start(GatewayConfig {
            event_interval_ms: 200,
            ..gateway_config(BUCKETS)
        })
        .await
        .unwrap();
        let proxy = FaultProxy::start(gateway.addr(), 40 + p as u64)
            .await
            .unwrap();
        // Resumes cross the proxy too.
        gateway.set_resume_url(proxy.url());
        gateways.push(gateway);
        proxies.push(proxy);
    }
    let specs: Vec<String> = (0..PROCESSES)
        .map(|p| {
            let first = p as u32 * PER_PROCESS;
            format!(
                "{} {} {first} {} {total} {BUCKETS} {}",
                proxies[p].url(),
                redis.url(),
                first + PER_PROCESS,
                if share { "share" } else { "alone" }
            )
        })
        .collect();
    let mut children = Children::spawn(
        "probe_child_process",
        PROBE_CHILD,
        &specs,
        &["READY", "FIGURES"],
    );
    if let Err(ready) = children.wait_each("READY", Duration::from_secs(150)) {
        panic!("only {ready} of {PROCESSES} processes got every shard connected");
    }
    // Let the sessions settle into their heartbeats.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before: Vec<u64> = gateways.iter().map(|g| g.stats().identifies).collect();
    let (w0, w1, w2, w3) = tokio::join!(
        proxies[0].cut(DownMode::Reset, CUT),
        proxies[1].cut(DownMode::Reset, CUT),
        proxies[2].cut(DownMode::Reset, CUT),
        proxies[3].cut(DownMode::Reset, CUT),
    );
    let windows: [CutWindow; PROCESSES] = [w0, w1, w2, w3];
    // One clock for the whole bot: the first proxy's.
    let base = proxies[0].clock();
    let cut_at = windows[0].started_at;
    let heals: Vec<Timestamp> = (0..PROCESSES)
        .map(|p| {
            proxies[p]
                .clock()
                .translate(windows[p].healed_at, gateways[p].clock())
        })
        .collect();
    let resumed_after = |p: usize| -> Vec<u64> {
        let mut first: BTreeMap<String, u64> = BTreeMap::new();
        for resume in gateways[p]
            .stats()
            .resume_log
            .iter()
            .filter(|r| r.at >= heals[p])
        {
            first
                .entry(resume.session_id.clone())
                .or_insert_with(|| resume.at.saturating_since(heals[p]));
        }
        first.into_values().collect()
    };
    let back = Clock::start();
    loop {
        let done = (0..PROCESSES).all(|p| {
            let identified = gateways[p].stats().identifies - before[p];
            resumed_after(p).len() as u64 + identified >= u64::from(PER_PROCESS)
        });
        if done {
            break;
        }
        if back.elapsed() > Duration::from_secs(60) {
            children.kill();
            panic!("not every shard was back within 60 s of the heal");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused: Vec<Vec<u64>> = (0..PROCESSES)
        .map(|p| {
            proxies[p]
                .dials()
                .iter()
                .filter(|d| d.outcome == DialOutcome::Refused && windows[p].contains(d.at))
                .map(|d| {
                    proxies[p]
                        .clock()
                        .translate(d.at, base)
                        .saturating_since(cut_at)
                })
                .collect()
        })
        .collect();
    let resumed: Vec<Vec<u64>> = (0..PROCESSES).map(resumed_after).collect();
    let identifies_after = (0..PROCESSES)
        .map(|p| gateways[p].stats().identifies - before[p])
        .sum();
    children.close_inputs();
    let figures = children
        .wait_each("FIGURES", Duration::from_secs(30))
        .unwrap_or_else(|got| {
            panic!("only {got} of {PROCESSES} child processes reported their figures")
        })
        .into_iter()
        .map(|(p, line)| format!("process {p}: {line}"))
        .collect();
    children.wait_exit();
    for proxy in proxies {
        proxy.stop().await;
    }
    for gateway in gateways {
        gateway.stop().await;
    }
    BotCut {
        refused,
        resumed,
        identifies_after,
        figures,
    }
}

/// The shortest gap between two probes of the bot the shared probe allows
/// (`ProbeCoordinator::MIN_GRANT_GAP_MS`), less 50 ms for the translation
/// between the proxies' clocks and the way from the process to its proxy.
const PROBE_GAP_MS: u64 = reconnect_policy::ProbeCoordinator::MIN_GRANT_GAP_MS - 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_cut_together_send_one_probe_stream_then_ramp() {
    let test = "four_processes_cut_together_send_one_probe_stream_then_ramp";
    let Some(redis) = RedisServer::start(test) else {
        return;
    };
    let cut = four_processes_cut_together(&redis, true).await;
    cut.print("4 processes x 25 shards, cut together for 20 s, one shared probe");
    let recovery = PolicyConfig::default().fleet_recovery;
    // Each process trips on its own within a second of the cut; after it,
    // what reaches the proxies are the bot's probes.
    let probes = cut.stream(recovery.probe_base_ms * 3 / 4);
    let gaps: Vec<u64> = probes.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        gaps.iter().all(|&gap| gap >= PROBE_GAP_MS),
        "two probes of the bot {gaps:?} ms apart: not one stream {probes:?}"
    );
    // One fleet's probe bound over the cut (as in the fleet-cut test): one
    // per shortest probe gap once the gaps reach the cap, and two more.
    let gap = (recovery.probe_cap_ms * 3 / 4).max(1);
    let most = 2 + 20_000 / gap;
    assert!(
        probes.len() as u64 <= most,
        "{} probes for the bot; one fleet's schedule allows {most}: {probes:?}",
        probes.len()
    );
    // Every shard of every process resumed (none identified again), the
    // last within one probe gap, the poll of the shared probe and 3 s of
    // ramp after the heal.
    assert_eq!(cut.identifies_after, 0, "sessions kept");
    assert!(cut.resumed.iter().all(|r| r.len() == 25));
    let bound = recovery.probe_cap_ms + reconnect_policy::ProbeCoordinator::POLL_MS + 3_000;
    assert!(
        cut.last_resumed() <= bound,
        "the last shard resumed {} ms after the heal (at most {bound})",
        cut.last_resumed()
    );
    // The store saw the probes through: its key carries the bot id and
    // expires on its own.
    let key = format!("reconnect:{{{BOT_ID}}}:probe");
    let ttl: i64 = redis
        .command(&["PTTL", &key])
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "{key} expires in {ttl} ms");
    println!(
        "  probe key: grants {}, answered {}",
        redis.command(&["HGET", &key, "grants"]),
        redis.command(&["HGET", &key, "answered"])
    );
}

/// The same cut with each process probing alone, for comparison (prints
/// its figures; asserts only that every shard came back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a comparison run: 4 processes probing alone"]
async fn four_processes_cut_together_probing_alone() {
    let test = "four_processes_cut_together_probing_alone";
    let Some(redis) = RedisServer::start(test) else {
        return;
    };
    let cut = four_processes_cut_together(&redis, false).await;
    cut.print("4 processes x 25 shards, cut together for 20 s, each probing alone");
    assert!(cut.resumed.iter().all(|r| r.len() == 25));
}

/// Redis gone when the fleet loses the gateway: the process probes on its
/// own schedule (no deadlock: every shard resumes after the heal; no
/// storm: the proxy sees no more dials than one fleet's probes), says so
/// once, counts it in its figures, and goes back to Redis when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_away_a_fleet_wide_cut_is_probed_on_the_process_own_schedule() {
    let test = "with_redis_away_a_fleet_wide_cut_is_probed_on_the_process_own_schedule";
    let Some(mut redis) = RedisServer::start(test) else {
        return;
    };
    const SHARDS: u32 = 10;
    const CUT: Duration = Duration::from_secs(10);
    let gateway = Gateway::start(GatewayConfig {
        event_interval_ms: 200,
        ..gateway_config(10)
    })
    .await
    .unwrap();
    let proxy = FaultProxy::start(gateway.addr(), 77).await.unwrap();
    gateway.set_resume_url(proxy.url());
    let store = RedisIdentify::new(&redis.url(), BOT_ID)
        .unwrap()
        .call_timeout(Duration::from_millis(200))
        .retry_every(Duration::from_millis(300));
    let runner = start_runner(&proxy.url(), store, 0..SHARDS, SHARDS, 10).await;
    wait_for("every shard to connect", 60, || all_connected(&runner)).await;
    let store_figures = |runner: &Runner| {
        runner
            .shard(0)
            .and_then(|shard| shard.figures().identify_store)
            .unwrap_or_default()
    };
    assert_eq!(store_figures(&runner).fallbacks, 0);
    redis.stop();
    let before = gateway.stats().identifies;
    let window = proxy.cut(DownMode::Reset, CUT).await;
    let heal = proxy.clock().translate(window.healed_at, gateway.clock());
    wait_for("every shard to resume after the heal", 30, || {
        let resumed: std::collections::BTreeSet<String> = gateway
            .stats()
            .resume_log
            .iter()
            .filter(|r| r.at >= heal)
            .map(|r| r.session_id.clone())
            .collect();
        resumed.len() as u64 + (gateway.stats().identifies - before) >= u64::from(SHARDS)
    })
    .await;
    let during = store_figures(&runner);
    let refused: Vec<u64> = proxy
        .dials()
        .iter()
        .filter(|d| d.outcome == DialOutcome::Refused && window.contains(d.at))
        .map(|d| d.at.saturating_since(window.started_at))
        .collect();
    println!(
        "Redis away during a 10 s cut of 10 shards: {} dials refused at {refused:?} ms; {during:?}",
        refused.len()
    );
    let recovery = PolicyConfig::default().fleet_recovery;
    let most = u64::from(recovery.min_shards) + 2 + 10_000 / (recovery.probe_cap_ms * 3 / 4);
    assert!(
        refused.len() as u64 <= most,
        "{} dials in the cut; one fleet's probes allow {most}",
        refused.len()
    );
    assert!(during.in_fallback, "{during:?}");
    assert_eq!(during.fallbacks, 1, "said once: {during:?}");
    assert!(during.probe_local_grants >= 1, "{during:?}");
    assert_eq!(during.probe_grants, 0, "{during:?}");
    // Redis back: the process returns to it.
    redis.launch().expect("Redis starts again");
    wait_for("the runner to return to Redis", 30, || {
        !store_figures(&runner).in_fallback
    })
    .await;
    assert_eq!(store_figures(&runner).recoveries, 1);
    runner.close().await.expect("the runner closes cleanly");
    proxy.stop().await;
    gateway.stop().await;
}
