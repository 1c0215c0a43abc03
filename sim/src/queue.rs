//! The pending events of a run: a timing wheel over a slab of payloads.
//!
//! Almost every event falls within the next few minutes (a message in
//! flight, a heartbeat, a backoff, a flap, the end of a session's resume
//! window), so the queue is a wheel of one-millisecond slots covering
//! [`WINDOW_MS`] (262 s: the 180 s resume window and two-minute flaps
//! included, which a wheel of 65.5 s left to the overflow, 24 bytes an
//! event, a tenth of a fleet's pending events); each slot is a list of
//! payload indices, and a bitmap of occupied slots lets the wheel skip
//! idle stretches 64 slots at a time. Events further out wait in an
//! overflow heap and move onto the wheel as it turns. Push and pop are
//! O(1) for wheel events and touch memory in order, where a binary heap
//! over a fleet's tens of thousands of pending events spent most of its
//! time on cache misses.
//!
//! A payload and the link to the next one in its list share one entry of
//! the slab. A slot keeps its list newest first, so a push writes the slot
//! and the new entry alone (appending in order would also write the
//! slot's last entry, pushed up to a minute before and long out of the
//! cache); the wheel reverses the list once, when it reaches the slot,
//! just before its entries are read anyway. The slab grows in fixed
//! chunks rather than by doubling one array, so a fleet's queue holds at
//! most one chunk more than its most pending events (where a doubled
//! array held up to twice as many), and growing it never copies the
//! events already pending.
//!
//! Order: events pop by time, and events of the same millisecond in the
//! order they were pushed, as long as nothing is pushed before the time of
//! the last pop (no caller does; earlier times are raised to it). An event
//! that waits in the overflow was pushed while its millisecond was more
//! than a window ahead, so before any event of that millisecond could go
//! straight onto the wheel, and it moves onto the wheel as soon as the
//! current time comes within a window of it, so before any such event can
//! be pushed. The order is thus a pure function of the pushes, so a run
//! stays deterministic, and two queues fed the same pushes agree on it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Slots on the wheel, as a power of two.
const WINDOW_BITS: u32 = 18;
/// Milliseconds the wheel covers (262 s).
pub(crate) const WINDOW_MS: u64 = 1 << WINDOW_BITS;
const MASK: u64 = WINDOW_MS - 1;
const WORDS: usize = (WINDOW_MS / 64) as usize;

/// No event: the end of a slot's list.
const NIL: u32 = u32::MAX;

/// Entries in one chunk of the slab, as a power of two.
const CHUNK_BITS: u32 = 12;
/// Entries in one chunk of the slab (4,096).
const CHUNK: usize = 1 << CHUNK_BITS;

/// A queue of `T` ordered by time in milliseconds.
#[derive(Debug)]
pub(crate) struct Queue<T> {
    /// Each slot's events, newest first: the index of the payload pushed
    /// last, linked through each entry's `next` (4 bytes a slot, 1 MiB).
    /// A push writes the slot and its own entry alone; the list is put in
    /// push order once, when the wheel reaches the slot (see `current`).
    /// None until the first push: a queue never used (the gateway's, when
    /// its driver holds the timers) costs nothing.
    slots: Option<Box<[u32; WINDOW_MS as usize]>>,
    /// One bit per slot: it holds events.
    occupied: Box<[u64; WORDS]>,
    /// The time of the slot being drained; nothing earlier is pending.
    base: u64,
    /// The events of `base`, oldest first, as (first, last) payload
    /// indices: the slot's list, reversed when the wheel reached it, then
    /// the events pushed at `base` since, appended.
    current: (u32, u32),
    /// Events at or after `base + WINDOW_MS`: (time, order, payload index).
    overflow: BinaryHeap<Reverse<(u64, u64, u32)>>,
    order: u64,
    /// The payloads, in chunks of [`CHUNK`] entries (each allocated full
    /// size, never grown): entry `i` is `slab[i / CHUNK][i % CHUNK]`. A
    /// chunk is an array, so only the chunk's index is bounds-checked.
    slab: Vec<Box<[Entry<T>; CHUNK]>>,
    /// Entries ever used: the most events pending at once.
    used: usize,
    /// The entries free for reuse, linked through their `next`, the one
    /// freed last first ([`NIL`]: none). Kept in the entries themselves,
    /// so a queue needs no list of four bytes per entry beside its slab.
    free: u32,
    len: usize,
}

/// A payload, and the index of the payload after it in its list, aligned
/// to 16 bytes: a chunk of the slab may be mapped on its own, 16 bytes
/// into a page, and an engine event's entry, 16 bytes, then never lies
/// across two cache lines.
#[derive(Debug)]
#[repr(align(16))]
struct Entry<T> {
    item: Option<T>,
    next: u32,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self {
            slots: None,
            occupied: boxed_array(|| 0),
            base: 0,
            current: (NIL, NIL),
            overflow: BinaryHeap::new(),
            order: 0,
            slab: Vec::new(),
            used: 0,
            free: NIL,
            len: 0,
        }
    }
}

impl<T> Queue<T> {
    /// Queues `item` at `at` (times before the current one are raised to it).
    #[inline]
    pub(crate) fn push(&mut self, at: u64, item: T) {
        let at = at.max(self.base);
        let index = self.take_free_entry();
        self.len += 1;
        // The entry is written once, with the link its list gives it.
        let next = if at == self.base {
            // After everything pending at `base`: its entries were read
            // just now, so the last one is at hand.
            let (first, last) = self.current;
            if first == NIL {
                self.current = (index, index);
            } else {
                self.entry_mut(last).next = index;
                self.current.1 = index;
            }
            NIL
        } else if at - self.base < WINDOW_MS {
            self.head_of_slot(at, index)
        } else {
            self.push_overflow(at, index);
            NIL
        };
        *self.entry_mut(index) = Entry {
            item: Some(item),
            next,
        };
    }

    /// Puts payload `index`, due at `at`, a window or more ahead, in the
    /// overflow (rare: kept out of the pushes' way).
    #[cold]
    #[inline(never)]
    fn push_overflow(&mut self, at: u64, index: u32) {
        self.order += 1;
        self.overflow.push(Reverse((at, self.order, index)));
    }

    /// An entry no event holds: the one freed last, or a new one.
    #[inline]
    fn take_free_entry(&mut self) -> u32 {
        if self.free != NIL {
            let index = self.free;
            self.free = self.entry_mut(index).next;
            return index;
        }
        let index = u32::try_from(self.used)
            .ok()
            .filter(|&i| i != NIL)
            .expect("fewer than 2^32 - 1 pending events");
        if self.used == self.slab.len() * CHUNK {
            self.grow_slab();
        }
        self.used += 1;
        index
    }

    /// One more chunk of free entries (kept out of the pushes' way).
    #[cold]
    #[inline(never)]
    fn grow_slab(&mut self) {
        self.slab.push(boxed_array(|| Entry {
            item: None,
            next: NIL,
        }));
    }

    /// The slab's entry `index`.
    #[inline]
    fn entry_mut(&mut self, index: u32) -> &mut Entry<T> {
        let i = index as usize;
        &mut self.slab[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }

    /// Makes payload `index` the head of the list of `at`'s slot, returning
    /// the head it goes before (the entry's `next`, for the caller to set).
    #[inline]
    fn head_of_slot(&mut self, at: u64, index: u32) -> u32 {
        let slot = (at & MASK) as usize;
        let slots = match &mut self.slots {
            Some(slots) => slots,
            None => self.slots.insert(new_slots()),
        };
        let head = std::mem::replace(&mut slots[slot], index);
        if head == NIL {
            self.occupied[slot / 64] |= 1 << (slot % 64);
        }
        head
    }

    /// Puts payload `index` at the head of the list of `at`'s slot.
    #[inline]
    fn put_on_wheel(&mut self, at: u64, index: u32) {
        let head = self.head_of_slot(at, index);
        self.entry_mut(index).next = head;
    }

    /// Takes the list of `base`'s slot off the wheel into `current`, in
    /// push order.
    fn take_current_slot(&mut self) {
        let slot = (self.base & MASK) as usize;
        let mut head = self
            .slots
            .as_mut()
            .map_or(NIL, |slots| std::mem::replace(&mut slots[slot], NIL));
        self.occupied[slot / 64] &= !(1 << (slot % 64));
        // Newest first on the wheel: reversed, the newest is the last.
        let last = head;
        let mut reversed = NIL;
        while head != NIL {
            let entry = self.entry_mut(head);
            let after = std::mem::replace(&mut entry.next, reversed);
            reversed = head;
            head = after;
        }
        self.current = (reversed, last);
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
            let (first, _) = self.current;
            if first != NIL {
                if self.base > limit {
                    return None;
                }
                // The entry goes to the head of the free list.
                let free = self.free;
                let entry = self.entry_mut(first);
                let after = std::mem::replace(&mut entry.next, free);
                let item = entry.item.take().expect("queued once");
                self.free = first;
                self.current.0 = after;
                if after == NIL {
                    self.current.1 = NIL;
                }
                self.len -= 1;
                return Some((self.base, item));
            }
            // The current time is drained: turn to the next time with an
            // event, on the wheel or in the overflow.
            let next = self.next_time()?;
            if next > limit {
                return None;
            }
            self.base = next;
            while let Some(&Reverse((at, _, index))) = self.overflow.peek() {
                if at - self.base >= WINDOW_MS {
                    break;
                }
                self.overflow.pop();
                self.put_on_wheel(at, index);
            }
            self.take_current_slot();
        }
    }

    /// The earliest time after `base` with an event, on the wheel or in
    /// the overflow (once `base`'s own events are drained).
    fn next_time(&self) -> Option<u64> {
        let slot = (self.base & MASK) as usize;
        let on_wheel = self.next_occupied(slot).map(|s| {
            let ahead = (s as u64).wrapping_sub(slot as u64) & MASK;
            self.base + ahead
        });
        let in_overflow = self.overflow.peek().map(|Reverse((at, ..))| *at);
        match (on_wheel, in_overflow) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The time of the earliest event, without taking it.
    pub(crate) fn peek_time(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        if self.current.0 != NIL {
            return Some(self.base);
        }
        self.next_time()
    }

    /// The next occupied slot after `from`, going round the wheel once.
    fn next_occupied(&self, from: usize) -> Option<usize> {
        let start = (from + 1) % WINDOW_MS as usize;
        let first_word = start / 64;
        let masked = self.occupied[first_word] & (!0u64 << (start % 64));
        if masked != 0 {
            return Some(first_word * 64 + masked.trailing_zeros() as usize);
        }
        for step in 1..=WORDS {
            let w = (first_word + step) % WORDS;
            let bits = if w == first_word {
                // Back at the start: only the bits before `start`.
                self.occupied[w] & !(!0u64 << (start % 64))
            } else {
                self.occupied[w]
            };
            if bits != 0 {
                return Some(w * 64 + bits.trailing_zeros() as usize);
            }
        }
        None
    }

    /// Events pending now.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The most events ever pending at once.
    pub(crate) fn peak(&self) -> usize {
        self.used
    }
}

/// The wheel's slots, every one empty, made at the first push (kept out of
/// the pushes' way).
#[cold]
#[inline(never)]
fn new_slots() -> Box<[u32; WINDOW_MS as usize]> {
    boxed_array(|| NIL)
}

/// An array of `N` values made by `value`, on the heap (built there, not
/// on the stack: the wheel's arrays are hundreds of KiB).
fn boxed_array<E, const N: usize>(value: impl FnMut() -> E) -> Box<[E; N]> {
    let items: Box<[E]> = std::iter::repeat_with(value).take(N).collect();
    items
        .try_into()
        .unwrap_or_else(|_| unreachable!("N items were taken"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_engine_event_and_its_link_take_16_bytes() {
        // A fleet keeps about four pending events per shard: a message
        // held in the queue itself made every entry 32 bytes.
        assert_eq!(size_of::<crate::engine::Ev>(), 12);
        assert_eq!(size_of::<Entry<crate::engine::Ev>>(), 16);
        // Never across two cache lines.
        assert_eq!(align_of::<Entry<crate::engine::Ev>>(), 16);
        // The gateway's own timers, for a driver that leaves them to it.
        assert_eq!(size_of::<Entry<crate::gateway::Timer>>(), 16);
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
    fn a_queue_longer_than_a_chunk_keeps_its_order_and_counts_its_peak() {
        let mut q = Queue::default();
        let n = 3 * CHUNK as u64 + 5;
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
        // Entries freed by the pops are used again before the slab grows.
        for i in 0..n {
            q.push(2_000_000 + i, i);
        }
        assert_eq!(q.peak(), n as usize);
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
    }
}
