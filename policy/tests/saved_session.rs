//! Sessions that outlive the process: a shutdown that keeps the session,
//! the saved value (serde, no token), a policy and a fleet started from one
//! (the first attempt resumes at the saved URL with the saved sequence),
//! the URL check on a saved session, and the fall back to Identify when
//! the gateway no longer knows it.

mod support;

use reconnect_policy::{
    Action, CloseCode, Command, Dispatch, Event, Fleet, Handled, IdentifyLimiter, Output, Policy,
    PolicyConfig, PolicyState, Recovery, SavedSession, SavedSessions, SessionStartLimit, UrlError,
};
use support::{BASE_URL, Driver, INTERVAL_MS, Out, RESUME_URL, SESSION_ID, closed, ready, t};

/// A driver around a policy started from `saved` at 0, drained once.
fn resuming(saved: &SavedSession) -> Driver {
    let policy = Policy::resuming(PolicyConfig::default(), 0, 7, t(0), saved)
        .expect("the test config is valid");
    let mut driver = Driver {
        policy,
        limiter: IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0)),
        now: 0,
        trace: Vec::new(),
        conn: None,
        interval_ms: INTERVAL_MS,
        auto_ack: false,
    };
    driver.drain();
    driver
}

fn saved(seq: u64) -> SavedSession {
    SavedSession {
        session_id: SESSION_ID.to_owned(),
        resume_url: Some(RESUME_URL.to_owned()),
        seq: Some(seq),
    }
}

#[test]
fn shutdown_keeping_the_session_closes_with_4000_and_hands_it_out() {
    let mut d = Driver::connected(5);
    let from = d.mark();
    d.policy.shutdown_keeping_session(t(d.now));
    d.drain();
    let closes = d.closes_since(from);
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].2, CloseCode::UnknownError, "a code that keeps it");
    assert_ne!(closes[0].2.as_u16(), 1000);
    assert_ne!(closes[0].2.as_u16(), 1001);
    // A dispatch that arrives while the socket closes still counts.
    assert_eq!(d.dispatch(6, Dispatch::Other), Handled::Accepted);
    let _ = d.send(closed(Some(4000)));
    assert_eq!(d.policy.state(), PolicyState::Stopped);
    assert_eq!(d.policy.saved_session(), Some(saved(6)));
    d.run_for(3_600_000);
    assert!(d.connects_since(from).is_empty(), "stopped for good");
}

#[test]
fn shutdown_keeping_the_session_while_dialling_drops_the_socket() {
    let mut d = Driver::connected(3);
    let _ = d.send(closed(None));
    let from = d.mark();
    let _ = d.next_connect(from);
    let at = d.mark();
    d.policy.shutdown_keeping_session(t(d.now));
    d.drain();
    assert!(
        d.outputs_since(at)
            .iter()
            .any(|(_, o)| matches!(o, Out::Abort { .. })),
        "{:?}",
        d.outputs_since(at)
    );
    assert!(d.closes_since(at).is_empty(), "no close code at all");
    assert_eq!(d.policy.state(), PolicyState::Stopped);
    assert_eq!(d.policy.saved_session(), Some(saved(3)));
}

#[test]
fn without_a_session_it_is_the_ordinary_shutdown() {
    let mut d = Driver::new(PolicyConfig::default());
    assert_eq!(d.open(), Command::Identify);
    let from = d.mark();
    d.policy.shutdown_keeping_session(t(d.now));
    d.drain();
    let closes = d.closes_since(from);
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].2, CloseCode::Normal);
    assert_eq!(d.policy.saved_session(), None);
}

#[test]
fn the_ordinary_shutdown_leaves_nothing_to_save() {
    let mut d = Driver::connected(4);
    d.policy.shutdown(t(d.now));
    d.drain();
    assert_eq!(d.policy.saved_session(), None);
}

#[test]
fn the_saved_value_round_trips_through_serde_and_holds_no_token() {
    let value = saved(42);
    let json = serde_json::to_string(&value).unwrap();
    assert_eq!(
        json,
        format!(r#"{{"session_id":"{SESSION_ID}","resume_url":"{RESUME_URL}","seq":42}}"#)
    );
    assert_eq!(serde_json::from_str::<SavedSession>(&json).unwrap(), value);
    let many: SavedSessions = [(0, saved(1)), (7, saved(9))].into_iter().collect();
    let json = serde_json::to_string(&many).unwrap();
    assert_eq!(serde_json::from_str::<SavedSessions>(&json).unwrap(), many);
}

#[test]
fn a_policy_started_from_a_saved_session_resumes_at_its_url_without_identifying() {
    let mut d = resuming(&saved(42));
    let connects = d.connects_since(0);
    assert_eq!(connects.len(), 1);
    assert_eq!(connects[0].at, 0, "at once: no start slot to wait for");
    assert_eq!(connects[0].url, RESUME_URL);
    assert_eq!(connects[0].recovery, Recovery::Resume);
    assert_eq!(
        d.open(),
        Command::Resume {
            session_id: SESSION_ID.to_owned(),
            seq: 42
        }
    );
    assert_eq!(
        d.dispatch(42, Dispatch::Other),
        Handled::Duplicate,
        "replayed"
    );
    assert_eq!(d.dispatch(43, Dispatch::Other), Handled::Accepted);
    assert_eq!(
        d.send(Event::Dispatch {
            seq: None,
            event: Dispatch::Resumed
        }),
        Handled::Accepted
    );
    assert!(d.policy.state().is_connected());
    assert_eq!(d.policy.stats().identifies_sent, 0);
    assert_eq!(d.policy.stats().resumes_succeeded, 1);
    assert_eq!(d.limiter.stats().granted, 0, "the limiter was never asked");
    assert_eq!(d.limiter.stats().reserved, 0);
}

#[test]
fn a_saved_session_without_a_resume_url_resumes_at_the_gateway_url() {
    let mut d = resuming(&SavedSession {
        resume_url: None,
        seq: None,
        ..saved(0)
    });
    let connects = d.connects_since(0);
    assert_eq!(connects[0].url, BASE_URL);
    assert_eq!(
        d.open(),
        Command::Resume {
            session_id: SESSION_ID.to_owned(),
            seq: 0
        }
    );
}

#[test]
fn a_saved_resume_url_outside_the_allowed_domains_never_gets_the_token() {
    let evil = "wss://gateway.evil.example";
    let mut d = resuming(&SavedSession {
        resume_url: Some(evil.to_owned()),
        ..saved(42)
    });
    let outputs = d.outputs_since(0);
    assert!(
        outputs.iter().any(|(_, o)| matches!(
            o,
            Out::ResumeUrlRefused { url, reason: UrlError::HostNotAllowed } if url == evil
        )),
        "{outputs:?}"
    );
    assert_eq!(d.policy.stats().resume_urls_refused, 1);
    let connects = d.connects_since(0);
    assert_eq!(connects.len(), 1);
    assert_eq!(connects[0].url, BASE_URL);
    assert_eq!(connects[0].recovery, Recovery::Reidentify);
    assert_eq!(
        d.open(),
        Command::Identify,
        "a new session, at the base URL"
    );
    assert!(d.connects_since(0).iter().all(|c| c.url != evil));
}

#[test]
fn a_saved_session_with_a_bad_id_is_not_used() {
    for id in [String::new(), "a".repeat(10_000)] {
        let mut d = resuming(&SavedSession {
            session_id: id,
            ..saved(42)
        });
        assert_eq!(d.connects_since(0)[0].url, BASE_URL);
        assert_eq!(d.open(), Command::Identify);
    }
}

/// Resumes the saved session, then lets the gateway refuse it with `refusal`;
/// the next attempt must identify at the base URL.
fn refused_then_identifies(refusal: Event) {
    let mut d = resuming(&saved(42));
    assert!(matches!(d.open(), Command::Resume { .. }));
    let from = d.mark();
    let _ = d.send(refusal.clone());
    let (connect, command) = d.reconnect(from);
    assert_eq!(connect.recovery, Recovery::Reidentify, "after {refusal:?}");
    assert_eq!(connect.url, BASE_URL);
    assert_eq!(command, Command::Identify, "after {refusal:?}");
    assert_eq!(d.dispatch(1, ready()), Handled::Accepted);
    assert!(d.policy.state().is_connected());
    assert_eq!(d.policy.saved_session(), Some(saved(1)), "the new session");
}

#[test]
fn a_saved_session_the_gateway_no_longer_knows_falls_back_to_identify() {
    refused_then_identifies(Event::InvalidSession { resumable: false });
    refused_then_identifies(closed(Some(4009)));
    refused_then_identifies(closed(Some(4007)));
}

#[test]
fn a_fleet_started_from_saved_sessions_resumes_them_and_identifies_the_rest() {
    let limiter = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0));
    let sessions: SavedSessions = (0..4)
        .map(|shard| {
            let seq = 10 + u64::from(shard);
            let mut s = saved(seq);
            s.session_id = format!("s{shard}");
            (shard, s)
        })
        .chain([(99, saved(1))]) // not one of the fleet's: ignored
        .collect();
    let mut fleet = Fleet::resuming(
        PolicyConfig::default(),
        0..6,
        7,
        Some(limiter),
        t(0),
        &sessions,
    )
    .unwrap();
    let mut connects = Vec::new();
    while let Some((shard, output)) = fleet.poll_output() {
        if let Output::Action(Action::Connect { url, recovery, .. }) = output {
            connects.push((shard, url, recovery));
        }
    }
    // Shards 0..4 resume at once; of 4 and 5 (one bucket) only the first
    // identifies now, the other waits for its window.
    let resumes: Vec<u32> = connects
        .iter()
        .filter(|(_, url, recovery)| url == RESUME_URL && *recovery == Recovery::Resume)
        .map(|(shard, ..)| *shard)
        .collect();
    assert_eq!(resumes, [0, 1, 2, 3]);
    let identifies: Vec<u32> = connects
        .iter()
        .filter(|(_, _, recovery)| *recovery == Recovery::Reidentify)
        .map(|(shard, ..)| *shard)
        .collect();
    assert_eq!(identifies, [4]);
    assert_eq!(fleet.limiter().unwrap().stats().granted, 0);

    // Keep the sessions: nothing open, so every shard stops at once, and
    // the saved sessions are handed back as they were.
    fleet.shutdown_keeping_sessions(t(1));
    assert!(fleet.is_terminal());
    let back = fleet.saved_sessions();
    assert_eq!(back.len(), 4);
    assert_eq!(back[&2].session_id, "s2");
    assert_eq!(back[&2].seq, Some(12));
}
