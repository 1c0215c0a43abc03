//! Real socket servers on `127.0.0.1` for testing a gateway client: a
//! loopback [`gateway`] that injects protocol faults, and a fault [`proxy`]
//! for link faults the gateway cannot fake.

pub mod compress;
pub mod gateway;
pub mod proxy;
mod rst;
