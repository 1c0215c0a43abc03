//! Fleet-wide outages: how a [`Fleet`](crate::Fleet) tells that the whole
//! fleet has lost the gateway, lets one probe at a time carry the fleet's
//! attempts while it lasts, and brings the shards back in a paced ramp.
//!
//! Three pure pieces, driven by the fleet with times passed in:
//! - [`OutageDetector`]: failures that mean "the network or the gateway is
//!   gone" (a dial that failed or timed out, a socket dropped without a
//!   close frame, a zombie) from at least
//!   [`FleetRecovery::min_shards`] distinct shards within
//!   [`FleetRecovery::window_ms`], with no frame received by any shard
//!   since before the first of them, and a silence long enough to mean
//!   something for the number of live connections. Any frame is a sign of
//!   life and clears it.
//! - [`ProbeSchedule`]: while the outage lasts, when the next probe (one
//!   held shard's real attempt) starts: a short jittered exponential
//!   schedule.
//! - [`RampWindow`]: once a probe is answered, how many released shards may
//!   be connecting at once: slow start (+1 per success, so it doubles per
//!   round trip) and multiplicative decrease (halved on a failure).
//!
//! The ideas are the circuit breaker's half-open probe, TCP's slow start
//! and AIMD, and the client-side throttles of the AWS SDKs and Google SRE
//! (see the crate README): a fleet knows more than a shard, and one attempt
//! answers for all of them when their failures are correlated.

use serde::{Deserialize, Serialize};

use crate::backoff::MAX_DELAY_MS;
use crate::config::ConfigError;
use crate::jitter::Jitter;
use crate::probe_share::SharedProbe;
use crate::time::Timestamp;

/// How a [`Fleet`](crate::Fleet) recovers from a fleet-wide outage (part
/// of [`PolicyConfig`](crate::PolicyConfig); a lone
/// [`Policy`](crate::Policy) ignores it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct FleetRecovery {
    /// Whether the fleet detects outages, holds and probes at all (default
    /// `true`; `false` leaves every shard to its own backoff).
    pub enabled: bool,
    /// Distinct shards whose failures trip an outage (default 3, at least
    /// 2). One shard's failures are its own link's; two can be chance;
    /// three failing together with the whole fleet silent is the gateway or
    /// the network. A fleet with fewer shards never trips.
    pub min_shards: u32,
    /// The window those failures must fall in, in ms (default 10 s: the
    /// failures of a mass drop arrive within a second, the zombies of a
    /// black hole within a fraction of the heartbeat interval divided by
    /// the shards, so 10 s catches both while failures minutes apart are
    /// not correlated).
    pub window_ms: u64,
    /// The shortest fleet-wide silence, before and across those failures,
    /// that trips, in ms (default 250 ms: below the first redial after a
    /// dropped socket, 500 ms at the earliest, so a mass drop trips before
    /// the shards dial; above the gap between frames of a fleet of a few
    /// hundred live shards).
    pub min_silence_ms: u64,
    /// The silence that trips, spread over the live connections, in ms:
    /// the silence needed is `max(min_silence_ms, fleet_silence_ms / live)`
    /// (default 123.75 s, three Discord heartbeat intervals: each live
    /// connection receives an ACK per interval at a random phase, so a
    /// fleet with `live` of them hears a frame every `41.25 s / live` on
    /// average, and a silence three times that comes by chance about once
    /// in 20 faults (e^-3); a false trip ends at the next frame. Five
    /// intervals would make chance rarer but leave a fleet of 300 shards
    /// silent past its first redial (500 ms after a drop), so most of it
    /// would dial before the trip. A fleet of ten live shards waits 12 s,
    /// one of a thousand 250 ms). When failures since the last frame
    /// number at least half of the fleet's shards (not of its live
    /// connections), the silence needed is only `min_silence_ms`: half a
    /// fleet failing at once is not chance,
    /// and a small fleet, whose frames are seconds apart, would otherwise
    /// redial through the wait; a partial fault of a tenth of the fleet
    /// never gets there.
    pub fleet_silence_ms: u64,
    /// The first probe's delay after the trip, in ms, doubled per probe up
    /// to [`probe_cap_ms`](Self::probe_cap_ms), each drawn in `[¾d, d]`
    /// (default 1 s: a short outage is found healed within a second or
    /// two).
    pub probe_base_ms: u64,
    /// The longest delay between probes early in an outage, in ms
    /// (default 4 s). A large fleet probes more often, up to
    /// [`probe_share_per_min`](Self::probe_share_per_min) (never more
    /// often than [`probe_base_ms`](Self::probe_base_ms)), so that the
    /// short outages, which are the common ones, are found healed sooner.
    pub probe_cap_ms: u64,
    /// Probes a minute that the fleet may spend early in an outage, per
    /// 1000 shards (default 36: a fleet of 1000 probes every 1.67 s at
    /// most, which finds the heal of a short outage within 1.67 s for
    /// 0.036 attempts per shard a minute; a fleet of 416 shards or fewer
    /// probes every [`probe_cap_ms`](Self::probe_cap_ms); 0 always uses
    /// the cap).
    pub probe_share_per_min: u32,
    /// How long an outage is young, in ms (default 180 s, Discord's
    /// resume window as observed). Past it the gateway has expired the
    /// sessions the outage detached, every shard must identify, a few
    /// seconds more to find the heal cost little against the minutes the
    /// identify buckets take, and probes are spaced up to
    /// [`probe_slow_cap_ms`](Self::probe_slow_cap_ms).
    pub probe_slow_after_ms: u64,
    /// The longest delay between probes once the outage is no longer
    /// young, in ms (default 10 s: a 600 s outage costs a fleet of 1000
    /// about 165 probes, 0.17 attempts per shard).
    pub probe_slow_cap_ms: u64,
    /// How long a shard that still looks connected at the trip has to
    /// answer a heartbeat sent at once, in ms (default 3 s: a live link
    /// answers within a round trip; a black hole otherwise hides a dead
    /// socket until its next heartbeat, up to 41.25 s later, and a
    /// heartbeat costs the gateway nothing like an attempt does).
    pub check_ms: u64,
    /// The shortest fleet-wide silence after which every shard that looks
    /// connected is asked for a heartbeat answered within
    /// [`check_ms`](Self::check_ms), before any shard has failed, in ms
    /// (default 2 s; 0 never). The silence needed is
    /// `max(quiet_check_ms, 8 × fleet_silence_ms / live)`: eight times the
    /// silence that trips on failures, about 24 frames missed in a row, a
    /// chance of e^-24, so a fleet that is heard never pays for it. A fleet
    /// of 1000 live shards is asked after 2 s of silence, one of 100 after
    /// 10 s; a fleet of 10 after 99 s, later than its own heartbeats would
    /// find the dead sockets, so it never is. A black hole sends nothing
    /// and closes nothing: without this, each shard finds its dead socket
    /// only when its own heartbeat goes unanswered, up to one interval
    /// (41.25 s) after the hole opened.
    pub quiet_check_ms: u64,
    /// Resumes refused during a ramp, with none accepted, after which the
    /// held shards' sessions are taken as forgotten by the gateway and they
    /// identify at once (default 3; 0 never). Every held shard lost its
    /// session in the same outage, so a gateway that refused three of them
    /// and resumed none has dropped them all (Discord keeps a session for
    /// minutes, not hours); each shard would otherwise spend an attempt on
    /// a Resume it is sure to be refused.
    pub forget_after_refused: u32,
    /// The ramp's first window: released shards connecting at once after
    /// the probe was answered (default 8: one bucket-full of Discord's
    /// large-bot concurrency, small enough for any gateway).
    pub ramp_initial: u32,
    /// The ramp's largest window (default 48), further capped at a
    /// twentieth of the fleet (never below
    /// [`ramp_initial`](Self::ramp_initial)): handshakes take about as long
    /// as a 100 ms window, and a gateway sees a tenth of a fleet arriving in
    /// 100 ms as a herd, so a twentieth keeps the ramp at half that; a fleet
    /// of 1000 is back in about two seconds.
    pub ramp_max: u32,
}

impl FleetRecovery {
    /// The defaults (see each field).
    pub const DEFAULT: Self = Self {
        enabled: true,
        min_shards: 3,
        window_ms: 10_000,
        min_silence_ms: 250,
        fleet_silence_ms: 123_750,
        probe_base_ms: 1_000,
        probe_cap_ms: 4_000,
        probe_share_per_min: 36,
        probe_slow_after_ms: 180_000,
        probe_slow_cap_ms: 10_000,
        check_ms: 3_000,
        quiet_check_ms: 2_000,
        forget_after_refused: 3,
        ramp_initial: 8,
        ramp_max: 48,
    };

    /// Fleet recovery turned off: every shard backs off on its own.
    pub const OFF: Self = Self {
        enabled: false,
        ..Self::DEFAULT
    };

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field out of its range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_shards < 2 {
            return Err(ConfigError::OutOfRange {
                field: "fleet_recovery.min_shards",
                min: 2,
                max: u64::from(u32::MAX),
            });
        }
        for (field, value) in [
            ("fleet_recovery.window_ms", self.window_ms),
            ("fleet_recovery.min_silence_ms", self.min_silence_ms),
            ("fleet_recovery.fleet_silence_ms", self.fleet_silence_ms),
            ("fleet_recovery.probe_base_ms", self.probe_base_ms),
            ("fleet_recovery.probe_cap_ms", self.probe_cap_ms),
            (
                "fleet_recovery.probe_slow_after_ms",
                self.probe_slow_after_ms,
            ),
            ("fleet_recovery.probe_slow_cap_ms", self.probe_slow_cap_ms),
            ("fleet_recovery.check_ms", self.check_ms),
            ("fleet_recovery.quiet_check_ms", self.quiet_check_ms),
        ] {
            if value > MAX_DELAY_MS {
                return Err(ConfigError::TooLong {
                    field,
                    max_ms: MAX_DELAY_MS,
                });
            }
        }
        if self.probe_base_ms == 0 || self.probe_base_ms > self.probe_cap_ms {
            return Err(ConfigError::OutOfRange {
                field: "fleet_recovery.probe_base_ms",
                min: 1,
                max: self.probe_cap_ms,
            });
        }
        if self.probe_slow_cap_ms < self.probe_base_ms {
            return Err(ConfigError::OutOfRange {
                field: "fleet_recovery.probe_slow_cap_ms",
                min: self.probe_base_ms,
                max: MAX_DELAY_MS,
            });
        }
        if self.ramp_initial == 0 || self.ramp_initial > self.ramp_max {
            return Err(ConfigError::OutOfRange {
                field: "fleet_recovery.ramp_initial",
                min: 1,
                max: u64::from(self.ramp_max),
            });
        }
        Ok(())
    }
}

impl FleetRecovery {
    /// The fleet-wide silence after which a fleet with `live` connections
    /// asks them for a heartbeat (see [`quiet_check_ms`](Self::quiet_check_ms)).
    pub(crate) fn quiet_silence_ms(&self, live: u64) -> u64 {
        self.quiet_check_ms
            .max(self.fleet_silence_ms.saturating_mul(8) / live.max(1))
    }
}

impl Default for FleetRecovery {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Trips on correlated failures in a silent fleet (see the module doc).
#[derive(Clone, Debug)]
pub(crate) struct OutageDetector {
    /// The last frame any shard received.
    last_life: Option<Timestamp>,
    /// `(shard index, time)` of the distinct shards that failed since the
    /// last sign of life, oldest first, at most `min_shards`.
    failures: Vec<(usize, Timestamp)>,
    /// When the failures will have been silent long enough, if they are
    /// enough but the silence is not yet.
    check_at: Option<Timestamp>,
    /// The live connections just before the first of `failures`: the
    /// silence is judged against the fleet as it was, not as the outage
    /// left it.
    live_before: u64,
    /// Failures since the last sign of life (or since the window emptied),
    /// counted per failure: when they reach half of `fleet`, the fleet
    /// needs only [`FleetRecovery::min_silence_ms`] of silence.
    burst: u64,
    /// The fleet's shards (0: the rule above never applies).
    fleet: u64,
}

impl OutageDetector {
    /// A detector with room for `config.min_shards` failures (allocated
    /// once, here).
    pub(crate) fn new(config: &FleetRecovery) -> Self {
        Self {
            last_life: None,
            failures: Vec::with_capacity(config.min_shards.min(64) as usize),
            check_at: None,
            live_before: 0,
            burst: 0,
            fleet: 0,
        }
    }

    /// The same detector for a fleet of `shards` shards, so that half of
    /// them failing since the last frame needs only the short silence.
    pub(crate) fn for_fleet(mut self, shards: usize) -> Self {
        self.fleet = u64::try_from(shards).unwrap_or(u64::MAX);
        self
    }

    /// The last frame any shard received.
    pub(crate) const fn last_life(&self) -> Option<Timestamp> {
        self.last_life
    }

    /// A frame reached some shard at `now`: the fleet is alive.
    pub(crate) fn sign_of_life(&mut self, now: Timestamp) {
        self.last_life = Some(self.last_life.map_or(now, |last| last.max(now)));
        self.failures.clear();
        self.check_at = None;
        self.burst = 0;
    }

    /// Shard `index` failed at `now` in a way that means the network may be
    /// gone; `live` counts the fleet's live connections after the failure
    /// (asked only for the first failure after a sign of life). Returns
    /// whether the outage trips now.
    pub(crate) fn failure(
        &mut self,
        now: Timestamp,
        index: usize,
        config: &FleetRecovery,
        live: impl FnOnce() -> usize,
    ) -> bool {
        self.failures
            .retain(|&(_, at)| now.saturating_since(at) <= config.window_ms);
        let needed = config.min_shards as usize;
        if self.failures.is_empty() {
            // The failed shard was live a moment ago, or was dialling.
            self.live_before = u64::try_from(live()).unwrap_or(u64::MAX).saturating_add(1);
            self.burst = 0;
        }
        self.burst = self.burst.saturating_add(1);
        if !self.failures.iter().any(|&(i, _)| i == index) {
            if self.failures.len() >= needed {
                self.failures.remove(0);
            }
            self.failures.push((index, now));
        }
        if self.failures.len() < needed {
            return false;
        }
        // Half the fleet failing at once is not chance whatever its size: a
        // small fleet, whose frames are seconds apart, need not wait for a
        // silence its shards would redial through. Half of the fleet, not
        // of the connections still live: a few failures among the few
        // shards connected while the rest wait out their backoffs are not
        // a fleet-wide cut.
        let majority = self.fleet > 0 && self.burst.saturating_mul(2) >= self.fleet;
        let silence = if majority {
            config.min_silence_ms
        } else {
            config
                .min_silence_ms
                .max(config.fleet_silence_ms / self.live_before.max(1))
        };
        let since = match (self.last_life, self.failures.first()) {
            (Some(life), _) => life,
            (None, Some(&(_, first))) => first,
            (None, None) => now,
        };
        let ready = since.saturating_add(silence);
        if ready <= now {
            self.tripped();
            true
        } else {
            self.check_at = Some(ready);
            false
        }
    }

    /// When [`OutageDetector::handle_timeout`] must run.
    pub(crate) const fn poll_timeout(&self) -> Option<Timestamp> {
        self.check_at
    }

    /// Returns whether the outage trips at `now` (enough failures, silent
    /// long enough, still within the window).
    pub(crate) fn handle_timeout(&mut self, now: Timestamp, config: &FleetRecovery) -> bool {
        if self.check_at.is_none_or(|at| at > now) {
            return false;
        }
        self.check_at = None;
        self.failures
            .retain(|&(_, at)| now.saturating_since(at) <= config.window_ms);
        if self.failures.len() >= config.min_shards as usize {
            self.tripped();
            return true;
        }
        false
    }

    /// Forgets the failures and the pending check (the fleet tripped).
    pub(crate) fn clear(&mut self) {
        self.tripped();
    }

    fn tripped(&mut self) {
        self.failures.clear();
        self.check_at = None;
        self.burst = 0;
    }
}

/// When the next probe starts while an outage lasts.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProbeSchedule {
    next_at: Option<Timestamp>,
    sent: u32,
    /// When the outage tripped.
    started_at: Timestamp,
    /// The longest delay while the outage is young, for this fleet's size.
    young_cap_ms: u64,
}

impl ProbeSchedule {
    /// Starts the schedule at the trip, `now`, for a fleet of `shards`.
    pub(crate) fn start(
        &mut self,
        now: Timestamp,
        config: &FleetRecovery,
        shards: usize,
        jitter: &mut Jitter,
    ) {
        self.sent = 0;
        self.started_at = now;
        self.young_cap_ms = Self::young_cap(config, shards);
        self.next_at = Some(now.saturating_add(self.delay(now, config, jitter)));
    }

    /// The longest delay while an outage is young: the fleet's share of
    /// probes a minute, between the base and the cap.
    fn young_cap(config: &FleetRecovery, shards: usize) -> u64 {
        let shards = u64::try_from(shards).unwrap_or(u64::MAX);
        let per_min = u64::from(config.probe_share_per_min).saturating_mul(shards) / 1_000;
        if per_min == 0 {
            return config.probe_cap_ms;
        }
        (60_000 / per_min).clamp(config.probe_base_ms, config.probe_cap_ms)
    }

    /// Stops it (the outage ended).
    pub(crate) fn stop(&mut self) {
        self.next_at = None;
    }

    /// When the next probe is due.
    pub(crate) const fn poll_timeout(&self) -> Option<Timestamp> {
        self.next_at
    }

    /// When the outage tripped.
    pub(crate) const fn started_at(&self) -> Timestamp {
        self.started_at
    }

    /// Moves the next probe to `at` (a shared probe held elsewhere).
    pub(crate) const fn defer_to(&mut self, at: Timestamp) {
        self.next_at = Some(at);
    }

    /// Returns whether a probe is due at `now`; if so, plans the next one.
    pub(crate) fn due(
        &mut self,
        now: Timestamp,
        config: &FleetRecovery,
        jitter: &mut Jitter,
    ) -> bool {
        if self.next_at.is_none_or(|at| at > now) {
            return false;
        }
        self.sent = self.sent.saturating_add(1);
        self.next_at = Some(now.saturating_add(self.delay(now, config, jitter)));
        true
    }

    /// `d = min(cap, base · 2^sent)`, drawn in `[¾d, d]`; the cap is the
    /// young one for [`FleetRecovery::probe_slow_after_ms`] after the trip,
    /// then [`FleetRecovery::probe_slow_cap_ms`].
    fn delay(&self, now: Timestamp, config: &FleetRecovery, jitter: &mut Jitter) -> u64 {
        let young = now.saturating_since(self.started_at) < config.probe_slow_after_ms;
        let cap = if young {
            self.young_cap_ms
        } else {
            config.probe_slow_cap_ms.max(self.young_cap_ms)
        };
        let factor = 1u64.checked_shl(self.sent.min(63)).unwrap_or(u64::MAX);
        let d = config.probe_base_ms.saturating_mul(factor).min(cap);
        jitter.between(d - d / 4, d)
    }
}

/// How many released shards may be connecting at once during the ramp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RampWindow {
    window: u32,
    in_flight: u32,
    /// The largest window for this fleet.
    max: u32,
}

impl RampWindow {
    /// A ramp for a fleet of `shards` in a bot of `bot_shards` (the
    /// fleet's own size when smaller), with `in_flight` shards already
    /// connecting (the probes that were answered). The ramp starts at
    /// `config.ramp_initial` and grows by one per answered handshake to
    /// `config.ramp_max`, at most a twentieth of the fleet (never below the
    /// first window). A fleet that is
    /// part of a bot starts at its share of the bot's first window, rounded
    /// up, at least 1, so the processes together start as one fleet of the
    /// bot's size; its growth is clocked by the gateway's answers, up to
    /// its own twentieth.
    pub(crate) fn start(
        config: &FleetRecovery,
        shards: usize,
        bot_shards: u32,
        in_flight: u32,
    ) -> Self {
        let local = u64::try_from(shards).unwrap_or(u64::MAX);
        let bot = u64::from(bot_shards).max(local);
        let window = if bot == 0 {
            config.ramp_initial
        } else {
            let part =
                (u128::from(config.ramp_initial) * u128::from(local)).div_ceil(u128::from(bot));
            u32::try_from(part).unwrap_or(u32::MAX).max(1)
        };
        // A twentieth of the fleet, never below its first window.
        let twentieth = u32::try_from(local / 20).unwrap_or(u32::MAX);
        let max = config.ramp_max.min(twentieth).max(window);
        Self {
            window,
            in_flight,
            max,
        }
    }

    /// Whether another shard may be released now.
    pub(crate) const fn has_room(&self) -> bool {
        self.in_flight < self.window
    }

    /// A shard was released.
    pub(crate) const fn released(&mut self) {
        self.in_flight = self.in_flight.saturating_add(1);
    }

    /// A released shard's handshake succeeded: slow start, +1.
    pub(crate) fn succeeded(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.window = self.window.saturating_add(1).min(self.max);
    }

    /// A released shard failed (refused, cut, closed before its session):
    /// halve the window, never below 1.
    pub(crate) fn failed(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.window = (self.window / 2).max(1);
    }

    /// Shards released and not yet settled.
    pub(crate) const fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// The current window.
    #[cfg(test)]
    pub(crate) const fn window(&self) -> u32 {
        self.window
    }
}

/// Where the fleet stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Every shard on its own.
    #[default]
    Healthy,
    /// The fleet lost the gateway: shards are held, probes carry the
    /// attempts.
    Outage,
    /// A probe was answered: held shards are released in the ramp's window.
    Ramp,
}

/// What the fleet does with one shard during an outage and its ramp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Not held (no outage, or one that began after the shard stopped).
    #[default]
    Free,
    /// Held: its next attempt waits for a probe or the ramp.
    Held,
    /// Released as a probe when it had made `attempts` attempts.
    Probing {
        /// The shard's attempts when released (its saturating count).
        attempts: u32,
    },
    /// Released by the ramp when it had made `attempts` attempts; counts in
    /// the window until it has a session or fails.
    Ramping {
        /// The shard's attempts when released (its saturating count).
        attempts: u32,
    },
    /// Released by the ramp and settled: on its own backoff until the
    /// outage's episode ends.
    OnItsOwn,
}

/// The fleet's whole recovery state: configuration, detector, probes,
/// ramp and every shard's mark. The [`Fleet`](crate::Fleet) applies it to
/// its policies.
#[derive(Clone, Debug)]
pub(crate) struct RecoveryState {
    pub(crate) config: FleetRecovery,
    pub(crate) mode: Mode,
    pub(crate) detector: OutageDetector,
    pub(crate) probes: ProbeSchedule,
    pub(crate) ramp: RampWindow,
    /// Whether the ramp changed since it last released shards.
    pub(crate) ramp_moved: bool,
    /// An outage tripped inside an input; the shards are held at its end.
    pub(crate) trip_pending: bool,
    pub(crate) jitter: Jitter,
    /// Each shard's mark, by index.
    pub(crate) marks: Vec<Mark>,
    /// Where the ramp's next search for a held shard starts.
    pub(crate) cursor: usize,
    /// Outages tripped so far.
    pub(crate) outages: u64,
    /// Until when the checks asked at the trip may still find dead
    /// sockets: the ramp does not end before.
    pub(crate) checks_until: Option<Timestamp>,
    /// Resumes refused (the session dropped) during this ramp.
    pub(crate) resumes_refused: u32,
    /// Resumes that succeeded during this ramp.
    pub(crate) resumes_succeeded: u32,
    /// When to look at the fleet's silence next (see
    /// [`FleetRecovery::quiet_check_ms`]): set by each frame, cleared
    /// once the fleet was asked, until the next frame.
    pub(crate) quiet_at: Option<Timestamp>,
    /// Whether each shard, by index, was connected when last routed.
    pub(crate) connected: Vec<bool>,
    /// How many of them were: the fleet's live connections.
    pub(crate) live: u64,
    /// The probe shared with the bot's other processes, when the fleet
    /// shares it (see [`SharedRecovery`](crate::SharedRecovery)).
    pub(crate) shared: Option<SharedProbe>,
}

impl RecoveryState {
    /// The state of a healthy fleet of `shards` shards.
    pub(crate) fn new(config: FleetRecovery, shards: usize, seed: u64) -> Self {
        Self {
            detector: OutageDetector::new(&config).for_fleet(shards),
            config,
            mode: Mode::Healthy,
            probes: ProbeSchedule::default(),
            ramp: RampWindow::default(),
            ramp_moved: false,
            trip_pending: false,
            jitter: Jitter::new(seed.rotate_left(29) ^ 0x666c_6565_7472_6563),
            marks: vec![Mark::Free; shards],
            cursor: 0,
            outages: 0,
            checks_until: None,
            resumes_refused: 0,
            resumes_succeeded: 0,
            quiet_at: None,
            connected: vec![false; shards],
            live: 0,
            shared: None,
        }
    }

    /// The earliest of the detector's and the probes' timers. Asked after
    /// every input of the fleet, so it compares in place rather than
    /// collecting the candidates.
    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        if !self.config.enabled {
            return None;
        }
        // Only the timers `Fleet::handle_timeout` runs in this mode, so a
        // timer it would skip can never make a driver spin.
        let mode_timer = match self.mode {
            Mode::Healthy => self.detector.poll_timeout(),
            Mode::Ramp => earliest(self.detector.poll_timeout(), self.checks_until),
            Mode::Outage => self.probes.poll_timeout(),
        };
        let shared = self.shared.and_then(|shared| shared.pending);
        earliest(earliest(mode_timer, self.quiet_at), shared)
    }
}

/// The earlier of two optional times (either one when the other is
/// `None`).
#[inline]
const fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.as_millis() < a.as_millis() { b } else { a }),
        (Some(a), None) => Some(a),
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    const C: FleetRecovery = FleetRecovery::DEFAULT;

    #[test]
    fn the_defaults_are_valid_and_bad_values_are_refused() {
        assert_eq!(C.validate(), Ok(()));
        assert!(FleetRecovery { min_shards: 1, ..C }.validate().is_err());
        assert!(
            FleetRecovery {
                ramp_initial: 0,
                ..C
            }
            .validate()
            .is_err()
        );
        assert!(
            FleetRecovery {
                ramp_initial: 99,
                ..C
            }
            .validate()
            .is_err()
        );
        assert!(
            FleetRecovery {
                probe_base_ms: 0,
                ..C
            }
            .validate()
            .is_err()
        );
        assert!(
            FleetRecovery {
                probe_base_ms: 9_000,
                ..C
            }
            .validate()
            .is_err()
        );
        assert!(
            FleetRecovery {
                window_ms: u64::MAX,
                ..C
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn a_mass_drop_in_a_silent_fleet_trips_once_the_silence_is_long_enough() {
        let mut d = OutageDetector::new(&C);
        d.sign_of_life(t(9_990));
        assert!(!d.failure(t(10_000), 0, &C, || 1000));
        assert!(!d.failure(t(10_000), 1, &C, || 1000));
        // The same shard twice is one shard.
        assert!(!d.failure(t(10_001), 1, &C, || 1000));
        assert!(!d.failure(t(10_002), 2, &C, || 1000));
        assert_eq!(d.poll_timeout(), Some(t(10_240)));
        assert!(!d.handle_timeout(t(10_239), &C));
        assert!(d.handle_timeout(t(10_240), &C));
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn any_frame_before_the_check_clears_it() {
        let mut d = OutageDetector::new(&C);
        d.sign_of_life(t(9_990));
        for shard in 0..100 {
            assert!(!d.failure(t(10_000), shard, &C, || 900));
        }
        d.sign_of_life(t(10_040));
        assert_eq!(d.poll_timeout(), None);
        assert!(!d.handle_timeout(t(10_300), &C));
    }

    #[test]
    fn zombies_long_after_the_last_frame_trip_at_once() {
        let mut d = OutageDetector::new(&C);
        d.sign_of_life(t(10_000));
        assert!(!d.failure(t(52_000), 7, &C, || 1000));
        assert!(!d.failure(t(52_040), 8, &C, || 1000));
        assert!(d.failure(t(52_090), 9, &C, || 1000));
    }

    #[test]
    fn few_live_connections_need_a_longer_silence() {
        let mut d = OutageDetector::new(&C);
        d.sign_of_life(t(0));
        for shard in 0..3 {
            assert!(!d.failure(t(1_000), shard, &C, || 9 - shard));
        }
        assert_eq!(d.poll_timeout(), Some(t(12_375)));
    }

    #[test]
    fn half_of_a_small_fleet_failing_at_once_needs_only_the_short_silence() {
        // 32 live shards: a third of them is not enough, half is.
        let mut d = OutageDetector::new(&C).for_fleet(32);
        d.sign_of_life(t(1_000));
        for shard in 0..10 {
            assert!(!d.failure(t(1_100), shard, &C, || 31 - shard));
        }
        assert_eq!(d.poll_timeout(), Some(t(1_000 + 123_750 / 32)));
        for shard in 10..16 {
            assert!(!d.failure(t(1_100), shard, &C, || 31 - shard));
        }
        assert_eq!(d.poll_timeout(), Some(t(1_250)));
        assert!(d.handle_timeout(t(1_250), &C));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut d = OutageDetector::new(&C);
        assert!(!d.failure(t(0), 0, &C, || 0));
        assert!(!d.failure(t(20_000), 1, &C, || 0));
        assert!(!d.failure(t(40_000), 2, &C, || 0));
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn probes_grow_to_the_cap_and_stay_jittered_below_it() {
        let mut jitter = Jitter::new(5);
        let mut p = ProbeSchedule::default();
        // 300 shards: their share (12 a minute) is below the cap's rate.
        p.start(t(0), &C, 300, &mut jitter);
        let first = p.poll_timeout().unwrap().as_millis();
        assert!((750..=1_000).contains(&first), "{first}");
        let mut now = first;
        let mut gaps = Vec::new();
        // While the outage is young (the slow cap after it is tested below).
        while now < C.probe_slow_after_ms {
            assert!(!p.due(t(now - 1), &C, &mut jitter));
            assert!(p.due(t(now), &C, &mut jitter));
            let next = p.poll_timeout().unwrap().as_millis();
            gaps.push(next - now);
            now = next;
        }
        assert!(gaps.iter().all(|&g| (750..=4_000).contains(&g)), "{gaps:?}");
        assert!(gaps.len() > 30, "{gaps:?}");
        assert!(gaps[5..].iter().all(|&g| g >= 3_000), "{gaps:?}");
        p.stop();
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn a_large_fleet_probes_its_share_while_the_outage_is_young_then_slows() {
        let mut jitter = Jitter::new(9);
        let mut p = ProbeSchedule::default();
        // 1000 shards at 36 a minute per 1000: every 1.67 s at most.
        p.start(t(0), &C, 1_000, &mut jitter);
        let mut now = p.poll_timeout().unwrap().as_millis();
        let (mut young, mut old) = (Vec::new(), Vec::new());
        while now < 600_000 {
            assert!(p.due(t(now), &C, &mut jitter));
            let next = p.poll_timeout().unwrap().as_millis();
            if now < C.probe_slow_after_ms {
                young.push(next - now);
            } else {
                old.push(next - now);
            }
            now = next;
        }
        assert!(
            young.iter().all(|&g| (750..=1_666).contains(&g)),
            "{young:?}"
        );
        assert!(
            old.iter().all(|&g| (7_500..=10_000).contains(&g)),
            "{old:?}"
        );
        // About 165 probes over 600 s: 0.17 attempts per shard.
        let probes = young.len() + old.len();
        assert!((140..=185).contains(&probes), "{probes}");
        // A fleet too large for the base is held to it; a share of 0 is
        // the cap.
        assert_eq!(ProbeSchedule::young_cap(&C, 100_000), C.probe_base_ms);
        let no_share = FleetRecovery {
            probe_share_per_min: 0,
            ..C
        };
        assert_eq!(ProbeSchedule::young_cap(&no_share, 1_000), C.probe_cap_ms);
        assert_eq!(ProbeSchedule::young_cap(&C, usize::MAX), C.probe_base_ms);
    }

    #[test]
    fn the_ramp_doubles_per_round_trip_and_halves_on_failure() {
        let mut r = RampWindow::start(&C, 1000, 0, 1);
        let mut released = 1;
        while r.has_room() {
            r.released();
            released += 1;
        }
        assert_eq!(released, 8);
        // A round trip of successes doubles the window.
        for _ in 0..8 {
            r.succeeded();
        }
        assert_eq!(r.window(), 16);
        assert_eq!(r.in_flight(), 0);
        r.released();
        r.failed();
        assert_eq!(r.window(), 8);
        for _ in 0..10 {
            r.failed();
        }
        assert_eq!(r.window(), 1);
        for _ in 0..1_000 {
            r.succeeded();
        }
        assert_eq!(r.window(), C.ramp_max);
        // A small fleet's ramp stays at a twentieth of it.
        let mut small = RampWindow::start(&C, 300, 0, 0);
        for _ in 0..100 {
            small.released();
            small.succeeded();
        }
        assert_eq!(small.window(), 15);
        assert_eq!(RampWindow::start(&C, 40, 0, 0).max, C.ramp_initial);
    }

    /// Grows a ramp with every released shard answered until it stops
    /// growing; returns (first window, largest window).
    fn windows(mut r: RampWindow) -> (u32, u32) {
        let first = r.window();
        for _ in 0..10_000 {
            r.released();
            r.succeeded();
        }
        (first, r.window())
    }

    #[test]
    fn the_processes_of_one_bot_start_one_ramp() {
        // A bot of 1,000 shards in one process, and split over 4 and 8.
        let whole = windows(RampWindow::start(&C, 1000, 0, 0));
        assert_eq!(whole, (8, 48));
        assert_eq!(windows(RampWindow::start(&C, 1000, 1000, 0)), whole);
        // The first window is split; each grows to its own twentieth.
        assert_eq!(windows(RampWindow::start(&C, 250, 1000, 0)), (2, 12));
        assert_eq!(windows(RampWindow::start(&C, 125, 1000, 0)), (1, 6));
        // Small parts stay at their share: four of 25 ramp as one of 100.
        assert_eq!(windows(RampWindow::start(&C, 25, 100, 0)), (2, 2));
        assert_eq!(windows(RampWindow::start(&C, 100, 0, 0)), (8, 8));
        // Uneven parts round up: never more than one shard per process
        // above the bot's first window.
        let first: u32 = [100usize, 300, 600]
            .iter()
            .map(|&n| windows(RampWindow::start(&C, n, 1000, 0)).0)
            .sum();
        assert!((8..=8 + 3).contains(&first), "{first}");
        // Processes far smaller than the window still ramp one at a time
        // at first.
        assert_eq!(windows(RampWindow::start(&C, 5, 10_000, 0)).0, 1);
        // A bot count below the fleet's own size is the fleet's size.
        assert_eq!(windows(RampWindow::start(&C, 1000, 10, 0)), whole);
        // Nothing overflows at the ends of the ranges.
        let huge = RampWindow::start(&C, usize::MAX, u32::MAX, 0);
        assert_eq!(huge.window(), C.ramp_initial);
        assert_eq!(windows(RampWindow::start(&C, 0, 0, 0)).0, C.ramp_initial);
    }
}
