//! Property tests: proptest generates set-ups and sequences of events and
//! clock readings, and the checking driver shared with the fuzz targets
//! (`reconnect_policy::testing`, behind the `testing` feature, which
//! documents how it drives the policy) runs them and checks the policy's guarantees after every output.
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

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reconnect_policy::testing::{
    ALL_PROPS, Case, Ev, FATAL_CODES, GATEWAY_URL, Kind, Prop, RESUME_URLS, SESSION_IDS, SeqSpec,
    Step, Trace, run,
};
use reconnect_policy::{
    Action, BackoffConfig, BackoffStrategy, Command, ConnectFailure, GiveUpReason, MAX_DELAY_MS,
    Note, Output, PolicyConfig, PolicyStats, SendLimit, SessionStartLimit, Trigger, ZombieRule,
};

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
    let (trace, _) = run(&case, ALL_PROPS).unwrap();
    assert!(
        trace.iter().any(|(_, o)| matches!(
            o,
            Output::Action(Action::Send {
                command: Command::Resume { seq: 2, .. },
                ..
            })
        )),
        "{trace:?}"
    );
    assert!(
        matches!(trace.last(), Some((_, Output::Action(Action::GiveUp(_))))),
        "{trace:?}"
    );
}

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
            ("RESUMED", stats.resumes_succeeded),
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
                Output::Action(Action::GiveUp(GiveUpReason::FatalCloseCode { .. })) => {
                    "give up: fatal code"
                }
                Output::Action(Action::GiveUp(GiveUpReason::Unauthorized { .. })) => {
                    "give up: unauthorized"
                }
                Output::Action(Action::GiveUp(GiveUpReason::RetriesExhausted { .. })) => {
                    "give up: retries"
                }
                Output::Action(Action::GiveUp(GiveUpReason::TimeExhausted { .. })) => {
                    "give up: time"
                }
                Output::Note(Note::Planned(plan)) => match plan.trigger {
                    Trigger::Closed { .. } => "plan: closed",
                    Trigger::Reconnect => "plan: op 7",
                    Trigger::InvalidSession { .. } => "plan: op 9",
                    Trigger::Zombie => "plan: zombie",
                    Trigger::Timeout { .. } => "plan: timeout",
                    Trigger::ConnectFailed { .. } => "plan: connect failed",
                    _ => "plan: other",
                },
                Output::Action(Action::Close { .. }) => "close",
                Output::Action(Action::Abort { .. }) => "abort",
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
    run(&case, ALL_PROPS).unwrap();
}
