//! The policy model runs as one `Fleet`: a configuration the policy refuses
//! ends the run with one clear error, before any event.

use reconnect_policy::PolicyConfig;
use reconnect_sim::{Budget, ModelSpec, RunError, Scenario, run};

#[test]
fn a_configuration_the_fleet_refuses_is_a_configuration_error_named_once() {
    let mut config = PolicyConfig::default();
    config.backoff.base_ms = config.backoff.cap_ms.saturating_add(1);
    let model = ModelSpec::Policy {
        name: "bad".into(),
        config: Box::new(config),
    };
    let scenario = Scenario::builtin("outage-30s").expect("a built-in scenario");
    let err = run(&scenario, &model, 1, Budget::default()).expect_err("the fleet refuses it");
    assert!(matches!(err, RunError::Config(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("invalid model configuration: "), "{text}");
    assert_eq!(text.matches("invalid").count(), 1, "{text}");
}
