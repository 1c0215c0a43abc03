//! Retry planning: when the next attempt may start, and when to stop.
//!
//! Everything that counts failures in a row lives here: the backoff
//! strategy and the retry number it is drawn for, the guard between two
//! attempts, the give-up limits (retries in a row, time since the last
//! stable connection), the resume breaker (resumes in a row sent and
//! unanswered), the short waits of a lost session that is likely still
//! resumable, and the identify-loop detector. The
//! [`Policy`](crate::Policy) reports what happened (an attempt started, a
//! connection proved stable, a resume failed or succeeded, an Identify was
//! answered) and asks for a plan when a connection ended; the answers are a
//! [`ReconnectPlan`] or the reason to give up.
//!
//! The retry count is a count of *failures*: of the network (a dial that
//! fails, a socket that drops) and of the handshake (no Hello, no READY).
//! Two things are not failures:
//! - **requests of the server**: op 7 on a connection that reached READY or
//!   RESUMED, a close whose code asks for a reconnect
//!   ([`CloseCode::asks_for_reconnect`](crate::CloseCode::asks_for_reconnect))
//!   after such a connection, op 9 from a gateway that said Hello. They
//!   neither advance the count nor wait for the backoff (op 9 still waits
//!   its own 1–5 s, and the guard always holds), unless more than
//!   [`ServerRequests::max_free`](crate::ServerRequests) of them came within
//!   its window: then the gateway is in a loop and they count as failures;
//! - **time the gateway spent answering**: every full
//!   [`StabilityRule::credit_ms`](crate::StabilityRule) a connection stays
//!   open after Hello repays one failure. A link that accepts and drops at
//!   once earns nothing and climbs to the cap as before; a link that stays
//!   up as long as it takes to fail repays what it cost.
//!
//! Over both sits a ceiling: never more than
//! [`AttemptRate::max_attempts`] attempts start in any
//! [`AttemptRate::window_ms`], so a link that answers just long enough to
//! earn its credit and then drops cannot make the shard storm either.

use crate::backoff::Backoff;
use crate::close_code::CloseCode;
use crate::config::{AttemptRate, PolicyConfig};
use crate::decision::{Decision, GiveUpReason, Recovery, Trigger};
use crate::jitter::Jitter;
use crate::output::ReconnectPlan;
use crate::time::Timestamp;

/// How the connection that just ended counts, as the
/// [`Policy`](crate::Policy) saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ending {
    /// When Hello arrived, if it did and the connection earns credit for
    /// the time after it (not when it ended on a deadline or as a zombie:
    /// then the gateway had stopped answering long before the end).
    pub(crate) answered_since: Option<Timestamp>,
    /// The gateway asked for this reconnect (see the module doc).
    pub(crate) server_request: bool,
    /// An Identify was sent on it and the gateway answered with a close or
    /// op 9 before READY.
    pub(crate) identify_rejected: bool,
    /// It reached READY or RESUMED: the session was live on it until it
    /// ended.
    pub(crate) established: bool,
}

/// Where a shard stands in an identify loop, once it is in one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoopState {
    /// Identifies in a row answered before READY.
    pub(crate) rejected: u32,
    /// Of them and earlier ones, those in the current 24 h.
    pub(crate) rejected_today: u32,
}

/// A day, in ms: the period of the daily session-start budget.
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// The failures in a row of one shard, and what they mean for the next
/// attempt.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RetryPlanner {
    backoff: Backoff,
    /// Failures not yet repaid since the connection was last stable (0:
    /// stable, never failed, or repaid).
    retry: u32,
    /// When the current run of retries began.
    unstable_since: Option<Timestamp>,
    /// Resumes in a row that were sent and ended without RESUMED.
    failed_resumes: u32,
    /// When the held session's connection was lost (the first failure
    /// planned with a Resume since the session last resumed or started).
    resumable_since: Option<Timestamp>,
    /// When the last connection attempt started.
    last_attempt_at: Option<Timestamp>,
    /// When the last attempts started, a ring of
    /// [`AttemptRate::MAX_ATTEMPTS`] (the oldest is overwritten).
    recent_attempts: [Option<Timestamp>; AttemptRate::MAX_ATTEMPTS as usize],
    /// Where the next start goes in `recent_attempts`.
    next_slot: usize,
    /// When the current window of server requests began.
    requests_since: Option<Timestamp>,
    /// Server requests in that window.
    requests_in_window: u32,
    /// Identifies in a row answered before READY.
    rejected_identifies: u32,
    /// When the current 24 h of the identify-loop budget began.
    day_since: Option<Timestamp>,
    /// Rejected Identifies in those 24 h.
    rejected_today: u32,
    /// Set by the last plan when the shard is in an identify loop.
    in_loop: Option<LoopState>,
}

impl RetryPlanner {
    pub(crate) const fn new(config: &PolicyConfig) -> Self {
        Self {
            backoff: Backoff::new(config.backoff),
            retry: 0,
            unstable_since: None,
            failed_resumes: 0,
            resumable_since: None,
            last_attempt_at: None,
            recent_attempts: [None; AttemptRate::MAX_ATTEMPTS as usize],
            next_slot: 0,
            requests_since: None,
            requests_in_window: 0,
            rejected_identifies: 0,
            day_since: None,
            rejected_today: 0,
            in_loop: None,
        }
    }

    /// READY arrived: the identify loop, if any, is over.
    pub(crate) const fn identify_succeeded(&mut self) {
        self.rejected_identifies = 0;
    }

    /// The identify loop the last plan found the shard in, if any (taken:
    /// a second call returns `None`).
    pub(crate) const fn take_loop(&mut self) -> Option<LoopState> {
        self.in_loop.take()
    }

    /// Counts a rejected Identify at `now`; returns the loop state when the
    /// shard is in a loop.
    fn identify_rejected(&mut self, now: Timestamp, config: &PolicyConfig) -> Option<LoopState> {
        let in_day = self
            .day_since
            .is_some_and(|since| now.saturating_since(since) < DAY_MS);
        if !in_day {
            self.day_since = Some(now);
            self.rejected_today = 0;
        }
        self.rejected_today = self.rejected_today.saturating_add(1);
        self.rejected_identifies = self.rejected_identifies.saturating_add(1);
        (self.rejected_identifies >= config.identify_loop.max_rejected).then_some(LoopState {
            rejected: self.rejected_identifies,
            rejected_today: self.rejected_today,
        })
    }

    /// Failures not yet repaid since the connection was last stable.
    pub(crate) const fn retries(&self) -> u32 {
        self.retry
    }

    /// A connection attempt starts now: the guard counts from here.
    pub(crate) const fn attempt_started(&mut self, now: Timestamp) {
        self.last_attempt_at = Some(now);
        self.recent_attempts[self.next_slot] = Some(now);
        self.next_slot = (self.next_slot + 1) % self.recent_attempts.len();
    }

    /// The earliest start that keeps `max_attempts` in any window: the
    /// `max_attempts`-th most recent start plus the window.
    fn rate_floor(&self, config: &PolicyConfig) -> Option<Timestamp> {
        let rule = config.attempt_rate;
        let len = self.recent_attempts.len();
        let back = usize::try_from(rule.max_attempts)
            .unwrap_or(len)
            .clamp(1, len);
        let slot = (self.next_slot + len - back) % len;
        self.recent_attempts[slot].map(|at| at.saturating_add(rule.window_ms))
    }

    /// The connection proved stable: the backoff, the give-up clock and the
    /// resume breaker start over.
    pub(crate) const fn stable(&mut self) {
        self.retry = 0;
        self.unstable_since = None;
        self.failed_resumes = 0;
        self.resumable_since = None;
    }

    /// RESUMED arrived, or the session is gone: the breaker and the short
    /// waits of a lost session start over.
    pub(crate) const fn resumes_reset(&mut self) {
        self.failed_resumes = 0;
        self.resumable_since = None;
    }

    /// A Resume was sent and its connection ended without RESUMED. Returns
    /// whether the breaker trips (the session must be dropped).
    pub(crate) const fn resume_failed(&mut self, config: &PolicyConfig) -> bool {
        self.failed_resumes = self.failed_resumes.saturating_add(1);
        self.failed_resumes >= config.resume.max_failed_resumes
    }

    /// Repays one failure per full `credit_ms` of `answered_ms`.
    fn repay(&mut self, answered_ms: u64, config: &PolicyConfig) {
        let credit_ms = config.stability.credit_ms;
        if credit_ms == 0 {
            return;
        }
        let steps = u32::try_from(answered_ms / credit_ms).unwrap_or(u32::MAX);
        self.retry = self.retry.saturating_sub(steps);
    }

    /// The backoff's `delay` for a failure at `now`, kept short while a lost
    /// session is still likely resumable. The session was lost when the
    /// last connection on which it was live (`established`: it reached
    /// READY or RESUMED) ended. With `recovery` a Resume, after an attempt
    /// that did not bring the session back (a dial that failed, a
    /// handshake cut or refused), within
    /// [`short_waits_for_ms`](crate::ResumeBreaker::short_waits_for_ms) of
    /// the loss, a delay above
    /// [`max_wait_while_resumable_ms`](crate::ResumeBreaker::max_wait_while_resumable_ms)
    /// is redrawn in `[max/2, max]`.
    ///
    /// The end of a live connection itself keeps the backoff's delay: a
    /// link that accepts, resumes and drops at once still climbs to the
    /// backoff's cap, which is what the stability rule is for. The guard
    /// and the attempt rate still hold, and once the window has passed the
    /// backoff alone rules, so a long outage costs at most a few minutes of
    /// denser dials.
    fn while_resumable(
        &mut self,
        now: Timestamp,
        recovery: Recovery,
        established: bool,
        delay: u64,
        config: &PolicyConfig,
        jitter: &mut Jitter,
    ) -> u64 {
        if recovery != Recovery::Resume {
            self.resumable_since = None;
            return delay;
        }
        if established {
            self.resumable_since = Some(now);
            return delay;
        }
        let since = *self.resumable_since.get_or_insert(now);
        let max = config.resume.max_wait_while_resumable_ms;
        let within = now.saturating_since(since) < config.resume.short_waits_for_ms;
        if max == 0 || !within || delay <= max {
            return delay;
        }
        let half = max / 2;
        half.saturating_add(jitter.between(0, max - half))
    }

    /// Counts a server request at `now`; returns whether it is still free
    /// (no more than `max_free` in the window that began with the first of
    /// them).
    fn request_is_free(&mut self, now: Timestamp, config: &PolicyConfig) -> bool {
        let rule = config.server_requests;
        let in_window = self
            .requests_since
            .is_some_and(|since| now.saturating_since(since) < rule.window_ms);
        if !in_window {
            self.requests_since = Some(now);
            self.requests_in_window = 0;
        }
        self.requests_in_window = self.requests_in_window.saturating_add(1);
        self.requests_in_window <= rule.max_free
    }

    /// Plans the attempt after a connection ended with `trigger`, which
    /// [`decide`](crate::decide) answered with `decision` (`recovery` is its
    /// recovery); `ending` says how the connection counts.
    ///
    /// # Errors
    ///
    /// The give-up limit that this retry would pass.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn plan(
        &mut self,
        now: Timestamp,
        trigger: Trigger,
        decision: Decision,
        recovery: Recovery,
        ending: Ending,
        config: &PolicyConfig,
        jitter: &mut Jitter,
    ) -> Result<ReconnectPlan, GiveUpReason> {
        if let Some(since) = ending.answered_since {
            self.repay(now.saturating_since(since), config);
        }
        let in_loop = if ending.identify_rejected {
            self.identify_rejected(now, config)
        } else {
            None
        };
        if let Some(state) = in_loop
            && config.give_up.on_identify_loop
        {
            let last_code = match trigger {
                Trigger::Closed { code } => code,
                _ => None,
            };
            return Err(GiveUpReason::IdentifyLoop {
                rejected: state.rejected,
                last_code,
            });
        }
        let free = ending.server_request && self.request_is_free(now, config);
        let backoff_ms = if free {
            // The gateway asked, and nothing suggests a loop: no failure to
            // count and no backoff to wait (a protocol wait still holds).
            0
        } else {
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
            let delay = self.backoff.delay(self.retry, jitter);
            self.while_resumable(now, recovery, ending.established, delay, config, jitter)
        };
        let mut wait = backoff_ms.max(decision.protocol_delay_ms());
        if trigger
            == (Trigger::Closed {
                code: Some(CloseCode::RateLimited),
            })
        {
            // 4008: we sent too fast; slow the next attempt too.
            wait = wait.max(config.rate_limited.wait_ms);
        }
        if let Some(state) = in_loop {
            wait = wait.max(config.identify_loop.wait_ms);
            if state.rejected_today >= config.identify_loop.daily_share
                && let Some(since) = self.day_since
            {
                // The shard's share of the day is spent: wait for the day.
                wait = wait.max(since.saturating_add(DAY_MS).saturating_since(now));
            }
        }
        self.in_loop = in_loop;
        let mut at = now.saturating_add(wait);
        if let Some(last) = self.last_attempt_at {
            at = at.max(last.saturating_add(config.guard_ms));
        }
        if let Some(floor) = self.rate_floor(config) {
            at = at.max(floor);
        }
        Ok(ReconnectPlan {
            trigger,
            decision,
            recovery,
            retry: self.retry,
            counted: !free,
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
                Ending {
                    server_request: true,
                    ..Ending::default()
                },
                &config,
                &mut jitter,
            )
            .unwrap();
        // op 7 after READY: no failure counted, no backoff, but the guard.
        assert_eq!(
            (plan.retry, plan.counted, plan.backoff_ms, plan.at),
            (0, false, 0, t(6_000))
        );
    }

    #[test]
    fn limits_give_up_and_stability_starts_over() {
        let config = PolicyConfig {
            give_up: GiveUpLimits {
                max_retries: Some(2),
                max_elapsed_ms: None,
                ..GiveUpLimits::default()
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
                        Ending::default(),
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
                Ending::default(),
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
                    Ending::default(),
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
