//! What every close code does to the session, end to end through the
//! policy and through `decide` alone (discord-gateway.md A1 and Appendix 1).

mod support;

use reconnect_policy::{
    CloseCode, Command, Decision, DecisionConfig, Event, GiveUpReason, Handled, Jitter,
    PolicyConfig, PolicyState, Recovery, Trigger, decide,
};
use support::{BASE_URL, Driver, HOUR_MS, Out, RESUME_URL, SESSION_ID, closed};

/// "Do not reconnect" in the gateway documentation.
const FATAL: [u16; 6] = [4004, 4010, 4011, 4012, 4013, 4014];
/// "Reconnect and start a new session".
const REIDENTIFY: [u16; 3] = [4003, 4007, 4009];
/// Known codes after which the session survives (a server-sent 1000/1001
/// included).
const RESUME: [u16; 13] = [
    4000, 4001, 4002, 4005, 4008, 1000, 1001, 1005, 1006, 1011, 1012, 1013, 1015,
];
/// Codes the policy has never heard of: the safe default is to resume.
const UNKNOWN: [u16; 8] = [4006, 4200, 3000, 4015, 4999, 1002, 0, 65_535];

/// The last sequence number of the session built by [`with_session`].
const LAST_SEQ: u64 = 5;

/// An established session (READY s=1, then s=2..=5), 10 s old.
fn with_session() -> Driver {
    let mut d = Driver::connected(LAST_SEQ);
    d.auto_ack = true;
    d.run_for(10_000);
    assert!(d.policy.state().is_connected());
    d
}

/// Every non-fatal way to close: the known resumable codes, unknown codes
/// and no code at all.
fn resumable_closes() -> Vec<Option<u16>> {
    RESUME
        .iter()
        .chain(UNKNOWN.iter())
        .map(|&code| Some(code))
        .chain([None])
        .collect()
}

/// Asserts the policy gave up on `code` and stays silent for good.
fn assert_gave_up_for_good(d: &mut Driver, code: u16, from: usize) {
    let reason = GiveUpReason::FatalCloseCode {
        code: CloseCode::from_u16(code),
    };
    let outputs: Vec<Out> = d.outputs_since(from).into_iter().map(|(_, o)| o).collect();
    assert_eq!(outputs, [Out::GiveUp(reason)], "close {code}");
    assert_eq!(d.policy.state(), PolicyState::GivenUp { reason });
    assert!(d.policy.state().is_terminal());
    assert_eq!(d.policy.poll_timeout(), None, "close {code}");
    let conn = d.conn.expect("a connection existed");
    for hour in 1..=6 {
        d.advance(HOUR_MS);
        for _ in 0..3 {
            assert_eq!(d.policy.poll_output(), None);
        }
        // Even a late event about the dead connection cannot revive it.
        assert_eq!(
            d.send_to(conn, Event::Opened),
            Handled::Stale,
            "hour {hour}"
        );
    }
    assert!(
        d.connects_since(from).is_empty(),
        "close {code}: connected again after giving up"
    );
    assert_eq!(d.policy.state(), PolicyState::GivenUp { reason });
}

#[test]
fn fatal_codes_give_up_and_never_connect_again_with_a_session() {
    for code in FATAL {
        let mut d = with_session();
        let from = d.mark();
        assert_eq!(d.send(closed(Some(code))), Handled::Accepted);
        assert_gave_up_for_good(&mut d, code, from);
    }
}

#[test]
fn fatal_codes_give_up_in_every_phase_of_the_handshake() {
    for code in FATAL {
        // Before Hello.
        let mut d = Driver::new(PolicyConfig::default());
        assert_eq!(d.send(Event::Opened), Handled::Accepted);
        let from = d.mark();
        let _ = d.send(closed(Some(code)));
        assert_gave_up_for_good(&mut d, code, from);

        // After Identify, before READY.
        let mut d = Driver::new(PolicyConfig::default());
        assert_eq!(d.open(), Command::Identify);
        let from = d.mark();
        let _ = d.send(closed(Some(code)));
        assert_gave_up_for_good(&mut d, code, from);

        // After Resume, before RESUMED.
        let mut d = with_session();
        let from = d.mark();
        let _ = d.send(closed(None));
        let (_, command) = d.reconnect(from);
        assert!(matches!(command, Command::Resume { .. }));
        let from = d.mark();
        let _ = d.send(closed(Some(code)));
        assert_gave_up_for_good(&mut d, code, from);
    }
}

#[test]
fn fatal_code_while_closing_after_op7_still_gives_up() {
    for code in FATAL {
        let mut d = with_session();
        assert_eq!(d.send(Event::Reconnect), Handled::Accepted);
        assert_eq!(d.policy.state(), PolicyState::Closing);
        let from = d.mark();
        assert_eq!(d.send(closed(Some(code))), Handled::Accepted);
        assert_gave_up_for_good(&mut d, code, from);
    }
}

#[test]
fn session_invalidating_codes_identify_against_the_base_url_without_a_resume_round_trip() {
    for code in REIDENTIFY {
        let mut d = with_session();
        let from = d.mark();
        assert_eq!(d.send(closed(Some(code))), Handled::Accepted);
        let (_, plan) = d.only_plan_since(from);
        assert_eq!(plan.decision, Decision::Reidentify, "close {code}");
        assert_eq!(plan.recovery, Recovery::Reidentify, "close {code}");
        assert_eq!(d.policy.session(), None, "close {code}: session kept");
        assert_eq!(d.policy.last_seq(), None, "close {code}: seq kept");

        let (connect, command) = d.reconnect(from);
        assert_eq!(connect.url, BASE_URL, "close {code}");
        assert_eq!(connect.recovery, Recovery::Reidentify, "close {code}");
        assert_eq!(command, Command::Identify, "close {code}");
        let resumes = d
            .commands_since(from)
            .into_iter()
            .filter(|(_, c)| matches!(c, Command::Resume { .. }))
            .count();
        assert_eq!(resumes, 0, "close {code}: a Resume that must fail was sent");
    }
}

#[test]
fn resumable_and_unknown_codes_resume_on_the_resume_url_with_the_last_seq() {
    for code in resumable_closes() {
        let mut d = with_session();
        let from = d.mark();
        assert_eq!(d.send(closed(code)), Handled::Accepted);
        let (_, plan) = d.only_plan_since(from);
        assert_eq!(
            plan.trigger,
            Trigger::Closed {
                code: code.map(CloseCode::from_u16)
            }
        );
        assert_eq!(plan.decision, Decision::Resume, "close {code:?}");
        assert_eq!(plan.recovery, Recovery::Resume, "close {code:?}");

        let (connect, command) = d.reconnect(from);
        assert_eq!(connect.url, RESUME_URL, "close {code:?}");
        assert_eq!(connect.recovery, Recovery::Resume, "close {code:?}");
        assert_eq!(
            command,
            Command::Resume {
                session_id: SESSION_ID.to_owned(),
                seq: LAST_SEQ
            },
            "close {code:?}"
        );
    }
}

#[test]
fn without_a_session_every_non_fatal_code_identifies_against_the_base_url() {
    let every_non_fatal = resumable_closes()
        .into_iter()
        .chain(REIDENTIFY.iter().map(|&code| Some(code)));
    for code in every_non_fatal {
        // Closed after Identify, before READY: no session exists yet.
        let mut d = Driver::new(PolicyConfig::default());
        assert_eq!(d.open(), Command::Identify);
        let from = d.mark();
        assert_eq!(d.send(closed(code)), Handled::Accepted);
        let (_, plan) = d.only_plan_since(from);
        assert_eq!(plan.decision, Decision::Reidentify, "close {code:?}");
        let (connect, command) = d.reconnect(from);
        assert_eq!(connect.url, BASE_URL, "close {code:?}");
        assert_eq!(connect.recovery, Recovery::Reidentify, "close {code:?}");
        assert_eq!(command, Command::Identify, "close {code:?}");

        // Closed before Hello.
        let mut d = Driver::new(PolicyConfig::default());
        assert_eq!(d.send(Event::Opened), Handled::Accepted);
        let from = d.mark();
        assert_eq!(d.send(closed(code)), Handled::Accepted);
        let (connect, command) = d.reconnect(from);
        assert_eq!(
            (connect.url.as_str(), connect.recovery, command),
            (BASE_URL, Recovery::Reidentify, Command::Identify),
            "close {code:?}"
        );
    }
}

#[test]
fn decide_alone_follows_the_same_table() {
    let mut rng = Jitter::new(11);
    let cfg = DecisionConfig::DEFAULT;
    let closed = |code: Option<u16>| Trigger::Closed {
        code: code.map(CloseCode::from_u16),
    };
    for has_session in [true, false] {
        for code in FATAL {
            assert_eq!(
                decide(closed(Some(code)), has_session, &cfg, &mut rng),
                Decision::GiveUp {
                    reason: GiveUpReason::FatalCloseCode {
                        code: CloseCode::from_u16(code)
                    }
                },
                "close {code}, session {has_session}"
            );
        }
        for code in REIDENTIFY {
            assert_eq!(
                decide(closed(Some(code)), has_session, &cfg, &mut rng),
                Decision::Reidentify,
                "close {code}, session {has_session}"
            );
        }
        let expected = if has_session {
            Decision::Resume
        } else {
            Decision::Reidentify
        };
        for code in resumable_closes() {
            assert_eq!(
                decide(closed(code), has_session, &cfg, &mut rng),
                expected,
                "close {code:?}, session {has_session}"
            );
        }
    }
}

#[test]
fn no_code_outside_the_documented_fatal_list_is_fatal() {
    // Every u16: only the six documented codes stop the bot.
    let fatal: Vec<u16> = (0..=u16::MAX)
        .filter(|&code| CloseCode::from_u16(code).is_fatal())
        .collect();
    assert_eq!(fatal, FATAL);
}
