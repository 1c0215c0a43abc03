//! libFuzzer entry point for the `policy_sequence` target: every input goes to
//! [`reconnect_fuzz::policy_sequence::check`], which the corpus replay
//! (`tests/corpus_replay.rs`) calls too.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    reconnect_fuzz::policy_sequence::check(data);
});
