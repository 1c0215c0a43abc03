//! The policy's configuration, its production defaults and its checks.
//!
//! Every field has a default that is safe for a production Discord bot
//! ([`PolicyConfig::default`]); a JSON or TOML file may set only the fields
//! it wants to change. [`PolicyConfig::validate`] refuses values that would
//! break the policy's guarantees (a cap below the base, an empty op 9 wait
//! range turned upside down, ...) with an error that names the field.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::backoff::{BackoffConfig, BackoffStrategy, MAX_DELAY_MS};
use crate::decision::DecisionConfig;
use crate::fleet_recovery::FleetRecovery;
use crate::gateway_url;
use crate::heartbeat::ZombieRule;
use crate::send_budget::SendLimit;

/// How long each wait may last before it is a decision of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    /// From `Connect` to the WebSocket being open (default 10 s).
    pub connect_ms: u64,
    /// From open to Hello (default 20 s).
    pub hello_ms: u64,
    /// From Identify to READY, or Resume to RESUMED (default 30 s; a resume
    /// replays missed events first). Waiting for the identify limiter after
    /// Hello gets this plus 8 s: another shard's Identify may hold the
    /// bucket for its whole handshake and the 7 s after it settles.
    pub handshake_ms: u64,
    /// From asking the driver to close to it reporting closed (default 5 s);
    /// after that the policy asks for the transport to be dropped.
    pub close_ms: u64,
}

impl Timeouts {
    /// The defaults.
    pub const DEFAULT: Self = Self {
        connect_ms: 10_000,
        hello_ms: 20_000,
        handshake_ms: 30_000,
        close_ms: 5_000,
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// When a connection counts as proven stable, which resets the backoff.
///
/// A connection that is accepted and then drops at once must never reset
/// the backoff, or a flapping link storms even with backoff configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct StabilityRule {
    /// How long a connection must stay healthy after READY or RESUMED
    /// (default 60 s).
    pub window_ms: u64,
    /// Also count the first heartbeat ACK after READY or RESUMED as proof
    /// (default off: an early first heartbeat can be ACKed within
    /// milliseconds, before a link that drops at once has dropped).
    pub reset_on_first_ack: bool,
    /// Every full `credit_ms` a connection stays open after Hello repays
    /// one failure of the retry count, whether or not it lives to the
    /// window (default 2 s; 0 turns the credit off, leaving only the
    /// window). 2 s is the shortest retry cycle (the 1 s guard plus the
    /// first retry's longest wait): a link up as long as it is down repays
    /// as fast as it fails, so a socket dropped every 5 s resumes after the
    /// first retry's 0.5–1 s every time instead of climbing to the cap,
    /// while a link that drops within 2 s of Hello earns nothing and climbs
    /// as it always did. A shard whose count does not climb has held each
    /// connection at least this long, so it never makes more than one
    /// attempt per `credit_ms` plus the guard.
    pub credit_ms: u64,
}

impl StabilityRule {
    /// The defaults.
    pub const DEFAULT: Self = Self {
        window_ms: 60_000,
        reset_on_first_ack: false,
        credit_ms: 2_000,
    };
}

impl Default for StabilityRule {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// When to stop resuming a session that will not resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct ResumeBreaker {
    /// Resumes in a row that were sent and ended without RESUMED before the
    /// session is dropped and the policy identifies against the base URL
    /// (default 3). Dials that fail do not count: they say the network is
    /// down, not that the session is dead.
    pub max_failed_resumes: u32,
    /// Whether one failed dial to the resume URL also drops the session
    /// (default off). The resume URL itself is always dropped after a
    /// failed dial, so a dead node is never dialled twice; the session is
    /// then resumed against the base URL. On, a fleet-wide outage turns
    /// every resume into an Identify: in the simulator's `outage-30s`
    /// scenario it made 1000 shards re-identify, took p99 324 s to recover
    /// instead of seconds, and lost 7,278 events.
    pub drop_session_on_dial_failure: bool,
    /// While a session is held, how long after the connection on which it
    /// was live ended the waits stay short, in ms (default 180 s: the gateway keeps a lost
    /// session resumable for minutes, and the simulator's gateway for
    /// 180 s). Past it the backoff alone rules.
    pub short_waits_for_ms: u64,
    /// The longest wait after an attempt to resume that did not bring the
    /// session back (a dial that failed, a handshake cut or refused) within
    /// [`short_waits_for_ms`](Self::short_waits_for_ms) of the loss, in ms
    /// (default 15 s; a wait drawn longer is redrawn in `[max/2, max]`, so a
    /// fleet stays spread). The end of a connection on which the session
    /// was live keeps the backoff's wait, so a link that resumes and drops
    /// at once still climbs to the backoff's cap. The backoff alone, at 30–60 s a wait near its cap,
    /// leaves a shard a handful of dials in the resume window: on a link
    /// that flaps (up 20–45 s, down 5–20 s) each can land in a down period,
    /// and the session expires with the link up more than half the time
    /// (8 sessions and 72 events lost in the simulator's worst seed, with
    /// no resume ever refused). With 15 s a shard dials at least 12 times
    /// before the window ends. 0 turns the rule off.
    pub max_wait_while_resumable_ms: u64,
}

impl ResumeBreaker {
    /// The defaults.
    pub const DEFAULT: Self = Self {
        max_failed_resumes: 3,
        drop_session_on_dial_failure: false,
        short_waits_for_ms: 180_000,
        max_wait_while_resumable_ms: 15_000,
    };
}

impl Default for ResumeBreaker {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// When requests of the server (op 7 after READY or RESUMED, op 9 from a
/// gateway that said Hello, a close that asks for a reconnect after READY
/// or RESUMED) stop being free.
///
/// A free request neither counts as a failure nor waits for the backoff:
/// the shard resumes at once (the guard still holds, op 9 still waits its
/// own 1–5 s). A gateway that asks again and again is in a loop, and its
/// requests go through the backoff like failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerRequests {
    /// Requests that are free within one window (default 3). A gateway
    /// draining its nodes sends op 7 to a healthy session once, sometimes
    /// twice in a few minutes; a third within a minute is already rare,
    /// and a fourth is a loop.
    pub max_free: u32,
    /// The window, in ms, counted from the first request after the previous
    /// window ended (default 60 s, the stability window: requests further
    /// apart than a connection needs to prove stable are never a loop).
    pub window_ms: u64,
}

impl ServerRequests {
    /// The defaults.
    pub const DEFAULT: Self = Self {
        max_free: 3,
        window_ms: 60_000,
    };
}

impl Default for ServerRequests {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The most handshakes a shard brings to the gateway in any window,
/// whatever the backoff and the credit say: the ceiling that keeps a link
/// which answers and then drops (so that the credit keeps the retry count
/// low) from turning into a storm.
///
/// # What is counted, and the guarantee
///
/// The gateway sees a handshake when it arrives, after a latency the
/// policy cannot know, so attempts are counted by the latest time each can
/// have reached the gateway:
/// - an attempt whose upgrade was answered (the WebSocket opened) reached
///   the gateway before the answer came: it is stamped when it opened;
/// - an attempt that ended before that, with its outcome unknown (a
///   refused or reset connection, an HTTP status, a timeout), is stamped
///   when it ended (this takes a handshake still on its way when the
///   client lets go as not reaching the gateway: it finds a connection
///   nobody holds, and nobody to answer it);
/// - an attempt still in flight counts as reaching the gateway at the
///   later of now and its connect deadline, so that two attempts in flight
///   at once cannot both slip under the limit;
/// - an attempt that cannot have reached the gateway (the host name did
///   not resolve, the TLS handshake failed: no upgrade request was sent)
///   is not counted. The guard and the backoff still pace those.
///
/// A new attempt starts no earlier than the `max_attempts`-th latest of
/// these stamps plus `window_ms`, and it reaches the gateway no earlier
/// than it starts. So whatever the latencies, every handshake but
/// `max_attempts - 1` of the ones before it reached the gateway at least
/// `window_ms` before the new one: the gateway never sees more than
/// `max_attempts` handshakes of one shard within any `window_ms`. Attempts
/// start no more often than they are counted, since no stamp precedes its
/// dial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct AttemptRate {
    /// Handshakes allowed per window (default 10; at most
    /// [`AttemptRate::MAX_ATTEMPTS`]). Ten a minute is what a gateway that
    /// drops each socket 5 s after it resumed needs to keep the shard
    /// connected over 80 % of the time (50 s of service a minute, 83 % at
    /// most), and what the simulator's referee still calls calm.
    pub max_attempts: u32,
    /// The window, in ms (default 60 s, a minute: no room for differences
    /// in latency is needed, since attempts are counted by when they
    /// reached the gateway, not when they were dialled). 0 turns the
    /// ceiling off, as the simulator's storm baseline does.
    pub window_ms: u64,
}

impl AttemptRate {
    /// The largest `max_attempts` (the planner keeps that many stamps).
    pub const MAX_ATTEMPTS: u32 = 32;

    /// The defaults.
    pub const DEFAULT: Self = Self {
        max_attempts: 10,
        window_ms: 60_000,
    };
}

impl Default for AttemptRate {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a 4008 close (the gateway's "you sent too fast") changes. The docs
/// say "slow it down": reconnecting at once with the same pace would earn
/// another 4008.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimited {
    /// The next attempt waits at least this long, in ms, on top of the
    /// backoff it counts for (default 10 s: queued commands that caused it
    /// are not replayed at once, and a session's resume window of minutes
    /// is far away).
    pub wait_ms: u64,
    /// The share of the driver's command budget, in percent, on every
    /// connection after a 4008 until one proves stable (default 50: half
    /// the pace that was too fast).
    pub budget_percent: u8,
}

impl RateLimited {
    /// The defaults.
    pub const DEFAULT: Self = Self {
        wait_ms: 10_000,
        budget_percent: 50,
    };
}

impl Default for RateLimited {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Optional limits after which the policy gives up. All are off by
/// default: a bot should come back when the network does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct GiveUpLimits {
    /// Give up after this many retries without a stable connection.
    pub max_retries: Option<u32>,
    /// Give up after this long without a stable connection, in ms.
    pub max_elapsed_ms: Option<u64>,
    /// Give up when the shard is in an identify loop
    /// ([`IdentifyLoop::max_rejected`] Identifies in a row answered before
    /// READY) instead of switching to the loop's long wait.
    pub on_identify_loop: bool,
}

/// When Identifies that the gateway keeps answering with a close (or op 9)
/// before READY are a loop, and what the loop costs.
///
/// A token a server rejects without 4004, or a gateway that refuses every
/// handshake, would otherwise be retried at the backoff's pace for ever:
/// about 1,400 Identifies a day at the cap, more than a bot's whole daily
/// session-start budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentifyLoop {
    /// Identifies in a row answered before READY that make a loop (default
    /// 3: one refused Identify is a hiccup, two can be an unlucky restart,
    /// three with nothing in between are the server's answer).
    pub max_rejected: u32,
    /// The wait before each attempt while in a loop, in ms (default 10
    /// minutes: an operator has time to read the notice and fix the token
    /// or the server, and a loop costs at most 144 Identifies a day).
    pub wait_ms: u64,
    /// This shard's share of the bot's daily session-start budget: rejected
    /// Identifies allowed in 24 h, counted from the first (default 50, a
    /// twentieth of the default budget of 1,000, so twenty shards looping
    /// all day cannot spend it). Once spent, the shard waits for the 24 h
    /// to pass. A bot with many shards should set it to its daily total
    /// divided by its shard count.
    pub daily_share: u32,
}

impl IdentifyLoop {
    /// The defaults.
    pub const DEFAULT: Self = Self {
        max_rejected: 3,
        wait_ms: 600_000,
        daily_share: 50,
    };
}

impl Default for IdentifyLoop {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Everything the [`Policy`](crate::Policy) can be told.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyConfig {
    /// The base gateway URL (from `GET /gateway/bot`), used to identify and
    /// whenever no resume URL is known. The driver adds its query string.
    pub gateway_url: String,
    /// Domains a READY's `resume_gateway_url` may point into; empty (the
    /// default) means the base URL's own domain. A resume URL outside them
    /// is refused and the session dropped, so the token is never sent to a
    /// host the configuration did not name.
    pub resume_domains: Vec<String>,
    /// The delay between retries.
    pub backoff: BackoffConfig,
    /// The hard minimum interval between two connection attempts, in ms
    /// (default 1 s), above every strategy and every trigger.
    pub guard_ms: u64,
    /// The knobs of [`decide`](crate::decide).
    pub decision: DecisionConfig,
    /// Deadlines on every wait.
    pub timeouts: Timeouts,
    /// What proves a connection alive between heartbeats.
    pub zombie: ZombieRule,
    /// When the backoff resets, and how time connected repays it.
    pub stability: StabilityRule,
    /// When the server's requests to reconnect stop being free.
    pub server_requests: ServerRequests,
    /// The most handshakes at the gateway in any window.
    pub attempt_rate: AttemptRate,
    /// What a 4008 close slows down.
    pub rate_limited: RateLimited,
    /// When rejected Identifies are a loop.
    pub identify_loop: IdentifyLoop,
    /// When resuming stops.
    pub resume: ResumeBreaker,
    /// Optional give-up limits.
    pub give_up: GiveUpLimits,
    /// The gateway's send limit per connection.
    pub send_limit: SendLimit,
    /// How a [`Fleet`](crate::Fleet) recovers from a fleet-wide outage (on
    /// by default; a lone policy ignores it).
    pub fleet_recovery: FleetRecovery,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            gateway_url: "wss://gateway.discord.gg".to_owned(),
            resume_domains: Vec::new(),
            backoff: BackoffConfig::DEFAULT,
            guard_ms: 1_000,
            decision: DecisionConfig::DEFAULT,
            timeouts: Timeouts::DEFAULT,
            zombie: ZombieRule::AckOnly,
            stability: StabilityRule::DEFAULT,
            server_requests: ServerRequests::DEFAULT,
            attempt_rate: AttemptRate::DEFAULT,
            rate_limited: RateLimited::DEFAULT,
            identify_loop: IdentifyLoop::DEFAULT,
            resume: ResumeBreaker::DEFAULT,
            give_up: GiveUpLimits::default(),
            send_limit: SendLimit::DISCORD,
            fleet_recovery: FleetRecovery::DEFAULT,
        }
    }
}

impl PolicyConfig {
    /// The defaults with another base URL.
    #[must_use]
    pub fn with_gateway_url(url: impl Into<String>) -> Self {
        Self {
            gateway_url: url.into(),
            ..Self::default()
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field whose value would break a guarantee of the policy.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !gateway_url::is_well_formed(&self.gateway_url) {
            return Err(ConfigError::GatewayUrl);
        }
        if self
            .resume_domains
            .iter()
            .any(|d| d.trim_end_matches('.').is_empty() || d.len() > 253)
        {
            return Err(ConfigError::ResumeDomain);
        }
        let b = &self.backoff;
        if b.cap_ms > MAX_DELAY_MS {
            return Err(ConfigError::TooLong {
                field: "backoff.cap_ms",
                max_ms: MAX_DELAY_MS,
            });
        }
        if b.base_ms > b.cap_ms {
            return Err(ConfigError::BaseAboveCap {
                base_ms: b.base_ms,
                cap_ms: b.cap_ms,
            });
        }
        if b.base_ms == 0 && b.strategy != BackoffStrategy::None {
            return Err(ConfigError::Zero {
                field: "backoff.base_ms",
            });
        }
        let d = &self.decision;
        if d.invalid_session_wait_min_ms > d.invalid_session_wait_max_ms {
            return Err(ConfigError::EmptyRange {
                field: "decision.invalid_session_wait_*_ms",
            });
        }
        for (field, value) in [
            ("guard_ms", self.guard_ms),
            (
                "decision.invalid_session_wait_max_ms",
                d.invalid_session_wait_max_ms,
            ),
            ("stability.window_ms", self.stability.window_ms),
            ("stability.credit_ms", self.stability.credit_ms),
            ("server_requests.window_ms", self.server_requests.window_ms),
            ("rate_limited.wait_ms", self.rate_limited.wait_ms),
            ("attempt_rate.window_ms", self.attempt_rate.window_ms),
            ("identify_loop.wait_ms", self.identify_loop.wait_ms),
            ("resume.short_waits_for_ms", self.resume.short_waits_for_ms),
            (
                "resume.max_wait_while_resumable_ms",
                self.resume.max_wait_while_resumable_ms,
            ),
            ("timeouts.connect_ms", self.timeouts.connect_ms),
            ("timeouts.hello_ms", self.timeouts.hello_ms),
            ("timeouts.handshake_ms", self.timeouts.handshake_ms),
            ("timeouts.close_ms", self.timeouts.close_ms),
        ] {
            if value > MAX_DELAY_MS {
                return Err(ConfigError::TooLong {
                    field,
                    max_ms: MAX_DELAY_MS,
                });
            }
        }
        for (field, value) in [
            ("timeouts.connect_ms", self.timeouts.connect_ms),
            ("timeouts.hello_ms", self.timeouts.hello_ms),
            ("timeouts.handshake_ms", self.timeouts.handshake_ms),
            ("timeouts.close_ms", self.timeouts.close_ms),
            ("send_limit.window_ms", self.send_limit.window_ms),
            ("send_limit.commands", u64::from(self.send_limit.commands)),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        if self.attempt_rate.max_attempts == 0
            || self.attempt_rate.max_attempts > AttemptRate::MAX_ATTEMPTS
        {
            return Err(ConfigError::OutOfRange {
                field: "attempt_rate.max_attempts",
                min: 1,
                max: u64::from(AttemptRate::MAX_ATTEMPTS),
            });
        }
        if self.identify_loop.max_rejected == 0 {
            return Err(ConfigError::Zero {
                field: "identify_loop.max_rejected",
            });
        }
        if self.resume.max_failed_resumes == 0 {
            return Err(ConfigError::Zero {
                field: "resume.max_failed_resumes",
            });
        }
        self.fleet_recovery.validate()
    }
}

/// A configuration value the policy refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `gateway_url` is not a well-formed `ws://` or `wss://` URL (see
    /// [`GatewayUrl::parse`](crate::GatewayUrl::parse)).
    GatewayUrl,
    /// An entry of `resume_domains` is empty or longer than 253 bytes.
    ResumeDomain,
    /// The backoff's base is above its cap.
    BaseAboveCap {
        /// The base.
        base_ms: u64,
        /// The cap.
        cap_ms: u64,
    },
    /// A duration is above [`MAX_DELAY_MS`].
    TooLong {
        /// The field.
        field: &'static str,
        /// The largest value allowed.
        max_ms: u64,
    },
    /// A value that must be positive is 0.
    Zero {
        /// The field.
        field: &'static str,
    },
    /// A range whose minimum is above its maximum.
    EmptyRange {
        /// The fields.
        field: &'static str,
    },
    /// A count outside the range the policy supports.
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::GatewayUrl => write!(
                f,
                "gateway_url must be a well-formed ws:// or wss:// URL of at most {} bytes",
                gateway_url::MAX_URL_LEN
            ),
            Self::ResumeDomain => write!(f, "resume_domains entries must be 1 to 253 bytes"),
            Self::BaseAboveCap { base_ms, cap_ms } => write!(
                f,
                "backoff.base_ms ({base_ms}) is above backoff.cap_ms ({cap_ms})"
            ),
            Self::TooLong { field, max_ms } => write!(f, "{field} is above {max_ms} ms"),
            Self::Zero { field } => write!(f, "{field} must be positive"),
            Self::EmptyRange { field } => write!(f, "{field}: the minimum is above the maximum"),
            Self::OutOfRange { field, min, max } => {
                write!(f, "{field} must be between {min} and {max}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_round_trips_through_json() {
        let config = PolicyConfig::default();
        config.validate().unwrap();
        let json = serde_json::to_string(&config).unwrap();
        let back: PolicyConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn a_partial_json_config_keeps_the_other_defaults() {
        let config: PolicyConfig =
            serde_json::from_str(r#"{"backoff":{"strategy":"full_jitter","base_ms":500,"cap_ms":30000},"guard_ms":2000}"#)
                .unwrap();
        assert_eq!(config.backoff.strategy, BackoffStrategy::FullJitter);
        assert_eq!(config.guard_ms, 2_000);
        assert_eq!(config.timeouts, Timeouts::DEFAULT);
        config.validate().unwrap();
    }

    #[test]
    fn bad_values_are_refused_with_the_field_named() {
        let mut c = PolicyConfig::default();
        c.backoff.base_ms = 90_000;
        let err = c.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "backoff.base_ms (90000) is above backoff.cap_ms (60000)"
        );

        let mut c = PolicyConfig::default();
        c.timeouts.hello_ms = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "timeouts.hello_ms must be positive"
        );

        let c = PolicyConfig::with_gateway_url("https://gateway.discord.gg");
        assert_eq!(c.validate(), Err(ConfigError::GatewayUrl));

        let mut c = PolicyConfig::default();
        c.decision.invalid_session_wait_min_ms = 9_000;
        assert!(matches!(c.validate(), Err(ConfigError::EmptyRange { .. })));
    }

    #[test]
    fn the_storm_baseline_may_have_a_zero_base() {
        let c = PolicyConfig {
            backoff: BackoffConfig {
                strategy: BackoffStrategy::None,
                base_ms: 0,
                cap_ms: 0,
            },
            guard_ms: 0,
            ..PolicyConfig::default()
        };
        c.validate().unwrap();
    }
}
