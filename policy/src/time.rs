//! Monotonic time as the policy sees it.
//!
//! The policy never reads a clock: every entry point takes a [`Timestamp`],
//! a count of milliseconds on a monotonic clock chosen by the driver (a
//! tokio `Instant` offset, a simulator's virtual time, ...). Arithmetic
//! saturates, so a timestamp near `u64::MAX` or a clock that steps backwards
//! never overflows or panics.

use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

/// A point on the driver's monotonic clock, in milliseconds.
///
/// Only differences between timestamps mean anything; the epoch is the
/// driver's choice. Millisecond resolution is enough for every rule the
/// gateway imposes (the finest is the 5 s identify window).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The clock's origin.
    pub const ZERO: Self = Self(0);
    /// The latest representable instant; used as "never".
    pub const MAX: Self = Self(u64::MAX);
    /// The latest instant the [`Policy`](crate::Policy) acts on: a later
    /// timestamp passed in is read as this one. It is 2^63 ms (292 million
    /// years) after the epoch, so a deadline computed from any accepted
    /// time can never saturate into "now" and make the policy spin.
    pub const CEILING: Self = Self(u64::MAX / 2);

    /// A timestamp `ms` milliseconds after the driver's epoch.
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the driver's epoch.
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The timestamp `since_epoch` after the driver's epoch, at millisecond
    /// resolution (sub-millisecond parts are dropped; a duration past
    /// `u64::MAX` ms reads as [`Timestamp::MAX`]).
    #[must_use]
    pub const fn from_duration(since_epoch: Duration) -> Self {
        let ms = since_epoch.as_millis();
        if ms > u64::MAX as u128 {
            Self::MAX
        } else {
            Self(ms as u64)
        }
    }

    /// The time since the driver's epoch, as a [`Duration`].
    #[must_use]
    pub const fn as_duration(self) -> Duration {
        Duration::from_millis(self.0)
    }

    /// `self + ms`, saturating at [`Timestamp::MAX`].
    #[must_use]
    pub const fn saturating_add(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// `self - ms`, saturating at [`Timestamp::ZERO`].
    #[must_use]
    pub const fn saturating_sub(self, ms: u64) -> Self {
        Self(self.0.saturating_sub(ms))
    }

    /// Milliseconds from `earlier` to `self`, or 0 when `earlier` is later.
    #[must_use]
    pub const fn saturating_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl From<Duration> for Timestamp {
    fn from(since_epoch: Duration) -> Self {
        Self::from_duration(since_epoch)
    }
}

impl From<Timestamp> for Duration {
    fn from(at: Timestamp) -> Self {
        at.as_duration()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Timestamp::MAX.saturating_add(1), Timestamp::MAX);
        assert_eq!(Timestamp::ZERO.saturating_sub(1), Timestamp::ZERO);
        assert_eq!(
            Timestamp::from_millis(5).saturating_since(Timestamp::from_millis(9)),
            0
        );
        assert_eq!(
            Timestamp::from_millis(9).saturating_since(Timestamp::from_millis(5)),
            4
        );
    }

    #[test]
    fn converts_from_and_to_durations() {
        let at = Timestamp::from(Duration::from_micros(5_999));
        assert_eq!(at, Timestamp::from_millis(5));
        assert_eq!(Duration::from(at), Duration::from_millis(5));
        assert_eq!(Timestamp::from(Duration::MAX), Timestamp::MAX);
        assert_eq!(
            Timestamp::MAX.as_duration(),
            Duration::from_millis(u64::MAX)
        );
    }

    #[test]
    fn serializes_as_a_plain_number() {
        let json = serde_json::to_string(&Timestamp::from_millis(42)).unwrap();
        assert_eq!(json, "42");
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Timestamp::from_millis(42));
    }
}
