//! A thin tokio gateway client driven by [`reconnect_policy`].
//!
//! The client opens a real WebSocket (`wss://` through rustls with the
//! webpki roots, `ws://` for loopback), parses the gateway's payloads
//! (`op`, `d`, `s`, `t`) into the policy's inputs, carries out the policy's
//! outputs (connect, identify, resume, heartbeat, close with a code, drop,
//! wait) and hands dispatches to the user as an async stream, each
//! sequence number once. It decides nothing itself: whether to resume or
//! re-identify, how long to back off, when a connection is a zombie, which
//! code to close with, whether READY's resume URL may receive the token —
//! every rule lives in the policy.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt;
//! use reconnect_client::{ClientBuilder, Token};
//!
//! let (client, mut events) = ClientBuilder::new(Token::from_env("DISCORD_TOKEN")?)
//!     .gateway_url("wss://gateway.discord.gg")
//!     .intents(1 << 9)
//!     .start()?;
//! while let Some(event) = events.next().await {
//!     println!("#{:?} {}", event.seq, event.name);
//! }
//! // The stream ended: a fatal close code, a refused token, or a shutdown.
//! let figures = client.join().await?;
//! println!("{} attempts, {} resumes", figures.policy.attempts, figures.policy.resumes_succeeded);
//! # Ok(())
//! # }
//! ```
//!
//! # Many shards
//!
//! A bot with more than one shard starts a [`Runner`] from a
//! [`RunnerBuilder`]: it asks `GET /gateway/bot` for the URL, the shard
//! count and the identify limits, drives every shard in one run loop over
//! the policy's `Fleet`, and gives one stream of `(shard, event)` plus a
//! [`ShardHandle`] per shard. A lone [`Client`] is the same loop with a
//! fleet of one.
//!
//! With the `redis` feature, the shards of a bot split across processes
//! and machines share their identify buckets and daily session-start
//! budget through Redis (`RunnerBuilder::redis_identify`).
//!
//! # Bad input
//!
//! Network input is untrusted. Frames over the size limit and WebSocket
//! protocol violations end their connection (the policy then resumes);
//! malformed JSON, binary frames, unknown opcodes and unknown event names
//! are counted in [`Figures`] and logged (a warning on the 1st, 2nd, 4th,
//! 8th, ... occurrence, so a flood cannot flood the logs) and the session
//! carries on. Nothing the network sends can panic the client.
//!
//! # Secrets
//!
//! The [`Token`] is written only into Identify and Resume payloads, and
//! only once the policy has checked the URL it is about to go to. It never
//! appears in `Debug` output, errors, notices or this crate's logs. Note
//! that tungstenite itself logs frame payloads (hex-encoded) at `trace`
//! level through the `log` crate: do not enable `trace` for `tungstenite`
//! in production.
//!
//! # Testing tools
//!
//! The `reconnect-testkit` crate holds a loopback gateway that injects
//! faults, a fault proxy for link faults and a stand-in for
//! `GET /gateway/bot`, all real socket servers on `127.0.0.1`. This crate's
//! tests and examples use it as a dev-dependency; a bot can do the same
//! for its own tests.

mod builder;
mod client;
mod clock;
mod command;
pub mod compression;
mod connection;
mod dispatch;
mod driver;
mod error;
mod event_names;
mod figures;
pub mod gateway_bot;
pub mod gateway_command;
mod identify_share;
mod identify_store;
mod notice;
pub mod payload;
#[cfg(feature = "redis")]
pub mod redis_identify;
mod runner;
mod shard_handle;
#[cfg(feature = "testing")]
pub mod testing;
mod token;
mod transport;

pub use builder::{ClientBuilder, DEFAULT_FRAME_BYTES, MIN_FRAME_BYTES};
pub use client::{Client, Events};
pub use clock::Clock;
pub use command::IdentifyProperties;
pub use compression::Compression;
pub use dispatch::DispatchEvent;
pub use error::{BuildError, ClientError};
pub use figures::Figures;
pub use identify_share::IdentifyShare;
pub use identify_store::IdentifyStoreFigures;
pub use notice::Notice;
/// The saved sessions a shutdown that keeps them hands back, and a builder
/// starts from (the policy's types).
pub use reconnect_policy::{SavedSession, SavedSessions};
#[cfg(feature = "redis")]
pub use redis_identify::{RedisIdentify, RedisIdentifyError};
pub use runner::{Runner, RunnerBuilder, RunnerError, ShardEvents};
pub use shard_handle::{SendCommandError, ShardHandle};
pub use token::{Token, TokenError};
pub use transport::{DEFAULT_USER_AGENT, GATEWAY_QUERY};

/// The README's examples (the policy's and the client's), compiled and run
/// as doctests here, where both crates are in reach.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
