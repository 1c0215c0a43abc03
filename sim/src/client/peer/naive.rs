//! The naive client and its 5 s guard: the reconnect storm the project
//! exists to prevent.

use super::*;

impl PeerRules {
    /// The naive client: reconnects at once after anything, resumes when it
    /// can, closes with 4000 to resume and 1000 after op 9 `d = false`,
    /// never paces identifies, detects zombies by a missed ACK, sends its
    /// first heartbeat on Hello, and abandons a connection that has not
    /// said Hello 10 s after the dial. The storm of the issue and of ref Part C #2 (discord.js#9510:
    /// "destroy → connect → fail → destroy ran with no delay").
    pub const NAIVE: Self = Self {
        delay: Delay::Immediate,
        reset: Reset::OnOpen,
        guard_ms: 0,
        give_up_after: None,
        codes: CloseCodes {
            fatal: DOCS_FATAL,
            reidentify: &[4007, 4009],
            zero_seq: &[],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            resume_dial_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            closed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::Backoff),
            resumable: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::Backoff),
            invalid: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::Backoff),
            zombie: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::Backoff),
            timeout: Reaction::new(Fate::Keep, Close::Drop, Wait::Backoff),
        },
        resume_dial_retries: None,
        drops_resume_url_on_dial_failure: false,
        close_wait_ms: 0,
        resume_on_same_socket: false,
        first_heartbeat: FirstHeartbeat::Immediate,
        heartbeat_jitter_ms: 0,
        zombie: Zombie::AckMissed { misses: 1 },
        pacing: Pacing::None,
        identify_hook: IdentifyHook::None,
        on_open: OnOpen::Nothing,
        connect_timeout_ms: 10_000,
        hello_timeout_ms: Some(10_000),
        hello_timeout_when_resuming: true,
        ready_timeout_ms: None,
        start_failed: None,
        start_timeout_ms: None,
        uses_resume_url: false,
        backoff_in_queue: false,
        bugs: Bugs {
            reconnect_twice: false,
            leaves_old_socket_open: false,
            resume_seq_from_new_socket: false,
        },
    };
}
