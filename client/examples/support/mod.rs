//! What the client's examples share: logging set up from `RUST_LOG`, the
//! `START..END` shard range argument, and the exit code an error turns
//! into. Each example is its own binary and uses what it needs of this.

#![allow(dead_code)]

use std::error::Error;
use std::ops::Range;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Logs to standard error at the level `RUST_LOG` asks for, `info` when it
/// is unset or unreadable.
pub(crate) fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
}

/// Parses a shard range written `START..END` (`0..8`: shards 0 to 7).
pub(crate) fn parse_range(text: &str) -> Result<Range<u32>, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?} is not START..END"))?;
    let start = start.parse().map_err(|e| format!("{start:?}: {e}"))?;
    let end = end.parse().map_err(|e| format!("{end:?}: {e}"))?;
    Ok(start..end)
}

/// Success, or the error printed on standard error and a failing exit code.
pub(crate) fn exit_code(outcome: Result<(), Box<dyn Error>>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
