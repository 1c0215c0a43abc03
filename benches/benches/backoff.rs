//! The next-delay computation of every backoff strategy, beside the
//! equivalents in the crates `backoff` 0.4, `backon` 1.6 and
//! `exponential-backoff` 2.1, then a table of ours/theirs median ratios read
//! back from this same run.
//!
//! Every benchmark measures one thing: **one** next delay at retry
//! [`RETRY`] (nominal 16 s, below the 60 s cap), from a backoff that has
//! already produced the delays of retries 1 to `RETRY − 1`. Each sample
//! starts from a copy of that primed state (`iter_batched_ref` in batches of
//! 256, so neither building nor priming nor dropping is timed, and every
//! crate pays the same harness overhead). Base 1 s, cap 60 s everywhere, as in our default.
//!
//! - **ours**: [`Backoff::delay`] with a [`Jitter`] stream, the API a
//!   library that uses only the strategy calls and the way the `Policy`
//!   draws (the stream kept as a seed, a stream number and a position;
//!   each draw computes only the 64-byte ChaCha8 block that holds its
//!   words).
//! - **backon**: `ExponentialBuilder` (and `ConstantBuilder`) → an iterator
//!   of `Duration`s; one `next()`. Its jitter uses its own `fastrand` state.
//! - **backoff**: `ExponentialBackoff` (and `backoff::Constant`);
//!   one `next_backoff()`. Every call reads the system clock (the elapsed
//!   time, even with `max_elapsed_time: None`) and draws a random number
//!   from `rand`'s thread-local generator (even with a randomization factor
//!   of 0); both are part of its cost here, as they are in real use.
//! - **exponential-backoff**: `Backoff::new(..)` → `iter()`; one `next()`.
//!
//! Pairs (ours ↔ theirs), by the shape of the delay: constant ↔ every
//! crate's constant; exponential ↔ no jitter (backon without jitter, backoff
//! with randomization factor 0, exponential-backoff with jitter 0);
//! full jitter `U[0, e]` ↔ backoff with randomization factor 1 (`U[0, 2e]`);
//! equal jitter `e/2 + U[0, e/2]` ↔ backon's jitter (`e + U[0, e)`, the same
//! shape at twice the scale); gRPC (×1.6, ±20 %) ↔ backoff with multiplier
//! 1.6 and randomization factor 0.2 (the same formula) and
//! exponential-backoff with jitter 0.2 (±20 %, but its factor is an integer,
//! so ×2). None of the three has an equivalent of `none` (no wait at all),
//! of either decorrelated jitter, of a full jitter in backon or
//! exponential-backoff (their jitter is additive or symmetric), or of an
//! equal jitter in backoff or exponential-backoff.

use std::hint::black_box;
use std::time::Duration;

use backoff::backoff::Backoff as _;
use backon::BackoffBuilder as _;
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion};
use reconnect_benches::{criterion, measuring, median_ns};
use reconnect_policy::{Backoff, BackoffConfig, BackoffStrategy, Jitter};

/// The criterion group every benchmark of this file is in.
const GROUP: &str = "backoff";
/// The retry whose delay is measured: the fifth attempt in a row.
const RETRY: u32 = 5;
/// The first retry's delay, every crate.
const BASE: Duration = Duration::from_secs(1);
/// The longest delay, every crate.
const CAP: Duration = Duration::from_secs(60);
/// Seed of every random stream that can be seeded.
const SEED: u64 = 0x5eed;
/// Primed states timed per batch (see [`bench_next`]).
const BATCH: u64 = 256;

/// One competitor: `backoff/<krate>/<variant>` beside `backoff/ours/<ours>`.
struct Pair {
    ours: BackoffStrategy,
    krate: &'static str,
    variant: &'static str,
    /// How the competitor is configured, for the table.
    what: &'static str,
}

/// Every competitor, with the strategy of ours it is compared with.
const PAIRS: [Pair; 10] = [
    Pair {
        ours: BackoffStrategy::Constant,
        krate: "backon",
        variant: "constant",
        what: "ConstantBuilder",
    },
    Pair {
        ours: BackoffStrategy::Constant,
        krate: "backoff",
        variant: "constant",
        what: "backoff::Constant",
    },
    Pair {
        ours: BackoffStrategy::Constant,
        krate: "exponential-backoff",
        variant: "factor1_jitter0",
        what: "factor 1, jitter 0",
    },
    Pair {
        ours: BackoffStrategy::Exponential,
        krate: "backon",
        variant: "exponential",
        what: "ExponentialBuilder, no jitter",
    },
    Pair {
        ours: BackoffStrategy::Exponential,
        krate: "backoff",
        variant: "exponential_r0",
        what: "ExponentialBackoff, randomization 0",
    },
    Pair {
        ours: BackoffStrategy::Exponential,
        krate: "exponential-backoff",
        variant: "jitter0",
        what: "factor 2, jitter 0",
    },
    Pair {
        ours: BackoffStrategy::FullJitter,
        krate: "backoff",
        variant: "exponential_r1",
        what: "ExponentialBackoff, randomization 1",
    },
    Pair {
        ours: BackoffStrategy::EqualJitter,
        krate: "backon",
        variant: "exponential_jitter",
        what: "ExponentialBuilder, with_jitter",
    },
    Pair {
        ours: BackoffStrategy::Grpc,
        krate: "backoff",
        variant: "grpc_m1.6_r0.2",
        what: "ExponentialBackoff, ×1.6, randomization 0.2",
    },
    Pair {
        ours: BackoffStrategy::Grpc,
        krate: "exponential-backoff",
        variant: "jitter0.2",
        what: "factor 2, jitter 0.2",
    },
];

fn main() {
    check_pairs();
    let mut c = criterion();
    benches(&mut c);
    c.final_summary();
    if measuring() {
        print_ratios();
    }
}

// ----- the backoffs, each primed up to retry `RETRY` ------------------------

/// Our configuration of `strategy`: base 1 s, cap 60 s.
fn config(strategy: BackoffStrategy) -> BackoffConfig {
    BackoffConfig {
        strategy,
        base_ms: u64::try_from(BASE.as_millis()).unwrap_or(u64::MAX),
        cap_ms: u64::try_from(CAP.as_millis()).unwrap_or(u64::MAX),
    }
}

/// Ours, after the delays of retries 1 to `RETRY − 1` (drawn from `rng`).
fn ours(strategy: BackoffStrategy, rng: &mut Jitter) -> Backoff {
    let mut backoff = Backoff::new(config(strategy));
    for retry in 1..RETRY {
        let _ = backoff.delay(retry, rng);
    }
    backoff
}

/// An iterator of delays that has yielded those of retries 1 to
/// `RETRY − 1`.
fn at_retry<I: Iterator>(mut delays: I) -> I {
    for _ in 1..RETRY {
        let _ = delays.next();
    }
    delays
}

/// backon's constant delay, endless.
fn backon_constant() -> backon::ConstantBackoff {
    let builder = backon::ConstantBuilder::new()
        .with_delay(BASE)
        .without_max_times();
    at_retry(builder.build())
}

/// backon's exponential delay, endless, with or without its jitter.
fn backon_exponential(jitter: bool) -> backon::ExponentialBackoff {
    let builder = backon::ExponentialBuilder::new()
        .with_min_delay(BASE)
        .with_max_delay(CAP)
        .with_factor(2.0)
        .without_max_times()
        .with_jitter_seed(SEED);
    let builder = if jitter {
        builder.with_jitter()
    } else {
        builder
    };
    at_retry(builder.build())
}

/// backoff's constant delay (it has no state to prime).
fn backoff_constant() -> backoff::backoff::Constant {
    backoff::backoff::Constant::new(BASE)
}

/// backoff's `ExponentialBackoff`, without an elapsed-time limit.
fn backoff_exponential(multiplier: f64, randomization: f64) -> backoff::ExponentialBackoff {
    let mut backoff = backoff::ExponentialBackoffBuilder::new()
        .with_initial_interval(BASE)
        .with_max_interval(CAP)
        .with_multiplier(multiplier)
        .with_randomization_factor(randomization)
        .with_max_elapsed_time(None)
        .build();
    for _ in 1..RETRY {
        let _ = backoff.next_backoff();
    }
    backoff
}

/// exponential-backoff's iterator.
fn exponential_backoff(factor: u32, jitter: f32) -> exponential_backoff::IntoIter {
    // Enough attempts that retry RETRY is not the last one (which yields
    // no delay at all).
    let mut config = exponential_backoff::Backoff::new(RETRY + 10, BASE, CAP);
    config.set_factor(factor);
    config.set_jitter(jitter);
    at_retry(config.iter())
}

// ----- the benchmarks --------------------------------------------------------

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    for strategy in BackoffStrategy::ALL {
        let mut rng = Jitter::new(SEED);
        let primed = ours(strategy, &mut rng);
        bench_next(
            &mut group,
            "ours",
            strategy.name(),
            || primed.clone(),
            |backoff| backoff.delay(black_box(RETRY), &mut rng),
        );
    }

    // backon is not `Clone`: each sample builds and primes its own.
    bench_next(
        &mut group,
        "backon",
        "constant",
        backon_constant,
        Iterator::next,
    );
    bench_next(
        &mut group,
        "backon",
        "exponential",
        || backon_exponential(false),
        Iterator::next,
    );
    bench_next(
        &mut group,
        "backon",
        "exponential_jitter",
        || backon_exponential(true),
        Iterator::next,
    );

    // backoff: every `next_backoff` reads the clock and draws from `rand`'s
    // thread-local generator, whatever the configuration.
    bench_next(
        &mut group,
        "backoff",
        "constant",
        backoff_constant,
        backoff::backoff::Backoff::next_backoff,
    );
    for (variant, multiplier, randomization) in [
        ("exponential_r0", 2.0, 0.0),
        ("exponential_r1", 2.0, 1.0),
        ("grpc_m1.6_r0.2", 1.6, 0.2),
    ] {
        let primed = backoff_exponential(multiplier, randomization);
        bench_next(
            &mut group,
            "backoff",
            variant,
            || primed.clone(),
            backoff::backoff::Backoff::next_backoff,
        );
    }

    for (variant, factor, jitter) in [
        ("factor1_jitter0", 1, 0.0),
        ("jitter0", 2, 0.0),
        ("jitter0.2", 2, 0.2),
    ] {
        let primed = exponential_backoff(factor, jitter);
        bench_next(
            &mut group,
            "exponential-backoff",
            variant,
            || primed.clone(),
            Iterator::next,
        );
    }
    group.finish();
}

/// Times `next` on a fresh copy of `setup()`'s state as `krate/variant`.
///
/// Copies are made in batches of [`BATCH`], small enough to stay in the
/// first-level cache: with criterion's `SmallInput` a batch can reach
/// megabytes, and the timing of a 5 ns computation then depends on how
/// large each crate's state is rather than on what it computes. The clock
/// is read once per batch, a fraction of a nanosecond per call, the same
/// for every crate.
fn bench_next<I, O>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    krate: &str,
    variant: &str,
    mut setup: impl FnMut() -> I,
    mut next: impl FnMut(&mut I) -> O,
) {
    group.bench_function(BenchmarkId::new(krate, variant), |b| {
        b.iter_batched_ref(&mut setup, &mut next, BatchSize::NumIterations(BATCH));
    });
}

// ----- the pairs compute comparable delays ----------------------------------

/// Checks, before anything is timed, that each competitor computes the delay
/// of the same retry as ours, in the range its pairing claims: equal to ours
/// without jitter, inside the jittered shape otherwise.
fn check_pairs() {
    let ms = |delay: Option<Duration>| {
        delay.expect("an endless backoff has a delay").as_secs_f64() * 1e3
    };
    let ours_ms = |strategy| {
        let mut rng = Jitter::new(SEED);
        ours(strategy, &mut rng).delay(RETRY, &mut rng) as f64
    };
    let constant = ours_ms(BackoffStrategy::Constant);
    assert_eq!(ms(backon_constant().next()), constant);
    assert_eq!(ms(backoff_constant().next_backoff()), constant);
    assert_eq!(ms(exponential_backoff(1, 0.0).next().flatten()), constant);

    let e = ours_ms(BackoffStrategy::Exponential);
    assert_eq!(
        e,
        config(BackoffStrategy::Exponential).exponential(RETRY) as f64
    );
    assert_eq!(ms(backon_exponential(false).next()), e);
    assert_eq!(ms(backoff_exponential(2.0, 0.0).next_backoff()), e);
    assert_eq!(ms(exponential_backoff(2, 0.0).next().flatten()), e);

    let within = |delay: f64, (low, high): (f64, f64), what: &str| {
        assert!(
            (low..=high).contains(&delay),
            "{what}: {delay} ms outside [{low}, {high}]"
        );
    };
    within(
        ms(backoff_exponential(2.0, 1.0).next_backoff()),
        (0.0, 2.0 * e),
        "backoff, randomization 1",
    );
    within(
        ms(backon_exponential(true).next()),
        (e, 2.0 * e),
        "backon with jitter",
    );
    let (low, high) = config(BackoffStrategy::Grpc).bounds(RETRY);
    within(
        ms(backoff_exponential(1.6, 0.2).next_backoff()),
        (low as f64, high as f64),
        "backoff ×1.6 ±20 %",
    );
    within(
        ms(exponential_backoff(2, 0.2).next().flatten()),
        (0.8 * e, 1.2 * e),
        "exponential-backoff jitter 0.2",
    );
}

/// The median of `backoff/<function>/<value>` in ns, formatted.
fn cell(function: &str, value: &str) -> (Option<f64>, String) {
    let median = median_ns(&format!("{GROUP}/{function}/{value}"));
    let text = median.map_or_else(|| "n/a".to_owned(), |ns| format!("{ns:.2}"));
    (median, text)
}

/// Ours/theirs median ratios, from the medians criterion just saved.
fn print_ratios() {
    println!();
    println!(
        "Backoff: one next delay at retry {RETRY} (base {} s, cap {} s), medians of this run.",
        BASE.as_secs(),
        CAP.as_secs()
    );
    println!("Ratio = ours / theirs: below 1, ours is faster.");
    println!();
    println!(
        "{:<24} {:<20} {:<44} {:>9} {:>10} {:>8}",
        "ours", "crate", "configured as", "ours ns", "theirs ns", "ratio"
    );
    for pair in &PAIRS {
        let (ours, ours_text) = cell("ours", pair.ours.name());
        let (theirs, theirs_text) = cell(pair.krate, pair.variant);
        let ratio = match (ours, theirs) {
            (Some(a), Some(b)) => format!("{:.2}", a / b),
            _ => "n/a".to_owned(),
        };
        println!(
            "{:<24} {:<20} {:<44} {:>9} {:>10} {:>8}",
            pair.ours.name(),
            pair.krate,
            pair.what,
            ours_text,
            theirs_text,
            ratio
        );
    }
    println!();
    println!("No equivalent in backoff, backon or exponential-backoff:");
    for strategy in BackoffStrategy::ALL {
        if PAIRS.iter().all(|pair| pair.ours != strategy) {
            println!(
                "  {:<24} {:>9} ns",
                strategy.name(),
                cell("ours", strategy.name()).1
            );
        }
    }
}
