//! A small test driver for the policy.
//!
//! It keeps a virtual clock, runs the policy's timers before each event and
//! drains every output after each input (as the crate's run loop says),
//! answers identify requests with an in-process limiter at once, and records
//! everything else in order in a trace of `(time, Entry)` pairs, so a test
//! can read what happened since any point with [`Driver::mark`]. Outputs are
//! recorded as [`Out`], the policy's actions and notes in one flat enum.

// Each test file uses a different part of the driver.
#![allow(dead_code)]

use std::ops::RangeInclusive;

use reconnect_policy::{
    Action, CloseCode, Command, ConnectionId, Dispatch, Event, GiveUpReason, Handled,
    IdentifyLimiter, Note, Output, Policy, PolicyConfig, ReconnectPlan, Recovery,
    SessionStartLimit, Timestamp, UrlError,
};

/// The default base URL of `PolicyConfig`.
pub(crate) const BASE_URL: &str = "wss://gateway.discord.gg";
/// The resume URL every READY of these tests carries.
pub(crate) const RESUME_URL: &str = "wss://gateway-us-east1-b.discord.gg";
/// The session id every READY of these tests carries.
pub(crate) const SESSION_ID: &str = "session-abc";
/// The heartbeat interval the gateway announces (twilight's logs show it).
pub(crate) const INTERVAL_MS: u64 = 41_250;
/// One hour, in ms.
pub(crate) const HOUR_MS: u64 = 3_600_000;

/// A timestamp `ms` after the epoch.
pub(crate) const fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// READY for [`SESSION_ID`], with [`RESUME_URL`].
pub(crate) fn ready() -> Dispatch {
    Dispatch::Ready {
        session_id: SESSION_ID.to_owned(),
        resume_gateway_url: RESUME_URL.to_owned(),
    }
}

/// A server close with this code (`None`: the link dropped).
pub(crate) const fn closed(code: Option<u16>) -> Event {
    Event::Closed { code }
}

/// An output as these tests read it: every action but identify requests
/// (the driver answers those), and every note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Out {
    Connect {
        connection: ConnectionId,
        url: String,
        recovery: Recovery,
    },
    Send {
        connection: ConnectionId,
        command: Command,
    },
    Close {
        connection: ConnectionId,
        code: CloseCode,
    },
    Abort {
        connection: ConnectionId,
    },
    GiveUp(GiveUpReason),
    Plan(ReconnectPlan),
    ResumeUrlRefused {
        url: String,
        reason: UrlError,
    },
    /// Any other note, kept whole.
    Note(Note),
}

impl Out {
    /// The output as a test reads it; `None` for an identify or probe
    /// request.
    fn of(output: Output) -> Option<Self> {
        Some(match output {
            Output::Action(Action::Connect {
                connection,
                url,
                recovery,
            }) => Self::Connect {
                connection,
                url,
                recovery,
            },
            Output::Action(Action::Send {
                connection,
                command,
            }) => Self::Send {
                connection,
                command,
            },
            Output::Action(Action::Close { connection, code }) => Self::Close { connection, code },
            Output::Action(Action::Abort { connection }) => Self::Abort { connection },
            Output::Action(Action::GiveUp(reason)) => Self::GiveUp(reason),
            Output::Action(Action::Identify { .. } | Action::Probe(_)) => return None,
            Output::Note(Note::Planned(plan)) => Self::Plan(plan),
            Output::Note(Note::ResumeUrlRefused { url, reason }) => {
                Self::ResumeUrlRefused { url, reason }
            }
            Output::Note(other) => Self::Note(other),
        })
    }
}

/// One recorded step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// An event the driver fed, and the policy's verdict.
    In {
        connection: ConnectionId,
        event: Event,
        handled: Handled,
    },
    /// An output the policy asked for.
    Out(Out),
}

/// A `Connect` output, with the time it was emitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Connect {
    pub(crate) at: u64,
    pub(crate) connection: ConnectionId,
    pub(crate) url: String,
    pub(crate) recovery: Recovery,
}

/// One policy, its identify limiter, a clock and a trace.
pub(crate) struct Driver {
    pub(crate) policy: Policy,
    pub(crate) limiter: IdentifyLimiter,
    /// The driver's clock, in ms (it may be set backwards on purpose).
    pub(crate) now: u64,
    pub(crate) trace: Vec<(u64, Entry)>,
    /// The connection named by the last `Connect`.
    pub(crate) conn: Option<ConnectionId>,
    /// The `heartbeat_interval` sent in Hello.
    pub(crate) interval_ms: u64,
    /// Answer every heartbeat on the current connection with an ACK at once.
    pub(crate) auto_ack: bool,
}

impl Driver {
    /// A policy for shard 0 with seed 7, created at 0, drained once (so the
    /// first `Connect` is already in the trace).
    pub(crate) fn new(config: PolicyConfig) -> Self {
        Self::with_seed(config, 7)
    }

    pub(crate) fn with_seed(config: PolicyConfig, seed: u64) -> Self {
        let limiter = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0));
        Self::with_limiter(config, seed, limiter)
    }

    pub(crate) fn with_limiter(config: PolicyConfig, seed: u64, limiter: IdentifyLimiter) -> Self {
        Self::for_shard(config, 0, seed, limiter)
    }

    /// A policy for `shard` with `seed`, created at 0, drained once.
    pub(crate) fn for_shard(
        config: PolicyConfig,
        shard: u32,
        seed: u64,
        limiter: IdentifyLimiter,
    ) -> Self {
        let policy = Policy::new(config, shard, seed, t(0)).expect("the test config is valid");
        let mut driver = Self {
            policy,
            limiter,
            now: 0,
            trace: Vec::new(),
            conn: None,
            interval_ms: INTERVAL_MS,
            auto_ack: false,
        };
        driver.drain();
        driver
    }

    /// A default policy whose first connection is established: READY with
    /// seq 1, then dispatches 2..=`seq`.
    pub(crate) fn connected(seq: u64) -> Self {
        let mut driver = Self::new(PolicyConfig::default());
        driver.establish();
        driver.dispatches(2..=seq);
        driver
    }

    // ----- inputs -------------------------------------------------------

    /// Drains `poll_output` until `None`, answering identify requests with
    /// the limiter and recording every other output.
    pub(crate) fn drain(&mut self) {
        let mut ack = false;
        let mut drained = 0;
        while let Some(output) = self.policy.poll_output() {
            drained += 1;
            assert!(
                drained < 10_000,
                "poll_output never returns None: {output:?}"
            );
            if let Output::Action(Action::Identify { shard, request }) = output {
                if let Some(answer) = self.limiter.answer(t(self.now), shard, request) {
                    let handled = self.policy.handle_identify(t(self.now), answer);
                    assert_eq!(handled, Handled::Accepted, "{answer:?} to {request:?}");
                }
                continue;
            }
            let Some(output) = Out::of(output) else {
                continue;
            };
            match &output {
                Out::Connect { connection, .. } => self.conn = Some(*connection),
                Out::Send {
                    connection,
                    command: Command::Heartbeat { .. },
                } if Some(*connection) == self.conn => ack = self.auto_ack,
                _ => {}
            }
            self.trace.push((self.now, Entry::Out(output)));
        }
        if ack && self.policy.connection() == self.conn {
            let _ = self.send(Event::HeartbeatAck);
        }
    }

    /// Feeds an event about the current connection, then drains.
    pub(crate) fn send(&mut self, event: Event) -> Handled {
        let connection = self.conn.expect("no connection was asked for yet");
        self.send_to(connection, event)
    }

    /// Runs the timers due by now (a driver's timer fires before it reads
    /// a later frame), feeds an event about any connection, then drains.
    pub(crate) fn send_to(&mut self, connection: ConnectionId, event: Event) -> Handled {
        if self
            .policy
            .poll_timeout()
            .is_some_and(|at| at.as_millis() <= self.now)
        {
            self.policy.handle_timeout(t(self.now));
            self.drain();
        }
        let handled = self
            .policy
            .handle_event(t(self.now), connection, event.clone());
        self.trace.push((
            self.now,
            Entry::In {
                connection,
                event,
                handled,
            },
        ));
        self.drain();
        handled
    }

    /// A dispatch with sequence number `seq`.
    pub(crate) fn dispatch(&mut self, seq: u64, event: Dispatch) -> Handled {
        self.send(Event::Dispatch {
            seq: Some(seq),
            event,
        })
    }

    /// Ordinary dispatches with these sequence numbers, each accepted.
    pub(crate) fn dispatches(&mut self, seqs: RangeInclusive<u64>) {
        for seq in seqs {
            assert_eq!(self.dispatch(seq, Dispatch::Other), Handled::Accepted);
        }
    }

    /// Sets the clock (backwards too) and lets the policy catch up.
    pub(crate) fn set_time(&mut self, ms: u64) {
        self.now = ms;
        self.policy.handle_timeout(t(ms));
        self.drain();
    }

    /// Moves the clock forward by `ms` in one step.
    pub(crate) fn advance(&mut self, ms: u64) {
        self.set_time(self.now + ms);
    }

    /// Moves the clock forward by `ms`, waking the policy at every instant
    /// it asked for on the way (heartbeats, deadlines).
    pub(crate) fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        for _ in 0..100_000 {
            match self.policy.poll_timeout() {
                Some(at) if at.as_millis() <= end => {
                    self.set_time(at.as_millis().max(self.now));
                }
                _ => break,
            }
        }
        self.set_time(end);
    }

    /// Sleeps until the policy's next wake-up; `false` when it has none.
    pub(crate) fn wake(&mut self) -> bool {
        match self.policy.poll_timeout() {
            Some(at) => {
                self.set_time(at.as_millis().max(self.now));
                true
            }
            None => false,
        }
    }

    // ----- walking the handshake -----------------------------------------

    /// Opens the connection being dialled and delivers Hello; returns the
    /// command the policy sent (Identify or Resume), waking for the
    /// identify limiter if it has to.
    pub(crate) fn open(&mut self) -> Command {
        let from = self.mark();
        assert_eq!(self.send(Event::Opened), Handled::Accepted);
        let hello = Event::Hello {
            heartbeat_interval_ms: self.interval_ms,
        };
        assert_eq!(self.send(hello), Handled::Accepted);
        let (_, output) = self.expect_output(from, |o| {
            matches!(
                o,
                Out::Send {
                    command: Command::Identify | Command::Resume { .. },
                    ..
                }
            )
        });
        let Out::Send { command, .. } = output else {
            unreachable!()
        };
        command
    }

    /// From a pending `Connect` to a READY session with seq 1.
    pub(crate) fn establish(&mut self) {
        assert_eq!(self.open(), Command::Identify);
        assert_eq!(self.dispatch(1, ready()), Handled::Accepted);
        assert!(
            self.policy.state().is_connected(),
            "{:?}",
            self.policy.state()
        );
    }

    /// Waits for the next `Connect` (searching the trace from `from`), opens
    /// it and delivers Hello; returns the `Connect` and the command sent.
    pub(crate) fn reconnect(&mut self, from: usize) -> (Connect, Command) {
        let connect = self.next_connect(from);
        let command = self.open();
        (connect, command)
    }

    // ----- reading the trace ----------------------------------------------

    /// The current end of the trace.
    pub(crate) fn mark(&self) -> usize {
        self.trace.len()
    }

    /// The first output from `from` on that matches, waking the policy as
    /// long as none has appeared.
    pub(crate) fn expect_output(
        &mut self,
        from: usize,
        mut pred: impl FnMut(&Out) -> bool,
    ) -> (u64, Out) {
        let mut seen = from;
        for _ in 0..10_000 {
            let found = self.trace[seen..]
                .iter()
                .find_map(|(at, entry)| match entry {
                    Entry::Out(output) if pred(output) => Some((*at, output.clone())),
                    _ => None,
                });
            if let Some(found) = found {
                return found;
            }
            seen = self.trace.len();
            assert!(
                self.wake(),
                "the policy stopped ({:?}) before the expected output",
                self.policy.state()
            );
        }
        panic!("no expected output after 10 000 wake-ups");
    }

    /// The next `Connect` from `from` on, waking as needed.
    pub(crate) fn next_connect(&mut self, from: usize) -> Connect {
        let (at, output) = self.expect_output(from, |o| matches!(o, Out::Connect { .. }));
        let Out::Connect {
            connection,
            url,
            recovery,
        } = output
        else {
            unreachable!()
        };
        Connect {
            at,
            connection,
            url,
            recovery,
        }
    }

    /// Every output from `from` on.
    pub(crate) fn outputs_since(&self, from: usize) -> Vec<(u64, Out)> {
        self.trace[from..]
            .iter()
            .filter_map(|(at, entry)| match entry {
                Entry::Out(output) => Some((*at, output.clone())),
                Entry::In { .. } => None,
            })
            .collect()
    }

    pub(crate) fn connects_since(&self, from: usize) -> Vec<Connect> {
        self.outputs_since(from)
            .into_iter()
            .filter_map(|(at, output)| match output {
                Out::Connect {
                    connection,
                    url,
                    recovery,
                } => Some(Connect {
                    at,
                    connection,
                    url,
                    recovery,
                }),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn plans_since(&self, from: usize) -> Vec<(u64, ReconnectPlan)> {
        self.outputs_since(from)
            .into_iter()
            .filter_map(|(at, output)| match output {
                Out::Plan(plan) => Some((at, plan)),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn commands_since(&self, from: usize) -> Vec<(u64, Command)> {
        self.outputs_since(from)
            .into_iter()
            .filter_map(|(at, output)| match output {
                Out::Send { command, .. } => Some((at, command)),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn closes_since(&self, from: usize) -> Vec<(u64, ConnectionId, CloseCode)> {
        self.outputs_since(from)
            .into_iter()
            .filter_map(|(at, output)| match output {
                Out::Close { connection, code } => Some((at, connection, code)),
                _ => None,
            })
            .collect()
    }

    /// The one plan emitted from `from` on.
    pub(crate) fn only_plan_since(&self, from: usize) -> (u64, ReconnectPlan) {
        let plans = self.plans_since(from);
        assert_eq!(plans.len(), 1, "expected exactly one plan: {plans:?}");
        plans[0]
    }
}
