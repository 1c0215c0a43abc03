//! Models of other clients' reconnect behaviour, for comparison.
//!
//! A [`PeerClient`] is a plain gateway client (connect, Hello, Identify or
//! Resume, heartbeats) whose reconnect behaviour is a table of
//! [`PeerRules`]: how long it waits, what resets its counter, which close
//! codes it treats how, what it does on op 7 and op 9, how it detects a
//! zombie, how it paces identifies, and which known bugs it has. Each
//! [`PeerKind`] is one row of that table, citing where its behaviour is
//! described (`shared/reference/discord-gateway.md` and the issue that
//! asked for it). None of them uses the policy crate.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::Cx;
use crate::wire::{DispatchKind, SessionId, SockId, ToClient, ToServer};

/// The models available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum PeerKind {
    /// Reconnects at once after anything, resumes when it can, never paces
    /// identifies: the reconnect storm.
    Naive,
    /// The naive client with a 5 s minimum between attempts.
    Guard5s,
}

impl PeerKind {
    /// Every model, in display order.
    pub const ALL: [Self; 2] = [Self::Naive, Self::Guard5s];

    /// The model's name on the command line and in reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Naive => "naive",
            Self::Guard5s => "guard-5s",
        }
    }

    /// The model named `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The model's rules.
    #[must_use]
    pub const fn rules(self) -> PeerRules {
        match self {
            Self::Naive => PeerRules::NAIVE,
            Self::Guard5s => PeerRules {
                guard_ms: 5_000,
                ..PeerRules::NAIVE
            },
        }
    }
}

/// How long a peer waits before reconnect attempt `n` (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delay {
    /// No wait.
    Immediate,
    /// Always this long.
    Fixed(u64),
}

impl Delay {
    fn ms(self, _attempt: u32, _rng: &mut ChaCha8Rng) -> u64 {
        match self {
            Self::Immediate => 0,
            Self::Fixed(ms) => ms,
        }
    }
}

/// What resets a peer's attempt counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    /// The WebSocket opening (the bug Carbon fixed in #345).
    OnOpen,
    /// READY or RESUMED.
    OnSessionEstablished,
}

/// How a peer notices a dead connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zombie {
    /// The previous heartbeat was not ACKed when the next is due.
    AckMissed,
}

/// One peer's reconnect behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerRules {
    /// The wait before each attempt.
    pub delay: Delay,
    /// The minimum time between two attempts.
    pub guard_ms: u64,
    /// What resets the attempt counter.
    pub reset: Reset,
    /// Close codes that stop the client.
    pub fatal: &'static [u16],
    /// Close codes after which it identifies instead of resuming.
    pub reidentify: &'static [u16],
    /// The close code it sends when it wants to resume.
    pub resume_close_code: u16,
    /// Random wait after op 9, ms (min, max).
    pub invalid_session_wait_ms: (u64, u64),
    /// Zombie detection.
    pub zombie: Zombie,
    /// Whether the first heartbeat is jittered.
    pub first_heartbeat_jitter: bool,
    /// How long it waits for a socket to open, and then for Hello.
    pub connect_timeout_ms: u64,
}

impl PeerRules {
    /// The naive client.
    pub const NAIVE: Self = Self {
        delay: Delay::Immediate,
        guard_ms: 0,
        reset: Reset::OnOpen,
        fatal: &[4004, 4010, 4011, 4012, 4013, 4014],
        reidentify: &[4007, 4009],
        resume_close_code: 4000,
        invalid_session_wait_ms: (0, 0),
        zombie: Zombie::AckMissed,
        first_heartbeat_jitter: false,
        connect_timeout_ms: 10_000,
    };
}

/// Where a peer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No socket; the next attempt at `at`.
    Waiting { at: u64 },
    /// A socket is being opened, or is open.
    Connected {
        sock: SockId,
        /// Give up on the socket at this time if it has not said Hello.
        deadline: Option<u64>,
    },
    /// Stopped for good.
    Stopped,
}

/// A model of another library's gateway client.
#[derive(Debug)]
pub struct PeerClient {
    kind: PeerKind,
    rules: PeerRules,
    rng: ChaCha8Rng,
    phase: Phase,
    attempt: u32,
    last_attempt_at: Option<u64>,
    session: Option<SessionId>,
    seq: u64,
    heartbeat_interval_ms: u64,
    next_heartbeat_at: Option<u64>,
    awaiting_ack: bool,
}

impl PeerClient {
    /// A peer of this kind with its own random stream.
    #[must_use]
    pub fn new(kind: PeerKind, rng: ChaCha8Rng) -> Self {
        Self {
            kind,
            rules: kind.rules(),
            rng,
            phase: Phase::Waiting { at: 0 },
            attempt: 0,
            last_attempt_at: None,
            session: None,
            seq: 0,
            heartbeat_interval_ms: 0,
            next_heartbeat_at: None,
            awaiting_ack: false,
        }
    }

    /// The model.
    #[must_use]
    pub const fn kind(&self) -> PeerKind {
        self.kind
    }

    pub(super) fn start(&mut self, now: u64, cx: &mut Cx<'_>) {
        self.phase = Phase::Waiting { at: now };
        self.wake(now, cx);
    }

    pub(super) fn next_wake(&self) -> Option<u64> {
        match self.phase {
            Phase::Waiting { at } => Some(at),
            Phase::Connected { deadline, .. } => match (deadline, self.next_heartbeat_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            Phase::Stopped => None,
        }
    }

    pub(super) fn gave_up(&self) -> bool {
        self.phase == Phase::Stopped
    }

    pub(super) fn wake(&mut self, now: u64, cx: &mut Cx<'_>) {
        match self.phase {
            Phase::Waiting { at } if at <= now => {
                let sock = cx.connect(false);
                self.last_attempt_at = Some(now);
                self.phase = Phase::Connected {
                    sock,
                    deadline: Some(now + self.rules.connect_timeout_ms),
                };
            }
            Phase::Connected { sock, deadline } => {
                if deadline.is_some_and(|d| d <= now) {
                    cx.send(sock, ToServer::Drop);
                    self.disconnected(now, None);
                    return;
                }
                if self.next_heartbeat_at.is_some_and(|t| t <= now) {
                    if self.awaiting_ack && self.rules.zombie == Zombie::AckMissed {
                        cx.send(
                            sock,
                            ToServer::Close {
                                code: self.rules.resume_close_code,
                            },
                        );
                        self.disconnected(now, None);
                        return;
                    }
                    cx.send(sock, ToServer::Heartbeat);
                    self.awaiting_ack = true;
                    self.next_heartbeat_at = Some(now + self.heartbeat_interval_ms);
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_message(&mut self, now: u64, sock: SockId, msg: ToClient, cx: &mut Cx<'_>) {
        let Phase::Connected { sock: current, .. } = self.phase else {
            return;
        };
        if sock != current {
            if msg == ToClient::Opened {
                cx.send(sock, ToServer::Drop);
            }
            return;
        }
        match msg {
            ToClient::Opened => {
                if self.rules.reset == Reset::OnOpen {
                    self.attempt = 0;
                }
            }
            ToClient::ConnectFailed(_) => self.disconnected(now, None),
            ToClient::Hello { interval_ms } => {
                self.heartbeat_interval_ms = interval_ms.max(1_000);
                let first = if self.rules.first_heartbeat_jitter {
                    self.rng.random_range(0..self.heartbeat_interval_ms)
                } else {
                    0
                };
                self.next_heartbeat_at = Some(now + first);
                self.awaiting_ack = false;
                self.phase = Phase::Connected {
                    sock,
                    deadline: None,
                };
                let msg = match self.session {
                    Some(session) => ToServer::Resume {
                        session: Some(session),
                        seq: self.seq,
                    },
                    None => ToServer::Identify,
                };
                cx.send(sock, msg);
            }
            ToClient::Dispatch { session, seq, kind } => {
                cx.delivered(session, seq);
                self.seq = self.seq.max(seq);
                match kind {
                    DispatchKind::Ready => {
                        self.session = Some(session);
                        self.seq = seq;
                        self.established();
                    }
                    DispatchKind::Resumed => self.established(),
                    DispatchKind::Other => {}
                }
            }
            ToClient::HeartbeatAck => self.awaiting_ack = false,
            ToClient::HeartbeatRequest => cx.send(sock, ToServer::Heartbeat),
            ToClient::Reconnect => {
                cx.send(
                    sock,
                    ToServer::Close {
                        code: self.rules.resume_close_code,
                    },
                );
                self.disconnected(now, None);
            }
            ToClient::InvalidSession { resumable } => {
                if !resumable {
                    self.session = None;
                }
                let code = if resumable {
                    self.rules.resume_close_code
                } else {
                    1000
                };
                cx.send(sock, ToServer::Close { code });
                let (low, high) = self.rules.invalid_session_wait_ms;
                let wait = self.rng.random_range(low..=high.max(low));
                self.disconnected(now, Some(wait));
            }
            ToClient::Closed { code } => {
                if let Some(code) = code {
                    if self.rules.fatal.contains(&code) {
                        self.phase = Phase::Stopped;
                        self.next_heartbeat_at = None;
                        return;
                    }
                    if self.rules.reidentify.contains(&code) {
                        self.session = None;
                    }
                }
                self.disconnected(now, None);
            }
        }
    }

    fn established(&mut self) {
        if self.rules.reset == Reset::OnSessionEstablished {
            self.attempt = 0;
        }
    }

    /// The socket is gone (or abandoned): plan the next attempt.
    fn disconnected(&mut self, now: u64, extra_wait_ms: Option<u64>) {
        self.next_heartbeat_at = None;
        self.awaiting_ack = false;
        self.attempt = self.attempt.saturating_add(1);
        let delay = self
            .rules
            .delay
            .ms(self.attempt, &mut self.rng)
            .max(extra_wait_ms.unwrap_or(0));
        let mut at = now + delay;
        if let Some(last) = self.last_attempt_at {
            at = at.max(last + self.rules.guard_ms);
        }
        self.phase = Phase::Waiting { at };
    }
}
