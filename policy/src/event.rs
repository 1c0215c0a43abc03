//! What the driver tells the policy about one connection.
//!
//! Every [`Event`] is about the connection a
//! [`Action::Connect`](crate::Action::Connect) named; the driver passes
//! that [`ConnectionId`](crate::ConnectionId) back with it, and events
//! about any other connection are ignored (see
//! [`Handled::Stale`](crate::Handled::Stale)). Time passing is not an
//! event: it is [`Policy::handle_timeout`](crate::Policy::handle_timeout).

use serde::{Deserialize, Serialize};

use crate::decision::ConnectFailure;

/// What a dispatch (op 0) is, as far as reconnecting is concerned.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Dispatch {
    /// READY: a new session.
    Ready {
        /// `session_id`.
        session_id: String,
        /// `resume_gateway_url`.
        resume_gateway_url: String,
    },
    /// RESUMED: the missed events have been replayed.
    Resumed,
    /// Any other event, including names the policy has never heard of.
    Other,
}

/// Something that happened on a connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Event {
    /// The WebSocket handshake completed.
    Opened,
    /// The connection attempt failed before the WebSocket was open.
    ConnectFailed {
        /// How.
        failure: ConnectFailure,
    },
    /// op 10 Hello.
    Hello {
        /// `heartbeat_interval`, in ms.
        heartbeat_interval_ms: u64,
    },
    /// op 0 Dispatch.
    Dispatch {
        /// `s`, the sequence number (`None` if the frame had none).
        seq: Option<u64>,
        /// `t`, as far as the policy cares.
        event: Dispatch,
    },
    /// op 11 Heartbeat ACK.
    HeartbeatAck,
    /// op 1 Heartbeat request from the server.
    HeartbeatRequest,
    /// op 7 Reconnect.
    Reconnect,
    /// op 9 Invalid Session.
    InvalidSession {
        /// `d`: whether the session may be resumed.
        resumable: bool,
    },
    /// Any other inbound frame: an unknown opcode, or one the policy does
    /// not act on. It counts as a sign of life under
    /// [`ZombieRule::AnyFrame`](crate::ZombieRule::AnyFrame).
    OtherFrame,
    /// The socket is closed, by either side.
    Closed {
        /// The close code, if a close frame carried one. When the policy
        /// asked for the close, the code is the policy's own and is not
        /// classified again.
        code: Option<u16>,
    },
}
