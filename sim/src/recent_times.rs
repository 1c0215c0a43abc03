//! The times inside one sliding window, oldest first, kept inline while
//! they are few.
//!
//! The metrics keep two such lists per shard (attempts and handshakes in
//! the last 60 s). A shard rarely has more than ten times in a window, so
//! up to [`INLINE_TIMES`] live in the record itself and a fleet allocates
//! nothing per shard for them: the oldest as it is, and each later one as
//! the milliseconds after it in 16 bits (a 60 s window spans fewer than
//! the 65,536 they hold), ten times in 24 bytes where plain `u32`s held
//! four. A list that goes past that (a model that retries at once), or
//! whose times lie further apart, moves onto the heap, and back inline
//! once it is short again, so the heap holds only the lists that are long
//! now. An attempt then reads and writes the shard's record alone, rather
//! than the record, a box and the box's buffer.

use std::collections::VecDeque;

/// Times held in the record itself before the list moves to the heap.
pub const INLINE_TIMES: usize = 10;

/// A list of times, oldest first: a queue that is pushed at the back and
/// drained at the front.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecentTimes {
    /// Few, and within 65.5 s of the oldest: `len` times, the oldest being
    /// `first` and the others `first` plus the first `len - 1` of `after`.
    Inline {
        /// How many times are held.
        len: u8,
        /// The oldest time (when `len > 0`).
        first: u32,
        /// Each later time, as ms after `first`, oldest first.
        after: [u16; INLINE_TIMES - 1],
    },
    /// More than fit inline, oldest first.
    Spilled(Box<VecDeque<u32>>),
}

impl Default for RecentTimes {
    fn default() -> Self {
        Self::Inline {
            len: 0,
            first: 0,
            after: [0; INLINE_TIMES - 1],
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
            Self::Inline { first, .. } => Some(*first),
            Self::Spilled(times) => times.front().copied(),
        }
    }

    /// The times held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let (inline, spilled) = match self {
            Self::Inline { len, first, after } => {
                let later = after[..usize::from(*len).saturating_sub(1)]
                    .iter()
                    // `first` plus a gap measured from a time no later
                    // than `u32::MAX`: no overflow.
                    .map(move |&d| first.saturating_add(u32::from(d)));
                let first = (*len > 0).then_some(*first);
                (Some(first.into_iter().chain(later)), None)
            }
            Self::Spilled(times) => (None, Some(times.iter().copied())),
        };
        inline
            .into_iter()
            .flatten()
            .chain(spilled.into_iter().flatten())
    }

    /// Holds one more time, newest.
    pub fn push_back(&mut self, at: u32) {
        match self {
            Self::Inline { len, first, .. } if *len == 0 => {
                *first = at;
                *len = 1;
            }
            Self::Inline { len, first, after } if usize::from(*len) < INLINE_TIMES => {
                if let Some(gap) = at.checked_sub(*first).and_then(|d| u16::try_from(d).ok()) {
                    after[usize::from(*len) - 1] = gap;
                    *len += 1;
                } else {
                    self.spill(at);
                }
            }
            Self::Inline { .. } => self.spill(at),
            Self::Spilled(times) => times.push_back(at),
        }
    }

    /// Moves the list onto the heap, with `at` pushed after it.
    fn spill(&mut self, at: u32) {
        let mut spilled = VecDeque::with_capacity(2 * INLINE_TIMES);
        spilled.extend(self.iter());
        spilled.push_back(at);
        *self = Self::Spilled(Box::new(spilled));
    }

    /// Lets go of the oldest time.
    pub fn pop_front(&mut self) {
        match self {
            Self::Inline { len, first, after } => match *len {
                0 => {}
                1 => *len = 0,
                n => {
                    // The second oldest becomes the oldest, and the gaps
                    // are measured from it (times pushed out of order
                    // might lie before it: those lists go to the heap).
                    let gaps = usize::from(n) - 1;
                    let step = after[0];
                    if after[1..gaps].iter().all(|&gap| gap >= step) {
                        *first = first.saturating_add(u32::from(step));
                        // Each gap moves down one place, measured from the
                        // new oldest, in one pass (a `copy_within` of this
                        // dynamic length was a call to `memmove`).
                        for i in 1..gaps {
                            after[i - 1] = after[i] - step;
                        }
                        *len = n - 1;
                    } else {
                        let rest: VecDeque<u32> = self.iter().skip(1).collect();
                        *self = Self::Spilled(Box::new(rest));
                    }
                }
            },
            Self::Spilled(times) => {
                times.pop_front();
                if times.len() <= INLINE_TIMES / 2
                    && let Some(inline) = Self::inline_from(times.iter().copied())
                {
                    *self = inline;
                }
            }
        }
    }

    /// Keeps only the times for which `keep` holds, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        let kept: Vec<u32> = self.iter().filter(|&t| keep(t)).collect();
        *self = Self::inline_from(kept.iter().copied()).unwrap_or_else(|| {
            let mut spilled = VecDeque::with_capacity(kept.len().max(2 * INLINE_TIMES));
            spilled.extend(kept);
            Self::Spilled(Box::new(spilled))
        });
    }

    /// An inline list of `from`, if it has at most [`INLINE_TIMES`] times,
    /// each within 65.5 s after the first.
    fn inline_from(mut from: impl Iterator<Item = u32>) -> Option<Self> {
        let mut list = Self::default();
        let Self::Inline { len, first, after } = &mut list else {
            return None;
        };
        if let Some(t) = from.next() {
            *first = t;
            *len = 1;
        }
        for t in from {
            let slot = after.get_mut(usize::from(*len) - 1)?;
            *slot = u16::try_from(t.checked_sub(*first)?).ok()?;
            *len += 1;
        }
        Some(list)
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
    fn times_far_apart_or_out_of_order_agree_with_a_plain_queue() {
        let mut times = RecentTimes::default();
        let mut model = VecDeque::new();
        let mut x = 5_u64;
        let mut now = 0_u32;
        for _ in 0..20_000 {
            x = crate::rng::mix(x);
            match x % 9 {
                0..=4 => {
                    // Mostly close together, sometimes more than 65.5 s
                    // apart, sometimes before the newest.
                    now = match (x >> 8) % 10 {
                        0 => now.saturating_add(70_000),
                        1 => now.saturating_sub(500),
                        _ => now.saturating_add(u32::try_from((x >> 16) % 3_000).unwrap()),
                    };
                    times.push_back(now);
                    model.push_back(now);
                }
                5..=7 => {
                    times.pop_front();
                    model.pop_front();
                }
                _ => {
                    let cut = now.saturating_sub(u32::try_from((x >> 8) % 10_000).unwrap());
                    times.retain(|t| t >= cut);
                    model.retain(|&t| t >= cut);
                }
            }
            assert!(
                times.iter().eq(model.iter().copied()),
                "{times:?} {model:?}"
            );
            assert_eq!(times.len(), model.len());
            assert_eq!(times.front(), model.front().copied());
        }
        assert_eq!(RecentTimes::default().iter().count(), 0);
    }

    #[test]
    fn ten_times_of_one_window_stay_inline() {
        let mut times = RecentTimes::default();
        for i in 0..INLINE_TIMES as u32 {
            times.push_back(1_000_000 + i * 6_000);
        }
        assert!(matches!(times, RecentTimes::Inline { .. }), "{times:?}");
        times.push_back(1_000_000 + 60_000);
        assert!(matches!(times, RecentTimes::Spilled(_)));
        for _ in 0..6 {
            times.pop_front();
        }
        assert!(matches!(times, RecentTimes::Inline { .. }), "{times:?}");
        assert!(
            times
                .iter()
                .eq([36_000, 42_000, 48_000, 54_000, 60_000].map(|t| 1_000_000 + t))
        );
        // The oldest and the newest more than 65.5 s apart: on the heap.
        let mut far = RecentTimes::default();
        far.push_back(0);
        far.push_back(70_000);
        assert!(matches!(far, RecentTimes::Spilled(_)));
        assert!(far.iter().eq([0, 70_000]));
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
