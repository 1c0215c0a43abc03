//! Shared plumbing for the workspace's criterion benchmarks.
//!
//! The benchmarks themselves live in `benches/benches/` (one file per
//! subject: the policy's hot path, the backoff strategies beside other
//! crates', the simulator, the client's frame parser). This library gives
//! them one output directory and reads back the medians criterion saved, so
//! a benchmark can print a ratio or a per-client cost computed from the
//! same run that criterion reports — never from a second, separate timing.
//! The shard driver the policy benchmark and the zero-allocation test share
//! is `reconnect_policy::testing::shard`.

use std::path::PathBuf;

use criterion::Criterion;

/// Where criterion writes its results: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else the workspace's `target/criterion`.
///
/// Setting the directory explicitly (rather than letting criterion ask
/// `cargo metadata`) lets [`median_ns`] find what criterion just wrote.
#[must_use]
pub fn output_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("criterion")
}

/// A criterion configured for this workspace: command-line arguments
/// applied, results under [`output_dir`].
#[must_use]
pub fn criterion() -> Criterion {
    Criterion::default()
        .output_directory(&output_dir())
        .configure_from_args()
}

/// The median time per iteration, in nanoseconds, that criterion saved for
/// the benchmark `group/function[/value]` the last time it measured it
/// (the current run, when the benchmark just ran).
///
/// Returns `None` when there is no saved estimate: the benchmark has never
/// been measured here (filtered out, or only run in `--test`/`--list`
/// mode). Each path component must already be a safe file name (no `/`,
/// `:`, `?`, ...), as every benchmark id in this crate is.
#[must_use]
pub fn median_ns(id: &str) -> Option<f64> {
    let path = output_dir().join(id).join("new").join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let estimates: serde_json::Value = serde_json::from_str(&text).ok()?;
    estimates
        .get("median")?
        .get("point_estimate")?
        .as_f64()
        .filter(|ns| ns.is_finite() && *ns > 0.0)
}

/// Whether criterion is measuring in this run: `cargo bench` passes
/// `--bench`. Under `cargo test --benches` (no `--bench`), or with `--test`
/// or `--list`, criterion only runs each benchmark once or lists them, so
/// summaries built from saved medians are skipped.
#[must_use]
pub fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}
