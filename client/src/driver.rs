//! The run loop: carries out a [`Fleet`]'s outputs on real sockets, one
//! socket per shard, and feeds it what the sockets and the clock say. It
//! decides nothing.
//!
//! A lone client is a fleet of one; a [`Runner`](crate::Runner) is a fleet
//! of many. Both run this one loop. When the fleet's wake-up time has come,
//! the loop runs its timers ([`Fleet::handle_timeout`]) before it reads
//! anything else. After every input it drains [`Fleet::poll_output`] and
//! carries out each `(shard, action)` in order on that shard's socket (dial,
//! send, close, drop; an identify request, when the limiter lives outside
//! the fleet, is answered by the bot's [`IdentifyShare`] and handed back,
//! or posted to an asynchronous responder whose answer comes back later as
//! one more input),
//! logs each note, publishes the figures of the shards it touched, then
//! waits for whichever comes first: the shutdown signal, any shard's socket
//! (a finished dial, a frame, the end), a command from a shard's handle,
//! room for a pending dispatch in the user's queue, or the fleet's next
//! wake-up ([`Fleet::poll_timeout`]). Every reconnect rule — whether to
//! resume, how long to wait, when a socket is dead, which code to close
//! with, when a shard may identify, whether a command fits the send budget
//! — lives in the policy.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use reconnect_policy::{
    Action, CloseCode, ConnectionId, Event, Fleet, Handled, Note, Output, SavedSessions, SendError,
    Timestamp,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tracing::{Span, debug, error, info, trace, warn};

use crate::clock::Clock;
use crate::command::{self, Identity};
use crate::compression::InflateError;
use crate::connection::{Connection, Incoming};
use crate::dispatch::DispatchEvent;
use crate::error::ClientError;
use crate::event_names;
use crate::figures::{Counters, Published, SocketGauge, SocketTicket, noteworthy};
use crate::identify_share::IdentifyShare;
use crate::identify_store::{RemoteIdentify, StoreAnswer};
use crate::notice::Notice;
use crate::payload::{self, Inbound};
use crate::token::Token;
use crate::transport::{self, DialError, Dialer, GatewaySocket};

type Dial = Pin<Box<dyn Future<Output = Result<Box<GatewaySocket>, DialError>> + Send>>;

/// The one socket a shard may have.
enum Link {
    /// None.
    Idle,
    /// Being dialled.
    Dialing {
        id: ConnectionId,
        dial: Dial,
        ticket: SocketTicket,
    },
    /// Open.
    Open(Box<Connection>),
}

impl Link {
    const fn id(&self) -> Option<ConnectionId> {
        match self {
            Self::Idle => None,
            Self::Dialing { id, .. } => Some(*id),
            Self::Open(connection) => Some(connection.id()),
        }
    }
}

/// What a link produced.
enum LinkEvent {
    Dialed(ConnectionId, Result<Box<GatewaySocket>, DialError>),
    Incoming(Incoming),
}

/// A command from a shard's handle, already encoded and checked against
/// the documented limits; the answer goes back on `reply`.
pub(crate) struct CommandRequest {
    /// The shard whose connection it goes on.
    pub(crate) shard: u32,
    /// Its opcode, for logs and notices.
    pub(crate) op: u8,
    /// The text frame.
    pub(crate) text: String,
    /// Sent, or why not.
    pub(crate) reply: oneshot::Sender<Result<(), SendError>>,
}

/// What the driver needs of one shard besides its policy.
pub(crate) struct ShardParts {
    /// The gateway's shard id.
    pub(crate) id: u32,
    /// What this shard's Identify says.
    pub(crate) identity: Identity,
    /// Where its notices go.
    pub(crate) notices: broadcast::Sender<Notice>,
    /// Where its figures go.
    pub(crate) published: Arc<Published>,
    /// Counts its sockets.
    pub(crate) gauge: Arc<SocketGauge>,
}

/// Everything the driver is made of.
pub(crate) struct DriverParts {
    /// The shards' policies (and, unless `identify` is set, the limiter).
    pub(crate) fleet: Fleet,
    /// The limiter that answers the fleet's identify requests when it
    /// lives outside the fleet.
    pub(crate) identify: Option<IdentifyShare>,
    /// The responder that answers them asynchronously (a store shared
    /// across processes), when that is where they go.
    pub(crate) remote: Option<RemoteIdentify>,
    pub(crate) clock: Clock,
    pub(crate) token: Token,
    /// One per shard of the fleet.
    pub(crate) shards: Vec<ShardParts>,
    pub(crate) dialer: Dialer,
    pub(crate) max_pending: usize,
    pub(crate) events: mpsc::Sender<(u32, DispatchEvent)>,
    pub(crate) shutdown: watch::Receiver<Stop>,
    pub(crate) commands: mpsc::Receiver<CommandRequest>,
}

/// What the user's handle asks of the run loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Nothing yet: keep running.
    No,
    /// Stop and end every session (close 1000).
    EndingSessions,
    /// Stop and keep every session resumable (close 4000), to hand them
    /// back for a later process.
    KeepingSessions,
}

/// How each shard ended: `Ok` after a shutdown, or why it stopped.
pub(crate) type Outcomes = Vec<(u32, Result<(), ClientError>)>;

/// What the run loop hands back when it ends.
#[derive(Debug)]
pub(crate) struct Finished {
    /// How each shard ended.
    pub(crate) outcomes: Outcomes,
    /// The sessions the shards still hold (after a shutdown that keeps
    /// them; an ordinary shutdown ends them all), each rewound before any
    /// dispatch that could not be handed to the user.
    pub(crate) sessions: SavedSessions,
}

/// One shard's socket and what the driver counts about it.
struct Slot {
    parts: ShardParts,
    link: Link,
    counters: Counters,
    outcome: Option<ClientError>,
    /// Its figures changed since they were last published.
    dirty: bool,
    span: Span,
}

/// The driver of a fleet's connections.
pub(crate) struct Driver {
    fleet: Fleet,
    identify: Option<IdentifyShare>,
    remote: Option<RemoteIdentify>,
    clock: Clock,
    token: Token,
    dialer: Dialer,
    max_pending: usize,
    events: mpsc::Sender<(u32, DispatchEvent)>,
    shutdown: watch::Receiver<Stop>,
    commands: mpsc::Receiver<CommandRequest>,
    commands_open: bool,
    /// By shard id, as the fleet orders them.
    slots: Vec<Slot>,
    /// The slot whose link is polled first next time, so that a busy
    /// shard cannot starve the others.
    cursor: usize,
    /// The slots whose figures changed since they were last published.
    touched: Vec<usize>,
    /// Accepted dispatches waiting for room in the user's queue.
    pending: VecDeque<(u32, DispatchEvent)>,
    stopping: bool,
    /// Shards that gave up.
    gave_up: usize,
    /// Where every input and output is reported, when a test watches.
    #[cfg(feature = "testing")]
    hook: Option<crate::testing::Hook>,
}

impl Driver {
    pub(crate) fn new(parts: DriverParts) -> Self {
        let mut shards = parts.shards;
        shards.sort_by_key(|shard| shard.id);
        let touched = (0..shards.len()).collect();
        let slots = shards
            .into_iter()
            .map(|shard| Slot {
                span: tracing::info_span!("gateway", shard = shard.id),
                parts: shard,
                link: Link::Idle,
                counters: Counters::default(),
                outcome: None,
                // Listed in `touched`.
                dirty: true,
            })
            .collect();
        #[cfg(feature = "testing")]
        let hook = crate::testing::Hook::attach(
            &parts.fleet,
            parts.identify.as_ref().map(IdentifyShare::buckets),
            parts.clock.now(),
        );
        Self {
            fleet: parts.fleet,
            identify: parts.identify,
            remote: parts.remote,
            clock: parts.clock,
            token: parts.token,
            dialer: parts.dialer,
            max_pending: parts.max_pending.max(1),
            events: parts.events,
            shutdown: parts.shutdown,
            commands: parts.commands,
            commands_open: true,
            slots,
            cursor: 0,
            touched,
            pending: VecDeque::new(),
            stopping: false,
            gave_up: 0,
            #[cfg(feature = "testing")]
            hook,
        }
    }

    /// Reports to the test's observer, if one watches.
    #[cfg(feature = "testing")]
    fn observe(&self, see: impl FnOnce(&mut reconnect_policy::testing::Observer)) {
        if let Some(hook) = &self.hook {
            hook.with(see);
        }
    }

    /// Runs until every shard has stopped (shutdown) or given up.
    pub(crate) async fn run(mut self) -> Finished {
        loop {
            let now = self.clock.now();
            self.drain(now);
            // Asking every shard is O(n): only when one may have stopped
            // (a stopped fleet has no timer left).
            let may_have_stopped =
                self.stopping || self.gave_up > 0 || self.fleet.poll_timeout().is_none();
            if may_have_stopped && self.fleet.is_terminal() {
                break;
            }
            self.publish(now);
            let wake = self
                .fleet
                .poll_timeout()
                .map(|at| self.clock.instant_at(at));
            let read = self.pending.len() < self.max_pending;
            // A handle of this iteration's own, so the permit it gives does
            // not borrow the driver.
            let sender = self.events.clone();
            tokio::select! {
                biased;
                changed = self.shutdown.changed(), if !self.stopping => {
                    // A dropped handle asks for the ordinary shutdown.
                    let keep = changed.is_ok()
                        && *self.shutdown.borrow_and_update() == Stop::KeepingSessions;
                    self.stop("shutdown requested", keep);
                }
                () = self.events.closed(), if !self.stopping => {
                    self.stop("the event stream was dropped", false);
                }
                (index, event) = next_link_event(&mut self.slots, &mut self.cursor, read) => {
                    let now = self.clock.now();
                    self.run_due_timers(now);
                    match event {
                        LinkEvent::Dialed(id, result) => self.on_dialed(now, index, id, result),
                        LinkEvent::Incoming(incoming) => self.on_incoming(now, index, incoming),
                    }
                }
                answer = next_store_answer(self.remote.as_mut()) => {
                    let now = self.clock.now();
                    self.run_due_timers(now);
                    match answer {
                        StoreAnswer::Identify(shard, answer) => {
                            trace!(shard, ?answer, "identify store");
                            let _ = self.fleet.handle_identify(now, shard, answer);
                        }
                        StoreAnswer::Probe(answer) => {
                            trace!(?answer, "probe coordinator");
                            self.fleet.handle_probe(now, answer);
                        }
                    }
                }
                request = self.commands.recv(), if self.commands_open => {
                    match request {
                        Some(request) => self.on_command(request),
                        None => self.commands_open = false,
                    }
                }
                permit = sender.reserve(), if !self.pending.is_empty() => {
                    match permit {
                        Ok(permit) => {
                            if let Some((shard, event)) = self.pending.pop_front() {
                                permit.send((shard, event));
                                if let Some(index) = self.index(shard) {
                                    self.slots[index].counters.events_delivered += 1;
                                    self.touch(index);
                                }
                            }
                        }
                        // The user dropped the stream; the shutdown branch
                        // takes it from here.
                        Err(_) => self.pending.clear(),
                    }
                }
                () = sleep_until(wake), if wake.is_some() => {
                    let now = self.clock.now();
                    self.fleet.handle_timeout(now);
                    #[cfg(feature = "testing")]
                    self.observe(|o| o.timeout(now));
                }
            }
        }
        for index in 0..self.slots.len() {
            self.slots[index].link = Link::Idle;
            self.touch(index);
        }
        let undelivered = self.hand_over_pending();
        let now = self.clock.now();
        self.publish(now);
        let mut sessions = self.fleet.saved_sessions();
        for (shard, first) in undelivered {
            if let Some(saved) = sessions.get_mut(&shard) {
                // Resume from before the first dispatch the user never
                // got, so that the next process replays it.
                let before = first.saturating_sub(1);
                saved.seq = Some(saved.seq.map_or(before, |seq| seq.min(before)));
            }
        }
        let outcomes = self
            .slots
            .iter_mut()
            .map(|slot| {
                let _span = slot.span.clone().entered();
                let outcome = match slot.outcome.take() {
                    Some(error) => Err(error),
                    None => {
                        info!("stopped");
                        let _ = slot.parts.notices.send(Notice::Stopped);
                        Ok(())
                    }
                };
                (slot.parts.id, outcome)
            })
            .collect();
        Finished { outcomes, sessions }
    }

    fn index(&self, shard: u32) -> Option<usize> {
        self.slots
            .binary_search_by_key(&shard, |slot| slot.parts.id)
            .ok()
    }

    /// Hands the dispatches still waiting to the user, as far as the
    /// queue has room: the client is stopping and will not wait for a
    /// user who is not reading. Returns, by shard, the sequence number of
    /// the first dispatch that could not be handed over.
    fn hand_over_pending(&mut self) -> BTreeMap<u32, u64> {
        let mut dropped = 0_u64;
        let mut undelivered = BTreeMap::new();
        while let Some((shard, event)) = self.pending.pop_front() {
            let seq = event.seq;
            match self.events.try_send((shard, event)) {
                Ok(()) => {
                    if let Some(index) = self.index(shard) {
                        self.slots[index].counters.events_delivered += 1;
                    }
                }
                Err(_) => {
                    dropped += 1;
                    if let Some(seq) = seq {
                        undelivered.entry(shard).or_insert(seq);
                    }
                }
            }
        }
        if dropped > 0 {
            warn!(
                dropped,
                "the event queue was full when the client stopped; dispatches dropped"
            );
        }
        undelivered
    }

    /// Stops every shard: ending its session, or keeping it resumable.
    fn stop(&mut self, why: &str, keep_sessions: bool) {
        self.stopping = true;
        let now = self.clock.now();
        if keep_sessions {
            info!(why, "shutting down: keeping every session resumable");
            self.fleet.shutdown_keeping_sessions(now);
        } else {
            info!(why, "shutting down: closing every session with 1000");
            self.fleet.shutdown(now);
        }
        #[cfg(feature = "testing")]
        self.observe(|o| o.shutdown(now));
    }

    /// Marks slot `index`'s figures as changed.
    fn touch(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if !slot.dirty {
            slot.dirty = true;
            self.touched.push(index);
        }
    }

    /// Publishes the figures of every shard touched since the last time.
    fn publish(&mut self, now: Timestamp) {
        for index in self.touched.drain(..) {
            let slot = &mut self.slots[index];
            slot.dirty = false;
            if let Some(policy) = self.fleet.policy(slot.parts.id) {
                let open = matches!(slot.link, Link::Open(_));
                slot.parts
                    .published
                    .publish(now, policy, &slot.counters, &slot.parts.gauge, open);
            }
        }
    }

    /// Runs the fleet's timers if its wake-up time has come, and carries
    /// out what they asked for: a deadline that passed wins over a frame
    /// read after it.
    fn run_due_timers(&mut self, now: Timestamp) {
        if self.fleet.poll_timeout().is_some_and(|at| at <= now) {
            self.fleet.handle_timeout(now);
            #[cfg(feature = "testing")]
            self.observe(|o| o.timeout(now));
            self.drain(now);
        }
    }

    /// Feeds an event about slot `index`'s connection `id` to the fleet.
    fn feed(&mut self, now: Timestamp, index: usize, id: ConnectionId, event: Event) -> Handled {
        self.touch(index);
        let shard = self.slots[index].parts.id;
        #[cfg(feature = "testing")]
        let seen = self.hook.is_some().then(|| event.clone());
        // Every slot is one of the fleet's shards.
        let handled = self
            .fleet
            .handle_event(now, shard, id, event)
            .unwrap_or(Handled::Stale);
        #[cfg(feature = "testing")]
        if let Some(event) = seen {
            self.observe(|o| o.event(now, shard, id, &event, handled));
        }
        let slot = &mut self.slots[index];
        if handled == Handled::Stale && slot.link.id() == Some(id) {
            warn!(connection = %id, "the policy calls this socket stale; dropping it");
            slot.link = Link::Idle;
        }
        handled
    }

    /// Carries out every output the fleet has.
    fn drain(&mut self, now: Timestamp) {
        while let Some((shard, output)) = self.fleet.poll_output() {
            let Some(index) = self.index(shard) else {
                error!(shard, "an output for a shard this driver does not run");
                continue;
            };
            self.touch(index);
            #[cfg(feature = "testing")]
            self.observe(|o| o.output(shard, &output));
            let span = self.slots[index].span.clone();
            let _entered = span.enter();
            match output {
                Output::Action(action) => self.carry_out(now, index, action),
                Output::Note(note) => self.log_note(now, index, note),
            }
        }
    }

    fn notify(&self, index: usize, notice: Notice) {
        // No subscriber is fine.
        let _ = self.slots[index].parts.notices.send(notice);
    }

    #[allow(clippy::too_many_lines)]
    fn carry_out(&mut self, now: Timestamp, index: usize, action: Action) {
        match action {
            Action::Connect {
                connection,
                url,
                recovery,
            } => {
                if let Some(old) = self.slots[index].link.id() {
                    // The policy closes or drops a socket before it asks for
                    // another; this only guards that promise.
                    error!(connection = %old, "a socket still existed at a new Connect; dropping it");
                    self.slots[index].link = Link::Idle;
                }
                info!(connection = %connection, %url, ?recovery, "connecting");
                self.notify(
                    index,
                    Notice::Connecting {
                        connection,
                        url: url.clone(),
                        recovery,
                        at: now,
                    },
                );
                let dialer = self.dialer.clone();
                let slot = &mut self.slots[index];
                slot.link = Link::Dialing {
                    id: connection,
                    dial: Box::pin(async move { dialer.dial(&url).await.map(Box::new) }),
                    ticket: slot.parts.gauge.ticket(),
                };
            }
            Action::Send {
                connection,
                command,
            } => {
                let slot = &mut self.slots[index];
                match &mut slot.link {
                    Link::Open(socket) if socket.id() == connection => {
                        let text = command::encode(&command, &self.token, &slot.parts.identity);
                        socket.send_text(text);
                        debug!(connection = %connection, command = command::name(&command), "sent");
                        self.notify(
                            index,
                            Notice::Sent {
                                connection,
                                command,
                                at: now,
                            },
                        );
                    }
                    _ => debug!(connection = %connection, "a command for a socket that is gone"),
                }
            }
            Action::Close { connection, code } => match &mut self.slots[index].link {
                Link::Open(socket) if socket.id() == connection => {
                    info!(connection = %connection, %code, "closing");
                    socket.send_close(code.as_u16());
                    self.notify(
                        index,
                        Notice::Closing {
                            connection,
                            code: code.as_u16(),
                            at: now,
                        },
                    );
                }
                Link::Dialing { id, .. } if *id == connection => {
                    // Not open yet: nothing to close but the dial.
                    self.slots[index].link = Link::Idle;
                    self.notify(
                        index,
                        Notice::Closed {
                            connection,
                            code: None,
                            at: now,
                        },
                    );
                    self.feed(now, index, connection, Event::Closed { code: None });
                }
                _ => {}
            },
            Action::Abort { connection } => {
                if self.slots[index].link.id() == Some(connection) {
                    info!(connection = %connection, "dropping the socket");
                    self.slots[index].link = Link::Idle;
                    self.notify(
                        index,
                        Notice::Aborted {
                            connection,
                            at: now,
                        },
                    );
                }
            }
            Action::Identify { shard, request } => {
                // Only a fleet whose limiter lives outside it asks. An
                // asynchronous responder answers later, as an input.
                if let Some(remote) = &self.remote {
                    remote.ask(shard, request);
                    return;
                }
                let answer = self
                    .identify
                    .as_ref()
                    .and_then(|share| share.answer(now, shard, request));
                if let Some(answer) = answer {
                    trace!(?request, ?answer, "identify limiter");
                    let _ = self.fleet.handle_identify(now, shard, answer);
                    #[cfg(feature = "testing")]
                    self.observe(|o| o.identify(now, shard, &answer));
                }
            }
            // Only a fleet built to share its outage probes asks, and the
            // runner builds one only with a responder; an ask left
            // unanswered makes the fleet probe on its own schedule.
            Action::Probe(request) => {
                trace!(?request, "probe coordinator");
                if let Some(remote) = &self.remote {
                    remote.ask_probe(request);
                }
            }
            Action::GiveUp(reason) => {
                error!(%reason, "giving up");
                self.notify(index, Notice::GaveUp(reason));
                self.slots[index].outcome = Some(ClientError::from(reason));
                self.gave_up += 1;
            }
        }
    }

    fn log_note(&self, now: Timestamp, index: usize, note: Note) {
        match &note {
            Note::Planned(plan) => info!(
                trigger = ?plan.trigger,
                decision = ?plan.decision,
                recovery = ?plan.recovery,
                retry = plan.retry,
                backoff_ms = plan.backoff_ms,
                in_ms = plan.at.saturating_since(now),
                "reconnect planned"
            ),
            Note::ResumeUrlRefused { url, reason } => warn!(
                %url,
                %reason,
                "READY's resume URL refused; the next connection identifies against the base URL"
            ),
            Note::IdentifyLoop {
                rejected,
                last_code,
                rejected_today,
                until,
            } => error!(
                rejected,
                last_code = ?last_code.map(CloseCode::as_u16),
                rejected_today,
                wait_ms = until.saturating_since(now),
                "identify loop: the gateway answers every Identify with a close before READY; check the token and the gateway"
            ),
            other => debug!(?other, "a note this client does not know"),
        }
        self.notify(index, Notice::Note(note));
    }

    /// Sends a command from a handle if the shard's connection has a
    /// session and the policy's send budget has room; answers at once
    /// either way, so a refused command never waits in the loop.
    fn on_command(&mut self, request: CommandRequest) {
        let CommandRequest {
            shard,
            op,
            text,
            reply,
        } = request;
        let now = self.clock.now();
        let Some(index) = self.index(shard) else {
            let _ = reply.send(Err(SendError::NoSession));
            return;
        };
        let span = self.slots[index].span.clone();
        let _entered = span.enter();
        let result = match &mut self.slots[index].link {
            Link::Open(socket) if !socket.is_closing() => {
                let connection = socket.id();
                self.fleet.try_send_command(now, shard).map(|()| {
                    socket.send_text(text);
                    connection
                })
            }
            _ => Err(SendError::NoSession),
        };
        match result {
            Ok(connection) => {
                debug!(connection = %connection, op, "command sent");
                self.touch(index);
                self.notify(
                    index,
                    Notice::CommandSent {
                        connection,
                        op,
                        at: now,
                    },
                );
                let _ = reply.send(Ok(()));
            }
            Err(refused) => {
                debug!(op, %refused, "command refused");
                let _ = reply.send(Err(refused));
            }
        }
    }

    fn on_dialed(
        &mut self,
        now: Timestamp,
        index: usize,
        id: ConnectionId,
        result: Result<Box<GatewaySocket>, DialError>,
    ) {
        let span = self.slots[index].span.clone();
        let _entered = span.enter();
        let Link::Dialing { ticket, .. } =
            std::mem::replace(&mut self.slots[index].link, Link::Idle)
        else {
            return;
        };
        match result {
            Ok(socket) => {
                info!(connection = %id, "open");
                self.slots[index].link = Link::Open(Box::new(Connection::new(id, *socket, ticket)));
                self.notify(
                    index,
                    Notice::Opened {
                        connection: id,
                        at: now,
                    },
                );
                let _ = self.feed(now, index, id, Event::Opened);
            }
            Err(DialError { failure, detail }) => {
                drop(ticket);
                warn!(connection = %id, ?failure, %detail, "connection attempt failed");
                self.notify(
                    index,
                    Notice::ConnectFailed {
                        connection: id,
                        failure,
                        at: now,
                    },
                );
                let _ = self.feed(now, index, id, Event::ConnectFailed { failure });
            }
        }
    }

    fn on_incoming(&mut self, now: Timestamp, index: usize, incoming: Incoming) {
        let span = self.slots[index].span.clone();
        let _entered = span.enter();
        let Some(id) = self.slots[index].link.id() else {
            return;
        };
        let counters = &mut self.slots[index].counters;
        match incoming {
            Incoming::Message(Message::Text(text)) => self.on_text(now, index, id, text.as_str()),
            Incoming::Message(Message::Binary(bytes)) => {
                counters.binary_frames += 1;
                log_odd(
                    counters.binary_frames,
                    format_args!(
                        "a binary frame ({} bytes) where JSON text was asked for",
                        bytes.len()
                    ),
                );
                let _ = self.feed(now, index, id, Event::OtherFrame);
            }
            Incoming::Message(Message::Close(frame)) => {
                let code = frame.map(|f| u16::from(f.code));
                if let Link::Open(socket) = &mut self.slots[index].link
                    && !socket.is_closing()
                {
                    // Get our reply to the peer's close frame out, if the
                    // socket takes it right away.
                    socket.flush_now();
                }
                info!(connection = %id, ?code, "closed by a close frame");
                self.end_link(now, index, id, code);
            }
            Incoming::Message(_) => {}
            Incoming::Undecodable(error) => {
                if matches!(error, InflateError::TooLarge { .. }) {
                    counters.oversized_frames += 1;
                    log_odd(
                        counters.oversized_frames,
                        format_args!("{error}; the socket is dropped"),
                    );
                } else {
                    counters.protocol_errors += 1;
                    log_odd(
                        counters.protocol_errors,
                        format_args!("{error}; the socket is dropped"),
                    );
                }
                self.end_link(now, index, id, None);
            }
            Incoming::Ended(error) => {
                match &error {
                    Some(e) if transport::is_oversized(e) => {
                        counters.oversized_frames += 1;
                        log_odd(
                            counters.oversized_frames,
                            format_args!(
                                "a frame over the size limit ({e}); the socket is dropped"
                            ),
                        );
                    }
                    Some(e) if transport::is_protocol_violation(e) => {
                        counters.protocol_errors += 1;
                        log_odd(
                            counters.protocol_errors,
                            format_args!(
                                "the peer broke the WebSocket protocol ({e}); the socket is dropped"
                            ),
                        );
                    }
                    Some(e) => info!(connection = %id, error = %e, "the socket failed"),
                    None => info!(connection = %id, "the socket ended without a close frame"),
                }
                self.end_link(now, index, id, None);
            }
        }
    }

    /// Drops the socket, then tells the policy it is closed.
    fn end_link(&mut self, now: Timestamp, index: usize, id: ConnectionId, code: Option<u16>) {
        self.slots[index].link = Link::Idle;
        self.notify(
            index,
            Notice::Closed {
                connection: id,
                code,
                at: now,
            },
        );
        let _ = self.feed(now, index, id, Event::Closed { code });
    }

    fn on_text(&mut self, now: Timestamp, index: usize, id: ConnectionId, text: &str) {
        let counters = &mut self.slots[index].counters;
        let event = match payload::parse(text) {
            Ok(Inbound::Hello {
                heartbeat_interval_ms,
            }) => Event::Hello {
                heartbeat_interval_ms,
            },
            Ok(Inbound::Dispatch { event, kind }) => {
                self.on_dispatch(now, index, id, event, kind);
                return;
            }
            Ok(Inbound::HeartbeatAck) => Event::HeartbeatAck,
            Ok(Inbound::HeartbeatRequest) => Event::HeartbeatRequest,
            Ok(Inbound::Reconnect) => Event::Reconnect,
            Ok(Inbound::InvalidSession { resumable }) => Event::InvalidSession { resumable },
            Ok(Inbound::UnknownOpcode(op)) => {
                counters.unknown_opcodes += 1;
                log_odd(
                    counters.unknown_opcodes,
                    format_args!("unknown opcode {op}; ignored"),
                );
                Event::OtherFrame
            }
            Err(e) => {
                counters.malformed_frames += 1;
                log_odd(
                    counters.malformed_frames,
                    format_args!("a malformed frame ({} bytes): {e}; ignored", text.len()),
                );
                Event::OtherFrame
            }
        };
        trace!(connection = %id, ?event, "received");
        let _ = self.feed(now, index, id, event);
    }

    fn on_dispatch(
        &mut self,
        now: Timestamp,
        index: usize,
        id: ConnectionId,
        event: DispatchEvent,
        kind: reconnect_policy::Dispatch,
    ) {
        if !event_names::is_known(&event.name) {
            let counters = &mut self.slots[index].counters;
            counters.unknown_events += 1;
            log_odd(
                counters.unknown_events,
                format_args!(
                    "an event this client does not know ({:.64}); delivered as is",
                    event.name
                ),
            );
        }
        let handled = self.feed(
            now,
            index,
            id,
            Event::Dispatch {
                seq: event.seq,
                event: kind,
            },
        );
        let slot = &mut self.slots[index];
        match handled {
            Handled::Accepted => {
                trace!(seq = ?event.seq, name = %event.name, "dispatch");
                self.pending.push_back((slot.parts.id, event));
            }
            Handled::Duplicate => {
                // Counted by the policy (`PolicyStats::duplicate_dispatches`).
                debug!(seq = ?event.seq, name = %event.name, "already delivered; dropped");
            }
            Handled::Ignored => {
                slot.counters.dispatches_ignored += 1;
                log_odd(
                    slot.counters.dispatches_ignored,
                    format_args!(
                        "a dispatch outside a session ({:.64}); not delivered",
                        event.name
                    ),
                );
            }
            Handled::Stale => {}
        }
    }
}

/// Waits on every shard's link, starting after the one served last, and
/// returns the first that has something: a finished dial, or (while `read`)
/// what an open socket says. Never resolves while no link has anything.
fn next_link_event<'a>(
    slots: &'a mut [Slot],
    cursor: &'a mut usize,
    read: bool,
) -> impl Future<Output = (usize, LinkEvent)> + 'a {
    std::future::poll_fn(move |cx| {
        let count = slots.len();
        for step in 0..count {
            let index = (*cursor + step) % count;
            let polled = match &mut slots[index].link {
                Link::Idle => continue,
                Link::Dialing { id, dial, .. } => match dial.as_mut().poll(cx) {
                    Poll::Ready(result) => LinkEvent::Dialed(*id, result),
                    Poll::Pending => continue,
                },
                Link::Open(connection) if read => match connection.poll_next(cx) {
                    Poll::Ready(incoming) => LinkEvent::Incoming(incoming),
                    Poll::Pending => continue,
                },
                Link::Open(_) => continue,
            };
            *cursor = (index + 1) % count;
            return Poll::Ready((index, polled));
        }
        Poll::Pending
    })
}

/// Warns on the 1st, 2nd, 4th, ... occurrence; debug-logs the rest.
fn log_odd(count: u64, message: std::fmt::Arguments<'_>) {
    if noteworthy(count) {
        warn!(count, "{message}");
    } else {
        debug!(count, "{message}");
    }
}

/// The next answer of the asynchronous identify responder; pending
/// forever without one.
async fn next_store_answer(remote: Option<&mut RemoteIdentify>) -> StoreAnswer {
    match remote {
        Some(remote) => remote.next_answer().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
