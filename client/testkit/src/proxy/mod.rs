//! A fault proxy between a client and a server on loopback, for the link
//! faults a server cannot fake: Toxiproxy's toxics ([`Toxic`]: latency with
//! jitter, bandwidth, slow close, black hole then close, reset, slicing,
//! byte limit), the link going down in three ways ([`DownMode`]), and a
//! flapping schedule with minimum up and down times ([`Flap`]), and a
//! timed cut of every connection at once with a log of the dials that
//! arrive meanwhile ([`FaultProxy::cut`], [`FaultProxy::dials`]).
//!
//! Toxics can be added and removed while connections are open; each
//! connection decides once per toxic whether it applies (its
//! `toxicity`), with a seeded random stream.
//!
//! ```no_run
//! # async fn run(upstream: std::net::SocketAddr) -> std::io::Result<()> {
//! use reconnect_testkit::proxy::{Direction, FaultProxy, Toxic, ToxicSpec};
//!
//! let proxy = FaultProxy::start(upstream, 7).await?;
//! proxy.add_toxic(ToxicSpec::new(
//!     "lag",
//!     Toxic::Latency { latency_ms: 50, jitter_ms: 20 },
//!     Direction::Downstream,
//! ));
//! println!("clients connect to {}", proxy.url());
//! # Ok(())
//! # }
//! ```
//!
//! `noxious` (a Rust port of Toxiproxy) was considered and not used: it has
//! no `reset_peer` toxic and no way to flap the link, its library face is
//! the runner behind its REST server (requests over `bmrng` channels), and
//! it pulls `tokio-util` 0.6, `rand` 0.8, `async-trait` and
//! `mockall_double` into normal dependencies. The toxics here keep
//! Toxiproxy's names and attributes.

mod cut;
mod flap;
mod link;
mod toxic;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{info, warn};

pub use cut::{CutWindow, DialOutcome, DialRecord, MAX_DIAL_LOG};
pub use flap::{Flap, Period};
pub use toxic::{Direction, Toxic, ToxicSpec};

use crate::clock::Clock;

/// How the link goes down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownMode {
    /// Every open connection is reset (RST); new ones are reset at once.
    Reset,
    /// Every open connection is closed (FIN); new ones are reset at once.
    Close,
    /// Nothing gets through and nothing is closed: bytes wait (as TCP
    /// would retransmit them), new connections are accepted and held
    /// without reaching the server. When the link comes back, what waited
    /// is delivered in order, older connections first.
    BlackHole,
}

/// Whether the link is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    Up,
    Down(DownMode),
}

/// How a connection is ended by the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kill {
    Close,
    Reset,
}

/// Counters of the proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections reset at once because the link was down.
    pub refused: u64,
    /// Connections held while the link was a black hole.
    pub held: u64,
    /// Connections whose upstream could not be reached.
    pub upstream_failures: u64,
    /// Connections relayed now.
    pub open_links: u64,
    /// The most connections relayed at once.
    pub max_open_links: u64,
    /// Bytes relayed client to server.
    pub bytes_up: u64,
    /// Bytes relayed server to client.
    pub bytes_down: u64,
    /// Connections the proxy reset.
    pub resets: u64,
    /// Connections the proxy closed.
    pub closes: u64,
    /// Times the link went down, in any way.
    pub downs: u64,
    /// Times it went down as a black hole.
    pub black_holes: u64,
}

/// What the proxy's tasks share.
#[derive(Debug)]
struct ProxyShared {
    upstream: SocketAddr,
    seed: u64,
    clock: Clock,
    state: Mutex<ProxyState>,
    link: watch::Sender<LinkState>,
    toxics: watch::Sender<Arc<Vec<ToxicSpec>>>,
    /// Bytes read and not yet written or dropped, over all connections.
    queued: AtomicU64,
}

#[derive(Debug, Default)]
struct ProxyState {
    stats: ProxyStats,
    kills: BTreeMap<u64, Arc<watch::Sender<Option<Kill>>>>,
    /// Every dial accepted, with what became of it.
    dials: Vec<DialRecord>,
}

impl ProxyShared {
    fn lock(&self) -> MutexGuard<'_, ProxyState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_link(&self, new: LinkState) {
        let old = self.link.send_replace(new);
        if old == new {
            return;
        }
        info!(?new, "link");
        let mut state = self.lock();
        if let LinkState::Down(mode) = new {
            state.stats.downs += 1;
            let kill = match mode {
                DownMode::Reset => Some(Kill::Reset),
                DownMode::Close => Some(Kill::Close),
                DownMode::BlackHole => {
                    state.stats.black_holes += 1;
                    None
                }
            };
            if let Some(kill) = kill {
                let mut killed = 0;
                for tx in state.kills.values() {
                    if tx.send_if_modified(|k| k.is_none() && k.replace(kill).is_none()) {
                        killed += 1;
                    }
                }
                match kill {
                    Kill::Reset => state.stats.resets += killed,
                    Kill::Close => state.stats.closes += killed,
                }
            }
        }
    }

    /// Waits (up to half a second) until no connection has bytes waiting,
    /// so a connection released from a black hole reaches the server after
    /// what older connections sent before it.
    async fn drained(&self) {
        for _ in 0..100 {
            if self.queued.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A running fault proxy. Dropping it stops it.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: JoinHandle<()>,
    flap: Mutex<Option<JoinHandle<()>>>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1` (a port the system picks) to
    /// `upstream`, which must be a loopback address. `seed` drives
    /// toxicity, jitter and slicing.
    ///
    /// # Errors
    ///
    /// `upstream` is not loopback, or the listener could not be bound.
    pub async fn start(upstream: SocketAddr, seed: u64) -> io::Result<Self> {
        Self::start_on(0, upstream, seed).await
    }

    /// [`FaultProxy::start`] on a given port of `127.0.0.1` (0: any).
    ///
    /// # Errors
    ///
    /// As [`FaultProxy::start`].
    pub async fn start_on(port: u16, upstream: SocketAddr, seed: u64) -> io::Result<Self> {
        if !upstream.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the fault proxy only relays to loopback addresses",
            ));
        }
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(ProxyShared {
            upstream,
            seed,
            clock: Clock::start(),
            state: Mutex::new(ProxyState::default()),
            link: watch::channel(LinkState::Up).0,
            toxics: watch::channel(Arc::new(Vec::new())).0,
            queued: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept(listener, Arc::clone(&shared)));
        info!(%addr, %upstream, "fault proxy listening");
        Ok(Self {
            addr,
            shared,
            accept,
            flap: Mutex::new(None),
        })
    }

    /// The address clients connect to.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Adds a toxic (replacing one with the same name); it applies to open
    /// connections too.
    pub fn add_toxic(&self, spec: ToxicSpec) {
        info!(name = %spec.name, toxic = ?spec.toxic, direction = ?spec.direction, "toxic added");
        self.shared.toxics.send_modify(|toxics| {
            let mut list: Vec<ToxicSpec> = toxics
                .iter()
                .filter(|t| t.name != spec.name)
                .cloned()
                .collect();
            list.push(spec);
            *toxics = Arc::new(list);
        });
    }

    /// Removes the toxic with this name.
    pub fn remove_toxic(&self, name: &str) {
        self.shared.toxics.send_modify(|toxics| {
            *toxics = Arc::new(toxics.iter().filter(|t| t.name != name).cloned().collect());
        });
    }

    /// Removes every toxic.
    pub fn clear_toxics(&self) {
        self.shared.toxics.send_replace(Arc::new(Vec::new()));
    }

    /// Takes the link down.
    pub fn down(&self, mode: DownMode) {
        self.shared.set_link(LinkState::Down(mode));
    }

    /// Brings the link back up.
    pub fn up(&self) {
        self.shared.set_link(LinkState::Up);
    }

    /// Starts flapping the link (replacing any flapping already running).
    ///
    /// # Errors
    ///
    /// The schedule is invalid (see [`Flap::validate`]).
    pub fn start_flapping(&self, flap: Flap) -> Result<(), String> {
        flap.validate()?;
        let task = tokio::spawn(flap::run(Arc::clone(&self.shared), flap));
        if let Some(old) = self
            .flap
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(task)
        {
            old.abort();
        }
        Ok(())
    }

    /// Stops flapping and leaves the link up.
    pub fn stop_flapping(&self) {
        if let Some(task) = self
            .flap
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        self.up();
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> ProxyStats {
        self.shared.lock().stats.clone()
    }

    /// Stops the proxy and drops every connection.
    pub async fn stop(mut self) {
        self.stop_flapping();
        self.accept.abort();
        let _ = (&mut self.accept).await;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        if let Some(task) = self
            .flap
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

async fn accept(listener: TcpListener, shared: Arc<ProxyShared>) {
    let mut links = JoinSet::new();
    let mut next_id = 0_u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    next_id += 1;
                    shared.lock().stats.accepted += 1;
                    links.spawn(link::run(Arc::clone(&shared), tcp, next_id));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = links.join_next(), if !links.is_empty() => {}
        }
    }
}
