//! The referee's own table of the Discord gateway rules it enforces.
//!
//! Written from the Discord developer documentation (Gateway, Opcodes and
//! Status Codes, Rate Limits), never from the policy
//! crate: the gateway model and the engine's judging code read close codes
//! through this table only, so a policy that misreads a code is caught by
//! the simulator instead of being agreed with. The test
//! `tests/rule_table.rs` prints every place where the policy's
//! classification differs from this table; where they differ, the docs
//! decide.
//!
//! Sources, by section of the docs:
//! - "Gateway Close Event Codes" (opcodes-and-status-codes): the 4000–4014
//!   codes, their "Reconnect" column and what the text says of the session.
//! - "Initiating a Disconnect" (gateway): a client close with 1000 or 1001
//!   invalidates the session; any other code, or a dropped connection,
//!   keeps it resumable for a few minutes.
//! - "Identifying", "Max Concurrency", "Session Start Limit Object": one
//!   Identify per bucket (`shard % max_concurrency`) per 5 s; a daily
//!   session start budget whose exhaustion terminates every session and
//!   resets the token.

/// How long one identify bucket stays closed after an Identify (GW "Max
/// Concurrency": "identify requests allowed per 5 seconds").
pub const IDENTIFY_WINDOW_MS: u64 = 5_000;

/// What a close code, sent by the gateway, means for the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionAfterClose {
    /// The session survives and may be resumed.
    Resumable,
    /// The session is gone: the client must start a new one.
    Ended,
    /// The docs do not say; the gateway model keeps the session (a Resume
    /// then costs at most one round trip and an op 9).
    Unspecified,
}

/// One row of the close code table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseRule {
    /// The code on the wire.
    pub code: u16,
    /// The docs' name for it.
    pub name: &'static str,
    /// The docs' "Reconnect" column: `false` means the client must not
    /// reconnect (the problem is in its configuration or token).
    pub reconnect: bool,
    /// What the code, sent by the gateway, means for the session.
    pub session: SessionAfterClose,
}

/// Every gateway close code the docs list ("Gateway Close Event Codes";
/// 4006 is no longer listed for the main gateway).
pub const CLOSE_CODES: [CloseRule; 14] = [
    rule(4000, "Unknown error", true, SessionAfterClose::Resumable),
    rule(4001, "Unknown opcode", true, SessionAfterClose::Resumable),
    rule(4002, "Decode error", true, SessionAfterClose::Resumable),
    rule(4003, "Not authenticated", true, SessionAfterClose::Ended),
    rule(
        4004,
        "Authentication failed",
        false,
        SessionAfterClose::Ended,
    ),
    rule(
        4005,
        "Already authenticated",
        true,
        SessionAfterClose::Unspecified,
    ),
    rule(4007, "Invalid seq", true, SessionAfterClose::Ended),
    rule(4008, "Rate limited", true, SessionAfterClose::Unspecified),
    rule(4009, "Session timed out", true, SessionAfterClose::Ended),
    rule(4010, "Invalid shard", false, SessionAfterClose::Ended),
    rule(4011, "Sharding required", false, SessionAfterClose::Ended),
    rule(4012, "Invalid API version", false, SessionAfterClose::Ended),
    rule(4013, "Invalid intent(s)", false, SessionAfterClose::Ended),
    rule(
        4014,
        "Disallowed intent(s)",
        false,
        SessionAfterClose::Ended,
    ),
];

const fn rule(
    code: u16,
    name: &'static str,
    reconnect: bool,
    session: SessionAfterClose,
) -> CloseRule {
    CloseRule {
        code,
        name,
        reconnect,
        session,
    }
}

/// The documented rule for a gateway close code, if the docs list it.
#[must_use]
pub fn close_rule(code: u16) -> Option<CloseRule> {
    CLOSE_CODES.iter().copied().find(|r| r.code == code)
}

/// Whether the docs tell a client never to reconnect after this close
/// code ("Reconnect: false"). Codes the docs do not list are not fatal.
#[must_use]
pub fn forbids_reconnect(code: u16) -> bool {
    close_rule(code).is_some_and(|r| !r.reconnect)
}

/// Whether the gateway ends the session when it closes a socket with this
/// code. Standard WebSocket codes (1000, 1001, 1011, …) sent by the server
/// keep the session: the docs end a session only for the codes they mark so.
#[must_use]
pub fn server_close_ends_session(code: u16) -> bool {
    close_rule(code).is_some_and(|r| r.session == SessionAfterClose::Ended)
}

/// Whether a close sent *by the client* with this code ends its session
/// ("Initiating a Disconnect": 1000 and 1001 invalidate it; any other code
/// keeps it resumable).
#[must_use]
pub const fn client_close_ends_session(code: u16) -> bool {
    matches!(code, 1000 | 1001)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_fatal_codes_are_exactly_4004_and_4010_to_4014() {
        let fatal: Vec<u16> = (0..=u16::MAX).filter(|&c| forbids_reconnect(c)).collect();
        assert_eq!(fatal, vec![4004, 4010, 4011, 4012, 4013, 4014]);
    }

    #[test]
    fn only_1000_and_1001_from_a_client_end_its_session() {
        let ending: Vec<u16> = (0..=u16::MAX)
            .filter(|&c| client_close_ends_session(c))
            .collect();
        assert_eq!(ending, vec![1000, 1001]);
    }

    #[test]
    fn server_codes_that_end_a_session_follow_the_docs_text() {
        for code in [4003, 4007, 4009, 4004, 4010, 4014] {
            assert!(server_close_ends_session(code), "{code}");
        }
        for code in [
            1000, 1001, 1006, 1011, 4000, 4001, 4002, 4005, 4008, 4006, 4015,
        ] {
            assert!(!server_close_ends_session(code), "{code}");
        }
    }
}
