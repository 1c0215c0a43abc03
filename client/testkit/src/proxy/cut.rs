//! A fleet-wide cut and the proxy's log of dials.
//!
//! [`FaultProxy::cut`] takes the link down in one of the [`DownMode`]s for
//! a set time and then heals it: every connection through the proxy ends
//! at once (reset or closed; a black hole holds them instead), every dial
//! that arrives meanwhile is refused (reset as soon as it is accepted) or
//! held, and when the time is up the link is back. Whatever a client runs
//! through the proxy (one shard or a thousand) is cut off together, as
//! when a bot's network or the gateway's edge goes away.
//!
//! Every dial the proxy accepts is logged with the time it arrived and
//! what became of it ([`DialRecord`]), so a test counts the attempts a
//! client made while it was cut off from the proxy's side of the wire, not
//! from what the client says it did.

use std::time::Duration;

use reconnect_policy::Timestamp;
use tracing::info;

use super::{DownMode, FaultProxy, ProxyShared};
use crate::clock::Clock;

/// The most dials the log keeps; later ones are only counted
/// ([`ProxyStats::accepted`](super::ProxyStats::accepted) and the others).
pub const MAX_DIAL_LOG: usize = 1_000_000;

/// What the proxy did with one dial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DialOutcome {
    /// The link was up: the dial was relayed to the upstream server.
    Relayed,
    /// The link was down (reset or close): the dial was reset at once and
    /// never reached the server.
    Refused,
    /// The link was a black hole: the dial was accepted and held; it
    /// reaches the server if the link comes back before the client leaves.
    Held,
}

/// One dial the proxy accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DialRecord {
    /// When it was accepted (the proxy's clock, [`FaultProxy::clock`]).
    pub at: Timestamp,
    /// What became of it.
    pub outcome: DialOutcome,
}

/// When a cut started and healed, on the proxy's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CutWindow {
    /// How the link went down.
    pub mode: DownMode,
    /// When every connection was cut.
    pub started_at: Timestamp,
    /// When the link came back.
    pub healed_at: Timestamp,
}

impl CutWindow {
    /// How long the link was down, in ms.
    #[must_use]
    pub const fn duration_ms(&self) -> u64 {
        self.healed_at.saturating_since(self.started_at)
    }

    /// Whether `at` (proxy clock) falls while the link was down.
    #[must_use]
    pub fn contains(&self, at: Timestamp) -> bool {
        self.started_at <= at && at < self.healed_at
    }
}

impl ProxyShared {
    /// Logs a dial that arrived now.
    pub(super) fn log_dial(&self, outcome: DialOutcome) {
        let at = self.clock.now();
        let mut state = self.lock();
        if state.dials.len() < MAX_DIAL_LOG {
            state.dials.push(DialRecord { at, outcome });
        }
    }
}

impl FaultProxy {
    /// Cuts every connection through the proxy and keeps the link down in
    /// `mode` for `duration`, then heals it (the link is up when this
    /// returns). Returns when the cut started and healed. A flapping
    /// schedule running meanwhile would fight the cut: stop it first
    /// ([`FaultProxy::stop_flapping`]).
    pub async fn cut(&self, mode: DownMode, duration: Duration) -> CutWindow {
        let started_at = self.shared.clock.now();
        info!(?mode, ms = duration.as_millis(), "cutting every connection");
        self.down(mode);
        tokio::time::sleep(duration).await;
        self.up();
        let healed_at = self.shared.clock.now();
        info!(down_ms = healed_at.saturating_since(started_at), "healed");
        CutWindow {
            mode,
            started_at,
            healed_at,
        }
    }

    /// Every dial accepted so far, oldest first (at most
    /// [`MAX_DIAL_LOG`]).
    #[must_use]
    pub fn dials(&self) -> Vec<DialRecord> {
        self.shared.lock().dials.clone()
    }

    /// The clock of the proxy's timestamps ([`DialRecord::at`],
    /// [`CutWindow`]).
    #[must_use]
    pub fn clock(&self) -> Clock {
        self.shared.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A dial during the cut is refused and logged as such; one after the
    /// heal reaches the server; a connection open at the cut is ended.
    #[tokio::test]
    async fn a_cut_ends_every_connection_refuses_dials_and_heals() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = server.local_addr().unwrap();
        let accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = server.accept().await {
                held.push(tcp);
            }
        });
        let proxy = FaultProxy::start(upstream, 1).await.unwrap();
        let mut before = TcpStream::connect(proxy.addr()).await.unwrap();
        // The relay is set up once the dial is logged.
        while proxy.stats().open_links == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cut = proxy.cut(DownMode::Reset, Duration::from_millis(300));
        let dial_during = async {
            // Down at once: the cut's first await is its sleep.
            let mut during = TcpStream::connect(proxy.addr()).await.unwrap();
            let mut buf = [0_u8; 1];
            // Reset at once: the read ends with an error or EOF.
            let read = tokio::time::timeout(Duration::from_secs(5), during.read(&mut buf)).await;
            assert!(matches!(read, Ok(Err(_) | Ok(0))), "{read:?}");
        };
        let (window, ()) = tokio::join!(cut, dial_during);
        let mut buf = [0_u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), before.read(&mut buf)).await;
        assert!(matches!(read, Ok(Err(_) | Ok(0))), "{read:?}");
        let _after = TcpStream::connect(proxy.addr()).await.unwrap();
        let dials = loop {
            let dials = proxy.dials();
            if dials.len() == 3 {
                break dials;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let outcomes: Vec<DialOutcome> = dials.iter().map(|d| d.outcome).collect();
        assert_eq!(
            outcomes,
            [
                DialOutcome::Relayed,
                DialOutcome::Refused,
                DialOutcome::Relayed
            ]
        );
        assert!(window.contains(dials[1].at), "{window:?} {dials:?}");
        assert!(!window.contains(dials[0].at));
        assert_eq!(proxy.stats().refused, 1);
        accepting.abort();
    }
}
