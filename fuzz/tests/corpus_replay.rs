//! Replays every committed fuzz input through its target's check, so a
//! plain `cargo test` exercises every fuzz target (and every crash the
//! fuzzer ever found, kept in the corpus) without libFuzzer.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};

use reconnect_fuzz::{Outcome, TARGETS};

/// The committed inputs of `target`, in name order.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Replays the corpus of `name`; returns how many inputs were accepted and
/// checked, and how many were refused.
fn replay(name: &str) -> (usize, usize) {
    let (_, check) = TARGETS
        .iter()
        .find(|(target, _)| *target == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    let files = corpus(name);
    assert!(
        !files.is_empty(),
        "the {name} corpus is empty: every target must have seeds"
    );
    let (mut checked, mut refused) = (0, 0);
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        match catch_unwind(AssertUnwindSafe(|| check(&data))) {
            Ok(Outcome::Checked) => checked += 1,
            Ok(Outcome::Refused) => refused += 1,
            Err(panic) => {
                eprintln!("input {} broke {name}", file.display());
                resume_unwind(panic);
            }
        }
    }
    eprintln!("{name}: {checked} inputs checked, {refused} refused");
    (checked, refused)
}

// A corpus that only reaches the parsers' error paths would prove little:
// each must reach the checks behind them too.

#[test]
fn policy_sequence_corpus() {
    let (checked, _) = replay("policy_sequence");
    assert!(checked > 0);
}

#[test]
fn client_frame_corpus() {
    let (checked, refused) = replay("client_frame");
    assert!(checked > 0 && refused > 0);
}

#[test]
fn sim_scenario_corpus() {
    let (checked, refused) = replay("sim_scenario");
    assert!(checked > 0 && refused > 0);
}

/// A new target cannot be added without a replay test here.
#[test]
fn every_target_is_replayed() {
    let names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["policy_sequence", "client_frame", "sim_scenario"]);
}
