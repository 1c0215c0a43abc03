//! Opcodes, heartbeats, deadlines and identify limits, end to end
//! (discord-gateway.md A2, A3 and Appendix 2, 5, 6, 7, 8).

mod support;

use std::collections::BTreeSet;

use reconnect_policy::{
    Action, CloseCode, Command, ConnectFailure, Deadline, Decision, Dispatch, Event, GiveUpReason,
    Handled, IdentifyAnswer, IdentifyLimiter, IdentifyRequest, Output, Policy, PolicyConfig,
    PolicyState, Recovery, SessionStartLimit, Timestamp, Trigger, ZombieRule,
};
use support::{
    BASE_URL, Driver, HOUR_MS, INTERVAL_MS, Out, RESUME_URL, SESSION_ID, closed, ready, t,
};

/// Codes that end the session when a client sends them.
fn ends_session(code: CloseCode) -> bool {
    matches!(code.as_u16(), 1000 | 1001)
}

fn resume(seq: u64) -> Command {
    Command::Resume {
        session_id: SESSION_ID.to_owned(),
        seq,
    }
}

/// An established session with seq 3 that has stayed up past the stability
/// window (heartbeats answered), so the backoff is reset.
fn stable_session() -> Driver {
    let mut d = Driver::connected(3);
    d.auto_ack = true;
    d.run_for(61_000);
    assert_eq!(d.policy.state(), PolicyState::Connected { stable: true });
    d
}

// ----- op 7 Reconnect -------------------------------------------------------

#[test]
fn op7_closes_with_4000_waits_for_closed_then_resumes_without_backoff() {
    let mut d = stable_session();
    let old = d.conn.unwrap();
    let from = d.mark();
    assert_eq!(d.send(Event::Reconnect), Handled::Accepted);
    let closes = d.closes_since(from);
    assert_eq!(closes.len(), 1);
    let (closed_at, conn, code) = closes[0];
    assert_eq!(conn, old);
    assert_eq!(code, CloseCode::UnknownError);
    assert!(!ends_session(code));

    // Nothing is dialled while the old socket is still closing.
    d.run_for(4_000);
    assert!(d.connects_since(from).is_empty());
    assert_eq!(d.policy.state(), PolicyState::Closing);

    let _ = d.send(closed(Some(4000)));
    let (_, plan) = d.only_plan_since(from);
    assert_eq!(plan.trigger, Trigger::Reconnect);
    assert_eq!(plan.backoff_ms, 0);
    assert_eq!((plan.retry, plan.counted), (0, false));
    assert_eq!(
        plan.at,
        t(d.now),
        "op 7 after a stable link waits for nothing"
    );
    let (connect, command) = d.reconnect(from);
    assert_eq!(connect.at, d.now);
    assert!(connect.at >= closed_at);
    assert_eq!(connect.url, RESUME_URL);
    assert_eq!(command, resume(3));
}

#[test]
fn op7_before_hello_closes_and_resumes() {
    let mut d = Driver::connected(4);
    d.advance(5_000);
    let from = d.mark();
    let _ = d.send(closed(None));
    let resuming = d.next_connect(from);
    assert_eq!(resuming.recovery, Recovery::Resume);
    assert_eq!(d.send(Event::Opened), Handled::Accepted);

    let from = d.mark();
    assert_eq!(d.send(Event::Reconnect), Handled::Accepted);
    let closes = d.closes_since(from);
    assert_eq!(closes.len(), 1);
    assert!(!ends_session(closes[0].2), "{closes:?}");
    assert!(d.connects_since(from).is_empty());
    let _ = d.send(closed(None));
    let (connect, command) = d.reconnect(from);
    assert_eq!(connect.url, RESUME_URL);
    assert_eq!(command, resume(4));
}

#[test]
fn op7_before_hello_on_the_first_connection_closes_and_identifies() {
    let mut d = Driver::new(PolicyConfig::default());
    assert_eq!(d.send(Event::Opened), Handled::Accepted);
    let from = d.mark();
    assert_eq!(d.send(Event::Reconnect), Handled::Accepted);
    assert_eq!(d.closes_since(from).len(), 1);
    let _ = d.send(closed(None));
    let (connect, command) = d.reconnect(from);
    assert_eq!(connect.url, BASE_URL);
    assert_eq!(command, Command::Identify);
    assert_eq!(d.dispatch(1, ready()), Handled::Accepted);
    assert!(d.policy.state().is_connected());
}

#[test]
fn op7_on_an_unproven_connection_still_backs_off() {
    // op 7 before RESUMED answered the Resume: the gateway asked before
    // the connection proved anything, so it counts as a failure.
    let mut d = Driver::connected(3);
    d.advance(1_000);
    let from = d.mark();
    let _ = d.send(closed(None));
    let (_, command) = d.reconnect(from);
    assert_eq!(command, resume(3));
    let from = d.mark();
    assert_eq!(d.send(Event::Reconnect), Handled::Accepted);
    let _ = d.send(closed(None));
    let (_, plan) = d.only_plan_since(from);
    assert_eq!((plan.retry, plan.counted), (2, true));
    let (low, high) = d.policy.config().backoff.bounds(2);
    assert!(
        low > 0 && (low..=high).contains(&plan.backoff_ms),
        "{plan:?}"
    );
}

// ----- op 9 Invalid Session -------------------------------------------------

#[test]
fn op9_resumable_closes_without_1000_waits_1_to_5_s_then_resumes() {
    let mut waits = BTreeSet::new();
    for seed in 0..40 {
        let mut d = Driver::with_seed(PolicyConfig::default(), seed);
        d.establish();
        d.dispatches(2..=6);
        d.auto_ack = true;
        d.run_for(20_000);
        let from = d.mark();
        assert_eq!(
            d.send(Event::InvalidSession { resumable: true }),
            Handled::Accepted
        );
        let closes = d.closes_since(from);
        assert_eq!(closes.len(), 1);
        let (closed_at, _, code) = closes[0];
        assert!(!ends_session(code), "seed {seed}: closed with {code}");
        let _ = d.send(closed(Some(code.as_u16())));
        let (_, plan) = d.only_plan_since(from);
        let wait = plan.at.saturating_since(t(closed_at));
        assert!((1_000..=5_000).contains(&wait), "seed {seed}: {wait} ms");
        assert!(matches!(
            plan.decision,
            Decision::Wait { delay_ms, then: Recovery::Resume } if (1_000..=5_000).contains(&delay_ms)
        ));
        waits.insert(wait);

        let (connect, command) = d.reconnect(from);
        assert!(t(connect.at) >= plan.at, "seed {seed}: connected early");
        assert_eq!(connect.url, RESUME_URL);
        assert_eq!(command, resume(6));
    }
    assert!(waits.len() > 30, "the op 9 wait is not random: {waits:?}");
}

#[test]
fn op9_not_resumable_drops_the_session_and_identifies_on_the_base_url_after_1_to_5_s() {
    for seed in 0..40 {
        let mut d = Driver::with_seed(PolicyConfig::default(), seed);
        d.establish();
        d.dispatches(2..=6);
        d.auto_ack = true;
        d.run_for(20_000);
        let from = d.mark();
        assert_eq!(
            d.send(Event::InvalidSession { resumable: false }),
            Handled::Accepted
        );
        assert_eq!(d.policy.session(), None, "seed {seed}");
        assert_eq!(d.policy.last_seq(), None, "seed {seed}");
        let (closed_at, _, code) = d.closes_since(from)[0];
        let _ = d.send(closed(Some(code.as_u16())));
        let (connect, command) = d.reconnect(from);
        let wait = connect.at - closed_at;
        assert!((1_000..=5_000).contains(&wait), "seed {seed}: {wait} ms");
        assert_eq!(connect.url, BASE_URL);
        assert_eq!(connect.recovery, Recovery::Reidentify);
        assert_eq!(command, Command::Identify);
    }
}

// ----- op 1, op 10, op 11 ---------------------------------------------------

#[test]
fn op1_is_answered_at_once_with_the_last_seq() {
    let mut d = Driver::connected(9);
    d.advance(1_000);
    let from = d.mark();
    assert_eq!(d.send(Event::HeartbeatRequest), Handled::Accepted);
    let outputs = d.outputs_since(from);
    assert_eq!(
        outputs,
        [(
            d.now,
            Out::Send {
                connection: d.conn.unwrap(),
                command: Command::Heartbeat { seq: Some(9) }
            }
        )]
    );
}

#[test]
fn op1_flood_is_answered_within_the_send_limit() {
    let mut d = Driver::connected(2);
    let from = d.mark();
    for _ in 0..50 {
        let _ = d.send(Event::HeartbeatRequest);
        d.advance(20);
    }
    let replies = d.commands_since(from).len();
    // The first request is answered at once; a flood gets no more than the
    // two replies per minute the send budget keeps for it.
    assert!((1..=2).contains(&replies), "{replies} replies");
    assert!(d.policy.state().is_connected());
}

#[test]
fn op1_before_any_dispatch_sends_a_null_seq() {
    let mut d = Driver::new(PolicyConfig::default());
    assert_eq!(d.open(), Command::Identify);
    let from = d.mark();
    assert_eq!(d.send(Event::HeartbeatRequest), Handled::Accepted);
    assert_eq!(
        d.commands_since(from),
        [(0, Command::Heartbeat { seq: None })]
    );
}

/// A fresh connection whose Hello (and READY) arrive at `hello_at`; returns
/// the time of its first heartbeat.
fn first_heartbeat_at(seed: u64, hello_at: u64) -> u64 {
    let mut d = Driver::with_seed(PolicyConfig::default(), seed);
    d.set_time(hello_at);
    d.establish();
    let from = d.mark();
    let (at, _) = d.expect_output(from, |o| {
        matches!(
            o,
            Out::Send {
                command: Command::Heartbeat { .. },
                ..
            }
        )
    });
    at
}

#[test]
fn hello_first_heartbeat_is_spread_over_one_interval() {
    let offsets: Vec<u64> = (0..300)
        .map(|seed| first_heartbeat_at(seed, 100) - 100)
        .collect();
    assert!(offsets.iter().all(|&o| o < INTERVAL_MS), "{offsets:?}");
    let distinct: BTreeSet<u64> = offsets.iter().copied().collect();
    assert!(distinct.len() > 290, "first-heartbeat jitter is dead");
    let min = *distinct.first().unwrap();
    let max = *distinct.last().unwrap();
    assert!(min < INTERVAL_MS / 20, "nothing early: min {min}");
    assert!(max > INTERVAL_MS * 19 / 20, "nothing late: max {max}");
    // Each tenth of the interval gets a fair share (30 expected each).
    for decile in 0..10 {
        let n = offsets
            .iter()
            .filter(|&&o| o * 10 / INTERVAL_MS == decile)
            .count();
        assert!((12..=55).contains(&n), "decile {decile}: {n} of 300");
    }
}

#[test]
fn heartbeats_follow_every_interval_after_the_first() {
    let mut d = Driver::connected(2);
    d.auto_ack = true;
    d.run_for(5 * INTERVAL_MS);
    let beats: Vec<(u64, Command)> = d
        .commands_since(0)
        .into_iter()
        .filter(|(_, c)| matches!(c, Command::Heartbeat { .. }))
        .collect();
    assert!(beats.len() >= 5, "{beats:?}");
    for pair in beats.windows(2) {
        assert_eq!(pair[1].0 - pair[0].0, INTERVAL_MS, "{beats:?}");
    }
    assert!(
        beats
            .iter()
            .all(|(_, c)| *c == Command::Heartbeat { seq: Some(2) })
    );
    assert!(d.policy.state().is_connected());
}

#[test]
fn missing_ack_is_a_zombie_closed_with_4000_then_resumed() {
    let mut d = Driver::connected(4);
    let beat = |o: &Out| {
        matches!(
            o,
            Out::Send {
                command: Command::Heartbeat { .. },
                ..
            }
        )
    };
    let (first, _) = d.expect_output(0, beat);
    // No ACK. The next heartbeat falls due one interval later: zombie.
    let from = d.mark();
    let (close_at, close) = d.expect_output(from, |o| matches!(o, Out::Close { .. }) || beat(o));
    assert_eq!(close_at, first + INTERVAL_MS);
    assert!(
        matches!(
            close,
            Out::Close {
                code: CloseCode::UnknownError,
                ..
            }
        ),
        "{close:?}"
    );
    assert_eq!(d.policy.stats().zombies, 1);
    let _ = d.send(closed(None));
    let (_, plan) = d.only_plan_since(from);
    assert_eq!(plan.trigger, Trigger::Zombie);
    let (connect, command) = d.reconnect(from);
    assert_eq!(connect.url, RESUME_URL);
    assert_eq!(command, resume(4));
}

/// One connection, first heartbeat sent, never ACKed; a dispatch arrives
/// halfway to the next heartbeat. Returns what the next due heartbeat gave.
fn dispatch_between_heartbeats(rule: ZombieRule) -> Out {
    let mut d = Driver::new(PolicyConfig {
        zombie: rule,
        ..PolicyConfig::default()
    });
    d.establish();
    let beat = |o: &Out| {
        matches!(
            o,
            Out::Send {
                command: Command::Heartbeat { .. },
                ..
            }
        )
    };
    let (first, _) = d.expect_output(0, beat);
    d.set_time(first + INTERVAL_MS / 2);
    assert_eq!(d.dispatch(2, Dispatch::Other), Handled::Accepted);
    let from = d.mark();
    let (at, output) = d.expect_output(from, |o| matches!(o, Out::Close { .. }) || beat(o));
    assert_eq!(at, first + INTERVAL_MS);
    output
}

#[test]
fn any_frame_rule_counts_a_dispatch_as_life() {
    assert!(matches!(
        dispatch_between_heartbeats(ZombieRule::AnyFrame),
        Out::Send {
            command: Command::Heartbeat { seq: Some(2) },
            ..
        }
    ));
}

#[test]
fn ack_only_rule_does_not_count_a_dispatch_as_life() {
    assert!(matches!(
        dispatch_between_heartbeats(ZombieRule::AckOnly),
        Out::Close {
            code: CloseCode::UnknownError,
            ..
        }
    ));
}

// ----- deadlines ------------------------------------------------------------

#[test]
fn connect_deadline_aborts_the_attempt_and_plans_the_next() {
    let mut d = Driver::new(PolicyConfig::default());
    let first = d.conn.unwrap();
    let from = d.mark();
    d.run_for(9_999);
    assert!(d.outputs_since(from).is_empty());
    d.advance(1);
    let outputs = d.outputs_since(from);
    assert_eq!(outputs[0], (10_000, Out::Abort { connection: first }));
    let (_, plan) = d.only_plan_since(from);
    assert_eq!(
        plan.trigger,
        Trigger::Timeout {
            deadline: Deadline::Connect
        }
    );
    let next = d.next_connect(from);
    assert_ne!(next.connection, first);
    assert!(t(next.at) >= plan.at);
}

#[test]
fn hello_deadline_closes_then_reconnects() {
    let mut d = Driver::new(PolicyConfig::default());
    assert_eq!(d.send(Event::Opened), Handled::Accepted);
    let from = d.mark();
    d.run_for(19_999);
    assert!(d.outputs_since(from).is_empty());
    d.advance(1);
    assert_eq!(d.closes_since(from).len(), 1);
    assert_eq!(d.closes_since(from)[0].0, 20_000);
    assert!(
        d.connects_since(from).is_empty(),
        "dialled before the close"
    );
    let _ = d.send(closed(None));
    let (_, plan) = d.only_plan_since(from);
    assert_eq!(
        plan.trigger,
        Trigger::Timeout {
            deadline: Deadline::Hello
        }
    );
    let (connect, command) = d.reconnect(from);
    assert_eq!(connect.url, BASE_URL);
    assert_eq!(command, Command::Identify);
}

#[test]
fn handshake_deadline_closes_then_reconnects() {
    let mut d = Driver::new(PolicyConfig::default());
    assert_eq!(d.open(), Command::Identify);
    let from = d.mark();
    d.run_for(29_999);
    assert!(d.closes_since(from).is_empty());
    d.advance(1);
    let closes = d.closes_since(from);
    assert_eq!(closes.len(), 1, "{closes:?}");
    assert_eq!(closes[0].0, 30_000);
    let _ = d.send(closed(None));
    let (_, plan) = d.only_plan_since(from);
    assert_eq!(
        plan.trigger,
        Trigger::Timeout {
            deadline: Deadline::Handshake
        }
    );
    let (_, command) = d.reconnect(from);
    assert_eq!(command, Command::Identify);
}

/// Another shard of the bucket holds it with an Identify that never
/// settles (its answer lost), so the limiter keeps answering "retry in
/// 250 ms" until the grant's 60 s lease runs out.
fn limiter_held_by_another_shard() -> IdentifyLimiter {
    let limit = SessionStartLimit {
        max_concurrency: 1,
        ..SessionStartLimit::DISCORD_DEFAULT
    };
    let mut limiter = IdentifyLimiter::new(limit, t(0));
    limiter
        .try_acquire(t(0), 1)
        .expect("the bucket starts free");
    limiter
}

#[test]
fn a_shard_the_limiter_keeps_answering_waits_on_its_healthy_socket() {
    let mut d = Driver::with_limiter(PolicyConfig::default(), 7, limiter_held_by_another_shard());
    d.auto_ack = true;
    let from = d.mark();
    let (connect, command) = d.reconnect(from);
    assert_eq!(command, Command::Identify);
    let (identified_at, _) = d.expect_output(from, |o| {
        matches!(
            o,
            Out::Send {
                command: Command::Identify,
                ..
            }
        )
    });
    // Hello came at the reserved slot (5.25 s); the slot wait alone (38 s)
    // would have ended at 43.25 s. The limiter answered all along, so the
    // socket is kept until the other shard's lease ends at 60 s.
    assert_eq!(
        connect.at, 5_250,
        "the start reserved one window after the grant"
    );
    assert!(identified_at >= 60_000, "identified at {identified_at}");
    assert!(
        d.closes_since(from).is_empty(),
        "{:?}",
        d.closes_since(from)
    );
    assert_eq!(d.connects_since(from).len(), 1);
}

/// What [`drain_unanswered`] saw of a policy whose Identify grants are
/// never answered.
#[derive(Default)]
struct Unanswered {
    conn: Option<reconnect_policy::ConnectionId>,
    acquires: u32,
    heartbeats: Vec<u64>,
    closed_at: Option<u64>,
}

/// Drains `policy` at `now`: a start reservation is answered at once, a
/// request for a grant never; heartbeats are noted so they can be acked.
fn drain_unanswered(policy: &mut Policy, now: u64, seen: &mut Unanswered) {
    while let Some(output) = policy.poll_output() {
        match output {
            Output::Action(Action::Connect { connection, .. }) => seen.conn = Some(connection),
            Output::Action(Action::Identify {
                request: IdentifyRequest::ReserveStart,
                ..
            }) => {
                let _ = policy.handle_identify(t(now), IdentifyAnswer::StartAt(t(now)));
            }
            Output::Action(Action::Identify { .. }) => seen.acquires += 1,
            Output::Action(Action::Send {
                command: Command::Heartbeat { .. },
                ..
            }) => seen.heartbeats.push(now),
            Output::Action(Action::Close { .. }) => {
                seen.closed_at.get_or_insert(now);
            }
            _ => {}
        }
    }
}

#[test]
fn an_identify_request_never_answered_ends_at_the_slot_wait() {
    let mut policy = Policy::new(PolicyConfig::default(), 0, 7, t(0)).expect("valid config");
    let mut seen = Unanswered::default();
    drain_unanswered(&mut policy, 0, &mut seen);
    let conn = seen.conn.expect("the policy dials at once");
    let _ = policy.handle_event(t(0), conn, Event::Opened);
    let hello = Event::Hello {
        heartbeat_interval_ms: INTERVAL_MS,
    };
    let _ = policy.handle_event(t(0), conn, hello);
    drain_unanswered(&mut policy, 0, &mut seen);
    let mut now = 0;
    while seen.closed_at.is_none() && now < 120_000 {
        now = policy
            .poll_timeout()
            .map_or(now + 1, Timestamp::as_millis)
            .max(now + 1);
        policy.handle_timeout(t(now));
        let beats = seen.heartbeats.len();
        drain_unanswered(&mut policy, now, &mut seen);
        if seen.heartbeats.len() > beats {
            // The socket itself is healthy: every heartbeat is acked.
            let _ = policy.handle_event(t(now), conn, Event::HeartbeatAck);
            drain_unanswered(&mut policy, now, &mut seen);
        }
    }
    assert_eq!(seen.acquires, 1, "one request, never answered");
    // The handshake timeout (30 s) and the settle hold (7 s) plus 1 s.
    assert_eq!(seen.closed_at, Some(38_000));
}

#[test]
fn resume_handshake_deadline_closes_then_resumes_again() {
    let mut d = Driver::connected(3);
    d.advance(1_000);
    let from = d.mark();
    let _ = d.send(closed(None));
    let (_, command) = d.reconnect(from);
    assert_eq!(command, resume(3));
    assert_eq!(d.policy.state(), PolicyState::Resuming);
    let from = d.mark();
    let sent_at = d.now;
    let (close_at, close) = d.expect_output(from, |o| matches!(o, Out::Close { .. }));
    assert_eq!(close_at, sent_at + 30_000);
    assert!(matches!(close, Out::Close { code, .. } if !ends_session(code)));
    let _ = d.send(closed(None));
    let (_, command) = d.reconnect(from);
    assert_eq!(command, resume(3));
}

#[test]
fn unconfirmed_close_is_aborted_after_close_ms_then_the_next_connect_follows() {
    let mut d = stable_session();
    let old = d.conn.unwrap();
    let from = d.mark();
    assert_eq!(d.send(Event::Reconnect), Handled::Accepted);
    let close_at = d.now;
    // The driver never reports Closed.
    d.run_for(4_999);
    assert!(d.connects_since(from).is_empty());
    assert!(
        !d.outputs_since(from)
            .iter()
            .any(|(_, o)| matches!(o, Out::Abort { .. }))
    );
    d.advance(1);
    let outputs = d.outputs_since(from);
    let abort = outputs
        .iter()
        .position(|(_, o)| *o == Out::Abort { connection: old })
        .expect("the stuck socket is aborted");
    assert_eq!(outputs[abort].0, close_at + 5_000);
    let connect = d.next_connect(from);
    assert_ne!(connect.connection, old);
    let connect_index = outputs
        .iter()
        .position(|(_, o)| matches!(o, Out::Connect { .. }))
        .unwrap_or(usize::MAX);
    assert!(abort < connect_index);
    assert_eq!(connect.recovery, Recovery::Resume);
    // A late Closed for the aborted socket changes nothing.
    assert_eq!(d.send_to(old, closed(Some(4000))), Handled::Stale);
}

// ----- connect failures -----------------------------------------------------

#[test]
fn retry_after_holds_the_next_connect() {
    let mut d = Driver::new(PolicyConfig::default());
    d.set_time(100);
    let from = d.mark();
    let failure = ConnectFailure::RateLimited {
        retry_after_ms: 7_000,
    };
    assert_eq!(d.send(Event::ConnectFailed { failure }), Handled::Accepted);
    let (_, plan) = d.only_plan_since(from);
    assert!(plan.at >= t(7_100), "{plan:?}");
    d.run_for(6_999);
    assert!(d.connects_since(from).is_empty());
    let connect = d.next_connect(from);
    assert!(connect.at >= 7_100, "{connect:?}");
}

#[test]
fn http_401_and_403_give_up() {
    for status in [401, 403] {
        let mut d = Driver::new(PolicyConfig::default());
        let from = d.mark();
        let failure = ConnectFailure::Rejected { status };
        assert_eq!(d.send(Event::ConnectFailed { failure }), Handled::Accepted);
        let reason = GiveUpReason::Unauthorized { status };
        assert_eq!(d.outputs_since(from), [(0, Out::GiveUp(reason))]);
        d.advance(24 * HOUR_MS);
        assert!(d.connects_since(from).is_empty());
        assert_eq!(d.policy.state(), PolicyState::GivenUp { reason });
        assert_eq!(d.policy.poll_timeout(), None);
    }
}

// ----- identify limits ------------------------------------------------------

/// Runs shards that share one limiter against a perfect gateway until
/// `end`, closing every shard with `close_code` at each time in `closes`.
/// Returns `(time, shard)` for every Identify sent.
fn run_fleet(
    shards: u32,
    limiter: &mut IdentifyLimiter,
    closes: &[u64],
    close_code: u16,
    end: u64,
) -> Vec<(u64, u32)> {
    let mut policies: Vec<Policy> = (0..shards)
        .map(|shard| Policy::new(PolicyConfig::default(), shard, u64::from(shard), t(0)).unwrap())
        .collect();
    let mut identifies = Vec::new();
    let mut now = 0;
    loop {
        for (shard, policy) in (0..shards).zip(policies.iter_mut()) {
            policy.handle_timeout(t(now));
            let mut events = Vec::new();
            if closes.contains(&now)
                && let Some(conn) = policy.connection()
            {
                events.push((conn, closed(Some(close_code))));
            }
            loop {
                for (conn, event) in events.drain(..) {
                    let _ = policy.handle_event(t(now), conn, event);
                }
                let Some(output) = policy.poll_output() else {
                    break;
                };
                let Output::Action(action) = output else {
                    continue;
                };
                match action {
                    Action::Connect { connection, .. } => {
                        events.push((connection, Event::Opened));
                        events.push((
                            connection,
                            Event::Hello {
                                heartbeat_interval_ms: INTERVAL_MS,
                            },
                        ));
                    }
                    Action::Send {
                        connection,
                        command,
                    } => {
                        let reply = match command {
                            Command::Identify => {
                                identifies.push((now, shard));
                                Event::Dispatch {
                                    seq: Some(1),
                                    event: ready(),
                                }
                            }
                            Command::Resume { seq, .. } => Event::Dispatch {
                                seq: Some(seq + 1),
                                event: Dispatch::Resumed,
                            },
                            Command::Heartbeat { .. } => Event::HeartbeatAck,
                        };
                        events.push((connection, reply));
                    }
                    Action::Close { connection, .. } => {
                        events.push((connection, closed(None)));
                    }
                    Action::Identify { shard, request } => {
                        if let Some(answer) = limiter.answer(t(now), shard, request) {
                            let _ = policy.handle_identify(t(now), answer);
                        }
                    }
                    Action::Abort { .. } | Action::GiveUp(_) | Action::Probe(_) => {}
                }
            }
        }
        let next = policies
            .iter()
            .filter_map(Policy::poll_timeout)
            .map(Timestamp::as_millis)
            .chain(closes.iter().copied().filter(|&c| c > now))
            .min();
        match next {
            Some(next) if next <= end => now = next.max(now + 1),
            _ => break,
        }
    }
    identifies
}

#[test]
fn two_shards_of_one_bucket_never_identify_within_5_s() {
    let limit = SessionStartLimit {
        max_concurrency: 1,
        ..SessionStartLimit::DISCORD_DEFAULT
    };
    let mut limiter = IdentifyLimiter::new(limit, t(0));
    // Both start together, then both lose their session at once, twice.
    let identifies = run_fleet(2, &mut limiter, &[20_000, 40_000], 4009, 90_000);
    assert_eq!(identifies.len(), 6, "{identifies:?}");
    for shard in 0..2 {
        assert_eq!(identifies.iter().filter(|(_, s)| *s == shard).count(), 3);
    }
    for pair in identifies.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= 5_000, "{identifies:?}");
    }
}

#[test]
fn no_session_starts_left_holds_the_connect_until_the_reset() {
    let limit = SessionStartLimit {
        total: 1_000,
        remaining: 0,
        reset_after_ms: 60_000,
        max_concurrency: 1,
    };
    let limiter = IdentifyLimiter::new(limit, t(0));
    let mut d = Driver::with_limiter(PolicyConfig::default(), 7, limiter);
    assert!(d.connects_since(0).is_empty());
    assert_eq!(d.policy.poll_timeout(), Some(t(60_000)));
    d.set_time(59_999);
    assert!(d.connects_since(0).is_empty());
    let connect = d.next_connect(0);
    assert_eq!(connect.at, 60_000);
    assert_eq!(d.open(), Command::Identify);
}

#[test]
fn a_reidentify_waits_for_the_daily_reset_too() {
    let mut d = Driver::connected(2);
    d.auto_ack = true;
    d.run_for(10_000);
    d.limiter.update(
        SessionStartLimit {
            total: 1_000,
            remaining: 0,
            reset_after_ms: HOUR_MS,
            max_concurrency: 1,
        },
        t(d.now),
    );
    let reset_at = d.now + HOUR_MS;
    let from = d.mark();
    let _ = d.send(closed(Some(4009)));
    let connect = d.next_connect(from);
    assert_eq!(connect.at, reset_at);
    assert_eq!(connect.recovery, Recovery::Reidentify);
}
