//! What lies between a bot process's `reconnect_policy::Fleet` and the
//! simulated sockets, shared by the one-process client
//! ([`FleetClient`](super::FleetClient)) and the processes sharing an
//! identify store ([`ProcessesClient`](super::ProcessesClient)): each
//! shard's table of its recent (connection, socket) pairs, the policy's
//! event for each message a socket brings, and the socket action for each
//! of the fleet's actions. Only translation lives here: no rule of the
//! policy, and nothing either client decides.

use reconnect_policy::{Action, Command, ConnectionId, Dispatch, Event, Fleet, Handled, Timestamp};

use super::Cx;
use crate::wire::{DispatchKind, SessionId, SockId, ToClient, ToServer};

/// The base URL the simulated gateway serves.
pub const BASE_URL: &str = "wss://gateway.discord.gg";
/// The resume URL the simulated gateway hands out in READY.
pub const RESUME_URL: &str = "wss://gateway-us-east1-b.discord.gg";

/// How many recent connections are remembered per shard, to tell the
/// policy about late messages on old sockets (it answers `Stale`).
const REMEMBERED: usize = 4;

/// One shard's recent (connection, socket) pairs, oldest first: the first
/// `len` of `socks`, the connection of `socks[i]` being `behind[i]`
/// connections before `newest`.
///
/// The policy numbers a shard's connections one after another, so the
/// pairs remembered are at most three apart and a one-byte distance names
/// each: 45 bytes a shard, where a full id per pair took 72. A pair that
/// would fall more than 255 connections behind the newest is forgotten
/// (a policy that skipped that many ids would have moved on from it).
///
/// Every socket action a shard takes reads its record, and the send it
/// makes then reads the shard's link: the engine keeps the record in the
/// same cache line as the link's hot part ([`Cx::recent`]), so that the
/// action reads one line for both. A message a shard receives does not
/// read the record: the socket carries its connection as its tag
/// ([`Cx::connect_tagged`]), which the record clears ([`Cx::untag`]) as it
/// forgets the socket.
#[derive(Clone, Copy, Debug)]
pub struct RecentSockets {
    /// The connection pushed last.
    newest: ConnectionId,
    socks: [SockId; REMEMBERED],
    /// How many connections before `newest` each pair's is.
    behind: [u8; REMEMBERED],
    len: u8,
}

impl Default for RecentSockets {
    fn default() -> Self {
        let none = SockId {
            index: 0,
            generation: 0,
        };
        Self {
            newest: ConnectionId(0),
            socks: [none; REMEMBERED],
            behind: [0; REMEMBERED],
            len: 0,
        }
    }
}

impl RecentSockets {
    /// How many pairs are held.
    fn held(&self) -> usize {
        usize::from(self.len).min(REMEMBERED)
    }

    /// The connection of pair `i`.
    fn connection(&self, i: usize) -> ConnectionId {
        ConnectionId(self.newest.0.wrapping_sub(u64::from(self.behind[i])))
    }

    /// Remembers a new pair, forgetting the oldest when full; hands each
    /// socket it forgets to `forget`.
    fn push(&mut self, conn: ConnectionId, sock: SockId, mut forget: impl FnMut(SockId)) {
        let ahead = conn.0.wrapping_sub(self.newest.0);
        // The pairs kept, oldest first, each now measured from `conn`.
        let mut kept = 0;
        let skip = (self.held() + 1).saturating_sub(REMEMBERED);
        for i in 0..skip.min(self.held()) {
            forget(self.socks[i]);
        }
        for i in skip..self.held() {
            let behind = u64::from(self.behind[i]).checked_add(ahead);
            if let Some(behind) = behind.and_then(|b| u8::try_from(b).ok()) {
                self.socks[kept] = self.socks[i];
                self.behind[kept] = behind;
                kept += 1;
            } else {
                forget(self.socks[i]);
            }
        }
        self.socks[kept] = sock;
        self.behind[kept] = 0;
        self.newest = conn;
        // At most `REMEMBERED` are held.
        self.len = u8::try_from(kept + 1).unwrap_or(u8::MAX);
    }

    /// The connection of `sock`, if remembered (what the tag on a socket
    /// remembered says, see [`ShardSockets::connection`]).
    #[cfg(test)]
    fn connection_of(&self, sock: SockId) -> Option<ConnectionId> {
        (0..self.held())
            .find(|&i| self.socks[i] == sock)
            .map(|i| self.connection(i))
    }

    /// The socket of connection `conn`, if remembered.
    pub(super) fn sock_of(&self, conn: ConnectionId) -> Option<SockId> {
        (0..self.held())
            .find(|&i| self.connection(i) == conn)
            .map(|i| self.socks[i])
    }
}

/// The sockets of a contiguous range of shards (one process's), whose
/// records of recent sockets the engine keeps ([`Cx::recent`]).
#[derive(Clone, Debug)]
pub(super) struct ShardSockets {
    /// The range's first shard.
    first: u32,
    /// How many shards the range has.
    shards: u32,
}

impl ShardSockets {
    /// No socket yet for shards `first..first + shards`.
    pub(super) const fn new(first: u32, shards: u32) -> Self {
        Self { first, shards }
    }

    /// How many shards the table covers.
    pub(super) const fn shards(&self) -> usize {
        self.shards as usize
    }

    /// Whether `shard` is in the range.
    const fn covers(&self, shard: u32) -> bool {
        match shard.checked_sub(self.first) {
            Some(i) => i < self.shards,
            None => false,
        }
    }

    /// The connection `msg` on `sock`, which carries `tag`, belongs to.
    /// Each socket the table remembers carries its connection as its tag
    /// (set as it opens, cleared as the table forgets it), so a message
    /// finds it in the socket's line rather than in the shard's record.
    /// `None` for a socket older than anything remembered (the policy moved
    /// on long ago); such a socket that has just opened is dropped.
    pub(super) fn connection(
        sock: SockId,
        tag: Option<u64>,
        msg: ToClient,
        cx: &mut Cx<'_>,
    ) -> Option<ConnectionId> {
        let conn = tag.map(ConnectionId);
        if conn.is_none() && msg == ToClient::Opened {
            cx.send(sock, ToServer::Drop);
        }
        conn
    }

    /// Carries out one of `shard`'s actions on its sockets. Actions that
    /// are not about sockets (identify and probe requests, giving up) are
    /// the caller's, and ignored here.
    pub(super) fn carry_out(&self, shard: u32, action: Action, cx: &mut Cx<'_>) {
        if !self.covers(shard) {
            return;
        }
        match action {
            Action::Connect {
                connection, url, ..
            } => {
                let Some(mut recent) = cx.recent(shard) else {
                    return;
                };
                let sock = cx.connect_tagged(shard, url != BASE_URL, connection.0);
                recent.push(connection, sock, |old| cx.untag(shard, old));
                cx.set_recent(shard, recent);
            }
            Action::Send {
                connection,
                command,
            } => {
                let Some(sock) = cx.sock_of(shard, connection) else {
                    return;
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
                if let Some(sock) = cx.sock_of(shard, connection) {
                    cx.send(
                        sock,
                        ToServer::Close {
                            code: code.as_u16(),
                        },
                    );
                }
            }
            Action::Abort { connection } => {
                if let Some(sock) = cx.sock_of(shard, connection) {
                    cx.send(sock, ToServer::Drop);
                }
            }
            Action::Identify { .. } | Action::Probe(_) | Action::GiveUp(_) => {}
        }
    }
}

/// Hands `msg`, which arrived at `now` on `shard`'s `sock` of connection
/// `conn`, to `fleet` as the policy's event; a dispatch the fleet accepts
/// is delivered to the bot, and a socket it no longer wants that has just
/// opened is dropped. The caller drains the fleet's outputs afterwards.
pub(super) fn hand_to_fleet(
    fleet: &mut Fleet,
    now: Timestamp,
    shard: u32,
    (conn, sock): (ConnectionId, SockId),
    msg: ToClient,
    cx: &mut Cx<'_>,
) {
    let (event, dispatch) = to_event(msg);
    match fleet.handle_event(now, shard, conn, event) {
        Ok(Handled::Accepted) => {
            if let Some((session, seq)) = dispatch {
                cx.delivered(session, seq);
            }
        }
        Ok(Handled::Stale) if msg == ToClient::Opened => cx.send(sock, ToServer::Drop),
        // A shard not in the fleet is ignored like any message the policy
        // does not take.
        Ok(Handled::Stale | Handled::Duplicate | Handled::Ignored) | Err(_) => {}
    }
}

/// The policy's event for a message, and the dispatch it hands the bot.
fn to_event(msg: ToClient) -> (Event, Option<(SessionId, u64)>) {
    match msg {
        ToClient::Opened => (Event::Opened, None),
        ToClient::ConnectFailed(refusal) => (
            Event::ConnectFailed {
                failure: refusal.into(),
            },
            None,
        ),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(index: u32) -> SockId {
        SockId {
            index,
            generation: 0,
        }
    }

    #[test]
    fn a_shard_remembers_its_last_four_connections_in_48_bytes() {
        assert_eq!(size_of::<RecentSockets>(), 48);
        let mut recent = RecentSockets::default();
        for i in 0..6 {
            recent.push(ConnectionId(i), sock(i as u32 * 10), |_| {});
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

    #[test]
    fn the_sockets_handed_to_forget_are_those_no_longer_remembered() {
        // Steps of one, jumps far ahead and back, as a tag on each socket
        // must follow: set as it is pushed, cleared as it is forgotten.
        let ids = [0, 1, 2, 3, 4, 200, 300, 301, 5, 6, 7, 8, 9, 1 << 40, 10];
        let mut recent = RecentSockets::default();
        let mut tagged: Vec<(SockId, ConnectionId)> = Vec::new();
        for (i, id) in ids.into_iter().enumerate() {
            let new = sock(i as u32);
            let mut forgotten = Vec::new();
            recent.push(ConnectionId(id), new, |old| forgotten.push(old));
            tagged.retain(|(s, _)| !forgotten.contains(s));
            tagged.push((new, ConnectionId(id)));
            for j in 0..=i {
                let s = sock(j as u32);
                let tag = tagged.iter().find(|(t, _)| *t == s).map(|(_, c)| *c);
                assert_eq!(recent.connection_of(s), tag, "after {id}, socket {j}");
            }
        }
    }

    #[test]
    fn ids_that_wrap_are_remembered_and_ones_far_behind_forgotten() {
        let mut recent = RecentSockets::default();
        let ids = [u64::MAX - 1, u64::MAX, 0, 1];
        for (i, id) in ids.into_iter().enumerate() {
            recent.push(ConnectionId(id), sock(i as u32), |_| {});
        }
        for (i, id) in ids.into_iter().enumerate() {
            assert_eq!(recent.sock_of(ConnectionId(id)), Some(sock(i as u32)));
            assert_eq!(recent.connection_of(sock(i as u32)), Some(ConnectionId(id)));
        }
        // A jump of 254: the newest two of the old pairs are still within
        // 255 of it, the oldest kept one (id 0, 255 behind) too, id MAX not.
        recent.push(ConnectionId(255), sock(9), |_| {});
        assert_eq!(recent.sock_of(ConnectionId(255)), Some(sock(9)));
        assert_eq!(recent.sock_of(ConnectionId(1)), Some(sock(3)));
        assert_eq!(recent.sock_of(ConnectionId(0)), Some(sock(2)));
        assert_eq!(recent.sock_of(ConnectionId(u64::MAX)), None);
        assert_eq!(recent.sock_of(ConnectionId(u64::MAX - 1)), None);
        // A connection far ahead forgets every older pair.
        recent.push(ConnectionId(1 << 40), sock(10), |_| {});
        assert_eq!(recent.sock_of(ConnectionId(255)), None);
        assert_eq!(recent.connection_of(sock(10)), Some(ConnectionId(1 << 40)));
    }
}
