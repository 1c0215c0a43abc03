//! One relayed connection: a pump each way, each made of a reader that
//! queues what it reads and a writer that applies the toxics of its
//! direction before writing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::debug;

use super::toxic::{draw_latency, slice_sizes, transfer_us};
use super::{DialOutcome, Direction, DownMode, Kill, LinkState, ProxyShared, Toxic, ToxicSpec};
use crate::rst::arm_reset;

/// The most bytes held for a connection waiting out a black hole.
const MAX_HELD_BYTES: usize = 1 << 20;
/// Chunks a reader may queue ahead of its writer.
const QUEUE_CHUNKS: usize = 64;

/// What a reader hands its writer.
enum Chunk {
    /// Bytes, and when they were read.
    Data(Instant, Vec<u8>),
    /// The source closed.
    Eof,
    /// The source failed (reset).
    Failed,
}

/// Relays one accepted connection until both directions are done.
pub(super) async fn run(shared: Arc<ProxyShared>, mut client: TcpStream, id: u64) {
    let _ = client.set_nodelay(true);
    let mut link = shared.link.subscribe();
    let mut first = Vec::new();
    let state = *link.borrow_and_update();
    match state {
        LinkState::Up => shared.log_dial(DialOutcome::Relayed),
        LinkState::Down(DownMode::BlackHole) => {
            shared.log_dial(DialOutcome::Held);
            shared.lock().stats.held += 1;
            if !hold(&mut client, &mut link, &mut first).await {
                return;
            }
            shared.drained().await;
        }
        LinkState::Down(_) => {
            shared.log_dial(DialOutcome::Refused);
            shared.lock().stats.refused += 1;
            arm_reset(&client);
            return;
        }
    }
    let upstream = match TcpStream::connect(shared.upstream).await {
        Ok(upstream) => upstream,
        Err(e) => {
            debug!(link = id, error = %e, "upstream unreachable");
            shared.lock().stats.upstream_failures += 1;
            arm_reset(&client);
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let (kill_tx, kill_rx) = watch::channel(None);
    let kill_tx = Arc::new(kill_tx);
    {
        let mut state = shared.lock();
        state.kills.insert(id, Arc::clone(&kill_tx));
        state.stats.open_links += 1;
        state.stats.max_open_links = state.stats.max_open_links.max(state.stats.open_links);
    }
    // The link may have gone down while this connection was being set up.
    if let LinkState::Down(mode @ (DownMode::Reset | DownMode::Close)) = *shared.link.borrow() {
        let kill = if mode == DownMode::Reset {
            Kill::Reset
        } else {
            Kill::Close
        };
        kill_tx.send_if_modified(|k| k.is_none() && k.replace(kill).is_none());
    }
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let pump = |direction: Direction| Pump {
        direction,
        shared: Arc::clone(&shared),
        kill_tx: Arc::clone(&kill_tx),
        kill: kill_rx.clone(),
        link: link.clone(),
        toxics: shared.toxics.subscribe(),
        rng: ChaCha8Rng::seed_from_u64(
            shared.seed ^ id.rotate_left(17) ^ (direction as u64).wrapping_add(1),
        ),
        applies: BTreeMap::new(),
        sent: 0,
    };
    let up = pump(Direction::Upstream).run(client_read, upstream_write, first);
    let down = pump(Direction::Downstream).run(upstream_read, client_write, Vec::new());
    tokio::join!(up, down);
    let mut state = shared.lock();
    state.kills.remove(&id);
    state.stats.open_links = state.stats.open_links.saturating_sub(1);
}

/// Holds a connection while the link is a black hole, keeping what the
/// client sends. `true` when the link is back; `false` when the client
/// left or the link went down another way (the connection is then gone).
async fn hold(
    client: &mut TcpStream,
    link: &mut watch::Receiver<LinkState>,
    held: &mut Vec<u8>,
) -> bool {
    loop {
        tokio::select! {
            changed = link.changed() => {
                if changed.is_err() {
                    return false;
                }
                match *link.borrow_and_update() {
                    LinkState::Up => return true,
                    LinkState::Down(DownMode::BlackHole) => {}
                    LinkState::Down(_) => {
                        arm_reset(client);
                        return false;
                    }
                }
            }
            read = client.read_buf(held) => match read {
                Ok(0) | Err(_) => return false,
                Ok(_) if held.len() > MAX_HELD_BYTES => return false,
                Ok(_) => {}
            },
        }
    }
}

/// One direction of a connection.
struct Pump {
    direction: Direction,
    shared: Arc<ProxyShared>,
    kill_tx: Arc<watch::Sender<Option<Kill>>>,
    kill: watch::Receiver<Option<Kill>>,
    link: watch::Receiver<LinkState>,
    toxics: watch::Receiver<Arc<Vec<ToxicSpec>>>,
    rng: ChaCha8Rng,
    /// Whether each toxic (by name) applies to this connection.
    applies: BTreeMap<String, bool>,
    /// Bytes written so far.
    sent: u64,
}

impl Pump {
    async fn run(self, src: OwnedReadHalf, dst: OwnedWriteHalf, first: Vec<u8>) {
        let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
        let reader = read_side(Arc::clone(&self.shared), self.kill.clone(), src, tx, first);
        tokio::join!(reader, self.write_side(dst, rx));
    }

    fn now(&self) -> Instant {
        let clock = self.shared.clock;
        clock.instant_at(clock.now())
    }

    fn after(&self, ms: u64) -> Instant {
        let clock = self.shared.clock;
        clock.instant_at(clock.now().saturating_add(ms))
    }

    /// Ends the whole connection (both directions), the first call wins.
    fn kill(&self, kill: Kill) {
        let first = self
            .kill_tx
            .send_if_modified(|k| k.is_none() && k.replace(kill).is_none());
        if first {
            let mut state = self.shared.lock();
            match kill {
                Kill::Close => state.stats.closes += 1,
                Kill::Reset => state.stats.resets += 1,
            }
        }
    }

    /// The toxics of this direction that apply to this connection.
    fn active(&mut self) -> Vec<Toxic> {
        let toxics = Arc::clone(&self.toxics.borrow_and_update());
        let mut active = Vec::new();
        for spec in toxics.iter().filter(|t| t.direction == self.direction) {
            let applies = match self.applies.get(&spec.name) {
                Some(applies) => *applies,
                None => {
                    let applies = self.rng.random::<f64>() < spec.toxicity;
                    self.applies.insert(spec.name.clone(), applies);
                    applies
                }
            };
            if applies {
                active.push(spec.toxic);
            }
        }
        active
    }

    async fn write_side(mut self, mut dst: OwnedWriteHalf, mut rx: mpsc::Receiver<Chunk>) {
        let mut black_hole_close: Option<Option<Instant>> = None;
        let mut reset_at: Option<Instant> = None;
        loop {
            let toxics = self.active();
            let timeout = toxics.iter().find_map(|t| match t {
                Toxic::Timeout { timeout_ms } => Some(*timeout_ms),
                _ => None,
            });
            black_hole_close = match (timeout, black_hole_close) {
                (Some(_), Some(armed)) => Some(armed),
                (Some(ms), None) => Some((ms > 0).then(|| self.after(ms))),
                (None, _) => None,
            };
            let reset = toxics.iter().find_map(|t| match t {
                Toxic::ResetPeer { timeout_ms } => Some(*timeout_ms),
                _ => None,
            });
            reset_at = match (reset, reset_at) {
                (Some(_), Some(at)) => Some(at),
                (Some(ms), None) => Some(self.after(ms)),
                (None, _) => None,
            };
            let paused = *self.link.borrow() == LinkState::Down(DownMode::BlackHole);
            let close_at = black_hole_close.flatten();
            tokio::select! {
                biased;
                _ = killed(&mut self.kill) => break,
                () = sleep_until(reset_at) => {
                    self.kill(Kill::Reset);
                    break;
                }
                () = sleep_until(close_at) => {
                    self.kill(Kill::Close);
                    break;
                }
                _ = self.toxics.changed() => {}
                _ = self.link.changed() => {}
                chunk = rx.recv(), if !paused => match chunk {
                    Some(Chunk::Data(at, bytes)) => {
                        let len = bytes.len() as u64;
                        let delivered = if black_hole_close.is_some() {
                            Ok(())
                        } else {
                            self.deliver(&mut dst, &toxics, at, bytes).await
                        };
                        // Counted as waiting until written (or dropped).
                        self.shared.queued.fetch_sub(len, Ordering::SeqCst);
                        if let Err(kill) = delivered {
                            self.kill(kill);
                            break;
                        }
                    }
                    Some(Chunk::Eof) | None => {
                        let slow = toxics.iter().find_map(|t| match t {
                            Toxic::SlowClose { delay_ms } => Some(*delay_ms),
                            _ => None,
                        });
                        if let Some(ms) = slow {
                            let at = self.after(ms);
                            if self.wait_until(at).await.is_err() {
                                break;
                            }
                        }
                        // Half-close: the other direction carries on.
                        let _ = dst.shutdown().await;
                        drain(&self.shared, &mut rx);
                        return;
                    }
                    Some(Chunk::Failed) => {
                        self.kill(Kill::Reset);
                        break;
                    }
                },
            }
        }
        drain(&self.shared, &mut rx);
        if *self.kill.borrow() == Some(Kill::Reset) {
            arm_reset(dst.as_ref());
            // No FIN: the socket closes (with RST) when the read half goes.
            dst.forget();
        }
    }

    /// Writes one chunk through the toxics; `Err` ends the connection.
    async fn deliver(
        &mut self,
        dst: &mut OwnedWriteHalf,
        toxics: &[Toxic],
        read_at: Instant,
        mut bytes: Vec<u8>,
    ) -> Result<(), Kill> {
        let mut over_limit = false;
        let mut slicer = None;
        for toxic in toxics {
            match *toxic {
                Toxic::Latency {
                    latency_ms,
                    jitter_ms,
                } => {
                    let delay = draw_latency(&mut self.rng, latency_ms, jitter_ms);
                    self.wait_until(later(read_at, Duration::from_millis(delay)))
                        .await?;
                }
                Toxic::Bandwidth { rate_kb_s } => {
                    let us = transfer_us(bytes.len(), rate_kb_s);
                    let at = later(self.now(), Duration::from_micros(us));
                    self.wait_until(at).await?;
                }
                Toxic::LimitData { bytes: limit } => {
                    let room =
                        usize::try_from(limit.saturating_sub(self.sent)).unwrap_or(usize::MAX);
                    if bytes.len() >= room {
                        bytes.truncate(room);
                        over_limit = true;
                    }
                }
                Toxic::Slicer {
                    average_size,
                    size_variation,
                    delay_us,
                } => slicer = Some((average_size, size_variation, delay_us)),
                Toxic::SlowClose { .. } | Toxic::Timeout { .. } | Toxic::ResetPeer { .. } => {}
            }
        }
        match slicer {
            Some((average, variation, delay_us)) => {
                let sizes = slice_sizes(&mut self.rng, bytes.len(), average, variation);
                let mut offset = 0;
                for size in sizes {
                    self.write(dst, &bytes[offset..offset + size]).await?;
                    offset += size;
                    if delay_us > 0 {
                        let at = later(self.now(), Duration::from_micros(delay_us));
                        self.wait_until(at).await?;
                    }
                }
            }
            None => self.write(dst, &bytes).await?,
        }
        if over_limit {
            return Err(Kill::Close);
        }
        Ok(())
    }

    async fn write(&mut self, dst: &mut OwnedWriteHalf, bytes: &[u8]) -> Result<(), Kill> {
        if bytes.is_empty() {
            return Ok(());
        }
        tokio::select! {
            written = dst.write_all(bytes) => {
                if written.is_err() {
                    // The peer is gone: end the connection.
                    return Err(Kill::Close);
                }
            }
            kill = killed(&mut self.kill) => return Err(kill),
        }
        self.sent = self.sent.saturating_add(bytes.len() as u64);
        let mut state = self.shared.lock();
        match self.direction {
            Direction::Upstream => state.stats.bytes_up += bytes.len() as u64,
            Direction::Downstream => state.stats.bytes_down += bytes.len() as u64,
        }
        Ok(())
    }

    /// Sleeps until `at` unless the connection is killed first.
    async fn wait_until(&mut self, at: Instant) -> Result<(), Kill> {
        tokio::select! {
            () = tokio::time::sleep_until(at) => Ok(()),
            kill = killed(&mut self.kill) => Err(kill),
        }
    }
}

/// Reads the source into the queue until it ends or the connection is
/// killed.
async fn read_side(
    shared: Arc<ProxyShared>,
    mut kill: watch::Receiver<Option<Kill>>,
    mut src: OwnedReadHalf,
    tx: mpsc::Sender<Chunk>,
    first: Vec<u8>,
) {
    let clock = shared.clock;
    let now = || clock.instant_at(clock.now());
    let mut pending = (!first.is_empty()).then_some(first);
    loop {
        let chunk = match pending.take() {
            Some(bytes) => {
                shared
                    .queued
                    .fetch_add(bytes.len() as u64, Ordering::SeqCst);
                Chunk::Data(now(), bytes)
            }
            None => {
                let mut buf = Vec::with_capacity(16 * 1024);
                let read = tokio::select! {
                    read = src.read_buf(&mut buf) => read,
                    _ = killed(&mut kill) => return,
                };
                match read {
                    Ok(0) => Chunk::Eof,
                    Ok(n) => {
                        shared.queued.fetch_add(n as u64, Ordering::SeqCst);
                        Chunk::Data(now(), buf)
                    }
                    Err(_) => Chunk::Failed,
                }
            }
        };
        let last = !matches!(chunk, Chunk::Data(..));
        let queued = match &chunk {
            Chunk::Data(_, bytes) => bytes.len() as u64,
            _ => 0,
        };
        let sent = tokio::select! {
            sent = tx.send(chunk) => sent.is_ok(),
            _ = killed(&mut kill) => false,
        };
        if !sent {
            shared.queued.fetch_sub(queued, Ordering::SeqCst);
            return;
        }
        if last {
            return;
        }
    }
}

/// Forgets what is still queued (the connection is over).
fn drain(shared: &ProxyShared, rx: &mut mpsc::Receiver<Chunk>) {
    rx.close();
    while let Ok(chunk) = rx.try_recv() {
        if let Chunk::Data(_, bytes) = chunk {
            shared
                .queued
                .fetch_sub(bytes.len() as u64, Ordering::SeqCst);
        }
    }
}

/// `at + delay`, or a year from `at` for delays too long to add.
fn later(at: Instant, delay: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);
    at.checked_add(delay.min(YEAR)).unwrap_or(at)
}

/// Resolves once the connection is killed, with how (a dropped sender
/// reads as a close).
async fn killed(kill: &mut watch::Receiver<Option<Kill>>) -> Kill {
    match kill.wait_for(Option::is_some).await {
        Ok(kill) => kill.unwrap_or(Kill::Close),
        Err(_) => Kill::Close,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
