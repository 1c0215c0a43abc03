//! The report of one run: the metrics and a verdict in three parts.
//!
//! Field names are stable: scripts may read them from `--json`, where every
//! number is a JSON number (a time that never came, such as the recovery of
//! a shard that never recovered, is `null`). The metrics follow the
//! storm-metric set M1–M8 the README's Glossary explains. Everything but start-up
//! is counted **from the moment judging begins** (the first fault, once
//! every shard of the model has a session) and over the shards that had a
//! session then:
//!
//! | field | metric |
//! |---|---|
//! | `startup_ms` | how long the model took until every shard had a session (not judged) |
//! | `max_handshakes_per_client_60s`, `max_attempts_per_client_60s`, `p99_attempts_per_client_60s`, `refused_dials` | M1: handshakes one shard brought to the gateway in any 60 s, and its dials of every kind (dials the link refused are counted apart) |
//! | `peak_arrivals_1s`, `peak_arrivals_5s`, `peak_handshakes_100ms`, `admission_per_s`, `rejected_attempts`, `late_seconds_over_budget` | M2: handshakes reaching the gateway (and, only under an assumed cap, the ones turned away) |
//! | `identifies`, `identify_violations`, `identify_violations_strict`, `identify_tolerance_ms`, `session_starts`, `token_reset`, `resumes`, `resumes_succeeded`, `identifies_while_resumable`, `sessions_expired` | M3: identify discipline; a session lost is either dropped by the client (`identifies_while_resumable`: it identified while the gateway could still resume) or expired at the gateway (`sessions_expired`: the client did not resume it within the resume window) |
//! | `recovery_p50_ms`, `recovery_p99_ms`, `recovery_max_ms`, `recovery_lower_bound_ms`, `unrecovered` | M4: time from the heal until each judged shard has a session again; a shard that never does counts as never (`null`), not as absent |
//! | `attempts`, `disconnects`, `amplification`, `excess_attempts` | M5: attempts per session to win back |
//! | `sync_index` | M6: peak-to-mean of attempts per second over the 5 minutes after the heal |
//! | `healthy_link_reconnects`, `retries_after_fatal`, `max_open_sockets_per_shard` | M7 |
//! | `events_lost`, `events_duplicated`, `gave_up` | delivery and liveness |
//!
//! **The verdict** has three independent parts, each with its reasons:
//! - **STORM** (`storm`, `storm_reasons`): what the gateway's limits punish.
//!   A shard brought more than 10 handshakes to the gateway in some 60 s;
//!   an Identify broke a bucket's 5 s window by more than the tolerance; the
//!   daily session start budget ran out; under an assumed admission cap,
//!   handshakes still arrived over it more than 60 s after the heal.
//!   `storm_strict` gives the same verdict with no identify tolerance.
//! - **SLOW RECOVERY** (`slow_recovery`, `slow_recovery_reasons`): a judged
//!   shard without a session at the end; the slowest recovery beyond the
//!   scenario's `recovery_bound_ms`; p99 recovery more than
//!   [`SLOW_SLACK_MS`] beyond the gateway's lower bound; or a fleet that
//!   never finished starting.
//! - **HERD** (`herd`, `herd_reasons`): handshakes synchronised into a
//!   short window: more than a tenth of the judged shards (and at least
//!   [`HERD_MIN_HANDSHAKES`]) reached the gateway within one 100 ms.
//!
//! `assumptions` lists, in words, everything the verdict rests on that the
//! Discord docs do not fix.

use serde::{Deserialize, Serialize};

use crate::metrics::{Recorder, quantile};
use crate::scenario::{FaultKind, Scenario};

/// The most handshakes a shard may bring to the gateway in 60 s before it
/// counts as storming.
pub const STORM_ATTEMPTS_PER_MINUTE: u32 = 10;
/// How long after the heal arrivals above an assumed admission cap are
/// tolerated.
pub const STORM_GRACE_AFTER_HEAL_MS: u64 = 60_000;
/// How far p99 recovery may lie beyond the gateway's lower bound before it
/// counts as slow.
pub const SLOW_SLACK_MS: u64 = 60_000;
/// The fewest handshakes in 100 ms that count as a herd, whatever the
/// fleet's size.
pub const HERD_MIN_HANDSHAKES: u32 = 20;

/// The outcome of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The strategy or peer model.
    pub model: String,
    /// The seed.
    pub seed: u64,
    /// Shards.
    pub shards: u32,
    /// Shards judged: those with a session when judging began.
    pub judged_shards: u64,
    /// How long until every shard had a session at once, ms; `null` if
    /// never within the scenario's start-up limit.
    pub startup_ms: Option<u64>,
    /// Events processed.
    pub events: u64,
    /// Hash of the event trace (same seed, same hash), as hex.
    pub trace_hash: String,
    /// Connection attempts (dials), all shards, from judging on.
    pub attempts: u64,
    /// Dials the link refused: they never reached the gateway.
    pub refused_dials: u64,
    /// Handshakes that reached the gateway.
    pub handshakes: u64,
    /// M1: most handshakes one shard brought to the gateway in 60 s.
    pub max_handshakes_per_client_60s: u32,
    /// M1: most dials of any kind one shard made in 60 s.
    pub max_attempts_per_client_60s: u32,
    /// M1: p99 over shards of dials in 60 s.
    pub p99_attempts_per_client_60s: u32,
    /// M2: most handshakes reaching the gateway in one second.
    pub peak_arrivals_1s: u32,
    /// M2: most handshakes reaching the gateway in five seconds.
    pub peak_arrivals_5s: u32,
    /// M2/M6: most handshakes reaching the gateway in any 100 ms.
    pub peak_handshakes_100ms: u32,
    /// M2: the gateway's admission cap per second (0: none, as documented).
    pub admission_per_s: u32,
    /// M2/M5: handshakes turned away by an assumed cap.
    pub rejected_attempts: u64,
    /// M2: seconds, later than 60 s after the heal, with arrivals above an
    /// assumed cap.
    pub late_seconds_over_budget: u64,
    /// M3: Identify payloads received.
    pub identifies: u64,
    /// M3: Identify payloads inside a bucket's window, less the tolerance.
    pub identify_violations: u64,
    /// M3: Identify payloads inside a bucket's 5 s window, no tolerance.
    pub identify_violations_strict: u64,
    /// M3: the tolerance the window was judged with, ms.
    pub identify_tolerance_ms: u64,
    /// M3: sessions started.
    pub session_starts: u64,
    /// M3: the daily session start limit ran out.
    pub token_reset: bool,
    /// M3: Resume payloads received.
    pub resumes: u64,
    /// M3: resumes answered with RESUMED.
    pub resumes_succeeded: u64,
    /// M3: identifies from shards whose session was still resumable.
    pub identifies_while_resumable: u64,
    /// M3: sessions the gateway expired: detached for the whole resume
    /// window, never resumed in time.
    pub sessions_expired: u64,
    /// M4: p50 over judged shards of the time from the heal to a session,
    /// ms; `null` when at least half never recovered.
    pub recovery_p50_ms: Option<u64>,
    /// M4: p99, ms; `null` when more than 1 % never recovered.
    pub recovery_p99_ms: Option<u64>,
    /// M4: max, ms; `null` when any judged shard never recovered.
    pub recovery_max_ms: Option<u64>,
    /// M4: the least time the gateway's limits allow before the slowest
    /// shard has a session again, ms: identify windows for the shards that
    /// must identify, the daily refill when the starts left do not cover
    /// them, zombie detection (one heartbeat interval after the last
    /// heartbeat on a black-holed socket), and an assumed admission cap.
    pub recovery_lower_bound_ms: u64,
    /// M4: judged shards without a session at the end.
    pub unrecovered: u64,
    /// M5: sessions lost (established → not).
    pub disconnects: u64,
    /// M5: attempts per session to win back (sessions lost, plus first
    /// connects when the whole run is judged).
    pub amplification: f64,
    /// M5: attempts beyond one per session to win back.
    pub excess_attempts: u64,
    /// M6: peak-to-mean of attempts per second in the 5 minutes after the
    /// heal (1 is even; much more is a herd); 0 without attempts.
    pub sync_index: f64,
    /// M7: client closes on a socket nothing was wrong with.
    pub healthy_link_reconnects: u64,
    /// M7: attempts after a close code the docs mark "do not reconnect".
    pub retries_after_fatal: u64,
    /// M7: most sockets one shard's client held at once.
    pub max_open_sockets_per_shard: u32,
    /// Dispatches never handed to the bot.
    pub events_lost: u64,
    /// Dispatches handed to the bot more than once.
    pub events_duplicated: u64,
    /// Shards whose client stopped for good.
    pub gave_up: u64,
    /// STORM: the gateway's limits were broken.
    pub storm: bool,
    /// Why STORM.
    pub storm_reasons: Vec<String>,
    /// STORM with a 0 ms identify tolerance (the strict reading).
    pub storm_strict: bool,
    /// SLOW RECOVERY.
    pub slow_recovery: bool,
    /// Why SLOW RECOVERY.
    pub slow_recovery_reasons: Vec<String>,
    /// HERD: handshakes synchronised into a short window.
    pub herd: bool,
    /// Why HERD.
    pub herd_reasons: Vec<String>,
    /// The verdict in one word or several: `ok`, or `STORM`, `SLOW`, `HERD`
    /// joined by `+`.
    pub verdict: String,
    /// What the verdict assumes beyond the Discord docs, in words.
    pub assumptions: Vec<String>,
}

/// Why a scenario cannot be passed by any client, if it cannot: the
/// gateway's own limits put the lower bound past what the scenario allows.
/// Checked before a run (the CLI refuses such a scenario).
#[must_use]
pub fn infeasibility(sc: &Scenario) -> Option<String> {
    let g = &sc.gateway;
    let buckets = u64::from(g.max_concurrency.max(1));
    let windows = |n: u64| n.div_ceil(buckets).saturating_sub(1) * crate::rules::IDENTIFY_WINDOW_MS;
    let shards = u64::from(sc.shards);
    if sc.faults_after_startup && windows(shards) > sc.startup_limit_ms {
        return Some(format!(
            "start-up needs at least {} s of identify windows ({} shards, {} buckets), the limit is {} s",
            windows(shards) / 1_000,
            shards,
            buckets,
            sc.startup_limit_ms / 1_000
        ));
    }
    if shards > u64::from(g.session_start_remaining) + u64::from(g.session_start_total)
        && sc.duration_ms < g.session_start_reset_after_ms
    {
        return Some(format!(
            "{} shards need more session starts than the {} left and one refill give",
            shards, g.session_start_remaining
        ));
    }
    // A wave that ends every session it hits must be re-identified; the
    // identify windows alone then take this long after the wave began.
    for f in &sc.faults {
        let ends_sessions = match f.kind {
            FaultKind::InvalidSessions { resumable } => !resumable,
            FaultKind::Outage { .. } => {
                f.duration_ms.min(sc.heal_at_ms.saturating_sub(f.at_ms)) > g.resume_window_ms
            }
            FaultKind::ServerClose { code } => crate::rules::server_close_ends_session(code),
            _ => false,
        };
        if !ends_sessions {
            continue;
        }
        let hit = match f.scope {
            crate::scenario::Scope::All => shards,
            crate::scenario::Scope::Shards { from, to } => {
                u64::from(to.min(sc.shards).saturating_sub(from))
            }
            crate::scenario::Scope::Fraction { fraction } => (fraction * shards as f64) as u64,
        };
        let done = f.at_ms.saturating_add(windows(hit));
        let allowed = sc.heal_at_ms.saturating_add(
            sc.recovery_bound_ms
                .min(sc.duration_ms.saturating_sub(sc.heal_at_ms)),
        );
        if done > allowed {
            return Some(format!(
                "a fault at {} s ends {hit} sessions; re-identifying them takes until {} s, past the {} s the scenario allows",
                f.at_ms / 1_000,
                done / 1_000,
                allowed / 1_000
            ));
        }
    }
    None
}

impl Report {
    /// Computes the report of a finished run.
    #[must_use]
    pub fn new(sc: &Scenario, model: &str, seed: u64, rec: &Recorder) -> Self {
        let c = rec.judged_counts();
        let judged_from = rec.judged_from.unwrap_or(u64::MAX);
        let mut per_client_u64: Vec<u64> =
            rec.attempts.iter().map(|a| u64::from(a.peak())).collect();
        let max_60 = rec.attempts.iter().map(|a| a.peak()).max().unwrap_or(0);
        let p99_60 = u32::try_from(quantile(&mut per_client_u64, 0.99)).unwrap_or(u32::MAX);
        let max_hs_60 = rec.arrivals.iter().map(|a| a.peak()).max().unwrap_or(0);
        let peak_100ms = rec
            .arrivals_100ms
            .iter()
            .map(|a| a.peak())
            .max()
            .unwrap_or(0);

        let from_s = usize::try_from(judged_from / 1_000).unwrap_or(usize::MAX);
        let arrivals = rec.arrivals_per_s.get(from_s..).unwrap_or_default();
        let peak_1 = arrivals.iter().copied().max().unwrap_or(0);
        let peak_5 = arrivals
            .windows(5)
            .map(|w| w.iter().sum())
            .max()
            .unwrap_or(peak_1);
        let heal_at = rec.heal_at.unwrap_or(u64::MAX);
        let assumed_cap = assumed_admission_cap(sc);
        let budget = sc.gateway.admission_per_s;
        let late_from = usize::try_from(heal_at.saturating_add(STORM_GRACE_AFTER_HEAL_MS) / 1_000)
            .unwrap_or(usize::MAX);
        let late_over = if budget > 0 {
            rec.arrivals_per_s
                .iter()
                .skip(late_from)
                .filter(|&&a| a > budget)
                .count() as u64
        } else {
            0
        };

        let judged_shards = rec.judged.iter().filter(|&&j| j).count() as u64;
        let judged_shards = if rec.judged_from.is_some() {
            judged_shards
        } else {
            0
        };
        let mut recovery = recovery_times(rec);
        let unrecovered = recovery.iter().filter(|r| r.is_none()).count() as u64;
        // A shard that never recovered sorts last, as never (`None`).
        let mut times: Vec<u64> = recovery.iter_mut().map(|r| r.unwrap_or(u64::MAX)).collect();
        let mut at = |q: f64| {
            rec.judged_from?;
            Some(quantile(&mut times, q)).filter(|&v| v != u64::MAX)
        };
        let (p50, p99, max) = (at(0.5), at(0.99), at(1.0));
        let lower_bound = rec.lower_bound_ms;

        let heal_s = usize::try_from(heal_at / 1_000).unwrap_or(usize::MAX);
        let window: Vec<u32> = rec
            .attempts_per_s
            .iter()
            .skip(heal_s)
            .take(300)
            .copied()
            .collect();
        let total: u64 = window.iter().map(|&v| u64::from(v)).sum();
        let sync_index = if total == 0 {
            0.0
        } else {
            let mean = total as f64 / window.len() as f64;
            f64::from(window.iter().copied().max().unwrap_or(0)) / mean
        };

        let attempts: u64 = rec.attempts.count();
        let handshake_count: u64 = rec.arrivals.count();
        let to_win_back = c.disconnects
            + if sc.faults_after_startup {
                0
            } else {
                u64::from(sc.shards)
            };
        let lost: u64 = rec
            .sessions
            .iter()
            .map(|s| u64::from(s.generated.saturating_sub(s.unique)))
            .sum();
        let duplicated: u64 = rec.sessions.iter().map(|s| u64::from(s.duplicates)).sum();
        let tolerance = sc.identify_tolerance();

        let storm_with = |violations: u64| {
            let mut reasons = Vec::new();
            if max_hs_60 > STORM_ATTEMPTS_PER_MINUTE {
                reasons.push(format!(
                    "a shard brought {max_hs_60} handshakes to the gateway within 60 s (limit {STORM_ATTEMPTS_PER_MINUTE})"
                ));
            }
            if violations > 0 {
                reasons.push(format!("{violations} identify violations"));
            }
            if rec.token_reset {
                reasons.push("the daily session start budget ran out (token reset)".to_owned());
            }
            if late_over > 0 {
                reasons.push(format!(
                    "{late_over} seconds over the assumed admission cap more than 60 s after the heal"
                ));
            }
            reasons
        };
        let storm_reasons = storm_with(c.identify_violations);
        let storm_strict = !storm_with(c.identify_violations_strict).is_empty();

        let mut slow = Vec::new();
        if rec.startup_ms.is_none() && sc.faults_after_startup {
            slow.push(format!(
                "the fleet never had every shard in session within the {} s start-up limit; not judged",
                sc.startup_limit_ms / 1_000
            ));
        }
        if unrecovered > 0 {
            slow.push(format!(
                "{unrecovered} of {judged_shards} judged shards without a session at the end"
            ));
        }
        if let Some(m) = max
            && m > sc.recovery_bound_ms
        {
            slow.push(format!(
                "the slowest shard took {:.1} s after the heal (bound {:.1} s)",
                m as f64 / 1e3,
                sc.recovery_bound_ms as f64 / 1e3
            ));
        }
        if let Some(p) = p99
            && p > lower_bound.saturating_add(SLOW_SLACK_MS)
        {
            slow.push(format!(
                "p99 recovery {:.1} s is more than {} s beyond the gateway's lower bound of {:.1} s",
                p as f64 / 1e3,
                SLOW_SLACK_MS / 1_000,
                lower_bound as f64 / 1e3
            ));
        }

        let herd_at =
            HERD_MIN_HANDSHAKES.max(u32::try_from(judged_shards / 10).unwrap_or(u32::MAX));
        let mut herd = Vec::new();
        if peak_100ms > herd_at {
            herd.push(format!(
                "{peak_100ms} handshakes reached the gateway within 100 ms (herd above {herd_at}); sync index {:.1}",
                round2(sync_index)
            ));
        }

        let mut verdict: Vec<&str> = Vec::new();
        if !storm_reasons.is_empty() {
            verdict.push("STORM");
        }
        if !slow.is_empty() {
            verdict.push("SLOW");
        }
        if !herd.is_empty() {
            verdict.push("HERD");
        }
        let verdict = if verdict.is_empty() {
            "ok".to_owned()
        } else {
            verdict.join("+")
        };

        let mut assumptions = vec![
            format!(
                "identify window judged with {tolerance} ms of tolerance ({} violations at 0 ms; STORM at 0 ms: {})",
                c.identify_violations_strict,
                if storm_strict { "yes" } else { "no" }
            ),
            format!(
                "session starts: {} of {} left for the day, refill after {} s",
                sc.gateway.session_start_remaining,
                sc.gateway.session_start_total,
                sc.gateway.session_start_reset_after_ms / 1_000
            ),
            format!(
                "link: {} ms one way plus up to {} ms of jitter",
                sc.link.latency_ms, sc.link.jitter_ms
            ),
            format!(
                "the bot's process comes up within the first {} s: models that start each shard on its own start it at a random moment of that spread; the policy (one Fleet holding every shard) and libraries that pace their own start-up batches begin at its end",
                sc.start_spread_ms / 1_000
            ),
            if sc.faults_after_startup {
                "faults start once every shard has a session; start-up is not judged".to_owned()
            } else {
                "the whole run is judged, start-up included".to_owned()
            },
        ];
        if let Some(cap) = assumed_cap {
            assumptions.push(format!(
                "ASSUMED admission cap of {cap} handshakes/s (Discord documents none)"
            ));
        }
        if let Some(store) = &sc.store {
            let outages: Vec<String> = store
                .outages
                .iter()
                .map(|o| format!("{} ms for {} ms", o.at_ms, o.duration_ms))
                .collect();
            assumptions.push(format!(
                "the policy's models run split over {} processes sharing an identify store (round trip {} ms plus up to {} ms of jitter each way, call timeout {} ms, a check every {} ms while it is away, away at: {}); peer models run in one process",
                store.processes,
                store.round_trip_ms,
                store.jitter_ms,
                store.call_timeout_ms,
                store.check_every_ms,
                if outages.is_empty() { "never".to_owned() } else { outages.join(", ") }
            ));
        }

        Self {
            scenario: sc.name.clone(),
            model: model.to_owned(),
            seed,
            shards: sc.shards,
            judged_shards,
            startup_ms: rec.startup_ms,
            events: rec.events,
            trace_hash: format!("{:016x}", rec.trace_hash),
            attempts,
            refused_dials: c.refused_dials,
            handshakes: handshake_count,
            max_handshakes_per_client_60s: max_hs_60,
            max_attempts_per_client_60s: max_60,
            p99_attempts_per_client_60s: p99_60,
            peak_arrivals_1s: peak_1,
            peak_arrivals_5s: peak_5,
            peak_handshakes_100ms: peak_100ms,
            admission_per_s: budget,
            rejected_attempts: c.rejected,
            late_seconds_over_budget: late_over,
            identifies: c.identifies,
            identify_violations: c.identify_violations,
            identify_violations_strict: c.identify_violations_strict,
            identify_tolerance_ms: tolerance,
            session_starts: c.session_starts,
            token_reset: rec.token_reset,
            resumes: c.resumes,
            resumes_succeeded: c.resumes_succeeded,
            identifies_while_resumable: c.identifies_while_resumable,
            sessions_expired: c.sessions_expired,
            recovery_p50_ms: p50,
            recovery_p99_ms: p99,
            recovery_max_ms: max,
            recovery_lower_bound_ms: lower_bound,
            unrecovered,
            disconnects: c.disconnects,
            amplification: round2(attempts as f64 / to_win_back.max(1) as f64),
            excess_attempts: attempts.saturating_sub(to_win_back),
            sync_index: round2(sync_index),
            healthy_link_reconnects: c.healthy_link_reconnects,
            retries_after_fatal: c.retries_after_fatal,
            max_open_sockets_per_shard: rec.max_open_per_shard,
            events_lost: lost,
            events_duplicated: duplicated,
            gave_up: rec.gave_up,
            storm: !storm_reasons.is_empty(),
            storm_reasons,
            storm_strict,
            slow_recovery: !slow.is_empty(),
            slow_recovery_reasons: slow,
            herd: !herd.is_empty(),
            herd_reasons: herd,
            verdict,
            assumptions,
        }
    }

    /// Every reason of the verdict, each with its part's name.
    #[must_use]
    pub fn reasons(&self) -> Vec<String> {
        let tag =
            |part: &str, r: &[String]| r.iter().map(|x| format!("{part}: {x}")).collect::<Vec<_>>();
        let mut all = tag("STORM", &self.storm_reasons);
        all.extend(tag("SLOW", &self.slow_recovery_reasons));
        all.extend(tag("HERD", &self.herd_reasons));
        all
    }
}

/// The admission cap the scenario assumes, if any: the gateway's own or an
/// overload fault's.
fn assumed_admission_cap(sc: &Scenario) -> Option<u32> {
    let faults = sc.faults.iter().filter_map(|f| match f.kind {
        FaultKind::Overload { admission_per_s } => Some(admission_per_s),
        _ => None,
    });
    let gateway = (sc.gateway.admission_per_s > 0).then_some(sc.gateway.admission_per_s);
    faults.chain(gateway).min()
}

/// For each judged shard, the time from the heal to its session (0 if it
/// never lost it), or `None` if it has none at the end.
#[must_use]
pub fn recovery_times(rec: &Recorder) -> Vec<Option<u64>> {
    if rec.judged_from.is_none() {
        return Vec::new();
    }
    let heal = rec.heal_at.unwrap_or(0);
    rec.established
        .iter()
        .zip(&rec.judged)
        .filter(|(_, j)| **j)
        .map(|(e, _)| e.get().map(|t| t.saturating_sub(heal)))
        .collect()
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The legend printed under [`table`].
pub const TABLE_LEGEND: &str = "\
columns: SLH verdict (S STORM, L SLOW RECOVERY, H HERD, ok none); start: s until every shard had a
session (not judged). From the first fault on: dials (all connection attempts), refused (dials the
link refused, never seen by the gateway), hs/60s (most handshakes one shard brought to the gateway in
60 s), hs/.1s (most handshakes at the gateway in any 100 ms), ident (Identify payloads), viol (identify
window violations with the tolerance / at 0 ms), resumed (RESUMED sent), rec p50/p99/max (s from the
heal until a judged shard has a session; inf: never, with the count that never did), bound (the
gateway's lower bound for the slowest shard, s). * marks the production default.";

/// Renders reports as a table for people (at most 120 columns for the
/// built-in models); `default_model` is marked with `*`.
#[must_use]
pub fn table(reports: &[Report]) -> String {
    table_marking(reports, crate::DEFAULT_MODEL)
}

/// [`table`], marking `default_model`.
#[must_use]
pub fn table_marking(reports: &[Report], default_model: &str) -> String {
    let header = [
        "model",
        "SLH",
        "start",
        "dials",
        "refused",
        "hs/60s",
        "hs/.1s",
        "ident",
        "viol",
        "resumed",
        "rec p50/p99/max",
        "bound",
    ];
    let opt = |v: Option<u64>| v.map_or_else(|| "inf".to_owned(), secs);
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let flags = if r.verdict == "ok" {
                "ok".to_owned()
            } else {
                [(r.storm, 'S'), (r.slow_recovery, 'L'), (r.herd, 'H')]
                    .iter()
                    .map(|&(on, c)| if on { c } else { '.' })
                    .collect()
            };
            vec![
                if r.model == default_model {
                    format!("{}*", r.model)
                } else {
                    r.model.clone()
                },
                flags,
                r.startup_ms.map_or_else(|| "never".to_owned(), secs),
                count(r.attempts),
                count(r.refused_dials),
                r.max_handshakes_per_client_60s.to_string(),
                r.peak_handshakes_100ms.to_string(),
                count(r.identifies),
                format!(
                    "{}/{}",
                    count(r.identify_violations),
                    count(r.identify_violations_strict)
                ),
                count(r.resumes_succeeded),
                format!(
                    "{}/{}/{}",
                    opt(r.recovery_p50_ms),
                    opt(r.recovery_p99_ms),
                    if r.unrecovered > 0 {
                        format!("inf({})", r.unrecovered)
                    } else {
                        opt(r.recovery_max_ms)
                    }
                ),
                secs(r.recovery_lower_bound_ms),
            ]
        })
        .collect();
    render_with_gap(&header, &rows, 1)
}

/// Lays out a header and rows in columns: the first left-aligned, the rest
/// right-aligned, two spaces apart.
#[must_use]
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    render_with_gap(header, rows, 2)
}

/// [`render`] with `gap` spaces between columns.
#[must_use]
pub fn render_with_gap(header: &[&str], rows: &[Vec<String>], gap: usize) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            if i == 0 {
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str(&" ".repeat(gap + pad));
                out.push_str(c);
            }
        }
        out.push('\n');
    };
    let header: Vec<String> = header.iter().map(|&h| h.to_owned()).collect();
    line(&header, &mut out);
    for row in rows {
        line(row, &mut out);
    }
    out
}

/// A count in at most five characters up to 99.9 million: 99999, 301k,
/// 4.9M.
fn count(n: u64) -> String {
    match n {
        0..100_000 => n.to_string(),
        100_000..1_000_000 => format!("{}k", n / 1_000),
        _ => format!("{:.1}M", (n / 100_000) as f64 / 10.0),
    }
}

/// Seconds: one decimal below 100 s, whole seconds above.
fn secs(ms: u64) -> String {
    if ms < 100_000 {
        format!("{:.1}", ms as f64 / 1_000.0)
    } else {
        format!("{}", (ms + 500) / 1_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MaybeMs;

    #[test]
    fn the_table_fits_120_columns_with_every_model_and_extreme_values() {
        let sc = Scenario::builtin("outage-30s").unwrap();
        let rec = Recorder::new(sc.shards, 1_000);
        let base = Report::new(&sc, "policy", 1, &rec);
        let reports: Vec<Report> = crate::model_names()
            .into_iter()
            .map(|model| Report {
                model,
                startup_ms: Some(99_999_000),
                attempts: 9_999_999,
                refused_dials: 9_999_999,
                max_handshakes_per_client_60s: 9_999,
                peak_handshakes_100ms: 9_999,
                identifies: 9_999_999,
                identify_violations: 9_999_999,
                identify_violations_strict: 9_999_999,
                resumes_succeeded: 99_999,
                recovery_p50_ms: Some(999_000),
                recovery_p99_ms: Some(999_000),
                recovery_max_ms: None,
                unrecovered: 1_000,
                recovery_lower_bound_ms: 99_999_000,
                storm: true,
                slow_recovery: true,
                herd: true,
                verdict: "STORM+SLOW+HERD".to_owned(),
                ..base.clone()
            })
            .collect();
        let text = table(&reports);
        for line in text.lines().chain(TABLE_LEGEND.lines()) {
            assert!(
                line.chars().count() <= 120,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        assert!(text.contains("policy*"), "the default is marked");
    }

    #[test]
    fn a_shard_that_never_recovers_counts_as_never_in_the_percentiles() {
        let sc = Scenario::builtin("outage-30s").unwrap();
        let mut rec = Recorder::new(4, 100_000);
        rec.judged_from = Some(0);
        rec.heal_at = Some(10_000);
        rec.established = [Some(11_000), Some(12_000), None, None]
            .into_iter()
            .map(MaybeMs::from)
            .collect();
        let r = Report::new(&sc, "x", 1, &rec);
        assert_eq!(r.unrecovered, 2);
        // Two of four never recovered: the median is the second shard.
        assert_eq!(r.recovery_p50_ms, Some(2_000));
        assert_eq!(r.recovery_p99_ms, None);
        assert_eq!(r.recovery_max_ms, None);
        assert!(r.slow_recovery);
    }

    #[test]
    fn counts_before_judging_are_not_judged() {
        let sc = Scenario::builtin("outage-30s").unwrap();
        let mut rec = Recorder::new(1, 100_000);
        rec.count.identify_violations = 5;
        rec.count.identify_violations_strict = 9;
        rec.count_at_judging = rec.count;
        rec.count.identify_violations_strict += 1;
        rec.attempt(0, 1_000);
        rec.attempt(0, 2_000);
        rec.begin_judging(50_000);
        rec.attempt(0, 55_000);
        rec.heal_at = Some(60_000);
        rec.established = vec![MaybeMs::at(1_000)];
        let r = Report::new(&sc, "x", 1, &rec);
        assert_eq!(r.identify_violations, 0);
        assert_eq!(r.identify_violations_strict, 1);
        assert_eq!(r.attempts, 1);
        assert!(!r.storm);
        assert!(r.storm_strict, "the 0 ms reading still sees the violation");
    }

    #[test]
    fn infeasible_scenarios_are_named_before_they_run() {
        let mut sc = Scenario::builtin("op9-wave").unwrap();
        assert_eq!(infeasibility(&sc), None);
        sc.shards = 200_000;
        let why = infeasibility(&sc).unwrap();
        assert!(
            why.contains("start-up") || why.contains("re-identifying"),
            "{why}"
        );
    }
}
