//! Carbon's `GatewayPlugin` before PR #264: as its code is written, and as
//! the PR's description tells it.

use super::*;

impl PeerRules {
    /// Carbon's `GatewayPlugin` before PR #264 ("Fixed the gateway's
    /// reconnection system"), read at buape/carbon `e2b2c69^`
    /// (`packages/carbon/src/plugins/gateway/GatewayPlugin.ts`,
    /// `utils/heartbeat.ts`, `plugins/sharding/ShardingPlugin.ts`); ref §B6
    /// names these files and describes the later code.
    ///
    /// - **Backoff**: every reconnect goes through
    ///   `handleReconnectionAttempt`, which increments the counter *before*
    ///   computing `min(1000·2^attempts, 30000)` ms, no jitter: 2, 4, 8,
    ///   16, 30 s. PR #264: "`backoffTime` was always two times the value
    ///   the user set" (the doubled backoff; ref §B6 gives the fixed
    ///   formula).
    /// - **Counter reset** on the WebSocket's `open` (ref §B6 and Part C
    ///   #4: PR #345, "prevented backoff from growing").
    /// - **Give-up**: after 5 counted attempts (`maxAttempts` 5), the only
    ///   library that gives up by default (ref §0, §B6). The check happens
    ///   before anything else, so the socket is left as it is.
    /// - **Fatal codes**: 4004, 4011, 4012, 4013, 4014 set the counter to
    ///   the maximum (*code*: 4010 is missing from this old list; ref §B6
    ///   gives 4004, 4010–4014 for the current code).
    /// - **Re-identify**: 4007 and 4009 clear the session (*code*; ref §B6
    ///   adds 4003 and 4005 in the current code). Everything else resumes
    ///   when a session and a sequence are known (`canResume`).
    /// - **Closing before a reconnect**: `disconnect()` calls `ws.close()`
    ///   with no code (GatewayPlugin.ts:114), and the `ws` package then sends
    ///   a close frame with no status code, which the gateway receives as
    ///   1005 ("no status"). The docs end a session only for a client's 1000
    ///   or 1001 (§A1), so the session survives. PR #264 says the code closed
    ///   with 1000 ("has to disconnect with a code other than 1000 and 1001,
    ///   which I added"); that account is the separate model
    ///   [`PeerRules::CARBON_OLD_PR`].
    /// - **Double reconnect** ([`Bugs::reconnect_twice`]): op 7 runs
    ///   `handleReconnect()`, and the old socket's `close` event then runs
    ///   `handleClose()`: two reconnects, two increments. PR #264: "it
    ///   tries to reconnect twice, because both `this.handleReconnect()`
    ///   ... and `this.handleClose(code)` ... run
    ///   `this.handleReconnectionAttempt(...)`"; the same happens after a
    ///   zombie.
    /// - **Old socket left open** ([`Bugs::leaves_old_socket_open`]):
    ///   `connect()` replaces `this.ws` without closing it, and every
    ///   socket keeps its listeners. PR #264: "When creating a new
    ///   WebSocket connection, it didn't close the older one."
    /// - **Resume sequence**: the code keeps one `sequence` field, written
    ///   by every socket's dispatches (GatewayPlugin.ts:149), and
    ///   `canResume`/`resume` require it to be non-null (:307-318), so a
    ///   Resume with 0 cannot happen: it carries the latest sequence seen.
    ///   PR #264's account ("it was sending the latest sequence number ...
    ///   from the new WebSocket", a Resume with none) is the separate model
    ///   [`PeerRules::CARBON_OLD_PR`]
    ///   ([`Bugs::resume_seq_from_new_socket`]).
    /// - **op 7**: reconnect through `handleReconnectionAttempt` (counted,
    ///   closes with no code), preferring resume.
    /// - **op 9**: no close; after a fixed 5 s (`setTimeout(..., 5000)`,
    ///   *code*; the 1–5 s random wait of ref §B6 came later), connect again,
    ///   resuming if `d` and a session allow, else with the session
    ///   cleared. The socket that got op 9 stays open.
    /// - **Zombie**: the previous heartbeat not ACKed at the next tick
    ///   (ref §0, §B6); same path as op 7.
    /// - **Heartbeats**: the first on Hello, then every `interval + U(0, 1
    ///   s)` (*code*, `utils/heartbeat.ts`; ref §B6 describes the later
    ///   jittered first heartbeat).
    /// - **Identify pacing**: none on re-identify; at startup,
    ///   `ShardingPlugin` spawns batches of `max_concurrency` every 5 s (ref
    ///   §0, §B6).
    /// - **Timeouts**: none in the code; a dial that never answers ends
    ///   with the operating system's TCP connect timeout, about 127 s on
    ///   Linux *(inferred)*. A close frame nobody answers ends after the
    ///   `ws` package's 30 s close timeout with a `close` event (1006),
    ///   which the listener handles like any other *(inferred)*. Resumes
    ///   dial READY's resume URL.
    pub const CARBON_OLD: Self = Self {
        delay: Delay::Doubling {
            first_ms: 2_000,
            cap_ms: 30_000,
        },
        reset: Reset::OnOpen,
        guard_ms: 0,
        give_up_after: Some(5),
        codes: CloseCodes {
            fatal: &[4004, 4011, 4012, 4013, 4014],
            reidentify: &[4007, 4009],
            zero_seq: &[],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Keep, Close::Frame(NO_STATUS), Wait::Backoff),
            resume_dial_failed: Reaction::new(Fate::Keep, Close::Frame(NO_STATUS), Wait::Backoff),
            closed: Reaction::new(Fate::Keep, Close::Frame(NO_STATUS), Wait::Backoff),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(NO_STATUS), Wait::Backoff),
            resumable: Reaction::new(Fate::Keep, Close::Leave, Wait::Fixed(5_000)),
            invalid: Reaction::new(Fate::Drop, Close::Leave, Wait::Fixed(5_000)),
            zombie: Reaction::new(Fate::Keep, Close::Frame(NO_STATUS), Wait::Backoff),
            timeout: Reaction::new(Fate::Keep, Close::Drop, Wait::Backoff),
        },
        resume_dial_retries: None,
        drops_resume_url_on_dial_failure: false,
        close_wait_ms: 30_000,
        resume_on_same_socket: false,
        first_heartbeat: FirstHeartbeat::Immediate,
        heartbeat_jitter_ms: 1_000,
        zombie: Zombie::AckMissed { misses: 1 },
        pacing: Pacing::StartupBatches { window_ms: 5_000 },
        identify_hook: IdentifyHook::None,
        on_open: OnOpen::Nothing,
        connect_timeout_ms: 127_000,
        hello_timeout_ms: None,
        hello_timeout_when_resuming: false,
        ready_timeout_ms: None,
        start_failed: None,
        start_timeout_ms: None,
        uses_resume_url: true,
        backoff_in_queue: false,
        bugs: Bugs {
            reconnect_twice: true,
            leaves_old_socket_open: true,
            resume_seq_from_new_socket: false,
        },
    };

    /// [`PeerRules::CARBON_OLD`] as PR #264's description tells it, kept
    /// beside the code as written: every reconnect closes with 1000 (which
    /// ends the session, §A1), and a Resume carries the new socket's
    /// sequence, none (0), which the gateway answers with 4007 ("It always
    /// fails to resume ... it was sending the latest sequence number that
    /// was given (aka from the new WebSocket)").
    pub const CARBON_OLD_PR: Self = Self {
        on: Reactions {
            connect_failed: Reaction::new(Fate::Keep, Close::Frame(1000), Wait::Backoff),
            resume_dial_failed: Reaction::new(Fate::Keep, Close::Frame(1000), Wait::Backoff),
            closed: Reaction::new(Fate::Keep, Close::Frame(1000), Wait::Backoff),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(1000), Wait::Backoff),
            resumable: Reaction::new(Fate::Keep, Close::Leave, Wait::Fixed(5_000)),
            invalid: Reaction::new(Fate::Drop, Close::Leave, Wait::Fixed(5_000)),
            zombie: Reaction::new(Fate::Keep, Close::Frame(1000), Wait::Backoff),
            timeout: Reaction::new(Fate::Keep, Close::Drop, Wait::Backoff),
        },
        bugs: Bugs {
            reconnect_twice: true,
            leaves_old_socket_open: true,
            resume_seq_from_new_socket: true,
        },
        ..Self::CARBON_OLD
    };
}
