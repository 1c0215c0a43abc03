//! Many shards of one bot, driven as one sans-IO machine.
//!
//! A [`Fleet`] owns the [`Policy`] of every shard a process runs and, by
//! default, the bot's [`IdentifyLimiter`]. It is driven exactly like a lone
//! policy: events for shard N's connection in
//! ([`Fleet::handle_event`]), `(shard, output)` pairs out
//! ([`Fleet::poll_output`]), one wake-up time for the whole fleet
//! ([`Fleet::poll_timeout`]) and one place where timers run
//! ([`Fleet::handle_timeout`]). The shards' identify requests are answered
//! inside the fleet by its limiter, at the time of the input that raised
//! them, so a driver only sees actions on sockets. A fleet whose limiter
//! lives elsewhere (another process, a shared store) is built with
//! [`Fleet::with_remote_identify`]: it hands the requests out as
//! [`Action::Identify`] and takes the answers back through
//! [`Fleet::handle_identify`].
//!
//! Shard ids are the gateway's (`[shard_id, num_shards]`); a fleet may run
//! any set of them. The shards' wake-ups are kept on a timing wheel (see
//! `fleet_timers`), so a wake-up costs about the same whatever the fleet's
//! size, not a scan of the fleet; due shards run in order of time, then of
//! id.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::config::{ConfigError, PolicyConfig};
use crate::event::Event;
use crate::fleet_recovery::{Mark, Mode, RecoveryState};
use crate::fleet_timers::ShardTimers;
use crate::identify::IdentifyLimiter;
use crate::output::{Action, ConnectionId, IdentifyAnswer, Output, ProbeAnswer, ProbeRequest};
use crate::policy::{Handled, OutputQueue, Policy};
use crate::probe_share::{SharedProbe, SharedRecovery};
use crate::saved_session::SavedSessions;
use crate::send_budget::SendError;
use crate::state::{Counter, PolicyState};
use crate::time::Timestamp;

/// Why a fleet could not be built, or refused an input.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// The same shard id was given twice.
    DuplicateShard(u32),
    /// The shard id is not one of the fleet's.
    UnknownShard(u32),
}

impl core::fmt::Display for FleetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Config(error) => write!(f, "invalid configuration: {error}"),
            Self::DuplicateShard(shard) => write!(f, "shard {shard} was given twice"),
            Self::UnknownShard(shard) => write!(f, "shard {shard} is not in this fleet"),
        }
    }
}

impl std::error::Error for FleetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(error) => Some(error),
            Self::DuplicateShard(_) | Self::UnknownShard(_) => None,
        }
    }
}

impl From<ConfigError> for FleetError {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

/// The policies of many shards and the bot's identify limiter, driven as
/// one sans-IO machine with the run loop of a lone [`Policy`] (see the
/// [crate documentation](crate)): events for shard N's connection in
/// ([`Fleet::handle_event`]), `(shard, output)` pairs out
/// ([`Fleet::poll_output`]), one wake-up time ([`Fleet::poll_timeout`]),
/// timers only in [`Fleet::handle_timeout`]. The shards' identify requests
/// are answered inside the fleet, at the time of the input that raised
/// them; a fleet built with [`Fleet::with_remote_identify`] hands them out
/// instead.
///
/// ```
/// use reconnect_policy::{Action, Fleet, IdentifyLimiter, Output, PolicyConfig, SessionStartLimit, Timestamp};
///
/// let t = Timestamp::from_millis;
/// let limiter = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0));
/// let mut fleet = Fleet::new(PolicyConfig::default(), 0..3, 0x5eed, limiter, t(0)).unwrap();
/// // One bucket: shard 0 connects at once, the others wait for their slots.
/// let mut dials = Vec::new();
/// while let Some((shard, output)) = fleet.poll_output() {
///     if let Output::Action(Action::Connect { .. }) = output {
///         dials.push(shard);
///     }
/// }
/// assert_eq!(dials, [0]);
/// assert_eq!(fleet.poll_timeout(), Some(t(5_250)));
/// fleet.handle_timeout(t(5_250));
/// assert!(matches!(fleet.poll_output(), Some((1, Output::Action(Action::Connect { .. })))));
/// ```
#[derive(Clone, Debug)]
pub struct Fleet {
    /// The shards' policies, by id (each knows its id:
    /// [`Policy::shard`]).
    policies: Vec<Policy>,
    /// The bot's limiter, or `None` when identify requests are handed out.
    limiter: Option<IdentifyLimiter>,
    /// Each shard's wake-up time, the earliest at hand.
    timers: ShardTimers,
    /// The shards due in one `handle_timeout`, kept to reuse its memory.
    due: Vec<usize>,
    outputs: VecDeque<(u32, Output)>,
    /// The output queue lent to a shard for the time of an input (see
    /// [`OutputQueue`]): the shards hold none between inputs.
    spare: Option<OutputQueue>,
    /// Fleet-wide outages: detector, probes, ramp (see
    /// [`FleetRecovery`](crate::FleetRecovery)).
    recovery: RecoveryState,
    /// The shards are `0..n`, the usual fleet: each is at its id, which
    /// is then known without reading its policy (see [`Fleet::index`]).
    dense: bool,
}

/// What an input says about the fleet's link to the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signal {
    /// A frame arrived: the gateway is reachable.
    Life,
    /// A failure that means the network or the gateway may be gone.
    Failure,
    /// Nothing about the fleet.
    Nothing,
}

impl Fleet {
    /// A fleet running `shards` (gateway shard ids) with one configuration,
    /// each shard's jitter derived from `seed` and its id, the identify
    /// requests answered by `limiter`, created at `now`. Every shard's first
    /// attempt is due at once (the limiter spaces those that identify).
    ///
    /// # Errors
    ///
    /// [`FleetError::Config`] for an invalid configuration,
    /// [`FleetError::DuplicateShard`] for a shard id given twice.
    pub fn new(
        config: impl Into<Arc<PolicyConfig>>,
        shards: impl IntoIterator<Item = u32>,
        seed: u64,
        limiter: IdentifyLimiter,
        now: Timestamp,
    ) -> Result<Self, FleetError> {
        Self::build(config.into(), shards, seed, Some(limiter), now, None)
    }

    /// A fleet whose shards start from sessions saved by an earlier process
    /// (see [`Policy::resuming`]): a shard with an entry in `saved` resumes
    /// it at once, without asking the limiter; the others, and those whose
    /// saved session fails its checks, identify as in [`Fleet::new`].
    /// `limiter` is the fleet's own limiter, or `None` for one outside the
    /// fleet (as [`Fleet::with_remote_identify`]). Entries for shards not
    /// in `shards` are ignored.
    ///
    /// # Errors
    ///
    /// As [`Fleet::new`].
    pub fn resuming(
        config: impl Into<Arc<PolicyConfig>>,
        shards: impl IntoIterator<Item = u32>,
        seed: u64,
        limiter: Option<IdentifyLimiter>,
        now: Timestamp,
        saved: &SavedSessions,
    ) -> Result<Self, FleetError> {
        Self::build(config.into(), shards, seed, limiter, now, Some(saved))
    }

    /// A fleet whose identify limiter lives outside it: the shards' requests
    /// come out of [`Fleet::poll_output`] as [`Action::Identify`], and their
    /// answers go back through [`Fleet::handle_identify`].
    ///
    /// # Errors
    ///
    /// As [`Fleet::new`].
    pub fn with_remote_identify(
        config: impl Into<Arc<PolicyConfig>>,
        shards: impl IntoIterator<Item = u32>,
        seed: u64,
        now: Timestamp,
    ) -> Result<Self, FleetError> {
        Self::build(config.into(), shards, seed, None, now, None)
    }

    fn build(
        config: Arc<PolicyConfig>,
        shards: impl IntoIterator<Item = u32>,
        seed: u64,
        limiter: Option<IdentifyLimiter>,
        now: Timestamp,
        saved: Option<&SavedSessions>,
    ) -> Result<Self, FleetError> {
        config.validate()?;
        let mut ids: Vec<u32> = shards.into_iter().collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(FleetError::DuplicateShard(pair[0]));
        }
        // Sized once: collecting through `Result` would grow the vector by
        // doubling and keep up to twice the room the fleet needs.
        let policies = Vec::with_capacity(ids.len());
        let recovery = RecoveryState::new(config.fleet_recovery, ids.len(), seed);
        // Sorted and distinct: `0..n` exactly when the last is `n - 1`.
        let dense = ids
            .last()
            .is_none_or(|&last| usize::try_from(last).is_ok_and(|last| last + 1 == ids.len()));
        let mut fleet = Self {
            dense,
            timers: ShardTimers::new(ids.len()),
            policies,
            limiter,
            due: Vec::new(),
            outputs: VecDeque::new(),
            spare: None,
            recovery,
        };
        // Each shard is routed as soon as it is made, in order of id (what
        // routing one shard does touches only that shard, the limiter and
        // the fleet's queue), so that its first outputs go through the
        // one queue the fleet lends.
        for (index, &id) in ids.iter().enumerate() {
            let spare = fleet.spare.take();
            let policy = match saved.and_then(|saved| saved.get(&id)) {
                Some(session) => {
                    Policy::resuming_in(Arc::clone(&config), id, seed, now, session, spare)
                }
                None => Policy::new_in(Arc::clone(&config), id, seed, now, spare),
            }?;
            fleet.policies.push(policy);
            fleet.route(index, now);
        }
        Ok(fleet)
    }

    // ----- inputs -------------------------------------------------------

    /// Applies an event about shard `shard`'s connection `conn` that
    /// happened at `now` (see [`Policy::handle_event`]; as there, timers run
    /// only in [`Fleet::handle_timeout`]).
    ///
    /// # Errors
    ///
    /// [`FleetError::UnknownShard`] when the shard is not in the fleet.
    pub fn handle_event(
        &mut self,
        now: Timestamp,
        shard: u32,
        conn: ConnectionId,
        event: Event,
    ) -> Result<Handled, FleetError> {
        let index = self.index(shard)?;
        let ours = matches!(event, Event::Closed { code: None })
            && self.recovery.config.enabled
            && matches!(self.policies[index].state(), PolicyState::Closing);
        let frame = matches!(
            event,
            Event::Hello { .. }
                | Event::Dispatch { .. }
                | Event::HeartbeatAck
                | Event::HeartbeatRequest
                | Event::Reconnect
                | Event::InvalidSession { .. }
                | Event::OtherFrame
        );
        let failure = matches!(
            event,
            Event::ConnectFailed { .. } | Event::Closed { code: None }
        ) && !ours;
        let resuming = self.recovery.mode == Mode::Ramp
            && matches!(self.policies[index].state(), PolicyState::Resuming);
        let handled = self.lent(index).handle_event(now, conn, event);
        if resuming {
            self.resume_answered(now, index);
        }
        // A frame on a socket the shard has left behind was sent before
        // whatever ended it: it proves nothing about the link now.
        let signal = if frame && handled != Handled::Stale {
            Signal::Life
        } else if failure && handled == Handled::Accepted {
            Signal::Failure
        } else {
            Signal::Nothing
        };
        self.observe(index, now, signal);
        self.route(index, now);
        self.after_input(now);
        Ok(handled)
    }

    /// Applies the answer of an identify limiter outside the fleet to
    /// shard `shard`'s last request (see [`Policy::handle_identify`]).
    ///
    /// # Errors
    ///
    /// [`FleetError::UnknownShard`] when the shard is not in the fleet.
    pub fn handle_identify(
        &mut self,
        now: Timestamp,
        shard: u32,
        answer: IdentifyAnswer,
    ) -> Result<Handled, FleetError> {
        let index = self.index(shard)?;
        let handled = self.lent(index).handle_identify(now, answer);
        self.route(index, now);
        self.after_input(now);
        Ok(handled)
    }

    /// Runs the timers of every shard due at or before `now`. The only place
    /// timers run; safe to call at any time.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.recovery_timers(now);
        let mut due = std::mem::take(&mut self.due);
        self.timers.take_due(now, &mut due);
        // Every due policy read first, so that their cache misses overlap
        // (see `Policy::warm`); one alone has nothing to overlap with.
        if due.len() > 1 {
            let warmed = due
                .iter()
                .fold(0, |acc, &index| acc ^ self.policies[index].warm());
            std::hint::black_box(warmed);
        }
        let watch = self.recovery.config.enabled;
        for &index in &due {
            let policy = self.lent(index);
            let (zombies, connecting) = if watch {
                (
                    policy.count(Counter::Zombies),
                    matches!(policy.state(), PolicyState::Connecting { .. }),
                )
            } else {
                (0, false)
            };
            policy.handle_timeout(now);
            if watch {
                // A zombie, or a dial or a Hello that timed out.
                let failed = policy.count(Counter::Zombies) > zombies
                    || (connecting && !matches!(policy.state(), PolicyState::Connecting { .. }));
                let signal = if failed {
                    Signal::Failure
                } else {
                    Signal::Nothing
                };
                self.observe(index, now, signal);
            }
            self.route(index, now);
        }
        due.clear();
        self.due = due;
        self.after_input(now);
    }

    /// Closes every shard's session for good (see [`Policy::shutdown`]).
    pub fn shutdown(&mut self, now: Timestamp) {
        for index in 0..self.policies.len() {
            self.lent(index).shutdown(now);
            self.route(index, now);
        }
    }

    /// Stops every shard without ending its session (see
    /// [`Policy::shutdown_keeping_session`]); once the fleet is terminal,
    /// [`Fleet::saved_sessions`] hands them out.
    pub fn shutdown_keeping_sessions(&mut self, now: Timestamp) {
        for index in 0..self.policies.len() {
            self.lent(index).shutdown_keeping_session(now);
            self.route(index, now);
        }
    }

    /// Every shard's session as it stands, by shard id (shards without one
    /// are left out), to save and start a later fleet from
    /// ([`Fleet::resuming`]).
    #[must_use]
    pub fn saved_sessions(&self) -> SavedSessions {
        self.policies()
            .filter_map(|(id, policy)| policy.saved_session().map(|saved| (id, saved)))
            .collect()
    }

    /// Asks to send one of the driver's own commands on shard `shard`'s
    /// connection now (see [`Policy::try_send_command`]).
    ///
    /// # Errors
    ///
    /// As [`Policy::try_send_command`]; [`SendError::NoSession`] for a
    /// shard that is not in the fleet.
    pub fn try_send_command(&mut self, now: Timestamp, shard: u32) -> Result<(), SendError> {
        let index = self.index(shard).map_err(|_| SendError::NoSession)?;
        self.policies[index].try_send_command(now)
    }

    // ----- outputs ------------------------------------------------------

    /// The next thing the driver must do or may log, with the shard it is
    /// about, or `None` when there is nothing until the next input or
    /// [`Fleet::poll_timeout`].
    pub fn poll_output(&mut self) -> Option<(u32, Output)> {
        self.outputs.pop_front()
    }

    /// The earliest time at which any shard has something to do, or `None`
    /// when none has (all stopped, or waiting for inputs only).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let shards = self.timers.next();
        match (shards, self.recovery.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- getters ------------------------------------------------------

    /// Shard `shard`'s policy, for its state and counters.
    #[must_use]
    pub fn policy(&self, shard: u32) -> Option<&Policy> {
        self.index(shard).ok().map(|index| &self.policies[index])
    }

    /// Every shard's id and policy, by id.
    pub fn policies(&self) -> impl Iterator<Item = (u32, &Policy)> {
        self.policies.iter().map(|policy| (policy.shard(), policy))
    }

    /// The fleet's identify limiter, unless it lives outside the fleet.
    #[must_use]
    pub const fn limiter(&self) -> Option<&IdentifyLimiter> {
        self.limiter.as_ref()
    }

    /// Whether the fleet is recovering from a fleet-wide outage: holding
    /// its shards while probes carry its attempts, or releasing them in the
    /// ramp (see [`FleetRecovery`](crate::FleetRecovery)).
    #[must_use]
    pub fn is_recovering(&self) -> bool {
        self.recovery.mode != Mode::Healthy
    }

    /// Whether shard `shard` is held by the fleet's outage recovery.
    #[must_use]
    pub fn is_held(&self, shard: u32) -> bool {
        self.index(shard)
            .is_ok_and(|index| self.policies[index].is_held())
    }

    /// Fleet-wide outages tripped so far.
    #[must_use]
    pub const fn outages(&self) -> u64 {
        self.recovery.outages
    }

    /// Whether every shard has stopped for good.
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        self.policies.iter().all(|p| p.state().is_terminal())
    }

    // ----- routing ------------------------------------------------------

    /// Shard `index`'s policy, lent the fleet's output queue for an input
    /// (taken back by [`Fleet::route`] once drained).
    #[inline]
    fn lent(&mut self, index: usize) -> &mut Policy {
        let policy = &mut self.policies[index];
        policy.lend_outputs(&mut self.spare);
        policy
    }

    /// Where shard `shard` is. A fleet of shards `0..n`, the usual one,
    /// holds each at its id: found without reading a policy (an input
    /// then reads only the lines of its shard's policy it needs).
    fn index(&self, shard: u32) -> Result<usize, FleetError> {
        let at = shard as usize;
        if self.dense {
            return if at < self.policies.len() {
                Ok(at)
            } else {
                Err(FleetError::UnknownShard(shard))
            };
        }
        if self
            .policies
            .get(at)
            .is_some_and(|policy| policy.shard() == shard)
        {
            return Ok(at);
        }
        self.policies
            .binary_search_by_key(&shard, Policy::shard)
            .map_err(|_| FleetError::UnknownShard(shard))
    }

    /// The id of the shard at `index`: the index itself in a fleet of
    /// shards `0..n` (see [`Fleet::index`]), read from its policy
    /// otherwise.
    #[inline]
    fn shard_at(&self, index: usize) -> u32 {
        if self.dense {
            // A dense fleet's indexes are its ids, all `u32`s.
            u32::try_from(index).unwrap_or(u32::MAX)
        } else {
            self.policies[index].shard()
        }
    }

    /// Drains shard `index`'s outputs: identify requests to the limiter (its
    /// answers straight back), everything else to the fleet's queue. Then
    /// files the shard's new wake-up time.
    fn route(&mut self, index: usize, now: Timestamp) {
        let shard = self.shard_at(index);
        while let Some(output) = self.policies[index].poll_output() {
            if let (Some(limiter), Output::Action(Action::Identify { shard, request })) =
                (&mut self.limiter, &output)
            {
                if let Some(answer) = limiter.answer(now, *shard, *request) {
                    self.policies[index].handle_identify(now, answer);
                }
                continue;
            }
            self.outputs.push_back((shard, output));
        }
        self.policies[index].reclaim_outputs(&mut self.spare);
        if self.recovery.config.enabled {
            let connected = self.policies[index].state().is_connected();
            let recovery = &mut self.recovery;
            if connected != recovery.connected[index] {
                recovery.connected[index] = connected;
                recovery.live = if connected {
                    recovery.live.saturating_add(1)
                } else {
                    recovery.live.saturating_sub(1)
                };
            }
        }
        if self.recovery.mode != Mode::Healthy {
            self.track(index);
        }
        let wake = self.policies[index].poll_timeout();
        self.timers.set(index, wake);
    }
}

/// Fleet-wide outage recovery (see [`FleetRecovery`](crate::FleetRecovery)).
impl Fleet {
    /// Feeds the detector with what an input on shard `index` said: an
    /// input that said nothing about the fleet costs no call.
    #[inline]
    fn observe(&mut self, index: usize, now: Timestamp, signal: Signal) {
        if signal != Signal::Nothing && self.recovery.config.enabled {
            self.feed_detector(index, now, signal);
        }
    }

    /// [`Fleet::observe`] for a sign of life or a failure, the recovery
    /// being enabled. Inline, and so is a sign of life outside an outage
    /// (the most common signal: every frame is one); a failure, and a
    /// sign of life that ends an outage, go out of line
    /// ([`Fleet::failure_seen`], [`Fleet::outage_answered`]), so that a
    /// frame does not pay for their frames.
    #[inline]
    fn feed_detector(&mut self, index: usize, now: Timestamp, signal: Signal) {
        let recovery = &mut self.recovery;
        match signal {
            Signal::Life => {
                recovery.detector.sign_of_life(now);
                if recovery.config.quiet_check_ms > 0 && recovery.live > 0 {
                    let silence = recovery.config.quiet_silence_ms(recovery.live);
                    recovery.quiet_at = Some(now.saturating_add(silence));
                }
                if recovery.mode == Mode::Outage {
                    self.outage_answered();
                }
            }
            Signal::Failure if recovery.mode != Mode::Outage => self.failure_seen(index, now),
            Signal::Failure | Signal::Nothing => {}
        }
    }

    /// A sign of life during an outage: the ramp starts, and the probe
    /// that was out counts as answered.
    #[inline(never)]
    fn outage_answered(&mut self) {
        self.start_ramp();
        self.report_probe(ProbeRequest::Answered);
    }

    /// [`Fleet::feed_detector`] for a failure outside an outage: the
    /// detector counts it, and may trip.
    #[inline(never)]
    fn failure_seen(&mut self, index: usize, now: Timestamp) {
        let recovery = &mut self.recovery;
        // The shards connected now: the count kept as shards are routed,
        // which every shard but this one (its input is not routed yet) is
        // up to date in, rather than a scan of the whole fleet on every
        // first failure of a window.
        let policies = &self.policies;
        let live = || {
            let was = usize::from(recovery.connected[index]);
            let is = usize::from(policies[index].state().is_connected());
            let live = usize::try_from(recovery.live)
                .unwrap_or(usize::MAX)
                .saturating_sub(was)
                .saturating_add(is);
            debug_assert_eq!(
                live,
                policies
                    .iter()
                    .filter(|policy| policy.state().is_connected())
                    .count()
            );
            live
        };
        if recovery
            .detector
            .failure(now, index, &recovery.config, live)
        {
            recovery.trip_pending = true;
        }
    }

    /// A Resume of shard `index` was answered during the ramp: once enough
    /// are refused and none accepted, the held shards' sessions are
    /// forgotten (see `FleetRecovery::forget_after_refused`).
    fn resume_answered(&mut self, now: Timestamp, index: usize) {
        let policy = &self.policies[index];
        let recovery = &mut self.recovery;
        if policy.state().is_connected() {
            recovery.resumes_succeeded = recovery.resumes_succeeded.saturating_add(1);
            return;
        }
        if policy.session().is_some() || matches!(policy.state(), PolicyState::Resuming) {
            return;
        }
        recovery.resumes_refused = recovery.resumes_refused.saturating_add(1);
        if matches!(recovery.marks[index], Mark::Ramping { .. }) {
            // Answered: the gateway is serving; the shard goes its own way.
            recovery.ramp.succeeded();
            recovery.marks[index] = Mark::OnItsOwn;
            recovery.ramp_moved = true;
        }
        let limit = recovery.config.forget_after_refused;
        if limit == 0 || recovery.resumes_refused != limit || recovery.resumes_succeeded > 0 {
            return;
        }
        for other in 0..self.policies.len() {
            if self.recovery.marks[other] == Mark::Held {
                self.lent(other).forget_session();
                self.route(other, now);
            }
        }
    }

    /// Runs the detector's and the probes' timers.
    fn recovery_timers(&mut self, now: Timestamp) {
        if !self.recovery.config.enabled {
            return;
        }
        let config = self.recovery.config;
        if self.recovery.mode != Mode::Outage && self.recovery.detector.handle_timeout(now, &config)
        {
            self.recovery.trip_pending = true;
        }
        if self.recovery.trip_pending {
            self.trip(now);
        }
        if self.recovery.quiet_at.is_some_and(|at| at <= now) {
            self.quiet(now);
        }
        let recovery = &mut self.recovery;
        if recovery.mode == Mode::Ramp && recovery.checks_until.is_some_and(|at| at <= now) {
            recovery.checks_until = None;
            recovery.ramp_moved = true;
        }
        if recovery.mode == Mode::Outage && recovery.probes.due(now, &config, &mut recovery.jitter)
        {
            if recovery.shared.is_some() {
                self.ask_probe(now);
            } else {
                self.probe(now);
            }
        }
        if let Some(shared) = &mut self.recovery.shared
            && shared.pending.is_some_and(|at| at <= now)
        {
            // No answer in time: probe on the fleet's own schedule.
            shared.pending = None;
            shared.timeouts = shared.timeouts.saturating_add(1);
            if self.recovery.mode == Mode::Outage {
                self.probe(now);
            }
        }
    }

    /// The fleet has heard nothing since its last frame: once the silence
    /// is long enough for its live connections (see
    /// `FleetRecovery::quiet_check_ms`), every shard that looks connected
    /// must answer a heartbeat soon; a black hole's dead sockets then fail
    /// together and trip the outage.
    fn quiet(&mut self, now: Timestamp) {
        self.recovery.quiet_at = None;
        let Some(last) = self.recovery.detector.last_life() else {
            return;
        };
        if self.recovery.mode != Mode::Healthy {
            return;
        }
        let live = self.recovery.live;
        if live == 0 {
            return;
        }
        let config = self.recovery.config;
        let silence = config.quiet_silence_ms(live);
        let due = last.saturating_add(silence);
        if due > now {
            self.recovery.quiet_at = Some(due);
            return;
        }
        for index in 0..self.policies.len() {
            if self.policies[index].state().is_connected() {
                self.lent(index).check_alive(now, config.check_ms);
                self.route(index, now);
            }
        }
    }

    /// What is left to do at the end of an input: hold the fleet if an
    /// outage tripped, release shards if the ramp has room. Inline, and
    /// only a check: after almost every input there is nothing to do, and
    /// the work itself ([`Fleet::settle_input`]) stays out of line, so
    /// that the check does not pay for its frame.
    #[inline]
    fn after_input(&mut self, now: Timestamp) {
        let recovery = &self.recovery;
        if recovery.trip_pending || (recovery.mode == Mode::Ramp && recovery.ramp_moved) {
            self.settle_input(now);
        }
    }

    /// [`Fleet::after_input`]'s work, when there is some.
    #[inline(never)]
    fn settle_input(&mut self, now: Timestamp) {
        if self.recovery.trip_pending {
            self.trip(now);
        }
        if self.recovery.mode == Mode::Ramp && self.recovery.ramp_moved {
            self.fill_ramp(now);
        }
    }

    /// The fleet lost the gateway: hold every shard still running, start
    /// probing.
    fn trip(&mut self, now: Timestamp) {
        let recovery = &mut self.recovery;
        recovery.trip_pending = false;
        recovery.mode = Mode::Outage;
        // Failures seen in the input that tripped it, after the trip was
        // decided, must not leave a check behind: the detector sleeps
        // while the outage lasts.
        recovery.detector.clear();
        recovery.outages = recovery.outages.saturating_add(1);
        recovery.ramp = crate::fleet_recovery::RampWindow::default();
        // A fleet that shares its probes with the bot's other processes
        // probes at the rate of one fleet of the bot's size: the grants
        // make it one stream for the bot.
        let bot_shards = recovery.shared.map_or(0, |shared| shared.config.bot_shards);
        let probing_for = self.policies.len().max(bot_shards as usize);
        recovery
            .probes
            .start(now, &recovery.config, probing_for, &mut recovery.jitter);
        let check_ms = recovery.config.check_ms;
        // Room for the check's heartbeat to go out and its deadline to run.
        recovery.checks_until = Some(now.saturating_add(check_ms.saturating_add(1_000)));
        for index in 0..self.policies.len() {
            let state = self.policies[index].state();
            if state.is_terminal() {
                continue;
            }
            if state.is_connected() {
                self.lent(index).check_alive(now, check_ms);
            }
            self.policies[index].set_held(true);
            self.recovery.marks[index] = Mark::Held;
            self.route(index, now);
        }
    }

    /// Releases one held shard as a probe: one due to start by its own plan
    /// if any (one that would resume first: a Resume costs no identify
    /// slot), else the one due soonest.
    fn probe(&mut self, now: Timestamp) {
        let mut best: Option<((bool, bool, Timestamp), usize)> = None;
        for (index, policy) in self.policies.iter().enumerate() {
            if self.recovery.marks[index] != Mark::Held {
                continue;
            }
            let Some(at) = policy.waiting_until() else {
                continue;
            };
            let key = (at > now, policy.session().is_none(), at);
            if best.is_none_or(|(k, _)| key < k) {
                best = Some((key, index));
            }
        }
        if let Some((_, index)) = best {
            self.release(index, now, false);
        }
    }

    /// Lets shard `index` dial by its own plan, as a probe or in the ramp.
    fn release(&mut self, index: usize, now: Timestamp, ramp: bool) {
        let attempts = self.policies[index].count(Counter::Attempts);
        self.policies[index].set_held(false);
        self.recovery.marks[index] = if ramp {
            self.recovery.ramp.released();
            Mark::Ramping { attempts }
        } else {
            Mark::Probing { attempts }
        };
        self.route(index, now);
    }

    /// A frame arrived during the outage: the probes still out count in
    /// the ramp's first window, and the ramp begins.
    fn start_ramp(&mut self) {
        let recovery = &mut self.recovery;
        recovery.mode = Mode::Ramp;
        recovery.probes.stop();
        let mut probing = 0u32;
        for mark in &mut recovery.marks {
            if let Mark::Probing { attempts } = *mark {
                *mark = Mark::Ramping { attempts };
                probing = probing.saturating_add(1);
            }
        }
        let bot_shards = recovery.shared.map_or(0, |shared| shared.config.bot_shards);
        recovery.ramp = crate::fleet_recovery::RampWindow::start(
            &recovery.config,
            recovery.marks.len(),
            bot_shards,
            probing,
        );
        recovery.ramp_moved = true;
        recovery.resumes_refused = 0;
        recovery.resumes_succeeded = 0;
    }

    /// Releases held shards while the ramp has room; ends the episode when
    /// none is held and none released is still connecting.
    fn fill_ramp(&mut self, now: Timestamp) {
        self.recovery.ramp_moved = false;
        let n = self.policies.len();
        let mut exhausted = false;
        while self.recovery.ramp.has_room() {
            let start = self.recovery.cursor;
            let found = (0..n).map(|step| (start + step) % n).find(|&index| {
                self.recovery.marks[index] == Mark::Held
                    && self.policies[index].waiting_until().is_some()
            });
            let Some(index) = found else {
                exhausted = true;
                break;
            };
            self.recovery.cursor = (index + 1) % n.max(1);
            self.release(index, now, true);
        }
        if exhausted && self.recovery.ramp.in_flight() == 0 && self.recovery.checks_until.is_none()
        {
            self.recovery.mode = Mode::Healthy;
            self.report_probe(ProbeRequest::Over);
            for index in 0..n {
                self.recovery.marks[index] = Mark::Free;
                if self.policies[index].is_held() {
                    self.policies[index].set_held(false);
                    self.route(index, now);
                }
            }
        }
    }

    /// Follows shard `index` through the episode: a probe that failed is
    /// held again, a shard released by the ramp moves the window when it
    /// settles.
    fn track(&mut self, index: usize) {
        let policy = &self.policies[index];
        match self.recovery.marks[index] {
            Mark::Probing { attempts } => {
                if policy.count(Counter::Attempts) > attempts
                    && matches!(
                        policy.state(),
                        PolicyState::BackingOff { .. } | PolicyState::GivenUp { .. }
                    )
                {
                    self.policies[index].set_held(true);
                    self.recovery.marks[index] = Mark::Held;
                    self.report_probe(ProbeRequest::Failed);
                }
            }
            Mark::Ramping { attempts } => {
                let state = policy.state();
                // The gateway answered the handshake: Hello before an
                // Identify (the limiter paces the rest), RESUMED to a
                // Resume (a refused Resume is counted where it is seen, in
                // `resume_answered`) until one Resume succeeded. What the ramp paces is the gateway's
                // load, and until a Resume is answered the fleet does not
                // know whether the sessions survived.
                // Once one Resume succeeded, the sessions survived: a Resume
                // sent counts as soon as Hello came.
                let resumes_work = self.recovery.resumes_succeeded > 0;
                if matches!(
                    state,
                    PolicyState::WaitingForIdentifySlot { .. }
                        | PolicyState::Identifying
                        | PolicyState::Connected { .. }
                ) || (resumes_work && matches!(state, PolicyState::Resuming))
                {
                    self.recovery.ramp.succeeded();
                } else if policy.count(Counter::Attempts) > attempts
                    && (matches!(state, PolicyState::BackingOff { .. } | PolicyState::Closing)
                        || state.is_terminal())
                {
                    self.recovery.ramp.failed();
                } else {
                    return;
                }
                self.recovery.marks[index] = Mark::OnItsOwn;
                self.recovery.ramp_moved = true;
            }
            Mark::Free | Mark::Held | Mark::OnItsOwn => {}
        }
    }
}

/// Outage probes shared with the bot's other processes (see
/// [`SharedRecovery`]).
impl Fleet {
    /// This fleet, sharing its fleet-wide outage probes with the bot's
    /// other processes: when its own schedule says probe, it asks the
    /// bot-wide coordinator instead ([`Action::Probe`] with
    /// [`ProbeRequest::Acquire`]) and probes only once granted; it reports
    /// an answered probe, a failed one and the end of its ramp the same
    /// way. The answers go back through [`Fleet::handle_probe`]. An ask
    /// unanswered after [`SharedRecovery::answer_timeout_ms`] makes it probe
    /// on its own schedule, as a fleet that shares nothing. Without this,
    /// the fleet decides alone and never emits [`Action::Probe`].
    ///
    /// ```
    /// use reconnect_policy::{Fleet, PolicyConfig, SharedRecovery, Timestamp};
    ///
    /// let fleet = Fleet::with_remote_identify(PolicyConfig::default(), 0..4, 1, Timestamp::ZERO)
    ///     .unwrap()
    ///     .with_shared_recovery(SharedRecovery::DEFAULT);
    /// assert!(fleet.shares_recovery());
    /// ```
    #[must_use]
    pub fn with_shared_recovery(mut self, config: SharedRecovery) -> Self {
        self.recovery.shared = Some(SharedProbe::new(config));
        self
    }

    /// Whether the fleet shares its outage probes (see
    /// [`Fleet::with_shared_recovery`]).
    #[must_use]
    pub const fn shares_recovery(&self) -> bool {
        self.recovery.shared.is_some()
    }

    /// Asks that got no answer within
    /// [`SharedRecovery::answer_timeout_ms`], after which the fleet probed
    /// on its own.
    #[must_use]
    pub fn probe_answer_timeouts(&self) -> u64 {
        self.recovery.shared.map_or(0, |shared| shared.timeouts)
    }

    /// Applies the bot-wide coordinator's answer to the fleet's last
    /// [`ProbeRequest::Acquire`], received at `now`:
    /// [`ProbeAnswer::Granted`] releases one held shard as the probe,
    /// [`ProbeAnswer::NotYet`] moves the next ask to `retry_at` (within
    /// [`SharedRecovery`]'s bounds), [`ProbeAnswer::GatewayBack`] starts the
    /// ramp at once. An answer nobody waits for any more (it came after
    /// the timeout, or the outage is over) is ignored, except
    /// `GatewayBack`, which ends an outage whenever it comes. A fleet that
    /// does not share its probes ignores every answer.
    pub fn handle_probe(&mut self, now: Timestamp, answer: ProbeAnswer) {
        let Some(shared) = &mut self.recovery.shared else {
            return;
        };
        let waited = shared.pending.take().is_some();
        let outage = self.recovery.mode == Mode::Outage;
        match answer {
            ProbeAnswer::Granted if waited && outage => self.probe(now),
            ProbeAnswer::NotYet { retry_at } if waited && outage => {
                let at = shared.retry_at(now, retry_at);
                self.recovery.probes.defer_to(at);
            }
            ProbeAnswer::GatewayBack if outage => self.start_ramp(),
            ProbeAnswer::Granted | ProbeAnswer::NotYet { .. } | ProbeAnswer::GatewayBack => {}
        }
        self.after_input(now);
    }

    /// Asks the coordinator whether this fleet may probe now (at most one
    /// ask out at a time).
    fn ask_probe(&mut self, now: Timestamp) {
        let recovery = &mut self.recovery;
        let Some(shared) = &mut recovery.shared else {
            return;
        };
        if shared.pending.is_some() {
            return;
        }
        shared.pending = Some(now.saturating_add(shared.config.answer_timeout_ms));
        let request = ProbeRequest::Acquire {
            next_at: recovery.probes.poll_timeout().unwrap_or(now),
            since: recovery.probes.started_at(),
        };
        self.report_probe(request);
    }

    /// Emits `request` to the coordinator, if the fleet shares its probes.
    fn report_probe(&mut self, request: ProbeRequest) {
        if self.recovery.shared.is_none() {
            return;
        }
        let shard = self.policies.first().map_or(0, Policy::shard);
        self.outputs
            .push_back((shard, Output::Action(Action::Probe(request))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Dispatch;
    use crate::identify::SessionStartLimit;
    use crate::output::Command;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn limiter(max_concurrency: u16) -> IdentifyLimiter {
        IdentifyLimiter::new(
            SessionStartLimit {
                max_concurrency,
                ..SessionStartLimit::DISCORD_DEFAULT
            },
            t(0),
        )
    }

    /// Plays a perfect gateway for the fleet until `end`: every dial opens
    /// after 50 ms, Hello follows, Identify is answered with READY, Resume
    /// with RESUMED, heartbeats with ACKs. Returns `(time, shard)` of every
    /// Identify sent.
    fn run(fleet: &mut Fleet, end: u64) -> Vec<(u64, u32)> {
        let mut pending: Vec<(u64, u32, ConnectionId, Event)> = Vec::new();
        let mut identifies = Vec::new();
        let mut now = 0;
        loop {
            fleet.handle_timeout(t(now));
            pending.sort_by_key(|(at, shard, ..)| (*at, *shard));
            while pending.first().is_some_and(|(at, ..)| *at <= now) {
                let (_, shard, conn, event) = pending.remove(0);
                fleet.handle_event(t(now), shard, conn, event).unwrap();
            }
            while let Some((shard, output)) = fleet.poll_output() {
                let Output::Action(action) = output else {
                    continue;
                };
                match action {
                    Action::Connect { connection, .. } => {
                        pending.push((now + 50, shard, connection, Event::Opened));
                        let hello = Event::Hello {
                            heartbeat_interval_ms: 41_250,
                        };
                        pending.push((now + 60, shard, connection, hello));
                    }
                    Action::Send {
                        connection,
                        command,
                    } => {
                        let reply = match command {
                            Command::Identify => {
                                identifies.push((now, shard));
                                Event::Dispatch {
                                    seq: Some(1),
                                    event: Dispatch::Ready {
                                        session_id: format!("s{shard}"),
                                        resume_gateway_url: "wss://r.discord.gg".into(),
                                    },
                                }
                            }
                            Command::Resume { seq, .. } => Event::Dispatch {
                                seq: Some(seq + 1),
                                event: Dispatch::Resumed,
                            },
                            Command::Heartbeat { .. } => Event::HeartbeatAck,
                        };
                        pending.push((now + 40, shard, connection, reply));
                    }
                    Action::Close { connection, .. } => {
                        pending.push((now + 40, shard, connection, Event::Closed { code: None }));
                    }
                    Action::Identify { .. } => panic!("the fleet answers identify requests"),
                    Action::Probe(_) => panic!("the fleet shares no probe"),
                    Action::Abort { .. } | Action::GiveUp(_) => {}
                }
            }
            let next = fleet
                .poll_timeout()
                .map(Timestamp::as_millis)
                .into_iter()
                .chain(pending.iter().map(|(at, ..)| *at))
                .min();
            match next {
                Some(next) if next <= end => now = next.max(now + 1),
                _ => return identifies,
            }
        }
    }

    /// Between inputs no shard holds an output queue: the fleet lends its
    /// one queue for each input and takes it back, so a shard costs no
    /// queue (and no inline output) however many outputs it made.
    #[test]
    fn shards_hold_no_output_queue_between_inputs() {
        let mut fleet = Fleet::new(PolicyConfig::default(), 0..8, 7, limiter(2), t(0)).unwrap();
        assert!(fleet.policies.iter().all(|policy| !policy.holds_outputs()));
        let identifies = run(&mut fleet, 60_000);
        assert_eq!(identifies.len(), 8, "{identifies:?}");
        assert!(fleet.policies.iter().all(|policy| !policy.holds_outputs()));
        assert!(fleet.spare.is_some(), "the fleet keeps its queue");
    }

    #[test]
    fn a_fleet_identifies_its_shards_one_window_apart_per_bucket() {
        let mut fleet = Fleet::new(PolicyConfig::default(), 0..8, 7, limiter(2), t(0)).unwrap();
        let identifies = run(&mut fleet, 60_000);
        assert_eq!(identifies.len(), 8, "{identifies:?}");
        for bucket in 0..2 {
            let times: Vec<u64> = identifies
                .iter()
                .filter(|(_, shard)| shard % 2 == bucket)
                .map(|(at, _)| *at)
                .collect();
            assert!(
                times.windows(2).all(|w| w[1] - w[0] >= 5_000),
                "bucket {bucket}: {times:?}"
            );
        }
        assert!(
            fleet
                .policies()
                .all(|(_, policy)| policy.state().is_connected())
        );
        assert_eq!(fleet.limiter().unwrap().stats().granted, 8);
    }

    #[test]
    fn the_fleet_wakes_at_its_earliest_shard_however_often_timers_move() {
        // Ten minutes of heartbeats move every shard's wake-up again and
        // again; stale heap entries never surface and never pile up.
        let mut fleet = Fleet::new(PolicyConfig::default(), 0..40, 3, limiter(4), t(0)).unwrap();
        run(&mut fleet, 600_000);
        let earliest = fleet.policies().filter_map(|(_, p)| p.poll_timeout()).min();
        assert!(earliest.is_some());
        assert_eq!(fleet.poll_timeout(), earliest);
        assert!(
            fleet.timers.entries() <= 2 * 40 + 16,
            "{}",
            fleet.timers.entries()
        );
        // Nothing due yet: no shard's timer runs, and the wake-up stays.
        let before = fleet.poll_timeout();
        fleet.handle_timeout(t(600_000));
        assert_eq!(fleet.poll_timeout(), before);
        assert!(fleet.poll_output().is_none());
        // At the wake-up, the due shard runs and the next one takes over.
        fleet.handle_timeout(before.unwrap());
        let next = fleet.policies().filter_map(|(_, p)| p.poll_timeout()).min();
        assert_eq!(fleet.poll_timeout(), next);
    }

    #[test]
    fn a_fleet_drives_the_same_as_lone_policies_with_one_limiter() {
        // The fleet's outputs, by shard, are those of lone policies driven
        // with the same limiter in the same order.
        let mut fleet = Fleet::new(PolicyConfig::default(), [3, 5], 9, limiter(1), t(0)).unwrap();
        let mut shared = limiter(1);
        let mut lone: Vec<Policy> = [3, 5]
            .iter()
            .map(|&id| Policy::new(PolicyConfig::default(), id, 9, t(0)).unwrap())
            .collect();
        let mut expected = Vec::new();
        for policy in &mut lone {
            while let Some(output) = policy.poll_output() {
                if let Output::Action(Action::Identify { shard, request }) = output {
                    if let Some(answer) = shared.answer(t(0), shard, request) {
                        policy.handle_identify(t(0), answer);
                    }
                    continue;
                }
                expected.push((policy.shard(), output));
            }
        }
        let got: Vec<(u32, Output)> = std::iter::from_fn(|| fleet.poll_output()).collect();
        assert_eq!(got, expected);
        assert_eq!(
            fleet.poll_timeout(),
            lone.iter().filter_map(Policy::poll_timeout).min()
        );
    }

    #[test]
    fn a_remote_limiter_is_asked_through_outputs() {
        let mut fleet = Fleet::with_remote_identify(PolicyConfig::default(), [4], 1, t(0)).unwrap();
        let Some((4, Output::Action(Action::Identify { shard: 4, request }))) = fleet.poll_output()
        else {
            panic!("the first output asks for a start slot");
        };
        assert_eq!(request, crate::IdentifyRequest::ReserveStart);
        assert_eq!(fleet.poll_timeout(), None, "nothing to do until the answer");
        let handled = fleet
            .handle_identify(t(10), 4, IdentifyAnswer::StartAt(t(2_000)))
            .unwrap();
        assert_eq!(handled, Handled::Accepted);
        assert_eq!(fleet.poll_timeout(), Some(t(2_000)));
        fleet.handle_timeout(t(2_000));
        assert!(matches!(
            fleet.poll_output(),
            Some((4, Output::Action(Action::Connect { .. })))
        ));
    }

    /// Drops shards `0..shards` at `at` and refuses every dial for
    /// `for_ms`, while the gateway answers the other shards' heartbeats:
    /// returns the times of the dials.
    fn refuse_everything(fleet: &mut Fleet, shards: u32, at: u64, for_ms: u64) -> Vec<u64> {
        for shard in 0..shards {
            let conn = fleet.policy(shard).unwrap().connection().unwrap();
            fleet
                .handle_event(t(at), shard, conn, Event::Closed { code: None })
                .unwrap();
        }
        let mut dials = Vec::new();
        let mut now = at;
        while now < at + for_ms {
            while let Some((shard, output)) = fleet.poll_output() {
                if let Output::Action(Action::Send {
                    connection,
                    command: Command::Heartbeat { .. },
                }) = output
                    && shard >= shards
                {
                    fleet
                        .handle_event(t(now), shard, connection, Event::HeartbeatAck)
                        .unwrap();
                }
                if let Output::Action(Action::Connect { connection, .. }) = output {
                    dials.push(now);
                    let failure = crate::decision::ConnectFailure::Refused;
                    fleet
                        .handle_event(t(now), shard, connection, Event::ConnectFailed { failure })
                        .unwrap();
                }
            }
            match fleet.poll_timeout() {
                Some(next) if next.as_millis() < at + for_ms => {
                    now = next.as_millis().max(now);
                    fleet.handle_timeout(t(now));
                }
                _ => break,
            }
        }
        dials
    }

    #[test]
    fn a_fleet_that_loses_the_gateway_holds_its_shards_and_probes_one_at_a_time() {
        let mut fleet = Fleet::new(PolicyConfig::default(), 0..10, 5, limiter(16), t(0)).unwrap();
        run(&mut fleet, 30_000);
        assert!(fleet.policies().all(|(_, p)| p.state().is_connected()));
        let dials = refuse_everything(&mut fleet, 10, 40_000, 120_000);
        assert_eq!(fleet.outages(), 1);
        assert!(fleet.is_recovering());
        // Once tripped, the probes are the only dials, at least 750 ms apart.
        let first_probe = dials.iter().position(|&at| at >= 40_000 + 1_000).unwrap();
        assert!(first_probe <= 10, "{dials:?}");
        assert!(
            dials[first_probe..].windows(2).all(|w| w[1] - w[0] >= 750),
            "{dials:?}"
        );
        assert!(dials.len() <= 10 + 120 / 3 + 2, "{}", dials.len());
        assert!((0..10).filter(|&s| fleet.is_held(s)).count() >= 9);
        // The same fleet without it: every shard climbs its own backoff.
        let config = PolicyConfig {
            fleet_recovery: crate::FleetRecovery::OFF,
            ..PolicyConfig::default()
        };
        let mut alone = Fleet::new(config, 0..10, 5, limiter(16), t(0)).unwrap();
        run(&mut alone, 30_000);
        let alone_dials = refuse_everything(&mut alone, 10, 40_000, 120_000);
        assert_eq!(alone.outages(), 0);
        assert!(
            alone_dials.len() > 2 * dials.len(),
            "{} vs {}",
            alone_dials.len(),
            dials.len()
        );
    }

    #[test]
    fn one_shard_failing_alone_is_never_held() {
        let mut fleet = Fleet::new(PolicyConfig::default(), 0..10, 5, limiter(16), t(0)).unwrap();
        run(&mut fleet, 30_000);
        let dials = refuse_everything(&mut fleet, 1, 40_000, 120_000);
        assert_eq!(fleet.outages(), 0);
        assert!(!fleet.is_recovering());
        assert!(!fleet.is_held(0));
        assert!(dials.len() > 3, "{dials:?}");
    }

    #[test]
    fn bad_shard_ids_are_errors() {
        let err = Fleet::new(PolicyConfig::default(), [1, 2, 1], 0, limiter(1), t(0)).unwrap_err();
        assert_eq!(err, FleetError::DuplicateShard(1));
        let mut fleet = Fleet::new(PolicyConfig::default(), [1], 0, limiter(1), t(0)).unwrap();
        assert_eq!(
            fleet.handle_event(t(0), 9, ConnectionId(0), Event::Opened),
            Err(FleetError::UnknownShard(9))
        );
        assert_eq!(fleet.try_send_command(t(0), 9), Err(SendError::NoSession));
        assert!(fleet.policy(9).is_none());
        let bad = PolicyConfig {
            gateway_url: String::new(),
            ..PolicyConfig::default()
        };
        assert!(matches!(
            Fleet::new(bad, [0], 0, limiter(1), t(0)),
            Err(FleetError::Config(_))
        ));
    }

    /// A fleet of shards `0..n` finds each at its id without reading its
    /// policy, any other fleet by searching: both find the same shards and
    /// name them the same in their outputs.
    #[test]
    fn dense_and_sparse_fleets_find_their_shards() {
        for ids in [
            vec![0, 1, 2, 3],
            vec![2, 0, 3, 1],
            vec![0, 1, 3],
            vec![1, 2, 3],
            vec![],
        ] {
            let mut fleet =
                Fleet::new(PolicyConfig::default(), ids.clone(), 7, limiter(1), t(0)).unwrap();
            // `0..n`, in any order (and `0..0`).
            let dense = ids.len() != 3;
            assert_eq!(fleet.dense, dense, "{ids:?}");
            for shard in 0..6 {
                let known = ids.contains(&shard);
                assert_eq!(
                    fleet.policy(shard).map(Policy::shard),
                    known.then_some(shard)
                );
                assert_eq!(fleet.index(shard).is_ok(), known, "{ids:?} {shard}");
            }
            while let Some((shard, _)) = fleet.poll_output() {
                assert!(ids.contains(&shard), "{ids:?} {shard}");
            }
            fleet.handle_timeout(t(60_000));
            while let Some((shard, _)) = fleet.poll_output() {
                assert!(ids.contains(&shard), "{ids:?} {shard}");
            }
        }
    }
}
