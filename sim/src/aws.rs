//! A check against a published result: the AWS "Exponential Backoff and
//! Jitter" experiment (Marc Brooker, AWS Architecture Blog, 2015).
//!
//! The model is the one in the official simulator
//! (`aws-samples/aws-arch-backoff-simulator`, `src/backoff_simulator.py`),
//! as the blog post and that simulator describe it:
//!
//! - The server is one optimistic-concurrency "row" with a version counter.
//!   A client reads the version, then writes with that version; the write
//!   succeeds only if the version is unchanged, and a success bumps it.
//!   Each client stops after its one successful write.
//! - Every hop (client → server and server → client) costs
//!   `|Normal(10 ms, 2 ms)|`.
//! - After a failed write the client sends its next read after
//!   `backoff(attempt)`, so that read reaches the server one network delay
//!   plus the backoff later, and the cycle starts again.
//! - 10, 20, 30, 40 and 50 clients, all starting at time 0; 100 runs per
//!   point. **Calls** are write attempts reaching the server (work) and the
//!   **completion time** is the simulated time of the last event (the last
//!   client learning that its write succeeded).
//!
//! The backoff delays come from the policy crate ([`Backoff`] with
//! [`BackoffConfig`] `{ base_ms: 5, cap_ms: 2000 }`), not from a copy of the
//! AWS formulas. Where the two differ (integer milliseconds, retry
//! numbering, decorrelated jitter's clamp) is measured and explained in the
//! README's section "Check against the AWS backoff experiment".
//!
//! Time is kept in integer nanoseconds and the event queue is ordered by
//! time then insertion order, so a run is a pure function of its seed: run
//! `r` derives its seed from the master seed, and each client derives two
//! streams from that (its network delays and its backoff draws), all with
//! [`rng::derive`]. The network stream being separate
//! means every strategy sees the same delays until its first backoff draw
//! changes the order of events (common random numbers).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use reconnect_policy::{Backoff, BackoffConfig, BackoffStrategy, Jitter};
use serde::{Deserialize, Serialize};

use crate::rng::{self, Stream};

/// The AWS simulator's base delay, ms.
pub const BASE_MS: u64 = 5;
/// The AWS simulator's cap, ms.
pub const CAP_MS: u64 = 2_000;
/// Mean of one network hop, ms.
pub const NET_MEAN_MS: f64 = 10.0;
/// Standard deviation of one network hop, ms.
pub const NET_SD_MS: f64 = 2.0;
/// The client counts of the published experiment.
pub const CLIENT_COUNTS: [u32; 5] = [10, 20, 30, 40, 50];
/// Runs per point in the published experiment.
pub const DEFAULT_RUNS: u32 = 100;
/// The most runs per point [`experiment`] accepts.
pub const MAX_RUNS: u32 = 100_000;
/// The most clients one run accepts.
pub const MAX_CLIENTS: u32 = 10_000;

/// The strategies of the experiment, in display order: the AWS simulator's
/// five (no backoff, exponential without jitter, full, equal and
/// decorrelated jitter), then two extra rows (Polly's V2 and gRPC's).
pub const STRATEGIES: [BackoffStrategy; 7] = [
    BackoffStrategy::None,
    BackoffStrategy::Exponential,
    BackoffStrategy::FullJitter,
    BackoffStrategy::EqualJitter,
    BackoffStrategy::DecorrelatedJitter,
    BackoffStrategy::DecorrelatedJitterV2,
    BackoffStrategy::Grpc,
];

/// How many events one run may process before it is abandoned (a run
/// always ends, because a write fails only after another one succeeded;
/// this only bounds the work a bad input could ask for).
const MAX_EVENTS_PER_CLIENT: u64 = 1_000_000;

/// Nanoseconds per millisecond.
const NS_PER_MS: u64 = 1_000_000;

/// How the experiment numbers retries when it asks the policy for a delay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryNumbering {
    /// The policy's own numbering: the `n`-th retry is retry `n`, whose
    /// nominal delay is `base · 2^(n−1)` (the first retry waits the base).
    #[default]
    Policy,
    /// The AWS simulator's numbering: the `n`-th retry is passed as retry
    /// `n + 1`, so its nominal delay is `base · 2^n` as in the simulator's
    /// `expo(n)` (the first retry waits twice the base).
    Aws,
}

impl RetryNumbering {
    /// The retry number handed to [`Backoff::delay`] for the `attempt`-th
    /// failed write (1-based).
    #[must_use]
    pub const fn retry(self, attempt: u32) -> u32 {
        match self {
            Self::Policy => attempt,
            Self::Aws => attempt.saturating_add(1),
        }
    }
}

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsConfig {
    /// The master seed.
    pub seed: u64,
    /// Runs per point (1 to [`MAX_RUNS`]).
    pub runs: u32,
    /// The client counts (each 1 to [`MAX_CLIENTS`]).
    pub clients: Vec<u32>,
    /// The strategies, each with [`BASE_MS`] and [`CAP_MS`].
    pub strategies: Vec<BackoffStrategy>,
    /// How retries are numbered.
    pub numbering: RetryNumbering,
}

impl Default for AwsConfig {
    /// The published setup: 10–50 clients, 100 runs, every strategy of
    /// [`STRATEGIES`], the policy's retry numbering, seed 1.
    fn default() -> Self {
        Self {
            seed: 1,
            runs: DEFAULT_RUNS,
            clients: CLIENT_COUNTS.to_vec(),
            strategies: STRATEGIES.to_vec(),
            numbering: RetryNumbering::Policy,
        }
    }
}

/// Why an experiment could not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AwsError {
    /// A parameter is out of range.
    Invalid(String),
    /// A run processed more events than its budget allows.
    Budget {
        /// The run's seed.
        seed: u64,
        /// Its clients.
        clients: u32,
    },
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(e) => write!(f, "invalid experiment: {e}"),
            Self::Budget { seed, clients } => write!(
                f,
                "the run with seed {seed} and {clients} clients went over its event budget"
            ),
        }
    }
}

impl std::error::Error for AwsError {}

/// The outcome of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// Write attempts that reached the server.
    pub calls: u64,
    /// Writes the server accepted.
    pub successes: u64,
    /// Successful writes per client (1 each when the run finished).
    pub successes_per_client: Vec<u32>,
    /// The simulated time of the last event, ns.
    pub completion_ns: u64,
    /// Events processed.
    pub events: u64,
}

/// Mean figures for one strategy and one client count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AwsPoint {
    /// The strategy's name (`full_jitter`, ...).
    pub strategy: String,
    /// Clients.
    pub clients: u32,
    /// Runs averaged.
    pub runs: u32,
    /// Mean write attempts per run.
    pub mean_calls: f64,
    /// Mean completion time per run, ms.
    pub mean_completion_ms: f64,
    /// The fewest calls in one run.
    pub min_calls: u64,
    /// The most calls in one run.
    pub max_calls: u64,
    /// The longest completion time of one run, ms.
    pub max_completion_ms: f64,
}

/// The whole experiment: every strategy at every client count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AwsResult {
    /// The master seed.
    pub seed: u64,
    /// Runs per point.
    pub runs: u32,
    /// Base delay, ms.
    pub base_ms: u64,
    /// Cap, ms.
    pub cap_ms: u64,
    /// How retries were numbered.
    pub numbering: RetryNumbering,
    /// One point per strategy and client count, strategy-major.
    pub points: Vec<AwsPoint>,
}

impl AwsResult {
    /// The point for `strategy` and `clients`, if it was run.
    #[must_use]
    pub fn point(&self, strategy: BackoffStrategy, clients: u32) -> Option<&AwsPoint> {
        self.points
            .iter()
            .find(|p| p.strategy == strategy.name() && p.clients == clients)
    }
}

/// What travels through the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Msg {
    /// A read reaching the server.
    Read,
    /// The version reaching the client.
    ReadReply { version: u64 },
    /// A write with the version read, reaching the server.
    Write { version: u64 },
    /// The write's outcome reaching the client.
    WriteReply { ok: bool },
}

/// One client's state.
struct Client {
    net: ChaCha8Rng,
    jitter: Jitter,
    backoff: Backoff,
    failed_writes: u32,
    successes: u32,
}

impl Client {
    /// One hop's delay, ns: `|Normal(10 ms, 2 ms)|` by Box–Muller.
    fn hop_ns(&mut self) -> u64 {
        let u1 = 1.0 - self.net.random::<f64>(); // (0, 1]: ln stays finite
        let u2 = self.net.random::<f64>();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let ms = (NET_MEAN_MS + NET_SD_MS * z).abs();
        (ms * NS_PER_MS as f64).round() as u64
    }
}

/// The seed of run number `run` under `master`.
#[must_use]
pub const fn run_seed(master: u64, run: u32) -> u64 {
    rng::derive(master, Stream::Server, run as u64)
}

/// Runs the OCC model once: `clients` clients contend for the row with
/// backoff `strategy` (base [`BASE_MS`], cap [`CAP_MS`]).
///
/// # Errors
///
/// `clients` is 0 or above [`MAX_CLIENTS`], or the run went over its event
/// budget.
pub fn run_once(
    strategy: BackoffStrategy,
    clients: u32,
    numbering: RetryNumbering,
    seed: u64,
) -> Result<RunOutcome, AwsError> {
    if clients == 0 || clients > MAX_CLIENTS {
        return Err(AwsError::Invalid(format!(
            "clients must be 1 to {MAX_CLIENTS}, not {clients}"
        )));
    }
    let config = BackoffConfig {
        strategy,
        base_ms: BASE_MS,
        cap_ms: CAP_MS,
    };
    let mut pool: Vec<Client> = (0..clients)
        .map(|i| Client {
            net: rng::stream(seed, Stream::Link, u64::from(i)),
            jitter: Jitter::new(rng::derive(seed, Stream::Client, u64::from(i))),
            backoff: Backoff::new(config),
            failed_writes: 0,
            successes: 0,
        })
        .collect();
    // (time ns, insertion order, client, message): ties go first come,
    // first served.
    let mut queue: BinaryHeap<Reverse<(u64, u64, u32, Msg)>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut push = |queue: &mut BinaryHeap<_>, at: u64, client: u32, msg: Msg| {
        queue.push(Reverse((at, order, client, msg)));
        order += 1;
    };
    for (i, c) in (0..clients).zip(pool.iter_mut()) {
        let at = c.hop_ns();
        push(&mut queue, at, i, Msg::Read);
    }
    let mut version = 0u64;
    let mut calls = 0u64;
    let mut successes = 0u64;
    let mut now = 0u64;
    let mut events = 0u64;
    let budget = MAX_EVENTS_PER_CLIENT.saturating_mul(u64::from(clients));
    while let Some(Reverse((at, _, i, msg))) = queue.pop() {
        now = at;
        events += 1;
        if events > budget {
            return Err(AwsError::Budget { seed, clients });
        }
        let c = &mut pool[i as usize];
        match msg {
            Msg::Read => {
                let at = now + c.hop_ns();
                push(&mut queue, at, i, Msg::ReadReply { version });
            }
            Msg::ReadReply { version: read } => {
                let at = now + c.hop_ns();
                push(&mut queue, at, i, Msg::Write { version: read });
            }
            Msg::Write { version: read } => {
                calls += 1;
                let ok = read == version;
                if ok {
                    version += 1;
                    successes += 1;
                }
                let at = now + c.hop_ns();
                push(&mut queue, at, i, Msg::WriteReply { ok });
            }
            Msg::WriteReply { ok: true } => c.successes += 1,
            Msg::WriteReply { ok: false } => {
                c.failed_writes += 1;
                let retry = numbering.retry(c.failed_writes);
                let sleep_ms = c.backoff.delay(retry, &mut c.jitter);
                let at = now + c.hop_ns() + sleep_ms * NS_PER_MS;
                push(&mut queue, at, i, Msg::Read);
            }
        }
    }
    Ok(RunOutcome {
        calls,
        successes,
        successes_per_client: pool.iter().map(|c| c.successes).collect(),
        completion_ns: now,
        events,
    })
}

/// Runs the experiment: every strategy at every client count, `runs` runs
/// each. Run `r` of every point uses the same seed, [`run_seed`]`(seed, r)`.
///
/// # Errors
///
/// The configuration is out of range (no runs, too many, no clients or
/// strategies), or a run went over its budget.
pub fn experiment(config: &AwsConfig) -> Result<AwsResult, AwsError> {
    if config.runs == 0 || config.runs > MAX_RUNS {
        return Err(AwsError::Invalid(format!(
            "runs must be 1 to {MAX_RUNS}, not {}",
            config.runs
        )));
    }
    if config.clients.is_empty() || config.strategies.is_empty() {
        return Err(AwsError::Invalid(
            "at least one client count and one strategy are needed".to_owned(),
        ));
    }
    let mut points = Vec::with_capacity(config.strategies.len() * config.clients.len());
    for &strategy in &config.strategies {
        for &clients in &config.clients {
            let mut calls_sum = 0u64;
            let mut time_sum = 0u128;
            let mut min_calls = u64::MAX;
            let mut max_calls = 0u64;
            let mut max_time = 0u64;
            for r in 0..config.runs {
                let out = run_once(
                    strategy,
                    clients,
                    config.numbering,
                    run_seed(config.seed, r),
                )?;
                calls_sum += out.calls;
                time_sum += u128::from(out.completion_ns);
                min_calls = min_calls.min(out.calls);
                max_calls = max_calls.max(out.calls);
                max_time = max_time.max(out.completion_ns);
            }
            let runs = f64::from(config.runs);
            points.push(AwsPoint {
                strategy: strategy.name().to_owned(),
                clients,
                runs: config.runs,
                mean_calls: round1(calls_sum as f64 / runs),
                mean_completion_ms: round1(time_sum as f64 / runs / NS_PER_MS as f64),
                min_calls,
                max_calls,
                max_completion_ms: round1(max_time as f64 / NS_PER_MS as f64),
            });
        }
    }
    Ok(AwsResult {
        seed: config.seed,
        runs: config.runs,
        base_ms: BASE_MS,
        cap_ms: CAP_MS,
        numbering: config.numbering,
        points,
    })
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Renders the result for people: one row per strategy; for each client
/// count the mean calls and the mean completion time in ms; and a last row
/// with the ideal number of calls, `2n − 1`.
#[must_use]
pub fn table(result: &AwsResult) -> String {
    let mut clients: Vec<u32> = Vec::new();
    let mut strategies: Vec<&str> = Vec::new();
    for p in &result.points {
        if !clients.contains(&p.clients) {
            clients.push(p.clients);
        }
        if !strategies.contains(&p.strategy.as_str()) {
            strategies.push(&p.strategy);
        }
    }
    let mut header = vec!["strategy".to_owned()];
    header.extend(clients.iter().map(|n| format!("calls n={n}")));
    header.extend(clients.iter().map(|n| format!("ms n={n}")));
    let mut rows = vec![header];
    for s in &strategies {
        let find = |n: u32| {
            result
                .points
                .iter()
                .find(|p| p.strategy == *s && p.clients == n)
        };
        let mut row = vec![(*s).to_owned()];
        row.extend(
            clients
                .iter()
                .map(|&n| find(n).map_or_else(String::new, |p| format!("{:.1}", p.mean_calls))),
        );
        row.extend(clients.iter().map(|&n| {
            find(n).map_or_else(String::new, |p| format!("{:.0}", p.mean_completion_ms))
        }));
        rows.push(row);
    }
    let mut ideal = vec!["ideal (2n-1)".to_owned()];
    ideal.extend(clients.iter().map(|&n| (2 * u64::from(n) - 1).to_string()));
    ideal.extend(clients.iter().map(|_| String::new()));
    rows.push(ideal);

    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i == 0 {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str("  ");
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            }
        }
        let kept = out.trim_end_matches(' ').len();
        out.truncate(kept);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_writes_exactly_once_and_calls_cover_the_clients() {
        for strategy in STRATEGIES {
            for numbering in [RetryNumbering::Policy, RetryNumbering::Aws] {
                for (seed, clients) in [(1, 1), (2, 7), (3, 30)] {
                    let out = run_once(strategy, clients, numbering, seed).unwrap();
                    assert!(
                        out.successes_per_client.iter().all(|&s| s == 1),
                        "{strategy:?} {clients}: {:?}",
                        out.successes_per_client
                    );
                    assert_eq!(out.successes, u64::from(clients));
                    assert!(out.calls >= u64::from(clients), "{strategy:?}: {out:?}");
                    // Four hops of at least 0 ms per write, and the first
                    // cycle alone takes four hops of about 10 ms.
                    assert!(out.completion_ns > 0);
                }
            }
        }
    }

    #[test]
    fn one_client_never_contends() {
        let out = run_once(BackoffStrategy::FullJitter, 1, RetryNumbering::Policy, 9).unwrap();
        assert_eq!(out.calls, 1);
        assert_eq!(out.events, 4);
        // Four hops of |N(10, 2)| ms.
        assert!((20 * NS_PER_MS..60 * NS_PER_MS).contains(&out.completion_ns));
    }

    #[test]
    fn simultaneous_starts_collide_at_least_once() {
        // All reads land around 10 ms and all writes around 30 ms, so the
        // first round has (all but a freak draw) every client write and
        // only one win: with this seed, at least 2n − 1 calls whatever the
        // strategy.
        for strategy in STRATEGIES {
            let out = run_once(strategy, 20, RetryNumbering::Policy, 4).unwrap();
            assert!(out.calls >= 39, "{strategy:?}: {}", out.calls);
        }
    }

    #[test]
    fn same_seed_same_figures_and_different_seeds_differ() {
        let config = AwsConfig {
            runs: 3,
            clients: vec![10, 20],
            ..AwsConfig::default()
        };
        let a = experiment(&config).unwrap();
        let b = experiment(&config).unwrap();
        assert_eq!(a, b);
        let c = experiment(&AwsConfig { seed: 2, ..config }).unwrap();
        assert_ne!(a.points, c.points);
        assert_eq!(a.points.len(), STRATEGIES.len() * 2);
    }

    #[test]
    fn jitter_beats_lockstep_exponential() {
        // The published ordering, on a few runs: exponential backoff
        // without jitter does more work and takes longer than full jitter.
        let config = AwsConfig {
            runs: 5,
            clients: vec![30],
            strategies: vec![BackoffStrategy::Exponential, BackoffStrategy::FullJitter],
            ..AwsConfig::default()
        };
        let r = experiment(&config).unwrap();
        let exp = r.point(BackoffStrategy::Exponential, 30).unwrap();
        let full = r.point(BackoffStrategy::FullJitter, 30).unwrap();
        assert!(exp.mean_calls > full.mean_calls, "{exp:?} {full:?}");
        assert!(
            exp.mean_completion_ms > full.mean_completion_ms,
            "{exp:?} {full:?}"
        );
    }

    #[test]
    fn bad_parameters_are_errors_not_panics() {
        assert!(matches!(
            run_once(BackoffStrategy::None, 0, RetryNumbering::Policy, 1),
            Err(AwsError::Invalid(_))
        ));
        for bad in [
            AwsConfig {
                runs: 0,
                ..AwsConfig::default()
            },
            AwsConfig {
                runs: MAX_RUNS + 1,
                ..AwsConfig::default()
            },
            AwsConfig {
                clients: vec![],
                ..AwsConfig::default()
            },
            AwsConfig {
                clients: vec![MAX_CLIENTS + 1],
                runs: 1,
                ..AwsConfig::default()
            },
        ] {
            let e = experiment(&bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid experiment"), "{e}");
        }
    }

    #[test]
    fn aws_numbering_doubles_the_first_nominal_delay() {
        assert_eq!(RetryNumbering::Policy.retry(1), 1);
        assert_eq!(RetryNumbering::Aws.retry(1), 2);
        assert_eq!(RetryNumbering::Aws.retry(u32::MAX), u32::MAX);
        let c = BackoffConfig {
            strategy: BackoffStrategy::Exponential,
            base_ms: BASE_MS,
            cap_ms: CAP_MS,
        };
        assert_eq!(c.exponential(RetryNumbering::Policy.retry(1)), 5);
        assert_eq!(c.exponential(RetryNumbering::Aws.retry(1)), 10);
    }
}
