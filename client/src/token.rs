//! The bot token: a secret that never appears in `Debug` output, error
//! messages or logs.
//!
//! [`Token`] has no `Display` and a redacting `Debug`; the only way to read
//! it is crate-private and used in exactly one place, when an Identify or
//! Resume payload is written to the socket.

use core::fmt;

/// A gateway token.
///
/// ```
/// use reconnect_client::Token;
///
/// let token = Token::new("secret-token-value");
/// assert_eq!(format!("{token:?}"), "Token(<redacted>)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Box<str>);

impl Token {
    /// Wraps a token. A leading `Bot ` (the HTTP API's prefix) is removed:
    /// the gateway wants the bare token.
    #[must_use]
    pub fn new(token: impl Into<String>) -> Self {
        let token = token.into();
        let bare = token.strip_prefix("Bot ").unwrap_or(&token).trim();
        Self(bare.into())
    }

    /// Reads the token from the environment variable `var`.
    ///
    /// # Errors
    ///
    /// The variable is unset, empty or not Unicode. The error names the
    /// variable, never its value.
    pub fn from_env(var: &str) -> Result<Self, TokenError> {
        match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => Ok(Self::new(value)),
            Ok(_) | Err(std::env::VarError::NotPresent) => Err(TokenError::Missing {
                var: var.to_owned(),
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(TokenError::NotUnicode {
                var: var.to_owned(),
            }),
        }
    }

    /// Whether the token is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secret itself, for the Identify and Resume payloads only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Why a token could not be read from the environment. It names the
/// variable and never carries the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The variable is unset or empty.
    #[error("the environment variable {var} is not set (or is empty)")]
    Missing {
        /// The variable's name.
        var: String,
    },
    /// The variable's value is not valid Unicode.
    #[error("the environment variable {var} is not valid Unicode")]
    NotUnicode {
        /// The variable's name.
        var: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let token = Token::new("Bot MTIz.abc.def-very-secret");
        assert_eq!(token.expose(), "MTIz.abc.def-very-secret");
        let shown = format!("{token:?} {token:#?} {:?}", Some(&token));
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(!shown.contains("MTIz"), "{shown}");
    }

    #[test]
    fn errors_name_the_variable_only() {
        let err = Token::from_env("RECONNECT_CLIENT_TEST_SURELY_UNSET").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the environment variable RECONNECT_CLIENT_TEST_SURELY_UNSET is not set (or is empty)"
        );
    }
}
