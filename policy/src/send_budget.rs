//! The per-connection send budget: 120 commands per 60 s, with room kept
//! for heartbeats.
//!
//! Going over the gateway's send limit closes the connection with 4008. The
//! budget is split in two token buckets sized so that the total in *any*
//! 60 s window stays within the limit by construction: a bucket with
//! capacity `c` refilled at `c` tokens per window lets through at most `2c`
//! in a window. Heartbeats the policy schedules, and the one Identify or
//! Resume per connection, are reserved off the top; op 1 replies get a
//! small bucket of their own (a server flooding op 1 cannot make us break
//! the limit), and the rest is the driver's for its own commands
//! (presence updates, member requests) through
//! [`Policy::try_send_command`](crate::Policy::try_send_command).

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// The gateway's send limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SendLimit {
    /// Commands allowed per window (120).
    pub commands: u32,
    /// The window, in ms (60 000).
    pub window_ms: u64,
}

impl SendLimit {
    /// The gateway's documented limit.
    pub const DISCORD: Self = Self {
        commands: 120,
        window_ms: 60_000,
    };
}

impl Default for SendLimit {
    fn default() -> Self {
        Self::DISCORD
    }
}

/// Why [`Policy::try_send_command`](crate::Policy::try_send_command)
/// refused a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum SendError {
    /// No session is established on the current connection (none is open,
    /// or the handshake is not over): nothing may be sent yet.
    NoSession,
    /// The connection's budget for the driver's commands is spent until
    /// `retry_at`.
    Throttled {
        /// When the next command may be sent.
        retry_at: Timestamp,
    },
    /// The configured [`SendLimit`] leaves no room for the driver's own
    /// commands once heartbeats and the handshake are reserved.
    NoBudget,
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSession => f.write_str("no session is established"),
            Self::Throttled { retry_at } => {
                write!(f, "the send budget is spent until {retry_at}")
            }
            Self::NoBudget => f.write_str("the send limit leaves no room for commands"),
        }
    }
}

impl std::error::Error for SendError {}

/// A token bucket holding at most `capacity` tokens, refilled one token
/// every `period_ms`. The period follows from the capacity and the
/// limit's window, so it is not stored: the window is passed in (16 bytes
/// per bucket, kept for every open connection of a fleet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TokenBucket {
    capacity: u32,
    tokens: u32,
    last_refill: Timestamp,
}

impl TokenBucket {
    /// A full bucket that lets through at most `2 · capacity` per
    /// `window_ms`.
    pub(crate) const fn for_window(capacity: u32, now: Timestamp) -> Self {
        Self {
            capacity,
            tokens: capacity,
            last_refill: now,
        }
    }

    /// The refill period in a window of `window_ms`.
    const fn period_ms(&self, window_ms: u64) -> u64 {
        if self.capacity == 0 {
            u64::MAX
        } else {
            let period = window_ms / self.capacity as u64;
            if period == 0 { 1 } else { period }
        }
    }

    fn refill(&mut self, now: Timestamp, period_ms: u64) {
        let elapsed = now.saturating_since(self.last_refill);
        let new = elapsed / period_ms;
        if new > 0 {
            let add = u32::try_from(new).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(add).min(self.capacity);
            self.last_refill = self
                .last_refill
                .saturating_add(new.saturating_mul(period_ms));
        }
    }

    /// Takes one token, or says why not: [`SendError::Throttled`] with
    /// the time the next one is due, or [`SendError::NoBudget`] for a
    /// bucket that never holds one. `window_ms` is the window the bucket
    /// was sized for.
    pub(crate) fn try_take(&mut self, now: Timestamp, window_ms: u64) -> Result<(), SendError> {
        let period_ms = self.period_ms(window_ms);
        self.refill(now, period_ms);
        if self.tokens > 0 {
            self.tokens -= 1;
            Ok(())
        } else if self.capacity == 0 {
            Err(SendError::NoBudget)
        } else {
            Err(SendError::Throttled {
                retry_at: self.last_refill.saturating_add(period_ms).max(now),
            })
        }
    }
}

/// The two buckets of one connection, stored in 24 bytes (they are kept
/// for every open connection of a fleet): the op 1 bucket's capacity is
/// always [`HEARTBEAT_REQUEST_CAPACITY`], so only its refill time and its
/// one token are kept, the token in the top bit of the tokens word (the
/// driver's bucket holds at most `u32::MAX / 2` tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SendBudget {
    /// When the op 1 replies' bucket was last refilled.
    heartbeat_requests_refill: Timestamp,
    /// When the driver's bucket was last refilled.
    commands_refill: Timestamp,
    /// The driver's bucket's capacity.
    commands_capacity: u32,
    /// The driver's tokens in the low 31 bits; the op 1 token in
    /// [`REQUEST_TOKEN`].
    tokens: u32,
}

/// The bit of [`SendBudget`]'s `tokens` that holds the op 1 token.
const REQUEST_TOKEN: u32 = 1 << 31;

/// Op 1 replies allowed per window (bucket of capacity 1: at most 2).
const HEARTBEAT_REQUEST_CAPACITY: u32 = 1;

/// The window both buckets of a budget for `limit` are sized for.
const fn window_ms(limit: SendLimit) -> u64 {
    if limit.window_ms == 0 {
        1
    } else {
        limit.window_ms
    }
}

impl SendBudget {
    /// The budget for a connection whose heartbeat interval is
    /// `interval_ms`, opened at `now`; the driver gets `share_percent` of
    /// its usual share (100: all of it; less after a 4008).
    pub(crate) fn new(
        limit: SendLimit,
        interval_ms: u64,
        now: Timestamp,
        share_percent: u8,
    ) -> Self {
        let window = window_ms(limit);
        // Scheduled heartbeats that can fall in one window, plus one
        // Identify or Resume, plus the op 1 replies.
        let heartbeats = window.div_ceil(interval_ms.max(1)).saturating_add(1);
        let reserved = u32::try_from(heartbeats)
            .unwrap_or(u32::MAX)
            .saturating_add(1)
            .saturating_add(2 * HEARTBEAT_REQUEST_CAPACITY);
        let for_driver = limit.commands.saturating_sub(reserved);
        let for_driver = u32::try_from(
            u64::from(for_driver).saturating_mul(u64::from(share_percent.min(100))) / 100,
        )
        .unwrap_or(0);
        let mut budget = Self {
            heartbeat_requests_refill: now,
            commands_refill: now,
            commands_capacity: 0,
            tokens: 0,
        };
        budget.put_heartbeat_requests(TokenBucket::for_window(HEARTBEAT_REQUEST_CAPACITY, now));
        budget.put_commands(TokenBucket::for_window(for_driver / 2, now));
        budget
    }

    /// The op 1 replies' bucket.
    const fn heartbeat_requests(&self) -> TokenBucket {
        TokenBucket {
            capacity: HEARTBEAT_REQUEST_CAPACITY,
            tokens: if self.tokens & REQUEST_TOKEN == 0 {
                0
            } else {
                1
            },
            last_refill: self.heartbeat_requests_refill,
        }
    }

    /// Keeps `bucket` as the op 1 replies' bucket (its capacity is
    /// [`HEARTBEAT_REQUEST_CAPACITY`], so it holds one token at most).
    const fn put_heartbeat_requests(&mut self, bucket: TokenBucket) {
        self.heartbeat_requests_refill = bucket.last_refill;
        self.tokens = if bucket.tokens == 0 {
            self.tokens & !REQUEST_TOKEN
        } else {
            self.tokens | REQUEST_TOKEN
        };
    }

    /// The driver's bucket.
    const fn commands(&self) -> TokenBucket {
        TokenBucket {
            capacity: self.commands_capacity,
            tokens: self.tokens & !REQUEST_TOKEN,
            last_refill: self.commands_refill,
        }
    }

    /// Keeps `bucket` as the driver's bucket (whose capacity, half of a
    /// `u32` at most, leaves [`REQUEST_TOKEN`] free).
    const fn put_commands(&mut self, bucket: TokenBucket) {
        self.commands_capacity = bucket.capacity;
        self.commands_refill = bucket.last_refill;
        self.tokens = (self.tokens & REQUEST_TOKEN) | (bucket.tokens & !REQUEST_TOKEN);
    }

    /// Takes a token for one of the driver's commands; `limit` is the one
    /// the budget was built for.
    pub(crate) fn take_command(
        &mut self,
        now: Timestamp,
        limit: SendLimit,
    ) -> Result<(), SendError> {
        let mut bucket = self.commands();
        let taken = bucket.try_take(now, window_ms(limit));
        self.put_commands(bucket);
        taken
    }

    /// Takes a token for a reply to op 1; `limit` is the one the budget
    /// was built for.
    pub(crate) fn take_heartbeat_request(
        &mut self,
        now: Timestamp,
        limit: SendLimit,
    ) -> Result<(), SendError> {
        let mut bucket = self.heartbeat_requests();
        let taken = bucket.try_take(now, window_ms(limit));
        self.put_heartbeat_requests(bucket);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_in_any_window_stays_within_the_limit() {
        let t0 = Timestamp::from_millis(0);
        let interval = 41_250;
        let mut budget = SendBudget::new(SendLimit::DISCORD, interval, t0, 100);
        // Greedy driver: send whenever allowed, for 10 minutes, step 10 ms.
        let mut sent: Vec<u64> = Vec::new();
        let mut t = 0;
        while t < 600_000 {
            let now = Timestamp::from_millis(t);
            while budget.take_command(now, SendLimit::DISCORD).is_ok() {
                sent.push(t);
            }
            while budget
                .take_heartbeat_request(now, SendLimit::DISCORD)
                .is_ok()
            {
                sent.push(t);
            }
            t += 10;
        }
        let reserved_heartbeats = 60_000u64.div_ceil(interval) + 1 + 1; // + Identify
        for (i, &start) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .take_while(|&&s| s < start + 60_000)
                .count();
            assert!(
                in_window as u64 + reserved_heartbeats <= 120,
                "{in_window} sends in the window from {start}"
            );
        }
        // And the driver really gets most of the budget.
        assert!(sent.len() > 500, "{}", sent.len());
    }

    #[test]
    fn a_cut_share_halves_the_drivers_bucket() {
        let t0 = Timestamp::from_millis(0);
        let full = SendBudget::new(SendLimit::DISCORD, 41_250, t0, 100);
        let half = SendBudget::new(SendLimit::DISCORD, 41_250, t0, 50);
        assert_eq!(half.commands().capacity, full.commands().capacity / 2);
        let none = SendBudget::new(SendLimit::DISCORD, 41_250, t0, 0);
        assert_eq!(none.commands().capacity, 0);
    }

    #[test]
    fn a_tiny_limit_leaves_the_driver_nothing_but_never_panics() {
        let t0 = Timestamp::from_millis(0);
        let limit = SendLimit {
            commands: 1,
            window_ms: 0,
        };
        let mut budget = SendBudget::new(limit, 0, t0, 100);
        assert_eq!(budget.take_command(t0, limit), Err(SendError::NoBudget));
        assert!(budget.take_heartbeat_request(t0, limit).is_ok());
        assert!(size_of::<SendBudget>() <= 24);
    }
}
