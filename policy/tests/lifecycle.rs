//! The policy's life as a health check and a driver see it: the state it
//! reports at each step, the optional give-up limits, the first-ACK
//! stability option, the command budget, and a graceful shutdown.

mod support;

use reconnect_policy::{
    CloseCode, ConnectFailure, Event, GiveUpLimits, GiveUpReason, PolicyConfig, PolicyState,
    Recovery, SendError, StabilityRule,
};
use support::{Driver, Out, closed, t};

fn refused() -> Event {
    Event::ConnectFailed {
        failure: ConnectFailure::Refused,
    }
}

/// Refuses the attempt being dialled, then sleeps until the policy makes
/// its next attempt; `false` when it gave up instead.
fn refuse_and_wait(d: &mut Driver) -> bool {
    let attempts = d.connects_since(0).len();
    let _ = d.send(refused());
    while d.connects_since(0).len() == attempts {
        if d.policy.state().is_terminal() || !d.wake() {
            return false;
        }
    }
    true
}

#[test]
fn the_state_is_readable_at_every_step() {
    let mut d = Driver::new(PolicyConfig::default());
    d.auto_ack = true;
    assert_eq!(
        d.policy.state(),
        PolicyState::Connecting {
            recovery: Recovery::Reidentify
        }
    );
    d.establish();
    assert_eq!(d.policy.state(), PolicyState::Connected { stable: false });
    d.run_for(61_000);
    assert_eq!(d.policy.state(), PolicyState::Connected { stable: true });
    let _ = d.send(closed(None));
    let PolicyState::BackingOff { until, recovery } = d.policy.state() else {
        panic!("{:?}", d.policy.state());
    };
    assert_eq!(recovery, Recovery::Resume);
    assert!(until > t(d.now));
    assert!(!d.policy.state().is_terminal());
}

#[test]
fn give_up_after_the_configured_number_of_retries() {
    let mut d = Driver::new(PolicyConfig {
        give_up: GiveUpLimits {
            max_retries: Some(3),
            max_elapsed_ms: None,
            ..GiveUpLimits::default()
        },
        ..PolicyConfig::default()
    });
    for _ in 0..10 {
        if !refuse_and_wait(&mut d) {
            break;
        }
    }
    assert_eq!(
        d.connects_since(0).len(),
        4,
        "the first attempt and three retries"
    );
    assert_eq!(
        d.policy.state(),
        PolicyState::GivenUp {
            reason: GiveUpReason::RetriesExhausted { retries: 3 }
        }
    );
    assert!(
        d.outputs_since(0)
            .iter()
            .any(|(_, o)| matches!(o, Out::GiveUp(GiveUpReason::RetriesExhausted { .. })))
    );
    assert_eq!(d.policy.poll_timeout(), None);
}

#[test]
fn give_up_after_the_configured_time_without_a_stable_connection() {
    let mut d = Driver::new(PolicyConfig {
        give_up: GiveUpLimits {
            max_retries: None,
            max_elapsed_ms: Some(120_000),
            ..GiveUpLimits::default()
        },
        ..PolicyConfig::default()
    });
    for _ in 0..1_000 {
        if !refuse_and_wait(&mut d) {
            break;
        }
    }
    let PolicyState::GivenUp {
        reason: GiveUpReason::TimeExhausted { elapsed_ms },
    } = d.policy.state()
    else {
        panic!("{:?}", d.policy.state());
    };
    assert!(elapsed_ms >= 120_000, "{elapsed_ms}");
    // It gave up at the first failure past the limit, not long after.
    assert!(elapsed_ms < 120_000 + 70_000, "{elapsed_ms}");
}

#[test]
fn without_limits_the_policy_never_gives_up() {
    let mut d = Driver::new(PolicyConfig::default());
    for _ in 0..500 {
        assert!(refuse_and_wait(&mut d));
    }
    // Five hundred failures in a row later, the backoff sits at its cap.
    assert!(d.policy.retries() >= 500);
}

#[test]
fn the_first_ack_proves_stability_when_configured() {
    let config = PolicyConfig {
        stability: StabilityRule {
            window_ms: 3_600_000,
            reset_on_first_ack: true,
            credit_ms: 0,
        },
        ..PolicyConfig::default()
    };
    let mut d = Driver::new(config);
    // Fail twice so that there is a backoff to reset.
    assert!(refuse_and_wait(&mut d));
    assert!(refuse_and_wait(&mut d));
    d.establish();
    assert_eq!(d.policy.retries(), 2);
    d.auto_ack = true;
    d.run_for(45_000);
    assert_eq!(d.policy.retries(), 0, "the first ACK reset the backoff");
    assert_eq!(d.policy.state(), PolicyState::Connected { stable: true });
}

#[test]
fn commands_stay_within_the_send_limit_and_wait_for_a_session() {
    let mut d = Driver::new(PolicyConfig::default());
    assert_eq!(d.policy.try_send_command(t(0)), Err(SendError::NoSession));
    d.establish();
    let mut sent = 0;
    let start = d.now;
    for ms in (start..start + 60_000).step_by(10) {
        while d.policy.try_send_command(t(ms)).is_ok() {
            sent += 1;
        }
    }
    // 120 per 60 s, less what heartbeats, Identify and op 1 replies need.
    assert!(sent > 100 && sent <= 120 - 4, "{sent} commands in 60 s");
}

#[test]
fn shutdown_closes_with_1000_and_stops_for_good() {
    let mut d = Driver::connected(5);
    let from = d.mark();
    d.policy.shutdown(t(d.now));
    d.drain();
    let closes = d.closes_since(from);
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].2, CloseCode::Normal);
    assert_eq!(d.policy.session(), None, "the session is ended");
    let _ = d.send(closed(Some(1000)));
    assert_eq!(d.policy.state(), PolicyState::Stopped);
    d.run_for(3_600_000);
    assert!(d.connects_since(from).is_empty());
}

#[test]
fn shutdown_while_dialling_aborts_the_attempt() {
    let mut d = Driver::new(PolicyConfig::default());
    let from = d.mark();
    d.policy.shutdown(t(0));
    d.drain();
    assert!(
        d.outputs_since(from)
            .iter()
            .any(|(_, o)| matches!(o, Out::Abort { .. }))
    );
    assert_eq!(d.policy.state(), PolicyState::Stopped);
    assert_eq!(d.policy.poll_timeout(), None);
}
