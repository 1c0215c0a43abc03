//! The token never reaches the logs or any `Debug` output, checked over
//! real sockets with every log line captured.
//!
//! A test binary of its own: tracing caches, process-wide, whether each log
//! call site is wanted, and a call site first reached by another test's
//! thread (with no subscriber) while this test installs its own could stay
//! cached as unwanted and drop the very lines this test must read. Alone in
//! its process, the capturing subscriber is global and installed before any
//! call site is reached.

use reconnect_testkit::gateway::Fault;

#[path = "logs/capture.rs"]
mod capture;

#[allow(dead_code, unreachable_pub)]
#[path = "real_sockets/support.rs"]
mod support;

use capture::CapturedLogs;
use support::{Harness, TOKEN, bounded, builder, gateway, gateway_config, policy};

/// Everything on one thread, and the subscriber global before anything
/// logs, so it sees every line of every task.
#[tokio::test(flavor = "current_thread")]
async fn the_token_never_reaches_the_logs_or_debug_output() {
    let captured = CapturedLogs::install();
    bounded(20, async {
        let gw = gateway(gateway_config()).await;
        let h = Harness::start(builder(policy(&gw.url())));
        h.wait_streaming_past(3, 5).await;
        // Identify and Resume both carry the token.
        gw.inject(Fault::Reconnect);
        h.wait("the resume", 5, |h| {
            h.figures().policy.resumes_succeeded == 1
        })
        .await;
        let shown = format!(
            "{:?} {:?} {:?} {:?}",
            h.client,
            h.figures(),
            h.notices(),
            builder(policy(&gw.url()))
        );
        assert!(!shown.contains(TOKEN), "{shown}");
        h.close().await.unwrap();
    })
    .await;
    let logs = captured.text();
    assert!(logs.contains("connecting"), "no logs captured");
    assert!(logs.contains("reconnect planned"), "no logs captured");
    assert!(!logs.contains(TOKEN), "the token is in the logs");
    let hex: String = TOKEN.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(
        !logs.contains(&hex),
        "the token is in the logs, hex-encoded"
    );
}
