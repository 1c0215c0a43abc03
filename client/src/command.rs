//! Gateway payloads out: the JSON of Identify, Resume and Heartbeat.
//!
//! The policy says *which* command to send and with which session and
//! sequence number; this module only writes it down. It is the one place
//! the token is read ([`Token`] is otherwise opaque), and the text it
//! returns goes straight to the socket: it is never logged.

use reconnect_policy::Command;
use serde::Serialize;

use crate::token::Token;

/// What Identify says about the bot besides the token.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Identity {
    /// Gateway intents.
    pub(crate) intents: u64,
    /// `[shard_id, shard_count]`.
    pub(crate) shard: [u32; 2],
}

#[derive(Serialize)]
struct Payload<D> {
    op: u8,
    d: D,
}

#[derive(Serialize)]
struct IdentifyData<'a> {
    token: &'a str,
    intents: u64,
    properties: Properties,
    shard: [u32; 2],
}

#[derive(Serialize)]
struct Properties {
    os: &'static str,
    browser: &'static str,
    device: &'static str,
}

#[derive(Serialize)]
struct ResumeData<'a> {
    token: &'a str,
    session_id: &'a str,
    seq: u64,
}

/// The text frame for `command`.
pub(crate) fn encode(command: &Command, token: &Token, identity: Identity) -> String {
    let json = match command {
        Command::Identify => serde_json::to_string(&Payload {
            op: 2,
            d: IdentifyData {
                token: token.expose(),
                intents: identity.intents,
                properties: Properties {
                    os: std::env::consts::OS,
                    browser: env!("CARGO_PKG_NAME"),
                    device: env!("CARGO_PKG_NAME"),
                },
                shard: identity.shard,
            },
        }),
        Command::Resume { session_id, seq } => serde_json::to_string(&Payload {
            op: 6,
            d: ResumeData {
                token: token.expose(),
                session_id,
                seq: *seq,
            },
        }),
        Command::Heartbeat { seq } => serde_json::to_string(&Payload { op: 1, d: seq }),
    };
    // Serialising these plain structs cannot fail.
    json.unwrap_or_default()
}

/// A name for logs (never the payload).
pub(crate) const fn name(command: &Command) -> &'static str {
    match command {
        Command::Identify => "Identify",
        Command::Resume { .. } => "Resume",
        Command::Heartbeat { .. } => "Heartbeat",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const ID: Identity = Identity {
        intents: 513,
        shard: [1, 4],
    };

    fn value(command: &Command) -> Value {
        serde_json::from_str(&encode(command, &Token::new("tok"), ID)).unwrap()
    }

    #[test]
    fn identify_carries_token_intents_and_shard() {
        let v = value(&Command::Identify);
        assert_eq!(v["op"], 2);
        assert_eq!(v["d"]["token"], "tok");
        assert_eq!(v["d"]["intents"], 513);
        assert_eq!(v["d"]["shard"], json!([1, 4]));
        assert_eq!(v["d"]["properties"]["browser"], "reconnect-client");
    }

    #[test]
    fn resume_carries_the_policys_session_and_sequence() {
        let v = value(&Command::Resume {
            session_id: "abc".into(),
            seq: 41,
        });
        assert_eq!(
            v,
            json!({"op": 6, "d": {"token": "tok", "session_id": "abc", "seq": 41}})
        );
    }

    #[test]
    fn heartbeat_sends_the_last_sequence_or_null() {
        assert_eq!(
            value(&Command::Heartbeat { seq: Some(9) }),
            json!({"op": 1, "d": 9})
        );
        assert_eq!(
            value(&Command::Heartbeat { seq: None }),
            json!({"op": 1, "d": null})
        );
    }
}
