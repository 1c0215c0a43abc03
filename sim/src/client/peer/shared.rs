//! Identify and start pacing shared by every shard of one bot: the queues
//! of [`Pacing`] and the wake-ups they owe.

use super::*;

/// A place in one of a bot's shared queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Waiter {
    ticket: Ticket,
    shard: u32,
    /// Priority class, then order within it.
    key: (u32, u64),
    arrived: u64,
    /// The extra wait it drew for itself ([`Pacing::Throttle`]).
    jitter_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Lane {
    /// Waiting, in order.
    waiting: Vec<Waiter>,
    /// [`Pacing::Throttle`]: the head, sleeping until its grant time.
    head: Option<(Waiter, u64)>,
    /// [`Pacing::StartQueue`], [`Pacing::Worker`]: who holds the lane.
    holder: Option<Ticket>,
    /// When the lane may next grant (throttle: `resetsAt`; serial: the
    /// cool-down after the last release).
    free_at: u64,
    /// When the last grant was released.
    last_release: u64,
    /// Grants not yet taken by their shard.
    granted: Vec<Ticket>,
    /// [`Pacing::StartQueue`] with `first_starts_batched`: the rest of the
    /// batch being started, granted one after another with no wait.
    batch: Vec<Waiter>,
}

impl Lane {
    /// [`Pacing::StartQueue`] with `first_starts_batched`: when the first
    /// starts waiting at the head of the lane may go as a batch. The queuer
    /// pops a batch once every bucket holds a shard, or once no start
    /// arrived for `window_ms`, and then waits for `free_at` (serenity
    /// `next`, `shard_queuer.rs:104-121`, `:146-151`, `:189`).
    fn batch_ready_at(&self, buckets: usize, window_ms: u64) -> u64 {
        let mut seen = vec![false; buckets.max(1)];
        let mut head = u64::MAX;
        let mut latest = 0;
        for w in self.waiting.iter().filter(|w| w.key.0 == 0) {
            if let Some(b) = seen.get_mut(w.shard as usize % buckets.max(1)) {
                *b = true;
            }
            head = head.min(w.arrived);
            latest = latest.max(w.arrived);
        }
        let filled = if seen.iter().all(|b| *b) {
            head
        } else {
            latest.saturating_add(window_ms)
        };
        self.free_at.max(filled)
    }
}

/// Pacing state shared by every shard of one bot: the queues of
/// [`Pacing`], and the wake-ups they owe to shards other than the caller.
///
/// The engine owns it, hands it to each call through [`Cx`], and after each
/// call schedules the wake-ups [`PeerShared::take_wakes`] returns. Every
/// container is a `Vec`, processed in order, so runs stay deterministic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerShared {
    max_concurrency: u16,
    /// When the bot's process has started every shard.
    pub(super) started_ms: u64,
    starts_total: u32,
    starts_remaining: u32,
    starts_reset_at: u64,
    /// One per bucket ([`Pacing::Throttle`], [`Pacing::Ticked`]) or one
    /// for the bot (the serial pacings).
    lanes: Vec<Lane>,
    /// [`Pacing::Ticked`]: the next tick.
    next_tick: u64,
    next_ticket: u64,
    next_order: u64,
    wakes: Vec<(u32, u64)>,
    /// [`IdentifyHook::BucketWindow`]: when each bucket last identified.
    identified: Vec<Option<u64>>,
}

impl PeerShared {
    /// The shared state of a bot whose `GET /gateway/bot` reported this
    /// session start limit.
    #[must_use]
    pub const fn new(
        max_concurrency: u16,
        starts_total: u32,
        starts_remaining: u32,
        reset_after_ms: u64,
    ) -> Self {
        Self {
            max_concurrency,
            started_ms: 0,
            starts_total,
            starts_remaining,
            starts_reset_at: reset_after_ms,
            lanes: Vec::new(),
            next_tick: 0,
            next_ticket: 0,
            next_order: 0,
            wakes: Vec::new(),
            identified: Vec::new(),
        }
    }

    /// The same state for a bot whose shards all start within `ms` of the
    /// beginning of the run: a library that spawns the shards itself
    /// ([`Pacing::StartupBatches`]) begins once the process is up, not at
    /// each shard's own start time.
    #[must_use]
    pub const fn with_start_spread(mut self, ms: u64) -> Self {
        self.started_ms = ms;
        self
    }

    /// `max_concurrency` (at least 1).
    #[must_use]
    pub fn max_concurrency(&self) -> u16 {
        self.max_concurrency.max(1)
    }

    /// The wake-ups owed since the last call: `(shard, at)`.
    pub fn take_wakes(&mut self) -> Vec<(u32, u64)> {
        std::mem::take(&mut self.wakes)
    }

    /// Whether [`PeerShared::take_wakes`] has anything to return (most
    /// calls have nothing, and the caller then skips taking the list).
    #[must_use]
    pub fn has_wakes(&self) -> bool {
        !self.wakes.is_empty()
    }

    /// The bucket of `shard` (`shard % max_concurrency`).
    fn bucket(&self, shard: u32) -> usize {
        shard as usize % usize::from(self.max_concurrency())
    }

    /// When `shard`'s bucket may identify again under
    /// [`IdentifyHook::BucketWindow`] (0: at once).
    pub(super) fn bucket_free_at(&self, shard: u32, window_ms: u64) -> u64 {
        self.identified
            .get(self.bucket(shard))
            .copied()
            .flatten()
            .map_or(0, |at| at.saturating_add(window_ms))
    }

    /// `shard` identified at `now` ([`IdentifyHook::BucketWindow`]).
    pub(super) fn note_identify(&mut self, shard: u32, now: u64) {
        let bucket = self.bucket(shard);
        if self.identified.len() <= bucket {
            self.identified.resize(bucket.saturating_add(1), None);
        }
        self.identified[bucket] = Some(now);
    }

    fn lane_of(&mut self, pacing: Pacing, shard: u32) -> usize {
        let buckets = match pacing {
            Pacing::Throttle { .. }
            | Pacing::Ticked { .. }
            | Pacing::StartQueue {
                per_bucket: true, ..
            } => usize::from(self.max_concurrency()),
            _ => 1,
        };
        if self.lanes.len() < buckets {
            self.lanes.resize_with(buckets, Lane::default);
        }
        shard as usize % buckets
    }

    /// Joins the queue of `pacing` for `shard`. `class` orders waiters of
    /// the serial pacings (lower first); `by_shard` orders a class by shard
    /// number instead of arrival.
    pub(super) fn request(
        &mut self,
        pacing: Pacing,
        shard: u32,
        class: u32,
        by_shard: bool,
        jitter_ms: u64,
        now: u64,
    ) -> Ticket {
        let lane = self.lane_of(pacing, shard);
        self.next_ticket = self.next_ticket.saturating_add(1);
        self.next_order = self.next_order.saturating_add(1);
        let ticket = Ticket(self.next_ticket);
        let order = if by_shard {
            u64::from(shard)
        } else {
            self.next_order
        };
        if let Pacing::Ticked { .. } = pacing
            && self.lanes.iter().all(|l| l.waiting.is_empty())
        {
            self.next_tick = self.next_tick.max(now);
        }
        let waiter = Waiter {
            ticket,
            shard,
            key: (class, order),
            arrived: now,
            jitter_ms,
        };
        let waiting = &mut self.lanes[lane].waiting;
        let at = waiting.partition_point(|w| w.key <= waiter.key);
        waiting.insert(at, waiter);
        ticket
    }

    /// Grants whatever is due at `now`, and notes the wake-ups owed.
    pub(super) fn advance(&mut self, pacing: Pacing, now: u64) {
        match pacing {
            Pacing::None | Pacing::StartupBatches { .. } => {}
            Pacing::Throttle { window_ms, .. } => {
                for lane in &mut self.lanes {
                    loop {
                        if lane.head.is_none() {
                            if lane.waiting.is_empty() {
                                break;
                            }
                            let w = lane.waiting.remove(0);
                            let h = w.arrived.max(lane.last_release);
                            let grant = if lane.free_at > h {
                                lane.free_at.saturating_add(w.jitter_ms)
                            } else {
                                h
                            };
                            self.wakes.push((w.shard, grant));
                            lane.head = Some((w, grant));
                        }
                        let Some((w, grant)) = lane.head else { break };
                        if grant > now {
                            break;
                        }
                        lane.free_at = grant.saturating_add(window_ms);
                        lane.last_release = grant;
                        lane.granted.push(w.ticket);
                        lane.head = None;
                    }
                }
            }
            Pacing::Ticked { window_ms } => {
                while self.next_tick <= now && self.lanes.iter().any(|l| !l.waiting.is_empty()) {
                    let tick = self.next_tick;
                    self.next_tick = tick.saturating_add(window_ms);
                    if tick >= self.starts_reset_at && self.starts_remaining != self.starts_total {
                        self.starts_remaining = self.starts_total;
                    }
                    if self.starts_remaining == self.starts_total {
                        self.starts_reset_at = tick.saturating_add(DAY_MS);
                    }
                    for lane in &mut self.lanes {
                        if self.starts_remaining == 0 {
                            // Waits for the daily reset, then ticks again.
                            self.next_tick = self.next_tick.max(self.starts_reset_at);
                            self.starts_remaining = self.starts_total;
                            break;
                        }
                        if lane.waiting.is_empty() {
                            continue;
                        }
                        let w = lane.waiting.remove(0);
                        lane.granted.push(w.ticket);
                        self.wakes.push((w.shard, tick));
                        self.starts_remaining = self.starts_remaining.saturating_sub(1);
                    }
                }
            }
            Pacing::StartQueue { .. } | Pacing::Worker => {
                let batch_window = match pacing {
                    Pacing::StartQueue {
                        window_ms,
                        first_starts_batched: true,
                        ..
                    } => Some(window_ms),
                    _ => None,
                };
                let buckets = usize::from(self.max_concurrency());
                for lane in &mut self.lanes {
                    if lane.holder.is_some() {
                        continue;
                    }
                    if !lane.batch.is_empty() {
                        // The next of a batch: no wait.
                        let w = lane.batch.remove(0);
                        lane.holder = Some(w.ticket);
                        lane.granted.push(w.ticket);
                        self.wakes.push((w.shard, now));
                        continue;
                    }
                    if lane.waiting.is_empty() {
                        continue;
                    }
                    let w = lane.waiting[0];
                    if let Some(window_ms) = batch_window
                        && w.key.0 == 0
                    {
                        let ready = lane.batch_ready_at(buckets, window_ms);
                        if ready > now {
                            self.wakes.push((w.shard, ready));
                            continue;
                        }
                        // One first start per bucket, in queue order.
                        let mut taken = vec![false; buckets];
                        let mut i = 0;
                        while i < lane.waiting.len() {
                            let c = lane.waiting[i];
                            let b = c.shard as usize % buckets;
                            if c.key.0 == 0 && c.arrived <= now && !taken[b] {
                                taken[b] = true;
                                lane.batch.push(lane.waiting.remove(i));
                            } else {
                                i += 1;
                            }
                        }
                        let w = lane.batch.remove(0);
                        lane.holder = Some(w.ticket);
                        lane.granted.push(w.ticket);
                        self.wakes.push((w.shard, now));
                        continue;
                    }
                    let grant = lane.free_at.max(w.arrived);
                    if grant <= now {
                        lane.waiting.remove(0);
                        lane.holder = Some(w.ticket);
                        lane.granted.push(w.ticket);
                        self.wakes.push((w.shard, now));
                    } else {
                        self.wakes.push((w.shard, grant));
                    }
                }
            }
        }
    }

    /// Takes the grant of `ticket`, if it has one.
    pub(super) fn take_grant(&mut self, pacing: Pacing, shard: u32, ticket: Ticket) -> bool {
        let lane = self.lane_of(pacing, shard);
        let granted = &mut self.lanes[lane].granted;
        if let Some(i) = granted.iter().position(|t| *t == ticket) {
            granted.remove(i);
            true
        } else {
            false
        }
    }

    /// When a waiting `ticket` should look again (`None`: someone will wake
    /// it).
    pub(super) fn expected(
        &mut self,
        pacing: Pacing,
        shard: u32,
        ticket: Ticket,
        now: u64,
    ) -> Option<u64> {
        let lane_index = self.lane_of(pacing, shard);
        let lane = &self.lanes[lane_index];
        if lane.granted.contains(&ticket) {
            return Some(now);
        }
        match pacing {
            Pacing::Throttle { .. } => lane
                .head
                .filter(|(w, _)| w.ticket == ticket)
                .map(|(_, g)| g),
            Pacing::Ticked { .. } => lane
                .waiting
                .iter()
                .any(|w| w.ticket == ticket)
                .then_some(self.next_tick.max(now)),
            Pacing::StartQueue { .. } | Pacing::Worker => {
                if lane.batch.iter().any(|w| w.ticket == ticket) {
                    // Granted when the batch member before it lets go.
                    return None;
                }
                let w = lane.waiting.first().filter(|w| w.ticket == ticket)?;
                if let Pacing::StartQueue {
                    window_ms,
                    first_starts_batched: true,
                    ..
                } = pacing
                    && w.key.0 == 0
                {
                    let buckets = usize::from(self.max_concurrency());
                    return lane
                        .holder
                        .is_none()
                        .then(|| lane.batch_ready_at(buckets, window_ms).max(now));
                }
                lane.holder
                    .is_none()
                    .then(|| lane.free_at.max(w.arrived).max(now))
            }
            Pacing::None | Pacing::StartupBatches { .. } => None,
        }
    }

    /// Leaves the queue (a grant not yet taken is given up; a throttle
    /// head's sleep cannot be cut short, so its window is still used).
    pub(super) fn cancel(&mut self, pacing: Pacing, shard: u32, ticket: Ticket, now: u64) {
        let lane_index = self.lane_of(pacing, shard);
        let lane = &mut self.lanes[lane_index];
        lane.waiting.retain(|w| w.ticket != ticket);
        lane.batch.retain(|w| w.ticket != ticket);
        lane.granted.retain(|t| *t != ticket);
        if let Pacing::Throttle { window_ms, .. } = pacing
            && let Some((w, grant)) = lane.head
            && w.ticket == ticket
        {
            lane.free_at = grant.saturating_add(window_ms);
            lane.last_release = grant;
            lane.head = None;
        }
        if lane.holder == Some(ticket) {
            self.release(pacing, ticket, now);
        }
        self.advance(pacing, now);
    }

    /// The holder of a serial lane lets go of it at `now`.
    pub(super) fn release(&mut self, pacing: Pacing, ticket: Ticket, now: u64) {
        let cooldown = match pacing {
            Pacing::StartQueue { window_ms, .. } => window_ms,
            _ => 0,
        };
        let Some(lane) = self.lanes.iter_mut().find(|l| l.holder == Some(ticket)) else {
            return;
        };
        lane.holder = None;
        lane.granted.retain(|t| *t != ticket);
        // Inside a batch the next start follows at once; the wait comes
        // after the batch.
        lane.free_at = if lane.batch.is_empty() {
            now.saturating_add(cooldown)
        } else {
            now
        };
        lane.last_release = now;
        self.advance(pacing, now);
    }
}
