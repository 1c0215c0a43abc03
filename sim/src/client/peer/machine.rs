//! The generic state machine that reads a [`PeerRules`] table: one
//! [`PeerClient`] per shard.

use super::*;

#[cfg(test)]
mod tests;

/// Where the current connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Dialled, or open and waiting for Hello.
    AwaitHello,
    /// Hello seen; waiting to send Identify (a sleep or a queue).
    IdentifyWait,
    /// Identify sent.
    Identifying,
    /// Resume sent.
    Resuming,
    /// READY or RESUMED seen.
    Ready,
}

/// A deadline on the current connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    /// The dial must finish.
    Connect,
    /// Hello must arrive.
    Hello,
    /// READY must arrive.
    Ready,
}

/// The current connection (Carbon's `this.ws`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Conn {
    sock: SockId,
    dialled_at: u64,
    opened: bool,
    stage: Stage,
    deadline: Option<(u64, Deadline)>,
    /// The highest sequence seen on this socket.
    seq_here: u64,
    /// The last message on it.
    last_heard: u64,
}

/// A socket the client no longer uses but still hears: Carbon's leftover
/// sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OldSock {
    sock: SockId,
    opened: bool,
    /// The client sent a close frame: the transport gives up on the answer
    /// at this time and reports the socket closed.
    close_by: Option<u64>,
}

/// A close frame sent, its answer awaited before the next connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Closing {
    sock: SockId,
    until: u64,
    /// The wait after the close handshake.
    then_ms: u64,
}

/// The heartbeat loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Heartbeat {
    period: u64,
    next_at: u64,
    /// Heartbeats sent and not ACKed.
    unacked: u32,
    /// Any heartbeat sent on this loop.
    sent: bool,
    /// Any message since the last heartbeat.
    heard: bool,
}

/// What a shared ticket is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Dial,
    Identify,
}

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    ConnectFailed,
    Closed(Option<u16>),
    Reconnect,
    InvalidSession(bool),
    Zombie,
    Timeout,
}

/// A model of another library's gateway client.
#[derive(Debug)]
pub struct PeerClient {
    kind: PeerKind,
    rules: PeerRules,
    shard: u32,
    rng: ChaCha8Rng,
    session: Option<SessionId>,
    seq: u64,
    resume_url: bool,
    conn: Option<Conn>,
    old: Vec<OldSock>,
    closing: Option<Closing>,
    /// Pending dials (more than one only with [`Bugs::reconnect_twice`]).
    connects: Vec<u64>,
    /// Hold the serial lane until the next dial (a backoff slept inside
    /// discord.py's worker).
    release_at_dial: bool,
    /// The next dial follows a counted backoff.
    after_backoff: bool,
    /// [`PeerRules::backoff_in_queue`]: the wait to sleep once the queue
    /// grants the next dial.
    sleep_after_grant_ms: u64,
    /// When the heartbeat loop of the last connection lost would have
    /// ticked next ([`Wait::HeartbeatCheck`]).
    heartbeat_check_at: Option<u64>,
    identify_at: Option<u64>,
    heartbeat: Option<Heartbeat>,
    /// The heartbeat period of the last Hello, for loops started later.
    pending_period: u64,
    attempt: u32,
    last_backoff_at: Option<u64>,
    last_attempt_at: Option<u64>,
    resume_dial_failures: u32,
    ticket: Option<(Ticket, Purpose)>,
    ticket_wake: Option<u64>,
    holding: Option<Ticket>,
    /// The first Identify (or Resume) has been sent.
    launched: bool,
    gave_up: bool,
    stopped: bool,
}

impl PeerClient {
    /// Shard `shard`'s peer of this kind, with its own random stream.
    #[must_use]
    pub fn new(kind: PeerKind, shard: u32, rng: ChaCha8Rng) -> Self {
        Self {
            kind,
            rules: kind.rules(),
            shard,
            rng,
            session: None,
            seq: 0,
            resume_url: false,
            conn: None,
            old: Vec::new(),
            closing: None,
            connects: Vec::new(),
            release_at_dial: false,
            after_backoff: false,
            sleep_after_grant_ms: 0,
            heartbeat_check_at: None,
            identify_at: None,
            heartbeat: None,
            pending_period: 41_250,
            attempt: 0,
            last_backoff_at: None,
            last_attempt_at: None,
            resume_dial_failures: 0,
            ticket: None,
            ticket_wake: None,
            holding: None,
            launched: false,
            gave_up: false,
            stopped: false,
        }
    }

    /// The model.
    #[must_use]
    pub const fn kind(&self) -> PeerKind {
        self.kind
    }

    pub(in crate::client) fn start(&mut self, now: u64, cx: &mut Cx<'_>) {
        let at = match self.rules.pacing {
            Pacing::StartupBatches { window_ms } => {
                let batch = u64::from(self.shard / u32::from(cx.peers.max_concurrency()));
                batch
                    .saturating_mul(window_ms)
                    .saturating_add(cx.peers.started_ms)
                    .max(now)
            }
            _ => now,
        };
        self.connects.push(at);
        self.wake(now, cx);
    }

    pub(in crate::client) fn next_wake(&self) -> Option<u64> {
        if self.stopped {
            return None;
        }
        let conn = self.conn.as_ref();
        let silence = match (conn, self.silence_ms()) {
            (Some(c), Some(ms)) => Some(c.last_heard.saturating_add(ms)),
            _ => None,
        };
        [
            self.connects.iter().copied().min(),
            self.old.iter().filter_map(|o| o.close_by).min(),
            self.closing.map(|c| c.until),
            conn.and_then(|c| c.deadline).map(|(at, _)| at),
            self.identify_at,
            self.heartbeat.map(|h| h.next_at),
            silence,
            self.ticket_wake,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(in crate::client) fn gave_up(&self) -> bool {
        self.stopped
            || (self.gave_up
                && self.connects.is_empty()
                && self.conn.is_none()
                && self.closing.is_none())
    }

    pub(in crate::client) fn wake(&mut self, now: u64, cx: &mut Cx<'_>) {
        self.wake_inner(now, cx);
        self.refresh_ticket(now, cx);
    }

    pub(in crate::client) fn on_message(
        &mut self,
        now: u64,
        sock: SockId,
        msg: ToClient,
        cx: &mut Cx<'_>,
    ) {
        self.message(now, sock, msg, cx);
        self.refresh_ticket(now, cx);
    }

    fn refresh_ticket(&mut self, now: u64, cx: &mut Cx<'_>) {
        self.ticket_wake = self
            .ticket
            .and_then(|(t, _)| cx.peers.expected(self.rules.pacing, self.shard, t, now));
    }

    fn wake_inner(&mut self, now: u64, cx: &mut Cx<'_>) {
        if self.stopped {
            return;
        }
        let pacing = self.rules.pacing;
        if let Some((ticket, purpose)) = self.ticket {
            cx.peers.advance(pacing, now);
            if cx.peers.take_grant(pacing, self.shard, ticket) {
                self.ticket = None;
                match purpose {
                    Purpose::Dial => {
                        if matches!(pacing, Pacing::StartQueue { .. } | Pacing::Worker) {
                            self.holding = Some(ticket);
                        }
                        self.granted_dial(now, cx);
                    }
                    Purpose::Identify => {
                        if self.conn.is_some_and(|c| c.stage == Stage::IdentifyWait) {
                            self.send_identify(now, cx);
                        }
                    }
                }
            }
        }
        if let Some(c) = self.closing
            && c.until <= now
        {
            cx.send(c.sock, ToServer::Drop);
            self.close_done(now);
        }
        if let Some(i) = self
            .old
            .iter()
            .position(|o| o.close_by.is_some_and(|t| t <= now))
        {
            // The close handshake timed out: the transport drops the
            // socket and reports an abnormal close, which the old
            // socket's listener handles.
            let old = self.old.remove(i);
            if old.opened {
                cx.send(old.sock, ToServer::Drop);
            }
            self.react(now, Trigger::Closed(Some(1006)), cx);
            return;
        }
        if let Some(i) = self.due_connect(now) {
            self.connects.remove(i);
            if self.release_at_dial {
                self.release_at_dial = false;
                self.release_lane(now, cx);
            }
            self.dial(now, cx);
        }
        if let Some(conn) = self.conn {
            if let Some((at, kind)) = conn.deadline
                && at <= now
            {
                if let Some(c) = &mut self.conn {
                    c.deadline = None;
                }
                if kind == Deadline::Connect {
                    cx.send(conn.sock, ToServer::Drop);
                    self.conn = None;
                    self.react(now, Trigger::ConnectFailed, cx);
                } else {
                    self.react(now, Trigger::Timeout, cx);
                }
                return;
            }
            if self.identify_at.is_some_and(|t| t <= now) {
                self.identify_at = None;
                if conn.stage == Stage::IdentifyWait {
                    self.hook_done(now, cx);
                }
            }
            if let Some(ms) = self.silence_ms()
                && conn.last_heard.saturating_add(ms) <= now
            {
                self.react(now, Trigger::Zombie, cx);
                return;
            }
        } else if self.identify_at.is_some_and(|t| t <= now) {
            self.identify_at = None;
        }
        if let Some(hb) = self.heartbeat
            && hb.next_at <= now
        {
            let zombie = match self.rules.zombie {
                Zombie::AckMissed { misses } => hb.unacked >= misses.max(1),
                Zombie::NoMessageSinceHeartbeat => hb.sent && !hb.heard,
                Zombie::Silence { .. } | Zombie::ReadTimeout { .. } => false,
            };
            if let Some(hb) = &mut self.heartbeat {
                // The interval keeps ticking whatever the tick decides.
                hb.next_at = now.saturating_add(hb.period);
            }
            if zombie {
                self.react(now, Trigger::Zombie, cx);
                return;
            }
            self.send_heartbeat(cx);
            if let Some(hb) = &mut self.heartbeat {
                hb.unacked = hb.unacked.saturating_add(1);
                hb.sent = true;
                hb.heard = false;
            }
        }
    }

    /// The silence that makes a zombie, once heartbeats run.
    fn silence_ms(&self) -> Option<u64> {
        let hb = self.heartbeat?;
        match self.rules.zombie {
            Zombie::Silence { ms } => Some(ms),
            Zombie::ReadTimeout { extra_ms } => Some(hb.period.saturating_add(extra_ms)),
            Zombie::AckMissed { .. } | Zombie::NoMessageSinceHeartbeat => None,
        }
    }

    fn due_connect(&self, now: u64) -> Option<usize> {
        let (i, at) = self
            .connects
            .iter()
            .enumerate()
            .min_by_key(|(_, at)| **at)?;
        (*at <= now).then_some(i)
    }

    fn message(&mut self, now: u64, sock: SockId, msg: ToClient, cx: &mut Cx<'_>) {
        if self.stopped {
            return;
        }
        if self.conn.is_some_and(|c| c.sock == sock) {
            self.current_message(now, msg, cx);
        } else if self.closing.is_some_and(|c| c.sock == sock) {
            if matches!(msg, ToClient::Closed { .. } | ToClient::ConnectFailed(_)) {
                self.close_done(now);
            }
        } else if let Some(i) = self.old.iter().position(|o| o.sock == sock) {
            self.old_message(now, i, msg, cx);
        } else if msg == ToClient::Opened {
            cx.send(sock, ToServer::Drop);
        }
    }

    fn heard(&mut self, now: u64) {
        if let Some(c) = &mut self.conn {
            c.last_heard = now;
        }
        if let Some(hb) = &mut self.heartbeat {
            hb.heard = true;
        }
    }

    fn current_message(&mut self, now: u64, msg: ToClient, cx: &mut Cx<'_>) {
        self.heard(now);
        match msg {
            ToClient::Opened => self.opened(now, cx),
            ToClient::ConnectFailed(_) => {
                self.conn = None;
                self.react(now, Trigger::ConnectFailed, cx);
            }
            ToClient::Hello { interval_ms } => self.hello(now, interval_ms, cx),
            ToClient::Dispatch { session, seq, kind } => {
                if let Some(c) = &mut self.conn {
                    c.seq_here = c.seq_here.max(seq);
                }
                self.dispatch(now, session, seq, kind, cx);
            }
            ToClient::HeartbeatAck => {
                if let Some(hb) = &mut self.heartbeat {
                    hb.unacked = 0;
                }
            }
            ToClient::HeartbeatRequest => self.send_heartbeat(cx),
            ToClient::Reconnect => self.react(now, Trigger::Reconnect, cx),
            ToClient::InvalidSession { resumable } => {
                if resumable && self.rules.resume_on_same_socket && self.session.is_some() {
                    self.send_resume(now, cx);
                } else {
                    self.react(now, Trigger::InvalidSession(resumable), cx);
                }
            }
            ToClient::Closed { code } => {
                self.conn = None;
                self.react(now, Trigger::Closed(code), cx);
            }
        }
    }

    /// A message on a socket the client replaced but still listens to
    /// ([`Bugs::leaves_old_socket_open`]): handled as if current, except
    /// that anything sent goes to the current socket.
    fn old_message(&mut self, now: u64, i: usize, msg: ToClient, cx: &mut Cx<'_>) {
        match msg {
            ToClient::Opened => {
                self.old[i].opened = true;
                self.counter_reset_on_open();
            }
            ToClient::ConnectFailed(_) => {
                self.old.remove(i);
                self.react(now, Trigger::ConnectFailed, cx);
            }
            ToClient::Closed { code } => {
                self.old.remove(i);
                self.react(now, Trigger::Closed(code), cx);
            }
            ToClient::Hello { interval_ms } => {
                self.start_heartbeat(now, interval_ms);
                if self.conn.is_some_and(|c| c.opened) {
                    self.answer_hello(now, cx);
                }
            }
            ToClient::Dispatch { session, seq, kind } => {
                self.dispatch(now, session, seq, kind, cx);
            }
            ToClient::HeartbeatAck => {
                if let Some(hb) = &mut self.heartbeat {
                    hb.unacked = 0;
                }
            }
            ToClient::HeartbeatRequest => self.send_heartbeat(cx),
            ToClient::Reconnect => self.react(now, Trigger::Reconnect, cx),
            ToClient::InvalidSession { resumable } => {
                self.react(now, Trigger::InvalidSession(resumable), cx);
            }
        }
    }

    fn counter_reset_on_open(&mut self) {
        if self.rules.reset == Reset::OnOpen {
            self.attempt = 0;
            self.gave_up = false;
        }
    }

    /// Opens the next connection, through the bot's queue if its pacing
    /// requires one.
    fn dial(&mut self, now: u64, cx: &mut Cx<'_>) {
        let pacing = self.rules.pacing;
        let queued = match pacing {
            Pacing::StartQueue { .. } => self.session.is_none(),
            Pacing::Worker => true,
            _ => false,
        };
        if queued && self.holding.is_none() {
            if self.ticket.is_none() {
                let class = match pacing {
                    Pacing::Worker if !self.launched => 0,
                    Pacing::Worker if self.after_backoff => 1,
                    Pacing::Worker if self.session.is_some() => 2,
                    Pacing::Worker => 3,
                    // A shard's first connection goes before every retry
                    // and restart, in shard order; a failed one goes back
                    // to the end of the queue (JDA
                    // `ConcurrentSessionController.java:159-161`, serenity
                    // `shard_queuer.rs:155-160`).
                    _ => u32::from(self.launched || self.last_attempt_at.is_some()),
                };
                let t = cx
                    .peers
                    .request(pacing, self.shard, class, class == 0, 0, now);
                self.ticket = Some((t, Purpose::Dial));
            }
            self.after_backoff = false;
            let Some((ticket, _)) = self.ticket else {
                return;
            };
            cx.peers.advance(pacing, now);
            if !cx.peers.take_grant(pacing, self.shard, ticket) {
                return;
            }
            self.ticket = None;
            self.holding = Some(ticket);
            self.granted_dial(now, cx);
            return;
        }
        self.open_socket(now, cx);
    }

    /// The queue granted the next dial: it opens, unless a wait is to be
    /// slept first while holding the queue
    /// ([`PeerRules::backoff_in_queue`]).
    fn granted_dial(&mut self, now: u64, cx: &mut Cx<'_>) {
        let sleep = std::mem::take(&mut self.sleep_after_grant_ms);
        if sleep > 0 {
            self.schedule_connect(now.saturating_add(sleep));
        } else {
            self.open_socket(now, cx);
        }
    }

    fn open_socket(&mut self, now: u64, cx: &mut Cx<'_>) {
        if let Some(conn) = self.conn.take() {
            if self.rules.bugs.leaves_old_socket_open {
                self.old.push(OldSock {
                    sock: conn.sock,
                    opened: conn.opened,
                    close_by: None,
                });
            } else {
                cx.send(conn.sock, ToServer::Drop);
            }
        }
        let sock = cx.connect(self.shard, self.session.is_some() && self.resume_url);
        let timeout = match self.rules.start_timeout_ms {
            Some(t) if !self.launched => t,
            _ => self.rules.connect_timeout_ms,
        };
        self.conn = Some(Conn {
            sock,
            dialled_at: now,
            opened: false,
            stage: Stage::AwaitHello,
            deadline: Some((now.saturating_add(timeout), Deadline::Connect)),
            seq_here: 0,
            last_heard: now,
        });
        self.last_attempt_at = Some(now);
    }

    fn opened(&mut self, now: u64, cx: &mut Cx<'_>) {
        self.counter_reset_on_open();
        self.resume_dial_failures = 0;
        if let Pacing::StartQueue {
            until_ready: false, ..
        } = self.rules.pacing
        {
            self.release_lane(now, cx);
        }
        let resuming = self.session.is_some();
        let hello = match self.rules.start_timeout_ms {
            Some(t) if !self.launched => Some(t),
            _ => self
                .rules
                .hello_timeout_ms
                .filter(|_| !resuming || self.rules.hello_timeout_when_resuming),
        };
        let Some(conn) = &mut self.conn else { return };
        conn.opened = true;
        conn.deadline = hello.map(|h| (conn.dialled_at.saturating_add(h), Deadline::Hello));
        match self.rules.on_open {
            OnOpen::Resume if resuming => self.send_resume(now, cx),
            OnOpen::Answer => self.answer_hello(now, cx),
            _ => {}
        }
    }

    fn start_heartbeat(&mut self, now: u64, interval_ms: u64) {
        let interval = interval_ms.max(1_000);
        let period = interval.saturating_add(if self.rules.heartbeat_jitter_ms > 0 {
            self.rng.random_range(0..=self.rules.heartbeat_jitter_ms)
        } else {
            0
        });
        let first = match self.rules.first_heartbeat {
            FirstHeartbeat::Immediate => Some(now),
            FirstHeartbeat::Jittered => {
                Some(now.saturating_add(self.rng.random_range(0..interval)))
            }
            FirstHeartbeat::AfterIdentify => None,
        };
        self.heartbeat = first.map(|next_at| Heartbeat {
            period,
            next_at,
            unacked: 0,
            sent: false,
            heard: false,
        });
        if self.heartbeat.is_none() {
            // Started by Identify or RESUMED, with this period.
            self.pending_period = period;
        }
    }

    fn hello(&mut self, now: u64, interval_ms: u64, cx: &mut Cx<'_>) {
        if self.rules.on_open == OnOpen::Resume
            && self.conn.is_some_and(|c| c.stage == Stage::Resuming)
        {
            return;
        }
        if let Some(c) = &mut self.conn
            && c.deadline.is_some_and(|(_, kind)| kind == Deadline::Hello)
        {
            c.deadline = None;
        }
        self.start_heartbeat(now, interval_ms);
        if self.rules.on_open != OnOpen::Answer {
            self.answer_hello(now, cx);
        }
    }

    /// Resume or Identify after Hello, on the current socket.
    fn answer_hello(&mut self, now: u64, cx: &mut Cx<'_>) {
        if self.session.is_some() {
            self.send_resume(now, cx);
            return;
        }
        if let Some(c) = &mut self.conn {
            c.stage = Stage::IdentifyWait;
        }
        let initial = self.shard == 0 && !self.launched;
        match self.rules.identify_hook {
            IdentifyHook::Sleep(ms) if !initial => {
                self.identify_at = Some(now.saturating_add(ms));
                return;
            }
            IdentifyHook::BucketWindow(ms) => {
                let at = cx.peers.bucket_free_at(self.shard, ms);
                if at > now {
                    self.identify_at = Some(at);
                    return;
                }
            }
            IdentifyHook::Sleep(_) | IdentifyHook::None => {}
        }
        let pacing = self.rules.pacing;
        if let Pacing::Throttle { .. } | Pacing::Ticked { .. } = pacing {
            let jitter_ms = match pacing {
                Pacing::Throttle { jitter_ms, .. } if jitter_ms > 0 => {
                    self.rng.random_range(0..jitter_ms)
                }
                _ => 0,
            };
            if self.ticket.is_none() {
                let t = cx
                    .peers
                    .request(pacing, self.shard, 0, false, jitter_ms, now);
                self.ticket = Some((t, Purpose::Identify));
            }
            if let Pacing::Ticked { .. } = pacing {
                // The queue's runner takes every request already sent
                // before it ticks: the tick comes with the wake-up.
                return;
            }
            let Some((ticket, _)) = self.ticket else {
                return;
            };
            cx.peers.advance(pacing, now);
            if !cx.peers.take_grant(pacing, self.shard, ticket) {
                return;
            }
            self.ticket = None;
        }
        self.send_identify(now, cx);
    }

    /// The identify hook's sleep is over: Identify goes out, unless the
    /// bucket was used in the meantime and the hook sleeps again.
    fn hook_done(&mut self, now: u64, cx: &mut Cx<'_>) {
        if let IdentifyHook::BucketWindow(ms) = self.rules.identify_hook {
            let at = cx.peers.bucket_free_at(self.shard, ms);
            if at > now {
                self.identify_at = Some(at);
                return;
            }
        }
        self.send_identify(now, cx);
    }

    fn send_identify(&mut self, now: u64, cx: &mut Cx<'_>) {
        let Some(conn) = &mut self.conn else { return };
        if !conn.opened {
            return;
        }
        cx.send(conn.sock, ToServer::Identify);
        if let IdentifyHook::BucketWindow(_) = self.rules.identify_hook {
            cx.peers.note_identify(self.shard, now);
        }
        conn.stage = Stage::Identifying;
        if let Some(r) = self.rules.ready_timeout_ms {
            conn.deadline = Some((now.saturating_add(r), Deadline::Ready));
        }
        if self.rules.first_heartbeat == FirstHeartbeat::AfterIdentify {
            self.heartbeat = Some(Heartbeat {
                period: self.pending_period,
                next_at: now.saturating_add(self.pending_period),
                unacked: 0,
                sent: false,
                heard: false,
            });
        }
        self.launched = true;
        if let Pacing::Worker = self.rules.pacing {
            self.release_lane(now, cx);
        }
    }

    fn send_resume(&mut self, now: u64, cx: &mut Cx<'_>) {
        let Some(conn) = &mut self.conn else { return };
        if !conn.opened {
            return;
        }
        let seq = if self.rules.bugs.resume_seq_from_new_socket {
            conn.seq_here
        } else {
            self.seq
        };
        cx.send(
            conn.sock,
            ToServer::Resume {
                session: self.session,
                seq,
            },
        );
        conn.stage = Stage::Resuming;
        self.launched = true;
        if let Pacing::Worker = self.rules.pacing {
            self.release_lane(now, cx);
        }
    }

    fn dispatch(
        &mut self,
        now: u64,
        session: SessionId,
        seq: u64,
        kind: DispatchKind,
        cx: &mut Cx<'_>,
    ) {
        cx.delivered(session, seq);
        self.seq = self.seq.max(seq);
        match kind {
            DispatchKind::Ready => {
                self.session = Some(session);
                self.seq = seq;
                self.resume_url = self.rules.uses_resume_url;
                self.established(now, cx);
            }
            DispatchKind::Resumed => self.established(now, cx),
            DispatchKind::Other => {}
        }
    }

    fn established(&mut self, now: u64, cx: &mut Cx<'_>) {
        if matches!(
            self.rules.reset,
            Reset::OnSessionEstablished | Reset::OnSessionEstablishedOrResume
        ) {
            self.attempt = 0;
        }
        if let Pacing::StartQueue {
            until_ready: true, ..
        } = self.rules.pacing
        {
            self.release_lane(now, cx);
        }
        if let Some(c) = &mut self.conn
            && matches!(c.stage, Stage::Identifying | Stage::Resuming)
        {
            c.stage = Stage::Ready;
            c.deadline = None;
        }
        if self.rules.first_heartbeat == FirstHeartbeat::AfterIdentify {
            let period = self.heartbeat.map_or(self.pending_period, |h| h.period);
            self.heartbeat = Some(Heartbeat {
                period,
                next_at: now.saturating_add(period),
                unacked: 0,
                sent: false,
                heard: false,
            });
        }
    }

    fn send_heartbeat(&mut self, cx: &mut Cx<'_>) {
        if let Some(c) = self.conn
            && c.opened
        {
            cx.send(c.sock, ToServer::Heartbeat);
        }
    }

    fn release_lane(&mut self, now: u64, cx: &mut Cx<'_>) {
        if let Some(t) = self.holding.take() {
            cx.peers.release(self.rules.pacing, t, now);
        }
    }

    /// The reaction of the rules to `trigger`.
    fn react(&mut self, now: u64, trigger: Trigger, cx: &mut Cx<'_>) {
        let rules = self.rules;
        let on = rules.on;
        let mut reaction = match trigger {
            Trigger::ConnectFailed => {
                if rules.drops_resume_url_on_dial_failure {
                    self.resume_url = false;
                }
                if self.session.is_some() {
                    self.resume_dial_failures = self.resume_dial_failures.saturating_add(1);
                    if rules
                        .resume_dial_retries
                        .is_some_and(|n| self.resume_dial_failures > n)
                    {
                        self.resume_dial_failures = 0;
                        Reaction {
                            session: Fate::Drop,
                            ..on.connect_failed
                        }
                    } else {
                        on.resume_dial_failed
                    }
                } else {
                    on.connect_failed
                }
            }
            Trigger::Closed(code) => {
                let codes = rules.codes;
                if let Some(c) = code {
                    if codes.fatal.contains(&c) {
                        self.fatal(now, cx);
                        return;
                    }
                    if codes.zero_seq.contains(&c) {
                        self.seq = 0;
                    }
                }
                let drop = code.is_some_and(|c| codes.reidentify.contains(&c));
                Reaction {
                    session: if drop { Fate::Drop } else { on.closed.session },
                    ..on.closed
                }
            }
            Trigger::Reconnect => on.reconnect,
            Trigger::InvalidSession(true) => on.resumable,
            Trigger::InvalidSession(false) => on.invalid,
            Trigger::Zombie => on.zombie,
            Trigger::Timeout => on.timeout,
        };
        if !self.launched
            && matches!(trigger, Trigger::ConnectFailed | Trigger::Timeout)
            && let Some(r) = rules.start_failed
        {
            reaction = r;
        }
        if trigger == Trigger::Timeout && reaction.close == Close::Leave {
            reaction.close = Close::Drop;
        }
        if reaction.wait == Wait::Backoff && rules.give_up_after.is_some_and(|m| self.attempt >= m)
        {
            // Carbon returns before touching anything.
            self.gave_up = true;
            return;
        }
        if reaction.session == Fate::Drop {
            self.session = None;
            self.resume_url = false;
        }
        if let Some((t, Purpose::Identify)) = self.ticket {
            cx.peers.cancel(rules.pacing, self.shard, t, now);
            self.ticket = None;
        }
        self.identify_at = None;
        if reaction.close != Close::Leave
            && let Some(conn) = self.conn.take()
        {
            self.close_socket(now, conn, reaction.close, cx);
        }
        if self.conn.is_none()
            && let Some(hb) = self.heartbeat.take()
        {
            self.heartbeat_check_at = Some(hb.next_at);
        }
        // A reconnect slept inside the queue's worker always counts a
        // backoff (JDA's `reconnect()`), except a failed first start, which
        // goes back to the queue as it is.
        let queued_next =
            matches!(rules.pacing, Pacing::StartQueue { .. }) && self.session.is_none();
        let in_queue = rules.backoff_in_queue && queued_next && self.launched;
        if in_queue {
            reaction.wait = Wait::Backoff;
        }
        if rules.reset == Reset::OnSessionEstablishedOrResume
            && self.session.is_some()
            && trigger != Trigger::ConnectFailed
        {
            // A new `reconnect()` with a session: its first wait is 0, the
            // next 2 s.
            self.attempt = 0;
        }
        let delay = match reaction.wait {
            Wait::None => 0,
            Wait::Fixed(ms) => ms,
            Wait::HeartbeatCheck { at_least_ms } => self
                .heartbeat_check_at
                .map_or(0, |at| at.saturating_sub(now))
                .max(at_least_ms),
            Wait::Backoff => {
                if let (Reset::AfterIdle(idle), Some(last)) = (rules.reset, self.last_backoff_at)
                    && now.saturating_sub(last) > idle
                {
                    self.attempt = 0;
                }
                self.last_backoff_at = Some(now);
                self.attempt = self.attempt.saturating_add(1);
                self.after_backoff = true;
                rules.delay.ms(self.attempt, &mut self.rng)
            }
        };
        // A dial that failed inside the worker sleeps there, holding it.
        let keep_holding = in_queue && trigger == Trigger::ConnectFailed;
        if self.holding.is_some() && !keep_holding {
            match rules.pacing {
                Pacing::Worker if delay > 0 => self.release_at_dial = true,
                _ => self.release_lane(now, cx),
            }
        }
        let delay = if in_queue && self.holding.is_none() {
            // Joins the queue at once and sleeps once granted.
            self.sleep_after_grant_ms = delay;
            0
        } else {
            delay
        };
        if let Some(c) = &mut self.closing {
            c.then_ms = delay;
        } else {
            self.schedule_connect(now.saturating_add(delay));
        }
    }

    fn close_socket(&mut self, now: u64, conn: Conn, close: Close, cx: &mut Cx<'_>) {
        if !conn.opened && close != Close::Leave {
            // No close frame before the WebSocket opens: the dial is
            // aborted, and a client still listening to it hears it close.
            cx.send(conn.sock, ToServer::Drop);
            if self.rules.bugs.reconnect_twice {
                self.old.push(OldSock {
                    sock: conn.sock,
                    opened: false,
                    close_by: Some(now),
                });
            }
            return;
        }
        match close {
            Close::Frame(code) => {
                cx.send(conn.sock, ToServer::Close { code });
                if self.rules.bugs.reconnect_twice {
                    self.old.push(OldSock {
                        sock: conn.sock,
                        opened: conn.opened,
                        close_by: (self.rules.close_wait_ms > 0)
                            .then(|| now.saturating_add(self.rules.close_wait_ms)),
                    });
                } else if self.rules.close_wait_ms > 0 && conn.opened {
                    self.closing = Some(Closing {
                        sock: conn.sock,
                        until: now.saturating_add(self.rules.close_wait_ms),
                        then_ms: 0,
                    });
                }
            }
            Close::Drop => cx.send(conn.sock, ToServer::Drop),
            Close::Leave => {}
        }
    }

    /// The close handshake is over (or given up on): the planned
    /// connection follows after its wait.
    fn close_done(&mut self, now: u64) {
        if let Some(c) = self.closing.take() {
            self.schedule_connect(now.saturating_add(c.then_ms));
        }
    }

    fn schedule_connect(&mut self, at: u64) {
        let at = match self.last_attempt_at {
            Some(last) => at.max(last.saturating_add(self.rules.guard_ms)),
            None => at,
        };
        if !self.rules.bugs.reconnect_twice {
            self.connects.clear();
        }
        self.connects.push(at);
    }

    fn fatal(&mut self, now: u64, cx: &mut Cx<'_>) {
        if let Some(max) = self.rules.give_up_after {
            // Carbon: "this.reconnectAttempts = maxAttempts".
            self.attempt = max;
            self.gave_up = true;
            return;
        }
        self.stopped = true;
        self.heartbeat = None;
        self.connects.clear();
        self.closing = None;
        self.identify_at = None;
        if let Some((t, _)) = self.ticket.take() {
            cx.peers.cancel(self.rules.pacing, self.shard, t, now);
        }
        self.release_lane(now, cx);
    }
}
