//! Measures the simulator's speed and memory: one fleet size per process,
//! so the peak resident memory belongs to that run alone.
//!
//! ```text
//! cargo run --release -p reconnect-sim --example scale -- [SHARDS] [MODEL] [MINUTES]
//! ```
//!
//! Runs `SHARDS` (default 10,000) shards of `MODEL` (default `policy`) through `MINUTES`
//! (default 60) of flapping links (up 1–120 s, down 0.5–45 s) on one
//! thread, and prints one line: shards, simulated minutes, events, wall
//! seconds, events per second, peak resident memory, and that memory per
//! shard; then the most pending events and open sockets, when the fleet
//! was up, and the inline size of a shard's `Policy`. Wall time is read
//! here, in the measuring harness, never inside the simulator.
//!
//! The gateway grows with the fleet (`Gateway::grown_for`, as the
//! simulator's criterion benchmark, `benches/benches/sim.rs`, grows it), so
//! that every shard sees the same conditions whatever the fleet's size: one
//! identify bucket per 16 shards, the built-ins' admission capacity per
//! shard (200 handshakes/s per 1,000 shards), and five session starts a
//! day per shard (Discord grants `max(2000, guilds / 1000 × 5)`, about
//! five per shard of 1,000 guilds). With the default allowance of
//! 5,000 a fleet of more than 5,000 shards would only ever start 5,000 of
//! them, and a larger fleet would measure the same run.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Parser;
use reconnect_sim::stdout::print_all;
use reconnect_sim::{Budget, Scenario, model, model_names, run};

/// The command line: `scale [SHARDS] [MODEL] [MINUTES]`.
#[derive(Parser)]
#[command(about = "The simulator's speed and memory for one fleet size, one line per run")]
struct Args {
    /// Shards in the fleet.
    #[arg(default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    shards: u32,
    /// The model every shard runs (`reconnect-sim models` lists them).
    #[arg(default_value = "policy")]
    model: String,
    /// Simulated minutes of flapping links (the first one calm).
    #[arg(default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    minutes: u64,
}

fn main() -> ExitCode {
    let Args {
        shards,
        model: name,
        minutes,
    } = Args::parse();
    let duration_ms = minutes.saturating_mul(60_000);
    // The built-in flapping link, stretched to the whole run.
    let mut scenario = Scenario::builtin("flapping-link").expect("a built-in scenario");
    scenario.shards = shards;
    scenario.heal_at_ms = duration_ms;
    scenario.duration_ms = duration_ms;
    scenario.gateway = scenario.gateway.grown_for(shards);
    for fault in &mut scenario.faults {
        fault.at_ms = 60_000;
        fault.duration_ms = duration_ms;
    }
    if let Err(e) = scenario.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let Some(m) = model(&name) else {
        eprintln!(
            "error: unknown model {name:?}; the models are {}",
            model_names().join(", ")
        );
        return ExitCode::from(2);
    };
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let rec = match run(&scenario, &m, 1, Budget::default()) {
        Ok(rec) => rec,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let peak_kib = peak_rss_kib().unwrap_or(0);
    let started = rec.startup_ms.map_or_else(
        || "never".to_owned(),
        |ms| format!("{:.1} s", ms as f64 / 1e3),
    );
    let mut text = String::new();
    // Writing to a `String` cannot fail.
    let _ = writeln!(
        text,
        "shards {shards:>6}  minutes {minutes:>3}  events {:>11}  wall {wall:>7.2} s  {:>6.2} M events/s  peak RSS {:>8} KiB  {:>6.2} KiB/shard",
        rec.events,
        rec.events as f64 / wall / 1e6,
        peak_kib,
        peak_kib as f64 / f64::from(shards),
    );
    let _ = writeln!(
        text,
        "{:>58}pending events at most {}, sockets at most {}",
        "", rec.queue_high_water, rec.sockets_high_water
    );
    let _ = writeln!(
        text,
        "{:>58}whole fleet up at {started}, session starts {}, identifies {}",
        "", rec.count.session_starts, rec.count.identifies
    );
    let _ = writeln!(
        text,
        "{:>58}a shard's policy: {} bytes inline",
        "",
        size_of::<reconnect_policy::Policy>()
    );
    print_all(&text)
}

/// The process's peak resident set (Linux `VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
