//! twilight-gateway 0.17.

use super::*;

impl PeerRules {
    /// twilight-gateway 0.17 (`913310ee`; ref §B1:
    /// `twilight-gateway/src/shard.rs`, `twilight-gateway-queue/src/
    /// in_memory.rs`, `twilight-model/src/gateway/close_code.rs`).
    ///
    /// - **Backoff**: attempt `n ≥ 1` sleeps `2u8.saturating_pow(n-1)` s:
    ///   1, 2, 4 … 128, then 255 s; no jitter (ref §0, §B1, `poll_connect`;
    ///   PR #512 for #446).
    /// - **What it counts**: only consecutive failed dials (a failed or
    ///   timed-out dial adds one and drops the resume URL); any disconnect
    ///   after a successful dial starts again from 0, so the next dial is
    ///   immediate (ref §0, §B1; "not tied to READY"). Connect timeout 10 s
    ///   (`CONNECT_TIMEOUT`). No give-up.
    /// - **Close codes**: 4004, 4010–4014 are fatal (`can_reconnect`);
    ///   every other code, unknown codes and no code resume; the session is
    ///   kept even after 4007/4009, so the Resume fails and op 9 `d =
    ///   false` forces the identify *(inferred, ref §B1)*.
    /// - **op 7** → close 4000, reconnect at once to the resume URL,
    ///   Resume; **op 9** `d = true` → close 4000, resume; `d = false` →
    ///   close 1000, which clears the session and the resume URL, identify
    ///   through the queue (ref §0, §B1). After its close frame the shard
    ///   reads on until the connection ends (*code*, `poll_next`); with no
    ///   timeout in `shard.rs`, we give up on the answer after 60 s so a
    ///   lost one cannot wedge the model *(our assumption)*.
    /// - **Zombie**: at a heartbeat tick, if a heartbeat was sent and no
    ///   message of any kind arrived since, an IO `TimedOut` error: the
    ///   connection is dropped and the shard resumes (ref §0, §B1; #2435).
    /// - **First heartbeat**: `interval × fastrand::f64()` (ref §B1).
    /// - **Identify pacing**: `InMemoryQueue`, one queue per `shard %
    ///   max_concurrency`, one bot-wide 5 s tick releasing one shard per
    ///   bucket, and a wait for the daily reset when `remaining` hits 0;
    ///   re-identifies go through it, resumes bypass it (ref §0, §B1).
    pub const TWILIGHT: Self = Self {
        delay: Delay::Doubling {
            first_ms: 1_000,
            cap_ms: 255_000,
        },
        reset: Reset::OnOpen,
        guard_ms: 0,
        give_up_after: None,
        codes: CloseCodes {
            fatal: DOCS_FATAL,
            reidentify: &[],
            zero_seq: &[],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            resume_dial_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            closed: Reaction::new(Fate::Keep, Close::Leave, Wait::None),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::None),
            resumable: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::None),
            invalid: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::None),
            zombie: Reaction::new(Fate::Keep, Close::Drop, Wait::None),
            timeout: Reaction::new(Fate::Keep, Close::Drop, Wait::Backoff),
        },
        resume_dial_retries: None,
        drops_resume_url_on_dial_failure: true,
        close_wait_ms: 60_000,
        resume_on_same_socket: false,
        first_heartbeat: FirstHeartbeat::Jittered,
        heartbeat_jitter_ms: 0,
        zombie: Zombie::NoMessageSinceHeartbeat,
        pacing: Pacing::Ticked { window_ms: 5_000 },
        identify_hook: IdentifyHook::None,
        on_open: OnOpen::Nothing,
        connect_timeout_ms: 10_000,
        hello_timeout_ms: None,
        hello_timeout_when_resuming: false,
        ready_timeout_ms: None,
        start_failed: None,
        start_timeout_ms: None,
        uses_resume_url: true,
        backoff_in_queue: false,
        bugs: Bugs {
            reconnect_twice: false,
            leaves_old_socket_open: false,
            resume_seq_from_new_socket: false,
        },
    };
}
