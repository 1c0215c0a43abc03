//! Every shard of the run driven by one `reconnect_policy::Fleet`, as a bot
//! process drives its shards: events for shard N's connection in,
//! `(shard, output)` pairs out, one wake-up time for the whole fleet. The
//! fleet's timers run first when due, every message becomes an `Event` for
//! its shard, every `Action` becomes an action on a socket; the shards'
//! identify requests never leave the fleet, whose own limiter answers them.
//! No rule of the policy is repeated here.

use std::sync::Arc;

use reconnect_policy::{
    Action, Command, ConnectionId, Dispatch, Event, Fleet, FleetError, Handled, IdentifyLimiter,
    Output, PolicyConfig, Timestamp,
};

use super::Cx;
use crate::wire::{DispatchKind, SessionId, SockId, ToClient, ToServer};

/// The base URL the simulated gateway serves.
pub const BASE_URL: &str = "wss://gateway.discord.gg";
/// The resume URL the simulated gateway hands out in READY.
pub const RESUME_URL: &str = "wss://gateway-us-east1-b.discord.gg";

/// How many recent connections the adapter remembers per shard, to tell the
/// policy about late messages on old sockets (it answers `Stale`).
const REMEMBERED: usize = 4;

/// One shard's recent (connection, socket) pairs, oldest first.
#[derive(Clone, Copy, Debug, Default)]
struct Recent([Option<(ConnectionId, SockId)>; REMEMBERED]);

impl Recent {
    /// Remembers a new pair, forgetting the oldest when full.
    fn push(&mut self, conn: ConnectionId, sock: SockId) {
        if let Some(free) = self.0.iter_mut().find(|pair| pair.is_none()) {
            *free = Some((conn, sock));
        } else {
            self.0.rotate_left(1);
            self.0[REMEMBERED - 1] = Some((conn, sock));
        }
    }

    fn connection_of(&self, sock: SockId) -> Option<ConnectionId> {
        self.0
            .iter()
            .flatten()
            .find(|(_, s)| *s == sock)
            .map(|(c, _)| *c)
    }

    fn sock_of(&self, conn: ConnectionId) -> Option<SockId> {
        self.0
            .iter()
            .flatten()
            .find(|(c, _)| *c == conn)
            .map(|(_, s)| *s)
    }
}

/// The adapter between the simulated shards and the fleet that drives them.
#[derive(Debug)]
pub struct FleetClient {
    fleet: Fleet,
    /// Each shard's recent sockets, indexed by shard id.
    socks: Vec<Recent>,
}

impl FleetClient {
    /// A fleet of shards `0..shards` running `config` pointed at the
    /// simulated gateway, its jitter derived from `seed`, the shards'
    /// identify requests answered by `limiter`, built (and every shard
    /// started) at `now`.
    ///
    /// # Errors
    ///
    /// The configuration is invalid.
    pub fn new(
        config: &PolicyConfig,
        shards: u32,
        seed: u64,
        limiter: IdentifyLimiter,
        now: u64,
    ) -> Result<Self, FleetError> {
        let mut config = config.clone();
        BASE_URL.clone_into(&mut config.gateway_url);
        let fleet = Fleet::new(
            Arc::new(config),
            0..shards,
            seed,
            limiter,
            Timestamp::from_millis(now),
        )?;
        Ok(Self {
            fleet,
            socks: vec![Recent::default(); shards as usize],
        })
    }

    /// The fleet, for inspection.
    #[must_use]
    pub const fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    pub(super) fn on_message(
        &mut self,
        now: u64,
        shard: u32,
        sock: SockId,
        msg: ToClient,
        cx: &mut Cx<'_>,
    ) {
        let Some(conn) = self
            .socks
            .get(shard as usize)
            .and_then(|recent| recent.connection_of(sock))
        else {
            // Older than anything remembered: the policy moved on long ago.
            if msg == ToClient::Opened {
                cx.send(sock, ToServer::Drop);
            }
            return;
        };
        let t = Timestamp::from_millis(now);
        // Timers due by now fire before a frame that arrived now.
        if self.fleet.poll_timeout().is_some_and(|at| at <= t) {
            self.fleet.handle_timeout(t);
            self.drain(cx);
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
        match self.fleet.handle_event(t, shard, conn, event) {
            Ok(Handled::Accepted) => {
                if let Some((session, seq)) = dispatch {
                    cx.delivered(session, seq);
                }
            }
            Ok(Handled::Stale) if msg == ToClient::Opened => cx.send(sock, ToServer::Drop),
            // Every shard of the run is in the fleet; an unknown one is
            // ignored like any message the policy does not take.
            Ok(Handled::Stale | Handled::Duplicate | Handled::Ignored) | Err(_) => {}
        }
        self.drain(cx);
    }

    pub(super) fn wake(&mut self, now: u64, cx: &mut Cx<'_>) {
        self.fleet.handle_timeout(Timestamp::from_millis(now));
        self.drain(cx);
    }

    pub(super) fn next_wake(&self) -> Option<u64> {
        self.fleet
            .poll_timeout()
            .filter(|t| *t < Timestamp::CEILING)
            .map(Timestamp::as_millis)
    }

    /// How many shards have stopped for good.
    pub(super) fn gave_up(&self) -> u64 {
        self.fleet
            .policies()
            .filter(|(_, policy)| policy.state().is_terminal())
            .count() as u64
    }

    fn drain(&mut self, cx: &mut Cx<'_>) {
        while let Some((shard, output)) = self.fleet.poll_output() {
            // Notes are for logs; the simulator reads the policy's counters.
            let Output::Action(action) = output else {
                continue;
            };
            let Some(recent) = self.socks.get_mut(shard as usize) else {
                continue;
            };
            match action {
                Action::Connect {
                    connection, url, ..
                } => {
                    let sock = cx.connect(shard, url != BASE_URL);
                    recent.push(connection, sock);
                }
                Action::Send {
                    connection,
                    command,
                } => {
                    let Some(sock) = recent.sock_of(connection) else {
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
                    if let Some(sock) = recent.sock_of(connection) {
                        cx.send(
                            sock,
                            ToServer::Close {
                                code: code.as_u16(),
                            },
                        );
                    }
                }
                Action::Abort { connection } => {
                    if let Some(sock) = recent.sock_of(connection) {
                        cx.send(sock, ToServer::Drop);
                    }
                }
                // The fleet's own limiter answers identify requests; a fleet
                // built with one never hands them out.
                Action::Identify { .. } => {}
                // The simulator's fleets share no probe with other
                // processes; only a fleet built to share one asks.
                Action::Probe(_) => {}
                // The policy has stopped; `gave_up` reports it.
                Action::GiveUp(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use reconnect_policy::SessionStartLimit;

    use super::*;
    use crate::client::{Action as Did, PeerShared};
    use crate::wire::SessionId;

    /// A fleet of `shards` in one identify bucket, started at 0.
    fn fleet(shards: u32) -> FleetClient {
        let limit = SessionStartLimit {
            max_concurrency: 1,
            ..SessionStartLimit::DISCORD_DEFAULT
        };
        let limiter = IdentifyLimiter::new(limit, Timestamp::ZERO);
        FleetClient::new(&PolicyConfig::default(), shards, 1, limiter, 0).unwrap()
    }

    /// Runs `f` with a context and returns what the client did.
    fn call(
        client: &mut FleetClient,
        next_sock: &mut u32,
        f: impl FnOnce(&mut FleetClient, &mut Cx<'_>),
    ) -> Vec<Did> {
        let mut peers = PeerShared::new(1, 1_000, 1_000, 86_400_000);
        let mut actions = Vec::new();
        let mut alloc = |_shard| {
            *next_sock += 1;
            SockId {
                index: *next_sock,
                generation: 0,
            }
        };
        let mut cx = Cx::new(&mut peers, &mut actions, &mut alloc);
        f(client, &mut cx);
        actions
    }

    #[test]
    fn the_fleet_dials_its_shards_one_identify_window_apart_and_identifies_on_hello() {
        let mut client = fleet(2);
        let mut socks = 0;
        // The fleet's first wake-up dials shard 0 alone: one bucket.
        let did = call(&mut client, &mut socks, |c, cx| c.wake(0, cx));
        let [
            Did::Connect {
                shard: 0,
                sock,
                to_resume_url: false,
            },
        ] = did[..]
        else {
            panic!("{did:?}");
        };
        let later = client.next_wake().expect("shard 1 waits for its slot");
        assert!(later >= 5_000, "{later}");
        // Shard 0's handshake: an Identify goes out on its socket.
        let did = call(&mut client, &mut socks, |c, cx| {
            c.on_message(50, 0, sock, ToClient::Opened, cx);
            c.on_message(
                60,
                0,
                sock,
                ToClient::Hello {
                    interval_ms: 41_250,
                },
                cx,
            );
        });
        assert!(
            did.contains(&Did::Send {
                sock,
                msg: ToServer::Identify
            }),
            "{did:?}"
        );
        // READY is handed to the bot.
        let session = SessionId(7);
        let ready = ToClient::Dispatch {
            session,
            seq: 1,
            kind: DispatchKind::Ready,
        };
        let did = call(&mut client, &mut socks, |c, cx| {
            c.on_message(100, 0, sock, ready, cx)
        });
        assert_eq!(did, [Did::Delivered { session, seq: 1 }]);
        assert!(client.fleet().policy(0).unwrap().state().is_connected());
        // At its slot shard 1 dials, on a socket of its own.
        let did = call(&mut client, &mut socks, |c, cx| c.wake(later, cx));
        assert!(
            matches!(did[..], [Did::Connect { shard: 1, sock: other, .. }] if other != sock),
            "{did:?}"
        );
        assert_eq!(client.gave_up(), 0);
    }

    #[test]
    fn a_socket_the_fleet_forgot_is_dropped_when_it_opens() {
        let mut client = fleet(1);
        let mut socks = 100;
        let unknown = SockId {
            index: 3,
            generation: 9,
        };
        let did = call(&mut client, &mut socks, |c, cx| {
            c.on_message(10, 0, unknown, ToClient::Opened, cx);
        });
        assert_eq!(
            did,
            [Did::Send {
                sock: unknown,
                msg: ToServer::Drop
            }]
        );
    }

    fn sock(index: u32) -> SockId {
        SockId {
            index,
            generation: 0,
        }
    }

    #[test]
    fn a_shard_remembers_its_last_four_connections() {
        let mut recent = Recent::default();
        for i in 0..6 {
            recent.push(ConnectionId(i), sock(i as u32 * 10));
        }
        assert_eq!(recent.sock_of(ConnectionId(0)), None);
        assert_eq!(recent.sock_of(ConnectionId(1)), None);
        for i in 2..6 {
            assert_eq!(recent.sock_of(ConnectionId(i)), Some(sock(i as u32 * 10)));
            assert_eq!(
                recent.connection_of(sock(i as u32 * 10)),
                Some(ConnectionId(i))
            );
        }
    }
}
