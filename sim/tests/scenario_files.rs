//! The scenario files shipped in `sim/scenarios/` parse, validate, and run
//! without a storm under the default policy.

use reconnect_sim::{Budget, Scenario, model, run_report};

#[test]
fn shipped_scenario_files_are_valid_and_calm_under_the_policy() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("sim/scenarios exists") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let sc = Scenario::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let r = run_report(&sc, &model("policy").unwrap(), 1, Budget::default()).unwrap();
        assert!(!r.storm, "{}: {:?}", path.display(), r.storm_reasons);
        seen += 1;
    }
    assert!(seen >= 1);
}
