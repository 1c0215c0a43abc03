//! The resumable session: what READY gave us, checked before it is kept.
//!
//! READY comes from the network, so its fields are untrusted: an empty or
//! oversized session id is refused (no session is kept, the next connection
//! identifies). The resume URL is checked by the policy against the base URL
//! and the allowed domains ([`check_resume_url`](crate::check_resume_url))
//! before a session is built from it.

use serde::{Deserialize, Serialize};

/// The longest session id kept from READY, in bytes.
pub const MAX_SESSION_ID_LEN: usize = 256;
/// A session that can be resumed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Session {
    /// The session id from READY.
    pub id: String,
    /// `resume_gateway_url` from READY, once checked. Dropped after a
    /// failed dial, so a dead node is never dialled twice.
    pub resume_url: Option<String>,
}

impl Session {
    /// A session from READY's id and an already checked resume URL; `None`
    /// when the id is empty or longer than [`MAX_SESSION_ID_LEN`].
    #[must_use]
    pub fn from_ready(session_id: &str, resume_url: Option<String>) -> Option<Self> {
        if session_id.is_empty() || session_id.len() > MAX_SESSION_ID_LEN {
            return None;
        }
        Some(Self {
            id: session_id.to_owned(),
            resume_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_checked() {
        assert!(Session::from_ready("", None).is_none());
        assert!(Session::from_ready(&"a".repeat(MAX_SESSION_ID_LEN + 1), None).is_none());
        let s = Session::from_ready("abc", Some("wss://r.discord.gg".into())).unwrap();
        assert_eq!(s.resume_url.as_deref(), Some("wss://r.discord.gg"));
    }
}
