//! Real-socket tests: the client against the loopback gateway (and, for
//! link faults, the fault proxy), all on 127.0.0.1, every test bounded in
//! time.
//!
//! One binary, so the flapping soak (`chaos`, which sorts near the front,
//! so it starts early) runs alongside the shorter scenarios.

mod bad_input;
mod bot_proof;
mod chaos;
mod compression;
mod faults;
mod fleet_cut;
mod gateway_bot;
mod link_faults;
mod recorded;
mod rules;
mod runner;
mod scenarios;
mod sessions;
mod support;
