//! Random streams derived from one master seed.
//!
//! Every client, link and the server get their own ChaCha8 stream, seeded by
//! mixing the master seed with the stream's kind and index (SplitMix64's
//! finaliser). Changing what one client draws therefore never reshuffles
//! another client's stream, and two clients never share a stream (which
//! would make them act in lockstep and fake a herd).

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

/// What a stream is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// A client's reconnect policy or peer model.
    Client = 1,
    /// A client's link (latency, flapping).
    Link = 2,
    /// The gateway server (op 9 delays, session ids).
    Server = 3,
    /// The fault schedule's own draws (which shards a fraction hits).
    Faults = 4,
}

/// SplitMix64's output function: a bijective mix of 64 bits.
#[must_use]
pub const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of stream `kind` number `index` under `master`.
#[must_use]
pub const fn derive(master: u64, kind: Stream, index: u64) -> u64 {
    mix(mix(master ^ mix(kind as u64)).wrapping_add(index.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// The RNG of stream `kind` number `index` under `master`.
#[must_use]
pub fn stream(master: u64, kind: Stream, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive(master, kind, index))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn streams_are_distinct_and_stable() {
        let seeds: BTreeSet<u64> = (0..10_000)
            .flat_map(|i| [derive(7, Stream::Client, i), derive(7, Stream::Link, i)])
            .collect();
        assert_eq!(seeds.len(), 20_000);
        assert_eq!(derive(7, Stream::Client, 3), derive(7, Stream::Client, 3));
        assert_ne!(derive(7, Stream::Client, 3), derive(8, Stream::Client, 3));
    }
}
