//! Each shard draws its jitter from its own stream of the seed: a fleet
//! configured with one seed (as the README's example is) must not back off
//! in lockstep. Checked on the distribution of first draws across shards,
//! on the independence of neighbouring shards, and end to end through the
//! policy.

mod support;

use reconnect_policy::{
    BackoffConfig, BackoffStrategy, IdentifyLimiter, Jitter, PolicyConfig, SessionStartLimit,
};
use support::{Driver, closed, t};

/// The README's seed.
const SEED: u64 = 0x5eed;
/// Shards sampled.
const SHARDS: u32 = 4_000;

/// The first draw of every shard's stream, uniform on `0..=999`.
fn first_draws() -> Vec<u64> {
    (0..SHARDS)
        .map(|shard| Jitter::for_shard(SEED, shard).between(0, 999))
        .collect()
}

#[test]
fn first_draws_across_shards_are_uniform() {
    let draws = first_draws();
    let mut bins = [0u32; 10];
    for d in &draws {
        bins[usize::try_from(d / 100).unwrap()] += 1;
    }
    let expected = f64::from(SHARDS) / 10.0;
    let chi2: f64 = bins
        .iter()
        .map(|&o| (f64::from(o) - expected).powi(2) / expected)
        .sum();
    // 9 degrees of freedom: 27.88 is the 0.1 % critical value. One seed
    // shared by every shard would put all 4000 draws in one bin (χ² = 36000).
    assert!(chi2 < 27.88, "χ² = {chi2:.1}, bins {bins:?}");
    let distinct: std::collections::BTreeSet<u64> = draws.iter().copied().collect();
    assert!(
        distinct.len() > 900,
        "only {} distinct draws",
        distinct.len()
    );
}

#[test]
fn neighbouring_shards_draw_independently() {
    // Pearson's r between shard s and shard s + 1, over 100 draws each of
    // 2000 pairs: near 0 when the streams are independent.
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for shard in (0..SHARDS).step_by(2) {
        let (mut a, mut b) = (
            Jitter::for_shard(SEED, shard),
            Jitter::for_shard(SEED, shard + 1),
        );
        for _ in 0..100 {
            xs.push(a.between(0, 1_000_000) as f64);
            ys.push(b.between(0, 1_000_000) as f64);
        }
    }
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let vx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let vy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
    let r = cov / (vx * vy).sqrt();
    // 200,000 pairs: the standard error of r is about 0.0022.
    assert!(r.abs() < 0.01, "r = {r}");
}

#[test]
fn the_same_shard_and_seed_draw_the_same() {
    let draws = || {
        let mut jitter = Jitter::for_shard(SEED, 9);
        (0..50).map(|_| jitter.next_u64()).collect::<Vec<_>>()
    };
    assert_eq!(draws(), draws());
}

#[test]
fn shards_given_one_seed_plan_different_backoffs() {
    let mut config = PolicyConfig::default();
    config.backoff = BackoffConfig {
        strategy: BackoffStrategy::FullJitter,
        ..config.backoff
    };
    let first_backoffs: Vec<u64> = (0..4)
        .map(|shard| {
            let limiter = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0));
            let mut d = Driver::for_shard(config.clone(), shard, SEED, limiter);
            d.establish();
            let from = d.mark();
            d.send(closed(Some(1011)));
            d.only_plan_since(from).1.backoff_ms
        })
        .collect();
    let distinct: std::collections::BTreeSet<u64> = first_backoffs.iter().copied().collect();
    assert_eq!(distinct.len(), 4, "lockstep backoffs: {first_backoffs:?}");
}
