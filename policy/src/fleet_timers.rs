//! The wake-up times of a fleet's shards: a timing wheel with an overflow
//! heap.
//!
//! A [`Fleet`](crate::Fleet) needs the earliest wake-up of its shards after
//! every input and, when that time comes, every shard due in order of time
//! and then of index. Wake-ups move all the time (every heartbeat moves
//! one), so they are filed lazily: a wake-up that moves earlier files a new
//! entry, one that moves later keeps its old entry, which is moved to the
//! new time only when it is reached. An entry is live while it is at its
//! shard's `filed` time; others are dropped when they are reached.
//!
//! Entries from the wheel's first time (its base) to a window after it sit
//! in one slot per millisecond; a bitmap of occupied slots lets a search
//! skip idle stretches 64 slots at a time. A slot holds only entries at its
//! own time, so an entry there is just its shard's index: a slot with one
//! entry holds that index in place, a slot with more holds them in chunks
//! of [`CHUNK`] indexes (half a cache line each, drawn from a pool shared
//! by all slots, the chunk freed last reused first). Sorting out a slot
//! thus reads its word and, when several shards wake at that millisecond,
//! one chunk for every [`CHUNK`] of them, in place of a dependent miss per
//! entry that following a linked list through a slab costs once the
//! fleet outgrows the cache. Entries earlier than the base (a wake-up filed
//! in the past of the wheel) wait with their times in a short list, sorted
//! out before the wheel; entries a window or more after the base wait in a
//! binary heap and move onto the wheel as it turns. Where a binary heap
//! over all the shards touches a dozen scattered cache lines per wake-up, a
//! slot touches one or two, so a fleet's cost per event does not grow with
//! its size. The order of due shards, time then index, and the earliest
//! wake-up are those of a plain sorted set: only the cost differs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::time::Timestamp;

/// No chunk: the end of a slot's chunks, or of the free list.
const NIL: u32 = u32::MAX;

/// The most slots a wheel has (65.5 s of one-millisecond slots, enough for
/// the longest heartbeat interval); smaller fleets get fewer, at least
/// [`MIN_SLOTS`].
const MAX_SLOTS: usize = 1 << 16;
const MIN_SLOTS: usize = 1 << 8;

/// Shard indexes in one [`Chunk`].
const CHUNK: usize = 6;

/// Some of the entries of a slot that holds more than one: the indexes of
/// their shards, the first `len` of `shards` in use, and the slot's next
/// chunk ([`NIL`] for its last; for a free chunk, the next free one).
///
/// Half a cache line, aligned so that it never straddles two: a slot's
/// entries are pushed onto and popped off its first chunk, which a slot
/// with no more than [`CHUNK`] entries (nearly all) is alone in.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct Chunk {
    len: u32,
    next: u32,
    shards: [u32; CHUNK],
}

/// The bits of 64 slots, side by side so that a push or a pop reads one
/// word pair.
#[derive(Clone, Copy, Debug, Default)]
struct SlotBits {
    /// The slot holds an entry.
    occupied: u64,
    /// The slot's entries are in chunks: its word is its first chunk.
    spilled: u64,
}

/// One shard's wake-up and the time of its live entry, side by side: the
/// two are read together for every entry sorted out, so they share a
/// cache line.
///
/// 16 bytes where two `Option<Timestamp>`s take 32: each time is kept as
/// its milliseconds, [`NEVER`] standing for none. A wake-up at
/// [`Timestamp::MAX`] is never kept here (the timers keep those shards
/// aside, see [`ShardTimers::at_end`]), so no time kept here is [`NEVER`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ShardWake {
    /// The shard's wake-up time.
    wake: u64,
    /// The time of the shard's live entry: at or before its wake-up,
    /// [`NEVER`] when it has none.
    filed: u64,
}

/// No time: a [`ShardWake`]'s `None`.
const NEVER: u64 = u64::MAX;

impl ShardWake {
    /// No wake-up, no entry.
    const NONE: Self = Self {
        wake: NEVER,
        filed: NEVER,
    };

    const fn read(ms: u64) -> Option<Timestamp> {
        if ms == NEVER {
            None
        } else {
            Some(Timestamp::from_millis(ms))
        }
    }

    /// `at` as kept: never [`Timestamp::MAX`], which reads as none.
    const fn keep(at: Option<Timestamp>) -> u64 {
        match at {
            Some(at) => at.as_millis(),
            None => NEVER,
        }
    }

    /// The shard's wake-up time.
    const fn wake(self) -> Option<Timestamp> {
        Self::read(self.wake)
    }

    /// The time of the shard's live entry.
    const fn filed(self) -> Option<Timestamp> {
        Self::read(self.filed)
    }

    /// The shard's live entry is at its wake-up (none without one).
    const fn file_at_wake(&mut self) {
        self.filed = self.wake;
    }
}

/// The wake-up times of shards `0..n`, with the earliest at hand.
#[derive(Clone, Debug)]
pub(crate) struct ShardTimers {
    /// Each shard's wake-up and live entry (none for a shard in
    /// `at_end`).
    shards: Vec<ShardWake>,
    /// The shards whose wake-up is [`Timestamp::MAX`], by index: kept
    /// aside so that no kept time is [`NEVER`]. Empty but for a policy
    /// whose deadline saturated at the end of the clock.
    at_end: Vec<u32>,
    /// The earliest wake-up of any shard not in `at_end`.
    next: Option<Timestamp>,
    /// Each slot's entries, all at the slot's time: the index of the shard
    /// of its only entry, or, for a slot marked `spilled`, its first chunk
    /// in `chunks`.
    slots: Vec<u32>,
    /// Each 64 slots' bits: occupied, spilled.
    bits: Vec<SlotBits>,
    /// `slots.len() - 1` (a power of two less one).
    mask: u64,
    /// The time of the wheel's first slot: live entries earlier than it
    /// are in `early`; those from it and less than a window after it are
    /// in the slot of their time; later ones are in `overflow`.
    base: u64,
    /// The latest time taken ([`ShardTimers::take_due`]): the wheel turns
    /// no further, so that a wake-up filed between it and the next one has
    /// a slot of its own rather than joining the entries in `early` that
    /// every search sorts out.
    clock: u64,
    /// The chunks of slots with more than one entry; those in no slot are
    /// chained from `free`.
    chunks: Vec<Chunk>,
    free: u32,
    /// Entries earlier than the base, with their times: wake-ups filed in
    /// the past of the wheel, which is rare.
    early: Vec<(Timestamp, u32)>,
    /// Entries at or after `base` plus the window.
    overflow: BinaryHeap<Reverse<(Timestamp, u32)>>,
}

impl ShardTimers {
    /// No wake-ups for `shards` shards.
    pub(crate) fn new(shards: usize) -> Self {
        let slots = shards
            .saturating_mul(64)
            .checked_next_power_of_two()
            .unwrap_or(MAX_SLOTS)
            .clamp(MIN_SLOTS, MAX_SLOTS);
        Self {
            shards: vec![ShardWake::NONE; shards],
            at_end: Vec::new(),
            next: None,
            slots: vec![NIL; slots],
            bits: vec![SlotBits::default(); slots / 64],
            mask: slots as u64 - 1,
            base: 0,
            clock: 0,
            chunks: Vec::new(),
            free: NIL,
            early: Vec::new(),
            overflow: BinaryHeap::new(),
        }
    }

    /// The earliest wake-up of any shard.
    pub(crate) const fn next(&self) -> Option<Timestamp> {
        match self.next {
            Some(next) => Some(next),
            None if self.at_end.is_empty() => None,
            None => Some(Timestamp::MAX),
        }
    }

    /// Live and dead entries filed, for tests of the bound.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        // A free chunk holds none.
        let alone: u32 = self
            .bits
            .iter()
            .map(|bits| (bits.occupied & !bits.spilled).count_ones())
            .sum();
        let chunked: u32 = self.chunks.iter().map(|chunk| chunk.len).sum();
        alone as usize + chunked as usize + self.early.len() + self.overflow.len()
    }

    /// Sets shard `index`'s wake-up time.
    pub(crate) fn set(&mut self, index: usize, wake: Option<Timestamp>) {
        // A shard at the end of the clock is kept aside, with no wake-up
        // on the wheel.
        if !self.at_end.is_empty() || wake == Some(Timestamp::MAX) {
            let shard = u32::try_from(index).unwrap_or(u32::MAX);
            let found = self.at_end.binary_search(&shard);
            match (found, wake == Some(Timestamp::MAX)) {
                (Ok(_), true) => return,
                (Ok(at), false) => {
                    self.at_end.remove(at);
                }
                (Err(at), true) => {
                    self.at_end.insert(at, shard);
                    return self.set_on_wheel(index, None);
                }
                (Err(_), false) => {}
            }
        }
        self.set_on_wheel(index, wake);
    }

    /// Sets shard `index`'s wake-up time on the wheel (`None` or earlier
    /// than [`Timestamp::MAX`]).
    #[inline]
    fn set_on_wheel(&mut self, index: usize, wake: Option<Timestamp>) {
        // Compared as kept: none ([`NEVER`]) is above every time kept.
        let kept = ShardWake::keep(wake);
        let shard = &mut self.shards[index];
        if shard.wake == kept {
            return;
        }
        let old = ShardWake::read(shard.wake);
        shard.wake = kept;
        // Earlier than the shard's entry (or it has none): a new one.
        // Later: the entry stays, and is moved when it is reached.
        if kept != NEVER && kept < shard.filed {
            shard.filed = kept;
            self.insert(Timestamp::from_millis(kept), index as u32);
        }
        match (wake, self.next) {
            (Some(new), Some(next)) if new < next => self.next = wake,
            (Some(_), None) => self.next = wake,
            _ if old == self.next => self.next = self.find_next(),
            _ => {}
        }
    }

    /// Appends to `due` every shard whose wake-up is at or before `now`, by
    /// time and then index, and clears their wake-ups.
    pub(crate) fn take_due(&mut self, now: Timestamp, due: &mut Vec<usize>) {
        self.clock = self.clock.max(now.as_millis());
        self.take_due_on_wheel(now, due);
        if now == Timestamp::MAX {
            // After every earlier time, by index.
            due.extend(self.at_end.drain(..).map(|shard| shard as usize));
        }
    }

    /// [`ShardTimers::take_due`] for the shards on the wheel.
    fn take_due_on_wheel(&mut self, now: Timestamp, due: &mut Vec<usize>) {
        while let Some(at) = self.next
            && at <= now
        {
            let start = due.len();
            let ms = at.as_millis();
            if ms < self.base {
                self.take_early(at, due);
            } else if ms < self.base.saturating_add(self.window()) {
                // Every entry of the slot is at its time.
                let slot = self.slot(ms);
                while self.is_occupied(slot) {
                    let shard = self.top(slot);
                    self.pop(slot);
                    self.take_entry(ms, shard, due);
                }
            } else {
                while let Some(&Reverse((t, shard))) = self.overflow.peek()
                    && t == at
                {
                    self.overflow.pop();
                    self.take_entry(ms, shard, due);
                }
            }
            due[start..].sort_unstable();
            self.next = self.find_next();
        }
    }

    /// Takes an entry of shard `shard` at `at`, let go of: the shard is
    /// due if the entry is live and at its wake-up, filed again at its
    /// wake-up if that moved later; a dead entry is dropped.
    #[inline]
    fn take_entry(&mut self, at: u64, shard: u32, due: &mut Vec<usize>) {
        let index = shard as usize;
        let wake = self.shards[index];
        if wake.filed != at {
            return;
        }
        if wake.wake == at {
            self.shards[index] = ShardWake::NONE;
            due.push(index);
        } else {
            // Moved later: filed again at its wake-up.
            self.refile_at_wake(shard);
        }
    }

    /// [`ShardTimers::take_due_on_wheel`] for the entries earlier than the
    /// base at `at`.
    #[cold]
    #[inline(never)]
    fn take_early(&mut self, at: Timestamp, due: &mut Vec<usize>) {
        let mut taken = Vec::new();
        self.early.retain(|&(t, shard)| {
            if t == at {
                taken.push(shard);
            }
            t != at
        });
        for shard in taken {
            self.take_entry(at.as_millis(), shard, due);
        }
    }

    /// The wheel's length in milliseconds.
    const fn window(&self) -> u64 {
        self.mask + 1
    }

    const fn slot(&self, at: u64) -> usize {
        (at & self.mask) as usize
    }

    /// Files an entry for shard `shard` at `at`.
    fn insert(&mut self, at: Timestamp, shard: u32) {
        let ms = at.as_millis();
        if ms < self.base {
            self.early.push((at, shard));
        } else if ms < self.base.saturating_add(self.window()) {
            self.push(self.slot(ms), shard);
        } else {
            self.overflow.push(Reverse((at, shard)));
            if self.overflow.len() > 2 * self.shards.len() + 16 {
                self.rebuild_overflow();
            }
        }
    }

    /// Files shard `shard`'s live entry again at its wake-up, its old
    /// entry (at an earlier time) having been let go: a shard whose
    /// wake-up moved later, reached at its old time.
    #[inline]
    fn refile_at_wake(&mut self, shard: u32) {
        let index = shard as usize;
        self.shards[index].file_at_wake();
        if let Some(wake) = self.shards[index].wake() {
            self.insert(wake, shard);
        }
    }

    /// Whether slot `slot` holds an entry.
    #[inline]
    fn is_occupied(&self, slot: usize) -> bool {
        self.bits[slot / 64].occupied >> (slot % 64) & 1 == 1
    }

    /// Whether slot `slot`'s entries are in chunks.
    #[inline]
    fn is_spilled(&self, slot: usize) -> bool {
        self.bits[slot / 64].spilled >> (slot % 64) & 1 == 1
    }

    /// Adds shard `shard` to slot `slot`'s entries.
    fn push(&mut self, slot: usize, shard: u32) {
        let bit = 1 << (slot % 64);
        let bits = self.bits[slot / 64];
        if bits.occupied & bit == 0 {
            self.slots[slot] = shard;
            self.bits[slot / 64].occupied |= bit;
            return;
        }
        if bits.spilled & bit == 0 {
            // A second entry: both move to a chunk.
            let only = self.slots[slot];
            let chunk = self.new_chunk(NIL);
            let first = &mut self.chunks[chunk as usize];
            first.shards[0] = only;
            first.shards[1] = shard;
            first.len = 2;
            self.slots[slot] = chunk;
            self.bits[slot / 64].spilled |= bit;
            return;
        }
        let head = self.slots[slot];
        let first = &mut self.chunks[head as usize];
        let len = first.len as usize;
        if len < CHUNK {
            first.shards[len] = shard;
            first.len += 1;
        } else {
            let chunk = self.new_chunk(head);
            let first = &mut self.chunks[chunk as usize];
            first.shards[0] = shard;
            first.len = 1;
            self.slots[slot] = chunk;
        }
    }

    /// The shard of the entry of slot `slot` (occupied) that
    /// [`ShardTimers::pop`] lets go of next.
    #[inline]
    fn top(&self, slot: usize) -> u32 {
        let word = self.slots[slot];
        if self.is_spilled(slot) {
            let first = &self.chunks[word as usize];
            first.shards[(first.len as usize).saturating_sub(1)]
        } else {
            word
        }
    }

    /// Lets go of the entry [`ShardTimers::top`] names.
    fn pop(&mut self, slot: usize) {
        let bit = 1 << (slot % 64);
        if self.bits[slot / 64].spilled & bit == 0 {
            self.bits[slot / 64].occupied &= !bit;
            return;
        }
        let head = self.slots[slot];
        let first = &mut self.chunks[head as usize];
        first.len = first.len.saturating_sub(1);
        if first.len == 0 {
            let next = first.next;
            self.release(head);
            self.slots[slot] = next;
            if next == NIL {
                let bits = &mut self.bits[slot / 64];
                bits.occupied &= !bit;
                bits.spilled &= !bit;
            }
        }
    }

    /// An empty chunk followed by `next`: the one freed last, or a new one.
    fn new_chunk(&mut self, next: u32) -> u32 {
        let chunk = Chunk {
            len: 0,
            next,
            shards: [NIL; CHUNK],
        };
        if self.free == NIL {
            let index = u32::try_from(self.chunks.len()).unwrap_or(NIL);
            self.chunks.push(chunk);
            index
        } else {
            let index = self.free;
            self.free = self.chunks[index as usize].next;
            self.chunks[index as usize] = chunk;
            index
        }
    }

    /// Puts chunk `chunk`, emptied, on the free list.
    fn release(&mut self, chunk: u32) {
        self.chunks[chunk as usize].next = self.free;
        self.free = chunk;
    }

    /// Keeps only the overflow's live entries, so dead ones never pile up.
    fn rebuild_overflow(&mut self) {
        let limit = self.base.saturating_add(self.window());
        let mut entries = std::mem::take(&mut self.overflow).into_vec();
        entries.clear();
        entries.extend(self.shards.iter().enumerate().filter_map(|(index, shard)| {
            shard
                .filed()
                .filter(|at| at.as_millis() >= limit)
                .map(|at| Reverse((at, index as u32)))
        }));
        self.overflow = BinaryHeap::from(entries);
    }

    /// The first occupied slot's time in `from..=end`.
    fn next_occupied(&self, from: u64, end: u64) -> Option<u64> {
        let mut time = from;
        while time <= end {
            let slot = self.slot(time);
            let bit = slot % 64;
            let word = self.bits[slot / 64].occupied >> bit;
            if word != 0 {
                let found = time.saturating_add(u64::from(word.trailing_zeros()));
                return (found <= end).then_some(found);
            }
            time = time.checked_add(64 - bit as u64)?;
        }
        None
    }

    /// Moves the wheel's first slot to `base` (no further than the clock),
    /// and the overflow entries that come within its window onto it.
    fn advance(&mut self, base: u64) {
        let base = base.min(self.clock);
        if base <= self.base {
            return;
        }
        self.base = base;
        let limit = base.saturating_add(self.window());
        while let Some(&Reverse((at, shard))) = self.overflow.peek()
            && at.as_millis() < limit
        {
            self.overflow.pop();
            if self.shards[shard as usize].filed() == Some(at) {
                self.insert(at, shard);
            }
        }
    }

    /// Sorts out slot `time`'s entries, a time at or after the base, until
    /// the next to be let go of is at its shard's wake-up: returns whether
    /// one is (the slot is emptied otherwise).
    ///
    /// Every entry of a slot is at the slot's time, so the first entry
    /// found at its shard's wake-up makes `time` the earliest wake-up; the
    /// entries behind it stay as they are, to be sorted out when they are
    /// due.
    fn sort_out_front(&mut self, time: u64) -> bool {
        let slot = self.slot(time);
        while self.is_occupied(slot) {
            let shard = self.top(slot);
            let wake = self.shards[shard as usize];
            if wake.filed == time && wake.wake == time {
                return true;
            }
            self.pop(slot);
            if wake.filed == time {
                // Moved later (to another slot, or the overflow): filed
                // again at its wake-up.
                self.refile_at_wake(shard);
            }
        }
        false
    }

    /// The earliest wake-up of any shard, found by sorting out the earliest
    /// entries: dead ones are dropped, live ones whose shard moved later are
    /// moved, until the earliest entry is at its shard's wake-up.
    fn find_next(&mut self) -> Option<Timestamp> {
        if !self.early.is_empty()
            && let Some(earliest) = self.sort_out_early()
        {
            return Some(earliest);
        }
        // Where the search resumes: slots before it are empty.
        let mut from = self.base;
        loop {
            let end = self.base.saturating_add(self.mask);
            let sorted = match self.next_occupied(from.max(self.base), end) {
                Some(time) => {
                    // Every slot before this one is empty: the wheel turns
                    // to it (or to the clock) either way.
                    let found = self.sort_out_front(time);
                    self.advance(time);
                    if found {
                        return Some(Timestamp::from_millis(time));
                    }
                    from = time.saturating_add(1);
                    continue;
                }
                None => self.sort_out_overflow(),
            };
            match sorted {
                Sorted::Earliest(at) => return Some(at),
                Sorted::Again => from = self.base,
                Sorted::Nothing => return None,
            }
        }
    }

    /// Sorts out every entry earlier than the base: returns the earliest
    /// at its shard's wake-up, if any (they all come before the wheel's).
    /// Kept apart from [`ShardTimers::find_next`]'s usual path.
    #[cold]
    #[inline(never)]
    fn sort_out_early(&mut self) -> Option<Timestamp> {
        loop {
            let mut moved = Vec::new();
            let mut earliest: Option<Timestamp> = None;
            let shards = &mut self.shards;
            self.early.retain(|&(at, shard)| {
                let wake = &mut shards[shard as usize];
                let ms = at.as_millis();
                if wake.filed != ms {
                    false
                } else if wake.wake == ms {
                    earliest = Some(earliest.map_or(at, |e| e.min(at)));
                    true
                } else {
                    // Moved later: filed again at its wake-up (if any).
                    wake.file_at_wake();
                    moved.extend(wake.wake().map(|wake| (wake, shard)));
                    false
                }
            });
            if moved.is_empty() {
                return earliest;
            }
            // The wake-ups moved to may be earlier than the base still:
            // sorted out again.
            for (wake, shard) in moved {
                self.insert(wake, shard);
            }
        }
    }

    /// Sorts out the overflow's earliest entry, the wheel being empty.
    #[cold]
    #[inline(never)]
    fn sort_out_overflow(&mut self) -> Sorted {
        let Some(&Reverse((at, shard))) = self.overflow.peek() else {
            return Sorted::Nothing;
        };
        let index = shard as usize;
        if self.shards[index].filed() != Some(at) {
            self.overflow.pop();
        } else if self.shards[index].wake() == Some(at) {
            // The wheel is empty: it turns to this entry, which moves
            // onto it with those within a window after it, so the
            // next searches find them on the wheel rather than
            // scanning an empty wheel again each time.
            self.advance(at.as_millis());
            // At the end of the clock, where the window saturates, it
            // stays in the overflow.
            if self.overflow.peek() == Some(&Reverse((at, shard))) {
                return Sorted::Earliest(at);
            }
        } else {
            self.overflow.pop();
            self.refile_at_wake(shard);
        }
        Sorted::Again
    }

    /// The shards of slot `slot`'s entries, for tests.
    #[cfg(test)]
    fn slot_shards(&self, slot: usize) -> Vec<u32> {
        if !self.is_occupied(slot) {
            return Vec::new();
        }
        if !self.is_spilled(slot) {
            return vec![self.slots[slot]];
        }
        let mut shards = Vec::new();
        let mut chunk = self.slots[slot];
        while chunk != NIL {
            let Chunk {
                len,
                next,
                shards: held,
            } = self.chunks[chunk as usize];
            shards.extend_from_slice(&held[..len as usize]);
            chunk = next;
        }
        shards
    }
}

/// What sorting out the overflow's earliest entry found.
enum Sorted {
    /// The earliest wake-up of any shard.
    Earliest(Timestamp),
    /// Entries were dropped or moved: the search goes on.
    Again,
    /// No wake-up at all.
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same operations on the wheel and on a plain list of wake-ups:
    /// the earliest wake-up and the due shards, in order, always agree.
    fn agrees_with_a_plain_list(shards: usize, spread: u64, seed: u64) {
        agrees_with_a_plain_list_ending(shards, spread, seed, false);
    }

    /// As [`agrees_with_a_plain_list`]; `at_end`: some wake-ups are at the
    /// end of the clock, and the clock is run to it at the end.
    fn agrees_with_a_plain_list_ending(shards: usize, spread: u64, seed: u64, at_end: bool) {
        let mut timers = ShardTimers::new(shards);
        let mut plain: Vec<Option<Timestamp>> = vec![None; shards];
        let mut state = seed;
        let mut draw = move |bound: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % bound.max(1)
        };
        let mut now = 0_u64;
        for _ in 0..20_000 {
            let last;
            match draw(10) {
                0..=6 => {
                    let index = draw(shards as u64) as usize;
                    // Mostly ahead of now, sometimes behind it, sometimes none.
                    let wake = match draw(20) {
                        0 => None,
                        1 => Some(Timestamp::from_millis(now.saturating_sub(draw(50)))),
                        2 | 3 if at_end => Some(Timestamp::MAX),
                        _ => Some(Timestamp::from_millis(now + draw(spread))),
                    };
                    let before = format!(
                        "set {index} {wake:?} base {} next {:?} old {:?} filed {:?}",
                        timers.base,
                        timers.next,
                        timers.shards[index].wake(),
                        timers.shards[index].filed()
                    );
                    timers.set(index, wake);
                    if shards <= 40 {
                        check(&timers, &before);
                    }
                    last = before;
                    plain[index] = wake;
                }
                _ => {
                    now += draw(spread / 8 + 1);
                    let mut due = Vec::new();
                    timers.take_due(Timestamp::from_millis(now), &mut due);
                    if shards <= 40 {
                        check(&timers, &format!("take_due {now}"));
                    }
                    last = format!("take_due {now}");
                    let mut expected: Vec<(Timestamp, usize)> = plain
                        .iter()
                        .enumerate()
                        .filter_map(|(index, wake)| wake.map(|at| (at, index)))
                        .filter(|&(at, _)| at.as_millis() <= now)
                        .collect();
                    expected.sort_unstable();
                    for &(_, index) in &expected {
                        plain[index] = None;
                    }
                    let expected: Vec<usize> = expected.into_iter().map(|(_, i)| i).collect();
                    assert_eq!(due, expected, "at {now}");
                }
            }
            assert_eq!(
                timers.next(),
                plain.iter().flatten().min().copied(),
                "{last} {:?} {:?} base {} now {now}",
                plain,
                timers.shards,
                timers.base,
            );
            assert!(timers.entries() <= 4 * shards + 64, "{}", timers.entries());
        }
        let mut due = Vec::new();
        timers.take_due(Timestamp::MAX, &mut due);
        let mut expected: Vec<(Timestamp, usize)> = plain
            .iter()
            .enumerate()
            .filter_map(|(index, wake)| wake.map(|at| (at, index)))
            .collect();
        expected.sort_unstable();
        let expected: Vec<usize> = expected.into_iter().map(|(_, i)| i).collect();
        assert_eq!(due, expected, "at the end of the clock");
        assert_eq!(timers.next(), None);
    }

    /// Every live entry is where a search looks for it, the bitmaps mark
    /// exactly the slots that hold entries and those held in chunks, and
    /// every chunk is in one slot or on the free list.
    fn check(t: &ShardTimers, op: &str) {
        let mut in_slots = 0;
        for slot in 0..t.slots.len() {
            if !t.is_occupied(slot) {
                assert!(!t.is_spilled(slot), "after {op}: slot {slot}");
                continue;
            }
            let held = t.slot_shards(slot);
            assert_eq!(t.is_occupied(slot), !held.is_empty(), "after {op}: {slot}");
            if !t.is_spilled(slot) {
                assert!(held.len() <= 1, "after {op}: slot {slot}");
                continue;
            }
            assert!(
                t.is_occupied(slot),
                "after {op}: slot {slot} spilled, empty"
            );
            let mut chunk = t.slots[slot];
            while chunk != NIL {
                let Chunk { len, next, .. } = t.chunks[chunk as usize];
                assert!((1..=CHUNK as u32).contains(&len), "after {op}: {len}");
                in_slots += 1;
                chunk = next;
            }
        }
        let mut free = 0;
        let mut chunk = t.free;
        while chunk != NIL {
            free += 1;
            chunk = t.chunks[chunk as usize].next;
        }
        assert_eq!(in_slots + free, t.chunks.len(), "after {op}: chunks lost");
        let found = t.next_occupied(t.base, t.base + t.mask);
        let first = (0..t.slots.len())
            .map(|k| t.base + k as u64)
            .find(|&x| t.is_occupied(t.slot(x)));
        assert_eq!(found, first, "after {op}: next_occupied");
        assert!(
            t.early.iter().all(|&(at, _)| at.as_millis() < t.base),
            "after {op}: an early entry at or after the base {}",
            t.base
        );
        for (i, f) in t.shards.iter().map(|shard| shard.filed()).enumerate() {
            let Some(f) = f else { continue };
            let ms = f.as_millis();
            let found = if ms < t.base {
                t.early.contains(&(f, i as u32))
            } else if ms < t.base.saturating_add(t.window()) {
                t.slot_shards(t.slot(ms)).contains(&(i as u32))
            } else {
                t.overflow.iter().any(|r| r.0 == (f, i as u32))
            };
            assert!(
                found,
                "after {op}: shard {i} filed {f:?} wake {:?} base {} lost",
                t.shards[i].wake(),
                t.base
            );
            assert!(
                t.shards[i].wake().is_none_or(|w| w >= f),
                "after {op}: shard {i} filed {f:?} wake {:?}",
                t.shards[i].wake()
            );
        }
    }

    #[test]
    fn wake_ups_come_out_as_from_a_sorted_list() {
        // Within the wheel's window, beyond it (the overflow), and both.
        agrees_with_a_plain_list(5, 100, 1);
        agrees_with_a_plain_list(40, 1_000, 2);
        agrees_with_a_plain_list(40, 200_000, 3);
        agrees_with_a_plain_list(300, 60_000, 4);
        agrees_with_a_plain_list(2_000, 100_000, 5);
    }

    #[test]
    fn agrees_with_a_plain_list_over_many_shapes() {
        for seed in 0..40 {
            for shards in [1, 2, 3, 7, 64, 300] {
                for spread in [300, 5_000, 70_000, 3_000_000] {
                    agrees_with_a_plain_list(shards, spread, seed * 1_000 + shards as u64);
                }
            }
        }
    }

    #[test]
    fn wake_ups_at_the_end_of_the_clock_come_out_as_from_a_sorted_list() {
        for seed in 0..20 {
            for shards in [1, 3, 40, 300] {
                for spread in [300, 70_000, 3_000_000] {
                    agrees_with_a_plain_list_ending(shards, spread, seed, true);
                }
            }
        }
    }

    /// The wheel never turns past the latest time taken, so that a
    /// wake-up filed after that time gets a slot of its own, and only
    /// entries earlier than the base wait in the early list.
    fn the_wheel_stays_behind_the_clock(t: &ShardTimers, op: &str) {
        assert!(
            t.base <= t.clock,
            "after {op}: base {} clock {}",
            t.base,
            t.clock
        );
        for &(at, _) in &t.early {
            assert!(at.as_millis() < t.base, "after {op}: {at:?} early");
        }
        // Live entries at or after the base are in the slot of their time
        // (see `check`), and a dead one is never read as live, whatever
        // the time it was filed at: nothing else to see in a slot.
    }

    #[test]
    fn the_wheel_never_turns_past_the_clock() {
        for seed in 0..30 {
            for (shards, spread) in [(3, 300), (40, 1_000), (40, 5_000), (300, 70_000)] {
                let mut timers = ShardTimers::new(shards);
                let mut state: u64 = seed;
                let mut draw = |bound: u64| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    (state >> 33) % bound.max(1)
                };
                let mut now = 0_u64;
                let mut due = Vec::new();
                for step in 0..3_000 {
                    let op = if draw(10) < 7 {
                        let index = draw(shards as u64) as usize;
                        let wake = match draw(20) {
                            0 => None,
                            1 => Some(Timestamp::from_millis(now.saturating_sub(draw(50)))),
                            _ => Some(Timestamp::from_millis(now + draw(spread))),
                        };
                        timers.set(index, wake);
                        "set"
                    } else {
                        now += draw(spread / 8 + 1);
                        timers.take_due(Timestamp::from_millis(now), &mut due);
                        "take_due"
                    };
                    the_wheel_stays_behind_the_clock(
                        &timers,
                        &format!("{op} (step {step}, seed {seed})"),
                    );
                }
            }
        }
    }

    #[test]
    fn a_shards_wake_up_takes_two_words() {
        assert_eq!(size_of::<ShardWake>(), 16);
    }

    #[test]
    fn times_at_the_end_of_the_clock_neither_overflow_nor_get_lost() {
        let mut timers = ShardTimers::new(3);
        timers.set(0, Some(Timestamp::MAX));
        timers.set(1, Some(Timestamp::CEILING));
        timers.set(2, Some(Timestamp::from_millis(u64::MAX - 1)));
        assert_eq!(timers.next(), Some(Timestamp::CEILING));
        let mut due = Vec::new();
        timers.take_due(Timestamp::MAX, &mut due);
        assert_eq!(due, [1, 2, 0]);
        assert_eq!(timers.next(), None);
    }

    /// Random operations against a sorted set, shrunk to the smallest that
    /// disagrees: wake-ups crowded onto a few milliseconds (slots of many
    /// chunks), in the past of the wheel (the early list), a window or
    /// more ahead (the overflow) and at the end of the clock.
    mod against_a_sorted_set {
        use std::collections::BTreeSet;

        use proptest::prelude::*;

        use super::*;

        /// One input: a shard's wake-up set (`None`: cleared), or the
        /// clock moved on by some milliseconds and the due shards taken.
        #[derive(Clone, Debug)]
        enum Op {
            Set(usize, Option<Wake>),
            Take(u64),
        }

        /// A wake-up, from the latest time taken.
        #[derive(Clone, Copy, Debug)]
        enum Wake {
            /// One of a handful of milliseconds ahead: many shards share
            /// each.
            Crowded(u64),
            /// Anywhere within two windows ahead.
            Ahead(u64),
            /// Some milliseconds behind.
            Behind(u64),
            /// The end of the clock.
            End,
        }

        fn op(shards: usize) -> impl Strategy<Value = Op> {
            let wake = prop_oneof![
                4 => (0..4u64).prop_map(|k| Wake::Crowded(k * 3)),
                3 => (0..2 * MAX_SLOTS as u64).prop_map(Wake::Ahead),
                1 => (1..200u64).prop_map(Wake::Behind),
                1 => Just(Wake::End),
            ];
            prop_oneof![
                6 => (0..shards, proptest::option::weighted(0.9, wake))
                    .prop_map(|(index, wake)| Op::Set(index, wake)),
                1 => prop_oneof![0..4u64, 0..100_000u64].prop_map(Op::Take),
            ]
        }

        fn ops() -> impl Strategy<Value = (usize, Vec<Op>)> {
            (1..60usize).prop_flat_map(|shards| {
                (Just(shards), proptest::collection::vec(op(shards), 1..300))
            })
        }

        proptest! {
            #[test]
            fn the_wheel_agrees_with_a_sorted_set((shards, ops) in ops()) {
                let mut timers = ShardTimers::new(shards);
                let mut wakes: Vec<Option<Timestamp>> = vec![None; shards];
                let mut set: BTreeSet<(Timestamp, usize)> = BTreeSet::new();
                let mut now = 0_u64;
                for (step, op) in ops.iter().enumerate() {
                    match *op {
                        Op::Set(index, wake) => {
                            let wake = wake.map(|wake| match wake {
                                Wake::Crowded(ms) | Wake::Ahead(ms) => {
                                    Timestamp::from_millis(now + ms)
                                }
                                Wake::Behind(ms) => {
                                    Timestamp::from_millis(now.saturating_sub(ms))
                                }
                                Wake::End => Timestamp::MAX,
                            });
                            timers.set(index, wake);
                            if let Some(old) = wakes[index] {
                                set.remove(&(old, index));
                            }
                            if let Some(new) = wake {
                                set.insert((new, index));
                            }
                            wakes[index] = wake;
                        }
                        Op::Take(ms) => {
                            now += ms;
                            let at = Timestamp::from_millis(now);
                            let mut due = Vec::new();
                            timers.take_due(at, &mut due);
                            let expected: Vec<usize> = set
                                .iter()
                                .take_while(|&&(wake, _)| wake <= at)
                                .map(|&(_, index)| index)
                                .collect();
                            for &index in &expected {
                                set.remove(&(wakes[index].unwrap_or(at), index));
                                wakes[index] = None;
                            }
                            prop_assert_eq!(due, expected, "step {}", step);
                        }
                    }
                    check(&timers, &format!("step {step}: {op:?}"));
                    the_wheel_stays_behind_the_clock(&timers, &format!("{step}"));
                    prop_assert_eq!(timers.next(), set.first().map(|&(at, _)| at), "step {}", step);
                    prop_assert!(timers.entries() <= 4 * shards + 64);
                }
                let mut due = Vec::new();
                timers.take_due(Timestamp::MAX, &mut due);
                let expected: Vec<usize> = set.iter().map(|&(_, index)| index).collect();
                prop_assert_eq!(due, expected);
                prop_assert_eq!(timers.next(), None);
            }
        }
    }
}
