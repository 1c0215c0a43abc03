//! Many shards of one bot in one process: a [`Runner`] asks
//! `GET /gateway/bot` where to connect and how (or takes the answer it is
//! given), builds one [`Fleet`](reconnect_policy::Fleet) of its shards with
//! the bot's identify limiter, and drives it in one run loop: a socket per
//! shard, the fleet's one timer, its outputs carried out per shard. The bot
//! reads one stream of `(shard, event)` ([`ShardEvents`]) and holds a
//! [`ShardHandle`] per shard (figures, notices, commands).
//!
//! Every rule is the policy's: when a shard may identify (its bucket,
//! `shard_id % max_concurrency`, one Identify per window; the daily
//! session-start budget), when it resumes, how long it backs off, whether a
//! command fits the send budget. The runner only reads the answer of
//! `/gateway/bot` into the fleet's configuration and carries out outputs.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt;
//! use reconnect_client::{ClientBuilder, RunnerBuilder, Token};
//!
//! let client = ClientBuilder::new(Token::from_env("DISCORD_TOKEN")?).intents(1 << 9);
//! // Asks GET /gateway/bot for the URL, the shard count and the limits.
//! let (runner, mut events) = RunnerBuilder::new(client).start().await?;
//! while let Some((shard, event)) = events.next().await {
//!     println!("shard {shard}: #{:?} {}", event.seq, event.name);
//! }
//! runner.join().await?;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use reconnect_policy::SavedSessions;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::builder::{ClientBuilder, Limiter};
use crate::clock::Clock;
use crate::dispatch::DispatchEvent;
use crate::driver::{Finished, Stop};
use crate::error::{BuildError, ClientError};
use crate::figures::Figures;
use crate::gateway_bot::{GatewayBot, GatewayBotError, GatewayBotRequest};
use crate::shard_handle::ShardHandle;

/// Why a runner could not start, or how it ended badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// `GET /gateway/bot` gave no usable answer. It was asked once and not
    /// retried: a 429 says how long to wait
    /// ([`GatewayBotError::RateLimited`]), a 401 that the token is wrong.
    #[error("GET /gateway/bot: {0}")]
    GatewayBot(#[from] GatewayBotError),
    /// The shard range asked for is empty or does not fit in the total.
    #[error("the shard range {start}..{end} is empty or not within 0..{total}")]
    ShardRange {
        /// The first shard asked for.
        start: u32,
        /// One past the last.
        end: u32,
        /// The bot's shard count.
        total: u32,
    },
    /// The client settings are invalid.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Shards stopped for good on their own (a fatal close code, a refused
    /// upgrade, a give-up limit), each with why.
    #[error("{} shard(s) stopped: {}", .0.len(), describe(.0))]
    Shards(Vec<(u32, ClientError)>),
    /// The run loop's task panicked or was cancelled.
    #[error("the runner's task ended abnormally")]
    Driver,
}

fn describe(failures: &[(u32, ClientError)]) -> String {
    failures
        .iter()
        .take(4)
        .map(|(shard, error)| format!("shard {shard}: {error}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Where the runner learns the gateway URL, shard count and limits.
#[derive(Clone, Debug)]
enum Source {
    /// Asks `GET /gateway/bot`.
    Ask(GatewayBotRequest),
    /// Was given the answer.
    Given(GatewayBot),
}

/// Builds a [`Runner`]: every shard is configured as the [`ClientBuilder`]
/// it is made from says (token, intents, policy, compression, presence,
/// ...), except for its shard id and the gateway URL, which come from the
/// runner.
#[derive(Debug)]
pub struct RunnerBuilder {
    client: ClientBuilder,
    source: Source,
    shards: Option<(Range<u32>, u32)>,
    saved: SavedSessions,
    #[cfg(feature = "redis")]
    redis: Option<crate::RedisIdentify>,
}

impl RunnerBuilder {
    /// A runner of every shard the bot should run, learnt from Discord's
    /// `GET /gateway/bot` ([`GatewayBotRequest::default`]), each shard set
    /// up as `client` says.
    ///
    /// If `client` has an [`IdentifyShare`](crate::IdentifyShare), the
    /// shards identify through it (to share one limiter with other clients
    /// of the bot in this process), and the share's limit stands as it was
    /// built (the answer's `session_start_limit` is not applied to it);
    /// otherwise the runner's fleet keeps its own limiter, sized by the
    /// answer's `session_start_limit`.
    #[must_use]
    pub fn new(client: ClientBuilder) -> Self {
        Self {
            client,
            source: Source::Ask(GatewayBotRequest::default()),
            shards: None,
            saved: SavedSessions::new(),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    /// Asks `GET /gateway/bot` with these settings (another API base, the
    /// domains the answer's URL may be in, a timeout).
    #[must_use]
    pub fn gateway_bot_request(mut self, request: GatewayBotRequest) -> Self {
        self.source = Source::Ask(request);
        self
    }

    /// Uses this answer of `GET /gateway/bot` instead of asking (a bot
    /// that already has it, or a test).
    #[must_use]
    pub fn gateway_bot(mut self, answer: GatewayBot) -> Self {
        self.source = Source::Given(answer);
        self
    }

    /// Runs only shards `range` of `total` (a bot split across processes:
    /// each runs its range, all with the same total). Without it, the
    /// runner runs all of the answer's recommended shard count.
    #[must_use]
    pub const fn shards(mut self, range: Range<u32>, total: u32) -> Self {
        self.shards = Some((range, total));
        self
    }

    /// Starts from the sessions an earlier process saved
    /// ([`Runner::close_keeping_sessions`]): each shard with an entry
    /// resumes it at once (its saved resume URL, its sequence number), so
    /// a rolling restart identifies nothing and the gateway replays what
    /// each shard missed. Shards without an entry, and those whose session
    /// the gateway no longer knows (op 9 not resumable, 4007, 4009),
    /// identify through the fleet's buckets as usual; a saved session that
    /// fails the policy's checks (a resume URL outside the allowed
    /// domains, a malformed id) is not used, so the token never goes to a
    /// URL the policy would refuse. Entries for shards this runner does
    /// not run are ignored.
    #[must_use]
    pub fn resume_from(mut self, sessions: SavedSessions) -> Self {
        self.saved = sessions;
        self
    }

    /// Shares the bot's identify buckets and daily session-start budget
    /// with its other processes through Redis (see
    /// [`RedisIdentify`](crate::RedisIdentify)): give every process of the
    /// bot the same store and bot id, and each its own
    /// [`RunnerBuilder::shards`] range. Replaces any
    /// [`IdentifyShare`](crate::IdentifyShare) of the client. The answer of
    /// `GET /gateway/bot` fills the store's budget when it has none yet,
    /// and sizes this process's local share for when Redis is away.
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn redis_identify(mut self, store: crate::RedisIdentify) -> Self {
        self.redis = Some(store);
        self
    }

    /// Learns the gateway (one request at most, never retried), then
    /// starts every shard on the current tokio runtime. The shards connect
    /// as the fleet's identify buckets allow: in a bucket, one Identify per
    /// window; the buckets in parallel.
    ///
    /// # Errors
    ///
    /// [`RunnerError::GatewayBot`] for a bad answer (401, 429 with the
    /// wait, malformed JSON, a URL outside the allowed domains, a transport
    /// failure), [`RunnerError::ShardRange`] for a range outside the total,
    /// [`RunnerError::Build`] for invalid client settings or no runtime.
    pub async fn start(self) -> Result<(Runner, ShardEvents), RunnerError> {
        let Self {
            mut client,
            source,
            shards,
            saved,
            #[cfg(feature = "redis")]
            redis,
        } = self;
        let gateway = match source {
            Source::Given(answer) => answer,
            Source::Ask(request) => request.send(client.token()).await?,
        };
        let (range, total) = shards.unwrap_or((0..gateway.shards, gateway.shards));
        if range.is_empty() || range.end > total {
            return Err(RunnerError::ShardRange {
                start: range.start,
                end: range.end,
                total,
            });
        }
        let ids: Vec<u32> = range.collect();
        let limit = gateway.session_start_limit;
        let to_identify = ids.iter().filter(|id| !saved.contains_key(id)).count();
        let needed = u32::try_from(to_identify).unwrap_or(u32::MAX);
        if limit.remaining < needed {
            warn!(
                remaining = limit.remaining,
                needed,
                reset_after_ms = limit.reset_after_ms,
                "fewer session starts left today than shards to identify; the rest wait for the reset"
            );
        }
        let limiter = client
            .take_identify_share()
            .map_or(Limiter::Own(limit), Limiter::Shared);
        #[cfg(feature = "redis")]
        let limiter = redis.map_or(limiter, |store| Limiter::Redis(Box::new(store), limit));
        info!(
            url = %gateway.url,
            shards = ids.len(),
            resuming = ids.len().saturating_sub(to_identify),
            total,
            max_concurrency = limit.max_concurrency,
            "starting the shards"
        );
        let launched = client
            .gateway_url(gateway.url.clone())
            .launch(&ids, total, limiter, &saved)?;
        Ok((
            Runner {
                shutdown: launched.shutdown,
                shards: launched.shards,
                task: launched.task,
                clock: launched.clock,
                gateway,
                total,
            },
            ShardEvents {
                rx: launched.events,
            },
        ))
    }
}

/// A running set of shards. Dropping it asks for the same graceful
/// shutdown as [`Runner::shutdown`].
#[derive(Debug)]
pub struct Runner {
    shutdown: watch::Sender<Stop>,
    shards: Vec<ShardHandle>,
    task: JoinHandle<Finished>,
    clock: Clock,
    gateway: GatewayBot,
    total: u32,
}

impl Runner {
    /// What the runner runs on: the gateway URL, the recommended shard
    /// count and the session-start limit, as `GET /gateway/bot` said (or
    /// as given).
    #[must_use]
    pub const fn gateway(&self) -> &GatewayBot {
        &self.gateway
    }

    /// The bot's total shard count (`shard[1]` in every Identify).
    #[must_use]
    pub const fn total_shards(&self) -> u32 {
        self.total
    }

    /// The clock the shards' timestamps are on (notices, `retry_at`).
    #[must_use]
    pub const fn clock(&self) -> Clock {
        self.clock
    }

    /// The handle of shard `id`, if this runner runs it.
    #[must_use]
    pub fn shard(&self, id: u32) -> Option<&ShardHandle> {
        self.shards
            .binary_search_by_key(&id, ShardHandle::id)
            .ok()
            .map(|index| &self.shards[index])
    }

    /// Every shard's handle, by id.
    #[must_use]
    pub fn shards(&self) -> &[ShardHandle] {
        &self.shards
    }

    /// Every shard's latest figures, by id.
    #[must_use]
    pub fn figures(&self) -> BTreeMap<u32, Figures> {
        self.shards
            .iter()
            .map(|shard| (shard.id(), shard.figures()))
            .collect()
    }

    /// Asks for a graceful shutdown: every shard's socket is closed with
    /// 1000 (which ends its session on the gateway), and the runner stops.
    /// Returns at once; [`Runner::join`] waits for the end. To stop and
    /// keep the sessions for a later process, see
    /// [`Runner::close_keeping_sessions`].
    pub fn shutdown(&self) {
        self.shutdown.send_replace(Stop::EndingSessions);
    }

    /// Waits for every shard to stop and returns their last figures.
    ///
    /// # Errors
    ///
    /// [`RunnerError::Shards`] names each shard that stopped on its own
    /// (a fatal close code, a refused upgrade, a give-up limit) and why.
    pub async fn join(self) -> Result<BTreeMap<u32, Figures>, RunnerError> {
        let shards = self.shards.clone();
        self.finish().await?;
        Ok(shards
            .iter()
            .map(|shard| (shard.id(), shard.figures()))
            .collect())
    }

    /// Stops every shard without ending its session, and hands the
    /// sessions back, by shard id, to start the next process from
    /// ([`RunnerBuilder::resume_from`]): each socket is closed with 4000,
    /// a code that keeps the session resumable on the gateway (1000 and
    /// 1001 end it). Read the event stream to its end: each saved
    /// sequence number is that of the shard's last dispatch handed to it,
    /// so a rolling restart loses and repeats nothing. The map is serde
    /// (it holds no token); start the next process within the gateway's
    /// session timeout (a few minutes on Discord). Shards that had no
    /// session (not yet READY) are left out and identify next time.
    ///
    /// # Errors
    ///
    /// As [`Runner::join`]: a shard had stopped on its own (the sessions
    /// of the others are not handed back then; they time out on the
    /// gateway).
    pub async fn close_keeping_sessions(self) -> Result<SavedSessions, RunnerError> {
        self.shutdown.send_replace(Stop::KeepingSessions);
        self.finish().await
    }

    /// Waits for the run loop; the saved sessions, or the shards that
    /// stopped on their own.
    async fn finish(self) -> Result<SavedSessions, RunnerError> {
        let Self { shutdown, task, .. } = self;
        let finished = task.await.map_err(|_| RunnerError::Driver);
        // Keep the shutdown sender alive until the task is done, so that
        // joining does not itself ask for a shutdown.
        drop(shutdown);
        let Finished { outcomes, sessions } = finished?;
        let failures: Vec<(u32, ClientError)> = outcomes
            .into_iter()
            .filter_map(|(shard, outcome)| outcome.err().map(|error| (shard, error)))
            .collect();
        if !failures.is_empty() {
            return Err(RunnerError::Shards(failures));
        }
        Ok(sessions)
    }

    /// [`Runner::shutdown`], then [`Runner::join`].
    ///
    /// # Errors
    ///
    /// As [`Runner::join`].
    pub async fn close(self) -> Result<BTreeMap<u32, Figures>, RunnerError> {
        self.shutdown();
        self.join().await
    }
}

/// The dispatches of every shard, merged into one stream: each item is the
/// shard's id and its dispatch, each sequence number of a shard's session
/// at most once and in order.
///
/// The stream ends when the runner stops. Dropping it asks the runner to
/// shut down. If the bot falls the event buffer behind, the runner stops
/// reading the sockets until there is room (heartbeats and deadlines keep
/// running).
#[derive(Debug)]
pub struct ShardEvents {
    rx: mpsc::Receiver<(u32, DispatchEvent)>,
}

impl ShardEvents {
    /// The next `(shard, dispatch)`, or `None` once the runner has stopped.
    pub async fn recv(&mut self) -> Option<(u32, DispatchEvent)> {
        self.rx.recv().await
    }
}

impl Stream for ShardEvents {
    type Item = (u32, DispatchEvent);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
