//! The policy's checking driver and the decoder that feeds it fuzz input.
//!
//! The driver itself is `reconnect_policy::testing` (behind that crate's
//! `testing` feature), re-exported here: the property tests, this target
//! and the corpus replay run cases through the same [`run`], so a guarantee
//! is written once and searched for several ways. [`decode`] turns
//! libFuzzer's bytes into a [`Case`].

pub mod decode;

pub use reconnect_policy::testing::*;
