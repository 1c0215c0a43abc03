//! The identify limiter one bot shares between its shards, with the clock
//! its timestamps are on.
//!
//! The gateway allows one Identify per 5 s per bucket, and a daily number of
//! session starts, across *all* shards of a bot. The policy's
//! [`IdentifyLimiter`] keeps both; every shard's client must ask the same
//! one, and pass it times on the same clock. [`IdentifyShare`] bundles the
//! two so they cannot be mixed up: clone it into every shard's builder.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use reconnect_policy::{IdentifyGate, IdentifyLimiter, SessionStartLimit};

use crate::clock::Clock;

/// A shared identify gate and the clock its timestamps are on.
#[derive(Clone)]
pub struct IdentifyShare {
    clock: Clock,
    gate: Arc<Mutex<dyn IdentifyGate + Send>>,
}

impl IdentifyShare {
    /// An in-process [`IdentifyLimiter`] for a bot with this session start
    /// limit (from `GET /gateway/bot`), on a clock started now.
    #[must_use]
    pub fn new(limit: SessionStartLimit) -> Self {
        let clock = Clock::start();
        let limiter = IdentifyLimiter::new(limit, clock.now());
        Self::with_gate(clock, Arc::new(Mutex::new(limiter)))
    }

    /// Any gate (one backed by a store shared between processes, say); its
    /// timestamps are read on `clock`.
    #[must_use]
    pub fn with_gate(clock: Clock, gate: Arc<Mutex<dyn IdentifyGate + Send>>) -> Self {
        Self { clock, gate }
    }

    /// The clock the gate's timestamps are on.
    #[must_use]
    pub const fn clock(&self) -> Clock {
        self.clock
    }

    /// The gate, locked. A poisoned lock is taken over: the limiter's state
    /// is a few counters that a panic elsewhere cannot leave half-written
    /// in a way that matters more than stopping every shard would.
    pub(crate) fn lock(&self) -> MutexGuard<'_, dyn IdentifyGate + Send + 'static> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl core::fmt::Debug for IdentifyShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IdentifyShare")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}
