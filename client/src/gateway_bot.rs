//! `GET /gateway/bot`: where to connect, how many shards to run, and the
//! bot's identify limits (`max_concurrency` and the daily session-start
//! budget), so none of them has to be typed in by hand.
//!
//! One request, never retried here: a 429 comes back as
//! [`GatewayBotError::RateLimited`] with the wait the API asked for, so the
//! caller decides (a loop around this call that ignored it would be a
//! retry storm against the HTTP API). The answer is untrusted input: the
//! body is bounded, every field is checked, and the gateway URL must lie in
//! an allowed domain (the policy's rule, [`check_resume_url`]), since the
//! token will be sent there.

use std::time::Duration;

use reconnect_policy::{SessionStartLimit, UrlError, check_resume_url};
use serde::Deserialize;

use crate::token::Token;

/// The Discord HTTP API, version 10.
pub const DISCORD_API: &str = "https://discord.com/api/v10";
/// The gateway the answer's URL is checked against by default: its domain
/// (`discord.gg`) is the one allowed.
pub const DISCORD_GATEWAY: &str = "wss://gateway.discord.gg";
/// The largest answer read, in bytes (a real one is about 150).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most shards an answer may ask for before it is taken as malformed.
pub const MAX_SHARDS: u32 = 1 << 20;

/// What `GET /gateway/bot` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayBot {
    /// The gateway URL to connect to (checked against the allowed domains).
    pub url: String,
    /// The recommended number of shards (at least 1).
    pub shards: u32,
    /// The session-start budget and `max_concurrency`.
    pub session_start_limit: SessionStartLimit,
}

/// Why `GET /gateway/bot` gave no usable answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayBotError {
    /// 401: the token was refused. Retrying cannot help.
    #[error("the token was refused (HTTP 401)")]
    Unauthorized,
    /// 429: wait `retry_after_ms` before asking again.
    #[error("rate limited: retry after {retry_after_ms} ms{}", if *.global { " (global)" } else { "" })]
    RateLimited {
        /// How long the API asked to wait, in ms.
        retry_after_ms: u64,
        /// Whether the limit is the bot's global one.
        global: bool,
    },
    /// Any other status.
    #[error("HTTP {status}")]
    Status {
        /// The status code.
        status: u16,
    },
    /// The body is not the expected JSON, or a field is out of range.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("the answer is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// The gateway URL in the answer must not receive the token.
    #[error("the gateway URL {url:?} is refused: {reason}")]
    UrlNotAllowed {
        /// The URL as given (it carries no secret).
        url: String,
        /// Why.
        reason: UrlError,
    },
    /// The request did not complete (DNS, TCP, TLS, a timeout).
    #[error("request failed: {0}")]
    Transport(String),
}

/// Where to ask and what to accept.
#[derive(Clone, Debug)]
pub struct GatewayBotRequest {
    /// The API base, without a trailing slash (default [`DISCORD_API`]).
    pub api_base: String,
    /// The URL whose domain the answer's gateway URL must be in, unless
    /// `allowed_domains` is set (default [`DISCORD_GATEWAY`]).
    pub expected_gateway: String,
    /// Domains the answer's gateway URL may be in; empty means the domain
    /// of `expected_gateway`.
    pub allowed_domains: Vec<String>,
    /// The whole request's time limit (default 10 s).
    pub timeout: Duration,
    /// The `User-Agent` (the API asks bots for `DiscordBot (url, version)`).
    pub user_agent: String,
}

impl Default for GatewayBotRequest {
    fn default() -> Self {
        Self {
            api_base: DISCORD_API.to_owned(),
            expected_gateway: DISCORD_GATEWAY.to_owned(),
            allowed_domains: Vec::new(),
            timeout: Duration::from_secs(10),
            user_agent: concat!(
                "DiscordBot (https://crates.io/crates/reconnect-client, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            )
            .to_owned(),
        }
    }
}

#[derive(Deserialize)]
struct Wire {
    url: String,
    shards: u32,
    session_start_limit: WireLimit,
}

#[derive(Deserialize)]
struct WireLimit {
    total: u32,
    remaining: u32,
    reset_after: u64,
    max_concurrency: u16,
}

#[derive(Deserialize)]
struct WireRateLimit {
    #[serde(default)]
    retry_after: Option<f64>,
    #[serde(default)]
    global: bool,
}

impl GatewayBotRequest {
    /// Asks once.
    ///
    /// # Errors
    ///
    /// See [`GatewayBotError`]; nothing is retried.
    pub async fn send(&self, token: &Token) -> Result<GatewayBot, GatewayBotError> {
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(self.user_agent.as_str())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GatewayBotError::Transport(e.to_string()))?;
        let url = format!("{}/gateway/bot", self.api_base.trim_end_matches('/'));
        let mut response = client
            .get(&url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Bot {}", token.expose()),
            )
            .send()
            .await
            // reqwest's errors name the URL, never the headers.
            .map_err(|e| GatewayBotError::Transport(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let header_retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| GatewayBotError::Transport(e.without_url().to_string()))?
        {
            if body.len().saturating_add(chunk.len()) > MAX_BODY_BYTES {
                return Err(GatewayBotError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        match status {
            200 => self.read(&body),
            401 => Err(GatewayBotError::Unauthorized),
            429 => {
                let wire: Option<WireRateLimit> = serde_json::from_slice(&body).ok();
                let seconds = wire
                    .as_ref()
                    .and_then(|w| w.retry_after)
                    .or(header_retry_after)
                    .unwrap_or(1.0);
                Err(GatewayBotError::RateLimited {
                    retry_after_ms: seconds_to_ms(seconds),
                    global: wire.is_some_and(|w| w.global),
                })
            }
            status => Err(GatewayBotError::Status { status }),
        }
    }

    fn read(&self, body: &[u8]) -> Result<GatewayBot, GatewayBotError> {
        let wire: Wire =
            serde_json::from_slice(body).map_err(|e| GatewayBotError::Malformed(e.to_string()))?;
        if !(1..=MAX_SHARDS).contains(&wire.shards) {
            return Err(GatewayBotError::Malformed(format!(
                "shards is {}; expected 1 to {MAX_SHARDS}",
                wire.shards
            )));
        }
        let limit = wire.session_start_limit;
        if limit.remaining > limit.total || limit.max_concurrency == 0 {
            return Err(GatewayBotError::Malformed(format!(
                "session_start_limit is inconsistent: {} of {} remaining, max_concurrency {}",
                limit.remaining, limit.total, limit.max_concurrency
            )));
        }
        check_resume_url(&wire.url, &self.expected_gateway, &self.allowed_domains).map_err(
            |reason| GatewayBotError::UrlNotAllowed {
                url: wire.url.clone(),
                reason,
            },
        )?;
        Ok(GatewayBot {
            url: wire.url,
            shards: wire.shards,
            session_start_limit: SessionStartLimit {
                total: limit.total,
                remaining: limit.remaining,
                reset_after_ms: limit.reset_after,
                max_concurrency: limit.max_concurrency,
            },
        })
    }
}

/// Seconds (possibly fractional, possibly nonsense) to whole ms, within a
/// day.
fn seconds_to_ms(seconds: f64) -> u64 {
    const DAY_MS: f64 = 86_400_000.0;
    if seconds.is_finite() && seconds > 0.0 {
        // In range after the clamp, so the cast is exact enough.
        (seconds * 1_000.0).clamp(0.0, DAY_MS).ceil() as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Result<GatewayBot, GatewayBotError> {
        GatewayBotRequest::default().read(body.as_bytes())
    }

    #[test]
    fn a_real_answer_is_read() {
        let bot = read(
            r#"{"url":"wss://gateway.discord.gg","shards":9,"session_start_limit":{"total":1000,"remaining":999,"reset_after":14400000,"max_concurrency":1}}"#,
        )
        .unwrap();
        assert_eq!(bot.shards, 9);
        assert_eq!(bot.url, "wss://gateway.discord.gg");
        assert_eq!(
            bot.session_start_limit,
            SessionStartLimit {
                total: 1_000,
                remaining: 999,
                reset_after_ms: 14_400_000,
                max_concurrency: 1
            }
        );
    }

    #[test]
    fn bad_answers_are_clear_errors() {
        let limit = r#""session_start_limit":{"total":1000,"remaining":999,"reset_after":1,"max_concurrency":16}"#;
        for body in [
            "",
            "not json",
            "[]",
            r#"{"url":"wss://gateway.discord.gg"}"#,
            &format!(r#"{{"url":"wss://gateway.discord.gg","shards":0,{limit}}}"#),
            &format!(r#"{{"url":"wss://gateway.discord.gg","shards":-1,{limit}}}"#),
            r#"{"url":"wss://gateway.discord.gg","shards":1,"session_start_limit":{"total":1,"remaining":2,"reset_after":1,"max_concurrency":1}}"#,
            r#"{"url":"wss://gateway.discord.gg","shards":1,"session_start_limit":{"total":1,"remaining":1,"reset_after":1,"max_concurrency":0}}"#,
        ] {
            assert!(
                matches!(read(body), Err(GatewayBotError::Malformed(_))),
                "{body}"
            );
        }
        for url in [
            "wss://gateway.evil.example",
            "ws://gateway.discord.gg",
            "https://gateway.discord.gg",
        ] {
            let body = format!(r#"{{"url":"{url}","shards":1,{limit}}}"#);
            assert!(
                matches!(read(&body), Err(GatewayBotError::UrlNotAllowed { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn retry_after_is_bounded() {
        assert_eq!(seconds_to_ms(1.5), 1_500);
        assert_eq!(seconds_to_ms(0.0001), 1);
        assert_eq!(seconds_to_ms(-3.0), 0);
        assert_eq!(seconds_to_ms(f64::NAN), 0);
        assert_eq!(seconds_to_ms(1e300), 86_400_000);
    }
}
