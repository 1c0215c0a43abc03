//! A bot split over processes that share an identify store, through a
//! fleet-wide cut with the store going away in the middle of the recovery,
//! beside the same fleet in one process.
//!
//! ```text
//! cargo run --release -p reconnect-sim --example processes -- [SHARDS] [PROCESSES] [SEED] [VARIANT]
//! ```
//!
//! Defaults: 10,000 shards over 40 processes, seed 1. `VARIANT` is
//! `outage` (the default), `no-outage` (the store never goes away: what the
//! split alone costs), `every` (the fallback grants every bucket in every
//! process: the rule bucket ownership replaces) or `probe-alone` (each
//! process probes and ramps alone instead of sharing the bot's probe and
//! ramp through the store). Variants combine with `+`
//! (`no-outage+probe-alone`). Runs the built-in
//! `store-outage-in-recovery` scenario with the gateway grown with the
//! fleet as the scale runs grow it (one bucket per 16 shards, 200
//! handshakes/s per 1,000 shards, five session starts a day per shard),
//! once split over the processes and once in one process with its own
//! limiter, and prints every assumption and the figures: identify-window
//! violations and session starts at the gateway (the referee's counts),
//! the starts the store charged, recovery p99 and attempts per shard, and
//! each process's fallbacks.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Parser;
use reconnect_sim::scenario::STORE_OUTAGE;
use reconnect_sim::stdout::print_all;
use reconnect_sim::{Budget, Scenario, compare_processes, model};

/// The command line: `processes [SHARDS] [PROCESSES] [SEED] [VARIANT]`.
#[derive(Parser)]
#[command(about = "A bot split over processes sharing an identify store, beside one process")]
struct Args {
    /// Shards in the bot.
    #[arg(default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    shards: u32,
    /// Processes the shards are split over.
    #[arg(default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    processes: u32,
    /// The run's seed.
    #[arg(default_value_t = 1)]
    seed: u64,
    /// `outage`, `no-outage`, `every` or `probe-alone`, combined with `+`.
    #[arg(default_value = "outage")]
    variant: String,
}

/// `writeln!` into the output text (writing to a `String` cannot fail).
macro_rules! outln {
    ($text:expr, $($arg:tt)*) => {{
        let _ = writeln!($text, $($arg)*);
    }};
}

fn main() -> ExitCode {
    let Args {
        shards,
        processes,
        seed,
        variant,
    } = Args::parse();
    let mut scenario = Scenario::builtin(STORE_OUTAGE).expect("a built-in scenario");
    scenario.shards = shards;
    scenario.gateway = scenario.gateway.grown_for(shards);
    let starts = scenario.gateway.session_start_total;
    if let Some(store) = &mut scenario.store {
        store.processes = processes;
        for part in variant.split('+') {
            match part {
                "outage" => {}
                "no-outage" => store.outages.clear(),
                "every" => store.fallback_buckets = reconnect_policy::FallbackBuckets::Every,
                "probe-alone" => store.share_probe = false,
                other => {
                    eprintln!(
                        "error: unknown variant {other:?} (outage, no-outage, every, probe-alone)"
                    );
                    return ExitCode::from(2);
                }
            }
        }
    }
    if let Err(e) = scenario.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let policy = model("policy").expect("the policy");
    let result = match compare_processes(&scenario, &policy, seed, Budget::default()) {
        Ok(result) => result,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut text = String::new();
    outln!(
        text,
        "scenario {} ({variant}) seed {seed}: {shards} shards, {} buckets, {starts} session starts, {} handshakes/s admitted",
        scenario.name,
        scenario.gateway.max_concurrency,
        scenario.gateway.admission_per_s
    );
    outln!(text, "{}", scenario.description);
    for line in &result.assumptions {
        outln!(text, "  assumption: {line}");
    }
    for (label, r) in [
        (format!("{processes} processes"), &result.split),
        ("1 process".to_owned(), &result.one_process),
    ] {
        outln!(
            text,
            "{label:>13}: verdict {}, identify violations {} (at 0 ms tolerance {}), session starts {} of {starts}, token reset {}, \
             recovery p50 {} p99 {} max {} (lower bound {} ms), unrecovered {}, attempts {} ({:.2} per shard, {} refused by the link), most handshakes in 100 ms {}, start-up {}",
            r.verdict,
            r.identify_violations,
            r.identify_violations_strict,
            r.session_starts,
            r.token_reset,
            ms(r.recovery_p50_ms),
            ms(r.recovery_p99_ms),
            ms(r.recovery_max_ms),
            r.recovery_lower_bound_ms,
            r.unrecovered,
            r.attempts,
            r.attempts as f64 / f64::from(shards),
            r.refused_dials,
            r.peak_handshakes_100ms,
            ms(r.startup_ms),
        );
        for reason in r.reasons() {
            outln!(text, "{:>15}{reason}", "");
        }
    }
    let s = result.figures.store;
    outln!(
        text,
        "store: grants {}, charged for local grants {}, given back {}, charged in all {} (the gateway: {} Identify payloads, {} session starts over the whole run, start-up included), \
         left {}, late acquires {}, held by the return hold {}, reconciles {}, messages lost {}",
        s.grants,
        s.charged_locally,
        s.given_back,
        s.charged(),
        result.identifies_whole_run,
        result.session_starts_whole_run,
        s.remaining,
        s.late,
        s.held,
        s.reconciles,
        s.lost_messages
    );
    let p = &result.figures.processes;
    let fell: Vec<u64> = p.iter().map(|p| p.fallback.fallbacks).collect();
    let local: Vec<u64> = p.iter().map(|p| p.fallback.local_grants).collect();
    outln!(
        text,
        "processes: fallbacks {fell:?}, returns {}, starts granted by local shares {local:?} (local share {} each at most), \
         owned buckets {} to {} a process, requests parked until the store was back {}",
        p.iter().map(|p| p.fallback.returns).sum::<u64>(),
        p.iter().map(|p| p.local_share).max().unwrap_or(0),
        p.iter().map(|p| p.owned_buckets).min().unwrap_or(0),
        p.iter().map(|p| p.owned_buckets).max().unwrap_or(0),
        p.iter().map(|p| p.fallback.parked).sum::<u64>(),
    );
    print_all(&text)
}

fn ms(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{:.1} s", v as f64 / 1e3))
}
