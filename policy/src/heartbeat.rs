//! Heartbeats and zombie detection for one open connection.
//!
//! After Hello the first heartbeat goes out at `interval × U[0, 1)` (the
//! gateway's own measure against herds; at least 1 ms after Hello), then one
//! every interval. When a
//! heartbeat falls due and the previous one was never acknowledged, the
//! connection is a zombie: the policy closes it with a resumable code and
//! resumes. Whether any inbound frame also counts as a sign of life is the
//! [`ZombieRule`].

use core::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use crate::jitter::Jitter;
use crate::time::Timestamp;

/// The shortest heartbeat interval the policy accepts from Hello; shorter
/// values are raised to it (a hostile 0 would otherwise spin).
pub const MIN_HEARTBEAT_INTERVAL_MS: u64 = 1_000;
/// The longest heartbeat interval the policy accepts from Hello; longer
/// values are lowered to it, so zombie detection never waits for hours.
pub const MAX_HEARTBEAT_INTERVAL_MS: u64 = 300_000;

/// What proves that a connection is alive between two heartbeats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZombieRule {
    /// Only a Heartbeat ACK (op 11), as the gateway documentation says.
    #[default]
    AckOnly,
    /// Any inbound frame (as twilight and discord.py do): more tolerant of a
    /// gateway that is slow to ACK while it streams events.
    AnyFrame,
}

/// What a due heartbeat turns into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Send a heartbeat now.
    Send,
    /// The previous heartbeat was never answered.
    Zombie,
}

/// Where the heartbeat exchange stands: nothing out (with or without a
/// check asked for), or a heartbeat out since a time. A check is only ever
/// pending while no heartbeat is out (the next one takes it), and the time
/// a heartbeat was sent only matters until it is answered, so the two
/// share one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exchange {
    /// No heartbeat out, no check asked for.
    Idle,
    /// No heartbeat out; a check asked for (see [`Heartbeat::check`]): the
    /// next heartbeat must be answered within this many ms.
    Check(u64),
    /// A heartbeat was sent at this time and nothing has answered it yet.
    Awaiting(Timestamp),
}

/// "No latency measured yet", in [`Heartbeat`]'s `latency_ms`.
const NO_LATENCY: u32 = u32::MAX;

/// The heartbeat schedule of one connection (24 bytes: it is kept for
/// every open connection of a fleet).
///
/// The [`Exchange`] is stored apart: its time or its check in
/// `exchange_ms`, which of the three it is in the two top bits of
/// `interval`, whose value never needs more than 19. The interval is never
/// 0, so an `Option` of a schedule (or of what holds one) costs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Heartbeat {
    next_at: Timestamp,
    /// The time or the check of the exchange (0 while idle).
    exchange_ms: u64,
    /// The interval, within
    /// `MIN_HEARTBEAT_INTERVAL_MS..=MAX_HEARTBEAT_INTERVAL_MS`, in the low
    /// bits; the kind of the exchange in [`EXCHANGE_BITS`].
    interval: NonZeroU32,
    /// Round trip of the last acknowledged heartbeat, [`NO_LATENCY`] before
    /// any; saturates one below it (49.7 days: a heartbeat answered that
    /// late was declared a zombie long before by any driver that runs its
    /// timers).
    latency_ms: u32,
}

/// The bits of [`Heartbeat`]'s `interval` that say which [`Exchange`] it
/// is in.
const EXCHANGE_BITS: u32 = 0b11 << 30;
/// [`Exchange::Check`], in [`EXCHANGE_BITS`].
const EXCHANGE_CHECK: u32 = 0b01 << 30;
/// [`Exchange::Awaiting`], in [`EXCHANGE_BITS`].
const EXCHANGE_AWAITING: u32 = 0b10 << 30;

// The largest interval leaves the exchange's bits free.
const _: () = assert!(MAX_HEARTBEAT_INTERVAL_MS < 1 << 30);

impl Heartbeat {
    /// Starts the schedule on Hello.
    pub(crate) fn start(now: Timestamp, interval_ms: u64, jitter: &mut Jitter) -> Self {
        let interval_ms = interval_ms.clamp(MIN_HEARTBEAT_INTERVAL_MS, MAX_HEARTBEAT_INTERVAL_MS);
        // Never at Hello's own instant: a timer due at the time of the input
        // that set it would wait for a `handle_timeout` the driver has no
        // reason to make (its wake-up time would not be in the future).
        let first = jitter.below(interval_ms).max(1);
        // Clamped above to 1 000..=300 000, which fits and is not 0.
        let interval = u32::try_from(interval_ms)
            .ok()
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN);
        Self {
            next_at: now.saturating_add(first),
            exchange_ms: 0,
            interval,
            latency_ms: NO_LATENCY,
        }
    }

    pub(crate) const fn interval_ms(&self) -> u64 {
        (self.interval.get() & !EXCHANGE_BITS) as u64
    }

    /// Where the exchange stands.
    const fn exchange(&self) -> Exchange {
        match self.interval.get() & EXCHANGE_BITS {
            EXCHANGE_CHECK => Exchange::Check(self.exchange_ms),
            EXCHANGE_AWAITING => Exchange::Awaiting(Timestamp::from_millis(self.exchange_ms)),
            _ => Exchange::Idle,
        }
    }

    /// Moves the exchange to `exchange`.
    fn set_exchange(&mut self, exchange: Exchange) {
        let (bits, ms) = match exchange {
            Exchange::Idle => (0, 0),
            Exchange::Check(within) => (EXCHANGE_CHECK, within),
            Exchange::Awaiting(sent_at) => (EXCHANGE_AWAITING, sent_at.as_millis()),
        };
        self.exchange_ms = ms;
        // The interval's bits are at least 1 000: never 0.
        let interval = (self.interval.get() & !EXCHANGE_BITS) | bits;
        self.interval = NonZeroU32::new(interval).unwrap_or(self.interval);
    }

    pub(crate) const fn next_at(&self) -> Timestamp {
        self.next_at
    }

    pub(crate) const fn latency_ms(&self) -> Option<u64> {
        if self.latency_ms == NO_LATENCY {
            None
        } else {
            Some(self.latency_ms as u64)
        }
    }

    /// Called when `now >= next_at`.
    pub(crate) fn fire(&mut self, now: Timestamp) -> Beat {
        let check_ms = match self.exchange() {
            Exchange::Awaiting(_) => return Beat::Zombie,
            Exchange::Check(within) => Some(within),
            Exchange::Idle => None,
        };
        self.set_exchange(Exchange::Awaiting(now));
        // Keep the cadence even if the driver woke late, but never schedule
        // in the past (a late wake-up must not cause a burst).
        self.next_at = match check_ms {
            Some(within) => now.saturating_add(within.max(1)),
            None => self
                .next_at
                .saturating_add(self.interval_ms())
                .max(now.saturating_add(1)),
        };
        Beat::Send
    }

    /// Asks whether the connection is still alive: a heartbeat goes out at
    /// the next timer (or the one already out counts), and a missing answer
    /// `within_ms` after it was sent is a zombie.
    pub(crate) fn check(&mut self, now: Timestamp, within_ms: u64) {
        if let Exchange::Awaiting(sent_at) = self.exchange() {
            let by = sent_at.saturating_add(within_ms);
            self.next_at = self.next_at.min(by.max(now.saturating_add(1)));
        } else {
            self.set_exchange(Exchange::Check(within_ms));
            self.next_at = self.next_at.min(now.saturating_add(1));
        }
    }

    /// A Heartbeat ACK arrived. Returns whether it answered a heartbeat.
    pub(crate) fn ack(&mut self, now: Timestamp) -> bool {
        let Exchange::Awaiting(sent_at) = self.exchange() else {
            return false;
        };
        self.set_exchange(Exchange::Idle);
        self.latency_ms = u32::try_from(now.saturating_since(sent_at))
            .unwrap_or(u32::MAX)
            .min(NO_LATENCY - 1);
        true
    }

    /// Any other frame arrived.
    pub(crate) fn activity(&mut self, rule: ZombieRule) {
        if rule == ZombieRule::AnyFrame && matches!(self.exchange(), Exchange::Awaiting(_)) {
            self.set_exchange(Exchange::Idle);
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn first_beat_is_jittered_within_one_interval() {
        let mut rng = Jitter::new(9);
        let t0 = Timestamp::from_millis(1_000);
        let firsts: Vec<u64> = (0..200)
            .map(|_| {
                Heartbeat::start(t0, 41_250, &mut rng)
                    .next_at()
                    .saturating_since(t0)
            })
            .collect();
        assert!(firsts.iter().all(|&d| (1..41_250).contains(&d)));
        let distinct: std::collections::BTreeSet<_> = firsts.iter().collect();
        assert!(distinct.len() > 190, "jitter is dead: {}", distinct.len());
    }

    #[test]
    fn a_check_sends_at_once_and_wants_its_answer_soon() {
        let mut hb = Heartbeat::start(Timestamp::from_millis(0), 41_250, &mut Jitter::new(1));
        hb.check(Timestamp::from_millis(100), 3_000);
        assert_eq!(hb.next_at(), Timestamp::from_millis(101));
        assert_eq!(hb.fire(Timestamp::from_millis(101)), Beat::Send);
        assert_eq!(hb.next_at(), Timestamp::from_millis(3_101));
        assert_eq!(hb.fire(Timestamp::from_millis(3_101)), Beat::Zombie);
        // With a heartbeat already out, the answer is due within the check.
        let mut hb = Heartbeat::start(Timestamp::from_millis(0), 41_250, &mut Jitter::new(1));
        let first = hb.next_at();
        assert_eq!(hb.fire(first), Beat::Send);
        hb.check(first.saturating_add(10), 3_000);
        assert_eq!(hb.next_at(), first.saturating_add(3_000));
        // An answered check goes back to the interval.
        assert!(hb.ack(first.saturating_add(20)));
    }

    #[test]
    fn missing_ack_is_a_zombie() {
        let mut rng = Jitter::new(1);
        let mut hb = Heartbeat::start(Timestamp::ZERO, 10_000, &mut rng);
        let t = hb.next_at();
        assert_eq!(hb.fire(t), Beat::Send);
        assert_eq!(hb.fire(hb.next_at()), Beat::Zombie);
    }

    #[test]
    fn any_frame_counts_only_under_that_rule() {
        let mut rng = Jitter::new(1);
        let mut hb = Heartbeat::start(Timestamp::ZERO, 10_000, &mut rng);
        hb.fire(hb.next_at());
        hb.activity(ZombieRule::AckOnly);
        assert_eq!(hb.clone().fire(hb.next_at()), Beat::Zombie);
        hb.activity(ZombieRule::AnyFrame);
        assert_eq!(hb.fire(hb.next_at()), Beat::Send);
    }

    #[test]
    fn latency_is_measured_and_saturates() {
        let mut hb = Heartbeat::start(Timestamp::ZERO, 10_000, &mut Jitter::new(1));
        assert_eq!(hb.latency_ms(), None);
        let t = hb.next_at();
        assert_eq!(hb.fire(t), Beat::Send);
        assert!(hb.ack(t.saturating_add(42)));
        assert_eq!(hb.latency_ms(), Some(42));
        assert!(!hb.ack(t.saturating_add(43)), "nothing out");
        let t = hb.next_at();
        assert_eq!(hb.fire(t), Beat::Send);
        assert!(hb.ack(Timestamp::MAX));
        assert_eq!(hb.latency_ms(), Some(u64::from(u32::MAX - 1)));
        assert!(size_of::<Heartbeat>() <= 24);
        // Room for an `Option` of it at no cost.
        assert_eq!(size_of::<Option<Heartbeat>>(), size_of::<Heartbeat>());
    }

    #[test]
    fn hostile_intervals_are_clamped() {
        let mut rng = Jitter::new(1);
        assert_eq!(
            Heartbeat::start(Timestamp::ZERO, 0, &mut rng).interval_ms(),
            1_000
        );
        assert_eq!(
            Heartbeat::start(Timestamp::ZERO, u64::MAX, &mut rng).interval_ms(),
            300_000
        );
    }
}
