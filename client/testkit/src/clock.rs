//! The testkit's clock: tokio's monotonic time mapped to the policy's
//! millisecond [`Timestamp`]s, so the loopback gateway's records and the
//! fault proxy's schedules read the same time a test pausing tokio sees.
//!
//! It has the same shape as the client's own clock, but the testkit keeps
//! its own copy (a few lines) so that it does not depend on the client.

use std::time::Duration;

use reconnect_policy::Timestamp;
use tokio::time::Instant;

/// Anything further away than this is "never" (100 years, in ms).
const FAR_FUTURE_MS: u64 = 100 * 365 * 24 * 60 * 60 * 1000;

/// A monotonic clock whose epoch is the moment it was started.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose epoch (`Timestamp` 0) is now.
    #[must_use]
    pub fn start() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// The current time, in ms since the epoch (rounded down).
    #[must_use]
    pub fn now(&self) -> Timestamp {
        let ms = Instant::now()
            .saturating_duration_since(self.origin)
            .as_millis();
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

    /// `at` on this clock, read on `other`: the same instant in `other`'s
    /// milliseconds (0 if it came before `other` started). Two servers'
    /// records (the gateway's and the proxy's, say) are compared this way.
    #[must_use]
    pub fn translate(&self, at: Timestamp, other: Self) -> Timestamp {
        let ms = self
            .instant_at(at)
            .saturating_duration_since(other.origin)
            .as_millis();
        Timestamp::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}
