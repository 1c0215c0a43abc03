//! How a client ends badly, and why one could not be built.

use reconnect_policy::{CloseCode, ConfigError, FleetError, GiveUpReason};

/// Why a running client stopped for good.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The gateway closed with a code that forbids reconnecting (4004,
    /// 4010–4014): the token, shard or intents must be fixed first.
    #[error("the gateway closed the connection with fatal close code {code}; not reconnecting")]
    FatalClose {
        /// The code, e.g. `4004 (authentication failed)`.
        code: CloseCode,
    },
    /// The WebSocket upgrade was refused with HTTP 401 or 403.
    #[error("the gateway refused the WebSocket upgrade with HTTP {status}; not reconnecting")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
    },
    /// A configured give-up limit was reached.
    #[error("gave up reconnecting: {0}")]
    GaveUp(GiveUpReason),
    /// The driver task panicked or was cancelled.
    #[error("the client's driver task ended abnormally")]
    Driver,
}

impl From<GiveUpReason> for ClientError {
    fn from(reason: GiveUpReason) -> Self {
        match reason {
            GiveUpReason::FatalCloseCode { code } => Self::FatalClose { code },
            GiveUpReason::Unauthorized { status } => Self::Unauthorized { status },
            other => Self::GaveUp(other),
        }
    }
}

/// Why [`ClientBuilder::start`](crate::ClientBuilder::start) refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The policy configuration is invalid; the message names the field.
    #[error("invalid policy configuration: {0}")]
    Config(#[from] ConfigError),
    /// The frame size limit is below the smallest useful value.
    #[error("max_frame_bytes is {got}; it must be at least {min}")]
    FrameLimit {
        /// The value given.
        got: usize,
        /// The smallest allowed.
        min: usize,
    },
    /// The shard id is not below the shard count.
    #[error("shard {id} is not below the shard count {count}")]
    Shard {
        /// The id.
        id: u32,
        /// The count.
        count: u32,
    },
    /// `large_threshold` is outside 50 to 250.
    #[error("large_threshold is {0}; it must be 50 to 250")]
    LargeThreshold(u8),
    /// The `User-Agent` is empty or not a valid HTTP header value (a
    /// control character, a line break).
    #[error("the User-Agent is empty or not a valid HTTP header value")]
    UserAgent,
    /// rustls refused the TLS configuration.
    #[error("TLS configuration refused: {0}")]
    Tls(String),
    /// The shards could not be set up (a shard id given twice, ...).
    #[error("the shards could not be set up: {0}")]
    Fleet(FleetError),
    /// `start` was called outside a tokio runtime.
    #[error("the client must be started from within a tokio runtime")]
    NoRuntime,
}

impl From<FleetError> for BuildError {
    fn from(error: FleetError) -> Self {
        match error {
            FleetError::Config(error) => Self::Config(error),
            other => Self::Fleet(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fatal_close_names_its_code() {
        let err = ClientError::from(GiveUpReason::FatalCloseCode {
            code: CloseCode::from_u16(4004),
        });
        assert_eq!(
            err.to_string(),
            "the gateway closed the connection with fatal close code 4004 (authentication failed); not reconnecting"
        );
        let err = ClientError::from(GiveUpReason::Unauthorized { status: 401 });
        assert!(err.to_string().contains("HTTP 401"));
    }

    #[test]
    fn errors_can_cross_threads() {
        fn check<T: Send + Sync + 'static>() {}
        check::<ClientError>();
        check::<BuildError>();
    }
}
