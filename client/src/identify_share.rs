//! The identify limiter one bot shares between its shards, with the clock
//! its timestamps are on.
//!
//! The gateway allows one Identify per 5 s per bucket, and a daily number of
//! session starts, across *all* shards of a bot. The policy's
//! [`IdentifyLimiter`] keeps both; every shard's client must ask the same
//! one, and pass it times on the same clock. [`IdentifyShare`] bundles the
//! two so they cannot be mixed up: clone it into every shard's builder.
//!
//! The policy never calls the limiter: a shard's driver answers the
//! policy's identify requests with it, holding the lock only for that
//! answer, never across a poll.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use reconnect_policy::{
    IdentifyAnswer, IdentifyLimiter, IdentifyRequest, SessionStartLimit, Timestamp,
};

use crate::clock::Clock;

/// A shared identify limiter and the clock its timestamps are on.
#[derive(Clone)]
pub struct IdentifyShare {
    clock: Clock,
    limiter: Arc<Mutex<IdentifyLimiter>>,
}

impl IdentifyShare {
    /// An in-process [`IdentifyLimiter`] for a bot with this session start
    /// limit (from `GET /gateway/bot`), on a clock started now.
    #[must_use]
    pub fn new(limit: SessionStartLimit) -> Self {
        let clock = Clock::start();
        let limiter = IdentifyLimiter::new(limit, clock.now());
        Self::with_limiter(clock, Arc::new(Mutex::new(limiter)))
    }

    /// A limiter already shared elsewhere; its timestamps are read on
    /// `clock`.
    #[must_use]
    pub const fn with_limiter(clock: Clock, limiter: Arc<Mutex<IdentifyLimiter>>) -> Self {
        Self { clock, limiter }
    }

    /// The clock the gate's timestamps are on.
    #[must_use]
    pub const fn clock(&self) -> Clock {
        self.clock
    }

    /// Answers one of `shard`'s identify requests at `now`, holding the lock
    /// for that answer only.
    pub(crate) fn answer(
        &self,
        now: Timestamp,
        shard: u32,
        request: IdentifyRequest,
    ) -> Option<IdentifyAnswer> {
        self.lock().answer(now, shard, request)
    }

    /// The limiter's identify buckets, for the run loop's checks.
    #[cfg(feature = "testing")]
    pub(crate) fn buckets(&self) -> u32 {
        self.lock().buckets()
    }

    /// The limiter, locked. A poisoned lock is taken over: the limiter's
    /// state is a few counters that a panic elsewhere cannot leave
    /// half-written in a way that matters more than stopping every shard
    /// would.
    fn lock(&self) -> MutexGuard<'_, IdentifyLimiter> {
        self.limiter.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl core::fmt::Debug for IdentifyShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IdentifyShare")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}
