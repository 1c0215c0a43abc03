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
/// every `period_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TokenBucket {
    capacity: u32,
    tokens: u32,
    period_ms: u64,
    last_refill: Timestamp,
}

impl TokenBucket {
    /// A full bucket that lets through at most `2 · capacity` per `window_ms`.
    pub(crate) fn for_window(capacity: u32, window_ms: u64, now: Timestamp) -> Self {
        let period_ms = if capacity == 0 {
            u64::MAX
        } else {
            (window_ms / u64::from(capacity)).max(1)
        };
        Self {
            capacity,
            tokens: capacity,
            period_ms,
            last_refill: now,
        }
    }

    fn refill(&mut self, now: Timestamp) {
        let elapsed = now.saturating_since(self.last_refill);
        let new = elapsed / self.period_ms;
        if new > 0 {
            let add = u32::try_from(new).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(add).min(self.capacity);
            self.last_refill = self
                .last_refill
                .saturating_add(new.saturating_mul(self.period_ms));
        }
    }

    /// Takes one token, or says why not: [`SendError::Throttled`] with
    /// the time the next one is due, or [`SendError::NoBudget`] for a
    /// bucket that never holds one.
    pub(crate) fn try_take(&mut self, now: Timestamp) -> Result<(), SendError> {
        self.refill(now);
        if self.tokens > 0 {
            self.tokens -= 1;
            Ok(())
        } else if self.capacity == 0 {
            Err(SendError::NoBudget)
        } else {
            Err(SendError::Throttled {
                retry_at: self.last_refill.saturating_add(self.period_ms).max(now),
            })
        }
    }
}

/// The two buckets of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SendBudget {
    /// Replies to op 1 heartbeat requests.
    pub(crate) heartbeat_requests: TokenBucket,
    /// The driver's own commands.
    pub(crate) commands: TokenBucket,
}

/// Op 1 replies allowed per window (bucket of capacity 1: at most 2).
const HEARTBEAT_REQUEST_CAPACITY: u32 = 1;

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
        let window = limit.window_ms.max(1);
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
        Self {
            heartbeat_requests: TokenBucket::for_window(HEARTBEAT_REQUEST_CAPACITY, window, now),
            commands: TokenBucket::for_window(for_driver / 2, window, now),
        }
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
            while budget.commands.try_take(now).is_ok() {
                sent.push(t);
            }
            while budget.heartbeat_requests.try_take(now).is_ok() {
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
        assert_eq!(half.commands.capacity, full.commands.capacity / 2);
        let none = SendBudget::new(SendLimit::DISCORD, 41_250, t0, 0);
        assert_eq!(none.commands.capacity, 0);
    }

    #[test]
    fn a_tiny_limit_leaves_the_driver_nothing_but_never_panics() {
        let t0 = Timestamp::from_millis(0);
        let mut budget = SendBudget::new(
            SendLimit {
                commands: 1,
                window_ms: 0,
            },
            0,
            t0,
            100,
        );
        assert_eq!(budget.commands.try_take(t0), Err(SendError::NoBudget));
    }
}
