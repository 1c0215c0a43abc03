//! The decision at the centre: what a disconnect means for the session.
//!
//! [`decide`] is a pure function from *why* the connection ended (a
//! [`Trigger`]) and *whether a session exists* to one of four answers:
//! resume, re-identify, wait then do one of those, or give up. It knows
//! nothing about backoff, the guard or identify limits; the
//! [`Policy`](crate::Policy) layers those on top. Another gateway library
//! can call it alone to get the protocol right.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::close_code::{CloseAction, CloseCode};
use crate::jitter::Jitter;

/// Why a connection attempt failed before the WebSocket was open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The host refused the TCP connection or reset it.
    Refused,
    /// The connection (or the WebSocket handshake) did not finish in time.
    TimedOut,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed.
    Tls,
    /// The HTTP upgrade was answered with this status instead of 101
    /// (other than 429, which is [`ConnectFailure::RateLimited`]).
    Rejected {
        /// The HTTP status code.
        status: u16,
    },
    /// HTTP 429: wait at least this long before the next attempt.
    RateLimited {
        /// The `Retry-After` value, converted to milliseconds. Values above
        /// [`MAX_DELAY_MS`](crate::MAX_DELAY_MS) (30 days) are read as it,
        /// so a hostile value cannot park the shard for ever.
        retry_after_ms: u64,
    },
}

impl ConnectFailure {
    /// Whether the failure says the credentials are refused (HTTP 401/403):
    /// retrying cannot help.
    #[must_use]
    pub const fn is_unauthorized(self) -> bool {
        matches!(self, Self::Rejected { status: 401 | 403 })
    }
}

/// A deadline the policy keeps on every wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Deadline {
    /// The TCP/TLS/WebSocket handshake did not finish.
    Connect,
    /// No Hello after the socket opened.
    Hello,
    /// No READY after Identify, or no RESUMED after Resume.
    Handshake,
    /// The socket we asked to close did not report closed.
    Close,
}

/// Why the current connection is ending (or why no connection came up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Trigger {
    /// The server or the transport closed the socket, with this code if a
    /// close frame carried one (no code: the TCP connection dropped).
    Closed {
        /// The close code, if any.
        code: Option<CloseCode>,
    },
    /// The server sent op 7 Reconnect.
    Reconnect,
    /// The server sent op 9 Invalid Session.
    InvalidSession {
        /// The `d` flag: whether the session may be resumed.
        resumable: bool,
    },
    /// No heartbeat ACK arrived before the next heartbeat was due.
    Zombie,
    /// A deadline passed with nothing to show for it.
    Timeout {
        /// Which wait timed out.
        deadline: Deadline,
    },
    /// A connection attempt failed.
    ConnectFailed {
        /// How it failed.
        failure: ConnectFailure,
    },
}

/// What the next connection does once it is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// Send Resume for the existing session (against the resume URL).
    Resume,
    /// Drop any session and its resume URL, connect to the base URL and
    /// send Identify.
    Reidentify,
}

/// Why the policy stopped for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum GiveUpReason {
    /// The gateway closed with a code that forbids reconnecting.
    FatalCloseCode {
        /// The code.
        code: CloseCode,
    },
    /// The WebSocket upgrade was refused with HTTP 401 or 403.
    Unauthorized {
        /// The HTTP status.
        status: u16,
    },
    /// The configured limit on retries in a row was reached.
    RetriesExhausted {
        /// Retries made since the connection was last stable.
        retries: u32,
    },
    /// The configured limit on time spent reconnecting was reached.
    TimeExhausted {
        /// Milliseconds since the connection was last stable.
        elapsed_ms: u64,
    },
    /// Identifies in a row were answered before READY, and the
    /// configuration says to stop then
    /// ([`GiveUpLimits::on_identify_loop`](crate::GiveUpLimits)).
    IdentifyLoop {
        /// Identifies in a row answered before READY.
        rejected: u32,
        /// The close code of the last answer (`None`: op 9).
        last_code: Option<CloseCode>,
    },
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FatalCloseCode { code } => {
                write!(
                    f,
                    "the gateway closed with fatal code {code}; not reconnecting"
                )
            }
            Self::Unauthorized { status } => {
                write!(f, "the gateway refused the connection with HTTP {status}")
            }
            Self::RetriesExhausted { retries } => {
                write!(f, "gave up after {retries} retries in a row")
            }
            Self::TimeExhausted { elapsed_ms } => {
                write!(
                    f,
                    "gave up after {elapsed_ms} ms without a stable connection"
                )
            }
            Self::IdentifyLoop {
                rejected,
                last_code,
            } => {
                write!(
                    f,
                    "gave up after {rejected} Identifies in a row were answered before READY (last: "
                )?;
                match last_code {
                    Some(code) => write!(f, "close {code})"),
                    None => f.write_str("op 9)"),
                }
            }
        }
    }
}

/// The answer of [`decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Decision {
    /// Reconnect and resume the session.
    Resume,
    /// Drop the session, reconnect to the base URL and identify.
    Reidentify,
    /// The protocol asks for a wait first (op 9's random wait, a 429's
    /// Retry-After); then recover as `then` says.
    Wait {
        /// The minimum wait, in milliseconds, before the next attempt.
        delay_ms: u64,
        /// What the next connection does.
        then: Recovery,
    },
    /// Never reconnect.
    GiveUp {
        /// Why.
        reason: GiveUpReason,
    },
}

impl Decision {
    /// The recovery this decision leads to, or `None` for a give-up.
    #[must_use]
    pub const fn recovery(self) -> Option<Recovery> {
        match self {
            Self::Resume => Some(Recovery::Resume),
            Self::Reidentify => Some(Recovery::Reidentify),
            Self::Wait { then, .. } => Some(then),
            Self::GiveUp { .. } => None,
        }
    }

    /// The protocol wait this decision carries (0 when none).
    #[must_use]
    pub const fn protocol_delay_ms(self) -> u64 {
        match self {
            Self::Wait { delay_ms, .. } => delay_ms,
            _ => 0,
        }
    }
}

/// The knobs [`decide`] needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DecisionConfig {
    /// The shortest random wait after op 9, in ms (default 1000).
    pub invalid_session_wait_min_ms: u64,
    /// The longest random wait after op 9, in ms (default 5000).
    pub invalid_session_wait_max_ms: u64,
}

impl DecisionConfig {
    /// 1–5 s after op 9: the gateway documentation's former advice, which
    /// spreads a fleet that is invalidated at once.
    pub const DEFAULT: Self = Self {
        invalid_session_wait_min_ms: 1_000,
        invalid_session_wait_max_ms: 5_000,
    };
}

impl Default for DecisionConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Decides what a disconnect means for the session.
///
/// `has_session` is whether a resumable session (an id from READY) exists.
/// `jitter` is drawn from only for op 9's random wait.
///
/// | trigger | session | decision |
/// |---|---|---|
/// | close 4004, 4010–4014 | any | give up, naming the code |
/// | close 4003, 4007, 4009 | any | re-identify at once |
/// | any other close code, or none | yes / no | resume / re-identify |
/// | op 7 Reconnect | yes / no | resume / re-identify |
/// | op 9, `d = true` | yes / no | wait U[min, max], then resume / re-identify |
/// | op 9, `d = false` | any | wait U[min, max], then re-identify |
/// | zombie, Hello or handshake timeout | yes / no | resume / re-identify |
/// | connect failed: HTTP 401/403 | any | give up |
/// | connect failed: HTTP 429 | yes / no | wait Retry-After, then resume / re-identify |
/// | connect failed: other | yes / no | resume / re-identify |
///
/// ```
/// use reconnect_policy::{decide, CloseCode, Decision, DecisionConfig, GiveUpReason, Trigger};
/// use reconnect_policy::Jitter;
///
/// let mut rng = Jitter::new(7);
/// let cfg = DecisionConfig::DEFAULT;
/// let closed = |code| Trigger::Closed { code: Some(CloseCode::from_u16(code)) };
/// assert_eq!(decide(closed(1006), true, &cfg, &mut rng), Decision::Resume);
/// assert_eq!(decide(closed(4009), true, &cfg, &mut rng), Decision::Reidentify);
/// assert_eq!(
///     decide(closed(4004), true, &cfg, &mut rng),
///     Decision::GiveUp { reason: GiveUpReason::FatalCloseCode { code: CloseCode::AuthenticationFailed } },
/// );
/// ```
#[inline]
pub fn decide(
    trigger: Trigger,
    has_session: bool,
    config: &DecisionConfig,
    jitter: &mut Jitter,
) -> Decision {
    let resume_if_possible = if has_session {
        Recovery::Resume
    } else {
        Recovery::Reidentify
    };
    let now = |recovery: Recovery| match recovery {
        Recovery::Resume => Decision::Resume,
        Recovery::Reidentify => Decision::Reidentify,
    };
    match trigger {
        Trigger::Closed { code: Some(code) } => match code.action() {
            CloseAction::GiveUp => Decision::GiveUp {
                reason: GiveUpReason::FatalCloseCode { code },
            },
            CloseAction::Reidentify => Decision::Reidentify,
            CloseAction::Resume => now(resume_if_possible),
        },
        Trigger::Closed { code: None } | Trigger::Reconnect | Trigger::Zombie => {
            now(resume_if_possible)
        }
        Trigger::Timeout { .. } => now(resume_if_possible),
        Trigger::InvalidSession { resumable } => {
            let low = config.invalid_session_wait_min_ms;
            let high = config.invalid_session_wait_max_ms.max(low);
            Decision::Wait {
                delay_ms: jitter.between(low, high),
                then: if resumable {
                    resume_if_possible
                } else {
                    Recovery::Reidentify
                },
            }
        }
        Trigger::ConnectFailed { failure } => match failure {
            ConnectFailure::Rejected { status } if failure.is_unauthorized() => Decision::GiveUp {
                reason: GiveUpReason::Unauthorized { status },
            },
            ConnectFailure::RateLimited { retry_after_ms } => Decision::Wait {
                delay_ms: retry_after_ms.min(crate::backoff::MAX_DELAY_MS),
                then: resume_if_possible,
            },
            _ => now(resume_if_possible),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op9_wait_stays_in_the_configured_range() {
        let mut rng = Jitter::new(3);
        let cfg = DecisionConfig::DEFAULT;
        for _ in 0..1_000 {
            match decide(
                Trigger::InvalidSession { resumable: false },
                true,
                &cfg,
                &mut rng,
            ) {
                Decision::Wait { delay_ms, then } => {
                    assert!((1_000..=5_000).contains(&delay_ms));
                    assert_eq!(then, Recovery::Reidentify);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn give_up_reasons_name_the_cause() {
        let reason = GiveUpReason::FatalCloseCode {
            code: CloseCode::DisallowedIntents,
        };
        assert!(reason.to_string().contains("4014"));
        assert!(
            GiveUpReason::Unauthorized { status: 401 }
                .to_string()
                .contains("401")
        );
    }
}
