//! A shard driven by `reconnect_policy::Policy`, exactly as a real driver
//! would drive it: its timers run first when due, every message becomes an
//! `Event`, every `Action` becomes an action on a socket or a question to
//! the bot's identify limiter, whose answer goes straight back. No rule of
//! the policy is repeated here.

use std::sync::Arc;

use reconnect_policy::{
    Action, Command, ConnectionId, Dispatch, Event, Handled, Output, Policy, PolicyConfig,
    Timestamp,
};

use super::Cx;
use crate::wire::{DispatchKind, SessionId, SockId, ToClient, ToServer};

/// The base URL the simulated gateway serves.
pub const BASE_URL: &str = "wss://gateway.discord.gg";
/// The resume URL the simulated gateway hands out in READY.
pub const RESUME_URL: &str = "wss://gateway-us-east1-b.discord.gg";

/// How many recent connections the adapter remembers, to tell the policy
/// about late messages on old sockets (it answers `Stale`).
const REMEMBERED: usize = 4;

/// The adapter between a simulated shard and its policy.
#[derive(Debug)]
pub struct PolicyClient {
    policy: Policy,
    /// Recent (connection, socket) pairs, newest last.
    socks: Vec<(ConnectionId, SockId)>,
}

impl PolicyClient {
    /// `config` pointed at the simulated gateway, ready to be shared by
    /// every shard of a fleet.
    #[must_use]
    pub fn shared_config(config: &PolicyConfig) -> Arc<PolicyConfig> {
        let mut config = config.clone();
        BASE_URL.clone_into(&mut config.gateway_url);
        Arc::new(config)
    }

    /// A client for `shard` with this configuration (see
    /// [`PolicyClient::shared_config`]) and seed, created at `now`.
    ///
    /// # Errors
    ///
    /// The configuration is invalid.
    pub fn new(
        config: Arc<PolicyConfig>,
        shard: u32,
        seed: u64,
        now: u64,
    ) -> Result<Self, reconnect_policy::ConfigError> {
        Ok(Self {
            policy: Policy::new(config, shard, seed, Timestamp::from_millis(now))?,
            socks: Vec::with_capacity(REMEMBERED),
        })
    }

    /// The policy, for inspection.
    #[must_use]
    pub const fn policy(&self) -> &Policy {
        &self.policy
    }

    fn connection_of(&self, sock: SockId) -> Option<ConnectionId> {
        self.socks.iter().find(|(_, s)| *s == sock).map(|(c, _)| *c)
    }

    fn sock_of(&self, conn: ConnectionId) -> Option<SockId> {
        self.socks.iter().find(|(c, _)| *c == conn).map(|(_, s)| *s)
    }

    pub(super) fn on_message(&mut self, now: u64, sock: SockId, msg: ToClient, cx: &mut Cx<'_>) {
        let Some(conn) = self.connection_of(sock) else {
            // Older than anything remembered: the policy moved on long ago.
            if msg == ToClient::Opened {
                cx.send(sock, ToServer::Drop);
            }
            return;
        };
        let t = Timestamp::from_millis(now);
        // A timer due by now fires before a frame that arrived now.
        if self.policy.poll_timeout().is_some_and(|at| at <= t) {
            self.policy.handle_timeout(t);
            self.drain(now, cx);
        }
        let (event, dispatch) = match msg {
            ToClient::Opened => (Event::Opened, None),
            ToClient::ConnectFailed(failure) => (Event::ConnectFailed { failure }, None),
            ToClient::Hello { interval_ms } => (
                Event::Hello {
                    heartbeat_interval_ms: interval_ms,
                },
                None,
            ),
            ToClient::Dispatch { session, seq, kind } => {
                let event = match kind {
                    DispatchKind::Ready => Dispatch::Ready {
                        session_id: session.to_wire(),
                        resume_gateway_url: RESUME_URL.to_owned(),
                    },
                    DispatchKind::Resumed => Dispatch::Resumed,
                    DispatchKind::Other => Dispatch::Other,
                };
                (
                    Event::Dispatch {
                        seq: Some(seq),
                        event,
                    },
                    Some((session, seq)),
                )
            }
            ToClient::HeartbeatAck => (Event::HeartbeatAck, None),
            ToClient::HeartbeatRequest => (Event::HeartbeatRequest, None),
            ToClient::Reconnect => (Event::Reconnect, None),
            ToClient::InvalidSession { resumable } => (Event::InvalidSession { resumable }, None),
            ToClient::Closed { code } => (Event::Closed { code }, None),
        };
        match self.policy.handle_event(t, conn, event) {
            Handled::Accepted => {
                if let Some((session, seq)) = dispatch {
                    cx.delivered(session, seq);
                }
            }
            Handled::Stale if msg == ToClient::Opened => cx.send(sock, ToServer::Drop),
            Handled::Stale | Handled::Duplicate | Handled::Ignored => {}
        }
        self.drain(now, cx);
    }

    pub(super) fn wake(&mut self, now: u64, cx: &mut Cx<'_>) {
        self.policy.handle_timeout(Timestamp::from_millis(now));
        self.drain(now, cx);
    }

    pub(super) fn next_wake(&self) -> Option<u64> {
        self.policy
            .poll_timeout()
            .filter(|t| *t < Timestamp::CEILING)
            .map(Timestamp::as_millis)
    }

    pub(super) fn gave_up(&self) -> bool {
        self.policy.state().is_terminal()
    }

    fn drain(&mut self, now: u64, cx: &mut Cx<'_>) {
        let t = Timestamp::from_millis(now);
        while let Some(output) = self.policy.poll_output() {
            // Notes are for logs; the simulator reads the policy's counters.
            let Output::Action(action) = output else {
                continue;
            };
            match action {
                Action::Connect {
                    connection, url, ..
                } => {
                    let sock = cx.connect(url != BASE_URL);
                    if self.socks.len() == REMEMBERED {
                        self.socks.remove(0);
                    }
                    self.socks.push((connection, sock));
                }
                Action::Send {
                    connection,
                    command,
                } => {
                    let Some(sock) = self.sock_of(connection) else {
                        continue;
                    };
                    let msg = match command {
                        Command::Identify => ToServer::Identify,
                        Command::Resume { session_id, seq } => ToServer::Resume {
                            session: SessionId::from_wire(&session_id),
                            seq,
                        },
                        Command::Heartbeat { .. } => ToServer::Heartbeat,
                    };
                    cx.send(sock, msg);
                }
                Action::Close { connection, code } => {
                    if let Some(sock) = self.sock_of(connection) {
                        cx.send(
                            sock,
                            ToServer::Close {
                                code: code.as_u16(),
                            },
                        );
                    }
                }
                Action::Abort { connection } => {
                    if let Some(sock) = self.sock_of(connection) {
                        cx.send(sock, ToServer::Drop);
                    }
                }
                Action::Identify { shard, request } => {
                    if let Some(answer) = cx.limiter.answer(t, shard, request) {
                        self.policy.handle_identify(t, answer);
                    }
                }
                // The policy has stopped; `gave_up` reports it.
                Action::GiveUp(_) => {}
            }
        }
    }
}
