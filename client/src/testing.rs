//! Behind the `testing` feature: checks what the run loop feeds the
//! policy's [`Fleet`] and what it carries out
//! against the policy's guarantees, while a test runs on real sockets.
//!
//! A test asks to [`watch`] the gateway URL its client or runner is built
//! with; every run loop started while the [`Watch`] lives, whose fleet's
//! base URL is that one, reports each input (time, shard, event, the
//! fleet's answer; timeouts; identify answers; shutdowns) and each output
//! it takes out to a [`reconnect_policy::testing::Observer`] of its own.
//! The observer checks single flight, the guard between a shard's
//! attempts, identify spacing per bucket, no action after giving up and
//! the rest of its list; [`Watch::assert_clean`] fails the test on any
//! broken guarantee. The URL keys the watch because each test's loopback
//! gateway (or fault proxy) listens on a port of its own, so tests running
//! side by side in one binary never see each other's run loops.
//!
//! The run loop still decides nothing: it hands the observer what it
//! already handles. Without the feature none of this is compiled.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use reconnect_policy::testing::{Observed, Observer, Violation};
use reconnect_policy::{Fleet, IdentifyLimiter, Timestamp};

/// The watches alive now.
static WATCHES: Mutex<Vec<Weak<Watched>>> = Mutex::new(Vec::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one watch gathered.
#[derive(Debug)]
struct Watched {
    url: String,
    /// One observer per run loop that attached.
    observers: Mutex<Vec<Arc<Mutex<Observer>>>>,
}

/// Checks every run loop started with the gateway URL `url` while the
/// returned [`Watch`] lives (see the [module documentation](self)).
#[must_use]
pub fn watch(url: impl Into<String>) -> Watch {
    let watched = Arc::new(Watched {
        url: url.into(),
        observers: Mutex::new(Vec::new()),
    });
    let mut watches = lock(&WATCHES);
    watches.retain(|w| w.strong_count() > 0);
    watches.push(Arc::downgrade(&watched));
    Watch { watched }
}

/// The checks of the run loops started with one gateway URL.
#[derive(Debug)]
pub struct Watch {
    watched: Arc<Watched>,
}

impl Watch {
    /// How many run loops reported to this watch.
    #[must_use]
    pub fn run_loops(&self) -> usize {
        lock(&self.watched.observers).len()
    }

    /// Every broken guarantee so far, over all run loops.
    #[must_use]
    pub fn violations(&self) -> Vec<Violation> {
        lock(&self.watched.observers)
            .iter()
            .flat_map(|observer| lock(observer).violations().to_vec())
            .collect()
    }

    /// What the observers saw so far, summed over the run loops.
    #[must_use]
    pub fn observed(&self) -> Observed {
        let mut sum = Observed::default();
        for observer in lock(&self.watched.observers).iter() {
            sum += lock(observer).observed();
        }
        sum
    }

    /// What the observers saw, summed.
    ///
    /// # Panics
    ///
    /// When no run loop reported to this watch (the test watches the wrong
    /// URL), or when any of them broke a guarantee of the policy.
    #[track_caller]
    pub fn assert_clean(&self) -> Observed {
        let observers = lock(&self.watched.observers).clone();
        assert!(
            !observers.is_empty(),
            "no run loop with the gateway URL {} was watched",
            self.watched.url
        );
        let mut sum = Observed::default();
        let mut broken = Vec::new();
        for observer in &observers {
            match lock(observer).check() {
                Ok(observed) => sum += observed,
                Err(lines) => broken.push(lines),
            }
        }
        assert!(
            broken.is_empty(),
            "the run loop broke the policy's guarantees:\n{}",
            broken.join("\n")
        );
        sum
    }
}

/// The run loop's side: where it reports.
#[derive(Debug)]
pub(crate) struct Hook(Arc<Mutex<Observer>>);

impl Hook {
    /// An observer for `fleet`, if a watch wants its base URL. `buckets` is
    /// the identify limiter's bucket count when it lives outside the fleet.
    pub(crate) fn attach(fleet: &Fleet, buckets: Option<u32>, now: Timestamp) -> Option<Self> {
        let url = fleet
            .policies()
            .next()
            .map(|(_, policy)| policy.config().gateway_url.clone())?;
        let watched = lock(&WATCHES)
            .iter()
            .filter_map(Weak::upgrade)
            .find(|w| w.url == url)?;
        let buckets = buckets
            .or_else(|| fleet.limiter().map(IdentifyLimiter::buckets))
            .unwrap_or(1);
        let observer = Observer::new(fleet, now).with_identify_buckets(buckets);
        let observer = Arc::new(Mutex::new(observer));
        lock(&watched.observers).push(Arc::clone(&observer));
        Some(Self(observer))
    }

    /// Hands the observer something to see.
    pub(crate) fn with(&self, see: impl FnOnce(&mut Observer)) {
        see(&mut lock(&self.0));
    }
}
