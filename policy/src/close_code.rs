//! WebSocket and gateway close codes, and what each one means for the session.
//!
//! The classification follows the Discord developer documentation
//! ("Gateway Close Event Codes" and "Initiating a Disconnect"). It is the
//! first half of [`decide`](crate::decide): a close code sorts into
//! [`CloseAction::GiveUp`], [`CloseAction::Reidentify`] or
//! [`CloseAction::Resume`]; the decision then looks at whether a session
//! exists.

use core::fmt;

use serde::{Deserialize, Serialize};

/// A close code received from the gateway or reported by the transport.
///
/// Known codes have their own variant; anything else is kept verbatim in
/// [`CloseCode::Other`] and gets the documented safe default (see
/// [`CloseCode::action`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "u16", into = "u16")]
#[non_exhaustive]
pub enum CloseCode {
    /// 1000: normal closure. Sent by the client it ends the session; sent by
    /// the server it is common during restarts and the session can resume.
    Normal,
    /// 1001: going away (server shutting down, or a client navigating away).
    GoingAway,
    /// 1005: a close frame with no status code.
    NoStatus,
    /// 1006: the connection dropped without a close frame.
    Abnormal,
    /// 1011: the server met an unexpected condition.
    InternalError,
    /// 1012: the server is restarting.
    ServiceRestart,
    /// 1013: try again later (server overloaded).
    TryAgainLater,
    /// 1015: the TLS handshake failed.
    TlsHandshake,
    /// 4000: unknown error; reconnect.
    UnknownError,
    /// 4001: the client sent an invalid opcode.
    UnknownOpcode,
    /// 4002: the client sent an invalid payload (or one over 4096 bytes).
    DecodeError,
    /// 4003: a payload was sent before Identify, or the session was invalidated.
    NotAuthenticated,
    /// 4004: the token is invalid. Fatal.
    AuthenticationFailed,
    /// 4005: more than one Identify was sent.
    AlreadyAuthenticated,
    /// 4007: Resume carried an invalid sequence number; start a new session.
    InvalidSeq,
    /// 4008: the client sent commands too fast.
    RateLimited,
    /// 4009: the session timed out; start a new session.
    SessionTimedOut,
    /// 4010: invalid shard in Identify. Fatal.
    InvalidShard,
    /// 4011: the bot must shard. Fatal.
    ShardingRequired,
    /// 4012: invalid gateway API version. Fatal.
    InvalidApiVersion,
    /// 4013: invalid intents. Fatal.
    InvalidIntents,
    /// 4014: intents that the bot is not allowed to use. Fatal.
    DisallowedIntents,
    /// Any other code, kept verbatim.
    Other(u16),
}

/// What a close code means for the connection and its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CloseAction {
    /// Reconnect and resume the session if one exists (identify otherwise).
    Resume,
    /// The session is gone: reconnect to the base URL and identify at once,
    /// without wasting a round trip on a Resume that must fail.
    Reidentify,
    /// Never reconnect: the problem is in the bot's configuration.
    GiveUp,
}

impl CloseCode {
    /// The code this close reason has on the wire.
    #[must_use]
    pub const fn as_u16(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::GoingAway => 1001,
            Self::NoStatus => 1005,
            Self::Abnormal => 1006,
            Self::InternalError => 1011,
            Self::ServiceRestart => 1012,
            Self::TryAgainLater => 1013,
            Self::TlsHandshake => 1015,
            Self::UnknownError => 4000,
            Self::UnknownOpcode => 4001,
            Self::DecodeError => 4002,
            Self::NotAuthenticated => 4003,
            Self::AuthenticationFailed => 4004,
            Self::AlreadyAuthenticated => 4005,
            Self::InvalidSeq => 4007,
            Self::RateLimited => 4008,
            Self::SessionTimedOut => 4009,
            Self::InvalidShard => 4010,
            Self::ShardingRequired => 4011,
            Self::InvalidApiVersion => 4012,
            Self::InvalidIntents => 4013,
            Self::DisallowedIntents => 4014,
            Self::Other(code) => code,
        }
    }

    /// The close code for a wire value. Never fails: unknown values become
    /// [`CloseCode::Other`].
    #[must_use]
    pub const fn from_u16(code: u16) -> Self {
        match code {
            1000 => Self::Normal,
            1001 => Self::GoingAway,
            1005 => Self::NoStatus,
            1006 => Self::Abnormal,
            1011 => Self::InternalError,
            1012 => Self::ServiceRestart,
            1013 => Self::TryAgainLater,
            1015 => Self::TlsHandshake,
            4000 => Self::UnknownError,
            4001 => Self::UnknownOpcode,
            4002 => Self::DecodeError,
            4003 => Self::NotAuthenticated,
            4004 => Self::AuthenticationFailed,
            4005 => Self::AlreadyAuthenticated,
            4007 => Self::InvalidSeq,
            4008 => Self::RateLimited,
            4009 => Self::SessionTimedOut,
            4010 => Self::InvalidShard,
            4011 => Self::ShardingRequired,
            4012 => Self::InvalidApiVersion,
            4013 => Self::InvalidIntents,
            4014 => Self::DisallowedIntents,
            other => Self::Other(other),
        }
    }

    /// What this code, received from the server or the transport, means.
    ///
    /// - 4004, 4010, 4011, 4012, 4013, 4014 → [`CloseAction::GiveUp`]: the
    ///   docs mark them "do not reconnect"; retrying cannot succeed.
    /// - 4003, 4007, 4009 → [`CloseAction::Reidentify`]: the docs say the
    ///   session is invalid ("reconnect and start a new session").
    /// - 4000, 4001, 4002, 4005, 4008, 1000, 1001, 1005, 1006, 1011, 1012,
    ///   1013, 1015 → [`CloseAction::Resume`]. A 1000 or 1001 *sent by the
    ///   server* does not end the session (only a client-sent one does).
    /// - **Any unknown code** → [`CloseAction::Resume`], the safe default:
    ///   treating an unknown code as fatal would strand a bot on a new,
    ///   harmless code, while resuming costs at most one Resume that the
    ///   gateway answers with op 9 if the session is gone. The reconnect is
    ///   still paced by the backoff, so an unknown code can never storm.
    #[must_use]
    pub const fn action(self) -> CloseAction {
        match self {
            Self::AuthenticationFailed
            | Self::InvalidShard
            | Self::ShardingRequired
            | Self::InvalidApiVersion
            | Self::InvalidIntents
            | Self::DisallowedIntents => CloseAction::GiveUp,
            Self::NotAuthenticated | Self::InvalidSeq | Self::SessionTimedOut => {
                CloseAction::Reidentify
            }
            Self::Normal
            | Self::GoingAway
            | Self::NoStatus
            | Self::Abnormal
            | Self::InternalError
            | Self::ServiceRestart
            | Self::TryAgainLater
            | Self::TlsHandshake
            | Self::UnknownError
            | Self::UnknownOpcode
            | Self::DecodeError
            | Self::AlreadyAuthenticated
            | Self::RateLimited
            | Self::Other(_) => CloseAction::Resume,
        }
    }

    /// Whether this code means "never reconnect".
    #[must_use]
    pub const fn is_fatal(self) -> bool {
        matches!(self.action(), CloseAction::GiveUp)
    }

    /// Whether this code, sent by the server, asks for a reconnect rather
    /// than reporting a failure: 1000 and 1001 (a server going away during
    /// a restart), 1012 (service restart) and 4000 (the docs' "try
    /// reconnecting"). After a connection that reached READY or RESUMED
    /// such a close is a request of the server, like op 7, and does not
    /// count as a failure (see [`ServerRequests`](crate::ServerRequests)).
    #[must_use]
    pub const fn asks_for_reconnect(self) -> bool {
        matches!(
            self,
            Self::Normal | Self::GoingAway | Self::ServiceRestart | Self::UnknownError
        )
    }

    /// Whether a *client* may close with this code and still resume.
    ///
    /// A client close with 1000 or 1001 invalidates the session; every other
    /// code keeps it alive for a few minutes.
    #[must_use]
    pub const fn keeps_session_when_sent_by_client(self) -> bool {
        !matches!(self, Self::Normal | Self::GoingAway)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self::from_u16(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.as_u16()
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Normal => "normal closure",
            Self::GoingAway => "going away",
            Self::NoStatus => "no status",
            Self::Abnormal => "abnormal closure",
            Self::InternalError => "internal error",
            Self::ServiceRestart => "service restart",
            Self::TryAgainLater => "try again later",
            Self::TlsHandshake => "TLS handshake failure",
            Self::UnknownError => "unknown error",
            Self::UnknownOpcode => "unknown opcode",
            Self::DecodeError => "decode error",
            Self::NotAuthenticated => "not authenticated",
            Self::AuthenticationFailed => "authentication failed",
            Self::AlreadyAuthenticated => "already authenticated",
            Self::InvalidSeq => "invalid seq",
            Self::RateLimited => "rate limited",
            Self::SessionTimedOut => "session timed out",
            Self::InvalidShard => "invalid shard",
            Self::ShardingRequired => "sharding required",
            Self::InvalidApiVersion => "invalid API version",
            Self::InvalidIntents => "invalid intents",
            Self::DisallowedIntents => "disallowed intents",
            Self::Other(_) => "unrecognised code",
        };
        write!(f, "{} ({name})", self.as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wire_value_round_trips() {
        for code in 0..=u16::MAX {
            assert_eq!(CloseCode::from_u16(code).as_u16(), code);
        }
    }

    #[test]
    fn classification_matches_the_gateway_documentation() {
        for code in [4004, 4010, 4011, 4012, 4013, 4014] {
            assert_eq!(
                CloseCode::from(code).action(),
                CloseAction::GiveUp,
                "{code}"
            );
        }
        for code in [4003, 4007, 4009] {
            assert_eq!(
                CloseCode::from(code).action(),
                CloseAction::Reidentify,
                "{code}"
            );
        }
        for code in [
            4000, 4001, 4002, 4005, 4008, 1000, 1001, 1005, 1006, 1011, 1012, 1013, 1015,
        ] {
            assert_eq!(
                CloseCode::from(code).action(),
                CloseAction::Resume,
                "{code}"
            );
        }
    }

    #[test]
    fn unknown_codes_resume_and_are_never_fatal() {
        for code in [0, 999, 1002, 3000, 4006, 4015, 4200, 4900, 4999, 65535] {
            let close = CloseCode::from(code);
            assert_eq!(close, CloseCode::Other(code));
            assert_eq!(close.action(), CloseAction::Resume, "{code}");
            assert!(!close.is_fatal());
        }
    }

    #[test]
    fn only_1000_and_1001_end_the_session_when_the_client_sends_them() {
        assert!(!CloseCode::Normal.keeps_session_when_sent_by_client());
        assert!(!CloseCode::GoingAway.keeps_session_when_sent_by_client());
        assert!(CloseCode::UnknownError.keeps_session_when_sent_by_client());
    }

    #[test]
    fn display_names_the_code() {
        assert_eq!(
            CloseCode::AuthenticationFailed.to_string(),
            "4004 (authentication failed)"
        );
        assert_eq!(
            CloseCode::Other(4321).to_string(),
            "4321 (unrecognised code)"
        );
    }

    #[test]
    fn serializes_as_the_wire_number() {
        assert_eq!(
            serde_json::to_string(&CloseCode::InvalidSeq).unwrap(),
            "4007"
        );
        let code: CloseCode = serde_json::from_str("4014").unwrap();
        assert_eq!(code, CloseCode::DisallowedIntents);
    }
}
