//! libFuzzer entry point for the `sim_scenario` target: every input goes to
//! [`reconnect_fuzz::sim_scenario::check`], which the corpus replay
//! (`tests/corpus_replay.rs`) calls too.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    reconnect_fuzz::sim_scenario::check(data);
});
