//! One shard driven the way a real driver drives the policy, for the
//! policy benchmark and the zero-allocation test: timers run first when
//! due, every input is followed by draining `poll_output` (identify
//! requests answered by the bot's limiter at once) and reading
//! `poll_timeout`, and the gateway side (Hello, READY, ACKs, RESUMED)
//! answers as Discord's does.
//!
//! Both measure the same hot path, so they share this one driver (it lives
//! beside the checking driver, behind the `testing` feature): a benchmark
//! and an allocation count of different loops would prove nothing about
//! each other. The methods on the hot path are `#[inline(always)]`, so the
//! benchmark measures them as if they were written in the benchmark itself
//! (as a driver's loop would be), not a call across crates: a plain
//! `#[inline]` hint is not followed from another crate, and the driver's
//! own calls and the copies of its events and results through memory then
//! cost more than the policy does.

use std::hint::black_box;

use crate::{
    Action, Command, ConnectionId, Dispatch, Event, Handled, IdentifyLimiter, Output, Policy,
    PolicyConfig, PolicyState, SessionStartLimit, Timestamp,
};

/// The heartbeat interval the gateway announces in Hello.
pub const INTERVAL_MS: u64 = 41_250;
/// Round trip to the gateway.
pub const RTT_MS: u64 = 40;
/// The seed of the policy's random stream.
pub const SEED: u64 = 0x5eed;
/// The code the server closes with in a reconnect cycle (resumable).
pub const RECONNECT_CODE: u16 = 4000;

/// `ms` as a [`Timestamp`].
#[must_use]
pub const fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// op 10 Hello with [`INTERVAL_MS`].
#[must_use]
pub const fn hello() -> Event {
    Event::Hello {
        heartbeat_interval_ms: INTERVAL_MS,
    }
}

/// How the policy took the last event, and what the outputs of the drain
/// after it asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Drained {
    /// What `handle_event` answered (`None` after a timeout).
    pub handled: Option<Handled>,
    /// Heartbeats sent.
    pub heartbeats: u32,
    /// Identify payloads sent.
    pub identifies: u32,
    /// Resume payloads sent.
    pub resumes: u32,
}

/// One shard: a policy, the bot's identify limiter, the driver's clock.
#[derive(Debug)]
pub struct Shard {
    /// The policy under test.
    pub policy: Policy,
    /// The bot's identify limiter.
    pub gate: IdentifyLimiter,
    /// The connection named by the last `Connect`.
    pub conn: ConnectionId,
    /// The driver's clock, in ms.
    pub now: u64,
    /// The last sequence number the gateway sent.
    pub seq: u64,
}

impl Shard {
    /// A default policy whose first connection has identified, received
    /// READY and stayed up past the stability window, every heartbeat on the
    /// way answered. The clock is then between two heartbeats.
    ///
    /// # Panics
    ///
    /// When the policy does not reach a stable session that way.
    #[must_use]
    pub fn established() -> Self {
        let policy = Policy::new(PolicyConfig::default(), 0, SEED, t(0))
            .expect("the default configuration is valid");
        let mut shard = Self {
            policy,
            gate: IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0)),
            conn: ConnectionId::default(),
            now: 0,
            seq: 0,
        };
        shard.drain(0);
        assert_eq!(
            shard.event(50, Event::Opened).handled,
            Some(Handled::Accepted)
        );
        let sent = shard.event(60, hello());
        assert_eq!(sent.identifies, 1, "Identify is sent after Hello");
        shard.seq = 1;
        let ready = Event::Dispatch {
            seq: Some(1),
            event: Dispatch::Ready {
                session_id: "benchmark-session".to_owned(),
                resume_gateway_url: "wss://gateway-us-east1-b.discord.gg".to_owned(),
            },
        };
        assert_eq!(shard.event(200, ready).handled, Some(Handled::Accepted));
        let stable_at = 200 + shard.policy.config().stability.window_ms + 1;
        while shard
            .policy
            .poll_timeout()
            .is_some_and(|at| at.as_millis() <= stable_at)
        {
            shard.heartbeat();
        }
        shard.now = stable_at.max(shard.now);
        shard.policy.handle_timeout(t(shard.now));
        shard.drain(shard.now);
        assert_eq!(
            shard.policy.state(),
            PolicyState::Connected { stable: true }
        );
        shard
    }

    /// Drains every output at `at`, carrying each out as a driver would
    /// (recording the connection a `Connect` names, handing the rest to
    /// `black_box`), then reads the next wake-up.
    #[inline(always)]
    pub fn drain(&mut self, at: u64) -> Drained {
        let mut drained = Drained::default();
        while let Some(output) = self.policy.poll_output() {
            if let Output::Action(action) = &output {
                match action {
                    Action::Connect { connection, .. } => self.conn = *connection,
                    Action::Send { command, .. } => match command {
                        Command::Heartbeat { .. } => drained.heartbeats += 1,
                        Command::Identify => drained.identifies += 1,
                        Command::Resume { .. } => drained.resumes += 1,
                    },
                    Action::Identify { shard, request } => {
                        if let Some(answer) = self.gate.answer(t(at), *shard, *request) {
                            self.policy.handle_identify(t(at), answer);
                        }
                    }
                    Action::Close { .. }
                    | Action::Abort { .. }
                    | Action::GiveUp(_)
                    | Action::Probe(_) => {}
                }
            }
            black_box(output);
        }
        black_box(self.policy.poll_timeout());
        drained
    }

    /// Runs the timers due by `at` (draining what they ask for), feeds
    /// `event` about the current connection at `at`, then drains.
    #[inline(always)]
    pub fn event(&mut self, at: u64, event: Event) -> Drained {
        self.now = at;
        if self.policy.poll_timeout().is_some_and(|due| due <= t(at)) {
            self.policy.handle_timeout(t(at));
            self.drain(at);
        }
        let handled = self.policy.handle_event(t(at), self.conn, event);
        Drained {
            handled: Some(handled),
            ..self.drain(at)
        }
    }

    /// The gateway's next dispatch (op 0, the next sequence number), at `at`.
    #[inline(always)]
    pub fn dispatch_at(&mut self, at: u64) -> Drained {
        self.seq += 1;
        let event = Event::Dispatch {
            seq: Some(self.seq),
            event: Dispatch::Other,
        };
        self.event(at, event)
    }

    /// Sleeps until the policy's next wake-up (the heartbeat), and answers
    /// the heartbeat it sends with an ACK one round trip later.
    ///
    /// # Panics
    ///
    /// When the policy wants no wake-up or refuses the ACK.
    #[inline(always)]
    pub fn heartbeat(&mut self) -> Drained {
        let at = self
            .policy
            .poll_timeout()
            .expect("a connected policy has a heartbeat to send")
            .as_millis();
        self.now = at.max(self.now);
        self.policy.handle_timeout(t(self.now));
        let sent = self.drain(self.now);
        if sent.heartbeats > 0 {
            let acked = self.event(self.now + RTT_MS, Event::HeartbeatAck);
            assert_eq!(acked.handled, Some(Handled::Accepted));
        }
        sent
    }

    /// op 1 from the server and, when the policy answers it (its send
    /// budget allows one reply per window), the gateway's ACK of the
    /// heartbeat it sent.
    pub fn heartbeat_request(&mut self) -> Drained {
        let sent = self.event(self.now + 5, Event::HeartbeatRequest);
        if sent.heartbeats > 0 {
            let _ = self.event(self.now + RTT_MS, Event::HeartbeatAck);
        }
        sent
    }

    /// The server closes with [`RECONNECT_CODE`]; the policy plans, waits
    /// (not at all while the gateway's requests are free), reconnects and
    /// resumes; the gateway answers RESUMED. The link drops
    /// again shortly after, so the connection never proves stable.
    ///
    /// # Panics
    ///
    /// When the policy plans no reconnect.
    pub fn reconnect(&mut self) -> Drained {
        let closed = Event::Closed {
            code: Some(RECONNECT_CODE),
        };
        self.event(self.now, closed);
        // A close the gateway asked for after RESUMED is free: the policy
        // may have dialled at once (past the guard), with no wait at all.
        let at = if self.policy.connection().is_some() {
            self.now
        } else {
            let at = self
                .policy
                .poll_timeout()
                .expect("a planned reconnect has a time")
                .as_millis();
            self.now = at;
            self.policy.handle_timeout(t(at));
            self.drain(at);
            at
        };
        self.event(at + 2 * RTT_MS, Event::Opened);
        let sent = self.event(at + 3 * RTT_MS, hello());
        self.seq += 1;
        let resumed = Event::Dispatch {
            seq: Some(self.seq),
            event: Dispatch::Resumed,
        };
        self.event(at + 5 * RTT_MS, resumed);
        self.now = at + 6 * RTT_MS;
        sent
    }
}
