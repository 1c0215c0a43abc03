//! `@discordjs/ws`.

use super::*;

impl PeerRules {
    /// `@discordjs/ws` (ref §B3: `packages/ws/src/ws/WebSocketShard.ts`,
    /// `utils/constants.ts`, `throttling/SimpleIdentifyThrottler.ts`).
    ///
    /// - **Backoff**: none; `sleep(500)` before every reconnect, no growth,
    ///   no cap, no attempt limit (ref §0, §B3: PR #9517 after #9510; Part
    ///   C #1: #11626, a 38-minute loop at about 2 attempts/s). No give-up.
    /// - **Own close codes**: `destroy()` closes with 4200 to resume and
    ///   1000 otherwise, and waits for the close handshake (ref §B3
    ///   "Recovery model"; *code*: it awaits `onclose`, which the `ws`
    ///   package bounds at 30 s *(inferred)*).
    /// - **Session**: cleared unless the recovery is Resume (ref §B3).
    /// - **Close codes** (ref §B3 `onClose`): 4000, 4001, 4002, 4009
    ///   resume; 1000, 4003, 4005, 4007, 4008 reconnect (identify); 4004,
    ///   4010–4014 stop; unknown codes resume unless a socket error was
    ///   seen. A refused or failed dial fires `error` then `close` 1006,
    ///   so it reconnects and drops the session *(inferred from ref §B3's
    ///   rule)*; a reset of an open socket closes with 1006 and resumes.
    /// - **op 7** → destroy(Resume): close 4200, 500 ms, resume (ref §0).
    /// - **op 9**: `d = true` with a session sends Resume on the same
    ///   socket; otherwise destroy(Reconnect): close 1000, clear the
    ///   session, 500 ms, identify through the throttler (ref §0, §A2, §B3).
    /// - **Zombie**: not ACKed at the next tick → destroy(Resume), close
    ///   4200 (ref §0, §B3).
    /// - **First heartbeat**: `floor(interval × Math.random())` after Hello
    ///   (ref §B3).
    /// - **Timeouts** (ref §B3 `constants.ts`): handshake 30 s, Hello 60 s,
    ///   READY 15 s; a Hello or READY timeout destroys with 1000 and
    ///   Reconnect, so the session is dropped and a fresh identify follows.
    /// - **Identify pacing**: `SimpleIdentifyThrottler`, one queue per
    ///   `shard % max_concurrency`; a waiter that finds the key used less
    ///   than 5 s ago sleeps the rest plus 0–1.5 s (ref §0, §B3), shared by
    ///   every shard of the manager. Resumes dial the stored resume URL.
    pub const DISCORD_JS: Self = Self {
        delay: Delay::Immediate,
        reset: Reset::Never,
        guard_ms: 0,
        give_up_after: None,
        codes: CloseCodes {
            fatal: DOCS_FATAL,
            reidentify: &[1000, 4003, 4005, 4007, 4008],
            zero_seq: &[],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Drop, Close::Leave, Wait::Fixed(500)),
            resume_dial_failed: Reaction::new(Fate::Drop, Close::Leave, Wait::Fixed(500)),
            closed: Reaction::new(Fate::Keep, Close::Leave, Wait::Fixed(500)),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(4200), Wait::Fixed(500)),
            resumable: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::Fixed(500)),
            invalid: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::Fixed(500)),
            zombie: Reaction::new(Fate::Keep, Close::Frame(4200), Wait::Fixed(500)),
            timeout: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::Fixed(500)),
        },
        resume_dial_retries: None,
        drops_resume_url_on_dial_failure: false,
        close_wait_ms: 30_000,
        resume_on_same_socket: true,
        first_heartbeat: FirstHeartbeat::Jittered,
        heartbeat_jitter_ms: 0,
        zombie: Zombie::AckMissed { misses: 1 },
        pacing: Pacing::Throttle {
            window_ms: 5_000,
            jitter_ms: 1_500,
        },
        identify_hook: IdentifyHook::None,
        on_open: OnOpen::Nothing,
        connect_timeout_ms: 30_000,
        hello_timeout_ms: Some(60_000),
        hello_timeout_when_resuming: true,
        ready_timeout_ms: Some(15_000),
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
