//! serenity: the `current` branch (0.12) and the `next` branch.

use super::*;

impl PeerRules {
    /// serenity 0.12 (`current`, `f1253f95`; ref §B2: `src/gateway/shard.rs`,
    /// `src/gateway/bridge/{shard_runner,shard_queuer,shard_manager}.rs`).
    ///
    /// - **Backoff**: none (ref §0, §B2). Starts (connections that
    ///   identify) go through the `ShardQueuer`, which waits
    ///   `WAIT_BETWEEN_BOOTS_IN_SECONDS` = 5 s between any two starts,
    ///   bot-wide, ignoring `max_concurrency`, and pushes a failed start
    ///   back onto the queue, retried forever (ref §0, §B2) — at startup
    ///   too.
    /// - **Resume**: on a new connection to the shared gateway URL (never
    ///   the resume URL, ref §B2), without going through the queue; Resume
    ///   is sent as soon as the socket opens and Hello is ignored while
    ///   resuming (*code*, `Shard::resume`, `handle_event`).
    /// - **After an IO error** (a reset link), the runner resumes at once
    ///   (`shard_runner.rs:375-383`). If that dial fails it sleeps 1 s and
    ///   returns "unsuccessful" (`:384-389`), but `Shard::resume` has set the
    ///   stage to `Connecting` (`shard.rs:725-729` via `initialize`,
    ///   `:694-704`), which `is_connecting()` (`gateway/mod.rs:220-223`), so
    ///   the runner does not restart (`shard_runner.rs:179`). The dead
    ///   client then idles until the runner's heartbeat check fails
    ///   (`:108-111`): `do_heartbeat` waits one interval after the last
    ///   heartbeat sent, then fails on the missing ACK or on the send to the
    ///   dead socket (`shard.rs:510-545`), and the shard restarts through the
    ///   queue with no session ([`Wait::HeartbeatCheck`]). The model's
    ///   heartbeat tick is that check.
    /// - **Re-identify** = `request_restart` (`shard_runner.rs:446-460`):
    ///   the manager's `restart` asks the queuer to shut the shard down with
    ///   4000 and boots it again (`shard_manager.rs:234-241`), but the
    ///   shutdown message reaches a runner that is blocked in
    ///   `request_restart` and returns from `run()` right after it
    ///   (`shard_runner.rs:111`, `:136`, `:180`), so it is never read; the
    ///   socket is dropped with the runner, without a close frame
    ///   (`shard_queuer.rs:202-205`). The close-frame wait with no timeout
    ///   (`shard_runner.rs:234-248`) runs only for a shutdown or restart
    ///   that a live runner reads from its channel (`:273-276`), which the
    ///   library's own reconnects never send; it is not modelled. Nor is
    ///   the first restart's wait of up to 5 s for the shutdown to be
    ///   acknowledged (`shard_manager.rs:261-288`): `restart_shard` leaves
    ///   an acknowledgement behind (`:354-359`) that the next restart takes
    ///   at once, so the wait happens once per process.
    /// - **Close codes** (`handle_gateway_closed`, ref §B2): 4004, 4013,
    ///   4014 stop; 4006 and 4009 clear the session (re-identify); 4007
    ///   sets the sequence to 0 but keeps the session, so the next action
    ///   is a Resume with seq 0 *(inferred, ref §B2)*; everything else
    ///   (including 4003, 4010, 4011, unknown codes, no frame) resumes if
    ///   a session exists, else re-identifies (ref §B2; the restart loop
    ///   for 4010/4011 is *inferred*).
    /// - **op 7** → resume on a new connection; **op 9** `d = true` →
    ///   resume, `d = false` → re-identify; no 1–5 s wait (ref §0, §B2).
    ///   The replaced socket is dropped without a close frame (*code*: the
    ///   `WsClient` is replaced).
    /// - **Zombie**: the last heartbeat not ACKed when the interval elapses
    ///   → restart, a full re-identify (ref §0, §B2; `shard.rs:524-529`),
    ///   the socket dropped as above.
    /// - **Heartbeats**: not jittered; the first one interval after Identify
    ///   (ref §0, §B2), and after RESUMED (*code*).
    /// - **Timeouts**: no Hello within 15 s of a start → restart (ref §B2;
    ///   `shard.rs:511-514`); the dial itself has no timeout but the
    ///   operating system's, about 127 s *(inferred)*.
    pub const SERENITY: Self = Self {
        delay: Delay::Immediate,
        reset: Reset::Never,
        guard_ms: 0,
        give_up_after: None,
        codes: CloseCodes {
            fatal: &[4004, 4013, 4014],
            reidentify: &[4006, 4009],
            zero_seq: &[4007],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Keep, Close::Leave, Wait::None),
            // shard_runner.rs:384-389, :179, :108-111: 1 s, then idle until
            // the heartbeat check fails, then restart.
            resume_dial_failed: Reaction::new(
                Fate::Drop,
                Close::Leave,
                Wait::HeartbeatCheck { at_least_ms: 1_000 },
            ),
            closed: Reaction::new(Fate::Keep, Close::Leave, Wait::None),
            reconnect: Reaction::new(Fate::Keep, Close::Drop, Wait::None),
            resumable: Reaction::new(Fate::Keep, Close::Drop, Wait::None),
            // request_restart: the runner ends and drops its socket.
            invalid: Reaction::new(Fate::Drop, Close::Drop, Wait::None),
            zombie: Reaction::new(Fate::Drop, Close::Drop, Wait::None),
            timeout: Reaction::new(Fate::Drop, Close::Drop, Wait::None),
        },
        resume_dial_retries: None,
        drops_resume_url_on_dial_failure: false,
        close_wait_ms: 0,
        resume_on_same_socket: false,
        first_heartbeat: FirstHeartbeat::AfterIdentify,
        heartbeat_jitter_ms: 0,
        zombie: Zombie::AckMissed { misses: 1 },
        pacing: Pacing::StartQueue {
            window_ms: 5_000,
            per_bucket: false,
            until_ready: false,
            first_starts_batched: false,
        },
        identify_hook: IdentifyHook::None,
        on_open: OnOpen::Resume,
        connect_timeout_ms: 127_000,
        hello_timeout_ms: Some(15_000),
        hello_timeout_when_resuming: false,
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

    /// [`PeerRules::SERENITY`] as serenity's `next` branch has it
    /// (`5b6a1d43`, `src/gateway/sharding/`), the branch whose queue buckets
    /// starts by `max_concurrency` (serenity#2650, #2990). Its runner, shard
    /// and manager keep the rules above (`shard_runner.rs:104-116`,
    /// `:413-440`; `mod.rs:555-586`, `:771-785`); only the queue changes:
    ///
    /// - **First starts** are booted with `concurrent = true`
    ///   (`shard_manager.rs:171-178`) and pushed into a `ShardQueue` of
    ///   `max_concurrency` buckets, `shard_id % max_concurrency`
    ///   (`shard_queuer.rs:299-342`). When every bucket holds a shard (or
    ///   after 5 s with no message) the queuer pops one shard per bucket and
    ///   starts the batch: one `check_last_start` wait of 5 s since the last
    ///   start, then each shard's dial in turn, then `last_start`
    ///   (`shard_queuer.rs:109-121`, `:146-151`, `:183-195`). The model
    ///   forms a batch from whoever waits when the queue is free; the
    ///   upstream wait for full buckets only matters for the last, partial
    ///   batch, which it starts 5 s after the last message.
    /// - **Restarts** are booted with `concurrent = false`
    ///   (`shard_manager.rs:201-205`) and go straight to `checked_start`,
    ///   one at a time, 5 s after the last start, bot-wide, as on `current`
    ///   (`shard_queuer.rs:122-127`, `:173-180`): a fleet that lost its
    ///   sessions re-identifies no faster than with `current`. A start whose
    ///   dial fails goes back to the front of its bucket
    ///   (`shard_queuer.rs:197-206`), modelled as a new request.
    pub const SERENITY_NEXT: Self = Self {
        pacing: Pacing::StartQueue {
            window_ms: 5_000,
            per_bucket: false,
            until_ready: false,
            first_starts_batched: true,
        },
        ..Self::SERENITY
    };
}
