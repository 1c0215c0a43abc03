//! Gateway payloads in: one text frame, `{op, d, s, t}`, parsed into what
//! it means for the policy (and, for a dispatch, for the user).
//!
//! Everything here is untrusted. A frame that is not JSON, lacks a field
//! its opcode needs, or carries a value of the wrong type is a
//! [`PayloadError`]; an opcode the client does not know is
//! [`Inbound::UnknownOpcode`]. Neither ever panics; the driver counts and
//! logs them and carries on.
//!
//! The driver calls [`parse`] on every text frame after the WebSocket layer
//! has enforced the frame size limit; it is public so that benchmarks, fuzz
//! targets and other drivers can use the very same parser.
//!
//! ```
//! use reconnect_client::payload::{parse, Inbound};
//!
//! let frame = r#"{"op":0,"s":42,"t":"MESSAGE_CREATE","d":{"content":"hi"}}"#;
//! let Ok(Inbound::Dispatch { event, .. }) = parse(frame) else {
//!     panic!("a dispatch");
//! };
//! assert_eq!((event.seq, event.name.as_str()), (Some(42), "MESSAGE_CREATE"));
//! assert!(matches!(parse(r#"{"op":11}"#), Ok(Inbound::HeartbeatAck)));
//! assert!(parse("not json").is_err());
//! ```

use reconnect_policy::Dispatch;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::dispatch::DispatchEvent;

/// A parsed inbound payload.
#[derive(Debug)]
#[non_exhaustive]
pub enum Inbound {
    /// op 10.
    Hello {
        /// `heartbeat_interval`.
        heartbeat_interval_ms: u64,
    },
    /// op 0: the event for the user and what it means to the policy.
    Dispatch {
        /// For the user.
        event: DispatchEvent,
        /// For the policy.
        kind: Dispatch,
    },
    /// op 11.
    HeartbeatAck,
    /// op 1.
    HeartbeatRequest,
    /// op 7.
    Reconnect,
    /// op 9.
    InvalidSession {
        /// `d`; a missing or null `d` reads as `false`.
        resumable: bool,
    },
    /// Any other opcode (including ones only a client sends).
    UnknownOpcode(u64),
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Not a JSON object with a numeric `op`.
    #[error("not a gateway payload: {0}")]
    Json(#[from] serde_json::Error),
    /// A field the opcode needs is missing or has the wrong type.
    #[error("op {op}: `{field}` is missing or malformed")]
    Field {
        /// The opcode.
        op: u64,
        /// The field.
        field: &'static str,
    },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    op: u64,
    #[serde(borrow, default)]
    d: Option<&'a RawValue>,
    #[serde(default)]
    s: Option<u64>,
    #[serde(default)]
    t: Option<String>,
}

#[derive(Deserialize)]
struct HelloData {
    heartbeat_interval: u64,
}

#[derive(Deserialize)]
struct ReadyData {
    #[serde(default)]
    session_id: String,
    #[serde(default)]
    resume_gateway_url: String,
}

/// Parses one text frame.
///
/// # Errors
///
/// The text is not a JSON object with a numeric `op`
/// ([`PayloadError::Json`]), or a field its opcode needs is missing or
/// malformed ([`PayloadError::Field`]).
pub fn parse(text: &str) -> Result<Inbound, PayloadError> {
    let envelope: Envelope<'_> = serde_json::from_str(text)?;
    let op = envelope.op;
    let field = |field| PayloadError::Field { op, field };
    match op {
        0 => {
            let name = envelope.t.ok_or_else(|| field("t"))?;
            let data = match envelope.d {
                Some(d) => d.to_owned(),
                None => null(),
            };
            let kind = match name.as_str() {
                "READY" => {
                    // serde would also take a JSON array for the struct.
                    if !data.get().starts_with('{') {
                        return Err(field("d"));
                    }
                    let ready: ReadyData =
                        serde_json::from_str(data.get()).map_err(|_| field("d"))?;
                    Dispatch::Ready {
                        session_id: ready.session_id,
                        resume_gateway_url: ready.resume_gateway_url,
                    }
                }
                "RESUMED" => Dispatch::Resumed,
                _ => Dispatch::Other,
            };
            Ok(Inbound::Dispatch {
                event: DispatchEvent {
                    seq: envelope.s,
                    name,
                    data,
                },
                kind,
            })
        }
        1 => Ok(Inbound::HeartbeatRequest),
        7 => Ok(Inbound::Reconnect),
        9 => {
            // Servers in the wild send op 9 with no `d` (or `d: null`) and
            // then close: a session nobody says may be resumed cannot be.
            let resumable = match envelope.d {
                None => false,
                Some(d) => serde_json::from_str::<Option<bool>>(d.get())
                    .map_err(|_| field("d"))?
                    .unwrap_or(false),
            };
            Ok(Inbound::InvalidSession { resumable })
        }
        10 => {
            let d = envelope.d.ok_or_else(|| field("d"))?;
            let hello: HelloData = serde_json::from_str(d.get()).map_err(|_| field("d"))?;
            Ok(Inbound::Hello {
                heartbeat_interval_ms: hello.heartbeat_interval,
            })
        }
        11 => Ok(Inbound::HeartbeatAck),
        other => Ok(Inbound::UnknownOpcode(other)),
    }
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!("null is JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_opcode_the_gateway_sends() {
        assert!(matches!(
            parse(r#"{"op":10,"d":{"heartbeat_interval":41250},"s":null,"t":null}"#),
            Ok(Inbound::Hello {
                heartbeat_interval_ms: 41_250
            })
        ));
        assert!(matches!(parse(r#"{"op":11}"#), Ok(Inbound::HeartbeatAck)));
        assert!(matches!(
            parse(r#"{"op":1,"d":null}"#),
            Ok(Inbound::HeartbeatRequest)
        ));
        assert!(matches!(
            parse(r#"{"op":7,"d":null}"#),
            Ok(Inbound::Reconnect)
        ));
        assert!(matches!(
            parse(r#"{"op":9,"d":true}"#),
            Ok(Inbound::InvalidSession { resumable: true })
        ));
        assert!(matches!(
            parse(r#"{"op":9,"d":false}"#),
            Ok(Inbound::InvalidSession { resumable: false })
        ));
    }

    #[test]
    fn an_invalid_session_without_d_is_not_resumable() {
        // What a real server sends before it closes with 4006.
        for text in [
            r#"{"op":9,"s":4}"#,
            r#"{"op":9,"d":null}"#,
            r#"{"op":9,"d":null,"s":null,"t":null}"#,
        ] {
            assert!(
                matches!(
                    parse(text),
                    Ok(Inbound::InvalidSession { resumable: false })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn dispatches_keep_their_data_and_sequence() {
        let Ok(Inbound::Dispatch { event, kind }) = parse(
            r#"{"op":0,"s":7,"t":"READY","d":{"session_id":"abc","resume_gateway_url":"wss://r.discord.gg","v":10}}"#,
        ) else {
            panic!("not a dispatch");
        };
        assert_eq!(event.seq, Some(7));
        assert_eq!(event.name, "READY");
        assert!(event.data.get().contains("\"v\":10"));
        assert_eq!(
            kind,
            Dispatch::Ready {
                session_id: "abc".into(),
                resume_gateway_url: "wss://r.discord.gg".into()
            }
        );
        let Ok(Inbound::Dispatch { event, kind }) =
            parse(r#"{"op":0,"s":null,"t":"SOMETHING_NEW"}"#)
        else {
            panic!("not a dispatch");
        };
        assert_eq!(
            (event.seq, event.data.get(), kind),
            (None, "null", Dispatch::Other)
        );
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        for text in [
            "",
            "not json",
            "{",
            "[]",
            "null",
            r#"{"op":"10"}"#,
            r#"{"op":-1}"#,
            r#"{"op":1.5}"#,
            r#"{"d":{}}"#,
            r#"{"op":0,"s":1}"#,
            r#"{"op":0,"s":-4,"t":"X"}"#,
            r#"{"op":0,"s":1,"t":"READY","d":[]}"#,
            r#"{"op":10,"d":{"heartbeat_interval":"soon"}}"#,
            r#"{"op":10}"#,
            r#"{"op":9,"d":"yes"}"#,
            r#"{"op":0,"s":18446744073709551616,"t":"X"}"#,
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
        assert!(matches!(
            parse(r#"{"op":42,"d":{}}"#),
            Ok(Inbound::UnknownOpcode(42))
        ));
        assert!(matches!(
            parse(r#"{"op":2,"d":{}}"#),
            Ok(Inbound::UnknownOpcode(2))
        ));
    }

    #[test]
    fn a_ready_without_its_fields_reaches_the_policy_empty() {
        // The policy refuses an empty session id and an empty resume URL.
        let Ok(Inbound::Dispatch { kind, .. }) = parse(r#"{"op":0,"s":1,"t":"READY","d":{}}"#)
        else {
            panic!("not a dispatch");
        };
        assert_eq!(
            kind,
            Dispatch::Ready {
                session_id: String::new(),
                resume_gateway_url: String::new()
            }
        );
    }
}
