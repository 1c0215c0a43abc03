//! One test per bug that gateway clients have shipped (discord-gateway.md
//! Part C and Appendix), named after the bug it keeps out.

mod support;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use reconnect_policy::{
    BackoffConfig, BackoffStrategy, CloseCode, Command, ConnectFailure, ConnectionId, Dispatch,
    Event, Handled, PolicyConfig, PolicyState, ReconnectPlan, Recovery, ResumeBreaker,
};
use support::{BASE_URL, Driver, Entry, Out, RESUME_URL, SESSION_ID, closed, ready, t};

fn resume(seq: u64) -> Command {
    Command::Resume {
        session_id: SESSION_ID.to_owned(),
        seq,
    }
}

/// Answers Identify with READY (s=1) or Resume with RESUMED (s=seq+1).
fn complete_handshake(d: &mut Driver, command: &Command) {
    let handled = match command {
        Command::Identify => d.dispatch(1, ready()),
        Command::Resume { seq, .. } => d.dispatch(seq + 1, Dispatch::Resumed),
        Command::Heartbeat { .. } => unreachable!(),
    };
    assert_eq!(handled, Handled::Accepted);
    assert!(d.policy.state().is_connected(), "{:?}", d.policy.state());
}

// ----- (a) ------------------------------------------------------------------

#[test]
fn double_reconnect_on_op7_then_server_close() {
    let mut d = Driver::connected(3);
    d.auto_ack = true;
    d.run_for(61_000);
    let old = d.conn.unwrap();
    let from = d.mark();
    assert_eq!(d.send(Event::Reconnect), Handled::Accepted);
    // A second op 7 on the closing socket, then the server's own close.
    assert_eq!(d.send(Event::Reconnect), Handled::Ignored);
    assert_eq!(d.send(closed(Some(1001))), Handled::Accepted);
    // Anything else about the old socket is stale.
    assert_eq!(d.send_to(old, closed(None)), Handled::Stale);
    assert_eq!(d.send_to(old, Event::Reconnect), Handled::Stale);

    let (_, command) = d.reconnect(from);
    complete_handshake(&mut d, &command);
    d.run_for(2 * 60_000);
    assert_eq!(d.plans_since(from).len(), 1, "{:?}", d.plans_since(from));
    assert_eq!(d.connects_since(from).len(), 1);
    assert!(d.policy.state().is_connected());
}

// ----- a long script through every kind of ending -----------------------

/// One driver taken through every way a connection can end: connect
/// timeout, op 7, op 9 (both kinds), zombie, Hello timeout, handshake
/// timeout, a close never confirmed, op 7 mid-resume, a server close and a
/// failed dial.
fn every_kind_of_ending() -> Driver {
    let mut d = Driver::new(PolicyConfig::default());
    // Connection 0 never opens.
    let from = d.mark();
    let _ = d.next_connect(from);
    // 1: READY, then op 7.
    d.establish();
    d.dispatches(2..=4);
    d.auto_ack = true;
    d.run_for(5_000);
    let from = d.mark();
    let _ = d.send(Event::Reconnect);
    let _ = d.send(closed(Some(4000)));
    // 2: resumed, then op 9 resumable.
    let (_, command) = d.reconnect(from);
    complete_handshake(&mut d, &command);
    d.run_for(5_000);
    let from = d.mark();
    let _ = d.send(Event::InvalidSession { resumable: true });
    let _ = d.send(closed(None));
    // 3: resumed, then a zombie (no more ACKs).
    let (_, command) = d.reconnect(from);
    complete_handshake(&mut d, &command);
    d.auto_ack = false;
    let from = d.mark();
    let _ = d.expect_output(from, |o| matches!(o, Out::Close { .. }));
    let _ = d.send(closed(None));
    d.auto_ack = true;
    // 4: opened, no Hello.
    let connect = d.next_connect(from);
    assert_eq!(connect.recovery, Recovery::Resume);
    let from = d.mark();
    let _ = d.send(Event::Opened);
    let _ = d.expect_output(from, |o| matches!(o, Out::Close { .. }));
    let _ = d.send(closed(None));
    // 5: Resume sent, no RESUMED, and the close is never confirmed.
    let (_, command) = d.reconnect(from);
    assert!(matches!(command, Command::Resume { .. }));
    let from = d.mark();
    let _ = d.expect_output(from, |o| matches!(o, Out::Abort { .. }));
    // 6: op 7 in the middle of a resume (the third failed resume in a row).
    let (_, command) = d.reconnect(from);
    assert!(matches!(command, Command::Resume { .. }));
    let from = d.mark();
    let _ = d.send(Event::Reconnect);
    let _ = d.send(closed(None));
    // 7: a new session, then a server close.
    let (_, command) = d.reconnect(from);
    complete_handshake(&mut d, &command);
    d.run_for(3_000);
    let from = d.mark();
    let _ = d.send(closed(Some(1006)));
    // 8: the dial to the resume URL fails.
    let connect = d.next_connect(from);
    assert_eq!(connect.url, RESUME_URL);
    let from = d.mark();
    let _ = d.send(Event::ConnectFailed {
        failure: ConnectFailure::Refused,
    });
    // 9: a new session, then op 9 not resumable.
    let (_, command) = d.reconnect(from);
    complete_handshake(&mut d, &command);
    d.run_for(3_000);
    let from = d.mark();
    let _ = d.send(Event::InvalidSession { resumable: false });
    let _ = d.send(closed(None));
    // 10: a new session.
    let (_, command) = d.reconnect(from);
    complete_handshake(&mut d, &command);
    assert_eq!(d.conn, Some(ConnectionId(10)));
    d
}

/// Whether this trace entry ends `conn` (the driver reported it gone, or
/// the policy told the driver to drop it).
fn ends(entry: &Entry, conn: ConnectionId) -> bool {
    match entry {
        Entry::In {
            connection, event, ..
        } => {
            *connection == conn
                && matches!(event, Event::Closed { .. } | Event::ConnectFailed { .. })
        }
        Entry::Out(Out::Abort { connection }) => *connection == conn,
        Entry::Out(_) => false,
    }
}

// ----- (b) ------------------------------------------------------------------

#[test]
fn old_socket_left_open() {
    let d = every_kind_of_ending();
    let connects: Vec<(usize, ConnectionId)> = d
        .trace
        .iter()
        .enumerate()
        .filter_map(|(i, (_, entry))| match entry {
            Entry::Out(Out::Connect { connection, .. }) => Some((i, *connection)),
            _ => None,
        })
        .collect();
    assert_eq!(connects.len(), 11);
    for pair in connects.windows(2) {
        let ((previous_at, previous), (next_at, next)) = (pair[0], pair[1]);
        assert!(
            d.trace[previous_at..next_at]
                .iter()
                .any(|(_, entry)| ends(entry, previous)),
            "{next} was dialled while {previous} was not closed or aborted"
        );
    }
}

// ----- (c) ------------------------------------------------------------------

#[test]
fn wrong_sequence_on_resume() {
    let mut d = Driver::connected(7);
    d.advance(1_000);
    let from = d.mark();
    let _ = d.send(closed(None));
    let (_, command) = d.reconnect(from);
    assert_eq!(command, resume(7));

    // The gateway replays what was missed; the link drops mid-replay.
    d.dispatches(8..=12);
    let from = d.mark();
    assert_eq!(d.send(Event::HeartbeatRequest), Handled::Accepted);
    assert_eq!(
        d.commands_since(from),
        [(d.now, Command::Heartbeat { seq: Some(12) })]
    );
    let from = d.mark();
    let _ = d.send(closed(None));
    let (_, command) = d.reconnect(from);
    assert_eq!(command, resume(12), "resume must carry the newest seq");

    // This time the replay finishes; new events follow.
    assert_eq!(d.dispatch(13, Dispatch::Resumed), Handled::Accepted);
    d.dispatches(14..=15);
    let from = d.mark();
    let _ = d.send(closed(Some(1001)));
    let (_, command) = d.reconnect(from);
    assert_eq!(command, resume(15));
}

#[test]
fn stale_seq_carried_into_a_new_session() {
    let mut d = Driver::connected(40);
    d.advance(10_000);
    let from = d.mark();
    let _ = d.send(closed(Some(4009)));
    let (_, command) = d.reconnect(from);
    assert_eq!(command, Command::Identify);
    // READY of the new session has s=1 again: new, not a duplicate.
    assert_eq!(d.dispatch(1, ready()), Handled::Accepted);
    assert_eq!(d.policy.last_seq(), Some(1));
    let from = d.mark();
    let _ = d.send(Event::HeartbeatRequest);
    assert_eq!(
        d.commands_since(from),
        [(d.now, Command::Heartbeat { seq: Some(1) })]
    );
}

// ----- (d) ------------------------------------------------------------------

/// A connected session with seq 5 whose connection is a resumed one (the
/// first connection identified; this one resumed), 5 s old.
fn resumed_session() -> Driver {
    let mut d = Driver::connected(5);
    d.auto_ack = true;
    d.run_for(5_000);
    let from = d.mark();
    let _ = d.send(closed(None));
    let (_, command) = d.reconnect(from);
    complete_handshake(&mut d, &command);
    d.run_for(5_000);
    d
}

/// From a fresh resuming connection (Resume or Hello not yet answered).
fn resuming(send_hello: bool) -> Driver {
    let mut d = Driver::connected(5);
    d.run_for(5_000);
    let from = d.mark();
    let _ = d.send(closed(None));
    let _ = d.next_connect(from);
    if send_hello {
        assert_eq!(d.open(), resume(5));
    } else {
        let _ = d.send(Event::Opened);
    }
    d
}

#[test]
fn closing_with_1000_or_1001_before_a_resume() {
    type Script = fn() -> Driver;
    let scripts: [(&str, Script); 7] = [
        ("op 7", || {
            let mut d = resumed_session();
            let _ = d.send(Event::Reconnect);
            d
        }),
        ("op 9 resumable", || {
            let mut d = resumed_session();
            let _ = d.send(Event::InvalidSession { resumable: true });
            d
        }),
        ("zombie", || {
            let mut d = resumed_session();
            d.auto_ack = false;
            let from = d.mark();
            let _ = d.expect_output(from, |o| matches!(o, Out::Close { .. }));
            d
        }),
        ("Hello timeout while resuming", || resuming(false)),
        ("handshake timeout while resuming", || resuming(true)),
        ("op 7 while resuming", || {
            let mut d = resuming(true);
            let _ = d.send(Event::Reconnect);
            d
        }),
        ("op 9 resumable while resuming", || {
            let mut d = resuming(true);
            let _ = d.send(Event::InvalidSession { resumable: true });
            d
        }),
    ];
    for (name, script) in scripts {
        let mut d = script();
        let from = d.mark();
        let (_, close) = d.expect_output(0, |o| matches!(o, Out::Close { .. }));
        let Out::Close { code, .. } = close else {
            unreachable!()
        };
        let _ = d.send(closed(Some(code.as_u16())));
        let connect = d.next_connect(from);
        assert_eq!(connect.recovery, Recovery::Resume, "{name}");
        assert!(
            !matches!(code, CloseCode::Normal | CloseCode::GoingAway),
            "{name}: closed with {code} and then resumed"
        );
    }

    // And across a long script: every close followed by a resume.
    let d = every_kind_of_ending();
    let mut checked = 0;
    for (i, (_, entry)) in d.trace.iter().enumerate() {
        let Entry::Out(Out::Close { code, .. }) = entry else {
            continue;
        };
        let next_recovery = d.trace[i..].iter().find_map(|(_, e)| match e {
            Entry::Out(Out::Connect { recovery, .. }) => Some(*recovery),
            _ => None,
        });
        if next_recovery == Some(Recovery::Resume) {
            checked += 1;
            assert!(code.keeps_session_when_sent_by_client(), "{code}");
        }
    }
    assert!(checked >= 5, "only {checked} closes before a resume");
}

// ----- (e) ------------------------------------------------------------------

#[test]
fn backoff_that_doubles_twice() {
    let config = PolicyConfig {
        backoff: BackoffConfig {
            strategy: BackoffStrategy::Exponential,
            base_ms: 1_000,
            cap_ms: 60_000,
        },
        guard_ms: 0,
        ..PolicyConfig::default()
    };
    let mut d = Driver::new(config);
    let mut backoffs = Vec::new();
    for retry in 1..=9 {
        let from = d.mark();
        let failure = ConnectFailure::Refused;
        assert_eq!(d.send(Event::ConnectFailed { failure }), Handled::Accepted);
        let (failed_at, plan) = d.only_plan_since(from);
        assert_eq!(plan.retry, retry);
        assert_eq!(plan.at, t(failed_at + plan.backoff_ms));
        backoffs.push(plan.backoff_ms);
        let connect = d.next_connect(from);
        assert!(t(connect.at) >= plan.at, "connected before the backoff");
        // The identify limiter may hold a short backoff (its slots are one
        // window apart); a longer one is the only wait.
        if plan.backoff_ms >= 5_250 {
            assert_eq!(t(connect.at), plan.at);
        }
    }
    assert_eq!(
        backoffs,
        [
            1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000
        ]
    );
}

// ----- (f) ------------------------------------------------------------------

/// Connects, completes the handshake, stays up `up_ms` (heartbeats every
/// second, each ACKed at once), then the link drops. Returns the plan.
fn up_then_drop(d: &mut Driver, up_ms: u64) -> ReconnectPlan {
    let from = d.mark();
    let command = d.open();
    complete_handshake(d, &command);
    d.run_for(up_ms);
    let _ = d.send(closed(None));
    let (_, plan) = d.only_plan_since(from);
    let _ = d.next_connect(from);
    plan
}

#[test]
fn reset_too_early_on_a_link_that_drops_at_once() {
    let config = PolicyConfig {
        backoff: BackoffConfig {
            strategy: BackoffStrategy::Exponential,
            base_ms: 1_000,
            cap_ms: 1_000_000,
        },
        ..PolicyConfig::default()
    };
    let mut d = Driver::new(config);
    // A 1 s interval: the first heartbeat (and its ACK) often comes within
    // the 500 ms the link lives; that must not count as stable either.
    d.interval_ms = 1_000;
    d.auto_ack = true;
    let plans: Vec<ReconnectPlan> = (0..10).map(|_| up_then_drop(&mut d, 500)).collect();
    let retries: Vec<u32> = plans.iter().map(|p| p.retry).collect();
    assert_eq!(retries, (1..=10).collect::<Vec<_>>());
    let backoffs: Vec<u64> = plans.iter().map(|p| p.backoff_ms).collect();
    let expected: Vec<u64> = (0..10).map(|n| 1_000 << n).collect();
    assert_eq!(backoffs, expected);
    assert!(d.policy.stats().heartbeat_acks > 0, "no ACK was exercised");

    // A connection that stays up past the stability window does reset.
    let plan = up_then_drop(&mut d, 60_001);
    assert_eq!(plan.retry, 1);
    assert_eq!(plan.backoff_ms, 1_000);
}

#[test]
fn reset_too_early_with_the_default_jittered_backoff() {
    let mut d = Driver::new(PolicyConfig::default());
    d.auto_ack = true;
    let config = d.policy.config().backoff;
    for retry in 1..=10 {
        let plan = up_then_drop(&mut d, 500);
        assert_eq!(plan.retry, retry);
        let (low, high) = config.bounds(retry);
        assert!((low..=high).contains(&plan.backoff_ms), "{plan:?}");
        assert!(plan.backoff_ms >= 500 << (retry - 1).min(6), "{plan:?}");
    }
    let plan = up_then_drop(&mut d, 61_000);
    assert_eq!(plan.retry, 1);
}

// ----- (g) ------------------------------------------------------------------

#[test]
fn unknown_event_name_never_disconnects() {
    // On an established session.
    let mut d = Driver::connected(5);
    d.advance(1_000);
    let conn = d.conn;
    let wake = d.policy.poll_timeout();
    let from = d.mark();
    assert_eq!(d.dispatch(6, Dispatch::Other), Handled::Accepted);
    assert_eq!(
        d.send(Event::Dispatch {
            seq: None,
            event: Dispatch::Other
        }),
        Handled::Accepted
    );
    assert_eq!(d.send(Event::OtherFrame), Handled::Accepted);
    assert!(
        d.outputs_since(from).is_empty(),
        "{:?}",
        d.outputs_since(from)
    );
    assert_eq!(d.policy.state(), PolicyState::Connected { stable: false });
    assert_eq!(
        (d.policy.connection(), d.policy.poll_timeout()),
        (conn, wake)
    );
    assert_eq!(d.policy.last_seq(), Some(6));

    // Before Hello, and while identifying.
    let mut d = Driver::new(PolicyConfig::default());
    let _ = d.send(Event::Opened);
    for step in 0..2 {
        let state = d.policy.state();
        let from = d.mark();
        let _ = d.send(Event::OtherFrame);
        let _ = d.send(Event::Dispatch {
            seq: None,
            event: Dispatch::Other,
        });
        assert!(d.outputs_since(from).is_empty(), "step {step}");
        assert_eq!(d.policy.state(), state, "step {step}");
        if step == 0 {
            let _ = d.send(Event::Hello {
                heartbeat_interval_ms: 41_250,
            });
            assert_eq!(d.policy.state(), PolicyState::Identifying);
        }
    }
}

// ----- (h) ------------------------------------------------------------------

#[test]
fn stale_events_from_an_old_connection() {
    let mut d = Driver::connected(5);
    d.advance(1_000);
    let old = d.conn.unwrap();
    let from = d.mark();
    let _ = d.send(closed(None));
    let (_, command) = d.reconnect(from);
    complete_handshake(&mut d, &command);
    let snapshot = |d: &Driver| {
        (
            d.policy.state(),
            d.policy.session().cloned(),
            d.policy.last_seq(),
            d.policy.connection(),
            d.policy.poll_timeout(),
        )
    };
    let before = snapshot(&d);
    let stale_events = [
        Event::Opened,
        Event::Hello {
            heartbeat_interval_ms: 1_000,
        },
        Event::Dispatch {
            seq: Some(100),
            event: Dispatch::Ready {
                session_id: "other".into(),
                resume_gateway_url: "wss://elsewhere.example".into(),
            },
        },
        Event::Dispatch {
            seq: Some(101),
            event: Dispatch::Resumed,
        },
        Event::Dispatch {
            seq: Some(102),
            event: Dispatch::Other,
        },
        Event::HeartbeatAck,
        Event::HeartbeatRequest,
        Event::Reconnect,
        Event::InvalidSession { resumable: false },
        Event::OtherFrame,
        Event::ConnectFailed {
            failure: ConnectFailure::Rejected { status: 401 },
        },
        closed(Some(4004)),
        closed(None),
    ];
    for connection in [old, ConnectionId(99)] {
        for event in stale_events.clone() {
            let from = d.mark();
            assert_eq!(
                d.send_to(connection, event.clone()),
                Handled::Stale,
                "{event:?}"
            );
            assert!(d.outputs_since(from).is_empty(), "{event:?}");
            assert_eq!(snapshot(&d), before, "{event:?}");
        }
    }
    assert_eq!(d.policy.stats().stale_events, 2 * 13);
}

// ----- (i) ------------------------------------------------------------------

#[test]
fn resume_breaker_after_three_failed_resumes() {
    let mut d = Driver::connected(5);
    d.run_for(5_000);
    let mut from = d.mark();
    let _ = d.send(closed(None));
    // Three resumes in a row fail, each in another way.
    for attempt in 1..=3 {
        let (connect, command) = d.reconnect(from);
        assert_eq!(connect.url, RESUME_URL, "attempt {attempt}");
        assert_eq!(command, resume(5), "attempt {attempt}");
        from = d.mark();
        match attempt {
            1 => {
                let _ = d.send(closed(None));
            }
            2 => {
                let _ = d.expect_output(from, |o| matches!(o, Out::Close { .. }));
                let _ = d.send(closed(None));
            }
            _ => {
                let _ = d.send(closed(Some(1006)));
            }
        }
    }
    let (_, plan) = d.only_plan_since(from);
    assert_eq!(plan.recovery, Recovery::Reidentify);
    assert_eq!(d.policy.session(), None);
    let (connect, command) = d.reconnect(from);
    assert_eq!(connect.url, BASE_URL);
    assert_eq!(command, Command::Identify);
    assert_eq!(d.policy.stats().resume_breaker_trips, 1);
}

#[test]
fn resume_breaker_counts_failures_in_a_row_only() {
    let mut d = Driver::connected(5);
    d.run_for(5_000);
    let mut from = d.mark();
    let _ = d.send(closed(None));
    // fail, fail, succeed, fail, fail: never three in a row.
    for attempt in 1..=5 {
        let (_, command) = d.reconnect(from);
        assert!(
            matches!(command, Command::Resume { .. }),
            "attempt {attempt}: {command:?}"
        );
        if attempt == 3 {
            complete_handshake(&mut d, &command);
        }
        from = d.mark();
        let _ = d.send(closed(None));
    }
    let (_, command) = d.reconnect(from);
    assert!(matches!(command, Command::Resume { .. }));
}

#[test]
fn resume_breaker_on_a_failed_dial_to_the_resume_url() {
    // The literal rule, behind `drop_session_on_dial_failure`: one
    // failed dial to the resume URL drops the session too.
    let dropping = PolicyConfig {
        resume: ResumeBreaker {
            drop_session_on_dial_failure: true,
            ..ResumeBreaker::DEFAULT
        },
        ..PolicyConfig::default()
    };
    for failure in [Some(ConnectFailure::Refused), None] {
        let mut d = Driver::new(dropping.clone());
        d.establish();
        d.dispatches(2..=5);
        d.run_for(5_000);
        let from = d.mark();
        let _ = d.send(closed(None));
        let connect = d.next_connect(from);
        assert_eq!(connect.url, RESUME_URL);
        let from = d.mark();
        match failure {
            Some(failure) => {
                let _ = d.send(Event::ConnectFailed { failure });
            }
            // No answer at all: the connect deadline aborts it.
            None => {
                let _ = d.expect_output(from, |o| matches!(o, Out::Abort { .. }));
            }
        }
        assert_eq!(d.policy.session(), None, "{failure:?}");
        let (connect, command) = d.reconnect(from);
        assert_eq!(connect.url, BASE_URL, "{failure:?}");
        assert_eq!(command, Command::Identify, "{failure:?}");
    }

    // The default keeps the session on a failed dial and resumes against
    // the base URL (the resume URL is dropped).
    let mut d = Driver::new(PolicyConfig::default());
    d.establish();
    d.dispatches(2..=5);
    d.run_for(5_000);
    let from = d.mark();
    let _ = d.send(closed(None));
    assert_eq!(d.next_connect(from).url, RESUME_URL);
    let from = d.mark();
    let _ = d.send(Event::ConnectFailed {
        failure: ConnectFailure::Dns,
    });
    let (connect, command) = d.reconnect(from);
    assert_eq!(connect.url, BASE_URL);
    assert_eq!(connect.recovery, Recovery::Resume);
    assert_eq!(command, resume(5));
    assert_eq!(d.policy.session().unwrap().resume_url, None);
}

#[test]
fn an_outage_of_failed_dials_never_costs_the_session() {
    // Dials that fail say the network is down, not that the session is
    // dead: far more of them than the breaker's limit keep the session.
    let mut d = Driver::new(PolicyConfig::default());
    d.establish();
    d.dispatches(2..=9);
    d.run_for(5_000);
    let mut from = d.mark();
    let _ = d.send(closed(None));
    for _ in 0..(ResumeBreaker::DEFAULT.max_failed_resumes * 4) {
        let connect = d.next_connect(from);
        assert_eq!(connect.recovery, Recovery::Resume);
        from = d.mark();
        let _ = d.send(Event::ConnectFailed {
            failure: ConnectFailure::Refused,
        });
    }
    let (connect, command) = d.reconnect(from);
    assert_eq!(connect.url, BASE_URL);
    assert_eq!(command, resume(9));
}

#[test]
fn a_lost_session_is_dialled_often_until_its_resume_window_is_likely_over() {
    // A link that flaps refuses every dial that lands in a down period; at
    // the backoff's 30-60 s a shard dialled a handful of times in the
    // gateway's resume window, all refused, and the session expired with
    // the link up more than half the time. While the session is likely
    // resumable the waits stay within `max_wait_while_resumable_ms`, drawn
    // in its upper half; past `short_waits_for_ms` the backoff alone rules.
    let rule = ResumeBreaker::DEFAULT;
    let max = rule.max_wait_while_resumable_ms;
    let mut d = Driver::new(PolicyConfig::default());
    d.establish();
    d.dispatches(2..=9);
    d.run_for(5_000);
    let mut from = d.mark();
    let _ = d.send(closed(None));
    let lost_at = d.plans_since(from)[0].0;
    let mut waits = Vec::new();
    let mut dials_in_window = 0;
    for _ in 0..40 {
        let connect = d.next_connect(from);
        assert_eq!(connect.recovery, Recovery::Resume);
        let (planned_at, plan) = *d.plans_since(from).last().unwrap();
        let wait = plan.at.as_millis() - planned_at;
        waits.push((planned_at - lost_at, wait));
        if plan.at.as_millis() - lost_at < rule.short_waits_for_ms {
            dials_in_window += 1;
        }
        from = d.mark();
        let _ = d.send(Event::ConnectFailed {
            failure: ConnectFailure::Refused,
        });
    }
    let (inside, outside): (Vec<_>, Vec<_>) = waits
        .iter()
        .partition(|(since, _)| *since < rule.short_waits_for_ms);
    assert!(inside.iter().all(|(_, wait)| *wait <= max), "{waits:?}");
    // The capped waits are spread, not pinned to the cap.
    let capped: Vec<u64> = inside
        .iter()
        .map(|(_, wait)| *wait)
        .filter(|wait| *wait >= max / 2)
        .collect();
    assert!(capped.len() >= 5, "{waits:?}");
    assert!(capped.iter().any(|wait| *wait < max), "{waits:?}");
    assert!(dials_in_window >= 12, "{dials_in_window} dials: {waits:?}");
    // Past the window the backoff's cap (60 s) is back.
    assert!(outside.iter().any(|(_, wait)| *wait > max), "{waits:?}");
    // The session was never dropped.
    let (connect, command) = d.reconnect(from);
    assert_eq!(connect.recovery, Recovery::Resume);
    assert_eq!(command, resume(9));
}

#[test]
fn without_a_session_the_backoff_alone_rules() {
    // A shard that never reached READY has nothing to resume: its waits
    // climb to the backoff's cap as before.
    let mut d = Driver::new(PolicyConfig::default());
    let mut from = d.mark();
    let mut longest = 0;
    for _ in 0..12 {
        let connect = d.next_connect(from);
        assert_eq!(connect.recovery, Recovery::Reidentify);
        if let Some((planned_at, plan)) = d.plans_since(from).last() {
            longest = longest.max(plan.at.as_millis() - planned_at);
        }
        from = d.mark();
        let _ = d.send(Event::ConnectFailed {
            failure: ConnectFailure::Refused,
        });
    }
    assert!(
        longest > ResumeBreaker::DEFAULT.max_wait_while_resumable_ms,
        "{longest}"
    );
}

// ----- (j) ------------------------------------------------------------------

#[test]
fn clock_that_steps_backwards() {
    let mut d = Driver::connected(3);
    d.set_time(50_000);
    let from = d.mark();
    let _ = d.send(closed(None));
    let (_, plan) = d.only_plan_since(from);
    assert!(plan.at > t(50_000));
    for back in [49_999, 10_000, 0, 1, 30_000, plan.at.as_millis() - 1] {
        d.set_time(back);
        assert!(d.connects_since(from).is_empty(), "connected at {back}");
        assert_eq!(d.policy.poll_timeout(), Some(plan.at));
    }
    d.set_time(plan.at.as_millis());
    let connect = d.next_connect(from);
    assert_eq!(t(connect.at), plan.at);
    // An event stamped before anything seen: deadlines run from the latest.
    d.set_time(0);
    assert_eq!(d.send(Event::Opened), Handled::Accepted);
    assert_eq!(
        d.policy.poll_timeout(),
        Some(plan.at.saturating_add(20_000))
    );
    // Hello stamped in the past: the first heartbeat is not in the past.
    d.set_time(5);
    let _ = d.send(Event::Hello {
        heartbeat_interval_ms: 41_250,
    });
    assert!(d.policy.poll_timeout().unwrap() >= plan.at);
}

#[test]
fn clock_at_the_end_of_time_neither_panics_nor_spins() {
    let mut d = Driver::connected(3);
    d.auto_ack = true;
    // Every deadline saturates at the last instant; the driver's drain
    // panics if the policy never stops emitting.
    d.set_time(u64::MAX);
    d.set_time(0);
    d.set_time(u64::MAX);
}

#[test]
fn clock_that_wobbles_never_connects_before_the_plan() {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut d = Driver::new(PolicyConfig::default());
    d.auto_ack = true;
    let mut real = 0;
    let mut latest_fed = 0;
    let mut planned = t(0);
    let mut seen = 0;
    for step in 0..3_000 {
        real += rng.next_u64() % 2_000;
        // Up to 5 s behind the real time, now and then.
        let fed = if rng.next_u64() % 4 == 0 {
            real.saturating_sub(rng.next_u64() % 5_000)
        } else {
            real
        };
        latest_fed = latest_fed.max(fed);
        d.set_time(fed);
        // The gateway does something now and then.
        if let Some(conn) = d.policy.connection() {
            let event = match rng.next_u64() % 40 {
                0 => Some(closed(None)),
                1 => Some(Event::Reconnect),
                2 => Some(Event::Opened),
                3 => Some(Event::Hello {
                    heartbeat_interval_ms: 5_000,
                }),
                4 => Some(Event::Dispatch {
                    seq: Some(step),
                    event: ready(),
                }),
                5 => Some(Event::InvalidSession { resumable: true }),
                _ => None,
            };
            if let Some(event) = event {
                let _ = d.send_to(conn, event);
            }
        }
        for (_, entry) in &d.trace[seen..] {
            match entry {
                Entry::Out(Out::Plan(plan)) => planned = plan.at,
                Entry::Out(Out::Connect { .. }) => {
                    assert!(t(latest_fed) >= planned, "step {step}: connected early");
                }
                _ => {}
            }
        }
        seen = d.trace.len();
    }
    assert!(d.policy.stats().attempts > 10, "{:?}", d.policy.stats());
}

// ----- (k) ------------------------------------------------------------------

#[test]
fn duplicate_dispatch() {
    let mut d = Driver::connected(5);
    assert_eq!(d.dispatch(5, Dispatch::Other), Handled::Duplicate);
    assert_eq!(d.dispatch(3, Dispatch::Other), Handled::Duplicate);
    assert_eq!(d.policy.last_seq(), Some(5));
    assert_eq!(d.dispatch(6, Dispatch::Other), Handled::Accepted);
    assert_eq!(d.policy.last_seq(), Some(6));
    assert_eq!(d.policy.stats().duplicate_dispatches, 2);
    assert!(d.policy.state().is_connected());

    // A duplicate replayed during a resume does not lower the seq either.
    let from = d.mark();
    let _ = d.send(closed(None));
    let (_, command) = d.reconnect(from);
    assert_eq!(command, resume(6));
    assert_eq!(d.dispatch(4, Dispatch::Other), Handled::Duplicate);
    assert_eq!(d.dispatch(7, Dispatch::Resumed), Handled::Accepted);
    assert_eq!(d.policy.last_seq(), Some(7));
}
