//! Real-socket tests: the client against the loopback gateway (and, for
//! link faults, the fault proxy), all on 127.0.0.1, every test bounded in
//! time.
//!
//! One binary, so the flapping soak runs alongside the shorter scenarios.

mod bad_input;
mod faults;
mod link_faults;
mod scenarios;
mod soak;
mod support;
