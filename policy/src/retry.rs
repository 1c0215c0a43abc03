//! Retry planning: when the next attempt may start, and when to stop.
//!
//! Everything that counts failures in a row lives here: the backoff
//! strategy and the retry number it is drawn for, the guard between two
//! attempts, the give-up limits (retries in a row, time since the last
//! stable connection) and the resume breaker (resumes in a row sent and
//! unanswered). The [`Policy`](crate::Policy) reports what happened
//! (an attempt started, a connection proved stable, a resume failed or
//! succeeded) and asks for a plan when a connection ended; the answers are
//! a [`ReconnectPlan`] or the reason to give up.

use crate::backoff::Backoff;
use crate::config::PolicyConfig;
use crate::decision::{Decision, GiveUpReason, Recovery, Trigger};
use crate::jitter::Jitter;
use crate::output::ReconnectPlan;
use crate::time::Timestamp;

/// The failures in a row of one shard, and what they mean for the next
/// attempt.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RetryPlanner {
    backoff: Backoff,
    /// Retries since the connection was last stable (0: stable or never
    /// failed).
    retry: u32,
    /// When the current run of retries began.
    unstable_since: Option<Timestamp>,
    /// Resumes in a row that were sent and ended without RESUMED.
    failed_resumes: u32,
    /// When the last connection attempt started.
    last_attempt_at: Option<Timestamp>,
}

impl RetryPlanner {
    pub(crate) const fn new(config: &PolicyConfig) -> Self {
        Self {
            backoff: Backoff::new(config.backoff),
            retry: 0,
            unstable_since: None,
            failed_resumes: 0,
            last_attempt_at: None,
        }
    }

    /// Retries since the connection was last stable.
    pub(crate) const fn retries(&self) -> u32 {
        self.retry
    }

    /// A connection attempt starts now: the guard counts from here.
    pub(crate) const fn attempt_started(&mut self, now: Timestamp) {
        self.last_attempt_at = Some(now);
    }

    /// The connection proved stable: the backoff, the give-up clock and the
    /// resume breaker start over.
    pub(crate) const fn stable(&mut self) {
        self.retry = 0;
        self.unstable_since = None;
        self.failed_resumes = 0;
    }

    /// RESUMED arrived, or the session is gone: the breaker starts over.
    pub(crate) const fn resumes_reset(&mut self) {
        self.failed_resumes = 0;
    }

    /// A Resume was sent and its connection ended without RESUMED. Returns
    /// whether the breaker trips (the session must be dropped).
    pub(crate) const fn resume_failed(&mut self, config: &PolicyConfig) -> bool {
        self.failed_resumes = self.failed_resumes.saturating_add(1);
        self.failed_resumes >= config.resume.max_failed_resumes
    }

    /// Plans the attempt after a connection ended with `trigger`, which
    /// [`decide`](crate::decide) answered with `decision` (`recovery` is its
    /// recovery).
    ///
    /// # Errors
    ///
    /// The give-up limit that this retry would pass.
    pub(crate) fn plan(
        &mut self,
        now: Timestamp,
        trigger: Trigger,
        decision: Decision,
        recovery: Recovery,
        config: &PolicyConfig,
        jitter: &mut Jitter,
    ) -> Result<ReconnectPlan, GiveUpReason> {
        let first_since_stable = self.retry == 0;
        self.retry = self.retry.saturating_add(1);
        let unstable_since = *self.unstable_since.get_or_insert(now);
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
        // op 7 after a stable connection: the gateway asked for an
        // immediate reconnect, and nothing suggests a loop. Anything else,
        // or op 7 on an unproven connection, goes through the backoff.
        let backoff_ms = if first_since_stable && trigger == Trigger::Reconnect {
            0
        } else {
            self.backoff.delay(self.retry, jitter)
        };
        let wait = backoff_ms.max(decision.protocol_delay_ms());
        let mut at = now.saturating_add(wait);
        if let Some(last) = self.last_attempt_at {
            at = at.max(last.saturating_add(config.guard_ms));
        }
        Ok(ReconnectPlan {
            trigger,
            decision,
            recovery,
            retry: self.retry,
            backoff_ms,
            at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
                &config,
                &mut jitter,
            )
            .unwrap();
        // First retry after op 7: no backoff, but the guard.
        assert_eq!((plan.retry, plan.backoff_ms, plan.at), (1, 0, t(6_000)));
    }

    #[test]
    fn limits_give_up_and_stability_starts_over() {
        let config = PolicyConfig {
            give_up: GiveUpLimits {
                max_retries: Some(2),
                max_elapsed_ms: None,
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
}
