//! The store's side of the identify limiter: one Lua script per operation,
//! each run atomically by Redis, each reading the time with `TIME` on the
//! server, so the clocks of the bot's machines never meet.
//!
//! Keys (all under `reconnect:{<bot id>}:`, the braces keep them in one
//! Redis Cluster slot):
//! - `bucket:<n>`, a hash per identify bucket: `last` (the server time of
//!   its last grant), `owner` and `out_at` (the grant whose outcome is not
//!   known yet), `not_before` (a window after that outcome), `booked`
//!   (where its next start slot is). It expires once none of these holds
//!   anything back, so a crashed process holds a bucket at most one window
//!   after its grant, or a lease after it, whichever is longer.
//! - `budget`, a hash: the session starts `remaining` and `reset_at`. The
//!   first process to touch it fills it from its own `GET /gateway/bot`;
//!   it refills to `total` every period and expires a period after the
//!   reset it names. Also `hold_until`, the end of the store's **return
//!   hold**: after a process reconciles a fallback, or when a process that
//!   had been answered before finds the budget gone (Redis restarted
//!   without its data), no Acquire is granted and no start slot booked
//!   before it (the length is `StoreFallbackConfig::return_hold_ms`, the
//!   simulator's rule): every process still in a fallback has noticed the
//!   return by then, and its last local grant is a window old.
//! - `reservations`, a sorted set of the start slots booked and not yet
//!   used (one per shard, scored by slot), each dropped a minute after its
//!   slot.
//! - `probe`, a hash for the fleet-wide outage probe: `until` (the current
//!   grant holds the bot's probe until then), `holder` (the process it was
//!   granted to), `back_at` (when a probe was last answered) and counters.
//!   It expires [`PROBE_TTL_MS`] after its last change.
//!
//! Every script answers in milliseconds *from now*: the caller turns them
//! into its own timestamps when the answer arrives.

use redis::Script;

/// Shared Lua: the server's time, number formatting, key expiry and the
/// daily budget's refill.
const PRELUDE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function s(x) return string.format('%.0f', x) end
local function extend(key, ms)
  if ms < 1 then ms = 1 end
  local ttl = redis.call('PTTL', key)
  if ttl < ms then redis.call('PEXPIRE', key, s(ms)) end
end
local function budget(key, total, remaining, reset_in, period)
  local b = redis.call('HMGET', key, 'remaining', 'reset_at')
  local left = tonumber(b[1])
  local reset_at = tonumber(b[2])
  if not left or not reset_at then
    left = remaining
    reset_at = now + reset_in
  end
  if now >= reset_at then
    left = total
    reset_at = reset_at + (math.floor((now - reset_at) / period) + 1) * period
  end
  return left, reset_at
end
local function return_hold(key, known, hold)
  if known == 1 and redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'hold_until', s(now + hold))
  end
  return tonumber(redis.call('HGET', key, 'hold_until')) or 0
end
local function save_budget(key, left, reset_at, period)
  redis.call('HSET', key, 'remaining', s(left), 'reset_at', s(reset_at))
  redis.call('PEXPIRE', key, s(reset_at - now + period))
end
";

/// `Acquire`: KEYS bucket, budget, reservations; ARGV owner, window,
/// lease, total, remaining, `reset_in`, period, poll, deadline, known (1
/// if the caller has been answered by this store before), hold (the
/// return hold's length). Returns `{1, left, now}` for a grant (`left`
/// session starts after it), `{0, ms, now}` to ask again in `ms`,
/// `{3, ms, now}` to ask again in `ms` at the end of the return hold,
/// `{2, 0, now}` when it runs after
/// `deadline` (server ms; 0 for none): the caller has given up waiting by
/// then, so a call held up in the network and delivered late grants
/// nothing and spends nothing.
const ACQUIRE: &str = r"
local deadline = tonumber(ARGV[9])
if deadline > 0 and now > deadline then
  return {2, 0, now}
end
local owner = ARGV[1]
local window = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local period = tonumber(ARGV[7])
local hold_until = return_hold(KEYS[2], tonumber(ARGV[10]), tonumber(ARGV[11]))
local left, reset_at = budget(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), period)
save_budget(KEYS[2], left, reset_at, period)
if now < hold_until then
  return {3, hold_until - now, now}
end
if left <= 0 then
  return {0, math.max(reset_at - now, 1), now}
end
local k = redis.call('HMGET', KEYS[1], 'last', 'not_before', 'owner', 'out_at')
local free_at = tonumber(k[2]) or 0
local last = tonumber(k[1])
if last then free_at = math.max(free_at, last + window) end
if now < free_at then
  return {0, free_at - now, now}
end
local out_at = tonumber(k[4])
if k[3] and out_at and now < out_at + lease then
  return {0, tonumber(ARGV[8]), now}
end
redis.call('HSET', KEYS[1], 'last', s(now), 'owner', owner, 'out_at', s(now))
extend(KEYS[1], math.max(window, lease))
redis.call('ZREM', KEYS[3], owner)
save_budget(KEYS[2], left - 1, reset_at, period)
return {1, left - 1, now}
";

/// `ReserveStart`: KEYS bucket, budget, reservations; ARGV owner, window,
/// total, remaining, `reset_in`, period, reservation ttl, known, hold (as
/// `Acquire`). Returns the ms until the slot booked (never inside the
/// return hold).
const RESERVE: &str = r"
local owner = ARGV[1]
local window = tonumber(ARGV[2])
local period = tonumber(ARGV[6])
local ttl = tonumber(ARGV[7])
local hold_until = return_hold(KEYS[2], tonumber(ARGV[8]), tonumber(ARGV[9]))
local left, reset_at = budget(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), period)
save_budget(KEYS[2], left, reset_at, period)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', s(now - ttl))
redis.call('ZREM', KEYS[3], owner)
local k = redis.call('HMGET', KEYS[1], 'last', 'not_before', 'booked')
local slot = math.max(now, tonumber(k[2]) or 0, tonumber(k[3]) or 0, hold_until)
local last = tonumber(k[1])
if last then slot = math.max(slot, last + window) end
if now < reset_at then
  local outstanding = redis.call('ZCOUNT', KEYS[3], '-inf', '(' .. s(reset_at))
  if left <= 0 or outstanding >= left then slot = math.max(slot, reset_at) end
end
redis.call('HSET', KEYS[1], 'booked', s(slot + window))
extend(KEYS[1], slot + window - now)
redis.call('ZADD', KEYS[3], s(slot), owner)
extend(KEYS[3], slot - now + ttl)
return slot - now
";

/// `Settle`: KEYS bucket; ARGV owner, wait. Frees the bucket's grant if
/// `owner` holds it; its next grant comes `wait` ms from now at the
/// earliest. Returns 1 if it did, 0 otherwise.
const SETTLE: &str = r"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
local k = redis.call('HMGET', KEYS[1], 'not_before')
local not_before = math.max(tonumber(k[1]) or 0, now + tonumber(ARGV[2]))
redis.call('HDEL', KEYS[1], 'owner', 'out_at')
redis.call('HSET', KEYS[1], 'not_before', s(not_before))
extend(KEYS[1], not_before - now)
return 1
";

/// Back from a fallback: KEYS budget, then `n` buckets with ages, then
/// the buckets of grants whose answers were lost; ARGV window, debt,
/// total, remaining, `reset_in`, period, `n`, the `n` ages (ms since this
/// process last granted in that bucket on its own), then the owner of
/// each lost grant, and last the return hold's length (the store grants
/// nothing for that long, see the `budget` key), the process's name and
/// the fallback's number. `debt` counts every start of that fallback, so a
/// reconcile sent again (its answer lost) charges only what is new: the
/// budget remembers, per process, the last fallback and debt charged. A lost grant still held by its owner was never used
/// (its answer never arrived, so no Identify was sent): it is released
/// and its session start given back. The starts granted locally are
/// taken off the budget (filled first if the store lost it), and each
/// bucket's last grant is moved to the local one if that is later. Also
/// the probe that says the store is back. Returns `{left, now}`: the
/// session starts left and the server's time.
const RECONCILE: &str = r"
local window = tonumber(ARGV[1])
local debt = tonumber(ARGV[2])
local hold = tonumber(ARGV[#ARGV - 2])
local charged_field = 'charged:' .. ARGV[#ARGV - 1]
local fallback = ARGV[#ARGV]
local total = tonumber(ARGV[3])
local period = tonumber(ARGV[6])
local n = tonumber(ARGV[7])
local left, reset_at = budget(KEYS[1], total, tonumber(ARGV[4]), tonumber(ARGV[5]), period)
for i = 1, n do
  local key = KEYS[1 + i]
  local age = tonumber(ARGV[7 + i])
  if age < window then
    local at = now - age
    local last = tonumber(redis.call('HGET', key, 'last'))
    if not last or last < at then
      redis.call('HSET', key, 'last', s(at))
      extend(key, window - age)
    end
  end
end
for j = 1, #KEYS - 1 - n do
  local key = KEYS[1 + n + j]
  if redis.call('HGET', key, 'owner') == ARGV[7 + n + j] then
    redis.call('HDEL', key, 'owner', 'out_at')
    left = math.min(left + 1, total)
  end
end
local before = redis.call('HGET', KEYS[1], charged_field)
if before then
  local f, d = string.match(before, '^(%d+):(%d+)$')
  if f == fallback then debt = math.max(debt - tonumber(d), 0) end
end
left = math.max(left - debt, 0)
save_budget(KEYS[1], left, reset_at, period)
redis.call('HSET', KEYS[1], charged_field, fallback .. ':' .. ARGV[2])
local hold_until = math.max(tonumber(redis.call('HGET', KEYS[1], 'hold_until')) or 0, now + hold)
redis.call('HSET', KEYS[1], 'hold_until', s(hold_until))
return {left, now}
";

/// How long the probe key outlives its last change: an outage whose
/// processes have not heard for this long that the gateway is back probes
/// again (no process waits on a stale answer).
pub(super) const PROBE_TTL_MS: u64 = 600_000;

/// The fleet-wide outage probe: KEYS probe; ARGV op (`acquire`,
/// `answered`, `failed`, `over`), holder, `next_in` (ms until the asking
/// fleet's own next probe), `age` (ms since its outage began), minimum
/// grant, maximum grant, poll, ttl. `acquire` returns `{2, 0, now}` when a
/// probe was answered since the asker's outage began (the gateway is
/// back), `{1, ms, now}` when another grant holds the probe (ask again in
/// `ms`: at its end, or the poll, whichever is sooner), `{0, 0, now}` for a
/// grant, which holds the probe for `next_in` (between the minimum and the
/// maximum). A grant that looks further away than the maximum is over (a
/// server clock that stepped back cannot wedge the bot). The reports
/// return `{3, 0, now}`.
const PROBE: &str = r"
local key = KEYS[1]
local op = ARGV[1]
local holder = ARGV[2]
local min_grant = tonumber(ARGV[5])
local max_grant = tonumber(ARGV[6])
local ttl = tonumber(ARGV[8])
if op == 'acquire' then
  local since = now - tonumber(ARGV[4])
  local h = redis.call('HMGET', key, 'back_at', 'until')
  local back = tonumber(h[1])
  if back and back >= since then
    return {2, 0, now}
  end
  local held = tonumber(h[2])
  if held and held > now and held <= now + max_grant then
    return {1, math.min(held - now, tonumber(ARGV[7])), now}
  end
  local gap = math.min(math.max(tonumber(ARGV[3]), min_grant), max_grant)
  redis.call('HSET', key, 'until', s(now + gap), 'holder', holder)
  redis.call('HINCRBY', key, 'grants', 1)
  redis.call('PEXPIRE', key, s(ttl))
  return {0, 0, now}
elseif op == 'answered' then
  redis.call('HSET', key, 'back_at', s(now))
  redis.call('HDEL', key, 'until', 'holder')
  redis.call('HINCRBY', key, 'answered', 1)
  redis.call('PEXPIRE', key, s(ttl))
elseif op == 'failed' then
  if redis.call('HGET', key, 'holder') == holder then
    redis.call('HDEL', key, 'holder')
  end
  redis.call('HINCRBY', key, 'failed', 1)
  redis.call('PEXPIRE', key, s(ttl))
end
return {3, 0, now}
";

/// The five scripts, hashed once.
pub(super) struct Scripts {
    pub(super) acquire: Script,
    pub(super) reserve: Script,
    pub(super) settle: Script,
    pub(super) reconcile: Script,
    pub(super) probe: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let with_prelude = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            acquire: with_prelude(ACQUIRE),
            reserve: with_prelude(RESERVE),
            settle: with_prelude(SETTLE),
            reconcile: with_prelude(RECONCILE),
            probe: with_prelude(PROBE),
        }
    }
}

/// The key names of one bot.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(bot_id: u64) -> Self {
        Self {
            prefix: format!("reconnect:{{{bot_id}}}:"),
        }
    }

    pub(super) fn bucket(&self, bucket: u32) -> String {
        format!("{}bucket:{bucket}", self.prefix)
    }

    pub(super) fn budget(&self) -> String {
        format!("{}budget", self.prefix)
    }

    pub(super) fn reservations(&self) -> String {
        format!("{}reservations", self.prefix)
    }

    pub(super) fn probe(&self) -> String {
        format!("{}probe", self.prefix)
    }
}
