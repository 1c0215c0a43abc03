//! discord.py's `AutoShardedClient`, as shipped and with the
//! `before_identify_hook` its maintainer recommends.

use super::*;

impl PeerRules {
    /// discord.py's `AutoShardedClient`, the client it offers for a fleet
    /// of shards (ref §B4: `discord/backoff.py`, `discord/gateway.py`,
    /// `discord/shard.py`; read at `1add8a0b`).
    ///
    /// - **Backoff**: `ExponentialBackoff(base=1)`: each `delay()` raises
    ///   the exponent (1..10) and returns `uniform(0, 2^exp)` s, capped at
    ///   1024 s; the exponent starts again when more than 2048 s passed
    ///   since the previous call (ref §0, §B4). It is used only for network
    ///   errors: a failed or timed-out dial (ref §B4).
    /// - **After a network error the shard re-identifies** (*code*,
    ///   `shard.py`: `Shard._handle_disconnect` sleeps the backoff and
    ///   queues `EventType.reconnect`, and `Shard.reconnect()` builds a new
    ///   socket without the session). Ref §B4 describes the single-shard
    ///   `Client.connect`, which always resumes after the sleep.
    /// - **op 7, op 9, resumable closes, receive timeouts**
    ///   (`ReconnectWebSocket`) reconnect with no backoff (ref §B4).
    /// - **Close codes** (`_can_handle_close`, ref §B4): 4004, 4010–4014
    ///   stop; everything else resumes, including a server's 1000 and
    ///   4007/4009 (the Resume then fails and op 9 follows *(inferred,
    ///   ref §B4)*).
    /// - **op 7** → close 4000 → resume; **op 9** `d = true` → close 4000 →
    ///   resume; `d = false` → clear the session and the URL, close 1000,
    ///   identify (ref §0, §B4). A close waits for the server's answer for
    ///   up to 30 s: `HTTPClient.ws_connect` passes
    ///   `ClientWSTimeout(ws_close=30.0)` (*code*, `http.py:556-566`), and
    ///   aiohttp's `close()` reads until the close frame or that timeout.
    /// - **Zombie**: no message of any kind for `heartbeat_timeout` = 60 s
    ///   (ref §0, §B4; `state.py:203`): `poll_event`'s
    ///   `socket.receive(timeout=...)` times out (*code*,
    ///   `gateway.py:641`), and the handler first closes the socket with
    ///   4000 and waits for the answer (`await self.socket.close(code=4000)`,
    ///   `gateway.py:652-658`, up to 30 s as above), then raises
    ///   `ReconnectWebSocket`, whose `resume` defaults to true
    ///   (`gateway.py:73`, `:659-661`), so the shard queues a resume
    ///   (`shard.py:175-178`). The keep-alive thread's own check
    ///   (`gateway.py:159-161`, also a close with 4000) runs only at a
    ///   heartbeat tick after the same 60 s, so the receive timeout comes
    ///   first.
    /// - **Heartbeats**: the first immediately on Hello, no jitter (ref §0,
    ///   §B4).
    /// - **Identify pacing**: `before_identify_hook` sleeps 5 s before every
    ///   identify except the first shard's first (ref §0, §B4: "5 s sleep
    ///   before each non-initial identify"); `max_concurrency` is ignored.
    /// - **One connection at a time, bot-wide** ([`Pacing::Worker`]):
    ///   `launch_shards` launches shards one by one (ref §B4), retrying a
    ///   failed launch every 5 s forever (ref §B4); after that, every
    ///   reconnect is an item on the client's `PriorityQueue`, handled one
    ///   at a time by `AutoShardedClient.connect` (close < reconnect <
    ///   resume < identify), and a backoff sleep happens inside that
    ///   handling, holding up every other shard (*code*, `shard.py`).
    /// - **Timeouts**: `asyncio.wait_for` of 60 s around each reconnect's
    ///   dial, Hello and identify (180 s for a launch) (*code*,
    ///   `shard.py`). Resumes dial the stored resume URL (ref §B4).
    pub const DISCORD_PY: Self = Self {
        delay: Delay::FullJitter {
            base_ms: 1_000,
            max_exp: 10,
        },
        reset: Reset::AfterIdle(2_048_000),
        guard_ms: 0,
        give_up_after: None,
        codes: CloseCodes {
            fatal: DOCS_FATAL,
            reidentify: &[],
            zero_seq: &[],
        },
        on: Reactions {
            connect_failed: Reaction::new(Fate::Drop, Close::Leave, Wait::Backoff),
            resume_dial_failed: Reaction::new(Fate::Drop, Close::Leave, Wait::Backoff),
            closed: Reaction::new(Fate::Keep, Close::Leave, Wait::None),
            reconnect: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::None),
            resumable: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::None),
            invalid: Reaction::new(Fate::Drop, Close::Frame(1000), Wait::None),
            // gateway.py:641, :652-661: close 4000, wait, resume.
            zombie: Reaction::new(Fate::Keep, Close::Frame(4000), Wait::None),
            timeout: Reaction::new(Fate::Drop, Close::Drop, Wait::Backoff),
        },
        resume_dial_retries: None,
        drops_resume_url_on_dial_failure: false,
        // http.py:558: ClientWSTimeout(ws_close=30.0).
        close_wait_ms: 30_000,
        resume_on_same_socket: false,
        first_heartbeat: FirstHeartbeat::Immediate,
        heartbeat_jitter_ms: 0,
        zombie: Zombie::Silence { ms: 60_000 },
        pacing: Pacing::Worker,
        identify_hook: IdentifyHook::Sleep(5_000),
        on_open: OnOpen::Nothing,
        connect_timeout_ms: 60_000,
        hello_timeout_ms: Some(60_000),
        hello_timeout_when_resuming: true,
        ready_timeout_ms: None,
        start_failed: Some(Reaction::new(Fate::Keep, Close::Leave, Wait::Fixed(5_000))),
        start_timeout_ms: Some(180_000),
        uses_resume_url: true,
        backoff_in_queue: false,
        bugs: Bugs {
            reconnect_twice: false,
            leaves_old_socket_open: false,
            resume_seq_from_new_socket: false,
        },
    };

    /// [`PeerRules::DISCORD_PY`] with the configuration discord.py's
    /// maintainer recommends for a bot that can start several shards at
    /// once: "The library allows customising the default behaviour by
    /// overriding `before_identify_hook` to make use of `max_concurrency`"
    /// (Rapptz in discord.py#8430; the default does not, "because when you
    /// get to this scale you probably need to do out-of-process syncing").
    ///
    /// The override modelled ([`IdentifyHook::BucketWindow`]) is the
    /// simplest one that does what the comment asks: it reads
    /// `max_concurrency` from `AutoShardedClient.fetch_session_start_limits`
    /// (`shard.py:455-480`, `SessionStartLimits.max_concurrency` at
    /// `:329`), keeps the time of the last Identify of each bucket
    /// `shard_id % max_concurrency`, and sleeps until 5 s after it, not at
    /// all if the bucket has been idle that long. It replaces the default
    /// hook's unconditional 5 s sleep (`client.py:592-612`), which
    /// `DiscordWebSocket.identify` awaits just before it sends Identify
    /// (`gateway.py:490`). Everything else is discord.py as written: one
    /// connection at a time through `launch_shards` (`shard.py:495-513`)
    /// and then the `PriorityQueue` loop (`shard.py:519-540`), whose worker
    /// the hook's sleep still holds.
    pub const DISCORD_PY_HOOK: Self = Self {
        identify_hook: IdentifyHook::BucketWindow(5_000),
        ..Self::DISCORD_PY
    };
}
