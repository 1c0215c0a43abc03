//! The run loop: carries out the policy's outputs on real sockets and feeds
//! it what the sockets and the clock say. It decides nothing.
//!
//! When the policy's wake-up time has come, the loop runs its timers
//! ([`Policy::handle_timeout`]) before it reads anything else. After every
//! input it drains [`Policy::poll_output`] and carries out each action in
//! order (dial, send, close, drop, ask the bot's identify limiter and hand
//! its answer back), logs each note, publishes the
//! figures, then waits for whichever comes first: the shutdown signal, the
//! socket (a finished dial, a frame, the end), room for a pending dispatch
//! in the user's queue, or the policy's next wake-up
//! ([`Policy::poll_timeout`]). Every reconnect rule — whether to resume,
//! how long to wait, when a socket is dead, which code to close with —
//! lives in the policy.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use reconnect_policy::{Action, ConnectionId, Event, Handled, Note, Output, Policy, Timestamp};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, error, info, trace, warn};

use crate::clock::Clock;
use crate::command::{self, Identity};
use crate::compression::InflateError;
use crate::connection::{Connection, Incoming};
use crate::dispatch::DispatchEvent;
use crate::error::ClientError;
use crate::event_names;
use crate::figures::{Counters, Published, SocketGauge, SocketTicket, noteworthy};
use crate::identify_share::IdentifyShare;
use crate::notice::Notice;
use crate::payload::{self, Inbound};
use crate::token::Token;
use crate::transport::{self, DialError, Dialer, GatewaySocket};

type Dial = Pin<Box<dyn Future<Output = Result<Box<GatewaySocket>, DialError>> + Send>>;

/// The one socket the client may have.
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

/// What the link produced.
enum LinkEvent {
    Dialed(ConnectionId, Result<Box<GatewaySocket>, DialError>),
    Incoming(Incoming),
}

/// Waits on the link; never resolves without one, or while `read` is
/// false for an open socket.
async fn next_link_event(link: &mut Link, read: bool) -> LinkEvent {
    match link {
        Link::Idle => std::future::pending().await,
        Link::Dialing { id, dial, .. } => LinkEvent::Dialed(*id, dial.as_mut().await),
        Link::Open(connection) if read => LinkEvent::Incoming(connection.next().await),
        Link::Open(_) => std::future::pending().await,
    }
}

/// Everything the driver is made of.
pub(crate) struct DriverParts {
    pub(crate) policy: Policy,
    pub(crate) identify: IdentifyShare,
    pub(crate) clock: Clock,
    pub(crate) token: Token,
    pub(crate) identity: Identity,
    pub(crate) dialer: Dialer,
    pub(crate) max_pending: usize,
    pub(crate) events: mpsc::Sender<DispatchEvent>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) notices: broadcast::Sender<Notice>,
    pub(crate) published: Arc<Published>,
    pub(crate) gauge: Arc<SocketGauge>,
}

/// The driver of one shard's connection.
pub(crate) struct Driver {
    parts: DriverParts,
    link: Link,
    /// Accepted dispatches waiting for room in the user's queue.
    pending: VecDeque<DispatchEvent>,
    stopping: bool,
    counters: Counters,
    outcome: Option<ClientError>,
}

impl Driver {
    pub(crate) fn new(parts: DriverParts) -> Self {
        Self {
            parts,
            link: Link::Idle,
            pending: VecDeque::new(),
            stopping: false,
            counters: Counters::default(),
            outcome: None,
        }
    }

    /// Runs until the policy stops (shutdown) or gives up.
    pub(crate) async fn run(mut self) -> Result<(), ClientError> {
        loop {
            let now = self.parts.clock.now();
            self.drain(now);
            if self.parts.policy.state().is_terminal() {
                break;
            }
            self.publish(now);
            let wake = self
                .parts
                .policy
                .poll_timeout()
                .map(|at| self.parts.clock.instant_at(at));
            let read = self.pending.len() < self.parts.max_pending;
            // A handle of this iteration's own, so the permit it gives does
            // not borrow the driver.
            let sender = self.parts.events.clone();
            tokio::select! {
                biased;
                _ = self.parts.shutdown.changed(), if !self.stopping => {
                    self.stop("shutdown requested");
                }
                () = self.parts.events.closed(), if !self.stopping => {
                    self.stop("the event stream was dropped");
                }
                event = next_link_event(&mut self.link, read) => {
                    let now = self.parts.clock.now();
                    self.run_due_timers(now);
                    match event {
                        LinkEvent::Dialed(id, result) => self.on_dialed(now, id, result),
                        LinkEvent::Incoming(incoming) => self.on_incoming(now, incoming),
                    }
                }
                permit = sender.reserve(), if !self.pending.is_empty() => {
                    match permit {
                        Ok(permit) => {
                            if let Some(event) = self.pending.pop_front() {
                                permit.send(event);
                                self.counters.events_delivered += 1;
                            }
                        }
                        // The user dropped the stream; the shutdown branch
                        // takes it from here.
                        Err(_) => self.pending.clear(),
                    }
                }
                () = sleep_until(wake), if wake.is_some() => {
                    self.parts.policy.handle_timeout(self.parts.clock.now());
                }
            }
        }
        self.link = Link::Idle;
        self.hand_over_pending();
        let now = self.parts.clock.now();
        self.publish(now);
        match self.outcome.take() {
            Some(error) => Err(error),
            None => {
                info!("stopped");
                self.notify(Notice::Stopped);
                Ok(())
            }
        }
    }

    /// Hands the dispatches still waiting to the user, as far as the
    /// queue has room: the client is stopping and will not wait for a
    /// user who is not reading.
    fn hand_over_pending(&mut self) {
        let mut dropped = 0_u64;
        for event in self.pending.drain(..) {
            match self.parts.events.try_send(event) {
                Ok(()) => self.counters.events_delivered += 1,
                Err(_) => dropped += 1,
            }
        }
        if dropped > 0 {
            warn!(
                dropped,
                "the event queue was full when the client stopped; dispatches dropped"
            );
        }
    }

    fn stop(&mut self, why: &str) {
        info!(why, "shutting down: closing the session with 1000");
        self.stopping = true;
        self.parts.policy.shutdown(self.parts.clock.now());
    }

    fn publish(&self, now: Timestamp) {
        let open = matches!(self.link, Link::Open(_));
        self.parts.published.publish(
            now,
            &self.parts.policy,
            &self.counters,
            &self.parts.gauge,
            open,
        );
    }

    fn notify(&self, notice: Notice) {
        // No subscriber is fine.
        let _ = self.parts.notices.send(notice);
    }

    /// Runs the policy's timers if its wake-up time has come, and carries
    /// out what they asked for: a deadline that passed wins over a frame
    /// read after it.
    fn run_due_timers(&mut self, now: Timestamp) {
        if self.parts.policy.poll_timeout().is_some_and(|at| at <= now) {
            self.parts.policy.handle_timeout(now);
            self.drain(now);
        }
    }

    /// Feeds an event about connection `id` to the policy.
    fn feed(&mut self, now: Timestamp, id: ConnectionId, event: Event) -> Handled {
        let handled = self.parts.policy.handle_event(now, id, event);
        if handled == Handled::Stale && self.link.id() == Some(id) {
            warn!(connection = %id, "the policy calls this socket stale; dropping it");
            self.link = Link::Idle;
        }
        handled
    }

    /// Carries out every output the policy has.
    fn drain(&mut self, now: Timestamp) {
        while let Some(output) = self.parts.policy.poll_output() {
            match output {
                Output::Action(action) => self.carry_out(now, action),
                Output::Note(note) => self.log_note(now, note),
            }
        }
    }

    fn carry_out(&mut self, now: Timestamp, action: Action) {
        match action {
            Action::Connect {
                connection,
                url,
                recovery,
            } => {
                if let Some(old) = self.link.id() {
                    // The policy closes or drops a socket before it asks for
                    // another; this only guards that promise.
                    error!(connection = %old, "a socket still existed at a new Connect; dropping it");
                    self.link = Link::Idle;
                }
                info!(connection = %connection, %url, ?recovery, "connecting");
                self.notify(Notice::Connecting {
                    connection,
                    url: url.clone(),
                    recovery,
                    at: now,
                });
                let dialer = self.parts.dialer.clone();
                self.link = Link::Dialing {
                    id: connection,
                    dial: Box::pin(async move { dialer.dial(&url).await.map(Box::new) }),
                    ticket: self.parts.gauge.ticket(),
                };
            }
            Action::Send {
                connection,
                command,
            } => match &mut self.link {
                Link::Open(socket) if socket.id() == connection => {
                    let text = command::encode(&command, &self.parts.token, &self.parts.identity);
                    socket.send_text(text);
                    debug!(connection = %connection, command = command::name(&command), "sent");
                    self.notify(Notice::Sent {
                        connection,
                        command,
                        at: now,
                    });
                }
                _ => debug!(connection = %connection, "a command for a socket that is gone"),
            },
            Action::Close { connection, code } => match &mut self.link {
                Link::Open(socket) if socket.id() == connection => {
                    info!(connection = %connection, %code, "closing");
                    socket.send_close(code.as_u16());
                    self.notify(Notice::Closing {
                        connection,
                        code: code.as_u16(),
                        at: now,
                    });
                }
                Link::Dialing { id, .. } if *id == connection => {
                    // Not open yet: nothing to close but the dial.
                    self.link = Link::Idle;
                    self.notify(Notice::Closed {
                        connection,
                        code: None,
                        at: now,
                    });
                    self.feed(now, connection, Event::Closed { code: None });
                }
                _ => {}
            },
            Action::Abort { connection } => {
                if self.link.id() == Some(connection) {
                    info!(connection = %connection, "dropping the socket");
                    self.link = Link::Idle;
                    self.notify(Notice::Aborted {
                        connection,
                        at: now,
                    });
                }
            }
            Action::Identify { shard, request } => {
                if let Some(answer) = self.parts.identify.answer(now, shard, request) {
                    trace!(?request, ?answer, "identify limiter");
                    self.parts.policy.handle_identify(now, answer);
                }
            }
            Action::GiveUp(reason) => {
                error!(%reason, "giving up");
                self.notify(Notice::GaveUp(reason));
                self.outcome = Some(ClientError::from(reason));
            }
        }
    }

    fn log_note(&self, now: Timestamp, note: Note) {
        match note {
            Note::Planned(plan) => {
                info!(
                    trigger = ?plan.trigger,
                    decision = ?plan.decision,
                    recovery = ?plan.recovery,
                    retry = plan.retry,
                    backoff_ms = plan.backoff_ms,
                    in_ms = plan.at.saturating_since(now),
                    "reconnect planned"
                );
                self.notify(Notice::Planned(plan));
            }
            Note::ResumeUrlRefused { url, reason } => {
                warn!(
                    %url,
                    %reason,
                    "READY's resume URL refused; the next connection identifies against the base URL"
                );
                self.notify(Notice::ResumeUrlRefused { url, reason });
            }
            other => debug!(?other, "a note this client does not know"),
        }
    }

    fn on_dialed(
        &mut self,
        now: Timestamp,
        id: ConnectionId,
        result: Result<Box<GatewaySocket>, DialError>,
    ) {
        let Link::Dialing { ticket, .. } = std::mem::replace(&mut self.link, Link::Idle) else {
            return;
        };
        match result {
            Ok(socket) => {
                info!(connection = %id, "open");
                self.link = Link::Open(Box::new(Connection::new(id, *socket, ticket)));
                self.notify(Notice::Opened {
                    connection: id,
                    at: now,
                });
                let _ = self.feed(now, id, Event::Opened);
            }
            Err(DialError { failure, detail }) => {
                drop(ticket);
                warn!(connection = %id, ?failure, %detail, "connection attempt failed");
                self.notify(Notice::ConnectFailed {
                    connection: id,
                    failure,
                    at: now,
                });
                let _ = self.feed(now, id, Event::ConnectFailed { failure });
            }
        }
    }

    fn on_incoming(&mut self, now: Timestamp, incoming: Incoming) {
        let Some(id) = self.link.id() else { return };
        match incoming {
            Incoming::Message(Message::Text(text)) => self.on_text(now, id, text.as_str()),
            Incoming::Message(Message::Binary(bytes)) => {
                self.counters.binary_frames += 1;
                log_odd(
                    self.counters.binary_frames,
                    format_args!(
                        "a binary frame ({} bytes) where JSON text was asked for",
                        bytes.len()
                    ),
                );
                let _ = self.feed(now, id, Event::OtherFrame);
            }
            Incoming::Message(Message::Close(frame)) => {
                let code = frame.map(|f| u16::from(f.code));
                if let Link::Open(socket) = &mut self.link
                    && !socket.is_closing()
                {
                    // Get our reply to the peer's close frame out, if the
                    // socket takes it right away.
                    socket.flush_now();
                }
                info!(connection = %id, ?code, "closed by a close frame");
                self.end_link(now, id, code);
            }
            Incoming::Message(_) => {}
            Incoming::Undecodable(error) => {
                if matches!(error, InflateError::TooLarge { .. }) {
                    self.counters.oversized_frames += 1;
                    log_odd(
                        self.counters.oversized_frames,
                        format_args!("{error}; the socket is dropped"),
                    );
                } else {
                    self.counters.protocol_errors += 1;
                    log_odd(
                        self.counters.protocol_errors,
                        format_args!("{error}; the socket is dropped"),
                    );
                }
                self.end_link(now, id, None);
            }
            Incoming::Ended(error) => {
                match &error {
                    Some(e) if transport::is_oversized(e) => {
                        self.counters.oversized_frames += 1;
                        log_odd(
                            self.counters.oversized_frames,
                            format_args!(
                                "a frame over the size limit ({e}); the socket is dropped"
                            ),
                        );
                    }
                    Some(e) if transport::is_protocol_violation(e) => {
                        self.counters.protocol_errors += 1;
                        log_odd(
                            self.counters.protocol_errors,
                            format_args!(
                                "the peer broke the WebSocket protocol ({e}); the socket is dropped"
                            ),
                        );
                    }
                    Some(e) => info!(connection = %id, error = %e, "the socket failed"),
                    None => info!(connection = %id, "the socket ended without a close frame"),
                }
                self.end_link(now, id, None);
            }
        }
    }

    /// Drops the socket, then tells the policy it is closed.
    fn end_link(&mut self, now: Timestamp, id: ConnectionId, code: Option<u16>) {
        self.link = Link::Idle;
        self.notify(Notice::Closed {
            connection: id,
            code,
            at: now,
        });
        let _ = self.feed(now, id, Event::Closed { code });
    }

    fn on_text(&mut self, now: Timestamp, id: ConnectionId, text: &str) {
        let event = match payload::parse(text) {
            Ok(Inbound::Hello {
                heartbeat_interval_ms,
            }) => Event::Hello {
                heartbeat_interval_ms,
            },
            Ok(Inbound::Dispatch { event, kind }) => {
                self.on_dispatch(now, id, event, kind);
                return;
            }
            Ok(Inbound::HeartbeatAck) => Event::HeartbeatAck,
            Ok(Inbound::HeartbeatRequest) => Event::HeartbeatRequest,
            Ok(Inbound::Reconnect) => Event::Reconnect,
            Ok(Inbound::InvalidSession { resumable }) => Event::InvalidSession { resumable },
            Ok(Inbound::UnknownOpcode(op)) => {
                self.counters.unknown_opcodes += 1;
                log_odd(
                    self.counters.unknown_opcodes,
                    format_args!("unknown opcode {op}; ignored"),
                );
                Event::OtherFrame
            }
            Err(e) => {
                self.counters.malformed_frames += 1;
                log_odd(
                    self.counters.malformed_frames,
                    format_args!("a malformed frame ({} bytes): {e}; ignored", text.len()),
                );
                Event::OtherFrame
            }
        };
        trace!(connection = %id, ?event, "received");
        let _ = self.feed(now, id, event);
    }

    fn on_dispatch(
        &mut self,
        now: Timestamp,
        id: ConnectionId,
        event: DispatchEvent,
        kind: reconnect_policy::Dispatch,
    ) {
        if !event_names::is_known(&event.name) {
            self.counters.unknown_events += 1;
            log_odd(
                self.counters.unknown_events,
                format_args!(
                    "an event this client does not know ({:.64}); delivered as is",
                    event.name
                ),
            );
        }
        let handled = self.feed(
            now,
            id,
            Event::Dispatch {
                seq: event.seq,
                event: kind,
            },
        );
        match handled {
            Handled::Accepted => {
                trace!(seq = ?event.seq, name = %event.name, "dispatch");
                self.pending.push_back(event);
            }
            Handled::Duplicate => {
                self.counters.duplicates_dropped += 1;
                debug!(seq = ?event.seq, name = %event.name, "already delivered; dropped");
            }
            Handled::Ignored => {
                self.counters.dispatches_ignored += 1;
                log_odd(
                    self.counters.dispatches_ignored,
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

/// Warns on the 1st, 2nd, 4th, ... occurrence; debug-logs the rest.
fn log_odd(count: u64, message: std::fmt::Arguments<'_>) {
    if noteworthy(count) {
        warn!(count, "{message}");
    } else {
        debug!(count, "{message}");
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
