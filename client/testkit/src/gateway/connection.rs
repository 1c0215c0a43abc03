//! One client socket on the loopback gateway: Hello, heartbeats, Identify
//! and Resume, the event stream, and the faults aimed at open sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, info};

use super::session::{ReplayError, Session};
use super::{Fault, Shared};
use crate::compress::{Compression, Deflater};
use crate::rst::arm_reset;

/// Whether to keep serving the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    End,
}

/// Serves one accepted TCP connection until it ends.
pub(super) async fn serve(shared: Arc<Shared>, tcp: TcpStream, id: u64) {
    let now = shared.now();
    {
        let mut state = shared.lock();
        state.stats.connections += 1;
        state.stats.accepted_at.push(now);
        if state.modes.refuse {
            state.stats.refused += 1;
            drop(state);
            debug!(connection = id, "refused");
            arm_reset(&tcp);
            return;
        }
    }
    let _ = tcp.set_nodelay(true);
    let faults = shared.faults.subscribe();
    let for_upgrade = Arc::clone(&shared);
    let without_user_agent = Arc::new(AtomicBool::new(false));
    let upgrade_without_user_agent = Arc::clone(&without_user_agent);
    let compression = Arc::new(std::sync::Mutex::new(Compression::None));
    let upgrade_compression = Arc::clone(&compression);
    // The error type is tungstenite's, large or not.
    #[allow(clippy::result_large_err)]
    let upgrade = move |request: &Request, response: Response| {
        let mut state = for_upgrade.lock();
        state.stats.last_query = request.uri().query().map(str::to_owned);
        if let Ok(mut asked) = upgrade_compression.lock() {
            *asked = requested_compression(request.uri().query());
        }
        state.stats.last_user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if state.stats.last_user_agent.is_none() {
            state.stats.missing_user_agent += 1;
            upgrade_without_user_agent.store(true, Ordering::Relaxed);
        }
        let Some(reject) = state.modes.reject.clone() else {
            return Ok(response);
        };
        match reject.times {
            Some(1) => state.modes.reject = None,
            Some(n) => {
                if let Some(r) = &mut state.modes.reject {
                    r.times = Some(n.saturating_sub(1));
                }
            }
            None => {}
        }
        state.stats.rejected_upgrades += 1;
        let mut error = ErrorResponse::new(Some(format!("HTTP {}", reject.status)));
        *error.status_mut() =
            StatusCode::from_u16(reject.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        if let Some(value) = reject
            .retry_after
            .and_then(|v| header::HeaderValue::from_str(&v).ok())
        {
            error.headers_mut().insert(header::RETRY_AFTER, value);
        }
        Err(error)
    };
    let ws = match tokio_tungstenite::accept_hdr_async(tcp, upgrade).await {
        Ok(ws) => ws,
        Err(e) => {
            debug!(connection = id, error = %e, "upgrade failed or refused");
            return;
        }
    };
    {
        let mut state = shared.lock();
        state.stats.upgrades += 1;
        state.stats.open_sockets += 1;
    }
    let shared_requires_user_agent = shared.config.require_user_agent;
    let compression = compression.lock().map_or(Compression::None, |c| *c);
    let deflater = match Deflater::new(compression) {
        Ok(deflater) => deflater,
        Err(e) => {
            debug!(connection = id, error = %e, "no compression context");
            return;
        }
    };
    let mut socket = ServerSocket {
        shared,
        id,
        ws,
        faults,
        session: None,
        seq_rx: None,
        next: 1,
        drop_at: None,
        detached: false,
        closing: false,
        refuse_before_hello: shared_requires_user_agent
            && without_user_agent.load(Ordering::Relaxed),
        deflater,
        received: std::collections::VecDeque::new(),
    };
    socket.run().await;
    socket.finish();
}

struct ServerSocket {
    shared: Arc<Shared>,
    id: u64,
    ws: WebSocketStream<TcpStream>,
    faults: broadcast::Receiver<Fault>,
    /// The session this socket identified or resumed.
    session: Option<String>,
    /// Wakes the socket when its session has new events.
    seq_rx: Option<watch::Receiver<u64>>,
    /// The next sequence number to stream.
    next: u64,
    /// When to drop the socket (a link that drops once established).
    drop_at: Option<tokio::time::Instant>,
    /// Whether the socket no longer counts as attached to its session.
    detached: bool,
    /// Whether this side sent a close frame (the client's next close frame
    /// is then only its reply).
    closing: bool,
    /// Whether to close with 4002 instead of saying Hello (the gateway
    /// requires a `User-Agent` and the upgrade had none).
    refuse_before_hello: bool,
    /// This connection's compression stream, when the client asked for
    /// one (`compress=` in the query).
    deflater: Option<Deflater>,
    /// When each payload of the current send window arrived.
    received: std::collections::VecDeque<tokio::time::Instant>,
}

impl ServerSocket {
    async fn run(&mut self) {
        let hello = json!({
            "op": 10,
            "d": {"heartbeat_interval": self.shared.config.heartbeat_interval_ms},
        });
        if self.refuse_before_hello {
            debug!(connection = self.id, "no User-Agent: closing with 4002");
            if self.close(4002).await == Flow::End {
                return;
            }
        } else if !self.stalled() && self.send_json(&hello).await == Flow::End {
            // A stalled gateway does not even say Hello.
            return;
        }
        loop {
            let drop_at = self.drop_at;
            let flow = tokio::select! {
                message = self.ws.next() => match message {
                    Some(Ok(message)) => self.on_message(message).await,
                    Some(Err(e)) => {
                        debug!(connection = self.id, error = %e, "read failed");
                        Flow::End
                    }
                    None => Flow::End,
                },
                fault = self.faults.recv() => match fault {
                    Ok(fault) => self.apply(fault).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => Flow::Continue,
                    Err(broadcast::error::RecvError::Closed) => Flow::End,
                },
                more = changed(self.seq_rx.as_mut()) => {
                    if more {
                        self.stream().await
                    } else {
                        self.seq_rx = None;
                        Flow::Continue
                    }
                }
                () = sleep_until(drop_at) => {
                    info!(connection = self.id, "dropping the socket (drop after established)");
                    Flow::End
                }
            };
            if flow == Flow::End {
                return;
            }
        }
    }

    fn finish(&mut self) {
        debug!(connection = self.id, "socket ended");
        self.detach();
        let mut state = self.shared.lock();
        state.stats.open_sockets = state.stats.open_sockets.saturating_sub(1);
    }

    /// The socket stops counting as attached to its session: when it ends,
    /// or as soon as the client's close frame arrives (so the count never
    /// depends on how fast this task runs after replying).
    fn detach(&mut self) {
        if std::mem::replace(&mut self.detached, true) {
            return;
        }
        let now = self.shared.now();
        let mut state = self.shared.lock();
        if let Some(session) = self
            .session
            .as_ref()
            .and_then(|id| state.sessions.get_mut(id))
        {
            session.detach(self.id, now);
        }
    }

    /// Counts one payload from the client in the send window; whether it
    /// is one too many.
    fn over_send_limit(&mut self) -> bool {
        let limit = self.shared.config.send_limit;
        let window = Duration::from_millis(self.shared.config.send_window_ms);
        let now = tokio::time::Instant::now();
        while self
            .received
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= window)
        {
            self.received.pop_front();
        }
        self.received.push_back(now);
        let in_window = self.received.len() as u64;
        let mut state = self.shared.lock();
        state.stats.max_sent_per_window = state.stats.max_sent_per_window.max(in_window);
        let over = limit > 0 && in_window > u64::from(limit);
        if over {
            state.stats.send_limit_exceeded += 1;
        }
        over
    }

    fn stalled(&self) -> bool {
        self.shared.lock().modes.stall
    }

    async fn send_text(&mut self, text: String) -> Flow {
        let payload_bytes = text.len() as u64;
        let message = match &mut self.deflater {
            None => Message::text(text),
            Some(deflater) => match deflater.push(&text) {
                Ok(frame) => Message::binary(frame),
                Err(e) => {
                    debug!(connection = self.id, error = %e, "compression failed");
                    return Flow::End;
                }
            },
        };
        {
            let mut state = self.shared.lock();
            state.stats.payload_bytes_sent += payload_bytes;
            state.stats.wire_bytes_sent += message.len() as u64;
        }
        match self.ws.send(message).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::End,
        }
    }

    async fn send_json(&mut self, value: &Value) -> Flow {
        self.send_text(value.to_string()).await
    }

    async fn close(&mut self, code: u16) -> Flow {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        self.closing = true;
        match self.ws.send(Message::Close(Some(frame))).await {
            // Keep reading: the client's reply ends the socket.
            Ok(()) => Flow::Continue,
            Err(_) => Flow::End,
        }
    }

    async fn on_message(&mut self, message: Message) -> Flow {
        match message {
            Message::Text(text) => {
                if self.stalled() {
                    return Flow::Continue;
                }
                if self.over_send_limit() {
                    info!(
                        connection = self.id,
                        "over the send limit: closing with 4008"
                    );
                    return self.close(4008).await;
                }
                let Ok(payload) = serde_json::from_str::<Value>(text.as_str()) else {
                    return self.close(4002).await;
                };
                match payload["op"].as_u64() {
                    Some(1) => self.on_heartbeat().await,
                    Some(2) => self.on_identify(&payload["d"]).await,
                    Some(6) => self.on_resume(&payload["d"]).await,
                    Some(3 | 4 | 8 | 31 | 43) => {
                        self.shared.lock().stats.commands += 1;
                        Flow::Continue
                    }
                    _ => self.close(4001).await,
                }
            }
            Message::Close(frame) => {
                let code = frame.map(|f| u16::from(f.code));
                debug!(
                    connection = self.id,
                    ?code,
                    reply = self.closing,
                    "close frame from the client"
                );
                // A reply to our own close echoes our code: it is not the
                // client closing (with 1000, say).
                if self.closing {
                    self.shared.lock().stats.close_replies += 1;
                } else {
                    self.on_client_close(code);
                }
                self.detach();
                if self.stalled() {
                    // A stalled server does not answer, not even a close:
                    // hold the socket until the client drops it.
                    let mut buf = [0_u8; 1_024];
                    let tcp = self.ws.get_mut();
                    while let Ok(n) = tcp.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                } else {
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.flush()).await;
                }
                Flow::End
            }
            _ => Flow::Continue,
        }
    }

    fn on_client_close(&self, code: Option<u16>) {
        let mut state = self.shared.lock();
        if let Some(code) = code {
            state.stats.client_close_codes.push(code);
        }
        if matches!(code, Some(1000 | 1001)) {
            state.stats.sessions_ended_by_client += 1;
            if let Some(session) = self
                .session
                .as_ref()
                .and_then(|id| state.sessions.get_mut(id))
            {
                session.invalid = true;
            }
        }
    }

    async fn on_heartbeat(&mut self) -> Flow {
        let answer = {
            let mut state = self.shared.lock();
            state.stats.heartbeats += 1;
            let answer = state.modes.acks;
            if answer {
                state.stats.acks += 1;
            }
            answer
        };
        if answer {
            self.send_json(&json!({"op": 11})).await
        } else {
            Flow::Continue
        }
    }

    /// Whether `d.token` is the configured token (any token if none is).
    fn token_ok(&self, d: &Value) -> bool {
        match &self.shared.config.token {
            Some(expected) => d["token"].as_str() == Some(expected.as_str()),
            None => d["token"].is_string(),
        }
    }

    async fn on_identify(&mut self, d: &Value) -> Flow {
        if self.session.is_some() {
            return self.close(4005).await;
        }
        if !self.token_ok(d) {
            self.shared.lock().stats.bad_tokens += 1;
            return self.close(4004).await;
        }
        let rejected = {
            let mut state = self.shared.lock();
            let code = state.modes.reject_identify;
            if code.is_some() {
                state.stats.identifies_rejected += 1;
            }
            code
        };
        if let Some(code) = rejected {
            info!(connection = self.id, code, "identify rejected before READY");
            return self.close(code).await;
        }
        let now = self.shared.now();
        let interval = self.shared.config.identify_interval_ms;
        let buckets = u64::from(self.shared.config.max_concurrency.max(1));
        let bucket = d["shard"][0].as_u64().unwrap_or(0) % buckets;
        let created = {
            let mut state = self.shared.lock();
            let too_soon = state
                .last_identify
                .get(&bucket)
                .is_some_and(|&last| now.saturating_since(last) < interval);
            if too_soon {
                state.stats.identifies_rate_limited += 1;
                None
            } else {
                state.last_identify.insert(bucket, now);
                state.stats.identifies += 1;
                let shard = d["shard"][0].as_u64().unwrap_or(0);
                let shard = u32::try_from(shard).unwrap_or(u32::MAX);
                state.stats.identify_log.push((now, shard));
                state.next_session += 1;
                let id = format!("loopback-{}", state.next_session);
                let ready = json!({
                    "v": 10,
                    "session_id": id,
                    "resume_gateway_url": self.shared.resume_url(&state),
                    "shard": d.get("shard").cloned().unwrap_or_else(|| json!([0, 1])),
                    "user": {"id": "0", "username": "loopback", "bot": true},
                    "guilds": [],
                });
                let mut session = Session::new(id.clone(), &ready, self.shared.config.max_log);
                state.stats.events_generated += 1;
                self.seq_rx = Some(session.attach(self.id));
                state.sessions.insert(id.clone(), session);
                Some(id)
            }
        };
        let Some(id) = created else {
            info!(connection = self.id, "identify too soon: op 9 false");
            return self.send_json(&json!({"op": 9, "d": false})).await;
        };
        info!(connection = self.id, session = %id, "identified");
        self.session = Some(id);
        self.next = 1;
        self.established();
        self.stream().await
    }

    async fn on_resume(&mut self, d: &Value) -> Flow {
        if !self.token_ok(d) {
            self.shared.lock().stats.bad_tokens += 1;
            return self.close(4004).await;
        }
        let (Some(session_id), Some(seq)) = (d["session_id"].as_str(), d["seq"].as_u64()) else {
            return self.close(4002).await;
        };
        let now = self.shared.now();
        let timeout = self.shared.config.session_timeout_ms;
        let replay = {
            let mut state = self.shared.lock();
            let outcome = match state.sessions.get_mut(session_id) {
                Some(session) if session.alive(now, timeout) => match session.frames_after(seq) {
                    Ok(frames) => {
                        self.seq_rx = Some(session.attach(self.id));
                        self.next = session.last_seq().saturating_add(1);
                        Ok((frames, session.last_seq()))
                    }
                    Err(e) => Err(Some(e)),
                },
                _ => Err(None),
            };
            match &outcome {
                Ok((frames, last)) => {
                    state.stats.resumes += 1;
                    state.stats.replayed += frames.len() as u64;
                    state.stats.resume_log.push(super::ResumeRecord {
                        session_id: session_id.to_owned(),
                        seq,
                        server_last_seq: *last,
                        at: now,
                    });
                }
                Err(Some(ReplayError::Ahead)) => state.stats.invalid_seq += 1,
                Err(_) => state.stats.resumes_refused += 1,
            }
            outcome
        };
        match replay {
            Ok((frames, _)) => {
                info!(
                    connection = self.id,
                    session = session_id,
                    seq,
                    replay = frames.len(),
                    "resumed"
                );
                self.session = Some(session_id.to_owned());
                for frame in frames {
                    if self.send_text(frame.to_string()).await == Flow::End {
                        return Flow::End;
                    }
                }
                self.established();
                self.send_json(&json!({"op": 0, "s": null, "t": "RESUMED", "d": {}}))
                    .await
            }
            Err(Some(ReplayError::Ahead)) => {
                info!(
                    connection = self.id,
                    seq, "resume ahead of the session: 4007"
                );
                self.close(4007).await
            }
            Err(_) => {
                info!(
                    connection = self.id,
                    session = session_id,
                    "resume refused: op 9 false"
                );
                self.send_json(&json!({"op": 9, "d": false})).await
            }
        }
    }

    /// READY or RESUMED went out: arm the drop-after-established mode.
    fn established(&mut self) {
        if let Some(ms) = self.shared.lock().modes.drop_after_ms {
            let at = self.shared.now().saturating_add(ms);
            self.drop_at = Some(self.shared.clock.instant_at(at));
        }
    }

    /// Sends the session's events from `next` on, if this socket is the
    /// one the session's events go to.
    async fn stream(&mut self) -> Flow {
        if self.stalled() {
            return Flow::Continue;
        }
        let frames = {
            let state = self.shared.lock();
            let Some(session) = self.session.as_ref().and_then(|id| state.sessions.get(id)) else {
                return Flow::Continue;
            };
            if !session.is_owner(self.id) {
                return Flow::Continue;
            }
            let frames = session.frames_from(self.next);
            self.next = session.last_seq().saturating_add(1);
            frames
        };
        for frame in frames {
            if self.send_text(frame.to_string()).await == Flow::End {
                return Flow::End;
            }
        }
        Flow::Continue
    }

    async fn apply(&mut self, fault: Fault) -> Flow {
        debug!(connection = self.id, ?fault, "fault");
        match fault {
            Fault::Drop => Flow::End,
            Fault::Reset => {
                arm_reset(self.ws.get_ref());
                Flow::End
            }
            Fault::Close { code } => self.close(code).await,
            Fault::Reconnect => self.send_json(&json!({"op": 7, "d": null})).await,
            Fault::ReconnectAndClose { code } => {
                if self.send_json(&json!({"op": 7, "d": null})).await == Flow::End {
                    return Flow::End;
                }
                self.close(code).await
            }
            Fault::InvalidSession { resumable } => {
                self.send_json(&json!({"op": 9, "d": resumable})).await
            }
            Fault::InvalidSessionWithoutData => {
                if let Some(id) = &self.session {
                    let mut state = self.shared.lock();
                    if let Some(session) = state.sessions.get_mut(id) {
                        session.invalid = true;
                    }
                }
                let seq = self.next.saturating_sub(1);
                if self.send_json(&json!({"op": 9, "s": seq})).await == Flow::End {
                    return Flow::End;
                }
                self.close(4006).await
            }
            Fault::HeartbeatRequest => self.send_json(&json!({"op": 1, "d": null})).await,
            Fault::SendText { text } => self.send_text(text).await,
            Fault::SendBinary { bytes } => match self.ws.send(Message::binary(bytes)).await {
                Ok(()) => Flow::Continue,
                Err(_) => Flow::End,
            },
            Fault::SendOversized { bytes } => {
                let frame = json!({"op": 0, "s": null, "t": "LOOPBACK_OVERSIZED", "d": {"pad": "x".repeat(bytes)}});
                self.send_json(&frame).await
            }
            _ => Flow::Continue,
        }
    }
}

/// Resolves with `true` when the watched value changes, `false` when the
/// sender is gone; never without a receiver.
async fn changed(rx: Option<&mut watch::Receiver<u64>>) -> bool {
    match rx {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The transport compression an upgrade's query asks for (`compress=`);
/// anything unknown is plain text.
fn requested_compression(query: Option<&str>) -> Compression {
    let asked = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("compress="));
    Compression::from_query_value(asked)
}
