//! libFuzzer entry point for the `client_frame` target: every input goes to
//! [`reconnect_fuzz::client_frame::check`], which the corpus replay
//! (`tests/corpus_replay.rs`) calls too.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    reconnect_fuzz::client_frame::check(data);
});
