//! The clients of the simulation: shards driven by the policy crate itself,
//! and models of other libraries' behaviour.
//!
//! Both kinds implement the same contract: they see [`ToClient`] messages on
//! sockets and act through a [`Cx`] (open a socket, send on it, report a
//! delivered dispatch). Neither kind can see the server or the links, so a
//! client's behaviour depends only on what a real client could observe.

mod peer;
mod policy_client;

use reconnect_policy::IdentifyLimiter;

pub use peer::{
    Bugs, Close, CloseCodes, Delay, Fate, FirstHeartbeat, IdentifyHook, OnOpen, Pacing, PeerClient,
    PeerKind, PeerRules, PeerShared, Reaction, Reactions, Reset, Ticket, Wait, Zombie,
};
pub use policy_client::{BASE_URL, PolicyClient, RESUME_URL};

use crate::wire::{SessionId, SockId, ToClient, ToServer};

/// What a client asked for during one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A new socket; the engine has already given it its id.
    Connect {
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
    /// A dispatch handed to the bot's code.
    Delivered {
        /// Its session.
        session: SessionId,
        /// Its sequence number.
        seq: u64,
    },
}

/// What a client may do, handed to it for the length of one call.
pub struct Cx<'a> {
    /// The bot's identify limiter (shared by every policy-driven shard).
    pub limiter: &'a mut IdentifyLimiter,
    /// The bot's identify and start pacing (shared by every peer shard).
    pub peers: &'a mut PeerShared,
    actions: &'a mut Vec<Action>,
    alloc: &'a mut dyn FnMut() -> SockId,
}

impl<'a> Cx<'a> {
    /// A context that records actions into `actions` and takes socket ids
    /// from `alloc`.
    pub fn new(
        limiter: &'a mut IdentifyLimiter,
        peers: &'a mut PeerShared,
        actions: &'a mut Vec<Action>,
        alloc: &'a mut dyn FnMut() -> SockId,
    ) -> Self {
        Self {
            limiter,
            peers,
            actions,
            alloc,
        }
    }

    /// Opens a socket.
    pub fn connect(&mut self, to_resume_url: bool) -> SockId {
        let sock = (self.alloc)();
        self.actions.push(Action::Connect {
            sock,
            to_resume_url,
        });
        sock
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

/// A shard's client, whichever kind.
#[derive(Debug)]
pub enum Client {
    /// Driven by `reconnect_policy::Policy`.
    Policy(Box<PolicyClient>),
    /// A model of another library.
    Peer(Box<PeerClient>),
}

impl Client {
    /// Starts the client at `now` (its first connection).
    pub fn start(&mut self, now: u64, cx: &mut Cx<'_>) {
        match self {
            Self::Policy(c) => c.wake(now, cx),
            Self::Peer(c) => c.start(now, cx),
        }
    }

    /// A message arrived on `sock`.
    pub fn on_message(&mut self, now: u64, sock: SockId, msg: ToClient, cx: &mut Cx<'_>) {
        match self {
            Self::Policy(c) => c.on_message(now, sock, msg, cx),
            Self::Peer(c) => c.on_message(now, sock, msg, cx),
        }
    }

    /// The time asked for by [`Client::next_wake`] has come.
    pub fn wake(&mut self, now: u64, cx: &mut Cx<'_>) {
        match self {
            Self::Policy(c) => c.wake(now, cx),
            Self::Peer(c) => c.wake(now, cx),
        }
    }

    /// When the client next needs waking.
    #[must_use]
    pub fn next_wake(&self) -> Option<u64> {
        match self {
            Self::Policy(c) => c.next_wake(),
            Self::Peer(c) => c.next_wake(),
        }
    }

    /// Whether the client has stopped for good.
    #[must_use]
    pub fn gave_up(&self) -> bool {
        match self {
            Self::Policy(c) => c.gave_up(),
            Self::Peer(c) => c.gave_up(),
        }
    }
}
