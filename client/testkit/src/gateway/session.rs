//! One session on the loopback gateway: its event log (for replays), the
//! sockets attached to it, and whether it can still be resumed.

use std::collections::VecDeque;
use std::sync::Arc;

use reconnect_policy::Timestamp;
use serde_json::json;
use tokio::sync::watch;

use super::stats::SessionRecord;

/// Why a replay cannot start where the client asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReplayError {
    /// The client names a sequence the session never reached.
    Ahead,
    /// The events after it are no longer kept.
    TooOld,
}

/// A session.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) id: String,
    /// `(seq, frame)`, oldest first.
    log: VecDeque<(u64, Arc<str>)>,
    max_log: usize,
    last_seq: u64,
    pub(super) invalid: bool,
    sockets: u64,
    max_sockets: u64,
    /// The socket events go to (the last one attached).
    owner: Option<u64>,
    detached_since: Option<Timestamp>,
    seq_tx: watch::Sender<u64>,
}

impl Session {
    /// A new session, with READY as its first event.
    pub(super) fn new(id: String, ready: &serde_json::Value, max_log: usize) -> Self {
        let mut session = Self {
            id,
            log: VecDeque::new(),
            max_log: max_log.max(1),
            last_seq: 0,
            invalid: false,
            sockets: 0,
            max_sockets: 0,
            owner: None,
            detached_since: None,
            seq_tx: watch::channel(0).0,
        };
        session.push("READY", ready);
        session
    }

    /// Appends a dispatch; returns its sequence number.
    pub(super) fn push(&mut self, name: &str, data: &serde_json::Value) -> u64 {
        self.last_seq = self.last_seq.saturating_add(1);
        let frame = json!({"op": 0, "s": self.last_seq, "t": name, "d": data}).to_string();
        self.log.push_back((self.last_seq, frame.into()));
        while self.log.len() > self.max_log {
            self.log.pop_front();
        }
        self.seq_tx.send_replace(self.last_seq);
        self.last_seq
    }

    pub(super) const fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The frames after `seq`, for a replay.
    pub(super) fn frames_after(&self, seq: u64) -> Result<Vec<Arc<str>>, ReplayError> {
        if seq > self.last_seq {
            return Err(ReplayError::Ahead);
        }
        let first_kept = self.log.front().map_or(self.last_seq + 1, |(s, _)| *s);
        if seq.saturating_add(1) < first_kept {
            return Err(ReplayError::TooOld);
        }
        Ok(self.frames_from(seq.saturating_add(1)))
    }

    /// Attaches socket `conn`, which becomes the one events go to.
    pub(super) fn attach(&mut self, conn: u64) -> watch::Receiver<u64> {
        self.sockets += 1;
        self.max_sockets = self.max_sockets.max(self.sockets);
        self.owner = Some(conn);
        self.detached_since = None;
        self.seq_tx.subscribe()
    }

    /// Socket `conn` is gone.
    pub(super) fn detach(&mut self, conn: u64, now: Timestamp) {
        self.sockets = self.sockets.saturating_sub(1);
        if self.owner == Some(conn) {
            self.owner = None;
        }
        if self.sockets == 0 {
            self.detached_since = Some(now);
        }
    }

    /// Whether `conn` is the socket events go to.
    pub(super) fn is_owner(&self, conn: u64) -> bool {
        self.owner == Some(conn)
    }

    /// Whether the session can be resumed (and keeps generating events).
    pub(super) fn alive(&self, now: Timestamp, timeout_ms: u64) -> bool {
        !self.invalid
            && self
                .detached_since
                .is_none_or(|since| now.saturating_since(since) < timeout_ms)
    }

    /// The frames from `from` to the last one (live streaming). The log
    /// holds consecutive sequence numbers, so `from` is found by offset.
    pub(super) fn frames_from(&self, from: u64) -> Vec<Arc<str>> {
        let first = self.log.front().map_or(u64::MAX, |(s, _)| *s);
        let skip = usize::try_from(from.saturating_sub(first)).unwrap_or(usize::MAX);
        self.log
            .iter()
            .skip(skip)
            .map(|(_, f)| Arc::clone(f))
            .collect()
    }

    pub(super) const fn max_sockets(&self) -> u64 {
        self.max_sockets
    }

    pub(super) fn record(&self) -> SessionRecord {
        SessionRecord {
            id: self.id.clone(),
            last_seq: self.last_seq,
            invalid: self.invalid,
            max_sockets: self.max_sockets,
            sockets: self.sockets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_start_after_the_named_sequence() {
        let mut s = Session::new("a".into(), &json!({}), 3);
        for _ in 0..4 {
            s.push("X", &json!({}));
        }
        // Kept: 3, 4, 5.
        assert_eq!(s.last_seq(), 5);
        assert_eq!(s.frames_after(3).unwrap().len(), 2);
        assert_eq!(s.frames_after(2).unwrap().len(), 3);
        assert_eq!(s.frames_after(1), Err(ReplayError::TooOld));
        assert_eq!(s.frames_after(6), Err(ReplayError::Ahead));
        assert!(s.frames_after(5).unwrap().is_empty());
        assert_eq!(s.frames_from(4).len(), 2);
        assert_eq!(s.frames_from(1).len(), 3);
        assert!(s.frames_from(9).is_empty());
    }

    #[test]
    fn sockets_are_counted_and_sessions_expire_when_alone() {
        let mut s = Session::new("a".into(), &json!({}), 10);
        let _rx = s.attach(1);
        let _rx2 = s.attach(2);
        assert_eq!(s.max_sockets(), 2);
        assert!(s.is_owner(2));
        s.detach(1, Timestamp::from_millis(10));
        assert!(s.alive(Timestamp::from_millis(1_000_000), 100));
        s.detach(2, Timestamp::from_millis(20));
        assert!(s.alive(Timestamp::from_millis(119), 100));
        assert!(!s.alive(Timestamp::from_millis(120), 100));
    }
}
