//! Retry planning: when the next attempt may start, and when to stop.
//!
//! Everything that counts failures in a row lives here: the backoff
//! strategy and the retry number it is drawn for, the guard between two
//! attempts, the give-up limits (retries in a row, time since the last
//! stable connection), the resume breaker (resumes in a row sent and
//! unanswered), the short waits of a lost session that is likely still
//! resumable, and the identify-loop detector. The
//! [`Policy`](crate::Policy) reports what happened (an attempt started, a
//! connection proved stable, a resume failed or succeeded, an Identify was
//! answered) and asks for a plan when a connection ended; the answers are a
//! [`ReconnectPlan`] or the reason to give up.
//!
//! The retry count is a count of *failures*: of the network (a dial that
//! fails, a socket that drops) and of the handshake (no Hello, no READY).
//! Two things are not failures:
//! - **requests of the server**: op 7 on a connection that reached READY or
//!   RESUMED, a close whose code asks for a reconnect
//!   ([`CloseCode::asks_for_reconnect`](crate::CloseCode::asks_for_reconnect))
//!   after such a connection, op 9 from a gateway that said Hello. They
//!   neither advance the count nor wait for the backoff (op 9 still waits
//!   its own 1–5 s, and the guard always holds), unless more than
//!   [`ServerRequests::max_free`](crate::ServerRequests) of them came within
//!   its window: then the gateway is in a loop and they count as failures;
//! - **time the gateway spent answering**: every full
//!   [`StabilityRule::credit_ms`](crate::StabilityRule) a connection stays
//!   open after Hello repays one failure. A link that accepts and drops at
//!   once earns nothing and climbs to the cap as before; a link that stays
//!   up as long as it takes to fail repays what it cost.
//!
//! Over both sits a ceiling: never more than
//! [`AttemptRate::max_attempts`] handshakes reach the gateway in any
//! [`AttemptRate::window_ms`], so a link that answers just long enough to
//! earn its credit and then drops cannot make the shard storm either.
//! Attempts are counted by when they reached the gateway, which the
//! policy bounds from above (see [`AttemptRate`] for the guarantee and
//! its argument): an attempt that opened is stamped when it opened, one
//! that ended with its outcome unknown when it ended, one still in flight
//! at its connect deadline, and one that cannot have reached the gateway
//! (a name that did not resolve, a failed TLS handshake) not at all.

use crate::backoff::BackoffState;
use crate::close_code::CloseCode;
use crate::config::{AttemptRate, PolicyConfig};
use crate::decision::{ConnectFailure, Decision, GiveUpReason, Recovery, Trigger};
use crate::jitter::Jitter;
use crate::output::ReconnectPlan;
use crate::time::Timestamp;

/// How the connection that just ended counts, as the
/// [`Policy`](crate::Policy) saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ending {
    /// When Hello arrived, if it did and the connection earns credit for
    /// the time after it (not when it ended on a deadline or as a zombie:
    /// then the gateway had stopped answering long before the end).
    pub(crate) answered_since: Option<Timestamp>,
    /// The gateway asked for this reconnect (see the module doc).
    pub(crate) server_request: bool,
    /// An Identify was sent on it and the gateway answered with a close or
    /// op 9 before READY.
    pub(crate) identify_rejected: bool,
    /// It reached READY or RESUMED: the session was live on it until it
    /// ended.
    pub(crate) established: bool,
}

/// Where a shard stands in an identify loop, once it is in one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoopState {
    /// Identifies in a row answered before READY.
    pub(crate) rejected: u32,
    /// Of them and earlier ones, those in the current 24 h.
    pub(crate) rejected_today: u32,
}

/// A day, in ms: the period of the daily session-start budget.
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Slots of the largest ring of counted attempts: the most the ceiling
/// looks back ([`AttemptRate::MAX_ATTEMPTS`]) plus one.
const RING: usize = AttemptRate::MAX_ATTEMPTS as usize + 1;

/// How many attempts back the ceiling of `rule` looks: its `max_attempts`,
/// clamped to `1..=`[`AttemptRate::MAX_ATTEMPTS`].
fn looks_back(rule: AttemptRate) -> usize {
    usize::try_from(rule.max_attempts)
        .unwrap_or(RING)
        .clamp(1, RING - 1)
}

/// A slot of the ring of counted attempts, as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// No attempt, or one found never to have reached the gateway.
    Free,
    /// Dialled at this time; not yet known whether or when it reached the
    /// gateway.
    InFlight(Timestamp),
    /// It reached the gateway at or before this time (when the upgrade was
    /// answered, or when the attempt ended with its outcome unknown).
    Reached(Timestamp),
}

impl Slot {
    /// The slot's stamp, unless it is free.
    const fn stamp(self) -> Option<Timestamp> {
        match self {
            Self::Free => None,
            Self::InFlight(at) | Self::Reached(at) => Some(at),
        }
    }

    /// The slot's state as a flag ([`NEAR_IN_FLIGHT`] or 0) and its stamp,
    /// unless it is free.
    const fn flag_and_stamp(self) -> Option<(u32, Timestamp)> {
        match self {
            Self::Free => None,
            Self::InFlight(at) => Some((NEAR_IN_FLIGHT, at)),
            Self::Reached(at) => Some((0, at)),
        }
    }

    /// The slot in flight or reached at `at`, as `flag` says
    /// ([`NEAR_IN_FLIGHT`] set or not).
    const fn taken(flag: u32, at: Timestamp) -> Self {
        if flag & NEAR_IN_FLIGHT == 0 {
            Self::Reached(at)
        } else {
            Self::InFlight(at)
        }
    }
}

/// A near slot that is free.
const NEAR_FREE: u32 = u32::MAX;
/// The bit of a near slot that says it is in flight; the other bits are
/// its stamp's offset from the log's base.
const NEAR_IN_FLIGHT: u32 = 1 << 31;
/// The largest offset a near slot holds (2^31 − 2 ms, 24.8 days: one less
/// than the bits allow, so that no slot in flight reads as free).
const NEAR_MAX_OFFSET: u64 = (NEAR_IN_FLIGHT - 2) as u64;

/// `slot` as a near slot of a log based at `base`, if its stamp is within
/// [`NEAR_MAX_OFFSET`] after it.
fn near(slot: Slot, base: Timestamp) -> Option<u32> {
    let Some((flag, at)) = slot.flag_and_stamp() else {
        return Some(NEAR_FREE);
    };
    let offset = at.as_millis().checked_sub(base.as_millis())?;
    if offset > NEAR_MAX_OFFSET {
        return None;
    }
    // At most `NEAR_MAX_OFFSET`, below 2^31.
    u32::try_from(offset).ok().map(|offset| offset | flag)
}

/// A near slot of a log based at `base`, read.
fn read_near(code: u32, base: Timestamp) -> Slot {
    if code == NEAR_FREE {
        return Slot::Free;
    }
    Slot::taken(code, base.saturating_add(u64::from(code & !NEAR_IN_FLIGHT)))
}

/// Words a whole slot takes in a log whose stamps are kept whole: the
/// slot's state (as a near slot at offset 0), then the stamp's low and
/// high halves.
const FAR_WORDS: usize = 3;

/// A whole slot, as the [`FAR_WORDS`] words that hold it.
fn far(slot: Slot) -> [u32; FAR_WORDS] {
    let Some((state, at)) = slot.flag_and_stamp() else {
        return [NEAR_FREE, 0, 0];
    };
    let ms = at.as_millis();
    // Truncations intended: the two halves.
    [state, ms as u32, (ms >> 32) as u32]
}

/// A whole slot held in `words`, read.
fn read_far(words: &[u32]) -> Slot {
    match *words {
        [state, low, high] if state != NEAR_FREE => Slot::taken(
            state,
            Timestamp::from_millis(u64::from(high) << 32 | u64::from(low)),
        ),
        _ => Slot::Free,
    }
}

/// Words an attempt log keeps in place: the default ceiling's ring (10
/// attempts back, 11 slots) in the near form.
const INLINE_WORDS: usize = 11;

/// An attempt log's words, a fixed number of them: in place up to
/// [`INLINE_WORDS`] (48 bytes, where a boxed slice took 16 inline and a
/// 64-byte heap block for the default ring), on the heap beyond (a larger
/// ceiling, or a ring kept whole).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Words {
    /// The first `len` of `words`; the rest are unused.
    Inline {
        /// How many are used (at most [`INLINE_WORDS`]).
        len: u8,
        /// The words, then unused ones.
        words: [u32; INLINE_WORDS],
    },
    /// More words than fit in place.
    Boxed(Box<[u32]>),
}

impl Words {
    /// `len` words of `word`.
    fn filled(word: u32, len: usize) -> Self {
        Self::collect(core::iter::repeat_n(word, len))
    }

    /// The words of `iter`, in place when they fit.
    fn collect(iter: impl IntoIterator<Item = u32>) -> Self {
        let mut iter = iter.into_iter();
        let mut words = [0; INLINE_WORDS];
        let mut len: u8 = 0;
        for (at, word) in words.iter_mut().zip(iter.by_ref()) {
            *at = word;
            len += 1;
        }
        match iter.next() {
            None => Self::Inline { len, words },
            Some(more) => Self::Boxed(
                words
                    .into_iter()
                    .chain(core::iter::once(more))
                    .chain(iter)
                    .collect(),
            ),
        }
    }

    /// The words.
    fn as_slice(&self) -> &[u32] {
        match self {
            Self::Inline { len, words } => words.get(..usize::from(*len)).unwrap_or_default(),
            Self::Boxed(words) => words,
        }
    }

    /// The words, to change them.
    fn as_mut_slice(&mut self) -> &mut [u32] {
        match self {
            Self::Inline { len, words } => words.get_mut(..usize::from(*len)).unwrap_or_default(),
            Self::Boxed(words) => words,
        }
    }

    /// How many words.
    const fn len(&self) -> usize {
        match self {
            Self::Inline { len, .. } => *len as usize,
            Self::Boxed(words) => words.len(),
        }
    }

    /// Whether the words are on the heap.
    #[cfg(test)]
    const fn is_boxed(&self) -> bool {
        matches!(self, Self::Boxed(_))
    }
}

/// The last attempts the ceiling counts, as far as the policy knows when
/// each reached the gateway.
///
/// A ring of slots in the order the attempts started (the oldest is
/// overwritten), one more than the ceiling looks back, so that the slot
/// of an attempt found not to have reached the gateway, once freed, never
/// leaves fewer than that many counted attempts behind. A slot is
/// [free, in flight or reached](Slot).
///
/// The ring is sized by the configured ceiling when the log is built (in
/// place for the default ceiling, see [`Words`]; a larger ceiling's ring
/// is allocated then, and none afterwards while the stamps stay near each
/// other): 11 slots for the default of 10 instead of the 33 the largest
/// ceiling needs. That keeps every answer the largest ring would give as
/// long as the attempts are reported as a [`Policy`](crate::Policy)
/// reports them, on a clock that never steps back and with every attempt
/// but the last one ended: the bounds then never fall in the order the
/// attempts started, so the latest ones are always those of the last
/// attempts (a test checks it against the largest ring).
///
/// The stamps are kept as 32-bit offsets from a base, one word a slot
/// (44 bytes for the default ring, where 64-bit stamps and a sorted copy
/// of them took 176): [`NEAR_FREE`], or the offset with [`NEAR_IN_FLIGHT`]
/// set or not. A stamp that does not fit rebases the ring on its earliest
/// stamp (rounded down to a [`BASE_STEP`]), or, when the stamps span more
/// than [`NEAR_MAX_OFFSET`] from there (a clock
/// that jumped, attempts weeks apart), the slots are kept whole
/// ([`FAR_WORDS`] words each) until they fit again. Every answer is the
/// same either way.
///
/// The ceiling, asked on every plan, reads the bounds oldest first; in
/// the order a [`Policy`](crate::Policy) reports attempts they are
/// already ascending, so the answer is read at an index, and only
/// otherwise (a clock that stepped back, attempts in flight together) is
/// it selected among them.
///
/// 56 bytes, the default ring included: the base is a multiple of [`BASE_STEP`] ms at or
/// before the earliest stamp, which leaves its low bits for where the next
/// start goes and whether the slots are kept whole.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AttemptLog {
    /// What the near slots' offsets count from (the bits of
    /// [`BASE_BITS`]); where the next start goes (the low byte); whether
    /// the slots are kept whole ([`FAR_BIT`]).
    base_and_cursor: u64,
    /// The ring: a word a slot, or [`FAR_WORDS`] while kept whole.
    slots: Words,
}

/// The step of an attempt log's base, in ms (65.5 s), whose bits below it
/// hold the log's cursor.
const BASE_STEP: u64 = 1 << 16;
/// The bits of an attempt log's `base_and_cursor` that hold its base.
const BASE_BITS: u64 = !(BASE_STEP - 1);
/// The bit of an attempt log's `base_and_cursor` that says its slots are
/// kept whole.
const FAR_BIT: u64 = 1 << 8;
/// The bits of an attempt log's `base_and_cursor` that hold where the next
/// start goes.
const CURSOR_BITS: u64 = 0xff;

// The slot numbers fit the cursor's byte.
const _: () = assert!(RING <= CURSOR_BITS as usize);

impl AttemptLog {
    /// A log for a ceiling that looks `back` attempts back (clamped to
    /// `1..=`[`AttemptRate::MAX_ATTEMPTS`]).
    fn new(back: usize) -> Self {
        let ring = back.clamp(1, RING - 1) + 1;
        Self {
            base_and_cursor: 0,
            slots: Words::filled(NEAR_FREE, ring),
        }
    }

    /// What the near slots' offsets count from.
    const fn base(&self) -> Timestamp {
        Timestamp::from_millis(self.base_and_cursor & BASE_BITS)
    }

    /// Counts the near slots' offsets from `at`, rounded down to a
    /// multiple of [`BASE_STEP`].
    const fn set_base(&mut self, at: Timestamp) {
        self.base_and_cursor = (at.as_millis() & BASE_BITS) | (self.base_and_cursor & !BASE_BITS);
    }

    /// Where the next start goes.
    const fn next_slot(&self) -> usize {
        (self.base_and_cursor & CURSOR_BITS) as usize
    }

    /// The next start goes to `slot` (below [`RING`]).
    const fn set_next_slot(&mut self, slot: usize) {
        self.base_and_cursor = (self.base_and_cursor & !CURSOR_BITS) | (slot as u64 & CURSOR_BITS);
    }

    /// Whether the slots are kept whole.
    const fn far(&self) -> bool {
        self.base_and_cursor & FAR_BIT != 0
    }

    /// Keeps the slots whole (`true`) or as offsets.
    const fn set_far(&mut self, far: bool) {
        self.base_and_cursor = if far {
            self.base_and_cursor | FAR_BIT
        } else {
            self.base_and_cursor & !FAR_BIT
        };
    }

    /// Slots in the ring.
    const fn ring(&self) -> usize {
        if self.far() {
            self.slots.len() / FAR_WORDS
        } else {
            self.slots.len()
        }
    }

    /// Whether the slots are kept as offsets from the base.
    #[cfg(test)]
    const fn is_near(&self) -> bool {
        !self.far()
    }

    /// The most attempts back this log can answer for.
    const fn capacity(&self) -> usize {
        self.ring() - 1
    }

    /// The slot of the last attempt started: the one before the next
    /// start's, the ring's last when that is the first.
    const fn last_slot(&self) -> usize {
        match self.next_slot() {
            0 => self.ring() - 1,
            next => next - 1,
        }
    }

    /// Slot `i`, read.
    fn slot(&self, i: usize) -> Slot {
        read_slot(self.slots.as_slice(), self.far(), self.base(), i)
    }

    /// Sets slot `i` (below the ring's length) to `slot`.
    #[inline]
    fn set(&mut self, i: usize, slot: Slot) {
        if !self.far()
            && let Some(code) = near(slot, self.base())
            && let Some(at) = self.slots.as_mut_slice().get_mut(i)
        {
            *at = code;
            return;
        }
        self.rebuild_with(i, slot);
    }

    /// Sets slot `i` to `slot` when it does not fit as an offset (or the
    /// stamps are kept whole): rebuilds the ring around its stamps.
    #[cold]
    fn rebuild_with(&mut self, i: usize, slot: Slot) {
        let ring = self.ring();
        let mut all = [Slot::Free; RING];
        for (j, read) in all.iter_mut().enumerate().take(ring) {
            *read = if j == i { slot } else { self.slot(j) };
        }
        self.store(&all[..ring]);
    }

    /// Stores `all` (a slot per slot of the ring), near if their stamps
    /// fit, whole otherwise. Allocates only when the form changes.
    fn store(&mut self, all: &[Slot]) {
        let stamps = all.iter().filter_map(|slot| slot.stamp());
        let earliest = stamps.clone().min().unwrap_or(Timestamp::ZERO);
        let latest = stamps.max().unwrap_or(Timestamp::ZERO);
        let base = Timestamp::from_millis(earliest.as_millis() & BASE_BITS);
        if latest.saturating_since(base) <= NEAR_MAX_OFFSET {
            self.set_base(base);
            let codes = all
                .iter()
                .map(|&slot| near(slot, base).unwrap_or(NEAR_FREE));
            if self.far() {
                self.slots = Words::collect(codes);
                self.set_far(false);
            } else {
                for (code, new) in self.slots.as_mut_slice().iter_mut().zip(codes) {
                    *code = new;
                }
            }
        } else {
            let words = all.iter().flat_map(|&slot| far(slot));
            if self.far() {
                for (word, new) in self.slots.as_mut_slice().iter_mut().zip(words) {
                    *word = new;
                }
            } else {
                self.slots = Words::collect(words);
                self.set_far(true);
            }
        }
    }

    /// An attempt is dialled at `now`: it takes the next slot (the oldest
    /// attempt's, which stops counting) and is in flight.
    fn started(&mut self, now: Timestamp) {
        let slot = self.next_slot();
        self.set(slot, Slot::InFlight(now));
        let next = slot + 1;
        self.set_next_slot(if next < self.ring() { next } else { 0 });
    }

    /// The last attempt, if still in flight, reached the gateway by `at`
    /// (by its dial, when `at` is earlier: a clock that stepped back).
    fn last_reached(&mut self, at: Timestamp) {
        let slot = self.last_slot();
        if let Slot::InFlight(dialled) = self.slot(slot) {
            self.set(slot, Slot::Reached(at.max(dialled)));
        }
    }

    /// The last attempt, if still in flight, is found never to have
    /// reached the gateway: its slot is freed for the next start.
    fn last_not_counted(&mut self) {
        let slot = self.last_slot();
        if let Slot::InFlight(_) = self.slot(slot) {
            self.set(slot, Slot::Free);
            self.set_next_slot(slot);
        }
    }

    /// Whether the last attempt started is still in flight.
    #[cfg(test)]
    fn last_in_flight(&self) -> bool {
        matches!(self.slot(self.last_slot()), Slot::InFlight(_))
    }

    /// The `back`-th latest arrival bound among the counted attempts, as
    /// seen at `now` (an attempt in flight may reach the gateway until the
    /// later of `now` and its connect deadline, `connect_ms` after its
    /// dial: the policy abandons it then, and an abandoned handshake finds
    /// nobody to answer). `None` when fewer than `back` are counted.
    /// `back` beyond what the log was sized for counts as its
    /// [`capacity`](Self::capacity): a later answer, never an earlier one.
    ///
    /// When a [`Policy`](crate::Policy) plans, the log is near, its
    /// attempts have all reached the gateway or not (the last one has
    /// just ended), and the free slots are the oldest: read oldest first,
    /// the slots ascend in [`near_order`]. The answer is then the slot
    /// `back` from the newest. Any other log (an attempt in flight, a
    /// clock that stepped back, the slots kept whole) has the answer
    /// selected among all its bounds.
    fn latest_bound(&self, back: usize, now: Timestamp, connect_ms: u64) -> Option<Timestamp> {
        let back = back.min(self.capacity());
        if back == 0 {
            // No attempt is the 0-th latest.
            return None;
        }
        if !self.far() {
            let (words, next) = (self.slots.as_slice(), self.next_slot());
            let (newer, older) = split_ring(words, next);
            if ascend(older, newer) {
                // The slot `back` before the next start's, around the
                // ring (`back` is 1 to the ring's length less one).
                let at = next + words.len() - back;
                let at = at.checked_sub(words.len()).unwrap_or(at);
                return match words.get(at) {
                    Some(&code) if code != NEAR_FREE => {
                        Some(self.base().saturating_add(u64::from(code)))
                    }
                    _ => None,
                };
            }
        }
        self.select_bound(back, now, connect_ms)
    }

    /// [`latest_bound`](Self::latest_bound), whatever the slots hold: all
    /// the bounds collected, and the answer selected among them.
    #[cold]
    fn select_bound(&self, back: usize, now: Timestamp, connect_ms: u64) -> Option<Timestamp> {
        // The bounds, in a fixed-size array on the stack.
        let mut bounds = [Timestamp::ZERO; RING];
        let mut counted: usize = 0;
        let (words, far, base) = (self.slots.as_slice(), self.far(), self.base());
        for i in 0..self.ring() {
            let bound = match read_slot(words, far, base, i) {
                Slot::Free => continue,
                Slot::InFlight(dialled) => dialled.saturating_add(connect_ms).max(now),
                Slot::Reached(by) => by,
            };
            if let Some(at) = bounds.get_mut(counted) {
                *at = bound;
                counted += 1;
            }
        }
        let at = counted.checked_sub(back)?;
        let counted = bounds.get_mut(..counted)?;
        if at >= counted.len() {
            return None;
        }
        let (_, bound, _) = counted.select_nth_unstable(at);
        Some(*bound)
    }
}

/// A ring's `words` split at `at` (where the oldest slot's words begin):
/// the newer slots before it, the older from it on.
fn split_ring(words: &[u32], at: usize) -> (&[u32], &[u32]) {
    words.split_at_checked(at).unwrap_or((words, &[]))
}

/// Where a near slot's `code` sorts when the slots are read oldest
/// first: a free slot lowest, then those that reached the gateway by
/// their offsets, then those in flight (their flag set).
const fn near_order(code: u32) -> u32 {
    code.wrapping_add(1)
}

/// Whether the near slots `older` then `newer` ascend in [`near_order`],
/// and none of them is in flight.
fn ascend(older: &[u32], newer: &[u32]) -> bool {
    let mut last = near_order(NEAR_FREE);
    for part in [older, newer] {
        for &code in part {
            let order = near_order(code);
            if order < last {
                return false;
            }
            last = order;
        }
    }
    // The newest is the highest: none is in flight if it is not.
    last <= near_order(NEAR_MAX_OFFSET as u32)
}

/// Slot `i` of a log's `words`, kept whole (`far`) or as offsets from
/// `base`, read.
fn read_slot(words: &[u32], far: bool, base: Timestamp, i: usize) -> Slot {
    if far {
        words
            .get(i * FAR_WORDS..(i + 1) * FAR_WORDS)
            .map_or(Slot::Free, read_far)
    } else {
        words
            .get(i)
            .map_or(Slot::Free, |&code| read_near(code, base))
    }
}

/// Whether an attempt that ended with `trigger` cannot have reached the
/// gateway: the host name did not resolve, or the TLS handshake failed,
/// so no upgrade request was ever sent. A refused or reset connection is
/// not among them (a gateway or a proxy in front of it may refuse a
/// handshake it has read), nor is a timeout.
const fn never_reached(trigger: Trigger) -> bool {
    matches!(
        trigger,
        Trigger::ConnectFailed {
            failure: ConnectFailure::Dns | ConnectFailure::Tls
        }
    )
}

/// The planner's moments that may not have happened yet. The last one,
/// written at every attempt's start, is the one beside the moments' flags
/// and the attempt log (see [`RetryPlanner`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Moment {
    /// When the current run of retries began.
    UnstableSince,
    /// When the held session's connection was lost (the first failure
    /// planned with a Resume since the session last resumed or started).
    ResumableSince,
    /// When the current window of server requests began.
    RequestsSince,
    /// When the current 24 h of the identify-loop budget began.
    DaySince,
    /// When the last connection attempt started.
    LastAttempt,
}

/// The planner's [`Moment`]s, packed: their times and one byte saying
/// which are set (40 bytes and a byte where five `Option<Timestamp>`s take
/// 80, every time up to [`Timestamp::MAX`] still valid).
///
/// Packed to 4-byte alignment (44 bytes instead of 48): the planner's
/// `u32` counters sit beside it, and an unaligned `u64` costs nothing on
/// the targets that matter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed(4))]
struct Moments {
    /// Per [`Moment`]: its time, [`Timestamp::ZERO`] while unset.
    at: [Timestamp; 5],
    /// Bit `m` set: moment `m` is set.
    set: u8,
}

impl Moments {
    /// None set.
    const NONE: Self = Self {
        at: [Timestamp::ZERO; 5],
        set: 0,
    };

    /// When `moment` was, if it is set.
    const fn get(&self, moment: Moment) -> Option<Timestamp> {
        if self.set & (1 << moment as u8) != 0 {
            Some(self.at[moment as usize])
        } else {
            None
        }
    }

    /// Sets `moment` to `at`, or unsets it.
    const fn put(&mut self, moment: Moment, at: Option<Timestamp>) {
        let bit = 1 << moment as u8;
        match at {
            Some(at) => {
                self.at[moment as usize] = at;
                self.set |= bit;
            }
            None => {
                self.at[moment as usize] = Timestamp::ZERO;
                self.set &= !bit;
            }
        }
    }

    /// When `moment` was, set to `now` first if it was not.
    const fn get_or_put(&mut self, moment: Moment, now: Timestamp) -> Timestamp {
        match self.get(moment) {
            Some(at) => at,
            None => {
                self.put(moment, Some(now));
                now
            }
        }
    }
}

/// The failures in a row of one shard, and what they mean for the next
/// attempt.
///
/// `repr(C)`, what an attempt's start and its answer write last: the
/// moments (the start's own moment last among them) and then the attempt
/// log, so that they lie together, and beside the policy's session, which
/// the start reads too (see the layout of [`Policy`](crate::Policy)).
#[derive(Clone, Debug, PartialEq)]
#[repr(C)]
pub(crate) struct RetryPlanner {
    /// The backoff's history; its configuration is the shared
    /// [`PolicyConfig`]'s, passed in with every plan.
    backoff: BackoffState,
    /// Failures not yet repaid since the connection was last stable (0:
    /// stable, never failed, or repaid).
    retry: u32,
    /// Resumes in a row that were sent and ended without RESUMED.
    failed_resumes: u32,
    /// Server requests in that window.
    requests_in_window: u32,
    /// Identifies in a row answered before READY.
    rejected_identifies: u32,
    /// Rejected Identifies in those 24 h.
    rejected_today: u32,
    /// When the run of retries, the loss of the session, the window of
    /// server requests, the identify-loop day and the last attempt began.
    moments: Moments,
    /// The last attempts the ceiling counts.
    attempts: AttemptLog,
}

impl RetryPlanner {
    /// A planner for `config`: the attempt log is sized by its ceiling
    /// (in place for the default ceiling; a larger one's is the one
    /// allocation a planner makes).
    pub(crate) fn new(config: &PolicyConfig) -> Self {
        Self {
            backoff: BackoffState::NEW,
            retry: 0,
            moments: Moments::NONE,
            failed_resumes: 0,
            attempts: AttemptLog::new(looks_back(config.attempt_rate)),
            requests_in_window: 0,
            rejected_identifies: 0,
            rejected_today: 0,
        }
    }

    /// READY arrived: the identify loop, if any, is over.
    pub(crate) const fn identify_succeeded(&mut self) {
        self.rejected_identifies = 0;
    }

    /// Counts a rejected Identify at `now`; returns the loop state when the
    /// shard is in a loop.
    fn identify_rejected(&mut self, now: Timestamp, config: &PolicyConfig) -> Option<LoopState> {
        let in_day = self
            .moments
            .get(Moment::DaySince)
            .is_some_and(|since| now.saturating_since(since) < DAY_MS);
        if !in_day {
            self.moments.put(Moment::DaySince, Some(now));
            self.rejected_today = 0;
        }
        self.rejected_today = self.rejected_today.saturating_add(1);
        self.rejected_identifies = self.rejected_identifies.saturating_add(1);
        (self.rejected_identifies >= config.identify_loop.max_rejected).then_some(LoopState {
            rejected: self.rejected_identifies,
            rejected_today: self.rejected_today,
        })
    }

    /// Failures not yet repaid since the connection was last stable.
    pub(crate) const fn retries(&self) -> u32 {
        self.retry
    }

    /// A connection attempt starts now: the guard counts from here, and
    /// the ceiling counts it as in flight until it is known to have
    /// reached the gateway or not.
    pub(crate) fn attempt_started(&mut self, now: Timestamp) {
        self.moments.put(Moment::LastAttempt, Some(now));
        self.attempts.started(now);
    }

    /// The last attempt's upgrade was answered at `now` (the WebSocket
    /// opened): it reached the gateway no later than that. A `now` before
    /// the dial (a clock that stepped back) counts as the dial.
    pub(crate) fn attempt_reached(&mut self, now: Timestamp) {
        self.attempts.last_reached(now);
    }

    /// The last attempt ended at `now` with `trigger`, before its upgrade
    /// was answered if it is still in flight: one that cannot have reached
    /// the gateway is no longer counted (its slot is freed for the next);
    /// any other is counted as reaching it at `now`, the latest it can
    /// have. One already stamped keeps its stamp.
    fn attempt_ended(&mut self, now: Timestamp, trigger: Trigger) {
        // Both leave a slot that is not in flight as it is.
        if never_reached(trigger) {
            self.attempts.last_not_counted();
        } else {
            self.attempts.last_reached(now);
        }
    }

    /// The earliest start at `now` that keeps `max_attempts` handshakes
    /// at the gateway in any window: the `max_attempts`-th latest arrival
    /// bound among the counted attempts, plus the window. The arrival of
    /// the new attempt comes no earlier than its dial, so only the
    /// `max_attempts - 1` others whose bounds are later can share a window
    /// with it (see [`AttemptRate`]). `None` when fewer have been counted,
    /// or the ceiling is off.
    fn rate_floor(&self, now: Timestamp, config: &PolicyConfig) -> Option<Timestamp> {
        let rule = config.attempt_rate;
        if rule.window_ms == 0 {
            return None;
        }
        self.attempts
            .latest_bound(looks_back(rule), now, config.timeouts.connect_ms)
            .map(|bound| bound.saturating_add(rule.window_ms))
    }

    /// The connection proved stable: the backoff, the give-up clock and the
    /// resume breaker start over.
    pub(crate) const fn stable(&mut self) {
        self.retry = 0;
        self.moments.put(Moment::UnstableSince, None);
        self.failed_resumes = 0;
        self.moments.put(Moment::ResumableSince, None);
    }

    /// RESUMED arrived, or the session is gone: the breaker and the short
    /// waits of a lost session start over.
    pub(crate) const fn resumes_reset(&mut self) {
        self.failed_resumes = 0;
        self.moments.put(Moment::ResumableSince, None);
    }

    /// A Resume was sent and its connection ended without RESUMED. Returns
    /// whether the breaker trips (the session must be dropped).
    pub(crate) const fn resume_failed(&mut self, config: &PolicyConfig) -> bool {
        self.failed_resumes = self.failed_resumes.saturating_add(1);
        self.failed_resumes >= config.resume.max_failed_resumes
    }

    /// Repays one failure per full `credit_ms` of `answered_ms`.
    fn repay(&mut self, answered_ms: u64, config: &PolicyConfig) {
        let credit_ms = config.stability.credit_ms;
        if credit_ms == 0 {
            return;
        }
        let steps = u32::try_from(answered_ms / credit_ms).unwrap_or(u32::MAX);
        self.retry = self.retry.saturating_sub(steps);
    }

    /// The backoff's `delay` for a failure at `now`, kept short while a lost
    /// session is still likely resumable. The session was lost when the
    /// last connection on which it was live (`established`: it reached
    /// READY or RESUMED) ended. With `recovery` a Resume, after an attempt
    /// that did not bring the session back (a dial that failed, a
    /// handshake cut or refused), within
    /// [`short_waits_for_ms`](crate::ResumeBreaker::short_waits_for_ms) of
    /// the loss, a delay above
    /// [`max_wait_while_resumable_ms`](crate::ResumeBreaker::max_wait_while_resumable_ms)
    /// is redrawn in `[max/2, max]`.
    ///
    /// The end of a live connection itself keeps the backoff's delay: a
    /// link that accepts, resumes and drops at once still climbs to the
    /// backoff's cap, which is what the stability rule is for. The guard
    /// and the attempt rate still hold, and once the window has passed the
    /// backoff alone rules, so a long outage costs at most a few minutes of
    /// denser dials.
    fn while_resumable(
        &mut self,
        now: Timestamp,
        recovery: Recovery,
        established: bool,
        delay: u64,
        config: &PolicyConfig,
        jitter: &mut Jitter,
    ) -> u64 {
        if recovery != Recovery::Resume {
            self.moments.put(Moment::ResumableSince, None);
            return delay;
        }
        if established {
            self.moments.put(Moment::ResumableSince, Some(now));
            return delay;
        }
        let since = self.moments.get_or_put(Moment::ResumableSince, now);
        let max = config.resume.max_wait_while_resumable_ms;
        let within = now.saturating_since(since) < config.resume.short_waits_for_ms;
        if max == 0 || !within || delay <= max {
            return delay;
        }
        let half = max / 2;
        half.saturating_add(jitter.between(0, max - half))
    }

    /// Counts a server request at `now`; returns whether it is still free
    /// (no more than `max_free` in the window that began with the first of
    /// them).
    fn request_is_free(&mut self, now: Timestamp, config: &PolicyConfig) -> bool {
        let rule = config.server_requests;
        let in_window = self
            .moments
            .get(Moment::RequestsSince)
            .is_some_and(|since| now.saturating_since(since) < rule.window_ms);
        if !in_window {
            self.moments.put(Moment::RequestsSince, Some(now));
            self.requests_in_window = 0;
        }
        self.requests_in_window = self.requests_in_window.saturating_add(1);
        self.requests_in_window <= rule.max_free
    }

    /// Plans the attempt after a connection ended with `trigger`, which
    /// [`decide`](crate::decide) answered with `decision` (`recovery` is its
    /// recovery); `ending` says how the connection counts.
    ///
    /// # Errors
    ///
    /// The give-up limit that this retry would pass.
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &mut self,
        now: Timestamp,
        trigger: Trigger,
        decision: Decision,
        recovery: Recovery,
        ending: Ending,
        config: &PolicyConfig,
        jitter: &mut Jitter,
    ) -> Result<ReconnectPlan, GiveUpReason> {
        self.plan_with_loop(now, trigger, decision, recovery, ending, config, jitter)
            .map(|(plan, _)| plan)
    }

    /// [`RetryPlanner::plan`], with the identify loop the shard is found
    /// in, if any (returned rather than kept: the policy reports it at
    /// once).
    ///
    /// # Errors
    ///
    /// The give-up limit that this retry would pass.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn plan_with_loop(
        &mut self,
        now: Timestamp,
        trigger: Trigger,
        decision: Decision,
        recovery: Recovery,
        ending: Ending,
        config: &PolicyConfig,
        jitter: &mut Jitter,
    ) -> Result<(ReconnectPlan, Option<LoopState>), GiveUpReason> {
        self.attempt_ended(now, trigger);
        if let Some(since) = ending.answered_since {
            self.repay(now.saturating_since(since), config);
        }
        let in_loop = if ending.identify_rejected {
            self.identify_rejected(now, config)
        } else {
            None
        };
        if let Some(state) = in_loop
            && config.give_up.on_identify_loop
        {
            let last_code = match trigger {
                Trigger::Closed { code } => code,
                _ => None,
            };
            return Err(GiveUpReason::IdentifyLoop {
                rejected: state.rejected,
                last_code,
            });
        }
        let free = ending.server_request && self.request_is_free(now, config);
        let backoff_ms = if free {
            // The gateway asked, and nothing suggests a loop: no failure to
            // count and no backoff to wait (a protocol wait still holds).
            0
        } else {
            self.retry = self.retry.saturating_add(1);
            let unstable_since = self.moments.get_or_put(Moment::UnstableSince, now);
            let limits = config.give_up;
            if let Some(max) = limits.max_retries
                && self.retry > max
            {
                return Err(GiveUpReason::RetriesExhausted { retries: max });
            }
            let elapsed_ms = now.saturating_since(unstable_since);
            if let Some(max) = limits.max_elapsed_ms
                && elapsed_ms >= max
            {
                return Err(GiveUpReason::TimeExhausted { elapsed_ms });
            }
            let delay = self.backoff.delay(&config.backoff, self.retry, jitter);
            self.while_resumable(now, recovery, ending.established, delay, config, jitter)
        };
        let mut wait = backoff_ms.max(decision.protocol_delay_ms());
        if trigger
            == (Trigger::Closed {
                code: Some(CloseCode::RateLimited),
            })
        {
            // 4008: we sent too fast; slow the next attempt too.
            wait = wait.max(config.rate_limited.wait_ms);
        }
        if let Some(state) = in_loop {
            wait = wait.max(config.identify_loop.wait_ms);
            if state.rejected_today >= config.identify_loop.daily_share
                && let Some(since) = self.moments.get(Moment::DaySince)
            {
                // The shard's share of the day is spent: wait for the day.
                wait = wait.max(since.saturating_add(DAY_MS).saturating_since(now));
            }
        }
        let mut at = now.saturating_add(wait);
        if let Some(last) = self.moments.get(Moment::LastAttempt) {
            at = at.max(last.saturating_add(config.guard_ms));
        }
        if let Some(floor) = self.rate_floor(now, config) {
            at = at.max(floor);
        }
        let plan = ReconnectPlan {
            trigger,
            decision,
            recovery,
            retry: self.retry,
            counted: !free,
            backoff_ms,
            at,
        };
        Ok((plan, in_loop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An attempt's start writes the last moment, the moments' flags and
    /// the attempt log: they end the planner, one after the other.
    #[test]
    fn an_attempts_start_writes_the_end_of_the_planner() {
        use std::mem::offset_of;
        assert_eq!(Moment::LastAttempt as usize, 4);
        assert_eq!(
            offset_of!(RetryPlanner, moments) + size_of::<Moments>(),
            offset_of!(RetryPlanner, attempts)
        );
        assert_eq!(
            offset_of!(RetryPlanner, attempts) + size_of::<AttemptLog>(),
            size_of::<RetryPlanner>()
        );
        assert!(size_of::<RetryPlanner>() <= 136);
    }
    use crate::config::GiveUpLimits;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn the_guard_holds_even_when_the_backoff_is_shorter() {
        let config = PolicyConfig {
            guard_ms: 5_000,
            ..PolicyConfig::default()
        };
        let mut planner = RetryPlanner::new(&config);
        let mut jitter = Jitter::new(1);
        planner.attempt_started(t(1_000));
        let plan = planner
            .plan(
                t(1_100),
                Trigger::Reconnect,
                Decision::Resume,
                Recovery::Resume,
                Ending {
                    server_request: true,
                    ..Ending::default()
                },
                &config,
                &mut jitter,
            )
            .unwrap();
        // op 7 after READY: no failure counted, no backoff, but the guard.
        assert_eq!(
            (plan.retry, plan.counted, plan.backoff_ms, plan.at),
            (0, false, 0, t(6_000))
        );
    }

    #[test]
    fn limits_give_up_and_stability_starts_over() {
        let config = PolicyConfig {
            give_up: GiveUpLimits {
                max_retries: Some(2),
                max_elapsed_ms: None,
                ..GiveUpLimits::default()
            },
            ..PolicyConfig::default()
        };
        let mut planner = RetryPlanner::new(&config);
        let mut jitter = Jitter::new(1);
        let closed = Trigger::Closed { code: None };
        for _ in 0..2 {
            assert!(
                planner
                    .plan(
                        t(0),
                        closed,
                        Decision::Resume,
                        Recovery::Resume,
                        Ending::default(),
                        &config,
                        &mut jitter
                    )
                    .is_ok()
            );
        }
        assert_eq!(
            planner.plan(
                t(0),
                closed,
                Decision::Resume,
                Recovery::Resume,
                Ending::default(),
                &config,
                &mut jitter
            ),
            Err(GiveUpReason::RetriesExhausted { retries: 2 })
        );
        planner.stable();
        assert_eq!(planner.retries(), 0);
        assert!(
            planner
                .plan(
                    t(0),
                    closed,
                    Decision::Resume,
                    Recovery::Resume,
                    Ending::default(),
                    &config,
                    &mut jitter
                )
                .is_ok()
        );
    }

    #[test]
    fn the_breaker_trips_after_the_configured_failed_resumes() {
        let config = PolicyConfig::default();
        let mut planner = RetryPlanner::new(&config);
        assert!(!planner.resume_failed(&config));
        assert!(!planner.resume_failed(&config));
        planner.resumes_reset();
        assert!(!planner.resume_failed(&config));
        assert!(!planner.resume_failed(&config));
        assert!(planner.resume_failed(&config));
    }

    // ----- the attempt ceiling ------------------------------------------

    /// Backoff and guard out of the way: a plan's `at` is the ceiling's.
    fn ceiling_only(max_attempts: u32, window_ms: u64) -> PolicyConfig {
        PolicyConfig {
            backoff: crate::BackoffConfig {
                strategy: crate::BackoffStrategy::None,
                base_ms: 0,
                cap_ms: 0,
            },
            guard_ms: 0,
            attempt_rate: AttemptRate {
                max_attempts,
                window_ms,
            },
            ..PolicyConfig::default()
        }
    }

    /// Ends the last attempt at `now` with `trigger`; returns the plan's
    /// start.
    fn end(
        planner: &mut RetryPlanner,
        now: u64,
        trigger: Trigger,
        config: &PolicyConfig,
        jitter: &mut Jitter,
    ) -> Timestamp {
        planner
            .plan(
                t(now),
                trigger,
                Decision::Resume,
                Recovery::Resume,
                Ending::default(),
                config,
                jitter,
            )
            .unwrap()
            .at
    }

    const DROPPED: Trigger = Trigger::Closed { code: None };

    const fn failed(failure: ConnectFailure) -> Trigger {
        Trigger::ConnectFailed { failure }
    }

    #[test]
    fn the_ceiling_counts_an_attempt_from_when_its_upgrade_was_answered() {
        let config = ceiling_only(3, 60_000);
        let mut planner = RetryPlanner::new(&config);
        let mut jitter = Jitter::new(1);
        // Dialled at 0, 1 000, 2 000; each answered 1.5 s later (a slow
        // link: the gateway saw the first somewhere in [0, 1 500]).
        for i in 0..3 {
            planner.attempt_started(t(i * 1_000));
            planner.attempt_reached(t(i * 1_000 + 1_500));
        }
        // The fourth may start a window after the first was answered, not
        // a window after it was dialled.
        assert_eq!(
            end(&mut planner, 4_000, DROPPED, &config, &mut jitter),
            t(61_500)
        );
    }

    #[test]
    fn an_attempt_that_ended_unanswered_counts_from_when_it_ended() {
        let config = ceiling_only(2, 60_000);
        let mut jitter = Jitter::new(1);
        for trigger in [
            DROPPED,
            failed(ConnectFailure::Refused),
            failed(ConnectFailure::TimedOut),
            failed(ConnectFailure::Rejected { status: 503 }),
            failed(ConnectFailure::RateLimited { retry_after_ms: 0 }),
            Trigger::Timeout {
                deadline: crate::Deadline::Connect,
            },
        ] {
            let mut planner = RetryPlanner::new(&config);
            planner.attempt_started(t(0));
            let _ = end(&mut planner, 3_000, trigger, &config, &mut jitter);
            planner.attempt_started(t(4_000));
            // Whether and when it reached the gateway is unknown: no later
            // than the end, 3 000.
            assert_eq!(
                end(&mut planner, 4_200, trigger, &config, &mut jitter),
                t(63_000),
                "{trigger:?}"
            );
        }
    }

    #[test]
    fn attempts_that_never_reached_the_gateway_are_not_counted() {
        let config = ceiling_only(3, 60_000);
        let mut planner = RetryPlanner::new(&config);
        let mut jitter = Jitter::new(1);
        planner.attempt_started(t(0));
        planner.attempt_reached(t(100));
        let _ = end(&mut planner, 1_000, DROPPED, &config, &mut jitter);
        // A name that did not resolve, a TLS handshake that failed: no
        // upgrade request was ever sent.
        for i in 1..=40 {
            planner.attempt_started(t(i * 1_000));
            let failure = if i % 2 == 0 {
                ConnectFailure::Dns
            } else {
                ConnectFailure::Tls
            };
            let at = end(
                &mut planner,
                i * 1_000 + 10,
                failed(failure),
                &config,
                &mut jitter,
            );
            assert_eq!(at, t(i * 1_000 + 10), "attempt {i} was counted");
        }
        planner.attempt_started(t(50_000));
        planner.attempt_reached(t(50_100));
        let _ = end(&mut planner, 51_000, DROPPED, &config, &mut jitter);
        planner.attempt_started(t(52_000));
        planner.attempt_reached(t(52_100));
        // Three counted, the first answered at 100.
        assert_eq!(
            end(&mut planner, 53_000, DROPPED, &config, &mut jitter),
            t(60_100)
        );
    }

    #[test]
    fn a_freed_slot_keeps_every_counted_attempt_the_largest_ceiling_needs() {
        let max = AttemptRate::MAX_ATTEMPTS;
        let config = ceiling_only(max, 600_000);
        let mut planner = RetryPlanner::new(&config);
        let mut jitter = Jitter::new(1);
        for i in 0..u64::from(max) {
            planner.attempt_started(t(i * 1_000));
            planner.attempt_reached(t(i * 1_000 + 10));
            let _ = end(&mut planner, i * 1_000 + 20, DROPPED, &config, &mut jitter);
        }
        // Its start overwrites the oldest slot; freeing it must not forget
        // the oldest counted attempt, which still bounds the next start.
        planner.attempt_started(t(40_000));
        let at = end(
            &mut planner,
            40_010,
            failed(ConnectFailure::Dns),
            &config,
            &mut jitter,
        );
        assert_eq!(at, t(600_010));
    }

    #[test]
    fn attempts_in_flight_count_at_their_connect_deadline() {
        let config = ceiling_only(2, 60_000);
        let connect_ms = config.timeouts.connect_ms;
        let mut planner = RetryPlanner::new(&config);
        // Two dials in flight at once: neither outcome is known, and
        // either may still reach the gateway until its deadline.
        planner.attempt_started(t(0));
        planner.attempt_started(t(100));
        assert_eq!(
            planner.rate_floor(t(200), &config),
            Some(t(connect_ms + 60_000))
        );
        // Past a deadline the driver has not reported yet: no earlier
        // than now.
        assert_eq!(
            planner.rate_floor(t(30_000), &config),
            Some(t(30_000 + 60_000))
        );
        // The later one is answered; the earlier still counts, at its
        // deadline, which is now the later of the two bounds.
        planner.attempt_reached(t(300));
        assert_eq!(planner.rate_floor(t(400), &config), Some(t(60_300)));
        let config = ceiling_only(1, 60_000);
        assert_eq!(
            planner.rate_floor(t(400), &config),
            Some(t(connect_ms + 60_000))
        );
    }

    #[test]
    fn a_clock_that_steps_back_never_stamps_an_attempt_before_its_dial() {
        let config = ceiling_only(1, 60_000);
        let mut planner = RetryPlanner::new(&config);
        let mut jitter = Jitter::new(1);
        planner.attempt_started(t(10_000));
        planner.attempt_reached(t(5_000));
        assert_eq!(
            end(&mut planner, 4_000, DROPPED, &config, &mut jitter),
            t(70_000)
        );
        planner.attempt_started(t(80_000));
        assert_eq!(
            end(&mut planner, 1_000, DROPPED, &config, &mut jitter),
            t(140_000)
        );
        // At the end of time nothing overflows.
        planner.attempt_started(Timestamp::MAX);
        planner.attempt_reached(Timestamp::MAX);
        assert_eq!(
            end(&mut planner, u64::MAX, DROPPED, &config, &mut jitter),
            Timestamp::MAX
        );
    }

    #[test]
    fn packed_moments_keep_every_time_apart_from_unset() {
        let all = [
            Moment::UnstableSince,
            Moment::ResumableSince,
            Moment::LastAttempt,
            Moment::RequestsSince,
            Moment::DaySince,
        ];
        let mut moments = Moments::NONE;
        for (i, moment) in all.into_iter().enumerate() {
            assert_eq!(moments.get(moment), None);
            // The first time a moment can have, and the last.
            let at = if i % 2 == 0 {
                Timestamp::ZERO
            } else {
                Timestamp::MAX
            };
            assert_eq!(moments.get_or_put(moment, at), at);
            assert_eq!(moments.get_or_put(moment, t(7)), at);
        }
        for (i, moment) in all.into_iter().enumerate() {
            let at = if i % 2 == 0 {
                Timestamp::ZERO
            } else {
                Timestamp::MAX
            };
            assert_eq!(moments.get(moment), Some(at));
            moments.put(moment, None);
            assert_eq!(moments.get(moment), None);
        }
        assert_eq!(moments, Moments::NONE);
    }

    #[test]
    fn the_log_is_sized_by_the_configured_ceiling() {
        for (max_attempts, ring) in [(0, 2), (1, 2), (10, 11), (32, 33), (33, 33), (u32::MAX, 33)] {
            let planner = RetryPlanner::new(&ceiling_only(max_attempts, 60_000));
            assert_eq!(planner.attempts.ring(), ring, "{max_attempts}");
            assert!(
                planner.attempts.is_near() && planner.attempts.slots.len() == ring,
                "{max_attempts}"
            );
        }
        // The default ceiling's log: 4 bytes a slot, all in place (no heap
        // block, which took 64 bytes with the allocator's rounding), 56 in
        // all; a larger ceiling's on the heap.
        let default = RetryPlanner::new(&PolicyConfig::default());
        assert_eq!(default.attempts.ring(), 11);
        assert!(!default.attempts.slots.is_boxed());
        assert!(
            RetryPlanner::new(&ceiling_only(32, 60_000))
                .attempts
                .slots
                .is_boxed()
        );
        assert!(size_of::<AttemptLog>() <= 56);
    }

    #[test]
    fn stamps_weeks_apart_are_kept_whole_until_they_fit_again() {
        let config = ceiling_only(2, 60_000);
        let mut planner = RetryPlanner::new(&config);
        let mut jitter = Jitter::new(1);
        let near = |planner: &RetryPlanner| planner.attempts.is_near();
        const WEEK: u64 = 7 * 24 * 60 * 60 * 1_000;
        // A first attempt late on the clock: the ring is rebased on it.
        planner.attempt_started(t(5 * WEEK));
        planner.attempt_reached(t(5 * WEEK + 10));
        let _ = end(&mut planner, 5 * WEEK + 20, DROPPED, &config, &mut jitter);
        assert!(near(&planner));
        // Five weeks later: too far apart for 32-bit offsets.
        planner.attempt_started(t(10 * WEEK));
        planner.attempt_reached(t(10 * WEEK + 10));
        assert!(!near(&planner));
        assert_eq!(
            end(&mut planner, 10 * WEEK + 20, DROPPED, &config, &mut jitter),
            t(5 * WEEK + 10 + 60_000).max(t(10 * WEEK + 20))
        );
        // Two more attempts overwrite the old one (a ring of three): near
        // again, and the ceiling counts the last two.
        for i in 1..=2 {
            planner.attempt_started(t(10 * WEEK + i * 1_000));
            planner.attempt_reached(t(10 * WEEK + i * 1_000 + 10));
            let _ = end(
                &mut planner,
                10 * WEEK + i * 1_000 + 20,
                DROPPED,
                &config,
                &mut jitter,
            );
        }
        assert!(near(&planner));
        assert_eq!(
            planner.rate_floor(t(10 * WEEK + 3_000), &config),
            Some(t(10 * WEEK + 1_010 + 60_000))
        );
    }

    #[test]
    fn a_ceiling_of_one_waits_a_window_after_the_last_attempt_only() {
        let config = ceiling_only(1, 60_000);
        let mut planner = RetryPlanner::new(&config);
        let mut jitter = Jitter::new(1);
        for i in 0..5 {
            planner.attempt_started(t(i * 100_000));
            planner.attempt_reached(t(i * 100_000 + 50));
            assert_eq!(
                end(
                    &mut planner,
                    i * 100_000 + 70,
                    DROPPED,
                    &config,
                    &mut jitter
                ),
                t(i * 100_000 + 60_050)
            );
        }
        // One that never reached the gateway frees its slot: the last
        // counted attempt still rules.
        planner.attempt_started(t(500_000));
        assert_eq!(
            end(
                &mut planner,
                500_010,
                failed(ConnectFailure::Dns),
                &config,
                &mut jitter
            ),
            t(460_050).max(t(500_010))
        );
        planner.attempt_started(t(500_020));
        planner.attempt_reached(t(500_030));
        assert_eq!(
            end(&mut planner, 500_040, DROPPED, &config, &mut jitter),
            t(560_030)
        );
    }

    #[test]
    fn a_ceiling_of_thirty_two_counts_thirty_two_attempts() {
        let config = ceiling_only(32, 600_000);
        let mut planner = RetryPlanner::new(&config);
        let mut jitter = Jitter::new(1);
        for i in 0..31 {
            planner.attempt_started(t(i * 1_000));
            planner.attempt_reached(t(i * 1_000 + 10));
            // Fewer than 32 counted: no floor.
            assert_eq!(
                end(&mut planner, i * 1_000 + 20, DROPPED, &config, &mut jitter),
                t(i * 1_000 + 20)
            );
        }
        planner.attempt_started(t(31_000));
        planner.attempt_reached(t(31_010));
        assert_eq!(
            end(&mut planner, 31_020, DROPPED, &config, &mut jitter),
            t(600_010)
        );
        // The 33rd overwrites nothing that still counts: the ring holds 33.
        planner.attempt_started(t(600_010));
        planner.attempt_reached(t(600_020));
        assert_eq!(
            end(&mut planner, 600_030, DROPPED, &config, &mut jitter),
            t(601_010)
        );
    }

    #[test]
    fn a_sized_log_keeps_stamps_of_a_clock_that_steps_back_and_the_end_of_time() {
        let config = ceiling_only(2, 60_000);
        let mut planner = RetryPlanner::new(&config);
        let mut jitter = Jitter::new(1);
        planner.attempt_started(t(10_000));
        planner.attempt_reached(t(5_000));
        let _ = end(&mut planner, 4_000, DROPPED, &config, &mut jitter);
        planner.attempt_started(t(2_000));
        planner.attempt_reached(t(1_000));
        // Stamped at their dials (10 000 and 2 000): the earlier rules.
        assert_eq!(
            end(&mut planner, 1_500, DROPPED, &config, &mut jitter),
            t(62_000)
        );
        for _ in 0..3 {
            planner.attempt_started(Timestamp::MAX);
            planner.attempt_reached(Timestamp::MAX);
            assert_eq!(
                end(&mut planner, u64::MAX, DROPPED, &config, &mut jitter),
                Timestamp::MAX
            );
        }
        // In flight at the end of time: the bound saturates.
        planner.attempt_started(Timestamp::MAX);
        assert_eq!(
            planner.rate_floor(Timestamp::MAX, &config),
            Some(Timestamp::MAX)
        );
    }

    #[test]
    fn a_window_of_zero_turns_the_ceiling_off() {
        let config = ceiling_only(1, 0);
        let mut planner = RetryPlanner::new(&config);
        planner.attempt_started(t(0));
        assert_eq!(planner.rate_floor(t(0), &config), None);
    }

    /// The guarantee itself: dials at the plans' times, each handshake
    /// reaching the gateway after a random latency (or not at all), the
    /// answer after another, sockets held for a random time that often
    /// repays the failure. The gateway never sees more than `max_attempts`
    /// handshakes within a window, whatever the latencies.
    #[test]
    fn whatever_the_latencies_the_gateway_never_sees_more_than_the_ceiling() {
        let config = PolicyConfig::default();
        let rule = config.attempt_rate;
        for seed in 0..40 {
            let mut planner = RetryPlanner::new(&config);
            let mut jitter = Jitter::new(seed);
            let mut links = Jitter::new(seed ^ 0x5eed);
            let mut arrivals = Vec::new();
            let mut now = 0;
            for _ in 0..400 {
                planner.attempt_started(t(now));
                // Slow or fast, so that an early handshake can arrive late.
                let out = links.below(2) * 2_500 + links.between(0, 500);
                let back = links.between(0, 500);
                let (ended, trigger, answered_since) = match links.below(10) {
                    // Answered, held long enough to repay its failure: the
                    // backoff stays short and the ceiling paces the shard.
                    0..=6 => {
                        arrivals.push(now + out);
                        let opened = now + out + back;
                        planner.attempt_reached(t(opened));
                        let held = links.between(2_000, 2_600);
                        (opened + held, DROPPED, Some(t(opened)))
                    }
                    // Reached the gateway, refused or unanswered in time.
                    7 => {
                        arrivals.push(now + out);
                        let trigger = if links.below(2) == 0 {
                            failed(ConnectFailure::Refused)
                        } else {
                            failed(ConnectFailure::TimedOut)
                        };
                        (now + out + back, trigger, None)
                    }
                    // Refused on the way, never reaching it.
                    8 => (now + out, failed(ConnectFailure::Refused), None),
                    // No name, or no TLS: never reaching it.
                    _ => (now + out, failed(ConnectFailure::Dns), None),
                };
                let plan = planner
                    .plan(
                        t(ended),
                        trigger,
                        Decision::Resume,
                        Recovery::Resume,
                        Ending {
                            answered_since,
                            ..Ending::default()
                        },
                        &config,
                        &mut jitter,
                    )
                    .unwrap();
                now = plan.at.as_millis();
            }
            arrivals.sort_unstable();
            let most = arrivals
                .iter()
                .map(|&a| {
                    arrivals
                        .iter()
                        .filter(|&&b| b >= a && b - a < rule.window_ms)
                        .count()
                })
                .max()
                .unwrap();
            assert!(
                most <= rule.max_attempts as usize,
                "seed {seed}: {most} handshakes within {} ms",
                rule.window_ms
            );
        }
    }

    // ----- the attempt log against a plain reference --------------------

    /// A slot of [`ReferenceLog`].
    #[derive(Clone, Copy, Debug)]
    enum ReferenceSlot {
        InFlight { dialled: Timestamp },
        Reached { by: Timestamp },
    }

    /// The attempt ceiling written the plain way: a ring of optional
    /// slots, and on every question all counted bounds collected and
    /// sorted. What [`AttemptLog`] keeps incrementally must answer exactly
    /// as this does, with a ring of the same size; with the largest ring
    /// ([`RING`]) it must answer the same for any sequence a
    /// [`Policy`](crate::Policy) can report.
    struct ReferenceLog {
        slots: Vec<Option<ReferenceSlot>>,
        next_slot: usize,
    }

    impl ReferenceLog {
        fn new(ring: usize) -> Self {
            Self {
                slots: vec![None; ring],
                next_slot: 0,
            }
        }

        /// A ring of the size the planner gives `config`'s ceiling.
        fn sized_for(config: &PolicyConfig) -> Self {
            Self::new(looks_back(config.attempt_rate) + 1)
        }

        const fn last_slot(&self) -> usize {
            (self.next_slot + self.slots.len() - 1) % self.slots.len()
        }

        fn started(&mut self, now: Timestamp) {
            self.slots[self.next_slot] = Some(ReferenceSlot::InFlight { dialled: now });
            self.next_slot = (self.next_slot + 1) % self.slots.len();
        }

        fn reached(&mut self, now: Timestamp) {
            let slot = self.last_slot();
            if let Some(ReferenceSlot::InFlight { dialled }) = self.slots[slot] {
                self.slots[slot] = Some(ReferenceSlot::Reached {
                    by: now.max(dialled),
                });
            }
        }

        fn ended(&mut self, now: Timestamp, trigger: Trigger) {
            let slot = self.last_slot();
            let Some(ReferenceSlot::InFlight { dialled }) = self.slots[slot] else {
                return;
            };
            if never_reached(trigger) {
                self.slots[slot] = None;
                self.next_slot = slot;
            } else {
                self.slots[slot] = Some(ReferenceSlot::Reached {
                    by: now.max(dialled),
                });
            }
        }

        fn rate_floor(&self, now: Timestamp, config: &PolicyConfig) -> Option<Timestamp> {
            let rule = config.attempt_rate;
            if rule.window_ms == 0 {
                return None;
            }
            let back = looks_back(rule).min(self.slots.len() - 1);
            let mut bounds: Vec<Timestamp> = self
                .slots
                .iter()
                .flatten()
                .map(|slot| match *slot {
                    ReferenceSlot::InFlight { dialled } => {
                        dialled.saturating_add(config.timeouts.connect_ms).max(now)
                    }
                    ReferenceSlot::Reached { by } => by,
                })
                .collect();
            bounds.sort_unstable();
            let at = bounds.len().checked_sub(back)?;
            Some(bounds[at].saturating_add(rule.window_ms))
        }
    }

    /// What happens to the shard's attempts, one step of a sequence.
    #[derive(Clone, Copy, Debug)]
    enum LogStep {
        Start,
        Reached,
        Ended(Trigger),
        /// Only the clock moves.
        Wait,
    }

    fn log_step() -> impl proptest::strategy::Strategy<Value = LogStep> {
        use proptest::prelude::*;
        prop_oneof![
            4 => Just(LogStep::Start),
            3 => Just(LogStep::Reached),
            1 => Just(LogStep::Ended(DROPPED)),
            1 => Just(LogStep::Ended(failed(ConnectFailure::Refused))),
            1 => Just(LogStep::Ended(failed(ConnectFailure::TimedOut))),
            1 => Just(LogStep::Ended(failed(ConnectFailure::Dns))),
            1 => Just(LogStep::Ended(failed(ConnectFailure::Tls))),
            1 => Just(LogStep::Wait),
        ]
    }

    /// How far the clock moves before a step: mostly forward by a little,
    /// sometimes back, sometimes anywhere at all.
    fn clock_step() -> impl proptest::strategy::Strategy<Value = i128> {
        use proptest::prelude::*;
        prop_oneof![
            8 => 0..20_000i128,
            2 => -20_000..0i128,
            1 => any::<u64>().prop_map(|to| -i128::from(to)),
            1 => any::<u64>().prop_map(i128::from),
        ]
    }

    /// Ceilings the answers are compared under: the default, the extremes
    /// of `max_attempts` (and values past them, which are clamped), windows
    /// and connect deadlines up to the end of time.
    fn ceilings() -> Vec<PolicyConfig> {
        let mut configs = Vec::new();
        for max_attempts in [1, 2, 10, 32, u32::MAX, 0] {
            for (window_ms, connect_ms) in [(60_000, 30_000), (u64::MAX, u64::MAX)] {
                let mut config = ceiling_only(max_attempts, window_ms);
                config.timeouts.connect_ms = connect_ms;
                configs.push(config);
            }
        }
        configs
    }

    mod against_a_sort {
        use proptest::prelude::*;

        use super::*;

        /// Applies `step` at `now` to the planner and the reference.
        fn apply(
            planner: &mut RetryPlanner,
            reference: &mut ReferenceLog,
            now: Timestamp,
            step: LogStep,
        ) {
            match step {
                LogStep::Start => {
                    planner.attempt_started(now);
                    reference.started(now);
                }
                LogStep::Reached => {
                    planner.attempt_reached(now);
                    reference.reached(now);
                }
                LogStep::Ended(trigger) => {
                    planner.attempt_ended(now, trigger);
                    reference.ended(now, trigger);
                }
                LogStep::Wait => {}
            }
        }

        proptest! {
            /// After every step of any sequence (clocks that step back, the end
            /// of time, many more attempts than the ring holds, attempts
            /// started while others are in flight), the ceiling kept
            /// incrementally answers exactly as the plain sort of every
            /// counted bound in a ring of the same size does, under every
            /// ceiling (each with the log sized for it), and under the
            /// others too (smaller or larger than it was sized for).
            #[test]
            fn the_attempt_log_answers_as_a_sort_of_every_bound(
                start in prop_oneof![Just(0u64), Just(u64::MAX - 100_000), any::<u64>()],
                steps in proptest::collection::vec((clock_step(), log_step()), 0..300),
            ) {
                let configs = ceilings();
                let mut shards: Vec<(RetryPlanner, ReferenceLog)> = configs
                    .iter()
                    .map(|config| (RetryPlanner::new(config), ReferenceLog::sized_for(config)))
                    .collect();
                let mut clock = i128::from(start);
                for (moved, step) in steps {
                    clock = (clock + moved).clamp(0, i128::from(u64::MAX));
                    let now = t(u64::try_from(clock).unwrap_or(u64::MAX));
                    for (planner, reference) in &mut shards {
                        apply(planner, reference, now, step);
                        // Near whenever the stamps fit, whole only when not.
                        let log = &planner.attempts;
                        let stamps: Vec<Timestamp> =
                            (0..log.ring()).filter_map(|i| log.slot(i).stamp()).collect();
                        let span = match (stamps.iter().min(), stamps.iter().max()) {
                            (Some(&first), Some(&last)) => last.as_millis() - (first.as_millis() & BASE_BITS),
                            _ => 0,
                        };
                        prop_assert_eq!(
                            log.is_near(),
                            span <= NEAR_MAX_OFFSET
                        );
                        for config in &configs {
                            prop_assert_eq!(
                                planner.rate_floor(now, config),
                                reference.rate_floor(now, config),
                                "{:?}",
                                config.attempt_rate
                            );
                        }
                    }
                }
            }

            /// For the sequences a [`Policy`](crate::Policy) reports (its
            /// clock never steps back, the driver's earlier times being
            /// raised to the latest; an attempt starts only once the last
            /// one has ended), the log sized for the ceiling answers exactly
            /// as the largest ring does: sizing it by the configuration
            /// changes no plan.
            #[test]
            fn a_log_sized_by_the_ceiling_answers_as_the_largest_ring(
                start in prop_oneof![Just(0u64), Just(u64::MAX - 100_000), any::<u64>()],
                steps in proptest::collection::vec(
                    (prop_oneof![8 => 0..20_000u64, 1 => any::<u64>()], log_step()),
                    0..400,
                ),
            ) {
                let configs = ceilings();
                let mut shards: Vec<(RetryPlanner, ReferenceLog)> = configs
                    .iter()
                    .map(|config| (RetryPlanner::new(config), ReferenceLog::new(RING)))
                    .collect();
                let mut now = t(start);
                for (moved, step) in steps {
                    now = now.saturating_add(moved);
                    for ((planner, reference), config) in shards.iter_mut().zip(&configs) {
                        let step = match step {
                            LogStep::Start if planner.attempts.last_in_flight() => LogStep::Wait,
                            step => step,
                        };
                        apply(planner, reference, now, step);
                        prop_assert_eq!(
                            planner.rate_floor(now, config),
                            reference.rate_floor(now, config),
                            "{:?}",
                            config.attempt_rate
                        );
                    }
                }
            }
        }
    }
}
