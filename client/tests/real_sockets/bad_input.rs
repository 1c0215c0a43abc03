//! Untrusted input: malformed JSON, binary frames, unknown opcodes,
//! repeated sequence numbers and oversized frames are counted and logged,
//! never a panic, never a storm, never a lost session.

use std::time::Duration;

use reconnect_testkit::gateway::Fault;

use crate::support::{
    Harness, assert_continuous, bounded, builder, gateway, gateway_config, policy,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_frames_is_counted_and_changes_nothing() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(policy(&gw.url())));
        h.wait_streaming_past(5, 5).await;
        let malformed = [
            "{not json",
            "",
            "[]",
            "null",
            r#"{"op":"0"}"#,
            r#"{"op":0,"s":-1,"t":"MESSAGE_CREATE"}"#,
            r#"{"op":0,"s":1}"#,
            r#"{"op":10,"d":{"heartbeat_interval":"soon"}}"#,
            r#"{"op":9,"d":"maybe"}"#,
            r#"{"op":0,"s":99999999999999999999,"t":"X"}"#,
        ];
        for round in 0..50 {
            for text in malformed {
                gw.inject(Fault::SendText {
                    text: text.to_owned(),
                });
            }
            gw.inject(Fault::SendBinary {
                bytes: vec![0x78, 0x9c, round],
            });
            gw.inject(Fault::SendText {
                text: format!(r#"{{"op":{},"d":null}}"#, 50 + u32::from(round)),
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        h.wait("every bad frame counted", 10, |h| {
            let f = h.figures();
            f.malformed_frames == 500 && f.binary_frames == 50 && f.unknown_opcodes == 50
        })
        .await;
        h.wait_streaming_past(h.events().len() as u64 + 10, 5).await;
        let figures = h.figures();
        assert_eq!(figures.policy.attempts, 1, "{figures:?}");
        assert_eq!(figures.policy.reconnects, 0);
        assert_eq!(gw.stats().connections, 1);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_sequence_number_is_delivered_once() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(policy(&gw.url())));
        h.wait_streaming_past(5, 5).await;
        let session = h.current_session().unwrap();
        for seq in [2, 3, 3, 1] {
            gw.inject(Fault::SendText {
                text: format!(
                    r#"{{"op":0,"s":{seq},"t":"MESSAGE_CREATE","d":{{"session":"{session}"}}}}"#
                ),
            });
        }
        h.wait("the repeats dropped", 5, |h| {
            h.figures().policy.duplicate_dispatches == 4
        })
        .await;
        h.wait_streaming_past(h.events().len() as u64 + 5, 5).await;
        assert_eq!(h.figures().policy.attempts, 1);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_ends_its_connection_but_not_the_session() {
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(policy(&gw.url())).max_frame_bytes(64 * 1024));
        h.wait_streaming_past(5, 5).await;
        // Under the limit: delivered like any dispatch.
        gw.inject(Fault::SendOversized { bytes: 60_000 });
        h.wait("the big event", 5, |h| {
            h.events().iter().any(|e| e.name == "LOOPBACK_OVERSIZED")
        })
        .await;
        assert_eq!(h.figures().oversized_frames, 0);
        // Over it: counted, the socket dropped, the session resumed.
        gw.inject(Fault::SendOversized { bytes: 200_000 });
        h.wait("the resume", 5, |h| {
            h.figures().policy.resumes_succeeded == 1
        })
        .await;
        h.wait_streaming_past(h.events().len() as u64 + 5, 5).await;
        let figures = h.figures();
        assert_eq!(figures.oversized_frames, 1);
        assert_eq!(figures.policy.attempts, 2);
        let stats = gw.stats();
        assert_eq!((stats.identifies, stats.resumes), (1, 1));
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}
