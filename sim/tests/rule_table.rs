//! The referee's close code table against the policy's classification.
//!
//! The gateway model reads close codes only through
//! [`reconnect_sim::rules`], written from the Discord docs. This test is the
//! one place that puts the policy's beliefs beside it: every disagreement is
//! printed (run with `--nocapture` to see them). Where the docs are explicit
//! (the "Reconnect: false" codes, which codes end a session, a client's
//! 1000/1001) a disagreement fails the test: the docs decide, and the
//! referee does not bend. Where the docs say nothing (4005, 4008, unlisted
//! codes) the difference is only reported.

use reconnect_policy::{CloseAction, CloseCode};
use reconnect_sim::rules::{
    self, CLOSE_CODES, SessionAfterClose, client_close_ends_session, forbids_reconnect,
    server_close_ends_session,
};

/// Every code worth comparing: the table, the standard WebSocket codes, and
/// the unlisted gateway range around the table.
fn codes() -> Vec<u16> {
    let mut codes: Vec<u16> = (1000..=1015).chain(4000..=4020).collect();
    codes.extend(CLOSE_CODES.iter().map(|r| r.code));
    codes.extend([0, 3000, 4999, u16::MAX]);
    codes.sort_unstable();
    codes.dedup();
    codes
}

#[test]
fn the_referee_table_and_the_policy_agree_wherever_the_docs_are_explicit() {
    let mut binding = Vec::new();
    let mut informative = Vec::new();
    for code in codes() {
        let policy = CloseCode::from_u16(code);
        let documented = rules::close_rule(code).map(|r| r.session);
        let explicit = !matches!(documented, Some(SessionAfterClose::Unspecified) | None)
            || (1000..=1015).contains(&code);

        if policy.is_fatal() != forbids_reconnect(code) {
            binding.push(format!(
                "{code}: policy says fatal = {}, the docs say fatal = {}",
                policy.is_fatal(),
                forbids_reconnect(code)
            ));
        }
        if policy.keeps_session_when_sent_by_client() == client_close_ends_session(code) {
            binding.push(format!(
                "{code}: policy says a client close keeps the session = {}, the docs say {}",
                policy.keeps_session_when_sent_by_client(),
                !client_close_ends_session(code)
            ));
        }
        // The policy re-identifies (or gives up) exactly when it believes the
        // server's close ended the session.
        let policy_ends = matches!(
            policy.action(),
            CloseAction::Reidentify | CloseAction::GiveUp
        );
        if policy_ends != server_close_ends_session(code) {
            let line = format!(
                "{code}: policy treats a server close as ending the session = {policy_ends}, the referee = {} ({:?})",
                server_close_ends_session(code),
                documented
            );
            if explicit {
                binding.push(line);
            } else {
                informative.push(line);
            }
        }
    }
    for line in &informative {
        println!("differs where the docs are silent: {line}");
    }
    for line in &binding {
        println!("DISAGREES with the docs: {line}");
    }
    assert!(
        binding.is_empty(),
        "the policy disagrees with the documented rules:\n{}",
        binding.join("\n")
    );
}

#[test]
fn the_table_lists_every_documented_gateway_code_once() {
    let listed: Vec<u16> = CLOSE_CODES.iter().map(|r| r.code).collect();
    let expected: Vec<u16> = (4000..=4014).filter(|&c| c != 4006).collect();
    assert_eq!(listed, expected);
    for r in CLOSE_CODES {
        assert!(!r.name.is_empty(), "{}", r.code);
    }
}
