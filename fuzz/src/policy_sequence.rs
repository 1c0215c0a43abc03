//! The `policy_sequence` target: arbitrary set-ups, inputs and clock
//! readings into the policy, with its guarantees checked after every output.

use crate::Outcome;
use arbitrary::Unstructured;

use crate::policy_harness::{ALL_PROPS, decode, run};

/// Decodes `data` into a case and runs it twice: once checking every
/// guarantee, once more to check the run repeats itself exactly.
///
/// # Panics
///
/// When a guarantee breaks (the message names it, with the step, the time
/// and the recent history), the second run differs from the first, or the
/// policy refuses the decoded configuration (a decoder bug: `run` reports
/// it as "config refused").
pub fn check(data: &[u8]) -> Outcome {
    let mut u = Unstructured::new(data);
    let Ok(case) = decode::case(&mut u) else {
        return Outcome::Refused;
    };
    let first = run(&case, ALL_PROPS).unwrap_or_else(|failure| panic!("{failure}\n{case:?}"));
    let second = run(&case, &[]).unwrap_or_else(|failure| panic!("{failure}\n{case:?}"));
    assert!(
        first == second,
        "same seed and inputs, different outputs:\n{case:?}"
    );
    Outcome::Checked
}
