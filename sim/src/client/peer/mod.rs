//! Models of other clients' reconnect behaviour, for comparison.
//!
//! A [`PeerClient`] is a plain gateway client (connect, Hello, Identify or
//! Resume, heartbeats) whose reconnect behaviour is a table of
//! [`PeerRules`]: how long it waits ([`Delay`], [`Wait`]), what resets its
//! counter ([`Reset`]), which close codes it treats how ([`CloseCodes`]),
//! what it does after each kind of trouble ([`Reactions`]: op 7, op 9,
//! close frames, failed dials, zombies, timeouts), how it detects a zombie
//! ([`Zombie`]), when it sends its first heartbeat ([`FirstHeartbeat`]), how
//! the bot paces identifies ([`Pacing`]), and which known bugs it has
//! ([`Bugs`]). One generic state machine reads the table. Each [`PeerKind`]
//! is one row of it, and its doc comment cites, for every behaviour, where
//! it is described: a section of the project's notes on the gateway and
//! its libraries ("ref §B1" and so on; kept beside the repository, not in
//! it) and the upstream file, issue or pull request that section names, so
//! every rule can be checked against the library's own source. Behaviours marked *(inferred)* are the reference's or our
//! own reading of code that no issue confirms; *(code)* marks details read
//! in the upstream source at the reference's snapshot and not spelled out
//! in the reference. None of the models uses the policy crate.
//!
//! Identify pacing that a library shares between all shards of a bot
//! (serenity's global start queue, twilight's and discord.js's bucketed
//! queues, JDA's per-bucket session queue, discord.py's single connection
//! worker) lives in [`PeerShared`], which the engine owns and hands to every
//! shard through [`Cx::peers`](super::Cx); the queues keep no randomness of
//! their own (a waiter that must draw brings its own draw).
//!
//! This file holds the vocabulary of the tables; each library's rows live
//! in a file of their own (`naive`, `carbon`, `discordjs`, `discordpy`,
//! `serenity`, `twilight`, `jda`), the shared queues in `shared`, the state
//! machine in `machine`, and the tests of every model in `machine::tests`.

mod carbon;
mod discordjs;
mod discordpy;
mod jda;
mod machine;
mod naive;
mod serenity;
mod shared;
mod twilight;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::Cx;
use crate::wire::{DispatchKind, SessionId, SockId, ToClient, ToServer};

pub use machine::PeerClient;
pub use shared::{PeerShared, Ticket};

/// What the gateway receives for a close frame with no status code (RFC
/// 6455 §7.1.5: "no status code was actually present"), as the `ws`
/// package's `close()` with no argument sends.
const NO_STATUS: u16 = 1005;

/// One day, ms (the daily session start period).
const DAY_MS: u64 = 24 * 3_600_000;

/// The models available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum PeerKind {
    /// Reconnects at once after anything, resumes when it can, never paces
    /// identifies: the reconnect storm the issue describes.
    Naive,
    /// The naive client with a 5 s minimum between attempts (the issue's
    /// "5 s guard").
    Guard5s,
    /// Carbon's `GatewayPlugin` before PR #264 (buape/carbon `e2b2c69^`),
    /// as its code is written; see [`PeerRules::CARBON_OLD`].
    CarbonOld,
    /// The same, as PR #264's description tells it (a Resume with the new
    /// socket's sequence, a close with 1000); see
    /// [`PeerRules::CARBON_OLD_PR`].
    CarbonOldPr,
    /// `@discordjs/ws`; see [`PeerRules::DISCORD_JS`].
    DiscordJs,
    /// discord.py's `AutoShardedClient`; see [`PeerRules::DISCORD_PY`].
    DiscordPy,
    /// discord.py's `AutoShardedClient` with a `before_identify_hook` that
    /// honours `max_concurrency`, as its maintainer recommends; see
    /// [`PeerRules::DISCORD_PY_HOOK`].
    DiscordPyHook,
    /// serenity 0.12 (`current`); see [`PeerRules::SERENITY`].
    Serenity,
    /// serenity's `next` branch, whose start queue batches first starts by
    /// `max_concurrency`; see [`PeerRules::SERENITY_NEXT`].
    SerenityNext,
    /// twilight-gateway 0.17; see [`PeerRules::TWILIGHT`].
    Twilight,
    /// JDA (Java); see [`PeerRules::JDA`].
    Jda,
}

impl PeerKind {
    /// Every model, in display order.
    pub const ALL: [Self; 11] = [
        Self::Naive,
        Self::Guard5s,
        Self::CarbonOld,
        Self::CarbonOldPr,
        Self::DiscordJs,
        Self::DiscordPy,
        Self::DiscordPyHook,
        Self::Serenity,
        Self::SerenityNext,
        Self::Twilight,
        Self::Jda,
    ];

    /// The model's name on the command line and in reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Naive => "naive",
            Self::Guard5s => "guard-5s",
            Self::CarbonOld => "carbon-old",
            Self::CarbonOldPr => "carbon-old-pr",
            Self::DiscordJs => "discordjs",
            Self::DiscordPy => "discordpy",
            Self::DiscordPyHook => "discordpy-hook",
            Self::Serenity => "serenity",
            Self::SerenityNext => "serenity-next",
            Self::Twilight => "twilight",
            Self::Jda => "jda",
        }
    }

    /// The model named `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The model's rules.
    #[must_use]
    pub const fn rules(self) -> PeerRules {
        match self {
            Self::Naive => PeerRules::NAIVE,
            Self::Guard5s => PeerRules {
                guard_ms: 5_000,
                ..PeerRules::NAIVE
            },
            Self::CarbonOld => PeerRules::CARBON_OLD,
            Self::CarbonOldPr => PeerRules::CARBON_OLD_PR,
            Self::DiscordJs => PeerRules::DISCORD_JS,
            Self::DiscordPy => PeerRules::DISCORD_PY,
            Self::DiscordPyHook => PeerRules::DISCORD_PY_HOOK,
            Self::Serenity => PeerRules::SERENITY,
            Self::SerenityNext => PeerRules::SERENITY_NEXT,
            Self::Twilight => PeerRules::TWILIGHT,
            Self::Jda => PeerRules::JDA,
        }
    }
}

/// How long a counted reconnect ([`Wait::Backoff`]) waits, as a function of
/// the peer's counter `n` after counting it (1 for the first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delay {
    /// No wait.
    Immediate,
    /// Always this long.
    Fixed(u64),
    /// `min(first_ms · 2^(n-1), cap_ms)`, no jitter; nothing for `n = 0`.
    Doubling {
        /// The first wait.
        first_ms: u64,
        /// The longest wait.
        cap_ms: u64,
    },
    /// Uniform in `[0, base_ms · 2^min(n, max_exp)]` ("full jitter").
    FullJitter {
        /// The base.
        base_ms: u64,
        /// The largest exponent.
        max_exp: u32,
    },
}

impl Delay {
    /// The wait for counter value `n`, drawing from `rng` if jittered.
    #[must_use]
    pub fn ms(self, n: u32, rng: &mut ChaCha8Rng) -> u64 {
        match self {
            Self::Immediate => 0,
            Self::Fixed(ms) => ms,
            Self::Doubling { first_ms, cap_ms } => {
                if n == 0 {
                    return 0;
                }
                let doublings = (n - 1).min(63);
                first_ms
                    .saturating_mul(1u64.checked_shl(doublings).unwrap_or(u64::MAX))
                    .min(cap_ms)
            }
            Self::FullJitter { base_ms, max_exp } => {
                let upper = base_ms
                    .saturating_mul(1u64.checked_shl(n.min(max_exp).min(63)).unwrap_or(u64::MAX));
                rng.random_range(0..=upper)
            }
        }
    }
}

/// What resets a peer's attempt counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    /// The WebSocket opening (the bug Carbon fixed in #345; twilight's
    /// counter of failed connects).
    OnOpen,
    /// READY or RESUMED.
    OnSessionEstablished,
    /// READY or RESUMED, and every reconnect that starts with a session
    /// starts again from 0 (JDA's `reconnectTimeoutS`).
    OnSessionEstablishedOrResume,
    /// A counted reconnect more than this many ms after the previous one
    /// starts again from 1 (discord.py's `ExponentialBackoff`).
    AfterIdle(u64),
    /// Nothing (the counter is unused).
    Never,
}

/// How a peer notices a dead connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zombie {
    /// This many heartbeats in a row were not ACKed when the next is due
    /// (1: the previous one, as the docs say).
    AckMissed {
        /// Unanswered heartbeats tolerated minus one.
        misses: u32,
    },
    /// No message of any kind arrived since the previous heartbeat when the
    /// next is due (twilight: any event counts, not only an ACK).
    NoMessageSinceHeartbeat,
    /// No message of any kind for this many ms (discord.py's receive
    /// timeout).
    Silence {
        /// The silence tolerated, ms.
        ms: u64,
    },
    /// No message of any kind for one heartbeat interval plus `extra_ms`
    /// (a socket read timeout, JDA).
    ReadTimeout {
        /// The silence tolerated beyond the interval, ms.
        extra_ms: u64,
    },
}

/// When the first heartbeat of a connection goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstHeartbeat {
    /// On Hello.
    Immediate,
    /// `interval × U[0, 1)` after Hello, as the docs ask.
    Jittered,
    /// One interval after Identify is sent (or after RESUMED).
    AfterIdentify,
}

/// What a peer sends as soon as its socket opens, before Hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOpen {
    /// Nothing: it answers Hello.
    Nothing,
    /// Resume, if it has a session; Hello is then ignored.
    Resume,
    /// Resume or Identify; Hello only starts the heartbeats.
    Answer,
}

/// What a reaction does to the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Keeps it: the next connection resumes.
    Keep,
    /// Drops it: the next connection identifies.
    Drop,
}

/// What a reaction does to the client's current socket, if it still has
/// one (after a close from the server or a failed dial it has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// Sends a close frame with this code.
    Frame(u16),
    /// Drops the transport without a close frame.
    Drop,
    /// Leaves it open (and, for a current socket, keeps heartbeating it).
    Leave,
}

/// How long a reaction waits before the next connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Connects at once.
    None,
    /// Always this long (not counted).
    Fixed(u64),
    /// Counts the reconnect, then waits [`PeerRules::delay`] for the count.
    Backoff,
    /// Sleeps at least `at_least_ms`, then idles until the next tick of the
    /// heartbeat loop of the connection it lost, whose check then fails
    /// (serenity's runner after a failed resume dial). Not counted.
    HeartbeatCheck {
        /// The sleep before the idle period.
        at_least_ms: u64,
    },
}

/// What a peer does after one kind of trouble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reaction {
    /// The session's fate (close codes may override it: [`CloseCodes`]).
    pub session: Fate,
    /// What happens to the current socket.
    pub close: Close,
    /// The wait before the next connection (after the close handshake, if
    /// the peer waits for it: [`PeerRules::close_wait_ms`]).
    pub wait: Wait,
}

impl Reaction {
    /// A shorthand for the tables.
    #[must_use]
    pub const fn new(session: Fate, close: Close, wait: Wait) -> Self {
        Self {
            session,
            close,
            wait,
        }
    }
}

/// A peer's reaction to each kind of trouble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reactions {
    /// A dial that failed or timed out, when it meant to identify.
    pub connect_failed: Reaction,
    /// A dial that failed or timed out, when it meant to resume.
    pub resume_dial_failed: Reaction,
    /// The server (or the transport) closed the socket with a code that is
    /// not fatal.
    pub closed: Reaction,
    /// op 7.
    pub reconnect: Reaction,
    /// op 9 with `d = true`.
    pub resumable: Reaction,
    /// op 9 with `d = false`.
    pub invalid: Reaction,
    /// A zombie connection.
    pub zombie: Reaction,
    /// No Hello, or no READY, in time.
    pub timeout: Reaction,
}

/// How a peer reads the close codes the server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseCodes {
    /// Codes that stop the client.
    pub fatal: &'static [u16],
    /// Codes after which it drops the session (and identifies).
    pub reidentify: &'static [u16],
    /// Codes after which it keeps the session but resets its sequence to 0.
    pub zero_seq: &'static [u16],
}

/// How a bot paces the connections or identifies of its shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// Not at all.
    None,
    /// Only at startup: the process spawns shards in order, a batch of
    /// `max_concurrency` every `window_ms`, so shard `s` first connects
    /// `(s / max_concurrency) · window_ms` after the process is up
    /// (Carbon's `ShardingPlugin`).
    StartupBatches {
        /// The time between batches.
        window_ms: u64,
    },
    /// Identifies wait in a queue per bucket (`shard % max_concurrency`);
    /// a waiter that finds the bucket used less than `window_ms` ago waits
    /// for the rest plus `U[0, jitter_ms)` (discord.js
    /// `SimpleIdentifyThrottler`).
    Throttle {
        /// The bucket's window.
        window_ms: u64,
        /// The extra random wait of a waiter that had to wait.
        jitter_ms: u64,
    },
    /// Identifies wait in a queue per bucket; one bot-wide timer ticks every
    /// `window_ms` while any queue is non-empty and releases one shard per
    /// bucket per tick, within the daily session start limit (twilight
    /// `InMemoryQueue`).
    Ticked {
        /// The time between ticks.
        window_ms: u64,
    },
    /// Connections that will identify wait in a queue (one for the bot, or
    /// one per bucket): one start at a time, held until the dial finished
    /// (serenity `ShardQueuer`) or until READY (JDA's session controller),
    /// and the next one `window_ms` after that.
    StartQueue {
        /// The time between starts.
        window_ms: u64,
        /// One queue per `shard % max_concurrency` instead of one.
        per_bucket: bool,
        /// The start holds the queue until READY, not only until the dial
        /// finished.
        until_ready: bool,
        /// First starts (a shard's first connection) go in batches of one
        /// shard per `shard % max_concurrency`, dialled one after another
        /// with no wait between them, and the wait of `window_ms` follows
        /// the batch (serenity's `next` branch); restarts still go one at a
        /// time.
        first_starts_batched: bool,
    },
    /// One bot-wide worker makes every connection, one at a time, in
    /// priority order (launches, then reconnects after a backoff, then
    /// resumes, then identifies), from the dial until Identify or Resume is
    /// sent, sleeping any backoff while it holds the worker (discord.py
    /// `AutoShardedClient.connect`).
    Worker,
}

/// What the bot's code does between Hello and Identify (discord.py's
/// `before_identify_hook`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentifyHook {
    /// Nothing: Identify goes out at once (or when the pacing allows).
    None,
    /// Sleeps this long before every Identify but the first launch of shard
    /// 0 (discord.py's default hook).
    Sleep(u64),
    /// Sleeps until this long after the last Identify of the shard's bucket
    /// (`shard % max_concurrency`), not at all if that was longer ago: a
    /// hook that honours `max_concurrency`.
    BucketWindow(u64),
}

/// Known bugs; each is off in every model but the one that had it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Reconnects are not single-flight and the close event of a socket the
    /// client closed itself runs the reconnect handler again: op 7 (or a
    /// zombie) and the close that follows schedule two connections and
    /// count the backoff twice.
    pub reconnect_twice: bool,
    /// A new connection neither closes the socket it replaces nor stops
    /// listening to it: the old socket stays open, and its messages and its
    /// eventual close are handled as if it were current.
    pub leaves_old_socket_open: bool,
    /// Resume carries the sequence seen on the new socket (none: `null`,
    /// which the gateway reads as 0) instead of the last one before the
    /// disconnect.
    pub resume_seq_from_new_socket: bool,
}

/// One peer's reconnect behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerRules {
    /// The wait of a counted reconnect ([`Wait::Backoff`]).
    pub delay: Delay,
    /// What resets the attempt counter.
    pub reset: Reset,
    /// The minimum time between two attempts.
    pub guard_ms: u64,
    /// Gives up when a counted reconnect finds the counter at this value.
    pub give_up_after: Option<u32>,
    /// How close codes from the server are read.
    pub codes: CloseCodes,
    /// What it does after each kind of trouble.
    pub on: Reactions,
    /// After this many failed resume dials in a row, the next failure drops
    /// the session (`None`: never).
    pub resume_dial_retries: Option<u32>,
    /// A failed dial forgets READY's resume URL.
    pub drops_resume_url_on_dial_failure: bool,
    /// How long it waits for the answer to its own close frame before it
    /// carries on (0: it does not wait). With [`Bugs::reconnect_twice`] it
    /// does not wait, and this is when the transport reports the unanswered
    /// socket closed.
    pub close_wait_ms: u64,
    /// op 9 with `d = true` is answered with Resume on the same socket.
    pub resume_on_same_socket: bool,
    /// When the first heartbeat goes out.
    pub first_heartbeat: FirstHeartbeat,
    /// A random amount in `[0, heartbeat_jitter_ms]` added to the heartbeat
    /// period, drawn once per connection.
    pub heartbeat_jitter_ms: u64,
    /// Zombie detection.
    pub zombie: Zombie,
    /// Identify (or start) pacing.
    pub pacing: Pacing,
    /// What the bot's code does between Hello and Identify.
    pub identify_hook: IdentifyHook,
    /// What it sends as soon as the socket opens.
    pub on_open: OnOpen,
    /// How long a dial may take, ms.
    pub connect_timeout_ms: u64,
    /// How long after the dial Hello may take (`None`: forever).
    pub hello_timeout_ms: Option<u64>,
    /// Whether the Hello timeout also applies when resuming.
    pub hello_timeout_when_resuming: bool,
    /// How long after Identify READY may take (`None`: forever).
    pub ready_timeout_ms: Option<u64>,
    /// The reaction to a failed dial or a timeout before the shard's first
    /// Identify or Resume was sent (`None`: the usual ones).
    pub start_failed: Option<Reaction>,
    /// The dial and Hello timeout before the first Identify (`None`: the
    /// usual ones).
    pub start_timeout_ms: Option<u64>,
    /// Resumes dial READY's resume URL.
    pub uses_resume_url: bool,
    /// A reconnect that goes through a [`Pacing::StartQueue`] sleeps its
    /// wait after the queue granted it, holding the queue, and so do the
    /// waits between its failed dials; every such reconnect counts a
    /// backoff (JDA's `ReconnectNode` runs `reconnect()` inside the
    /// bucket's worker). Otherwise a reconnect waits before it joins the
    /// queue.
    pub backoff_in_queue: bool,
    /// Known bugs.
    pub bugs: Bugs,
}

/// The gateway's fatal codes per the docs (ref §A1).
const DOCS_FATAL: &[u16] = &[4004, 4010, 4011, 4012, 4013, 4014];
