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
//! Entries within the wheel's window of the earliest time sit in one slot
//! per millisecond, linked through a slab; a bitmap of occupied slots lets
//! a search skip idle stretches 64 slots at a time. Entries further out
//! wait in a binary heap and move onto the wheel as it turns. Where a
//! binary heap over all the shards touches a dozen scattered cache lines
//! per wake-up, a slot touches one or two, so a fleet's cost per event does
//! not grow with its size. The order of due shards, time then index, and
//! the earliest wake-up are those of a plain sorted set: only the cost
//! differs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::time::Timestamp;

/// No entry: the end of a slot's list, or of the free list.
const NIL: u32 = u32::MAX;

/// The most slots a wheel has (65.5 s of one-millisecond slots, enough for
/// the longest heartbeat interval); smaller fleets get fewer, at least
/// [`MIN_SLOTS`].
const MAX_SLOTS: usize = 1 << 16;
const MIN_SLOTS: usize = 1 << 8;

/// A filed wake-up: shard `shard` at `at`, and the next entry of its slot.
#[derive(Clone, Copy, Debug)]
struct Entry {
    at: Timestamp,
    shard: u32,
    next: u32,
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

    /// Sets the shard's wake-up time (not [`Timestamp::MAX`]).
    const fn set_wake(&mut self, wake: Option<Timestamp>) {
        self.wake = Self::keep(wake);
    }

    /// The shard's live entry is at its wake-up (none without one).
    const fn file_at_wake(&mut self) {
        self.filed = self.wake;
    }

    /// Sets the time of the shard's live entry (not [`Timestamp::MAX`]).
    const fn set_filed(&mut self, filed: Option<Timestamp>) {
        self.filed = Self::keep(filed);
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
    /// Each slot's list, as its first entry in `slab`.
    slots: Vec<u32>,
    /// One bit per slot: its list is not empty.
    occupied: Vec<u64>,
    /// `slots.len() - 1` (a power of two less one).
    mask: u64,
    /// The time of the wheel's first slot: a live entry earlier than it is
    /// in its slot; one from it and less than a window after it is in the
    /// slot of its time; later ones are in `overflow`.
    base: u64,
    /// The latest time taken ([`ShardTimers::take_due`]): the wheel turns
    /// no further, so that a wake-up filed between it and the next one has
    /// a slot of its own rather than joining a list in the base's slot that
    /// every search walks.
    clock: u64,
    /// Entries; those not in any list are chained from `free`.
    slab: Vec<Entry>,
    free: u32,
    /// Entries at or after `base` plus the window.
    overflow: BinaryHeap<Reverse<(Timestamp, u32)>>,
    /// Scratch for one slot's entries while it is sorted out.
    scratch: Vec<(Timestamp, u32)>,
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
            occupied: vec![0; slots / 64],
            mask: slots as u64 - 1,
            base: 0,
            clock: 0,
            slab: Vec::new(),
            free: NIL,
            overflow: BinaryHeap::new(),
            scratch: Vec::new(),
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
        let mut free = 0;
        let mut at = self.free;
        while at != NIL {
            free += 1;
            at = self.slab[at as usize].next;
        }
        self.slab.len() - free + self.overflow.len()
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
            if at.as_millis() < self.base.saturating_add(self.window()) {
                let slot = self.slot(at.as_millis().max(self.base));
                let mut entry = self.take_list(slot);
                while entry != NIL {
                    let Entry { at: t, shard, next } = self.slab[entry as usize];
                    let index = shard as usize;
                    if self.shards[index].filed() != Some(t) {
                        self.release(entry);
                    } else if t != at {
                        self.link(slot, entry);
                    } else if self.shards[index].wake() == Some(t) {
                        self.shards[index].set_filed(None);
                        self.shards[index].set_wake(None);
                        due.push(index);
                        self.release(entry);
                    } else {
                        // Moved later: filed again at its wake-up, rather
                        // than left in this slot for the search to move.
                        self.release(entry);
                        self.refile_at_wake(shard);
                    }
                    entry = next;
                }
            } else {
                while let Some(&Reverse((t, shard))) = self.overflow.peek()
                    && t == at
                {
                    self.overflow.pop();
                    let index = shard as usize;
                    if self.shards[index].filed() != Some(t) {
                        continue;
                    }
                    if self.shards[index].wake() == Some(t) {
                        self.shards[index].set_filed(None);
                        self.shards[index].set_wake(None);
                        due.push(index);
                    } else {
                        // Moved later: filed again at its wake-up.
                        self.refile_at_wake(shard);
                    }
                }
            }
            due[start..].sort_unstable();
            self.next = self.find_next();
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
        if ms >= self.base.saturating_add(self.window()) {
            self.overflow.push(Reverse((at, shard)));
            if self.overflow.len() > 2 * self.shards.len() + 16 {
                self.rebuild_overflow();
            }
            return;
        }
        let entry = Entry {
            at,
            shard,
            next: NIL,
        };
        let index = if self.free == NIL {
            let index = u32::try_from(self.slab.len()).unwrap_or(NIL);
            self.slab.push(entry);
            index
        } else {
            let index = self.free;
            self.free = self.slab[index as usize].next;
            self.slab[index as usize] = entry;
            index
        };
        let slot = self.slot(ms.max(self.base));
        self.link(slot, index);
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

    /// Puts entry `entry` at the front of slot `slot`'s list.
    fn link(&mut self, slot: usize, entry: u32) {
        self.slab[entry as usize].next = self.slots[slot];
        self.slots[slot] = entry;
        self.occupied[slot / 64] |= 1 << (slot % 64);
    }

    /// Empties slot `slot`, returning its list.
    fn take_list(&mut self, slot: usize) -> u32 {
        self.occupied[slot / 64] &= !(1 << (slot % 64));
        std::mem::replace(&mut self.slots[slot], NIL)
    }

    fn release(&mut self, entry: u32) {
        self.slab[entry as usize].next = self.free;
        self.free = entry;
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
            let word = self.occupied[slot / 64] >> bit;
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

    /// Sorts out the front of the list of slot `time`, a time after the
    /// base, until its first entry is at its shard's wake-up: returns
    /// whether one is (the slot is emptied otherwise).
    ///
    /// Every entry of a slot after the base's is at the slot's time (only
    /// the base's slot holds earlier ones), so the first entry found at its
    /// shard's wake-up makes `time` the earliest wake-up; the entries
    /// behind it stay as they are, to be sorted out when they are due.
    fn sort_out_front(&mut self, time: u64) -> bool {
        let slot = self.slot(time);
        loop {
            let entry = self.slots[slot];
            if entry == NIL {
                self.occupied[slot / 64] &= !(1 << (slot % 64));
                return false;
            }
            let Entry { at, shard, next } = self.slab[entry as usize];
            debug_assert_eq!(at.as_millis(), time, "an entry out of its slot");
            let index = shard as usize;
            let wake = self.shards[index];
            if wake.filed == time && wake.wake == time {
                return true;
            }
            self.slots[slot] = next;
            self.release(entry);
            if wake.filed == time {
                // Moved later (to another slot, or the overflow): filed
                // again at its wake-up.
                self.refile_at_wake(shard);
            }
        }
    }

    /// The earliest wake-up of any shard, found by sorting out the earliest
    /// entries: dead ones are dropped, live ones whose shard moved later are
    /// moved, until the earliest entry is at its shard's wake-up.
    fn find_next(&mut self) -> Option<Timestamp> {
        // Where the search resumes: slots before it are empty.
        let mut from = self.base;
        loop {
            let end = self.base.saturating_add(self.mask);
            let sorted = match self.next_occupied(from.max(self.base), end) {
                Some(time) if time > self.base => {
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
                Some(time) => self.sort_out_base_slot(time),
                None => self.sort_out_overflow(),
            };
            match sorted {
                Sorted::Earliest(at) => return Some(at),
                Sorted::Again => from = self.base,
                Sorted::Nothing => return None,
            }
        }
    }

    /// Sorts out the whole list of the base's slot, `time`, which may hold
    /// entries earlier than the base. Kept apart from
    /// [`ShardTimers::find_next`]'s usual path, a slot after the base's.
    #[cold]
    #[inline(never)]
    fn sort_out_base_slot(&mut self, time: u64) -> Sorted {
        let slot = self.slot(time);
        let mut entry = self.take_list(slot);
        let mut earliest: Option<Timestamp> = None;
        let mut moved = std::mem::take(&mut self.scratch);
        while entry != NIL {
            let Entry { at, shard, next } = self.slab[entry as usize];
            let index = shard as usize;
            if self.shards[index].filed() != Some(at) {
                self.release(entry);
            } else if self.shards[index].wake() == Some(at) {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
                self.link(slot, entry);
            } else {
                self.shards[index].file_at_wake();
                if let Some(wake) = self.shards[index].wake() {
                    moved.push((wake, shard));
                }
                self.release(entry);
            }
            entry = next;
        }
        // Slots before this one are empty: the wheel turns to it
        // (entries earlier than the base stay in the base's slot).
        if earliest.is_some() {
            self.advance(time);
        }
        // A moved entry earlier than the base goes back into the
        // base's slot, and may be the earliest: sorted out again.
        let again = moved
            .iter()
            .any(|&(wake, _)| earliest.is_none_or(|e| wake < e));
        for &(wake, shard) in &moved {
            self.insert(wake, shard);
        }
        moved.clear();
        self.scratch = moved;
        match earliest {
            Some(earliest) if !again => Sorted::Earliest(earliest),
            _ => Sorted::Again,
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
}

/// What sorting out one slot, or the overflow's earliest entry, found.
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

    /// Every live entry is where a search looks for it, and the bitmap
    /// marks exactly the slots that hold entries.
    fn check(t: &ShardTimers, op: &str) {
        for slot in 0..t.slots.len() {
            let bit = t.occupied[slot / 64] >> (slot % 64) & 1 == 1;
            assert_eq!(bit, t.slots[slot] != NIL, "after {op}: slot {slot}");
        }
        let found = t.next_occupied(t.base, t.base + t.mask);
        let first = (0..t.slots.len())
            .map(|k| t.base + k as u64)
            .find(|&x| t.slots[t.slot(x)] != NIL);
        assert_eq!(found, first, "after {op}: next_occupied");
        for (i, f) in t.shards.iter().map(|shard| shard.filed()).enumerate() {
            let Some(f) = f else { continue };
            let ms = f.as_millis();
            let found = if ms < t.base.saturating_add(t.window()) {
                let mut e = t.slots[t.slot(ms.max(t.base))];
                let mut ok = false;
                while e != NIL {
                    let en = t.slab[e as usize];
                    if en.at == f && en.shard as usize == i {
                        ok = true;
                    }
                    e = en.next;
                }
                ok
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

    /// Every entry on the wheel, live or dead, in a slot other than the
    /// base's is at that slot's time: what lets a search stop at the first
    /// entry of such a slot that is at its shard's wake-up.
    ///
    /// And the wheel never turns past the latest time taken, so that a
    /// wake-up filed after that time gets a slot of its own.
    fn entries_after_the_base_are_at_their_slots_time(t: &ShardTimers, op: &str) {
        assert!(
            t.base <= t.clock,
            "after {op}: base {} clock {}",
            t.base,
            t.clock
        );
        let base_slot = t.slot(t.base);
        for (slot, &first) in t.slots.iter().enumerate() {
            let mut entry = first;
            while entry != NIL {
                let Entry { at, next, .. } = t.slab[entry as usize];
                let ms = at.as_millis();
                if slot == base_slot {
                    assert!(
                        ms < t.base + t.window(),
                        "after {op}: {ms} in the base's slot"
                    );
                } else {
                    assert!(ms > t.base && ms < t.base + t.window(), "after {op}: {ms}");
                    assert_eq!(t.slot(ms), slot, "after {op}: {ms} in slot {slot}");
                }
                entry = next;
            }
        }
    }

    #[test]
    fn entries_after_the_base_stay_at_their_slots_time() {
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
                    entries_after_the_base_are_at_their_slots_time(
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
}
