//! A sweep split into parts (`sweep --part K/N`) and merged (`sweep merge`)
//! prints the same report, byte for byte, as the same sweep run at once;
//! merging refuses parts that are missing, repeated or from another sweep.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reconnect_sim::Scenario;

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reconnect-sim-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small flapping-link scenario, written as a scenario file.
fn scenario_file(dir: &Path) -> PathBuf {
    let mut sc = Scenario::builtin("flapping-link").unwrap();
    sc.shards = 40;
    let path = dir.join("flapping-40.json");
    std::fs::write(&path, serde_json::to_string_pretty(&sc).unwrap()).unwrap();
    path
}

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reconnect-sim"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> Vec<u8> {
    let out = sim(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the three parts of seeds 1..11 into files and returns their paths.
fn three_parts(dir: &Path, scenario: &str, strategy: &str) -> Vec<String> {
    (1..=3)
        .map(|k| {
            let path = dir.join(format!("{strategy}-part-{k}.jsonl"));
            let part = format!("{k}/3");
            let lines = ok(&[
                "sweep",
                "--scenario",
                scenario,
                "--strategy",
                strategy,
                "--seeds",
                "1..11",
                "--part",
                &part,
                "--jobs",
                "2",
            ]);
            std::fs::write(&path, lines).unwrap();
            path.display().to_string()
        })
        .collect()
}

#[test]
fn a_merged_three_part_sweep_equals_a_single_sweep_byte_for_byte() {
    let dir = scratch("merge");
    let scenario = scenario_file(&dir);
    let scenario = scenario.to_str().unwrap();
    for strategy in ["policy", "naive"] {
        let parts = three_parts(&dir, scenario, strategy);
        // Each part holds its own slice of the seeds, one line per seed.
        let counts: Vec<usize> = parts
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
            .collect();
        assert_eq!(counts, [3, 3, 4], "{strategy}");
        for json in [false, true] {
            let mut single = vec![
                "sweep",
                "--scenario",
                scenario,
                "--strategy",
                strategy,
                "--seeds",
                "1..11",
                "--jobs",
                "1",
            ];
            // Parts given out of order merge the same.
            let mut merge = vec!["sweep", "merge", &parts[2], &parts[0], &parts[1]];
            if json {
                single.push("--json");
                merge.push("--json");
            }
            let single = ok(&single);
            let merged = ok(&merge);
            assert!(
                String::from_utf8_lossy(&single).contains("seed"),
                "a real report: {}",
                String::from_utf8_lossy(&single)
            );
            assert_eq!(
                String::from_utf8_lossy(&merged),
                String::from_utf8_lossy(&single),
                "{strategy}, json {json}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn merging_refuses_a_missing_a_repeated_or_a_foreign_part() {
    let dir = scratch("refuse");
    let scenario = scenario_file(&dir);
    let scenario = scenario.to_str().unwrap();
    let parts = three_parts(&dir, scenario, "policy");
    let fails = |args: &[&str], needle: &str| {
        let out = sim(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    fails(
        &["sweep", "merge", &parts[0], &parts[2]],
        "parts without any line: 2/3 (seeds 4..7)",
    );
    fails(
        &["sweep", "merge", &parts[0], &parts[1], &parts[2], &parts[1]],
        "appears twice",
    );
    let naive = three_parts(&dir, scenario, "naive");
    fails(
        &["sweep", "merge", &parts[0], &parts[1], &naive[2]],
        "different sweeps",
    );
    let garbage = dir.join("garbage.jsonl");
    std::fs::write(&garbage, "not json\n").unwrap();
    fails(
        &["sweep", "merge", garbage.to_str().unwrap()],
        "garbage.jsonl:1: not a sweep line",
    );
    fails(
        &["sweep", "--seeds", "1..3", "--part", "1/5"],
        "would leave a part empty",
    );
    fails(&["sweep", "--seeds", "1..3", "--part", "4/3"], "K/N");
    let _ = std::fs::remove_dir_all(&dir);
}
