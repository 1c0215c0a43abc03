//! The gateway server model, faithful to the rules clients are judged by.
//!
//! Every close code rule comes from the referee's own table
//! ([`crate::rules`]), written from the Discord docs; nothing here asks the
//! policy crate what a code means.
//!
//! - **Admission**: a token bucket of `admission_per_s` handshakes per
//!   second; beyond it, a handshake is refused or answered with 429 and
//!   Retry-After ([`Overload`](crate::scenario::Overload)).
//! - **Hello and heartbeats**: Hello right after the handshake; an ACK for
//!   every heartbeat; a socket that sends no heartbeat for
//!   `heartbeat_timeout_ms` is closed.
//! - **Identify**: one per bucket (`shard % max_concurrency`) per 5 s. An
//!   Identify inside the window is a violation, counted and answered with
//!   op 9 (not resumable) a few seconds later, as the gateway does. Each
//!   session start spends one of the daily allowance; running out
//!   terminates every session and invalidates the token (every later
//!   Identify or Resume is closed with 4004), as the gateway does.
//! - **Sessions**: READY with a session id (sequence 1); dispatches every
//!   `dispatch_interval_ms` while the session lives; a session outlives its
//!   socket for `resume_window_ms`. Resume with a valid sequence replays
//!   every missed event in order, then RESUMED; a sequence of 0 (`null`) or
//!   beyond the session's closes with 4007 and ends the session; an unknown
//!   or expired session gets op 9.
//! - **Closing**: a client close with 1000 or 1001 ends the session; any
//!   other close, or a dropped connection, keeps it resumable.

use reconnect_policy::ConnectFailure;

use crate::engine::{Ev, Sim};
use crate::metrics::SessionTally;
use crate::rules::{self, IDENTIFY_WINDOW_MS};
use crate::scenario::{FaultKind, Overload, Scenario};
use crate::wire::{DispatchKind, SessionId, SockId, ToClient, ToServer};

/// How long after op 7 the gateway closes the socket itself.
const RECONNECT_GRACE_MS: u64 = 5_000;

/// One session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    shard: u32,
    /// The last sequence number used.
    seq: u64,
    alive: bool,
    /// The socket it runs on, if any.
    attached: Option<SockId>,
    /// Since when it has had no socket.
    detached_since: Option<u64>,
    /// An expiry check is queued (at most one per session, however often
    /// it loses its socket).
    expiry_queued: bool,
}

/// The gateway's state.
#[derive(Debug)]
pub(crate) struct Gateway {
    sessions: Vec<Session>,
    /// Each shard's latest session.
    shard_session: Vec<Option<u32>>,
    /// Each bucket's last accepted Identify.
    last_identify: Vec<Option<u64>>,
    starts_remaining: u32,
    starts_reset_at: u64,
    token_reset: bool,
    /// Admission tokens, in thousandths.
    tokens_milli: u64,
    tokens_at: u64,
    /// Dispatches stop here, a minute before the end, so they can be
    /// delivered.
    pub(crate) stop_dispatch_at: u64,
}

impl Gateway {
    pub(crate) fn new(sc: &Scenario) -> Self {
        let g = &sc.gateway;
        Self {
            sessions: Vec::new(),
            shard_session: vec![None; sc.shards as usize],
            last_identify: vec![None; usize::from(g.max_concurrency.max(1))],
            starts_remaining: g.session_start_remaining,
            starts_reset_at: g.session_start_reset_after_ms,
            token_reset: false,
            tokens_milli: u64::from(g.admission_per_s) * 1_000,
            tokens_at: 0,
            // Set when the fault schedule is placed (see the engine).
            stop_dispatch_at: u64::MAX,
        }
    }

    /// Session starts left now, and when the allowance next refills.
    pub(crate) const fn session_starts_left(&self, now: u64, total: u32) -> (u32, u64) {
        if now >= self.starts_reset_at {
            (total, now + 24 * 3_600_000)
        } else {
            (self.starts_remaining, self.starts_reset_at)
        }
    }

    /// Whether the shard has a session it could resume now.
    pub(crate) fn has_resumable_session(&self, shard: u32) -> bool {
        self.shard_session[shard as usize].is_some_and(|id| self.sessions[id as usize].alive)
    }
}

impl Sim<'_> {
    /// A message from a client arrives at the gateway.
    pub(crate) fn server_receive(&mut self, sock: SockId, msg: ToServer) {
        let Some(s) = self.sockets.get(sock) else {
            return;
        };
        let shard = s.shard;
        if let ToServer::Connect { .. } = msg {
            if s.client_open {
                self.accept(sock, shard);
            }
            return;
        }
        if !s.server.open {
            return;
        }
        match msg {
            ToServer::Connect { .. } => {}
            ToServer::Identify => self.identify(sock, shard),
            ToServer::Resume { session, seq } => self.resume(sock, shard, session, seq),
            ToServer::Heartbeat => {
                if let Some(s) = self.sockets.get_mut(sock) {
                    s.server.last_heartbeat = self.now;
                }
                self.send_to_client(sock, ToClient::HeartbeatAck, 0);
            }
            ToServer::Close { code } => {
                self.count_if_healthy(sock, shard);
                let ends_session = rules::client_close_ends_session(code);
                self.server_close(sock, Some(code), ends_session, true);
            }
            ToServer::Drop => {
                self.count_if_healthy(sock, shard);
                self.server_close(sock, None, false, false);
            }
        }
    }

    /// A client closed a socket nothing was wrong with: a false zombie, or
    /// a reconnect with no reason the gateway can see.
    fn count_if_healthy(&mut self, sock: SockId, shard: u32) {
        let Some(s) = self.sockets.get(sock) else {
            return;
        };
        if !s.dead && !s.server.told_to_reconnect && !self.link_faulty(shard) {
            self.rec.count.healthy_link_reconnects += 1;
        }
    }

    fn accept(&mut self, sock: SockId, shard: u32) {
        let now = self.now;
        self.rec.arrival(shard, now);
        // 0: no cap, as documented. A cap is an assumption of the scenario.
        let rate = u64::from(self.admission_per_s());
        let gw = &mut self.gateway;
        let refill = now.saturating_sub(gw.tokens_at).saturating_mul(rate);
        gw.tokens_milli = gw.tokens_milli.saturating_add(refill).min(rate * 1_000);
        gw.tokens_at = now;
        if rate > 0 && gw.tokens_milli < 1_000 {
            self.rec.count.rejected += 1;
            let failure = match self.sc.gateway.overload {
                Overload::Refuse => ConnectFailure::Refused,
                Overload::RateLimit { retry_after_ms } => {
                    ConnectFailure::RateLimited { retry_after_ms }
                }
            };
            self.send_to_client(sock, ToClient::ConnectFailed(failure), 0);
            return;
        }
        gw.tokens_milli = gw.tokens_milli.saturating_sub(1_000);
        let interval_ms = self.sc.gateway.heartbeat_interval_ms;
        if let Some(s) = self.sockets.get_mut(sock) {
            s.server.open = true;
            s.server.last_heartbeat = now;
        }
        self.send_to_client(sock, ToClient::Opened, 0);
        self.send_to_client(sock, ToClient::Hello { interval_ms }, 0);
        self.schedule(
            now + self.sc.gateway.heartbeat_timeout_ms,
            Ev::HeartbeatCheck { sock },
        );
        if let Some(after) = self.socket_lifetime(shard) {
            self.schedule(now + after, Ev::SockLifetime { sock });
        }
    }

    fn identify(&mut self, sock: SockId, shard: u32) {
        let now = self.now;
        self.rec.count.identifies += 1;
        if self.gateway.token_reset {
            self.server_close(sock, Some(4004), false, true);
            return;
        }
        let bucket = shard as usize % self.gateway.last_identify.len();
        let gap = self.gateway.last_identify[bucket].map(|last| now.saturating_sub(last));
        if gap.is_some_and(|gap| gap < IDENTIFY_WINDOW_MS) {
            self.rec.count.identify_violations_strict += 1;
        }
        // The link alone moves arrivals by up to its jitter: the window is
        // enforced with the scenario's tolerance.
        let window = IDENTIFY_WINDOW_MS.saturating_sub(self.sc.identify_tolerance());
        if gap.is_some_and(|gap| gap < window) {
            self.rec.count.identify_violations += 1;
            let delay = 1_000 + self.server_rng.upto(2_000);
            self.send_to_client(sock, ToClient::InvalidSession { resumable: false }, delay);
            if let Some(s) = self.sockets.get_mut(sock) {
                s.server.told_to_reconnect = true;
            }
            return;
        }
        let gw = &mut self.gateway;
        if now >= gw.starts_reset_at {
            gw.starts_remaining = self.sc.gateway.session_start_total;
            gw.starts_reset_at = now + 24 * 3_600_000;
        }
        if gw.starts_remaining == 0 {
            // The gateway terminates every session and resets the token.
            gw.token_reset = true;
            self.rec.token_reset = true;
            for shard in 0..self.sc.shards {
                for sock in self.shard_socks[shard as usize].clone() {
                    self.server_close(sock, Some(4004), true, true);
                }
            }
            return;
        }
        gw.starts_remaining -= 1;
        gw.last_identify[bucket] = Some(now);
        if let Some(old) = gw.shard_session[shard as usize]
            && gw.sessions[old as usize].alive
        {
            if gw.sessions[old as usize].attached.is_none() {
                self.rec.count.identifies_while_resumable += 1;
            }
            self.kill_session(old);
        }
        let id = u32::try_from(self.gateway.sessions.len()).unwrap_or(u32::MAX);
        self.gateway.sessions.push(Session {
            shard,
            seq: 1,
            alive: true,
            attached: Some(sock),
            detached_since: None,
            expiry_queued: false,
        });
        self.rec.sessions.push(SessionTally {
            generated: 1,
            ..SessionTally::default()
        });
        self.rec.count.session_starts += 1;
        self.gateway.shard_session[shard as usize] = Some(id);
        if let Some(s) = self.sockets.get_mut(sock) {
            s.server.session = Some(SessionId(id));
        }
        let session = SessionId(id);
        self.send_to_client(
            sock,
            ToClient::Dispatch {
                session,
                seq: 1,
                kind: DispatchKind::Ready,
            },
            0,
        );
        self.mark_established(shard);
        self.schedule_dispatch(id);
    }

    fn resume(&mut self, sock: SockId, shard: u32, session: Option<SessionId>, seq: u64) {
        self.rec.count.resumes += 1;
        if self.gateway.token_reset {
            self.server_close(sock, Some(4004), false, true);
            return;
        }
        let valid = session.filter(|id| {
            self.gateway
                .sessions
                .get(id.0 as usize)
                .is_some_and(|s| s.alive && s.shard == shard)
        });
        let Some(id) = valid else {
            let delay = 1_000 + self.server_rng.upto(1_000);
            self.send_to_client(sock, ToClient::InvalidSession { resumable: false }, delay);
            if let Some(s) = self.sockets.get_mut(sock) {
                s.server.told_to_reconnect = true;
            }
            return;
        };
        let current = self.gateway.sessions[id.0 as usize].seq;
        // Sequences start at 1 (READY): 0 (a `null` seq) or one the session
        // never reached is invalid, and the session is gone.
        if seq == 0 || seq > current {
            self.kill_session(id.0);
            self.server_close(sock, Some(4007), false, true);
            return;
        }
        // Take the session over from any socket it still runs on.
        if let Some(old) = self.gateway.sessions[id.0 as usize].attached
            && let Some(s) = self.sockets.get_mut(old)
        {
            s.server.session = None;
        }
        let s = &mut self.gateway.sessions[id.0 as usize];
        s.attached = Some(sock);
        s.detached_since = None;
        s.seq += 1;
        let resumed_seq = s.seq;
        self.rec.sessions[id.0 as usize].generated = resumed_seq;
        if let Some(sk) = self.sockets.get_mut(sock) {
            sk.server.session = Some(id);
        }
        for k in seq + 1..resumed_seq {
            self.send_to_client(
                sock,
                ToClient::Dispatch {
                    session: id,
                    seq: k,
                    kind: DispatchKind::Other,
                },
                0,
            );
        }
        self.send_to_client(
            sock,
            ToClient::Dispatch {
                session: id,
                seq: resumed_seq,
                kind: DispatchKind::Resumed,
            },
            0,
        );
        self.rec.count.resumes_succeeded += 1;
        self.mark_established(shard);
    }

    /// The server closes its side of `sock`: sends `code` to the client if
    /// `tell_client`, ends the session if `ends_session`, otherwise leaves it
    /// resumable for the resume window.
    pub(crate) fn server_close(
        &mut self,
        sock: SockId,
        code: Option<u16>,
        ends_session: bool,
        tell_client: bool,
    ) {
        let Some(s) = self.sockets.get_mut(sock) else {
            return;
        };
        if !s.server.open {
            return;
        }
        s.server.open = false;
        s.server.told_to_reconnect = true;
        let shard = s.shard;
        let session = s.server.session.take();
        if let Some(id) = session {
            let ends = ends_session || code.is_some_and(rules::server_close_ends_session);
            let current = self.gateway.shard_session[shard as usize] == Some(id.0);
            let s = &mut self.gateway.sessions[id.0 as usize];
            if s.attached == Some(sock) {
                s.attached = None;
                s.detached_since = Some(self.now);
                let queue_expiry = !s.expiry_queued;
                s.expiry_queued = true;
                if current {
                    self.mark_lost(shard);
                }
                if queue_expiry {
                    let window = self.sc.gateway.resume_window_ms;
                    self.schedule(self.now + window, Ev::SessionExpiry { session: id.0 });
                }
            }
            if ends {
                self.kill_session(id.0);
            }
        }
        if tell_client {
            self.send_to_client(sock, ToClient::Closed { code }, 0);
        }
        self.sockets.release_if_done(sock);
    }

    fn kill_session(&mut self, id: u32) {
        let s = &mut self.gateway.sessions[id as usize];
        s.alive = false;
        if let Some(sock) = s.attached.take() {
            if let Some(sk) = self.sockets.get_mut(sock) {
                sk.server.session = None;
            }
            let shard = s.shard;
            if self.gateway.shard_session[shard as usize] == Some(id) {
                self.mark_lost(shard);
            }
        }
    }

    /// A moment of a server-side fault for one shard.
    pub(crate) fn server_act(&mut self, shard: u32, fault: u16) {
        let Some(id) = self.gateway.shard_session[shard as usize] else {
            return;
        };
        let Some(sock) = self.gateway.sessions[id as usize].attached else {
            return;
        };
        if let Some(s) = self.sockets.get_mut(sock) {
            s.server.told_to_reconnect = true;
        }
        match self.sc.faults[fault as usize].kind {
            FaultKind::RollingRestart => {
                self.send_to_client(sock, ToClient::Reconnect, 0);
                self.schedule(
                    self.now + RECONNECT_GRACE_MS,
                    Ev::CloseAfterReconnect { sock },
                );
            }
            FaultKind::InvalidSessions { resumable } => {
                self.send_to_client(sock, ToClient::InvalidSession { resumable }, 0);
                if !resumable {
                    self.kill_session(id);
                }
            }
            FaultKind::ServerClose { code } => self.server_close(sock, Some(code), false, true),
            _ => {}
        }
    }

    pub(crate) fn heartbeat_check(&mut self, sock: SockId) {
        let Some(s) = self.sockets.get(sock) else {
            return;
        };
        if !s.server.open {
            return;
        }
        let due = s.server.last_heartbeat + self.sc.gateway.heartbeat_timeout_ms;
        if self.now >= due {
            self.server_close(sock, None, false, true);
        } else {
            self.schedule(due, Ev::HeartbeatCheck { sock });
        }
    }

    fn schedule_dispatch(&mut self, session: u32) {
        let interval = self.sc.gateway.dispatch_interval_ms;
        if interval == 0 {
            return;
        }
        let at = self.now + interval / 2 + self.server_rng.upto(interval);
        if at < self.gateway.stop_dispatch_at {
            self.schedule(at, Ev::DispatchTick { session });
        }
    }

    pub(crate) fn dispatch_tick(&mut self, session: u32) {
        let s = &mut self.gateway.sessions[session as usize];
        if !s.alive {
            return;
        }
        s.seq += 1;
        let seq = s.seq;
        let attached = s.attached;
        self.rec.sessions[session as usize].generated = seq;
        if let Some(sock) = attached {
            self.send_to_client(
                sock,
                ToClient::Dispatch {
                    session: SessionId(session),
                    seq,
                    kind: DispatchKind::Other,
                },
                0,
            );
        }
        self.schedule_dispatch(session);
    }

    pub(crate) fn session_expiry(&mut self, session: u32) {
        let window = self.sc.gateway.resume_window_ms;
        let s = &mut self.gateway.sessions[session as usize];
        s.expiry_queued = false;
        if !s.alive || s.attached.is_some() {
            return;
        }
        match s.detached_since {
            Some(d) if d + window <= self.now => self.kill_session(session),
            // It lost a later socket: check again when that one's window ends.
            Some(d) => {
                s.expiry_queued = true;
                self.schedule(d + window, Ev::SessionExpiry { session });
            }
            None => {}
        }
    }
}
