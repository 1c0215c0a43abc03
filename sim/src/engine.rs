//! The discrete-event engine: virtual time, links, faults and the loop that
//! drives the clients.
//!
//! Time jumps from one event to the next (no ticks). Events sit in a queue
//! ordered by time and then by the order they were scheduled in, so two
//! events at the same millisecond always run in the same order (see
//! [`crate::queue`], a timing wheel). Nothing in a
//! run reads the wall clock or iterates a hash map: the same scenario,
//! model and seed give the same trace, byte for byte.
//!
//! This file owns the queue, the links, the faults and the clients, and
//! drives the gateway ([`crate::gateway`], a sans-IO state machine) as it
//! drives the clients: it hands the gateway what arrives on the server half
//! of a socket, carries what the gateway sends back across the link, and
//! queues each gateway timer as an event of its own (the gateway keeps no
//! queue of them, see [`Gateway::driver_holds_timers`]), so each timer runs
//! at its place among the events of its millisecond.

use reconnect_policy::{FleetError, IdentifyLimiter, PolicyConfig, SessionStartLimit, Timestamp};

use crate::client::{
    Action, Clients, Cx, FleetClient, PeerClient, PeerKind, PeerShared, ProcessesClient,
    ProcessesFigures, RecentSockets, ShardRecords, Timer,
};
use crate::gateway::{self, Gateway, ServerFault};
use crate::in_flight::{InFlight, Message};
use crate::metrics::{DeliveryTally, MaybeMs, Recorder, WindowPeak};
use crate::net::{LinkRng, Links, ShardLink, Side, Slot, Sockets};
use crate::queue::Queue;
use crate::rng::{self, Stream};
use crate::rules;
use crate::scenario::{DownMode, Fault, FaultKind, Scenario, Scope};
use crate::wire::{Refusal, SockId, ToClient, ToServer};

/// The engine keeps the fleet's record of each shard's recent sockets in
/// the first line of the shard's link record, beside the link's draws and
/// flags, which the send a socket action makes reads next.
impl<X> ShardRecords for Links<X, RecentSockets> {
    #[inline]
    fn recent_mut(&mut self, shard: u32) -> Option<&mut RecentSockets> {
        self.client_mut(shard)
    }
}

/// What a shard runs.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSpec {
    /// The policy crate with this configuration.
    Policy {
        /// The name shown in reports.
        name: String,
        /// The configuration.
        config: Box<PolicyConfig>,
    },
    /// A model of another library.
    Peer(PeerKind),
}

impl ModelSpec {
    /// The name shown in reports.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Policy { name, .. } => name,
            Self::Peer(kind) => kind.name(),
        }
    }
}

/// Limits on one run, counted in simulated events so that the same input
/// gives the same outcome on any machine, however loaded; going over them
/// is an error that names the scenario, the model and the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Events processed at most.
    pub max_events: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_events: 2_000_000_000,
        }
    }
}

/// Events one shard may have pending at once, beyond [`PENDING_BASE`],
/// before the run is cut off as a backlog. A shard's timers, messages in
/// flight and sockets need a few dozen under a sound client; the leakiest
/// built-in peer model (`carbon-old-pr`, which leaves sockets behind) peaks
/// near 1,200 a shard in `repeated-outage`. A model that keeps queueing
/// work faster than it is done would otherwise grow the queue with
/// simulated time.
pub const PENDING_PER_SHARD: u64 = 4_096;
/// Events a run may have pending at once whatever its fleet (the
/// scenario's faults, the heal, the fleet's own timers).
pub const PENDING_BASE: u64 = 65_536;

/// The most events a run of `shards` shards may have pending at once
/// before it ends with [`RunError::Backlog`].
#[must_use]
pub fn pending_cap(shards: u32) -> u64 {
    PENDING_BASE.saturating_add(PENDING_PER_SHARD.saturating_mul(u64::from(shards)))
}

/// A run that could not finish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunError {
    /// The model's configuration is invalid.
    Config(String),
    /// The run went over its event budget.
    Budget {
        /// The scenario's name.
        scenario: String,
        /// The model's name.
        model: String,
        /// The seed, to replay it.
        seed: u64,
        /// Simulated time reached, ms.
        reached_ms: u64,
        /// Events processed.
        events: u64,
    },
    /// The model kept queueing work: more events were pending at once than
    /// the fleet can need ([`pending_cap`]).
    Backlog {
        /// The scenario's name.
        scenario: String,
        /// The model's name.
        model: String,
        /// The seed, to replay it.
        seed: u64,
        /// Simulated time reached, ms.
        reached_ms: u64,
        /// The cap on pending events that was passed.
        pending: u64,
    },
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(e) => write!(f, "invalid model configuration: {e}"),
            Self::Budget {
                scenario,
                model,
                seed,
                reached_ms,
                events,
            } => write!(
                f,
                "{scenario} with {model}, seed {seed}: went over its budget of {events} events at {reached_ms} ms of simulated time"
            ),
            Self::Backlog {
                scenario,
                model,
                seed,
                reached_ms,
                pending,
            } => write!(
                f,
                "{scenario} with {model}, seed {seed}: kept queueing work, more than {pending} events pending at {reached_ms} ms of simulated time"
            ),
        }
    }
}

impl std::error::Error for RunError {}

/// An event in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ev {
    Start { shard: u32 },
    Wake { timer: Timer },
    // A message crossing a link: its index in `Sim::in_flight` (see
    // `crate::in_flight`), so that an event takes 12 bytes.
    Message { index: u32 },
    FaultStart { fault: u16 },
    FaultEnd { fault: u16 },
    Judge,
    Flap { shard: u32, fault: u16 },
    Heal,
    ServerAct { shard: u32, fault: u16 },
    // One of the gateway's timers is due (the engine holds them, see
    // `Gateway::driver_holds_timers`).
    GatewayTimer { timer: gateway::Timer },
    SockLifetime { sock: SockId },
}

impl Ev {
    /// A small number naming the event, for the trace hash.
    const fn trace_key(&self) -> (u64, u64) {
        match *self {
            Self::Start { shard } => (1, shard as u64),
            Self::Wake {
                timer: Timer::Shard(shard),
            } => (2, shard as u64),
            Self::Wake {
                timer: Timer::Fleet,
            } => (16, 0),
            // Named by the message, as it arrives (see `Due::trace_key`).
            Self::Message { index } => (0, index as u64),
            Self::FaultStart { fault } => (5, fault as u64),
            Self::FaultEnd { fault } => (6, fault as u64),
            Self::Flap { shard, .. } => (7, shard as u64),
            Self::Heal => (8, 0),
            Self::ServerAct { shard, .. } => (9, shard as u64),
            // Named by the timer that runs (see `gateway_timer_key`).
            Self::GatewayTimer { timer } => gateway_timer_key(timer),
            Self::SockLifetime { sock } => (14, sock.index as u64),
            Self::Judge => (15, 0),
        }
    }
}

/// An event as it comes due: a message is taken out of `Sim::in_flight`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Due {
    Event(Ev),
    Message(Message),
}

impl Due {
    /// A small number naming the event, for the trace hash.
    const fn trace_key(&self) -> (u64, u64) {
        match *self {
            Self::Message(Message::ToClient { sock, .. }) => (3, sock.index as u64),
            Self::Message(Message::ToServer { sock, .. }) => (4, sock.index as u64),
            Self::Event(ev) => ev.trace_key(),
        }
    }
}

/// The trace's name for a gateway timer (the numbers the engine's own
/// events for them had, so traces stay comparable).
const fn gateway_timer_key(timer: gateway::Timer) -> (u64, u64) {
    match timer {
        gateway::Timer::ReconnectGrace(sock) => (10, sock.index as u64),
        gateway::Timer::Heartbeat(sock) => (11, sock.index as u64),
        gateway::Timer::Dispatch(session) => (12, session.0 as u64),
        gateway::Timer::Expiry(session) => (13, session.0 as u64),
    }
}

/// The faults in force that a message on a link asks about, in the order
/// they started (the order of `Sim::active`, so draws come in the same
/// order as when every fault in force was asked).
#[derive(Debug, Default)]
struct LinkFaults {
    /// Outages and flaps: they take links down.
    down: Vec<DownFault>,
    /// Latency and loss: they slow messages.
    slow: Vec<u16>,
}

/// A fault in force that takes links down, as a message asks about it.
#[derive(Clone, Copy, Debug)]
enum DownFault {
    /// An outage (an index into `Scenario::faults`): down where it hits.
    Outage { fault: u16, mode: DownMode },
    /// A flap: down where the shard's link has flapped down.
    Flapping { mode: DownMode },
}

impl LinkFaults {
    /// The lists for the faults `active` of `faults`.
    fn sort(&mut self, active: &[u16], faults: &[Fault]) {
        self.down.clear();
        self.slow.clear();
        for &fault in active {
            match faults[fault as usize].kind {
                FaultKind::Outage { mode } => self.down.push(DownFault::Outage { fault, mode }),
                FaultKind::Flapping { mode, .. } => self.down.push(DownFault::Flapping { mode }),
                FaultKind::Latency { .. } | FaultKind::Loss { .. } => self.slow.push(fault),
                _ => {}
            }
        }
    }
}

/// The state of one run.
pub(crate) struct Sim<'a> {
    sc: &'a Scenario,
    model_name: String,
    seed: u64,
    now: u64,
    /// Added to every time of the scenario's fault schedule: 0 when it
    /// counts from the start of the run, the moment every shard had a
    /// session otherwise; `None` while the fleet is still starting.
    offset: Option<u64>,
    /// The end of the run.
    end_ms: u64,
    /// Shards with a session now.
    established_now: u32,
    queue: Queue<Ev>,
    /// The messages the queue's [`Ev::Message`] events name.
    in_flight: InFlight,
    /// The sockets freed for reuse; each socket's slot (its link half)
    /// is kept in the gateway's table, beside the gateway's half of it
    /// ([`Gateway::with_driver_halves`]).
    sockets: Sockets,
    /// Each shard's side of its link (its draws, the sockets its client
    /// holds, whether a flap has it down, whether it was told a fatal code).
    /// Beside the link's draws and flags, the fleet's record of the
    /// shard's recent sockets (the client's half, reached through
    /// [`Cx::recent`]): a socket action and its send read one line for
    /// both. Beside the held sockets, its attempt window of the metrics
    /// ([`Recorder::attempt_in`]): a dial reads one line for both.
    links: Links<WindowPeak, RecentSockets>,
    /// Faults in force now (indices into `sc.faults`).
    active: Vec<u16>,
    /// The faults of `active`, in its order, that hold links down
    /// (outages and flaps) and that slow messages (latency and loss):
    /// every message asks both, and most runs have none of the second.
    link_faults: LinkFaults,
    clients: Clients,
    /// When each timer is due: one per shard for peer models, one for the
    /// fleet (see [`Sim::timer_slot`]); `u64::MAX` when none is queued.
    wake_at: Vec<u64>,
    /// The peer models' bot-wide pacing.
    peers: PeerShared,
    /// The gateway, keeping each socket's link half ([`Slot`]) beside
    /// its own, and each session's delivery tally of the metrics
    /// ([`DeliveryTally`]) beside its record of the session: a dispatch
    /// delivered reads the line its tick read one latency before.
    gateway: Gateway<Slot, DeliveryTally>,
    rec: Recorder,
    actions: Vec<Action>,
    /// A shard's held sockets, copied while a link failure goes through
    /// them (kept to be reused, so a failure allocates nothing).
    scratch_socks: Vec<SockId>,
}

/// Runs `model` through `scenario` with `seed`.
///
/// # Errors
///
/// The model's configuration is invalid, or the run went over its budget.
pub fn run(
    scenario: &Scenario,
    model: &ModelSpec,
    seed: u64,
    budget: Budget,
) -> Result<Recorder, RunError> {
    run_capped(scenario, model, seed, budget, pending_cap(scenario.shards))
}

/// [`run`], also returning the figures of the store and the processes when
/// the scenario splits the bot over processes ([`Scenario::store`]) and the
/// model is the policy's.
///
/// # Errors
///
/// As [`run`].
pub fn run_with_store(
    scenario: &Scenario,
    model: &ModelSpec,
    seed: u64,
    budget: Budget,
) -> Result<(Recorder, Option<ProcessesFigures>), RunError> {
    let mut sim = Sim::new(scenario, model, seed)?;
    sim.run(budget, pending_cap(scenario.shards))?;
    let figures = match &sim.clients {
        Clients::Processes(c) => Some(c.figures()),
        _ => None,
    };
    Ok((sim.finish(), figures))
}

/// [`run`] with `max_pending` events pending at most.
fn run_capped(
    scenario: &Scenario,
    model: &ModelSpec,
    seed: u64,
    budget: Budget,
    max_pending: u64,
) -> Result<Recorder, RunError> {
    let mut sim = Sim::new(scenario, model, seed)?;
    sim.run(budget, max_pending)?;
    Ok(sim.finish())
}

impl<'a> Sim<'a> {
    fn new(sc: &'a Scenario, model: &ModelSpec, seed: u64) -> Result<Self, RunError> {
        let shards = sc.shards;
        let g = &sc.gateway;
        let limit = SessionStartLimit {
            total: g.session_start_total,
            remaining: g.session_start_remaining,
            reset_after_ms: g.session_start_reset_after_ms,
            max_concurrency: g.max_concurrency,
        };
        let clients = match model {
            // One fleet holds every shard, as one bot process would. Like a
            // library that spawns its shards itself, it begins once the
            // process is up: at the end of the start spread (see
            // `PeerShared::with_start_spread`).
            // The same fleets split over processes that share an identify
            // store, when the scenario says so.
            ModelSpec::Policy { config, .. } if let Some(spec) = &sc.store => {
                Clients::Processes(Box::new(
                    ProcessesClient::new(
                        config,
                        shards,
                        limit,
                        spec,
                        rng::derive(seed, Stream::Client, u64::MAX),
                        rng::derive(seed, Stream::Server, 1),
                        sc.start_spread_ms,
                    )
                    .map_err(|e| RunError::Config(e.to_string()))?,
                ))
            }
            ModelSpec::Policy { config, .. } => Clients::Fleet(Box::new(
                FleetClient::new(
                    config,
                    shards,
                    rng::derive(seed, Stream::Client, u64::MAX),
                    IdentifyLimiter::new(limit, Timestamp::ZERO),
                    sc.start_spread_ms,
                )
                .map_err(|e| match e {
                    FleetError::Config(e) => RunError::Config(e.to_string()),
                    e => RunError::Config(e.to_string()),
                })?,
            )),
            ModelSpec::Peer(kind) => Clients::Peers(
                (0..shards)
                    .map(|shard| {
                        PeerClient::new(
                            *kind,
                            shard,
                            rng::stream(seed, Stream::Client, u64::from(shard)),
                        )
                    })
                    .collect(),
            ),
        };
        let timers = match clients {
            Clients::Fleet(_) | Clients::Processes(_) => 1,
            Clients::Peers(_) => shards as usize,
        };
        let span = if sc.faults_after_startup {
            sc.startup_limit_ms.saturating_add(sc.duration_ms)
        } else {
            sc.duration_ms
        };
        let mut sim = Self {
            sc,
            model_name: model.name().to_owned(),
            seed,
            now: 0,
            offset: None,
            end_ms: if sc.faults_after_startup {
                sc.startup_limit_ms
            } else {
                sc.duration_ms
            },
            established_now: 0,
            queue: Queue::default(),
            in_flight: InFlight::default(),
            sockets: Sockets::default(),
            links: (0..shards)
                .map(|s| {
                    ShardLink::new(LinkRng::new(rng::derive(seed, Stream::Link, u64::from(s))))
                })
                .collect(),
            active: Vec::new(),
            link_faults: LinkFaults::default(),
            clients,
            wake_at: vec![u64::MAX; timers],
            peers: PeerShared::new(
                limit.max_concurrency,
                limit.total,
                limit.remaining,
                limit.reset_after_ms,
            )
            .with_start_spread(sc.start_spread_ms),
            // The engine queues the gateway's timers among its own events.
            gateway: Gateway::with_driver_halves(
                &sc.gateway,
                shards,
                sc.identify_tolerance(),
                rng::derive(seed, Stream::Server, 0),
            )
            .driver_holds_timers(),
            rec: Recorder::new(shards, span),
            actions: Vec::new(),
            scratch_socks: Vec::new(),
        };
        // The shards' attempt windows are kept beside their link records
        // (see `links`) until the end of the run: the recorder's own table
        // is not needed until then.
        sim.rec.attempts.adopt(Vec::new());
        // The sessions' tallies sit beside the gateway's sessions until
        // the end (see `finish`).
        sim.rec.sessions = Vec::new();
        if let Clients::Fleet(_) | Clients::Processes(_) = sim.clients {
            // The fleet started every shard when it was built; its first
            // wake-up carries out what they asked for.
            sim.wake_at_least(Timer::Fleet, sc.start_spread_ms);
        } else {
            let mut start_rng = LinkRng::new(rng::derive(seed, Stream::Faults, u64::MAX));
            for shard in 0..shards {
                let at = start_rng.upto(sc.start_spread_ms);
                sim.schedule(at, Ev::Start { shard });
            }
        }
        if !sc.faults_after_startup {
            // The whole run is judged, from its first millisecond.
            sim.rec.begin_judging_with(0, sim.links.beside_iter_mut());
            sim.schedule_faults(0);
        }
        sim.rec.end_at = sim.end_ms;
        Ok(sim)
    }

    /// Schedules the scenario's faults and heal, `offset` ms after the start.
    fn schedule_faults(&mut self, offset: u64) {
        let sc = self.sc;
        self.offset = Some(offset);
        if let Clients::Processes(c) = &mut self.clients {
            c.schedule(offset);
        }
        self.rec.schedule_offset = Some(offset);
        self.end_ms = offset.saturating_add(sc.duration_ms);
        self.rec.end_at = self.end_ms;
        // Dispatches stop a minute before the end, so they can be delivered.
        self.gateway
            .stop_dispatches_at(self.end_ms.saturating_sub(60_000));
        if sc.faults_after_startup {
            // Judging begins with the first fault (scheduled first, so it
            // runs before a fault at the same millisecond).
            let first = sc
                .faults
                .iter()
                .map(|f| f.at_ms)
                .filter(|&at| at < sc.heal_at_ms)
                .min()
                .unwrap_or(sc.heal_at_ms);
            self.schedule(offset.saturating_add(first), Ev::Judge);
        }
        for (i, fault) in sc.faults.iter().enumerate() {
            let i = u16::try_from(i).unwrap_or(u16::MAX);
            if fault.at_ms < sc.heal_at_ms {
                self.schedule(
                    offset.saturating_add(fault.at_ms),
                    Ev::FaultStart { fault: i },
                );
            }
        }
        let heal = offset.saturating_add(sc.heal_at_ms);
        self.rec.heal_at = Some(heal);
        self.schedule(heal, Ev::Heal);
    }

    /// Judging begins: the counts so far, and the shards up now, are the
    /// baseline.
    fn judge(&mut self) {
        self.read_gateway_tally();
        self.rec
            .begin_judging_with(self.now, self.links.beside_iter_mut());
        self.rec.count_at_judging = self.rec.count;
        self.rec.judged = self.rec.established.iter().map(|e| e.is_some()).collect();
    }

    /// The shard's session is established now (READY or RESUMED sent).
    fn mark_established(&mut self, shard: u32) {
        let Some(e) = self.rec.established.get_mut(shard as usize) else {
            return;
        };
        if e.is_none() {
            self.established_now += 1;
        }
        *e = MaybeMs::at(self.now);
        if self.established_now == self.sc.shards && self.rec.startup_ms.is_none() {
            self.rec.startup_ms = Some(self.now);
            if self.offset.is_none() {
                self.schedule_faults(self.now);
            }
        }
    }

    /// The shard lost its established session; counts the disconnect.
    fn mark_lost(&mut self, shard: u32) {
        if self
            .rec
            .established
            .get_mut(shard as usize)
            .is_some_and(|e| std::mem::take(e).is_some())
        {
            self.established_now -= 1;
            self.rec.count.disconnects += 1;
        }
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.queue.push(at.max(self.now), ev);
    }

    /// Queues a message's arrival at `at`, holding the message in
    /// `in_flight` until then.
    #[inline]
    fn schedule_message(&mut self, at: u64, msg: Message) {
        let index = self.in_flight.put(msg);
        self.schedule(at, Ev::Message { index });
    }

    fn run(&mut self, budget: Budget, max_pending: u64) -> Result<(), RunError> {
        let max_events = budget.max_events;
        let cap = usize::try_from(max_pending).unwrap_or(usize::MAX);
        while let Some((at, ev)) = self.queue.pop() {
            if at > self.end_ms {
                break;
            }
            self.now = at;
            let due = match ev {
                Ev::Message { index } => match self.in_flight.take(index) {
                    Some(msg) => Due::Message(msg),
                    // Every message queued is held until it arrives.
                    None => continue,
                },
                Ev::GatewayTimer { timer } => {
                    // The timer runs as its event is traced; its outputs
                    // are carried by `step`.
                    self.gateway.handle_timer(at, timer);
                    Due::Event(ev)
                }
                ev => Due::Event(ev),
            };
            let (kind, key) = due.trace_key();
            self.rec.trace(at, kind, key);
            if self.rec.events >= max_events {
                return Err(RunError::Budget {
                    scenario: self.sc.name.clone(),
                    model: self.model_name.clone(),
                    seed: self.seed,
                    reached_ms: self.now,
                    events: max_events,
                });
            }
            self.step(due);
            if self.queue.len() > cap {
                return Err(RunError::Backlog {
                    scenario: self.sc.name.clone(),
                    model: self.model_name.clone(),
                    seed: self.seed,
                    reached_ms: self.now,
                    pending: max_pending,
                });
            }
        }
        self.now = self.end_ms;
        Ok(())
    }

    fn finish(mut self) -> Recorder {
        self.read_gateway_tally();
        self.rec.token_reset = self.gateway.token_reset();
        self.rec.gave_up = self.clients.gave_up();
        self.rec.sockets_high_water = Sockets::high_water(&self.gateway) as u64;
        self.rec.queue_high_water = self.queue.peak() as u64;
        // The attempt windows go back into the recorder last, once the
        // queue, the messages in flight and the clients are gone, so that
        // their copy does not raise the run's peak memory.
        self.queue = Queue::default();
        self.in_flight = InFlight::default();
        self.clients = Clients::Peers(Vec::new());
        let windows = self.links.take_beside();
        self.rec.attempts.adopt(windows);
        self.rec.sessions = self
            .gateway
            .session_halves()
            .map(|(generated, delivered)| delivered.with_generated(generated))
            .collect();
        self.rec
    }

    fn step(&mut self, due: Due) {
        let ev = match due {
            Due::Message(Message::ToClient { sock, msg }) => {
                return self.deliver_to_client(sock, msg.into());
            }
            Due::Message(Message::ToServer { sock, msg }) => {
                return self.gateway_receive(sock, msg.into());
            }
            Due::Event(ev) => ev,
        };
        match ev {
            Ev::Start { shard } => {
                self.with_client(Timer::Shard(shard), |c, now, cx| c.start(shard, now, cx));
            }
            Ev::Wake { timer } => {
                let slot = Self::timer_slot(timer);
                if self.wake_at.get(slot) == Some(&self.now) {
                    self.wake_at[slot] = u64::MAX;
                    self.with_client(timer, |c, now, cx| c.wake(timer, now, cx));
                }
            }
            // Taken out of `in_flight` as it arrived (see `run`).
            Ev::Message { .. } => {}
            Ev::FaultStart { fault } => self.fault_start(fault),
            Ev::FaultEnd { fault } => self.fault_end(fault),
            Ev::Judge => self.judge(),
            Ev::Flap { shard, fault } => self.flap(shard, fault),
            Ev::Heal => self.heal(),
            Ev::ServerAct { shard, fault } => self.server_act(shard, fault),
            // The timer ran as the event was traced (see `run`).
            Ev::GatewayTimer { .. } => self.carry_gateway_outputs(),
            Ev::SockLifetime { sock } => self.socket_lifetime_ends(sock),
        }
    }

    // ----- the gateway --------------------------------------------------

    /// A message from a client reaches the gateway's end of `sock`.
    fn gateway_receive(&mut self, sock: SockId, msg: ToServer) {
        let Some(s) = Sockets::get(&self.gateway, sock) else {
            return;
        };
        let shard = s.shard;
        match msg {
            ToServer::Connect { .. } => {
                // A handshake for a socket its client already let go of
                // finds nobody to answer.
                if !s.client_open {
                    return;
                }
                self.rec.arrival(shard, self.now);
                self.gateway.handle_connect(self.now, sock, shard);
                let accepted = self.gateway.is_open(sock);
                if let Some(s) = Sockets::get_mut(&mut self.gateway, sock) {
                    s.server_open = accepted;
                }
                self.carry_gateway_outputs();
                if accepted && let Some(after) = self.socket_lifetime(shard) {
                    self.schedule(self.now + after, Ev::SockLifetime { sock });
                }
            }
            ToServer::Close { .. } | ToServer::Drop => {
                self.count_if_healthy(sock, shard);
                self.gateway.handle_message(self.now, sock, msg);
                self.carry_gateway_outputs();
            }
            _ => {
                self.gateway.handle_message(self.now, sock, msg);
                self.carry_gateway_outputs();
            }
        }
    }

    /// A client closed a socket nothing was wrong with: a false zombie, or
    /// a reconnect with no reason the gateway can see.
    fn count_if_healthy(&mut self, sock: SockId, shard: u32) {
        let Some(s) = Sockets::get(&self.gateway, sock) else {
            return;
        };
        if self.gateway.is_open(sock)
            && !s.dead
            && !self.gateway.told_to_reconnect(sock)
            && !self.link_faulty(shard)
        {
            self.rec.count.healthy_link_reconnects += 1;
        }
    }

    /// A moment of a server-side fault for one shard.
    fn server_act(&mut self, shard: u32, fault: u16) {
        let fault = match self.sc.faults[fault as usize].kind {
            FaultKind::RollingRestart => ServerFault::Reconnect,
            FaultKind::InvalidSessions { resumable } => ServerFault::InvalidSession { resumable },
            FaultKind::ServerClose { code } => ServerFault::Close { code },
            _ => return,
        };
        self.gateway.handle_fault(self.now, shard, fault);
        self.carry_gateway_outputs();
    }

    /// A connect-then-drop fault's socket reaches the end of its life: the
    /// link resets it, and the client sees it close with no frame.
    fn socket_lifetime_ends(&mut self, sock: SockId) {
        if !self.gateway.is_open(sock) {
            return;
        }
        self.gateway.handle_socket_reset(self.now, sock);
        self.carry_gateway_outputs();
        self.send_to_client(sock, ToClient::Closed { code: None }, 0);
    }

    /// Carries out everything the gateway asked for, in order.
    fn carry_gateway_outputs(&mut self) {
        while let Some(output) = self.gateway.poll_output() {
            match output {
                gateway::Output::Send {
                    sock,
                    msg,
                    delay_ms,
                } => self.send_to_client(sock, msg, delay_ms),
                gateway::Output::RefuseHandshake {
                    sock,
                    retry_after_ms,
                } => {
                    let failure = match retry_after_ms {
                        None => Refusal::Refused,
                        Some(retry_after_ms) => Refusal::RateLimited { retry_after_ms },
                    };
                    self.send_to_client(sock, ToClient::ConnectFailed(failure), 0);
                }
                gateway::Output::Close { sock, code, notify } => {
                    if notify {
                        self.send_to_client(sock, ToClient::Closed { code }, 0);
                    }
                    self.sockets.let_go(&mut self.gateway, sock, Side::Server);
                }
                gateway::Output::Timer { at, timer } => {
                    self.schedule(at, Ev::GatewayTimer { timer });
                }
                gateway::Output::Established { shard } => self.mark_established(shard),
                gateway::Output::Lost { shard } => self.mark_lost(shard),
            }
        }
    }

    /// Copies the gateway's counts into the recorder's.
    fn read_gateway_tally(&mut self) {
        let t = self.gateway.tally();
        let c = &mut self.rec.count;
        c.rejected = t.rejected;
        c.identifies = t.identifies;
        c.resumes = t.resumes;
        c.resumes_succeeded = t.resumes_succeeded;
        c.identify_violations = t.identify_violations;
        c.identify_violations_strict = t.identify_violations_strict;
        c.identifies_while_resumable = t.identifies_while_resumable;
        c.session_starts = t.session_starts;
        c.sessions_expired = t.sessions_expired;
    }

    // ----- clients ------------------------------------------------------

    /// Lets the clients handle something that wakes `timer`'s client,
    /// applies what they did, and queues the timer's next wake-up.
    fn with_client(&mut self, timer: Timer, f: impl FnOnce(&mut Clients, u64, &mut Cx<'_>)) {
        {
            let (sockets, store) = (&mut self.sockets, &mut self.gateway);
            let mut alloc = |shard, tag| sockets.open_tagged(store, shard, tag);
            let mut cx = Cx::new(
                &mut self.peers,
                &mut self.actions,
                &mut alloc,
                &mut self.links,
            );
            f(&mut self.clients, self.now, &mut cx);
        }
        // Applied in order, by index: applying one touches no client, so
        // the list stays where it is (taking it out and putting it back
        // cost more than the applying of a message's one or two actions).
        let mut next = 0;
        while let Some(&action) = self.actions.get(next) {
            self.apply(action);
            next += 1;
        }
        self.actions.clear();
        if self.peers.has_wakes() {
            for (other, at) in self.peers.take_wakes() {
                self.wake_at_least(Timer::Shard(other), at);
            }
        }
        if let Some(at) = self.clients.next_wake(timer) {
            self.wake_at_least(timer, at);
        }
    }

    /// The index of `timer` in `wake_at`.
    const fn timer_slot(timer: Timer) -> usize {
        match timer {
            Timer::Fleet => 0,
            Timer::Shard(shard) => shard as usize,
        }
    }

    /// Wakes `timer`'s client at `at` unless it is already to be woken
    /// earlier. A wake-up that moved later leaves its event queued: it finds
    /// nothing due, and the client names its next time then.
    fn wake_at_least(&mut self, timer: Timer, at: u64) {
        let at = at.max(self.now);
        let slot = Self::timer_slot(timer);
        if self.wake_at.get(slot).is_some_and(|w| at < *w) {
            self.wake_at[slot] = at;
            self.schedule(at, Ev::Wake { timer });
        }
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Connect {
                shard,
                sock,
                to_resume_url,
            } => {
                self.rec.attempt_in(self.links.beside_mut(shard), self.now);
                if self.links[shard as usize].fatal_seen {
                    self.rec.count.retries_after_fatal += 1;
                }
                let held = self.links.hold(shard, sock);
                let held = u32::try_from(held).unwrap_or(u32::MAX);
                self.rec.max_open_per_shard = self.rec.max_open_per_shard.max(held);
                match self.link_down(shard) {
                    Some(DownMode::Refuse) => {
                        self.rec.count.refused_dials += 1;
                        let at = self.now + 2 * self.latency(shard);
                        self.schedule_message(
                            at,
                            Message::ToClient {
                                sock,
                                msg: ToClient::ConnectFailed(Refusal::Refused).into(),
                            },
                        );
                    }
                    Some(DownMode::Blackhole) => {
                        if let Some(s) = Sockets::get_mut(&mut self.gateway, sock) {
                            s.dead = true;
                        }
                    }
                    None => self.send_to_server(sock, ToServer::Connect { to_resume_url }),
                }
            }
            Action::Send { sock, msg } => {
                if msg == ToServer::Drop {
                    self.client_let_go(sock);
                }
                self.send_to_server(sock, msg);
            }
            Action::Untag { shard, sock } => {
                // Only a socket the client holds brings it messages (see
                // `deliver_to_client`): the tag of one it let go of is never
                // read again, and the list of held sockets, in the link's
                // line that the dial before this just read, spares a look
                // at its slot, long out of the cache.
                if self.links.held(shard).contains(&sock)
                    && let Some(s) = Sockets::get_mut(&mut self.gateway, sock)
                {
                    s.clear_client_tag();
                }
            }
            Action::Delivered { session, seq } => {
                if let Some(tally) = self.gateway.session_half_mut(session.0) {
                    tally.count(seq);
                }
            }
        }
    }

    /// The client no longer holds `sock`.
    fn client_let_go(&mut self, sock: SockId) {
        if let Some(shard) = self.sockets.let_go(&mut self.gateway, sock, Side::Client) {
            self.links.let_go(shard, sock);
        }
    }

    fn deliver_to_client(&mut self, sock: SockId, msg: ToClient) {
        let Some(s) = Sockets::get(&self.gateway, sock) else {
            return;
        };
        if !s.client_open {
            return;
        }
        let shard = s.shard;
        let tag = s.client_tag();
        match msg {
            ToClient::Closed { code } => {
                // Judged by the referee's own table, not the policy's.
                if code.is_some_and(rules::forbids_reconnect) {
                    self.links[shard as usize].fatal_seen = true;
                }
                self.client_let_go(sock);
            }
            ToClient::ConnectFailed(_) => self.client_let_go(sock),
            _ => {}
        }
        let timer = self.clients.timer_of(shard);
        self.with_client(timer, |c, now, cx| {
            c.on_message(shard, now, (sock, tag), msg, cx)
        });
    }

    // ----- links --------------------------------------------------------

    fn hits(&self, fault: usize, shard: u32) -> bool {
        match self.sc.faults[fault].scope {
            Scope::All => true,
            Scope::Shards { from, to } => (from..to).contains(&shard),
            Scope::Fraction { fraction } => self.fraction_hits(fault, shard, fraction),
        }
    }

    /// Whether `shard` is among the `fraction` of shards `fault` hits: a
    /// draw of its own, kept out of line so that asking about a fault of
    /// another scope (every message asks) does not pay for its set-up.
    #[inline(never)]
    fn fraction_hits(&self, fault: usize, shard: u32, fraction: f64) -> bool {
        let draw = rng::derive(
            self.seed,
            Stream::Faults,
            (fault as u64) << 32 | u64::from(shard),
        );
        ((draw >> 11) as f64 / (1u64 << 53) as f64) < fraction
    }

    /// Whether the shard's link is down now, and how (asked for every
    /// message: inlined, it costs little when no fault is in force).
    #[inline(always)]
    fn link_down(&self, shard: u32) -> Option<DownMode> {
        for &down in &self.link_faults.down {
            match down {
                DownFault::Outage { fault, mode } if self.hits(fault as usize, shard) => {
                    return Some(mode);
                }
                DownFault::Flapping { mode } if self.links[shard as usize].flap_down => {
                    return Some(mode);
                }
                _ => {}
            }
        }
        None
    }

    /// Whether any link fault touches the shard now.
    fn link_faulty(&self, shard: u32) -> bool {
        self.active.iter().any(|&f| {
            let f = f as usize;
            matches!(
                self.sc.faults[f].kind,
                FaultKind::Outage { .. }
                    | FaultKind::Flapping { .. }
                    | FaultKind::HalfOpen
                    | FaultKind::ConnectThenDrop { .. }
                    | FaultKind::Latency { .. }
                    | FaultKind::Loss { .. }
            ) && self.hits(f, shard)
        })
    }

    /// The lifetime of sockets opened now on the shard's link, if a
    /// connect-then-drop fault is in force.
    fn socket_lifetime(&self, shard: u32) -> Option<u64> {
        self.active
            .iter()
            .find_map(|&f| match self.sc.faults[f as usize].kind {
                FaultKind::ConnectThenDrop { after_ms } if self.hits(f as usize, shard) => {
                    Some(after_ms)
                }
                _ => None,
            })
    }

    /// Handshakes per second the gateway admits now.
    fn admission_per_s(&self) -> u32 {
        self.active
            .iter()
            .filter_map(|&f| match self.sc.faults[f as usize].kind {
                FaultKind::Overload { admission_per_s } => Some(admission_per_s),
                _ => None,
            })
            .min()
            .unwrap_or(self.sc.gateway.admission_per_s)
    }

    /// One-way latency for a message on the shard's link now.
    fn latency(&mut self, shard: u32) -> u64 {
        if !self.link_faults.slow.is_empty() {
            return self.slowed_latency(shard);
        }
        // What `slowed_latency` draws when no fault slows the link.
        let link = &mut self.links[shard as usize].rng;
        let ms = self.sc.link.latency_ms + link.upto(self.sc.link.jitter_ms);
        ms.max(1)
    }

    /// [`Sim::latency`] while latency or loss faults are in force: the
    /// jitter of each that hits the shard is drawn first, in the order the
    /// faults started, then the link's own, then the losses.
    #[inline(never)]
    fn slowed_latency(&mut self, shard: u32) -> u64 {
        let mut extra = 0;
        let mut loss = 0.0f64;
        for &f in &self.link_faults.slow {
            let f = f as usize;
            if !self.hits(f, shard) {
                continue;
            }
            match self.sc.faults[f].kind {
                FaultKind::Latency {
                    extra_ms,
                    jitter_ms,
                } => extra += extra_ms + self.links[shard as usize].rng.upto(jitter_ms),
                FaultKind::Loss { probability } => loss = loss.max(probability.min(0.95)),
                _ => {}
            }
        }
        let link = &mut self.links[shard as usize].rng;
        let mut ms = self.sc.link.latency_ms + link.upto(self.sc.link.jitter_ms) + extra;
        while loss > 0.0 && link.unit() < loss {
            ms += 200;
        }
        ms.max(1)
    }

    /// Sends towards the server, if the link and the socket carry it.
    fn send_to_server(&mut self, sock: SockId, msg: ToServer) {
        let Some(s) = Sockets::get(&self.gateway, sock) else {
            return;
        };
        if s.dead {
            return;
        }
        let shard = s.shard;
        if self.link_down(shard).is_some() {
            return;
        }
        let lat = self.latency(shard);
        let Some(s) = Sockets::get_mut(&mut self.gateway, sock) else {
            return;
        };
        let at = (self.now + lat).max(u64::from(s.last_to_server));
        s.last_to_server = u32::try_from(at).unwrap_or(u32::MAX);
        self.schedule_message(
            at,
            Message::ToServer {
                sock,
                msg: msg.into(),
            },
        );
    }

    /// Sends towards the client, if the link and the socket carry it.
    fn send_to_client(&mut self, sock: SockId, msg: ToClient, extra_delay: u64) {
        let Some(s) = Sockets::get(&self.gateway, sock) else {
            return;
        };
        if s.dead || !s.client_open {
            return;
        }
        let shard = s.shard;
        if self.link_down(shard).is_some() {
            return;
        }
        let lat = self.latency(shard) + extra_delay;
        let Some(s) = Sockets::get_mut(&mut self.gateway, sock) else {
            return;
        };
        let at = (self.now + lat).max(u64::from(s.last_to_client));
        s.last_to_client = u32::try_from(at).unwrap_or(u32::MAX);
        self.schedule_message(
            at,
            Message::ToClient {
                sock,
                msg: msg.into(),
            },
        );
    }

    // ----- faults -------------------------------------------------------

    fn fault_start(&mut self, fault: u16) {
        let f = self.sc.faults[fault as usize];
        self.active.push(fault);
        self.link_faults.sort(&self.active, &self.sc.faults);
        self.gateway.set_admission_per_s(self.admission_per_s());
        let offset = self.offset.unwrap_or(0);
        let end = offset.saturating_add(
            f.at_ms
                .saturating_add(f.duration_ms)
                .min(self.sc.heal_at_ms),
        );
        self.schedule(end, Ev::FaultEnd { fault });
        let mut rng = LinkRng::new(rng::derive(self.seed, Stream::Faults, u64::from(fault)));
        for shard in 0..self.sc.shards {
            if !self.hits(fault as usize, shard) {
                continue;
            }
            match f.kind {
                FaultKind::Outage { mode } => self.link_goes_down(shard, mode),
                FaultKind::Flapping {
                    min_up_ms,
                    max_up_ms,
                    ..
                } => {
                    let up = min_up_ms + rng.upto(max_up_ms - min_up_ms);
                    self.schedule(self.now + up, Ev::Flap { shard, fault });
                }
                FaultKind::HalfOpen => {
                    for &sock in self.links.held(shard) {
                        if let Some(s) = Sockets::get_mut(&mut self.gateway, sock) {
                            s.dead = true;
                        }
                    }
                }
                FaultKind::RollingRestart
                | FaultKind::InvalidSessions { .. }
                | FaultKind::ServerClose { .. } => {
                    let at = self.now + rng.upto(f.duration_ms);
                    self.schedule(at, Ev::ServerAct { shard, fault });
                }
                _ => {}
            }
        }
    }

    fn fault_end(&mut self, fault: u16) {
        self.active.retain(|&f| f != fault);
        self.link_faults.sort(&self.active, &self.sc.faults);
        self.gateway.set_admission_per_s(self.admission_per_s());
        if matches!(
            self.sc.faults[fault as usize].kind,
            FaultKind::Flapping { .. }
        ) {
            for shard in 0..self.sc.shards {
                if self.hits(fault as usize, shard) {
                    self.links[shard as usize].flap_down = false;
                }
            }
        }
    }

    fn flap(&mut self, shard: u32, fault: u16) {
        if !self.active.contains(&fault) {
            return;
        }
        let FaultKind::Flapping {
            min_up_ms,
            max_up_ms,
            min_down_ms,
            max_down_ms,
            mode,
        } = self.sc.faults[fault as usize].kind
        else {
            return;
        };
        let link = &mut self.links[shard as usize];
        let down = !link.flap_down;
        link.flap_down = down;
        let next = if down {
            min_down_ms + link.rng.upto(max_down_ms - min_down_ms)
        } else {
            min_up_ms + link.rng.upto(max_up_ms - min_up_ms)
        };
        if down {
            self.link_goes_down(shard, mode);
        }
        self.schedule(self.now + next, Ev::Flap { shard, fault });
    }

    /// The shard's link fails: sockets are reset, or go silent.
    fn link_goes_down(&mut self, shard: u32, mode: DownMode) {
        // A copy: the loop below hands the gateway and the queue each
        // socket (none of which lets go of one).
        let mut socks = std::mem::take(&mut self.scratch_socks);
        socks.clear();
        socks.extend_from_slice(self.links.held(shard));
        for &sock in &socks {
            match mode {
                DownMode::Refuse => {
                    self.gateway.handle_socket_reset(self.now, sock);
                    self.carry_gateway_outputs();
                    // The reset reaches the client at once.
                    self.schedule_message(
                        self.now + 1,
                        Message::ToClient {
                            sock,
                            msg: ToClient::Closed { code: None }.into(),
                        },
                    );
                }
                DownMode::Blackhole => {
                    if let Some(s) = Sockets::get_mut(&mut self.gateway, sock) {
                        s.dead = true;
                    }
                }
            }
        }
        self.scratch_socks = socks;
    }

    fn heal(&mut self) {
        self.active.clear();
        self.link_faults.sort(&self.active, &self.sc.faults);
        self.gateway.set_admission_per_s(self.admission_per_s());
        self.links.iter_mut().for_each(|l| l.flap_down = false);
        let g = &self.sc.gateway;
        // A client learns that a black-holed socket is dead only when a
        // heartbeat goes unanswered. It may send one at any time (the
        // gateway answers every heartbeat), so the earliest is just after
        // the last heartbeat the gateway heard on it (the hole opened after
        // that one; a round trip more, but no less). This bound once waited
        // a whole interval, which assumed heartbeats only on the gateway's
        // schedule; a fleet that asks its quiet shards for a heartbeat beat
        // it.
        let mut down = 0;
        let mut must_identify = 0;
        let mut zombie_until = self.now;
        for shard in 0..self.sc.shards {
            if !self.rec.judged[shard as usize] {
                continue;
            }
            let mut zombie = false;
            for &sock in self.links.held(shard) {
                let last_heartbeat = self.gateway.last_heartbeat(sock).unwrap_or(0);
                if let Some(s) = Sockets::get(&self.gateway, sock)
                    && s.dead
                    && last_heartbeat > 0
                {
                    zombie = true;
                    let noticed = last_heartbeat;
                    zombie_until = zombie_until.max(noticed);
                }
            }
            if zombie || self.rec.established[shard as usize].is_none() {
                down += 1;
                if !self.gateway.has_resumable_session(shard) {
                    must_identify += 1;
                }
            }
        }
        self.rec.down_at_heal = (down, must_identify);
        let buckets = u64::from(g.max_concurrency.max(1));
        let windows = |n: u64| n.div_ceil(buckets).saturating_sub(1) * rules::IDENTIFY_WINDOW_MS;
        let mut bound = windows(must_identify).max(zombie_until - self.now);
        if g.admission_per_s > 0 {
            bound = bound.max(down * 1_000 / u64::from(g.admission_per_s));
        }
        // When a wave needs more session starts than are left, the rest
        // wait for the daily refill.
        let (left, refill_at) = self.gateway.session_starts_left(self.now);
        let left = u64::from(left);
        if must_identify > left {
            let after_refill = refill_at.saturating_sub(self.now)
                + windows(must_identify - left)
                + rules::IDENTIFY_WINDOW_MS;
            bound = bound.max(after_refill);
        }
        self.rec.lower_bound_ms = bound;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_past_the_cap_ends_the_run_naming_scenario_model_and_seed() {
        let mut sc = Scenario::builtin("outage-30s").expect("built-in");
        sc.shards = 20;
        let m = crate::model("naive").expect("model");
        // Twenty shards keep more than ten events pending (timers, handshakes
        // in flight), so a cap of ten must cut the run off.
        let err = run_capped(&sc, &m, 77, Budget::default(), 10).unwrap_err();
        assert!(
            matches!(err, RunError::Backlog { pending: 10, .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("outage-30s") && text.contains("naive") && text.contains("seed 77"),
            "{text}"
        );
        // The fleet's own cap leaves the same run alone.
        let rec = run(&sc, &m, 77, Budget::default()).expect("within the cap");
        assert!(rec.queue_high_water <= pending_cap(sc.shards));
    }
}
