//! The resumable session: what READY gave us, checked before it is kept.
//!
//! READY comes from the network, so its fields are untrusted: an empty or
//! oversized session id is refused (no session is kept, the next connection
//! identifies), and a resume URL that is oversized or not `ws://`/`wss://`
//! is dropped (the session resumes against the base URL).

use serde::{Deserialize, Serialize};

/// The longest session id kept from READY, in bytes.
pub const MAX_SESSION_ID_LEN: usize = 256;
/// The longest resume URL kept from READY, in bytes.
pub const MAX_RESUME_URL_LEN: usize = 2_048;

/// A session that can be resumed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Session {
    /// The session id from READY.
    pub id: String,
    /// `resume_gateway_url` from READY, if it was usable. Dropped after a
    /// failed dial, so a dead node is never dialled twice.
    pub resume_url: Option<String>,
}

impl Session {
    /// Checks READY's fields; `None` when the session id is unusable.
    #[must_use]
    pub fn from_ready(session_id: &str, resume_url: &str) -> Option<Self> {
        if session_id.is_empty() || session_id.len() > MAX_SESSION_ID_LEN {
            return None;
        }
        let url_ok = resume_url.len() <= MAX_RESUME_URL_LEN
            && (resume_url.starts_with("wss://") || resume_url.starts_with("ws://"))
            && !resume_url.chars().any(char::is_whitespace);
        Some(Self {
            id: session_id.to_owned(),
            resume_url: url_ok.then(|| resume_url.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_fields_are_checked() {
        assert!(Session::from_ready("", "wss://x").is_none());
        assert!(Session::from_ready(&"a".repeat(MAX_SESSION_ID_LEN + 1), "wss://x").is_none());
        let s = Session::from_ready("abc", "https://evil").unwrap();
        assert_eq!(s.resume_url, None);
        let s = Session::from_ready("abc", "wss://gateway-us-east1-b.discord.gg").unwrap();
        assert_eq!(
            s.resume_url.as_deref(),
            Some("wss://gateway-us-east1-b.discord.gg")
        );
        let long = format!("wss://{}", "a".repeat(MAX_RESUME_URL_LEN));
        assert_eq!(Session::from_ready("abc", &long).unwrap().resume_url, None);
    }
}
