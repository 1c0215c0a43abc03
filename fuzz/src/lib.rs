//! The fuzz targets' bodies, shared by libFuzzer and by the corpus replay.
//!
//! Each target is one function that takes the fuzzer's bytes and panics
//! when a guarantee breaks:
//!
//! - [`policy_sequence::check`]: bytes become a policy set-up and a
//!   sequence of inputs and clock readings ([`policy_harness::decode`]);
//!   the checking driver ([`policy_harness::run_with_twin`]) asserts every
//!   guarantee the property tests assert, and a twin policy fed the same
//!   inputs must answer and output exactly what the policy does.
//! - [`client_frame::check`]: bytes become one text frame for the client's
//!   parser ([`reconnect_client::payload::parse`]); what it accepts must
//!   mean what the frame says and survive re-encoding.
//! - [`sim_scenario::check`]: bytes become a scenario file for the
//!   simulator's parser ([`reconnect_sim::Scenario::from_json`]); what it
//!   accepts must be valid, round-trip exactly, and run (shrunk to a small
//!   fleet) deterministically without breaking the policy's guarantees.
//!
//! The libFuzzer binaries under `fuzz_targets/` (feature `libfuzzer`, built
//! by `cargo fuzz`) only call these functions. The workspace's plain
//! `cargo test` replays every committed input under `corpus/<target>/`
//! through the same functions (`tests/corpus_replay.rs`), so CI exercises
//! every target without the fuzzer.

pub mod client_frame;
pub mod policy_harness;
pub mod policy_sequence;
pub mod sim_scenario;

/// What a target made of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The parser (or decoder) refused the input; nothing further ran.
    Refused,
    /// The input was accepted and every check on it passed.
    Checked,
}

/// A target's check: takes one input, panics when a guarantee breaks.
pub type Check = fn(&[u8]) -> Outcome;

/// The fuzz targets, by name: the name of the libFuzzer binary and of its
/// corpus folder, and the function that checks one input.
pub const TARGETS: [(&str, Check); 3] = [
    ("policy_sequence", policy_sequence::check),
    ("client_frame", client_frame::check),
    ("sim_scenario", sim_scenario::check),
];
