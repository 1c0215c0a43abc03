//! The policy's random stream, kept small.
//!
//! Jitter comes from a ChaCha8 stream seeded by the caller. A ChaCha8
//! generator carries a 256-byte block buffer, more than the rest of a shard's
//! reconnect state; the policy draws only a few numbers per connection, so
//! it keeps just the seed and the stream position, and rebuilds the
//! generator at that position for each draw. The numbers are exactly those
//! of one `ChaCha8Rng::seed_from_u64(seed)` drawn in order.

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

/// A seeded ChaCha8 stream stored as (seed, position).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Jitter {
    seed: u64,
    /// Words of the stream already used.
    position: u128,
}

impl Jitter {
    /// The stream of `seed`, from its start.
    pub(crate) const fn new(seed: u64) -> Self {
        Self { seed, position: 0 }
    }

    /// Draws with the generator at the stream's current position, and moves
    /// the position past what `f` used.
    pub(crate) fn draw<T>(&mut self, f: impl FnOnce(&mut ChaCha8Rng) -> T) -> T {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
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
        let mut jitter = Jitter::new(77);
        for i in 0..1_000u64 {
            let bound = i * 7 + 1;
            let a: u64 = continuous.random_range(0..bound);
            let b: u64 = jitter.draw(|r| r.random_range(0..bound));
            assert_eq!(a, b, "draw {i}");
            let x: f64 = continuous.random();
            let y: f64 = jitter.draw(|r| r.random());
            assert_eq!(x.to_bits(), y.to_bits());
        }
    }
}
