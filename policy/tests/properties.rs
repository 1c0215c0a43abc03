//! Property tests: a fake driver runs the policy over random sequences of
//! events and clock readings and checks the policy's guarantees after every
//! output.
//!
//! The driver is honest about sockets. It holds every transport the policy
//! asked for (`Connect`) until the transport is gone from its own point of
//! view: it reported `ConnectFailed` or `Closed`, or the policy asked for an
//! `Abort`. A `Close` keeps the transport alive (closing) until the driver
//! reports `Closed`, at once (`auto_close`) or in a later step, or until the
//! policy gives up waiting and aborts it. Before delivering a frame at time
//! `t`, the driver runs the timers due by `t` (a real driver's timer fires
//! before it reads a frame that arrived later), so every event reaches the
//! connection the policy considers current, except the deliberately stale
//! ones.
//!
//! The driver reads `Timestamp::MAX` from `poll_timeout` as "never" (its
//! documented meaning) and does not wake for it; the policy reads any clock
//! past `Timestamp::CEILING` as the ceiling, and so does the driver when it
//! checks times. Its clock may still step back, jump near `u64::MAX` or stop
//! there: the policy must not panic or spin.
//!
//! Each `proptest!` function checks one family of properties (the others are
//! still exercised, but only that family can fail the function), so a failure
//! names the broken guarantee. Panics fail every function. The case count
//! comes from `PROPTEST_CASES` (default 256): the configuration below starts
//! from `ProptestConfig::default()`, which reads it.
//!
//! `resume_seq_with_dispatches_out_of_order` and
//! `regression_ready_after_an_early_dispatch_keeps_the_old_seq` found that
//! READY did not restart the sequence number; they guard the fix.

use std::collections::HashSet;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reconnect_policy::{
    BackoffConfig, BackoffStrategy, CloseCode, Command, ConnectFailure, ConnectionId, Dispatch,
    Event, GiveUpReason, Handled, IdentifyLimiter, MAX_DELAY_MS, MAX_SESSION_ID_LEN, Output,
    Policy, PolicyConfig, PolicyStats, ReconnectPlan, Recovery, SendLimit, SessionStartLimit,
    Timestamp, Trigger, ZombieRule,
};

// ----- the abstract inputs -------------------------------------------------

/// One thing that happens to the driver.
#[derive(Clone, Debug)]
enum Step {
    /// The driver wakes `ms` later than its clock (possibly late for several
    /// timers at once) and calls `handle_timeout`.
    Advance(u64),
    /// The driver sleeps exactly until `poll_timeout()` and wakes.
    AdvanceToTimeout,
    /// The driver's clock reads `ms` earlier than last time.
    Back(u64),
    /// The driver's clock jumps to `u64::MAX - ms`.
    NearEnd(u64),
    /// Whatever an honest gateway would do next on the live socket (open,
    /// Hello, READY or RESUMED, an ACK or a dispatch, finish a close), or
    /// sleep until the next timer when there is nothing to answer.
    Progress(bool),
    /// An event on the live socket (or on the last one, now stale, when no
    /// socket is live).
    On(Ev),
    /// An event on a connection that is not the current one.
    Stale(u8, Ev),
}

/// An event, before the driver fills in sequence numbers and codes.
#[derive(Clone, Debug)]
enum Ev {
    Opened,
    ConnectFailed(ConnectFailure),
    Hello(u64),
    Dispatch(SeqSpec, Kind),
    Ack,
    HeartbeatRequest,
    Reconnect,
    InvalidSession(bool),
    OtherFrame,
    Closed(Option<u16>),
    /// `Closed` with the code the policy asked for (no code when the socket
    /// was not being closed by the policy: the link dropped).
    CloseAck,
}

/// How a dispatch's sequence number relates to the server's counter.
#[derive(Clone, Copy, Debug)]
enum SeqSpec {
    /// No `s` field.
    Absent,
    /// The next one (`last + delta`); a READY starts a new session at 1.
    Next(u64),
    /// The last one again.
    Repeat,
    /// `k` before the last one.
    Back(u64),
    /// Near `u64::MAX`.
    Huge(u64),
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Ready { session: usize, url: usize },
    Resumed,
    Other,
}

const SESSION_IDS: [&str; 4] = ["sess-a", "sess-b", "", "long"];
/// Only the first is inside the base URL's domain with the same scheme; the
/// others must be refused, and the session with them.
const RESUME_URLS: [&str; 4] = [
    "wss://resume.example.com",
    "ws://resume-2.example.com",
    "https://evil.example",
    "",
];
const GATEWAY_URL: &str = "wss://gateway.example.com";

fn session_id(index: usize) -> String {
    match SESSION_IDS[index % SESSION_IDS.len()] {
        // Over MAX_SESSION_ID_LEN: READY must be refused.
        "long" => "x".repeat(MAX_SESSION_ID_LEN + 1),
        id => id.to_owned(),
    }
}

/// Whether the policy may keep a READY's session (see `Session::from_ready`
/// and `check_resume_url`): a usable id and the one allowed resume URL.
fn usable_session(id: &str, url: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_SESSION_ID_LEN && url == RESUME_URLS[0]
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    shard: u32,
    config: PolicyConfig,
    limit: SessionStartLimit,
    /// The driver reports `Closed` as soon as the policy asks for a close.
    auto_close: bool,
    /// The gateway orders dispatches as the real one does: READY only as the
    /// answer to Identify, RESUMED only to Resume, other dispatches only
    /// once the handshake is answered. Dispatches out of that order are not
    /// delivered. Sequence numbers may still repeat or go back.
    honest: bool,
    start: u64,
    steps: Vec<Step>,
}

// ----- strategies ----------------------------------------------------------

fn config_strategy() -> impl Strategy<Value = PolicyConfig> {
    let strategies: Vec<BackoffStrategy> = BackoffStrategy::ALL
        .into_iter()
        .filter(|s| *s != BackoffStrategy::None)
        .collect();
    let backoff = (
        prop::sample::select(strategies),
        1u64..5_000,
        prop_oneof![Just(0u64), 0u64..120_000],
    )
        .prop_map(|(strategy, base_ms, extra)| BackoffConfig {
            strategy,
            base_ms,
            cap_ms: base_ms + extra,
        });
    let timeouts = (1u64..20_000, 1u64..30_000, 1u64..40_000, 1u64..10_000);
    let stability = (prop_oneof![Just(0u64), 1u64..120_000], any::<bool>());
    let resume = (1u32..5, any::<bool>());
    let give_up = (
        prop::option::weighted(0.2, 1u32..20),
        prop::option::weighted(0.2, 1u64..600_000),
    );
    let op9_wait = (0u64..6_000, 0u64..6_000);
    let zombie = prop_oneof![Just(ZombieRule::AckOnly), Just(ZombieRule::AnyFrame)];
    let send_limit = prop_oneof![
        3 => Just(SendLimit::DISCORD),
        1 => (1u32..10, 1u64..10_000).prop_map(|(commands, window_ms)| SendLimit {
            commands,
            window_ms,
        }),
    ];
    (
        backoff,
        0u64..5_000,
        op9_wait,
        timeouts,
        zombie,
        stability,
        resume,
        give_up,
        send_limit,
    )
        .prop_map(
            |(backoff, guard_ms, op9, timeouts, zombie, stability, resume, give_up, send_limit)| {
                let mut c = PolicyConfig::with_gateway_url(GATEWAY_URL);
                c.backoff = backoff;
                c.guard_ms = guard_ms;
                c.decision.invalid_session_wait_min_ms = op9.0.min(op9.1);
                c.decision.invalid_session_wait_max_ms = op9.0.max(op9.1);
                (
                    c.timeouts.connect_ms,
                    c.timeouts.hello_ms,
                    c.timeouts.handshake_ms,
                    c.timeouts.close_ms,
                ) = timeouts;
                c.zombie = zombie;
                (c.stability.window_ms, c.stability.reset_on_first_ack) = stability;
                (
                    c.resume.max_failed_resumes,
                    c.resume.drop_session_on_dial_failure,
                ) = resume;
                (c.give_up.max_retries, c.give_up.max_elapsed_ms) = give_up;
                c.send_limit = send_limit;
                c
            },
        )
}

fn limit_strategy() -> impl Strategy<Value = SessionStartLimit> {
    prop_oneof![
        3 => Just(SessionStartLimit::DISCORD_DEFAULT),
        1 => (1u32..20, 0u32..20, 1u64..600_000, 0u16..4).prop_map(
            |(total, remaining, reset_after_ms, max_concurrency)| SessionStartLimit {
                total,
                remaining: remaining.min(total),
                reset_after_ms,
                max_concurrency,
            }
        ),
    ]
}

fn failure_strategy() -> impl Strategy<Value = ConnectFailure> {
    prop_oneof![
        Just(ConnectFailure::Refused),
        Just(ConnectFailure::TimedOut),
        Just(ConnectFailure::Dns),
        Just(ConnectFailure::Tls),
        prop::sample::select(vec![400u16, 401, 403, 404, 500, 502, 503])
            .prop_map(|status| ConnectFailure::Rejected { status }),
        prop_oneof![
            4 => 0u64..120_000,
            1 => Just(MAX_DELAY_MS),
            1 => Just(u64::MAX),
        ]
        .prop_map(|retry_after_ms| ConnectFailure::RateLimited { retry_after_ms }),
    ]
}

/// Every documented code, a few unknown ones, and no code at all.
fn close_code_strategy() -> impl Strategy<Value = Option<u16>> {
    let mut codes: Vec<u16> = vec![1000, 1001, 1005, 1006, 1011, 1012, 1013, 1015];
    codes.extend(4000..=4014);
    codes.extend([0, 999, 1002, 3000, 4015, 4999, u16::MAX]);
    prop_oneof![
        1 => Just(None),
        6 => prop::sample::select(codes).prop_map(Some),
    ]
}

const FATAL_CODES: [u16; 6] = [4004, 4010, 4011, 4012, 4013, 4014];

fn hello_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(999),
        Just(41_250),
        Just(300_001),
        Just(u64::MAX),
        0u64..400_000,
    ]
}

fn seq_strategy() -> impl Strategy<Value = SeqSpec> {
    prop_oneof![
        1 => Just(SeqSpec::Absent),
        6 => (1u64..4).prop_map(SeqSpec::Next),
        1 => Just(SeqSpec::Repeat),
        1 => (1u64..5).prop_map(SeqSpec::Back),
        1 => (0u64..3).prop_map(SeqSpec::Huge),
    ]
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    prop_oneof![
        1 => (0..SESSION_IDS.len(), 0..RESUME_URLS.len())
            .prop_map(|(session, url)| Kind::Ready { session, url }),
        1 => Just(Kind::Resumed),
        4 => Just(Kind::Other),
    ]
}

fn ev_strategy() -> impl Strategy<Value = Ev> {
    prop_oneof![
        2 => Just(Ev::Opened),
        1 => failure_strategy().prop_map(Ev::ConnectFailed),
        2 => hello_strategy().prop_map(Ev::Hello),
        4 => (seq_strategy(), kind_strategy()).prop_map(|(s, k)| Ev::Dispatch(s, k)),
        2 => Just(Ev::Ack),
        1 => Just(Ev::HeartbeatRequest),
        1 => Just(Ev::Reconnect),
        1 => any::<bool>().prop_map(Ev::InvalidSession),
        1 => Just(Ev::OtherFrame),
        2 => close_code_strategy().prop_map(Ev::Closed),
        2 => Just(Ev::CloseAck),
    ]
}

/// Which mix of steps a property is tested with.
#[derive(Clone, Copy, Debug)]
enum Mix {
    /// Everything but the end of time.
    General,
    /// More fatal closes.
    Fatal,
    /// More honest handshakes and dispatches, so sessions resume often.
    Sessions,
    /// Like `Sessions`, with a gateway that sends dispatches in any order.
    HostileSessions,
    /// Everything, including clocks near `u64::MAX`.
    Hostile,
}

fn step_strategy(mix: Mix) -> BoxedStrategy<Step> {
    let (progress, fatal, near_end) = match mix {
        Mix::General => (6, 0, 0),
        Mix::Fatal => (6, 2, 0),
        Mix::Sessions | Mix::HostileSessions => (14, 0, 0),
        Mix::Hostile => (4, 1, 1),
    };
    let mut options: Vec<(u32, BoxedStrategy<Step>)> = vec![
        (progress, any::<bool>().prop_map(Step::Progress).boxed()),
        (4, (0u64..120_000).prop_map(Step::Advance).boxed()),
        (4, Just(Step::AdvanceToTimeout).boxed()),
        (1, (1u64..60_000).prop_map(Step::Back).boxed()),
        (8, ev_strategy().prop_map(Step::On).boxed()),
        (
            1,
            (any::<u8>(), ev_strategy())
                .prop_map(|(pick, ev)| Step::Stale(pick, ev))
                .boxed(),
        ),
    ];
    if fatal > 0 {
        options.push((
            fatal,
            prop::sample::select(FATAL_CODES.to_vec())
                .prop_map(|code| Step::On(Ev::Closed(Some(code))))
                .boxed(),
        ));
    }
    if near_end > 0 {
        options.push((
            near_end,
            prop_oneof![Just(0u64), Just(1), 0u64..200_000]
                .prop_map(Step::NearEnd)
                .boxed(),
        ));
    }
    prop::strategy::Union::new_weighted(options).boxed()
}

fn case_strategy(mix: Mix) -> impl Strategy<Value = Case> {
    let start = match mix {
        Mix::Hostile => prop_oneof![
            Just(0u64),
            0u64..1_000_000_000_000,
            (0u64..500_000).prop_map(|back| u64::MAX - back),
        ]
        .boxed(),
        _ => prop_oneof![Just(0u64), 0u64..1_000_000_000_000].boxed(),
    };
    let honest = match mix {
        Mix::Sessions => Just(true).boxed(),
        Mix::HostileSessions => Just(false).boxed(),
        _ => any::<bool>().boxed(),
    };
    (
        any::<u64>().no_shrink(),
        0u32..8,
        config_strategy(),
        limit_strategy(),
        (any::<bool>(), honest),
        start,
        prop::collection::vec(step_strategy(mix), 1..80),
    )
        .prop_map(
            |(seed, shard, config, limit, (auto_close, honest), start, steps)| Case {
                seed,
                shard,
                config,
                limit,
                auto_close,
                honest,
                start,
                steps,
            },
        )
}

/// Any mix, the hostile one most often.
fn any_case() -> impl Strategy<Value = Case> {
    prop_oneof![
        2 => case_strategy(Mix::Hostile),
        1 => case_strategy(Mix::General),
        1 => case_strategy(Mix::Sessions),
        1 => case_strategy(Mix::HostileSessions),
    ]
}

// ----- the driver ----------------------------------------------------------

/// The families of properties; a run fails only on the ones it checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prop {
    /// 1: never a `Connect` while a transport is still in flight.
    SingleFlight,
    /// 1 (continued): outputs only about sockets in the right state; stale
    /// events are inert; the policy's view of its socket matches the driver's.
    Lifecycle,
    /// 2: `Connect`s at least `guard_ms` apart.
    Guard,
    /// 3: plans within the backoff bounds, honoured by the next `Connect`.
    Plans,
    /// 3 (continued): a close before a resume never uses 1000/1001.
    ResumableClose,
    /// 4: fatal close codes give up for good.
    Fatal,
    /// 5: Resume (and heartbeats) carry the session's last sequence number.
    ResumeSeq,
    /// 6: the run loop ends and the next wake-up is in the future.
    Liveness,
}

impl Prop {
    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// History lines shown with a failure.
const LOG_TAIL: usize = 40;

/// Outputs one drain may produce before the driver calls it a livelock.
const DRAIN_CAP: usize = 1_000;

type Res = Result<(), String>;

const CEILING: u64 = Timestamp::CEILING.as_millis();

fn ts(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sock {
    Dialing,
    Open,
    Closing(CloseCode),
}

#[derive(Clone, Debug)]
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

/// One recorded output with the (effective) time it was polled at.
type Trace = Vec<(u64, Output)>;

struct Driver<'a> {
    case: &'a Case,
    checks: u32,
    policy: Policy,
    limiter: IdentifyLimiter,
    /// What the driver's clock reads (may step back, may pass the ceiling).
    clock: u64,
    /// What the policy sees: the latest reading, capped at
    /// `Timestamp::CEILING` (documented: later times are read as it).
    now: u64,
    live: Vec<Transport>,
    ended: Vec<ConnectionId>,
    seen: HashSet<ConnectionId>,
    connects: u64,
    trace: Trace,
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
    log: Vec<String>,
}

impl<'a> Driver<'a> {
    fn new(case: &'a Case, checks: u32) -> Result<Self, String> {
        let start = ts(case.start);
        let policy = Policy::new(case.config.clone(), case.shard, case.seed, start)
            .map_err(|e| format!("config refused: {e}"))?;
        Ok(Self {
            case,
            checks,
            policy,
            limiter: IdentifyLimiter::new(case.limit, start),
            clock: case.start,
            now: case.start.min(CEILING),
            live: Vec::new(),
            ended: Vec::new(),
            seen: HashSet::new(),
            connects: 0,
            trace: Vec::new(),
            last_connect_at: None,
            plan: None,
            last_close: None,
            gave_up: None,
            seq: None,
            session: None,
            server_seq: 0,
            halted: false,
            log: Vec::new(),
        })
    }

    fn check(&self, prop: Prop, ok: bool, msg: impl FnOnce() -> String) -> Res {
        if ok || self.checks & prop.bit() == 0 {
            Ok(())
        } else {
            let recent = &self.log[self.log.len().saturating_sub(LOG_TAIL)..];
            Err(format!(
                "[{prop:?}] at {}ms: {}\nrecent history:\n  {}",
                self.now,
                msg(),
                recent.join("\n  ")
            ))
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

    fn run(mut self) -> Result<(Trace, PolicyStats), String> {
        self.drain()?;
        self.after_step()?;
        for (i, step) in self.case.steps.iter().enumerate() {
            if self.halted {
                break;
            }
            self.step(step)
                .and_then(|()| self.after_step())
                .map_err(|e| format!("step {i} ({step:?}): {e}"))?;
        }
        Ok((self.trace, *self.policy.stats()))
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
        self.log.push(format!("{}ms  wake", self.clock));
        self.policy.handle_timeout(ts(self.clock));
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
        self.policy.handle_timeout(ts(self.clock));
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
        let t = self.live[index].clone();
        let handled = self
            .policy
            .handle_event(ts(self.clock), t.id, event.clone());
        self.log.push(format!(
            "{}ms  -> {} {event:?}: {handled:?}",
            self.clock, t.id
        ));
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
        self.policy.handle_timeout(ts(self.clock));
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
        let before = self.trace.len();
        let handled = self.policy.handle_event(ts(self.clock), id, event.clone());
        self.log.push(format!(
            "{}ms  -> stale {id} {event:?}: {handled:?}",
            self.clock
        ));
        self.check(Prop::Lifecycle, handled == Handled::Stale, || {
            format!("{event:?} on old connection {id} was {handled:?}, not Stale")
        })?;
        self.drain()?;
        self.check(Prop::Lifecycle, self.trace.len() == before, || {
            format!(
                "stale {event:?} on {id} produced {:?}",
                &self.trace[before..]
            )
        })
    }

    /// Drains `poll_output` until `None`, carrying out each output.
    fn drain(&mut self) -> Res {
        let mut count = 0;
        while let Some(output) = self.policy.poll_output(ts(self.clock), &mut self.limiter) {
            count += 1;
            if count > DRAIN_CAP {
                self.check(Prop::Liveness, false, || {
                    format!("poll_output still returning outputs after {DRAIN_CAP} at one instant")
                })?;
                self.halted = true;
                return Ok(());
            }
            self.log.push(format!("{}ms  <- {output:?}", self.now));
            self.on_output(&output)?;
            self.trace.push((self.now, output));
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
        let now = self.now;
        let guard = self.config().guard_ms;
        match output {
            Output::Connect {
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
            Output::Send {
                connection,
                command,
            } => {
                let index = self.find(*connection);
                let t = index.map(|i| self.live[i].clone());
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
            Output::Close { connection, code } => {
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
            Output::Abort { connection } => {
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
            Output::Plan(plan) => self.check_plan(plan)?,
            Output::GiveUp(reason) => {
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
                    _ => false,
                };
                self.check(Prop::Lifecycle, justified, || {
                    format!("GiveUp({reason:?}) is not justified by {limits:?}")
                })?;
                self.gave_up = Some(*reason);
            }
            Output::ResumeUrlRefused { url, .. } => {
                // Only the URLs outside the base URL's domain or scheme.
                self.check(
                    Prop::Lifecycle,
                    url != RESUME_URLS[0] && RESUME_URLS[1..].contains(&url.as_str()),
                    || format!("refused the resume URL {url:?}"),
                )?;
            }
            other => self.check(Prop::Lifecycle, false, || {
                format!("unknown output {other:?}")
            })?,
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
        self.check(Prop::Plans, plan.retry >= 1, || {
            format!("Plan with retry 0: {plan:?}")
        })?;
        self.check(
            Prop::Plans,
            plan.decision.recovery() == Some(plan.recovery),
            || format!("Plan's recovery disagrees with its decision: {plan:?}"),
        )?;
        let (low, high) = backoff.bounds(plan.retry);
        // op 7 after a stable connection: reconnect at once (documented).
        let immediate = plan.trigger == Trigger::Reconnect && plan.retry == 1;
        self.check(
            Prop::Plans,
            (low..=high).contains(&plan.backoff_ms) || (immediate && plan.backoff_ms == 0),
            || {
                format!(
                    "backoff {}ms outside {low}..={high} for {plan:?}",
                    plan.backoff_ms
                )
            },
        )?;
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
        if let Some(reason) = self.gave_up {
            let prop = match reason {
                GiveUpReason::FatalCloseCode { .. } => Prop::Fatal,
                _ => Prop::Lifecycle,
            };
            let state = self.policy.state();
            self.check(prop, state.is_terminal(), || {
                format!("gave up ({reason:?}) but the state is {state:?}")
            })?;
            self.check(prop, self.policy.poll_timeout().is_none(), || {
                format!(
                    "gave up ({reason:?}) but wants a wake-up at {:?}",
                    self.policy.poll_timeout()
                )
            })?;
        }
        if let Some(at) = self.policy.poll_timeout() {
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

fn run(case: &Case, checks: &[Prop]) -> Result<(Trace, PolicyStats), String> {
    let mask = checks.iter().fold(0, |m, p| m | p.bit());
    Driver::new(case, mask)?.run()
}

fn verdict(result: Result<(Trace, PolicyStats), String>) -> Result<(), TestCaseError> {
    result.map(|_| ()).map_err(TestCaseError::fail)
}

// ----- the properties ------------------------------------------------------

proptest! {
    // `..default()` keeps the case count from PROPTEST_CASES.
    #![proptest_config(ProptestConfig {
        max_shrink_iters: 20_000,
        ..ProptestConfig::default()
    })]

    /// 1. Never two attempts in flight: no `Connect` while a socket is being
    /// dialled, is open, or was asked to close and neither reported closed
    /// nor aborted. Also: `Send`/`Close` only on open sockets, `Abort` only
    /// on dialling or closing ones, stale events are inert.
    #[test]
    fn never_two_attempts_in_flight(case in case_strategy(Mix::General)) {
        verdict(run(&case, &[Prop::SingleFlight, Prop::Lifecycle]))?;
    }

    /// 2. Two `Connect`s are never closer than `guard_ms`, and no plan is
    /// inside the guard.
    #[test]
    fn connects_respect_the_guard(case in case_strategy(Mix::General)) {
        verdict(run(&case, &[Prop::Guard]))?;
    }

    /// 3. Every plan's backoff is within the strategy's bounds and the cap,
    /// its time covers the backoff and the protocol wait, and the next
    /// `Connect` honours it. A `Close` before a resume never uses 1000/1001.
    #[test]
    fn plans_respect_backoff_and_are_honoured(case in case_strategy(Mix::General)) {
        verdict(run(&case, &[Prop::Plans, Prop::ResumableClose]))?;
    }

    /// 4. A fatal close code (4004, 4010-4014) on the current socket gives
    /// up at once, for good.
    #[test]
    fn fatal_close_codes_give_up_for_good(case in case_strategy(Mix::Fatal)) {
        verdict(run(&case, &[Prop::Fatal]))?;
    }

    /// 5. Resume carries the session id of the last READY and the last
    /// sequence number accepted since it; heartbeats after the handshake
    /// carry that number too. The gateway orders dispatches honestly (see
    /// `resume_seq_with_dispatches_out_of_order` for the other case).
    #[test]
    fn resume_carries_the_last_sequence(case in case_strategy(Mix::Sessions)) {
        verdict(run(&case, &[Prop::ResumeSeq]))?;
    }

    /// 6. No panic on hostile input (clocks stepping back, reading
    /// `u64::MAX` or close to it, hostile heartbeat intervals, Retry-After,
    /// sequence numbers and codes), and the run loop always ends: draining
    /// `poll_output` reaches `None`, and the next wake-up is then in the
    /// future.
    #[test]
    fn no_panic_and_the_run_loop_ends(case in any_case()) {
        verdict(run(&case, &[Prop::Liveness]))?;
    }

    /// 7. Same seed, same inputs, same outputs at the same times.
    #[test]
    fn same_seed_same_trace(case in any_case()) {
        let first = run(&case, &[]).map_err(TestCaseError::fail)?;
        let second = run(&case, &[]).map_err(TestCaseError::fail)?;
        let json = |trace: &Trace| serde_json::to_string(trace).expect("outputs serialize");
        prop_assert_eq!(json(&first.0), json(&second.0));
        prop_assert_eq!(first, second);
    }

    /// 5 with a gateway that sends dispatches in any order (a dispatch
    /// before READY, a second READY).
    #[test]
    fn resume_seq_with_dispatches_out_of_order(case in case_strategy(Mix::HostileSessions)) {
        verdict(run(&case, &[Prop::ResumeSeq]))?;
    }
}

/// Every property at once on one plain case, so a broken harness shows up
/// even with `PROPTEST_CASES=0`.
#[test]
fn the_harness_runs_a_plain_session() {
    let case = Case {
        seed: 1,
        shard: 0,
        config: PolicyConfig::with_gateway_url(GATEWAY_URL),
        limit: SessionStartLimit::DISCORD_DEFAULT,
        auto_close: false,
        honest: true,
        start: 0,
        steps: [
            Step::Progress(false), // Opened
            Step::Progress(false), // Hello
            Step::Progress(false), // READY
            Step::Progress(false), // a dispatch
            Step::On(Ev::Closed(Some(1006))),
            Step::Progress(false), // sleep until the plan
            Step::Progress(false), // Opened
            Step::Progress(false), // Hello: Resume
            Step::Progress(false), // RESUMED
            Step::On(Ev::Closed(Some(4004))),
            Step::Advance(1_000_000),
        ]
        .to_vec(),
    };
    let (trace, _) = run(&case, ALL_PROPS_LIST).unwrap();
    assert!(
        trace.iter().any(|(_, o)| matches!(
            o,
            Output::Send {
                command: Command::Resume { seq: 2, .. },
                ..
            }
        )),
        "{trace:?}"
    );
    assert!(
        matches!(trace.last(), Some((_, Output::GiveUp(_)))),
        "{trace:?}"
    );
}

const ALL_PROPS_LIST: &[Prop] = &[
    Prop::SingleFlight,
    Prop::Lifecycle,
    Prop::Guard,
    Prop::Plans,
    Prop::ResumableClose,
    Prop::Fatal,
    Prop::ResumeSeq,
    Prop::Liveness,
];

// ----- the generators' reach ----------------------------------------------

/// The generators must keep reaching the deep states the properties are
/// about; a property that only ever sees fresh policies proves little.
#[test]
fn the_generators_reach_deep_states() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = any_case();
    let mut seen: std::collections::BTreeMap<&str, u32> = std::collections::BTreeMap::new();
    for _ in 0..500 {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        let (trace, stats) = run(&case, &[]).expect("the harness runs");
        for (name, count) in [
            ("resume sent", stats.resumes_sent),
            ("RESUMED", stats.resumed),
            ("READY", stats.ready),
            ("zombie", stats.zombies),
            ("resume breaker", stats.resume_breaker_trips),
            ("identify wait", stats.identify_waits),
            ("duplicate dispatch", stats.duplicate_dispatches),
            ("stale event", stats.stale_events),
        ] {
            if count > 0 {
                *seen.entry(name).or_default() += 1;
            }
        }
        for (_, output) in &trace {
            let name = match output {
                Output::GiveUp(GiveUpReason::FatalCloseCode { .. }) => "give up: fatal code",
                Output::GiveUp(GiveUpReason::Unauthorized { .. }) => "give up: unauthorized",
                Output::GiveUp(GiveUpReason::RetriesExhausted { .. }) => "give up: retries",
                Output::GiveUp(GiveUpReason::TimeExhausted { .. }) => "give up: time",
                Output::Plan(plan) => match plan.trigger {
                    Trigger::Closed { .. } => "plan: closed",
                    Trigger::Reconnect => "plan: op 7",
                    Trigger::InvalidSession { .. } => "plan: op 9",
                    Trigger::Zombie => "plan: zombie",
                    Trigger::Timeout { .. } => "plan: timeout",
                    Trigger::ConnectFailed { .. } => "plan: connect failed",
                    _ => "plan: other",
                },
                Output::Close { .. } => "close",
                Output::Abort { .. } => "abort",
                _ => continue,
            };
            *seen.entry(name).or_default() += 1;
        }
    }
    let expected = [
        "resume sent",
        "RESUMED",
        "READY",
        "zombie",
        "resume breaker",
        "identify wait",
        "duplicate dispatch",
        "stale event",
        "give up: fatal code",
        "give up: unauthorized",
        "give up: retries",
        "give up: time",
        "plan: closed",
        "plan: op 7",
        "plan: op 9",
        "plan: zombie",
        "plan: timeout",
        "plan: connect failed",
        "close",
        "abort",
    ];
    for name in expected {
        assert!(seen.get(name).is_some_and(|&n| n >= 3), "{name}: {seen:?}");
    }
}

// ----- regressions ---------------------------------------------------------

/// Shrunk (by hand, from what `resume_seq_with_dispatches_out_of_order`
/// finds) to the clearest case. After Identify a hostile gateway sends a
/// dispatch with seq 5 before READY. READY (seq 1) is then `Duplicate`, so
/// the driver does not deliver it, yet the policy takes its session and
/// keeps seq 5; the new session's seq 2 is called a duplicate too (lost).
/// The next Resume names the new session with seq 5, a number that session
/// never had (the gateway answers 4007, or replays from the wrong point).
/// A second READY on an established connection, or a READY without `s`,
/// goes the same way: READY never restarts the sequence. A fix: when READY
/// is taken as the session, set the sequence to READY's own `s`.
#[test]
fn regression_ready_after_an_early_dispatch_keeps_the_old_seq() {
    let case = Case {
        seed: 1,
        shard: 0,
        config: PolicyConfig::with_gateway_url(GATEWAY_URL),
        limit: SessionStartLimit::DISCORD_DEFAULT,
        auto_close: false,
        honest: false,
        start: 0,
        steps: [
            Step::Progress(false), // Opened
            Step::Progress(false), // Hello, then Identify
            Step::On(Ev::Dispatch(SeqSpec::Next(5), Kind::Other)),
            Step::On(Ev::Dispatch(
                SeqSpec::Next(1),
                Kind::Ready { session: 0, url: 0 },
            )),
            Step::On(Ev::Dispatch(SeqSpec::Next(1), Kind::Other)),
            Step::On(Ev::Closed(None)),
            Step::Progress(false), // sleep until the plan, Connect
            Step::Progress(false), // Opened
            Step::Progress(false), // Hello, then Resume
        ]
        .to_vec(),
    };
    run(&case, &[Prop::ResumeSeq]).unwrap();
}

/// Found by `no_panic_and_the_run_loop_ends` (as it stood before
/// `Timestamp::CEILING`): with the clock at `u64::MAX`, every deadline
/// saturated to the current instant, so `poll_output` returned `Connect`,
/// `Abort`, `Plan`, `Connect`, ... without end.
#[test]
fn the_run_loop_ends_at_timestamp_max() {
    let case = Case {
        seed: 1,
        shard: 0,
        config: PolicyConfig::with_gateway_url(GATEWAY_URL),
        limit: SessionStartLimit::DISCORD_DEFAULT,
        auto_close: false,
        honest: true,
        start: u64::MAX,
        steps: [Step::Advance(0), Step::AdvanceToTimeout, Step::NearEnd(0)].to_vec(),
    };
    run(&case, ALL_PROPS_LIST).unwrap();
}
