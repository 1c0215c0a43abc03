//! Transport compression over real sockets: zlib-stream and zstd-stream,
//! a fresh context on every connection (so sessions resume across drops
//! with nothing lost or repeated), a decompression bomb that ends only its
//! connection, and the bandwidth saved on a realistic dispatch mix.

use reconnect_client::Compression;
use reconnect_testkit::gateway::{Fault, GatewayConfig};

use crate::support::{
    Harness, assert_continuous, bounded, builder, gateway, gateway_config, policy,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_across_drops_with_compression_on() {
    bounded(30, async {
        for compression in [Compression::ZlibStream, Compression::ZstdStream] {
            let gw = gateway(GatewayConfig {
                realistic_events: true,
                ..gateway_config()
            })
            .await;
            let h = Harness::start(builder(policy(&gw.url())).compression(compression));
            h.wait_streaming_past(10, 5).await;
            let query = gw.stats().last_query.unwrap_or_default();
            assert!(query.contains(&format!("compress={compression}")), "{query}");
            // Each drop means a new connection, and a new stream: a client
            // that kept its old context could not read the new one.
            for _ in 0..3 {
                gw.inject(Fault::Drop);
                h.wait_streaming_past(h.events().len() as u64 + 10, 5).await;
            }
            let figures = h.figures();
            assert_eq!(figures.policy.resumes_succeeded, 3, "{compression}: {figures:?}");
            assert_eq!(
                (figures.protocol_errors, figures.malformed_frames, figures.binary_frames),
                (0, 0, 0),
                "{compression}: {figures:?}"
            );
            assert_continuous(&h.events());
            let stats = gw.stats();
            let ratio = stats.payload_bytes_sent as f64 / stats.wire_bytes_sent.max(1) as f64;
            println!(
                "{compression}: {} payload bytes sent as {} ({ratio:.2}x smaller) over {} dispatches",
                stats.payload_bytes_sent,
                stats.wire_bytes_sent,
                h.events().len()
            );
            assert!(ratio > 1.5, "{compression} saved too little: {ratio:.2}x");
            h.close().await.unwrap();
        }
    })
    .await;
}

/// A few kilobytes on the wire that would inflate to 8 MiB: the client
/// stops at its frame limit, counts it, drops that connection and resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_ends_only_its_connection() {
    bounded(30, async {
        for compression in [Compression::ZlibStream, Compression::ZstdStream] {
            let gw = gateway(gateway_config()).await;
            let h = Harness::start(
                builder(policy(&gw.url()))
                    .compression(compression)
                    .max_frame_bytes(64 * 1024),
            );
            h.wait_streaming_past(5, 5).await;
            gw.inject(Fault::SendOversized { bytes: 8 << 20 });
            h.wait("the bomb to be refused", 5, |h| {
                h.figures().oversized_frames == 1
            })
            .await;
            h.wait_streaming_past(h.events().len() as u64 + 5, 5).await;
            let stats = gw.stats();
            assert_eq!(h.figures().policy.resumes_succeeded, 1, "{compression}");
            assert!(
                stats.wire_bytes_sent < 1 << 20,
                "{compression}: the bomb was not small on the wire ({} bytes)",
                stats.wire_bytes_sent
            );
            assert_continuous(&h.events());
            h.close().await.unwrap();
        }
    })
    .await;
}
