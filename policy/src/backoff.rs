//! Backoff strategies: how long to wait before the n-th retry.
//!
//! Each strategy has a base and a cap. The cap is a **hard ceiling after
//! jitter**: no strategy ever returns more than `cap_ms`, and no jittered
//! strategy reaches it by clamping (a clamp would pile many clients onto one
//! value and keep a fleet in lockstep). Retry numbers start at 1 and the
//! first retry waits per the base: there is no doubling off-by-one.
//!
//! The [`Policy`](crate::Policy) adds two things on top: the guard (a hard
//! minimum interval between any two connection attempts) and protocol waits
//! (op 9's random wait, a 429's Retry-After). The strategy itself only maps
//! a retry number and a random stream to a delay, so it can be used alone.

use serde::{Deserialize, Serialize};

use crate::jitter::Jitter;

/// The longest base or cap a configuration may set: 30 days.
pub const MAX_DELAY_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// gRPC's connection-backoff multiplier.
const GRPC_MULTIPLIER: f64 = 1.6;
/// gRPC's symmetric jitter (±20 %).
const GRPC_JITTER: f64 = 0.2;
/// Polly V2's smoothing factor ("pFactor").
const V2_P_FACTOR: f64 = 4.0;
/// Polly V2's scaling so that medians sit near `base · 2^(n-1)`.
const V2_RP_SCALING: f64 = 1.0 / 1.4;
/// Beyond this retry number V2's exponent is frozen (2^64 ms is already far
/// beyond any cap, and larger exponents would overflow `f64` arithmetic).
const V2_MAX_RETRY: u32 = 64;

/// The family of delays between retries.
///
/// `e(n) = min(cap, base · 2^(n-1))` below; `U[a, b]` is uniform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BackoffStrategy {
    /// Retry at once, every time. The reconnect-storm baseline: for
    /// comparison in the simulator only, never for production.
    None,
    /// Always `min(base, cap)`.
    Constant,
    /// `e(n)`, no jitter: a fleet that fails together retries together.
    Exponential,
    /// `U[0, e(n)]` (AWS "Full Jitter").
    FullJitter,
    /// `e(n)/2 + U[0, e(n)/2]` (AWS "Equal Jitter"): never less than half
    /// the nominal delay, so a client's attempt rate has a hard floor.
    EqualJitter,
    /// AWS "Decorrelated Jitter": `sleep = U[base, min(cap, 3 · prev)]`,
    /// with `prev = base` at the first retry. The AWS article clamps *after*
    /// the draw (`min(cap, U[base, 3·prev])`), which piles most delays onto
    /// the cap once saturated; the clamp is moved inside the draw's upper
    /// bound here, the fix Polly first applied (App-vNext/Polly#530).
    DecorrelatedJitter,
    /// Polly's `DecorrelatedJitterBackoffV2`, indexed as Polly indexes it:
    /// retry `n` draws `t = (n − 1) + U[0,1)`, `g(t) = 2^t · tanh(√(4t))`,
    /// and waits `(g(t) − g(t_prev)) · base / 1.4` (with `g(t_prev) = 0` at
    /// the first retry). The distribution is smooth; its medians are about
    /// 0.9, 1.1, 2, 4, 8 … times the base (`base · 2^(n-2)` from the third
    /// retry on). Past the retry whose range would exceed the cap, the
    /// exponent stops growing (and a range wider than the cap is scaled
    /// down into it), so the ceiling holds without a point mass at the cap.
    DecorrelatedJitterV2,
    /// gRPC connection backoff: `b(n) = min(cap / 1.2, base · 1.6^(n-1))`,
    /// delay `= b(n) · U[0.8, 1.2]`. gRPC applies ±20 % *after* its 120 s
    /// maximum (so up to 144 s); here the cap is the ceiling after jitter,
    /// so set `cap_ms = 144_000` to reproduce the spec's numbers exactly.
    Grpc,
}

impl BackoffStrategy {
    /// Every strategy, in a stable order (for comparisons and tests).
    pub const ALL: [Self; 8] = [
        Self::None,
        Self::Constant,
        Self::Exponential,
        Self::FullJitter,
        Self::EqualJitter,
        Self::DecorrelatedJitter,
        Self::DecorrelatedJitterV2,
        Self::Grpc,
    ];

    /// Whether the strategy draws random numbers.
    #[must_use]
    pub const fn is_jittered(self) -> bool {
        matches!(
            self,
            Self::FullJitter
                | Self::EqualJitter
                | Self::DecorrelatedJitter
                | Self::DecorrelatedJitterV2
                | Self::Grpc
        )
    }

    /// A short stable name (`full_jitter`, ...), the same as its serde form.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Constant => "constant",
            Self::Exponential => "exponential",
            Self::FullJitter => "full_jitter",
            Self::EqualJitter => "equal_jitter",
            Self::DecorrelatedJitter => "decorrelated_jitter",
            Self::DecorrelatedJitterV2 => "decorrelated_jitter_v2",
            Self::Grpc => "grpc",
        }
    }
}

/// A strategy with its base and cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BackoffConfig {
    /// Which family of delays.
    pub strategy: BackoffStrategy,
    /// The first retry's nominal delay, in milliseconds.
    pub base_ms: u64,
    /// The hard ceiling on any delay, after jitter, in milliseconds.
    pub cap_ms: u64,
}

impl BackoffConfig {
    /// The production default: equal jitter from 1 s up to 60 s. At the cap
    /// a client waits 30–60 s, so it never makes more than 2 attempts a
    /// minute, and a fleet stays spread over a 30 s window.
    pub const DEFAULT: Self = Self {
        strategy: BackoffStrategy::EqualJitter,
        base_ms: 1_000,
        cap_ms: 60_000,
    };

    /// The nominal exponential delay `min(cap, base · 2^(retry-1))`.
    #[must_use]
    pub fn exponential(&self, retry: u32) -> u64 {
        let shift = retry.max(1) - 1;
        let factor = if shift >= 64 { u64::MAX } else { 1u64 << shift };
        self.base_ms.saturating_mul(factor).min(self.cap_ms)
    }

    /// The closed interval every delay for `retry` falls in, by this
    /// strategy's own formula (always within `[0, cap_ms]`).
    #[must_use]
    pub fn bounds(&self, retry: u32) -> (u64, u64) {
        let cap = self.cap_ms;
        match self.strategy {
            BackoffStrategy::None => (0, 0),
            BackoffStrategy::Constant => {
                let d = self.base_ms.min(cap);
                (d, d)
            }
            BackoffStrategy::Exponential => {
                let e = self.exponential(retry);
                (e, e)
            }
            BackoffStrategy::FullJitter => (0, self.exponential(retry)),
            BackoffStrategy::EqualJitter => {
                let e = self.exponential(retry);
                (e / 2, e)
            }
            BackoffStrategy::DecorrelatedJitter => (self.base_ms.min(cap), cap),
            BackoffStrategy::DecorrelatedJitterV2 => (0, cap),
            BackoffStrategy::Grpc => {
                let b = self.grpc_nominal(retry);
                (
                    ((b * (1.0 - GRPC_JITTER)).floor() as u64).min(cap),
                    ((b * (1.0 + GRPC_JITTER)).ceil() as u64).min(cap),
                )
            }
        }
    }

    fn grpc_nominal(&self, retry: u32) -> f64 {
        let exponent = i32::try_from(retry.max(1) - 1).unwrap_or(i32::MAX);
        let grown = self.base_ms as f64 * GRPC_MULTIPLIER.powi(exponent);
        grown.min(self.cap_ms as f64 / (1.0 + GRPC_JITTER))
    }
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A backoff strategy with the little state some strategies need.
///
/// Decorrelated strategies remember their previous draw; calling
/// [`Backoff::delay`] with `retry == 1` starts a new episode, and a retry
/// number that does not follow the previous one is handled as if the
/// missing draws had happened (never a panic, never a stale value).
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    config: BackoffConfig,
    state: BackoffState,
}

impl Backoff {
    /// A backoff with no history.
    #[must_use]
    pub const fn new(config: BackoffConfig) -> Self {
        Self {
            config,
            state: BackoffState::NEW,
        }
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// The delay before retry number `retry` (1 is the first retry).
    ///
    /// Always within [`BackoffConfig::bounds`] for `retry`, and so within
    /// `[0, cap_ms]`. A `retry` of 0 is treated as 1.
    pub fn delay(&mut self, retry: u32, jitter: &mut Jitter) -> u64 {
        self.state.delay(&self.config, retry, jitter)
    }
}

/// The history of a [`Backoff`] without its configuration: what a shard
/// keeps when the configuration is shared by the whole fleet (16 bytes
/// instead of a copy of the configuration beside them).
///
/// The strategy never changes for one state, so the previous draw of the
/// decorrelated strategy and the previous `g(t)` of V2 share one word.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BackoffState {
    last_retry: u32,
    /// V2's frozen retry for this configuration (0: not computed yet). It
    /// depends on the configuration alone and costs a loop of `exp2`,
    /// `sqrt` and `tanh`, so it is computed once, at the first V2 delay.
    v2_frozen_at: u32,
    /// The previous draw: the sleep in ms (decorrelated) or the bits of
    /// the previous `g(t)` (V2); 0 (`0.0`) before any.
    prev: u64,
}

impl BackoffState {
    /// No history.
    pub(crate) const NEW: Self = Self {
        last_retry: 0,
        v2_frozen_at: 0,
        prev: 0,
    };

    /// The delay before retry number `retry` by `config`; see
    /// [`Backoff::delay`]. `config` must be the same at every call.
    pub(crate) fn delay(&mut self, config: &BackoffConfig, retry: u32, jitter: &mut Jitter) -> u64 {
        let retry = retry.max(1);
        let consecutive = retry == self.last_retry.saturating_add(1);
        self.last_retry = retry;
        let c = *config;
        let cap = c.cap_ms;
        match c.strategy {
            BackoffStrategy::None => 0,
            BackoffStrategy::Constant | BackoffStrategy::Exponential => c.bounds(retry).0,
            BackoffStrategy::FullJitter => jitter.between(0, c.exponential(retry)),
            BackoffStrategy::EqualJitter => {
                let e = c.exponential(retry);
                let half = e / 2;
                half + jitter.between(0, e - half)
            }
            BackoffStrategy::DecorrelatedJitter => {
                let low = c.base_ms.min(cap);
                if retry == 1 || !consecutive || self.prev < low {
                    self.prev = low;
                }
                let high = self.prev.saturating_mul(3).min(cap).max(low);
                let sleep = jitter.between(low, high);
                self.prev = sleep;
                sleep
            }
            BackoffStrategy::DecorrelatedJitterV2 => self.v2(&c, retry, consecutive, jitter),
            BackoffStrategy::Grpc => {
                let b = c.grpc_nominal(retry);
                let factor = 1.0 - GRPC_JITTER + 2.0 * GRPC_JITTER * jitter.unit();
                let (low, high) = c.bounds(retry);
                ((b * factor).round() as u64).clamp(low, high)
            }
        }
    }

    fn v2(&mut self, c: &BackoffConfig, retry: u32, consecutive: bool, jitter: &mut Jitter) -> u64 {
        let cap = c.cap_ms as f64;
        let base = c.base_ms as f64;
        if self.v2_frozen_at == 0 {
            self.v2_frozen_at = v2_frozen_retry(base, cap);
        }
        let frozen_at = self.v2_frozen_at;
        let n = retry.min(frozen_at);
        // The previous g(t): the real one while the exponent still grows and
        // the draws are consecutive, a fresh draw for retry n-1 otherwise.
        let prev = if n == 1 {
            0.0
        } else if consecutive && retry <= frozen_at {
            f64::from_bits(self.prev)
        } else {
            v2_g(f64::from(n - 2) + jitter.unit())
        };
        let next = v2_g(f64::from(n - 1) + jitter.unit());
        self.prev = next.to_bits();
        let scale = (cap / v2_upper(base, n)).min(1.0);
        let delay = ((next - prev).max(0.0) * V2_RP_SCALING * base * scale).round();
        (delay as u64).min(c.cap_ms)
    }
}

/// `g(t) = 2^t · tanh(√(4t))`.
fn v2_g(t: f64) -> f64 {
    t.exp2() * (V2_P_FACTOR * t).sqrt().tanh()
}

/// The largest V2 delay for retry `n` (≥ 1) before scaling, in ms:
/// `t` just below `n` and `t_prev` at `n − 2`.
fn v2_upper(base: f64, n: u32) -> f64 {
    let low = if n <= 1 { 0.0 } else { v2_g(f64::from(n - 2)) };
    (v2_g(f64::from(n)) - low) * V2_RP_SCALING * base
}

/// The retry number past which V2's exponent stops growing: the last one
/// whose whole range fits under the cap (at least 1).
fn v2_frozen_retry(base: f64, cap: f64) -> u32 {
    let mut n = 1;
    while n < V2_MAX_RETRY && v2_upper(base, n + 1) <= cap {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(strategy: BackoffStrategy) -> BackoffConfig {
        BackoffConfig {
            strategy,
            base_ms: 1_000,
            cap_ms: 10_000,
        }
    }

    #[test]
    fn first_retry_waits_the_base_without_doubling() {
        let mut rng = Jitter::new(1);
        let mut exp = Backoff::new(config(BackoffStrategy::Exponential));
        let delays: Vec<u64> = (1..=6).map(|n| exp.delay(n, &mut rng)).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        let mut constant = Backoff::new(config(BackoffStrategy::Constant));
        assert_eq!(constant.delay(1, &mut rng), 1_000);
        assert_eq!(constant.delay(50, &mut rng), 1_000);
    }

    #[test]
    fn grpc_matches_the_spec_parameters_with_a_hard_ceiling() {
        let c = BackoffConfig {
            strategy: BackoffStrategy::Grpc,
            base_ms: 1_000,
            cap_ms: 144_000,
        };
        assert_eq!(c.bounds(1), (800, 1_200));
        assert_eq!(c.bounds(2), (1_280, 1_920));
        // Saturated: 120 s ± 20 %.
        assert_eq!(c.bounds(40), (96_000, 144_000));
    }

    #[test]
    fn huge_retry_numbers_neither_overflow_nor_panic() {
        let mut rng = Jitter::new(2);
        for strategy in BackoffStrategy::ALL {
            let mut b = Backoff::new(BackoffConfig {
                strategy,
                base_ms: MAX_DELAY_MS,
                cap_ms: MAX_DELAY_MS,
            });
            for retry in [0, 1, 2, 63, 64, 65, 1_000_000_000, u32::MAX] {
                let d = b.delay(retry, &mut rng);
                assert!(d <= MAX_DELAY_MS, "{strategy:?} {retry} {d}");
            }
        }
    }

    #[test]
    fn v2_freezes_where_its_range_would_pass_the_cap() {
        assert_eq!(v2_frozen_retry(1_000.0, 10_000.0), 4);
        assert!(v2_upper(1_000.0, 4) <= 10_000.0);
        assert!(v2_upper(1_000.0, 5) > 10_000.0);
        // A cap below even the first range still freezes at 1 (and scales).
        assert_eq!(v2_frozen_retry(1_000.0, 500.0), 1);
    }
}
