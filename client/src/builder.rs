//! Building a client: the token, what Identify says (intents, shard), the
//! policy's configuration, and a few limits of the client's own.

use std::sync::Arc;

use reconnect_policy::{
    Fleet, IdentifyLimiter, PolicyConfig, SavedSession, SavedSessions, SessionStartLimit,
};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::client::{Client, Events};
use crate::clock::Clock;
use crate::command::{IdentifyProperties, Identity};
use crate::compression::Compression;
use crate::dispatch::DispatchEvent;
use crate::driver::{Driver, DriverParts, Finished, ShardParts, Stop};
use crate::error::BuildError;
use crate::figures::{Published, SocketGauge};
use crate::gateway_command::Presence;
use crate::identify_share::IdentifyShare;
use crate::identify_store::RemoteIdentify;
use crate::shard_handle::ShardHandle;
use crate::token::Token;
use crate::transport::{DEFAULT_USER_AGENT, Dialer};
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The smallest frame size limit accepted: the gateway's own limit on
/// payloads a client sends.
pub const MIN_FRAME_BYTES: usize = 4_096;
/// The default limit on an inbound frame or message: 16 MiB (a large
/// guild's `GUILD_CREATE` can run to megabytes).
pub const DEFAULT_FRAME_BYTES: usize = 16 << 20;

/// Builds a [`Client`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use futures_util::StreamExt;
/// use reconnect_client::{ClientBuilder, Token};
///
/// let token = Token::from_env("DISCORD_TOKEN")?;
/// let (client, mut events) = ClientBuilder::new(token)
///     .gateway_url("wss://gateway.discord.gg")
///     .intents(1 << 9 | 1 << 15) // GUILD_MESSAGES | MESSAGE_CONTENT
///     .start()?;
/// while let Some(event) = events.next().await {
///     println!("#{:?} {}", event.seq, event.name);
/// }
/// client.join().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ClientBuilder {
    token: Token,
    intents: u64,
    shard: (u32, u32),
    policy: PolicyConfig,
    identify: Option<IdentifyShare>,
    seed: Option<u64>,
    max_frame_bytes: usize,
    event_buffer: usize,
    notice_capacity: usize,
    user_agent: String,
    compression: Compression,
    presence: Option<Presence>,
    large_threshold: Option<u8>,
    properties: IdentifyProperties,
    resume: Option<SavedSession>,
}

impl ClientBuilder {
    /// A builder with the policy's production defaults, shard 0 of 1, no
    /// intents, and the Discord gateway as the base URL.
    #[must_use]
    pub fn new(token: Token) -> Self {
        Self {
            token,
            intents: 0,
            shard: (0, 1),
            policy: PolicyConfig::default(),
            identify: None,
            seed: None,
            max_frame_bytes: DEFAULT_FRAME_BYTES,
            event_buffer: 1_024,
            notice_capacity: 1_024,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            compression: Compression::None,
            presence: None,
            large_threshold: None,
            properties: IdentifyProperties::default(),
            resume: None,
        }
    }

    /// The base gateway URL (`ws://` or `wss://`, no query: the client adds
    /// `?v=10&encoding=json`). Sets the policy's `gateway_url`; by default a
    /// READY's resume URL must be in this URL's domain.
    #[must_use]
    pub fn gateway_url(mut self, url: impl Into<String>) -> Self {
        self.policy.gateway_url = url.into();
        self
    }

    /// The gateway intents Identify asks for.
    #[must_use]
    pub const fn intents(mut self, intents: u64) -> Self {
        self.intents = intents;
        self
    }

    /// This client's shard: `id` of `count`.
    #[must_use]
    pub const fn shard(mut self, id: u32, count: u32) -> Self {
        self.shard = (id, count);
        self
    }

    /// The whole policy configuration (its `gateway_url` included, so call
    /// [`ClientBuilder::gateway_url`] after this one, if at all).
    #[must_use]
    pub fn policy(mut self, config: PolicyConfig) -> Self {
        self.policy = config;
        self
    }

    /// The identify limiter shared by all shards of the bot (and its
    /// clock). Without one, the client keeps its own, sized for
    /// [`SessionStartLimit::DISCORD_DEFAULT`].
    #[must_use]
    pub fn identify_share(mut self, share: IdentifyShare) -> Self {
        self.identify = Some(share);
        self
    }

    /// The seed of the policy's jitter. Without one, a seed is drawn from
    /// the standard library's randomly keyed hasher, so shards started
    /// together do not jitter in step.
    #[must_use]
    pub const fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The largest inbound frame or message accepted, in bytes (default
    /// [`DEFAULT_FRAME_BYTES`], at least [`MIN_FRAME_BYTES`]). A larger one
    /// is counted and ends its connection; the policy then resumes.
    #[must_use]
    pub const fn max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    /// How many dispatches may wait for the user before the client stops
    /// reading the socket (default 1024; at least 1).
    #[must_use]
    pub const fn event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events;
        self
    }

    /// How many [`Notice`](crate::Notice)s a slow subscriber may fall
    /// behind before it misses some (default 1024; at least 1).
    #[must_use]
    pub const fn notice_capacity(mut self, notices: usize) -> Self {
        self.notice_capacity = notices;
        self
    }

    /// The `User-Agent` of every WebSocket upgrade request (default
    /// [`DEFAULT_USER_AGENT`]: this library and its version). Name your bot
    /// and library here if you like; it must be a valid HTTP header value.
    #[must_use]
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Transport compression (default [`Compression::None`]). Each
    /// connection gets a fresh context, and no message may inflate past
    /// [`ClientBuilder::max_frame_bytes`]: one that does ends its
    /// connection (counted as oversized) and the policy resumes.
    #[must_use]
    pub const fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The presence Identify starts the session with (default: none, the
    /// gateway's own).
    #[must_use]
    pub fn presence(mut self, presence: Presence) -> Self {
        self.presence = Some(presence);
        self
    }

    /// Identify's `large_threshold`: members above which a guild counts as
    /// large and arrives without its offline members (50 to 250; the
    /// gateway's default is 50).
    #[must_use]
    pub const fn large_threshold(mut self, members: u8) -> Self {
        self.large_threshold = Some(members);
        self
    }

    /// Identify's `properties` (default: this operating system and this
    /// library's name).
    #[must_use]
    pub fn identify_properties(mut self, properties: IdentifyProperties) -> Self {
        self.properties = properties;
        self
    }

    /// Starts from a session saved by an earlier process (see
    /// [`Client::close_keeping_session`]): the first attempt resumes it at
    /// its resume URL with its sequence number, so nothing is identified
    /// and the gateway replays what was sent while no process held it.
    /// When the gateway no longer knows the session (op 9 not resumable,
    /// 4007, 4009), the shard identifies as usual. A saved session that
    /// fails the policy's checks (its resume URL outside the allowed
    /// domains, a malformed id) is not used: the token never goes to a
    /// URL the policy would refuse, and the shard identifies. Ignored by a
    /// [`RunnerBuilder`](crate::RunnerBuilder), which takes
    /// [`RunnerBuilder::resume_from`](crate::RunnerBuilder::resume_from).
    #[must_use]
    pub fn resume_from(mut self, saved: SavedSession) -> Self {
        self.resume = Some(saved);
        self
    }

    /// Starts the client on the current tokio runtime: a fleet of one
    /// shard, driven by the same run loop as a [`Runner`](crate::Runner).
    /// The first connection attempt starts at once.
    ///
    /// # Errors
    ///
    /// An invalid configuration (see [`BuildError`]), or no runtime.
    pub fn start(mut self) -> Result<(Client, Events), BuildError> {
        let (id, count) = self.shard;
        if id >= count {
            return Err(BuildError::Shard { id, count });
        }
        let share = self
            .identify
            .take()
            .unwrap_or_else(|| IdentifyShare::new(SessionStartLimit::DISCORD_DEFAULT));
        let saved: SavedSessions = self.resume.take().map(|s| (id, s)).into_iter().collect();
        let launched = self.launch(&[id], count, Limiter::Shared(share), &saved)?;
        let shard = launched
            .shards
            .into_iter()
            .next()
            .ok_or(BuildError::Shard { id, count })?;
        Ok((
            Client::new(launched.shutdown, shard, launched.task),
            Events::new(launched.events),
        ))
    }

    /// The identify limiter shared with other clients, if one was set;
    /// taken out of the builder.
    pub(crate) const fn take_identify_share(&mut self) -> Option<IdentifyShare> {
        self.identify.take()
    }

    /// The bot's token.
    pub(crate) const fn token(&self) -> &Token {
        &self.token
    }

    /// Starts a fleet of `shards` (ids of `count`) on the current tokio
    /// runtime, configured as this builder says, its identify requests
    /// answered as `limiter` says, the shards in `saved` resuming their
    /// saved sessions.
    pub(crate) fn launch(
        self,
        shards: &[u32],
        count: u32,
        limiter: Limiter,
        saved: &SavedSessions,
    ) -> Result<Launched, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        if self.max_frame_bytes < MIN_FRAME_BYTES {
            return Err(BuildError::FrameLimit {
                got: self.max_frame_bytes,
                min: MIN_FRAME_BYTES,
            });
        }
        if let Some(&id) = shards.iter().find(|&&id| id >= count) {
            return Err(BuildError::Shard { id, count });
        }
        if let Some(members) = self.large_threshold
            && !(50..=250).contains(&members)
        {
            return Err(BuildError::LargeThreshold(members));
        }
        let seed = self
            .seed
            .unwrap_or_else(|| random_seed(shards.first().copied().unwrap_or(0)));
        let (clock, fleet, identify, remote) = match limiter {
            Limiter::Shared(share) => {
                let clock = share.clock();
                let fleet = Fleet::resuming(
                    self.policy,
                    shards.iter().copied(),
                    seed,
                    None,
                    clock.now(),
                    saved,
                )?;
                (clock, fleet, Some(share), None)
            }
            Limiter::Own(limit) => {
                let clock = Clock::start();
                let limiter = IdentifyLimiter::new(limit, clock.now());
                let fleet = Fleet::resuming(
                    self.policy,
                    shards.iter().copied(),
                    seed,
                    Some(limiter),
                    clock.now(),
                    saved,
                )?;
                (clock, fleet, None, None)
            }
            #[cfg(feature = "redis")]
            Limiter::Redis(store, limit) => {
                let clock = Clock::start();
                let fleet = Fleet::resuming(
                    self.policy,
                    shards.iter().copied(),
                    seed,
                    None,
                    clock.now(),
                    saved,
                )?;
                let setup = crate::redis_identify::Setup {
                    clock,
                    limit,
                    shards: shards.to_vec(),
                    total: count,
                };
                let remote = crate::redis_identify::spawn(*store, &runtime, &setup);
                let fleet = if remote.shares_probe() {
                    fleet.with_shared_recovery(
                        reconnect_policy::SharedRecovery::DEFAULT.for_bot(count),
                    )
                } else {
                    fleet
                };
                (clock, fleet, None, Some(remote))
            }
        };
        let store_status = remote.as_ref().map(RemoteIdentify::status);
        let user_agent = HeaderValue::from_str(&self.user_agent)
            .ok()
            .filter(|_| !self.user_agent.trim().is_empty())
            .ok_or(BuildError::UserAgent)?;
        let dialer = Dialer::new(self.max_frame_bytes, user_agent, self.compression)
            .map_err(|e| BuildError::Tls(e.to_string()))?;

        let (events_tx, events_rx) = mpsc::channel(self.event_buffer.max(1));
        let (shutdown_tx, shutdown_rx) = watch::channel(Stop::No);
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let mut parts = Vec::with_capacity(shards.len());
        let mut handles = Vec::with_capacity(shards.len());
        for (id, policy) in fleet.policies() {
            let (notices_tx, first_notices) = broadcast::channel(self.notice_capacity.max(1));
            let gauge = Arc::new(SocketGauge::default());
            let published = Arc::new(
                Published::new(clock, policy, &gauge).with_identify_store(store_status.clone()),
            );
            handles.push(ShardHandle::new(
                id,
                count,
                clock,
                Arc::clone(&published),
                &notices_tx,
                first_notices,
                commands_tx.clone(),
            ));
            parts.push(ShardParts {
                id,
                identity: Identity {
                    intents: self.intents,
                    shard: [id, count],
                    presence: self.presence.clone(),
                    large_threshold: self.large_threshold,
                    properties: self.properties.clone(),
                },
                notices: notices_tx,
                published,
                gauge,
            });
        }
        let driver = Driver::new(DriverParts {
            fleet,
            identify,
            remote,
            clock,
            token: self.token,
            shards: parts,
            dialer,
            max_pending: self.event_buffer.max(1),
            events: events_tx,
            shutdown: shutdown_rx,
            commands: commands_rx,
        });
        let task = runtime.spawn(driver.run());
        Ok(Launched {
            shutdown: shutdown_tx,
            shards: handles,
            events: events_rx,
            task,
            clock,
        })
    }
}

/// How many commands from handles may wait for the run loop to look at
/// them (it answers each at once, so this is only a hand-over buffer).
const COMMAND_QUEUE: usize = 256;

/// Where a fleet's identify requests are answered.
pub(crate) enum Limiter {
    /// By a limiter shared outside the fleet: the fleet hands its requests
    /// out and the run loop answers them with this share.
    Shared(IdentifyShare),
    /// By the fleet's own limiter, for this limit.
    Own(SessionStartLimit),
    /// By the bot's limiter in Redis, shared with its other processes;
    /// the limit read from `GET /gateway/bot` fills the store when it has
    /// none yet and sizes the local share.
    #[cfg(feature = "redis")]
    Redis(Box<crate::redis_identify::RedisIdentify>, SessionStartLimit),
}

/// A started fleet, before the user's handles are made of it.
pub(crate) struct Launched {
    /// Asks the run loop to shut every shard down.
    pub(crate) shutdown: watch::Sender<Stop>,
    /// One handle per shard, by id.
    pub(crate) shards: Vec<ShardHandle>,
    /// The merged stream of dispatches.
    pub(crate) events: mpsc::Receiver<(u32, DispatchEvent)>,
    /// The run loop.
    pub(crate) task: JoinHandle<Finished>,
    /// The clock the fleet runs on.
    pub(crate) clock: Clock,
}

/// A seed from the standard library's randomly keyed SipHash.
fn random_seed(shard: u32) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(shard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        let builder = ClientBuilder::new(Token::new("super-secret-token")).intents(513);
        let shown = format!("{builder:?}");
        assert!(!shown.contains("super-secret-token"), "{shown}");
        assert!(shown.contains("Token(<redacted>)"), "{shown}");
    }

    #[test]
    fn start_refuses_bad_settings() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let bad_url = ClientBuilder::new(Token::new("t")).gateway_url("https://x");
        assert!(matches!(bad_url.start(), Err(BuildError::Config(_))));
        let small = ClientBuilder::new(Token::new("t")).max_frame_bytes(10);
        assert!(matches!(
            small.start(),
            Err(BuildError::FrameLimit { got: 10, .. })
        ));
        for user_agent in ["", "  ", "bot\r\nX-Injected: 1"] {
            let bad = ClientBuilder::new(Token::new("t")).user_agent(user_agent);
            assert!(
                matches!(bad.start(), Err(BuildError::UserAgent)),
                "{user_agent:?}"
            );
        }
        for members in [0, 49, 251] {
            let bad = ClientBuilder::new(Token::new("t")).large_threshold(members);
            assert!(matches!(bad.start(), Err(BuildError::LargeThreshold(m)) if m == members));
        }
        let shard = ClientBuilder::new(Token::new("t")).shard(2, 2);
        assert!(matches!(
            shard.start(),
            Err(BuildError::Shard { id: 2, count: 2 })
        ));
    }

    #[test]
    fn start_needs_a_runtime() {
        assert!(matches!(
            ClientBuilder::new(Token::new("t")).start(),
            Err(BuildError::NoRuntime)
        ));
    }
}
