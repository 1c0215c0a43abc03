//! The `client_frame` target: arbitrary text frames into the client's
//! gateway payload parser.
//!
//! Beyond "never panics", what the parser accepts must mean what the frame
//! says: a dispatch keeps its data as valid JSON and is READY/RESUMED to the
//! policy exactly when its name says so, an unknown opcode is really one
//! the parser has no case for, and a frame rebuilt from the parsed result
//! parses to the same thing.

use crate::Outcome;
use reconnect_client::payload::{Inbound, parse};
use reconnect_policy::Dispatch;
use serde::de::IgnoredAny;
use serde_json::json;

/// The opcodes the parser reads; any other is [`Inbound::UnknownOpcode`].
const KNOWN_OPCODES: [u64; 6] = [0, 1, 7, 9, 10, 11];

/// Parses `data` as one text frame (frames that are not UTF-8 never reach
/// the parser: the WebSocket layer refuses them) and checks the result.
///
/// # Panics
///
/// When the parser panics, or what it returns contradicts the frame.
pub fn check(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::Refused;
    };
    let Ok(inbound) = parse(text) else {
        return Outcome::Refused;
    };
    let rebuilt = match &inbound {
        Inbound::Dispatch { event, kind } => {
            let data = event.data.get();
            if let Err(e) = serde_json::from_str::<IgnoredAny>(data) {
                panic!("dispatch data {data:?} is not JSON ({e}): {text:?}");
            }
            let expected_kind = match (event.name.as_str(), kind) {
                ("READY", Dispatch::Ready { .. }) => true,
                ("RESUMED", Dispatch::Resumed) => true,
                (name, Dispatch::Other) => name != "READY" && name != "RESUMED",
                _ => false,
            };
            assert!(expected_kind, "{:?} read as {kind:?}: {text:?}", event.name);
            // The data verbatim: a `Value` would round numbers.
            let name = serde_json::Value::from(event.name.as_str());
            format!(
                r#"{{"op":0,"s":{},"t":{name},"d":{data}}}"#,
                json!(event.seq)
            )
        }
        Inbound::Hello {
            heartbeat_interval_ms,
        } => json!({"op": 10, "d": {"heartbeat_interval": heartbeat_interval_ms}}).to_string(),
        Inbound::HeartbeatAck => json!({"op": 11}).to_string(),
        Inbound::HeartbeatRequest => json!({"op": 1, "d": null}).to_string(),
        Inbound::Reconnect => json!({"op": 7, "d": null}).to_string(),
        Inbound::InvalidSession { resumable } => json!({"op": 9, "d": resumable}).to_string(),
        Inbound::UnknownOpcode(op) => {
            assert!(
                !KNOWN_OPCODES.contains(op),
                "opcode {op} read as unknown: {text:?}"
            );
            json!({ "op": op }).to_string()
        }
        other => panic!("an inbound kind this target does not know: {other:?}"),
    };
    let reparsed = parse(&rebuilt)
        .unwrap_or_else(|e| panic!("the rebuilt frame {rebuilt} is refused ({e}): {text:?}"));
    assert_eq!(
        summary(&inbound),
        summary(&reparsed),
        "rebuilt as {rebuilt}: {text:?}"
    );
    Outcome::Checked
}

/// What a parsed frame says, as comparable text.
fn summary(inbound: &Inbound) -> String {
    match inbound {
        Inbound::Dispatch { event, kind } => format!(
            "dispatch {:?} {:?} {kind:?} {}",
            event.seq,
            event.name,
            event.data.get()
        ),
        other => format!("{other:?}"),
    }
}
