//! The gateway model driven alone, with no engine, no links and no clients:
//! inputs with a time in, outputs polled, timers run through
//! `handle_timeout` when `poll_timeout` says. Each test checks one of the
//! rules the referee enforces.

use reconnect_sim::gateway::{Gateway, Output, RECONNECT_GRACE_MS, ServerFault, Timer};
use reconnect_sim::rules::IDENTIFY_WINDOW_MS;
use reconnect_sim::scenario::{self, Overload};
use reconnect_sim::wire::{DispatchKind, SessionId, SockId, ToClient, ToServer};

/// A driver of the gateway alone: it keeps every output with the time it
/// came out.
struct Harness {
    gw: Gateway,
    now: u64,
    out: Vec<(u64, Output)>,
}

impl Harness {
    fn new(config: scenario::Gateway, shards: u32) -> Self {
        Self {
            gw: Gateway::new(&config, shards, 50, 1),
            now: 0,
            out: Vec::new(),
        }
    }

    /// No dispatches, one bucket per shard up to 16, everything else the
    /// documented defaults.
    fn quiet(shards: u32) -> Self {
        Self::new(
            scenario::Gateway {
                dispatch_interval_ms: 0,
                ..scenario::Gateway::default()
            },
            shards,
        )
    }

    fn drain(&mut self) {
        while let Some(o) = self.gw.poll_output() {
            self.out.push((self.now, o));
        }
    }

    /// Runs every timer due up to `t`, each at its own time, then moves the
    /// clock to `t`.
    fn advance_to(&mut self, t: u64) {
        while let Some(due) = self.gw.poll_timeout().filter(|&due| due <= t) {
            self.now = due;
            assert!(self.gw.handle_timeout(due).is_some(), "a timer was due");
            self.drain();
        }
        self.now = t;
    }

    fn connect(&mut self, t: u64, sock: SockId, shard: u32) {
        self.advance_to(t);
        self.gw.handle_connect(t, sock, shard);
        self.drain();
    }

    fn msg(&mut self, t: u64, sock: SockId, msg: ToServer) {
        self.advance_to(t);
        self.gw.handle_message(t, sock, msg);
        self.drain();
    }

    fn fault(&mut self, t: u64, shard: u32, fault: ServerFault) {
        self.advance_to(t);
        self.gw.handle_fault(t, shard, fault);
        self.drain();
    }

    /// Connects and identifies `shard` on `sock`; the new session.
    fn identified(&mut self, t: u64, sock: SockId, shard: u32) -> SessionId {
        self.connect(t, sock, shard);
        self.msg(t + 10, sock, ToServer::Identify);
        match self.sent(sock).last() {
            Some(&(
                _,
                ToClient::Dispatch {
                    session,
                    seq: 1,
                    kind: DispatchKind::Ready,
                },
                0,
            )) => session,
            other => panic!("no READY on {sock:?}: {other:?}"),
        }
    }

    /// Everything sent on `sock`: (time, message, the gateway's own delay).
    fn sent(&self, sock: SockId) -> Vec<(u64, ToClient, u64)> {
        self.out
            .iter()
            .filter_map(|&(t, o)| match o {
                Output::Send {
                    sock: s,
                    msg,
                    delay_ms,
                } if s == sock => Some((t, msg, delay_ms)),
                _ => None,
            })
            .collect()
    }

    /// Every close of `sock`: (time, code, whether the client is told).
    fn closes(&self, sock: SockId) -> Vec<(u64, Option<u16>, bool)> {
        self.out
            .iter()
            .filter_map(|&(t, o)| match o {
                Output::Close {
                    sock: s,
                    code,
                    notify,
                } if s == sock => Some((t, code, notify)),
                _ => None,
            })
            .collect()
    }

    fn count(&self, wanted: Output) -> usize {
        self.out.iter().filter(|(_, o)| *o == wanted).count()
    }
}

const fn sock(index: u32) -> SockId {
    SockId {
        index,
        generation: 0,
    }
}

#[test]
fn a_handshake_gets_hello_and_a_heartbeat_timer() {
    let mut h = Harness::quiet(1);
    h.connect(100, sock(0), 0);
    let interval_ms = scenario::Gateway::default().heartbeat_interval_ms;
    assert_eq!(
        h.sent(sock(0)),
        [
            (100, ToClient::Opened, 0),
            (100, ToClient::Hello { interval_ms }, 0)
        ]
    );
    let timeout = scenario::Gateway::default().heartbeat_timeout_ms;
    assert_eq!(h.gw.poll_timeout(), Some(100 + timeout));
    assert!(h.gw.is_open(sock(0)));
    assert_eq!(h.gw.last_heartbeat(sock(0)), Some(100));
    // A shard outside the bot is not served.
    h.connect(200, sock(1), 5);
    assert!(h.sent(sock(1)).is_empty());
    assert!(!h.gw.is_open(sock(1)));
}

#[test]
fn identify_inside_the_bucket_window_is_answered_with_op9_seconds_later() {
    // Shards 0 and 16 share bucket 0 of 16.
    let mut h = Harness::quiet(17);
    h.identified(0, sock(0), 0);
    h.connect(1_000, sock(1), 16);
    h.msg(1_010, sock(1), ToServer::Identify);
    let answers = h.sent(sock(1));
    let (t, msg, delay) = *answers.last().unwrap();
    assert_eq!(t, 1_010);
    assert_eq!(msg, ToClient::InvalidSession { resumable: false });
    assert!((1_000..=3_000).contains(&delay), "op 9 after {delay} ms");
    assert!(
        !answers
            .iter()
            .any(|(_, m, _)| matches!(m, ToClient::Dispatch { .. })),
        "no READY for a violation"
    );
    let tally = h.gw.tally();
    assert_eq!(tally.identify_violations, 1);
    assert_eq!(tally.identify_violations_strict, 1);
    assert_eq!(tally.session_starts, 1);
    assert!(h.gw.told_to_reconnect(sock(1)));
    // Another bucket is not bound by bucket 0's window.
    h.connect(1_000, sock(2), 1);
    h.msg(1_020, sock(2), ToServer::Identify);
    assert!(matches!(
        h.sent(sock(2)).last(),
        Some((
            _,
            ToClient::Dispatch {
                kind: DispatchKind::Ready,
                ..
            },
            0
        ))
    ));
    assert_eq!(h.gw.tally().identify_violations, 1);
}

#[test]
fn the_window_is_judged_with_the_tolerance_and_counted_strictly_too() {
    let mut h = Harness::quiet(17);
    h.identified(0, sock(0), 0);
    // 10 ms for the first Identify to arrive; 4,970 ms later is inside
    // 5 s but within the 50 ms tolerance.
    h.connect(4_900, sock(1), 16);
    h.msg(4_980, sock(1), ToServer::Identify);
    let tally = h.gw.tally();
    assert_eq!(tally.identify_violations, 0);
    assert_eq!(tally.identify_violations_strict, 1);
    assert_eq!(tally.session_starts, 2);
    // Past the window, even the strict count is satisfied.
    h.connect(10_000, sock(2), 0);
    h.msg(10_000 + IDENTIFY_WINDOW_MS, sock(2), ToServer::Identify);
    assert_eq!(h.gw.tally().identify_violations_strict, 1);
    assert_eq!(h.gw.tally().session_starts, 3);
}

#[test]
fn resume_replays_missed_events_in_order_then_resumed() {
    let mut h = Harness::new(
        scenario::Gateway {
            dispatch_interval_ms: 1_000,
            ..scenario::Gateway::default()
        },
        1,
    );
    let session = h.identified(0, sock(0), 0);
    // The client sees events up to 3, then its connection drops.
    h.advance_to(20_000);
    let seen: Vec<u64> = h
        .sent(sock(0))
        .iter()
        .filter_map(|(_, m, _)| match m {
            ToClient::Dispatch { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert!(seen.len() > 5, "dispatches flow: {seen:?}");
    assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    h.msg(20_000, sock(0), ToServer::Drop);
    assert_eq!(h.closes(sock(0)), [(20_000, None, false)]);
    assert_eq!(h.count(Output::Lost { shard: 0 }), 1);
    // Events go on while it is away.
    h.advance_to(30_000);
    let generated = h.gw.session_seq(session).unwrap();
    assert!(generated > *seen.last().unwrap());
    h.connect(30_000, sock(1), 0);
    h.msg(
        30_010,
        sock(1),
        ToServer::Resume {
            session: Some(session),
            seq: 3,
        },
    );
    let replay: Vec<(u64, DispatchKind)> = h
        .sent(sock(1))
        .iter()
        .filter_map(|(_, m, _)| match *m {
            ToClient::Dispatch {
                session: s,
                seq,
                kind,
            } if s == session => Some((seq, kind)),
            _ => None,
        })
        .collect();
    let mut expected: Vec<(u64, DispatchKind)> =
        (4..=generated).map(|k| (k, DispatchKind::Other)).collect();
    expected.push((generated + 1, DispatchKind::Resumed));
    assert_eq!(replay, expected);
    assert_eq!(h.gw.tally().resumes_succeeded, 1);
    assert_eq!(h.count(Output::Established { shard: 0 }), 2);
}

#[test]
fn a_sequence_the_session_never_reached_closes_4007_and_ends_it() {
    let mut h = Harness::quiet(1);
    let session = h.identified(0, sock(0), 0);
    h.msg(1_000, sock(0), ToServer::Close { code: 4000 });
    h.connect(2_000, sock(1), 0);
    h.msg(
        2_010,
        sock(1),
        ToServer::Resume {
            session: Some(session),
            seq: 2,
        },
    );
    assert_eq!(h.closes(sock(1)), [(2_010, Some(4007), true)]);
    assert!(!h.gw.has_resumable_session(0));
    // A sequence of 0 (`null`) is as invalid, and the session is gone now:
    // op 9.
    h.connect(3_000, sock(2), 0);
    h.msg(
        3_010,
        sock(2),
        ToServer::Resume {
            session: Some(session),
            seq: 1,
        },
    );
    let (_, msg, delay) = *h.sent(sock(2)).last().unwrap();
    assert_eq!(msg, ToClient::InvalidSession { resumable: false });
    assert!(delay >= 1_000);
}

#[test]
fn a_null_sequence_closes_4007() {
    let mut h = Harness::quiet(1);
    let session = h.identified(0, sock(0), 0);
    h.msg(1_000, sock(0), ToServer::Drop);
    h.connect(2_000, sock(1), 0);
    h.msg(
        2_010,
        sock(1),
        ToServer::Resume {
            session: Some(session),
            seq: 0,
        },
    );
    assert_eq!(h.closes(sock(1)), [(2_010, Some(4007), true)]);
}

#[test]
fn an_unknown_session_or_another_shards_gets_op9() {
    let mut h = Harness::quiet(2);
    let theirs = h.identified(0, sock(0), 1);
    h.connect(6_000, sock(1), 0);
    h.msg(
        6_010,
        sock(1),
        ToServer::Resume {
            session: None,
            seq: 1,
        },
    );
    h.connect(6_000, sock(2), 0);
    h.msg(
        6_010,
        sock(2),
        ToServer::Resume {
            session: Some(theirs),
            seq: 1,
        },
    );
    h.connect(6_000, sock(3), 0);
    h.msg(
        6_010,
        sock(3),
        ToServer::Resume {
            session: Some(SessionId(99)),
            seq: 1,
        },
    );
    for s in [sock(1), sock(2), sock(3)] {
        let (_, msg, delay) = *h.sent(s).last().unwrap();
        assert_eq!(msg, ToClient::InvalidSession { resumable: false }, "{s:?}");
        assert!((1_000..=2_000).contains(&delay));
        assert!(
            h.closes(s).is_empty(),
            "op 9 leaves the closing to the client"
        );
    }
    assert!(
        h.gw.has_resumable_session(1),
        "another shard's Resume does not touch it"
    );
    assert_eq!(h.gw.tally().resumes, 3);
    assert_eq!(h.gw.tally().resumes_succeeded, 0);
}

#[test]
fn client_close_1000_ends_the_session_and_4000_keeps_it() {
    for (code, resumable) in [(1000, false), (1001, false), (4000, true), (3000, true)] {
        let mut h = Harness::quiet(1);
        let session = h.identified(0, sock(0), 0);
        h.msg(1_000, sock(0), ToServer::Close { code });
        assert_eq!(
            h.closes(sock(0)),
            [(1_000, Some(code), true)],
            "the close is echoed"
        );
        assert_eq!(h.count(Output::Lost { shard: 0 }), 1, "{code}");
        assert_eq!(h.gw.has_resumable_session(0), resumable, "{code}");
        h.connect(2_000, sock(1), 0);
        h.msg(
            2_010,
            sock(1),
            ToServer::Resume {
                session: Some(session),
                seq: 1,
            },
        );
        let resumed = h.sent(sock(1)).iter().any(|(_, m, _)| {
            matches!(
                m,
                ToClient::Dispatch {
                    kind: DispatchKind::Resumed,
                    ..
                }
            )
        });
        assert_eq!(resumed, resumable, "{code}");
    }
}

#[test]
fn running_out_of_session_starts_resets_the_token() {
    let mut h = Harness::new(
        scenario::Gateway {
            dispatch_interval_ms: 0,
            session_start_total: 2,
            session_start_remaining: 2,
            ..scenario::Gateway::default()
        },
        3,
    );
    let first = h.identified(0, sock(0), 0);
    h.identified(0, sock(1), 1);
    assert_eq!(h.gw.session_starts_left(100), (0, 24 * 3_600_000));
    h.connect(100, sock(2), 2);
    h.msg(110, sock(2), ToServer::Identify);
    assert!(h.gw.token_reset());
    // Every socket the gateway holds is closed with 4004, and every
    // session ends.
    for s in [sock(0), sock(1), sock(2)] {
        assert_eq!(h.closes(s), [(110, Some(4004), true)], "{s:?}");
    }
    assert_eq!(h.count(Output::Lost { shard: 0 }), 1);
    assert_eq!(h.count(Output::Lost { shard: 1 }), 1);
    assert!(!h.gw.has_resumable_session(0));
    // Later Identify and Resume payloads are closed with 4004 too.
    h.connect(200, sock(3), 0);
    h.msg(
        210,
        sock(3),
        ToServer::Resume {
            session: Some(first),
            seq: 1,
        },
    );
    h.connect(200, sock(4), 2);
    h.msg(6_000, sock(4), ToServer::Identify);
    assert_eq!(h.closes(sock(3)), [(210, Some(4004), true)]);
    assert_eq!(h.closes(sock(4)), [(6_000, Some(4004), true)]);
    assert_eq!(h.gw.tally().session_starts, 2);
}

#[test]
fn the_daily_allowance_refills() {
    let mut h = Harness::new(
        scenario::Gateway {
            dispatch_interval_ms: 0,
            session_start_total: 10,
            session_start_remaining: 1,
            session_start_reset_after_ms: 60_000,
            ..scenario::Gateway::default()
        },
        2,
    );
    h.identified(0, sock(0), 0);
    assert_eq!(h.gw.session_starts_left(30_000), (0, 60_000));
    assert_eq!(h.gw.session_starts_left(60_000), (10, 60_000 + 86_400_000));
    h.identified(60_000, sock(1), 1);
    assert!(!h.gw.token_reset());
    assert_eq!(h.gw.session_starts_left(70_000), (9, 60_010 + 86_400_000));
}

#[test]
fn heartbeat_silence_closes_the_socket_and_heartbeats_keep_it() {
    let config = scenario::Gateway {
        dispatch_interval_ms: 0,
        ..scenario::Gateway::default()
    };
    let timeout = config.heartbeat_timeout_ms;
    let mut h = Harness::new(config, 2);
    h.identified(0, sock(0), 0);
    h.identified(0, sock(1), 1);
    // Shard 1 heartbeats every 40 s; shard 0 never does.
    for k in 1..=5 {
        h.msg(k * 40_000, sock(1), ToServer::Heartbeat);
    }
    assert_eq!(h.closes(sock(0)), [(timeout, None, true)]);
    assert_eq!(h.count(Output::Lost { shard: 0 }), 1);
    assert!(h.gw.has_resumable_session(0), "a timeout keeps the session");
    assert!(h.closes(sock(1)).is_empty());
    let acks = h
        .sent(sock(1))
        .iter()
        .filter(|(_, m, _)| *m == ToClient::HeartbeatAck)
        .count();
    assert_eq!(acks, 5);
    assert_eq!(h.gw.last_heartbeat(sock(1)), Some(200_000));
    // It goes silent: closed one timeout after its last heartbeat.
    h.advance_to(400_000);
    assert_eq!(h.closes(sock(1)), [(200_000 + timeout, None, true)]);
}

#[test]
fn the_resume_window_expires_a_detached_session() {
    let config = scenario::Gateway {
        dispatch_interval_ms: 0,
        ..scenario::Gateway::default()
    };
    let window = config.resume_window_ms;
    let mut h = Harness::new(config, 1);
    let session = h.identified(0, sock(0), 0);
    h.msg(1_000, sock(0), ToServer::Drop);
    h.advance_to(1_000 + window - 1);
    assert!(h.gw.has_resumable_session(0));
    assert_eq!(h.gw.tally().sessions_expired, 0);
    h.advance_to(1_000 + window);
    assert!(!h.gw.has_resumable_session(0));
    // The referee counts it: the session was lost to the window, not
    // dropped by the client.
    assert_eq!(h.gw.tally().sessions_expired, 1);
    assert_eq!(h.gw.tally().identifies_while_resumable, 0);
    h.connect(1_000 + window, sock(1), 0);
    h.msg(
        1_010 + window,
        sock(1),
        ToServer::Resume {
            session: Some(session),
            seq: 1,
        },
    );
    let (_, msg, _) = *h.sent(sock(1)).last().unwrap();
    assert_eq!(msg, ToClient::InvalidSession { resumable: false });
}

#[test]
fn the_window_counts_from_the_last_socket_lost() {
    let config = scenario::Gateway {
        dispatch_interval_ms: 0,
        ..scenario::Gateway::default()
    };
    let window = config.resume_window_ms;
    let mut h = Harness::new(config, 1);
    let session = h.identified(0, sock(0), 0);
    h.msg(1_000, sock(0), ToServer::Drop);
    h.connect(50_000, sock(1), 0);
    h.msg(
        50_010,
        sock(1),
        ToServer::Resume {
            session: Some(session),
            seq: 1,
        },
    );
    h.msg(60_000, sock(1), ToServer::Drop);
    // The first loss's window ends with the session still resumable.
    h.advance_to(1_000 + window + 1);
    assert!(h.gw.has_resumable_session(0));
    assert_eq!(h.gw.tally().sessions_expired, 0);
    h.advance_to(60_000 + window);
    assert!(!h.gw.has_resumable_session(0));
    assert_eq!(h.gw.tally().sessions_expired, 1);
}

#[test]
fn op7_is_followed_by_a_close_with_1001_unless_the_client_closes_first() {
    let mut h = Harness::quiet(2);
    h.identified(0, sock(0), 0);
    h.identified(0, sock(1), 1);
    for shard in [0, 1] {
        h.fault(1_000, shard, ServerFault::Reconnect);
    }
    assert_eq!(h.sent(sock(0)).last().unwrap().1, ToClient::Reconnect);
    assert!(h.gw.told_to_reconnect(sock(0)));
    // Shard 1's client closes at once; shard 0's does nothing.
    h.msg(1_100, sock(1), ToServer::Close { code: 4000 });
    h.advance_to(1_000 + RECONNECT_GRACE_MS);
    assert_eq!(
        h.closes(sock(0)),
        [(1_000 + RECONNECT_GRACE_MS, Some(1001), true)]
    );
    assert_eq!(h.closes(sock(1)), [(1_100, Some(4000), true)]);
    assert!(
        h.gw.has_resumable_session(0),
        "1001 from the gateway keeps it"
    );
}

#[test]
fn server_faults_op9_and_close_codes() {
    let mut h = Harness::quiet(3);
    h.identified(0, sock(0), 0);
    h.identified(0, sock(1), 1);
    h.identified(0, sock(2), 2);
    h.fault(100, 0, ServerFault::InvalidSession { resumable: false });
    h.fault(100, 1, ServerFault::InvalidSession { resumable: true });
    h.fault(100, 2, ServerFault::Close { code: 4009 });
    assert!(!h.gw.has_resumable_session(0), "op 9 false ends it");
    assert!(h.gw.has_resumable_session(1), "op 9 true keeps it");
    assert_eq!(h.closes(sock(2)), [(100, Some(4009), true)]);
    assert!(!h.gw.has_resumable_session(2), "4009 ends it (docs)");
    // A shard with no session, or outside the bot, is untouched.
    h.fault(200, 0, ServerFault::Close { code: 4000 });
    h.fault(200, 7, ServerFault::Reconnect);
    assert!(h.closes(sock(0)).is_empty());
}

#[test]
fn an_assumed_admission_cap_turns_handshakes_away() {
    let mut h = Harness::new(
        scenario::Gateway {
            dispatch_interval_ms: 0,
            admission_per_s: 2,
            overload: Overload::RateLimit {
                retry_after_ms: 5_000,
            },
            ..scenario::Gateway::default()
        },
        4,
    );
    for i in 0..4 {
        h.connect(0, sock(i), i);
    }
    let refused: Vec<Output> = h
        .out
        .iter()
        .map(|(_, o)| *o)
        .filter(|o| matches!(o, Output::RefuseHandshake { .. }))
        .collect();
    assert_eq!(
        refused,
        [
            Output::RefuseHandshake {
                sock: sock(2),
                retry_after_ms: Some(5_000)
            },
            Output::RefuseHandshake {
                sock: sock(3),
                retry_after_ms: Some(5_000)
            },
        ]
    );
    assert_eq!(h.gw.tally().rejected, 2);
    // Half a second refills one token.
    h.connect(500, sock(4), 0);
    assert!(h.gw.is_open(sock(4)));
    // No cap at all: everything is admitted.
    h.gw.set_admission_per_s(0);
    for i in 5..20 {
        h.connect(500, sock(i), 1);
        assert!(h.gw.is_open(sock(i)));
    }
}

#[test]
fn identify_while_resumable_is_counted_and_ends_the_old_session() {
    let mut h = Harness::quiet(1);
    let old = h.identified(0, sock(0), 0);
    h.msg(1_000, sock(0), ToServer::Drop);
    let new = h.identified(10_000, sock(1), 0);
    assert_ne!(old, new);
    assert_eq!(h.gw.tally().identifies_while_resumable, 1);
    h.connect(20_000, sock(2), 0);
    h.msg(
        20_010,
        sock(2),
        ToServer::Resume {
            session: Some(old),
            seq: 1,
        },
    );
    let (_, msg, _) = *h.sent(sock(2)).last().unwrap();
    assert_eq!(msg, ToClient::InvalidSession { resumable: false });
}

#[test]
fn timers_run_one_per_call_in_arming_order_and_stale_ones_do_nothing() {
    let mut h = Harness::quiet(1);
    h.connect(0, sock(0), 0);
    // The socket goes; its heartbeat timer stays armed, and finds nothing.
    h.gw.handle_socket_reset(10, sock(0));
    h.drain();
    let due = h.gw.poll_timeout().unwrap();
    assert_eq!(h.gw.handle_timeout(due - 1), None, "not due yet");
    assert_eq!(h.gw.handle_timeout(due), Some(Timer::Heartbeat(sock(0))));
    assert_eq!(h.gw.poll_output(), None);
    assert_eq!(h.gw.poll_timeout(), None);
    assert_eq!(h.gw.handle_timeout(u64::MAX), None);
}

#[test]
fn dispatches_stop_where_the_driver_says() {
    let mut h = Harness::new(
        scenario::Gateway {
            dispatch_interval_ms: 1_000,
            ..scenario::Gateway::default()
        },
        1,
    );
    h.gw.stop_dispatches_at(10_000);
    let session = h.identified(0, sock(0), 0);
    h.advance_to(100_000);
    let last = h.gw.session_seq(session).unwrap();
    assert!(last > 5, "{last}");
    let last_sent = h
        .sent(sock(0))
        .iter()
        .filter(|(_, m, _)| matches!(m, ToClient::Dispatch { .. }))
        .map(|(t, _, _)| *t)
        .max()
        .unwrap();
    assert!(last_sent < 10_000, "{last_sent}");
}
