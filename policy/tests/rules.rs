//! The rules that decide what a reconnect costs: requests of the server are
//! not failures (unless the gateway loops), waits match their cause, time
//! the gateway spent answering repays the backoff.

mod support;

use reconnect_policy::{
    Command, ConnectFailure, Dispatch, Event, Handled, PolicyConfig, PolicyState, Recovery,
    ServerRequests, Trigger,
};
use support::{Driver, SESSION_ID, closed};

fn resume(seq: u64) -> Command {
    Command::Resume {
        session_id: SESSION_ID.to_owned(),
        seq,
    }
}

fn refused() -> Event {
    Event::ConnectFailed {
        failure: ConnectFailure::Refused,
    }
}

/// Sleeps until the next `Connect` and opens it; returns the command sent.
fn next_attempt(d: &mut Driver) -> Command {
    let from = d.mark();
    d.reconnect(from).1
}

/// A session established 10 s ago that has not yet proven stable, after one
/// earlier failure: the retry count is 1 when the test starts.
fn resumed_after_one_failure() -> Driver {
    let mut d = Driver::connected(3);
    d.advance(500);
    let _ = d.send(closed(None));
    assert_eq!(d.policy.retries(), 1);
    assert_eq!(next_attempt(&mut d), resume(3));
    assert_eq!(d.dispatch(4, Dispatch::Resumed), Handled::Accepted);
    d.advance(1_000);
    d
}

// ----- item 1: requests of the server are not failures -----------------

#[test]
fn op7_after_resumed_reconnects_at_once_and_counts_nothing() {
    let mut d = resumed_after_one_failure();
    let retries = d.policy.retries();
    let from = d.mark();
    assert_eq!(d.send(Event::Reconnect), Handled::Accepted);
    let _ = d.send(closed(Some(4000)));
    let (at, plan) = d.only_plan_since(from);
    assert_eq!(plan.trigger, Trigger::Reconnect);
    assert!(!plan.counted, "{plan:?}");
    assert_eq!(plan.backoff_ms, 0);
    assert!(plan.retry <= retries, "{plan:?}");
    // At once: the guard (1 s since the last attempt) has long passed.
    assert_eq!(plan.at.as_millis(), at);
    let connect = d.next_connect(from);
    assert_eq!(connect.at, at);
    assert_eq!(connect.recovery, Recovery::Resume);
}

#[test]
fn op7_right_after_an_attempt_still_waits_for_the_guard() {
    let mut d = Driver::connected(3);
    d.advance(300);
    let from = d.mark();
    let _ = d.send(Event::Reconnect);
    let _ = d.send(closed(Some(4000)));
    let (_, plan) = d.only_plan_since(from);
    assert!(!plan.counted);
    // The first Connect was at 0; the guard is 1 s.
    assert_eq!(plan.at.as_millis(), 1_000);
    assert_eq!(d.next_connect(from).at, 1_000);
}

#[test]
fn op7s_in_a_tight_loop_fall_back_to_the_backoff() {
    let rule = ServerRequests::DEFAULT;
    let mut d = Driver::connected(3);
    let mut seq = 3;
    let mut counted = Vec::new();
    for _ in 0..=rule.max_free {
        d.advance(2_000);
        let from = d.mark();
        let _ = d.send(Event::Reconnect);
        let _ = d.send(closed(Some(4000)));
        let (_, plan) = d.only_plan_since(from);
        counted.push(plan.counted);
        assert_eq!(d.reconnect(from).1, resume(seq));
        seq += 1;
        assert_eq!(d.dispatch(seq, Dispatch::Resumed), Handled::Accepted);
    }
    // Within one window: the first `max_free` are free, the next counts.
    let mut expected = vec![false; rule.max_free as usize];
    expected.push(true);
    assert_eq!(counted, expected);
    // A window later, op 7 is free again.
    d.advance(rule.window_ms);
    let from = d.mark();
    let _ = d.send(Event::Reconnect);
    let _ = d.send(closed(Some(4000)));
    assert!(!d.only_plan_since(from).1.counted);
}

#[test]
fn op7_every_45_s_stays_free_and_resumes_at_once() {
    let mut d = Driver::connected(3);
    d.auto_ack = true;
    let mut seq = 3;
    for _ in 0..7 {
        d.run_for(45_000);
        let from = d.mark();
        let _ = d.send(Event::Reconnect);
        let _ = d.send(closed(Some(4000)));
        let (at, plan) = d.only_plan_since(from);
        assert!(!plan.counted, "{plan:?}");
        assert_eq!(plan.at.as_millis(), at, "{plan:?}");
        assert_eq!(d.reconnect(from).1, resume(seq));
        seq += 1;
        assert_eq!(d.dispatch(seq, Dispatch::Resumed), Handled::Accepted);
    }
    assert_eq!(d.policy.retries(), 0, "{:?}", d.plans_since(0));
}

#[test]
fn a_close_that_asks_for_a_reconnect_after_ready_is_free() {
    for code in [1000, 1001, 1012, 4000] {
        let mut d = resumed_after_one_failure();
        let from = d.mark();
        let _ = d.send(closed(Some(code)));
        let (at, plan) = d.only_plan_since(from);
        assert!(!plan.counted, "{code}: {plan:?}");
        assert_eq!(plan.at.as_millis(), at, "{code}");
    }
}

#[test]
fn a_failure_close_or_a_drop_after_ready_still_counts() {
    for code in [None, Some(1006), Some(1011), Some(4001)] {
        let mut d = resumed_after_one_failure();
        let from = d.mark();
        let _ = d.send(closed(code));
        let (_, plan) = d.only_plan_since(from);
        assert!(plan.counted, "{code:?}: {plan:?}");
        assert_eq!(plan.retry, 2, "{code:?}: {plan:?}");
    }
}

#[test]
fn a_reconnect_close_before_ready_counts() {
    // 4000 while the Resume is still unanswered: nothing was proven.
    let mut d = Driver::connected(3);
    d.advance(500);
    let _ = d.send(closed(None));
    assert_eq!(next_attempt(&mut d), resume(3));
    let from = d.mark();
    let _ = d.send(closed(Some(4000)));
    let (_, plan) = d.only_plan_since(from);
    assert!(plan.counted);
    assert_eq!(plan.retry, 2);
}

// ----- item 2: waits that match their cause ------------------------------

/// An established session, then `outage_ms` of refused dials.
fn after_an_outage(outage_ms: u64) -> Driver {
    let mut d = Driver::connected(3);
    d.advance(500);
    let _ = d.send(closed(None));
    let end = d.now + outage_ms;
    while d.now < end {
        let from = d.mark();
        let _ = d.next_connect(from);
        let _ = d.send(refused());
    }
    d
}

#[test]
fn op9_from_an_answering_gateway_waits_1_to_5_s_not_the_backoff() {
    let mut d = after_an_outage(40_000);
    let retries = d.policy.retries();
    assert!(retries >= 5, "{retries}");
    // The gateway is back: it says Hello and answers the Resume with op 9.
    assert_eq!(next_attempt(&mut d), resume(3));
    d.advance(50);
    let from = d.mark();
    let op9_at = d.now;
    let _ = d.send(Event::InvalidSession { resumable: false });
    let _ = d.send(closed(Some(1000)));
    let (_, plan) = d.only_plan_since(from);
    assert!(!plan.counted, "{plan:?}");
    assert_eq!(plan.backoff_ms, 0);
    let wait = plan.at.as_millis() - op9_at;
    assert!((1_000..=5_000).contains(&wait), "{plan:?}");
    let (connect, command) = d.reconnect(from);
    assert_eq!(command, Command::Identify);
    assert_eq!(connect.recovery, Recovery::Reidentify);
    assert!(connect.at - op9_at <= 5_000);
    assert_eq!(d.dispatch(1, support::ready()), Handled::Accepted);
}

#[test]
fn op9_before_hello_is_no_answer_and_waits_the_backoff() {
    // A broken server that sends op 9 before Hello has not answered
    // anything: the wait is the larger of op 9's and the backoff.
    let mut d = after_an_outage(20_000);
    let from = d.mark();
    let _ = d.next_connect(from);
    let _ = d.send(Event::Opened);
    let from = d.mark();
    let _ = d.send(Event::InvalidSession { resumable: true });
    let _ = d.send(closed(None));
    let (_, plan) = d.only_plan_since(from);
    assert!(plan.counted, "{plan:?}");
    let (low, _) = d.policy.config().backoff.bounds(plan.retry);
    // The session is still likely resumable, so a long draw is kept within
    // `max_wait_while_resumable_ms` (redrawn in its upper half): either way
    // above op 9's 1-5 s.
    let max = d.policy.config().resume.max_wait_while_resumable_ms;
    let drawn = plan.backoff_ms >= low || (max / 2..=max).contains(&plan.backoff_ms);
    assert!(drawn && low > 5_000 && max / 2 > 5_000, "{plan:?}");
    assert!(plan.at.as_millis() - d.now >= 5_000, "{plan:?}");
}

#[test]
fn a_socket_dropped_every_5_s_after_resumed_keeps_the_first_retrys_wait() {
    let mut d = Driver::connected(3);
    d.advance(5_000);
    let mut seq = 3;
    let mut waits = Vec::new();
    for _ in 0..40 {
        let from = d.mark();
        let dropped_at = d.now;
        let _ = d.send(closed(None));
        let (_, plan) = d.only_plan_since(from);
        assert_eq!(plan.retry, 1, "{plan:?}");
        assert_eq!(d.reconnect(from).1, resume(seq));
        waits.push(d.now - dropped_at);
        seq += 1;
        assert_eq!(d.dispatch(seq, Dispatch::Resumed), Handled::Accepted);
        d.advance(5_000);
    }
    // The first retry's 0.5–1 s, and now and then the attempt ceiling's
    // pause (ten attempts a minute): connected at least 80 % of the time.
    let down: u64 = waits.iter().sum();
    let up = 5_000 * waits.len() as u64;
    let connected = up as f64 / (up + down) as f64;
    assert!(connected >= 0.8, "{connected}: {waits:?}");
}

#[test]
fn a_link_that_accepts_and_drops_at_once_climbs_to_the_cap() {
    // Hello comes, then the socket drops 100 ms later, every time: no
    // credit is earned, and the count climbs as it always did.
    let config = PolicyConfig::default();
    let cap = config.backoff.cap_ms;
    let mut d = Driver::connected(3);
    d.advance(500);
    let _ = d.send(closed(None));
    let start = d.now;
    let mut attempts = 0;
    while d.now < start + 600_000 {
        // Resumes at first; the resume breaker then drops the session.
        let _ = next_attempt(&mut d);
        attempts += 1;
        d.advance(100);
        let _ = d.send(closed(None));
    }
    assert!(d.policy.retries() >= 20, "{}", d.policy.retries());
    let plans = d.plans_since(0);
    let last = plans.last().unwrap().1;
    assert!(last.backoff_ms >= cap / 2, "{last:?}");
    // Ten minutes at 30–60 s a wait: no more than the climb plus about 20.
    assert!(attempts <= 30, "{attempts} attempts in 10 minutes");
    assert!(matches!(d.policy.state(), PolicyState::BackingOff { .. }));
}

// ----- item 5: every server code counts, in every phase -------------------

/// The phases a server close can find a shard with a session in.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Dialling the next connection.
    Dialing,
    /// Open, waiting for Hello.
    AwaitingHello,
    /// Resume sent, no RESUMED yet.
    Resuming,
    /// READY received.
    Active,
    /// Our own close after op 7 is in flight.
    ClosingAfterOp7,
    /// Our own close after op 9 (resumable) is in flight.
    ClosingAfterOp9,
}

const PHASES: [Phase; 6] = [
    Phase::Dialing,
    Phase::AwaitingHello,
    Phase::Resuming,
    Phase::Active,
    Phase::ClosingAfterOp7,
    Phase::ClosingAfterOp9,
];

/// A shard with a session (seq 3), brought to `phase`.
fn in_phase(phase: Phase) -> Driver {
    let mut d = Driver::connected(3);
    d.advance(5_000);
    match phase {
        Phase::Active => {}
        Phase::ClosingAfterOp7 => {
            let _ = d.send(Event::Reconnect);
        }
        Phase::ClosingAfterOp9 => {
            let _ = d.send(Event::InvalidSession { resumable: true });
        }
        Phase::Dialing | Phase::AwaitingHello | Phase::Resuming => {
            let from = d.mark();
            let _ = d.send(closed(None));
            let _ = d.next_connect(from);
            if !matches!(phase, Phase::Dialing) {
                let _ = d.send(Event::Opened);
            }
            if matches!(phase, Phase::Resuming) {
                let _ = d.send(Event::Hello {
                    heartbeat_interval_ms: d.interval_ms,
                });
            }
        }
    }
    let state = d.policy.state();
    let expected = match phase {
        Phase::Dialing | Phase::AwaitingHello => matches!(state, PolicyState::Connecting { .. }),
        Phase::Resuming => state == PolicyState::Resuming,
        Phase::Active => state.is_connected(),
        Phase::ClosingAfterOp7 | Phase::ClosingAfterOp9 => state == PolicyState::Closing,
    };
    assert!(expected, "{phase:?}: {state:?}");
    d
}

#[test]
fn a_session_ending_close_reidentifies_in_every_phase() {
    for code in [4003, 4007, 4009] {
        for phase in PHASES {
            let mut d = in_phase(phase);
            let from = d.mark();
            let _ = d.send(closed(Some(code)));
            assert!(d.policy.session().is_none(), "{code} in {phase:?}");
            let (connect, command) = d.reconnect(from);
            assert_eq!(
                connect.recovery,
                Recovery::Reidentify,
                "{code} in {phase:?}"
            );
            assert_eq!(command, Command::Identify, "{code} in {phase:?}");
            // The Resume the server refused is never sent.
            assert!(
                !d.commands_since(from)
                    .iter()
                    .any(|(_, c)| matches!(c, Command::Resume { .. })),
                "{code} in {phase:?}"
            );
        }
    }
}

#[test]
fn a_fatal_close_gives_up_in_every_phase() {
    for code in [4004, 4010, 4011, 4012, 4013, 4014] {
        for phase in PHASES {
            let mut d = in_phase(phase);
            let from = d.mark();
            let _ = d.send(closed(Some(code)));
            assert!(
                matches!(d.policy.state(), PolicyState::GivenUp { .. }),
                "{code} in {phase:?}: {:?}",
                d.policy.state()
            );
            d.run_for(600_000);
            assert!(d.connects_since(from).is_empty(), "{code} in {phase:?}");
        }
    }
}

#[test]
fn a_4008_slows_the_next_attempt_in_every_phase() {
    let wait_ms = PolicyConfig::default().rate_limited.wait_ms;
    for phase in PHASES {
        let mut d = in_phase(phase);
        let from = d.mark();
        let closed_at = d.now;
        let _ = d.send(closed(Some(4008)));
        let (_, plan) = d.only_plan_since(from);
        assert!(plan.counted, "{phase:?}: {plan:?}");
        assert!(
            plan.at.as_millis() >= closed_at + wait_ms,
            "{phase:?}: {plan:?}"
        );
        let connect = d.next_connect(from);
        assert!(connect.at >= closed_at + wait_ms, "{phase:?}");
    }
}

#[test]
fn a_4008_halves_the_drivers_budget_until_a_connection_proves_stable() {
    /// Commands the driver may send at once on a fresh connection.
    fn burst(d: &mut Driver) -> u32 {
        let mut n = 0;
        while d.policy.try_send_command(support::t(d.now)).is_ok() {
            n += 1;
        }
        n
    }
    let mut d = Driver::connected(3);
    d.auto_ack = true;
    let full = burst(&mut d);
    assert!(full > 0);
    d.advance(5_000);
    let from = d.mark();
    let _ = d.send(closed(Some(4008)));
    assert_eq!(d.reconnect(from).1, resume(3));
    assert_eq!(d.dispatch(4, Dispatch::Resumed), Handled::Accepted);
    assert_eq!(burst(&mut d), full / 2);
    // Once a connection has proven stable, the next gets the full budget.
    d.run_for(61_000);
    assert_eq!(d.policy.state(), PolicyState::Connected { stable: true });
    let from = d.mark();
    let _ = d.send(closed(None));
    assert_eq!(d.reconnect(from).1, resume(4));
    assert_eq!(d.dispatch(5, Dispatch::Resumed), Handled::Accepted);
    assert_eq!(burst(&mut d), full);
}

#[test]
fn our_own_close_code_echoed_back_changes_nothing() {
    let mut d = in_phase(Phase::ClosingAfterOp7);
    let from = d.mark();
    let _ = d.send(closed(Some(4000)));
    let (at, plan) = d.only_plan_since(from);
    assert_eq!(plan.trigger, Trigger::Reconnect);
    assert_eq!(plan.at.as_millis(), at);
    assert_eq!(d.reconnect(from).1, resume(3));
}

// ----- item 6: identify loops are noticed ---------------------------------

/// Identifies sent, each answered by `answer` before READY, until
/// `until_ms`; returns the times the Identifies were sent.
fn reject_identifies(d: &mut Driver, answer: &[Event], until_ms: u64) -> Vec<u64> {
    let mut sent = Vec::new();
    // The first connection is already being dialled.
    let mut from = 0;
    while d.now < until_ms && !d.policy.state().is_terminal() {
        let (_, command) = d.reconnect(from);
        assert_eq!(command, Command::Identify);
        sent.push(d.now);
        d.advance(100);
        from = d.mark();
        for event in answer {
            let _ = d.send(event.clone());
        }
        if d.policy.poll_timeout().is_none() {
            break;
        }
    }
    sent
}

fn loop_notes(d: &Driver) -> Vec<support::Out> {
    d.outputs_since(0)
        .into_iter()
        .map(|(_, o)| o)
        .filter(|o| {
            matches!(
                o,
                support::Out::Note(reconnect_policy::Note::IdentifyLoop { .. })
            )
        })
        .collect()
}

#[test]
fn rejected_identifies_switch_to_the_long_wait_after_the_limit() {
    let config = PolicyConfig::default();
    let rule = config.identify_loop;
    let mut d = Driver::new(config);
    let sent = reject_identifies(&mut d, &[closed(Some(4002))], 3_600_000);
    let k = rule.max_rejected as usize;
    // The first K come at the backoff's pace, every later one a long wait
    // after the one before.
    assert!(sent[k - 1] - sent[0] < 60_000, "{sent:?}");
    for pair in sent[k - 1..].windows(2) {
        assert!(pair[1] - pair[0] >= rule.wait_ms, "{sent:?}");
    }
    // An hour: K, then one per 10 minutes.
    assert!(sent.len() <= k + 6, "{sent:?}");
    let notes = loop_notes(&d);
    assert_eq!(notes.len(), sent.len() - k + 1, "{notes:?}");
    let support::Out::Note(reconnect_policy::Note::IdentifyLoop {
        rejected,
        last_code,
        ..
    }) = &notes[0]
    else {
        unreachable!()
    };
    assert_eq!(*rejected, rule.max_rejected);
    assert_eq!(*last_code, Some(reconnect_policy::CloseCode::DecodeError));
}

#[test]
fn op9_answering_identify_counts_toward_the_loop() {
    let mut d = Driver::new(PolicyConfig::default());
    let answer = [
        Event::InvalidSession { resumable: false },
        closed(Some(1000)),
    ];
    let sent = reject_identifies(&mut d, &answer, 1_800_000);
    assert!(sent.len() <= 3 + 3, "{sent:?}");
    assert!(!loop_notes(&d).is_empty());
}

#[test]
fn a_ready_ends_the_loop() {
    let config = PolicyConfig::default();
    let mut d = Driver::new(config);
    let mut from = 0;
    for _ in 0..2 {
        assert_eq!(d.reconnect(from).1, Command::Identify);
        d.advance(100);
        from = d.mark();
        let _ = d.send(closed(Some(4000)));
    }
    assert_eq!(loop_notes(&d).len(), 0, "two rejections are no loop yet");
    // The next Identify gets READY; rejections then start from zero.
    assert_eq!(d.reconnect(from).1, Command::Identify);
    assert_eq!(d.dispatch(1, support::ready()), Handled::Accepted);
    d.advance(1_000);
    let _ = d.send(closed(Some(4009)));
    let mut from = d.mark();
    for _ in 0..2 {
        assert_eq!(d.reconnect(from).1, Command::Identify);
        d.advance(100);
        from = d.mark();
        let _ = d.send(closed(Some(4000)));
    }
    assert_eq!(loop_notes(&d).len(), 0);
}

#[test]
fn the_daily_share_holds_the_shard_until_the_day_is_over() {
    let mut config = PolicyConfig::default();
    config.identify_loop.daily_share = 5;
    config.identify_loop.wait_ms = 60_000;
    let mut d = Driver::new(config);
    let day = 24 * 3_600_000;
    let sent = reject_identifies(&mut d, &[closed(Some(4000))], day + 3_600_000);
    // Five in the first day; the sixth only once the day has passed.
    assert_eq!(
        sent.iter().filter(|&&at| at < sent[0] + day).count(),
        5,
        "{sent:?}"
    );
    assert!(sent.len() >= 6, "{sent:?}");
}

#[test]
fn give_up_limits_can_end_an_identify_loop() {
    let mut config = PolicyConfig::default();
    config.give_up.on_identify_loop = true;
    let rule = config.identify_loop;
    let mut d = Driver::new(config);
    let sent = reject_identifies(&mut d, &[closed(Some(4000))], 3_600_000);
    assert_eq!(sent.len(), rule.max_rejected as usize);
    assert_eq!(
        d.policy.state(),
        PolicyState::GivenUp {
            reason: reconnect_policy::GiveUpReason::IdentifyLoop {
                rejected: rule.max_rejected,
                last_code: Some(reconnect_policy::CloseCode::UnknownError),
            }
        }
    );
}

// ----- the ceiling over credit and free requests ---------------------------

#[test]
fn a_link_that_answers_just_past_the_credit_never_storms() {
    // Found by the simulator's property test: each socket drops 2.006 s
    // after it opened, so each connection repays the failure that ends it
    // and the count stays at 1. The attempt ceiling holds the pace.
    let rate = PolicyConfig::default().attempt_rate;
    let mut d = Driver::connected(3);
    d.advance(500);
    let _ = d.send(closed(None));
    let mut starts = Vec::new();
    let mut seq = 3;
    while d.now < 600_000 {
        let from = d.mark();
        let connect = d.next_connect(from);
        starts.push(connect.at);
        assert_eq!(d.open(), resume(seq));
        seq += 1;
        assert_eq!(d.dispatch(seq, Dispatch::Resumed), Handled::Accepted);
        d.advance(2_006);
        let _ = d.send(closed(None));
    }
    let most = starts
        .iter()
        .map(|&s| starts.iter().filter(|&&t| t >= s && t < s + 60_000).count())
        .max()
        .unwrap();
    assert!(
        most <= rate.max_attempts as usize,
        "{most} attempts in 60 s"
    );
    // And the count did stay low: the ceiling, not the backoff, paced it.
    assert!(d.policy.retries() <= 2, "{}", d.policy.retries());
}

#[test]
fn the_ceiling_counts_an_attempt_from_when_the_gateway_answered_it() {
    // Each upgrade is answered 1.5 s after its dial (the gateway saw the
    // handshake somewhere in between), and each socket drops 2.006 s
    // after it opened, repaying the failure: the ceiling paces the shard.
    let rate = PolicyConfig::default().attempt_rate;
    let (window, max) = (rate.window_ms, rate.max_attempts as usize);
    let mut d = Driver::connected(3);
    d.advance(500);
    let _ = d.send(closed(None));
    let (mut starts, mut answers) = (Vec::new(), Vec::new());
    let mut seq = 3;
    while d.now < 600_000 {
        let from = d.mark();
        starts.push(d.next_connect(from).at);
        d.advance(1_500);
        answers.push(d.now);
        assert_eq!(d.open(), resume(seq));
        seq += 1;
        assert_eq!(d.dispatch(seq, Dispatch::Resumed), Handled::Accepted);
        d.advance(2_006);
        let _ = d.send(closed(None));
    }
    // No attempt starts sooner than a window after the answer to the one
    // `max` before it, so whatever the latencies, the gateway never saw
    // more than `max` handshakes within a window.
    for (i, &start) in starts.iter().enumerate().skip(max) {
        assert!(
            start >= answers[i - max] + window,
            "attempt {i} at {start}, {} after the answer to attempt {}",
            start - answers[i - max],
            i - max
        );
    }
    // And the answer, not the dial plus a margin, is what held them back.
    let held_by_the_answer = starts
        .iter()
        .enumerate()
        .skip(max)
        .filter(|&(i, &start)| start == answers[i - max] + window)
        .count();
    assert!(held_by_the_answer > 10, "{held_by_the_answer}: {starts:?}");
}

#[test]
fn a_socket_dropped_5_s_after_each_resume_stays_connected_four_fifths_of_the_time() {
    // The by-hand test on real sockets, at the policy's level: loopback
    // latencies (the upgrade answered 2 ms after the dial, RESUMED 2 ms
    // after Hello), each socket dropped 5 s after RESUMED, for 10 minutes.
    let mut d = Driver::connected(3);
    d.advance(500);
    let _ = d.send(closed(None));
    let first = d.now;
    let mut connected = 0;
    let mut seq = 3;
    while d.now < 600_000 {
        let from = d.mark();
        let _ = d.next_connect(from);
        d.advance(2);
        assert_eq!(d.open(), resume(seq));
        seq += 1;
        d.advance(2);
        assert_eq!(d.dispatch(seq, Dispatch::Resumed), Handled::Accepted);
        d.advance(5_000);
        connected += 5_000;
        let _ = d.send(closed(None));
    }
    let share = connected as f64 / (d.now - first) as f64;
    assert!(share >= 0.8, "connected {:.2} % of the time", share * 100.0);
}
