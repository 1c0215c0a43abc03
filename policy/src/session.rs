//! The resumable session: what READY gave us, checked before it is kept,
//! and the sequence numbers received on it.
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

/// The last sequence number received on the session, and whether a new one
/// is new: numbers only move forward, and a repeat is a duplicate. A READY
/// taken as a new session restarts the count with its own number.
///
/// Kept as the number and a flag, packed (9 bytes, aligned to 1, where an
/// `Option<u64>` takes 16 aligned to 8: every `u64` is a valid number, so
/// none can stand for "none yet"; the policy's other small fields fill
/// the rest of its word).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, packed)]
pub(crate) struct Sequence {
    /// The last number received (0 before any).
    last: u64,
    /// Whether a number was received.
    known: bool,
}

impl Sequence {
    /// The last number received, `None` before any.
    pub(crate) const fn last(self) -> Option<u64> {
        if self.known { Some(self.last) } else { None }
    }

    /// Sets the last number received.
    const fn set(&mut self, seq: Option<u64>) {
        match seq {
            Some(seq) => {
                self.last = seq;
                self.known = true;
            }
            None => {
                self.last = 0;
                self.known = false;
            }
        }
    }

    /// Forgets the count: a new session starts.
    pub(crate) const fn clear(&mut self) {
        self.set(None);
    }

    /// Takes a dispatch's `seq`; returns whether the dispatch is new (to be
    /// delivered). `new_session`: the dispatch is a READY that starts a new
    /// session, which restarts the count at its number whatever came before.
    pub(crate) const fn take(&mut self, seq: Option<u64>, new_session: bool) -> bool {
        match (seq, self.last()) {
            _ if new_session => {
                self.set(seq);
                true
            }
            (Some(s), Some(last)) if s <= last => false,
            (Some(s), _) => {
                self.set(Some(s));
                true
            }
            (None, _) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_only_move_forward_until_a_new_session() {
        let mut seq = Sequence::default();
        assert!(seq.take(Some(5), false));
        assert!(!seq.take(Some(5), false), "a repeat");
        assert!(!seq.take(Some(3), false), "an old one");
        assert!(
            seq.take(None, false),
            "no number: delivered, count unchanged"
        );
        assert_eq!(seq.last(), Some(5));
        assert!(seq.take(Some(1), true), "READY restarts the count");
        assert_eq!(seq.last(), Some(1));
        seq.clear();
        assert_eq!(seq.last(), None);
        // The largest number is a number like any other.
        assert!(seq.take(Some(u64::MAX), false));
        assert_eq!(seq.last(), Some(u64::MAX));
        assert!(!seq.take(Some(u64::MAX), false));
        assert!(size_of::<Sequence>() <= 9);
    }

    #[test]
    fn session_ids_are_checked() {
        assert!(Session::from_ready("", None).is_none());
        assert!(Session::from_ready(&"a".repeat(MAX_SESSION_ID_LEN + 1), None).is_none());
        let s = Session::from_ready("abc", Some("wss://r.discord.gg".into())).unwrap();
        assert_eq!(s.resume_url.as_deref(), Some("wss://r.discord.gg"));
    }
}
