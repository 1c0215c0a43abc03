//! The dispatch event names the Discord Gateway documents.
//!
//! An event whose name is not here is still delivered (with its sequence
//! number, which the session depends on); it is only counted and logged,
//! so a gateway that starts sending a new event never breaks the client.

/// Every receive event of the Discord Gateway documentation
/// (`developers/events/gateway-events`), sorted for a binary search.
const KNOWN: &[&str] = &[
    "APPLICATION_COMMAND_PERMISSIONS_UPDATE",
    "AUTO_MODERATION_ACTION_EXECUTION",
    "AUTO_MODERATION_RULE_CREATE",
    "AUTO_MODERATION_RULE_DELETE",
    "AUTO_MODERATION_RULE_UPDATE",
    "CHANNEL_CREATE",
    "CHANNEL_DELETE",
    "CHANNEL_PINS_UPDATE",
    "CHANNEL_UPDATE",
    "ENTITLEMENT_CREATE",
    "ENTITLEMENT_DELETE",
    "ENTITLEMENT_UPDATE",
    "GUILD_AUDIT_LOG_ENTRY_CREATE",
    "GUILD_BAN_ADD",
    "GUILD_BAN_REMOVE",
    "GUILD_CREATE",
    "GUILD_DELETE",
    "GUILD_EMOJIS_UPDATE",
    "GUILD_INTEGRATIONS_UPDATE",
    "GUILD_MEMBERS_CHUNK",
    "GUILD_MEMBER_ADD",
    "GUILD_MEMBER_REMOVE",
    "GUILD_MEMBER_UPDATE",
    "GUILD_ROLE_CREATE",
    "GUILD_ROLE_DELETE",
    "GUILD_ROLE_UPDATE",
    "GUILD_SCHEDULED_EVENT_CREATE",
    "GUILD_SCHEDULED_EVENT_DELETE",
    "GUILD_SCHEDULED_EVENT_UPDATE",
    "GUILD_SCHEDULED_EVENT_USER_ADD",
    "GUILD_SCHEDULED_EVENT_USER_REMOVE",
    "GUILD_SOUNDBOARD_SOUNDS_UPDATE",
    "GUILD_SOUNDBOARD_SOUND_CREATE",
    "GUILD_SOUNDBOARD_SOUND_DELETE",
    "GUILD_SOUNDBOARD_SOUND_UPDATE",
    "GUILD_STICKERS_UPDATE",
    "GUILD_UPDATE",
    "INTEGRATION_CREATE",
    "INTEGRATION_DELETE",
    "INTEGRATION_UPDATE",
    "INTERACTION_CREATE",
    "INVITE_CREATE",
    "INVITE_DELETE",
    "MESSAGE_CREATE",
    "MESSAGE_DELETE",
    "MESSAGE_DELETE_BULK",
    "MESSAGE_POLL_VOTE_ADD",
    "MESSAGE_POLL_VOTE_REMOVE",
    "MESSAGE_REACTION_ADD",
    "MESSAGE_REACTION_REMOVE",
    "MESSAGE_REACTION_REMOVE_ALL",
    "MESSAGE_REACTION_REMOVE_EMOJI",
    "MESSAGE_UPDATE",
    "PRESENCE_UPDATE",
    "RATE_LIMITED",
    "READY",
    "RESUMED",
    "SOUNDBOARD_SOUNDS",
    "STAGE_INSTANCE_CREATE",
    "STAGE_INSTANCE_DELETE",
    "STAGE_INSTANCE_UPDATE",
    "SUBSCRIPTION_CREATE",
    "SUBSCRIPTION_DELETE",
    "SUBSCRIPTION_UPDATE",
    "THREAD_CREATE",
    "THREAD_DELETE",
    "THREAD_LIST_SYNC",
    "THREAD_MEMBERS_UPDATE",
    "THREAD_MEMBER_UPDATE",
    "THREAD_UPDATE",
    "TYPING_START",
    "USER_UPDATE",
    "VOICE_CHANNEL_EFFECT_SEND",
    "VOICE_SERVER_UPDATE",
    "VOICE_STATE_UPDATE",
    "WEBHOOKS_UPDATE",
];

/// Whether `name` is a documented dispatch event.
pub(crate) fn is_known(name: &str) -> bool {
    KNOWN.binary_search(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_so_the_search_works() {
        assert!(KNOWN.windows(2).all(|w| w[0] < w[1]));
        assert!(is_known("MESSAGE_CREATE"));
        assert!(is_known("READY"));
        assert!(!is_known("SOMETHING_NEW"));
        assert!(!is_known(""));
    }
}
