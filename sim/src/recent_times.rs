//! The times inside one sliding window, oldest first, kept inline while
//! they are few.
//!
//! The metrics keep two such lists per shard (attempts and handshakes in
//! the last 60 s). A shard rarely has more than a handful of times in a
//! window, so up to [`INLINE_TIMES`] live in the record itself and a fleet
//! allocates nothing per shard for them; a shard that goes past that (a
//! model that retries at once) moves its list onto the heap, and back
//! inline once it is short again, so the heap holds only the lists that
//! are long now.

use std::collections::VecDeque;

/// Times held in the record itself before the list moves to the heap.
pub const INLINE_TIMES: usize = 4;

/// A list of times, oldest first: a queue that is pushed at the back and
/// drained at the front.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecentTimes {
    /// Few: the first `len` of `times`.
    Inline {
        /// How many of `times` are held.
        len: u8,
        /// The times, oldest first.
        times: [u32; INLINE_TIMES],
    },
    /// More than fit inline, oldest first.
    Spilled(Box<VecDeque<u32>>),
}

impl Default for RecentTimes {
    fn default() -> Self {
        Self::Inline {
            len: 0,
            times: [0; INLINE_TIMES],
        }
    }
}

impl RecentTimes {
    /// How many times are held.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Inline { len, .. } => usize::from(*len),
            Self::Spilled(times) => times.len(),
        }
    }

    /// Whether none is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The oldest time held.
    #[must_use]
    pub fn front(&self) -> Option<u32> {
        match self {
            Self::Inline { len: 0, .. } => None,
            Self::Inline { times, .. } => Some(times[0]),
            Self::Spilled(times) => times.front().copied(),
        }
    }

    /// Holds one more time, newest.
    pub fn push_back(&mut self, at: u32) {
        match self {
            Self::Inline { len, times } if usize::from(*len) < INLINE_TIMES => {
                times[usize::from(*len)] = at;
                *len += 1;
            }
            Self::Inline { times, .. } => {
                let mut spilled = VecDeque::with_capacity(2 * INLINE_TIMES);
                spilled.extend(times.iter().copied());
                spilled.push_back(at);
                *self = Self::Spilled(Box::new(spilled));
            }
            Self::Spilled(times) => times.push_back(at),
        }
    }

    /// Lets go of the oldest time.
    pub fn pop_front(&mut self) {
        match self {
            Self::Inline { len, times } => {
                if *len > 0 {
                    times.copy_within(1.., 0);
                    *len -= 1;
                }
            }
            Self::Spilled(times) => {
                times.pop_front();
                if times.len() <= INLINE_TIMES / 2 {
                    *self = Self::inline_from(times.iter().copied());
                }
            }
        }
    }

    /// Keeps only the times for which `keep` holds, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        match self {
            Self::Inline { len, times } => {
                let mut kept = 0;
                for i in 0..usize::from(*len) {
                    if keep(times[i]) {
                        times[kept] = times[i];
                        kept += 1;
                    }
                }
                // At most `INLINE_TIMES` were held.
                *len = u8::try_from(kept).unwrap_or(u8::MAX);
            }
            Self::Spilled(times) => {
                times.retain(|&t| keep(t));
                if times.len() <= INLINE_TIMES {
                    *self = Self::inline_from(times.iter().copied());
                }
            }
        }
    }

    /// An inline list of at most [`INLINE_TIMES`] times.
    fn inline_from(from: impl Iterator<Item = u32>) -> Self {
        let mut len = 0u8;
        let mut times = [0; INLINE_TIMES];
        for (slot, t) in times.iter_mut().zip(from) {
            *slot = t;
            len += 1;
        }
        Self::Inline { len, times }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_pops_and_retains_agree_with_a_plain_queue_inline_and_spilled() {
        let mut times = RecentTimes::default();
        let mut model = VecDeque::new();
        let mut x = 11_u64;
        for step in 0..5_000_u32 {
            x = crate::rng::mix(x);
            match x % 7 {
                0..=3 => {
                    times.push_back(step);
                    model.push_back(step);
                }
                4 | 5 => {
                    times.pop_front();
                    model.pop_front();
                }
                _ => {
                    let cut = step.saturating_sub(u32::try_from(x % 40).unwrap());
                    times.retain(|t| t >= cut);
                    model.retain(|&t| t >= cut);
                }
            }
            assert_eq!(times.len(), model.len());
            assert_eq!(times.front(), model.front().copied());
            if model.len() <= INLINE_TIMES / 2 {
                assert!(matches!(times, RecentTimes::Inline { .. }), "{times:?}");
            }
        }
    }

    #[test]
    fn the_record_is_no_bigger_than_a_pointer_and_the_inline_times() {
        assert!(
            size_of::<RecentTimes>() <= 24,
            "{}",
            size_of::<RecentTimes>()
        );
    }
}
