//! What the loopback gateway saw, for tests to assert on.

use reconnect_policy::Timestamp;

/// One accepted Resume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeRecord {
    /// The session.
    pub session_id: String,
    /// The sequence number the client resumed from.
    pub seq: u64,
    /// The session's last sequence number at that moment.
    pub server_last_seq: u64,
    /// When (gateway clock).
    pub at: Timestamp,
}

/// A session, as the gateway sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// Its id.
    pub id: String,
    /// The last sequence number generated for it.
    pub last_seq: u64,
    /// Whether it can no longer be resumed.
    pub invalid: bool,
    /// The most sockets attached to it at once.
    pub max_sockets: u64,
    /// Sockets attached now.
    pub sockets: u64,
}

/// Counters and logs of the loopback gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayStats {
    /// TCP connections accepted (refused ones included).
    pub connections: u64,
    /// When each was accepted (gateway clock).
    pub accepted_at: Vec<Timestamp>,
    /// Connections reset at once because the gateway was refusing.
    pub refused: u64,
    /// Upgrades answered with an HTTP error status.
    pub rejected_upgrades: u64,
    /// WebSocket upgrades completed.
    pub upgrades: u64,
    /// Sockets open now.
    pub open_sockets: u64,
    /// The query string of the last upgrade request.
    pub last_query: Option<String>,
    /// The `User-Agent` of the last upgrade request.
    pub last_user_agent: Option<String>,
    /// Upgrades without a `User-Agent` (closed with 4002 when the gateway
    /// requires one).
    pub missing_user_agent: u64,
    /// Identify payloads answered with READY.
    pub identifies: u64,
    /// Every Identify answered with READY: when (gateway clock) and its
    /// shard id, in order; the spacing of a bucket's entries is what the
    /// identify window is judged on.
    pub identify_log: Vec<(Timestamp, u32)>,
    /// Identify payloads refused (op 9 `false`) because they came faster
    /// than the identify interval allows in their bucket.
    pub identifies_rate_limited: u64,
    /// Identify payloads closed before READY by the reject-identify mode.
    pub identifies_rejected: u64,
    /// The bot's own commands received (op 3, 4, 8, 31, 43).
    pub commands: u64,
    /// Resumes answered with a replay and RESUMED.
    pub resumes: u64,
    /// Resumes refused with op 9 `false` (unknown, invalid or expired
    /// session, or a sequence older than the replay buffer).
    pub resumes_refused: u64,
    /// Resumes closed with 4007 (a sequence the session never reached).
    pub invalid_seq: u64,
    /// Identify or Resume payloads with the wrong token (closed with 4004).
    pub bad_tokens: u64,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Heartbeat ACKs sent.
    pub acks: u64,
    /// Dispatches generated, over all sessions (READY included).
    pub events_generated: u64,
    /// Dispatches sent again in replays.
    pub replayed: u64,
    /// Bytes of the payloads the gateway sent (JSON text, before any
    /// compression).
    pub payload_bytes_sent: u64,
    /// Bytes of those payloads as sent in frames: the same as
    /// `payload_bytes_sent` without compression, the compressed size with.
    pub wire_bytes_sent: u64,
    /// Close frames clients sent in reply to the gateway's own close
    /// (RFC 6455 §5.5.1 asks for one).
    pub close_replies: u64,
    /// Close codes of the closes clients started (replies to the gateway's
    /// own close frames left out), in order.
    pub client_close_codes: Vec<u16>,
    /// Sessions ended by a client closing with 1000 or 1001.
    pub sessions_ended_by_client: u64,
    /// The most sockets attached to one session at once, over all sessions.
    pub max_sockets_per_session: u64,
    /// Every accepted Resume.
    pub resume_log: Vec<ResumeRecord>,
    /// Faults injected.
    pub faults: u64,
    /// Connections closed with 4008 for sending over the send limit.
    pub send_limit_exceeded: u64,
    /// The most payloads one connection sent in any send window.
    pub max_sent_per_window: u64,
}
