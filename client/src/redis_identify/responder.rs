//! The responder task: the driver of the process's
//! `reconnect_policy::StoreFallback` against Redis. The fallback holds
//! every rule (in this process two grants of a bucket a window apart; a
//! request left unanswered or failed sends the process to its local share,
//! which grants only in the buckets it owns, a window after the fallback
//! began, and parks the others' requests until the store is back; a check
//! every period hands the store what was done): this task only carries its
//! asks to Redis (one script each, bounded by the call timeout), its
//! answers to the run loop, and its checks to the `RECONCILE` script, and
//! says once in the logs when the process falls back and returns. The
//! simulator drives the same type against its model of the store.
//!
//! The fleet's outage probe requests are answered from the bot's probe
//! key in Redis, or, while Redis is away, with a grant, so the fleet probes
//! on its own schedule as a process that shares nothing would.
//!
//! Requests are carried out one at a time, in the order the fleet raised
//! them, so a shard's settle always follows its grant.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reconnect_policy::{
    FallbackBuckets, IDENTIFY_WINDOW_MS, IdentifyAnswer, IdentifyRequest, ProbeAnswer,
    ProbeCoordinator, ProbeRequest, Reconcile, SESSION_START_PERIOD_MS, STORE_WINDOW_MS,
    SessionStartLimit, StoreFallback, StoreFallbackConfig, StoreOutput, StoreRequestId, Timestamp,
};
use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Handle;
use tracing::{debug, info, warn};

use super::RedisIdentify;
use super::scripts::{Keys, PROBE_TTL_MS, Scripts};
use crate::clock::Clock;
use crate::identify_store::{RemoteIdentify, ResponderEnd, StoreAnswer, StoreRequest, StoreStatus};

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
    /// The shards this process runs.
    pub(crate) shards: Vec<u32>,
    /// The bot's shard count.
    pub(crate) total: u32,
}

/// Starts the responder of `store` on `runtime`; returns the run loop's end.
pub(crate) fn spawn(store: RedisIdentify, runtime: &Handle, setup: &Setup) -> RemoteIdentify {
    let (remote, end) = RemoteIdentify::pair(store.share_probe);
    let responder = Responder::new(store, end, setup);
    runtime.spawn(responder.run());
    remote
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
    /// The rules: the store, or the local share while it is away.
    fallback: StoreFallback,
    /// The server's clock less this process's, as last estimated.
    offset: Option<i64>,
    /// Whether the store has answered this process before: if it then
    /// finds the bot's budget gone, the store lost its data (a restart)
    /// and holds its grants.
    answered_before: bool,
    /// The store's return hold: how long it grants nothing after a process
    /// reconciles a fallback or finds the store's data lost.
    return_hold_ms: u64,
    /// Why the last call to the store failed, for the fallback's warning.
    last_error: Option<StoreError>,
}

impl Responder {
    fn new(store: RedisIdentify, end: ResponderEnd, setup: &Setup) -> Self {
        let limit = setup.limit;
        let buckets = u32::from(limit.max_concurrency.max(1));
        let here = u32::try_from(setup.shards.len()).unwrap_or(u32::MAX);
        let share = store
            .local_share
            .unwrap_or_else(|| StoreFallbackConfig::share_of(limit, here, setup.total));
        let config = fallback_config(&store, share);
        let fallback =
            StoreFallback::new(config, limit, &setup.shards, setup.total, setup.clock.now());
        end.status
            .local_share_left
            .store(u64::from(share), Ordering::Relaxed);
        let nonce = {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(std::process::id())
        };
        Self {
            connection: None,
            scripts: Scripts::new(),
            keys: Keys::new(store.bot_id),
            end,
            clock: setup.clock,
            limit,
            buckets,
            nonce,
            fallback,
            offset: None,
            answered_before: false,
            return_hold_ms: config.return_hold_ms(config.call_timeout_ms),
            last_error: None,
            store,
        }
    }

    async fn run(mut self) {
        info!(
            store = %self.store.url_shown,
            bot_id = self.store.bot_id,
            buckets = self.buckets,
            local_share = self.fallback.local_share_left(),
            "identify buckets and session starts shared through Redis"
        );
        loop {
            let wake = self
                .fallback
                .poll_timeout()
                .map(|at| self.clock.instant_at(at));
            tokio::select! {
                request = self.end.requests.recv() => match request {
                    Some(StoreRequest::Identify(shard, request)) => {
                        self.fallback.handle_request(self.clock.now(), shard, request);
                        self.carry_out().await;
                    }
                    Some(StoreRequest::Probe(request)) => self.probe(request).await,
                    // The run loop has ended.
                    None => return,
                },
                () = sleep_until(wake), if wake.is_some() => {
                    self.fallback.handle_timeout(self.clock.now());
                    self.carry_out().await;
                }
            }
        }
    }

    fn status(&self) -> &StoreStatus {
        &self.end.status
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

    /// Carries out everything the fallback asked for, until it has nothing
    /// more.
    async fn carry_out(&mut self) {
        while let Some(output) = self.fallback.poll_output() {
            match output {
                StoreOutput::Ask {
                    id,
                    shard,
                    request,
                    deadline,
                } => self.ask(id, shard, request, deadline).await,
                StoreOutput::Answer { shard, answer } => self.send(shard, answer),
                StoreOutput::Reconcile { id, reconcile } => self.reconcile(id, &reconcile).await,
                StoreOutput::FellBack { local_share_left } => {
                    let status = self.status();
                    status.in_fallback.store(true, Ordering::Relaxed);
                    StoreStatus::bump(&status.fallbacks);
                    let error = self
                        .last_error
                        .as_ref()
                        .map_or_else(|| "no answer".to_owned(), ToString::to_string);
                    warn!(
                        store = %self.store.url_shown,
                        %error,
                        local_share_left,
                        "the identify store is unreachable or slow: answering from this process's local share (only in the buckets this process owns, one Identify per window, a window after the fallback began; the other buckets wait for the store; outage probes on this process's own schedule) until it is back"
                    );
                }
                StoreOutput::Returned { local_grants } => {
                    let status = self.status();
                    status.in_fallback.store(false, Ordering::Relaxed);
                    StoreStatus::bump(&status.recoveries);
                    info!(
                        store = %self.store.url_shown,
                        local_grants,
                        return_hold_ms = self.return_hold_ms,
                        "the identify store is back: session starts granted meanwhile charged to the shared budget; it grants nothing for the return hold"
                    );
                }
            }
            let stats = *self.fallback.stats();
            let status = self.status();
            status
                .store_grants
                .store(stats.store_grants, Ordering::Relaxed);
            status
                .local_grants
                .store(stats.local_grants, Ordering::Relaxed);
            status.local_share_left.store(
                u64::from(self.fallback.local_share_left()),
                Ordering::Relaxed,
            );
        }
    }

    /// Carries one request to the store and its answer (or failure) back
    /// to the fallback.
    async fn ask(
        &mut self,
        id: StoreRequestId,
        shard: u32,
        request: IdentifyRequest,
        deadline: Timestamp,
    ) {
        match self.ask_store(shard, request, deadline).await {
            Ok(Some(answer)) => self.fallback.handle_answer(self.clock.now(), id, answer),
            Ok(None) => {}
            Err(error) => {
                debug!(shard, %error, "a call to the identify store failed");
                StoreStatus::bump(&self.status().store_failures);
                self.last_error = Some(error);
                self.fallback.handle_failure(self.clock.now(), id);
            }
        }
    }

    /// Answers the fleet's probe request from the store, or, while it is
    /// away, lets the fleet probe on its own schedule.
    async fn probe(&mut self, request: ProbeRequest) {
        if !self.fallback.in_fallback() {
            match self.ask_probe(request).await {
                Ok(answer) => {
                    if let Some(answer) = answer {
                        self.send_probe(answer);
                    }
                    return;
                }
                Err(error) => {
                    StoreStatus::bump(&self.status().store_failures);
                    self.last_error = Some(error);
                    self.fallback.handle_unreachable(self.clock.now());
                    self.carry_out().await;
                }
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

    /// Runs a request's script; `Ok(None)` for a settle, which has no
    /// answer. An Acquire must grant nothing after `deadline` (this
    /// process's clock).
    async fn ask_store(
        &mut self,
        shard: u32,
        request: IdentifyRequest,
        deadline: Timestamp,
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
                    .arg(STORE_WINDOW_MS)
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
                    .arg(STORE_WINDOW_MS)
                    .arg(self.lease_ms())
                    .arg(total)
                    .arg(remaining)
                    .arg(reset_in)
                    .arg(SESSION_START_PERIOD_MS)
                    .arg(IN_FLIGHT_POLL_MS)
                    .arg(self.server_time(deadline))
                    .arg(u8::from(self.answered_before))
                    .arg(self.return_hold_ms);
                let (granted, value, server_now): (i64, i64, i64) =
                    timed(self.store.call_timeout, call.invoke_async(&mut connection)).await?;
                self.learn_offset(self.clock.now(), server_now);
                match granted {
                    // Ran after we had stopped waiting: nothing was taken.
                    2 => Some(IdentifyAnswer::RetryAt(self.in_ms(0))),
                    3 => {
                        StoreStatus::bump(&self.status().store_held);
                        debug!(
                            shard,
                            wait_ms = value,
                            "identify held by the store's return hold"
                        );
                        Some(IdentifyAnswer::RetryAt(self.in_ms(value)))
                    }
                    1 => {
                        debug!(shard, left = value, "identify granted by the store");
                        Some(IdentifyAnswer::Granted)
                    }
                    _ => Some(IdentifyAnswer::RetryAt(self.in_ms(value))),
                }
            }
            IdentifyRequest::Settle { ready } => {
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

    /// Hands the store what the local share did during fallback
    /// `reconcile.fallback` (the `RECONCILE` script); its answer ends the
    /// fallback. No answer leaves the fallback's check to time out, and it
    /// checks again a period later. Settles the store could not be given
    /// are not sent: such a grant keeps its bucket until its lease ends.
    async fn reconcile(&mut self, _id: StoreRequestId, reconcile: &Reconcile) {
        let now = self.clock.now();
        let mut connection = match self.connection() {
            Ok(connection) => connection,
            Err(error) => {
                debug!(%error, "the identify store is still away");
                StoreStatus::bump(&self.status().store_failures);
                return;
            }
        };
        let mut call = self.scripts.reconcile.prepare_invoke();
        // The budget as this process knows it, in case the store lost
        // it (a restart without persistence): this process's own grants
        // since the debt are not in `remaining` yet.
        let (total, remaining, reset_in) = self.budget_args();
        let remaining = u64::from(remaining).saturating_add(reconcile.debt);
        call.key(self.keys.budget())
            .arg(STORE_WINDOW_MS)
            .arg(reconcile.debt)
            .arg(total)
            .arg(remaining)
            .arg(reset_in)
            .arg(SESSION_START_PERIOD_MS);
        call.arg(reconcile.used.len());
        for (bucket, last) in &reconcile.used {
            call.key(self.keys.bucket(*bucket))
                .arg(now.saturating_since(*last));
        }
        for &shard in &reconcile.lost {
            call.key(self.keys.bucket(shard % self.buckets))
                .arg(self.owner(shard));
        }
        call.arg(self.return_hold_ms)
            .arg(format!("{:016x}", self.nonce))
            .arg(reconcile.fallback);
        let result: Result<(i64, i64), StoreError> =
            timed(self.store.call_timeout, call.invoke_async(&mut connection)).await;
        match result {
            Ok((_, server_now)) => {
                self.learn_offset(self.clock.now(), server_now);
                self.answered_before = true;
                self.fallback
                    .handle_reconciled(self.clock.now(), reconcile.fallback);
            }
            Err(error) => {
                debug!(%error, "the identify store is still away");
                StoreStatus::bump(&self.status().store_failures);
            }
        }
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
        let stats = self.fallback.stats();
        let granted = stats.store_grants.saturating_add(stats.local_grants);
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

    /// `at` (this process's clock) on the server's clock, for an Acquire's
    /// deadline; 0 (no deadline) until the server's clock is known.
    fn server_time(&self, at: Timestamp) -> i64 {
        let Some(offset) = self.offset else {
            return 0;
        };
        let at = i64::try_from(at.as_millis()).unwrap_or(i64::MAX);
        at.saturating_add(offset).max(1)
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

/// The fallback's settings from `store`'s: its call timeout, a check of
/// the store every `retry_every`, the local share, only owned buckets.
fn fallback_config(store: &RedisIdentify, local_share: u32) -> StoreFallbackConfig {
    StoreFallbackConfig {
        call_timeout_ms: duration_ms(store.call_timeout),
        check_every_ms: duration_ms(store.retry_every),
        local_share,
        buckets: FallbackBuckets::Owned,
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

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
