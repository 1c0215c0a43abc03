//! The `policy_sequence` target: arbitrary set-ups, inputs and clock
//! readings into the policy, with its guarantees checked after every output.

use crate::Outcome;

use crate::policy_harness::{ALL_PROPS, decode, run_with_twin};

/// Decodes `data` into a case and runs it, checking every guarantee, with a
/// twin policy built from the same set-up and fed the same inputs: the two
/// must answer and output the same, which checks that the run repeats
/// itself exactly.
///
/// # Panics
///
/// When a guarantee breaks (the message names it, with the step, the time
/// and the recent history), the twin differs from the policy, or the
/// policy refuses the decoded configuration (a decoder bug: the run reports
/// it as "config refused").
pub fn check(data: &[u8]) -> Outcome {
    let case = decode::case(data);
    if let Err(failure) = run_with_twin(&case, ALL_PROPS) {
        panic!("{failure}\n{case:?}");
    }
    Outcome::Checked
}
