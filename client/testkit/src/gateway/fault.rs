//! The faults the loopback gateway can inject, on command or on a
//! schedule.

use serde::{Deserialize, Serialize};

/// A fault, or a change of the gateway's behaviour.
///
/// Faults about a connection (`Drop`, `Close`, `Reconnect`, ...) hit every
/// socket open at the moment; modes (`Refuse`, `Acks`, `Stall`, ...) stay
/// until changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "fault")]
#[non_exhaustive]
pub enum Fault {
    /// Drop the TCP connection without a close frame (FIN).
    Drop,
    /// Reset the TCP connection (RST).
    Reset,
    /// Close with this code (any code: 1000, 4000, 4004, 4007, ...).
    Close {
        /// The close code.
        code: u16,
    },
    /// Send op 7 Reconnect.
    Reconnect,
    /// Send op 7 and close with `code` right after it, as the gateway does
    /// a few seconds after an op 7: one event, two signals.
    ReconnectAndClose {
        /// The close code.
        code: u16,
    },
    /// Send op 9 Invalid Session.
    InvalidSession {
        /// `d`: whether the session may be resumed.
        resumable: bool,
    },
    /// From now on, close every Identify with `code` before READY (`None`:
    /// stop): a server that refuses a token without 4004, or rejects the
    /// handshake, again and again.
    RejectIdentify {
        /// The close code (`None` ends the mode).
        code: Option<u16>,
    },
    /// Send op 9 with no `d` at all (`{"op":9,"s":…}`), then close with
    /// 4006, as some gateway servers do: the session is gone.
    InvalidSessionWithoutData,
    /// Send op 1, asking for a heartbeat at once.
    HeartbeatRequest,
    /// Send this text frame as is (malformed JSON, an unknown opcode, ...).
    SendText {
        /// The frame.
        text: String,
    },
    /// Send a binary frame.
    SendBinary {
        /// The frame.
        bytes: Vec<u8>,
    },
    /// Send a valid JSON text frame of about this many bytes.
    SendOversized {
        /// Its size.
        bytes: usize,
    },
    /// Answer (`true`) or stop answering (`false`) heartbeats.
    Acks {
        /// Whether to answer.
        on: bool,
    },
    /// Stall (`true`): send nothing at all — no ACKs, no events, no close
    /// replies — while keeping every socket open; or stop stalling.
    Stall {
        /// Whether to stall.
        on: bool,
    },
    /// Refuse new connections (reset them as soon as they are accepted),
    /// or accept them again.
    Refuse {
        /// Whether to refuse.
        on: bool,
    },
    /// Answer the next `times` WebSocket upgrades (all of them if `None`)
    /// with this HTTP status and, if given, `Retry-After`; `status: 0`
    /// clears the rejection.
    Reject {
        /// The status (429, 401, 503, ...).
        status: u16,
        /// The `Retry-After` header's value.
        retry_after: Option<String>,
        /// How many upgrades to answer so.
        times: Option<u32>,
    },
    /// Drop every connection this long after READY or RESUMED (a link that
    /// drops at once), or stop doing so.
    DropAfterEstablished {
        /// The delay; `None` turns it off.
        after_ms: Option<u64>,
    },
    /// Forget every session: the next Resume gets op 9 `false`.
    InvalidateSessions,
}

/// A fault injected this long after the gateway started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// When, in ms after the start.
    pub after_ms: u64,
    /// What.
    pub fault: Fault,
}

impl Fault {
    /// Parses a command typed by hand: `drop`, `reset`, `close 4000`, `op7`,
    /// `op7+close 4000`, `op9 true`, `op9 none` (no `d`, then 4006), `op1`, `acks off`, `stall on`,
    /// `refuse on`, `429 5` (Retry-After 5 s, next upgrade), `reject 401`,
    /// `drop-after 200`, `reject-identify 4000` (or `off`), `invalidate`, `text <frame>`, `binary`, `big <bytes>`.
    ///
    /// # Errors
    ///
    /// A line that is none of these, with the list above.
    pub fn parse(line: &str) -> Result<Self, String> {
        let mut words = line.split_whitespace();
        let head = words.next().unwrap_or_default();
        let arg = words.next();
        let on = |arg: Option<&str>| match arg {
            Some("on" | "true" | "1") | None => Ok(true),
            Some("off" | "false" | "0") => Ok(false),
            Some(other) => Err(format!("expected on/off, got {other:?}")),
        };
        let number = |arg: Option<&str>| -> Result<u64, String> {
            arg.ok_or_else(|| "a number is missing".to_owned())?
                .parse()
                .map_err(|e| format!("not a number: {e}"))
        };
        let code = |arg: Option<&str>| -> Result<u16, String> {
            u16::try_from(number(arg)?).map_err(|e| format!("not a close code: {e}"))
        };
        Ok(match head {
            "drop" => Self::Drop,
            "reset" => Self::Reset,
            "close" => Self::Close { code: code(arg)? },
            "op7" => Self::Reconnect,
            "op7+close" => Self::ReconnectAndClose { code: code(arg)? },
            "op9" if arg == Some("none") => Self::InvalidSessionWithoutData,
            "reject-identify" => Self::RejectIdentify {
                code: match arg {
                    Some("off") => None,
                    other => Some(code(other)?),
                },
            },
            "op9" => Self::InvalidSession {
                resumable: on(arg)?,
            },
            "op1" => Self::HeartbeatRequest,
            "acks" => Self::Acks { on: on(arg)? },
            "stall" => Self::Stall { on: on(arg)? },
            "refuse" => Self::Refuse { on: on(arg)? },
            "429" => Self::Reject {
                status: 429,
                retry_after: Some(arg.unwrap_or("1").to_owned()),
                times: Some(1),
            },
            "reject" => Self::Reject {
                status: code(arg)?,
                retry_after: None,
                times: None,
            },
            "drop-after" => Self::DropAfterEstablished {
                after_ms: arg.map(|_| number(arg)).transpose()?,
            },
            "invalidate" => Self::InvalidateSessions,
            "text" => Self::SendText {
                text: line.trim_start()["text".len()..].trim().to_owned(),
            },
            "binary" => Self::SendBinary {
                bytes: vec![0x83, 0x6d, 0, 0, 0, 0],
            },
            "big" => Self::SendOversized {
                bytes: usize::try_from(number(arg)?).map_err(|e| e.to_string())?,
            },
            _ => {
                return Err(
                    "faults: drop | reset | close <code> | op7 | op7+close <code> | op9 <true|false|none> \
                     | op1 | acks <on|off> | stall <on|off> | refuse <on|off> | 429 <seconds> \
                     | reject <status> | drop-after [ms] | reject-identify <code|off> | invalidate | text <frame> | binary | big <bytes>"
                        .to_owned(),
                );
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_commands_parse() {
        assert_eq!(Fault::parse("close 4004"), Ok(Fault::Close { code: 4004 }));
        assert_eq!(
            Fault::parse("op9 false"),
            Ok(Fault::InvalidSession { resumable: false })
        );
        assert_eq!(
            Fault::parse("op9 none"),
            Ok(Fault::InvalidSessionWithoutData)
        );
        assert_eq!(
            Fault::parse("reject-identify 4000"),
            Ok(Fault::RejectIdentify { code: Some(4000) })
        );
        assert_eq!(
            Fault::parse("reject-identify off"),
            Ok(Fault::RejectIdentify { code: None })
        );
        assert_eq!(Fault::parse("acks off"), Ok(Fault::Acks { on: false }));
        assert_eq!(
            Fault::parse("429 3"),
            Ok(Fault::Reject {
                status: 429,
                retry_after: Some("3".into()),
                times: Some(1)
            })
        );
        assert_eq!(
            Fault::parse("drop-after"),
            Ok(Fault::DropAfterEstablished { after_ms: None })
        );
        assert_eq!(
            Fault::parse("text {\"op\":42}"),
            Ok(Fault::SendText {
                text: "{\"op\":42}".into()
            })
        );
        assert!(Fault::parse("close 99999").is_err());
        assert!(Fault::parse("explode").is_err());
    }
}
