//! The seam between the run loop and an identify limiter that answers
//! asynchronously (a store shared by several processes of one bot).
//!
//! A fleet built with [`Fleet::with_remote_identify`] hands its shards'
//! identify requests out as `Action::Identify`. An [`IdentifyShare`] in
//! this process answers them on the spot; a responder that has to ask a
//! store over the network cannot. [`RemoteIdentify`] is the run loop's end
//! of such a responder: the loop posts `(shard, request)` and never waits,
//! and the answers come back as one more input the loop selects on, fed to
//! [`Fleet::handle_identify`] at the time they arrive. Nothing is called
//! from inside a poll.
//!
//! A fleet built with [`Fleet::with_shared_recovery`] hands its outage
//! probe requests out the same way (`Action::Probe`); they travel on the
//! same channel, so the responder sees a process's requests in the order
//! the fleet raised them, and the answers come back to
//! [`Fleet::handle_probe`].
//!
//! [`IdentifyStoreFigures`] is what the responder reports in every shard's
//! [`Figures`](crate::Figures): whether it is answering from the store or
//! from its conservative local share, and how often it fell back.
//!
//! [`Fleet::with_remote_identify`]: reconnect_policy::Fleet::with_remote_identify
//! [`Fleet::handle_identify`]: reconnect_policy::Fleet::handle_identify
//! [`Fleet::with_shared_recovery`]: reconnect_policy::Fleet::with_shared_recovery
//! [`Fleet::handle_probe`]: reconnect_policy::Fleet::handle_probe
//! [`IdentifyShare`]: crate::IdentifyShare

// Without a responder compiled in (the `redis` feature), the run loop's
// end is carried but never made.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use reconnect_policy::{IdentifyAnswer, IdentifyRequest, ProbeAnswer, ProbeRequest};
use tokio::sync::mpsc;

/// How the bot's shared identify limiter is doing, as seen by this
/// process: part of every shard's [`Figures`](crate::Figures) when the
/// runner's identify requests go to a store shared across processes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentifyStoreFigures {
    /// The store is unreachable or slow, and this process answers its
    /// shards from its local share (one Identify per bucket per window in
    /// this process, at most the stated number of session starts).
    pub in_fallback: bool,
    /// Times the process fell back to its local share.
    pub fallbacks: u64,
    /// Times it went back to the store after a fallback.
    pub recoveries: u64,
    /// Requests the store answered.
    pub store_answers: u64,
    /// Calls to the store that failed or timed out.
    pub store_failures: u64,
    /// Identify grants the store gave this process.
    pub store_grants: u64,
    /// Identify grants the local share gave while the store was away.
    pub local_grants: u64,
    /// Session starts the local share still allows.
    pub local_share_left: u64,
    /// Outage probes the store granted this process (it probed for the
    /// whole bot).
    pub probe_grants: u64,
    /// Asks to probe the store answered "another process holds the probe".
    pub probe_not_yet: u64,
    /// Asks the store answered "another process's probe was answered": this
    /// process ramped without probing.
    pub probe_gateway_back: u64,
    /// Asks answered locally while the store was away: the process probed
    /// on its own schedule, as a process that shares nothing.
    pub probe_local_grants: u64,
    /// Identify requests the store held back in its return hold (after a
    /// process came back from a fallback, or Redis restarted without its
    /// data), so that no grant of the store meets a local grant of a
    /// process that fell back.
    pub store_held: u64,
}

/// The responder's live counters, shared with the shards' handles.
#[derive(Debug, Default)]
pub(crate) struct StoreStatus {
    pub(crate) in_fallback: AtomicBool,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) recoveries: AtomicU64,
    pub(crate) store_answers: AtomicU64,
    pub(crate) store_failures: AtomicU64,
    pub(crate) store_grants: AtomicU64,
    pub(crate) local_grants: AtomicU64,
    pub(crate) local_share_left: AtomicU64,
    pub(crate) probe_grants: AtomicU64,
    pub(crate) probe_not_yet: AtomicU64,
    pub(crate) probe_gateway_back: AtomicU64,
    pub(crate) probe_local_grants: AtomicU64,
    pub(crate) store_held: AtomicU64,
}

impl StoreStatus {
    /// The counters as they stand.
    pub(crate) fn figures(&self) -> IdentifyStoreFigures {
        IdentifyStoreFigures {
            in_fallback: self.in_fallback.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            recoveries: self.recoveries.load(Ordering::Relaxed),
            store_answers: self.store_answers.load(Ordering::Relaxed),
            store_failures: self.store_failures.load(Ordering::Relaxed),
            store_grants: self.store_grants.load(Ordering::Relaxed),
            local_grants: self.local_grants.load(Ordering::Relaxed),
            local_share_left: self.local_share_left.load(Ordering::Relaxed),
            probe_grants: self.probe_grants.load(Ordering::Relaxed),
            probe_not_yet: self.probe_not_yet.load(Ordering::Relaxed),
            probe_gateway_back: self.probe_gateway_back.load(Ordering::Relaxed),
            probe_local_grants: self.probe_local_grants.load(Ordering::Relaxed),
            store_held: self.store_held.load(Ordering::Relaxed),
        }
    }

    /// Adds one to a counter.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A request of the fleet to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreRequest {
    /// Shard `.0`'s identify request.
    Identify(u32, IdentifyRequest),
    /// The fleet's outage probe request.
    Probe(ProbeRequest),
}

/// An answer of the store to the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreAnswer {
    /// To shard `.0`'s identify request.
    Identify(u32, IdentifyAnswer),
    /// To the fleet's probe request.
    Probe(ProbeAnswer),
}

/// The run loop's end of an asynchronous identify responder.
///
/// Both channels are unbounded, yet bounded by the fleet: a shard has at
/// most one request waiting for an answer (plus the settle of its last
/// grant), and the fleet at most one probe ask (plus a report or two), so
/// neither side holds more than about two messages per shard.
#[derive(Debug)]
pub(crate) struct RemoteIdentify {
    requests: mpsc::UnboundedSender<StoreRequest>,
    answers: mpsc::UnboundedReceiver<StoreAnswer>,
    status: Arc<StoreStatus>,
    shares_probe: bool,
}

/// The responder's end: requests in, answers out.
#[derive(Debug)]
pub(crate) struct ResponderEnd {
    pub(crate) requests: mpsc::UnboundedReceiver<StoreRequest>,
    pub(crate) answers: mpsc::UnboundedSender<StoreAnswer>,
    pub(crate) status: Arc<StoreStatus>,
}

impl RemoteIdentify {
    /// A connected pair: the run loop's end and the responder's.
    pub(crate) fn pair(shares_probe: bool) -> (Self, ResponderEnd) {
        let (requests_tx, requests_rx) = mpsc::unbounded_channel();
        let (answers_tx, answers_rx) = mpsc::unbounded_channel();
        let status = Arc::new(StoreStatus::default());
        (
            Self {
                requests: requests_tx,
                answers: answers_rx,
                status: Arc::clone(&status),
                shares_probe,
            },
            ResponderEnd {
                requests: requests_rx,
                answers: answers_tx,
                status,
            },
        )
    }

    /// Posts one of `shard`'s requests; never waits. A responder that has
    /// stopped drops it: the shard then waits for an answer that does not
    /// come, which stops it identifying, never makes it identify early.
    pub(crate) fn ask(&self, shard: u32, request: IdentifyRequest) {
        let _ = self.requests.send(StoreRequest::Identify(shard, request));
    }

    /// Posts the fleet's probe request; never waits. A responder that has
    /// stopped drops it: the fleet's ask then times out and it probes on
    /// its own schedule.
    pub(crate) fn ask_probe(&self, request: ProbeRequest) {
        let _ = self.requests.send(StoreRequest::Probe(request));
    }

    /// Whether the responder shares the fleet's outage probes (the fleet is
    /// then built with `Fleet::with_shared_recovery`).
    pub(crate) const fn shares_probe(&self) -> bool {
        self.shares_probe
    }

    /// The next answer; pending forever once the responder has stopped.
    pub(crate) async fn next_answer(&mut self) -> StoreAnswer {
        match self.answers.recv().await {
            Some(answer) => answer,
            None => std::future::pending().await,
        }
    }

    /// The responder's counters.
    pub(crate) fn status(&self) -> Arc<StoreStatus> {
        Arc::clone(&self.status)
    }
}
