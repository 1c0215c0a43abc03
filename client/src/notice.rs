//! What the client did and why, as it happens: for health checks, logs and
//! tests.
//!
//! Every [`Notice`] mirrors a policy output the driver carried out or an
//! input it fed to the policy, with the time on the client's
//! [`Clock`](crate::Clock). Nothing here is needed to use the client; the
//! same facts are also logged through `tracing`.

use reconnect_policy::{
    Command, ConnectFailure, ConnectionId, GiveUpReason, Note, Recovery, Timestamp,
};

/// One thing the client did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A dial started (the policy's `Connect`).
    Connecting {
        /// The connection.
        connection: ConnectionId,
        /// The URL, without the query string the client adds.
        url: String,
        /// Whether the connection will resume or identify.
        recovery: Recovery,
        /// When.
        at: Timestamp,
    },
    /// The WebSocket is open.
    Opened {
        /// The connection.
        connection: ConnectionId,
        /// When.
        at: Timestamp,
    },
    /// The dial failed.
    ConnectFailed {
        /// The connection.
        connection: ConnectionId,
        /// How, as reported to the policy.
        failure: ConnectFailure,
        /// When.
        at: Timestamp,
    },
    /// A command went into the socket's send queue. It carries no token.
    Sent {
        /// The connection.
        connection: ConnectionId,
        /// The command, as the policy asked for it.
        command: Command,
        /// When.
        at: Timestamp,
    },
    /// One of the bot's own commands (presence, voice state, member
    /// request, raw) went into the socket's send queue, within the
    /// policy's send budget.
    CommandSent {
        /// The connection.
        connection: ConnectionId,
        /// The command's opcode.
        op: u8,
        /// When.
        at: Timestamp,
    },
    /// A close frame was queued (the policy's `Close`).
    Closing {
        /// The connection.
        connection: ConnectionId,
        /// The code sent.
        code: u16,
        /// When.
        at: Timestamp,
    },
    /// The socket is closed and dropped; reported to the policy.
    Closed {
        /// The connection.
        connection: ConnectionId,
        /// The code of the close frame received, if any.
        code: Option<u16>,
        /// When.
        at: Timestamp,
    },
    /// The transport was dropped without a close handshake (the policy's
    /// `Abort`).
    Aborted {
        /// The connection.
        connection: ConnectionId,
        /// When.
        at: Timestamp,
    },
    /// Something the policy noted, as the policy put it (its
    /// [`Note`]): a reconnect planned ([`Note::Planned`]), an identify loop
    /// ([`Note::IdentifyLoop`], which the client also logs at `error`
    /// level: the token or the server needs a person), a READY resume URL
    /// refused ([`Note::ResumeUrlRefused`]), or a note this version of the
    /// client does not know yet. Its timestamps are on the client's
    /// [`Clock`](crate::Clock), the clock the policy is driven by.
    Note(Note),
    /// The policy gave up; the client stops.
    GaveUp(GiveUpReason),
    /// The client stopped after a shutdown.
    Stopped,
}
