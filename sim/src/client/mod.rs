//! The clients of the simulation: every shard of the run driven by one
//! `reconnect_policy::Fleet`, as a bot process would drive it, the shards
//! split over several processes sharing an identify store
//! ([`ProcessesClient`]), or one model of another library's behaviour per
//! shard.
//!
//! Both kinds implement the same contract: they see [`ToClient`] messages on
//! sockets and act through a [`Cx`] (open a socket, send on it, report a
//! delivered dispatch). Neither kind can see the server or the links, so a
//! client's behaviour depends only on what a real client could observe. A
//! client asks to be woken through a [`Timer`]: the fleet has one for all
//! its shards, a peer model one per shard.

mod fleet_client;
mod fleet_sockets;
mod peer;
mod processes;

pub use fleet_client::FleetClient;
pub use fleet_sockets::{BASE_URL, RESUME_URL, RecentSockets};
pub use peer::{
    Bugs, Close, CloseCodes, Delay, Fate, FirstHeartbeat, IdentifyHook, OnOpen, Pacing, PeerClient,
    PeerKind, PeerRules, PeerShared, Reaction, Reactions, Reset, Ticket, Wait, Zombie,
};
pub use processes::{ProcessFigures, ProcessesClient, ProcessesFigures};

use reconnect_policy::ConnectionId;

use crate::wire::{SessionId, SockId, ToClient, ToServer};

/// What a client asked for during one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A new socket; the engine has already given it its id.
    Connect {
        /// The shard it belongs to.
        shard: u32,
        /// The socket.
        sock: SockId,
        /// Whether the resume URL was dialled.
        to_resume_url: bool,
    },
    /// Something sent on a socket.
    Send {
        /// The socket.
        sock: SockId,
        /// What.
        msg: ToServer,
    },
    /// The client no longer keeps a number on the socket (see
    /// [`Cx::connect_tagged`]).
    Untag {
        /// The shard it belongs to.
        shard: u32,
        /// The socket.
        sock: SockId,
    },
    /// A dispatch handed to the bot's code.
    Delivered {
        /// Its session.
        session: SessionId,
        /// Its sequence number.
        seq: u64,
    },
}

/// Where the fleet's record of each shard's recent sockets is kept: the
/// engine keeps it beside the shard's link (the "client's half" of the
/// shard's record), so that a socket action and the send it makes read
/// one line; a plain list, indexed by shard, does too.
pub trait ShardRecords {
    /// `shard`'s record, if kept.
    fn recent_mut(&mut self, shard: u32) -> Option<&mut RecentSockets>;
}

impl ShardRecords for Vec<RecentSockets> {
    fn recent_mut(&mut self, shard: u32) -> Option<&mut RecentSockets> {
        self.get_mut(shard as usize)
    }
}

/// What a client may do, handed to it for the length of one call.
pub struct Cx<'a> {
    /// The bot's identify and start pacing (shared by every peer shard; the
    /// fleet keeps its own identify limiter).
    pub peers: &'a mut PeerShared,
    actions: &'a mut Vec<Action>,
    alloc: &'a mut dyn FnMut(u32, Option<u64>) -> SockId,
    records: &'a mut dyn ShardRecords,
}

impl<'a> Cx<'a> {
    /// A context that records actions into `actions`, takes a shard's
    /// socket ids from `alloc`, which opens a socket for a shard with the
    /// number the client keeps on it, if any, and keeps the fleet's
    /// records of recent sockets in `records`.
    pub fn new(
        peers: &'a mut PeerShared,
        actions: &'a mut Vec<Action>,
        alloc: &'a mut dyn FnMut(u32, Option<u64>) -> SockId,
        records: &'a mut dyn ShardRecords,
    ) -> Self {
        Self {
            peers,
            actions,
            alloc,
            records,
        }
    }

    /// A copy of `shard`'s record of recent sockets, if kept.
    pub fn recent(&mut self, shard: u32) -> Option<RecentSockets> {
        self.records.recent_mut(shard).copied()
    }

    /// The socket of `shard`'s connection `conn`, if its record of recent
    /// sockets remembers it: what a send on the connection needs, read in
    /// place rather than from a copy of the whole record.
    pub fn sock_of(&mut self, shard: u32, conn: ConnectionId) -> Option<SockId> {
        self.records.recent_mut(shard)?.sock_of(conn)
    }

    /// Keeps `recent` as `shard`'s record of recent sockets.
    pub fn set_recent(&mut self, shard: u32, recent: RecentSockets) {
        if let Some(r) = self.records.recent_mut(shard) {
            *r = recent;
        }
    }

    /// Opens a socket for `shard` (a peer model acts for its own shard, the
    /// fleet for any of its shards).
    pub fn connect(&mut self, shard: u32, to_resume_url: bool) -> SockId {
        self.open(shard, to_resume_url, None)
    }

    /// Opens a socket for `shard`, keeping `tag` on it: each message the
    /// socket brings comes with it (as epoll's user data), until the
    /// client [`untag`](Self::untag)s the socket.
    pub fn connect_tagged(&mut self, shard: u32, to_resume_url: bool, tag: u64) -> SockId {
        self.open(shard, to_resume_url, Some(tag))
    }

    fn open(&mut self, shard: u32, to_resume_url: bool, tag: Option<u64>) -> SockId {
        let sock = (self.alloc)(shard, tag);
        self.actions.push(Action::Connect {
            shard,
            sock,
            to_resume_url,
        });
        sock
    }

    /// The client no longer keeps a number on `sock`, one of `shard`'s:
    /// its messages come with none from now on.
    pub fn untag(&mut self, shard: u32, sock: SockId) {
        self.actions.push(Action::Untag { shard, sock });
    }

    /// Sends on a socket.
    pub fn send(&mut self, sock: SockId, msg: ToServer) {
        self.actions.push(Action::Send { sock, msg });
    }

    /// Reports a dispatch handed to the bot.
    pub fn delivered(&mut self, session: SessionId, seq: u64) {
        self.actions.push(Action::Delivered { session, seq });
    }
}

/// Whose wake-up a queued timer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// The fleet's: one for all its shards.
    Fleet,
    /// One peer-model shard's.
    Shard(u32),
}

/// The clients of a run, whichever kind.
#[derive(Debug)]
pub enum Clients {
    /// Every shard driven by one `reconnect_policy::Fleet`.
    Fleet(Box<FleetClient>),
    /// One model of another library per shard, indexed by shard id.
    Peers(Vec<PeerClient>),
    /// The shards split over processes sharing an identify store (one
    /// timer, [`Timer::Fleet`], for all of them).
    Processes(Box<ProcessesClient>),
}

impl Clients {
    /// The timer that wakes `shard`'s client.
    #[must_use]
    pub const fn timer_of(&self, shard: u32) -> Timer {
        match self {
            Self::Fleet(_) | Self::Processes(_) => Timer::Fleet,
            Self::Peers(_) => Timer::Shard(shard),
        }
    }

    /// Starts `shard`'s client at `now` (its first connection). The fleet
    /// started every shard when it was built, so it has nothing to do.
    pub fn start(&mut self, shard: u32, now: u64, cx: &mut Cx<'_>) {
        match self {
            Self::Fleet(_) | Self::Processes(_) => {}
            Self::Peers(peers) => {
                if let Some(c) = peers.get_mut(shard as usize) {
                    c.start(now, cx);
                }
            }
        }
    }

    /// A message arrived on `sock`, one of `shard`'s, which carries `tag`
    /// (see [`Cx::connect_tagged`]).
    pub fn on_message(
        &mut self,
        shard: u32,
        now: u64,
        (sock, tag): (SockId, Option<u64>),
        msg: ToClient,
        cx: &mut Cx<'_>,
    ) {
        match self {
            Self::Fleet(c) => c.on_message(now, shard, (sock, tag), msg, cx),
            Self::Processes(c) => c.on_message(now, shard, (sock, tag), msg, cx),
            Self::Peers(peers) => {
                if let Some(c) = peers.get_mut(shard as usize) {
                    c.on_message(now, sock, msg, cx);
                }
            }
        }
    }

    /// The time asked for by [`Clients::next_wake`] for `timer` has come.
    pub fn wake(&mut self, timer: Timer, now: u64, cx: &mut Cx<'_>) {
        match (self, timer) {
            (Self::Fleet(c), Timer::Fleet) => c.wake(now, cx),
            (Self::Processes(c), Timer::Fleet) => c.wake(now, cx),
            (Self::Peers(peers), Timer::Shard(shard)) => {
                if let Some(c) = peers.get_mut(shard as usize) {
                    c.wake(now, cx);
                }
            }
            _ => {}
        }
    }

    /// When `timer` next needs to fire. Asked after every message and
    /// wake-up: the fleet's answer (a field it keeps) is read inline, and
    /// the other clients' out of line, so that reading it does not pay
    /// for the frame their answers need.
    #[must_use]
    #[inline]
    pub fn next_wake(&self, timer: Timer) -> Option<u64> {
        match (self, timer) {
            (Self::Fleet(c), Timer::Fleet) => c.next_wake(),
            _ => self.others_next_wake(timer),
        }
    }

    /// [`Clients::next_wake`] for every client but the fleet.
    #[inline(never)]
    fn others_next_wake(&self, timer: Timer) -> Option<u64> {
        match (self, timer) {
            (Self::Processes(c), Timer::Fleet) => c.next_wake(),
            (Self::Peers(peers), Timer::Shard(shard)) => {
                peers.get(shard as usize).and_then(PeerClient::next_wake)
            }
            _ => None,
        }
    }

    /// How many shards have stopped for good.
    #[must_use]
    pub fn gave_up(&self) -> u64 {
        match self {
            Self::Fleet(c) => c.gave_up(),
            Self::Processes(c) => c.gave_up(),
            Self::Peers(peers) => peers.iter().filter(|c| c.gave_up()).count() as u64,
        }
    }
}
