//! A seeded, deterministic discrete-event simulator of a gateway and a
//! fleet of shards.
//!
//! It answers one question with numbers: when the network or the gateway
//! misbehaves, does a fleet of clients reconnect calmly, or does it storm?
//! Each shard runs either the policy crate itself
//! ([`reconnect_policy::Policy`], driven exactly as a real client drives it)
//! or a model of another library's reconnect behaviour; a model of the
//! gateway ([`gateway`], a sans-IO state machine the engine drives as it
//! drives the clients) enforces the real rules (identify buckets, the daily
//! session start limit, admission capacity, resume windows); links fail in the ways
//! the README's simulator section lists. The [`Report`] holds the storm
//! metrics M1–M8 and a verdict.
//!
//! - **Deterministic**: one master seed; every client, link and the server
//!   derive their own stream from it ([`rng`]); no wall clock, no threads
//!   and no hash-map iteration inside a run; the same scenario, model and
//!   seed give the same report and the same trace hash.
//! - **Event-driven**: virtual time jumps to the next event.
//! - **Parallel across runs**: [`compare`], [`sweep()`] and [`frontier::run`]
//!   spread separate runs over the machine's cores with rayon (limit them
//!   with [`with_jobs`]); each run stays on one thread, and the results are
//!   the same, byte for byte, on one thread or many.
//!
//! ```
//! use reconnect_sim::{Scenario, model, run_report, Budget};
//!
//! let mut scenario = Scenario::builtin("outage-30s").unwrap();
//! scenario.shards = 20;
//! let report = run_report(&scenario, &model("policy").unwrap(), 7, Budget::default()).unwrap();
//! assert!(!report.storm, "{:?}", report.storm_reasons);
//! // The fault began once all 20 shards had a session; start-up is its own figure.
//! assert_eq!(report.judged_shards, 20);
//! assert!(report.startup_ms.is_some());
//! // An op 9 wave makes the naive client re-identify at once, in its
//! // bucket's window: a storm.
//! let mut wave = Scenario::builtin("op9-wave").unwrap();
//! wave.shards = 20;
//! let naive = run_report(&wave, &model("naive").unwrap(), 7, Budget::default()).unwrap();
//! assert!(naive.storm, "{:?}", naive.reasons());
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aws;
pub mod client;
mod engine;
pub mod frontier;
pub mod gateway;
mod in_flight;
pub mod metrics;
pub mod net;
mod packed;
mod queue;
pub mod recent_times;
pub mod report;
pub mod rng;
pub mod rules;
pub mod scenario;
pub mod stdout;
pub mod store;
pub mod svg;
pub mod sweep;
pub mod wire;

use reconnect_policy::{BackoffConfig, BackoffStrategy, PolicyConfig};

pub use client::PeerKind;
pub use engine::{
    Budget, ModelSpec, PENDING_BASE, PENDING_PER_SHARD, RunError, pending_cap, run, run_with_store,
};
pub use report::{Report, infeasibility, table};
pub use scenario::Scenario;

/// The name of the policy with its production defaults.
pub const DEFAULT_MODEL: &str = "policy";

/// The policy with its defaults but fleet recovery off: every shard backs
/// off on its own, as before the fleet learned to tell a fleet-wide outage
/// (see `reconnect_policy::FleetRecovery`).
pub const FLEET_OFF_MODEL: &str = "policy:fleet-off";

/// Every model `compare` runs, by name, in display order: the policy with
/// its defaults, the policy with each other backoff strategy, then the peer
/// models.
#[must_use]
pub fn model_names() -> Vec<String> {
    let mut names = vec![DEFAULT_MODEL.to_owned(), FLEET_OFF_MODEL.to_owned()];
    for strategy in BackoffStrategy::ALL {
        if strategy != BackoffConfig::DEFAULT.strategy {
            names.push(format!("policy:{}", strategy.name()));
        }
    }
    names.extend(PeerKind::ALL.iter().map(|k| k.name().to_owned()));
    names
}

/// The model called `name`: `policy` (the production defaults),
/// `policy:fleet-off` (the defaults without fleet recovery),
/// `policy:<strategy>` (the defaults with another backoff strategy, same
/// base and cap; `policy:none` also drops the guard, as the storm
/// baseline), or a peer model's name.
#[must_use]
pub fn model(name: &str) -> Option<ModelSpec> {
    if name == DEFAULT_MODEL {
        return Some(ModelSpec::Policy {
            name: name.to_owned(),
            config: Box::default(),
        });
    }
    if name == FLEET_OFF_MODEL {
        let config = PolicyConfig {
            fleet_recovery: reconnect_policy::FleetRecovery::OFF,
            ..PolicyConfig::default()
        };
        return Some(ModelSpec::Policy {
            name: name.to_owned(),
            config: Box::new(config),
        });
    }
    if let Some(strategy) = name.strip_prefix("policy:") {
        let strategy = BackoffStrategy::ALL
            .into_iter()
            .find(|s| s.name() == strategy)?;
        let mut config = PolicyConfig::default();
        config.backoff.strategy = strategy;
        if strategy == BackoffStrategy::None {
            // The storm baseline: no backoff, no guard, no attempt ceiling.
            config.backoff.base_ms = 0;
            config.guard_ms = 0;
            config.attempt_rate.window_ms = 0;
        }
        return Some(ModelSpec::Policy {
            name: name.to_owned(),
            config: Box::new(config),
        });
    }
    PeerKind::from_name(name).map(ModelSpec::Peer)
}

/// Runs one model through a scenario and computes its report.
///
/// # Errors
///
/// See [`run`].
pub fn run_report(
    scenario: &Scenario,
    model: &ModelSpec,
    seed: u64,
    budget: Budget,
) -> Result<Report, RunError> {
    let recorder = run(scenario, model, seed, budget)?;
    Ok(Report::new(scenario, model.name(), seed, &recorder))
}

/// A bot split over processes that share an identify store, beside the
/// same fleet in one process (its own limiter): the gateway's verdicts for
/// both, the store's and the processes' counts, and every assumption of the
/// split in words.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ProcessesComparison {
    /// The split's assumptions (round trip, outages, hold, local shares)
    /// followed by the report's own.
    pub assumptions: Vec<String>,
    /// The run split over the processes, judged by the gateway.
    pub split: Report,
    /// The same fleet in one process.
    pub one_process: Report,
    /// Identify payloads the gateway received over the whole split run,
    /// start-up included (the report counts from judging on).
    pub identifies_whole_run: u64,
    /// Session starts the gateway counted over the whole split run.
    pub session_starts_whole_run: u64,
    /// What the store and each process did (never a verdict).
    pub figures: client::ProcessesFigures,
}

/// Runs the policy's `model` through `scenario`, which must split the bot
/// over processes ([`Scenario::store`]), and through the same scenario in
/// one process.
///
/// # Errors
///
/// As [`run`]; [`RunError::Config`] when the scenario has no store or the
/// model is not the policy's.
pub fn compare_processes(
    scenario: &Scenario,
    model: &ModelSpec,
    seed: u64,
    budget: Budget,
) -> Result<ProcessesComparison, RunError> {
    let Some(spec) = &scenario.store else {
        return Err(RunError::Config(
            "the scenario does not split the bot over processes (no `store`)".to_owned(),
        ));
    };
    let (rec, figures) = run_with_store(scenario, model, seed, budget)?;
    let figures = figures.ok_or_else(|| {
        RunError::Config(format!(
            "{} is not one of the policy's models",
            model.name()
        ))
    })?;
    let split = Report::new(scenario, model.name(), seed, &rec);
    let mut one = scenario.clone();
    one.store = None;
    let one_process = run_report(&one, model, seed, budget)?;
    let shares: Vec<u32> = figures.processes.iter().map(|p| p.local_share).collect();
    let (least, most) = (
        shares.iter().min().copied().unwrap_or(0),
        shares.iter().max().copied().unwrap_or(0),
    );
    let outages: Vec<String> = spec
        .outages
        .iter()
        .map(|o| format!("{} ms for {} ms", o.at_ms, o.duration_ms))
        .collect();
    let mut assumptions = vec![
        format!(
            "the bot runs in {} processes of contiguous shard ranges, each with its own fleet and fleet recovery; {}",
            figures.processes.len(),
            if spec.share_probe {
                "the fleet-wide outage probe is shared through the store (one grant per probe gap for the bot; a process that hears nothing within 2 s probes on its own schedule) and each process ramps its share of the bot's window"
            } else {
                "each process probes and ramps alone (nothing of fleet recovery is shared)"
            }
        ),
        format!(
            "store round trip {} ms plus up to {} ms of jitter each way; a request unanswered for {} ms sends its process to the fallback; the store is checked every {} ms while away",
            spec.round_trip_ms, spec.jitter_ms, spec.call_timeout_ms, spec.check_every_ms
        ),
        format!(
            "store away (every message to or from it lost) at {} after the fault schedule starts; it grants nothing for {} ms after each outage (return hold)",
            if outages.is_empty() {
                "no time".to_owned()
            } else {
                outages.join(", ")
            },
            figures.return_hold_ms
        ),
        format!(
            "local share of session starts per process {least} to {most}; fallback grants in {:?} buckets, one Identify per bucket per 5,250 ms per process, a window after the fallback began",
            spec.fallback_buckets
        ),
    ];
    if spec.broken {
        assumptions.push(
            "BROKEN store: it grants every Acquire at once (a test of the referee)".to_owned(),
        );
    }
    assumptions.extend(split.assumptions.iter().cloned());
    Ok(ProcessesComparison {
        assumptions,
        split,
        one_process,
        identifies_whole_run: rec.count.identifies,
        session_starts_whole_run: rec.count.session_starts,
        figures,
    })
}

/// What a run looked like over time, for charts ([`svg`]): what the
/// [`Report`] sums up, kept per second and per shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Series {
    /// Client connection attempts in each second, all shards together, from
    /// judging on. Index `i` is second `i` of the scenario's fault schedule
    /// (which starts once the fleet has a session), so every model's series
    /// line up on the same faults.
    pub attempts_per_s: Vec<u32>,
    /// For each judged shard that has a session at the end: the time from
    /// the heal to that session (0 when it never lost one), ms, sorted. The
    /// report's `recovery_*` quantiles are taken from the same values.
    pub recovery_ms: Vec<u64>,
    /// Judged shards without a session at the end (they never recovered).
    pub unrecovered: u64,
}

impl Series {
    /// The series of a finished run of `scenario`.
    #[must_use]
    pub fn new(_scenario: &Scenario, recorder: &metrics::Recorder) -> Self {
        let times = report::recovery_times(recorder);
        let mut recovery_ms: Vec<u64> = times.iter().flatten().copied().collect();
        recovery_ms.sort_unstable();
        let attempts_per_s = if recorder.judged_from.is_some() && recorder.heal_at.is_some() {
            recorder.attempts_per_schedule_s.clone()
        } else {
            Vec::new()
        };
        Self {
            attempts_per_s,
            recovery_ms,
            unrecovered: times.iter().filter(|t| t.is_none()).count() as u64,
        }
    }
}

/// Runs one model through a scenario and returns its report and its
/// [`Series`].
///
/// # Errors
///
/// See [`run`].
pub fn run_with_series(
    scenario: &Scenario,
    model: &ModelSpec,
    seed: u64,
    budget: Budget,
) -> Result<(Report, Series), RunError> {
    let recorder = run(scenario, model, seed, budget)?;
    Ok((
        Report::new(scenario, model.name(), seed, &recorder),
        Series::new(scenario, &recorder),
    ))
}

/// [`compare`], keeping each run's [`Series`] too, and calling `progress`
/// with the number of runs finished after each one.
#[must_use]
pub fn compare_with_series(
    scenario: &Scenario,
    models: &[ModelSpec],
    seed: u64,
    budget: Budget,
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<Result<(Report, Series), RunError>> {
    let done = std::sync::atomic::AtomicUsize::new(0);
    parallel_map(models, |m| {
        let r = run_with_series(scenario, m, seed, budget);
        progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
        r
    })
}

/// Runs every model through a scenario with one seed (the same fault
/// schedule for each: common random numbers), in parallel over the cores,
/// in the order given. A run that fails does not stop the others: each
/// model gets its own result.
#[must_use]
pub fn compare(
    scenario: &Scenario,
    models: &[ModelSpec],
    seed: u64,
    budget: Budget,
) -> Vec<Result<Report, RunError>> {
    parallel_map(models, |m| run_report(scenario, m, seed, budget))
}

/// Runs one model through a scenario for every seed in `seeds`, in
/// parallel, calling `progress` after each finished run.
///
/// # Errors
///
/// The first run that failed.
pub fn sweep(
    scenario: &Scenario,
    model: &ModelSpec,
    seeds: &[u64],
    budget: Budget,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Report>, RunError> {
    let done = std::sync::atomic::AtomicUsize::new(0);
    parallel_map(seeds, |&seed| {
        let r = run_report(scenario, model, seed, budget);
        progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
        r
    })
    .into_iter()
    .collect()
}

/// Applies `f` to every item on the current rayon pool (all cores, unless
/// the caller runs inside [`with_jobs`]), keeping the input order: the
/// results are the same, byte for byte, whatever the number of threads,
/// because every run is independent and collected into its own slot.
pub(crate) fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use rayon::prelude::*;
    items.par_iter().map(&f).collect()
}

/// Runs `f` with the parallel functions of this crate ([`compare`],
/// [`compare_with_series`], [`sweep()`], [`frontier::run`]) limited to `jobs`
/// threads; `jobs` 1 runs every run one after the other.
///
/// ```
/// use reconnect_sim::{Budget, Scenario, model, sweep, with_jobs};
///
/// let mut scenario = Scenario::builtin("outage-30s").unwrap();
/// scenario.shards = 10;
/// let m = model("policy").unwrap();
/// let run = || sweep(&scenario, &m, &[1, 2, 3], Budget::default(), &|_| {}).unwrap();
/// let one = with_jobs(1, run).unwrap();
/// let two = with_jobs(2, run).unwrap();
/// assert_eq!(one, two);
/// ```
///
/// # Errors
///
/// `jobs` is 0, or the threads could not be started.
pub fn with_jobs<R: Send>(jobs: usize, f: impl FnOnce() -> R + Send) -> Result<R, JobsError> {
    if jobs == 0 {
        return Err(JobsError("--jobs must be at least 1".to_owned()));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("sim-run-{i}"))
        .build()
        .map_err(|e| JobsError(format!("starting {jobs} threads: {e}")))?;
    Ok(pool.install(f))
}

/// Why [`with_jobs`] could not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobsError(String);

impl std::fmt::Display for JobsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JobsError {}
