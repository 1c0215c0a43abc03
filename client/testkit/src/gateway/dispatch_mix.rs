//! Dispatch bodies shaped like the gateway's own, for measuring what
//! transport compression saves on a realistic mix (the default tiny bodies
//! would flatter or shortchange it).
//!
//! Each body has the fields and sizes of the real event (snowflake ids,
//! ISO timestamps, user objects, message text that varies), drawn
//! deterministically from the event's number so runs are comparable.

use serde_json::{Value, json};

/// A 64-bit snowflake-like id, as the gateway sends ids: a decimal string.
fn snowflake(n: u64, salt: u64) -> String {
    let mixed = n
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(salt.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    // Discord's epoch-based ids are 18-19 digits.
    (1_100_000_000_000_000_000_u64 + mixed % 100_000_000_000_000_000).to_string()
}

fn timestamp(n: u64) -> String {
    let s = n % 60;
    let m = (n / 60) % 60;
    format!(
        "2026-11-30T12:{m:02}:{s:02}.{:06}+00:00",
        (n * 7_919) % 1_000_000
    )
}

fn user(n: u64) -> Value {
    const NAMES: [&str; 8] = [
        "ada", "grace", "linus", "margaret", "ken", "barbara", "dennis", "radia",
    ];
    let name = NAMES[(n % 8) as usize];
    json!({
        "id": snowflake(n % 500, 1),
        "username": format!("{name}{}", n % 500),
        "global_name": format!("{} {}", name.to_uppercase(), n % 97),
        "avatar": format!("{:032x}", u128::from(n % 500).wrapping_mul(0x1234_5678_9abc_def0_0fed_cba9)),
        "discriminator": "0",
        "public_flags": n % 3 * 64,
        "avatar_decoration_data": null,
    })
}

fn message_text(n: u64) -> String {
    const WORDS: [&str; 16] = [
        "the",
        "deploy",
        "is",
        "green",
        "again",
        "who",
        "broke",
        "staging",
        "lunch",
        "at",
        "noon",
        "ship",
        "it",
        "reconnect",
        "shard",
        "ok",
    ];
    let len = 4 + (n % 23);
    (0..len)
        .map(|i| WORDS[((n.wrapping_mul(31).wrapping_add(i * 7)) % 16) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// The body of event number `n` named `name` (any name not listed gets a
/// MESSAGE_CREATE-shaped body).
#[must_use]
pub fn realistic_body(name: &str, n: u64) -> Value {
    const STATUSES: [&str; 3] = ["online", "idle", "dnd"];
    const ACTIVITIES: [&str; 4] = ["Spotify", "Visual Studio Code", "a game", "Custom Status"];
    const EMOJI: [&str; 4] = ["👍", "🎉", "😂", "🔥"];
    let guild_id = snowflake(n % 40, 2);
    let channel_id = snowflake(n % 300, 3);
    let status = STATUSES[(n % 3) as usize];
    let activity = ACTIVITIES[(n % 4) as usize];
    let emoji = EMOJI[(n % 4) as usize];
    match name {
        "TYPING_START" => json!({
            "user_id": snowflake(n % 500, 1),
            "timestamp": 1_796_000_000 + n,
            "guild_id": guild_id,
            "channel_id": channel_id,
            "member": {"user": user(n), "roles": [snowflake(n % 12, 4)], "joined_at": timestamp(n), "deaf": false, "mute": false, "flags": 0},
        }),
        "PRESENCE_UPDATE" => json!({
            "user": {"id": snowflake(n % 500, 1)},
            "guild_id": guild_id,
            "status": status,
            "activities": [{
                "type": n % 4,
                "name": activity,
                "created_at": 1_796_000_000_000_u64 + n,
                "state": message_text(n / 3),
            }],
            "client_status": {"desktop": "online"},
        }),
        "MESSAGE_REACTION_ADD" => json!({
            "user_id": snowflake(n % 500, 1),
            "channel_id": channel_id,
            "message_id": snowflake(n, 5),
            "guild_id": guild_id,
            "emoji": {"id": null, "name": emoji},
            "member": {"user": user(n), "roles": [], "joined_at": timestamp(n), "deaf": false, "mute": false, "flags": 0},
            "burst": false,
            "type": 0,
        }),
        "GUILD_MEMBER_UPDATE" => json!({
            "guild_id": guild_id,
            "roles": [snowflake(n % 12, 4), snowflake(n % 7, 6)],
            "user": user(n),
            "nick": null,
            "joined_at": timestamp(n),
            "premium_since": null,
            "pending": false,
            "flags": 0,
        }),
        _ => json!({
            "id": snowflake(n, 5),
            "type": 0,
            "content": message_text(n),
            "channel_id": channel_id,
            "guild_id": guild_id,
            "author": user(n),
            "member": {"roles": [snowflake(n % 12, 4)], "joined_at": timestamp(n), "deaf": false, "mute": false, "flags": 0},
            "attachments": [],
            "embeds": [],
            "mentions": [],
            "mention_roles": [],
            "pinned": false,
            "mention_everyone": false,
            "tts": false,
            "timestamp": timestamp(n),
            "edited_timestamp": null,
            "flags": 0,
            "components": [],
            "nonce": snowflake(n, 7),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_vary_and_have_real_sizes() {
        let a = realistic_body("MESSAGE_CREATE", 1).to_string();
        let b = realistic_body("MESSAGE_CREATE", 2).to_string();
        assert_ne!(a, b);
        assert!((500..2_000).contains(&a.len()), "{}", a.len());
        for name in [
            "TYPING_START",
            "PRESENCE_UPDATE",
            "MESSAGE_REACTION_ADD",
            "GUILD_MEMBER_UPDATE",
        ] {
            assert!(realistic_body(name, 3).to_string().len() > 150, "{name}");
        }
    }
}
