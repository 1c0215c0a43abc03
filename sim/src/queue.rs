//! The pending events of a run: two timing wheels and an overflow heap.
//!
//! Almost every event falls within the next few minutes (a message in
//! flight, a heartbeat, a backoff, a flap, the end of a session's resume
//! window), so events are filed by time in three tiers, each holding the
//! events themselves (no links to follow), in arrays that a push appends
//! to and a pop reads in order:
//!
//! - The near wheel: one slot per millisecond of the current epoch, the
//!   [`EPOCH_MS`] (256) milliseconds that hold the current time. A slot
//!   is a ring buffer of the events due then, in push order; the wheel
//!   drains the slot of the current time from its front, and a push at
//!   the current time goes to its back. A bitmap of occupied slots (4
//!   words) finds the next time with an event.
//! - The far wheel: one bucket per epoch for the next [`FAR_EPOCHS`] - 1
//!   (1,023) epochs (together with the near wheel, [`WINDOW_MS`], 262 s:
//!   the 180 s resume window and two-minute flaps included). A bucket is
//!   a list of (millisecond within the epoch, event) in push order, with
//!   the earliest millisecond kept beside it, so the next time is known
//!   without a scan; a bitmap (16 words) finds the first occupied bucket.
//!   When the current time enters an epoch, its bucket is dealt out to the
//!   near wheel's slots in one sequential pass.
//! - The overflow: a heap of the events further out, ordered by (time,
//!   push order). When the current time enters an epoch, the events whose
//!   epoch has come within the far wheel move into their bucket (or, after
//!   a jump over empty epochs, straight onto the near wheel).
//!
//! A push thus writes the end of one of 256 + 1,024 arrays (where the
//! wheel of 262,144 one-millisecond lists it replaces wrote a random word
//! of a 1 MiB array of list heads, and a slab entry), and a pop reads the
//! next element of the slot being drained (where that wheel followed one
//! link per event to a random slab entry: a dependent cache miss per event
//! once a fleet's pending events outgrew the cache). Most events are filed
//! twice, in the far wheel and then the near one, both times in order.
//! The epoch is a trade: a longer one sends more events straight to the
//! near wheel, but spreads its pushes over more slots that go cold
//! between laps; at 10,000 shards 256 ms had the fewest cache misses of
//! 64 ms to 1,024 ms.
//!
//! A far bucket's events lie in chunks of [`FAR_CHUNK`] events drawn
//! from a pool shared by all buckets, the chunk emptied last first: the
//! chunk a push starts is then most often one the wheel has just dealt
//! out, still in the cache, where a bucket owning its own buffer wrote
//! memory untouched since its last lap, 262 s before. A bucket is a
//! cache line of its own (the chunk being filled, the list of full ones,
//! the earliest millisecond), so a push writes that line and the end of
//! a chunk.
//!
//! Memory: nothing is allocated until the first push (a queue never used,
//! such as the gateway's when its driver holds the timers, costs
//! nothing), and buffers are reused from lap to lap, so a steady run stops
//! allocating. A burst (a reconnect storm) must not leave its capacity
//! behind for the rest of the run: a near slot drained with more than
//! [`NEAR_KEEP_BYTES`] of capacity gives the rest back (a slot normally
//! holds a few dozen events, so only a burst reaches it), and each time a
//! bucket is dealt out the pool keeps twice the chunks that bucket held
//! (at least [`FAR_SPARE_FLOOR`]), enough for the next epoch's pushes if
//! they come at the same pace, and frees the rest. The far wheel thus
//! holds its pending events plus at most a partly filled chunk a bucket
//! and the pool.
//!
//! Order: events pop by time, and events of the same millisecond in the
//! order they were pushed, as long as nothing is pushed before the time of
//! the last pop (no caller does; earlier times are raised to it). Every
//! tier keeps push order within a millisecond, and each millisecond's
//! events pass from tier to tier before any later push can reach the next
//! tier directly: an event goes to the far wheel only while its epoch is
//! ahead of the current one, and its bucket is dealt out to the near wheel
//! when the current time enters that epoch, before anything can be pushed
//! into the epoch's slots; an event goes to the overflow only while its
//! epoch is beyond the far wheel, and moves into its bucket when the
//! current time enters the epoch that brings it within the far wheel,
//! before anything can be pushed into that bucket (the overflow yields
//! ties in push order). The order is thus a pure function of the pushes,
//! so a run stays deterministic, and two queues fed the same pushes agree
//! on it. The current time only moves in a pop, to the time of the event
//! it returns, and never past the limit a pop is given.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::collections::binary_heap::BinaryHeap;

/// Milliseconds in one epoch, as a power of two.
const EPOCH_BITS: u32 = 8;
/// Milliseconds in one epoch, and slots on the near wheel (256).
const EPOCH_MS: u64 = 1 << EPOCH_BITS;
/// A time's slot on the near wheel: its millisecond within its epoch.
const SLOT_MASK: u64 = EPOCH_MS - 1;
/// Words of the near wheel's bitmap (4).
const NEAR_WORDS: usize = (EPOCH_MS / 64) as usize;
/// Milliseconds the two wheels cover from the start of the current epoch
/// (262 s); events further out wait in the overflow.
const WINDOW_MS: u64 = 1 << 18;
/// Buckets on the far wheel, one per epoch of the window (1,024): the
/// current epoch's is always empty (its events are on the near wheel), so
/// the far wheel holds the next 1,023 epochs.
const FAR_EPOCHS: u64 = WINDOW_MS / EPOCH_MS;
/// An epoch's bucket on the far wheel.
const FAR_MASK: u64 = FAR_EPOCHS - 1;
/// Words of the far wheel's bitmap (16).
const FAR_WORDS: usize = (FAR_EPOCHS / 64) as usize;
/// Capacity, in bytes, a near slot keeps once drained (4 KiB: 341 engine
/// events in one millisecond; at 100,000 shards a millisecond holds about
/// 30). Beyond it, a burst's capacity is given back: the near wheel keeps
/// at most 1 MiB between bursts.
const NEAR_KEEP_BYTES: usize = 4 << 10;
/// Events in one chunk of a far bucket (256: 4 KiB of engine events).
const FAR_CHUNK: usize = 256;
/// Spare chunks the far wheel may always keep (64 KiB of engine events).
const FAR_SPARE_FLOOR: usize = 16;

/// A queue of `T` ordered by time in milliseconds.
#[derive(Debug)]
pub(crate) struct Queue<T> {
    /// The two wheels: none until the first push.
    wheels: Option<Wheels<T>>,
    /// One bit per near slot: it holds events. The current time's slot
    /// may keep its bit once drained (it is never searched).
    near_occupied: [u64; NEAR_WORDS],
    /// One bit per far bucket: it holds events.
    far_occupied: [u64; FAR_WORDS],
    /// The current time: that of the last pop. Nothing earlier is pending.
    base: u64,
    /// Events whose epoch is [`FAR_EPOCHS`] or more past the current one.
    overflow: BinaryHeap<Later<T>>,
    /// Events pushed into the overflow so far: its tie-break.
    order: u64,
    /// Events pending now.
    len: usize,
    /// The most events pending at once.
    peak: usize,
}

/// The near and far wheels' arrays.
#[derive(Debug)]
struct Wheels<T> {
    /// The current epoch's events, by millisecond, each slot in push order.
    near: Box<[VecDeque<T>; EPOCH_MS as usize]>,
    /// The next epochs' events, by epoch (bucket `epoch % FAR_EPOCHS`).
    far: Box<[Bucket<T>; FAR_EPOCHS as usize]>,
    /// Empty chunks for the far buckets (capacity [`FAR_CHUNK`]), the one
    /// emptied last on top: a bucket that fills a chunk takes the one the
    /// wheel read last, still in the cache, rather than memory untouched
    /// since its own last lap.
    spare: Vec<Vec<(u16, T)>>,
}

/// One epoch's events on the far wheel: (millisecond within the epoch,
/// event), in push order, in chunks of [`FAR_CHUNK`] (16 bytes an engine
/// event). A cache line of its own: a push writes it and the end of
/// `tail` alone.
#[derive(Debug)]
#[repr(align(64))]
struct Bucket<T> {
    /// The chunk being filled (no capacity while the bucket is empty).
    tail: Vec<(u16, T)>,
    /// The full chunks before `tail`, oldest first.
    full: Vec<Vec<(u16, T)>>,
    /// The earliest millisecond within the epoch in the bucket, if any.
    earliest: u16,
}

/// An event in the overflow, ordered by time, then push order, earliest
/// greatest (the heap pops its greatest).
#[derive(Debug)]
struct Later<T> {
    at: u64,
    order: u64,
    item: T,
}

impl<T> PartialEq for Later<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl<T> Eq for Later<T> {}

impl<T> PartialOrd for Later<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Later<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self {
            wheels: None,
            near_occupied: [0; NEAR_WORDS],
            far_occupied: [0; FAR_WORDS],
            base: 0,
            overflow: BinaryHeap::new(),
            order: 0,
            len: 0,
            peak: 0,
        }
    }
}

impl<T> Wheels<T> {
    /// Both wheels, every slot and bucket empty, made at the first push
    /// (kept out of the pushes' way).
    #[cold]
    #[inline(never)]
    fn new() -> Self {
        Self {
            near: boxed_array(VecDeque::new),
            far: boxed_array(|| Bucket {
                tail: Vec::new(),
                full: Vec::new(),
                earliest: 0,
            }),
            spare: Vec::new(),
        }
    }
}

impl<T> Bucket<T> {
    /// Files the full `tail` among the full chunks (unless the bucket is
    /// empty) and starts a new one: the spare chunk emptied last, or a
    /// new one.
    #[inline]
    fn start_chunk(&mut self, spare: &mut Vec<Vec<(u16, T)>>) {
        let chunk = spare.pop().unwrap_or_else(|| Vec::with_capacity(FAR_CHUNK));
        let full = std::mem::replace(&mut self.tail, chunk);
        if !full.is_empty() {
            self.full.push(full);
        }
    }
}

impl<T> Queue<T> {
    /// Queues `item` at `at` (times before the current one are raised to it).
    #[inline]
    pub(crate) fn push(&mut self, at: u64, item: T) {
        self.len += 1;
        self.peak = self.peak.max(self.len);
        self.file(at.max(self.base), item);
    }

    /// Files `item`, due at `at` (not before the current time), in the
    /// tier its epoch belongs to.
    #[inline]
    fn file(&mut self, at: u64, item: T) {
        let ahead = epoch(at).saturating_sub(epoch(self.base));
        if ahead == 0 {
            self.push_near(at, item);
        } else if ahead < FAR_EPOCHS {
            self.push_far(at, item);
        } else {
            self.push_overflow(at, item);
        }
    }

    /// The wheels, made at the first use.
    #[inline]
    fn wheels_mut(&mut self) -> &mut Wheels<T> {
        self.wheels.get_or_insert_with(Wheels::new)
    }

    /// Appends `item` to the slot of `at`, in the current epoch.
    #[inline]
    fn push_near(&mut self, at: u64, item: T) {
        let slot = (at & SLOT_MASK) as usize;
        self.wheels_mut().near[slot].push_back(item);
        self.near_occupied[slot / 64] |= 1 << (slot % 64);
    }

    /// Appends `item` to the bucket of `at`'s epoch, a later one within
    /// the far wheel.
    #[inline]
    fn push_far(&mut self, at: u64, item: T) {
        let index = (epoch(at) & FAR_MASK) as usize;
        let millisecond = (at & SLOT_MASK) as u16;
        let Wheels { far, spare, .. } = self.wheels_mut();
        let bucket = &mut far[index];
        if bucket.tail.is_empty() || millisecond < bucket.earliest {
            bucket.earliest = millisecond;
        }
        if bucket.tail.len() == bucket.tail.capacity() {
            bucket.start_chunk(spare);
        }
        bucket.tail.push((millisecond, item));
        self.far_occupied[index / 64] |= 1 << (index % 64);
    }

    /// Puts `item`, due at `at`, beyond the far wheel, in the overflow
    /// (rare: kept out of the pushes' way).
    #[cold]
    #[inline(never)]
    fn push_overflow(&mut self, at: u64, item: T) {
        self.order += 1;
        self.overflow.push(Later {
            at,
            order: self.order,
            item,
        });
    }

    /// The earliest event, with its time.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<(u64, T)> {
        self.pop_until(u64::MAX)
    }

    /// The earliest event, with its time, if it is due at or before
    /// `limit`; otherwise nothing, and the queue is left as it was (its
    /// current time never moves past `limit`, so later pushes at `limit`
    /// keep their place).
    #[inline]
    pub(crate) fn pop_until(&mut self, limit: u64) -> Option<(u64, T)> {
        loop {
            if self.len == 0 {
                return None;
            }
            if let Some(wheels) = &mut self.wheels {
                let slot = (self.base & SLOT_MASK) as usize;
                let current = &mut wheels.near[slot];
                if self.base <= limit {
                    if let Some(item) = current.pop_front() {
                        self.len -= 1;
                        return Some((self.base, item));
                    }
                } else if !current.is_empty() {
                    return None;
                }
                // The current time is drained.
                if current.capacity() > keep::<T>(NEAR_KEEP_BYTES) {
                    current.shrink_to(keep::<T>(NEAR_KEEP_BYTES));
                }
            }
            // Turn to the next time with an event.
            let next = self.next_time()?;
            if next > limit {
                return None;
            }
            self.turn_to(next);
        }
    }

    /// Makes `next`, the earliest time with an event, the current time,
    /// bringing in the events of its epoch if it starts a new one.
    fn turn_to(&mut self, next: u64) {
        let ahead = epoch(next).saturating_sub(epoch(self.base));
        self.base = next;
        if ahead == 0 {
            return;
        }
        // The near wheel is empty: every event of the old epoch was
        // earlier than `next`.
        self.near_occupied = [0; NEAR_WORDS];
        if ahead < FAR_EPOCHS {
            self.deal_out_bucket(epoch(next));
        }
        self.take_in_overflow();
    }

    /// Deals the far bucket of `current`, the epoch just entered, out to
    /// the near wheel's slots, in push order.
    fn deal_out_bucket(&mut self, current: u64) {
        let index = (current & FAR_MASK) as usize;
        self.far_occupied[index / 64] &= !(1 << (index % 64));
        let Some(Wheels { near, far, spare }) = &mut self.wheels else {
            return;
        };
        let bucket = &mut far[index];
        // The tail goes to the pool too (the bucket's next push takes the
        // chunk emptied last): a bucket keeps no buffer of its own
        // through the lap, when it would go cold.
        let tail = std::mem::take(&mut bucket.tail);
        let dealt = bucket.full.len() + usize::from(tail.capacity() > 0);
        let chunks = bucket
            .full
            .drain(..)
            .chain(Some(tail).filter(|tail| tail.capacity() > 0));
        for mut chunk in chunks {
            for (millisecond, item) in chunk.drain(..) {
                let slot = usize::from(millisecond) & SLOT_MASK as usize;
                near[slot].push_back(item);
                self.near_occupied[slot / 64] |= 1 << (slot % 64);
            }
            spare.push(chunk);
        }
        // Keep chunks for an epoch's pushes like this one's (twice as
        // many), not for a burst's.
        // The oldest go, the coldest in the cache.
        let keep = dealt.saturating_mul(2).saturating_add(FAR_SPARE_FLOOR);
        if let Some(excess) = spare.len().checked_sub(keep) {
            spare.drain(..excess);
        }
    }

    /// Moves the overflow's events whose epoch has come within the far
    /// wheel into their tier, earliest first, ties in push order.
    fn take_in_overflow(&mut self) {
        let current = epoch(self.base);
        while self
            .overflow
            .peek()
            .is_some_and(|top| epoch(top.at).saturating_sub(current) < FAR_EPOCHS)
        {
            if let Some(Later { at, item, .. }) = self.overflow.pop() {
                self.file(at, item);
            }
        }
    }

    /// The earliest time with an event after the current time's (once
    /// its own events are drained): on the near wheel, else in the first
    /// occupied far bucket, else in the overflow.
    fn next_time(&self) -> Option<u64> {
        let current = epoch(self.base);
        let slot = (self.base & SLOT_MASK) as usize;
        if let Some(next) = next_set(&self.near_occupied, slot + 1) {
            return Some((self.base & !SLOT_MASK) | next as u64);
        }
        let start = (current.saturating_add(1) & FAR_MASK) as usize;
        let far = next_set(&self.far_occupied, start).or_else(|| next_set(&self.far_occupied, 0));
        if let (Some(index), Some(wheels)) = (far, &self.wheels) {
            let ahead = (index as u64).wrapping_sub(start as u64) & FAR_MASK;
            let epoch = current.saturating_add(1).saturating_add(ahead);
            let earliest = u64::from(wheels.far[index].earliest);
            return Some(epoch.saturating_mul(EPOCH_MS).saturating_add(earliest));
        }
        self.overflow.peek().map(|later| later.at)
    }

    /// The time of the earliest event, without taking it.
    pub(crate) fn peek_time(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let slot = (self.base & SLOT_MASK) as usize;
        if self
            .wheels
            .as_ref()
            .is_some_and(|wheels| !wheels.near[slot].is_empty())
        {
            return Some(self.base);
        }
        self.next_time()
    }

    /// Events pending now.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The most events ever pending at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak
    }
}

/// The epoch of time `at`.
#[inline]
fn epoch(at: u64) -> u64 {
    at >> EPOCH_BITS
}

/// How many `E` fit in `bytes` (at least one).
const fn keep<E>(bytes: usize) -> usize {
    let size = size_of::<E>();
    if size == 0 || bytes / size == 0 {
        1
    } else {
        bytes / size
    }
}

/// The first set bit of `words` at or after bit `from`, if any.
#[inline]
fn next_set(words: &[u64], from: usize) -> Option<usize> {
    let mut word = from / 64;
    let mut bits = *words.get(word)? & (!0u64 << (from % 64));
    loop {
        if bits != 0 {
            return Some(word * 64 + bits.trailing_zeros() as usize);
        }
        word += 1;
        bits = *words.get(word)?;
    }
}

/// An array of `N` values made by `value`, on the heap (built there, not
/// on the stack: the near wheel's slots take 32 KiB).
fn boxed_array<E, const N: usize>(value: impl FnMut() -> E) -> Box<[E; N]> {
    let items: Box<[E]> = std::iter::repeat_with(value).take(N).collect();
    items
        .try_into()
        .unwrap_or_else(|_| unreachable!("N items were taken"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_engine_event_takes_12_bytes_near_and_16_far() {
        // A fleet keeps about four pending events per shard: a message
        // held in the queue itself made every event 32 bytes.
        assert_eq!(size_of::<crate::engine::Ev>(), 12);
        assert_eq!(size_of::<(u16, crate::engine::Ev)>(), 16);
        // The gateway's own timers, for a driver that leaves them to it.
        assert!(size_of::<(u16, crate::gateway::Timer)>() <= 16);
        // The overflow's tie-break and time, beside the event.
        assert_eq!(size_of::<Later<crate::engine::Ev>>(), 32);
    }

    #[test]
    fn same_millisecond_events_pop_in_push_order() {
        let mut q = Queue::default();
        for i in 0..5 {
            q.push(10, i);
        }
        q.push(3, 99);
        let popped: Vec<(u64, i32)> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            popped,
            [(3, 99), (10, 0), (10, 1), (10, 2), (10, 3), (10, 4)]
        );
    }

    #[test]
    fn far_events_wait_in_the_overflow_and_come_back_in_time() {
        let mut q = Queue::default();
        q.push(3 * WINDOW_MS + 7, "far");
        q.push(5, "near");
        q.push(WINDOW_MS + 1, "next lap");
        assert_eq!(q.pop(), Some((5, "near")));
        q.push(WINDOW_MS + 1, "pushed later");
        assert_eq!(q.pop(), Some((WINDOW_MS + 1, "next lap")));
        assert_eq!(q.pop(), Some((WINDOW_MS + 1, "pushed later")));
        assert_eq!(q.pop(), Some((3 * WINDOW_MS + 7, "far")));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn pop_until_leaves_later_events_and_the_clock_alone() {
        let mut q = Queue::default();
        q.push(10, "a");
        q.push(3 * WINDOW_MS, "far");
        assert_eq!(q.peek_time(), Some(10));
        assert_eq!(q.pop_until(9), None);
        assert_eq!(q.pop_until(10), Some((10, "a")));
        assert_eq!(q.peek_time(), Some(3 * WINDOW_MS));
        assert_eq!(q.pop_until(100), None);
        // The clock stayed at 10: an event pushed at 100 comes first.
        q.push(100, "b");
        assert_eq!(q.peek_time(), Some(100));
        assert_eq!(q.pop_until(u64::MAX), Some((100, "b")));
        assert_eq!(q.pop_until(u64::MAX), Some((3 * WINDOW_MS, "far")));
        assert_eq!(q.peek_time(), None);
    }

    #[test]
    fn a_long_queue_keeps_its_order_and_counts_its_peak() {
        let mut q = Queue::default();
        let n = 3 * 4_096 + 5;
        for i in 0..n {
            // Out of time order, ties included, some in the overflow.
            q.push((i * 7_919) % 1_000_000, i);
        }
        assert_eq!(q.peak(), n as usize);
        let mut last = (0, 0);
        let mut popped = 0;
        while let Some((at, i)) = q.pop() {
            assert!((at, i) > last || popped == 0, "{last:?} then {:?}", (at, i));
            assert_eq!(at, (i * 7_919) % 1_000_000);
            last = (at, i);
            popped += 1;
        }
        assert_eq!(popped, n);
        // As many again, after the first ones left: the peak stays.
        for i in 0..n {
            q.push(2_000_000 + i, i);
        }
        assert_eq!(q.peak(), n as usize);
        q.push(2_000_000, n);
        assert_eq!(q.peak(), n as usize + 1);
        assert_eq!(q.len(), n as usize + 1);
    }

    #[test]
    fn a_queue_never_pushed_allocates_nothing() {
        let mut q: Queue<u32> = Queue::default();
        assert!(q.wheels.is_none());
        assert_eq!(q.pop(), None);
        assert_eq!(q.pop_until(5), None);
        assert_eq!(q.peek_time(), None);
        assert!(q.wheels.is_none());
        assert_eq!((q.len(), q.peak()), (0, 0));
    }

    #[test]
    fn events_cross_epoch_boundaries_in_order() {
        let mut q = Queue::default();
        let times = [
            EPOCH_MS,
            EPOCH_MS - 1,
            2 * EPOCH_MS,
            EPOCH_MS + 1,
            2 * EPOCH_MS - 1,
            0,
            EPOCH_MS,
        ];
        for (i, at) in times.into_iter().enumerate() {
            q.push(at, i);
        }
        let popped: Vec<(u64, usize)> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            popped,
            [
                (0, 5),
                (EPOCH_MS - 1, 1),
                (EPOCH_MS, 0),
                (EPOCH_MS, 6),
                (EPOCH_MS + 1, 3),
                (2 * EPOCH_MS - 1, 4),
                (2 * EPOCH_MS, 2),
            ]
        );
    }

    #[test]
    fn a_far_bucket_moves_to_the_near_wheel_before_direct_pushes() {
        let mut q = Queue::default();
        let at = 5 * EPOCH_MS + 17;
        q.push(at, "far 1");
        q.push(5 * EPOCH_MS + 3, "enters the epoch");
        q.push(at, "far 2");
        assert_eq!(q.pop(), Some((5 * EPOCH_MS + 3, "enters the epoch")));
        // The epoch's bucket is on the near wheel now; this goes straight
        // to the slot, behind it.
        q.push(at, "near");
        assert_eq!(q.pop(), Some((at, "far 1")));
        // A push at the current time goes behind those still pending.
        q.push(at, "now");
        assert_eq!(q.pop(), Some((at, "far 2")));
        assert_eq!(q.pop(), Some((at, "near")));
        assert_eq!(q.pop(), Some((at, "now")));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn ties_keep_push_order_across_overflow_far_and_near() {
        let mut q = Queue::default();
        // Beyond the far wheel while the current epoch is 0.
        let target = 2 * FAR_EPOCHS + 88;
        let at = target * EPOCH_MS + 9;
        q.push(at, "overflow");
        // Brings the target within the far wheel.
        let step = FAR_EPOCHS + 100;
        q.push(step * EPOCH_MS, "step 1");
        q.push(at, "overflow too");
        // The step is beyond the far wheel too.
        assert_eq!(q.overflow.len(), 3);
        assert_eq!(q.pop(), Some((step * EPOCH_MS, "step 1")));
        assert!(q.overflow.is_empty());
        q.push(at, "far");
        q.push(target * EPOCH_MS, "step 2");
        assert_eq!(q.pop(), Some((target * EPOCH_MS, "step 2")));
        q.push(at, "near");
        assert_eq!(q.peek_time(), Some(at));
        let popped: Vec<(u64, &str)> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            popped,
            [
                (at, "overflow"),
                (at, "overflow too"),
                (at, "far"),
                (at, "near")
            ]
        );
    }

    #[test]
    fn a_jump_past_the_far_wheel_brings_the_overflow_straight_to_the_near_wheel() {
        let mut q = Queue::default();
        let at = 10 * WINDOW_MS + 5;
        q.push(at + EPOCH_MS, "next epoch");
        q.push(at, "a");
        q.push(at + 1, "b");
        q.push(at, "c");
        assert_eq!(q.pop(), Some((at, "a")));
        q.push(at, "d");
        q.push(at + EPOCH_MS, "far");
        let popped: Vec<(u64, &str)> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            popped,
            [
                (at, "c"),
                (at, "d"),
                (at + 1, "b"),
                (at + EPOCH_MS, "next epoch"),
                (at + EPOCH_MS, "far")
            ]
        );
    }

    #[test]
    fn pop_until_stops_at_an_epoch_edge() {
        let mut q = Queue::default();
        q.push(EPOCH_MS, "next epoch");
        assert_eq!(q.peek_time(), Some(EPOCH_MS));
        assert_eq!(q.pop_until(EPOCH_MS - 1), None);
        // The clock stayed in epoch 0: the last millisecond still takes
        // pushes, and comes first.
        q.push(EPOCH_MS - 1, "last of epoch 0");
        assert_eq!(
            q.pop_until(EPOCH_MS - 1),
            Some((EPOCH_MS - 1, "last of epoch 0"))
        );
        assert_eq!(q.pop_until(EPOCH_MS - 1), None);
        q.push(EPOCH_MS, "pushed at the edge");
        assert_eq!(q.pop_until(EPOCH_MS), Some((EPOCH_MS, "next epoch")));
        assert_eq!(
            q.pop_until(EPOCH_MS),
            Some((EPOCH_MS, "pushed at the edge"))
        );
        assert_eq!(q.pop_until(u64::MAX), None);
    }

    #[test]
    fn times_near_the_end_of_time_do_not_overflow() {
        let mut q = Queue::default();
        q.push(u64::MAX, "last");
        q.push(u64::MAX - 1, "before");
        q.push(u64::MAX - WINDOW_MS, "far before");
        q.push(0, "first");
        assert_eq!(q.pop(), Some((0, "first")));
        assert_eq!(q.peek_time(), Some(u64::MAX - WINDOW_MS));
        assert_eq!(q.pop(), Some((u64::MAX - WINDOW_MS, "far before")));
        assert_eq!(q.pop(), Some((u64::MAX - 1, "before")));
        // Raised to the current time, behind what is pending there.
        q.push(3, "late");
        assert_eq!(q.pop(), Some((u64::MAX - 1, "late")));
        assert_eq!(q.pop_until(u64::MAX - 1), None);
        assert_eq!(q.pop(), Some((u64::MAX, "last")));
        q.push(u64::MAX, "at the end");
        assert_eq!(q.pop(), Some((u64::MAX, "at the end")));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_burst_gives_back_its_capacity_once_drained() {
        let mut q = Queue::default();
        let burst = 100_000_u64;
        // A reconnect storm in one far millisecond, then one near.
        for i in 0..burst {
            q.push(3 * EPOCH_MS + 1, i);
        }
        for i in 0..burst {
            q.push(5, i);
        }
        let slot_capacity = |q: &Queue<u64>, at: u64| {
            q.wheels
                .as_ref()
                .map_or(0, |w| w.near[(at & SLOT_MASK) as usize].capacity())
        };
        let spare_chunks = |q: &Queue<u64>| q.wheels.as_ref().map_or(0, |w| w.spare.len());
        assert!(slot_capacity(&q, 5) >= burst as usize);
        let burst_chunks = (burst as usize).div_ceil(FAR_CHUNK);
        for _ in 0..burst {
            assert_eq!(q.pop().map(|(at, _)| at), Some(5));
        }
        // The slot is drained once the wheel looks past it.
        assert_eq!(q.pop(), Some((3 * EPOCH_MS + 1, 0)));
        assert!(slot_capacity(&q, 5) <= keep::<u64>(NEAR_KEEP_BYTES));
        // The bucket was dealt out: its chunks are kept for the next
        // epoch's pushes.
        assert_eq!(spare_chunks(&q), burst_chunks);
        for i in 1..burst {
            assert_eq!(q.pop(), Some((3 * EPOCH_MS + 1, i)));
        }
        // The next bucket dealt out holds a handful: the burst's chunks
        // go back.
        // (Epoch 258: the last within the far wheel from epoch 3.)
        let later = (2 + FAR_EPOCHS) * EPOCH_MS + 5;
        for i in 0..10 {
            q.push(later + i, i);
        }
        assert_eq!(spare_chunks(&q), burst_chunks - 1);
        q.push(later - 1, 99);
        assert_eq!(q.pop(), Some((later - 1, 99)));
        assert_eq!(q.pop(), Some((later, 0)));
        assert_eq!(spare_chunks(&q), 2 + FAR_SPARE_FLOOR);
        assert!(slot_capacity(&q, 3 * EPOCH_MS + 1) <= keep::<u64>(NEAR_KEEP_BYTES));
        assert_eq!(q.len(), 9);
        assert_eq!(q.peak(), 2 * burst as usize);
    }

    /// One step of a run against the model below.
    #[derive(Clone, Debug)]
    enum Op {
        /// Push at the current time plus this much.
        Push(u64),
        /// Pop the earliest event.
        Pop,
        /// Pop the earliest event due by the current time plus this much.
        PopUntil(u64),
        /// Read the earliest time.
        Peek,
    }

    /// Delays near an epoch (1 ms to 3 s), across the far wheel and
    /// beyond it.
    fn delay() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..4,
            0u64..3 * EPOCH_MS,
            (1u64..6).prop_map(|n| n * EPOCH_MS - 1),
            (1u64..6).prop_map(|n| n * EPOCH_MS),
            0u64..3 * WINDOW_MS,
            (0u64..3).prop_map(|n| n * WINDOW_MS + EPOCH_MS),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => delay().prop_map(Op::Push),
            2 => Just(Op::Pop),
            1 => delay().prop_map(Op::PopUntil),
            1 => Just(Op::Peek),
        ]
    }

    proptest! {
        /// Whatever is pushed, in whatever order (never before the last
        /// popped time), everything pops exactly once, in time order, and
        /// events of one millisecond keep their push order, whether they
        /// waited in the overflow or not.
        #[test]
        fn pops_everything_in_time_order(ops in prop::collection::vec((0u64..3 * WINDOW_MS, any::<bool>()), 1..400)) {
            let mut q = Queue::default();
            let mut now = 0;
            let mut pushed = 0u32;
            let mut popped = Vec::new();
            for (delta, pop) in ops {
                if pop {
                    if let Some((at, id)) = q.pop() {
                        prop_assert!(at >= now);
                        now = at;
                        popped.push((at, id));
                    }
                } else {
                    q.push(now + delta, (now + delta, pushed));
                    pushed += 1;
                }
            }
            while let Some((at, id)) = q.pop() {
                prop_assert!(at >= now);
                now = at;
                popped.push((at, id));
            }
            prop_assert_eq!(popped.len(), pushed as usize);
            for (at, (scheduled, _)) in &popped {
                prop_assert_eq!(at, scheduled);
            }
            for pair in popped.windows(2) {
                let ((a, (_, first)), (b, (_, second))) = (pair[0], pair[1]);
                if a == b {
                    prop_assert!(first < second, "{first} and {second} at {a}");
                }
            }
            let mut ids: Vec<u32> = popped.iter().map(|(_, (_, id))| *id).collect();
            ids.sort_unstable();
            prop_assert!(ids.iter().copied().eq(0..pushed));
        }

        /// Few distinct times, some a window or more ahead when pushed and
        /// some not, and pops in between: ties of one millisecond, spread
        /// over the overflow and the wheel, still pop in push order.
        #[test]
        fn ties_pop_in_push_order_across_the_overflow(ops in prop::collection::vec((0usize..5, any::<bool>()), 1..300)) {
            const TIMES: [u64; 5] = [3, WINDOW_MS + 3, WINDOW_MS + 4, 2 * WINDOW_MS + 3, 3 * WINDOW_MS];
            let mut q = Queue::default();
            let mut now = 0;
            let mut pushed = 0u32;
            let mut popped = Vec::new();
            let record = |q: &mut Queue<u32>, now: &mut u64, popped: &mut Vec<(u64, u32)>| {
                if let Some((at, id)) = q.pop() {
                    *now = at;
                    popped.push((at, id));
                }
            };
            for (which, pop) in ops {
                if pop {
                    record(&mut q, &mut now, &mut popped);
                } else {
                    q.push(TIMES[which].max(now), pushed);
                    pushed += 1;
                }
            }
            while q.peek_time().is_some() {
                record(&mut q, &mut now, &mut popped);
            }
            prop_assert_eq!(popped.len(), pushed as usize);
            for pair in popped.windows(2) {
                prop_assert!(pair[0] < pair[1], "{:?} then {:?}", pair[0], pair[1]);
            }
        }

        /// Pushes, pops, pops up to a limit and peeks, starting anywhere
        /// (up to the end of time), agree step by step with a sorted map
        /// keyed by (time, push order) whose clock is the last popped
        /// time: across epoch edges, far-to-near and overflow-to-far moves
        /// and limits that stop short of them.
        #[test]
        fn agrees_with_a_sorted_map(
            start in prop_oneof![Just(0u64), 0u64..u64::MAX, Just(u64::MAX - 2 * WINDOW_MS), Just(u64::MAX - 3)],
            ops in prop::collection::vec(op(), 1..400),
        ) {
            let mut q = Queue::default();
            let mut model = BTreeMap::new();
            let mut now = 0u64;
            if start > 0 {
                q.push(start, u32::MAX);
                model.insert((start, 0u32), u32::MAX);
            }
            let mut pushed = 1u32;
            for op in ops {
                match op {
                    Op::Push(delay) => {
                        let at = now.saturating_add(delay);
                        q.push(at, pushed);
                        model.insert((at, pushed), pushed);
                        pushed += 1;
                    }
                    Op::Pop | Op::PopUntil(_) => {
                        let limit = match op {
                            Op::PopUntil(delay) => now.saturating_add(delay),
                            _ => u64::MAX,
                        };
                        let expected = match model.first_key_value() {
                            Some((&(at, _), _)) if at <= limit => model.pop_first().map(|((at, _), id)| (at, id)),
                            _ => None,
                        };
                        if let Some((at, _)) = expected {
                            now = at;
                        }
                        prop_assert_eq!(q.pop_until(limit), expected);
                    }
                    Op::Peek => {
                        prop_assert_eq!(q.peek_time(), model.first_key_value().map(|(&(at, _), _)| at));
                    }
                }
                prop_assert_eq!(q.len(), model.len());
            }
            while let Some(((at, _), id)) = model.pop_first() {
                prop_assert_eq!(q.pop(), Some((at, id)));
            }
            prop_assert_eq!(q.pop(), None);
        }
    }
}
