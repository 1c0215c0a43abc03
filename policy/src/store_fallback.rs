//! The process's side of an identify store shared by a bot's processes,
//! and what the process does while that store is away.
//!
//! A bot split over several processes shares its identify buckets and its
//! daily session-start budget through a store (Redis, or a model of it).
//! Each process runs a [`Fleet`](crate::Fleet) built with
//! [`Fleet::with_remote_identify`](crate::Fleet::with_remote_identify); its
//! [`IdentifyRequest`]s go to a [`StoreFallback`], which decides, sans-IO,
//! whether to ask the store or to answer from the process's local share:
//!
//! - **Store**: every request becomes a [`StoreOutput::Ask`] with a
//!   deadline; the driver carries it to the store and feeds the answer
//!   back ([`StoreFallback::handle_answer`]). In this process two grants
//!   of one bucket are always a window apart, whatever the store says.
//! - **Fallback**: a request left unanswered for
//!   [`StoreFallbackConfig::call_timeout_ms`] means the store is slow or
//!   away. From then on requests are answered here by a local
//!   [`IdentifyLimiter`] holding the process's local share of the budget
//!   ([`StoreFallbackConfig::local_share`]). Two rules keep the fallback
//!   from breaking a window at the gateway while other processes fall back
//!   too or were granted by the store just before it went away:
//!   - a process grants only in the buckets it **owns** in a fallback
//!     ([`FallbackBuckets::Owned`]: each bucket has one owner among the
//!     bot's processes, found from the shard ids alone, so no two
//!     fallbacks share one);
//!     the requests of the shards of other buckets are parked and asked of
//!     the store when it is back (they wait without a socket, and the store
//!     spaces them on its return instead of all at one check);
//!   - a bucket opens one window after the fallback began: the store may
//!     have granted it to another process until then.
//! - **Return**: every [`StoreFallbackConfig::check_every_ms`] a
//!   [`StoreOutput::Reconcile`] asks whether the store is back and hands it
//!   what the local share did (starts granted, the last local grant of each
//!   bucket, grants whose answers were lost, settles owed). Its answer
//!   ([`StoreFallback::handle_reconciled`]) puts the process back on the
//!   store.
//!
//! The type holds the rule only: no clock, no I/O. A simulator and a tokio
//! client drive it the same way: requests and answers in with a timestamp,
//! [`StoreFallback::poll_output`] drained after each input,
//! [`StoreFallback::handle_timeout`] at [`StoreFallback::poll_timeout`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::identify::{IDENTIFY_WINDOW_MS, IdentifyLimiter, SessionStartLimit};
use crate::output::{IdentifyAnswer, IdentifyRequest};
use crate::time::Timestamp;

/// The spacing of one bucket's grants in this process: the gateway's
/// window plus the same 250 ms margin as [`IdentifyLimiter`]'s.
pub const STORE_WINDOW_MS: u64 = IDENTIFY_WINDOW_MS + 250;

/// Which buckets a process may grant in while the store is away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackBuckets {
    /// Only the buckets this process owns: bucket `b`'s owner is the
    /// process running shard `b + max_concurrency × (b mod n)`, `n` being
    /// the shards per bucket (rounded up; shard `b` when that shard is past
    /// the last one). Every process can tell from its own shards and the
    /// bot's shard count alone; there is one owner per bucket across the
    /// bot, so several processes in a fallback at once never share a
    /// bucket, and with contiguous shard ranges the buckets are spread over
    /// the processes. The shards of the other buckets wait for the store.
    #[default]
    Owned,
    /// Every bucket, one Identify per bucket per window *in this process*:
    /// with several processes in a fallback at once a bucket can see one
    /// Identify per window per process (kept to show that it breaks the
    /// gateway's window).
    Every,
}

/// How a process talks to its identify store and falls back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StoreFallbackConfig {
    /// A request unanswered this long means the store is slow or away.
    pub call_timeout_ms: u64,
    /// While away, the store is checked this often.
    pub check_every_ms: u64,
    /// Session starts this process may grant on its own, per daily period.
    pub local_share: u32,
    /// Which buckets the fallback grants in.
    pub buckets: FallbackBuckets,
}

impl StoreFallbackConfig {
    /// The client's defaults (500 ms call timeout, a check every second)
    /// with this local share.
    #[must_use]
    pub const fn with_local_share(local_share: u32) -> Self {
        Self {
            call_timeout_ms: 500,
            check_every_ms: 1_000,
            local_share,
            buckets: FallbackBuckets::Owned,
        }
    }

    /// How long the store grants nothing after it comes back from an
    /// outage (its return hold), for a store whose answers take up to
    /// `round_trip_ms` to come back: long enough for every process still in
    /// a fallback to notice the return (its next check, at most a check
    /// period away, answered within the call timeout and the round trip)
    /// and for the last local grant of any of them to be a window old. A
    /// process that never noticed the outage asks the store at once;
    /// without the hold it could be granted a bucket whose owner had just
    /// granted it locally. The store carries the hold out (it alone sees
    /// every process); this is the rule for its length, one for every
    /// driver.
    #[must_use]
    pub const fn return_hold_ms(&self, round_trip_ms: u64) -> u64 {
        self.call_timeout_ms
            .saturating_add(self.check_every_ms)
            .saturating_add(round_trip_ms)
            .saturating_add(STORE_WINDOW_MS)
    }

    /// The default local share of a process running `shards_here` of the
    /// bot's `shards_total` shards: the budget left times its part of the
    /// shards, rounded down.
    #[must_use]
    pub fn share_of(limit: SessionStartLimit, shards_here: u32, shards_total: u32) -> u32 {
        let part = u64::from(limit.remaining.min(limit.total))
            .saturating_mul(u64::from(shards_here))
            / u64::from(shards_total.max(1));
        u32::try_from(part).unwrap_or(u32::MAX)
    }
}

/// Names one request to the store, to match its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StoreRequestId(pub u64);

/// What the local share did while the store was away, handed to the store
/// by [`StoreOutput::Reconcile`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reconcile {
    /// Which fallback of this process this is (1 for the first); with
    /// `debt` it lets the store charge each start once however many
    /// reconciles of one fallback reach it.
    pub fallback: u64,
    /// Session starts granted locally during this fallback, in all.
    pub debt: u64,
    /// `(bucket, last local grant)` for each bucket granted locally.
    pub used: Vec<(u32, Timestamp)>,
    /// Shards whose Acquire went unanswered: the store may have granted it
    /// and the answer been lost. A grant the shard still holds in the store
    /// was never used and is given back.
    pub lost: Vec<u32>,
    /// `(shard, ready)` settles of store grants that could not reach it.
    pub settles: Vec<(u32, bool)>,
}

/// What the driver must carry out.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StoreOutput {
    /// Send `request` for `shard` to the store. An Acquire that reaches the
    /// store after `deadline` must grant nothing (the process has stopped
    /// waiting by then). A settle expects no answer.
    Ask {
        /// Matches the answer.
        id: StoreRequestId,
        /// The shard asking.
        shard: u32,
        /// What it asks.
        request: IdentifyRequest,
        /// The store grants nothing after this.
        deadline: Timestamp,
    },
    /// Hand `answer` to `shard` (`Fleet::handle_identify`).
    Answer {
        /// The shard.
        shard: u32,
        /// Its answer.
        answer: IdentifyAnswer,
    },
    /// Ask the store whether it is back, handing it what the local share
    /// did; its answer goes to [`StoreFallback::handle_reconciled`].
    Reconcile {
        /// Matches the answer.
        id: StoreRequestId,
        /// What to apply.
        reconcile: Reconcile,
    },
    /// The store stopped answering: this process answers from its local
    /// share (said once per fallback, for the logs).
    FellBack {
        /// Its local share left.
        local_share_left: u32,
    },
    /// The store is back (said once per return).
    Returned {
        /// Starts granted locally during the fallback.
        local_grants: u64,
    },
}

/// Counters for figures and health checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StoreFallbackStats {
    /// Times the process fell back.
    pub fallbacks: u64,
    /// Times it returned to the store.
    pub returns: u64,
    /// Grants answered by the store.
    pub store_grants: u64,
    /// Grants answered by the local share.
    pub local_grants: u64,
    /// Requests that went unanswered within the call timeout, or failed.
    pub timeouts: u64,
    /// Checks of the store sent while away.
    pub checks: u64,
    /// Requests parked until the store was back (buckets not owned).
    pub parked: u64,
}

/// Whether requests go to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Store,
    /// Answering locally; owned buckets open at `opens_at`, the store is
    /// checked at `next_check`.
    Fallback {
        opens_at: Timestamp,
        next_check: Timestamp,
    },
}

/// A request sent to the store and not answered yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    shard: u32,
    request: IdentifyRequest,
    timeout_at: Timestamp,
}

/// The process's side of an identify store shared by the bot's processes:
/// each request is asked of the store with a deadline; a request left
/// unanswered for the call timeout sends the process to a fallback, where
/// its local share grants only in the buckets it owns, a window after the
/// fallback began, and the other buckets' requests wait for the store; a
/// check every period hands the store what was done, and its answer ends
/// the fallback. Driven like a fleet: inputs with a timestamp, outputs
/// polled, one wake-up time.
///
/// ```
/// use reconnect_policy::{IdentifyAnswer, IdentifyRequest, SessionStartLimit, StoreFallback, StoreFallbackConfig, StoreOutput, Timestamp};
///
/// let t = Timestamp::from_millis;
/// let limit = SessionStartLimit { max_concurrency: 2, ..SessionStartLimit::DISCORD_DEFAULT };
/// // This process runs shards 0 and 2 (bucket 0 is its own in a fallback).
/// let mut store = StoreFallback::new(StoreFallbackConfig::with_local_share(10), limit, &[0, 2], 4, t(0));
/// store.handle_request(t(0), 2, IdentifyRequest::Acquire);
/// let Some(StoreOutput::Ask { .. }) = store.poll_output() else { panic!() };
/// // No answer within 500 ms: the store is away.
/// store.handle_timeout(t(500));
/// assert!(matches!(store.poll_output(), Some(StoreOutput::FellBack { .. })));
/// // Bucket 0 opens a window after the fallback began.
/// assert_eq!(store.poll_output(), Some(StoreOutput::Answer { shard: 2, answer: IdentifyAnswer::RetryAt(t(5_750)) }));
/// // The store is checked a second later.
/// assert_eq!(store.poll_timeout(), Some(t(1_500)));
/// ```
#[derive(Clone, Debug)]
pub struct StoreFallback {
    config: StoreFallbackConfig,
    mode: Mode,
    buckets: u32,
    /// Whether each bucket may be granted in a fallback.
    owned: Vec<bool>,
    /// The local share.
    local: IdentifyLimiter,
    /// Each bucket's last grant in this process, whoever gave it.
    last_grant: Vec<Option<Timestamp>>,
    /// Each bucket's last local grant in this fallback.
    local_last: Vec<Option<Timestamp>>,
    /// Starts granted locally in this fallback.
    debt: u64,
    /// Shards whose last grant came from the store (their settle goes there).
    store_granted: BTreeSet<u32>,
    /// Settles of store grants owed to the store.
    owed_settles: Vec<(u32, bool)>,
    /// Requests out, by id (ids grow, so also in timeout order).
    pending: BTreeMap<StoreRequestId, Pending>,
    /// Shards whose Acquire went unanswered.
    lost: Vec<u32>,
    /// Requests of buckets this process does not own, held during a
    /// fallback and asked of the store on its return.
    parked: Vec<(u32, IdentifyRequest)>,
    /// The check out, and when it times out.
    check: Option<(StoreRequestId, Timestamp)>,
    next_id: u64,
    outputs: VecDeque<StoreOutput>,
    stats: StoreFallbackStats,
}

impl StoreFallback {
    /// The store side of a process running `shards` (gateway shard ids) of
    /// a bot of `shards_total` shards with `limit` (`max_concurrency` gives
    /// the buckets), its local share from `config`, at `now`.
    #[must_use]
    pub fn new(
        config: StoreFallbackConfig,
        limit: SessionStartLimit,
        shards: &[u32],
        shards_total: u32,
        now: Timestamp,
    ) -> Self {
        let buckets = u32::from(limit.max_concurrency.max(1));
        let mine: BTreeSet<u32> = shards.iter().copied().collect();
        let owned = (0..buckets)
            .map(|bucket| match config.buckets {
                FallbackBuckets::Every => true,
                FallbackBuckets::Owned => {
                    mine.contains(&Self::owner_shard(bucket, buckets, shards_total))
                }
            })
            .collect();
        let local = IdentifyLimiter::new(
            SessionStartLimit {
                total: config.local_share,
                remaining: config.local_share,
                reset_after_ms: limit.reset_after_ms,
                max_concurrency: limit.max_concurrency,
            },
            now,
        )
        .with_window_ms(STORE_WINDOW_MS);
        Self {
            config,
            mode: Mode::Store,
            buckets,
            owned,
            local,
            last_grant: vec![None; buckets as usize],
            local_last: vec![None; buckets as usize],
            debt: 0,
            store_granted: BTreeSet::new(),
            owed_settles: Vec::new(),
            pending: BTreeMap::new(),
            lost: Vec::new(),
            parked: Vec::new(),
            check: None,
            next_id: 0,
            outputs: VecDeque::new(),
            stats: StoreFallbackStats::default(),
        }
    }

    /// The shard whose process owns `bucket` in a fallback
    /// ([`FallbackBuckets::Owned`]).
    #[must_use]
    pub fn owner_shard(bucket: u32, buckets: u32, shards_total: u32) -> u32 {
        let buckets = buckets.max(1);
        let per_bucket = shards_total.div_ceil(buckets).max(1);
        let spread = u64::from(bucket) + u64::from(buckets) * u64::from(bucket % per_bucket);
        match u32::try_from(spread) {
            Ok(shard) if shard < shards_total => shard,
            _ => bucket,
        }
    }

    /// Whether requests are answered locally now.
    #[must_use]
    pub const fn in_fallback(&self) -> bool {
        matches!(self.mode, Mode::Fallback { .. })
    }

    /// Counters.
    #[must_use]
    pub const fn stats(&self) -> &StoreFallbackStats {
        &self.stats
    }

    /// Session starts left in the local share.
    #[must_use]
    pub const fn local_share_left(&self) -> u32 {
        self.local.remaining()
    }

    /// The buckets this process may grant in during a fallback.
    pub fn owned_buckets(&self) -> impl Iterator<Item = u32> + '_ {
        self.owned
            .iter()
            .enumerate()
            .filter(|(_, owned)| **owned)
            .filter_map(|(bucket, _)| u32::try_from(bucket).ok())
    }

    fn bucket_of(&self, shard: u32) -> usize {
        (shard % self.buckets.max(1)) as usize
    }

    fn id(&mut self) -> StoreRequestId {
        self.next_id = self.next_id.saturating_add(1);
        StoreRequestId(self.next_id)
    }

    // ----- inputs -------------------------------------------------------

    /// A shard's request (an `Action::Identify` of the fleet) at `now`.
    pub fn handle_request(&mut self, now: Timestamp, shard: u32, request: IdentifyRequest) {
        let bucket = self.bucket_of(shard);
        if request == IdentifyRequest::Acquire
            && let Some(last) = self.last_grant[bucket]
        {
            let free_at = last.saturating_add(STORE_WINDOW_MS);
            if now < free_at {
                self.answer(shard, IdentifyAnswer::RetryAt(free_at));
                return;
            }
        }
        match self.mode {
            Mode::Store => {
                if let IdentifyRequest::Settle { ready } = request {
                    if !self.store_granted.remove(&shard) {
                        self.local.settle(now, shard, ready);
                        return;
                    }
                    let id = self.id();
                    self.outputs.push_back(StoreOutput::Ask {
                        id,
                        shard,
                        request,
                        deadline: now,
                    });
                    return;
                }
                let id = self.id();
                let timeout_at = now.saturating_add(self.config.call_timeout_ms);
                self.pending.insert(
                    id,
                    Pending {
                        shard,
                        request,
                        timeout_at,
                    },
                );
                self.outputs.push_back(StoreOutput::Ask {
                    id,
                    shard,
                    request,
                    deadline: timeout_at,
                });
            }
            Mode::Fallback { .. } => self.answer_locally(now, shard, request),
        }
    }

    /// The store's answer to request `id`, received at `now`. An answer
    /// after the request timed out is dropped (the shard was answered
    /// locally; a grant among them is given back by the next reconcile).
    pub fn handle_answer(&mut self, now: Timestamp, id: StoreRequestId, answer: IdentifyAnswer) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        let answer = match answer {
            IdentifyAnswer::Granted => {
                let bucket = self.bucket_of(pending.shard);
                self.last_grant[bucket] = Some(now);
                self.store_granted.insert(pending.shard);
                self.stats.store_grants = self.stats.store_grants.saturating_add(1);
                IdentifyAnswer::Granted
            }
            IdentifyAnswer::RetryAt(at) => IdentifyAnswer::RetryAt(at.max(now)),
            IdentifyAnswer::StartAt(at) => IdentifyAnswer::StartAt(at.max(now)),
        };
        self.answer(pending.shard, answer);
    }

    /// The store applied the reconcile of fallback `fallback` at `now`: it
    /// is back, and the parked requests are asked of it. An answer for an earlier fallback, or while on the store,
    /// changes nothing.
    pub fn handle_reconciled(&mut self, now: Timestamp, fallback: u64) {
        if !self.in_fallback() || fallback != self.stats.fallbacks {
            return;
        }
        self.stats.returns = self.stats.returns.saturating_add(1);
        self.outputs.push_back(StoreOutput::Returned {
            local_grants: self.debt,
        });
        self.mode = Mode::Store;
        self.check = None;
        self.debt = 0;
        self.local_last.iter_mut().for_each(|last| *last = None);
        self.lost.clear();
        self.owed_settles.clear();
        for (shard, request) in std::mem::take(&mut self.parked) {
            self.handle_request(now, shard, request);
        }
    }

    /// The store could not run request `id` (a refused connection, an
    /// error reply) at `now`: the same as its call timeout, at once. An
    /// unknown or already answered id changes nothing.
    pub fn handle_failure(&mut self, now: Timestamp, id: StoreRequestId) {
        if let Some(pending) = self.pending.remove(&id) {
            self.give_up(now, pending);
        }
    }

    /// Another call of this process to the same store (not one of this
    /// type's requests, e.g. a shared probe) failed at `now`: the store is
    /// away, so the process falls back as if a request had timed out.
    pub fn handle_unreachable(&mut self, now: Timestamp) {
        self.fall_back(now);
    }

    /// Runs what is due at `now`: requests unanswered for the call timeout
    /// (the store is away: fall back, answer them locally), a check that
    /// went unanswered, the next check.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some((&id, &pending)) = self.pending.first_key_value()
            && pending.timeout_at <= now
        {
            self.pending.remove(&id);
            self.give_up(now, pending);
        }
        if let Some((_, timeout_at)) = self.check
            && timeout_at <= now
        {
            self.check = None;
            if let Mode::Fallback { opens_at, .. } = self.mode {
                self.mode = Mode::Fallback {
                    opens_at,
                    next_check: now.saturating_add(self.config.check_every_ms),
                };
            }
        }
        if let Mode::Fallback { next_check, .. } = self.mode
            && self.check.is_none()
            && next_check <= now
        {
            let id = self.id();
            self.check = Some((id, now.saturating_add(self.config.call_timeout_ms)));
            self.stats.checks = self.stats.checks.saturating_add(1);
            let used = self
                .local_last
                .iter()
                .enumerate()
                .filter_map(|(bucket, last)| Some((u32::try_from(bucket).ok()?, (*last)?)))
                .collect();
            self.outputs.push_back(StoreOutput::Reconcile {
                id,
                reconcile: Reconcile {
                    fallback: self.stats.fallbacks,
                    debt: self.debt,
                    used,
                    lost: self.lost.clone(),
                    settles: self.owed_settles.clone(),
                },
            });
        }
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<StoreOutput> {
        self.outputs.pop_front()
    }

    /// When [`StoreFallback::handle_timeout`] next has something to do.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let pending = self.pending.first_key_value().map(|(_, p)| p.timeout_at);
        let check = match (self.mode, self.check) {
            (_, Some((_, timeout_at))) => Some(timeout_at),
            (Mode::Fallback { next_check, .. }, None) => Some(next_check),
            (Mode::Store, None) => None,
        };
        match (pending, check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- rules --------------------------------------------------------

    fn answer(&mut self, shard: u32, answer: IdentifyAnswer) {
        self.outputs
            .push_back(StoreOutput::Answer { shard, answer });
    }

    /// A request the store did not answer: its Acquire may have been
    /// granted with the answer lost; the process falls back and answers
    /// it locally.
    fn give_up(&mut self, now: Timestamp, pending: Pending) {
        self.stats.timeouts = self.stats.timeouts.saturating_add(1);
        if pending.request == IdentifyRequest::Acquire {
            self.lost.push(pending.shard);
        }
        self.fall_back(now);
        self.answer_locally(now, pending.shard, pending.request);
    }

    fn fall_back(&mut self, now: Timestamp) {
        if self.mode != Mode::Store {
            return;
        }
        self.stats.fallbacks = self.stats.fallbacks.saturating_add(1);
        self.debt = 0;
        self.local_last.iter_mut().for_each(|last| *last = None);
        self.mode = Mode::Fallback {
            // The store may have granted any bucket to another process
            // until now.
            opens_at: now.saturating_add(STORE_WINDOW_MS),
            next_check: now.saturating_add(self.config.check_every_ms),
        };
        self.outputs.push_back(StoreOutput::FellBack {
            local_share_left: self.local.remaining(),
        });
    }

    /// Answers from the local share in an owned bucket; parks the request
    /// until the store is back otherwise.
    fn answer_locally(&mut self, now: Timestamp, shard: u32, request: IdentifyRequest) {
        let Mode::Fallback { opens_at, .. } = self.mode else {
            return;
        };
        let bucket = self.bucket_of(shard);
        if let IdentifyRequest::Settle { ready } = request {
            if self.store_granted.remove(&shard) {
                self.owed_settles.push((shard, ready));
            } else {
                self.local.settle(now, shard, ready);
            }
            return;
        }
        if !self.owned.get(bucket).copied().unwrap_or(false) {
            // A shard has one request out at a time: a new one replaces it.
            self.parked.retain(|(parked, _)| *parked != shard);
            self.parked.push((shard, request));
            self.stats.parked = self.stats.parked.saturating_add(1);
            return;
        }
        let answer = match request {
            IdentifyRequest::ReserveStart => {
                IdentifyAnswer::StartAt(self.local.reserve(now, shard).max(opens_at))
            }
            IdentifyRequest::Acquire if now < opens_at => IdentifyAnswer::RetryAt(opens_at),
            IdentifyRequest::Acquire => match self.local.try_acquire(now, shard) {
                Ok(()) => {
                    self.last_grant[bucket] = Some(now);
                    self.local_last[bucket] = Some(now);
                    self.debt = self.debt.saturating_add(1);
                    self.stats.local_grants = self.stats.local_grants.saturating_add(1);
                    IdentifyAnswer::Granted
                }
                Err(at) => IdentifyAnswer::RetryAt(at.max(now.saturating_add(1))),
            },
            IdentifyRequest::Settle { .. } => return,
        };
        self.answer(shard, answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn limit(buckets: u16) -> SessionStartLimit {
        SessionStartLimit {
            max_concurrency: buckets,
            ..SessionStartLimit::DISCORD_DEFAULT
        }
    }

    fn drain(s: &mut StoreFallback) -> Vec<StoreOutput> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    fn ask_id(outputs: &[StoreOutput]) -> StoreRequestId {
        outputs
            .iter()
            .find_map(|o| match o {
                StoreOutput::Ask { id, .. } | StoreOutput::Reconcile { id, .. } => Some(*id),
                _ => None,
            })
            .expect("a request to the store")
    }

    #[test]
    fn store_answers_pass_through_and_a_bucket_is_a_window_apart_here() {
        let mut s = StoreFallback::new(
            StoreFallbackConfig::with_local_share(5),
            limit(2),
            &[0, 1, 2],
            3,
            t(0),
        );
        s.handle_request(t(0), 0, IdentifyRequest::Acquire);
        let out = drain(&mut s);
        assert!(matches!(out[..], [StoreOutput::Ask { deadline, .. }] if deadline == t(500)));
        s.handle_answer(t(40), ask_id(&out), IdentifyAnswer::Granted);
        assert_eq!(
            drain(&mut s),
            [StoreOutput::Answer {
                shard: 0,
                answer: IdentifyAnswer::Granted
            }]
        );
        // Shard 2 is in bucket 0: refused here before the store is asked.
        s.handle_request(t(100), 2, IdentifyRequest::Acquire);
        assert_eq!(
            drain(&mut s),
            [StoreOutput::Answer {
                shard: 2,
                answer: IdentifyAnswer::RetryAt(t(40 + STORE_WINDOW_MS))
            }]
        );
        // The store-granted shard's settle goes to the store, unanswered.
        s.handle_request(t(200), 0, IdentifyRequest::Settle { ready: true });
        assert!(matches!(
            drain(&mut s)[..],
            [StoreOutput::Ask { shard: 0, .. }]
        ));
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.stats().store_grants, 1);
    }

    #[test]
    fn a_timeout_falls_back_once_grants_owned_buckets_a_window_later_and_returns() {
        // Runs shards 0, 1, 3 of 4 buckets: owns buckets 0, 1 and 3.
        let mut s = StoreFallback::new(
            StoreFallbackConfig::with_local_share(2),
            limit(4),
            &[0, 1, 3, 5, 6],
            7,
            t(0),
        );
        assert_eq!(s.owned_buckets().collect::<Vec<_>>(), [0, 1, 3]);
        s.handle_request(t(0), 5, IdentifyRequest::Acquire);
        s.handle_request(t(10), 6, IdentifyRequest::Acquire);
        drain(&mut s);
        s.handle_timeout(t(500));
        let out = drain(&mut s);
        assert!(matches!(
            out[0],
            StoreOutput::FellBack {
                local_share_left: 2
            }
        ));
        // Bucket 1 is owned but opens a window after the fallback.
        assert_eq!(
            out[1..],
            [StoreOutput::Answer {
                shard: 5,
                answer: IdentifyAnswer::RetryAt(t(5_750))
            }]
        );
        assert_eq!(s.poll_timeout(), Some(t(510)));
        s.handle_timeout(t(510));
        // Bucket 2 is not owned: parked until the store is back.
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.stats().fallbacks, 1);
        // Checks every second, unanswered.
        let mut now = 1_500;
        while now < 5_750 {
            s.handle_timeout(t(now));
            assert!(matches!(
                drain(&mut s)[..],
                [StoreOutput::Reconcile { .. }] | []
            ));
            now = s.poll_timeout().unwrap().as_millis();
        }
        s.handle_request(t(5_750), 5, IdentifyRequest::Acquire);
        assert_eq!(
            drain(&mut s),
            [StoreOutput::Answer {
                shard: 5,
                answer: IdentifyAnswer::Granted
            }]
        );
        // A second request of a parked shard replaces its first.
        s.handle_request(t(5_800), 6, IdentifyRequest::ReserveStart);
        assert!(drain(&mut s).is_empty());
        // The next check hands over what was done.
        let at = loop {
            let at = s.poll_timeout().unwrap();
            s.handle_timeout(at);
            let out = drain(&mut s);
            if let Some(StoreOutput::Reconcile { reconcile, .. }) = out.last() {
                assert_eq!(reconcile.fallback, 1);
                assert_eq!(reconcile.debt, 1);
                assert_eq!(reconcile.used, [(1, t(5_750))]);
                assert_eq!(reconcile.lost, [5, 6]);
                if at > t(5_800) {
                    break at;
                }
            }
        };
        s.handle_reconciled(at, 1);
        let out = drain(&mut s);
        assert_eq!(out[0], StoreOutput::Returned { local_grants: 1 });
        // Back on the store, which is asked the parked request.
        assert!(
            matches!(
                out[1..],
                [StoreOutput::Ask {
                    shard: 6,
                    request: IdentifyRequest::ReserveStart,
                    ..
                }]
            ),
            "{out:?}"
        );
        assert!(!s.in_fallback());
        assert_eq!(s.stats().parked, 2);
    }

    #[test]
    fn the_local_share_caps_the_starts_of_a_fallback() {
        let config = StoreFallbackConfig {
            buckets: FallbackBuckets::Every,
            ..StoreFallbackConfig::with_local_share(1)
        };
        let mut s = StoreFallback::new(config, limit(16), &[0, 1], 2, t(0));
        s.handle_request(t(0), 0, IdentifyRequest::ReserveStart);
        drain(&mut s);
        s.handle_timeout(t(500));
        drain(&mut s);
        let mut granted = 0;
        let mut now = 5_750;
        for _ in 0..20 {
            for shard in [0, 1] {
                s.handle_request(t(now), shard, IdentifyRequest::Acquire);
            }
            granted += drain(&mut s)
                .iter()
                .filter(|o| {
                    matches!(
                        o,
                        StoreOutput::Answer {
                            answer: IdentifyAnswer::Granted,
                            ..
                        }
                    )
                })
                .count();
            now += 10_000;
            s.handle_timeout(t(now));
            drain(&mut s);
        }
        assert_eq!(granted, 1);
        assert_eq!(s.local_share_left(), 0);
    }

    /// A fallback for a bot of one shard in one bucket, with a local
    /// share of 5 starts, built at 0.
    fn lone_shard() -> StoreFallback {
        StoreFallback::new(
            StoreFallbackConfig::with_local_share(5),
            limit(1),
            &[0],
            1,
            t(0),
        )
    }

    #[test]
    fn a_late_answer_is_dropped_and_a_stale_reconcile_changes_nothing() {
        let mut s = lone_shard();
        s.handle_request(t(0), 0, IdentifyRequest::Acquire);
        let id = ask_id(&drain(&mut s));
        s.handle_timeout(t(500));
        drain(&mut s);
        s.handle_answer(t(600), id, IdentifyAnswer::Granted);
        assert!(drain(&mut s).is_empty());
        s.handle_reconciled(t(700), 0);
        assert!(s.in_fallback());
        // The lost grant is named in the next reconcile, to be given back.
        s.handle_timeout(t(1_500));
        let out = drain(&mut s);
        assert!(
            matches!(&out[..], [StoreOutput::Reconcile { reconcile, .. }] if reconcile.lost == [0]),
            "{out:?}"
        );
    }

    #[test]
    fn every_bucket_has_one_owner_and_contiguous_processes_share_them() {
        // 10,000 shards, 625 buckets, 40 processes of 250 shards.
        let (total, buckets, processes) = (10_000u32, 625u16, 40u32);
        let per = total / processes;
        let owners: Vec<Vec<u32>> = (0..processes)
            .map(|p| {
                let shards: Vec<u32> = (p * per..(p + 1) * per).collect();
                let s = StoreFallback::new(
                    StoreFallbackConfig::with_local_share(1),
                    limit(buckets),
                    &shards,
                    total,
                    t(0),
                );
                s.owned_buckets().collect()
            })
            .collect();
        let mut all: Vec<u32> = owners.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..u32::from(buckets)).collect::<Vec<_>>());
        let most = owners.iter().map(Vec::len).max().unwrap();
        let least = owners.iter().map(Vec::len).min().unwrap();
        assert!(least >= 10 && most <= 25, "{least}..{most}");
        // A shard id past the fleet falls back to the bucket's first shard.
        assert_eq!(StoreFallback::owner_shard(3, 4, 5), 3);
    }

    #[test]
    fn a_failed_request_falls_back_at_once_and_so_does_a_failed_other_call() {
        let mut s = lone_shard();
        s.handle_request(t(0), 0, IdentifyRequest::Acquire);
        let id = ask_id(&drain(&mut s));
        s.handle_failure(t(3), id);
        let out = drain(&mut s);
        assert!(matches!(out[0], StoreOutput::FellBack { .. }), "{out:?}");
        // Owned bucket: it opens a window after the fallback began.
        assert_eq!(
            out[1],
            StoreOutput::Answer {
                shard: 0,
                answer: IdentifyAnswer::RetryAt(t(3 + STORE_WINDOW_MS))
            }
        );
        assert_eq!(s.stats().timeouts, 1);
        // The same id again, or its timeout later, changes nothing.
        s.handle_failure(t(4), id);
        s.handle_timeout(t(600));
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.stats().fallbacks, 1);
        // Another call failing while on the store: one fallback, no answer.
        let mut s = lone_shard();
        s.handle_unreachable(t(10));
        assert!(matches!(drain(&mut s)[..], [StoreOutput::FellBack { .. }]));
        s.handle_unreachable(t(20));
        assert!(drain(&mut s).is_empty());
        assert!(s.in_fallback());
        assert_eq!(s.poll_timeout(), Some(t(1_010)));
    }

    #[test]
    fn the_return_hold_covers_a_check_a_round_trip_and_a_window() {
        let config = StoreFallbackConfig::with_local_share(1);
        // 500 ms call timeout + 1 s check + 6 ms round trip + 5,250 ms.
        assert_eq!(config.return_hold_ms(6), 6_756);
        let longest = StoreFallbackConfig {
            call_timeout_ms: u64::MAX,
            ..config
        };
        assert_eq!(longest.return_hold_ms(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_default_share_is_the_budget_times_the_part_of_the_shards() {
        let limit = SessionStartLimit {
            total: 1_000,
            remaining: 900,
            ..SessionStartLimit::DISCORD_DEFAULT
        };
        assert_eq!(StoreFallbackConfig::share_of(limit, 25, 100), 225);
        assert_eq!(StoreFallbackConfig::share_of(limit, 1, 0), 900);
    }
}
