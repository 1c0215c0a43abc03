//! Gateway payloads out: the JSON of Identify, Resume and Heartbeat.
//!
//! The policy says *which* command to send and with which session and
//! sequence number; this module only writes it down. It is the one place
//! the token is read ([`Token`] is otherwise opaque), and the text it
//! returns goes straight to the socket: it is never logged.

use reconnect_policy::Command;
use serde::Serialize;

use crate::gateway_command::Presence;
use crate::token::Token;

/// What Identify says about the bot besides the token.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    /// Gateway intents.
    pub(crate) intents: u64,
    /// `[shard_id, shard_count]`.
    pub(crate) shard: [u32; 2],
    /// The presence to start with.
    pub(crate) presence: Option<Presence>,
    /// Members above which a guild counts as large (50 to 250).
    pub(crate) large_threshold: Option<u8>,
    /// `properties`.
    pub(crate) properties: IdentifyProperties,
}

/// Identify's `properties`: what the bot says it runs on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdentifyProperties {
    /// The operating system.
    pub os: String,
    /// The library (the docs call it `browser`).
    pub browser: String,
    /// The library again (`device`).
    pub device: String,
}

impl Default for IdentifyProperties {
    /// This operating system and this library's name.
    fn default() -> Self {
        Self {
            os: std::env::consts::OS.to_owned(),
            browser: env!("CARGO_PKG_NAME").to_owned(),
            device: env!("CARGO_PKG_NAME").to_owned(),
        }
    }
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
    properties: &'a IdentifyProperties,
    shard: [u32; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    presence: Option<&'a Presence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    large_threshold: Option<u8>,
}

#[derive(Serialize)]
struct ResumeData<'a> {
    token: &'a str,
    session_id: &'a str,
    seq: u64,
}

/// The text frame for `command`.
pub(crate) fn encode(command: &Command, token: &Token, identity: &Identity) -> String {
    let json = match command {
        Command::Identify => serde_json::to_string(&Payload {
            op: 2,
            d: IdentifyData {
                token: token.expose(),
                intents: identity.intents,
                properties: &identity.properties,
                shard: identity.shard,
                presence: identity.presence.as_ref(),
                large_threshold: identity.large_threshold,
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
    use crate::gateway_command::ActivityKind;

    fn id() -> Identity {
        Identity {
            intents: 513,
            shard: [1, 4],
            presence: None,
            large_threshold: None,
            properties: IdentifyProperties::default(),
        }
    }

    fn value(command: &Command) -> Value {
        serde_json::from_str(&encode(command, &Token::new("tok"), &id())).unwrap()
    }

    #[test]
    fn identify_carries_token_intents_and_shard() {
        let v = value(&Command::Identify);
        assert_eq!(v["op"], 2);
        assert_eq!(v["d"]["token"], "tok");
        assert_eq!(v["d"]["intents"], 513);
        assert_eq!(v["d"]["shard"], json!([1, 4]));
        assert_eq!(v["d"]["properties"]["browser"], "reconnect-client");
        assert!(v["d"].get("presence").is_none() && v["d"].get("large_threshold").is_none());
    }

    #[test]
    fn identify_carries_the_configured_presence_threshold_and_properties() {
        let identity = Identity {
            presence: Some(Presence::online(ActivityKind::Playing, "chess")),
            large_threshold: Some(250),
            properties: IdentifyProperties {
                os: "linux".into(),
                browser: "my-bot".into(),
                device: "my-bot".into(),
            },
            ..id()
        };
        let v: Value =
            serde_json::from_str(&encode(&Command::Identify, &Token::new("tok"), &identity))
                .unwrap();
        assert_eq!(v["d"]["presence"]["activities"][0]["name"], "chess");
        assert_eq!(v["d"]["presence"]["status"], "online");
        assert_eq!(v["d"]["large_threshold"], 250);
        assert_eq!(v["d"]["properties"]["browser"], "my-bot");
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
