//! Scenarios: a fleet, a gateway, links, and a schedule of faults, as data.
//!
//! A scenario is a JSON document (every field has a default, unknown fields
//! are refused) or one of the built-in [`Scenario::builtin`] names. Times
//! are in milliseconds.
//!
//! A run has three phases. *Start-up*: every shard connects for the first
//! time, with no fault. *Chaos*: from the first fault until `heal_at_ms`,
//! the faults in `faults` apply. *Heal*: from then until `duration_ms`,
//! every link and the gateway are healthy for good and every shard must come
//! back within `recovery_bound_ms`.
//!
//! With `faults_after_startup` (the default, and every built-in) the fault
//! schedule's clock starts when **every shard of the model has a session**:
//! `faults[].at_ms`, `heal_at_ms` and `duration_ms` count from that moment,
//! so each model is judged on reconnecting a fleet it managed to start,
//! never on its start-up, and start-up time is a metric of its own. (The
//! alternative, starting every run from established sessions, would hide
//! the start-up time and the daily session starts it costs.) Without it the
//! times count from the start of the run and the whole run is judged, as in
//! replays of schedules found by the property tests.
//!
//! The fault schedule is data, separate from the seed: the property tests
//! shrink a failing schedule to its few essential faults while the seed
//! stays fixed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::rules;

/// One simulated bot: its shards, the gateway they talk to and what goes
/// wrong.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// A short name.
    pub name: String,
    /// What the scenario shows.
    pub description: String,
    /// Shards of the bot (1 to [`MAX_SHARDS`]).
    pub shards: u32,
    /// Shards start their first connection spread uniformly over this long.
    pub start_spread_ms: u64,
    /// Whether the fault schedule's times count from the moment every shard
    /// has a session (true) or from the start of the run (false).
    pub faults_after_startup: bool,
    /// With `faults_after_startup`, how long the fleet may take to start;
    /// a model that has not given every shard a session by then ends its
    /// run unjudged, with a slow start-up.
    pub startup_limit_ms: u64,
    /// How much shorter than 5 s the gap between two Identify payloads of
    /// one bucket may be, as the gateway sees them, before it counts as a
    /// violation. `None`: twice the link's jitter, and at least 50 ms (the
    /// link alone moves arrivals by up to its jitter). The report also gives
    /// the count at 0 ms.
    pub identify_tolerance_ms: Option<u64>,
    /// When the faults stop for good.
    pub heal_at_ms: u64,
    /// How long every shard has, after `heal_at_ms`, to be connected again.
    pub recovery_bound_ms: u64,
    /// The end of the run.
    pub duration_ms: u64,
    /// The gateway.
    pub gateway: Gateway,
    /// Every link's normal behaviour.
    pub link: Link,
    /// What goes wrong, and when.
    pub faults: Vec<Fault>,
    /// The bot split over several processes that share an identify store
    /// (see [`StoreSpec`]); `None`: one process, with its own limiter. Only
    /// the policy's models use it; peer models run as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreSpec>,
}

/// A bot split over several processes sharing an identify store (Redis in
/// the client), with the store's round trip and outages. Each process runs
/// its share of the shards (contiguous ranges, as even as they go) in its
/// own fleet and falls back to a local share while the store is away
/// (`reconnect_policy::StoreFallback`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSpec {
    /// Processes the shards are split over (1 to `shards`).
    pub processes: u32,
    /// Round trip between a process and the store, ms.
    pub round_trip_ms: u64,
    /// Extra one-way delay drawn uniformly from 0 to this, ms.
    pub jitter_ms: u64,
    /// A request unanswered this long sends its process to the fallback.
    pub call_timeout_ms: u64,
    /// While the store is away, each process checks it this often.
    pub check_every_ms: u64,
    /// Session starts each process may grant on its own per daily period;
    /// `None`: the budget left times its part of the shards.
    pub local_share: Option<u32>,
    /// Which buckets a process grants in while the store is away.
    pub fallback_buckets: reconnect_policy::FallbackBuckets,
    /// When the store is away; times count like the faults' (from the
    /// moment every shard has a session).
    pub outages: Vec<StoreOutage>,
    /// For tests: a broken store that grants every Acquire at once,
    /// whatever the bucket's window (the referee must catch it).
    pub broken: bool,
    /// Whether the processes share their fleet-wide outage probes and
    /// ramp through the store (`reconnect_policy::Fleet::with_shared_recovery`,
    /// told the bot's size), as the Redis runner does by default; `false`:
    /// each process probes and ramps alone.
    pub share_probe: bool,
}

/// A time the store is away: every message to or from it is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreOutage {
    /// When it starts.
    pub at_ms: u64,
    /// How long it lasts.
    pub duration_ms: u64,
}

impl Default for StoreSpec {
    fn default() -> Self {
        Self {
            processes: 8,
            round_trip_ms: 2,
            jitter_ms: 2,
            call_timeout_ms: 500,
            check_every_ms: 1_000,
            local_share: None,
            fallback_buckets: reconnect_policy::FallbackBuckets::Owned,
            outages: Vec::new(),
            broken: false,
            share_probe: true,
        }
    }
}

impl StoreSpec {
    /// How long the store grants nothing after an outage ends: long enough
    /// for every process still in a fallback to notice (a call timeout and
    /// a check period, plus a round trip with its jitter) and for its last
    /// local grant to be a window old.
    #[must_use]
    pub fn return_hold_ms(&self) -> u64 {
        self.call_timeout_ms
            .saturating_add(self.check_every_ms)
            .saturating_add(self.round_trip_ms)
            .saturating_add(self.jitter_ms.saturating_mul(2))
            .saturating_add(reconnect_policy::STORE_WINDOW_MS)
    }

    /// The first shard of `process` among `shards` (process `processes`
    /// gives the end).
    #[must_use]
    pub fn first_shard(&self, process: u32, shards: u32) -> u32 {
        let p = u64::from(self.processes.max(1));
        u32::try_from(u64::from(process) * u64::from(shards) / p).unwrap_or(u32::MAX)
    }
}

/// The largest fleet a scenario may ask for.
pub const MAX_SHARDS: u32 = 1_000_000;
/// The longest run a scenario may ask for: 7 simulated days.
pub const MAX_DURATION_MS: u64 = 7 * 24 * 3_600_000;

/// The gateway server's rules.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gateway {
    /// op 10's `heartbeat_interval`.
    pub heartbeat_interval_ms: u64,
    /// The server closes a socket that sends no heartbeat for this long.
    pub heartbeat_timeout_ms: u64,
    /// How long a session outlives its socket and can still be resumed.
    pub resume_window_ms: u64,
    /// One dispatch per session per this long (0: none).
    pub dispatch_interval_ms: u64,
    /// Identify buckets (`max_concurrency`).
    pub max_concurrency: u16,
    /// Session starts per period (`session_start_limit.total`).
    pub session_start_total: u32,
    /// Session starts left at the start of the run.
    pub session_start_remaining: u32,
    /// When the session start allowance refills.
    pub session_start_reset_after_ms: u64,
    /// WebSocket handshakes the gateway admits per second; 0 (the default)
    /// is no cap. Discord documents no such cap (a Discord engineer wrote
    /// that gateway connections are not rate-limited as such,
    /// discord-api-docs#1369): a positive value is an assumption, a
    /// what-if, and the report says so.
    pub admission_per_s: u32,
    /// How the gateway answers a handshake beyond its capacity.
    pub overload: Overload,
}

/// How an overloaded gateway answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Overload {
    /// Refuse the connection.
    Refuse,
    /// HTTP 429 with this Retry-After.
    RateLimit {
        /// The Retry-After, in ms.
        retry_after_ms: u64,
    },
}

impl Default for Gateway {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 41_250,
            heartbeat_timeout_ms: 41_250 + 20_000,
            resume_window_ms: 180_000,
            dispatch_interval_ms: 20_000,
            max_concurrency: 16,
            // A 1000-shard bot gets max(2000, guilds / 1000 × 5) session
            // starts a day (GW "Session Start Limit"), about 5,000.
            session_start_total: 5_000,
            session_start_remaining: 5_000,
            session_start_reset_after_ms: 24 * 3_600_000,
            admission_per_s: 0,
            overload: Overload::RateLimit {
                retry_after_ms: 5_000,
            },
        }
    }
}

impl Gateway {
    /// Shards per identify bucket in a gateway grown with its fleet
    /// ([`Gateway::grown_for`]): every fleet starts in this many 5 s
    /// windows.
    pub const GROWN_SHARDS_PER_BUCKET: u32 = 16;
    /// Handshakes per second a grown gateway admits for every 1,000 shards
    /// (the built-in scenarios' 200/s for their 1,000 shards).
    pub const GROWN_ADMISSION_PER_1000_SHARDS: u32 = 200;
    /// Session starts a day per shard in a grown gateway's allowance
    /// (Discord grants `max(2000, guilds / 1000 × 5)`, about five per shard
    /// of 1,000 guilds), never fewer than the default 5,000.
    pub const GROWN_STARTS_PER_SHARD: u32 = 5;

    /// This gateway grown with a fleet of `shards`, so that every shard
    /// sees the same conditions whatever the fleet's size (the scale runs,
    /// the simulator's benchmark and the split-bot runs use it): one
    /// identify bucket per [`Gateway::GROWN_SHARDS_PER_BUCKET`] shards (at
    /// most 65,535), [`Gateway::GROWN_ADMISSION_PER_1000_SHARDS`]
    /// handshakes/s per 1,000 shards, and
    /// [`Gateway::GROWN_STARTS_PER_SHARD`] session starts per shard (at
    /// least 5,000), all left. The rest is kept.
    ///
    /// ```
    /// use reconnect_sim::scenario::Gateway;
    ///
    /// let grown = Gateway::default().grown_for(10_000);
    /// assert_eq!(grown.max_concurrency, 625);
    /// assert_eq!(grown.admission_per_s, 2_000);
    /// assert_eq!(grown.session_start_remaining, 50_000);
    /// ```
    #[must_use]
    pub fn grown_for(self, shards: u32) -> Self {
        let starts = shards
            .saturating_mul(Self::GROWN_STARTS_PER_SHARD)
            .max(5_000);
        Self {
            max_concurrency: u16::try_from(shards.div_ceil(Self::GROWN_SHARDS_PER_BUCKET))
                .unwrap_or(u16::MAX),
            admission_per_s: shards
                .saturating_mul(Self::GROWN_ADMISSION_PER_1000_SHARDS)
                .div_ceil(1_000),
            session_start_total: starts,
            session_start_remaining: starts,
            ..self
        }
    }
}

/// Every link's normal behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Link {
    /// One-way latency, ms.
    pub latency_ms: u64,
    /// Up to this much more, uniformly, per message.
    pub jitter_ms: u64,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            latency_ms: 40,
            jitter_ms: 20,
        }
    }
}

/// One fault: what, to whom, from when, for how long.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Start, ms from the start of the run.
    pub at_ms: u64,
    /// Length, ms (cut short by the heal).
    pub duration_ms: u64,
    /// Which shards it hits.
    #[serde(default)]
    pub scope: Scope,
    /// What happens.
    pub kind: FaultKind,
}

/// The shards a fault hits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Scope {
    /// Every shard (a regional outage, a fleet-wide event).
    #[default]
    All,
    /// Each shard with this probability (drawn from the seed).
    Fraction {
        /// 0 to 1.
        fraction: f64,
    },
    /// Shards `from..to`.
    Shards {
        /// First shard.
        from: u32,
        /// One past the last shard.
        to: u32,
    },
}

/// How a link that is down treats traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownMode {
    /// Connections are reset (both ends see the socket close) and new ones
    /// are refused at once.
    #[default]
    Refuse,
    /// Everything is dropped silently: open sockets become half-open
    /// zombies and new connections time out.
    Blackhole,
}

/// What a fault does.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum FaultKind {
    /// The link is down for the whole fault.
    Outage {
        /// How it is down.
        #[serde(default)]
        mode: DownMode,
    },
    /// The link goes down and up, each period drawn uniformly from its
    /// range (minimum dwell times keep it from flickering unrealistically).
    Flapping {
        /// Shortest up period.
        min_up_ms: u64,
        /// Longest up period.
        max_up_ms: u64,
        /// Shortest down period.
        min_down_ms: u64,
        /// Longest down period.
        max_down_ms: u64,
        /// How it is down.
        #[serde(default)]
        mode: DownMode,
    },
    /// Sockets open when the fault starts stop carrying anything, in both
    /// directions, and never close (a zombie); new sockets work.
    HalfOpen,
    /// Every socket opened during the fault is dropped this long after it
    /// opened.
    ConnectThenDrop {
        /// Lifetime of a socket, ms.
        after_ms: u64,
    },
    /// Extra one-way latency and jitter.
    Latency {
        /// Extra latency, ms.
        extra_ms: u64,
        /// Extra jitter, ms.
        jitter_ms: u64,
    },
    /// Each message is lost with this probability and retransmitted
    /// (200 ms later, repeatedly): loss shows up as delay, as on TCP.
    Loss {
        /// 0 to 1 (values of 0.95 and above are read as 0.95).
        probability: f64,
    },
    /// A rolling restart: every connected socket in scope gets op 7 at a
    /// moment spread over the fault, and is closed by the server 5 s later.
    RollingRestart,
    /// An op 9 wave: every connected socket in scope gets op 9 at a moment
    /// spread over the fault.
    InvalidSessions {
        /// op 9's `d`.
        resumable: bool,
    },
    /// The server closes every connected socket in scope with this code at
    /// a moment spread over the fault.
    ServerClose {
        /// The close code.
        code: u16,
    },
    /// The gateway admits only this many handshakes per second.
    Overload {
        /// Handshakes per second.
        admission_per_s: u32,
    },
}

/// A scenario the simulator refuses to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid scenario: {}", self.0)
    }
}

impl std::error::Error for ScenarioError {}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "custom".to_owned(),
            description: String::new(),
            shards: 1_000,
            start_spread_ms: 10_000,
            faults_after_startup: true,
            startup_limit_ms: 3 * 3_600_000,
            identify_tolerance_ms: None,
            heal_at_ms: 600_000,
            recovery_bound_ms: 600_000,
            duration_ms: 1_200_000,
            gateway: Gateway::default(),
            link: Link::default(),
            faults: Vec::new(),
            store: None,
        }
    }
}

/// The names of the built-in scenarios, in the order `compare` shows them.
pub const BUILTIN: [&str; 9] = [
    "outage-30s",
    "flapping-link",
    "rolling-restart",
    "zombie-links",
    "op9-wave",
    "repeated-outage",
    "session-limit",
    "overload",
    "connect-then-drop",
];

/// Where every built-in fault schedule begins, ms after the last shard's
/// READY.
const FAULT_AT_MS: u64 = 10_000;

/// A built-in scenario with no fault: start-up, then ten quiet minutes. On
/// it every model must be judged healthy.
pub const NO_FAULT: &str = "no-fault";

/// A built-in scenario (not in [`BUILTIN`]: only the policy's models run
/// it as a bot split over processes) where the bot runs in 8 processes
/// sharing an identify store: every link is cut for 200 s, longer than the
/// 180 s resume window, so every shard must identify again, and the store
/// goes away for 30 s, 20 s into the recovery.
pub const STORE_OUTAGE: &str = "store-outage-in-recovery";

impl Scenario {
    /// Reads a scenario from JSON and checks it.
    ///
    /// # Errors
    ///
    /// The JSON is malformed, has unknown fields, or fails [`Scenario::validate`].
    pub fn from_json(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Self =
            serde_json::from_str(text).map_err(|e| ScenarioError(e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The identify window tolerance in force (see
    /// [`Scenario::identify_tolerance_ms`]).
    #[must_use]
    pub fn identify_tolerance(&self) -> u64 {
        self.identify_tolerance_ms
            .unwrap_or_else(|| self.link.jitter_ms.saturating_mul(2).max(50))
    }

    /// A built-in scenario by name ([`BUILTIN`], or [`NO_FAULT`]). Every
    /// built-in starts its faults once the model's whole fleet has a
    /// session.
    #[must_use]
    pub fn builtin(name: &str) -> Option<Self> {
        let base = Self {
            name: name.to_owned(),
            ..Self::default()
        };
        // Every fault schedule begins 10 s after the last shard's READY: a
        // fault at that very instant would also cut the READY still on its
        // way to the client, and judge it as a lost first connect.
        let at = |ms: u64| FAULT_AT_MS + ms;
        let outage = |at_ms: u64, duration_ms, mode| Fault {
            at_ms: at(at_ms),
            duration_ms,
            scope: Scope::All,
            kind: FaultKind::Outage { mode },
        };
        let s = match name {
            STORE_OUTAGE => Self {
                description: "the bot split over processes sharing an identify store (8 unless set); every link refused for 200 s (past the resume window, so every shard identifies again); the store away for 30 s from 20 s into the recovery".into(),
                heal_at_ms: at(200_000),
                duration_ms: at(200_000 + 600_000),
                gateway: Gateway {
                    // 16 shards a bucket, as the scale runs.
                    max_concurrency: 64,
                    ..Gateway::default()
                },
                faults: vec![outage(0, 200_000, DownMode::Refuse)],
                store: Some(StoreSpec {
                    outages: vec![StoreOutage {
                        at_ms: at(220_000),
                        duration_ms: 30_000,
                    }],
                    ..StoreSpec::default()
                }),
                ..base
            },
            NO_FAULT => Self {
                description: "no fault: the fleet starts, then ten quiet minutes".into(),
                heal_at_ms: 0,
                duration_ms: 600_000,
                ..base
            },
            "outage-30s" => Self {
                description: "every link is reset and refuses connections for 30 s".into(),
                heal_at_ms: at(30_000),
                duration_ms: at(30_000 + 600_000),
                faults: vec![outage(0, 30_000, DownMode::Refuse)],
                ..base
            },
            "flapping-link" => Self {
                description: "every link flaps: up 1–120 s, down 0.5–45 s, for 15 minutes".into(),
                heal_at_ms: at(900_000),
                duration_ms: at(900_000 + 600_000),
                faults: vec![Fault {
                    at_ms: at(0),
                    duration_ms: 900_000,
                    scope: Scope::All,
                    kind: FaultKind::Flapping {
                        min_up_ms: 1_000,
                        max_up_ms: 120_000,
                        min_down_ms: 500,
                        max_down_ms: 45_000,
                        mode: DownMode::Refuse,
                    },
                }],
                ..base
            },
            "rolling-restart" => Self {
                description: "op 7 to every shard over 60 s, each socket closed 5 s later".into(),
                heal_at_ms: at(300_000),
                duration_ms: at(600_000),
                faults: vec![Fault {
                    at_ms: at(0),
                    duration_ms: 60_000,
                    scope: Scope::All,
                    kind: FaultKind::RollingRestart,
                }],
                ..base
            },
            "zombie-links" => Self {
                description: "30 % of the sockets go half-open (nothing flows, nothing closes)"
                    .into(),
                heal_at_ms: at(300_000),
                duration_ms: at(600_000),
                faults: vec![Fault {
                    at_ms: at(0),
                    duration_ms: 1_000,
                    scope: Scope::Fraction { fraction: 0.3 },
                    kind: FaultKind::HalfOpen,
                }],
                ..base
            },
            "op9-wave" => Self {
                description: "op 9 (not resumable) to every shard over 10 s".into(),
                heal_at_ms: at(300_000),
                duration_ms: at(900_000),
                faults: vec![Fault {
                    at_ms: at(0),
                    duration_ms: 10_000,
                    scope: Scope::All,
                    kind: FaultKind::InvalidSessions { resumable: false },
                }],
                ..base
            },
            "repeated-outage" => Self {
                description: "six 30 s outages ten minutes apart against a daily budget of 5,000 session starts: who burns it"
                    .into(),
                heal_at_ms: at(3_000_000 + 30_000),
                duration_ms: at(3_000_000 + 30_000 + 600_000),
                faults: (0..6)
                    .map(|i| outage(i * 600_000, 30_000, DownMode::Refuse))
                    .collect(),
                ..base
            },
            "session-limit" => Self {
                description: "100 shards with 130 session starts for the day; start-up spends 100, two op 9 waves need 200"
                    .into(),
                shards: 100,
                gateway: Gateway {
                    max_concurrency: 4,
                    session_start_total: 1_000,
                    session_start_remaining: 130,
                    session_start_reset_after_ms: 900_000,
                    ..Gateway::default()
                },
                heal_at_ms: at(480_000),
                recovery_bound_ms: 900_000,
                duration_ms: at(1_680_000),
                faults: vec![
                    Fault {
                        at_ms: at(180_000),
                        duration_ms: 10_000,
                        scope: Scope::All,
                        kind: FaultKind::InvalidSessions { resumable: false },
                    },
                    Fault {
                        at_ms: at(360_000),
                        duration_ms: 10_000,
                        scope: Scope::All,
                        kind: FaultKind::InvalidSessions { resumable: false },
                    },
                ],
                ..base
            },
            "overload" => Self {
                description:
                    "what-if: every link resets for 10 s while the gateway admits only 20 handshakes/s (an assumed cap, not a documented rule)"
                        .into(),
                heal_at_ms: at(120_000),
                duration_ms: at(120_000 + 600_000),
                faults: vec![
                    outage(0, 10_000, DownMode::Refuse),
                    Fault {
                        at_ms: at(0),
                        duration_ms: 120_000,
                        scope: Scope::All,
                        kind: FaultKind::Overload {
                            admission_per_s: 20,
                        },
                    },
                ],
                ..base
            },
            "connect-then-drop" => Self {
                description: "the server closes every socket with 1011 over 10 s, and for 5 minutes every new socket drops 300 ms after it opened: the link accepts and the gateway says Hello, then it is gone (why a connection must prove itself before the backoff resets)"
                    .into(),
                heal_at_ms: at(300_000),
                duration_ms: at(300_000 + 600_000),
                faults: vec![
                    Fault {
                        at_ms: at(0),
                        duration_ms: 10_000,
                        scope: Scope::All,
                        kind: FaultKind::ServerClose { code: 1011 },
                    },
                    Fault {
                        at_ms: at(0),
                        duration_ms: 300_000,
                        scope: Scope::All,
                        kind: FaultKind::ConnectThenDrop { after_ms: 300 },
                    },
                ],
                ..base
            },
            _ => return None,
        };
        Some(s)
    }

    /// Checks the scenario's numbers.
    ///
    /// # Errors
    ///
    /// The first field that is out of range, named.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let err = |m: &str| Err(ScenarioError(m.to_owned()));
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return err("shards must be 1 to 1000000");
        }
        if self.duration_ms == 0 || self.duration_ms > MAX_DURATION_MS {
            return err("duration_ms must be 1 ms to 7 days");
        }
        if self.heal_at_ms > self.duration_ms {
            return err("heal_at_ms must not be after duration_ms");
        }
        let g = &self.gateway;
        if g.heartbeat_interval_ms < 1_000 || g.heartbeat_timeout_ms < g.heartbeat_interval_ms {
            return err(
                "gateway.heartbeat_interval_ms must be at least 1000 and heartbeat_timeout_ms at least that",
            );
        }
        if g.max_concurrency == 0 {
            return err("gateway.max_concurrency must be positive");
        }
        if self.startup_limit_ms == 0 || self.startup_limit_ms > MAX_DURATION_MS {
            return err("startup_limit_ms must be 1 ms to 7 days");
        }
        if self
            .identify_tolerance_ms
            .is_some_and(|t| t >= rules::IDENTIFY_WINDOW_MS)
        {
            return err("identify_tolerance_ms must be shorter than the 5 s identify window");
        }
        if g.session_start_remaining > g.session_start_total {
            return err("gateway.session_start_remaining must not exceed session_start_total");
        }
        if self.link.latency_ms > 60_000 || self.link.jitter_ms > 60_000 {
            return err("link latency and jitter must be at most 60 s");
        }
        if let Some(store) = &self.store {
            if store.processes == 0 || store.processes > self.shards {
                return err("store.processes must be 1 to shards");
            }
            if store.call_timeout_ms == 0 || store.check_every_ms == 0 {
                return err("store.call_timeout_ms and store.check_every_ms must be positive");
            }
            if store.round_trip_ms > 60_000 || store.jitter_ms > 60_000 {
                return err("store round trip and jitter must be at most 60 s");
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            let bad = match f.kind {
                FaultKind::Flapping {
                    min_up_ms,
                    max_up_ms,
                    min_down_ms,
                    max_down_ms,
                    ..
                } => {
                    min_up_ms == 0
                        || min_down_ms == 0
                        || min_up_ms > max_up_ms
                        || min_down_ms > max_down_ms
                }
                FaultKind::Loss { probability } => !(0.0..=1.0).contains(&probability),
                FaultKind::Overload { admission_per_s } => admission_per_s == 0,
                FaultKind::Latency {
                    extra_ms,
                    jitter_ms,
                } => extra_ms > 60_000 || jitter_ms > 60_000,
                _ => false,
            };
            let scope_bad = match f.scope {
                Scope::Fraction { fraction } => !(0.0..=1.0).contains(&fraction),
                Scope::Shards { from, to } => from >= to,
                Scope::All => false,
            };
            if bad || scope_bad {
                return Err(ScenarioError(format!(
                    "faults[{i}] has out-of-range values"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_is_valid_and_round_trips() {
        for name in BUILTIN.into_iter().chain([NO_FAULT, STORE_OUTAGE]) {
            let s = Scenario::builtin(name).unwrap();
            s.validate().unwrap();
            assert!(s.faults_after_startup, "{name}");
            let json = serde_json::to_string_pretty(&s).unwrap();
            assert_eq!(Scenario::from_json(&json).unwrap(), s, "{name}");
        }
        assert!(Scenario::builtin("nope").is_none());
    }

    #[test]
    fn bad_json_is_refused_with_a_reason() {
        assert!(Scenario::from_json("{").is_err());
        assert!(
            Scenario::from_json(r#"{"shardz": 3}"#)
                .unwrap_err()
                .0
                .contains("shardz")
        );
        let e = Scenario::from_json(r#"{"shards": 0}"#).unwrap_err();
        assert!(e.to_string().contains("shards"), "{e}");
    }
}
