//! Identify buckets and the daily session-start budget shared by every
//! process of a bot, through Redis (cargo feature `redis`).
//!
//! A bot split across processes and machines has one set of
//! `max_concurrency` buckets and one session-start budget, not one per
//! process. Give every process's [`RunnerBuilder`](crate::RunnerBuilder)
//! the same [`RedisIdentify`] (the same Redis and bot id) and their
//! shards identify through one limiter: one Identify per bucket per window
//! across the whole bot, and the budget counted once.
//!
//! - Each request is one Lua script, run atomically by Redis, that reads
//!   the time on the server (`TIME`), so differences between the
//!   machines' clocks cannot bring two Identify payloads of a bucket
//!   closer than the window. Answers travel as delays ("ask again in
//!   1.2 s"), turned into each process's own timestamps on arrival.
//! - Keys carry the bot's id (never the token) and expire on their own. A
//!   process that crashes after a grant holds its bucket for one window,
//!   or the lease ([`RedisIdentify::lease`]) if its Identify never
//!   settles, whichever is longer; never more.
//! - When Redis is down or slower than the per-call timeout, the process
//!   answers from a conservative local share (the rules are the policy's
//!   `reconnect_policy::StoreFallback`, which the responder drives against
//!   Redis as the simulator drives it against its model of the store): only
//!   in the buckets this
//!   process owns (one owner per bucket across the bot, from the shard
//!   ids alone: `reconnect_policy::StoreFallback::owner_shard`), one
//!   Identify per window, the first a window after the fallback began, so
//!   processes in a fallback at once never share a bucket (the shards of
//!   the other buckets wait, without a socket, and are asked of Redis when
//!   it is back); never more session
//!   starts than its share ([`RedisIdentify::local_share`]; by default its
//!   part of the budget, in proportion to the shards it runs). It logs
//!   that once, shows it in every shard's
//!   [`Figures::identify_store`](crate::Figures::identify_store), checks
//!   Redis again every [`RedisIdentify::retry_every`], and on its return
//!   charges the budget with the starts it granted meanwhile and marks the
//!   buckets it used. Redis then grants nothing for its return hold
//!   (`reconnect_policy::StoreFallbackConfig::return_hold_ms`, the rule
//!   the simulator's store follows), as it does when a process it had
//!   answered before finds the bot's data gone (a restart): every process
//!   still in a fallback notices the return meanwhile, so no grant of the
//!   store meets a local grant in one bucket's window.
//! - The fleet-wide outage probe is shared too (unless
//!   [`RedisIdentify::share_probe`] turns it off): when the processes of a
//!   bot lose the gateway together, one process at a time holds the bot's
//!   probe (key `probe`, on the server's clock, expiring on its own), the
//!   others hold their shards, and once a probe is answered every process
//!   learns it on its next ask (within half a second) and ramps. When
//!   Redis is away, each process probes on its own schedule, as it would
//!   alone.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use reconnect_client::{ClientBuilder, RedisIdentify, RunnerBuilder, Token};
//!
//! let client = ClientBuilder::new(Token::from_env("DISCORD_TOKEN")?).intents(1 << 9);
//! // This process runs shards 0..25 of 100; three others run the rest.
//! let store = RedisIdentify::new("redis://127.0.0.1:6379", 123_456_789_012_345_678)?;
//! let (runner, _events) = RunnerBuilder::new(client)
//!     .shards(0..25, 100)
//!     .redis_identify(store)
//!     .start()
//!     .await?;
//! # drop(runner);
//! # Ok(())
//! # }
//! ```

mod responder;
#[cfg(test)]
mod script_tests;
mod scripts;

use std::time::Duration;

pub(crate) use responder::{Setup, spawn};

/// The default per-call timeout.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// The default lease of a granted Identify whose outcome never arrives.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
/// The default interval between checks of a store that went away.
pub const DEFAULT_RETRY_EVERY: Duration = Duration::from_secs(1);

/// Why a [`RedisIdentify`] could not be set up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisIdentifyError {
    /// The URL is not a Redis URL (`redis://[:password@]host[:port][/db]`,
    /// `redis+unix://`). The URL itself is not repeated, since it may hold
    /// a password.
    #[error("not a usable Redis URL: {0}")]
    Url(String),
    /// The bot id is 0 (the bot's user id is the first part of its token,
    /// and the application id on the developer portal).
    #[error("the bot id must not be 0")]
    BotId,
}

/// Where and how the bot's shared identify limiter lives in Redis.
///
/// Its `Debug` output shows the URL without its password.
#[derive(Clone)]
pub struct RedisIdentify {
    pub(crate) client: redis::Client,
    pub(crate) url_shown: String,
    pub(crate) bot_id: u64,
    pub(crate) call_timeout: Duration,
    pub(crate) lease: Duration,
    pub(crate) retry_every: Duration,
    pub(crate) local_share: Option<u32>,
    pub(crate) share_probe: bool,
}

impl RedisIdentify {
    /// The limiter of bot `bot_id` in the Redis at `url`
    /// (`redis://[:password@]host[:port][/db]`). Nothing is connected
    /// until the runner starts; a Redis that is down then is a fallback,
    /// not an error.
    ///
    /// # Errors
    ///
    /// [`RedisIdentifyError::Url`] for a URL Redis cannot use,
    /// [`RedisIdentifyError::BotId`] for a bot id of 0.
    pub fn new(url: &str, bot_id: u64) -> Result<Self, RedisIdentifyError> {
        if bot_id == 0 {
            return Err(RedisIdentifyError::BotId);
        }
        let client = redis::Client::open(url)
            .map_err(|error| RedisIdentifyError::Url(error.category().to_owned()))?;
        Ok(Self {
            client,
            url_shown: without_password(url),
            bot_id,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            lease: DEFAULT_LEASE,
            retry_every: DEFAULT_RETRY_EVERY,
            local_share: None,
            share_probe: true,
        })
    }

    /// The longest one call to Redis may take before the process falls
    /// back to its local share (default [`DEFAULT_CALL_TIMEOUT`]; at
    /// least 1 ms).
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a granted Identify whose outcome never comes (its process
    /// crashed, or lost Redis) keeps its bucket shut (default
    /// [`DEFAULT_LEASE`]; at least the 5 s window).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(WINDOW_MS));
        self
    }

    /// How often a process that fell back checks whether Redis is back
    /// (default [`DEFAULT_RETRY_EVERY`]; at least 10 ms).
    #[must_use]
    pub fn retry_every(mut self, every: Duration) -> Self {
        self.retry_every = every.max(Duration::from_millis(10));
        self
    }

    /// The most session starts this process grants on its own while Redis
    /// is away, per daily period (all its fallbacks together; it refills
    /// at the budget's reset). By default its part of the remaining budget
    /// at start-up, in proportion to the shards it runs (`remaining × its
    /// shards / total shards`, rounded down). 0 makes the process wait for
    /// Redis instead of starting shards on its own.
    #[must_use]
    pub const fn local_share(mut self, starts: u32) -> Self {
        self.local_share = Some(starts);
        self
    }

    /// Whether the processes of the bot share one fleet-wide outage probe
    /// through the store (default `true`): after a cut that every process
    /// sees, one process probes for the whole bot at a time and, once its
    /// probe is answered, every process ramps its shards back. `false`
    /// leaves each process to probe on its own.
    #[must_use]
    pub const fn share_probe(mut self, share: bool) -> Self {
        self.share_probe = share;
        self
    }

    /// The bot id the keys carry.
    #[must_use]
    pub const fn bot_id(&self) -> u64 {
        self.bot_id
    }
}

impl core::fmt::Debug for RedisIdentify {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisIdentify")
            .field("url", &self.url_shown)
            .field("bot_id", &self.bot_id)
            .field("call_timeout", &self.call_timeout)
            .field("lease", &self.lease)
            .field("retry_every", &self.retry_every)
            .field("local_share", &self.local_share)
            .field("share_probe", &self.share_probe)
            .finish_non_exhaustive()
    }
}

/// The gateway's identify window, in ms.
const WINDOW_MS: u64 = reconnect_policy::IDENTIFY_WINDOW_MS;

/// `url` with any user and password replaced by `<redacted>`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<redacted>".to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://<redacted>@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let store = RedisIdentify::new("redis://:hunter2@10.0.0.1:6380/2", 42).unwrap();
        let shown = format!("{store:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("redis://<redacted>@10.0.0.1:6380/2"),
            "{shown}"
        );
        let store = RedisIdentify::new("redis://user:pw@host/0", 42).unwrap();
        assert!(!format!("{store:?}").contains("pw"));
        assert_eq!(without_password("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        assert_eq!(
            RedisIdentify::new("redis://h", 0).unwrap_err(),
            RedisIdentifyError::BotId
        );
        let err = RedisIdentify::new("http://:secret@h", 7).unwrap_err();
        assert!(matches!(err, RedisIdentifyError::Url(_)));
        assert!(!err.to_string().contains("secret"), "{err}");
        let store = RedisIdentify::new("redis://h", 7)
            .unwrap()
            .call_timeout(Duration::ZERO)
            .lease(Duration::ZERO)
            .retry_every(Duration::ZERO);
        assert_eq!(store.call_timeout, Duration::from_millis(1));
        assert_eq!(store.lease, Duration::from_millis(WINDOW_MS));
        assert_eq!(store.retry_every, Duration::from_millis(10));
    }
}
