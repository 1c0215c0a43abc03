//! The responder task: answers the run loop's identify requests from Redis
//! (one script per request, each bounded by the call timeout), or from
//! the process's local share while Redis is away, and goes back to Redis
//! when a check says it is back. The fleet's outage probe requests are
//! answered the same way: from the bot's probe key in Redis, or, while
//! Redis is away, with a grant, so the fleet probes on its own schedule as
//! a process that shares nothing would.
//!
//! Requests are answered one at a time, in the order the fleet raised
//! them, so a shard's settle always follows its grant. Two rules hold
//! whatever the store does:
//! - in this process, two grants of one bucket are always a window apart
//!   (checked here before the store is asked, and by the local share);
//! - an answer that tells a shard to wait is cut short, while the store is
//!   away, at the next check, so that no shard sleeps through its return
//!   on the local share's say-so.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reconnect_policy::{
    FallbackBuckets, IDENTIFY_WINDOW_MS, IdentifyAnswer, IdentifyLimiter, IdentifyRequest,
    ProbeAnswer, ProbeCoordinator, ProbeRequest, SESSION_START_PERIOD_MS, SessionStartLimit,
    StoreFallbackConfig, Timestamp,
};
use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Handle;
use tracing::{debug, info, warn};

use super::RedisIdentify;
use super::scripts::{Keys, PROBE_TTL_MS, Scripts};
use crate::clock::Clock;
use crate::identify_store::{RemoteIdentify, ResponderEnd, StoreAnswer, StoreRequest, StoreStatus};

/// The spacing of one bucket's grants: the gateway's window plus the same
/// margin the policy's own limiter keeps (for the jitter of the way to
/// the gateway).
const WINDOW_MS: u64 = IDENTIFY_WINDOW_MS + 250;
/// Extra wait after an Identify that ended without READY (as the policy's
/// limiter).
const UNSETTLED_MARGIN_MS: u64 = 2_000;
/// How soon a shard asks again while another's Identify is out.
const IN_FLIGHT_POLL_MS: u64 = 250;
/// How long an unused start slot counts against the budget.
const RESERVATION_TTL_MS: u64 = 60_000;

/// What the run loop needs to start a responder.
pub(crate) struct Setup {
    /// The clock the fleet's timestamps are on.
    pub(crate) clock: Clock,
    /// The budget and `max_concurrency` from `GET /gateway/bot`, read at
    /// the clock's start.
    pub(crate) limit: SessionStartLimit,
    /// Shards this process runs.
    pub(crate) shards: usize,
    /// The bot's shard count.
    pub(crate) total: u32,
    /// For each bucket, whether this process owns it while the store is
    /// away (`reconnect_policy::StoreFallback::owner_shard` runs here):
    /// one owner per bucket across the bot, so processes in a fallback at
    /// once never identify in the same bucket.
    pub(crate) owned_buckets: Vec<bool>,
}

/// Starts the responder of `store` on `runtime`; returns the run loop's end.
pub(crate) fn spawn(store: RedisIdentify, runtime: &Handle, setup: &Setup) -> RemoteIdentify {
    let (remote, end) = RemoteIdentify::pair(store.share_probe);
    let responder = Responder::new(store, end, setup);
    runtime.spawn(responder.run());
    remote
}

/// Whether requests go to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Store,
    /// Answering locally; Redis is checked again at this time.
    Fallback {
        next_check: Timestamp,
    },
}

struct Responder {
    store: RedisIdentify,
    connection: Option<ConnectionManager>,
    scripts: Scripts,
    keys: Keys,
    end: ResponderEnd,
    clock: Clock,
    limit: SessionStartLimit,
    buckets: u32,
    /// Makes this process's grants its own in the store.
    nonce: u64,
    mode: Mode,
    /// The local share, used only while the store is away.
    local: IdentifyLimiter,
    /// Each bucket's last grant in this process, whoever gave it.
    last_grant: Vec<Option<Timestamp>>,
    /// Each bucket's last grant by the local share since the last fallback.
    local_last: Vec<Option<Timestamp>>,
    /// Session starts the local share granted since the last fallback.
    debt: u64,
    /// Shards whose last grant came from the store (their settle goes
    /// there).
    store_granted: HashSet<u32>,
    /// The server's clock less this process's, as last estimated.
    offset: Option<i64>,
    /// The buckets this process may grant in while the store is away.
    owned_buckets: Vec<bool>,
    /// When the current fallback began: the store may have granted in any
    /// bucket just before, so the local share grants a window later.
    fallback_began: Timestamp,
    /// Shards whose Acquire got no answer: the store may have granted it
    /// and the answer been lost, so the return from the fallback gives
    /// such grants back.
    lost_grants: Vec<u32>,
    /// Whether the store has answered this process before: if it then
    /// finds the bot's budget gone, the store lost its data (a restart)
    /// and holds its grants.
    answered_before: bool,
    /// The store's return hold: how long it grants nothing after a process
    /// reconciles a fallback or finds the store's data lost.
    return_hold_ms: u64,
}

impl Responder {
    fn new(store: RedisIdentify, end: ResponderEnd, setup: &Setup) -> Self {
        let limit = setup.limit;
        let buckets = u32::from(limit.max_concurrency.max(1));
        let share = store.local_share.unwrap_or_else(|| {
            let part = u64::from(limit.remaining.min(limit.total))
                .saturating_mul(u64::try_from(setup.shards).unwrap_or(u64::MAX))
                / u64::from(setup.total.max(1));
            u32::try_from(part).unwrap_or(u32::MAX)
        });
        let now = setup.clock.now();
        let local = IdentifyLimiter::new(
            SessionStartLimit {
                total: share,
                remaining: share,
                reset_after_ms: limit.reset_after_ms,
                max_concurrency: limit.max_concurrency,
            },
            now,
        )
        .with_window_ms(WINDOW_MS);
        end.status
            .local_share_left
            .store(u64::from(share), Ordering::Relaxed);
        let scripts = Scripts::new();
        let keys = Keys::new(store.bot_id);
        let nonce = {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(std::process::id())
        };
        Self {
            connection: None,
            scripts,
            keys,
            end,
            clock: setup.clock,
            limit,
            buckets,
            nonce,
            mode: Mode::Store,
            local,
            last_grant: vec![None; buckets as usize],
            local_last: vec![None; buckets as usize],
            debt: 0,
            store_granted: HashSet::new(),
            offset: None,
            lost_grants: Vec::new(),
            owned_buckets: setup.owned_buckets.clone(),
            fallback_began: now,
            answered_before: false,
            return_hold_ms: return_hold_ms(&store, share),
            store,
        }
    }

    async fn run(mut self) {
        info!(
            store = %self.store.url_shown,
            bot_id = self.store.bot_id,
            buckets = self.buckets,
            local_share = self.local.remaining(),
            "identify buckets and session starts shared through Redis"
        );
        loop {
            let check = match self.mode {
                Mode::Store => None,
                Mode::Fallback { next_check } => Some(self.clock.instant_at(next_check)),
            };
            tokio::select! {
                request = self.end.requests.recv() => match request {
                    Some(StoreRequest::Identify(shard, request)) => self.answer(shard, request).await,
                    Some(StoreRequest::Probe(request)) => self.probe(request).await,
                    // The run loop has ended.
                    None => return,
                },
                () = sleep_until(check), if check.is_some() => self.check().await,
            }
        }
    }

    fn status(&self) -> &StoreStatus {
        &self.end.status
    }

    fn bucket_of(&self, shard: u32) -> usize {
        (shard % self.buckets) as usize
    }

    fn owner(&self, shard: u32) -> String {
        format!("{:016x}:{shard}", self.nonce)
    }

    fn send(&self, shard: u32, answer: IdentifyAnswer) {
        // The run loop stopping first is fine.
        let _ = self.end.answers.send(StoreAnswer::Identify(shard, answer));
    }

    fn send_probe(&self, answer: ProbeAnswer) {
        let _ = self.end.answers.send(StoreAnswer::Probe(answer));
    }

    /// Answers the fleet's probe request from the store, or, while it is
    /// away, lets the fleet probe on its own schedule.
    async fn probe(&mut self, request: ProbeRequest) {
        if self.mode == Mode::Store {
            match self.ask_probe(request).await {
                Ok(answer) => {
                    if let Some(answer) = answer {
                        self.send_probe(answer);
                    }
                    return;
                }
                Err(error) => self.fall_back(&error),
            }
        }
        if let ProbeRequest::Acquire { .. } = request {
            StoreStatus::bump(&self.status().probe_local_grants);
            self.send_probe(ProbeAnswer::Granted);
        }
    }

    /// Runs the probe script; `Ok(None)` for a report, which has no answer.
    async fn ask_probe(
        &mut self,
        request: ProbeRequest,
    ) -> Result<Option<ProbeAnswer>, StoreError> {
        let now = self.clock.now();
        let (op, next_in, age) = match request {
            ProbeRequest::Acquire { next_at, since } => (
                "acquire",
                next_at.saturating_since(now),
                now.saturating_since(since),
            ),
            ProbeRequest::Answered => ("answered", 0, 0),
            ProbeRequest::Failed => ("failed", 0, 0),
            // Nothing for the store to keep: the grant ends on its own.
            ProbeRequest::Over => return Ok(None),
        };
        let mut connection = self.connection()?;
        let mut call = self.scripts.probe.prepare_invoke();
        call.key(self.keys.probe())
            .arg(op)
            .arg(format!("{:016x}", self.nonce))
            .arg(next_in)
            .arg(age)
            .arg(ProbeCoordinator::MIN_GRANT_GAP_MS)
            .arg(ProbeCoordinator::MAX_GRANT_MS)
            .arg(ProbeCoordinator::POLL_MS)
            .arg(PROBE_TTL_MS);
        let (kind, ms, server_now): (i64, i64, i64) =
            timed(self.store.call_timeout, call.invoke_async(&mut connection)).await?;
        self.learn_offset(self.clock.now(), server_now);
        StoreStatus::bump(&self.status().store_answers);
        let status = self.status();
        let answer = match kind {
            0 => {
                StoreStatus::bump(&status.probe_grants);
                debug!("outage probe granted by the store: this process probes for the bot");
                Some(ProbeAnswer::Granted)
            }
            1 => {
                StoreStatus::bump(&status.probe_not_yet);
                Some(ProbeAnswer::NotYet {
                    retry_at: self.in_ms(ms),
                })
            }
            2 => {
                StoreStatus::bump(&status.probe_gateway_back);
                info!("another process's outage probe was answered: ramping without probing");
                Some(ProbeAnswer::GatewayBack)
            }
            _ => None,
        };
        Ok(answer)
    }

    async fn answer(&mut self, shard: u32, request: IdentifyRequest) {
        let bucket = self.bucket_of(shard);
        if request == IdentifyRequest::Acquire {
            let now = self.clock.now();
            if let Some(last) = self.last_grant[bucket] {
                let free_at = last.saturating_add(WINDOW_MS);
                if now < free_at {
                    self.send(shard, IdentifyAnswer::RetryAt(free_at));
                    return;
                }
            }
        }
        if self.mode == Mode::Store {
            match self.ask_store(shard, request).await {
                Ok(Some(answer)) => {
                    self.send(shard, answer);
                    return;
                }
                Ok(None) => return,
                Err(error) => self.fall_back(&error),
            }
        }
        self.answer_locally(shard, request);
    }

    /// Asks the store; `Ok(None)` for a settle, which has no answer.
    async fn ask_store(
        &mut self,
        shard: u32,
        request: IdentifyRequest,
    ) -> Result<Option<IdentifyAnswer>, StoreError> {
        let bucket = self.keys.bucket(shard % self.buckets);
        let owner = self.owner(shard);
        let (total, remaining, reset_in) = self.budget_args();
        let answer = match request {
            IdentifyRequest::ReserveStart => {
                let mut connection = self.connection()?;
                let mut call = self.scripts.reserve.prepare_invoke();
                call.key(&bucket)
                    .key(self.keys.budget())
                    .key(self.keys.reservations())
                    .arg(&owner)
                    .arg(WINDOW_MS)
                    .arg(total)
                    .arg(remaining)
                    .arg(reset_in)
                    .arg(SESSION_START_PERIOD_MS)
                    .arg(RESERVATION_TTL_MS)
                    .arg(u8::from(self.answered_before))
                    .arg(self.return_hold_ms);
                let in_ms: i64 =
                    timed(self.store.call_timeout, call.invoke_async(&mut connection)).await?;
                Some(IdentifyAnswer::StartAt(self.in_ms(in_ms)))
            }
            IdentifyRequest::Acquire => {
                let mut connection = self.connection()?;
                let mut call = self.scripts.acquire.prepare_invoke();
                call.key(&bucket)
                    .key(self.keys.budget())
                    .key(self.keys.reservations())
                    .arg(&owner)
                    .arg(WINDOW_MS)
                    .arg(self.lease_ms())
                    .arg(total)
                    .arg(remaining)
                    .arg(reset_in)
                    .arg(SESSION_START_PERIOD_MS)
                    .arg(IN_FLIGHT_POLL_MS)
                    .arg(self.deadline())
                    .arg(u8::from(self.answered_before))
                    .arg(self.return_hold_ms);
                let reply =
                    timed(self.store.call_timeout, call.invoke_async(&mut connection)).await;
                let (granted, value, server_now): (i64, i64, i64) = match reply {
                    Ok(reply) => reply,
                    Err(error) => {
                        // It may still run, or have run with its answer
                        // lost: the return from the fallback settles it.
                        self.lost_grants.push(shard);
                        return Err(error);
                    }
                };
                self.learn_offset(self.clock.now(), server_now);
                if granted == 2 {
                    // Ran after we had stopped waiting: nothing was taken.
                    Some(IdentifyAnswer::RetryAt(self.in_ms(0)))
                } else if granted == 3 {
                    StoreStatus::bump(&self.status().store_held);
                    debug!(
                        shard,
                        wait_ms = value,
                        "identify held by the store's return hold"
                    );
                    Some(IdentifyAnswer::RetryAt(self.in_ms(value)))
                } else if granted == 1 {
                    let now = self.clock.now();
                    let bucket = self.bucket_of(shard);
                    self.last_grant[bucket] = Some(now);
                    self.store_granted.insert(shard);
                    StoreStatus::bump(&self.status().store_grants);
                    debug!(shard, left = value, "identify granted by the store");
                    Some(IdentifyAnswer::Granted)
                } else {
                    Some(IdentifyAnswer::RetryAt(self.in_ms(value)))
                }
            }
            IdentifyRequest::Settle { ready } => {
                if !self.store_granted.remove(&shard) {
                    self.local_settle(shard, ready);
                    return Ok(None);
                }
                let wait = if ready {
                    IDENTIFY_WINDOW_MS
                } else {
                    IDENTIFY_WINDOW_MS + UNSETTLED_MARGIN_MS
                };
                let mut connection = self.connection()?;
                let mut call = self.scripts.settle.prepare_invoke();
                call.key(&bucket).arg(&owner).arg(wait);
                let _settled: i64 =
                    timed(self.store.call_timeout, call.invoke_async(&mut connection)).await?;
                None
            }
        };
        StoreStatus::bump(&self.status().store_answers);
        self.answered_before = true;
        Ok(answer)
    }

    /// Answers from the local share; waits are cut at the next check of
    /// the store.
    fn answer_locally(&mut self, shard: u32, request: IdentifyRequest) {
        let now = self.clock.now();
        if let IdentifyRequest::Settle { ready } = request {
            // A grant of the store's that cannot be settled there now
            // keeps its bucket until its lease runs out.
            if !self.store_granted.remove(&shard) {
                self.local_settle(shard, ready);
            }
            return;
        }
        let next_check = match self.mode {
            Mode::Fallback { next_check } => next_check,
            Mode::Store => now,
        };
        // Only the bucket's owner grants while the store is away, and only
        // a window after the fallback began; the others wait for the store.
        let bucket = self.bucket_of(shard);
        let opens_at = self.fallback_began.saturating_add(WINDOW_MS);
        let owned = self.owned_buckets.get(bucket).copied().unwrap_or(false);
        if !owned || now < opens_at {
            let at = if owned {
                opens_at.min(next_check)
            } else {
                next_check
            }
            .max(now);
            let answer = match request {
                IdentifyRequest::ReserveStart => IdentifyAnswer::StartAt(at),
                _ => IdentifyAnswer::RetryAt(at.max(now.saturating_add(1))),
            };
            self.send(shard, answer);
            return;
        }
        let Some(answer) = self.local.answer(now, shard, request) else {
            return;
        };
        let answer = match answer {
            IdentifyAnswer::Granted => {
                self.last_grant[bucket] = Some(now);
                self.local_last[bucket] = Some(now);
                self.debt = self.debt.saturating_add(1);
                let status = self.status();
                StoreStatus::bump(&status.local_grants);
                status
                    .local_share_left
                    .store(u64::from(self.local.remaining()), Ordering::Relaxed);
                IdentifyAnswer::Granted
            }
            IdentifyAnswer::RetryAt(at) => IdentifyAnswer::RetryAt(at.min(next_check).max(now)),
            IdentifyAnswer::StartAt(at) => IdentifyAnswer::StartAt(at.min(next_check).max(now)),
        };
        self.send(shard, answer);
    }

    fn local_settle(&mut self, shard: u32, ready: bool) {
        let now = self.clock.now();
        self.local.settle(now, shard, ready);
    }

    fn fall_back(&mut self, error: &StoreError) {
        StoreStatus::bump(&self.status().store_failures);
        let next_check = self
            .clock
            .now()
            .saturating_add(duration_ms(self.store.retry_every));
        if self.mode == Mode::Store {
            let status = self.status();
            status.in_fallback.store(true, Ordering::Relaxed);
            StoreStatus::bump(&status.fallbacks);
            warn!(
                store = %self.store.url_shown,
                %error,
                local_share_left = self.local.remaining(),
                "the identify store is unreachable or slow: answering from this process's local share (only in the buckets this process owns, one Identify per window, a window after the fallback began; outage probes on this process's own schedule) until it is back"
            );
            self.debt = 0;
            self.local_last.iter_mut().for_each(|last| *last = None);
            self.fallback_began = self.clock.now();
        }
        self.mode = Mode::Fallback { next_check };
    }

    /// Checks whether the store is back; if so, hands it what the local
    /// share did meanwhile and goes back to it.
    async fn check(&mut self) {
        let now = self.clock.now();
        let mut connection = match self.connection() {
            Ok(connection) => connection,
            Err(error) => {
                debug!(%error, "the identify store is still away");
                self.retry_later();
                return;
            }
        };
        let mut call = self.scripts.reconcile.prepare_invoke();
        // The budget as this process knows it, in case the store lost
        // it (a restart without persistence): this process's own grants
        // since the debt are not in `remaining` yet.
        let (total, remaining, reset_in) = self.budget_args();
        let remaining = u64::from(remaining).saturating_add(self.debt);
        call.key(self.keys.budget())
            .arg(WINDOW_MS)
            .arg(self.debt)
            .arg(total)
            .arg(remaining)
            .arg(reset_in)
            .arg(SESSION_START_PERIOD_MS);
        let used: Vec<(u32, Timestamp)> = self
            .local_last
            .iter()
            .enumerate()
            .filter_map(|(bucket, last)| Some((u32::try_from(bucket).ok()?, (*last)?)))
            .collect();
        call.arg(used.len());
        for (bucket, last) in &used {
            call.key(self.keys.bucket(*bucket))
                .arg(now.saturating_since(*last));
        }
        for &shard in &self.lost_grants {
            call.key(self.keys.bucket(shard % self.buckets))
                .arg(self.owner(shard));
        }
        call.arg(self.return_hold_ms);
        let result: Result<(i64, i64), StoreError> =
            timed(self.store.call_timeout, call.invoke_async(&mut connection)).await;
        match result {
            Ok((_, server_now)) => {
                self.learn_offset(self.clock.now(), server_now);
                self.answered_before = true;
                self.lost_grants.clear();
                let status = self.status();
                status.in_fallback.store(false, Ordering::Relaxed);
                StoreStatus::bump(&status.recoveries);
                info!(
                    store = %self.store.url_shown,
                    local_grants = self.debt,
                    return_hold_ms = self.return_hold_ms,
                    "the identify store is back: session starts granted meanwhile charged to the shared budget; it grants nothing for the return hold"
                );
                self.debt = 0;
                self.local_last.iter_mut().for_each(|last| *last = None);
                self.mode = Mode::Store;
            }
            Err(error) => {
                debug!(%error, "the identify store is still away");
                self.retry_later();
            }
        }
    }

    fn retry_later(&mut self) {
        StoreStatus::bump(&self.status().store_failures);
        self.mode = Mode::Fallback {
            next_check: self
                .clock
                .now()
                .saturating_add(duration_ms(self.store.retry_every)),
        };
    }

    /// The connection, made on first use (lazily: a Redis down at start is
    /// a fallback, not an error).
    fn connection(&mut self) -> Result<ConnectionManager, StoreError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let timeout = Some(self.store.call_timeout);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(1)
            .set_max_delay(self.store.retry_every);
        let connection = ConnectionManager::new_lazy_with_config(self.store.client.clone(), config)
            .map_err(StoreError::from)?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    /// The budget as this process knows it, for a store that has none
    /// (yet, or any more): total, what `GET /gateway/bot` said remained
    /// less every start granted to this process since, ms until the reset
    /// (from now).
    fn budget_args(&self) -> (u32, u32, u64) {
        let elapsed = self.clock.now().as_millis();
        let status = self.status();
        let granted = status
            .store_grants
            .load(Ordering::Relaxed)
            .saturating_add(status.local_grants.load(Ordering::Relaxed));
        let granted = u32::try_from(granted).unwrap_or(u32::MAX);
        (
            self.limit.total,
            self.limit
                .remaining
                .min(self.limit.total)
                .saturating_sub(granted),
            self.limit.reset_after_ms.saturating_sub(elapsed),
        )
    }

    /// Learns how far the server's clock is ahead of this process's from
    /// a reply `received` here that the server wrote at `server_now`. The
    /// server read its clock before the reply arrived, so the estimate is
    /// never above the truth: deadlines built on it come early, never
    /// late.
    fn learn_offset(&mut self, received: Timestamp, server_now: i64) {
        let received = i64::try_from(received.as_millis()).unwrap_or(i64::MAX);
        self.offset = Some(server_now.saturating_sub(received));
    }

    /// The server time after which an Acquire sent now must grant nothing
    /// (this process will have stopped waiting for it); 0 until the
    /// server's clock is known.
    fn deadline(&self) -> i64 {
        let Some(offset) = self.offset else {
            return 0;
        };
        let now = i64::try_from(self.clock.now().as_millis()).unwrap_or(i64::MAX);
        let timeout = i64::try_from(duration_ms(self.store.call_timeout)).unwrap_or(i64::MAX);
        now.saturating_add(timeout).saturating_add(offset).max(1)
    }

    fn lease_ms(&self) -> u64 {
        duration_ms(self.store.lease)
    }

    /// The local timestamp `ms` from now (negative counts as 0).
    fn in_ms(&self, ms: i64) -> Timestamp {
        let ms = u64::try_from(ms).unwrap_or(0);
        self.clock.now().saturating_add(ms)
    }
}

/// Why a call to the store gave no answer.
#[derive(Debug)]
enum StoreError {
    /// Redis answered with an error, or the connection failed.
    Redis { category: String, kind: String },
    /// No answer within the call timeout.
    Timeout(Duration),
}

impl From<RedisError> for StoreError {
    fn from(error: RedisError) -> Self {
        // The error's own text may quote the server; its category and kind
        // say enough and hold no secret.
        Self::Redis {
            category: error.category().to_owned(),
            kind: format!("{:?}", error.kind()),
        }
    }
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Redis { category, kind } => write!(f, "{category} ({kind})"),
            Self::Timeout(after) => write!(f, "no answer within {} ms", after.as_millis()),
        }
    }
}

/// Runs one call to the store within `limit`.
async fn timed<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(StoreError::from),
        Err(_) => Err(StoreError::Timeout(limit)),
    }
}

/// The store's return hold for `store`'s settings, by the policy's rule
/// (`StoreFallbackConfig::return_hold_ms`, the one the simulator's store
/// follows): a call timeout, a check period, a round trip (at most a call
/// timeout: a later answer is a failure) and a window.
fn return_hold_ms(store: &RedisIdentify, local_share: u32) -> u64 {
    let call_timeout_ms = duration_ms(store.call_timeout);
    StoreFallbackConfig {
        call_timeout_ms,
        check_every_ms: duration_ms(store.retry_every),
        local_share,
        buckets: FallbackBuckets::Owned,
    }
    .return_hold_ms(call_timeout_ms)
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
