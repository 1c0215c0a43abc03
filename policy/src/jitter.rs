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
//! position (32 bytes). A draw computes only the one 64-byte ChaCha8 block
//! that holds the words it needs (and the next block, when a draw runs past
//! the end of one), straight from (seed, stream, position): the words are
//! those `rand_chacha`'s `ChaCha8Rng` yields at that position, which the
//! tests check against it, and the sampling (ranges, floats) is `rand`'s
//! own. No type of the `rand` crates appears in the public API: callers
//! hand in a seed, or a [`Jitter`].

use core::convert::Infallible;

use rand::RngExt;
use rand_core::TryRng;

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
    position: WordPos,
}

/// A word position of a ChaCha stream (up to 2^68 + 47, past 64 bits),
/// stored as two `u64` halves, low first: a `u128` field would align the
/// [`Jitter`], and everything that holds one (a
/// [`Policy`](crate::Policy)), to 16 bytes. Shown and hashed as the
/// `u128` it is.
#[derive(Clone, Copy, PartialEq, Eq)]
struct WordPos([u64; 2]);

impl WordPos {
    /// The position `words`.
    const fn new(words: u128) -> Self {
        // Truncations intended: the two halves.
        Self([words as u64, (words >> 64) as u64])
    }

    /// The position, as a number of words.
    const fn get(self) -> u128 {
        (self.0[1] as u128) << 64 | self.0[0] as u128
    }
}

impl core::fmt::Debug for WordPos {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&self.get(), f)
    }
}

impl core::hash::Hash for WordPos {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.get().hash(state);
    }
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
            position: WordPos::new(0),
        }
    }

    /// The shard whose stream this is, for a stream made by
    /// [`Jitter::for_shard`] (the low 32 bits of the stream number). A
    /// policy keeps its stream as a [`ShardJitter`], which says it.
    #[cfg(test)]
    pub(crate) const fn shard(&self) -> u32 {
        // Truncation intended: `for_shard` widened a `u32`.
        self.stream as u32
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

    /// Draws from the stream at its current position, and moves the
    /// position past the words `f` used.
    fn draw<T>(&mut self, f: impl FnOnce(&mut Keystream) -> T) -> T {
        let mut keystream = Keystream::at(self.seed, self.stream, self.position.get());
        let value = f(&mut keystream);
        self.position = WordPos::new(keystream.word_pos());
        value
    }
}

/// A shard's stream as a [`Policy`](crate::Policy) keeps it: the seed, and
/// the shard id beside the position (24 bytes where a [`Jitter`] takes
/// 32). A shard's stream number is its id, a `u32`, and a position needs
/// at most 69 bits (up to 2^68 + 47), so both share two words: the
/// position's low 64 bits, then its high bits with the shard above them.
/// Drawn from as the [`Jitter`] it stands for ([`ShardJitter::draw`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShardJitter {
    seed: u64,
    /// The position's low 64 bits; its high bits in the low half of the
    /// second word, the shard in the high half.
    words: [u64; 2],
}

impl ShardJitter {
    /// [`Jitter::for_shard`]`(seed, shard)`.
    pub(crate) const fn for_shard(seed: u64, shard: u32) -> Self {
        Self {
            seed,
            words: [0, (shard as u64) << 32],
        }
    }

    /// The shard whose stream this is.
    pub(crate) const fn shard(&self) -> u32 {
        // Truncation intended: the high half.
        (self.words[1] >> 32) as u32
    }

    /// Runs `f` on the [`Jitter`] this stands for, and keeps the position
    /// it leaves.
    pub(crate) fn draw<T>(&mut self, f: impl FnOnce(&mut Jitter) -> T) -> T {
        let position =
            (u128::from(self.words[1] & u64::from(u32::MAX)) << 64) | u128::from(self.words[0]);
        let mut jitter = Jitter {
            seed: self.seed,
            stream: u64::from(self.shard()),
            position: WordPos::new(position),
        };
        let value = f(&mut jitter);
        let [low, high] = jitter.position.0;
        // A position is below 2^69: its high bits fit the low half.
        self.words = [
            low,
            (self.words[1] & !u64::from(u32::MAX)) | (high & u64::from(u32::MAX)),
        ];
        value
    }
}

/// The constants of ChaCha's input block ("expand 32-byte k").
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// One stream of a ChaCha8 key, read word by word from a position: the
/// words `ChaCha8Rng` (`rand_chacha`, seeded with `seed_from_u64`, stream
/// set, word position set) yields from there, computed one 64-byte block
/// at a time: the block of the start position at once (every draw reads a
/// word of it), the next one only when a draw runs past its end.
struct Keystream {
    /// The seed the key is expanded from.
    seed: u64,
    /// The ChaCha stream.
    stream: u64,
    /// The block counter of `block`.
    counter: u64,
    /// The output block of `counter`.
    block: [u32; 16],
    /// The next word of `block` to hand out; 16 once it is used up.
    index: usize,
    /// The block counter at the start (`position / 16`, its low 64 bits).
    start_counter: u64,
    /// The word of that block at the start (`position % 16`).
    start_index: u64,
    /// Words handed out so far.
    used: u64,
}

impl Keystream {
    /// The stream `stream` of the key `seed_from_u64(seed)` expands to, at
    /// word `position` (modulo 2^68, as `ChaCha8Rng::set_word_pos`).
    #[inline]
    fn at(seed: u64, stream: u64, position: u128) -> Self {
        // Truncation intended: the block counter is the low 64 bits of
        // position / 16, as in `set_word_pos`.
        let counter = (position >> 4) as u64;
        let index = (position & 15) as u64;
        Self {
            seed,
            stream,
            counter,
            block: block_of(seed, stream, counter),
            index: index as usize,
            start_counter: counter,
            start_index: index,
            used: 0,
        }
    }

    /// The word position a `ChaCha8Rng` set to the start position reports
    /// after handing out the same words (`get_word_pos`). It counts from
    /// the start of its 64-word buffer, whose block counter wraps at 2^64,
    /// plus the words used of it, and a buffer used up to its end counts as
    /// the start of the next: so positions run up to 2^68 + 47, and wrap
    /// to small ones after that.
    #[inline]
    fn word_pos(&self) -> u128 {
        let words = self.start_index.saturating_add(self.used);
        let buffers = words / 64;
        let buffer = self.start_counter.wrapping_add(buffers.wrapping_mul(4));
        u128::from(buffer) * 16 + u128::from(words % 64)
    }

    /// The next word of the stream.
    #[inline]
    fn next_word(&mut self) -> u32 {
        if self.index >= 16 {
            self.next_block();
        }
        let word = self.block[self.index];
        self.index += 1;
        self.used += 1;
        word
    }

    /// Moves on to the next block, past the end of this one (the counter
    /// wraps at 2^64, as ChaCha's does). Out of line, and it expands the
    /// key again rather than keep it: a draw rarely runs past a block.
    #[cold]
    #[inline(never)]
    fn next_block(&mut self) {
        self.counter = self.counter.wrapping_add(1);
        self.block = block_of(self.seed, self.stream, self.counter);
        self.index = 0;
    }
}

/// The output block `counter` of the stream `stream` of the key
/// `seed_from_u64(seed)` expands to.
#[inline]
fn block_of(seed: u64, stream: u64, counter: u64) -> [u32; 16] {
    let key = key_from_u64(seed);
    // Truncations intended: the low and high halves.
    let halves = |x: u64| [x as u32, (x >> 32) as u32];
    let [c0, c1] = halves(counter);
    let [s0, s1] = halves(stream);
    chacha8_block(&[
        SIGMA[0], SIGMA[1], SIGMA[2], SIGMA[3], key[0], key[1], key[2], key[3], key[4], key[5],
        key[6], key[7], c0, c1, s0, s1,
    ])
}

impl TryRng for Keystream {
    type Error = Infallible;

    #[inline]
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.next_word())
    }

    /// Two consecutive words, the first one low (as `ChaCha8Rng`).
    #[inline]
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let low = self.next_word();
        let high = self.next_word();
        Ok(u64::from(high) << 32 | u64::from(low))
    }

    /// Whole words, little-endian; a last partial word is used up (as
    /// `ChaCha8Rng`).
    #[inline]
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(4) {
            let bytes = self.next_word().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// The 32-byte key `SeedableRng::seed_from_u64(seed)` gives a ChaCha
/// generator, as the eight little-endian words ChaCha reads from it: each
/// word one output of `rand_core`'s PCG32 expansion.
fn key_from_u64(mut state: u64) -> [u32; 8] {
    const MUL: u64 = 0x5851_F42D_4C95_7F2D;
    const INC: u64 = 0xA176_54E4_6FBE_17F3;
    let mut key = [0; 8];
    for word in &mut key {
        state = state.wrapping_mul(MUL).wrapping_add(INC);
        // Truncations intended: PCG's output function (XSH RR).
        let xorshifted = (((state >> 18) ^ state) >> 27) as u32;
        let rotation = (state >> 59) as u32;
        *word = xorshifted.rotate_right(rotation);
    }
    key
}

/// A row of ChaCha's 4×4 working state.
type Row = [u32; 4];

/// Lane-wise wrapping addition (written lane by lane so the compiler can
/// keep a row in one vector register).
#[inline(always)]
fn add(a: Row, b: Row) -> Row {
    [
        a[0].wrapping_add(b[0]),
        a[1].wrapping_add(b[1]),
        a[2].wrapping_add(b[2]),
        a[3].wrapping_add(b[3]),
    ]
}

/// Lane-wise `(a ^ b) <<< n`.
#[inline(always)]
fn xor_rotate(a: Row, b: Row, n: u32) -> Row {
    [
        (a[0] ^ b[0]).rotate_left(n),
        (a[1] ^ b[1]).rotate_left(n),
        (a[2] ^ b[2]).rotate_left(n),
        (a[3] ^ b[3]).rotate_left(n),
    ]
}

/// Four quarter rounds at once, one per lane: lane `i` runs the quarter
/// round on `(a[i], b[i], c[i], d[i])`.
#[inline(always)]
fn quarter_rounds(x: &mut [Row; 4]) {
    let [mut a, mut b, mut c, mut d] = *x;
    a = add(a, b);
    d = xor_rotate(d, a, 16);
    c = add(c, d);
    b = xor_rotate(b, c, 12);
    a = add(a, b);
    d = xor_rotate(d, a, 8);
    c = add(c, d);
    b = xor_rotate(b, c, 7);
    *x = [a, b, c, d];
}

/// A column round then a diagonal round. The rows are rotated so that the
/// diagonals (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)
/// line up in the lanes, then rotated back.
#[inline(always)]
fn double_round(x: &mut [Row; 4]) {
    quarter_rounds(x);
    let [a, b, c, d] = *x;
    *x = [
        a,
        [b[1], b[2], b[3], b[0]],
        [c[2], c[3], c[0], c[1]],
        [d[3], d[0], d[1], d[2]],
    ];
    quarter_rounds(x);
    let [a, b, c, d] = *x;
    *x = [
        a,
        [b[3], b[0], b[1], b[2]],
        [c[2], c[3], c[0], c[1]],
        [d[1], d[2], d[3], d[0]],
    ];
}

/// The ChaCha8 block function (D. J. Bernstein, "ChaCha, a variant of
/// Salsa20"): four double rounds over the input, then the input added back.
/// Straight-line code: no loop, no branch.
///
/// The compiler keeps it in scalar registers (SSE2 has no lane-wise
/// rotate): four independent column chains, which run faster than one
/// row-per-register chain does. Forced into vector registers (rotates as
/// shifts with an opaque mask) a block took half the instructions but
/// over three times the time.
fn chacha8_block(input: &[u32; 16]) -> [u32; 16] {
    let rows = |w: &[u32; 16]| -> [Row; 4] {
        [
            [w[0], w[1], w[2], w[3]],
            [w[4], w[5], w[6], w[7]],
            [w[8], w[9], w[10], w[11]],
            [w[12], w[13], w[14], w[15]],
        ]
    };
    let start = rows(input);
    let mut x = start;
    double_round(&mut x);
    double_round(&mut x);
    double_round(&mut x);
    double_round(&mut x);
    let [a, b, c, d] = [
        add(x[0], start[0]),
        add(x[1], start[1]),
        add(x[2], start[2]),
        add(x[3], start[3]),
    ];
    [
        a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3], d[0], d[1], d[2],
        d[3],
    ]
}

#[cfg(test)]
mod tests {
    use rand::RngExt;
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng, SeedableRng};

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

    /// The stream as it was drawn before draws computed single blocks: a
    /// `ChaCha8Rng` rebuilt at (seed, stream, position) for every draw,
    /// its position read back after.
    fn rebuilt<T>(jitter: &mut Jitter, f: impl FnOnce(&mut ChaCha8Rng) -> T) -> T {
        let mut rng = ChaCha8Rng::seed_from_u64(jitter.seed);
        rng.set_stream(jitter.stream);
        rng.set_word_pos(jitter.position.get());
        let value = f(&mut rng);
        jitter.position = WordPos::new(rng.get_word_pos());
        value
    }

    #[test]
    fn a_block_is_chacha8s_as_rand_chacha_computes_it() {
        // Block 0 and 1 of the all-zero key and stream: the words
        // `ChaCha8Rng::from_seed([0; 32])` yields, compared one by one.
        let mut rng = ChaCha8Rng::from_seed([0; 32]);
        let mut input = [
            SIGMA[0], SIGMA[1], SIGMA[2], SIGMA[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        for block in 0..2 {
            input[12] = block;
            for word in chacha8_block(&input) {
                assert_eq!(word, rng.next_u32());
            }
        }
    }

    #[test]
    fn a_draw_past_a_block_reads_the_blocks_after_it() {
        // Draws that start near a block's end and run through the next
        // two (past the end of the 64-bit block counter, into block 0),
        // each block after the first computed on the way.
        for seed in [0, 0x5eed] {
            for stream in [0, 3] {
                for block in [0u128, 1, 5, u128::from(u64::MAX)] {
                    for offset in 10..16 {
                        let start = block * 16 + offset;
                        let mut rng = ChaCha8Rng::seed_from_u64(seed);
                        rng.set_stream(stream);
                        rng.set_word_pos(start);
                        let mut expected = [0u8; 100];
                        rng.fill_bytes(&mut expected);
                        let mut jitter = Jitter {
                            seed,
                            stream,
                            position: WordPos::new(start),
                        };
                        let mut got = [0u8; 100];
                        jitter.draw(|r| r.fill_bytes(&mut got));
                        assert_eq!(got, expected, "from word {start}");
                        assert_eq!(jitter.position.get(), rng.get_word_pos());
                    }
                }
            }
        }
    }

    mod against_a_rebuilt_generator {
        use proptest::prelude::*;

        use super::*;

        /// One draw, through every way the stream is read.
        #[derive(Clone, Debug)]
        enum Draw {
            NextU64,
            Between(u64, u64),
            Below(u64),
            Unit,
            NextU32,
            FillBytes(usize),
        }

        fn draw() -> impl Strategy<Value = Draw> {
            // Ranges of every width, including those just above 2^63 whose
            // samples `rand` rejects about half the time and redraws.
            let bound = prop_oneof![
                0..=100u64,
                any::<u64>(),
                (1u64 << 63)..=(1u64 << 63) + 1_000,
                (u64::MAX - 1_000)..=u64::MAX,
            ];
            prop_oneof![
                Just(Draw::NextU64),
                (any::<u64>(), bound.clone())
                    .prop_map(|(low, width)| Draw::Between(low, low.saturating_add(width))),
                (any::<u64>(), any::<u64>()).prop_map(|(a, b)| Draw::Between(a, b)),
                bound.prop_map(Draw::Below),
                Just(Draw::Unit),
                Just(Draw::NextU32),
                (0usize..=70).prop_map(Draw::FillBytes),
            ]
        }

        /// Positions anywhere, and on either side of every boundary the
        /// stream has: a block (16 words), `ChaCha8Rng`'s buffer (64
        /// words), the 64-bit block counter (2^68 words) and `u128`.
        fn position() -> impl Strategy<Value = u128> {
            let offset = prop_oneof![0u128..=3, 12u128..=19, 60u128..=67];
            prop_oneof![
                0u128..300,
                (any::<u64>(), offset.clone())
                    .prop_map(|(block, off)| (u128::from(block) * 64).wrapping_add(off)),
                (0u128..80).prop_map(|back| (1u128 << 68) - back),
                (0u128..80).prop_map(|ahead| (1u128 << 68) + ahead),
                (0u128..80).prop_map(|back| u128::MAX - back),
                any::<u128>(),
            ]
        }

        /// Runs `draw` on both streams and checks that they answer the same
        /// and stand at the same position after.
        fn both(new: &mut Jitter, old: &mut Jitter, draw: &Draw) {
            match *draw {
                Draw::NextU64 => {
                    let expected = rebuilt(old, |r| r.random::<u64>());
                    assert_eq!(new.next_u64(), expected);
                }
                Draw::Between(low, high) => {
                    let expected = rebuilt(old, |r| r.random_range(low..=high.max(low)));
                    assert_eq!(new.between(low, high), expected);
                }
                Draw::Below(n) => {
                    let expected = if n == 0 {
                        0
                    } else {
                        rebuilt(old, |r| r.random_range(0..n))
                    };
                    assert_eq!(new.below(n), expected);
                }
                Draw::Unit => {
                    let expected = rebuilt(old, |r| r.random::<f64>());
                    assert_eq!(new.unit().to_bits(), expected.to_bits());
                }
                Draw::NextU32 => {
                    let expected = rebuilt(old, Rng::next_u32);
                    assert_eq!(new.draw(Rng::next_u32), expected);
                }
                Draw::FillBytes(len) => {
                    let mut expected = vec![0u8; len];
                    rebuilt(old, |r| r.fill_bytes(&mut expected));
                    let mut got = vec![0u8; len];
                    new.draw(|r| r.fill_bytes(&mut got));
                    assert_eq!(got, expected);
                }
            }
            assert_eq!(
                new.position.get(),
                old.position.get(),
                "position after {draw:?}"
            );
        }

        // The case count comes from PROPTEST_CASES (default 256).
        proptest! {
            #[test]
            fn single_block_draws_are_the_rebuilt_generators(
                seed in any::<u64>(),
                stream in prop_oneof![any::<u32>().prop_map(u64::from), any::<u64>()],
                start in position(),
                draws in proptest::collection::vec(draw(), 1..40),
            ) {
                let mut new = Jitter { seed, stream, position: WordPos::new(start) };
                let mut old = new.clone();
                for draw in &draws {
                    both(&mut new, &mut old, draw);
                }
            }
        }

        #[test]
        fn every_offset_of_a_buffer_and_the_counters_end() {
            // Deterministic sweep: every word offset across two of
            // `ChaCha8Rng`'s buffers, at the start of the stream, at the
            // end of the block counter and past it, for a few seeds and
            // shards.
            for seed in [0, 1, 0x5eed, u64::MAX] {
                for stream in [0, 1, 7, u64::from(u32::MAX), u64::MAX] {
                    for base in [0, (1u128 << 68) - 128, u128::MAX - 127] {
                        for offset in 0..128 {
                            let start = base.wrapping_add(offset);
                            for draw in
                                [Draw::NextU64, Draw::Unit, Draw::Below(1_000), Draw::NextU32]
                            {
                                let mut new = Jitter {
                                    seed,
                                    stream,
                                    position: WordPos::new(start),
                                };
                                let mut old = new.clone();
                                both(&mut new, &mut old, &draw);
                                both(&mut new, &mut old, &Draw::Between(0, u64::MAX));
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_policys_compact_stream_draws_as_the_shards_jitter() {
        assert_eq!(size_of::<ShardJitter>(), 24);
        for (seed, shard) in [(0, 0), (7, 3), (u64::MAX, u32::MAX), (0x5eed, 1 << 31)] {
            let mut jitter = Jitter::for_shard(seed, shard);
            let mut compact = ShardJitter::for_shard(seed, shard);
            for n in 0..300_u64 {
                let expected = (
                    jitter.next_u64(),
                    jitter.between(n, 3 * n + 7),
                    jitter.unit(),
                );
                let got = compact.draw(|j| (j.next_u64(), j.between(n, 3 * n + 7), j.unit()));
                assert_eq!(got.0, expected.0);
                assert_eq!(got.1, expected.1);
                assert_eq!(got.2.to_bits(), expected.2.to_bits());
                assert_eq!(compact.shard(), shard);
            }
            assert_eq!(compact.draw(|j| j.clone()), jitter);
        }
        // Near the end of the positions a stream can reach (past 64 bits).
        for start in [u128::from(u64::MAX) * 16, (1 << 68) - 3, (1 << 68) + 40] {
            let mut jitter = Jitter {
                seed: 9,
                stream: 12,
                position: WordPos::new(start),
            };
            let mut compact = ShardJitter::for_shard(9, 12);
            compact.words = [start as u64, (12 << 32) | (start >> 64) as u64];
            for _ in 0..40 {
                assert_eq!(compact.draw(|j| j.next_u64()), jitter.next_u64());
                assert_eq!(compact.draw(|j| j.clone()), jitter);
            }
        }
    }

    #[test]
    fn a_shards_stream_says_which_shard_it_is() {
        for shard in [0, 1, 7, u32::MAX] {
            let mut jitter = Jitter::for_shard(0x5eed, shard);
            let _ = jitter.next_u64();
            assert_eq!(jitter.shard(), shard);
        }
    }

    #[test]
    fn a_jitter_is_still_32_bytes() {
        assert_eq!(size_of::<Jitter>(), 32);
        // Aligned to 8, not 16: a policy holding one moves in steps of 8.
        assert_eq!(align_of::<Jitter>(), 8);
    }
}
