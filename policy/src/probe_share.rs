//! One probe for the whole bot: fleet-wide outage probes shared by the
//! processes of one bot.
//!
//! Each process's [`Fleet`](crate::Fleet) detects a fleet-wide outage on
//! its own (see [`FleetRecovery`](crate::FleetRecovery)). Left alone, four
//! processes of one bot then send four probe streams and, once the gateway
//! is back, each waits for its own probe to be answered. A fleet built with
//! [`Fleet::with_shared_recovery`](crate::Fleet::with_shared_recovery)
//! asks instead, when its own schedule says probe, whether it may
//! ([`ProbeRequest::Acquire`], emitted as
//! [`Action::Probe`](crate::Action::Probe)), and reports what its probes
//! met. The answers come back as an input,
//! [`Fleet::handle_probe`](crate::Fleet::handle_probe):
//! - [`ProbeAnswer::Granted`]: this process probes now;
//! - [`ProbeAnswer::NotYet`]: another process holds the probe;
//! - [`ProbeAnswer::GatewayBack`]: another process's probe was answered
//!   since this fleet's outage began: ramp at once, without probing.
//!
//! Two pieces live here:
//! - [`SharedRecovery`], the fleet's side: how long it waits for an answer
//!   before it probes on its own schedule anyway (a lost answer or a
//!   coordinator gone away never wedges the fleet, and never makes it
//!   probe faster than it would alone), and how it bounds a `retry_at`;
//! - [`ProbeCoordinator`], a pure responder for one process (or for tests),
//!   as [`IdentifyLimiter`](crate::IdentifyLimiter) is for identify
//!   requests. A store shared between processes follows the same rules.

use crate::output::{ProbeAnswer, ProbeRequest};
use crate::time::Timestamp;

/// How a fleet that shares its outage probes waits for the coordinator
/// (see [`Fleet::with_shared_recovery`](crate::Fleet::with_shared_recovery)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SharedRecovery {
    /// How long the fleet waits for the answer to an
    /// [`ProbeRequest::Acquire`] before it probes on its own, as a fleet
    /// that shares nothing would. Default 2 s: four times a store call's
    /// usual timeout, well under the fleet's shortest probe gap once an
    /// outage is a few probes old, so a coordinator gone away costs one
    /// probe's delay, not the outage.
    pub answer_timeout_ms: u64,
    /// The soonest a [`ProbeAnswer::NotYet`] may make the fleet ask
    /// again, from the answer's arrival. Default 100 ms: a coordinator that
    /// answers "now" again and again cannot make the fleet spin.
    pub min_retry_ms: u64,
    /// The latest it may: a `retry_at` further away (a coordinator whose
    /// clock stepped, a bad answer) is cut to this. Default 10 s, the
    /// fleet's own longest probe gap by default.
    pub max_retry_ms: u64,
    /// The bot's shards across all its processes, this fleet's included
    /// (0, the default: this fleet is the whole bot). The probe stream
    /// the processes share then runs at the rate of one fleet of the bot's
    /// size (see
    /// [`FleetRecovery::probe_share_per_min`](crate::FleetRecovery::probe_share_per_min)),
    /// not of this process's part. The ramp after an outage starts as the
    /// bot's, not one per process: this fleet's first window is its share
    /// of the first window a single fleet of `bot_shards` would use
    /// (rounded up, at least 1, so the processes together start at most
    /// one shard per process above it; see
    /// [`FleetRecovery::ramp_initial`](crate::FleetRecovery::ramp_initial)).
    /// The window then grows by one per handshake the gateway answered, up
    /// to a twentieth of this fleet (never below its first window): growth
    /// is clocked by the gateway's own answers. A count below this fleet's
    /// own size is read as this fleet's size.
    pub bot_shards: u32,
}

impl SharedRecovery {
    /// The defaults (see each field).
    pub const DEFAULT: Self = Self {
        answer_timeout_ms: 2_000,
        min_retry_ms: 100,
        max_retry_ms: 10_000,
        bot_shards: 0,
    };

    /// These settings for a bot of `bot_shards` shards over all its
    /// processes (see [`SharedRecovery::bot_shards`]).
    ///
    /// ```
    /// use reconnect_policy::SharedRecovery;
    ///
    /// let shared = SharedRecovery::DEFAULT.for_bot(100);
    /// assert_eq!(shared.bot_shards, 100);
    /// ```
    #[must_use]
    pub const fn for_bot(self, bot_shards: u32) -> Self {
        Self { bot_shards, ..self }
    }
}

impl Default for SharedRecovery {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The fleet's side of a shared probe, kept in its recovery state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SharedProbe {
    pub(crate) config: SharedRecovery,
    /// The deadline of the [`ProbeRequest::Acquire`] still unanswered.
    pub(crate) pending: Option<Timestamp>,
    /// Asks that got no answer in time (the fleet probed on its own).
    pub(crate) timeouts: u64,
}

impl SharedProbe {
    pub(crate) const fn new(config: SharedRecovery) -> Self {
        Self {
            config,
            pending: None,
            timeouts: 0,
        }
    }

    /// When a [`ProbeAnswer::NotYet`] received at `now` lets the fleet ask
    /// again: `retry_at` within the configured bounds.
    pub(crate) fn retry_at(&self, now: Timestamp, retry_at: Timestamp) -> Timestamp {
        let soonest = now.saturating_add(self.config.min_retry_ms);
        let latest = now.saturating_add(self.config.max_retry_ms.max(self.config.min_retry_ms));
        retry_at.clamp(soonest, latest)
    }
}

/// A bot-wide probe coordinator for fleets that share their outage probes,
/// answering [`ProbeRequest`]s in process (the fleets of one process, or
/// tests); a store shared by several processes follows the same rules.
///
/// - At most one probe is granted per probe gap for the whole bot: a grant
///   lasts until the granted fleet's own next probe time (`next_at`, never
///   less than [`ProbeCoordinator::MIN_GRANT_GAP_MS`]), and every other
///   fleet asking meanwhile is told [`ProbeAnswer::NotYet`], to ask again
///   within [`ProbeCoordinator::POLL_MS`] (so it learns of an answered probe
///   soon), and at the grant's end at the latest.
/// - Once a fleet reports [`ProbeRequest::Answered`], every fleet whose
///   outage began before that is told [`ProbeAnswer::GatewayBack`]; a
///   fleet whose outage began later is not (its outage is a new one).
/// - A grant that would end more than [`ProbeCoordinator::MAX_GRANT_MS`]
///   away (a clock that stepped back) is treated as over, so it cannot
///   wedge the bot.
///
/// ```
/// use reconnect_policy::{ProbeAnswer, ProbeCoordinator, ProbeRequest, Timestamp};
///
/// let t = Timestamp::from_millis;
/// let mut coordinator = ProbeCoordinator::new();
/// let ask = ProbeRequest::Acquire { next_at: t(5_000), since: t(0) };
/// assert_eq!(coordinator.answer(t(1_000), ask), Some(ProbeAnswer::Granted));
/// assert_eq!(
///     coordinator.answer(t(1_200), ask),
///     Some(ProbeAnswer::NotYet { retry_at: t(1_700) })
/// );
/// assert_eq!(coordinator.answer(t(1_500), ProbeRequest::Answered), None);
/// assert_eq!(coordinator.answer(t(1_600), ask), Some(ProbeAnswer::GatewayBack));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeCoordinator {
    /// Until when the current grant holds the probe.
    grant_until: Option<Timestamp>,
    /// When a probe was last answered.
    back_at: Option<Timestamp>,
    grants: u64,
    answered: u64,
    failed: u64,
}

impl ProbeCoordinator {
    /// The shortest a grant holds the probe, whatever the fleet's `next_at`
    /// says: no two probes of the bot closer than this.
    pub const MIN_GRANT_GAP_MS: u64 = 500;
    /// The longest a grant may hold the probe from the time it is given.
    pub const MAX_GRANT_MS: u64 = 60_000;
    /// How soon a fleet told [`ProbeAnswer::NotYet`] asks again at the
    /// latest, to learn soon of an answered probe: a fleet that did not
    /// probe starts its ramp at most this long after the one that did.
    pub const POLL_MS: u64 = 500;

    /// A coordinator that has granted nothing.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            grant_until: None,
            back_at: None,
            grants: 0,
            answered: 0,
            failed: 0,
        }
    }

    /// Answers `request` received at `now`; `None` for the reports, which
    /// expect no answer.
    pub fn answer(&mut self, now: Timestamp, request: ProbeRequest) -> Option<ProbeAnswer> {
        match request {
            ProbeRequest::Acquire { next_at, since } => {
                if self.back_at.is_some_and(|back| back >= since) {
                    return Some(ProbeAnswer::GatewayBack);
                }
                let latest = now.saturating_add(Self::MAX_GRANT_MS);
                if let Some(until) = self.grant_until
                    && until > now
                    && until <= latest
                {
                    let poll = now.saturating_add(Self::POLL_MS);
                    return Some(ProbeAnswer::NotYet {
                        retry_at: until.min(poll),
                    });
                }
                let soonest = now.saturating_add(Self::MIN_GRANT_GAP_MS);
                self.grant_until = Some(next_at.clamp(soonest, latest));
                self.grants = self.grants.saturating_add(1);
                Some(ProbeAnswer::Granted)
            }
            ProbeRequest::Answered => {
                self.back_at = Some(self.back_at.map_or(now, |back| back.max(now)));
                self.grant_until = None;
                self.answered = self.answered.saturating_add(1);
                None
            }
            ProbeRequest::Failed => {
                self.failed = self.failed.saturating_add(1);
                None
            }
            ProbeRequest::Over => None,
        }
    }

    /// Probes granted so far.
    #[must_use]
    pub const fn grants(&self) -> u64 {
        self.grants
    }

    /// Answered probes reported so far.
    #[must_use]
    pub const fn answered(&self) -> u64 {
        self.answered
    }

    /// Failed probes reported so far.
    #[must_use]
    pub const fn failed(&self) -> u64 {
        self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn ask(next_at: u64, since: u64) -> ProbeRequest {
        ProbeRequest::Acquire {
            next_at: t(next_at),
            since: t(since),
        }
    }

    #[test]
    fn one_grant_per_gap_for_the_whole_bot() {
        let mut c = ProbeCoordinator::new();
        assert_eq!(
            c.answer(t(1_000), ask(4_000, 0)),
            Some(ProbeAnswer::Granted)
        );
        // Others ask before the grant ends: not yet, polled within 500 ms.
        assert_eq!(
            c.answer(t(1_100), ask(3_000, 0)),
            Some(ProbeAnswer::NotYet { retry_at: t(1_600) })
        );
        assert_eq!(
            c.answer(t(3_500), ask(9_000, 0)),
            Some(ProbeAnswer::NotYet { retry_at: t(4_000) })
        );
        // A failed probe does not shorten the gap.
        assert_eq!(c.answer(t(3_600), ProbeRequest::Failed), None);
        assert!(matches!(
            c.answer(t(3_700), ask(9_000, 0)),
            Some(ProbeAnswer::NotYet { .. })
        ));
        assert_eq!(
            c.answer(t(4_000), ask(9_000, 0)),
            Some(ProbeAnswer::Granted)
        );
        assert_eq!(c.grants(), 2);
        assert_eq!(c.failed(), 1);
    }

    #[test]
    fn a_grant_holds_at_least_the_minimum_gap_and_at_most_the_maximum() {
        let mut c = ProbeCoordinator::new();
        // A fleet whose next probe time is already past.
        assert_eq!(c.answer(t(10_000), ask(0, 0)), Some(ProbeAnswer::Granted));
        assert_eq!(
            c.answer(t(10_100), ask(0, 0)),
            Some(ProbeAnswer::NotYet {
                retry_at: t(10_500)
            })
        );
        assert_eq!(c.answer(t(10_500), ask(0, 0)), Some(ProbeAnswer::Granted));
        // One far away is cut to the maximum.
        let mut c = ProbeCoordinator::new();
        assert_eq!(c.answer(t(0), ask(u64::MAX, 0)), Some(ProbeAnswer::Granted));
        assert!(matches!(
            c.answer(t(59_999), ask(0, 0)),
            Some(ProbeAnswer::NotYet { .. })
        ));
        assert_eq!(c.answer(t(60_000), ask(0, 0)), Some(ProbeAnswer::Granted));
    }

    #[test]
    fn an_answered_probe_brings_back_the_fleets_whose_outage_began_before() {
        let mut c = ProbeCoordinator::new();
        assert_eq!(
            c.answer(t(1_000), ask(3_000, 500)),
            Some(ProbeAnswer::Granted)
        );
        assert_eq!(c.answer(t(1_200), ProbeRequest::Answered), None);
        assert_eq!(
            c.answer(t(1_300), ask(4_000, 800)),
            Some(ProbeAnswer::GatewayBack)
        );
        assert_eq!(
            c.answer(t(1_300), ask(4_000, 1_200)),
            Some(ProbeAnswer::GatewayBack)
        );
        // A later outage is a new one: probe again.
        assert_eq!(
            c.answer(t(9_000), ask(12_000, 8_000)),
            Some(ProbeAnswer::Granted)
        );
        assert_eq!(c.answered(), 1);
        assert_eq!(c.answer(t(9_100), ProbeRequest::Over), None);
    }

    #[test]
    fn a_clock_that_steps_back_cannot_wedge_the_bot() {
        let mut c = ProbeCoordinator::new();
        assert_eq!(
            c.answer(t(1_000_000), ask(1_004_000, 0)),
            Some(ProbeAnswer::Granted)
        );
        // The clock steps back by 900 s: the grant now looks 904 s away,
        // beyond any grant's length, so it is over.
        assert_eq!(
            c.answer(t(100_000), ask(104_000, 0)),
            Some(ProbeAnswer::Granted)
        );
        // And times at the end of the clock saturate.
        let mut c = ProbeCoordinator::new();
        assert_eq!(
            c.answer(t(u64::MAX - 1), ask(u64::MAX, 0)),
            Some(ProbeAnswer::Granted)
        );
        assert_eq!(
            c.answer(t(u64::MAX), ask(u64::MAX, 0)),
            Some(ProbeAnswer::Granted)
        );
    }

    #[test]
    fn retry_times_are_kept_within_the_fleets_bounds() {
        let shared = SharedProbe::new(SharedRecovery::DEFAULT);
        assert_eq!(shared.retry_at(t(1_000), t(0)), t(1_100));
        assert_eq!(shared.retry_at(t(1_000), t(5_000)), t(5_000));
        assert_eq!(shared.retry_at(t(1_000), t(u64::MAX)), t(11_000));
        assert_eq!(shared.retry_at(t(u64::MAX), t(0)), t(u64::MAX));
    }
}
