//! Link faults through the fault proxy: each of Toxiproxy's toxics, and the
//! link going down in each way. The session must survive every one of
//! them, by resuming when the socket does not.

use std::time::Duration;

use reconnect_client::Notice;
use reconnect_testkit::proxy::{Direction, DownMode, Toxic, ToxicSpec};

use crate::support::{
    Harness, assert_continuous, bounded, builder, gateway_behind_proxy, gateway_config, link_policy,
};

fn both_ways(name: &str, toxic: Toxic) -> [ToxicSpec; 2] {
    [
        ToxicSpec::new(format!("{name}-up"), toxic, Direction::Upstream),
        ToxicSpec::new(format!("{name}-down"), toxic, Direction::Downstream),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_jitter_bandwidth_and_slicing_only_slow_the_session() {
    bounded(20, async {
        let (gw, proxy) = gateway_behind_proxy(gateway_config(), 1).await;
        for spec in both_ways(
            "latency",
            Toxic::Latency {
                latency_ms: 20,
                jitter_ms: 15,
            },
        )
        .into_iter()
        .chain(both_ways(
            "slicer",
            Toxic::Slicer {
                average_size: 5,
                size_variation: 4,
                delay_us: 20,
            },
        ))
        .chain([ToxicSpec::new(
            "bandwidth",
            Toxic::Bandwidth { rate_kb_s: 16 },
            Direction::Downstream,
        )]) {
            proxy.add_toxic(spec);
        }
        let h = Harness::start(builder(link_policy(&proxy.url())));
        h.wait_streaming_past(60, 10).await;
        let figures = h.figures();
        assert_eq!(figures.policy.attempts, 1, "{figures:?}");
        assert_eq!(figures.policy.zombies, 0);
        // A round trip crosses the latency twice (at least 5 ms each way).
        assert!(
            figures.heartbeat_latency.unwrap() >= Duration::from_millis(10),
            "{figures:?}"
        );
        assert_eq!(gw.stats().connections, 1);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_close_never_leaves_two_sockets_on_the_session() {
    bounded(20, async {
        let (gw, proxy) = gateway_behind_proxy(gateway_config(), 2).await;
        for spec in both_ways("slow", Toxic::SlowClose { delay_ms: 1_500 }) {
            proxy.add_toxic(spec);
        }
        let h = Harness::start(builder(link_policy(&proxy.url())));
        h.wait_streaming_past(5, 5).await;
        gw.inject(reconnect_testkit::gateway::Fault::Reconnect);
        h.wait("resume 1", 5, |h| h.figures().policy.resumes_succeeded == 1)
            .await;
        gw.inject(reconnect_testkit::gateway::Fault::Close { code: 4000 });
        h.wait("resume 2", 5, |h| h.figures().policy.resumes_succeeded == 2)
            .await;
        h.wait_streaming_past(h.events().len() as u64 + 5, 5).await;
        assert_eq!(h.figures().policy.attempts, 3);
        assert_eq!(h.figures().max_sockets_open, 1);
        assert_eq!(gw.stats().max_sockets_per_session, 1);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_is_found_by_the_heartbeat_and_left() {
    bounded(20, async {
        let (gw, proxy) = gateway_behind_proxy(gateway_config(), 3).await;
        let h = Harness::start(builder(link_policy(&proxy.url())));
        h.wait_streaming_past(5, 5).await;
        // Nothing comes back, and nothing closes.
        proxy.add_toxic(ToxicSpec::new(
            "hole",
            Toxic::Timeout { timeout_ms: 0 },
            Direction::Downstream,
        ));
        h.wait("a zombie", 5, |h| h.figures().policy.zombies == 1)
            .await;
        // Its close frame is never answered: dropped at the close deadline.
        h.wait("the socket dropped", 5, |h| {
            h.notices()
                .iter()
                .any(|n| matches!(n, Notice::Aborted { .. }))
        })
        .await;
        proxy.remove_toxic("hole");
        h.wait("the resume", 10, |h| {
            h.figures().policy.resumes_succeeded == 1
        })
        .await;
        h.wait_streaming_past(h.events().len() as u64 + 5, 5).await;
        assert_eq!(gw.stats().identifies, 1);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_that_closes_or_a_reset_is_resumed_from() {
    bounded(20, async {
        let (gw, proxy) = gateway_behind_proxy(gateway_config(), 4).await;
        let h = Harness::start(builder(link_policy(&proxy.url())));
        for (round, toxic) in [
            Toxic::Timeout { timeout_ms: 300 },
            Toxic::ResetPeer { timeout_ms: 100 },
        ]
        .into_iter()
        .enumerate()
        {
            h.wait_streaming_past(h.events().len() as u64 + 5, 5).await;
            let closes = proxy.stats().closes + proxy.stats().resets;
            proxy.add_toxic(ToxicSpec::new("cut", toxic, Direction::Downstream));
            h.wait("the proxy to cut", 5, |_| {
                proxy.stats().closes + proxy.stats().resets > closes
            })
            .await;
            proxy.remove_toxic("cut");
            let round = u64::try_from(round).unwrap() + 1;
            h.wait("the resume", 10, |h| {
                h.figures().policy.resumes_succeeded >= round
            })
            .await;
        }
        h.wait_streaming_past(h.events().len() as u64 + 5, 5).await;
        let stats = proxy.stats();
        assert!(stats.closes >= 1 && stats.resets >= 1, "{stats:?}");
        assert_eq!(gw.stats().identifies, 1);
        assert_eq!(h.figures().policy.duplicate_dispatches, 0);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_limit_cuts_frames_and_the_resume_picks_up_exactly() {
    bounded(20, async {
        let (gw, proxy) = gateway_behind_proxy(gateway_config(), 5).await;
        let h = Harness::start(builder(link_policy(&proxy.url())));
        h.wait_streaming_past(5, 5).await;
        // Every connection from now on is cut after 2000 bytes, in the
        // middle of some frame.
        proxy.add_toxic(ToxicSpec::new(
            "limit",
            Toxic::LimitData { bytes: 2_000 },
            Direction::Downstream,
        ));
        gw.inject(reconnect_testkit::gateway::Fault::Drop);
        h.wait("three cut connections resumed", 10, |h| {
            h.figures().policy.resumes_succeeded >= 3
        })
        .await;
        // The socket open now (if its budget is not spent yet) or the next
        // one carries on without a limit.
        proxy.remove_toxic("limit");
        h.wait_streaming_past(h.events().len() as u64 + 30, 10)
            .await;
        assert!(proxy.stats().closes >= 2, "{:?}", proxy.stats());
        let stats = gw.stats();
        assert_eq!(
            (stats.identifies, stats.invalid_seq, stats.resumes_refused),
            (1, 0, 0)
        );
        assert_eq!(h.figures().policy.duplicate_dispatches, 0);
        assert_continuous(&h.events());
        h.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_going_down_each_way_is_crossed_by_resuming() {
    bounded(30, async {
        let (gw, proxy) = gateway_behind_proxy(gateway_config(), 6).await;
        let checked = reconnect_client::testing::watch(proxy.url());
        let h = Harness::start(builder(link_policy(&proxy.url())));
        // A black hole must outlast zombie detection (at most two heartbeat
        // intervals) plus the close deadline (500 ms) for the client to
        // leave the socket and dial into the hole; a shorter one is simply
        // waited out by TCP.
        let outages = [
            (DownMode::Reset, 700),
            (DownMode::Close, 700),
            (DownMode::BlackHole, 3_000),
        ];
        for (round, (mode, down_ms)) in outages.into_iter().enumerate() {
            h.wait_streaming_past(h.events().len() as u64 + 5, 5).await;
            proxy.down(mode);
            tokio::time::sleep(Duration::from_millis(down_ms)).await;
            proxy.up();
            let round = u64::try_from(round).unwrap() + 1;
            h.wait("the resume", 10, |h| {
                h.figures().policy.resumes_succeeded >= round
            })
            .await;
        }
        h.wait_streaming_past(h.events().len() as u64 + 10, 5).await;
        let stats = gw.stats();
        assert_eq!(stats.identifies, 1);
        assert_eq!(stats.max_sockets_per_session, 1, "{stats:?}");
        let proxy_stats = proxy.stats();
        assert!(proxy_stats.refused >= 1, "{proxy_stats:?}");
        assert!(proxy_stats.held >= 1, "{proxy_stats:?}");
        assert_eq!(h.figures().policy.zombies, 1);
        assert_eq!(h.figures().max_sockets_open, 1);
        assert_continuous(&h.events());
        h.close().await.unwrap();
        assert!(checked.assert_clean().resumes >= 3);
    })
    .await;
}
