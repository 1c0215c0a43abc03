//! The identify store a bot's processes share, and the network between
//! them: a model of the Redis responder's scripts
//! (`client/src/redis_identify/scripts.rs`) and of a store that goes away.
//!
//! The store is part of the bot, not of the referee: nothing here judges a
//! run. The gateway ([`crate::gateway`]) counts identify-window violations
//! and session starts on its own; this model only answers the processes.
//!
//! - **Rules**: one [`IdentifyLimiter`] holding the whole bot's budget and
//!   buckets, as the scripts hold them in Redis (window 5,250 ms, no grant
//!   while another of the bucket is out, a settle opens the bucket 5 s
//!   after READY or 7 s without, reservations one window apart and past the
//!   reset once they cover what is left). An Acquire that reaches the store
//!   after its deadline grants nothing (the scripts' deadline). A reconcile
//!   charges the starts a process granted on its own (each once, however
//!   many reconciles of one fallback arrive), closes the buckets it used
//!   for a window after its last local grant, applies owed settles and
//!   gives back grants whose answers were lost.
//! - **Return hold**: for a while after an outage ends the store grants
//!   nothing, long enough for every process still in a fallback to notice
//!   the return and reconcile (call timeout + check period + round trip)
//!   and for its last local grant to be a window old. A process that never
//!   noticed the outage asks the store at once; without the hold it could
//!   be granted a bucket its owner had just granted locally.
//! - **Network**: each message takes half the round trip plus a seeded
//!   jitter; during an outage every message to or from the store is lost
//!   (requests unanswered, as a partition or a stopped Redis).
//! - **Shared probe**: the bot's fleet-wide outage probe, one
//!   [`ProbeCoordinator`] for every process, as the Redis probe script
//!   holds it (one grant per probe gap, "gateway back" to every process
//!   whose outage began before an answered probe). Its messages travel and
//!   are lost like the others; a process that hears nothing in time probes
//!   on its own schedule (the fleet's rule).
//! - **Broken** (for tests only): a store that grants every Acquire at
//!   once, to show that the referee catches a store that breaks windows.

use std::collections::{BTreeMap, BTreeSet};

use reconnect_policy::{
    IdentifyAnswer, IdentifyLimiter, IdentifyRequest, ProbeAnswer, ProbeCoordinator, ProbeRequest,
    Reconcile, STORE_WINDOW_MS, SessionStartLimit, StoreRequestId, Timestamp,
};
use serde::Serialize;

use crate::net::LinkRng;
use crate::scenario::StoreSpec;

/// A message between a process and the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreMsg {
    /// A shard's request, from `process`.
    Ask {
        /// The process.
        process: u32,
        /// Its request id.
        id: StoreRequestId,
        /// The shard.
        shard: u32,
        /// The request.
        request: IdentifyRequest,
        /// No grant after this.
        deadline: Timestamp,
    },
    /// A process back from a fallback hands over what it did.
    Reconcile {
        /// The process.
        process: u32,
        /// What it did.
        reconcile: Reconcile,
    },
    /// The store's answer to `id`.
    Answer {
        /// The process.
        process: u32,
        /// Its request id.
        id: StoreRequestId,
        /// The answer.
        answer: IdentifyAnswer,
    },
    /// The store applied fallback `fallback`'s reconcile.
    Reconciled {
        /// The process.
        process: u32,
        /// Which fallback.
        fallback: u64,
    },
    /// A process's fleet asks for the bot's outage probe or reports on it.
    Probe {
        /// The process.
        process: u32,
        /// The request.
        request: ProbeRequest,
    },
    /// The store's answer to a probe request.
    ProbeAnswer {
        /// The process.
        process: u32,
        /// The answer.
        answer: ProbeAnswer,
    },
}

/// What the store did, for the run's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Identify grants.
    pub grants: u64,
    /// Acquires that arrived after their deadline (nothing taken).
    pub late: u64,
    /// Acquires and reservations held back by the return hold.
    pub held: u64,
    /// Reconciles applied.
    pub reconciles: u64,
    /// Session starts granted by processes on their own, charged here.
    pub charged_locally: u64,
    /// Lost grants given back.
    pub given_back: u64,
    /// Messages to or from the store lost to an outage.
    pub lost_messages: u64,
    /// Session starts the store believes are left at the end.
    pub remaining: u32,
    /// Outage probes granted to the bot's processes.
    pub probe_grants: u64,
    /// Outage probes reported answered (the gateway was back).
    pub probes_answered: u64,
}

impl StoreStats {
    /// Session starts charged to the bot in all: grants by the store and
    /// by the processes' local shares, less those given back.
    #[must_use]
    pub const fn charged(&self) -> u64 {
        self.grants
            .saturating_add(self.charged_locally)
            .saturating_sub(self.given_back)
    }
}

/// The shared store.
#[derive(Debug)]
pub struct Store {
    limit: SessionStartLimit,
    limiter: IdentifyLimiter,
    /// Shards holding a grant not settled yet.
    outstanding: BTreeSet<u32>,
    /// Buckets closed by a reconcile until then.
    closed_until: Vec<Timestamp>,
    /// Per process: the fallback last reconciled and the starts charged
    /// for it.
    applied: Vec<(u64, u64)>,
    broken: bool,
    probe: ProbeCoordinator,
    stats: StoreStats,
}

impl Store {
    /// A store for a bot with `limit`, serving `processes` processes, at
    /// `now`.
    #[must_use]
    pub fn new(limit: SessionStartLimit, processes: u32, broken: bool, now: Timestamp) -> Self {
        let buckets = usize::from(limit.max_concurrency.max(1));
        Self {
            limit,
            limiter: IdentifyLimiter::new(limit, now).with_window_ms(STORE_WINDOW_MS),
            outstanding: BTreeSet::new(),
            closed_until: vec![Timestamp::ZERO; buckets],
            applied: vec![(0, 0); processes as usize],
            broken,
            probe: ProbeCoordinator::new(),
            stats: StoreStats::default(),
        }
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            remaining: self.limiter.remaining(),
            probe_grants: self.probe.grants(),
            probes_answered: self.probe.answered(),
            ..self.stats
        }
    }

    fn bucket_of(&self, shard: u32) -> usize {
        self.limiter.bucket_of(shard)
    }

    /// A message to or from the store was lost to an outage.
    pub fn lost_message(&mut self) {
        self.stats.lost_messages += 1;
    }

    /// Handles a message that reached the store at `now`; `hold_until` is
    /// the end of the return hold in force. Returns the reply, if any.
    pub fn handle(
        &mut self,
        now: Timestamp,
        hold_until: Timestamp,
        msg: StoreMsg,
    ) -> Option<StoreMsg> {
        match msg {
            StoreMsg::Ask {
                process,
                id,
                shard,
                request,
                deadline,
            } => {
                let closed = self
                    .closed_until
                    .get(self.bucket_of(shard))
                    .copied()
                    .unwrap_or(Timestamp::ZERO)
                    .max(hold_until);
                let answer = match request {
                    IdentifyRequest::Acquire if self.broken => {
                        self.stats.grants += 1;
                        IdentifyAnswer::Granted
                    }
                    IdentifyRequest::Acquire if now > deadline => {
                        self.stats.late += 1;
                        IdentifyAnswer::RetryAt(now)
                    }
                    IdentifyRequest::Acquire if now < closed => {
                        if now < hold_until {
                            self.stats.held += 1;
                        }
                        IdentifyAnswer::RetryAt(closed)
                    }
                    IdentifyRequest::ReserveStart => {
                        if now < hold_until {
                            self.stats.held += 1;
                        }
                        let at = self.limiter.reserve(now, shard);
                        IdentifyAnswer::StartAt(at.max(closed))
                    }
                    IdentifyRequest::Acquire => match self.limiter.try_acquire(now, shard) {
                        Ok(()) => {
                            self.stats.grants += 1;
                            self.outstanding.insert(shard);
                            IdentifyAnswer::Granted
                        }
                        Err(at) => IdentifyAnswer::RetryAt(at),
                    },
                    IdentifyRequest::Settle { ready } => {
                        if self.outstanding.remove(&shard) {
                            self.limiter.settle(now, shard, ready);
                        }
                        return None;
                    }
                };
                Some(StoreMsg::Answer {
                    process,
                    id,
                    answer,
                })
            }
            StoreMsg::Reconcile { process, reconcile } => {
                self.reconcile(now, process, &reconcile);
                Some(StoreMsg::Reconciled {
                    process,
                    fallback: reconcile.fallback,
                })
            }
            StoreMsg::Probe { process, request } => self
                .probe
                .answer(now, request)
                .map(|answer| StoreMsg::ProbeAnswer { process, answer }),
            StoreMsg::Answer { .. }
            | StoreMsg::Reconciled { .. }
            | StoreMsg::ProbeAnswer { .. } => None,
        }
    }

    fn reconcile(&mut self, now: Timestamp, process: u32, r: &Reconcile) {
        self.stats.reconciles += 1;
        for &(shard, ready) in &r.settles {
            if self.outstanding.remove(&shard) {
                self.limiter.settle(now, shard, ready);
            }
        }
        let mut give_back = 0u32;
        for &shard in &r.lost {
            if self.outstanding.remove(&shard) {
                // Never used: its answer never arrived, so no Identify went.
                self.limiter.settle(now, shard, false);
                give_back = give_back.saturating_add(1);
            }
        }
        self.stats.given_back += u64::from(give_back);
        for &(bucket, last) in &r.used {
            if let Some(closed) = self.closed_until.get_mut(bucket as usize) {
                *closed = (*closed).max(last.saturating_add(STORE_WINDOW_MS));
            }
        }
        let charge = match self.applied.get_mut(process as usize) {
            Some(applied) => {
                let before = if applied.0 == r.fallback {
                    applied.1
                } else {
                    0
                };
                *applied = (r.fallback, r.debt.max(before));
                r.debt.saturating_sub(before)
            }
            None => r.debt,
        };
        self.stats.charged_locally += charge;
        let charge = u32::try_from(charge).unwrap_or(u32::MAX);
        if charge != give_back {
            let remaining = self
                .limiter
                .remaining()
                .saturating_add(give_back)
                .min(self.limit.total)
                .saturating_sub(charge);
            let reset_at = self.limiter.reset_at();
            self.limiter.update(
                SessionStartLimit {
                    remaining,
                    reset_after_ms: reset_at.saturating_since(now),
                    ..self.limit
                },
                now,
            );
        }
    }
}

/// The network between the processes and the store, with its outages.
#[derive(Debug)]
pub struct StoreLink {
    /// Messages on their way, by arrival time and then send order.
    transit: BTreeMap<(u64, u64), StoreMsg>,
    sent: u64,
    rng: LinkRng,
    one_way_ms: u64,
    jitter_ms: u64,
    /// `(start, end)` of each outage, in run time, once the fault schedule
    /// has started.
    outages: Vec<(u64, u64)>,
    hold_ms: u64,
}

impl StoreLink {
    /// The network described by `spec`, its jitter drawn from `seed`.
    #[must_use]
    pub fn new(spec: &StoreSpec, seed: u64) -> Self {
        Self {
            transit: BTreeMap::new(),
            sent: 0,
            rng: LinkRng::new(seed),
            one_way_ms: spec.round_trip_ms / 2,
            jitter_ms: spec.jitter_ms,
            outages: Vec::new(),
            hold_ms: spec.return_hold_ms(),
        }
    }

    /// The fault schedule starts at `offset` (run time): the outages of
    /// `spec` count from it.
    pub fn schedule(&mut self, spec: &StoreSpec, offset: u64) {
        self.outages = spec
            .outages
            .iter()
            .map(|o| {
                let start = offset.saturating_add(o.at_ms);
                (start, start.saturating_add(o.duration_ms))
            })
            .collect();
    }

    /// Whether the store is away at `at`.
    #[must_use]
    pub fn down_at(&self, at: u64) -> bool {
        self.outages.iter().any(|&(s, e)| (s..e).contains(&at))
    }

    /// The end of the return hold in force at `at` (0 when none).
    #[must_use]
    pub fn hold_until(&self, at: u64) -> u64 {
        self.outages
            .iter()
            .map(|&(_, end)| (end, end.saturating_add(self.hold_ms)))
            .filter(|&(end, until)| end <= at && at < until)
            .map(|(_, until)| until)
            .max()
            .unwrap_or(0)
    }

    /// Sends `msg` at `now`; it arrives half a round trip plus jitter later
    /// (at least 1 ms).
    pub fn send(&mut self, now: u64, msg: StoreMsg) {
        let delay = self
            .one_way_ms
            .saturating_add(self.rng.upto(self.jitter_ms))
            .max(1);
        self.sent = self.sent.saturating_add(1);
        self.transit
            .insert((now.saturating_add(delay), self.sent), msg);
    }

    /// When the next message arrives.
    #[must_use]
    pub fn next_arrival(&self) -> Option<u64> {
        self.transit.first_key_value().map(|(&(at, _), _)| at)
    }

    /// The next message that has arrived by `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, StoreMsg)> {
        let (&(at, _), _) = self.transit.first_key_value()?;
        if at > now {
            return None;
        }
        self.transit.pop_first().map(|((at, _), msg)| (at, msg))
    }
}
