//! A bot split over several processes that share an identify store: each
//! process drives its contiguous range of shards with its own
//! `reconnect_policy::Fleet` built with `Fleet::with_remote_identify`, and
//! hands its shards' identify requests to its own
//! `reconnect_policy::StoreFallback`, which asks the shared store
//! ([`crate::store`]) or, while the store is away, answers from the
//! process's local share. This file only carries things between them:
//! messages to fleet events, fleet actions to sockets, identify requests to
//! the fallback, its asks across the store's network, answers back. No
//! rule of the policy or of the fallback is repeated here.
//!
//! The processes and the store's network share one timer (the engine's
//! [`Timer::Fleet`](super::Timer::Fleet)): a wake-up runs, in order, the
//! store messages that have arrived, then each process's fallback timers
//! and fleet timers, process by process.

use std::sync::Arc;

use reconnect_policy::{
    Action, Fleet, FleetError, Output, PolicyConfig, SessionStartLimit, SharedRecovery,
    StoreFallback, StoreFallbackConfig, StoreFallbackStats, StoreOutput, Timestamp,
};
use serde::Serialize;

use super::Cx;
use super::fleet_sockets::{BASE_URL, ShardSockets, hand_to_fleet};
use crate::scenario::StoreSpec;
use crate::store::{Store, StoreLink, StoreMsg, StoreStats};
use crate::wire::{SockId, ToClient};

/// One process of the bot.
#[derive(Debug)]
struct Process {
    fleet: Fleet,
    store: StoreFallback,
    /// Its first shard.
    first: u32,
    /// Its local share.
    share: u32,
    /// Its shards' recent sockets.
    socks: ShardSockets,
}

/// One process's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessFigures {
    /// Its first shard.
    pub first_shard: u32,
    /// Its shards.
    pub shards: u32,
    /// Its local share of session starts.
    pub local_share: u32,
    /// Buckets it may grant in while the store is away.
    pub owned_buckets: u32,
    /// What its fallback did.
    pub fallback: StoreFallbackStats,
}

/// The figures of a run of a bot split over processes: the store's and
/// each process's own counts, never a verdict (the gateway gives those).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessesFigures {
    /// The store.
    pub store: StoreStats,
    /// The store grants nothing for this long after an outage.
    pub return_hold_ms: u64,
    /// Each process, in order.
    pub processes: Vec<ProcessFigures>,
}

/// The bot's processes, the store they share and the network to it.
#[derive(Debug)]
pub struct ProcessesClient {
    spec: StoreSpec,
    processes: Vec<Process>,
    /// The process of each shard.
    process_of: Vec<u32>,
    store: Store,
    link: StoreLink,
}

impl ProcessesClient {
    /// Shards `0..shards` of a bot with `limit`, split over the processes
    /// of `spec`, running `config` pointed at the simulated gateway; each
    /// fleet's jitter from `fleet_seed` (the same seed as a one-process
    /// fleet, so each shard draws as it would there), the store's network
    /// from `store_seed`; built (and every shard started) at `now`.
    ///
    /// # Errors
    ///
    /// The configuration is invalid.
    pub fn new(
        config: &PolicyConfig,
        shards: u32,
        limit: SessionStartLimit,
        spec: &StoreSpec,
        fleet_seed: u64,
        store_seed: u64,
        now: u64,
    ) -> Result<Self, FleetError> {
        let mut config = config.clone();
        BASE_URL.clone_into(&mut config.gateway_url);
        let config = Arc::new(config);
        let t = Timestamp::from_millis(now);
        let count = spec.processes.clamp(1, shards.max(1));
        let mut processes = Vec::with_capacity(count as usize);
        let mut process_of = vec![0; shards as usize];
        for p in 0..count {
            let (first, end) = (spec.first_shard(p, shards), spec.first_shard(p + 1, shards));
            let ids: Vec<u32> = (first..end).collect();
            for &shard in &ids {
                process_of[shard as usize] = p;
            }
            let here = end.saturating_sub(first);
            let share = spec
                .local_share
                .unwrap_or_else(|| StoreFallbackConfig::share_of(limit, here, shards));
            let fallback_config = StoreFallbackConfig {
                call_timeout_ms: spec.call_timeout_ms,
                check_every_ms: spec.check_every_ms,
                local_share: share,
                buckets: spec.fallback_buckets,
            };
            let store = StoreFallback::new(fallback_config, limit, &ids, shards, t);
            let fleet = Fleet::with_remote_identify(Arc::clone(&config), ids, fleet_seed, t)?;
            let fleet = if spec.share_probe {
                fleet.with_shared_recovery(SharedRecovery::DEFAULT.for_bot(shards))
            } else {
                fleet
            };
            processes.push(Process {
                fleet,
                store,
                first,
                share,
                socks: ShardSockets::new(first, here),
            });
        }
        Ok(Self {
            spec: spec.clone(),
            processes,
            process_of,
            store: Store::new(limit, count, spec.broken, t),
            link: StoreLink::new(spec, store_seed),
        })
    }

    /// The fault schedule starts at `offset`: the store's outages count
    /// from it.
    pub fn schedule(&mut self, offset: u64) {
        self.link.schedule(&self.spec, offset);
    }

    /// The store's and the processes' counts so far.
    #[must_use]
    pub fn figures(&self) -> ProcessesFigures {
        ProcessesFigures {
            store: self.store.stats(),
            return_hold_ms: self.spec.return_hold_ms(),
            processes: self
                .processes
                .iter()
                .map(|p| ProcessFigures {
                    first_shard: p.first,
                    shards: u32::try_from(p.socks.shards()).unwrap_or(u32::MAX),
                    local_share: p.share,
                    owned_buckets: u32::try_from(p.store.owned_buckets().count())
                        .unwrap_or(u32::MAX),
                    fallback: *p.store.stats(),
                })
                .collect(),
        }
    }

    pub(super) fn on_message(
        &mut self,
        now: u64,
        shard: u32,
        (sock, tag): (SockId, Option<u64>),
        msg: ToClient,
        cx: &mut Cx<'_>,
    ) {
        let Some(&p) = self.process_of.get(shard as usize) else {
            return;
        };
        let Some(conn) = ShardSockets::connection(sock, tag, msg, cx) else {
            return;
        };
        let process = &mut self.processes[p as usize];
        let t = Timestamp::from_millis(now);
        // Timers due by now fire before a frame that arrived now.
        if process.fleet.poll_timeout().is_some_and(|at| at <= t) {
            process.fleet.handle_timeout(t);
            self.pump(p, now, cx);
        }
        let process = &mut self.processes[p as usize];
        hand_to_fleet(&mut process.fleet, t, shard, (conn, sock), msg, cx);
        self.pump(p, now, cx);
    }

    pub(super) fn wake(&mut self, now: u64, cx: &mut Cx<'_>) {
        let t = Timestamp::from_millis(now);
        while let Some((at, msg)) = self.link.pop_due(now) {
            self.arrive(at, msg, cx);
        }
        for p in 0..self.processes.len() {
            let process = &mut self.processes[p];
            if process.store.poll_timeout().is_some_and(|at| at <= t) {
                process.store.handle_timeout(t);
            }
            if process.fleet.poll_timeout().is_some_and(|at| at <= t) {
                process.fleet.handle_timeout(t);
            }
            // Also carries out what the fleets asked for when they were
            // built (their first wake-up).
            self.pump(u32::try_from(p).unwrap_or(u32::MAX), now, cx);
        }
    }

    pub(super) fn next_wake(&self) -> Option<u64> {
        let mut next = self.link.next_arrival();
        for p in &self.processes {
            for at in [p.store.poll_timeout(), p.fleet.poll_timeout()]
                .into_iter()
                .flatten()
                .filter(|t| *t < Timestamp::CEILING)
            {
                let at = at.as_millis();
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    /// How many shards have stopped for good.
    pub(super) fn gave_up(&self) -> u64 {
        self.processes
            .iter()
            .flat_map(|p| p.fleet.policies())
            .filter(|(_, policy)| policy.state().is_terminal())
            .count() as u64
    }

    /// A message on the store's network reached its end at `at`.
    fn arrive(&mut self, at: u64, msg: StoreMsg, cx: &mut Cx<'_>) {
        if self.link.down_at(at) {
            self.store.lost_message();
            return;
        }
        let t = Timestamp::from_millis(at);
        match msg {
            StoreMsg::Ask { .. } | StoreMsg::Reconcile { .. } | StoreMsg::Probe { .. } => {
                let hold = Timestamp::from_millis(self.link.hold_until(at));
                if let Some(reply) = self.store.handle(t, hold, msg) {
                    self.link.send(at, reply);
                }
            }
            StoreMsg::Answer {
                process,
                id,
                answer,
            } => {
                if let Some(p) = self.processes.get_mut(process as usize) {
                    p.store.handle_answer(t, id, answer);
                    self.pump(process, at, cx);
                }
            }
            StoreMsg::Reconciled { process, fallback } => {
                if let Some(p) = self.processes.get_mut(process as usize) {
                    p.store.handle_reconciled(t, fallback);
                    self.pump(process, at, cx);
                }
            }
            StoreMsg::ProbeAnswer { process, answer } => {
                if let Some(p) = self.processes.get_mut(process as usize) {
                    p.fleet.handle_probe(t, answer);
                    self.pump(process, at, cx);
                }
            }
        }
    }

    /// Carries out everything process `p`'s fleet and fallback asked for,
    /// until neither has more.
    fn pump(&mut self, p: u32, now: u64, cx: &mut Cx<'_>) {
        let t = Timestamp::from_millis(now);
        let Some(process) = self.processes.get_mut(p as usize) else {
            return;
        };
        loop {
            let mut idle = true;
            while let Some((shard, output)) = process.fleet.poll_output() {
                idle = false;
                let Output::Action(action) = output else {
                    continue;
                };
                if let Action::Identify { shard, request } = action {
                    process.store.handle_request(t, shard, request);
                    continue;
                }
                if let Action::Probe(request) = action {
                    self.link.send(
                        now,
                        StoreMsg::Probe {
                            process: p,
                            request,
                        },
                    );
                    continue;
                }
                // The policy stopping is read by `gave_up`.
                process.socks.carry_out(shard, action, cx);
            }
            while let Some(output) = process.store.poll_output() {
                idle = false;
                match output {
                    StoreOutput::Ask {
                        id,
                        shard,
                        request,
                        deadline,
                    } => self.link.send(
                        now,
                        StoreMsg::Ask {
                            process: p,
                            id,
                            shard,
                            request,
                            deadline,
                        },
                    ),
                    StoreOutput::Reconcile { reconcile, .. } => self.link.send(
                        now,
                        StoreMsg::Reconcile {
                            process: p,
                            reconcile,
                        },
                    ),
                    StoreOutput::Answer { shard, answer } => {
                        // Every shard asking is the process's own.
                        let _ = process.fleet.handle_identify(t, shard, answer);
                    }
                    // Said once per fallback and return; the figures count them.
                    StoreOutput::FellBack { .. } | StoreOutput::Returned { .. } => {}
                }
            }
            if idle {
                break;
            }
        }
    }
}
