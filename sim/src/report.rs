//! The report of one run: the storm metrics and the verdict.
//!
//! Field names are stable: scripts may read them from `--json`. The metrics
//! follow `shared/reference/simulation.md` §6.2 (M1–M8):
//!
//! | field | metric |
//! |---|---|
//! | `max_attempts_per_client_60s`, `p99_attempts_per_client_60s` | M1: the most connection attempts one shard made in any 60 s window (max and p99 over shards) |
//! | `peak_arrivals_1s`, `peak_arrivals_5s`, `admission_per_s`, `peak_to_budget_1s`, `rejected_attempts`, `late_seconds_over_budget` | M2: handshakes reaching the gateway against its admission budget |
//! | `identifies`, `identify_violations`, `session_starts`, `token_reset`, `resumes`, `resumes_succeeded`, `identifies_while_resumable` | M3: identify discipline |
//! | `recovery_p50_ms`, `recovery_p99_ms`, `recovery_max_ms`, `recovery_lower_bound_ms`, `unrecovered` | M4: time from the heal until each shard has a session again |
//! | `attempts`, `disconnects`, `amplification`, `excess_attempts` | M5: attempts per lost session, and attempts the gateway turned away |
//! | `sync_index` | M6: peak-to-mean of attempts per second over the 5 minutes after the heal |
//! | `healthy_link_reconnects`, `retries_after_fatal`, `max_open_sockets_per_shard` | M7: reconnects on a healthy link, retries after a fatal code, sockets at once |
//! | `events_lost`, `events_duplicated`, `gave_up` | delivery and liveness |
//!
//! **The storm verdict** is true when any of these holds, and
//! `storm_reasons` says which:
//! 1. a shard made more than 10 attempts in some 60 s window;
//! 2. an Identify broke a bucket's 5 s window;
//! 3. the daily session start limit ran out;
//! 4. a shard has no session at the end of the run, or took longer than the
//!    scenario's `recovery_bound_ms` after the heal;
//! 5. more than 60 s after the heal, handshakes still arrived faster than
//!    the gateway admits them.

use serde::{Deserialize, Serialize};

use crate::metrics::{Recorder, max_in_window, quantile};
use crate::scenario::Scenario;

/// The most attempts a shard may make in 60 s before it counts as storming.
pub const STORM_ATTEMPTS_PER_MINUTE: u32 = 10;
/// How long after the heal arrivals above the budget are tolerated.
pub const STORM_GRACE_AFTER_HEAL_MS: u64 = 60_000;

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
    /// Events processed.
    pub events: u64,
    /// Hash of the event trace (same seed, same hash).
    pub trace_hash: String,
    /// Connection attempts, all shards.
    pub attempts: u64,
    /// M1, max over shards.
    pub max_attempts_per_client_60s: u32,
    /// M1, p99 over shards.
    pub p99_attempts_per_client_60s: u32,
    /// M2: most handshakes reaching the gateway in one second.
    pub peak_arrivals_1s: u32,
    /// M2: most handshakes reaching the gateway in five seconds.
    pub peak_arrivals_5s: u32,
    /// M2: the gateway's normal admission budget per second.
    pub admission_per_s: u32,
    /// M2: `peak_arrivals_1s / admission_per_s`.
    pub peak_to_budget_1s: f64,
    /// M2/M5: handshakes turned away for lack of capacity.
    pub rejected_attempts: u64,
    /// M2: seconds, later than 60 s after the heal, with arrivals above the
    /// budget.
    pub late_seconds_over_budget: u64,
    /// M3: Identify payloads received.
    pub identifies: u64,
    /// M3: Identify payloads inside a bucket's 5 s window.
    pub identify_violations: u64,
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
    /// M4: p50 of time from the heal to a session, over shards, ms.
    pub recovery_p50_ms: u64,
    /// M4: p99, ms.
    pub recovery_p99_ms: u64,
    /// M4: max, ms (only shards that recovered).
    pub recovery_max_ms: u64,
    /// M4: the least time the gateway's limits allow for the shards that
    /// were down at the heal (identify buckets and admission), ms.
    pub recovery_lower_bound_ms: u64,
    /// M4: shards without a session at the end.
    pub unrecovered: u64,
    /// M5: sessions lost (established → not).
    pub disconnects: u64,
    /// M5: attempts per lost session.
    pub amplification: f64,
    /// M5: attempts beyond one per lost session.
    pub excess_attempts: u64,
    /// M6: peak-to-mean of attempts per second in the 5 minutes after the
    /// heal (1 is even; much more is a herd); 0 without attempts.
    pub sync_index: f64,
    /// M7: client closes on a socket nothing was wrong with.
    pub healthy_link_reconnects: u64,
    /// M7: attempts after a fatal close code.
    pub retries_after_fatal: u64,
    /// M7: most sockets one shard's client held at once.
    pub max_open_sockets_per_shard: u32,
    /// Dispatches never handed to the bot.
    pub events_lost: u64,
    /// Dispatches handed to the bot more than once.
    pub events_duplicated: u64,
    /// Shards whose client stopped for good.
    pub gave_up: u64,
    /// The verdict.
    pub storm: bool,
    /// Which rules made it a storm.
    pub storm_reasons: Vec<String>,
}

impl Report {
    /// Computes the report of a finished run.
    #[must_use]
    pub fn new(sc: &Scenario, model: &str, seed: u64, rec: &Recorder) -> Self {
        let per_client: Vec<u32> = rec
            .attempts
            .iter()
            .map(|a| max_in_window(a, 60_000))
            .collect();
        let mut per_client_u64: Vec<u64> = per_client.iter().map(|&v| u64::from(v)).collect();
        let max_60 = per_client.iter().copied().max().unwrap_or(0);
        let p99_60 = u32::try_from(quantile(&mut per_client_u64, 0.99)).unwrap_or(u32::MAX);
        let peak_1 = rec.arrivals_per_s.iter().copied().max().unwrap_or(0);
        let peak_5 = rec
            .arrivals_per_s
            .windows(5)
            .map(|w| w.iter().sum())
            .max()
            .unwrap_or(peak_1);
        let budget = sc.gateway.admission_per_s;
        let heal_s = (sc.heal_at_ms / 1_000) as usize;
        let late_from = ((sc.heal_at_ms + STORM_GRACE_AFTER_HEAL_MS) / 1_000) as usize;
        let late_over = rec
            .arrivals_per_s
            .iter()
            .skip(late_from)
            .filter(|&&a| a > budget)
            .count() as u64;

        let mut recovery: Vec<u64> = rec
            .established
            .iter()
            .flatten()
            .map(|&t| t.saturating_sub(sc.heal_at_ms))
            .collect();
        let unrecovered = rec.established.iter().filter(|e| e.is_none()).count() as u64;
        let recovery_max = recovery.iter().copied().max().unwrap_or(0);
        let p50 = quantile(&mut recovery, 0.5);
        let p99 = quantile(&mut recovery, 0.99);
        let (down, must_identify) = rec.down_at_heal;
        let windows = must_identify.div_ceil(u64::from(sc.gateway.max_concurrency.max(1)));
        let lower_bound =
            (windows.saturating_sub(1) * 5_000).max(down * 1_000 / u64::from(budget.max(1)));

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

        let attempts: u64 = rec.attempts.iter().map(|a| a.len() as u64).sum();
        let lost: u64 = rec
            .sessions
            .iter()
            .map(|s| s.generated.saturating_sub(s.unique))
            .sum();
        let duplicated: u64 = rec.sessions.iter().map(|s| s.duplicates).sum();

        let mut reasons = Vec::new();
        if max_60 > STORM_ATTEMPTS_PER_MINUTE {
            reasons.push(format!(
                "a shard made {max_60} attempts within 60 s (limit {STORM_ATTEMPTS_PER_MINUTE})"
            ));
        }
        if rec.identify_violations > 0 {
            reasons.push(format!("{} identify violations", rec.identify_violations));
        }
        if rec.token_reset {
            reasons.push("the session start limit ran out (token reset)".to_owned());
        }
        if unrecovered > 0 {
            reasons.push(format!("{unrecovered} shards without a session at the end"));
        } else if recovery_max > sc.recovery_bound_ms {
            reasons.push(format!(
                "recovery took {recovery_max} ms (bound {} ms)",
                sc.recovery_bound_ms
            ));
        }
        if late_over > 0 {
            reasons.push(format!(
                "{late_over} seconds over the admission budget more than 60 s after the heal"
            ));
        }

        Self {
            scenario: sc.name.clone(),
            model: model.to_owned(),
            seed,
            shards: sc.shards,
            events: rec.events,
            trace_hash: format!("{:016x}", rec.trace_hash),
            attempts,
            max_attempts_per_client_60s: max_60,
            p99_attempts_per_client_60s: p99_60,
            peak_arrivals_1s: peak_1,
            peak_arrivals_5s: peak_5,
            admission_per_s: budget,
            peak_to_budget_1s: round2(f64::from(peak_1) / f64::from(budget.max(1))),
            rejected_attempts: rec.rejected,
            late_seconds_over_budget: late_over,
            identifies: rec.identifies,
            identify_violations: rec.identify_violations,
            session_starts: rec.session_starts,
            token_reset: rec.token_reset,
            resumes: rec.resumes,
            resumes_succeeded: rec.resumes_succeeded,
            identifies_while_resumable: rec.identifies_while_resumable,
            recovery_p50_ms: p50,
            recovery_p99_ms: p99,
            recovery_max_ms: recovery_max,
            recovery_lower_bound_ms: lower_bound,
            unrecovered,
            disconnects: rec.disconnects,
            amplification: round2(attempts as f64 / rec.disconnects.max(1) as f64),
            excess_attempts: attempts.saturating_sub(rec.disconnects + u64::from(sc.shards)),
            sync_index: round2(sync_index),
            healthy_link_reconnects: rec.healthy_link_reconnects,
            retries_after_fatal: rec.retries_after_fatal,
            max_open_sockets_per_shard: rec.max_open_per_shard,
            events_lost: lost,
            events_duplicated: duplicated,
            gave_up: rec.gave_up,
            storm: !reasons.is_empty(),
            storm_reasons: reasons,
        }
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Renders reports as a table for people.
#[must_use]
pub fn table(reports: &[Report]) -> String {
    let header = [
        "model",
        "storm",
        "attempts",
        "max/60s",
        "p99/60s",
        "peak/s",
        "rejected",
        "identify",
        "viol",
        "resumed",
        "rec p50 s",
        "rec p99 s",
        "rec max s",
        "bound s",
        "sync",
        "lost",
        "dup",
    ];
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                r.model.clone(),
                if r.storm { "STORM" } else { "no" }.to_owned(),
                r.attempts.to_string(),
                r.max_attempts_per_client_60s.to_string(),
                r.p99_attempts_per_client_60s.to_string(),
                r.peak_arrivals_1s.to_string(),
                r.rejected_attempts.to_string(),
                r.identifies.to_string(),
                r.identify_violations.to_string(),
                r.resumes_succeeded.to_string(),
                secs(r.recovery_p50_ms),
                secs(r.recovery_p99_ms),
                if r.unrecovered > 0 {
                    format!("∞ ({})", r.unrecovered)
                } else {
                    secs(r.recovery_max_ms)
                },
                secs(r.recovery_lower_bound_ms),
                format!("{:.1}", r.sync_index),
                r.events_lost.to_string(),
                r.events_duplicated.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
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
                out.push_str("  ");
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            }
        }
        out.push('\n');
    };
    line(&header.map(str::to_owned), &mut out);
    for row in &rows {
        line(row, &mut out);
    }
    out
}

fn secs(ms: u64) -> String {
    format!("{:.1}", ms as f64 / 1_000.0)
}
