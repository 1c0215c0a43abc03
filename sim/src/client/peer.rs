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

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::Cx;
use crate::wire::{DispatchKind, SessionId, SockId, ToClient, ToServer};

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
    /// serenity 0.12 (`current`); see [`PeerRules::SERENITY`].
    Serenity,
    /// twilight-gateway 0.17; see [`PeerRules::TWILIGHT`].
    Twilight,
    /// JDA (Java); see [`PeerRules::JDA`].
    Jda,
}

impl PeerKind {
    /// Every model, in display order.
    pub const ALL: [Self; 9] = [
        Self::Naive,
        Self::Guard5s,
        Self::CarbonOld,
        Self::CarbonOldPr,
        Self::DiscordJs,
        Self::DiscordPy,
        Self::Serenity,
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
            Self::Serenity => "serenity",
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
            Self::Serenity => PeerRules::SERENITY,
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
    },
    /// One bot-wide worker makes every connection, one at a time, in
    /// priority order (launches, then reconnects after a backoff, then
    /// resumes, then identifies), from the dial until Identify or Resume is
    /// sent, sleeping any backoff while it holds the worker (discord.py
    /// `AutoShardedClient.connect`).
    Worker,
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
    /// A sleep between Hello and Identify, except for the first launch of
    /// shard 0.
    pub identify_sleep_ms: u64,
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
    /// Known bugs.
    pub bugs: Bugs,
}

/// The gateway's fatal codes per the docs (ref §A1).
const DOCS_FATAL: &[u16] = &[4004, 4010, 4011, 4012, 4013, 4014];

impl PeerRules {
    /// The naive client: reconnects at once after anything, resumes when it
    /// can, closes with 4000 to resume and 1000 after op 9 `d = false`,
    /// never paces identifies, detects zombies by a missed ACK, sends its
    /// first heartbeat on Hello, and abandons a connection that has not
    /// said Hello 10 s after the dial. The storm of the issue and of ref Part C #2 (discord.js#9510:
    /// "destroy → connect → fail → destroy ran with no delay").
    pub const NAIVE: Self = Self {
        delay: Delay::Immediate,
        reset: Reset::OnOpen,
        guard_ms: 0,
        give_up_after: None,
        codes: CloseCodes {
            fatal: DOCS_FATAL,
            reidentify: &[4007, 4009],
            zero_seq: &[],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            resume_dial_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            closed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::Backoff),
            resumable: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::Backoff),
            invalid: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::Backoff),
            zombie: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::Backoff),
            timeout: Reaction::new(Fate::Keep, Close::Drop, Wait::Backoff),
        },
        resume_dial_retries: None,
        drops_resume_url_on_dial_failure: false,
        close_wait_ms: 0,
        resume_on_same_socket: false,
        first_heartbeat: FirstHeartbeat::Immediate,
        heartbeat_jitter_ms: 0,
        zombie: Zombie::AckMissed { misses: 1 },
        pacing: Pacing::None,
        identify_sleep_ms: 0,
        on_open: OnOpen::Nothing,
        connect_timeout_ms: 10_000,
        hello_timeout_ms: Some(10_000),
        hello_timeout_when_resuming: true,
        ready_timeout_ms: None,
        start_failed: None,
        start_timeout_ms: None,
        uses_resume_url: false,
        bugs: Bugs {
            reconnect_twice: false,
            leaves_old_socket_open: false,
            resume_seq_from_new_socket: false,
        },
    };

    /// Carbon's `GatewayPlugin` before PR #264 ("Fixed the gateway's
    /// reconnection system"), read at buape/carbon `e2b2c69^`
    /// (`packages/carbon/src/plugins/gateway/GatewayPlugin.ts`,
    /// `utils/heartbeat.ts`, `plugins/sharding/ShardingPlugin.ts`); ref §B6
    /// names these files and describes the later code.
    ///
    /// - **Backoff**: every reconnect goes through
    ///   `handleReconnectionAttempt`, which increments the counter *before*
    ///   computing `min(1000·2^attempts, 30000)` ms, no jitter: 2, 4, 8,
    ///   16, 30 s. PR #264: "`backoffTime` was always two times the value
    ///   the user set" (the doubled backoff; ref §B6 gives the fixed
    ///   formula).
    /// - **Counter reset** on the WebSocket's `open` (ref §B6 and Part C
    ///   #4: PR #345, "prevented backoff from growing").
    /// - **Give-up**: after 5 counted attempts (`maxAttempts` 5), the only
    ///   library that gives up by default (ref §0, §B6). The check happens
    ///   before anything else, so the socket is left as it is.
    /// - **Fatal codes**: 4004, 4011, 4012, 4013, 4014 set the counter to
    ///   the maximum (*code*: 4010 is missing from this old list; ref §B6
    ///   gives 4004, 4010–4014 for the current code).
    /// - **Re-identify**: 4007 and 4009 clear the session (*code*; ref §B6
    ///   adds 4003 and 4005 in the current code). Everything else resumes
    ///   when a session and a sequence are known (`canResume`).
    /// - **Closing before a reconnect**: `disconnect()` calls `ws.close()`
    ///   with no code (GatewayPlugin.ts:114), and the `ws` package then sends
    ///   a close frame with no status code, which the gateway receives as
    ///   1005 ("no status"). The docs end a session only for a client's 1000
    ///   or 1001 (§A1), so the session survives. PR #264 says the code closed
    ///   with 1000 ("has to disconnect with a code other than 1000 and 1001,
    ///   which I added"); that account is the separate model
    ///   [`PeerRules::CARBON_OLD_PR`].
    /// - **Double reconnect** ([`Bugs::reconnect_twice`]): op 7 runs
    ///   `handleReconnect()`, and the old socket's `close` event then runs
    ///   `handleClose()`: two reconnects, two increments. PR #264: "it
    ///   tries to reconnect twice, because both `this.handleReconnect()`
    ///   ... and `this.handleClose(code)` ... run
    ///   `this.handleReconnectionAttempt(...)`"; the same happens after a
    ///   zombie.
    /// - **Old socket left open** ([`Bugs::leaves_old_socket_open`]):
    ///   `connect()` replaces `this.ws` without closing it, and every
    ///   socket keeps its listeners. PR #264: "When creating a new
    ///   WebSocket connection, it didn't close the older one."
    /// - **Resume sequence**: the code keeps one `sequence` field, written
    ///   by every socket's dispatches (GatewayPlugin.ts:149), and
    ///   `canResume`/`resume` require it to be non-null (:307-318), so a
    ///   Resume with 0 cannot happen: it carries the latest sequence seen.
    ///   PR #264's account ("it was sending the latest sequence number ...
    ///   from the new WebSocket", a Resume with none) is the separate model
    ///   [`PeerRules::CARBON_OLD_PR`]
    ///   ([`Bugs::resume_seq_from_new_socket`]).
    /// - **op 7**: reconnect through `handleReconnectionAttempt` (counted,
    ///   closes with no code), preferring resume.
    /// - **op 9**: no close; after a fixed 5 s (`setTimeout(..., 5000)`,
    ///   *code*; the 1–5 s random wait of ref §B6 came later), connect again,
    ///   resuming if `d` and a session allow, else with the session
    ///   cleared. The socket that got op 9 stays open.
    /// - **Zombie**: the previous heartbeat not ACKed at the next tick
    ///   (ref §0, §B6); same path as op 7.
    /// - **Heartbeats**: the first on Hello, then every `interval + U(0, 1
    ///   s)` (*code*, `utils/heartbeat.ts`; ref §B6 describes the later
    ///   jittered first heartbeat).
    /// - **Identify pacing**: none on re-identify; at startup,
    ///   `ShardingPlugin` spawns batches of `max_concurrency` every 5 s (ref
    ///   §0, §B6).
    /// - **Timeouts**: none in the code; a dial that never answers ends
    ///   with the operating system's TCP connect timeout, about 127 s on
    ///   Linux *(inferred)*. A close frame nobody answers ends after the
    ///   `ws` package's 30 s close timeout with a `close` event (1006),
    ///   which the listener handles like any other *(inferred)*. Resumes
    ///   dial READY's resume URL.
    pub const CARBON_OLD: Self = Self {
        delay: Delay::Doubling {
            first_ms: 2_000,
            cap_ms: 30_000,
        },
        reset: Reset::OnOpen,
        guard_ms: 0,
        give_up_after: Some(5),
        codes: CloseCodes {
            fatal: &[4004, 4011, 4012, 4013, 4014],
            reidentify: &[4007, 4009],
            zero_seq: &[],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Keep, Close::Frame(NO_STATUS), Wait::Backoff),
            resume_dial_failed: Reaction::new(Fate::Keep, Close::Frame(NO_STATUS), Wait::Backoff),
            closed: Reaction::new(Fate::Keep, Close::Frame(NO_STATUS), Wait::Backoff),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(NO_STATUS), Wait::Backoff),
            resumable: Reaction::new(Fate::Keep, Close::Leave, Wait::Fixed(5_000)),
            invalid: Reaction::new(Fate::Drop, Close::Leave, Wait::Fixed(5_000)),
            zombie: Reaction::new(Fate::Keep, Close::Frame(NO_STATUS), Wait::Backoff),
            timeout: Reaction::new(Fate::Keep, Close::Drop, Wait::Backoff),
        },
        resume_dial_retries: None,
        drops_resume_url_on_dial_failure: false,
        close_wait_ms: 30_000,
        resume_on_same_socket: false,
        first_heartbeat: FirstHeartbeat::Immediate,
        heartbeat_jitter_ms: 1_000,
        zombie: Zombie::AckMissed { misses: 1 },
        pacing: Pacing::StartupBatches { window_ms: 5_000 },
        identify_sleep_ms: 0,
        on_open: OnOpen::Nothing,
        connect_timeout_ms: 127_000,
        hello_timeout_ms: None,
        hello_timeout_when_resuming: false,
        ready_timeout_ms: None,
        start_failed: None,
        start_timeout_ms: None,
        uses_resume_url: true,
        bugs: Bugs {
            reconnect_twice: true,
            leaves_old_socket_open: true,
            resume_seq_from_new_socket: false,
        },
    };

    /// [`PeerRules::CARBON_OLD`] as PR #264's description tells it, kept
    /// beside the code as written: every reconnect closes with 1000 (which
    /// ends the session, §A1), and a Resume carries the new socket's
    /// sequence, none (0), which the gateway answers with 4007 ("It always
    /// fails to resume ... it was sending the latest sequence number that
    /// was given (aka from the new WebSocket)").
    pub const CARBON_OLD_PR: Self = Self {
        on: Reactions {
            connect_failed: Reaction::new(Fate::Keep, Close::Frame(1000), Wait::Backoff),
            resume_dial_failed: Reaction::new(Fate::Keep, Close::Frame(1000), Wait::Backoff),
            closed: Reaction::new(Fate::Keep, Close::Frame(1000), Wait::Backoff),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(1000), Wait::Backoff),
            resumable: Reaction::new(Fate::Keep, Close::Leave, Wait::Fixed(5_000)),
            invalid: Reaction::new(Fate::Drop, Close::Leave, Wait::Fixed(5_000)),
            zombie: Reaction::new(Fate::Keep, Close::Frame(1000), Wait::Backoff),
            timeout: Reaction::new(Fate::Keep, Close::Drop, Wait::Backoff),
        },
        bugs: Bugs {
            reconnect_twice: true,
            leaves_old_socket_open: true,
            resume_seq_from_new_socket: true,
        },
        ..Self::CARBON_OLD
    };

    /// `@discordjs/ws` (ref §B3: `packages/ws/src/ws/WebSocketShard.ts`,
    /// `utils/constants.ts`, `throttling/SimpleIdentifyThrottler.ts`).
    ///
    /// - **Backoff**: none; `sleep(500)` before every reconnect, no growth,
    ///   no cap, no attempt limit (ref §0, §B3: PR #9517 after #9510; Part
    ///   C #1: #11626, a 38-minute loop at about 2 attempts/s). No give-up.
    /// - **Own close codes**: `destroy()` closes with 4200 to resume and
    ///   1000 otherwise, and waits for the close handshake (ref §B3
    ///   "Recovery model"; *code*: it awaits `onclose`, which the `ws`
    ///   package bounds at 30 s *(inferred)*).
    /// - **Session**: cleared unless the recovery is Resume (ref §B3).
    /// - **Close codes** (ref §B3 `onClose`): 4000, 4001, 4002, 4009
    ///   resume; 1000, 4003, 4005, 4007, 4008 reconnect (identify); 4004,
    ///   4010–4014 stop; unknown codes resume unless a socket error was
    ///   seen. A refused or failed dial fires `error` then `close` 1006,
    ///   so it reconnects and drops the session *(inferred from ref §B3's
    ///   rule)*; a reset of an open socket closes with 1006 and resumes.
    /// - **op 7** → destroy(Resume): close 4200, 500 ms, resume (ref §0).
    /// - **op 9**: `d = true` with a session sends Resume on the same
    ///   socket; otherwise destroy(Reconnect): close 1000, clear the
    ///   session, 500 ms, identify through the throttler (ref §0, §A2, §B3).
    /// - **Zombie**: not ACKed at the next tick → destroy(Resume), close
    ///   4200 (ref §0, §B3).
    /// - **First heartbeat**: `floor(interval × Math.random())` after Hello
    ///   (ref §B3).
    /// - **Timeouts** (ref §B3 `constants.ts`): handshake 30 s, Hello 60 s,
    ///   READY 15 s; a Hello or READY timeout destroys with 1000 and
    ///   Reconnect, so the session is dropped and a fresh identify follows.
    /// - **Identify pacing**: `SimpleIdentifyThrottler`, one queue per
    ///   `shard % max_concurrency`; a waiter that finds the key used less
    ///   than 5 s ago sleeps the rest plus 0–1.5 s (ref §0, §B3), shared by
    ///   every shard of the manager. Resumes dial the stored resume URL.
    pub const DISCORD_JS: Self = Self {
        delay: Delay::Immediate,
        reset: Reset::Never,
        guard_ms: 0,
        give_up_after: None,
        codes: CloseCodes {
            fatal: DOCS_FATAL,
            reidentify: &[1000, 4003, 4005, 4007, 4008],
            zero_seq: &[],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Drop, Close::Leave, Wait::Fixed(500)),
            resume_dial_failed: Reaction::new(Fate::Drop, Close::Leave, Wait::Fixed(500)),
            closed: Reaction::new(Fate::Keep, Close::Leave, Wait::Fixed(500)),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(4200), Wait::Fixed(500)),
            resumable: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::Fixed(500)),
            invalid: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::Fixed(500)),
            zombie: Reaction::new(Fate::Keep, Close::Frame(4200), Wait::Fixed(500)),
            timeout: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::Fixed(500)),
        },
        resume_dial_retries: None,
        drops_resume_url_on_dial_failure: false,
        close_wait_ms: 30_000,
        resume_on_same_socket: true,
        first_heartbeat: FirstHeartbeat::Jittered,
        heartbeat_jitter_ms: 0,
        zombie: Zombie::AckMissed { misses: 1 },
        pacing: Pacing::Throttle {
            window_ms: 5_000,
            jitter_ms: 1_500,
        },
        identify_sleep_ms: 0,
        on_open: OnOpen::Nothing,
        connect_timeout_ms: 30_000,
        hello_timeout_ms: Some(60_000),
        hello_timeout_when_resuming: true,
        ready_timeout_ms: Some(15_000),
        start_failed: None,
        start_timeout_ms: None,
        uses_resume_url: true,
        bugs: Bugs {
            reconnect_twice: false,
            leaves_old_socket_open: false,
            resume_seq_from_new_socket: false,
        },
    };

    /// discord.py's `AutoShardedClient`, the client it offers for a fleet
    /// of shards (ref §B4: `discord/backoff.py`, `discord/gateway.py`,
    /// `discord/shard.py`; read at `1add8a0b`).
    ///
    /// - **Backoff**: `ExponentialBackoff(base=1)`: each `delay()` raises
    ///   the exponent (1..10) and returns `uniform(0, 2^exp)` s, capped at
    ///   1024 s; the exponent starts again when more than 2048 s passed
    ///   since the previous call (ref §0, §B4). It is used only for network
    ///   errors: a failed or timed-out dial (ref §B4).
    /// - **After a network error the shard re-identifies** (*code*,
    ///   `shard.py`: `Shard._handle_disconnect` sleeps the backoff and
    ///   queues `EventType.reconnect`, and `Shard.reconnect()` builds a new
    ///   socket without the session). Ref §B4 describes the single-shard
    ///   `Client.connect`, which always resumes after the sleep.
    /// - **op 7, op 9, resumable closes, receive timeouts**
    ///   (`ReconnectWebSocket`) reconnect with no backoff (ref §B4).
    /// - **Close codes** (`_can_handle_close`, ref §B4): 4004, 4010–4014
    ///   stop; everything else resumes, including a server's 1000 and
    ///   4007/4009 (the Resume then fails and op 9 follows *(inferred,
    ///   ref §B4)*).
    /// - **op 7** → close 4000 → resume; **op 9** `d = true` → close 4000 →
    ///   resume; `d = false` → clear the session and the URL, close 1000,
    ///   identify (ref §0, §B4). The close waits for the server's answer,
    ///   which aiohttp bounds at 10 s *(inferred)*.
    /// - **Zombie**: no message of any kind for `heartbeat_timeout` = 60 s
    ///   (ref §0, §B4); `poll_event`'s receive timeout raises
    ///   `ReconnectWebSocket` without closing the socket (*code*), so the
    ///   socket is abandoned and the shard resumes.
    /// - **Heartbeats**: the first immediately on Hello, no jitter (ref §0,
    ///   §B4).
    /// - **Identify pacing**: `before_identify_hook` sleeps 5 s before every
    ///   identify except the first shard's first (ref §0, §B4: "5 s sleep
    ///   before each non-initial identify"); `max_concurrency` is ignored.
    /// - **One connection at a time, bot-wide** ([`Pacing::Worker`]):
    ///   `launch_shards` launches shards one by one (ref §B4), retrying a
    ///   failed launch every 5 s forever (ref §B4); after that, every
    ///   reconnect is an item on the client's `PriorityQueue`, handled one
    ///   at a time by `AutoShardedClient.connect` (close < reconnect <
    ///   resume < identify), and a backoff sleep happens inside that
    ///   handling, holding up every other shard (*code*, `shard.py`).
    /// - **Timeouts**: `asyncio.wait_for` of 60 s around each reconnect's
    ///   dial, Hello and identify (180 s for a launch) (*code*,
    ///   `shard.py`). Resumes dial the stored resume URL (ref §B4).
    pub const DISCORD_PY: Self = Self {
        delay: Delay::FullJitter {
            base_ms: 1_000,
            max_exp: 10,
        },
        reset: Reset::AfterIdle(2_048_000),
        guard_ms: 0,
        give_up_after: None,
        codes: CloseCodes {
            fatal: DOCS_FATAL,
            reidentify: &[],
            zero_seq: &[],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Drop, Close::Leave, Wait::Backoff),
            resume_dial_failed: Reaction::new(Fate::Drop, Close::Leave, Wait::Backoff),
            closed: Reaction::new(Fate::Keep, Close::Leave, Wait::None),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::None),
            resumable: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::None),
            invalid: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::None),
            zombie: Reaction::new(Fate::Keep, Close::Drop, Wait::None),
            timeout: Reaction::new(Fate::Drop, Close::Drop, Wait::Backoff),
        },
        resume_dial_retries: None,
        drops_resume_url_on_dial_failure: false,
        close_wait_ms: 10_000,
        resume_on_same_socket: false,
        first_heartbeat: FirstHeartbeat::Immediate,
        heartbeat_jitter_ms: 0,
        zombie: Zombie::Silence { ms: 60_000 },
        pacing: Pacing::Worker,
        identify_sleep_ms: 5_000,
        on_open: OnOpen::Nothing,
        connect_timeout_ms: 60_000,
        hello_timeout_ms: Some(60_000),
        hello_timeout_when_resuming: true,
        ready_timeout_ms: None,
        start_failed: Some(Reaction::new(Fate::Keep, Close::Leave, Wait::Fixed(5_000))),
        start_timeout_ms: Some(180_000),
        uses_resume_url: true,
        bugs: Bugs {
            reconnect_twice: false,
            leaves_old_socket_open: false,
            resume_seq_from_new_socket: false,
        },
    };

    /// serenity 0.12 (`current`, `f1253f95`; ref §B2: `src/gateway/shard.rs`,
    /// `src/gateway/bridge/{shard_runner,shard_queuer,shard_manager}.rs`).
    ///
    /// - **Backoff**: none (ref §0, §B2). Starts (connections that
    ///   identify) go through the `ShardQueuer`, which waits
    ///   `WAIT_BETWEEN_BOOTS_IN_SECONDS` = 5 s between any two starts,
    ///   bot-wide, ignoring `max_concurrency`, and pushes a failed start
    ///   back onto the queue, retried forever (ref §0, §B2) — at startup
    ///   too.
    /// - **Resume**: on a new connection to the shared gateway URL (never
    ///   the resume URL, ref §B2), without going through the queue; Resume
    ///   is sent as soon as the socket opens and Hello is ignored while
    ///   resuming (*code*, `Shard::resume`, `handle_event`). A failed
    ///   resume dial sleeps 1 s (ref §B2, after #1433) and tries once more,
    ///   then escalates to a re-identify (ref §B2: #1255) *(inferred: the
    ///   two rules combined)*.
    /// - **Re-identify** = `request_restart`: the shard closes with 4000
    ///   and starts again through the queue with no session (ref §B2).
    /// - **Close codes** (`handle_gateway_closed`, ref §B2): 4004, 4013,
    ///   4014 stop; 4006 and 4009 clear the session (re-identify); 4007
    ///   sets the sequence to 0 but keeps the session, so the next action
    ///   is a Resume with seq 0 *(inferred, ref §B2)*; everything else
    ///   (including 4003, 4010, 4011, unknown codes, no frame) resumes if
    ///   a session exists, else re-identifies (ref §B2; the restart loop
    ///   for 4010/4011 is *inferred*).
    /// - **op 7** → resume on a new connection; **op 9** `d = true` →
    ///   resume, `d = false` → re-identify; no 1–5 s wait (ref §0, §B2).
    ///   The replaced socket is dropped without a close frame (*code*: the
    ///   `WsClient` is replaced).
    /// - **Zombie**: the last heartbeat not ACKed when the interval elapses
    ///   → restart, a full re-identify (ref §0, §B2).
    /// - **Heartbeats**: not jittered; the first one interval after Identify
    ///   (ref §0, §B2), and after RESUMED (*code*).
    /// - **Timeouts**: no Hello within 15 s of a start → restart (ref §B2);
    ///   the dial itself has no timeout but the operating system's, about
    ///   127 s *(inferred)*.
    pub const SERENITY: Self = Self {
        delay: Delay::Immediate,
        reset: Reset::Never,
        guard_ms: 0,
        give_up_after: None,
        codes: CloseCodes {
            fatal: &[4004, 4013, 4014],
            reidentify: &[4006, 4009],
            zero_seq: &[4007],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::None),
            resume_dial_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::Fixed(1_000)),
            closed: Reaction::new(Fate::Keep, Close::Leave, Wait::None),
            reconnect: Reaction::new(Fate::Keep, Close::Drop, Wait::None),
            resumable: Reaction::new(Fate::Keep, Close::Drop, Wait::None),
            invalid: Reaction::new(Fate::Drop, Close::Frame(4000), Wait::None),
            zombie: Reaction::new(Fate::Drop, Close::Frame(4000), Wait::None),
            timeout: Reaction::new(Fate::Drop, Close::Frame(4000), Wait::None),
        },
        resume_dial_retries: Some(1),
        drops_resume_url_on_dial_failure: false,
        close_wait_ms: 0,
        resume_on_same_socket: false,
        first_heartbeat: FirstHeartbeat::AfterIdentify,
        heartbeat_jitter_ms: 0,
        zombie: Zombie::AckMissed { misses: 1 },
        pacing: Pacing::StartQueue {
            window_ms: 5_000,
            per_bucket: false,
            until_ready: false,
        },
        identify_sleep_ms: 0,
        on_open: OnOpen::Resume,
        connect_timeout_ms: 127_000,
        hello_timeout_ms: Some(15_000),
        hello_timeout_when_resuming: false,
        ready_timeout_ms: None,
        start_failed: None,
        start_timeout_ms: None,
        uses_resume_url: false,
        bugs: Bugs {
            reconnect_twice: false,
            leaves_old_socket_open: false,
            resume_seq_from_new_socket: false,
        },
    };

    /// twilight-gateway 0.17 (`913310ee`; ref §B1:
    /// `twilight-gateway/src/shard.rs`, `twilight-gateway-queue/src/
    /// in_memory.rs`, `twilight-model/src/gateway/close_code.rs`).
    ///
    /// - **Backoff**: attempt `n ≥ 1` sleeps `2u8.saturating_pow(n-1)` s:
    ///   1, 2, 4 … 128, then 255 s; no jitter (ref §0, §B1, `poll_connect`;
    ///   PR #512 for #446).
    /// - **What it counts**: only consecutive failed dials (a failed or
    ///   timed-out dial adds one and drops the resume URL); any disconnect
    ///   after a successful dial starts again from 0, so the next dial is
    ///   immediate (ref §0, §B1; "not tied to READY"). Connect timeout 10 s
    ///   (`CONNECT_TIMEOUT`). No give-up.
    /// - **Close codes**: 4004, 4010–4014 are fatal (`can_reconnect`);
    ///   every other code, unknown codes and no code resume; the session is
    ///   kept even after 4007/4009, so the Resume fails and op 9 `d =
    ///   false` forces the identify *(inferred, ref §B1)*.
    /// - **op 7** → close 4000, reconnect at once to the resume URL,
    ///   Resume; **op 9** `d = true` → close 4000, resume; `d = false` →
    ///   close 1000, which clears the session and the resume URL, identify
    ///   through the queue (ref §0, §B1). After its close frame the shard
    ///   reads on until the connection ends (*code*, `poll_next`); with no
    ///   timeout in `shard.rs`, we give up on the answer after 60 s so a
    ///   lost one cannot wedge the model *(our assumption)*.
    /// - **Zombie**: at a heartbeat tick, if a heartbeat was sent and no
    ///   message of any kind arrived since, an IO `TimedOut` error: the
    ///   connection is dropped and the shard resumes (ref §0, §B1; #2435).
    /// - **First heartbeat**: `interval × fastrand::f64()` (ref §B1).
    /// - **Identify pacing**: `InMemoryQueue`, one queue per `shard %
    ///   max_concurrency`, one bot-wide 5 s tick releasing one shard per
    ///   bucket, and a wait for the daily reset when `remaining` hits 0;
    ///   re-identifies go through it, resumes bypass it (ref §0, §B1).
    pub const TWILIGHT: Self = Self {
        delay: Delay::Doubling {
            first_ms: 1_000,
            cap_ms: 255_000,
        },
        reset: Reset::OnOpen,
        guard_ms: 0,
        give_up_after: None,
        codes: CloseCodes {
            fatal: DOCS_FATAL,
            reidentify: &[],
            zero_seq: &[],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            resume_dial_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            closed: Reaction::new(Fate::Keep, Close::Leave, Wait::None),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::None),
            resumable: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::None),
            invalid: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::None),
            zombie: Reaction::new(Fate::Keep, Close::Drop, Wait::None),
            timeout: Reaction::new(Fate::Keep, Close::Drop, Wait::Backoff),
        },
        resume_dial_retries: None,
        drops_resume_url_on_dial_failure: true,
        close_wait_ms: 60_000,
        resume_on_same_socket: false,
        first_heartbeat: FirstHeartbeat::Jittered,
        heartbeat_jitter_ms: 0,
        zombie: Zombie::NoMessageSinceHeartbeat,
        pacing: Pacing::Ticked { window_ms: 5_000 },
        identify_sleep_ms: 0,
        on_open: OnOpen::Nothing,
        connect_timeout_ms: 10_000,
        hello_timeout_ms: None,
        hello_timeout_when_resuming: false,
        ready_timeout_ms: None,
        start_failed: None,
        start_timeout_ms: None,
        uses_resume_url: true,
        bugs: Bugs {
            reconnect_twice: false,
            leaves_old_socket_open: false,
            resume_seq_from_new_socket: false,
        },
    };
}

impl PeerRules {
    /// JDA (ref §B5: `src/main/java/net/dv8tion/jda/internal/requests/
    /// WebSocketClient.java`, `api/requests/CloseCode.java`,
    /// `api/utils/ConcurrentSessionController.java`; read at `5410b270`).
    ///
    /// - **Backoff** (`reconnect`): `reconnectTimeoutS` starts at 2, is set
    ///   to 0 when a reconnect starts with a session, and after each wait
    ///   becomes 2 if it was 0, else doubles, up to `maxReconnectDelay` =
    ///   900 s; no jitter; back to 2 on READY and RESUMED (ref §0, §B5;
    ///   #117). So a resume is tried at once, then 2, 4, 8 … s after failed
    ///   dials, which are the only thing that grows it (ref §0). A failed
    ///   dial also forgets the resume URL (*code*, `connect`). No give-up.
    /// - **Close codes** (`CloseCode.isReconnect`): 4004, 4010, 4011, 4013,
    ///   4014 stop; 4012 is missing from the enum and reconnects; everything
    ///   else, 1000, 1001 and 1006 included, resumes when a session exists,
    ///   even after 4007/4009 (the Resume then fails: *inferred*, ref §B5).
    /// - **Own close codes**: 4900 for op 7, op 9 `d = true` and zombies;
    ///   1000 (`INVALIDATE_SESSION`) for op 9 `d = false`, after which the
    ///   session is invalidated and the shard queued (ref §0, §B5). A close
    ///   waits up to 10 s for the answer (*code*, `prepareClose`).
    /// - **Identify pacing**: without a session the shard is queued in the
    ///   `ConcurrentSessionController`: one worker per `shard %
    ///   concurrency` runs a node (dial, then wait for READY or for the
    ///   node to be queued again) and then always sleeps 5 s (ref §0, §B5)
    ///   — at startup too. The reconnect wait of a queued node is slept
    ///   before it joins the queue here, inside it in JDA *(our
    ///   simplification)*; the identify rate-limit sleep of
    ///   `handleReconnect`, whose sign looks inverted, is left out (ref §B5,
    ///   *inferred*: "already sub-0" most of the time).
    /// - **Identify and Resume are sent as soon as the socket connects**,
    ///   before Hello (*code*, `onConnected`); Hello starts the heartbeats,
    ///   the first at once (`scheduleAtFixedRate(..., 0, ...)`, ref §B5).
    /// - **Zombie**: ref §B5 gives two rules, 2 missed ACKs → close 4900
    ///   "ZOMBIE CONNECTION", and a socket `SO_TIMEOUT` of interval + 10 s.
    ///   On a silent socket the read timeout fires first (51 s against the
    ///   third tick's 82 s with a 41.25 s interval), so that is the rule
    ///   modelled: the transport fails and the shard resumes *(inferred)*.
    /// - **Timeouts**: dial 10 s (`setSocketTimeout(10000)`); a 10 s read
    ///   timeout until Hello (*code*, `prepareClose` in `onConnected`).
    pub const JDA: Self = Self {
        delay: Delay::Doubling {
            first_ms: 2_000,
            cap_ms: 900_000,
        },
        reset: Reset::OnSessionEstablished,
        guard_ms: 0,
        give_up_after: None,
        codes: CloseCodes {
            fatal: &[4004, 4010, 4011, 4013, 4014],
            reidentify: &[],
            zero_seq: &[],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            resume_dial_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            closed: Reaction::new(Fate::Keep, Close::Leave, Wait::None),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(4900), Wait::None),
            resumable: Reaction::new(Fate::Keep, Close::Frame(4900), Wait::None),
            invalid: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::Backoff),
            zombie: Reaction::new(Fate::Keep, Close::Drop, Wait::None),
            timeout: Reaction::new(Fate::Keep, Close::Drop, Wait::None),
        },
        resume_dial_retries: None,
        drops_resume_url_on_dial_failure: true,
        close_wait_ms: 10_000,
        resume_on_same_socket: false,
        first_heartbeat: FirstHeartbeat::Immediate,
        heartbeat_jitter_ms: 0,
        zombie: Zombie::ReadTimeout { extra_ms: 10_000 },
        pacing: Pacing::StartQueue {
            window_ms: 5_000,
            per_bucket: true,
            until_ready: true,
        },
        identify_sleep_ms: 0,
        on_open: OnOpen::Answer,
        connect_timeout_ms: 10_000,
        hello_timeout_ms: Some(10_000),
        hello_timeout_when_resuming: true,
        ready_timeout_ms: None,
        start_failed: None,
        start_timeout_ms: None,
        uses_resume_url: true,
        bugs: Bugs {
            reconnect_twice: false,
            leaves_old_socket_open: false,
            resume_seq_from_new_socket: false,
        },
    };
}

// ----- state shared by every shard of the bot ---------------------------

/// A place in one of a bot's shared queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Waiter {
    ticket: Ticket,
    shard: u32,
    /// Priority class, then order within it.
    key: (u32, u64),
    arrived: u64,
    /// The extra wait it drew for itself ([`Pacing::Throttle`]).
    jitter_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Lane {
    /// Waiting, in order.
    waiting: Vec<Waiter>,
    /// [`Pacing::Throttle`]: the head, sleeping until its grant time.
    head: Option<(Waiter, u64)>,
    /// [`Pacing::StartQueue`], [`Pacing::Worker`]: who holds the lane.
    holder: Option<Ticket>,
    /// When the lane may next grant (throttle: `resetsAt`; serial: the
    /// cool-down after the last release).
    free_at: u64,
    /// When the last grant was released.
    last_release: u64,
    /// Grants not yet taken by their shard.
    granted: Vec<Ticket>,
}

/// Pacing state shared by every shard of one bot: the queues of
/// [`Pacing`], and the wake-ups they owe to shards other than the caller.
///
/// The engine owns it, hands it to each call through [`Cx`], and after each
/// call schedules the wake-ups [`PeerShared::take_wakes`] returns. Every
/// container is a `Vec`, processed in order, so runs stay deterministic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerShared {
    max_concurrency: u16,
    /// When the bot's process has started every shard.
    started_ms: u64,
    starts_total: u32,
    starts_remaining: u32,
    starts_reset_at: u64,
    /// One per bucket ([`Pacing::Throttle`], [`Pacing::Ticked`]) or one
    /// for the bot (the serial pacings).
    lanes: Vec<Lane>,
    /// [`Pacing::Ticked`]: the next tick.
    next_tick: u64,
    next_ticket: u64,
    next_order: u64,
    wakes: Vec<(u32, u64)>,
}

impl PeerShared {
    /// The shared state of a bot whose `GET /gateway/bot` reported this
    /// session start limit.
    #[must_use]
    pub const fn new(
        max_concurrency: u16,
        starts_total: u32,
        starts_remaining: u32,
        reset_after_ms: u64,
    ) -> Self {
        Self {
            max_concurrency,
            started_ms: 0,
            starts_total,
            starts_remaining,
            starts_reset_at: reset_after_ms,
            lanes: Vec::new(),
            next_tick: 0,
            next_ticket: 0,
            next_order: 0,
            wakes: Vec::new(),
        }
    }

    /// The same state for a bot whose shards all start within `ms` of the
    /// beginning of the run: a library that spawns the shards itself
    /// ([`Pacing::StartupBatches`]) begins once the process is up, not at
    /// each shard's own start time.
    #[must_use]
    pub const fn with_start_spread(mut self, ms: u64) -> Self {
        self.started_ms = ms;
        self
    }

    /// `max_concurrency` (at least 1).
    #[must_use]
    pub fn max_concurrency(&self) -> u16 {
        self.max_concurrency.max(1)
    }

    /// The wake-ups owed since the last call: `(shard, at)`.
    pub fn take_wakes(&mut self) -> Vec<(u32, u64)> {
        std::mem::take(&mut self.wakes)
    }

    fn lane_of(&mut self, pacing: Pacing, shard: u32) -> usize {
        let buckets = match pacing {
            Pacing::Throttle { .. }
            | Pacing::Ticked { .. }
            | Pacing::StartQueue {
                per_bucket: true, ..
            } => usize::from(self.max_concurrency()),
            _ => 1,
        };
        if self.lanes.len() < buckets {
            self.lanes.resize_with(buckets, Lane::default);
        }
        shard as usize % buckets
    }

    /// Joins the queue of `pacing` for `shard`. `class` orders waiters of
    /// the serial pacings (lower first); `by_shard` orders a class by shard
    /// number instead of arrival.
    fn request(
        &mut self,
        pacing: Pacing,
        shard: u32,
        class: u32,
        by_shard: bool,
        jitter_ms: u64,
        now: u64,
    ) -> Ticket {
        let lane = self.lane_of(pacing, shard);
        self.next_ticket = self.next_ticket.saturating_add(1);
        self.next_order = self.next_order.saturating_add(1);
        let ticket = Ticket(self.next_ticket);
        let order = if by_shard {
            u64::from(shard)
        } else {
            self.next_order
        };
        if let Pacing::Ticked { .. } = pacing
            && self.lanes.iter().all(|l| l.waiting.is_empty())
        {
            self.next_tick = self.next_tick.max(now);
        }
        let waiter = Waiter {
            ticket,
            shard,
            key: (class, order),
            arrived: now,
            jitter_ms,
        };
        let waiting = &mut self.lanes[lane].waiting;
        let at = waiting.partition_point(|w| w.key <= waiter.key);
        waiting.insert(at, waiter);
        ticket
    }

    /// Grants whatever is due at `now`, and notes the wake-ups owed.
    fn advance(&mut self, pacing: Pacing, now: u64) {
        match pacing {
            Pacing::None | Pacing::StartupBatches { .. } => {}
            Pacing::Throttle { window_ms, .. } => {
                for lane in &mut self.lanes {
                    loop {
                        if lane.head.is_none() {
                            if lane.waiting.is_empty() {
                                break;
                            }
                            let w = lane.waiting.remove(0);
                            let h = w.arrived.max(lane.last_release);
                            let grant = if lane.free_at > h {
                                lane.free_at.saturating_add(w.jitter_ms)
                            } else {
                                h
                            };
                            self.wakes.push((w.shard, grant));
                            lane.head = Some((w, grant));
                        }
                        let Some((w, grant)) = lane.head else { break };
                        if grant > now {
                            break;
                        }
                        lane.free_at = grant.saturating_add(window_ms);
                        lane.last_release = grant;
                        lane.granted.push(w.ticket);
                        lane.head = None;
                    }
                }
            }
            Pacing::Ticked { window_ms } => {
                while self.next_tick <= now && self.lanes.iter().any(|l| !l.waiting.is_empty()) {
                    let tick = self.next_tick;
                    self.next_tick = tick.saturating_add(window_ms);
                    if tick >= self.starts_reset_at && self.starts_remaining != self.starts_total {
                        self.starts_remaining = self.starts_total;
                    }
                    if self.starts_remaining == self.starts_total {
                        self.starts_reset_at = tick.saturating_add(DAY_MS);
                    }
                    for lane in &mut self.lanes {
                        if self.starts_remaining == 0 {
                            // Waits for the daily reset, then ticks again.
                            self.next_tick = self.next_tick.max(self.starts_reset_at);
                            self.starts_remaining = self.starts_total;
                            break;
                        }
                        if lane.waiting.is_empty() {
                            continue;
                        }
                        let w = lane.waiting.remove(0);
                        lane.granted.push(w.ticket);
                        self.wakes.push((w.shard, tick));
                        self.starts_remaining = self.starts_remaining.saturating_sub(1);
                    }
                }
            }
            Pacing::StartQueue { .. } | Pacing::Worker => {
                for lane in &mut self.lanes {
                    if lane.holder.is_some() || lane.waiting.is_empty() {
                        continue;
                    }
                    let w = lane.waiting[0];
                    let grant = lane.free_at.max(w.arrived);
                    if grant <= now {
                        lane.waiting.remove(0);
                        lane.holder = Some(w.ticket);
                        lane.granted.push(w.ticket);
                        self.wakes.push((w.shard, now));
                    } else {
                        self.wakes.push((w.shard, grant));
                    }
                }
            }
        }
    }

    /// Takes the grant of `ticket`, if it has one.
    fn take_grant(&mut self, pacing: Pacing, shard: u32, ticket: Ticket) -> bool {
        let lane = self.lane_of(pacing, shard);
        let granted = &mut self.lanes[lane].granted;
        if let Some(i) = granted.iter().position(|t| *t == ticket) {
            granted.remove(i);
            true
        } else {
            false
        }
    }

    /// When a waiting `ticket` should look again (`None`: someone will wake
    /// it).
    fn expected(&mut self, pacing: Pacing, shard: u32, ticket: Ticket, now: u64) -> Option<u64> {
        let lane_index = self.lane_of(pacing, shard);
        let lane = &self.lanes[lane_index];
        if lane.granted.contains(&ticket) {
            return Some(now);
        }
        match pacing {
            Pacing::Throttle { .. } => lane
                .head
                .filter(|(w, _)| w.ticket == ticket)
                .map(|(_, g)| g),
            Pacing::Ticked { .. } => lane
                .waiting
                .iter()
                .any(|w| w.ticket == ticket)
                .then_some(self.next_tick.max(now)),
            Pacing::StartQueue { .. } | Pacing::Worker => {
                let w = lane.waiting.first().filter(|w| w.ticket == ticket)?;
                lane.holder
                    .is_none()
                    .then(|| lane.free_at.max(w.arrived).max(now))
            }
            Pacing::None | Pacing::StartupBatches { .. } => None,
        }
    }

    /// Leaves the queue (a grant not yet taken is given up; a throttle
    /// head's sleep cannot be cut short, so its window is still used).
    fn cancel(&mut self, pacing: Pacing, shard: u32, ticket: Ticket, now: u64) {
        let lane_index = self.lane_of(pacing, shard);
        let lane = &mut self.lanes[lane_index];
        lane.waiting.retain(|w| w.ticket != ticket);
        lane.granted.retain(|t| *t != ticket);
        if let Pacing::Throttle { window_ms, .. } = pacing
            && let Some((w, grant)) = lane.head
            && w.ticket == ticket
        {
            lane.free_at = grant.saturating_add(window_ms);
            lane.last_release = grant;
            lane.head = None;
        }
        if lane.holder == Some(ticket) {
            self.release(pacing, ticket, now);
        }
        self.advance(pacing, now);
    }

    /// The holder of a serial lane lets go of it at `now`.
    fn release(&mut self, pacing: Pacing, ticket: Ticket, now: u64) {
        let cooldown = match pacing {
            Pacing::StartQueue { window_ms, .. } => window_ms,
            _ => 0,
        };
        let Some(lane) = self.lanes.iter_mut().find(|l| l.holder == Some(ticket)) else {
            return;
        };
        lane.holder = None;
        lane.granted.retain(|t| *t != ticket);
        lane.free_at = now.saturating_add(cooldown);
        lane.last_release = now;
        self.advance(pacing, now);
    }
}

// ----- the state machine --------------------------------------------------

/// Where the current connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Dialled, or open and waiting for Hello.
    AwaitHello,
    /// Hello seen; waiting to send Identify (a sleep or a queue).
    IdentifyWait,
    /// Identify sent.
    Identifying,
    /// Resume sent.
    Resuming,
    /// READY or RESUMED seen.
    Ready,
}

/// A deadline on the current connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    /// The dial must finish.
    Connect,
    /// Hello must arrive.
    Hello,
    /// READY must arrive.
    Ready,
}

/// The current connection (Carbon's `this.ws`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Conn {
    sock: SockId,
    dialled_at: u64,
    opened: bool,
    stage: Stage,
    deadline: Option<(u64, Deadline)>,
    /// The highest sequence seen on this socket.
    seq_here: u64,
    /// The last message on it.
    last_heard: u64,
}

/// A socket the client no longer uses but still hears: Carbon's leftover
/// sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OldSock {
    sock: SockId,
    opened: bool,
    /// The client sent a close frame: the transport gives up on the answer
    /// at this time and reports the socket closed.
    close_by: Option<u64>,
}

/// A close frame sent, its answer awaited before the next connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Closing {
    sock: SockId,
    until: u64,
    /// The wait after the close handshake.
    then_ms: u64,
}

/// The heartbeat loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Heartbeat {
    period: u64,
    next_at: u64,
    /// Heartbeats sent and not ACKed.
    unacked: u32,
    /// Any heartbeat sent on this loop.
    sent: bool,
    /// Any message since the last heartbeat.
    heard: bool,
}

/// What a shared ticket is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Dial,
    Identify,
}

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    ConnectFailed,
    Closed(Option<u16>),
    Reconnect,
    InvalidSession(bool),
    Zombie,
    Timeout,
}

/// A model of another library's gateway client.
#[derive(Debug)]
pub struct PeerClient {
    kind: PeerKind,
    rules: PeerRules,
    shard: u32,
    rng: ChaCha8Rng,
    session: Option<SessionId>,
    seq: u64,
    resume_url: bool,
    conn: Option<Conn>,
    old: Vec<OldSock>,
    closing: Option<Closing>,
    /// Pending dials (more than one only with [`Bugs::reconnect_twice`]).
    connects: Vec<u64>,
    /// Hold the serial lane until the next dial (a backoff slept inside
    /// discord.py's worker).
    release_at_dial: bool,
    /// The next dial follows a counted backoff.
    after_backoff: bool,
    identify_at: Option<u64>,
    heartbeat: Option<Heartbeat>,
    /// The heartbeat period of the last Hello, for loops started later.
    pending_period: u64,
    attempt: u32,
    last_backoff_at: Option<u64>,
    last_attempt_at: Option<u64>,
    resume_dial_failures: u32,
    ticket: Option<(Ticket, Purpose)>,
    ticket_wake: Option<u64>,
    holding: Option<Ticket>,
    /// The first Identify (or Resume) has been sent.
    launched: bool,
    gave_up: bool,
    stopped: bool,
}

impl PeerClient {
    /// Shard `shard`'s peer of this kind, with its own random stream.
    #[must_use]
    pub fn new(kind: PeerKind, shard: u32, rng: ChaCha8Rng) -> Self {
        Self {
            kind,
            rules: kind.rules(),
            shard,
            rng,
            session: None,
            seq: 0,
            resume_url: false,
            conn: None,
            old: Vec::new(),
            closing: None,
            connects: Vec::new(),
            release_at_dial: false,
            after_backoff: false,
            identify_at: None,
            heartbeat: None,
            pending_period: 41_250,
            attempt: 0,
            last_backoff_at: None,
            last_attempt_at: None,
            resume_dial_failures: 0,
            ticket: None,
            ticket_wake: None,
            holding: None,
            launched: false,
            gave_up: false,
            stopped: false,
        }
    }

    /// The model.
    #[must_use]
    pub const fn kind(&self) -> PeerKind {
        self.kind
    }

    pub(super) fn start(&mut self, now: u64, cx: &mut Cx<'_>) {
        let at = match self.rules.pacing {
            Pacing::StartupBatches { window_ms } => {
                let batch = u64::from(self.shard / u32::from(cx.peers.max_concurrency()));
                batch
                    .saturating_mul(window_ms)
                    .saturating_add(cx.peers.started_ms)
                    .max(now)
            }
            _ => now,
        };
        self.connects.push(at);
        self.wake(now, cx);
    }

    pub(super) fn next_wake(&self) -> Option<u64> {
        if self.stopped {
            return None;
        }
        let conn = self.conn.as_ref();
        let silence = match (conn, self.silence_ms()) {
            (Some(c), Some(ms)) => Some(c.last_heard.saturating_add(ms)),
            _ => None,
        };
        [
            self.connects.iter().copied().min(),
            self.old.iter().filter_map(|o| o.close_by).min(),
            self.closing.map(|c| c.until),
            conn.and_then(|c| c.deadline).map(|(at, _)| at),
            self.identify_at,
            self.heartbeat.map(|h| h.next_at),
            silence,
            self.ticket_wake,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn gave_up(&self) -> bool {
        self.stopped
            || (self.gave_up
                && self.connects.is_empty()
                && self.conn.is_none()
                && self.closing.is_none())
    }

    pub(super) fn wake(&mut self, now: u64, cx: &mut Cx<'_>) {
        self.wake_inner(now, cx);
        self.refresh_ticket(now, cx);
    }

    pub(super) fn on_message(&mut self, now: u64, sock: SockId, msg: ToClient, cx: &mut Cx<'_>) {
        self.message(now, sock, msg, cx);
        self.refresh_ticket(now, cx);
    }

    fn refresh_ticket(&mut self, now: u64, cx: &mut Cx<'_>) {
        self.ticket_wake = self
            .ticket
            .and_then(|(t, _)| cx.peers.expected(self.rules.pacing, self.shard, t, now));
    }

    fn wake_inner(&mut self, now: u64, cx: &mut Cx<'_>) {
        if self.stopped {
            return;
        }
        let pacing = self.rules.pacing;
        if let Some((ticket, purpose)) = self.ticket {
            cx.peers.advance(pacing, now);
            if cx.peers.take_grant(pacing, self.shard, ticket) {
                self.ticket = None;
                match purpose {
                    Purpose::Dial => {
                        if matches!(pacing, Pacing::StartQueue { .. } | Pacing::Worker) {
                            self.holding = Some(ticket);
                        }
                        self.open_socket(now, cx);
                    }
                    Purpose::Identify => {
                        if self.conn.is_some_and(|c| c.stage == Stage::IdentifyWait) {
                            self.send_identify(now, cx);
                        }
                    }
                }
            }
        }
        if let Some(c) = self.closing
            && c.until <= now
        {
            cx.send(c.sock, ToServer::Drop);
            self.close_done(now);
        }
        if let Some(i) = self
            .old
            .iter()
            .position(|o| o.close_by.is_some_and(|t| t <= now))
        {
            // The close handshake timed out: the transport drops the
            // socket and reports an abnormal close, which the old
            // socket's listener handles.
            let old = self.old.remove(i);
            if old.opened {
                cx.send(old.sock, ToServer::Drop);
            }
            self.react(now, Trigger::Closed(Some(1006)), cx);
            return;
        }
        if let Some(i) = self.due_connect(now) {
            self.connects.remove(i);
            if self.release_at_dial {
                self.release_at_dial = false;
                self.release_lane(now, cx);
            }
            self.dial(now, cx);
        }
        if let Some(conn) = self.conn {
            if let Some((at, kind)) = conn.deadline
                && at <= now
            {
                if let Some(c) = &mut self.conn {
                    c.deadline = None;
                }
                if kind == Deadline::Connect {
                    cx.send(conn.sock, ToServer::Drop);
                    self.conn = None;
                    self.react(now, Trigger::ConnectFailed, cx);
                } else {
                    self.react(now, Trigger::Timeout, cx);
                }
                return;
            }
            if self.identify_at.is_some_and(|t| t <= now) {
                self.identify_at = None;
                if conn.stage == Stage::IdentifyWait {
                    self.send_identify(now, cx);
                }
            }
            if let Some(ms) = self.silence_ms()
                && conn.last_heard.saturating_add(ms) <= now
            {
                self.react(now, Trigger::Zombie, cx);
                return;
            }
        } else if self.identify_at.is_some_and(|t| t <= now) {
            self.identify_at = None;
        }
        if let Some(hb) = self.heartbeat
            && hb.next_at <= now
        {
            let zombie = match self.rules.zombie {
                Zombie::AckMissed { misses } => hb.unacked >= misses.max(1),
                Zombie::NoMessageSinceHeartbeat => hb.sent && !hb.heard,
                Zombie::Silence { .. } | Zombie::ReadTimeout { .. } => false,
            };
            if let Some(hb) = &mut self.heartbeat {
                // The interval keeps ticking whatever the tick decides.
                hb.next_at = now.saturating_add(hb.period);
            }
            if zombie {
                self.react(now, Trigger::Zombie, cx);
                return;
            }
            self.send_heartbeat(cx);
            if let Some(hb) = &mut self.heartbeat {
                hb.unacked = hb.unacked.saturating_add(1);
                hb.sent = true;
                hb.heard = false;
            }
        }
    }

    /// The silence that makes a zombie, once heartbeats run.
    fn silence_ms(&self) -> Option<u64> {
        let hb = self.heartbeat?;
        match self.rules.zombie {
            Zombie::Silence { ms } => Some(ms),
            Zombie::ReadTimeout { extra_ms } => Some(hb.period.saturating_add(extra_ms)),
            Zombie::AckMissed { .. } | Zombie::NoMessageSinceHeartbeat => None,
        }
    }

    fn due_connect(&self, now: u64) -> Option<usize> {
        let (i, at) = self
            .connects
            .iter()
            .enumerate()
            .min_by_key(|(_, at)| **at)?;
        (*at <= now).then_some(i)
    }

    fn message(&mut self, now: u64, sock: SockId, msg: ToClient, cx: &mut Cx<'_>) {
        if self.stopped {
            return;
        }
        if self.conn.is_some_and(|c| c.sock == sock) {
            self.current_message(now, msg, cx);
        } else if self.closing.is_some_and(|c| c.sock == sock) {
            if matches!(msg, ToClient::Closed { .. } | ToClient::ConnectFailed(_)) {
                self.close_done(now);
            }
        } else if let Some(i) = self.old.iter().position(|o| o.sock == sock) {
            self.old_message(now, i, msg, cx);
        } else if msg == ToClient::Opened {
            cx.send(sock, ToServer::Drop);
        }
    }

    fn heard(&mut self, now: u64) {
        if let Some(c) = &mut self.conn {
            c.last_heard = now;
        }
        if let Some(hb) = &mut self.heartbeat {
            hb.heard = true;
        }
    }

    fn current_message(&mut self, now: u64, msg: ToClient, cx: &mut Cx<'_>) {
        self.heard(now);
        match msg {
            ToClient::Opened => self.opened(now, cx),
            ToClient::ConnectFailed(_) => {
                self.conn = None;
                self.react(now, Trigger::ConnectFailed, cx);
            }
            ToClient::Hello { interval_ms } => self.hello(now, interval_ms, cx),
            ToClient::Dispatch { session, seq, kind } => {
                if let Some(c) = &mut self.conn {
                    c.seq_here = c.seq_here.max(seq);
                }
                self.dispatch(now, session, seq, kind, cx);
            }
            ToClient::HeartbeatAck => {
                if let Some(hb) = &mut self.heartbeat {
                    hb.unacked = 0;
                }
            }
            ToClient::HeartbeatRequest => self.send_heartbeat(cx),
            ToClient::Reconnect => self.react(now, Trigger::Reconnect, cx),
            ToClient::InvalidSession { resumable } => {
                if resumable && self.rules.resume_on_same_socket && self.session.is_some() {
                    self.send_resume(now, cx);
                } else {
                    self.react(now, Trigger::InvalidSession(resumable), cx);
                }
            }
            ToClient::Closed { code } => {
                self.conn = None;
                self.react(now, Trigger::Closed(code), cx);
            }
        }
    }

    /// A message on a socket the client replaced but still listens to
    /// ([`Bugs::leaves_old_socket_open`]): handled as if current, except
    /// that anything sent goes to the current socket.
    fn old_message(&mut self, now: u64, i: usize, msg: ToClient, cx: &mut Cx<'_>) {
        match msg {
            ToClient::Opened => {
                self.old[i].opened = true;
                self.counter_reset_on_open();
            }
            ToClient::ConnectFailed(_) => {
                self.old.remove(i);
                self.react(now, Trigger::ConnectFailed, cx);
            }
            ToClient::Closed { code } => {
                self.old.remove(i);
                self.react(now, Trigger::Closed(code), cx);
            }
            ToClient::Hello { interval_ms } => {
                self.start_heartbeat(now, interval_ms);
                if self.conn.is_some_and(|c| c.opened) {
                    self.answer_hello(now, cx);
                }
            }
            ToClient::Dispatch { session, seq, kind } => {
                self.dispatch(now, session, seq, kind, cx);
            }
            ToClient::HeartbeatAck => {
                if let Some(hb) = &mut self.heartbeat {
                    hb.unacked = 0;
                }
            }
            ToClient::HeartbeatRequest => self.send_heartbeat(cx),
            ToClient::Reconnect => self.react(now, Trigger::Reconnect, cx),
            ToClient::InvalidSession { resumable } => {
                self.react(now, Trigger::InvalidSession(resumable), cx);
            }
        }
    }

    fn counter_reset_on_open(&mut self) {
        if self.rules.reset == Reset::OnOpen {
            self.attempt = 0;
            self.gave_up = false;
        }
    }

    /// Opens the next connection, through the bot's queue if its pacing
    /// requires one.
    fn dial(&mut self, now: u64, cx: &mut Cx<'_>) {
        let pacing = self.rules.pacing;
        let queued = match pacing {
            Pacing::StartQueue { .. } => self.session.is_none(),
            Pacing::Worker => true,
            _ => false,
        };
        if queued && self.holding.is_none() {
            if self.ticket.is_none() {
                let class = match pacing {
                    Pacing::Worker if !self.launched => 0,
                    Pacing::Worker if self.after_backoff => 1,
                    Pacing::Worker if self.session.is_some() => 2,
                    Pacing::Worker => 3,
                    _ => u32::from(self.launched),
                };
                let t = cx
                    .peers
                    .request(pacing, self.shard, class, class == 0, 0, now);
                self.ticket = Some((t, Purpose::Dial));
            }
            self.after_backoff = false;
            let Some((ticket, _)) = self.ticket else {
                return;
            };
            cx.peers.advance(pacing, now);
            if !cx.peers.take_grant(pacing, self.shard, ticket) {
                return;
            }
            self.ticket = None;
            self.holding = Some(ticket);
        }
        self.open_socket(now, cx);
    }

    fn open_socket(&mut self, now: u64, cx: &mut Cx<'_>) {
        if let Some(conn) = self.conn.take() {
            if self.rules.bugs.leaves_old_socket_open {
                self.old.push(OldSock {
                    sock: conn.sock,
                    opened: conn.opened,
                    close_by: None,
                });
            } else {
                cx.send(conn.sock, ToServer::Drop);
            }
        }
        let sock = cx.connect(self.shard, self.session.is_some() && self.resume_url);
        let timeout = match self.rules.start_timeout_ms {
            Some(t) if !self.launched => t,
            _ => self.rules.connect_timeout_ms,
        };
        self.conn = Some(Conn {
            sock,
            dialled_at: now,
            opened: false,
            stage: Stage::AwaitHello,
            deadline: Some((now.saturating_add(timeout), Deadline::Connect)),
            seq_here: 0,
            last_heard: now,
        });
        self.last_attempt_at = Some(now);
    }

    fn opened(&mut self, now: u64, cx: &mut Cx<'_>) {
        self.counter_reset_on_open();
        self.resume_dial_failures = 0;
        if let Pacing::StartQueue {
            until_ready: false, ..
        } = self.rules.pacing
        {
            self.release_lane(now, cx);
        }
        let resuming = self.session.is_some();
        let hello = match self.rules.start_timeout_ms {
            Some(t) if !self.launched => Some(t),
            _ => self
                .rules
                .hello_timeout_ms
                .filter(|_| !resuming || self.rules.hello_timeout_when_resuming),
        };
        let Some(conn) = &mut self.conn else { return };
        conn.opened = true;
        conn.deadline = hello.map(|h| (conn.dialled_at.saturating_add(h), Deadline::Hello));
        match self.rules.on_open {
            OnOpen::Resume if resuming => self.send_resume(now, cx),
            OnOpen::Answer => self.answer_hello(now, cx),
            _ => {}
        }
    }

    fn start_heartbeat(&mut self, now: u64, interval_ms: u64) {
        let interval = interval_ms.max(1_000);
        let period = interval.saturating_add(if self.rules.heartbeat_jitter_ms > 0 {
            self.rng.random_range(0..=self.rules.heartbeat_jitter_ms)
        } else {
            0
        });
        let first = match self.rules.first_heartbeat {
            FirstHeartbeat::Immediate => Some(now),
            FirstHeartbeat::Jittered => {
                Some(now.saturating_add(self.rng.random_range(0..interval)))
            }
            FirstHeartbeat::AfterIdentify => None,
        };
        self.heartbeat = first.map(|next_at| Heartbeat {
            period,
            next_at,
            unacked: 0,
            sent: false,
            heard: false,
        });
        if self.heartbeat.is_none() {
            // Started by Identify or RESUMED, with this period.
            self.pending_period = period;
        }
    }

    fn hello(&mut self, now: u64, interval_ms: u64, cx: &mut Cx<'_>) {
        if self.rules.on_open == OnOpen::Resume
            && self.conn.is_some_and(|c| c.stage == Stage::Resuming)
        {
            return;
        }
        if let Some(c) = &mut self.conn
            && c.deadline.is_some_and(|(_, kind)| kind == Deadline::Hello)
        {
            c.deadline = None;
        }
        self.start_heartbeat(now, interval_ms);
        if self.rules.on_open != OnOpen::Answer {
            self.answer_hello(now, cx);
        }
    }

    /// Resume or Identify after Hello, on the current socket.
    fn answer_hello(&mut self, now: u64, cx: &mut Cx<'_>) {
        if self.session.is_some() {
            self.send_resume(now, cx);
            return;
        }
        if let Some(c) = &mut self.conn {
            c.stage = Stage::IdentifyWait;
        }
        let initial = self.shard == 0 && !self.launched;
        if self.rules.identify_sleep_ms > 0 && !initial {
            self.identify_at = Some(now.saturating_add(self.rules.identify_sleep_ms));
            return;
        }
        let pacing = self.rules.pacing;
        if let Pacing::Throttle { .. } | Pacing::Ticked { .. } = pacing {
            let jitter_ms = match pacing {
                Pacing::Throttle { jitter_ms, .. } if jitter_ms > 0 => {
                    self.rng.random_range(0..jitter_ms)
                }
                _ => 0,
            };
            if self.ticket.is_none() {
                let t = cx
                    .peers
                    .request(pacing, self.shard, 0, false, jitter_ms, now);
                self.ticket = Some((t, Purpose::Identify));
            }
            if let Pacing::Ticked { .. } = pacing {
                // The queue's runner takes every request already sent
                // before it ticks: the tick comes with the wake-up.
                return;
            }
            let Some((ticket, _)) = self.ticket else {
                return;
            };
            cx.peers.advance(pacing, now);
            if !cx.peers.take_grant(pacing, self.shard, ticket) {
                return;
            }
            self.ticket = None;
        }
        self.send_identify(now, cx);
    }

    fn send_identify(&mut self, now: u64, cx: &mut Cx<'_>) {
        let Some(conn) = &mut self.conn else { return };
        if !conn.opened {
            return;
        }
        cx.send(conn.sock, ToServer::Identify);
        conn.stage = Stage::Identifying;
        if let Some(r) = self.rules.ready_timeout_ms {
            conn.deadline = Some((now.saturating_add(r), Deadline::Ready));
        }
        if self.rules.first_heartbeat == FirstHeartbeat::AfterIdentify {
            self.heartbeat = Some(Heartbeat {
                period: self.pending_period,
                next_at: now.saturating_add(self.pending_period),
                unacked: 0,
                sent: false,
                heard: false,
            });
        }
        self.launched = true;
        if let Pacing::Worker = self.rules.pacing {
            self.release_lane(now, cx);
        }
    }

    fn send_resume(&mut self, now: u64, cx: &mut Cx<'_>) {
        let Some(conn) = &mut self.conn else { return };
        if !conn.opened {
            return;
        }
        let seq = if self.rules.bugs.resume_seq_from_new_socket {
            conn.seq_here
        } else {
            self.seq
        };
        cx.send(
            conn.sock,
            ToServer::Resume {
                session: self.session,
                seq,
            },
        );
        conn.stage = Stage::Resuming;
        self.launched = true;
        if let Pacing::Worker = self.rules.pacing {
            self.release_lane(now, cx);
        }
    }

    fn dispatch(
        &mut self,
        now: u64,
        session: SessionId,
        seq: u64,
        kind: DispatchKind,
        cx: &mut Cx<'_>,
    ) {
        cx.delivered(session, seq);
        self.seq = self.seq.max(seq);
        match kind {
            DispatchKind::Ready => {
                self.session = Some(session);
                self.seq = seq;
                self.resume_url = self.rules.uses_resume_url;
                self.established(now, cx);
            }
            DispatchKind::Resumed => self.established(now, cx),
            DispatchKind::Other => {}
        }
    }

    fn established(&mut self, now: u64, cx: &mut Cx<'_>) {
        if self.rules.reset == Reset::OnSessionEstablished {
            self.attempt = 0;
        }
        if let Pacing::StartQueue {
            until_ready: true, ..
        } = self.rules.pacing
        {
            self.release_lane(now, cx);
        }
        if let Some(c) = &mut self.conn
            && matches!(c.stage, Stage::Identifying | Stage::Resuming)
        {
            c.stage = Stage::Ready;
            c.deadline = None;
        }
        if self.rules.first_heartbeat == FirstHeartbeat::AfterIdentify {
            let period = self.heartbeat.map_or(self.pending_period, |h| h.period);
            self.heartbeat = Some(Heartbeat {
                period,
                next_at: now.saturating_add(period),
                unacked: 0,
                sent: false,
                heard: false,
            });
        }
    }

    fn send_heartbeat(&mut self, cx: &mut Cx<'_>) {
        if let Some(c) = self.conn
            && c.opened
        {
            cx.send(c.sock, ToServer::Heartbeat);
        }
    }

    fn release_lane(&mut self, now: u64, cx: &mut Cx<'_>) {
        if let Some(t) = self.holding.take() {
            cx.peers.release(self.rules.pacing, t, now);
        }
    }

    /// The reaction of the rules to `trigger`.
    fn react(&mut self, now: u64, trigger: Trigger, cx: &mut Cx<'_>) {
        let rules = self.rules;
        let on = rules.on;
        let mut reaction = match trigger {
            Trigger::ConnectFailed => {
                if rules.drops_resume_url_on_dial_failure {
                    self.resume_url = false;
                }
                if self.session.is_some() {
                    self.resume_dial_failures = self.resume_dial_failures.saturating_add(1);
                    if rules
                        .resume_dial_retries
                        .is_some_and(|n| self.resume_dial_failures > n)
                    {
                        self.resume_dial_failures = 0;
                        Reaction {
                            session: Fate::Drop,
                            ..on.connect_failed
                        }
                    } else {
                        on.resume_dial_failed
                    }
                } else {
                    on.connect_failed
                }
            }
            Trigger::Closed(code) => {
                let codes = rules.codes;
                if let Some(c) = code {
                    if codes.fatal.contains(&c) {
                        self.fatal(now, cx);
                        return;
                    }
                    if codes.zero_seq.contains(&c) {
                        self.seq = 0;
                    }
                }
                let drop = code.is_some_and(|c| codes.reidentify.contains(&c));
                Reaction {
                    session: if drop { Fate::Drop } else { on.closed.session },
                    ..on.closed
                }
            }
            Trigger::Reconnect => on.reconnect,
            Trigger::InvalidSession(true) => on.resumable,
            Trigger::InvalidSession(false) => on.invalid,
            Trigger::Zombie => on.zombie,
            Trigger::Timeout => on.timeout,
        };
        if !self.launched
            && matches!(trigger, Trigger::ConnectFailed | Trigger::Timeout)
            && let Some(r) = rules.start_failed
        {
            reaction = r;
        }
        if trigger == Trigger::Timeout && reaction.close == Close::Leave {
            reaction.close = Close::Drop;
        }
        if reaction.wait == Wait::Backoff && rules.give_up_after.is_some_and(|m| self.attempt >= m)
        {
            // Carbon returns before touching anything.
            self.gave_up = true;
            return;
        }
        if reaction.session == Fate::Drop {
            self.session = None;
            self.resume_url = false;
        }
        if let Some((t, Purpose::Identify)) = self.ticket {
            cx.peers.cancel(rules.pacing, self.shard, t, now);
            self.ticket = None;
        }
        self.identify_at = None;
        if reaction.close != Close::Leave
            && let Some(conn) = self.conn.take()
        {
            self.close_socket(now, conn, reaction.close, cx);
        }
        if self.conn.is_none() {
            self.heartbeat = None;
        }
        let delay = match reaction.wait {
            Wait::None => 0,
            Wait::Fixed(ms) => ms,
            Wait::Backoff => {
                if let (Reset::AfterIdle(idle), Some(last)) = (rules.reset, self.last_backoff_at)
                    && now.saturating_sub(last) > idle
                {
                    self.attempt = 0;
                }
                self.last_backoff_at = Some(now);
                self.attempt = self.attempt.saturating_add(1);
                self.after_backoff = true;
                rules.delay.ms(self.attempt, &mut self.rng)
            }
        };
        if self.holding.is_some() {
            match rules.pacing {
                Pacing::Worker if delay > 0 => self.release_at_dial = true,
                _ => self.release_lane(now, cx),
            }
        }
        if let Some(c) = &mut self.closing {
            c.then_ms = delay;
        } else {
            self.schedule_connect(now.saturating_add(delay));
        }
    }

    fn close_socket(&mut self, now: u64, conn: Conn, close: Close, cx: &mut Cx<'_>) {
        if !conn.opened && close != Close::Leave {
            // No close frame before the WebSocket opens: the dial is
            // aborted, and a client still listening to it hears it close.
            cx.send(conn.sock, ToServer::Drop);
            if self.rules.bugs.reconnect_twice {
                self.old.push(OldSock {
                    sock: conn.sock,
                    opened: false,
                    close_by: Some(now),
                });
            }
            return;
        }
        match close {
            Close::Frame(code) => {
                cx.send(conn.sock, ToServer::Close { code });
                if self.rules.bugs.reconnect_twice {
                    self.old.push(OldSock {
                        sock: conn.sock,
                        opened: conn.opened,
                        close_by: (self.rules.close_wait_ms > 0)
                            .then(|| now.saturating_add(self.rules.close_wait_ms)),
                    });
                } else if self.rules.close_wait_ms > 0 && conn.opened {
                    self.closing = Some(Closing {
                        sock: conn.sock,
                        until: now.saturating_add(self.rules.close_wait_ms),
                        then_ms: 0,
                    });
                }
            }
            Close::Drop => cx.send(conn.sock, ToServer::Drop),
            Close::Leave => {}
        }
    }

    /// The close handshake is over (or given up on): the planned
    /// connection follows after its wait.
    fn close_done(&mut self, now: u64) {
        if let Some(c) = self.closing.take() {
            self.schedule_connect(now.saturating_add(c.then_ms));
        }
    }

    fn schedule_connect(&mut self, at: u64) {
        let at = match self.last_attempt_at {
            Some(last) => at.max(last.saturating_add(self.rules.guard_ms)),
            None => at,
        };
        if !self.rules.bugs.reconnect_twice {
            self.connects.clear();
        }
        self.connects.push(at);
    }

    fn fatal(&mut self, now: u64, cx: &mut Cx<'_>) {
        if let Some(max) = self.rules.give_up_after {
            // Carbon: "this.reconnectAttempts = maxAttempts".
            self.attempt = max;
            self.gave_up = true;
            return;
        }
        self.stopped = true;
        self.heartbeat = None;
        self.connects.clear();
        self.closing = None;
        self.identify_at = None;
        if let Some((t, _)) = self.ticket.take() {
            cx.peers.cancel(self.rules.pacing, self.shard, t, now);
        }
        self.release_lane(now, cx);
    }
}

#[cfg(test)]
mod tests {
    use rand_core::SeedableRng;
    use reconnect_policy::ConnectFailure;

    use super::*;
    use crate::client::Action;

    const HELLO: ToClient = ToClient::Hello {
        interval_ms: 41_250,
    };
    const REFUSED: ToClient = ToClient::ConnectFailed(ConnectFailure::Refused);

    /// Shards of one bot, driven by hand or by a tiny gateway.
    struct World {
        peers: PeerShared,
        next_sock: u32,
        clients: Vec<PeerClient>,
    }

    impl World {
        fn new(kind: PeerKind, shards: u32, max_concurrency: u16, seed: u64) -> Self {
            Self {
                peers: PeerShared::new(max_concurrency, 1_000, 1_000, DAY_MS),
                next_sock: 0,
                clients: (0..shards)
                    .map(|s| {
                        PeerClient::new(
                            kind,
                            s,
                            ChaCha8Rng::seed_from_u64(seed ^ (u64::from(s) << 32)),
                        )
                    })
                    .collect(),
            }
        }

        fn one(kind: PeerKind) -> Self {
            Self::new(kind, 1, 1, 7)
        }

        fn call(
            &mut self,
            shard: u32,
            f: impl FnOnce(&mut PeerClient, &mut Cx<'_>),
        ) -> Vec<Action> {
            let mut actions = Vec::new();
            let next = &mut self.next_sock;
            let mut alloc = |_shard| {
                *next += 1;
                SockId {
                    index: *next,
                    generation: 0,
                }
            };
            let mut cx = Cx::new(&mut self.peers, &mut actions, &mut alloc);
            f(&mut self.clients[shard as usize], &mut cx);
            actions
        }

        fn start(&mut self, shard: u32, now: u64) -> Vec<Action> {
            self.call(shard, |c, cx| c.start(now, cx))
        }

        fn wake(&mut self, shard: u32, now: u64) -> Vec<Action> {
            self.call(shard, |c, cx| c.wake(now, cx))
        }

        fn msg(&mut self, shard: u32, now: u64, sock: SockId, msg: ToClient) -> Vec<Action> {
            self.call(shard, |c, cx| c.on_message(now, sock, msg, cx))
        }

        fn next_wake(&self, shard: u32) -> Option<u64> {
            self.clients[shard as usize].next_wake()
        }

        /// Wakes shard 0 at its next wake-up and returns the time.
        fn wake_next(&mut self) -> (u64, Vec<Action>) {
            let at = self.next_wake(0).expect("a wake-up");
            (at, self.wake(0, at))
        }

        /// Opens shard 0's socket `sock`, says Hello and answers an
        /// Identify with READY: an established session at `now`.
        fn establish(&mut self, now: u64, sock: SockId) -> Vec<Action> {
            let mut out = self.msg(0, now, sock, ToClient::Opened);
            out.extend(self.msg(0, now, sock, HELLO));
            // Anything due at once (twilight's queue ticks on a wake-up).
            for _ in 0..3 {
                if self.next_wake(0) == Some(now) {
                    out.extend(self.wake(0, now));
                }
            }
            out.extend(self.msg(0, now, sock, ready(1)));
            out
        }
    }

    fn ready(session: u32) -> ToClient {
        ToClient::Dispatch {
            session: SessionId(session),
            seq: 1,
            kind: DispatchKind::Ready,
        }
    }

    fn connects(actions: &[Action]) -> Vec<SockId> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Connect { sock, .. } => Some(*sock),
                _ => None,
            })
            .collect()
    }

    fn sent(actions: &[Action]) -> Vec<(SockId, ToServer)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { sock, msg } => Some((*sock, *msg)),
                _ => None,
            })
            .collect()
    }

    fn only_connect(actions: &[Action]) -> SockId {
        let c = connects(actions);
        assert_eq!(c.len(), 1, "{actions:?}");
        c[0]
    }

    /// Fails `n` dials in a row, the first `sock` at `now`, each at once:
    /// the time from each failure to the next dial, and the last dial.
    fn fail_dials(w: &mut World, sock: SockId, now: u64, n: usize) -> (Vec<u64>, SockId, u64) {
        let (mut sock, mut now) = (sock, now);
        let mut delays = Vec::new();
        for _ in 0..n {
            assert!(connects(&w.msg(0, now, sock, REFUSED)).is_empty());
            let (at, out) = w.wake_next();
            delays.push(at - now);
            sock = only_connect(&out);
            now = at;
        }
        (delays, sock, now)
    }

    fn dial_failure_delays(w: &mut World, sock: SockId, now: u64, n: usize) -> Vec<u64> {
        fail_dials(w, sock, now, n).0
    }

    #[test]
    fn delays_follow_their_formulas() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let twilight = PeerRules::TWILIGHT.delay;
        let got: Vec<u64> = (0..11).map(|n| twilight.ms(n, &mut rng) / 1_000).collect();
        assert_eq!(got, [0, 1, 2, 4, 8, 16, 32, 64, 128, 255, 255]);
        assert_eq!(twilight.ms(u32::MAX, &mut rng), 255_000);
        let carbon = PeerRules::CARBON_OLD.delay;
        let got: Vec<u64> = (1..7).map(|n| carbon.ms(n, &mut rng)).collect();
        assert_eq!(got, [2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
        let py = PeerRules::DISCORD_PY.delay;
        for n in [1, 5, 10, 11, u32::MAX] {
            let bound = 1_000u64 << n.min(10);
            let draws: Vec<u64> = (0..2_000).map(|_| py.ms(n, &mut rng)).collect();
            assert!(draws.iter().all(|d| *d <= bound), "n={n}");
            assert!(draws.iter().any(|d| *d > bound * 9 / 10), "n={n}");
            assert!(draws.iter().any(|d| *d < bound / 10), "n={n}");
        }
    }

    #[test]
    fn twilight_backs_off_only_on_failed_dials_and_starts_over_after_an_open() {
        let mut w = World::one(PeerKind::Twilight);
        let s1 = only_connect(&w.start(0, 0));
        let (delays, sock, now) = fail_dials(&mut w, s1, 0, 11);
        let secs: Vec<u64> = delays.iter().map(|d| d / 1_000).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 255, 255, 255]);
        // A dial that opens, then any disconnect: the next dial is at once,
        // and the next failure waits 1 s again.
        w.establish(now, sock);
        w.msg(0, now + 10, sock, ToClient::Closed { code: None });
        assert_eq!(w.next_wake(0), Some(now + 10));
        let (at, out) = w.wake_next();
        let again = only_connect(&out);
        assert_eq!(dial_failure_delays(&mut w, again, at, 2), [1_000, 2_000]);
    }

    #[test]
    fn twilight_drops_a_zombie_when_nothing_arrived_since_the_last_heartbeat() {
        let mut w = World::one(PeerKind::Twilight);
        let s1 = only_connect(&w.start(0, 0));
        w.establish(0, s1);
        // The first heartbeat is jittered within one interval.
        let (first, out) = w.wake_next();
        assert!(first < 41_250, "{first}");
        assert_eq!(sent(&out), [(s1, ToServer::Heartbeat)]);
        // An event that is not an ACK still counts as life.
        w.msg(
            0,
            first + 100,
            s1,
            ToClient::Dispatch {
                session: SessionId(1),
                seq: 2,
                kind: DispatchKind::Other,
            },
        );
        let (second, out) = w.wake_next();
        assert_eq!(second, first + 41_250);
        assert_eq!(sent(&out), [(s1, ToServer::Heartbeat)]);
        // Silence until the next tick: the socket is dropped, no close
        // frame, and the shard resumes at once.
        let (third, out) = w.wake_next();
        assert_eq!(sent(&out), [(s1, ToServer::Drop)]);
        assert_eq!(w.next_wake(0), Some(third));
        let (_, out) = w.wake_next();
        let s2 = only_connect(&out);
        w.msg(0, third + 10, s2, ToClient::Opened);
        let out = w.msg(0, third + 10, s2, HELLO);
        assert_eq!(
            sent(&out),
            [(
                s2,
                ToServer::Resume {
                    session: Some(SessionId(1)),
                    seq: 2
                }
            )]
        );
    }

    #[test]
    fn twilight_closes_with_4000_for_op7_and_waits_for_the_answer() {
        let mut w = World::one(PeerKind::Twilight);
        let s1 = only_connect(&w.start(0, 0));
        w.establish(0, s1);
        let out = w.msg(0, 1_000, s1, ToClient::Reconnect);
        assert_eq!(sent(&out), [(s1, ToServer::Close { code: 4000 })]);
        assert!(connects(&w.wake(0, 1_000)).is_empty());
        w.msg(0, 1_050, s1, ToClient::Closed { code: Some(4000) });
        assert_eq!(w.next_wake(0), Some(1_050));
        assert_eq!(connects(&w.wake(0, 1_050)).len(), 1);
    }

    #[test]
    fn discordjs_waits_a_flat_500_ms_whatever_happens() {
        let mut w = World::one(PeerKind::DiscordJs);
        let s1 = only_connect(&w.start(0, 0));
        // A refused dial: 500 ms, every time, forever.
        let (delays, s, now) = fail_dials(&mut w, s1, 0, 20);
        assert_eq!(delays, [500; 20]);
        let out = w.establish(now, s);
        assert!(sent(&out).contains(&(s, ToServer::Identify)));
        // The server resets the socket: resume after 500 ms.
        w.msg(0, now + 100, s, ToClient::Closed { code: None });
        let (at, out) = w.wake_next();
        assert_eq!(at, now + 600);
        let s2 = only_connect(&out);
        assert!(matches!(
            out[0],
            Action::Connect {
                to_resume_url: true,
                ..
            }
        ));
        w.msg(0, at + 10, s2, ToClient::Opened);
        let out = w.msg(0, at + 10, s2, HELLO);
        assert!(matches!(
            sent(&out)[..],
            [(_, ToServer::Resume { seq: 1, .. })]
        ));
    }

    #[test]
    fn discordjs_drops_the_session_after_a_failed_dial() {
        let mut w = World::one(PeerKind::DiscordJs);
        let s1 = only_connect(&w.start(0, 0));
        w.establish(0, s1);
        w.msg(0, 100, s1, ToClient::Closed { code: None });
        let (at, out) = w.wake_next();
        let s2 = only_connect(&out);
        w.msg(0, at + 5, s2, REFUSED);
        let (at, out) = w.wake_next();
        let s3 = only_connect(&out);
        // The identify throttler saw shard 0's bucket used at 0: it waits
        // until 5 s plus up to 1.5 s.
        w.msg(0, at + 10, s3, ToClient::Opened);
        assert!(sent(&w.msg(0, at + 10, s3, HELLO)).is_empty());
        let (t, out) = w.wake_next();
        assert!((5_000..6_500).contains(&t), "{t}");
        assert_eq!(sent(&out), [(s3, ToServer::Identify)]);
    }

    #[test]
    fn discordjs_answers_op9_true_on_the_same_socket_and_op7_with_4200() {
        let mut w = World::one(PeerKind::DiscordJs);
        let s1 = only_connect(&w.start(0, 0));
        w.establish(0, s1);
        let out = w.msg(0, 1_000, s1, ToClient::InvalidSession { resumable: true });
        assert!(matches!(sent(&out)[..], [(s, ToServer::Resume { .. })] if s == s1));
        assert!(connects(&w.wake(0, 1_000)).is_empty());
        let out = w.msg(0, 2_000, s1, ToClient::Reconnect);
        assert_eq!(sent(&out), [(s1, ToServer::Close { code: 4200 })]);
        // The 500 ms start after the close handshake.
        assert!(connects(&w.wake(0, 2_500)).is_empty());
        w.msg(0, 2_080, s1, ToClient::Closed { code: Some(4200) });
        assert_eq!(w.next_wake(0), Some(2_580));
        // op 9 false: close 1000, and the session is gone.
        let (at, out) = w.wake_next();
        let s2 = only_connect(&out);
        w.msg(0, at, s2, ToClient::Opened);
        w.msg(0, at, s2, HELLO);
        let out = w.msg(0, at + 5, s2, ToClient::InvalidSession { resumable: false });
        assert_eq!(sent(&out), [(s2, ToServer::Close { code: 1000 })]);
    }

    #[test]
    fn discordjs_gives_hello_60_s_and_ready_15_s_then_reidentifies() {
        let mut w = World::one(PeerKind::DiscordJs);
        let s1 = only_connect(&w.start(0, 0));
        w.msg(0, 10, s1, ToClient::Opened);
        assert_eq!(w.next_wake(0), Some(60_000));
        let (_, out) = w.wake_next();
        assert_eq!(sent(&out), [(s1, ToServer::Close { code: 1000 })]);
        w.msg(0, 60_050, s1, ToClient::Closed { code: Some(1000) });
        let (at, out) = w.wake_next();
        assert_eq!(at, 60_550);
        let s2 = only_connect(&out);
        w.msg(0, at, s2, ToClient::Opened);
        let out = w.msg(0, at, s2, HELLO);
        assert_eq!(sent(&out), [(s2, ToServer::Identify)]);
        assert_eq!(
            w.clients[0].conn.and_then(|c| c.deadline),
            Some((at + 15_000, Deadline::Ready))
        );
    }

    #[test]
    fn discordpy_backs_off_with_full_jitter_on_failed_dials_and_starts_over_when_idle() {
        for seed in 0..40 {
            let mut w = World::new(PeerKind::DiscordPy, 1, 1, seed);
            let s1 = only_connect(&w.start(0, 0));
            w.establish(0, s1);
            // A reset: resume at once, no backoff.
            w.msg(0, 100, s1, ToClient::Closed { code: None });
            let (at, out) = w.wake_next();
            assert_eq!(at, 100);
            let s2 = only_connect(&out);
            let (delays, s, now) = fail_dials(&mut w, s2, at, 12);
            for (k, d) in delays.iter().enumerate() {
                let bound = 1_000u64 << (k as u32 + 1).min(10);
                assert!(*d <= bound, "seed {seed}: delay {k} = {d} > {bound}");
            }
            // More than 2048 s after the last backoff, the exponent is 1
            // again.
            w.msg(0, now + 10, s, ToClient::Opened);
            w.msg(0, now + 10, s, HELLO);
            let later = now + 3_000_000;
            w.msg(0, later, s, ToClient::Closed { code: None });
            let (at, out) = w.wake_next();
            let s = only_connect(&out);
            let d = dial_failure_delays(&mut w, s, at, 1)[0];
            assert!(d <= 2_000, "seed {seed}: {d}");
        }
    }

    #[test]
    fn discordpy_reidentifies_after_a_network_error_and_sleeps_5_s_first() {
        let mut w = World::one(PeerKind::DiscordPy);
        let s1 = only_connect(&w.start(0, 0));
        // Shard 0's first launch identifies without the 5 s sleep.
        let out = w.establish(0, s1);
        assert!(sent(&out).contains(&(s1, ToServer::Identify)));
        w.msg(0, 1_000, s1, ToClient::Closed { code: None });
        let (at, out) = w.wake_next();
        let s2 = only_connect(&out);
        w.msg(0, at + 5, s2, REFUSED);
        let (at, out) = w.wake_next();
        let s3 = only_connect(&out);
        w.msg(0, at + 10, s3, ToClient::Opened);
        let out = w.msg(0, at + 10, s3, HELLO);
        assert_eq!(sent(&out), []);
        let (t, out) = w.wake_next();
        assert_eq!(t, at + 10, "the first heartbeat goes out on Hello");
        assert_eq!(sent(&out), [(s3, ToServer::Heartbeat)]);
        let (t, out) = w.wake_next();
        assert_eq!(t, at + 5_010);
        assert_eq!(sent(&out), [(s3, ToServer::Identify)]);
    }

    #[test]
    fn serenity_restarts_through_the_queue_after_op9_false_and_resumes_before_hello() {
        let mut w = World::one(PeerKind::Serenity);
        let s1 = only_connect(&w.start(0, 0));
        w.msg(0, 10, s1, ToClient::Opened);
        let out = w.msg(0, 10, s1, HELLO);
        assert_eq!(sent(&out), [(s1, ToServer::Identify)]);
        w.msg(0, 20, s1, ready(1));
        // op 7: a new socket, Resume as soon as it opens, Hello ignored.
        let out = w.msg(0, 1_000, s1, ToClient::Reconnect);
        assert_eq!(sent(&out), [(s1, ToServer::Drop)]);
        let (_, out) = w.wake_next();
        let s2 = only_connect(&out);
        let out = w.msg(0, 1_010, s2, ToClient::Opened);
        assert!(matches!(
            sent(&out)[..],
            [(_, ToServer::Resume { seq: 1, .. })]
        ));
        assert!(sent(&w.msg(0, 1_010, s2, HELLO)).is_empty());
        // op 9 false: close 4000, and the start waits 5 s after the last.
        let out = w.msg(0, 2_000, s2, ToClient::InvalidSession { resumable: false });
        assert_eq!(sent(&out), [(s2, ToServer::Close { code: 4000 })]);
        let (at, out) = w.wake_next();
        assert_eq!(at, 2_000);
        assert!(out.is_empty());
        let (at, out) = w.wake_next();
        assert_eq!(at, 5_010, "5 s after the previous start's dial finished");
        assert_eq!(connects(&out).len(), 1);
    }

    #[test]
    fn serenity_retries_a_failed_resume_dial_once_after_1_s_then_restarts() {
        let mut w = World::one(PeerKind::Serenity);
        let s1 = only_connect(&w.start(0, 0));
        w.establish(0, s1);
        w.msg(0, 100_000, s1, ToClient::Closed { code: None });
        let (at, out) = w.wake_next();
        assert_eq!(at, 100_000);
        let s2 = only_connect(&out);
        w.msg(0, at + 5, s2, REFUSED);
        let (at, out) = w.wake_next();
        assert_eq!(at, 101_005);
        let s3 = only_connect(&out);
        w.msg(0, at + 5, s3, REFUSED);
        let (_, out) = w.wake_next();
        let s4 = only_connect(&out);
        w.msg(0, 101_020, s4, ToClient::Opened);
        let out = w.msg(0, 101_020, s4, HELLO);
        assert_eq!(sent(&out), [(s4, ToServer::Identify)]);
    }

    #[test]
    fn carbon_old_pr_reconnects_twice_for_op7_closes_with_1000_and_resumes_with_seq_0() {
        let mut w = World::one(PeerKind::CarbonOldPr);
        let s1 = only_connect(&w.start(0, 0));
        w.establish(0, s1);
        w.msg(
            0,
            500,
            s1,
            ToClient::Dispatch {
                session: SessionId(1),
                seq: 7,
                kind: DispatchKind::Other,
            },
        );
        // op 7: close with 1000 (the session dies), reconnect in 2 s (the
        // counter was incremented before the delay was computed).
        let out = w.msg(0, 1_000, s1, ToClient::Reconnect);
        assert_eq!(sent(&out), [(s1, ToServer::Close { code: 1000 })]);
        assert_eq!(w.next_wake(0), Some(3_000));
        // The close that follows runs the reconnect handler again.
        w.msg(0, 1_050, s1, ToClient::Closed { code: Some(1000) });
        assert_eq!(w.clients[0].connects, [3_000, 5_050]);
        let (_, out) = w.wake_next();
        let s2 = only_connect(&out);
        w.msg(0, 3_010, s2, ToClient::Opened);
        // The Resume carries the new socket's sequence: none.
        let out = w.msg(0, 3_010, s2, HELLO);
        let out: Vec<Action> = out
            .into_iter()
            .filter(|a| {
                !matches!(
                    a,
                    Action::Send {
                        msg: ToServer::Heartbeat,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(
            sent(&out),
            [(
                s2,
                ToServer::Resume {
                    session: Some(SessionId(1)),
                    seq: 0
                }
            )]
        );
        // The second reconnect replaces s2 without closing it.
        w.wake(0, 3_010);
        w.msg(0, 3_020, s2, ToClient::HeartbeatAck);
        let at = 5_050;
        let out = w.wake(0, at);
        let s3 = only_connect(&out);
        assert!(sent(&out).is_empty(), "{out:?}");
        assert_ne!(s2, s3);
        // s2's messages are still handled: its op 9 plans yet another
        // connection 5 s later.
        w.msg(0, 5_100, s2, ToClient::InvalidSession { resumable: false });
        assert_eq!(w.clients[0].connects, [10_100]);
    }

    #[test]
    fn carbon_old_as_written_closes_with_no_status_and_resumes_with_the_last_sequence() {
        let mut w = World::one(PeerKind::CarbonOld);
        let s1 = only_connect(&w.start(0, 0));
        w.establish(0, s1);
        w.msg(
            0,
            500,
            s1,
            ToClient::Dispatch {
                session: SessionId(1),
                seq: 7,
                kind: DispatchKind::Other,
            },
        );
        // op 7: `ws.close()` with no code, which keeps the session.
        let out = w.msg(0, 1_000, s1, ToClient::Reconnect);
        assert_eq!(sent(&out), [(s1, ToServer::Close { code: NO_STATUS })]);
        assert!(!crate::rules::client_close_ends_session(NO_STATUS));
        let (_, out) = w.wake_next();
        let s2 = only_connect(&out);
        w.msg(0, 3_010, s2, ToClient::Opened);
        // The one shared `sequence` field still holds 7.
        let out = w.msg(0, 3_010, s2, HELLO);
        assert!(
            sent(&out).contains(&(
                s2,
                ToServer::Resume {
                    session: Some(SessionId(1)),
                    seq: 7
                }
            )),
            "{out:?}"
        );
    }

    #[test]
    fn carbon_old_reconnects_again_when_its_unanswered_close_times_out() {
        let mut w = World::one(PeerKind::CarbonOld);
        let s1 = only_connect(&w.start(0, 0));
        // The first heartbeat goes out on Hello and is never answered: the
        // next tick finds the connection a zombie and closes it, with no
        // status code.
        let out = w.establish(0, s1);
        assert!(sent(&out).contains(&(s1, ToServer::Heartbeat)));
        let (tick, out) = w.wake_next();
        assert!((41_250..=42_250).contains(&tick), "{tick}");
        assert_eq!(sent(&out), [(s1, ToServer::Close { code: NO_STATUS })]);
        assert_eq!(w.clients[0].connects, [tick + 2_000]);
        let (_, out) = w.wake_next();
        let s2 = only_connect(&out);
        // Nobody answers the close: 30 s later `ws` reports it closed and
        // the handler runs again (counted a second time: 4 s), aborting
        // the dial still in progress, whose own close runs it a third time
        // (8 s).
        let (at, out) = w.wake_next();
        assert_eq!(at, tick + 30_000);
        assert_eq!(sent(&out), [(s1, ToServer::Drop), (s2, ToServer::Drop)]);
        assert_eq!(w.clients[0].connects, [at + 4_000]);
        assert!(w.wake(0, at).is_empty());
        assert_eq!(w.clients[0].connects, [at + 4_000, at + 8_000]);
    }

    #[test]
    fn carbon_old_gives_up_after_five_counted_attempts() {
        let mut w = World::one(PeerKind::CarbonOld);
        let s1 = only_connect(&w.start(0, 0));
        assert_eq!(
            dial_failure_delays(&mut w, s1, 0, 5),
            [2_000, 4_000, 8_000, 16_000, 30_000]
        );
        let sock = SockId {
            index: w.next_sock,
            generation: 0,
        };
        w.msg(0, 100_000, sock, REFUSED);
        assert!(w.clients[0].gave_up());
        assert_eq!(w.next_wake(0), None);
    }

    #[test]
    fn fatal_codes_stop_each_model_as_its_library_reads_them() {
        // (model, a fatal code, a code it reconnects after although the
        // docs call it fatal)
        let cases = [
            (PeerKind::Twilight, 4014, None),
            (PeerKind::DiscordJs, 4010, None),
            (PeerKind::DiscordPy, 4012, None),
            (PeerKind::Serenity, 4013, Some(4011)),
            (PeerKind::CarbonOld, 4004, Some(4010)),
        ];
        for (kind, fatal, not_fatal) in cases {
            let mut w = World::one(kind);
            let s1 = only_connect(&w.start(0, 0));
            w.establish(0, s1);
            w.msg(0, 1_000, s1, ToClient::Closed { code: Some(fatal) });
            assert!(w.clients[0].gave_up(), "{kind:?} {fatal}");
            assert!(connects(&w.wake(0, 600_000)).is_empty(), "{kind:?}");
            if let Some(code) = not_fatal {
                let mut w = World::one(kind);
                let s1 = only_connect(&w.start(0, 0));
                w.establish(0, s1);
                w.msg(0, 1_000, s1, ToClient::Closed { code: Some(code) });
                assert!(!w.clients[0].gave_up(), "{kind:?} {code}");
                assert!(w.next_wake(0).is_some(), "{kind:?} {code}");
            }
        }
    }

    #[test]
    fn the_naive_client_and_the_guard_keep_their_behaviour() {
        for (kind, gap) in [(PeerKind::Naive, 0), (PeerKind::Guard5s, 5_000)] {
            let mut w = World::one(kind);
            let s1 = only_connect(&w.start(0, 0));
            assert_eq!(
                dial_failure_delays(&mut w, s1, 10, 3),
                [gap - 10.min(gap), gap, gap]
            );
        }
    }

    #[test]
    fn jda_resumes_at_once_then_waits_2_4_8_s_and_closes_with_4900() {
        let mut w = World::one(PeerKind::Jda);
        let s1 = only_connect(&w.start(0, 0));
        // Identify goes out as soon as the socket connects, before Hello.
        let out = w.msg(0, 10, s1, ToClient::Opened);
        assert_eq!(sent(&out), [(s1, ToServer::Identify)]);
        w.msg(0, 10, s1, HELLO);
        w.msg(0, 20, s1, ready(1));
        let out = w.msg(0, 1_000, s1, ToClient::Reconnect);
        assert_eq!(sent(&out), [(s1, ToServer::Close { code: 4900 })]);
        w.msg(0, 1_050, s1, ToClient::Closed { code: Some(4900) });
        let (at, out) = w.wake_next();
        assert_eq!(at, 1_050);
        let s2 = only_connect(&out);
        assert_eq!(
            dial_failure_delays(&mut w, s2, at, 5),
            [2_000, 4_000, 8_000, 16_000, 32_000]
        );
    }

    // ----- fleets on a tiny gateway ----------------------------------------

    /// Runs `shards` peers against a gateway that answers in 10 ms and
    /// never fails, until `until`; returns when each shard sent Identify.
    fn identifies(
        kind: PeerKind,
        shards: u32,
        max_concurrency: u16,
        until: u64,
    ) -> Vec<(u64, u32)> {
        enum Ev {
            Start(u32),
            Wake(u32),
            Deliver(u32, SockId, ToClient),
        }
        let mut w = World::new(kind, shards, max_concurrency, 3);
        let mut queue: Vec<(u64, u64, Ev)> = (0..shards)
            .map(|s| (0, u64::from(s), Ev::Start(s)))
            .collect();
        let mut order = u64::from(shards);
        let mut wake_at = vec![u64::MAX; shards as usize];
        let mut out = Vec::new();
        let mut session = 0;
        while let Some(i) = (0..queue.len()).min_by_key(|&i| (queue[i].0, queue[i].1)) {
            let (now, _, ev) = queue.swap_remove(i);
            if now > until {
                break;
            }
            let (shard, actions) = match ev {
                Ev::Start(s) => (s, w.start(s, now)),
                Ev::Wake(s) => {
                    if wake_at[s as usize] != now {
                        continue;
                    }
                    wake_at[s as usize] = u64::MAX;
                    (s, w.wake(s, now))
                }
                Ev::Deliver(s, sock, msg) => (s, w.msg(s, now, sock, msg)),
            };
            let mut later = Vec::new();
            for a in actions {
                match a {
                    Action::Connect { sock, .. } => {
                        later.push((now + 10, Ev::Deliver(shard, sock, ToClient::Opened)));
                        later.push((now + 10, Ev::Deliver(shard, sock, HELLO)));
                    }
                    Action::Send {
                        sock,
                        msg: ToServer::Identify,
                    } => {
                        out.push((now, shard));
                        session += 1;
                        later.push((now + 10, Ev::Deliver(shard, sock, ready(session))));
                    }
                    Action::Send {
                        sock,
                        msg: ToServer::Heartbeat,
                    } => {
                        later.push((now + 10, Ev::Deliver(shard, sock, ToClient::HeartbeatAck)));
                    }
                    _ => {}
                }
            }
            let mut wakes = w.peers.take_wakes();
            wakes.extend(w.next_wake(shard).map(|at| (shard, at)));
            for (s, at) in wakes {
                let at = at.max(now);
                if at < wake_at[s as usize] {
                    wake_at[s as usize] = at;
                    later.push((at, Ev::Wake(s)));
                }
            }
            for (at, ev) in later {
                order += 1;
                queue.push((at, order, ev));
            }
        }
        out
    }

    #[test]
    fn serenity_starts_shards_5_s_apart_bot_wide() {
        let ids = identifies(PeerKind::Serenity, 6, 16, 60_000);
        assert_eq!(ids.len(), 6, "{ids:?}");
        for pair in ids.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= 5_000, "{ids:?}");
        }
        // In shard order, although all six asked at once.
        assert_eq!(
            ids.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn discordpy_connects_one_shard_at_a_time() {
        let ids = identifies(PeerKind::DiscordPy, 4, 16, 60_000);
        let times: Vec<u64> = ids.iter().map(|(t, _)| *t).collect();
        // Shard 0 identifies on Hello; each next shard dials when the one
        // before has identified, then sleeps 5 s after its Hello.
        assert_eq!(times, [10, 5_020, 10_030, 15_040]);
    }

    #[test]
    fn twilight_releases_one_shard_per_bucket_per_tick() {
        let ids = identifies(PeerKind::Twilight, 6, 2, 60_000);
        // Buckets {0, 2, 4} and {1, 3, 5}: a tick every 5 s releases one
        // of each.
        let mut by_time: Vec<(u64, u32)> = ids.clone();
        by_time.sort_unstable();
        assert_eq!(
            by_time,
            [
                (10, 0),
                (10, 1),
                (5_010, 2),
                (5_010, 3),
                (10_010, 4),
                (10_010, 5)
            ]
        );
    }

    #[test]
    fn discordjs_throttles_each_bucket_5_s_plus_up_to_1_5_s() {
        let ids = identifies(PeerKind::DiscordJs, 6, 2, 60_000);
        assert_eq!(ids.len(), 6);
        for bucket in 0..2 {
            let t: Vec<u64> = ids
                .iter()
                .filter(|(_, s)| s % 2 == bucket)
                .map(|(t, _)| *t)
                .collect();
            assert_eq!(t[0], 10);
            for pair in t.windows(2) {
                let gap = pair[1] - pair[0];
                assert!((5_000..6_500).contains(&gap), "{ids:?}");
            }
        }
    }

    #[test]
    fn jda_holds_each_bucket_until_ready_then_sleeps_5_s() {
        let ids = identifies(PeerKind::Jda, 4, 2, 60_000);
        let mut by_time = ids.clone();
        by_time.sort_unstable();
        // Dial at 0, Identify on connect at 10, READY at 20: the bucket's
        // next dial is at 5 020.
        assert_eq!(by_time, [(10, 0), (10, 1), (5_030, 2), (5_030, 3)]);
    }

    #[test]
    fn carbon_old_spawns_a_batch_of_max_concurrency_every_5_s_at_startup() {
        let ids = identifies(PeerKind::CarbonOld, 5, 2, 60_000);
        let mut by_time = ids.clone();
        by_time.sort_unstable();
        assert_eq!(
            by_time,
            [(10, 0), (10, 1), (5_010, 2), (5_010, 3), (10_010, 4)]
        );
    }
}
