//! What the real-socket tests share: small policy timings, a loopback
//! gateway set up for tests, a client whose events and notices are
//! recorded as they happen, and the checks every scenario ends with.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use reconnect_client::{
    Client, ClientBuilder, ClientError, Clock, DispatchEvent, Figures, Notice, Token,
};
use reconnect_policy::{
    AttemptRate, BackoffConfig, BackoffStrategy, Command, DecisionConfig, Note, PolicyConfig,
    ReconnectPlan, SavedSession, StabilityRule, Timeouts, Timestamp,
};
use reconnect_testkit::gateway::{Gateway, GatewayConfig};
use reconnect_testkit::proxy::FaultProxy;
use tokio::task::JoinHandle;

/// The token the test gateway expects.
pub(crate) const TOKEN: &str = "test-token-5f3a9c1e-never-in-logs";

/// Runs `test` with an overall time bound: a hung test is a failed test.
pub(crate) async fn bounded<F: Future<Output = T>, T>(seconds: u64, test: F) -> T {
    match tokio::time::timeout(Duration::from_secs(seconds), test).await {
        Ok(value) => value,
        Err(_) => panic!("the test did not finish within {seconds} s"),
    }
}

/// Policy timings small enough for tests to run in seconds: exponential
/// backoff 50 ms to 500 ms, a 50 ms guard, op 9 waits of 50–150 ms, 1 s to
/// connect or get Hello, 2 s for READY/RESUMED, 500 ms to close, a 1 s
/// stability window and at most ten attempts a second.
pub(crate) fn policy(url: &str) -> PolicyConfig {
    PolicyConfig {
        gateway_url: url.to_owned(),
        backoff: BackoffConfig {
            strategy: BackoffStrategy::Exponential,
            base_ms: 50,
            cap_ms: 500,
        },
        guard_ms: 50,
        decision: DecisionConfig {
            invalid_session_wait_min_ms: 50,
            invalid_session_wait_max_ms: 150,
        },
        timeouts: Timeouts {
            connect_ms: 1_000,
            hello_ms: 1_000,
            handshake_ms: 2_000,
            close_ms: 500,
        },
        stability: StabilityRule {
            window_ms: 1_000,
            reset_on_first_ack: false,
            ..StabilityRule::DEFAULT
        },
        // The attempt ceiling scaled with the rest: ten a second.
        attempt_rate: AttemptRate {
            max_attempts: 10,
            window_ms: 1_000,
        },
        ..PolicyConfig::default()
    }
}

/// A gateway for tests: the shortest heartbeat interval the policy accepts
/// (1 s), an event every 20 ms, the test token required.
pub(crate) fn gateway_config() -> GatewayConfig {
    GatewayConfig {
        heartbeat_interval_ms: 1_000,
        event_interval_ms: 20,
        token: Some(TOKEN.to_owned()),
        ..GatewayConfig::default()
    }
}

/// Starts a gateway.
pub(crate) async fn gateway(config: GatewayConfig) -> Gateway {
    Gateway::start(config)
        .await
        .expect("bind the loopback gateway")
}

/// A gateway behind a fault proxy, with READY's resume URL pointing at the
/// proxy too (so resumes cross the same faulty link).
pub(crate) async fn gateway_behind_proxy(
    config: GatewayConfig,
    seed: u64,
) -> (Gateway, FaultProxy) {
    let gw = gateway(config).await;
    let proxy = FaultProxy::start(gw.addr(), seed)
        .await
        .expect("bind the fault proxy");
    gw.set_resume_url(proxy.url());
    (gw, proxy)
}

/// The policy of the link-fault tests: as [`policy`], but a failed dial
/// keeps the session (the resume URL is the base URL here, not a node that
/// may be gone) and the resume breaker allows more failed resumes, so an
/// outage of a few seconds is crossed by resuming.
pub(crate) fn link_policy(url: &str) -> PolicyConfig {
    let mut config = policy(url);
    config.resume.drop_session_on_dial_failure = false;
    config.resume.max_failed_resumes = 10;
    config
}

/// A client builder for `policy`, with the test token and a fixed seed.
pub(crate) fn builder(policy: PolicyConfig) -> ClientBuilder {
    ClientBuilder::new(Token::new(TOKEN))
        .intents(513)
        .policy(policy)
        .seed(7)
}

/// One delivered event: its sequence number, name and session (from the
/// data of READY and of the gateway's events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) seq: Option<u64>,
    pub(crate) name: String,
    pub(crate) session: Option<String>,
}

impl Seen {
    pub(crate) fn of(event: &DispatchEvent) -> Self {
        let data: serde_json::Value = event.parse().unwrap_or_default();
        let session = data["session_id"]
            .as_str()
            .or_else(|| data["session"].as_str())
            .map(str::to_owned);
        Self {
            seq: event.seq,
            name: event.name.clone(),
            session,
        }
    }
}

/// The largest sequence number in `events` (0 when none has one).
pub(crate) fn max_seq(events: &[Seen]) -> u64 {
    events.iter().filter_map(|e| e.seq).max().unwrap_or(0)
}

/// A running client whose events and notices are recorded.
pub(crate) struct Harness {
    pub(crate) client: Option<Client>,
    events: Arc<Mutex<Vec<Seen>>>,
    notices: Arc<Mutex<Vec<Notice>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Harness {
    /// Starts the client and the recorders.
    pub(crate) fn start(builder: ClientBuilder) -> Self {
        let (client, mut events) = builder.start().expect("start the client");
        let mut notices = client.notices();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let heard = Arc::new(Mutex::new(Vec::new()));
        let events_task = {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                while let Some(event) = events.next().await {
                    seen.lock().unwrap().push(Seen::of(&event));
                }
            })
        };
        let notices_task = {
            let heard = Arc::clone(&heard);
            tokio::spawn(async move {
                loop {
                    match notices.recv().await {
                        Ok(notice) => heard.lock().unwrap().push(notice),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            panic!("the notice recorder fell {n} behind")
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        Self {
            client: Some(client),
            events: seen,
            notices: heard,
            tasks: vec![events_task, notices_task],
        }
    }

    pub(crate) fn events(&self) -> Vec<Seen> {
        self.events.lock().unwrap().clone()
    }

    pub(crate) fn notices(&self) -> Vec<Notice> {
        self.notices.lock().unwrap().clone()
    }

    pub(crate) fn figures(&self) -> Figures {
        self.client.as_ref().map(Client::figures).expect("client")
    }

    /// The reconnect plans so far.
    pub(crate) fn plans(&self) -> Vec<ReconnectPlan> {
        self.notices()
            .into_iter()
            .filter_map(|n| match n {
                Notice::Note(Note::Planned(plan)) => Some(plan),
                _ => None,
            })
            .collect()
    }

    /// When each Identify was sent (client clock).
    pub(crate) fn identifies_sent(&self) -> Vec<Timestamp> {
        self.notices()
            .into_iter()
            .filter_map(|n| match n {
                Notice::Sent {
                    command: Command::Identify,
                    at,
                    ..
                } => Some(at),
                _ => None,
            })
            .collect()
    }

    /// When each dial started (client clock).
    pub(crate) fn dials(&self) -> Vec<Timestamp> {
        self.notices()
            .into_iter()
            .filter_map(|n| match n {
                Notice::Connecting { at, .. } => Some(at),
                _ => None,
            })
            .collect()
    }

    /// The last sequence number delivered for `session`.
    pub(crate) fn last_seq(&self, session: &str) -> Option<u64> {
        sessions(&self.events())
            .get(session)
            .and_then(|seqs| seqs.last().copied())
    }

    /// The session of the last READY delivered.
    pub(crate) fn current_session(&self) -> Option<String> {
        self.events()
            .iter()
            .rev()
            .find(|e| e.name == "READY")
            .and_then(|e| e.session.clone())
    }

    /// Waits until `condition` holds, checking every 10 ms; panics (naming
    /// `what`) after `seconds`.
    pub(crate) async fn wait(&self, what: &str, seconds: u64, condition: impl Fn(&Self) -> bool) {
        let clock = Clock::start();
        while !condition(self) {
            assert!(
                clock.elapsed() < Duration::from_secs(seconds),
                "timed out waiting for {what}; figures: {:?}",
                self.client.as_ref().map(Client::figures)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the client is connected and has delivered an event with
    /// a sequence number above `seq` in its current session.
    pub(crate) async fn wait_streaming_past(&self, seq: u64, seconds: u64) {
        self.wait("events to flow", seconds, |h| {
            h.figures().state.is_connected()
                && h.current_session()
                    .and_then(|s| h.last_seq(&s))
                    .is_some_and(|last| last > seq)
        })
        .await;
    }

    /// Shuts the client down and returns how it ended.
    pub(crate) async fn close(mut self) -> Result<Figures, ClientError> {
        let client = self.client.take().expect("client");
        let outcome = client.close().await;
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        outcome
    }

    /// Stops the client keeping its session, reads its events to the end,
    /// and returns the saved session and every event delivered.
    pub(crate) async fn close_keeping_session(
        mut self,
    ) -> (Result<Option<SavedSession>, ClientError>, Vec<Seen>) {
        let client = self.client.take().expect("client");
        let outcome = client.close_keeping_session().await;
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        (outcome, self.events())
    }

    /// Waits for the client to end by itself.
    pub(crate) async fn join(mut self) -> Result<Figures, ClientError> {
        let client = self.client.take().expect("client");
        let outcome = client.join().await;
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        outcome
    }
}

/// The sequence numbers delivered for each session, in delivery order
/// (events without a number left out).
pub(crate) fn sessions(events: &[Seen]) -> BTreeMap<String, Vec<u64>> {
    let mut by_session: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for event in events {
        if event.name == "READY" {
            current.clone_from(&event.session);
        }
        let (Some(seq), Some(session)) = (event.seq, current.as_ref()) else {
            continue;
        };
        if let Some(own) = &event.session {
            assert_eq!(own, session, "event #{seq} of {own} delivered in {session}");
        }
        by_session.entry(session.clone()).or_default().push(seq);
    }
    by_session
}

/// What a run delivered, session by session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Continuity {
    /// Events delivered with a sequence number.
    pub(crate) delivered: u64,
    /// Sequence numbers skipped inside a session.
    pub(crate) lost: u64,
    /// Sequence numbers delivered more than once, or out of order.
    pub(crate) duplicates: u64,
}

/// Checks every session's sequence: it must start at 1 (READY) and go up
/// by exactly 1 each time.
pub(crate) fn continuity(events: &[Seen]) -> Continuity {
    let mut c = Continuity::default();
    for seqs in sessions(events).values() {
        let mut expected = 1;
        for &seq in seqs {
            c.delivered += 1;
            if seq < expected {
                c.duplicates += 1;
            } else {
                c.lost += seq - expected;
                expected = seq + 1;
            }
        }
    }
    c
}

/// Asserts a run delivered every event of every session once, in order.
pub(crate) fn assert_continuous(events: &[Seen]) -> Continuity {
    let c = continuity(events);
    assert_eq!(
        (c.lost, c.duplicates),
        (0, 0),
        "sequence broken: {c:?}; sessions: {:?}",
        sessions(events)
            .iter()
            .map(|(s, seqs)| (s.clone(), seqs.len()))
            .collect::<Vec<_>>()
    );
    c
}
