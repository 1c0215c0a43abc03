//! A session saved to outlive the process: what a bot stores across a
//! restart to resume instead of identifying again.
//!
//! A [`SavedSession`] is the session id, the resume URL and the last
//! sequence number received, as a plain serde value (never the token: the
//! policy never sees it). A policy hands one out
//! ([`Policy::saved_session`]) and starts from one
//! ([`Policy::resuming`], [`Fleet::resuming`](crate::Fleet::resuming)).
//! To keep the session alive on the gateway the process stops with
//! [`Policy::shutdown_keeping_session`], which closes with a resumable code
//! (4000) or drops the socket: a close with 1000 or 1001 ends the session.
//!
//! A saved session comes from storage the policy does not control, so it
//! is checked as READY is: an empty or oversized session id is not used
//! (the shard identifies), and a resume URL outside the allowed domains
//! ([`check_resume_url`](crate::check_resume_url)) is refused with
//! [`Note::ResumeUrlRefused`](crate::Note::ResumeUrlRefused), so the
//! token is never sent there. When the gateway no longer knows the
//! session (op 9 not resumable, 4007, 4009), the ordinary rules drop it and
//! the shard identifies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::PolicyConfig;
use crate::gateway_url::{GatewayUrl, UrlError};
use crate::policy::Policy;
use crate::session::Session;

/// A resumable session, saved to start a later process from.
///
/// Serialized as `{"session_id": ..., "resume_url": ..., "seq": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SavedSession {
    /// The session id from READY.
    pub session_id: String,
    /// The resume URL from READY, or `None` when it was dropped (the
    /// resume then goes to the configured gateway URL).
    pub resume_url: Option<String>,
    /// The last sequence number received on the session; the resume asks
    /// the gateway to replay everything after it (`None`: from 0).
    pub seq: Option<u64>,
}

/// The saved sessions of many shards, by shard id (a [`Fleet`](crate::Fleet)'s,
/// or a runner's). Serializes as a map from shard id to [`SavedSession`].
pub type SavedSessions = BTreeMap<u32, SavedSession>;

/// Why a saved session was not used.
pub(crate) enum Unusable {
    /// The session id is empty or too long.
    BadId,
    /// The resume URL is not one the token may be sent to.
    Url(UrlError),
}

impl SavedSession {
    /// The session to resume, checked against `config` (whose gateway URL
    /// is `base`, already parsed) as READY's would be.
    pub(crate) fn check(
        &self,
        base: &GatewayUrl,
        config: &PolicyConfig,
    ) -> Result<Session, Unusable> {
        if let Some(url) = &self.resume_url {
            base.check_resume(url, &config.resume_domains)
                .map_err(Unusable::Url)?;
        }
        Session::from_ready(&self.session_id, self.resume_url.clone()).ok_or(Unusable::BadId)
    }
}

impl Policy {
    /// The session as it stands, to save and resume in a later process
    /// ([`Policy::resuming`]); `None` when there is none (not yet READY,
    /// or the session was dropped). Read it once the policy has stopped
    /// after [`Policy::shutdown_keeping_session`]: dispatches that arrive
    /// while the socket closes still move the sequence number.
    #[must_use]
    pub fn saved_session(&self) -> Option<SavedSession> {
        self.session().map(|session| SavedSession {
            session_id: session.id.clone(),
            resume_url: session.resume_url.clone(),
            seq: self.last_seq(),
        })
    }
}
