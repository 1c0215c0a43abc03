//! `frontier --models` runs only the models named, in display order, and
//! prints the same cells on one thread or two.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reconnect-sim"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_frontier_of_named_models_is_the_same_on_one_thread_or_two() {
    let run = |jobs: &str| {
        let out = sim(&[
            "frontier",
            "--shards",
            "20",
            "--models",
            "twilight,policy",
            "--json",
            "--jobs",
            jobs,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let one = run("1");
    assert_eq!(one, run("2"));
    let cells: Vec<reconnect_sim::frontier::Cell> = serde_json::from_slice(&one).unwrap();
    let per_model =
        reconnect_sim::frontier::MODES.len() * reconnect_sim::frontier::OUTAGE_LENGTHS_S.len();
    assert_eq!(cells.len(), 2 * per_model);
    assert!(cells[..per_model].iter().all(|c| c.model == "policy"));
    assert!(cells[per_model..].iter().all(|c| c.model == "twilight"));
}

#[test]
fn an_unknown_model_is_refused_with_the_known_names() {
    let out = sim(&["frontier", "--models", "policy,nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("\"nope\"") && err.contains("twilight"),
        "{err}"
    );
}
