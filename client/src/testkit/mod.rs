//! Real socket servers on `127.0.0.1` for testing a gateway client: a
//! loopback [`gateway`] that injects protocol faults, a fault [`proxy`]
//! for link faults the gateway cannot fake, a stand-in for the HTTP API's
//! `GET /gateway/bot` ([`http_api`]), and the gateway's side of transport
//! compression ([`compress`]).

pub mod compress;
pub mod gateway;
pub mod http_api;
pub mod proxy;
mod rst;
