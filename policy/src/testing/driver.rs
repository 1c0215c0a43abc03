//! The checking driver behind [`run`](super::run): it plays the gateway and
//! the sockets for one [`Case`], carries out the policy's outputs and checks
//! every guarantee the case asks for.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use crate::{
    Action, CloseCode, Command, ConnectionId, Dispatch, Event, GiveUpReason, Handled,
    IdentifyAnswer, IdentifyLimiter, IdentifyRequest, Note, Output, Policy, PolicyConfig,
    PolicyState, PolicyStats, ReconnectPlan, Recovery, Timestamp,
};

use super::{
    Case, Ev, GATEWAY_URL, Kind, Prop, RESUME_URLS, SeqSpec, Step, Trace, session_id,
    usable_session,
};

/// History lines shown with a failure.
const LOG_TAIL: usize = 40;

/// Outputs one drain may produce before the driver calls it a livelock.
const DRAIN_CAP: usize = 1_000;

/// A broken guarantee (or a difference between the twins), with its
/// message. Boxed: a check that passes then costs one null-pointer test,
/// where a bare `String` would cost a comparison of its capacity (and, in
/// the fuzz target, a call into the comparison tracing) at every `?`.
type Failure = Box<String>;

type Res = Result<(), Failure>;

const CEILING: u64 = Timestamp::CEILING.as_millis();

fn ts(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// One line of the history shown with a failure. Recorded only by the
/// replay that explains a failure ([`Record::history`]): a run that passes
/// never builds one.
#[derive(Clone, Debug)]
enum Logged {
    Wake(u64),
    In {
        at: u64,
        conn: ConnectionId,
        stale: bool,
        event: Event,
        handled: Handled,
    },
    Out {
        at: u64,
        output: Output,
    },
    Answer {
        at: u64,
        answer: IdentifyAnswer,
        handled: Handled,
    },
}

impl fmt::Display for Logged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wake(at) => write!(f, "{at}ms  wake"),
            Self::In {
                at,
                conn,
                stale,
                event,
                handled,
            } => {
                let stale = if *stale { "stale " } else { "" };
                write!(f, "{at}ms  -> {stale}{conn} {event:?}: {handled:?}")
            }
            Self::Out { at, output } => write!(f, "{at}ms  <- {output:?}"),
            Self::Answer {
                at,
                answer,
                handled,
            } => write!(f, "{at}ms  -> {answer:?}: {handled:?}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sock {
    Dialing,
    Open,
    Closing(CloseCode),
}

#[derive(Clone, Copy, Debug)]
struct Transport {
    id: ConnectionId,
    sock: Sock,
    recovery: Recovery,
    /// Hello was accepted.
    hello: bool,
    /// Identify or Resume was sent on it.
    handshake: Option<Recovery>,
    /// READY or RESUMED answered the handshake.
    answered: bool,
}

/// What a run records beyond its checks.
#[derive(Clone, Copy, Debug)]
pub(super) struct Record {
    /// Keep every output with its time (the [`Trace`] a run returns).
    pub(super) trace: bool,
    /// Keep the last [`LOG_TAIL`] inputs and outputs for failure messages.
    pub(super) history: bool,
    /// Run a second policy built from the same set-up and fed the same
    /// inputs; every answer and output of the two must agree.
    pub(super) twin: bool,
}

pub(super) struct Driver<'a> {
    case: &'a Case,
    checks: u32,
    record: Record,
    policy: Policy,
    /// The determinism check's second policy ([`Record::twin`]). Boxed:
    /// the driver asks whether there is one at every input and output, and
    /// for a box that is a null-pointer test, where `Option<Policy>` would
    /// cost a comparison of its tag (and, in the fuzz target, a call into
    /// the comparison tracing).
    twin: Option<Box<Policy>>,
    limiter: IdentifyLimiter,
    /// What the driver's clock reads (may step back, may pass the ceiling).
    clock: u64,
    /// What the policy sees: the latest reading, capped at
    /// `Timestamp::CEILING` (documented: later times are read as it).
    now: u64,
    live: Vec<Transport>,
    ended: Vec<ConnectionId>,
    seen: BTreeSet<ConnectionId>,
    connects: u64,
    /// Every output so far, when [`Record::trace`] asks for them.
    trace: Trace,
    /// How many outputs the policy produced.
    outputs: usize,
    last_connect_at: Option<u64>,
    plan: Option<ReconnectPlan>,
    /// The code of the last `Close` since the last `Connect`.
    last_close: Option<CloseCode>,
    gave_up: Option<GiveUpReason>,
    /// The last sequence number accepted since the last Identify or READY.
    seq: Option<u64>,
    /// The session id of the last READY the policy took.
    session: Option<String>,
    server_seq: u64,
    /// The drain cap was hit in a run that does not check liveness.
    halted: bool,
    /// The recent inputs and outputs, for failure messages.
    log: VecDeque<Logged>,
}

impl<'a> Driver<'a> {
    pub(super) fn new(case: &'a Case, checks: u32, record: Record) -> Result<Self, String> {
        let start = ts(case.start);
        let config = Arc::new(case.config.clone());
        let build = || {
            Policy::new(Arc::clone(&config), case.shard, case.seed, start)
                .map_err(|e| format!("config refused: {e}"))
        };
        let policy = build()?;
        let twin = if record.twin {
            Some(Box::new(build()?))
        } else {
            None
        };
        Ok(Self {
            case,
            checks,
            record,
            policy,
            twin,
            limiter: IdentifyLimiter::new(case.limit, start),
            clock: case.start,
            now: case.start.min(CEILING),
            live: Vec::new(),
            ended: Vec::new(),
            seen: BTreeSet::new(),
            connects: 0,
            trace: Vec::new(),
            outputs: 0,
            last_connect_at: None,
            plan: None,
            last_close: None,
            gave_up: None,
            seq: None,
            session: None,
            server_seq: 0,
            halted: false,
            log: if record.history {
                VecDeque::with_capacity(LOG_TAIL + 1)
            } else {
                VecDeque::new()
            },
        })
    }

    fn check(&self, prop: Prop, ok: bool, msg: impl FnOnce() -> String) -> Res {
        if ok || self.checks & prop.bit() == 0 {
            Ok(())
        } else {
            let recent: Vec<String> = self.log.iter().map(Logged::to_string).collect();
            Err(Box::new(format!(
                "[{prop:?}] at {}ms: {}\nrecent history:\n  {}",
                self.now,
                msg(),
                recent.join("\n  ")
            )))
        }
    }

    /// Keeps the last [`LOG_TAIL`] lines of history, when the run records
    /// them; `line` is built only then.
    fn log(&mut self, line: impl FnOnce() -> Logged) {
        if !self.record.history {
            return;
        }
        if self.log.len() == LOG_TAIL {
            self.log.pop_front();
        }
        self.log.push_back(line());
    }

    /// The determinism check: the twin (when there is one) answered or
    /// produced `theirs` where the policy gave `ours`.
    fn same<T: PartialEq + fmt::Debug>(&self, what: &str, ours: &T, theirs: Option<&T>) -> Res {
        match theirs {
            Some(theirs) if theirs != ours => Err(Box::new(format!(
                "same seed and inputs, different outputs: {what} {ours:?} once and {theirs:?} the other time"
            ))),
            _ => Ok(()),
        }
    }

    /// Hands `event` to the policy (and its twin).
    fn handle_event(&mut self, id: ConnectionId, event: &Event) -> Result<Handled, Failure> {
        let now = ts(self.clock);
        let Some(twin) = self.twin.as_deref_mut() else {
            return Ok(self.policy.handle_event(now, id, event.clone()));
        };
        let theirs = twin.handle_event(now, id, event.clone());
        let ours = self.policy.handle_event(now, id, event.clone());
        self.same("the answer to an event", &ours, Some(&theirs))?;
        Ok(ours)
    }

    /// Runs the policy's (and its twin's) timers due by the driver's clock.
    fn handle_timeout(&mut self) {
        let now = ts(self.clock);
        if let Some(twin) = self.twin.as_deref_mut() {
            twin.handle_timeout(now);
        }
        self.policy.handle_timeout(now);
    }

    /// Hands an identify answer to the policy (and its twin).
    fn handle_identify(&mut self, answer: IdentifyAnswer) -> Result<Handled, Failure> {
        let now = ts(self.clock);
        let Some(twin) = self.twin.as_deref_mut() else {
            return Ok(self.policy.handle_identify(now, answer));
        };
        let theirs = twin.handle_identify(now, answer);
        let ours = self.policy.handle_identify(now, answer);
        self.same("the answer to an identify answer", &ours, Some(&theirs))?;
        Ok(ours)
    }

    /// The twin's next output must be `ours`, the policy's (none when the
    /// policy has none). Compared as outputs only when both have one, so
    /// the common case costs one comparison of two outputs and the end of
    /// a drain none. `ours` is a reference, so telling `Some` from `None`
    /// is a null-pointer test.
    fn twin_agrees(&mut self, ours: Option<&Output>) -> Res {
        let Some(twin) = self.twin.as_deref_mut() else {
            return Ok(());
        };
        let theirs = twin.poll_output();
        let agree = match (ours, &theirs) {
            (Some(ours), Some(theirs)) => ours == theirs,
            (None, None) => true,
            _ => false,
        };
        if agree {
            Ok(())
        } else {
            Err(Box::new(format!(
                "same seed and inputs, different outputs: the next output {ours:?} once and {theirs:?} the other time"
            )))
        }
    }

    fn config(&self) -> &PolicyConfig {
        &self.case.config
    }

    fn set_clock(&mut self, ms: u64) {
        self.clock = ms;
        self.now = self.now.max(ms.min(CEILING));
    }

    fn find(&self, id: ConnectionId) -> Option<usize> {
        self.live.iter().position(|t| t.id == id)
    }

    fn end(&mut self, index: usize) {
        let t = self.live.remove(index);
        self.ended.push(t.id);
    }

    /// Runs every step, checking after each; returns the outputs (when
    /// [`Record::trace`] keeps them) and the policy's counters.
    pub(super) fn run(mut self) -> Result<(Trace, PolicyStats), String> {
        self.run_steps().map_err(|failure| *failure)?;
        let stats = self.policy.stats();
        let twin_stats = self.twin.as_deref().map(Policy::stats);
        self.same("the counters", &stats, twin_stats.as_ref())
            .map_err(|failure| *failure)?;
        Ok((self.trace, stats))
    }

    fn run_steps(&mut self) -> Res {
        self.drain()?;
        self.after_step()?;
        for (i, step) in self.case.steps.iter().enumerate() {
            if self.halted {
                break;
            }
            self.step(step)
                .and_then(|()| self.after_step())
                .map_err(|e| Box::new(format!("step {i} ({step:?}): {e}")))?;
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Res {
        match step {
            Step::Advance(ms) => self.wake(self.clock.saturating_add(*ms)),
            Step::AdvanceToTimeout => self.sleep_until_timeout(),
            Step::Back(ms) => self.wake(self.clock.saturating_sub(*ms)),
            Step::NearEnd(ms) => self.wake(u64::MAX - ms),
            Step::Progress(ack) => match self.progress(*ack) {
                Some(ev) => self.deliver(&ev),
                None => self.sleep_until_timeout(),
            },
            Step::On(ev) => self.deliver(ev),
            Step::Stale(pick, ev) => self.deliver_stale(*pick, ev),
        }
    }

    fn wake(&mut self, ms: u64) -> Res {
        self.set_clock(ms);
        let at = self.clock;
        self.log(|| Logged::Wake(at));
        self.handle_timeout();
        self.drain()
    }

    /// Sleeps until the policy's wake-up time. `Timestamp::MAX` means
    /// never (its documented meaning), so the driver does not wake for it.
    fn sleep_until_timeout(&mut self) -> Res {
        match self.policy.poll_timeout() {
            Some(at) if at < Timestamp::MAX => self.wake(at.as_millis().max(self.clock)),
            _ => Ok(()),
        }
    }

    /// Whether an honest gateway could send this dispatch on `t` now.
    fn in_order(t: &Transport, kind: Kind) -> bool {
        match kind {
            Kind::Ready { .. } => {
                t.sock == Sock::Open && t.handshake == Some(Recovery::Reidentify) && !t.answered
            }
            Kind::Resumed => {
                t.sock == Sock::Open && t.handshake == Some(Recovery::Resume) && !t.answered
            }
            Kind::Other => t.answered,
        }
    }

    /// What an honest gateway does next on the live socket.
    fn progress(&self, ack: bool) -> Option<Ev> {
        let t = self.live.last()?;
        match (t.sock, t.hello, t.handshake, t.answered) {
            (Sock::Dialing, ..) => Some(Ev::Opened),
            (Sock::Closing(_), ..) => Some(Ev::CloseAck),
            (Sock::Open, false, ..) => Some(Ev::Hello(41_250)),
            // Waiting for an identify slot: only time helps.
            (Sock::Open, true, None, _) => None,
            (Sock::Open, true, Some(Recovery::Reidentify), false) => Some(Ev::Dispatch(
                SeqSpec::Next(1),
                Kind::Ready {
                    session: usize::from(ack),
                    url: 0,
                },
            )),
            (Sock::Open, true, Some(Recovery::Resume), false) => {
                Some(Ev::Dispatch(SeqSpec::Next(1), Kind::Resumed))
            }
            (Sock::Open, true, Some(_), true) if ack => Some(Ev::Ack),
            (Sock::Open, true, Some(_), true) => Some(Ev::Dispatch(SeqSpec::Next(1), Kind::Other)),
        }
    }

    fn seq_for(&mut self, spec: SeqSpec, ready: bool) -> Option<u64> {
        match spec {
            SeqSpec::Absent => None,
            SeqSpec::Next(delta) => {
                self.server_seq = if ready {
                    1
                } else {
                    self.server_seq.saturating_add(delta)
                };
                Some(self.server_seq)
            }
            SeqSpec::Repeat => Some(self.server_seq),
            SeqSpec::Back(k) => Some(self.server_seq.saturating_sub(k)),
            SeqSpec::Huge(k) => Some(u64::MAX - k),
        }
    }

    fn event(&mut self, ev: &Ev, sock: Option<Sock>) -> Event {
        match ev {
            Ev::Opened => Event::Opened,
            Ev::ConnectFailed(failure) => Event::ConnectFailed { failure: *failure },
            Ev::Hello(interval) => Event::Hello {
                heartbeat_interval_ms: *interval,
            },
            Ev::Dispatch(spec, kind) => {
                let seq = self.seq_for(*spec, matches!(kind, Kind::Ready { .. }));
                let event = match *kind {
                    Kind::Ready { session, url } => Dispatch::Ready {
                        session_id: session_id(session),
                        resume_gateway_url: RESUME_URLS[url % RESUME_URLS.len()].to_owned(),
                    },
                    Kind::Resumed => Dispatch::Resumed,
                    Kind::Other => Dispatch::Other,
                };
                Event::Dispatch { seq, event }
            }
            Ev::Ack => Event::HeartbeatAck,
            Ev::HeartbeatRequest => Event::HeartbeatRequest,
            Ev::Reconnect => Event::Reconnect,
            Ev::InvalidSession(resumable) => Event::InvalidSession {
                resumable: *resumable,
            },
            Ev::OtherFrame => Event::OtherFrame,
            Ev::Closed(code) => Event::Closed { code: *code },
            Ev::CloseAck => Event::Closed {
                code: match sock {
                    Some(Sock::Closing(code)) => Some(code.as_u16()),
                    _ => None,
                },
            },
        }
    }

    /// Runs the timers due by now, then delivers `ev` on the live socket.
    fn deliver(&mut self, ev: &Ev) -> Res {
        self.handle_timeout();
        self.drain()?;
        if self.halted {
            return Ok(());
        }
        match self.live.len() {
            0 => match self.ended.last() {
                // No socket: the event can only be about the last one.
                Some(&id) => self.deliver_stale_to(id, ev),
                None => Ok(()),
            },
            _ => {
                let index = self.live.len() - 1;
                if let Ev::Dispatch(_, kind) = ev
                    && self.case.honest
                    && !Self::in_order(&self.live[index], *kind)
                {
                    return Ok(());
                }
                let event = self.event(ev, Some(self.live[index].sock));
                self.deliver_live(index, event)
            }
        }
    }

    fn deliver_live(&mut self, index: usize, event: Event) -> Res {
        let t = self.live[index];
        let handled = self.handle_event(t.id, &event)?;
        let at = self.clock;
        self.log(|| Logged::In {
            at,
            conn: t.id,
            stale: false,
            event: event.clone(),
            handled,
        });
        self.check(Prop::Lifecycle, handled != Handled::Stale, || {
            format!("{event:?} on the live socket {} was called stale", t.id)
        })?;
        let mut fatal = None;
        match &event {
            Event::Opened if t.sock == Sock::Dialing => self.live[index].sock = Sock::Open,
            Event::ConnectFailed { .. } if t.sock == Sock::Dialing => self.end(index),
            Event::Opened | Event::ConnectFailed { .. } => {
                self.check(Prop::Lifecycle, handled == Handled::Ignored, || {
                    format!("{event:?} on a {:?} socket was {handled:?}", t.sock)
                })?;
            }
            Event::Hello { .. } if handled == Handled::Accepted => {
                self.live[index].hello = true;
            }
            Event::Dispatch { seq, event: kind } => {
                if handled == Handled::Accepted
                    && let Some(s) = *seq
                {
                    self.seq = Some(self.seq.map_or(s, |last| last.max(s)));
                }
                let handshaking_or_active = t.sock == Sock::Open && t.handshake.is_some();
                match kind {
                    Dispatch::Ready {
                        session_id,
                        resume_gateway_url,
                    } if handshaking_or_active => {
                        // A new session: its numbering starts with READY.
                        self.seq = if handled == Handled::Accepted {
                            *seq
                        } else {
                            None
                        };
                        self.session = usable_session(session_id, resume_gateway_url)
                            .then(|| session_id.clone());
                        self.live[index].answered = true;
                    }
                    Dispatch::Resumed if handshaking_or_active && !t.answered => {
                        self.live[index].answered = true;
                    }
                    _ => {}
                }
            }
            Event::Closed { code } => {
                self.end(index);
                fatal = code.map(CloseCode::from_u16).filter(|c| c.is_fatal());
            }
            _ => {}
        }
        self.drain()?;
        if let Some(code) = fatal {
            let expected = GiveUpReason::FatalCloseCode { code };
            self.check(Prop::Fatal, self.gave_up == Some(expected), || {
                format!(
                    "close {code} on the current socket {} did not give up (gave up: {:?})",
                    t.id, self.gave_up
                )
            })?;
            self.check(Prop::Fatal, self.policy.state().is_terminal(), || {
                format!("after close {code} the state is {:?}", self.policy.state())
            })?;
        }
        Ok(())
    }

    fn deliver_stale(&mut self, pick: u8, ev: &Ev) -> Res {
        self.handle_timeout();
        self.drain()?;
        let p = u64::from(pick);
        let id = match pick % 3 {
            0 if !self.ended.is_empty() => self.ended[usize::from(pick / 3) % self.ended.len()],
            0 | 1 => ConnectionId(self.connects + p),
            _ => ConnectionId(u64::MAX - p),
        };
        self.deliver_stale_to(id, ev)
    }

    fn deliver_stale_to(&mut self, id: ConnectionId, ev: &Ev) -> Res {
        if self.find(id).is_some() {
            return Ok(());
        }
        // The server counter is not the stale socket's: keep it.
        let server_seq = self.server_seq;
        let event = self.event(ev, None);
        self.server_seq = server_seq;
        let before = self.outputs;
        let handled = self.handle_event(id, &event)?;
        let at = self.clock;
        self.log(|| Logged::In {
            at,
            conn: id,
            stale: true,
            event: event.clone(),
            handled,
        });
        self.check(Prop::Lifecycle, handled == Handled::Stale, || {
            format!("{event:?} on old connection {id} was {handled:?}, not Stale")
        })?;
        self.drain()?;
        self.check(Prop::Lifecycle, self.outputs == before, || {
            let produced = self.outputs - before;
            match self.trace.get(self.trace.len().saturating_sub(produced)..) {
                Some(outputs) if self.record.trace => {
                    format!("stale {event:?} on {id} produced {outputs:?}")
                }
                _ => format!("stale {event:?} on {id} produced {produced} outputs"),
            }
        })
    }

    /// Drains `poll_output` until `None`, carrying out each output; the
    /// twin's outputs must be the same. The policy's output is unwrapped
    /// once, and the twin's compared by reference to it: each output's tag
    /// is tested as few times as the loop allows.
    fn drain(&mut self) -> Res {
        let mut count = 0;
        loop {
            let Some(output) = self.policy.poll_output() else {
                self.twin_agrees(None)?;
                break;
            };
            self.twin_agrees(Some(&output))?;
            count += 1;
            if count > DRAIN_CAP {
                self.check(Prop::Liveness, false, || {
                    format!("poll_output still returning outputs after {DRAIN_CAP} at one instant")
                })?;
                self.halted = true;
                return Ok(());
            }
            let at = self.now;
            self.log(|| Logged::Out {
                at,
                output: output.clone(),
            });
            self.outputs += 1;
            self.on_output(&output)?;
            if self.record.trace {
                self.trace.push((at, output));
            }
        }
        if self.case.auto_close
            && let Some(index) = self
                .live
                .iter()
                .position(|t| matches!(t.sock, Sock::Closing(_)))
        {
            let event = self.event(&Ev::CloseAck, Some(self.live[index].sock));
            return self.deliver_live(index, event);
        }
        Ok(())
    }

    fn on_output(&mut self, output: &Output) -> Res {
        match output {
            Output::Action(action) => self.on_action(action),
            Output::Note(Note::Planned(plan)) => self.check_plan(plan),
            Output::Note(Note::IdentifyLoop {
                rejected, until, ..
            }) => {
                // A loop only after the configured rejections, and only
                // with its long wait.
                let rule = self.config().identify_loop;
                let now = self.now;
                self.check(
                    Prop::Plans,
                    *rejected >= rule.max_rejected
                        && until.as_millis() >= now.saturating_add(rule.wait_ms),
                    || format!("identify loop note {output:?} against {rule:?} at {now}"),
                )
            }
            Output::Note(Note::ResumeUrlRefused { url, .. }) => {
                // Only the URLs outside the base URL's domain or scheme.
                self.check(
                    Prop::Lifecycle,
                    url != RESUME_URLS[0] && RESUME_URLS[1..].contains(&url.as_str()),
                    || format!("refused the resume URL {url:?}"),
                )
            }
        }
    }

    /// Answers an identify request with the in-process limiter, at once.
    fn on_identify(&mut self, shard: u32, request: IdentifyRequest) -> Res {
        self.check(Prop::Lifecycle, shard == self.case.shard, || {
            format!(
                "{request:?} for shard {shard}, the policy runs {}",
                self.case.shard
            )
        })?;
        if let Some(answer) = self.limiter.answer(ts(self.clock), shard, request) {
            let handled = self.handle_identify(answer)?;
            let at = self.clock;
            self.log(|| Logged::Answer {
                at,
                answer,
                handled,
            });
            // A start slot is asked for only with nothing else pending, so
            // its answer is always awaited. An identify grant or retry may
            // find the request moot, but only when a timer due in the same
            // wake-up (a driver that woke late runs them all at once) has
            // already ended the wait: a policy still waiting for the slot
            // must take the answer.
            let still_waiting = matches!(
                self.policy.state(),
                PolicyState::WaitingForIdentifySlot { .. }
            );
            let expected = matches!(answer, IdentifyAnswer::StartAt(_)) || still_waiting;
            self.check(
                Prop::Lifecycle,
                handled == Handled::Accepted || !expected,
                || format!("the answer {answer:?} to {request:?} was {handled:?}"),
            )?;
        }
        Ok(())
    }

    fn on_action(&mut self, action: &Action) -> Res {
        let now = self.now;
        let guard = self.config().guard_ms;
        match action {
            Action::Identify { shard, request } => self.on_identify(*shard, *request)?,
            Action::Probe(request) => self.check(Prop::Lifecycle, false, || {
                format!("a lone policy asked the probe coordinator: {request:?}")
            })?,
            Action::Connect {
                connection,
                url,
                recovery,
            } => {
                self.check(Prop::SingleFlight, self.live.is_empty(), || {
                    format!(
                        "Connect {connection} while {:?} is still in flight",
                        self.live
                    )
                })?;
                if let Some(reason) = self.gave_up {
                    let prop = match reason {
                        GiveUpReason::FatalCloseCode { .. } => Prop::Fatal,
                        _ => Prop::Lifecycle,
                    };
                    self.check(prop, false, || {
                        format!("Connect {connection} after GiveUp({reason:?})")
                    })?;
                }
                if let Some(last) = self.last_connect_at {
                    self.check(Prop::Guard, now >= last.saturating_add(guard), || {
                        format!(
                            "Connect {connection} {}ms after the previous one (guard {guard}ms)",
                            now - last
                        )
                    })?;
                }
                if self.connects > 0 {
                    let plan = self.plan.take();
                    self.check(Prop::Plans, plan.is_some(), || {
                        format!("Connect {connection} without a Plan since the last Connect")
                    })?;
                    if let Some(plan) = plan {
                        self.check(Prop::Plans, now >= plan.at.as_millis(), || {
                            format!("Connect {connection} before the plan's time {}", plan.at)
                        })?;
                        self.check(Prop::Plans, *recovery == plan.recovery, || {
                            format!(
                                "Connect {connection} does {recovery:?}, the plan said {plan:?}"
                            )
                        })?;
                    }
                }
                if *recovery == Recovery::Resume
                    && let Some(code) = self.last_close
                {
                    self.check(
                        Prop::ResumableClose,
                        code.keeps_session_when_sent_by_client(),
                        || format!("closed with {code} before resuming on {connection}"),
                    )?;
                }
                let fresh = self.seen.insert(*connection);
                self.check(Prop::Lifecycle, fresh, || {
                    format!("connection id {connection} reused")
                })?;
                if *recovery == Recovery::Reidentify {
                    self.check(Prop::Lifecycle, url == GATEWAY_URL, || {
                        format!("identifying connection {connection} goes to {url}")
                    })?;
                }
                self.live.push(Transport {
                    id: *connection,
                    sock: Sock::Dialing,
                    recovery: *recovery,
                    hello: false,
                    handshake: None,
                    answered: false,
                });
                self.last_close = None;
                self.last_connect_at = Some(now);
                self.connects += 1;
            }
            Action::Send {
                connection,
                command,
            } => {
                let index = self.find(*connection);
                let t = index.map(|i| self.live[i]);
                self.check(
                    Prop::Lifecycle,
                    t.as_ref().is_some_and(|t| t.sock == Sock::Open && t.hello),
                    || format!("{command:?} on {connection}, which is {t:?}"),
                )?;
                let (Some(index), Some(t)) = (index, t) else {
                    return Ok(());
                };
                match command {
                    Command::Identify => {
                        self.check(
                            Prop::Lifecycle,
                            t.handshake.is_none() && t.recovery == Recovery::Reidentify,
                            || format!("Identify on {t:?}"),
                        )?;
                        self.live[index].handshake = Some(Recovery::Reidentify);
                        self.seq = None;
                        self.session = None;
                    }
                    Command::Resume { session_id, seq } => {
                        self.check(
                            Prop::Lifecycle,
                            t.handshake.is_none() && t.recovery == Recovery::Resume,
                            || format!("Resume on {t:?}"),
                        )?;
                        self.check(
                            Prop::ResumeSeq,
                            self.session.as_ref() == Some(session_id),
                            || {
                                format!(
                                    "Resume names session {session_id:?}, the last READY gave {:?}",
                                    self.session
                                )
                            },
                        )?;
                        self.check(Prop::ResumeSeq, *seq == self.seq.unwrap_or(0), || {
                            format!(
                                "Resume carries seq {seq}, the last accepted was {:?}",
                                self.seq
                            )
                        })?;
                        self.live[index].handshake = Some(Recovery::Resume);
                    }
                    Command::Heartbeat { seq } => {
                        if t.handshake.is_some() {
                            self.check(Prop::ResumeSeq, *seq == self.seq, || {
                                format!(
                                    "Heartbeat carries {seq:?}, the last accepted was {:?}",
                                    self.seq
                                )
                            })?;
                        }
                    }
                }
            }
            Action::Close { connection, code } => {
                self.check(Prop::Lifecycle, !code.is_fatal(), || {
                    format!("Close {connection} with the fatal code {code}")
                })?;
                let index = self.find(*connection);
                self.check(
                    Prop::Lifecycle,
                    index.is_some_and(|i| self.live[i].sock == Sock::Open),
                    || {
                        format!(
                            "Close {connection} which is {:?}",
                            index.map(|i| &self.live[i])
                        )
                    },
                )?;
                if let Some(i) = index {
                    self.live[i].sock = Sock::Closing(*code);
                }
                self.last_close = Some(*code);
            }
            Action::Abort { connection } => {
                let index = self.find(*connection);
                self.check(
                    Prop::Lifecycle,
                    index.is_some_and(|i| {
                        matches!(self.live[i].sock, Sock::Dialing | Sock::Closing(_))
                    }),
                    || {
                        format!(
                            "Abort {connection} which is {:?}",
                            index.map(|i| &self.live[i])
                        )
                    },
                )?;
                if let Some(i) = index {
                    self.end(i);
                }
            }
            Action::GiveUp(reason) => {
                self.check(Prop::Lifecycle, self.live.is_empty(), || {
                    format!("GiveUp while {:?} is still in flight", self.live)
                })?;
                self.check(Prop::Lifecycle, self.gave_up.is_none(), || {
                    format!("GiveUp({reason:?}) after GiveUp({:?})", self.gave_up)
                })?;
                let limits = self.config().give_up;
                let justified = match *reason {
                    GiveUpReason::FatalCloseCode { code } => code.is_fatal(),
                    GiveUpReason::Unauthorized { status } => matches!(status, 401 | 403),
                    GiveUpReason::RetriesExhausted { retries } => {
                        limits.max_retries == Some(retries)
                    }
                    GiveUpReason::TimeExhausted { elapsed_ms } => {
                        limits.max_elapsed_ms.is_some_and(|max| elapsed_ms >= max)
                    }
                    GiveUpReason::IdentifyLoop { rejected, .. } => {
                        limits.on_identify_loop
                            && rejected >= self.config().identify_loop.max_rejected
                    }
                };
                self.check(Prop::Lifecycle, justified, || {
                    format!("GiveUp({reason:?}) is not justified by {limits:?}")
                })?;
                self.gave_up = Some(*reason);
            }
        }
        Ok(())
    }

    fn check_plan(&mut self, plan: &ReconnectPlan) -> Res {
        let now = self.now;
        let backoff = self.config().backoff;
        let guard = self.config().guard_ms;
        self.check(Prop::Lifecycle, self.live.is_empty(), || {
            format!("Plan while {:?} is still in flight", self.live)
        })?;
        self.check(Prop::Plans, self.plan.is_none(), || {
            format!(
                "Plan {plan:?} after Plan {:?} with no Connect between",
                self.plan
            )
        })?;
        // A counted reconnect adds a failure; a free one (a request of the
        // server) leaves the count as it was, which may be 0.
        self.check(Prop::Plans, plan.retry >= 1 || !plan.counted, || {
            format!("counted Plan with retry 0: {plan:?}")
        })?;
        self.check(
            Prop::Plans,
            plan.decision.recovery() == Some(plan.recovery),
            || format!("Plan's recovery disagrees with its decision: {plan:?}"),
        )?;
        let (low, high) = backoff.bounds(plan.retry);
        // A request of the server that did not count draws no backoff
        // (documented); a counted one draws within the strategy's bounds.
        // While a lost session is likely resumable, a draw above
        // `max_wait_while_resumable_ms` is redrawn in its upper half
        // (documented on `ResumeBreaker`).
        let resumable_max = self.config().resume.max_wait_while_resumable_ms;
        let short_ok = plan.recovery == Recovery::Resume
            && resumable_max > 0
            && resumable_max < high
            && (resumable_max / 2..=resumable_max).contains(&plan.backoff_ms);
        let drawn_ok = if plan.counted {
            (low..=high).contains(&plan.backoff_ms) || short_ok
        } else {
            plan.backoff_ms == 0
        };
        self.check(Prop::Plans, drawn_ok, || {
            format!(
                "backoff {}ms outside {low}..={high} for {plan:?}",
                plan.backoff_ms
            )
        })?;
        self.check(Prop::Plans, plan.backoff_ms <= backoff.cap_ms, || {
            format!(
                "backoff {}ms above the cap {}",
                plan.backoff_ms, backoff.cap_ms
            )
        })?;
        let wait = plan.backoff_ms.max(plan.decision.protocol_delay_ms());
        self.check(
            Prop::Plans,
            plan.at.as_millis() >= now.saturating_add(wait),
            || format!("plan at {} earlier than now + {wait}ms: {plan:?}", plan.at),
        )?;
        if let Some(last) = self.last_connect_at {
            self.check(
                Prop::Guard,
                plan.at.as_millis() >= last.saturating_add(guard),
                || {
                    format!(
                        "plan at {} within the guard of the Connect at {last}",
                        plan.at
                    )
                },
            )?;
        }
        self.plan = Some(*plan);
        Ok(())
    }

    fn after_step(&mut self) -> Res {
        if self.halted {
            return Ok(());
        }
        // Read once: the policy's state does not change between the checks.
        let wake_up = self.policy.poll_timeout();
        if let Some(reason) = self.gave_up {
            let prop = match reason {
                GiveUpReason::FatalCloseCode { .. } => Prop::Fatal,
                _ => Prop::Lifecycle,
            };
            let state = self.policy.state();
            self.check(prop, state.is_terminal(), || {
                format!("gave up ({reason:?}) but the state is {state:?}")
            })?;
            self.check(prop, wake_up.is_none(), || {
                format!("gave up ({reason:?}) but wants a wake-up at {wake_up:?}")
            })?;
        }
        if let Some(at) = wake_up {
            self.check(Prop::Liveness, at.as_millis() > self.now, || {
                format!("after a full drain the next wake-up {at} is not in the future")
            })?;
        }
        let policy_conn = self.policy.connection();
        let driver_conn = self.live.last().map(|t| t.id);
        self.check(Prop::Lifecycle, policy_conn == driver_conn, || {
            format!("the policy's socket is {policy_conn:?}, the driver holds {driver_conn:?}")
        })?;
        let attempts = self.policy.stats().attempts;
        self.check(Prop::Lifecycle, attempts == self.connects, || {
            format!("stats.attempts {attempts} but {} Connects", self.connects)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackoffStrategy, ConnectFailure, SessionStartLimit};

    /// Dials that fail, each followed by a wait for the next plan: every
    /// plan draws a jittered backoff.
    fn failing_dials() -> Case {
        let mut config = PolicyConfig::with_gateway_url(GATEWAY_URL);
        config.backoff.strategy = BackoffStrategy::FullJitter;
        let mut steps = Vec::new();
        for _ in 0..8 {
            steps.push(Step::On(Ev::ConnectFailed(ConnectFailure::Refused)));
            steps.push(Step::AdvanceToTimeout);
        }
        Case {
            seed: 7,
            shard: 0,
            config,
            limit: SessionStartLimit::DISCORD_DEFAULT,
            auto_close: true,
            honest: true,
            start: 1_000,
            steps,
        }
    }

    fn with_twin() -> Record {
        Record {
            trace: false,
            history: false,
            twin: true,
        }
    }

    #[test]
    fn twins_built_alike_agree() {
        let case = failing_dials();
        let driver = Driver::new(&case, u32::MAX, with_twin()).expect("a valid set-up");
        assert!(driver.run().is_ok());
    }

    /// The determinism check must see a twin that draws other jitter: a
    /// second policy with another seed stands in for a policy whose run
    /// does not repeat itself.
    #[test]
    fn a_twin_that_draws_differently_is_caught() {
        let case = failing_dials();
        let mut driver = Driver::new(&case, u32::MAX, with_twin()).expect("a valid set-up");
        let config = Arc::new(case.config.clone());
        let other =
            Policy::new(config, case.shard, case.seed + 1, ts(case.start)).expect("a valid set-up");
        driver.twin = Some(Box::new(other));
        let failure = driver.run().expect_err("the twins' plans differ");
        assert!(
            failure.contains("same seed and inputs, different outputs"),
            "{failure}"
        );
    }
}
