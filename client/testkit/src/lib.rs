//! Real socket servers on `127.0.0.1` for testing a Discord gateway client:
//! a loopback [`gateway`] that injects protocol faults, a fault [`proxy`]
//! for link faults the gateway cannot fake, a stand-in for the HTTP API's
//! `GET /gateway/bot` ([`http_api`]), and the gateway's side of transport
//! compression ([`compress`]).
//!
//! `reconnect-client` runs its real-socket tests and examples on these; a
//! bot built on it can use them the same way for its own tests, as a
//! dev-dependency. The crate does not depend on the client: what it shares
//! with it comes from `reconnect-policy` (the millisecond
//! [`Timestamp`](reconnect_policy::Timestamp)), and the rest it keeps in
//! its own small copies ([`Clock`], [`compress::Compression`]).

mod clock;
pub mod compress;
pub mod gateway;
pub mod http_api;
pub mod proxy;
mod rst;

pub use clock::Clock;
