//! The policy_sequence decoder reads its bytes by hand, as `arbitrary`'s
//! `Unstructured` would: an input must decode to the case it meant when the
//! decoder was written with `Unstructured` (the committed corpus was found
//! with that decoder). This keeps that decoder, as written then, and
//! checks the two agree on the committed corpus, on pseudo-random inputs of
//! every length and on every cut of the corpus inputs (where reads run out
//! of bytes part-way).

use std::path::Path;

use arbitrary::{Result, Unstructured};
use reconnect_fuzz::policy_harness::decode::{self, MAX_STEPS};
use reconnect_fuzz::policy_harness::{
    Case, Ev, FATAL_CODES, GATEWAY_URL, Kind, RESUME_URLS, SESSION_IDS, SeqSpec, Step,
};
use reconnect_policy::{
    BackoffConfig, BackoffStrategy, ConnectFailure, MAX_DELAY_MS, PolicyConfig, SendLimit,
    SessionStartLimit, ZombieRule,
};

/// Both decoders' cases for `data`, as their `Debug` text (every field).
fn both(data: &[u8]) -> (String, String) {
    let mut u = Unstructured::new(data);
    let reference = reference_case(&mut u).expect("the reference decoder never fails");
    (
        format!("{reference:?}"),
        format!("{:?}", decode::case(data)),
    )
}

fn assert_same(data: &[u8]) {
    let (reference, ours) = both(data);
    assert_eq!(reference, ours, "the decoders differ on {data:?}");
}

#[test]
fn the_decoder_reads_the_corpus_as_unstructured_did() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/policy_sequence");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus") {
        let data = std::fs::read(entry.expect("an entry").path()).expect("an input");
        // Every cut, so that each read also runs out of bytes part-way.
        for end in 0..=data.len() {
            assert_same(&data[..end]);
        }
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn the_decoder_reads_random_bytes_as_unstructured_does() {
    // xorshift64*: reproducible, no dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for _ in 0..20_000 {
        let len = usize::try_from(next() % 700).expect("small");
        // Some inputs of only small or only large bytes, to reach the
        // extremes of each choice.
        let mask = match next() % 4 {
            0 => 0x0F,
            1 => 0xF0,
            _ => 0xFF,
        };
        let data: Vec<u8> = (0..len)
            .map(|_| {
                let b = next().to_le_bytes()[3] & mask;
                if mask == 0xF0 { b | 0x0F } else { b }
            })
            .collect();
        assert_same(&data);
    }
    assert_eq!(MAX_STEPS, 128);
}

/// Decodes one case. Every input decodes to a case whose configuration
/// [`PolicyConfig::validate`] accepts.
///
/// # Errors
///
/// Only what [`Unstructured`] reports for malformed lengths; running out of
/// bytes is not an error (the remaining choices take their first value).
fn reference_case(u: &mut Unstructured<'_>) -> Result<Case> {
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
