//! Raw observations collected during a run, from which the report's
//! metrics are computed.
//!
//! The engine records what happens as it happens (attempt times per shard,
//! server arrivals per second, identify discipline, dispatch delivery per
//! session); [`Report::new`](crate::Report::new) turns them into the report. Nothing here
//! depends on wall time, so a report is a pure function of the scenario,
//! the strategy and the seed.

use crate::recent_times::RecentTimes;

/// Per-session delivery bookkeeping, 16 bytes a session (a fleet starts
/// one per shard, and more as shards identify again).
///
/// Each figure counts events of one session: the gateway's `s` grows by
/// one per dispatch or resume it handles, and each dispatch handed to the
/// bot is an event of its own. A run's event budget
/// ([`Budget`](crate::Budget), 2·10^9 by default) keeps them below the
/// 2^32 a `u32` holds; past it they saturate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionTally {
    /// Events the gateway generated for the session (its last `s`).
    pub generated: u32,
    /// The highest `s` the bot's code has been handed.
    pub max_delivered: u32,
    /// Distinct events handed to the bot's code.
    pub unique: u32,
    /// Events handed to the bot's code more than once.
    pub duplicates: u32,
}

/// What a session's dispatches handed to the bot's code come to, as the
/// run goes (the part of a [`SessionTally`] the bot's deliveries write).
/// 12 bytes: the engine keeps it beside the gateway's record of the
/// session, in one aligned 32-byte line (see
/// [`Gateway::session_half_mut`](crate::gateway::Gateway::session_half_mut)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryTally {
    /// The highest `s` the bot's code has been handed.
    pub max_delivered: u32,
    /// Distinct events handed to the bot's code.
    pub unique: u32,
    /// Events handed to the bot's code more than once.
    pub duplicates: u32,
}

impl DeliveryTally {
    /// The dispatch with sequence number `seq` was handed to the bot's
    /// code: a new one if above every one before, a duplicate otherwise.
    #[inline]
    pub fn count(&mut self, seq: u64) {
        if seq > u64::from(self.max_delivered) {
            self.max_delivered = u32::try_from(seq).unwrap_or(u32::MAX);
            self.unique = self.unique.saturating_add(1);
        } else {
            self.duplicates = self.duplicates.saturating_add(1);
        }
    }

    /// The session's whole tally, the gateway having generated
    /// `generated` events for it.
    #[must_use]
    pub fn with_generated(self, generated: u64) -> SessionTally {
        SessionTally {
            generated: u32::try_from(generated).unwrap_or(u32::MAX),
            max_delivered: self.max_delivered,
            unique: self.unique,
            duplicates: self.duplicates,
        }
    }
}

/// The counts the engine keeps as the run goes. The report judges the
/// difference between their values at the end and at the moment judging
/// began ([`Recorder::count_at_judging`]), so start-up is never counted as
/// part of a fault.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Handshakes the server turned away for lack of capacity (only under an
    /// assumed admission cap).
    pub rejected: u64,
    /// Dials that never reached the gateway: the link refused them.
    pub refused_dials: u64,
    /// Identify payloads received.
    pub identifies: u64,
    /// Resume payloads received.
    pub resumes: u64,
    /// RESUMED sent.
    pub resumes_succeeded: u64,
    /// Identify payloads inside a bucket's 5 s window, less the tolerance.
    pub identify_violations: u64,
    /// Identify payloads inside a bucket's 5 s window with no tolerance.
    pub identify_violations_strict: u64,
    /// Identify payloads from a shard whose session could still be resumed.
    pub identifies_while_resumable: u64,
    /// Sessions started (READY sent).
    pub session_starts: u64,
    /// Sessions the gateway expired: detached for the whole resume window.
    pub sessions_expired: u64,
    /// Client-initiated closes on a socket nothing was wrong with.
    pub healthy_link_reconnects: u64,
    /// Attempts made after the client had been told a close code the docs
    /// mark "do not reconnect".
    pub retries_after_fatal: u64,
    /// Sessions lost by a shard (established → not).
    pub disconnects: u64,
}

impl std::ops::Sub for Counters {
    type Output = Self;

    fn sub(self, o: Self) -> Self {
        Self {
            rejected: self.rejected.saturating_sub(o.rejected),
            refused_dials: self.refused_dials.saturating_sub(o.refused_dials),
            identifies: self.identifies.saturating_sub(o.identifies),
            resumes: self.resumes.saturating_sub(o.resumes),
            resumes_succeeded: self.resumes_succeeded.saturating_sub(o.resumes_succeeded),
            identify_violations: self
                .identify_violations
                .saturating_sub(o.identify_violations),
            identify_violations_strict: self
                .identify_violations_strict
                .saturating_sub(o.identify_violations_strict),
            identifies_while_resumable: self
                .identifies_while_resumable
                .saturating_sub(o.identifies_while_resumable),
            sessions_expired: self.sessions_expired.saturating_sub(o.sessions_expired),
            session_starts: self.session_starts.saturating_sub(o.session_starts),
            healthy_link_reconnects: self
                .healthy_link_reconnects
                .saturating_sub(o.healthy_link_reconnects),
            retries_after_fatal: self
                .retries_after_fatal
                .saturating_sub(o.retries_after_fatal),
            disconnects: self.disconnects.saturating_sub(o.disconnects),
        }
    }
}

/// The most times recorded inside any window of a fixed length, for each
/// of a table's entries (a fleet's shards, or one entry for the whole
/// fleet), kept as they arrive (in non-decreasing order per entry), so
/// memory is bounded by the times inside one window rather than by the
/// length of the run.
///
/// Only times from [`WindowPeaks::begin_judging`] on count; each entry's
/// peak is the figure [`max_in_window`] gives over its sorted times from
/// then on. What every entry shares (the window's length, whether judging
/// has begun, and the count of times judged, which the report only ever
/// sums) is kept once here, so an entry is 32 bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowPeaks {
    /// The window's length, ms.
    window: u32,
    /// Whether judging has begun.
    judging: bool,
    /// Times counted since judging began, all entries together.
    count: u64,
    /// Each entry's times and peak.
    entries: Vec<WindowPeak>,
}

impl WindowPeaks {
    /// `entries` empty entries, counting over windows of `window` ms.
    #[must_use]
    pub fn new(window: u32, entries: usize) -> Self {
        Self {
            window,
            judging: false,
            count: 0,
            entries: vec![WindowPeak::default(); entries],
        }
    }

    /// A time for entry `i`, no earlier than that entry's time before it
    /// (an entry the table does not have is ignored).
    #[inline]
    pub fn push(&mut self, i: usize, at: u32) {
        let Some(entry) = self.entries.get_mut(i) else {
            return;
        };
        entry.push(at, self.window, self.judging);
        if self.judging {
            self.count = self.count.saturating_add(1);
        }
    }

    /// Judging begins at `from`: times before it are forgotten, the ones at
    /// or after it (pushed at the same instant) count.
    pub fn begin_judging(&mut self, from: u32) {
        self.begin_judging_with(from, std::iter::empty());
    }

    /// A time for an entry its owner keeps outside the table (the engine
    /// keeps each shard's attempt window beside its link record, so that a
    /// dial reads one line for both), over the table's window and counted
    /// as one of the table's own; a missing entry is ignored, as a push
    /// for an entry the table does not have.
    #[inline]
    pub fn push_outside(&mut self, entry: Option<&mut WindowPeak>, at: u32) {
        let Some(entry) = entry else {
            return;
        };
        entry.push(at, self.window, self.judging);
        if self.judging {
            self.count = self.count.saturating_add(1);
        }
    }

    /// [`begin_judging`](Self::begin_judging), for the table's entries and
    /// for `outside`, the entries kept outside it
    /// ([`push_outside`](Self::push_outside)).
    pub fn begin_judging_with<'e>(
        &mut self,
        from: u32,
        outside: impl Iterator<Item = &'e mut WindowPeak>,
    ) {
        self.judging = true;
        let judge = |e: &mut WindowPeak| e.begin_judging(from) as u64;
        let own = self.entries.iter_mut().map(judge);
        let count = own.fold(0, u64::saturating_add);
        self.count = outside.map(judge).fold(count, u64::saturating_add);
    }

    /// Takes in the entries kept outside the table until now (see
    /// [`push_outside`](Self::push_outside)), in place of its own: entry
    /// `i` is the `i`-th of `entries`.
    pub fn adopt(&mut self, entries: Vec<WindowPeak>) {
        self.entries = entries;
    }

    /// Times counted since judging began, all entries together.
    #[must_use]
    pub const fn count(&self) -> u64 {
        self.count
    }

    /// The window's length, ms.
    #[must_use]
    pub const fn window(&self) -> u32 {
        self.window
    }

    /// Entry `i`, if the table has it.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<&WindowPeak> {
        self.entries.get(i)
    }

    /// The entries, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, WindowPeak> {
        self.entries.iter()
    }

    /// How many entries the table has.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One entry of [`WindowPeaks`]: its times inside the window ending at
/// the latest one, its peak and its first time.
///
/// 32 bytes, aligned to 32: a fleet keeps two per shard in tables,
/// allocated 16 bytes into a page, where unaligned every other entry
/// would lie across two cache lines and an attempt or a handshake would
/// read both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[repr(align(32))]
pub struct WindowPeak {
    /// The times inside the window ending at the latest one (inline while
    /// they are few).
    recent: RecentTimes,
    /// The most times inside one window since judging began.
    peak: u32,
    /// The first time ever pushed, judged or not (a time of
    /// `u32::MAX` ms, past 49.7 days, is kept as one ms less).
    first: MaybeMs,
}

impl WindowPeak {
    /// A time, no earlier than the one before it, over windows of
    /// `window` ms; the peak counts it if `judging`.
    #[inline]
    fn push(&mut self, at: u32, window: u32, judging: bool) {
        while self
            .recent
            .front()
            .is_some_and(|t| at.saturating_sub(t) >= window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(at);
        if self.first.is_none() {
            self.first = MaybeMs::at(u64::from(at));
        }
        if judging {
            let held = u32::try_from(self.recent.len()).unwrap_or(u32::MAX);
            self.peak = self.peak.max(held);
        }
    }

    /// Judging begins at `from`: times before it are forgotten; says how
    /// many are held, which count as judged.
    fn begin_judging(&mut self, from: u32) -> usize {
        self.recent.retain(|t| t >= from);
        let held = self.recent.len();
        self.peak = u32::try_from(held).unwrap_or(u32::MAX);
        held
    }

    /// The most times inside one window since judging began.
    #[must_use]
    pub const fn peak(&self) -> u32 {
        self.peak
    }

    /// The first time ever pushed, judged or not.
    #[must_use]
    pub fn first(&self) -> Option<u32> {
        // `MaybeMs::at` was given a u32, so the time fits.
        self.first
            .get()
            .map(|t| u32::try_from(t).unwrap_or(u32::MAX))
    }

    /// Times held now (at most the times inside one window).
    #[must_use]
    pub fn held(&self) -> usize {
        self.recent.len()
    }
}

/// A time of the run in ms, or none, in four bytes rather than an
/// `Option<u64>`'s sixteen (a fleet keeps one per shard).
///
/// A run lasts at most 7 days after a start-up of at most 7 days, far
/// below the 49.7 days a `u32` of ms holds; a later time is kept as the
/// latest one it holds, one ms short of that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaybeMs(u32);

impl MaybeMs {
    /// No time.
    pub const NONE: Self = Self(u32::MAX);

    /// The time `ms`.
    #[must_use]
    pub fn at(ms: u64) -> Self {
        Self(u32::try_from(ms).unwrap_or(u32::MAX).min(u32::MAX - 1))
    }

    /// The time, if there is one.
    #[must_use]
    pub fn get(self) -> Option<u64> {
        (self != Self::NONE).then_some(u64::from(self.0))
    }

    /// Whether there is a time.
    #[must_use]
    pub fn is_some(self) -> bool {
        self != Self::NONE
    }

    /// Whether there is none.
    #[must_use]
    pub fn is_none(self) -> bool {
        self == Self::NONE
    }
}

impl Default for MaybeMs {
    fn default() -> Self {
        Self::NONE
    }
}

impl From<Option<u64>> for MaybeMs {
    fn from(ms: Option<u64>) -> Self {
        ms.map_or(Self::NONE, Self::at)
    }
}

/// The longest per-second series kept: 7 simulated days and an hour (a
/// scenario runs at most 7 days, after a start-up).
pub const MAX_SERIES_SECONDS: usize = 7 * 24 * 3_600 + 3_600;

/// Everything the engine writes down.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Attempts per shard in any 60 s since judging began (times in ms;
    /// fit in u32 for runs up to 49 days). During a run the engine keeps
    /// each shard's window beside the shard's link record
    /// ([`Recorder::attempt_in`]) and hands them back at its end
    /// ([`WindowPeaks::adopt`]).
    pub attempts: WindowPeaks,
    /// Handshakes per shard reaching the gateway in any 60 s since judging
    /// began.
    pub arrivals: WindowPeaks,
    /// Handshakes reaching the gateway, all shards, in any 100 ms since
    /// judging began: one entry.
    pub arrivals_100ms: WindowPeaks,
    /// Client attempts per second of simulated time.
    pub attempts_per_s: Vec<u32>,
    /// Handshakes reaching the server per second.
    pub arrivals_per_s: Vec<u32>,
    /// Client attempts per second of the fault schedule, from judging on:
    /// index `i` is second `i` after [`Recorder::schedule_offset`]. Grows
    /// to the last second with an attempt (4 bytes a simulated second).
    pub attempts_per_schedule_s: Vec<u32>,
    /// When the fault schedule began, ms from the start, once scheduled.
    pub schedule_offset: Option<u64>,
    /// The latest millisecond with an attempt, and the attempts in it (the
    /// ones at the instant judging begins count).
    latest_attempts: (u64, u32),
    /// The counts so far.
    pub count: Counters,
    /// The counts when judging began (all zero for a whole-run judgement).
    pub count_at_judging: Counters,
    /// When every shard first had a session at once, ms from the start.
    pub startup_ms: Option<u64>,
    /// When judging began (the first fault, or the heal without one), ms
    /// from the start; `None` if the fleet never finished starting.
    pub judged_from: Option<u64>,
    /// The scenario's heal, ms from the start, once scheduled.
    pub heal_at: Option<u64>,
    /// The end of the run, ms from the start.
    pub end_at: u64,
    /// The shards judged: those with a session when judging began (every
    /// shard for a whole-run judgement).
    pub judged: Vec<bool>,
    /// The daily session start limit ran out (the token would be reset).
    pub token_reset: bool,
    /// Per session, by id. The engine fills it at the end of a run: while
    /// one goes, each session's [`DeliveryTally`] sits beside the
    /// gateway's record of the session.
    pub sessions: Vec<SessionTally>,
    /// Most sockets one shard's client held at once (dialling, open or
    /// closing). The gateway may hold more: it cannot see a half-open
    /// socket the client has already given up on.
    pub max_open_per_shard: u32,
    /// When each shard's current session was last established (READY or
    /// RESUMED sent on an open socket), or [`MaybeMs::NONE`] while it has
    /// none.
    pub established: Vec<MaybeMs>,
    /// Shards not established at the heal, and of those the ones with no
    /// resumable session (they must identify).
    pub down_at_heal: (u64, u64),
    /// The least time after the heal before the slowest shard could have a
    /// session again, by the gateway's own limits (see
    /// [`Report::recovery_lower_bound_ms`](crate::Report::recovery_lower_bound_ms)).
    pub lower_bound_ms: u64,
    /// Shards whose client stopped for good.
    pub gave_up: u64,
    /// The most sockets the table held at once.
    pub sockets_high_water: u64,
    /// The most events pending at once.
    pub queue_high_water: u64,
    /// Events processed.
    pub events: u64,
    /// A hash of every event processed, in order.
    pub trace_hash: u64,
}

impl Recorder {
    /// A recorder for `shards` shards over `duration_ms`.
    #[must_use]
    pub fn new(shards: u32, duration_ms: u64) -> Self {
        let seconds = usize::try_from(duration_ms / 1_000 + 1).unwrap_or(usize::MAX);
        Self {
            attempts: WindowPeaks::new(60_000, shards as usize),
            arrivals: WindowPeaks::new(60_000, shards as usize),
            arrivals_100ms: WindowPeaks::new(100, 1),
            attempts_per_s: vec![0; seconds],
            arrivals_per_s: vec![0; seconds],
            established: vec![MaybeMs::NONE; shards as usize],
            judged: vec![true; shards as usize],
            // One session per shard to begin with (see `Gateway::new`).
            sessions: Vec::with_capacity(shards as usize),
            trace_hash: 0xcbf2_9ce4_8422_2325,
            ..Self::default()
        }
    }

    /// The counts since judging began.
    #[must_use]
    pub fn judged_counts(&self) -> Counters {
        self.count - self.count_at_judging
    }

    /// Judging begins now, at `at` ms: from here on attempts and
    /// handshakes count.
    pub fn begin_judging(&mut self, at: u64) {
        self.begin_judging_with(at, std::iter::empty());
    }

    /// [`begin_judging`](Self::begin_judging), while the shards' attempt
    /// windows are `attempt_windows`, kept outside the recorder's table
    /// (see [`attempt_in`](Self::attempt_in)).
    pub fn begin_judging_with<'e>(
        &mut self,
        at: u64,
        attempt_windows: impl Iterator<Item = &'e mut WindowPeak>,
    ) {
        let from = u32::try_from(at).unwrap_or(u32::MAX);
        self.judged_from = Some(at);
        self.attempts.begin_judging_with(from, attempt_windows);
        self.arrivals.begin_judging(from);
        self.arrivals_100ms.begin_judging(from);
        self.attempts_per_schedule_s.clear();
        if let (Some(offset), (latest, n)) = (self.schedule_offset, self.latest_attempts)
            && latest == at
            && n > 0
        {
            let i = usize::try_from(at.saturating_sub(offset) / 1_000).unwrap_or(usize::MAX);
            if i < MAX_SERIES_SECONDS {
                self.attempts_per_schedule_s.resize(i.saturating_add(1), 0);
                self.attempts_per_schedule_s[i] = n;
            }
        }
    }

    /// Folds an event into the trace hash.
    pub fn trace(&mut self, at: u64, kind: u64, key: u64) {
        let mut h = self.trace_hash ^ at;
        h = crate::rng::mix(h ^ kind.rotate_left(40) ^ key);
        self.trace_hash = h;
        self.events += 1;
    }

    /// A client attempt, in the shard's window of the recorder's own table.
    pub fn attempt(&mut self, shard: u32, at: u64) {
        self.attempts
            .push(shard as usize, u32::try_from(at).unwrap_or(u32::MAX));
        self.count_attempt(at);
    }

    /// A client attempt, in `window`, the shard's attempt window kept
    /// outside the recorder's table until [`WindowPeaks::adopt`] hands it
    /// back (the engine keeps it beside the shard's link record).
    #[inline]
    pub fn attempt_in(&mut self, window: Option<&mut WindowPeak>, at: u64) {
        self.attempts
            .push_outside(window, u32::try_from(at).unwrap_or(u32::MAX));
        self.count_attempt(at);
    }

    /// The per-second series of an attempt at `at`.
    fn count_attempt(&mut self, at: u64) {
        if let Some(c) = self.attempts_per_s.get_mut((at / 1_000) as usize) {
            *c += 1;
        }
        if self.latest_attempts.0 == at {
            self.latest_attempts.1 = self.latest_attempts.1.saturating_add(1);
        } else {
            self.latest_attempts = (at, 1);
        }
        if let Some(offset) = self.schedule_offset {
            let i = usize::try_from(at.saturating_sub(offset) / 1_000).unwrap_or(usize::MAX);
            if i >= self.attempts_per_schedule_s.len() && i < MAX_SERIES_SECONDS {
                self.attempts_per_schedule_s.resize(i.saturating_add(1), 0);
            }
            if let Some(c) = self.attempts_per_schedule_s.get_mut(i) {
                *c = c.saturating_add(1);
            }
        }
    }

    /// A handshake from `shard` reaching the server.
    pub fn arrival(&mut self, shard: u32, at: u64) {
        let t = u32::try_from(at).unwrap_or(u32::MAX);
        self.arrivals.push(shard as usize, t);
        self.arrivals_100ms.push(0, t);
        if let Some(c) = self.arrivals_per_s.get_mut((at / 1_000) as usize) {
            *c += 1;
        }
    }

    /// A dispatch handed to the bot's code.
    pub fn delivered(&mut self, session: u32, seq: u64) {
        let Some(t) = self.sessions.get_mut(session as usize) else {
            return;
        };
        let mut delivered = DeliveryTally {
            max_delivered: t.max_delivered,
            unique: t.unique,
            duplicates: t.duplicates,
        };
        delivered.count(seq);
        *t = delivered.with_generated(u64::from(t.generated));
    }
}

/// The largest number of values of sorted `times` inside any window of
/// `window` ms (two pointers).
#[must_use]
pub fn max_in_window(times: &[u32], window: u32) -> u32 {
    let mut best = 0;
    let mut start = 0;
    for (end, &t) in times.iter().enumerate() {
        while t.saturating_sub(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    u32::try_from(best).unwrap_or(u32::MAX)
}

/// The value at quantile `q` (0 to 1) of `values`, by nearest rank; 0 when
/// empty. Sorts `values`.
#[must_use]
pub fn quantile(values: &mut [u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_attempts_closer_than_the_window() {
        assert_eq!(max_in_window(&[], 60_000), 0);
        assert_eq!(max_in_window(&[0, 59_999], 60_000), 2);
        assert_eq!(max_in_window(&[0, 60_000], 60_000), 1);
        assert_eq!(max_in_window(&[0, 1, 2, 70_000, 70_001], 60_000), 3);
    }

    #[test]
    fn window_peak_agrees_with_the_sorted_times_and_holds_one_window() {
        let mut times = Vec::new();
        let mut x = 7_u64;
        let mut t = 0_u32;
        for _ in 0..5_000 {
            x = crate::rng::mix(x);
            t += u32::try_from(x % 40).unwrap();
            times.push(t);
        }
        let from = times[1_000];
        // The times as entry 1 of a table, entry 0 getting every other one.
        let mut w = WindowPeaks::new(1_000, 2);
        for &t in &times[..1_001] {
            w.push(1, t);
        }
        w.begin_judging(from);
        let mut other = Vec::new();
        for (k, &t) in times[1_001..].iter().enumerate() {
            w.push(1, t);
            if k % 2 == 0 {
                w.push(0, t);
                other.push(t);
            }
            assert!(w.get(1).unwrap().held() <= 1_000, "only one window is held");
        }
        let judged: Vec<u32> = times.iter().copied().filter(|&t| t >= from).collect();
        let one = w.get(1).unwrap();
        assert_eq!(one.peak(), max_in_window(&judged, 1_000));
        assert_eq!(one.first(), Some(times[0]));
        assert_eq!(w.get(0).unwrap().peak(), max_in_window(&other, 1_000));
        assert_eq!(w.get(0).unwrap().first(), Some(times[1_001]));
        assert_eq!(w.count(), (judged.len() + other.len()) as u64);
        assert_eq!(w.window(), 1_000);
        // Pushes for an entry the table does not have are ignored.
        w.push(2, t);
        assert_eq!(w.count(), (judged.len() + other.len()) as u64);
        assert_eq!(w.len(), 2);
        assert!(WindowPeaks::default().is_empty());
    }

    #[test]
    fn a_window_entry_is_32_bytes_in_one_cache_line() {
        assert_eq!(size_of::<WindowPeak>(), 32);
        assert_eq!(align_of::<WindowPeak>(), 32);
    }

    #[test]
    fn a_maybe_time_is_four_bytes_and_keeps_every_time_of_a_run() {
        assert_eq!(size_of::<MaybeMs>(), 4);
        assert_eq!(MaybeMs::NONE.get(), None);
        assert_eq!(MaybeMs::default(), MaybeMs::NONE);
        assert!(MaybeMs::NONE.is_none() && !MaybeMs::NONE.is_some());
        let longest = 2 * crate::scenario::MAX_DURATION_MS;
        for ms in [0, 1, 41_250, longest] {
            assert_eq!(MaybeMs::at(ms).get(), Some(ms));
            assert_eq!(MaybeMs::from(Some(ms)).get(), Some(ms));
        }
        assert_eq!(MaybeMs::from(None), MaybeMs::NONE);
        // Past 49.7 days: the latest time it holds, never none.
        assert_eq!(MaybeMs::at(u64::MAX).get(), Some(u64::from(u32::MAX - 1)));
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&mut v, 0.5), 50);
        assert_eq!(quantile(&mut v, 0.99), 99);
        assert_eq!(quantile(&mut v, 1.0), 100);
        assert_eq!(quantile(&mut [], 0.5), 0);
    }

    #[test]
    fn deliveries_split_into_unique_and_duplicates() {
        let mut r = Recorder::new(1, 1_000);
        r.sessions.push(SessionTally::default());
        for seq in [1, 2, 2, 3, 1] {
            r.delivered(0, seq);
        }
        assert_eq!(r.sessions[0].unique, 3);
        assert_eq!(r.sessions[0].duplicates, 2);
        assert_eq!(r.sessions[0].max_delivered, 3);
        assert_eq!(size_of::<SessionTally>(), 16);
    }
}
