//! What a health check can read: the policy's state and its counters.
//!
//! A policy keeps its counters compact ([`Counters`]: saturating `u32`s,
//! half the room of [`PolicyStats`]'s `u64`s, which matters once a fleet
//! holds 100,000 of them) and widens them into a [`PolicyStats`] when read.

use serde::{Deserialize, Serialize};

use crate::close_code::CloseCode;
use crate::decision::{GiveUpReason, Recovery};
use crate::time::Timestamp;

/// Where the policy is, at a glance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
#[non_exhaustive]
pub enum PolicyState {
    /// No socket; the next attempt starts at `until` at the earliest.
    BackingOff {
        /// The earliest start of the next attempt.
        until: Timestamp,
        /// What the next connection will do.
        recovery: Recovery,
    },
    /// Dialling, or waiting for Hello.
    Connecting {
        /// What the connection will do once open.
        recovery: Recovery,
    },
    /// Hello received; waiting for the identify limiter.
    WaitingForIdentifySlot {
        /// When the limiter is asked again.
        until: Timestamp,
    },
    /// Identify sent, READY not yet received.
    Identifying,
    /// Resume sent, RESUMED not yet received.
    Resuming,
    /// READY or RESUMED received.
    Connected {
        /// Whether the connection has proven stable (the backoff is reset).
        stable: bool,
    },
    /// Closing the socket before reconnecting or stopping.
    Closing,
    /// Stopped for good; see the reason.
    GivenUp {
        /// Why.
        reason: GiveUpReason,
    },
    /// Shut down by the driver.
    Stopped,
}

impl PolicyState {
    /// Whether a session is established on the current connection.
    #[must_use]
    pub const fn is_connected(&self) -> bool {
        matches!(self, Self::Connected { .. })
    }

    /// Whether the policy will never connect again.
    #[must_use]
    pub const fn is_terminal(&self) -> bool {
        matches!(self, Self::GivenUp { .. } | Self::Stopped)
    }
}

/// Running counters of one policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyStats {
    /// Connection attempts (each `Connect` output).
    pub attempts: u64,
    /// Resume commands sent.
    pub resumes_sent: u64,
    /// Identify commands sent.
    pub identifies_sent: u64,
    /// Resumes that succeeded (RESUMED received).
    pub resumes_succeeded: u64,
    /// READY received.
    pub ready: u64,
    /// Reconnects planned (each `Plan` output).
    pub reconnects: u64,
    /// Heartbeats sent.
    pub heartbeats_sent: u64,
    /// Heartbeat ACKs that answered a heartbeat.
    pub heartbeat_acks: u64,
    /// Connections found to be zombies.
    pub zombies: u64,
    /// Sessions dropped by the resume breaker.
    pub resume_breaker_trips: u64,
    /// Events about a connection other than the current one.
    pub stale_events: u64,
    /// Dispatches whose sequence number was not new.
    pub duplicate_dispatches: u64,
    /// Events that mean nothing in the current state (a second Hello, an
    /// ACK with no heartbeat out, ...).
    pub ignored_events: u64,
    /// op 1 requests not answered because their budget was spent.
    pub heartbeat_requests_refused: u64,
    /// Times the identify limiter pushed an attempt or an Identify later.
    pub identify_waits: u64,
    /// READY resume URLs refused (see `PolicyConfig::resume_domains`).
    pub resume_urls_refused: u64,
    /// The last close code received from the server, if any.
    pub last_close_code: Option<CloseCode>,
}

/// One of the counters of [`PolicyStats`], as a policy counts it.
///
/// In the order of how often they are touched, the rare ones first: the
/// counters of every heartbeat and every fleet timeout come last, so that
/// they end the counts and sit beside the policy's other hot fields (see
/// the layout of [`Policy`](crate::Policy)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counter {
    ResumeUrlsRefused,
    IdentifyWaits,
    HeartbeatRequestsRefused,
    ResumeBreakerTrips,
    DuplicateDispatches,
    IgnoredEvents,
    StaleEvents,
    Ready,
    IdentifiesSent,
    ResumesSucceeded,
    ResumesSent,
    Reconnects,
    Attempts,
    HeartbeatAcks,
    HeartbeatsSent,
    Zombies,
}

/// How many [`Counter`]s there are.
const COUNTERS: usize = Counter::Zombies as usize + 1;

/// The counters of one policy, stored compactly: each saturates at
/// `u32::MAX` (4.29 billion; a heartbeat every second takes 136 years to
/// get there) and is widened into a [`PolicyStats`] when read.
///
/// `repr(C)`: the counts first, so that the hot counters (the last
/// [`Counter`]s) sit just before the last close code, read once a
/// connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Counters {
    counts: [u32; COUNTERS],
    /// The last close code received from the server, if any.
    pub(crate) last_close_code: Option<CloseCode>,
}

impl Counters {
    /// Adds one to `counter`, saturating.
    #[inline]
    pub(crate) const fn bump(&mut self, counter: Counter) {
        let count = &mut self.counts[counter as usize];
        *count = count.saturating_add(1);
    }

    /// One counter's count.
    #[inline]
    pub(crate) const fn get(&self, counter: Counter) -> u32 {
        self.counts[counter as usize]
    }

    /// The counters as the public [`PolicyStats`].
    pub(crate) fn stats(&self) -> PolicyStats {
        let get = |counter: Counter| u64::from(self.get(counter));
        PolicyStats {
            attempts: get(Counter::Attempts),
            resumes_sent: get(Counter::ResumesSent),
            identifies_sent: get(Counter::IdentifiesSent),
            resumes_succeeded: get(Counter::ResumesSucceeded),
            ready: get(Counter::Ready),
            reconnects: get(Counter::Reconnects),
            heartbeats_sent: get(Counter::HeartbeatsSent),
            heartbeat_acks: get(Counter::HeartbeatAcks),
            zombies: get(Counter::Zombies),
            resume_breaker_trips: get(Counter::ResumeBreakerTrips),
            stale_events: get(Counter::StaleEvents),
            duplicate_dispatches: get(Counter::DuplicateDispatches),
            ignored_events: get(Counter::IgnoredEvents),
            heartbeat_requests_refused: get(Counter::HeartbeatRequestsRefused),
            identify_waits: get(Counter::IdentifyWaits),
            resume_urls_refused: get(Counter::ResumeUrlsRefused),
            last_close_code: self.last_close_code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_saturate_and_widen_into_the_stats() {
        let mut counters = Counters::default();
        counters.bump(Counter::Attempts);
        counters.bump(Counter::ResumeUrlsRefused);
        counters.counts[Counter::Zombies as usize] = u32::MAX;
        counters.bump(Counter::Zombies);
        counters.last_close_code = Some(CloseCode::RateLimited);
        let stats = counters.stats();
        assert_eq!(stats.attempts, 1);
        assert_eq!(stats.resume_urls_refused, 1);
        assert_eq!(stats.zombies, u64::from(u32::MAX));
        assert_eq!(stats.heartbeats_sent, 0);
        assert_eq!(stats.last_close_code, Some(CloseCode::RateLimited));
        assert!(size_of::<Counters>() <= 68);
    }
}
