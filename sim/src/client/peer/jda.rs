//! JDA (Java).

use super::*;

impl PeerRules {
    /// JDA (ref §B5: `src/main/java/net/dv8tion/jda/internal/requests/
    /// WebSocketClient.java`, `api/requests/CloseCode.java`,
    /// `api/utils/ConcurrentSessionController.java`; read at `5410b270`).
    ///
    /// - **Backoff** (`reconnect`): `reconnectTimeoutS` starts at 2, is set
    ///   to 0 when a reconnect starts with a session, and after each wait
    ///   becomes 2 if it was 0, else doubles, up to `maxReconnectDelay` =
    ///   900 s; no jitter; back to 2 on READY and RESUMED (ref §0, §B5;
    ///   #117). So a resume is tried at once, then 2, 4, 8 … s after failed
    ///   dials, which are the only thing that grows it (ref §0); each new
    ///   disconnect with a session starts the series again from 0
    ///   (`WebSocketClient.java:614-616`), even before RESUMED. A failed
    ///   dial also forgets the resume URL (*code*, `connect`). No give-up.
    /// - **Close codes** (`CloseCode.isReconnect`): 4004, 4010, 4011, 4013,
    ///   4014 stop; 4012 is missing from the enum and reconnects; everything
    ///   else, 1000, 1001 and 1006 included, resumes when a session exists,
    ///   even after 4007/4009 (the Resume then fails: *inferred*, ref §B5).
    /// - **Own close codes**: 4900 for op 7, op 9 `d = true` and zombies;
    ///   1000 (`INVALIDATE_SESSION`) for op 9 `d = false`, after which the
    ///   session is invalidated and the shard queued (ref §0, §B5). A close
    ///   waits up to 10 s for the answer (*code*, `prepareClose`).
    /// - **Identify pacing**: without a session the shard is queued in the
    ///   `ConcurrentSessionController` (`WebSocketClient.java:545-559`,
    ///   `:572-581`): one worker per `shard % concurrency`
    ///   (`ConcurrentSessionController.java:69-77`) runs a node (dial, then
    ///   wait for READY or for the node to be queued again) and then always
    ///   sleeps 5 s (`:116-129`; ref §0, §B5) — at startup too.
    /// - **The backoff is slept inside the worker**
    ///   ([`PeerRules::backoff_in_queue`]): a queued `ReconnectNode` runs
    ///   `reconnect(true)` on the bucket's worker thread
    ///   (`WebSocketClient.java:1392-1413`). Without a session that sleeps
    ///   `reconnectTimeoutS` (2 s after READY, doubled by each pass, up to
    ///   900 s) before the dial, and after a failed dial sleeps the next
    ///   value and dials again, all in the same loop
    ///   (`WebSocketClient.java:595-650`: `:614-616` resets it to 0 only
    ///   with a session, `:619-646` the loop, `:629` the sleep), so the
    ///   whole bucket waits while one shard backs off. A queued reconnect
    ///   therefore always counts a backoff. A failed *first* start is
    ///   different: `StartingNode.run` dials once (`:1357-1366`), the
    ///   worker catches the failure and appends the node to the back of the
    ///   queue (`ConcurrentSessionController.java:144-161`), with no
    ///   backoff. The identify rate-limit sleep of `handleReconnect`, whose
    ///   sign looks inverted, is left out (ref §B5, *inferred*: "already
    ///   sub-0" most of the time).
    /// - **Identify and Resume are sent as soon as the socket connects**,
    ///   before Hello (*code*, `onConnected`); Hello starts the heartbeats,
    ///   the first at once (`scheduleAtFixedRate(..., 0, ...)`, ref §B5).
    /// - **Zombie**: ref §B5 gives two rules, 2 missed ACKs → close 4900
    ///   "ZOMBIE CONNECTION", and a socket `SO_TIMEOUT` of interval + 10 s.
    ///   On a silent socket the read timeout fires first (51 s against the
    ///   third tick's 82 s with a 41.25 s interval), so that is the rule
    ///   modelled: the transport fails and the shard resumes *(inferred)*.
    /// - **Timeouts**: dial 10 s (`setSocketTimeout(10000)`); a 10 s read
    ///   timeout until Hello (*code*, `prepareClose` in `onConnected`).
    pub const JDA: Self = Self {
        delay: Delay::Doubling {
            first_ms: 2_000,
            cap_ms: 900_000,
        },
        // WebSocketClient.java:614-616, :901, :917.
        reset: Reset::OnSessionEstablishedOrResume,
        guard_ms: 0,
        give_up_after: None,
        codes: CloseCodes {
            fatal: &[4004, 4010, 4011, 4013, 4014],
            reidentify: &[],
            zero_seq: &[],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            resume_dial_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::Backoff),
            closed: Reaction::new(Fate::Keep, Close::Leave, Wait::None),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(4900), Wait::None),
            resumable: Reaction::new(Fate::Keep, Close::Frame(4900), Wait::None),
            invalid: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::Backoff),
            zombie: Reaction::new(Fate::Keep, Close::Drop, Wait::None),
            timeout: Reaction::new(Fate::Keep, Close::Drop, Wait::None),
        },
        resume_dial_retries: None,
        drops_resume_url_on_dial_failure: true,
        close_wait_ms: 10_000,
        resume_on_same_socket: false,
        first_heartbeat: FirstHeartbeat::Immediate,
        heartbeat_jitter_ms: 0,
        zombie: Zombie::ReadTimeout { extra_ms: 10_000 },
        // ConcurrentSessionController.java:69-77, :116-129.
        pacing: Pacing::StartQueue {
            window_ms: 5_000,
            per_bucket: true,
            until_ready: true,
            first_starts_batched: false,
        },
        identify_hook: IdentifyHook::None,
        on_open: OnOpen::Answer,
        connect_timeout_ms: 10_000,
        hello_timeout_ms: Some(10_000),
        hello_timeout_when_resuming: true,
        ready_timeout_ms: None,
        // ConcurrentSessionController.java:144-161: back of the queue.
        start_failed: Some(Reaction::new(Fate::Keep, Close::Leave, Wait::None)),
        start_timeout_ms: None,
        uses_resume_url: true,
        // WebSocketClient.java:595-650 runs on the worker (:1392-1413).
        backoff_in_queue: true,
        bugs: Bugs {
            reconnect_twice: false,
            leaves_old_socket_open: false,
            resume_seq_from_new_socket: false,
        },
    };
}
