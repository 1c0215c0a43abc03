//! Sessions that outlive the process, over real sockets: a client stopped
//! with its session kept and started again from the saved value resumes
//! (no Identify, every dispatch once across the restart); a saved session
//! the gateway has forgotten falls back to Identify; a dispatch the user
//! never got before the stop is replayed to the next process; and a
//! rolling restart of a 50-shard runner resumes all 50 with zero Identify.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use reconnect_client::RunnerBuilder;
use reconnect_client::gateway_bot::GatewayBot;
use reconnect_policy::{SavedSessions, SessionStartLimit};
use reconnect_testkit::gateway::GatewayConfig;

use crate::recorded::RecordedRunner;
use crate::support::{
    Harness, Seen, TOKEN, assert_continuous, bounded, builder, gateway, gateway_config, max_seq,
    policy,
};

/// Waits until the client is connected and has delivered a dispatch past
/// `seq` (a resumed client has no READY of its own to wait for).
async fn wait_connected_past(h: &Harness, seq: u64, seconds: u64) {
    h.wait("events past the saved sequence", seconds, |h| {
        h.figures().state.is_connected() && max_seq(&h.events()) > seq
    })
    .await;
}

/// Stores a value as a bot would (JSON), checks the token is not in it,
/// and reads it back.
fn stored<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let json = serde_json::to_string(value).unwrap();
    assert!(!json.contains(TOKEN), "the token in the saved form: {json}");
    serde_json::from_str(&json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_restarted_from_its_saved_session_resumes_without_identifying() {
    bounded(30, async {
        let gw = gateway(gateway_config()).await;
        // Both processes' run loops are checked (the second learns the
        // session from its first Resume).
        let checked = reconnect_client::testing::watch(gw.url());

        // The first process: identify, stream, stop keeping the session.
        let first = Harness::start(builder(policy(&gw.url())));
        first.wait_streaming_past(10, 10).await;
        let (saved, first_events) = first.close_keeping_session().await;
        let saved = saved.expect("stopped cleanly").expect("a session to keep");
        let stats = gw.stats();
        assert_eq!(stats.identifies, 1);
        assert_eq!(stats.sessions_ended_by_client, 0, "{stats:?}");
        assert_eq!(stats.client_close_codes, [4000], "a code that keeps it");
        let seq = saved.seq.expect("a sequence number");
        assert_eq!(seq, max_seq(&first_events), "the last one delivered");
        let saved = stored(&saved);

        // While no process holds it, the gateway keeps the session and its
        // events; the next process must get every one of them.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = Harness::start(builder(policy(&gw.url())).resume_from(saved.clone()));
        wait_connected_past(&second, seq + 20, 10).await;
        let figures = second.figures();
        assert_eq!(figures.policy.identifies_sent, 0, "{figures:?}");
        assert_eq!(figures.policy.resumes_succeeded, 1, "{figures:?}");
        let (again, second_events) = second.close_keeping_session().await;
        let again = again.unwrap().expect("the session is still kept");
        assert_eq!(again.session_id, saved.session_id);
        assert_eq!(again.seq, Some(max_seq(&second_events)));

        let stats = gw.stats();
        assert_eq!(stats.identifies, 1, "no new Identify: {stats:?}");
        assert_eq!(stats.resumes, 1);
        assert_eq!(stats.resume_log[0].session_id, saved.session_id);
        assert_eq!(stats.resume_log[0].seq, seq);
        assert!(stats.replayed > 0, "events sent while no process held it");
        assert_eq!(stats.sessions_ended_by_client, 0);
        assert!(gw.sessions().iter().all(|s| s.max_sockets <= 1));

        // One session, every sequence number once, across the restart.
        let first_new = second_events.iter().find_map(|e| e.seq);
        assert_eq!(first_new, Some(seq + 1), "the replay starts after the save");
        let mut joined = first_events;
        joined.extend(second_events);
        let c = assert_continuous(&joined);
        assert_eq!(checked.run_loops(), 2);
        checked.assert_clean();
        eprintln!(
            "lone client restart: identifies {} (new 0), resumes {}, replayed {}, delivered {}, lost {}, duplicates {}",
            stats.identifies, stats.resumes, stats.replayed, c.delivered, c.lost, c.duplicates
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_session_the_gateway_forgot_falls_back_to_identify() {
    bounded(30, async {
        // A short identify window: a new process's limiter cannot know
        // the Identify the previous process sent a second ago, and the
        // window is not what this test is about.
        let gw = gateway(GatewayConfig {
            session_timeout_ms: 300,
            identify_interval_ms: 100,
            ..gateway_config()
        })
        .await;
        let first = Harness::start(builder(policy(&gw.url())));
        first.wait_streaming_past(3, 10).await;
        let (saved, _) = first.close_keeping_session().await;
        let saved = saved.unwrap().expect("a session to keep");

        // Past the gateway's session timeout: the session is gone.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let second = Harness::start(builder(policy(&gw.url())).resume_from(saved.clone()));
        second.wait_streaming_past(3, 10).await;
        let figures = second.figures();
        assert_eq!(figures.policy.resumes_sent, 1, "{figures:?}");
        assert_eq!(figures.policy.resumes_succeeded, 0, "{figures:?}");
        assert_eq!(figures.policy.identifies_sent, 1, "{figures:?}");
        let session = second.current_session().expect("a new session");
        assert_ne!(session, saved.session_id);
        let events = second.events();
        second.close().await.unwrap();
        assert_continuous(&events);
        let stats = gw.stats();
        assert_eq!(stats.resumes_refused, 1, "{stats:?}");
        assert_eq!(stats.identifies, 2, "{stats:?}");
        assert_eq!(stats.identifies_rate_limited, 0, "{stats:?}");
    })
    .await;
}

const SHARDS: u32 = 50;

/// A runner of the 50 shards against `url`, all in one identify round.
fn fifty_shards(url: &str) -> RunnerBuilder {
    RunnerBuilder::new(builder(policy(url))).gateway_bot(GatewayBot {
        url: url.to_owned(),
        shards: SHARDS,
        session_start_limit: SessionStartLimit {
            max_concurrency: 50,
            ..SessionStartLimit::DISCORD_DEFAULT
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_fifty_shards_resumes_all_with_zero_identify() {
    bounded(60, async {
        let gw = gateway(GatewayConfig {
            max_concurrency: 50,
            event_interval_ms: 50,
            ..gateway_config()
        })
        .await;

        // The first process: 50 shards identify and stream.
        let (runner, events) = fifty_shards(&gw.url()).start().await.unwrap();
        let first = RecordedRunner::events_only(runner, events);
        first.wait_all_past("the start", &BTreeMap::new(), 3, 30).await;
        let (saved, first_events) = first.close_keeping_sessions().await;
        assert_eq!(saved.len(), SHARDS as usize, "every shard's session");
        let before = gw.stats();
        assert_eq!(before.identifies, u64::from(SHARDS));
        assert_eq!(before.sessions_ended_by_client, 0, "no 1000/1001");
        assert!(before.client_close_codes.iter().all(|&code| code == 4000));
        for (shard, session) in &saved {
            assert_eq!(session.seq, Some(max_seq(&first_events[shard])), "shard {shard}");
        }
        let saved: SavedSessions = stored(&saved);

        // The next process, a moment later, from the saved sessions.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let past: BTreeMap<u32, u64> = saved
            .iter()
            .map(|(shard, s)| (*shard, s.seq.unwrap_or(0)))
            .collect();
        let (runner, events) = fifty_shards(&gw.url())
            .resume_from(saved.clone())
            .start()
            .await
            .unwrap();
        let second = RecordedRunner::events_only(runner, events);
        second.wait_all_past("the restart", &past, 3, 30).await;
        let figures = second.runner.figures();
        let (_, second_events) = second.close_keeping_sessions().await;

        let after = gw.stats();
        let identifies = after.identifies - before.identifies;
        let resumes = after.resumes - before.resumes;
        assert_eq!(identifies, 0, "{after:?}");
        assert_eq!(resumes, u64::from(SHARDS));
        assert_eq!(after.resumes_refused, 0);
        assert!(figures.values().all(|f| f.policy.identifies_sent == 0 && f.policy.resumes_succeeded == 1));
        assert!(gw.sessions().iter().all(|s| s.max_sockets <= 1), "one socket per session");

        // Every shard: one session, every sequence number once.
        let (mut delivered, mut lost, mut duplicates) = (0, 0, 0);
        for shard in 0..SHARDS {
            let mut joined = first_events[&shard].clone();
            joined.extend(second_events.get(&shard).cloned().unwrap_or_default());
            let c = assert_continuous(&joined);
            delivered += c.delivered;
            lost += c.lost;
            duplicates += c.duplicates;
        }
        eprintln!(
            "rolling restart of {SHARDS} shards: identifies {} then {identifies} new, resumes {resumes}, replayed {}, delivered {delivered}, lost {lost}, duplicates {duplicates}",
            before.identifies,
            after.replayed - before.replayed,
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatch_the_user_never_got_is_replayed_to_the_next_process() {
    bounded(30, async {
        let gw = gateway(gateway_config()).await;
        // A queue of one: the run loop holds at most one more dispatch the
        // user has not taken, and cannot hand it over at the stop.
        let (client, mut events) = builder(policy(&gw.url()))
            .event_buffer(1)
            .start()
            .unwrap();
        let mut first = Vec::new();
        while max_seq(&first) < 5 {
            let event = events.next().await.expect("events");
            first.push(Seen::of(&event));
        }
        // The user stops reading; the gateway keeps sending.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let saved = client
            .close_keeping_session()
            .await
            .unwrap()
            .expect("a session to keep");
        while let Some(event) = events.next().await {
            first.push(Seen::of(&event));
        }
        assert_eq!(
            saved.seq,
            Some(max_seq(&first)),
            "the saved sequence is the last dispatch the user got"
        );
        let held = gw
            .sessions()
            .iter()
            .find(|s| s.id == saved.session_id)
            .map(|s| s.last_seq)
            .unwrap();
        assert!(held > max_seq(&first), "the gateway sent more than the user got");

        let second = Harness::start(builder(policy(&gw.url())).resume_from(saved.clone()));
        wait_connected_past(&second, held + 5, 10).await;
        let (_, second_events) = second.close_keeping_session().await;
        let mut joined = first;
        joined.extend(second_events);
        let c = assert_continuous(&joined);
        assert_eq!(gw.stats().identifies, 1);
        eprintln!(
            "undelivered at the stop: saved seq {:?}, the gateway's session at {held}; delivered {} across the restart, lost {}, duplicates {}",
            saved.seq, c.delivered, c.lost, c.duplicates
        );
    })
    .await;
}
