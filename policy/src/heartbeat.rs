//! Heartbeats and zombie detection for one open connection.
//!
//! After Hello the first heartbeat goes out at `interval × U[0, 1)` (the
//! gateway's own measure against herds; at least 1 ms after Hello), then one
//! every interval. When a
//! heartbeat falls due and the previous one was never acknowledged, the
//! connection is a zombie: the policy closes it with a resumable code and
//! resumes. Whether any inbound frame also counts as a sign of life is the
//! [`ZombieRule`].

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

/// The heartbeat schedule of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Heartbeat {
    interval_ms: u64,
    next_at: Timestamp,
    /// A heartbeat was sent and nothing has answered it yet.
    awaiting: bool,
    /// When the last heartbeat was sent.
    sent_at: Option<Timestamp>,
    /// Round trip of the last acknowledged heartbeat.
    latency_ms: Option<u64>,
    /// A check asked for (see [`Heartbeat::check`]): the next heartbeat
    /// must be answered within this many ms.
    check_ms: Option<u64>,
}

impl Heartbeat {
    /// Starts the schedule on Hello.
    pub(crate) fn start(now: Timestamp, interval_ms: u64, jitter: &mut Jitter) -> Self {
        let interval_ms = interval_ms.clamp(MIN_HEARTBEAT_INTERVAL_MS, MAX_HEARTBEAT_INTERVAL_MS);
        // Never at Hello's own instant: a timer due at the time of the input
        // that set it would wait for a `handle_timeout` the driver has no
        // reason to make (its wake-up time would not be in the future).
        let first = jitter.below(interval_ms).max(1);
        Self {
            interval_ms,
            next_at: now.saturating_add(first),
            awaiting: false,
            sent_at: None,
            latency_ms: None,
            check_ms: None,
        }
    }

    pub(crate) const fn interval_ms(&self) -> u64 {
        self.interval_ms
    }

    pub(crate) const fn next_at(&self) -> Timestamp {
        self.next_at
    }

    pub(crate) const fn latency_ms(&self) -> Option<u64> {
        self.latency_ms
    }

    /// Called when `now >= next_at`.
    pub(crate) fn fire(&mut self, now: Timestamp) -> Beat {
        if self.awaiting {
            return Beat::Zombie;
        }
        self.awaiting = true;
        self.sent_at = Some(now);
        // Keep the cadence even if the driver woke late, but never schedule
        // in the past (a late wake-up must not cause a burst).
        self.next_at = match self.check_ms.take() {
            Some(within) => now.saturating_add(within.max(1)),
            None => self
                .next_at
                .saturating_add(self.interval_ms)
                .max(now.saturating_add(1)),
        };
        Beat::Send
    }

    /// Asks whether the connection is still alive: a heartbeat goes out at
    /// the next timer (or the one already out counts), and a missing answer
    /// `within_ms` after it was sent is a zombie.
    pub(crate) fn check(&mut self, now: Timestamp, within_ms: u64) {
        if self.awaiting {
            let by = self.sent_at.unwrap_or(now).saturating_add(within_ms);
            self.next_at = self.next_at.min(by.max(now.saturating_add(1)));
        } else {
            self.check_ms = Some(within_ms);
            self.next_at = self.next_at.min(now.saturating_add(1));
        }
    }

    /// A Heartbeat ACK arrived. Returns whether it answered a heartbeat.
    pub(crate) fn ack(&mut self, now: Timestamp) -> bool {
        if !self.awaiting {
            return false;
        }
        self.awaiting = false;
        self.latency_ms = self.sent_at.map(|sent| now.saturating_since(sent));
        true
    }

    /// Any other frame arrived.
    pub(crate) fn activity(&mut self, rule: ZombieRule) {
        if rule == ZombieRule::AnyFrame {
            self.awaiting = false;
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
