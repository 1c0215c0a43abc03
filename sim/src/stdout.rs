//! Standard output for the simulator's command line and its examples,
//! whose readers are often `head -1` or `grep -m1`, which close the pipe
//! before the output ends.

use std::io::{ErrorKind, Write};

/// Writes `args` to standard output. A reader that went away (the closed
/// pipe `| head -1` leaves) is not an error: the output ends quietly,
/// where `println!` would panic.
///
/// ```
/// reconnect_sim::stdout::write_quietly(format_args!("{} shards\n", 100))?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// Any other error writing to standard output (a full disk under a
/// redirection, say).
pub fn write_quietly(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    match std::io::stdout().lock().write_fmt(args) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

/// Writes a command's whole output with [`write_quietly`], and gives its
/// exit status: success, or failure with the error on standard error.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     reconnect_sim::stdout::print_all("shards 100\n")
/// }
/// ```
#[must_use]
pub fn print_all(text: &str) -> std::process::ExitCode {
    match write_quietly(format_args!("{text}")) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing the output: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
