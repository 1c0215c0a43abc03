//! The scripts alone, against a real `redis-server` started on a free
//! loopback port (skipped, loudly, when it cannot be started), with short
//! windows and leases so that expiry can be watched in a second.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::scripts::{Keys, Scripts};
use crate::clock::Clock;

struct Server {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh Redis and a connection to it, or `None` after saying why not.
async fn redis(test: &str) -> Option<(Server, MultiplexedConnection)> {
    let skip = |reason: String| {
        eprintln!(
            "\n!!!!!!!! SKIPPED {test}: {reason}\n!!!!!!!! install Redis (`apt-get install -y redis-server`) to run it\n"
        );
    };
    let port = match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(error) => {
            skip(format!("no free port: {error}"));
            return None;
        }
    };
    let dir = std::env::temp_dir().join(format!(
        "reconnect-redis-unit-{}-{port}",
        std::process::id()
    ));
    let _ = std::fs::create_dir_all(&dir);
    let child = match Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            skip(format!("`redis-server` could not be started: {error}"));
            return None;
        }
    };
    let server = Server { child, dir };
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let clock = Clock::start();
    while clock.elapsed() < Duration::from_secs(10) {
        if let Ok(connection) = client.get_multiplexed_async_connection().await {
            return Some((server, connection));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    skip("`redis-server` did not accept connections within 10 s".to_owned());
    None
}

const PERIOD: u64 = 86_400_000;

/// Runs Acquire for `owner` in bucket 0: window 300 ms, lease 1,000 ms,
/// a budget of 100 with `remaining` left resetting in `reset_in` ms, from
/// a caller the store has not answered before.
async fn acquire(
    connection: &mut MultiplexedConnection,
    owner: &str,
    remaining: u32,
    reset_in: u64,
    deadline: i64,
) -> (i64, i64, i64) {
    acquire_after(connection, owner, remaining, reset_in, deadline, (false, 0)).await
}

/// As [`acquire`], from a caller the store has answered before or not
/// (`known`), with a return hold of `hold` ms.
async fn acquire_after(
    connection: &mut MultiplexedConnection,
    owner: &str,
    remaining: u32,
    reset_in: u64,
    deadline: i64,
    (known, hold): (bool, u64),
) -> (i64, i64, i64) {
    let scripts = Scripts::new();
    let keys = Keys::new(7);
    scripts
        .acquire
        .key(keys.bucket(0))
        .key(keys.budget())
        .key(keys.reservations())
        .arg(owner)
        .arg(300)
        .arg(1_000)
        .arg(100)
        .arg(remaining)
        .arg(reset_in)
        .arg(PERIOD)
        .arg(250)
        .arg(deadline)
        .arg(u8::from(known))
        .arg(hold)
        .invoke_async(connection)
        .await
        .unwrap()
}

async fn remaining(connection: &mut MultiplexedConnection) -> i64 {
    redis::cmd("HGET")
        .arg(Keys::new(7).budget())
        .arg("remaining")
        .query_async(connection)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_grant_never_settled_holds_its_bucket_one_lease_at_most() {
    let Some((_server, mut c)) = redis("a_grant_never_settled_holds_its_bucket").await else {
        return;
    };
    let granted = acquire(&mut c, "crashed:0", 50, 60_000, 0).await;
    assert_eq!((granted.0, granted.1), (1, 49));
    // Within the window: ask again when it is over.
    let (flag, wait, _) = acquire(&mut c, "other:1", 50, 60_000, 0).await;
    assert_eq!(flag, 0);
    assert!((200..=300).contains(&wait), "{wait}");
    // After the window, the grant is still out: short polls.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(acquire(&mut c, "other:1", 50, 60_000, 0).await.0, 0);
    // Its owner crashed: the lease runs out and the bucket is free again.
    let pttl: i64 = redis::cmd("PTTL")
        .arg(Keys::new(7).bucket(0))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 1_000, "{pttl}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (flag, left, _) = acquire(&mut c, "other:1", 50, 60_000, 0).await;
    assert_eq!((flag, left), (1, 48));
}

#[tokio::test]
async fn an_acquire_that_runs_past_its_deadline_takes_nothing() {
    let Some((_server, mut c)) = redis("an_acquire_that_runs_past_its_deadline").await else {
        return;
    };
    let (_, _, server_now) = acquire(&mut c, "a:0", 50, 60_000, 0).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (flag, ..) = acquire(&mut c, "a:2", 50, 60_000, server_now).await;
    assert_eq!(flag, 2, "its caller has stopped waiting");
    assert_eq!(remaining(&mut c).await, 49, "nothing spent");
}

#[tokio::test]
async fn a_grant_whose_answer_was_lost_is_given_back() {
    let Some((_server, mut c)) = redis("a_grant_whose_answer_was_lost").await else {
        return;
    };
    assert_eq!(acquire(&mut c, "lost:0", 50, 60_000, 0).await.0, 1);
    assert_eq!(remaining(&mut c).await, 49);
    let keys = Keys::new(7);
    let (left, _): (i64, i64) = Scripts::new()
        .reconcile
        .key(keys.budget())
        .key(keys.bucket(0))
        .arg(300)
        .arg(0)
        .arg(100)
        .arg(50)
        .arg(60_000)
        .arg(PERIOD)
        .arg(0)
        .arg("lost:0")
        .arg(0)
        .arg("p")
        .arg(1)
        .invoke_async(&mut c)
        .await
        .unwrap();
    assert_eq!(left, 50);
    // Released: after the window, the bucket grants again at once.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(acquire(&mut c, "next:2", 50, 60_000, 0).await.0, 1);
}

#[tokio::test]
async fn the_store_grants_nothing_during_its_return_hold() {
    let Some((_server, mut c)) = redis("the_store_grants_nothing_during_its_return_hold").await
    else {
        return;
    };
    let known = |hold| (true, hold);
    // A bot's first start: nothing was lost, no hold.
    assert_eq!(acquire(&mut c, "a:0", 50, 60_000, 0).await.0, 1);
    // Redis restarted without its data: a process it had answered before
    // finds the budget gone, and the store holds for the hold's length.
    let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    let (flag, wait, _) = acquire_after(&mut c, "b:1", 50, 60_000, 0, known(600)).await;
    assert_eq!(flag, 3, "held");
    assert!((500..=600).contains(&wait), "{wait}");
    // Start slots are booked after it too.
    let keys = Keys::new(7);
    let slot_in: i64 = Scripts::new()
        .reserve
        .key(keys.bucket(1))
        .key(keys.budget())
        .key(keys.reservations())
        .arg("c:1")
        .arg(300)
        .arg(100)
        .arg(50)
        .arg(60_000)
        .arg(PERIOD)
        .arg(60_000)
        .arg(1)
        .arg(600)
        .invoke_async(&mut c)
        .await
        .unwrap();
    assert!((400..=600).contains(&slot_in), "{slot_in}");
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(
        acquire_after(&mut c, "b:1", 50, 60_000, 0, known(600))
            .await
            .0,
        1
    );
    // Its Identify ended at once (no wait): the bucket is free again.
    let settled: i64 = Scripts::new()
        .settle
        .key(keys.bucket(0))
        .arg("b:1")
        .arg(0)
        .invoke_async(&mut c)
        .await
        .unwrap();
    assert_eq!(settled, 1);
    // A process back from a fallback reconciles: the store holds again.
    let (_, _): (i64, i64) = Scripts::new()
        .reconcile
        .key(keys.budget())
        .arg(300)
        .arg(0)
        .arg(100)
        .arg(50)
        .arg(60_000)
        .arg(PERIOD)
        .arg(0)
        .arg(500)
        .arg("p")
        .arg(1)
        .invoke_async(&mut c)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (flag, wait, _) = acquire(&mut c, "d:2", 50, 60_000, 0).await;
    assert_eq!(flag, 3, "held after a reconcile, whoever asks");
    assert!(wait > 0 && wait <= 150, "{wait}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(acquire(&mut c, "d:2", 50, 60_000, 0).await.0, 1);
}

/// Runs the reconcile of `process`'s fallback `fallback`, whose local
/// share granted `debt` starts in all; the session starts left.
async fn reconcile(c: &mut MultiplexedConnection, process: &str, fallback: u64, debt: u64) -> i64 {
    let keys = Keys::new(7);
    let (left, _): (i64, i64) = Scripts::new()
        .reconcile
        .key(keys.budget())
        .arg(300)
        .arg(debt)
        .arg(100)
        .arg(50)
        .arg(60_000)
        .arg(PERIOD)
        .arg(0)
        .arg(0)
        .arg(process)
        .arg(fallback)
        .invoke_async(c)
        .await
        .unwrap();
    left
}

#[tokio::test]
async fn each_start_of_a_fallback_is_charged_once_however_many_reconciles_arrive() {
    let Some((_server, mut c)) = redis("each_start_of_a_fallback_is_charged_once").await else {
        return;
    };
    assert_eq!(reconcile(&mut c, "a", 1, 2).await, 48);
    // The same reconcile again (its answer was lost): nothing new.
    assert_eq!(reconcile(&mut c, "a", 1, 2).await, 48);
    // One more start in the same fallback.
    assert_eq!(reconcile(&mut c, "a", 1, 3).await, 47);
    // Another process, and a later fallback, are charged on their own.
    assert_eq!(reconcile(&mut c, "b", 1, 1).await, 46);
    assert_eq!(reconcile(&mut c, "a", 2, 1).await, 45);
}

#[tokio::test]
async fn the_budget_waits_for_its_reset_then_refills() {
    let Some((_server, mut c)) = redis("the_budget_waits_for_its_reset").await else {
        return;
    };
    let first = acquire(&mut c, "a:0", 1, 800, 0).await;
    assert_eq!((first.0, first.1), (1, 0), "the last start of the period");
    let (flag, wait, _) = acquire(&mut c, "b:1", 1, 800, 0).await;
    assert_eq!(flag, 0);
    assert!(wait > 0 && wait <= 800, "until the reset: {wait}");
    // Past the reset (and the first grant's lease): the full allowance.
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    let (flag, left, _) = acquire(&mut c, "b:1", 1, 800, 0).await;
    assert_eq!((flag, left), (1, 99));
}

/// Runs the probe script: `op` for `holder`, its fleet's next probe in
/// `next_in` ms, its outage `age` ms old; grants of 100..=2,000 ms, polls
/// of 150 ms, a key that lives 5 s.
async fn probe(
    connection: &mut MultiplexedConnection,
    op: &str,
    holder: &str,
    next_in: u64,
    age: u64,
) -> (i64, i64) {
    let (kind, ms, _now): (i64, i64, i64) = Scripts::new()
        .probe
        .key(Keys::new(7).probe())
        .arg(op)
        .arg(holder)
        .arg(next_in)
        .arg(age)
        .arg(100)
        .arg(2_000)
        .arg(150)
        .arg(5_000)
        .invoke_async(connection)
        .await
        .unwrap();
    (kind, ms)
}

#[tokio::test]
async fn one_probe_per_grant_for_the_bot_then_gateway_back_for_every_process() {
    let Some((_server, mut c)) = redis("one_probe_per_grant_for_the_bot").await else {
        return;
    };
    // The first process to ask holds the probe until its own next probe.
    assert_eq!(probe(&mut c, "acquire", "a", 400, 1_000).await, (0, 0));
    // The others are told to poll, at the poll or the grant's end.
    let (kind, wait) = probe(&mut c, "acquire", "b", 300, 1_000).await;
    assert_eq!(kind, 1);
    assert!((100..=150).contains(&wait), "{wait}");
    // A failed probe does not shorten the grant.
    assert_eq!(probe(&mut c, "failed", "a", 0, 0).await.0, 3);
    assert_eq!(probe(&mut c, "acquire", "c", 300, 1_000).await.0, 1);
    // After it, one other process gets the next probe.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(probe(&mut c, "acquire", "b", 10, 1_500).await, (0, 0));
    // Shorter than the minimum is the minimum.
    assert_eq!(probe(&mut c, "acquire", "c", 10, 1_500).await.0, 1);
    // Its probe is answered: every process whose outage began before
    // learns the gateway is back; one whose outage began later does not.
    assert_eq!(probe(&mut c, "answered", "b", 0, 0).await.0, 3);
    assert_eq!(probe(&mut c, "acquire", "a", 400, 2_000).await.0, 2);
    assert_eq!(probe(&mut c, "acquire", "c", 400, 2_000).await.0, 2);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(probe(&mut c, "acquire", "d", 400, 0).await, (0, 0));
    // The key expires on its own.
    let pttl: i64 = redis::cmd("PTTL")
        .arg(Keys::new(7).probe())
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 5_000, "{pttl}");
}
