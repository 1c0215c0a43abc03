//! The link faults the proxy applies: Toxiproxy's toxics, with its names
//! and attributes (latency with jitter, bandwidth, slow close, timeout,
//! reset peer, slicer, limit data).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Which way the bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Client to server.
    Upstream,
    /// Server to client.
    Downstream,
}

/// What a toxic does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
#[non_exhaustive]
pub enum Toxic {
    /// Delays every chunk by `latency_ms ± jitter_ms` (uniform), keeping
    /// order.
    Latency {
        /// The delay.
        latency_ms: u64,
        /// The spread around it.
        jitter_ms: u64,
    },
    /// Passes at most `rate_kb_s` KiB per second.
    Bandwidth {
        /// The rate.
        rate_kb_s: u64,
    },
    /// Delays the close (FIN) by `delay_ms` once the source has closed.
    SlowClose {
        /// The delay.
        delay_ms: u64,
    },
    /// A black hole: drops every byte, then closes the connection after
    /// `timeout_ms` (never, if 0).
    Timeout {
        /// When to close.
        timeout_ms: u64,
    },
    /// Resets both sides (TCP RST) `timeout_ms` after the toxic applies.
    ResetPeer {
        /// When to reset.
        timeout_ms: u64,
    },
    /// Cuts every chunk into pieces of `average_size ± size_variation`
    /// bytes, `delay_us` apart.
    Slicer {
        /// The average piece.
        average_size: u64,
        /// The spread around it (less than `average_size`).
        size_variation: u64,
        /// The pause between pieces, in µs.
        delay_us: u64,
    },
    /// Closes the connection once `bytes` have gone this way.
    LimitData {
        /// The budget.
        bytes: u64,
    },
}

/// A toxic installed on the proxy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToxicSpec {
    /// Its name (adding a toxic with the name of another replaces it).
    pub name: String,
    /// What it does.
    pub toxic: Toxic,
    /// Which way.
    pub direction: Direction,
    /// The share of connections it applies to, 0 to 1 (decided once per
    /// connection).
    pub toxicity: f64,
}

impl ToxicSpec {
    /// A toxic applied to every connection.
    #[must_use]
    pub fn new(name: impl Into<String>, toxic: Toxic, direction: Direction) -> Self {
        Self {
            name: name.into(),
            toxic,
            direction,
            toxicity: 1.0,
        }
    }

    /// The same toxic on a share of the connections.
    #[must_use]
    pub const fn with_toxicity(mut self, toxicity: f64) -> Self {
        self.toxicity = toxicity;
        self
    }
}

/// A latency draw: `latency ± jitter`, never below 0.
pub(super) fn draw_latency(rng: &mut ChaCha8Rng, latency_ms: u64, jitter_ms: u64) -> u64 {
    if jitter_ms == 0 {
        return latency_ms;
    }
    let low = latency_ms.saturating_sub(jitter_ms);
    let high = latency_ms.saturating_add(jitter_ms);
    rng.random_range(low..=high)
}

/// The sizes a slicer cuts `len` bytes into.
pub(super) fn slice_sizes(
    rng: &mut ChaCha8Rng,
    len: usize,
    average: u64,
    variation: u64,
) -> Vec<usize> {
    let average = average.max(1);
    let variation = variation.min(average - 1);
    let mut sizes = Vec::new();
    let mut left = len;
    while left > 0 {
        let size = rng.random_range(average - variation..=average + variation);
        let size = usize::try_from(size).unwrap_or(usize::MAX).min(left).max(1);
        sizes.push(size);
        left -= size;
    }
    sizes
}

/// How long `len` bytes take at `rate_kb_s` KiB/s, in µs.
pub(super) fn transfer_us(len: usize, rate_kb_s: u64) -> u64 {
    let bytes_per_s = rate_kb_s.max(1).saturating_mul(1_024);
    (len as u64).saturating_mul(1_000_000) / bytes_per_s
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn slices_cover_the_chunk_within_the_spread() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for len in [1, 7, 100, 4_096] {
            let sizes = slice_sizes(&mut rng, len, 16, 8);
            assert_eq!(sizes.iter().sum::<usize>(), len);
            let last = sizes.len() - 1;
            for (i, size) in sizes.iter().enumerate() {
                assert!(*size <= 24);
                assert!(i == last || *size >= 8, "{sizes:?}");
            }
        }
        // A variation as large as the average cannot make empty slices.
        assert!(slice_sizes(&mut rng, 50, 1, 5).iter().all(|&s| s == 1));
    }

    #[test]
    fn latency_stays_within_jitter_and_never_underflows() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..1_000 {
            let d = draw_latency(&mut rng, 50, 20);
            assert!((30..=70).contains(&d));
            assert!(draw_latency(&mut rng, 5, 20) <= 25);
        }
    }

    #[test]
    fn bandwidth_time_is_proportional() {
        assert_eq!(transfer_us(1_024, 1), 1_000_000);
        assert_eq!(transfer_us(512, 1), 500_000);
        assert_eq!(transfer_us(usize::MAX, 0), u64::MAX / 1_024);
    }
}
