//! `reconnect-sim`: run scenarios, compare strategies and peer models, sweep
//! seeds, and check determinism.

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use reconnect_sim::{
    Budget, DEFAULT_MODEL, ModelSpec, Report, Scenario, frontier, model, model_names,
    scenario::BUILTIN, sweep, table,
};

/// What `compare` and `frontier` share: the seed, the output, the model
/// under test, the exit status and the threads.
#[derive(clap::Args)]
struct Judged {
    /// The master seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Also draw the charts into this SVG file (`compare`: attempts per
    /// second and recovery times of every model; `frontier`: p99 recovery
    /// against outage length).
    #[arg(long, value_name = "FILE")]
    svg: Option<std::path::PathBuf>,
    /// Also run the policy with this configuration (a `PolicyConfig` as
    /// JSON), shown as `custom` beside the built-ins.
    #[arg(long, value_name = "FILE")]
    policy_config: Option<std::path::PathBuf>,
    /// Exit with status 2 when a verdict of the default policy (or of
    /// `custom`, when given) has this part.
    #[arg(long, value_enum)]
    fail_on: Option<FailOn>,
    /// Runs at most this many runs at once (default: the machine's cores;
    /// 1 runs them one after the other). The output is the same whatever
    /// the number.
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
}

/// A deterministic simulator of gateway reconnect storms.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one model through one scenario.
    Run {
        /// A built-in scenario name or a JSON file.
        #[arg(long, default_value = "outage-30s")]
        scenario: String,
        /// The model: `policy`, `policy:<strategy>` or a peer model.
        #[arg(long, default_value = "policy")]
        strategy: String,
        /// The master seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Exit with status 2 when the verdict has this part.
        #[arg(long, value_enum)]
        fail_on: Option<FailOn>,
    },
    /// Runs every model through a scenario with the same seed and prints
    /// them side by side.
    Compare {
        /// A built-in scenario name or a JSON file.
        #[arg(long, default_value = "outage-30s")]
        scenario: String,
        #[command(flatten)]
        judged: Judged,
    },
    /// Runs every model through fleet-wide outages of 5 s to 600 s,
    /// refused and black-holed, each after the model's full start-up, and
    /// prints p50/p99 recovery after the heal and attempts per shard.
    Frontier {
        /// Shards of the fleet.
        #[arg(long, default_value_t = 1_000)]
        shards: u32,
        /// Run only these models (comma-separated; default: every model).
        #[arg(long, value_delimiter = ',', value_name = "NAMES")]
        models: Option<Vec<String>>,
        #[command(flatten)]
        judged: Judged,
    },
    /// Runs one model over many seeds and prints the worst case of each
    /// metric with the seed that produced it. With `--part K/N` it runs
    /// only the K-th of N slices of the seeds and writes one JSON line per
    /// seed; `sweep merge` combines the parts' lines into the same report.
    #[command(args_conflicts_with_subcommands = true)]
    Sweep {
        #[command(subcommand)]
        merge: Option<SweepCommand>,
        /// A built-in scenario name or a JSON file.
        #[arg(long, default_value = "flapping-link")]
        scenario: String,
        /// The model.
        #[arg(long, default_value = "policy")]
        strategy: String,
        /// Seeds `A..B` (B excluded).
        #[arg(long, default_value = "1..9")]
        seeds: String,
        /// Print the worst cases as JSON.
        #[arg(long, conflicts_with = "part")]
        json: bool,
        /// Run only part K of N of the seeds (contiguous slices, 1-based)
        /// and write each seed's report as a line of JSON, for
        /// `sweep merge`.
        #[arg(long, value_name = "K/N")]
        part: Option<sweep::Part>,
        /// Runs at most this many runs at once (default: the machine's
        /// cores; 1 runs them one after the other). The output is the same
        /// whatever the number.
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
    },
    /// Runs a seed twice and checks that both runs are identical.
    Check {
        /// A built-in scenario name or a JSON file.
        #[arg(long, default_value = "flapping-link")]
        scenario: String,
        /// The model.
        #[arg(long, default_value = "policy")]
        strategy: String,
        /// The master seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Reproduces the AWS "Exponential Backoff and Jitter" experiment:
    /// clients contending for one optimistic-concurrency row, with the
    /// policy crate's backoff strategies (base 5 ms, cap 2 s).
    Aws {
        /// Runs per point (the published experiment used 100).
        #[arg(long, default_value_t = reconnect_sim::aws::DEFAULT_RUNS)]
        runs: u32,
        /// The master seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Client counts, comma-separated (the blog's charts went to 100).
        #[arg(long, value_delimiter = ',', default_value = "10,20,30,40,50")]
        clients: Vec<u32>,
        /// Number retries as the AWS simulator does (the n-th retry's
        /// nominal delay is base·2^n instead of the policy's base·2^(n-1)).
        #[arg(long)]
        aws_numbering: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Runs the policy with the bot split over processes that share an
    /// identify store (the scenario's `store`, or the one these flags
    /// describe), beside the same fleet in one process, and prints the
    /// gateway's verdicts, the store's counts and every assumption.
    Processes {
        /// A built-in scenario name or a JSON file.
        #[arg(long, default_value = reconnect_sim::scenario::STORE_OUTAGE)]
        scenario: String,
        /// Shards (default: the scenario's).
        #[arg(long)]
        shards: Option<u32>,
        /// Identify buckets (default: the scenario's).
        #[arg(long)]
        max_concurrency: Option<u16>,
        /// Processes the shards are split over.
        #[arg(long)]
        processes: Option<u32>,
        /// Round trip to the store, ms.
        #[arg(long)]
        store_rtt_ms: Option<u64>,
        /// Extra one-way jitter to the store, up to this, ms.
        #[arg(long)]
        store_jitter_ms: Option<u64>,
        /// The store is away from AT for DURATION ms (`AT:DURATION`, times
        /// from the fault schedule's start); repeat for several; replaces
        /// the scenario's outages.
        #[arg(long, value_name = "AT:DURATION")]
        store_outage: Vec<String>,
        /// Each process's local share of session starts.
        #[arg(long)]
        local_share: Option<u32>,
        /// Each process probes and ramps alone after a fleet-wide outage
        /// (by default they share one probe and one ramp through the store).
        #[arg(long)]
        probe_alone: bool,
        /// The master seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists the built-in scenarios and the models.
    List,
}

/// What `sweep` does besides running seeds.
#[derive(Subcommand)]
enum SweepCommand {
    /// Combines the JSON lines of every part of a sweep (`sweep --part`)
    /// into the report a single run over all the seeds gives.
    Merge {
        /// The parts' outputs, in any order.
        #[arg(required = true, value_name = "FILES")]
        files: Vec<std::path::PathBuf>,
        /// Print the worst cases as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A part of the verdict that makes the exit status 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FailOn {
    /// STORM.
    Storm,
    /// SLOW RECOVERY.
    Slow,
    /// HERD.
    Herd,
    /// Any of the three.
    Any,
}

impl FailOn {
    /// Whether a verdict (`ok`, or parts joined by `+`) fails.
    fn fails(self, verdict: &str) -> bool {
        let has = |part: &str| verdict.split('+').any(|p| p == part);
        match self {
            Self::Storm => has("STORM"),
            Self::Slow => has("SLOW"),
            Self::Herd => has("HERD"),
            Self::Any => verdict != "ok",
        }
    }
}

/// The exit status for verdicts of the models under test.
fn verdict_status<'a>(
    fail_on: Option<FailOn>,
    verdicts: impl IntoIterator<Item = &'a str>,
) -> ExitCode {
    match fail_on {
        Some(f) if verdicts.into_iter().any(|v| f.fails(v)) => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    }
}

/// A progress bar on standard error (hidden when it is not a terminal).
fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} runs, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// A spinner for one run.
fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// The built-in models, and `custom` from a policy configuration file.
fn models_with(policy_config: Option<&Path>) -> Result<Vec<ModelSpec>, String> {
    let mut models: Vec<ModelSpec> = model_names()
        .iter()
        .map(|n| find_model(n))
        .collect::<Result<_, _>>()?;
    if let Some(path) = policy_config {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let config: reconnect_policy::PolicyConfig =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        models.insert(
            1,
            ModelSpec::Policy {
                name: CUSTOM_MODEL.to_owned(),
                config: Box::new(config),
            },
        );
    }
    Ok(models)
}

/// The models named in `only` (all of them without it), in display order.
fn only_models(models: Vec<ModelSpec>, only: Option<&[String]>) -> Result<Vec<ModelSpec>, String> {
    let Some(only) = only else {
        return Ok(models);
    };
    if let Some(unknown) = only
        .iter()
        .find(|n| !models.iter().any(|m| m.name() == n.as_str()))
    {
        let known: Vec<&str> = models.iter().map(ModelSpec::name).collect();
        return Err(format!(
            "unknown model {unknown:?} (known: {})",
            known.join(", ")
        ));
    }
    Ok(models
        .into_iter()
        .filter(|m| only.iter().any(|n| n == m.name()))
        .collect())
}

/// The name a `--policy-config` model runs under.
const CUSTOM_MODEL: &str = "custom";

/// The model whose verdict `--fail-on` reads: `custom` when a policy
/// configuration was given, the production default otherwise.
fn model_under_test(policy_config: Option<&Path>) -> &'static str {
    if policy_config.is_some() {
        CUSTOM_MODEL
    } else {
        DEFAULT_MODEL
    }
}

/// Writes to standard output; a reader that went away (`| head`) ends the
/// output quietly instead of panicking, other write errors are errors.
fn emit(args: std::fmt::Arguments<'_>) -> Result<(), String> {
    reconnect_sim::stdout::write_quietly(args).map_err(|e| format!("writing the output: {e}"))
}

/// `print!` through [`emit`], returning its error from the function.
macro_rules! out {
    ($($arg:tt)*) => {
        emit(format_args!($($arg)*))?
    };
}

/// `println!` through [`emit`], returning its error from the function.
macro_rules! outln {
    () => {
        emit(format_args!("\n"))?
    };
    ($($arg:tt)*) => {{
        emit(format_args!($($arg)*))?;
        emit(format_args!("\n"))?
    }};
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `AT:DURATION` in ms, for `--store-outage`.
fn parse_outage(text: &str) -> Result<reconnect_sim::scenario::StoreOutage, String> {
    let bad = || format!("--store-outage {text:?}: expected AT:DURATION in ms");
    let (at, duration) = text.split_once(':').ok_or_else(bad)?;
    Ok(reconnect_sim::scenario::StoreOutage {
        at_ms: at.trim().parse().map_err(|_| bad())?,
        duration_ms: duration.trim().parse().map_err(|_| bad())?,
    })
}

fn load_scenario(name: &str) -> Result<Scenario, String> {
    if let Some(s) = Scenario::builtin(name) {
        return Ok(s);
    }
    let path = Path::new(name);
    if !path.exists() {
        return Err(format!(
            "no built-in scenario or file named {name:?} (built-in: {})",
            BUILTIN.join(", ")
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    Scenario::from_json(&text).map_err(|e| format!("{name}: {e}"))
}

/// Refuses a scenario no client could pass (its lower bound does not fit).
fn refuse_infeasible(sc: &Scenario) -> Result<(), String> {
    match reconnect_sim::infeasibility(sc) {
        Some(why) => Err(format!(
            "scenario {} is infeasible for any client: {why}",
            sc.name
        )),
        None => Ok(()),
    }
}

fn find_model(name: &str) -> Result<ModelSpec, String> {
    model(name).ok_or_else(|| {
        format!(
            "unknown model {name:?} (known: {})",
            model_names().join(", ")
        )
    })
}

fn print_assumptions(assumptions: &[String]) -> Result<(), String> {
    outln!("assumptions:");
    for a in assumptions {
        outln!("  - {a}");
    }
    Ok(())
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    outln!("{text}");
    Ok(())
}

fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("seeds must look like A..B, not {text:?}"))?;
    let a: u64 = a.trim().parse().map_err(|_| format!("bad seed {a:?}"))?;
    let b: u64 = b.trim().parse().map_err(|_| format!("bad seed {b:?}"))?;
    if a >= b || b - a > 1_000_000 {
        return Err("seeds A..B need A < B and at most 1000000 seeds".to_owned());
    }
    Ok(a..b)
}

/// Prints a sweep's summary, as text or JSON (the worst cases).
fn print_summary(summary: &sweep::Summary, json: bool) -> Result<(), String> {
    if json {
        print_json(&summary.worst)
    } else {
        out!("{}", summary.text());
        Ok(())
    }
}

/// Runs `f` on `jobs` threads (default: every core).
fn in_jobs<R: Send>(jobs: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R, String> {
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    reconnect_sim::with_jobs(jobs, f).map_err(|e| e.to_string())
}

fn execute(command: Command) -> Result<ExitCode, String> {
    let budget = Budget::default();
    match command {
        Command::Processes {
            scenario,
            shards,
            max_concurrency,
            processes,
            store_rtt_ms,
            store_jitter_ms,
            store_outage,
            local_share,
            probe_alone,
            seed,
            json,
        } => {
            let mut sc = load_scenario(&scenario)?;
            if let Some(shards) = shards {
                sc.shards = shards;
            }
            if let Some(buckets) = max_concurrency {
                sc.gateway.max_concurrency = buckets;
            }
            let store = sc.store.get_or_insert_with(Default::default);
            if let Some(p) = processes {
                store.processes = p;
            }
            if let Some(rtt) = store_rtt_ms {
                store.round_trip_ms = rtt;
            }
            if let Some(jitter) = store_jitter_ms {
                store.jitter_ms = jitter;
            }
            if local_share.is_some() {
                store.local_share = local_share;
            }
            if probe_alone {
                store.share_probe = false;
            }
            if !store_outage.is_empty() {
                store.outages = store_outage
                    .iter()
                    .map(|o| parse_outage(o))
                    .collect::<Result<_, _>>()?;
            }
            sc.validate().map_err(|e| e.to_string())?;
            let m = find_model(DEFAULT_MODEL)?;
            let bar = spinner(&format!("{} over processes", sc.name));
            let result = reconnect_sim::compare_processes(&sc, &m, seed, budget);
            bar.finish_and_clear();
            let result = result.map_err(|e| e.to_string())?;
            if json {
                print_json(&result)?;
            } else {
                let processes = result.figures.processes.len();
                outln!("{} — {}", sc.name, sc.description);
                let split = result.split.clone();
                let mut one = result.one_process.clone();
                one.model = format!("{} (1 process)", one.model);
                let mut many = split;
                many.model = format!("{} ({processes} processes)", many.model);
                out!("{}", table(&[many, one]));
                outln!("{}", reconnect_sim::report::TABLE_LEGEND);
                print_assumptions(&result.assumptions)?;
                let s = result.figures.store;
                outln!(
                    "store: {} grants, {} starts charged for local grants, {} given back, {} charged in all; the gateway received {} Identify payloads and counted {} session starts over the whole run",
                    s.grants,
                    s.charged_locally,
                    s.given_back,
                    s.charged(),
                    result.identifies_whole_run,
                    result.session_starts_whole_run
                );
                let fallbacks: Vec<u64> = result
                    .figures
                    .processes
                    .iter()
                    .map(|p| p.fallback.fallbacks)
                    .collect();
                let local: u64 = result
                    .figures
                    .processes
                    .iter()
                    .map(|p| p.fallback.local_grants)
                    .sum();
                let parked: u64 = result
                    .figures
                    .processes
                    .iter()
                    .map(|p| p.fallback.parked)
                    .sum();
                outln!(
                    "processes: fallbacks {fallbacks:?}, {local} starts granted by local shares, {parked} requests parked until the store was back"
                );
                for reason in result.split.reasons() {
                    outln!("{processes} processes: {reason}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            scenario,
            strategy,
            seed,
            json,
            fail_on,
        } => {
            let sc = load_scenario(&scenario)?;
            let m = find_model(&strategy)?;
            refuse_infeasible(&sc)?;
            let bar = spinner(&format!("{} with {strategy}", sc.name));
            let report = reconnect_sim::run_report(&sc, &m, seed, budget);
            bar.finish_and_clear();
            let report = report.map_err(|e| e.to_string())?;
            if json {
                print_json(&report)?;
            } else {
                outln!("{} — {}", sc.name, sc.description);
                out!("{}", table(std::slice::from_ref(&report)));
                outln!("{}", reconnect_sim::report::TABLE_LEGEND);
                print_assumptions(&report.assumptions)?;
                for reason in report.reasons() {
                    outln!("{reason}");
                }
            }
            Ok(verdict_status(fail_on, [report.verdict.as_str()]))
        }
        Command::Compare {
            scenario,
            judged:
                Judged {
                    seed,
                    json,
                    svg,
                    policy_config,
                    fail_on,
                    jobs,
                },
        } => {
            let sc = load_scenario(&scenario)?;
            refuse_infeasible(&sc)?;
            let models = models_with(policy_config.as_deref())?;
            if let Some(path) = &svg {
                // Fail before the runs if the file cannot be created.
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let bar = progress_bar(models.len(), &sc.name);
            let runs = in_jobs(jobs, || {
                reconnect_sim::compare_with_series(&sc, &models, seed, budget, &|n| {
                    bar.set_position(n as u64);
                })
            })?;
            bar.finish_and_clear();
            if let Some(path) = &svg {
                let drawn: Vec<_> = runs
                    .iter()
                    .filter_map(|r| r.as_ref().ok())
                    .cloned()
                    .collect();
                reconnect_sim::svg::write(path, &sc, &drawn).map_err(|e| e.to_string())?;
                eprintln!("charts written to {}", path.display());
            }
            let reports: Vec<Report> = runs
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .map(|(r, _)| r.clone())
                .collect();
            let failed: Vec<String> = runs
                .iter()
                .filter_map(|r| r.as_ref().err())
                .map(ToString::to_string)
                .collect();
            if json {
                print_json(&reports)?;
            } else {
                outln!(
                    "{} — {} ({} shards, seed {seed})",
                    sc.name,
                    sc.description,
                    sc.shards
                );
                out!("{}", table(&reports));
                outln!("{}", reconnect_sim::report::TABLE_LEGEND);
                if let Some(r) = reports.first() {
                    print_assumptions(&r.assumptions)?;
                }
                for r in &reports {
                    for reason in r.reasons() {
                        outln!("{}: {reason}", r.model);
                    }
                }
            }
            for e in &failed {
                eprintln!("error: {e}");
            }
            if !failed.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
            let under_test = model_under_test(policy_config.as_deref());
            Ok(verdict_status(
                fail_on,
                reports
                    .iter()
                    .filter(|r| r.model == under_test)
                    .map(|r| r.verdict.as_str()),
            ))
        }
        Command::Frontier {
            shards,
            models: only,
            judged:
                Judged {
                    seed,
                    json,
                    svg,
                    policy_config,
                    fail_on,
                    jobs,
                },
        } => {
            let models = only_models(models_with(policy_config.as_deref())?, only.as_deref())?;
            if let Some(path) = &svg {
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let total = models.len() * frontier::MODES.len() * frontier::OUTAGE_LENGTHS_S.len();
            let bar = progress_bar(total, "frontier");
            let results = in_jobs(jobs, || {
                frontier::run(&models, shards, seed, budget, &|n| {
                    bar.set_position(n as u64);
                })
            })?;
            bar.finish_and_clear();
            let cells: Vec<frontier::Cell> = results
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .cloned()
                .collect();
            if let Some(path) = &svg {
                let text = frontier::chart(&cells, DEFAULT_MODEL).map_err(|e| e.to_string())?;
                std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
                eprintln!("chart written to {}", path.display());
            }
            if json {
                print_json(&cells)?;
            } else {
                outln!(
                    "frontier — every link down for 5 to 600 s once the whole fleet has a session ({shards} shards, seed {seed}); inf: never within {} s",
                    frontier::AFTER_HEAL_MS / 1_000
                );
                out!("{}", frontier::tables(&cells, DEFAULT_MODEL));
                outln!("* marks the production default");
            }
            let mut failed = false;
            for e in results.iter().filter_map(|r| r.as_ref().err()) {
                eprintln!("error: {e}");
                failed = true;
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
            let under_test = model_under_test(policy_config.as_deref());
            Ok(verdict_status(
                fail_on,
                cells
                    .iter()
                    .filter(|c| c.model == under_test)
                    .map(|c| c.verdict.as_str()),
            ))
        }
        Command::Sweep {
            merge: Some(SweepCommand::Merge { files, json }),
            ..
        } => {
            let mut lines = Vec::new();
            for path in &files {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                lines.extend(
                    sweep::Line::parse_all(&path.display().to_string(), &text)
                        .map_err(|e| e.to_string())?,
                );
            }
            let summary = sweep::merge(lines).map_err(|e| e.to_string())?;
            print_summary(&summary, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sweep {
            merge: None,
            scenario,
            strategy,
            seeds,
            json,
            part,
            jobs,
        } => {
            let sc = load_scenario(&scenario)?;
            let m = find_model(&strategy)?;
            let all = parse_seeds(&seeds)?;
            let this = part.unwrap_or(sweep::Part::WHOLE);
            if u64::from(this.count) > all.end - all.start {
                return Err(format!(
                    "{} parts of {} seeds would leave a part empty",
                    this.count,
                    all.end - all.start
                ));
            }
            let seeds: Vec<u64> = this.seeds(all.clone()).collect();
            let bar = progress_bar(seeds.len(), &sc.name);
            let reports = in_jobs(jobs, || {
                sweep(&sc, &m, &seeds, budget, &|n| {
                    bar.set_position(n as u64);
                })
            })?;
            bar.finish_and_clear();
            let reports = reports.map_err(|e| e.to_string())?;
            if part.is_some() {
                for r in reports {
                    let line = sweep::Line::new(all.clone(), this, r);
                    let text = serde_json::to_string(&line).map_err(|e| e.to_string())?;
                    outln!("{text}");
                }
            } else {
                print_summary(&sweep::Summary::new(&reports), json)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            scenario,
            strategy,
            seed,
        } => {
            let sc = load_scenario(&scenario)?;
            let m = find_model(&strategy)?;
            let a = reconnect_sim::run_report(&sc, &m, seed, budget).map_err(|e| e.to_string())?;
            let b = reconnect_sim::run_report(&sc, &m, seed, budget).map_err(|e| e.to_string())?;
            let ja = serde_json::to_string(&a).map_err(|e| e.to_string())?;
            let jb = serde_json::to_string(&b).map_err(|e| e.to_string())?;
            if ja == jb {
                outln!(
                    "deterministic: two runs of seed {seed} gave trace hash {} and identical reports ({} events)",
                    a.trace_hash,
                    a.events
                );
                Ok(ExitCode::SUCCESS)
            } else {
                outln!(
                    "NOT deterministic: seed {seed} gave trace hashes {} and {}",
                    a.trace_hash,
                    b.trace_hash
                );
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Aws {
            runs,
            seed,
            clients,
            aws_numbering,
            json,
        } => {
            use reconnect_sim::aws;
            let config = aws::AwsConfig {
                seed,
                runs,
                clients,
                numbering: if aws_numbering {
                    aws::RetryNumbering::Aws
                } else {
                    aws::RetryNumbering::Policy
                },
                strategies: aws::STRATEGIES.to_vec(),
            };
            let result = aws::experiment(&config).map_err(|e| e.to_string())?;
            if json {
                print_json(&result)?;
            } else {
                outln!(
                    "AWS backoff experiment: one OCC row, base {} ms, cap {} ms, hops |N(10 ms, 2 ms)|, {} runs per point, seed {seed}, {} retry numbering",
                    result.base_ms,
                    result.cap_ms,
                    result.runs,
                    if aws_numbering { "AWS" } else { "policy" }
                );
                outln!("mean calls (write attempts) and mean completion time (ms) per run:");
                out!("{}", aws::table(&result));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List => {
            outln!("scenarios:");
            for name in BUILTIN.into_iter().chain([
                reconnect_sim::scenario::NO_FAULT,
                reconnect_sim::scenario::STORE_OUTAGE,
            ]) {
                let s = Scenario::builtin(name).expect("built-in");
                outln!("  {name:<16} {}", s.description);
            }
            outln!("models:");
            for name in model_names() {
                outln!("  {name}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
