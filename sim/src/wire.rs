//! The messages that cross a simulated link, and the ids that name sockets
//! and sessions.
//!
//! A real gateway speaks JSON over WebSocket over TCP; the simulator keeps
//! only what reconnect behaviour depends on. [`ToClient`] is everything a
//! client can observe about a socket (including the transport's verdicts:
//! opened, failed, closed); [`ToServer`] is everything a client can do to
//! one. Both sides of the simulation, the policy-driven clients and the peer
//! models, see exactly these messages.

use reconnect_policy::ConnectFailure;

/// A socket: a slot in the socket table and the slot's generation, so a
/// message for a socket that is gone never reaches the slot's next socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SockId {
    /// The slot.
    pub index: u32,
    /// How many sockets used the slot before this one.
    pub generation: u32,
}

/// A gateway session, unique over one run (the server's session table index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u32);

impl SessionId {
    /// The id's text form, as READY carries it.
    #[must_use]
    pub fn to_wire(self) -> String {
        format!("s{}", self.0)
    }

    /// Reads the text form back (any other text names no session).
    #[must_use]
    pub fn from_wire(text: &str) -> Option<Self> {
        text.strip_prefix('s')?.parse().ok().map(Self)
    }
}

/// What a client sees on a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToClient {
    /// The WebSocket handshake completed.
    Opened,
    /// The attempt failed before the WebSocket opened.
    ConnectFailed(Refusal),
    /// op 10.
    Hello {
        /// The heartbeat interval, ms.
        interval_ms: u64,
    },
    /// op 0.
    Dispatch {
        /// The session the event belongs to.
        session: SessionId,
        /// `s`.
        seq: u64,
        /// What it is.
        kind: DispatchKind,
    },
    /// op 11.
    HeartbeatAck,
    /// op 1 from the server.
    HeartbeatRequest,
    /// op 7.
    Reconnect,
    /// op 9.
    InvalidSession {
        /// `d`.
        resumable: bool,
    },
    /// The socket closed (a close frame's code, or none for a dropped
    /// connection).
    Closed {
        /// The code.
        code: Option<u16>,
    },
}

/// Why a handshake failed, as the simulated link and gateway can say it:
/// the two of the policy's [`ConnectFailure`]s the simulation produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The link or the gateway refused the connection.
    Refused,
    /// HTTP 429 with this `Retry-After`, in ms.
    RateLimited {
        /// The wait asked for, ms.
        retry_after_ms: u64,
    },
}

impl From<Refusal> for ConnectFailure {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Refused => Self::Refused,
            Refusal::RateLimited { retry_after_ms } => Self::RateLimited { retry_after_ms },
        }
    }
}

/// The dispatches reconnect behaviour cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispatchKind {
    /// READY.
    Ready,
    /// RESUMED.
    Resumed,
    /// Any other event.
    Other,
}

/// What a client does on a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToServer {
    /// The TCP SYN and WebSocket upgrade of a new socket.
    Connect {
        /// Whether the client dialled the resume URL.
        to_resume_url: bool,
    },
    /// op 2.
    Identify,
    /// op 6.
    Resume {
        /// The session named (`None`: text that names no session).
        session: Option<SessionId>,
        /// `seq`.
        seq: u64,
    },
    /// op 1.
    Heartbeat,
    /// A close frame with this code.
    Close {
        /// The code.
        code: u16,
    },
    /// The client dropped the transport without a close frame.
    Drop,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_round_trip() {
        assert_eq!(
            SessionId::from_wire(&SessionId(42).to_wire()),
            Some(SessionId(42))
        );
        assert_eq!(SessionId::from_wire("x42"), None);
        assert_eq!(SessionId::from_wire("s"), None);
    }
}
