//! The policy's random stream: seeded by the caller, one per shard.
//!
//! Jitter comes from a ChaCha8 generator keyed by the caller's seed. Each
//! shard draws from its own ChaCha *stream* of that key (the stream number
//! is the shard id), so shards given the same seed draw independent
//! numbers: a fleet configured with one seed never backs off in lockstep.
//! Shard 0's stream is the one `ChaCha8Rng::seed_from_u64(seed)` yields.
//!
//! A ChaCha8 generator carries a 256-byte block buffer, more than the rest
//! of a shard's reconnect state; the policy draws only a few numbers per
//! connection, so [`Jitter`] keeps just the seed, the stream and the
//! position, and rebuilds the generator at that position for each draw. No
//! type of the `rand` crates appears in the public API: callers hand in a
//! seed, or a [`Jitter`].

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

/// A seeded random stream, stored as (seed, stream, position).
///
/// ```
/// use reconnect_policy::Jitter;
///
/// // Same seed, different shards: different draws.
/// let mut a = Jitter::for_shard(0x5eed, 1);
/// let mut b = Jitter::for_shard(0x5eed, 2);
/// assert_ne!(a.next_u64(), b.next_u64());
/// // Same seed, same shard: the same draws.
/// assert_eq!(Jitter::for_shard(7, 3).next_u64(), Jitter::for_shard(7, 3).next_u64());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Jitter {
    seed: u64,
    stream: u64,
    /// Words of the stream already used.
    position: u128,
}

impl Jitter {
    /// The stream of `seed` for shard 0, from its start.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self::for_shard(seed, 0)
    }

    /// The stream of `seed` for shard `shard`, from its start: independent
    /// of every other shard's stream under the same seed.
    #[must_use]
    pub const fn for_shard(seed: u64, shard: u32) -> Self {
        Self {
            seed,
            stream: shard as u64,
            position: 0,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.draw(|r| r.random())
    }

    /// A number drawn uniformly from `low..=high` (`low` when `high < low`).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        let high = high.max(low);
        self.draw(|r| r.random_range(low..=high))
    }

    /// A number drawn uniformly from `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.draw(|r| r.random_range(0..n))
    }

    /// A number drawn uniformly from `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        self.draw(|r| r.random())
    }

    /// Draws with the generator at the stream's current position, and moves
    /// the position past what `f` used.
    fn draw<T>(&mut self, f: impl FnOnce(&mut ChaCha8Rng) -> T) -> T {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.position);
        let value = f(&mut rng);
        self.position = rng.get_word_pos();
        value
    }
}

#[cfg(test)]
mod tests {
    use rand::RngExt;

    use super::*;

    #[test]
    fn draws_are_those_of_one_continuous_stream() {
        let mut continuous = ChaCha8Rng::seed_from_u64(77);
        continuous.set_stream(5);
        let mut jitter = Jitter::for_shard(77, 5);
        for i in 0..1_000u64 {
            let bound = i * 7 + 1;
            let a: u64 = continuous.random_range(0..bound);
            let b: u64 = jitter.below(bound);
            assert_eq!(a, b, "draw {i}");
            let x: f64 = continuous.random();
            let y: f64 = jitter.unit();
            assert_eq!(x.to_bits(), y.to_bits());
        }
    }

    #[test]
    fn shard_zero_draws_what_the_plain_seed_draws() {
        let mut plain = ChaCha8Rng::seed_from_u64(0x5eed);
        let mut jitter = Jitter::new(0x5eed);
        for _ in 0..100 {
            assert_eq!(plain.random::<u64>(), jitter.next_u64());
        }
    }

    #[test]
    fn empty_ranges_never_panic() {
        let mut jitter = Jitter::new(1);
        assert_eq!(jitter.below(0), 0);
        assert_eq!(jitter.between(9, 3), 9);
        assert_eq!(jitter.between(u64::MAX, u64::MAX), u64::MAX);
    }
}
