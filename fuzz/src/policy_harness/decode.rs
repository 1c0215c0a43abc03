//! Turns libFuzzer's bytes into a [`Case`] for the `policy_sequence` target.
//!
//! The decoding follows the property tests' generators in spirit (every
//! backoff strategy, hostile timeouts, Retry-After values, heartbeat
//! intervals, sequence numbers, close codes and clocks), but every choice is
//! a few bytes of input, so libFuzzer's coverage feedback steers the whole
//! case: set-up and steps alike. Running out of bytes ends the case; it
//! never fails it.

use arbitrary::{Result, Unstructured};
use reconnect_policy::{
    BackoffConfig, BackoffStrategy, ConnectFailure, MAX_DELAY_MS, PolicyConfig, SendLimit,
    SessionStartLimit, ZombieRule,
};

use super::{Case, Ev, FATAL_CODES, GATEWAY_URL, Kind, RESUME_URLS, SESSION_IDS, SeqSpec, Step};

/// The longest case decoded; longer inputs are cut here, so one input can
/// never take long to run.
///
/// The run's cost grows with its steps, and libFuzzer's inputs drift long,
/// so this bounds the executions per second. 128 keeps every limit the
/// decoder can configure reachable within one case, with room to spare: the
/// longest is 19 session starts spent one Identify at a time (dial, Hello,
/// READY, a close, a wait: about 6 steps each, 114 in all); 19 retries take
/// about 40 steps, the elapsed-time limit 5 (2 minutes a step), four failed
/// resumes about 20. What a longer case adds is more of the same cycles:
/// the one case the fuzzer has found so far failed at step 134 of its
/// input, and libFuzzer's minimizer reproduces it in 8 steps
/// (`corpus/policy_sequence/regression-identify-answer-after-a-late-wake`).
pub const MAX_STEPS: usize = 128;

/// Decodes one case. Every input decodes to a case whose configuration
/// [`PolicyConfig::validate`] accepts.
///
/// # Errors
///
/// Only what [`Unstructured`] reports for malformed lengths; running out of
/// bytes is not an error (the remaining choices take their first value).
pub fn case(u: &mut Unstructured<'_>) -> Result<Case> {
    let seed = u.arbitrary()?;
    let shard = u.int_in_range(0..=7)?;
    let config = config(u)?;
    let limit = limit(u)?;
    let auto_close = u.arbitrary()?;
    let honest = u.arbitrary()?;
    let start = match u.int_in_range(0..=3u8)? {
        0 => 0,
        1 => u.int_in_range(0..=1_000_000_000_000)?,
        2 => u64::MAX - u.int_in_range(0..=500_000)?,
        _ => u.arbitrary()?,
    };
    // A step takes at least one byte: reserve once instead of growing.
    let mut steps = Vec::with_capacity(u.len().min(MAX_STEPS));
    while !u.is_empty() && steps.len() < MAX_STEPS {
        steps.push(step(u)?);
    }
    Ok(Case {
        seed,
        shard,
        config,
        limit,
        auto_close,
        honest,
        start,
        steps,
    })
}

fn config(u: &mut Unstructured<'_>) -> Result<PolicyConfig> {
    let mut c = PolicyConfig::with_gateway_url(GATEWAY_URL);
    let strategy = *u.choose(&BackoffStrategy::ALL)?;
    let base_ms = u.int_in_range(1..=5_000)?;
    let extra = if u.arbitrary()? {
        0
    } else {
        u.int_in_range(0..=120_000)?
    };
    c.backoff = BackoffConfig {
        strategy,
        base_ms,
        cap_ms: base_ms + extra,
    };
    c.guard_ms = u.int_in_range(0..=5_000)?;
    let (a, b) = (u.int_in_range(0..=6_000)?, u.int_in_range(0..=6_000)?);
    c.decision.invalid_session_wait_min_ms = a.min(b);
    c.decision.invalid_session_wait_max_ms = a.max(b);
    c.timeouts.connect_ms = u.int_in_range(1..=20_000)?;
    c.timeouts.hello_ms = u.int_in_range(1..=30_000)?;
    c.timeouts.handshake_ms = u.int_in_range(1..=40_000)?;
    c.timeouts.close_ms = u.int_in_range(1..=10_000)?;
    c.zombie = if u.arbitrary()? {
        ZombieRule::AckOnly
    } else {
        ZombieRule::AnyFrame
    };
    c.stability.window_ms = if u.arbitrary()? {
        0
    } else {
        u.int_in_range(1..=120_000)?
    };
    c.stability.reset_on_first_ack = u.arbitrary()?;
    c.resume.max_failed_resumes = u.int_in_range(1..=4)?;
    c.resume.drop_session_on_dial_failure = u.arbitrary()?;
    c.give_up.max_retries = if u.ratio(1, 5)? {
        Some(u.int_in_range(1..=19)?)
    } else {
        None
    };
    c.give_up.max_elapsed_ms = if u.ratio(1, 5)? {
        Some(u.int_in_range(1..=600_000)?)
    } else {
        None
    };
    c.send_limit = if u.ratio(3, 4)? {
        SendLimit::DISCORD
    } else {
        SendLimit {
            commands: u.int_in_range(1..=9)?,
            window_ms: u.int_in_range(1..=10_000)?,
        }
    };
    Ok(c)
}

fn limit(u: &mut Unstructured<'_>) -> Result<SessionStartLimit> {
    if u.ratio(3, 4)? {
        return Ok(SessionStartLimit::DISCORD_DEFAULT);
    }
    let total = u.int_in_range(1..=19)?;
    Ok(SessionStartLimit {
        total,
        remaining: u.int_in_range(0..=19)?.min(total),
        reset_after_ms: u.int_in_range(1..=600_000)?,
        max_concurrency: u.int_in_range(0..=3)?,
    })
}

fn step(u: &mut Unstructured<'_>) -> Result<Step> {
    Ok(match u.int_in_range(0..=31u8)? {
        0..=7 => Step::Progress(u.arbitrary()?),
        8..=10 => Step::Advance(u.int_in_range(0..=120_000)?),
        11..=13 => Step::AdvanceToTimeout,
        14 => Step::Back(u.int_in_range(1..=60_000)?),
        15 => Step::NearEnd(u.int_in_range(0..=200_000)?),
        16 => Step::On(Ev::Closed(Some(*u.choose(&FATAL_CODES)?))),
        17 => Step::Stale(u.arbitrary()?, ev(u)?),
        _ => Step::On(ev(u)?),
    })
}

fn ev(u: &mut Unstructured<'_>) -> Result<Ev> {
    Ok(match u.int_in_range(0..=10u8)? {
        0 => Ev::Opened,
        1 => Ev::ConnectFailed(failure(u)?),
        2 => Ev::Hello(hello(u)?),
        3 => Ev::Dispatch(seq(u)?, kind(u)?),
        4 => Ev::Ack,
        5 => Ev::HeartbeatRequest,
        6 => Ev::Reconnect,
        7 => Ev::InvalidSession(u.arbitrary()?),
        8 => Ev::OtherFrame,
        9 => Ev::Closed(close_code(u)?),
        _ => Ev::CloseAck,
    })
}

fn failure(u: &mut Unstructured<'_>) -> Result<ConnectFailure> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => ConnectFailure::Refused,
        1 => ConnectFailure::TimedOut,
        2 => ConnectFailure::Dns,
        3 => ConnectFailure::Tls,
        4 => ConnectFailure::Rejected {
            status: *u.choose(&[400, 401, 403, 404, 500, 502, 503])?,
        },
        _ => ConnectFailure::RateLimited {
            retry_after_ms: match u.int_in_range(0..=5u8)? {
                0 => MAX_DELAY_MS,
                1 => u64::MAX,
                2 => u.arbitrary()?,
                _ => u.int_in_range(0..=120_000)?,
            },
        },
    })
}

/// Documented codes, unknown ones, any `u16`, or none.
fn close_code(u: &mut Unstructured<'_>) -> Result<Option<u16>> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => None,
        1 => Some(u.arbitrary()?),
        2 => Some(*u.choose(&[1000, 1001, 1005, 1006, 1011, 1012, 1013, 1015])?),
        _ => Some(u.int_in_range(4000..=4015)?),
    })
}

fn hello(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => *u.choose(&[0, 1, 999, 41_250, 300_001, u64::MAX])?,
        1 => u.arbitrary()?,
        _ => u.int_in_range(0..=400_000)?,
    })
}

fn seq(u: &mut Unstructured<'_>) -> Result<SeqSpec> {
    Ok(match u.int_in_range(0..=9u8)? {
        0 => SeqSpec::Absent,
        1 => SeqSpec::Repeat,
        2 => SeqSpec::Back(u.int_in_range(1..=4)?),
        3 => SeqSpec::Huge(u.int_in_range(0..=2)?),
        _ => SeqSpec::Next(u.int_in_range(1..=3)?),
    })
}

fn kind(u: &mut Unstructured<'_>) -> Result<Kind> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => Kind::Ready {
            session: u.int_in_range(0..=SESSION_IDS.len() - 1)?,
            url: u.int_in_range(0..=RESUME_URLS.len() - 1)?,
        },
        1 => Kind::Resumed,
        _ => Kind::Other,
    })
}
