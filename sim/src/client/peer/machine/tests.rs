//! Each peer model's rules, shown in scripted situations and on a tiny
//! gateway.

use crate::wire::Refusal;
use rand_core::SeedableRng;

use super::*;
use crate::client::Action;

const HELLO: ToClient = ToClient::Hello {
    interval_ms: 41_250,
};
const REFUSED: ToClient = ToClient::ConnectFailed(Refusal::Refused);

/// Shards of one bot, driven by hand or by a tiny gateway.
struct World {
    peers: PeerShared,
    next_sock: u32,
    clients: Vec<PeerClient>,
}

impl World {
    fn new(kind: PeerKind, shards: u32, max_concurrency: u16, seed: u64) -> Self {
        Self {
            peers: PeerShared::new(max_concurrency, 1_000, 1_000, DAY_MS),
            next_sock: 0,
            clients: (0..shards)
                .map(|s| {
                    PeerClient::new(
                        kind,
                        s,
                        ChaCha8Rng::seed_from_u64(seed ^ (u64::from(s) << 32)),
                    )
                })
                .collect(),
        }
    }

    fn one(kind: PeerKind) -> Self {
        Self::new(kind, 1, 1, 7)
    }

    fn call(&mut self, shard: u32, f: impl FnOnce(&mut PeerClient, &mut Cx<'_>)) -> Vec<Action> {
        let mut actions = Vec::new();
        let next = &mut self.next_sock;
        let mut alloc = |_shard, _tag| {
            *next += 1;
            SockId {
                index: *next,
                generation: 0,
            }
        };
        let mut records = Vec::new();
        let mut cx = Cx::new(&mut self.peers, &mut actions, &mut alloc, &mut records);
        f(&mut self.clients[shard as usize], &mut cx);
        actions
    }

    fn start(&mut self, shard: u32, now: u64) -> Vec<Action> {
        self.call(shard, |c, cx| c.start(now, cx))
    }

    fn wake(&mut self, shard: u32, now: u64) -> Vec<Action> {
        self.call(shard, |c, cx| c.wake(now, cx))
    }

    fn msg(&mut self, shard: u32, now: u64, sock: SockId, msg: ToClient) -> Vec<Action> {
        self.call(shard, |c, cx| c.on_message(now, sock, msg, cx))
    }

    fn next_wake(&self, shard: u32) -> Option<u64> {
        self.clients[shard as usize].next_wake()
    }

    /// Wakes shard 0 at its next wake-up and returns the time.
    fn wake_next(&mut self) -> (u64, Vec<Action>) {
        let at = self.next_wake(0).expect("a wake-up");
        (at, self.wake(0, at))
    }

    /// Opens shard 0's socket `sock`, says Hello and answers an
    /// Identify with READY: an established session at `now`.
    fn establish(&mut self, now: u64, sock: SockId) -> Vec<Action> {
        let mut out = self.msg(0, now, sock, ToClient::Opened);
        out.extend(self.msg(0, now, sock, HELLO));
        // Anything due at once (twilight's queue ticks on a wake-up).
        for _ in 0..3 {
            if self.next_wake(0) == Some(now) {
                out.extend(self.wake(0, now));
            }
        }
        out.extend(self.msg(0, now, sock, ready(1)));
        out
    }
}

fn ready(session: u32) -> ToClient {
    ToClient::Dispatch {
        session: SessionId(session),
        seq: 1,
        kind: DispatchKind::Ready,
    }
}

fn connects(actions: &[Action]) -> Vec<SockId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Connect { sock, .. } => Some(*sock),
            _ => None,
        })
        .collect()
}

fn sent(actions: &[Action]) -> Vec<(SockId, ToServer)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { sock, msg } => Some((*sock, *msg)),
            _ => None,
        })
        .collect()
}

fn only_connect(actions: &[Action]) -> SockId {
    let c = connects(actions);
    assert_eq!(c.len(), 1, "{actions:?}");
    c[0]
}

/// Fails `n` dials in a row, the first `sock` at `now`, each at once:
/// the time from each failure to the next dial, and the last dial.
fn fail_dials(w: &mut World, sock: SockId, now: u64, n: usize) -> (Vec<u64>, SockId, u64) {
    let (mut sock, mut now) = (sock, now);
    let mut delays = Vec::new();
    for _ in 0..n {
        assert!(connects(&w.msg(0, now, sock, REFUSED)).is_empty());
        let (at, out) = w.wake_next();
        delays.push(at - now);
        sock = only_connect(&out);
        now = at;
    }
    (delays, sock, now)
}

fn dial_failure_delays(w: &mut World, sock: SockId, now: u64, n: usize) -> Vec<u64> {
    fail_dials(w, sock, now, n).0
}

#[test]
fn delays_follow_their_formulas() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let twilight = PeerRules::TWILIGHT.delay;
    let got: Vec<u64> = (0..11).map(|n| twilight.ms(n, &mut rng) / 1_000).collect();
    assert_eq!(got, [0, 1, 2, 4, 8, 16, 32, 64, 128, 255, 255]);
    assert_eq!(twilight.ms(u32::MAX, &mut rng), 255_000);
    let carbon = PeerRules::CARBON_OLD.delay;
    let got: Vec<u64> = (1..7).map(|n| carbon.ms(n, &mut rng)).collect();
    assert_eq!(got, [2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
    let py = PeerRules::DISCORD_PY.delay;
    for n in [1, 5, 10, 11, u32::MAX] {
        let bound = 1_000u64 << n.min(10);
        let draws: Vec<u64> = (0..2_000).map(|_| py.ms(n, &mut rng)).collect();
        assert!(draws.iter().all(|d| *d <= bound), "n={n}");
        assert!(draws.iter().any(|d| *d > bound * 9 / 10), "n={n}");
        assert!(draws.iter().any(|d| *d < bound / 10), "n={n}");
    }
}

#[test]
fn twilight_backs_off_only_on_failed_dials_and_starts_over_after_an_open() {
    let mut w = World::one(PeerKind::Twilight);
    let s1 = only_connect(&w.start(0, 0));
    let (delays, sock, now) = fail_dials(&mut w, s1, 0, 11);
    let secs: Vec<u64> = delays.iter().map(|d| d / 1_000).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 255, 255, 255]);
    // A dial that opens, then any disconnect: the next dial is at once,
    // and the next failure waits 1 s again.
    w.establish(now, sock);
    w.msg(0, now + 10, sock, ToClient::Closed { code: None });
    assert_eq!(w.next_wake(0), Some(now + 10));
    let (at, out) = w.wake_next();
    let again = only_connect(&out);
    assert_eq!(dial_failure_delays(&mut w, again, at, 2), [1_000, 2_000]);
}

#[test]
fn twilight_drops_a_zombie_when_nothing_arrived_since_the_last_heartbeat() {
    let mut w = World::one(PeerKind::Twilight);
    let s1 = only_connect(&w.start(0, 0));
    w.establish(0, s1);
    // The first heartbeat is jittered within one interval.
    let (first, out) = w.wake_next();
    assert!(first < 41_250, "{first}");
    assert_eq!(sent(&out), [(s1, ToServer::Heartbeat)]);
    // An event that is not an ACK still counts as life.
    w.msg(
        0,
        first + 100,
        s1,
        ToClient::Dispatch {
            session: SessionId(1),
            seq: 2,
            kind: DispatchKind::Other,
        },
    );
    let (second, out) = w.wake_next();
    assert_eq!(second, first + 41_250);
    assert_eq!(sent(&out), [(s1, ToServer::Heartbeat)]);
    // Silence until the next tick: the socket is dropped, no close
    // frame, and the shard resumes at once.
    let (third, out) = w.wake_next();
    assert_eq!(sent(&out), [(s1, ToServer::Drop)]);
    assert_eq!(w.next_wake(0), Some(third));
    let (_, out) = w.wake_next();
    let s2 = only_connect(&out);
    w.msg(0, third + 10, s2, ToClient::Opened);
    let out = w.msg(0, third + 10, s2, HELLO);
    assert_eq!(
        sent(&out),
        [(
            s2,
            ToServer::Resume {
                session: Some(SessionId(1)),
                seq: 2
            }
        )]
    );
}

#[test]
fn twilight_closes_with_4000_for_op7_and_waits_for_the_answer() {
    let mut w = World::one(PeerKind::Twilight);
    let s1 = only_connect(&w.start(0, 0));
    w.establish(0, s1);
    let out = w.msg(0, 1_000, s1, ToClient::Reconnect);
    assert_eq!(sent(&out), [(s1, ToServer::Close { code: 4000 })]);
    assert!(connects(&w.wake(0, 1_000)).is_empty());
    w.msg(0, 1_050, s1, ToClient::Closed { code: Some(4000) });
    assert_eq!(w.next_wake(0), Some(1_050));
    assert_eq!(connects(&w.wake(0, 1_050)).len(), 1);
}

#[test]
fn discordjs_waits_a_flat_500_ms_whatever_happens() {
    let mut w = World::one(PeerKind::DiscordJs);
    let s1 = only_connect(&w.start(0, 0));
    // A refused dial: 500 ms, every time, forever.
    let (delays, s, now) = fail_dials(&mut w, s1, 0, 20);
    assert_eq!(delays, [500; 20]);
    let out = w.establish(now, s);
    assert!(sent(&out).contains(&(s, ToServer::Identify)));
    // The server resets the socket: resume after 500 ms.
    w.msg(0, now + 100, s, ToClient::Closed { code: None });
    let (at, out) = w.wake_next();
    assert_eq!(at, now + 600);
    let s2 = only_connect(&out);
    assert!(matches!(
        out[0],
        Action::Connect {
            to_resume_url: true,
            ..
        }
    ));
    w.msg(0, at + 10, s2, ToClient::Opened);
    let out = w.msg(0, at + 10, s2, HELLO);
    assert!(matches!(
        sent(&out)[..],
        [(_, ToServer::Resume { seq: 1, .. })]
    ));
}

#[test]
fn discordjs_drops_the_session_after_a_failed_dial() {
    let mut w = World::one(PeerKind::DiscordJs);
    let s1 = only_connect(&w.start(0, 0));
    w.establish(0, s1);
    w.msg(0, 100, s1, ToClient::Closed { code: None });
    let (at, out) = w.wake_next();
    let s2 = only_connect(&out);
    w.msg(0, at + 5, s2, REFUSED);
    let (at, out) = w.wake_next();
    let s3 = only_connect(&out);
    // The identify throttler saw shard 0's bucket used at 0: it waits
    // until 5 s plus up to 1.5 s.
    w.msg(0, at + 10, s3, ToClient::Opened);
    assert!(sent(&w.msg(0, at + 10, s3, HELLO)).is_empty());
    let (t, out) = w.wake_next();
    assert!((5_000..6_500).contains(&t), "{t}");
    assert_eq!(sent(&out), [(s3, ToServer::Identify)]);
}

#[test]
fn discordjs_answers_op9_true_on_the_same_socket_and_op7_with_4200() {
    let mut w = World::one(PeerKind::DiscordJs);
    let s1 = only_connect(&w.start(0, 0));
    w.establish(0, s1);
    let out = w.msg(0, 1_000, s1, ToClient::InvalidSession { resumable: true });
    assert!(matches!(sent(&out)[..], [(s, ToServer::Resume { .. })] if s == s1));
    assert!(connects(&w.wake(0, 1_000)).is_empty());
    let out = w.msg(0, 2_000, s1, ToClient::Reconnect);
    assert_eq!(sent(&out), [(s1, ToServer::Close { code: 4200 })]);
    // The 500 ms start after the close handshake.
    assert!(connects(&w.wake(0, 2_500)).is_empty());
    w.msg(0, 2_080, s1, ToClient::Closed { code: Some(4200) });
    assert_eq!(w.next_wake(0), Some(2_580));
    // op 9 false: close 1000, and the session is gone.
    let (at, out) = w.wake_next();
    let s2 = only_connect(&out);
    w.msg(0, at, s2, ToClient::Opened);
    w.msg(0, at, s2, HELLO);
    let out = w.msg(0, at + 5, s2, ToClient::InvalidSession { resumable: false });
    assert_eq!(sent(&out), [(s2, ToServer::Close { code: 1000 })]);
}

#[test]
fn discordjs_gives_hello_60_s_and_ready_15_s_then_reidentifies() {
    let mut w = World::one(PeerKind::DiscordJs);
    let s1 = only_connect(&w.start(0, 0));
    w.msg(0, 10, s1, ToClient::Opened);
    assert_eq!(w.next_wake(0), Some(60_000));
    let (_, out) = w.wake_next();
    assert_eq!(sent(&out), [(s1, ToServer::Close { code: 1000 })]);
    w.msg(0, 60_050, s1, ToClient::Closed { code: Some(1000) });
    let (at, out) = w.wake_next();
    assert_eq!(at, 60_550);
    let s2 = only_connect(&out);
    w.msg(0, at, s2, ToClient::Opened);
    let out = w.msg(0, at, s2, HELLO);
    assert_eq!(sent(&out), [(s2, ToServer::Identify)]);
    assert_eq!(
        w.clients[0].conn.and_then(|c| c.deadline),
        Some((at + 15_000, Deadline::Ready))
    );
}

#[test]
fn discordpy_backs_off_with_full_jitter_on_failed_dials_and_starts_over_when_idle() {
    for seed in 0..40 {
        let mut w = World::new(PeerKind::DiscordPy, 1, 1, seed);
        let s1 = only_connect(&w.start(0, 0));
        w.establish(0, s1);
        // A reset: resume at once, no backoff.
        w.msg(0, 100, s1, ToClient::Closed { code: None });
        let (at, out) = w.wake_next();
        assert_eq!(at, 100);
        let s2 = only_connect(&out);
        let (delays, s, now) = fail_dials(&mut w, s2, at, 12);
        for (k, d) in delays.iter().enumerate() {
            let bound = 1_000u64 << (k as u32 + 1).min(10);
            assert!(*d <= bound, "seed {seed}: delay {k} = {d} > {bound}");
        }
        // More than 2048 s after the last backoff, the exponent is 1
        // again.
        w.msg(0, now + 10, s, ToClient::Opened);
        w.msg(0, now + 10, s, HELLO);
        let later = now + 3_000_000;
        w.msg(0, later, s, ToClient::Closed { code: None });
        let (at, out) = w.wake_next();
        let s = only_connect(&out);
        let d = dial_failure_delays(&mut w, s, at, 1)[0];
        assert!(d <= 2_000, "seed {seed}: {d}");
    }
}

#[test]
fn discordpy_reidentifies_after_a_network_error_and_sleeps_5_s_first() {
    let mut w = World::one(PeerKind::DiscordPy);
    let s1 = only_connect(&w.start(0, 0));
    // Shard 0's first launch identifies without the 5 s sleep.
    let out = w.establish(0, s1);
    assert!(sent(&out).contains(&(s1, ToServer::Identify)));
    w.msg(0, 1_000, s1, ToClient::Closed { code: None });
    let (at, out) = w.wake_next();
    let s2 = only_connect(&out);
    w.msg(0, at + 5, s2, REFUSED);
    let (at, out) = w.wake_next();
    let s3 = only_connect(&out);
    w.msg(0, at + 10, s3, ToClient::Opened);
    let out = w.msg(0, at + 10, s3, HELLO);
    assert_eq!(sent(&out), []);
    let (t, out) = w.wake_next();
    assert_eq!(t, at + 10, "the first heartbeat goes out on Hello");
    assert_eq!(sent(&out), [(s3, ToServer::Heartbeat)]);
    let (t, out) = w.wake_next();
    assert_eq!(t, at + 5_010);
    assert_eq!(sent(&out), [(s3, ToServer::Identify)]);
}

#[test]
fn serenity_restarts_through_the_queue_after_op9_false_and_resumes_before_hello() {
    let mut w = World::one(PeerKind::Serenity);
    let s1 = only_connect(&w.start(0, 0));
    w.msg(0, 10, s1, ToClient::Opened);
    let out = w.msg(0, 10, s1, HELLO);
    assert_eq!(sent(&out), [(s1, ToServer::Identify)]);
    w.msg(0, 20, s1, ready(1));
    // op 7: a new socket, Resume as soon as it opens, Hello ignored.
    let out = w.msg(0, 1_000, s1, ToClient::Reconnect);
    assert_eq!(sent(&out), [(s1, ToServer::Drop)]);
    let (_, out) = w.wake_next();
    let s2 = only_connect(&out);
    let out = w.msg(0, 1_010, s2, ToClient::Opened);
    assert!(matches!(
        sent(&out)[..],
        [(_, ToServer::Resume { seq: 1, .. })]
    ));
    assert!(sent(&w.msg(0, 1_010, s2, HELLO)).is_empty());
    // op 9 false: `request_restart`, whose runner ends and drops the
    // socket with no close frame, and the start waits 5 s after the
    // last.
    let out = w.msg(0, 2_000, s2, ToClient::InvalidSession { resumable: false });
    assert_eq!(sent(&out), [(s2, ToServer::Drop)]);
    let (at, out) = w.wake_next();
    assert_eq!(at, 2_000);
    assert!(out.is_empty());
    let (at, out) = w.wake_next();
    assert_eq!(at, 5_010, "5 s after the previous start's dial finished");
    assert_eq!(connects(&out).len(), 1);
}

/// Shard 0 of `w` identifies at 0 and gets READY; its heartbeats go out
/// every interval from then and are ACKed 50 ms later, until `until`.
/// Returns the time of the last heartbeat.
fn heartbeat_until(w: &mut World, sock: SockId, until: u64) -> u64 {
    let mut last = 0;
    while let Some(at) = w.next_wake(0).filter(|at| *at <= until) {
        let out = w.wake(0, at);
        if sent(&out).contains(&(sock, ToServer::Heartbeat)) {
            last = at;
            w.msg(0, at + 50, sock, ToClient::HeartbeatAck);
        }
    }
    last
}

#[test]
fn serenity_idles_after_a_failed_resume_dial_until_its_heartbeat_check_then_restarts() {
    let mut w = World::one(PeerKind::Serenity);
    let s1 = only_connect(&w.start(0, 0));
    w.establish(0, s1);
    // Heartbeats one interval after READY, ACKed.
    let last = heartbeat_until(&mut w, s1, 50_000);
    assert_eq!(last, 41_250);
    // A reset link: a resume at once, on a new socket.
    w.msg(0, 50_000, s1, ToClient::Closed { code: None });
    let (at, out) = w.wake_next();
    assert_eq!(at, 50_000);
    let s2 = only_connect(&out);
    // Its dial fails: no second resume after 1 s; the runner idles
    // until the heartbeat check one interval after the last heartbeat,
    // then restarts without a session.
    w.msg(0, 50_005, s2, REFUSED);
    assert_eq!(w.next_wake(0), Some(last + 41_250));
    let (_, out) = w.wake_next();
    let s3 = only_connect(&out);
    w.msg(0, 82_600, s3, ToClient::Opened);
    let out = w.msg(0, 82_600, s3, HELLO);
    assert_eq!(sent(&out), [(s3, ToServer::Identify)]);
    // When the check is already due, the 1 s sleep is all it waits.
    w.msg(0, 82_700, s3, ready(2));
    w.msg(0, 200_000, s3, ToClient::Closed { code: None });
    let (at, out) = w.wake_next();
    let s4 = only_connect(&out);
    w.msg(0, at + 5, s4, REFUSED);
    assert_eq!(w.next_wake(0), Some(at + 5 + 1_000));
}

#[test]
fn discordpy_closes_a_zombie_with_4000_and_waits_for_the_answer_before_resuming() {
    let mut w = World::one(PeerKind::DiscordPy);
    let s1 = only_connect(&w.start(0, 0));
    let out = w.establish(0, s1);
    assert!(sent(&out).contains(&(s1, ToServer::Heartbeat)));
    // 60 s of silence: close with 4000, no new connection yet.
    let (at, out) = w.wake_next();
    assert_eq!(at, 41_250);
    assert_eq!(sent(&out), [(s1, ToServer::Heartbeat)]);
    let (at, out) = w.wake_next();
    assert_eq!(at, 60_000);
    assert_eq!(sent(&out), [(s1, ToServer::Close { code: 4000 })]);
    assert!(connects(&out).is_empty());
    // The answer never comes: aiohttp gives up after 30 s, then the
    // shard resumes.
    let (at, out) = w.wake_next();
    assert_eq!(at, 90_000);
    assert_eq!(sent(&out), [(s1, ToServer::Drop)]);
    let s2 = only_connect(&out);
    w.msg(0, 90_010, s2, ToClient::Opened);
    let out = w.msg(0, 90_010, s2, HELLO);
    assert!(
        sent(&out)
            .iter()
            .any(|(s, m)| *s == s2 && matches!(m, ToServer::Resume { seq: 1, .. })),
        "{out:?}"
    );

    // An answered close ends the wait at once.
    let mut w = World::one(PeerKind::DiscordPy);
    let s1 = only_connect(&w.start(0, 0));
    w.establish(0, s1);
    w.wake_next();
    let (at, _) = w.wake_next();
    assert_eq!(at, 60_000);
    w.msg(0, 60_080, s1, ToClient::Closed { code: Some(4000) });
    assert_eq!(w.next_wake(0), Some(60_080));
}

#[test]
fn carbon_old_pr_reconnects_twice_for_op7_closes_with_1000_and_resumes_with_seq_0() {
    let mut w = World::one(PeerKind::CarbonOldPr);
    let s1 = only_connect(&w.start(0, 0));
    w.establish(0, s1);
    w.msg(
        0,
        500,
        s1,
        ToClient::Dispatch {
            session: SessionId(1),
            seq: 7,
            kind: DispatchKind::Other,
        },
    );
    // op 7: close with 1000 (the session dies), reconnect in 2 s (the
    // counter was incremented before the delay was computed).
    let out = w.msg(0, 1_000, s1, ToClient::Reconnect);
    assert_eq!(sent(&out), [(s1, ToServer::Close { code: 1000 })]);
    assert_eq!(w.next_wake(0), Some(3_000));
    // The close that follows runs the reconnect handler again.
    w.msg(0, 1_050, s1, ToClient::Closed { code: Some(1000) });
    assert_eq!(w.clients[0].connects, [3_000, 5_050]);
    let (_, out) = w.wake_next();
    let s2 = only_connect(&out);
    w.msg(0, 3_010, s2, ToClient::Opened);
    // The Resume carries the new socket's sequence: none.
    let out = w.msg(0, 3_010, s2, HELLO);
    let out: Vec<Action> = out
        .into_iter()
        .filter(|a| {
            !matches!(
                a,
                Action::Send {
                    msg: ToServer::Heartbeat,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(
        sent(&out),
        [(
            s2,
            ToServer::Resume {
                session: Some(SessionId(1)),
                seq: 0
            }
        )]
    );
    // The second reconnect replaces s2 without closing it.
    w.wake(0, 3_010);
    w.msg(0, 3_020, s2, ToClient::HeartbeatAck);
    let at = 5_050;
    let out = w.wake(0, at);
    let s3 = only_connect(&out);
    assert!(sent(&out).is_empty(), "{out:?}");
    assert_ne!(s2, s3);
    // s2's messages are still handled: its op 9 plans yet another
    // connection 5 s later.
    w.msg(0, 5_100, s2, ToClient::InvalidSession { resumable: false });
    assert_eq!(w.clients[0].connects, [10_100]);
}

#[test]
fn carbon_old_as_written_closes_with_no_status_and_resumes_with_the_last_sequence() {
    let mut w = World::one(PeerKind::CarbonOld);
    let s1 = only_connect(&w.start(0, 0));
    w.establish(0, s1);
    w.msg(
        0,
        500,
        s1,
        ToClient::Dispatch {
            session: SessionId(1),
            seq: 7,
            kind: DispatchKind::Other,
        },
    );
    // op 7: `ws.close()` with no code, which keeps the session.
    let out = w.msg(0, 1_000, s1, ToClient::Reconnect);
    assert_eq!(sent(&out), [(s1, ToServer::Close { code: NO_STATUS })]);
    assert!(!crate::rules::client_close_ends_session(NO_STATUS));
    let (_, out) = w.wake_next();
    let s2 = only_connect(&out);
    w.msg(0, 3_010, s2, ToClient::Opened);
    // The one shared `sequence` field still holds 7.
    let out = w.msg(0, 3_010, s2, HELLO);
    assert!(
        sent(&out).contains(&(
            s2,
            ToServer::Resume {
                session: Some(SessionId(1)),
                seq: 7
            }
        )),
        "{out:?}"
    );
}

#[test]
fn carbon_old_reconnects_again_when_its_unanswered_close_times_out() {
    let mut w = World::one(PeerKind::CarbonOld);
    let s1 = only_connect(&w.start(0, 0));
    // The first heartbeat goes out on Hello and is never answered: the
    // next tick finds the connection a zombie and closes it, with no
    // status code.
    let out = w.establish(0, s1);
    assert!(sent(&out).contains(&(s1, ToServer::Heartbeat)));
    let (tick, out) = w.wake_next();
    assert!((41_250..=42_250).contains(&tick), "{tick}");
    assert_eq!(sent(&out), [(s1, ToServer::Close { code: NO_STATUS })]);
    assert_eq!(w.clients[0].connects, [tick + 2_000]);
    let (_, out) = w.wake_next();
    let s2 = only_connect(&out);
    // Nobody answers the close: 30 s later `ws` reports it closed and
    // the handler runs again (counted a second time: 4 s), aborting
    // the dial still in progress, whose own close runs it a third time
    // (8 s).
    let (at, out) = w.wake_next();
    assert_eq!(at, tick + 30_000);
    assert_eq!(sent(&out), [(s1, ToServer::Drop), (s2, ToServer::Drop)]);
    assert_eq!(w.clients[0].connects, [at + 4_000]);
    assert!(w.wake(0, at).is_empty());
    assert_eq!(w.clients[0].connects, [at + 4_000, at + 8_000]);
}

#[test]
fn carbon_old_gives_up_after_five_counted_attempts() {
    let mut w = World::one(PeerKind::CarbonOld);
    let s1 = only_connect(&w.start(0, 0));
    assert_eq!(
        dial_failure_delays(&mut w, s1, 0, 5),
        [2_000, 4_000, 8_000, 16_000, 30_000]
    );
    let sock = SockId {
        index: w.next_sock,
        generation: 0,
    };
    w.msg(0, 100_000, sock, REFUSED);
    assert!(w.clients[0].gave_up());
    assert_eq!(w.next_wake(0), None);
}

#[test]
fn fatal_codes_stop_each_model_as_its_library_reads_them() {
    // (model, a fatal code, a code it reconnects after although the
    // docs call it fatal)
    let cases = [
        (PeerKind::Twilight, 4014, None),
        (PeerKind::DiscordJs, 4010, None),
        (PeerKind::DiscordPy, 4012, None),
        (PeerKind::Serenity, 4013, Some(4011)),
        (PeerKind::CarbonOld, 4004, Some(4010)),
    ];
    for (kind, fatal, not_fatal) in cases {
        let mut w = World::one(kind);
        let s1 = only_connect(&w.start(0, 0));
        w.establish(0, s1);
        w.msg(0, 1_000, s1, ToClient::Closed { code: Some(fatal) });
        assert!(w.clients[0].gave_up(), "{kind:?} {fatal}");
        assert!(connects(&w.wake(0, 600_000)).is_empty(), "{kind:?}");
        if let Some(code) = not_fatal {
            let mut w = World::one(kind);
            let s1 = only_connect(&w.start(0, 0));
            w.establish(0, s1);
            w.msg(0, 1_000, s1, ToClient::Closed { code: Some(code) });
            assert!(!w.clients[0].gave_up(), "{kind:?} {code}");
            assert!(w.next_wake(0).is_some(), "{kind:?} {code}");
        }
    }
}

#[test]
fn the_naive_client_and_the_guard_keep_their_behaviour() {
    for (kind, gap) in [(PeerKind::Naive, 0), (PeerKind::Guard5s, 5_000)] {
        let mut w = World::one(kind);
        let s1 = only_connect(&w.start(0, 0));
        assert_eq!(
            dial_failure_delays(&mut w, s1, 10, 3),
            [gap - 10.min(gap), gap, gap]
        );
    }
}

#[test]
fn jda_resumes_at_once_then_waits_2_4_8_s_and_closes_with_4900() {
    let mut w = World::one(PeerKind::Jda);
    let s1 = only_connect(&w.start(0, 0));
    // Identify goes out as soon as the socket connects, before Hello.
    let out = w.msg(0, 10, s1, ToClient::Opened);
    assert_eq!(sent(&out), [(s1, ToServer::Identify)]);
    w.msg(0, 10, s1, HELLO);
    w.msg(0, 20, s1, ready(1));
    let out = w.msg(0, 1_000, s1, ToClient::Reconnect);
    assert_eq!(sent(&out), [(s1, ToServer::Close { code: 4900 })]);
    w.msg(0, 1_050, s1, ToClient::Closed { code: Some(4900) });
    let (at, out) = w.wake_next();
    assert_eq!(at, 1_050);
    let s2 = only_connect(&out);
    assert_eq!(
        dial_failure_delays(&mut w, s2, at, 5),
        [2_000, 4_000, 8_000, 16_000, 32_000]
    );
}

#[test]
fn jda_starts_its_backoff_again_from_0_on_each_disconnect_with_a_session() {
    let mut w = World::one(PeerKind::Jda);
    let s1 = only_connect(&w.start(0, 0));
    w.msg(0, 10, s1, ToClient::Opened);
    w.msg(0, 20, s1, ready(1));
    w.msg(0, 1_000, s1, ToClient::Closed { code: None });
    let (at, out) = w.wake_next();
    assert_eq!(at, 1_000);
    let s2 = only_connect(&out);
    let (delays, s3, now) = fail_dials(&mut w, s2, at, 3);
    assert_eq!(delays, [2_000, 4_000, 8_000]);
    // The dial opens and Resume goes out, but the link drops again
    // before RESUMED: a new `reconnect()`, at once, then 2 s.
    let out = w.msg(0, now + 10, s3, ToClient::Opened);
    assert!(matches!(sent(&out)[..], [(_, ToServer::Resume { .. })]));
    w.msg(0, now + 20, s3, ToClient::Closed { code: None });
    let (at, out) = w.wake_next();
    assert_eq!(at, now + 20);
    let s4 = only_connect(&out);
    assert_eq!(dial_failure_delays(&mut w, s4, at, 2), [2_000, 4_000]);
}

#[test]
fn jda_sleeps_its_backoff_inside_the_bucket_worker_and_blocks_the_bucket() {
    let mut w = World::new(PeerKind::Jda, 2, 1, 7);
    let a = only_connect(&w.start(0, 0));
    assert!(connects(&w.start(1, 0)).is_empty());
    let out = w.msg(0, 10, a, ToClient::Opened);
    assert_eq!(sent(&out), [(a, ToServer::Identify)]);
    w.msg(0, 20, a, ready(1));
    assert!(w.peers.take_wakes().contains(&(1, 5_020)));
    let b = only_connect(&w.wake(1, 5_020));
    w.msg(1, 5_030, b, ToClient::Opened);
    w.msg(1, 5_040, b, ready(2));
    w.peers.take_wakes();
    // op 9 false: close 1000, answered; the shard joins the queue at
    // once, is granted the idle bucket and sleeps its 2 s holding it.
    let out = w.msg(0, 100_000, a, ToClient::InvalidSession { resumable: false });
    assert_eq!(sent(&out), [(a, ToServer::Close { code: 1000 })]);
    w.msg(0, 100_010, a, ToClient::Closed { code: Some(1000) });
    assert_eq!(w.next_wake(0), Some(100_010));
    assert!(connects(&w.wake(0, 100_010)).is_empty());
    assert_eq!(w.next_wake(0), Some(102_010));
    // Shard 1 loses its session too and waits behind it.
    w.msg(1, 100_500, b, ToClient::InvalidSession { resumable: false });
    w.msg(1, 100_510, b, ToClient::Closed { code: Some(1000) });
    assert!(connects(&w.wake(1, 100_510)).is_empty());
    assert_eq!(w.next_wake(1), None);
    // Shard 0's dial fails inside the worker: it sleeps 4 s there and
    // the bucket stays blocked.
    let a2 = only_connect(&w.wake(0, 102_010));
    w.msg(0, 102_020, a2, REFUSED);
    assert_eq!(w.next_wake(0), Some(106_020));
    assert_eq!(w.next_wake(1), None);
    assert!(w.peers.take_wakes().iter().all(|(s, _)| *s != 1));
    let a3 = only_connect(&w.wake(0, 106_020));
    let out = w.msg(0, 106_030, a3, ToClient::Opened);
    assert_eq!(sent(&out), [(a3, ToServer::Identify)]);
    w.msg(0, 106_040, a3, ready(3));
    // READY lets the worker go; it sleeps 5 s, then runs shard 1's
    // node, which sleeps its own 2 s in the worker before it dials.
    assert!(w.peers.take_wakes().contains(&(1, 111_040)));
    assert!(connects(&w.wake(1, 111_040)).is_empty());
    assert_eq!(w.next_wake(1), Some(113_040));
    assert_eq!(connects(&w.wake(1, 113_040)).len(), 1);
}

#[test]
fn jda_puts_a_failed_first_start_back_at_the_end_of_the_queue_without_a_backoff() {
    let mut w = World::new(PeerKind::Jda, 2, 1, 7);
    let a = only_connect(&w.start(0, 0));
    assert!(connects(&w.start(1, 0)).is_empty());
    w.msg(0, 10, a, REFUSED);
    // Back in the queue at once, behind shard 1; the worker sleeps 5 s,
    // then runs shard 1's node first.
    assert_eq!(w.next_wake(0), Some(10));
    assert!(connects(&w.wake(0, 10)).is_empty());
    assert!(w.peers.take_wakes().contains(&(1, 5_010)));
    let b = only_connect(&w.wake(1, 5_010));
    assert_eq!(w.next_wake(0), None);
    w.msg(1, 5_020, b, ToClient::Opened);
    w.msg(1, 5_030, b, ready(1));
    assert!(w.peers.take_wakes().contains(&(0, 10_030)));
    assert_eq!(connects(&w.wake(0, 10_030)).len(), 1);
}

#[test]
fn serenity_next_restarts_one_shard_at_a_time_whatever_the_bucket() {
    let mut w = World::new(PeerKind::SerenityNext, 2, 2, 7);
    // Shard 0 alone does not fill the buckets; shard 1 does, and the
    // batch starts at once.
    assert!(connects(&w.start(0, 0)).is_empty());
    assert_eq!(w.next_wake(0), Some(5_000));
    assert!(connects(&w.start(1, 0)).is_empty());
    assert!(w.peers.take_wakes().contains(&(0, 0)));
    let a = only_connect(&w.wake(0, 0));
    w.msg(0, 10, a, ToClient::Opened);
    assert!(w.peers.take_wakes().contains(&(1, 10)));
    let b = only_connect(&w.wake(1, 10));
    w.msg(1, 20, b, ToClient::Opened);
    for (shard, sock, session) in [(0, a, 1), (1, b, 2)] {
        let out = w.msg(shard, 20, sock, HELLO);
        assert_eq!(sent(&out), [(sock, ToServer::Identify)]);
        w.msg(shard, 30, sock, ready(session));
    }
    w.peers.take_wakes();
    // Both restart: the restarts go one at a time, 5 s apart, although
    // the shards are in different buckets.
    for (shard, sock) in [(0, a), (1, b)] {
        let out = w.msg(
            shard,
            100_000,
            sock,
            ToClient::InvalidSession { resumable: false },
        );
        assert_eq!(sent(&out), [(sock, ToServer::Drop)]);
    }
    let a2 = only_connect(&w.wake(0, 100_000));
    assert!(connects(&w.wake(1, 100_000)).is_empty());
    w.msg(0, 100_010, a2, ToClient::Opened);
    assert!(w.peers.take_wakes().contains(&(1, 105_010)));
    assert_eq!(connects(&w.wake(1, 105_010)).len(), 1);
}

// ----- fleets on a tiny gateway ----------------------------------------

/// Runs `shards` peers against a gateway that answers in 10 ms and
/// never fails, until `until`; returns when each shard sent Identify.
fn identifies(kind: PeerKind, shards: u32, max_concurrency: u16, until: u64) -> Vec<(u64, u32)> {
    enum Ev {
        Start(u32),
        Wake(u32),
        Deliver(u32, SockId, ToClient),
    }
    let mut w = World::new(kind, shards, max_concurrency, 3);
    let mut queue: Vec<(u64, u64, Ev)> = (0..shards)
        .map(|s| (0, u64::from(s), Ev::Start(s)))
        .collect();
    let mut order = u64::from(shards);
    let mut wake_at = vec![u64::MAX; shards as usize];
    let mut out = Vec::new();
    let mut session = 0;
    while let Some(i) = (0..queue.len()).min_by_key(|&i| (queue[i].0, queue[i].1)) {
        let (now, _, ev) = queue.swap_remove(i);
        if now > until {
            break;
        }
        let (shard, actions) = match ev {
            Ev::Start(s) => (s, w.start(s, now)),
            Ev::Wake(s) => {
                if wake_at[s as usize] != now {
                    continue;
                }
                wake_at[s as usize] = u64::MAX;
                (s, w.wake(s, now))
            }
            Ev::Deliver(s, sock, msg) => (s, w.msg(s, now, sock, msg)),
        };
        let mut later = Vec::new();
        for a in actions {
            match a {
                Action::Connect { sock, .. } => {
                    later.push((now + 10, Ev::Deliver(shard, sock, ToClient::Opened)));
                    later.push((now + 10, Ev::Deliver(shard, sock, HELLO)));
                }
                Action::Send {
                    sock,
                    msg: ToServer::Identify,
                } => {
                    out.push((now, shard));
                    session += 1;
                    later.push((now + 10, Ev::Deliver(shard, sock, ready(session))));
                }
                Action::Send {
                    sock,
                    msg: ToServer::Heartbeat,
                } => {
                    later.push((now + 10, Ev::Deliver(shard, sock, ToClient::HeartbeatAck)));
                }
                _ => {}
            }
        }
        let mut wakes = w.peers.take_wakes();
        wakes.extend(w.next_wake(shard).map(|at| (shard, at)));
        for (s, at) in wakes {
            let at = at.max(now);
            if at < wake_at[s as usize] {
                wake_at[s as usize] = at;
                later.push((at, Ev::Wake(s)));
            }
        }
        for (at, ev) in later {
            order += 1;
            queue.push((at, order, ev));
        }
    }
    out
}

#[test]
fn serenity_starts_shards_5_s_apart_bot_wide() {
    let ids = identifies(PeerKind::Serenity, 6, 16, 60_000);
    assert_eq!(ids.len(), 6, "{ids:?}");
    for pair in ids.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= 5_000, "{ids:?}");
    }
    // In shard order, although all six asked at once.
    assert_eq!(
        ids.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
}

#[test]
fn discordpy_connects_one_shard_at_a_time() {
    let ids = identifies(PeerKind::DiscordPy, 4, 16, 60_000);
    let times: Vec<u64> = ids.iter().map(|(t, _)| *t).collect();
    // Shard 0 identifies on Hello; each next shard dials when the one
    // before has identified, then sleeps 5 s after its Hello.
    assert_eq!(times, [10, 5_020, 10_030, 15_040]);
}

#[test]
fn discordpy_hook_identifies_once_per_bucket_every_5_s() {
    let ids = identifies(PeerKind::DiscordPyHook, 6, 2, 60_000);
    // Still one connection at a time; the hook sleeps only until its
    // bucket's last Identify is 5 s old.
    assert_eq!(
        ids,
        [
            (10, 0),
            (20, 1),
            (5_010, 2),
            (5_020, 3),
            (10_010, 4),
            (10_020, 5)
        ]
    );
}

#[test]
fn serenity_next_starts_a_batch_of_one_shard_per_bucket_every_5_s() {
    let ids = identifies(PeerKind::SerenityNext, 6, 2, 60_000);
    // Shards of a batch dial one after another; the next batch comes
    // 5 s after the last dial of the one before.
    assert_eq!(
        ids,
        [
            (10, 0),
            (20, 1),
            (5_030, 2),
            (5_040, 3),
            (10_050, 4),
            (10_060, 5)
        ]
    );
}

#[test]
fn twilight_releases_one_shard_per_bucket_per_tick() {
    let ids = identifies(PeerKind::Twilight, 6, 2, 60_000);
    // Buckets {0, 2, 4} and {1, 3, 5}: a tick every 5 s releases one
    // of each.
    let mut by_time: Vec<(u64, u32)> = ids.clone();
    by_time.sort_unstable();
    assert_eq!(
        by_time,
        [
            (10, 0),
            (10, 1),
            (5_010, 2),
            (5_010, 3),
            (10_010, 4),
            (10_010, 5)
        ]
    );
}

#[test]
fn discordjs_throttles_each_bucket_5_s_plus_up_to_1_5_s() {
    let ids = identifies(PeerKind::DiscordJs, 6, 2, 60_000);
    assert_eq!(ids.len(), 6);
    for bucket in 0..2 {
        let t: Vec<u64> = ids
            .iter()
            .filter(|(_, s)| s % 2 == bucket)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(t[0], 10);
        for pair in t.windows(2) {
            let gap = pair[1] - pair[0];
            assert!((5_000..6_500).contains(&gap), "{ids:?}");
        }
    }
}

#[test]
fn jda_holds_each_bucket_until_ready_then_sleeps_5_s() {
    let ids = identifies(PeerKind::Jda, 4, 2, 60_000);
    let mut by_time = ids.clone();
    by_time.sort_unstable();
    // Dial at 0, Identify on connect at 10, READY at 20: the bucket's
    // next dial is at 5 020.
    assert_eq!(by_time, [(10, 0), (10, 1), (5_030, 2), (5_030, 3)]);
}

#[test]
fn carbon_old_spawns_a_batch_of_max_concurrency_every_5_s_at_startup() {
    let ids = identifies(PeerKind::CarbonOld, 5, 2, 60_000);
    let mut by_time = ids.clone();
    by_time.sort_unstable();
    assert_eq!(
        by_time,
        [(10, 0), (10, 1), (5_010, 2), (5_010, 3), (10_010, 4)]
    );
}
