//! Identify rate limiting, shared by every shard of one bot.
//!
//! The gateway allows `max_concurrency` Identify payloads per 5 s, one per
//! bucket (`bucket = shard_id % max_concurrency`), and a daily number of
//! session starts (`session_start_limit`). Going over the first earns an
//! op 9; running out of the second terminates every session and resets the
//! bot's token. [`IdentifyLimiter`] keeps both, sans-IO: the time is passed
//! in. One limiter serves all shards of a bot. A shard's
//! [`Policy`](crate::Policy) never calls it: it emits
//! [`Action::Identify`](crate::Action::Identify) requests, which the driver
//! (or a [`Fleet`](crate::Fleet)) hands to [`IdentifyLimiter::answer`] and
//! whose answers it feeds back. A limiter in another task or process is just
//! another responder to the same requests. A shard asks three things:
//!
//! 1. before it connects to identify, it **reserves** a slot: shards of one
//!    bucket get slots one window apart, so a fleet that lost its sessions
//!    together reconnects in order instead of all at once;
//! 2. right before it sends Identify, it asks for a **grant**, which looks
//!    only at when Identify payloads were really sent and how they ended;
//! 3. when the Identify's outcome is known (READY received, or the
//!    connection ended), it **settles** it. The bucket's next grant comes no
//!    sooner than [`IDENTIFY_WINDOW_MS`] after that. READY can only arrive
//!    after the gateway received the Identify, so the next Identify of the
//!    bucket reaches the gateway more than 5 s after the previous one
//!    *whatever the network delays*: a retransmitted, late Identify can
//!    never end up less than 5 s before the next one.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::output::{IdentifyAnswer, IdentifyRequest};
use crate::time::Timestamp;

/// The gateway's identify window: one Identify per bucket per 5 s.
pub const IDENTIFY_WINDOW_MS: u64 = 5_000;
/// How long a daily session-start allowance lasts when the gateway does not
/// say (24 h).
pub const SESSION_START_PERIOD_MS: u64 = 24 * 60 * 60 * 1000;
/// How long an unused reservation keeps its claim on the daily allowance.
const RESERVATION_TTL_MS: u64 = 60_000;
/// How long an Identify that is never settled blocks its bucket: by then it
/// has reached the gateway or never will.
const IN_FLIGHT_TTL_MS: u64 = 60_000;
/// Extra wait after an Identify whose connection ended without READY: the
/// Identify may still have been on its way when the client gave up.
const UNSETTLED_MARGIN_MS: u64 = 2_000;
/// The longest a bucket stays shut after the Identify in it settles.
pub(crate) const SETTLE_HOLD_MS: u64 = IDENTIFY_WINDOW_MS + UNSETTLED_MARGIN_MS;
/// How often a shard asks again while another's Identify is out.
const IN_FLIGHT_POLL_MS: u64 = 250;

/// The session start limit, as `GET /gateway/bot` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionStartLimit {
    /// Session starts allowed per period.
    pub total: u32,
    /// Session starts left in the current period.
    pub remaining: u32,
    /// Milliseconds until `remaining` is back to `total`.
    pub reset_after_ms: u64,
    /// Identify payloads allowed per 5 s (the number of buckets); 0 is read
    /// as 1.
    pub max_concurrency: u16,
}

impl SessionStartLimit {
    /// What a new bot gets: 1000 starts a day, all left, one bucket.
    pub const DISCORD_DEFAULT: Self = Self {
        total: 1_000,
        remaining: 1_000,
        reset_after_ms: SESSION_START_PERIOD_MS,
        max_concurrency: 1,
    };
}

impl Default for SessionStartLimit {
    fn default() -> Self {
        Self::DISCORD_DEFAULT
    }
}

/// Counters a health check or the simulator can read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdentifyStats {
    /// Identify permits granted.
    pub granted: u64,
    /// Requests refused because the bucket's window was not over.
    pub refused_by_window: u64,
    /// Requests refused because the daily allowance was used up.
    pub refused_by_daily_limit: u64,
    /// Slots reserved.
    pub reserved: u64,
}

/// The in-process identify limiter for one bot.
///
/// ```
/// use reconnect_policy::{IdentifyLimiter, SessionStartLimit, Timestamp};
///
/// let t0 = Timestamp::from_millis(0);
/// let mut limiter = IdentifyLimiter::new(SessionStartLimit { max_concurrency: 2, ..SessionStartLimit::DISCORD_DEFAULT }, t0);
/// assert!(limiter.try_acquire(t0, 0).is_ok());
/// assert!(limiter.try_acquire(t0, 1).is_ok()); // another bucket
/// let retry_at = limiter.try_acquire(t0, 2).unwrap_err(); // bucket 0 again
/// assert!(retry_at >= Timestamp::from_millis(5_000));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentifyLimiter {
    window_ms: u64,
    /// Each bucket's grants.
    buckets: Vec<Bucket>,
    /// When each bucket's latest reservation window ends.
    booked_until: Vec<Timestamp>,
    /// Slots reserved and not yet granted (dropped once a minute old): each
    /// one is a session start that will be asked for. Kept in time order, so
    /// expiring, granting and counting cost O(log n), not O(n): one limiter
    /// serves a whole fleet, and each shard reserves.
    reservations: VecDeque<Timestamp>,
    total: u32,
    remaining: u32,
    reset_at: Timestamp,
    stats: IdentifyStats,
}

impl IdentifyLimiter {
    /// A limiter for a bot with this limit, as read at `now`.
    ///
    /// The window per bucket is [`IDENTIFY_WINDOW_MS`] plus a 250 ms safety
    /// margin, so that jitter in the time an Identify takes to reach the
    /// gateway cannot bring two of them under 5 s apart there.
    #[must_use]
    pub fn new(limit: SessionStartLimit, now: Timestamp) -> Self {
        let mut limiter = Self {
            window_ms: IDENTIFY_WINDOW_MS + 250,
            buckets: Vec::new(),
            booked_until: Vec::new(),
            reservations: VecDeque::new(),
            total: 0,
            remaining: 0,
            reset_at: now,
            stats: IdentifyStats::default(),
        };
        limiter.update(limit, now);
        limiter
    }

    /// Sets the spacing between two Identify payloads of one bucket (at
    /// least [`IDENTIFY_WINDOW_MS`]; smaller values are raised to it).
    #[must_use]
    pub fn with_window_ms(mut self, window_ms: u64) -> Self {
        self.window_ms = window_ms.max(IDENTIFY_WINDOW_MS);
        self
    }

    /// Applies a fresh `session_start_limit` read at `now`. The number of
    /// buckets may change; a bucket keeps its last grant when it survives.
    pub fn update(&mut self, limit: SessionStartLimit, now: Timestamp) {
        let buckets = usize::from(limit.max_concurrency.max(1));
        self.buckets.resize(buckets, Bucket::default());
        self.booked_until.resize(buckets, Timestamp::ZERO);
        self.total = limit.total;
        self.remaining = limit.remaining.min(limit.total);
        self.reset_at = now.saturating_add(limit.reset_after_ms);
    }

    /// Session starts left before the reset.
    #[must_use]
    pub const fn remaining(&self) -> u32 {
        self.remaining
    }

    /// When the daily allowance is next refilled.
    #[must_use]
    pub const fn reset_at(&self) -> Timestamp {
        self.reset_at
    }

    /// The number of buckets (`max_concurrency`).
    #[must_use]
    pub fn buckets(&self) -> u32 {
        u32::try_from(self.buckets.len()).unwrap_or(u32::MAX)
    }

    /// The bucket a shard identifies in.
    #[must_use]
    pub fn bucket_of(&self, shard: u32) -> usize {
        // `buckets()` is at least 1 and fits in usize.
        (shard % self.buckets().max(1)) as usize
    }

    /// Counters.
    #[must_use]
    pub const fn stats(&self) -> &IdentifyStats {
        &self.stats
    }

    fn refill(&mut self, now: Timestamp) {
        if now >= self.reset_at {
            self.remaining = self.total;
            // Periods are assumed to last 24 h until the gateway says otherwise.
            let periods = now.saturating_since(self.reset_at) / SESSION_START_PERIOD_MS + 1;
            self.reset_at = self
                .reset_at
                .saturating_add(periods.saturating_mul(SESSION_START_PERIOD_MS));
        }
    }

    /// The earliest instant (never before `now`) at which `shard` could
    /// identify, as far as the daily allowance and its bucket's window say.
    /// Reserves nothing.
    #[must_use]
    pub fn earliest(&self, now: Timestamp, shard: u32) -> Timestamp {
        let daily = if self.remaining == 0 && now < self.reset_at {
            self.reset_at
        } else {
            now
        };
        daily.max(self.window_free_at(shard)).max(now)
    }

    /// When the bucket's window allows the next grant, ignoring an
    /// Identify still out (an optimistic estimate for planning).
    fn window_free_at(&self, shard: u32) -> Timestamp {
        let b = &self.buckets[self.bucket_of(shard)];
        let window = match b.last_grant {
            Some(last) => last.saturating_add(self.window_ms),
            None => Timestamp::ZERO,
        };
        window.max(b.not_before)
    }

    /// Answers a shard's [`IdentifyRequest`] at `now`: `None` for
    /// [`IdentifyRequest::Settle`], which expects no answer.
    pub fn answer(
        &mut self,
        now: Timestamp,
        shard: u32,
        request: IdentifyRequest,
    ) -> Option<IdentifyAnswer> {
        match request {
            IdentifyRequest::ReserveStart => {
                Some(IdentifyAnswer::StartAt(self.reserve(now, shard)))
            }
            IdentifyRequest::Acquire => Some(match self.try_acquire(now, shard) {
                Ok(()) => IdentifyAnswer::Granted,
                Err(at) => IdentifyAnswer::RetryAt(at),
            }),
            IdentifyRequest::Settle { ready } => {
                self.settle(now, shard, ready);
                None
            }
        }
    }

    /// Books the next free slot of `shard`'s bucket and returns its start
    /// (never before `now`). Later reservations in the bucket start at
    /// least one window after it. A reservation is advice for when to
    /// connect; it is not a grant.
    pub fn reserve(&mut self, now: Timestamp, shard: u32) -> Timestamp {
        while self
            .reservations
            .front()
            .is_some_and(|slot| slot.saturating_add(RESERVATION_TTL_MS) <= now)
        {
            self.reservations.pop_front();
        }
        let bucket = self.bucket_of(shard);
        let mut slot = self.earliest(now, shard).max(self.booked_until[bucket]);
        // Once the reservations already out in this period cover what is
        // left of the daily allowance, the next shard waits for the refill
        // without a socket, instead of connecting only to be refused a
        // grant. (Reservations at or after the refill use the next period's.)
        let reset_at = self.reset_at;
        let outstanding = self.reservations.partition_point(|s| *s < reset_at);
        let outstanding = u64::try_from(outstanding).unwrap_or(u64::MAX);
        if now < self.reset_at && outstanding >= u64::from(self.remaining) {
            slot = slot.max(self.reset_at);
        }
        self.booked_until[bucket] = slot.saturating_add(self.window_ms);
        let at = self.reservations.partition_point(|s| *s <= slot);
        self.reservations.insert(at, slot);
        self.stats.reserved += 1;
        slot
    }

    /// Takes the right to send one Identify for `shard` now, or says when
    /// to ask again.
    ///
    /// # Errors
    ///
    /// `Err(retry_at)` when the bucket's window or the daily allowance is
    /// used up, or another Identify of the bucket is still out; `retry_at`
    /// is later than `now`.
    pub fn try_acquire(&mut self, now: Timestamp, shard: u32) -> Result<(), Timestamp> {
        self.refill(now);
        if self.remaining == 0 {
            self.stats.refused_by_daily_limit += 1;
            return Err(self.reset_at.max(now.saturating_add(1)));
        }
        let free_at = self.window_free_at(shard);
        if now < free_at {
            self.stats.refused_by_window += 1;
            return Err(free_at);
        }
        let bucket = self.bucket_of(shard);
        if let Some((_, granted)) = self.buckets[bucket].in_flight
            && now < granted.saturating_add(IN_FLIGHT_TTL_MS)
        {
            self.stats.refused_by_window += 1;
            return Err(now.saturating_add(IN_FLIGHT_POLL_MS));
        }
        self.buckets[bucket].last_grant = Some(now);
        self.buckets[bucket].in_flight = Some((shard, now));
        self.remaining -= 1;
        self.stats.granted += 1;
        // The grant uses up the earliest reservation, if one is due.
        if self.reservations.front().is_some_and(|slot| *slot <= now) {
            self.reservations.pop_front();
        }
        Ok(())
    }

    /// The outcome of `shard`'s granted Identify is known: READY arrived
    /// (`ready`), or the connection ended without it.
    pub fn settle(&mut self, now: Timestamp, shard: u32, ready: bool) {
        let bucket = self.bucket_of(shard);
        let b = &mut self.buckets[bucket];
        if b.in_flight.is_some_and(|(owner, _)| owner == shard) {
            b.in_flight = None;
            let wait = if ready {
                IDENTIFY_WINDOW_MS
            } else {
                IDENTIFY_WINDOW_MS + UNSETTLED_MARGIN_MS
            };
            b.not_before = b.not_before.max(now.saturating_add(wait));
        }
    }
}

/// One identify bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bucket {
    /// When it last granted an Identify.
    last_grant: Option<Timestamp>,
    /// The shard whose granted Identify is not settled yet, and when.
    in_flight: Option<(u32, Timestamp)>,
    /// No grant before this: a window after the last Identify settled.
    not_before: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn one_identify_per_bucket_per_window() {
        let mut l = IdentifyLimiter::new(
            SessionStartLimit {
                max_concurrency: 4,
                ..SessionStartLimit::DISCORD_DEFAULT
            },
            at(0),
        );
        for shard in 0..4 {
            assert!(l.try_acquire(at(0), shard).is_ok());
            l.settle(at(90), shard, true);
        }
        // Shard 4 is in bucket 0.
        assert_eq!(l.try_acquire(at(100), 4), Err(at(5_250)));
        assert_eq!(l.earliest(at(100), 4), at(5_250));
        assert!(l.try_acquire(at(5_249), 4).is_err());
        assert!(l.try_acquire(at(5_250), 4).is_ok());
        assert_eq!(l.stats().granted, 5);
    }

    #[test]
    fn daily_allowance_waits_for_the_reset() {
        let mut l = IdentifyLimiter::new(
            SessionStartLimit {
                total: 2,
                remaining: 1,
                reset_after_ms: 60_000,
                max_concurrency: 16,
            },
            at(0),
        );
        assert!(l.try_acquire(at(0), 0).is_ok());
        assert_eq!(l.try_acquire(at(10), 1), Err(at(60_000)));
        assert_eq!(l.earliest(at(10), 1), at(60_000));
        assert!(l.try_acquire(at(60_000), 1).is_ok());
        assert_eq!(l.remaining(), 1);
        assert_eq!(l.reset_at(), at(60_000 + SESSION_START_PERIOD_MS));
    }

    #[test]
    fn reservations_spread_a_bucket_one_window_apart() {
        let mut l = IdentifyLimiter::new(
            SessionStartLimit {
                max_concurrency: 2,
                ..SessionStartLimit::DISCORD_DEFAULT
            },
            at(0),
        );
        let slots: Vec<Timestamp> = (0..6).map(|shard| l.reserve(at(100), shard)).collect();
        assert_eq!(
            slots,
            [
                at(100),
                at(100),
                at(5_350),
                at(5_350),
                at(10_600),
                at(10_600)
            ]
        );
        // Grants still look at real sends only.
        assert!(l.try_acquire(at(100), 0).is_ok());
        assert_eq!(l.try_acquire(at(200), 2), Err(at(5_350)));
    }

    #[test]
    fn reservations_beyond_the_daily_allowance_wait_for_the_refill() {
        let mut l = IdentifyLimiter::new(
            SessionStartLimit {
                total: 100,
                remaining: 2,
                reset_after_ms: 600_000,
                max_concurrency: 16,
            },
            at(0),
        );
        let slots: Vec<Timestamp> = (0..4).map(|shard| l.reserve(at(10), shard)).collect();
        assert_eq!(slots, [at(10), at(10), at(600_000), at(600_000)]);
        // A grant uses a reservation up; an unused one lapses after a minute.
        assert!(l.try_acquire(at(10), 0).is_ok());
        assert_eq!(l.reserve(at(20), 5), at(600_000));
        assert_eq!(l.reserve(at(70_011), 6), at(70_011));
    }

    #[test]
    fn the_next_identify_waits_five_seconds_after_the_last_one_settled() {
        let mut l = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, at(0));
        assert!(l.try_acquire(at(0), 0).is_ok());
        // Its READY is slow (a retransmitted Identify): the bucket stays
        // shut while it is out, however long the window has been over.
        assert_eq!(l.try_acquire(at(6_000), 1), Err(at(6_250)));
        l.settle(at(7_000), 0, true);
        assert_eq!(l.try_acquire(at(7_000), 1), Err(at(12_000)));
        assert!(l.try_acquire(at(12_000), 1).is_ok());
        // Ended without READY: a margin on top, in case it was still on its way.
        l.settle(at(13_000), 1, false);
        assert_eq!(l.try_acquire(at(17_500), 2), Err(at(20_000)));
        // A settle from a shard whose Identify is not the one out changes nothing.
        assert!(l.try_acquire(at(20_000), 2).is_ok());
        l.settle(at(20_100), 7, true);
        assert!(l.try_acquire(at(30_000), 3).is_err());
        // An Identify never settled stops blocking after a minute.
        assert!(l.try_acquire(at(80_000), 3).is_ok());
    }

    #[test]
    fn zero_concurrency_is_read_as_one_bucket() {
        let l = IdentifyLimiter::new(
            SessionStartLimit {
                max_concurrency: 0,
                ..SessionStartLimit::DISCORD_DEFAULT
            },
            at(0),
        );
        assert_eq!(l.buckets(), 1);
        assert_eq!(l.bucket_of(u32::MAX), 0);
    }

    #[test]
    fn a_clock_that_steps_back_never_grants_early() {
        let mut l = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, at(10_000));
        assert!(l.try_acquire(at(10_000), 0).is_ok());
        assert!(l.try_acquire(at(1_000), 0).is_err());
    }
}
