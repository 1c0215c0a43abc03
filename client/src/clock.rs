//! The client's one clock: tokio's monotonic time, read in a single place
//! and mapped to the policy's millisecond [`Timestamp`]s.
//!
//! The policy never reads a clock; the driver passes `now` in. Every time
//! the crate needs (the driver's `now`, the figures' uptime, the loopback
//! gateway's and the tests' measurements) comes from [`Clock::now`], which
//! reads [`tokio::time::Instant`], so tests that pause tokio's time see the
//! paused clock.

use std::time::Duration;

use reconnect_policy::Timestamp;
use tokio::time::Instant;

/// Anything further away than this is "never" (100 years, in ms).
const FAR_FUTURE_MS: u64 = 100 * 365 * 24 * 60 * 60 * 1000;

/// A monotonic clock whose epoch is the moment it was started.
///
/// Copies share the epoch, so every shard of one bot (and its identify
/// limiter) should share one clock; see
/// [`IdentifyShare`](crate::IdentifyShare).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose epoch (`Timestamp` 0) is now.
    #[must_use]
    pub fn start() -> Self {
        Self {
            origin: read_monotonic_clock(),
        }
    }

    /// The current time, in ms since the epoch.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.timestamp_of(read_monotonic_clock())
    }

    /// The time since the epoch.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        read_monotonic_clock().saturating_duration_since(self.origin)
    }

    /// The timestamp of an instant (0 for instants before the epoch;
    /// rounded down to the millisecond).
    #[must_use]
    pub fn timestamp_of(&self, instant: Instant) -> Timestamp {
        let ms = instant.saturating_duration_since(self.origin).as_millis();
        Timestamp::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// The instant of a timestamp, for sleeping until it. Timestamps more
    /// than a century away are read as a century away.
    #[must_use]
    pub fn instant_at(&self, at: Timestamp) -> Instant {
        let ms = at.as_millis().min(FAR_FUTURE_MS);
        self.origin
            .checked_add(Duration::from_millis(ms))
            .unwrap_or(self.origin)
    }
}

/// The crate's only read of a clock.
///
/// The workspace's `clippy.toml` forbids reading clocks because the policy
/// must stay sans-IO; the driver is where time enters, and it enters here.
/// tokio's `Instant::now` is used (rather than `std`'s) so that tests
/// running under `tokio::time::pause` get the paused clock.
#[allow(clippy::disallowed_methods)]
fn read_monotonic_clock() -> Instant {
    Instant::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paused_time_moves_the_clock_by_exactly_the_sleep() {
        let clock = Clock::start();
        assert_eq!(clock.now(), Timestamp::ZERO);
        tokio::time::sleep(Duration::from_millis(1_234)).await;
        assert_eq!(clock.now(), Timestamp::from_millis(1_234));
        assert_eq!(
            clock.timestamp_of(clock.instant_at(Timestamp::from_millis(99))),
            Timestamp::from_millis(99)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn far_timestamps_do_not_overflow() {
        let clock = Clock::start();
        let far = clock.instant_at(Timestamp::MAX);
        assert!(far > clock.instant_at(Timestamp::from_millis(1)));
        assert_eq!(clock.timestamp_of(far).as_millis(), FAR_FUTURE_MS);
    }
}
