//! Commands a bot sends on its own: presence update (op 3), voice state
//! update (op 4), request guild members (op 8), and any other opcode raw.
//!
//! Each command is checked before it is written: the gateway closes a
//! connection (4002 decode error, 4008 rate limited) for a payload it
//! cannot take, and a closed connection costs a reconnect, so a command
//! that breaks a documented limit is refused here with a clear error
//! instead. The opcodes of the connection's own lifecycle (heartbeat,
//! identify, resume) are the policy's alone and cannot be sent raw.

use serde::Serialize;
use serde_json::Value;

/// The largest payload the gateway accepts from a client, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 4_096;
/// The longest `nonce` of a guild members request, in bytes.
pub const MAX_NONCE_BYTES: usize = 32;
/// The most user ids one guild members request may name.
pub const MAX_MEMBER_IDS: usize = 100;
/// The most members a prefix query may ask for.
pub const MAX_MEMBER_LIMIT: u32 = 100;

/// A command for the gateway.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum GatewayCommand {
    /// op 3: the bot's status and activities.
    UpdatePresence(Presence),
    /// op 4: join, move between or leave voice channels.
    UpdateVoiceState(VoiceState),
    /// op 8: ask for a guild's members (answered by
    /// `GUILD_MEMBERS_CHUNK` dispatches).
    RequestGuildMembers(GuildMembersRequest),
    /// Any other opcode the gateway takes from clients, with its `d` as is.
    Raw {
        /// The opcode.
        op: u8,
        /// Its data.
        d: Value,
    },
}

/// A presence: what an Identify may carry and what op 3 sets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Presence {
    /// Unix time in ms since the client went idle, if it is.
    pub since: Option<u64>,
    /// The activities shown.
    pub activities: Vec<Activity>,
    /// The status.
    pub status: Status,
    /// Whether the client is away from keyboard.
    pub afk: bool,
}

impl Presence {
    /// Online, with one activity of `kind` named `name`.
    #[must_use]
    pub fn online(kind: ActivityKind, name: impl Into<String>) -> Self {
        Self {
            since: None,
            activities: vec![Activity {
                name: name.into(),
                kind,
                url: None,
                state: None,
            }],
            status: Status::Online,
            afk: false,
        }
    }
}

/// One activity of a presence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Activity {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ActivityKind,
    /// A stream URL (for [`ActivityKind::Streaming`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The text of a custom status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// An activity's type, as the gateway numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ActivityKind {
    /// 0: "Playing {name}".
    Playing,
    /// 1: "Streaming {name}".
    Streaming,
    /// 2: "Listening to {name}".
    Listening,
    /// 3: "Watching {name}".
    Watching,
    /// 4: a custom status (`state`).
    Custom,
    /// 5: "Competing in {name}".
    Competing,
}

impl Serialize for ActivityKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(match self {
            Self::Playing => 0,
            Self::Streaming => 1,
            Self::Listening => 2,
            Self::Watching => 3,
            Self::Custom => 4,
            Self::Competing => 5,
        })
    }
}

/// A presence's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// Online.
    Online,
    /// Do not disturb.
    Dnd,
    /// Away.
    Idle,
    /// Shown as offline.
    Invisible,
    /// Offline.
    Offline,
}

/// op 4's data. Ids are snowflakes, sent as strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VoiceState {
    /// The guild.
    pub guild_id: u64,
    /// The channel to join or move to; `None` leaves voice.
    pub channel_id: Option<u64>,
    /// Whether the bot mutes itself.
    pub self_mute: bool,
    /// Whether the bot deafens itself.
    pub self_deaf: bool,
}

/// op 8's data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GuildMembersRequest {
    /// The guild.
    pub guild_id: u64,
    /// Which members.
    pub members: MemberQuery,
    /// Whether to send their presences too.
    pub presences: bool,
    /// Echoed in the answering chunks (at most [`MAX_NONCE_BYTES`]).
    pub nonce: Option<String>,
}

/// Which members a [`GuildMembersRequest`] asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemberQuery {
    /// Members whose name starts with `prefix`, at most `limit` (at most
    /// [`MAX_MEMBER_LIMIT`]; an empty prefix with `limit` 0 asks for every
    /// member and needs the `GUILD_MEMBERS` intent).
    Prefix {
        /// The prefix.
        prefix: String,
        /// How many.
        limit: u32,
    },
    /// These users (at most [`MAX_MEMBER_IDS`]).
    Users(Vec<u64>),
}

/// Why a command was not sent.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// The opcode belongs to the connection's lifecycle (1 heartbeat,
    /// 2 identify, 6 resume), which the policy alone sends, or is one only
    /// the gateway sends (0, 7, 9, 10, 11).
    #[error("op {0} cannot be sent as a command")]
    ReservedOpcode(u8),
    /// A field breaks a documented limit.
    #[error("{0}")]
    Invalid(&'static str),
    /// The payload is over [`MAX_PAYLOAD_BYTES`].
    #[error("the payload is {0} bytes; the gateway takes at most {MAX_PAYLOAD_BYTES}")]
    TooLarge(usize),
}

#[derive(Serialize)]
struct Payload<'a, D> {
    op: u8,
    d: &'a D,
}

#[derive(Serialize)]
struct VoiceStateData {
    guild_id: String,
    channel_id: Option<String>,
    self_mute: bool,
    self_deaf: bool,
}

#[derive(Serialize)]
struct GuildMembersData<'a> {
    guild_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_ids: Option<Vec<String>>,
    presences: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

impl GatewayCommand {
    /// The opcode this command is sent with.
    #[must_use]
    pub const fn op(&self) -> u8 {
        match self {
            Self::UpdatePresence(_) => 3,
            Self::UpdateVoiceState(_) => 4,
            Self::RequestGuildMembers(_) => 8,
            Self::Raw { op, .. } => *op,
        }
    }

    /// The text frame for this command.
    ///
    /// # Errors
    ///
    /// A reserved opcode, a field over a documented limit, or a payload over
    /// [`MAX_PAYLOAD_BYTES`].
    pub fn encode(&self) -> Result<String, CommandError> {
        let op = self.op();
        let text = match self {
            Self::UpdatePresence(presence) => to_text(op, presence),
            Self::UpdateVoiceState(voice) => to_text(
                op,
                &VoiceStateData {
                    guild_id: voice.guild_id.to_string(),
                    channel_id: voice.channel_id.map(|c| c.to_string()),
                    self_mute: voice.self_mute,
                    self_deaf: voice.self_deaf,
                },
            ),
            Self::RequestGuildMembers(request) => {
                if request
                    .nonce
                    .as_ref()
                    .is_some_and(|n| n.len() > MAX_NONCE_BYTES)
                {
                    return Err(CommandError::Invalid("nonce is longer than 32 bytes"));
                }
                let data = match &request.members {
                    MemberQuery::Prefix { limit, .. } if *limit > MAX_MEMBER_LIMIT => {
                        return Err(CommandError::Invalid("limit is over 100"));
                    }
                    MemberQuery::Users(ids) if ids.is_empty() || ids.len() > MAX_MEMBER_IDS => {
                        return Err(CommandError::Invalid("user_ids must name 1 to 100 users"));
                    }
                    MemberQuery::Prefix { prefix, limit } => GuildMembersData {
                        guild_id: request.guild_id.to_string(),
                        query: Some(prefix),
                        limit: Some(*limit),
                        user_ids: None,
                        presences: request.presences,
                        nonce: request.nonce.as_deref(),
                    },
                    MemberQuery::Users(ids) => GuildMembersData {
                        guild_id: request.guild_id.to_string(),
                        query: None,
                        limit: None,
                        user_ids: Some(ids.iter().map(u64::to_string).collect()),
                        presences: request.presences,
                        nonce: request.nonce.as_deref(),
                    },
                };
                to_text(op, &data)
            }
            Self::Raw { op, d } => {
                if matches!(op, 0 | 1 | 2 | 6 | 7 | 9 | 10 | 11) {
                    return Err(CommandError::ReservedOpcode(*op));
                }
                to_text(*op, d)
            }
        };
        if text.len() > MAX_PAYLOAD_BYTES {
            return Err(CommandError::TooLarge(text.len()));
        }
        Ok(text)
    }
}

fn to_text<D: Serialize>(op: u8, d: &D) -> String {
    // Plain structs, strings and `Value`s always serialise.
    serde_json::to_string(&Payload { op, d }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parsed(command: &GatewayCommand) -> Value {
        serde_json::from_str(&command.encode().unwrap()).unwrap()
    }

    #[test]
    fn commands_are_written_as_the_gateway_reads_them() {
        let presence =
            GatewayCommand::UpdatePresence(Presence::online(ActivityKind::Watching, "the shards"));
        assert_eq!(
            parsed(&presence),
            json!({"op": 3, "d": {"since": null, "activities": [{"name": "the shards", "type": 3}], "status": "online", "afk": false}})
        );
        let voice = GatewayCommand::UpdateVoiceState(VoiceState {
            guild_id: 41_771_983_423_143_937,
            channel_id: None,
            self_mute: false,
            self_deaf: true,
        });
        assert_eq!(
            parsed(&voice),
            json!({"op": 4, "d": {"guild_id": "41771983423143937", "channel_id": null, "self_mute": false, "self_deaf": true}})
        );
        let members = GatewayCommand::RequestGuildMembers(GuildMembersRequest {
            guild_id: 1,
            members: MemberQuery::Users(vec![2, 3]),
            presences: true,
            nonce: Some("n1".into()),
        });
        assert_eq!(
            parsed(&members),
            json!({"op": 8, "d": {"guild_id": "1", "user_ids": ["2", "3"], "presences": true, "nonce": "n1"}})
        );
        let prefix = GatewayCommand::RequestGuildMembers(GuildMembersRequest {
            guild_id: 1,
            members: MemberQuery::Prefix {
                prefix: String::new(),
                limit: 0,
            },
            presences: false,
            nonce: None,
        });
        assert_eq!(
            parsed(&prefix),
            json!({"op": 8, "d": {"guild_id": "1", "query": "", "limit": 0, "presences": false}})
        );
        let raw = GatewayCommand::Raw {
            op: 31,
            d: json!({"guild_id": "1"}),
        };
        assert_eq!(parsed(&raw), json!({"op": 31, "d": {"guild_id": "1"}}));
    }

    #[test]
    fn commands_that_would_cost_the_connection_are_refused() {
        for op in [0, 1, 2, 6, 7, 9, 10, 11] {
            assert_eq!(
                GatewayCommand::Raw { op, d: json!(null) }.encode(),
                Err(CommandError::ReservedOpcode(op))
            );
        }
        let request = |members, nonce: &str| {
            GatewayCommand::RequestGuildMembers(GuildMembersRequest {
                guild_id: 1,
                members,
                presences: false,
                nonce: Some(nonce.to_owned()),
            })
        };
        assert!(matches!(
            request(MemberQuery::Users(vec![1]), &"n".repeat(33)).encode(),
            Err(CommandError::Invalid(_))
        ));
        assert!(matches!(
            request(MemberQuery::Users(vec![]), "n").encode(),
            Err(CommandError::Invalid(_))
        ));
        assert!(matches!(
            request(MemberQuery::Users((0..101).collect()), "n").encode(),
            Err(CommandError::Invalid(_))
        ));
        assert!(matches!(
            request(
                MemberQuery::Prefix {
                    prefix: "a".into(),
                    limit: 101
                },
                "n"
            )
            .encode(),
            Err(CommandError::Invalid(_))
        ));
        let huge = GatewayCommand::UpdatePresence(Presence::online(
            ActivityKind::Playing,
            "x".repeat(5_000),
        ));
        assert!(matches!(huge.encode(), Err(CommandError::TooLarge(n)) if n > 5_000));
        // At the limits, accepted.
        assert!(
            request(MemberQuery::Users((0..100).collect()), &"n".repeat(32))
                .encode()
                .is_ok()
        );
    }
}
