//! Turns libFuzzer's bytes into a [`Case`] for the `policy_sequence` target.
//!
//! The decoding follows the property tests' generators in spirit (every
//! backoff strategy, hostile timeouts, Retry-After values, heartbeat
//! intervals, sequence numbers, close codes and clocks), but every choice is
//! a few bytes of input, so libFuzzer's coverage feedback steers the whole
//! case: set-up and steps alike. Running out of bytes ends the case; it
//! never fails it.
//!
//! Every choice reads its bytes exactly as `arbitrary`'s [`Unstructured`]
//! (`int_in_range`, `choose`, `ratio`, `arbitrary::<u64>()`, ...) would, so
//! an input means the same case it meant when the decoder was written with
//! it (the committed corpus depends on that; `tests/decoder_reference.rs`
//! checks it against that decoder). It is written out by hand because the
//! decoder runs on every fuzzing input: `Unstructured`'s generic integer
//! loop and its slice juggling cost about as much as a step of the policy
//! under the fuzzer's comparison tracing, for 128 steps a case.
//!
//! [`Unstructured`]: arbitrary::Unstructured
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

/// Decodes one case from `data`. Every input decodes to a case whose
/// configuration [`PolicyConfig::validate`] accepts; running out of bytes
/// is not an error (the remaining choices take their first value).
#[must_use]
pub fn case(data: &[u8]) -> Case {
    let mut u = Bytes { data };
    let seed = u.u64();
    let shard = narrow(u.int(0, 7));
    let config = config(&mut u);
    let limit = limit(&mut u);
    let auto_close = u.bool();
    let honest = u.bool();
    let start = match u.below(4) {
        0 => 0,
        1 => u.int(0, 1_000_000_000_000),
        2 => u64::MAX - u.int(0, 500_000),
        _ => u.u64(),
    };
    // A step takes at least one byte: reserve once instead of growing.
    let mut steps = Vec::with_capacity(u.data.len().min(MAX_STEPS));
    while !u.data.is_empty() && steps.len() < MAX_STEPS {
        steps.push(step(&mut u));
    }
    Case {
        seed,
        shard,
        config,
        limit,
        auto_close,
        honest,
        start,
        steps,
    }
}

/// The bytes not read yet, read as `Unstructured` reads them.
struct Bytes<'a> {
    data: &'a [u8],
}

impl Bytes<'_> {
    /// The next byte, or 0 when there is none (`u8::arbitrary`).
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// `bool::arbitrary`: the low bit of the next byte.
    fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// `u64::arbitrary`: up to eight bytes, little-endian, zero-padded.
    fn u64(&mut self) -> u64 {
        let n = self.data.len().min(8);
        let mut buf = [0; 8];
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        u64::from_le_bytes(buf)
    }

    /// `int_in_range(0..=n - 1)` (and `choose` among `n`) for `2 <= n <=
    /// 256`: one byte, modulo `n`; 0 with no byte left.
    fn below(&mut self, n: u16) -> u8 {
        debug_assert!((2..=256).contains(&n));
        let b = self.byte();
        // `b % n < n <= 256`, so it fits.
        u8::try_from(u16::from(b) % n).unwrap_or(0)
    }

    /// `int_in_range(lo..=hi)` for `lo < hi < u64::MAX`: as many bytes as
    /// `hi - lo` has, big-endian (fewer when the input ends), modulo the
    /// range's size.
    fn int(&mut self, lo: u64, hi: u64) -> u64 {
        let delta = hi - lo;
        let mut value = 0u64;
        let mut shift = 0;
        while shift < 64 && delta >> shift > 0 {
            let Some((&b, rest)) = self.data.split_first() else {
                break;
            };
            self.data = rest;
            value = (value << 8) | u64::from(b);
            shift += 8;
        }
        lo + value % (delta + 1)
    }

    /// `choose_index(len)` for `2 <= len <= 256`: [`Bytes::below`].
    fn index(&mut self, len: usize) -> usize {
        usize::from(self.below(u16::try_from(len).unwrap_or(u16::MAX)))
    }

    /// `choose(choices)`: the choice at [`Bytes::index`].
    fn choose<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.index(choices.len())]
    }

    /// `ratio(numerator, denominator)`: `int_in_range(1..=denominator) <=
    /// numerator`.
    fn ratio(&mut self, numerator: u8, denominator: u16) -> bool {
        self.below(denominator) < numerator
    }
}

/// A value decoded in a wider type than its field's; it always fits (the
/// ranges above are the fields' own).
fn narrow<T: TryFrom<u64> + Default>(value: u64) -> T {
    T::try_from(value).unwrap_or_default()
}

fn config(u: &mut Bytes<'_>) -> PolicyConfig {
    let mut c = PolicyConfig::with_gateway_url(GATEWAY_URL);
    let strategy = u.choose(&BackoffStrategy::ALL);
    let base_ms = u.int(1, 5_000);
    let extra = if u.bool() { 0 } else { u.int(0, 120_000) };
    c.backoff = BackoffConfig {
        strategy,
        base_ms,
        cap_ms: base_ms + extra,
    };
    c.guard_ms = u.int(0, 5_000);
    let (a, b) = (u.int(0, 6_000), u.int(0, 6_000));
    c.decision.invalid_session_wait_min_ms = a.min(b);
    c.decision.invalid_session_wait_max_ms = a.max(b);
    c.timeouts.connect_ms = u.int(1, 20_000);
    c.timeouts.hello_ms = u.int(1, 30_000);
    c.timeouts.handshake_ms = u.int(1, 40_000);
    c.timeouts.close_ms = u.int(1, 10_000);
    c.zombie = if u.bool() {
        ZombieRule::AckOnly
    } else {
        ZombieRule::AnyFrame
    };
    c.stability.window_ms = if u.bool() { 0 } else { u.int(1, 120_000) };
    c.stability.reset_on_first_ack = u.bool();
    c.resume.max_failed_resumes = narrow(u.int(1, 4));
    c.resume.drop_session_on_dial_failure = u.bool();
    c.give_up.max_retries = if u.ratio(1, 5) {
        Some(narrow(u.int(1, 19)))
    } else {
        None
    };
    c.give_up.max_elapsed_ms = if u.ratio(1, 5) {
        Some(u.int(1, 600_000))
    } else {
        None
    };
    c.send_limit = if u.ratio(3, 4) {
        SendLimit::DISCORD
    } else {
        SendLimit {
            commands: narrow(u.int(1, 9)),
            window_ms: u.int(1, 10_000),
        }
    };
    c
}

fn limit(u: &mut Bytes<'_>) -> SessionStartLimit {
    if u.ratio(3, 4) {
        return SessionStartLimit::DISCORD_DEFAULT;
    }
    let total: u32 = narrow(u.int(1, 19));
    SessionStartLimit {
        total,
        remaining: narrow::<u32>(u.int(0, 19)).min(total),
        reset_after_ms: u.int(1, 600_000),
        max_concurrency: narrow(u.int(0, 3)),
    }
}

/// Which kind of step each of the 32 values of a step's first byte
/// (modulo 32) picks: 8 in 32 `Progress`, 3 `Advance`, 3
/// `AdvanceToTimeout`, one each `Back`, `NearEnd`, a fatal close and a
/// stale event, 14 an event on the live socket. Looked up, then matched
/// value by value, so the match is one jump (a single cheap switch hook in
/// the fuzzer) instead of a chain of traced range comparisons.
const STEP_KINDS: [u8; 32] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 4, 5, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
];

fn step(u: &mut Bytes<'_>) -> Step {
    match STEP_KINDS[usize::from(u.below(32))] {
        0 => Step::Progress(u.bool()),
        1 => Step::Advance(u.int(0, 120_000)),
        2 => Step::AdvanceToTimeout,
        3 => Step::Back(u.int(1, 60_000)),
        4 => Step::NearEnd(u.int(0, 200_000)),
        5 => Step::On(Ev::Closed(Some(u.choose(&FATAL_CODES)))),
        6 => Step::Stale(u.byte(), ev(u)),
        _ => Step::On(ev(u)),
    }
}

fn ev(u: &mut Bytes<'_>) -> Ev {
    match u.below(11) {
        0 => Ev::Opened,
        1 => Ev::ConnectFailed(failure(u)),
        2 => Ev::Hello(hello(u)),
        3 => Ev::Dispatch(seq(u), kind(u)),
        4 => Ev::Ack,
        5 => Ev::HeartbeatRequest,
        6 => Ev::Reconnect,
        7 => Ev::InvalidSession(u.bool()),
        8 => Ev::OtherFrame,
        9 => Ev::Closed(close_code(u)),
        _ => Ev::CloseAck,
    }
}

fn failure(u: &mut Bytes<'_>) -> ConnectFailure {
    match u.below(6) {
        0 => ConnectFailure::Refused,
        1 => ConnectFailure::TimedOut,
        2 => ConnectFailure::Dns,
        3 => ConnectFailure::Tls,
        4 => ConnectFailure::Rejected {
            status: u.choose(&[400, 401, 403, 404, 500, 502, 503]),
        },
        _ => ConnectFailure::RateLimited {
            retry_after_ms: match u.below(6) {
                0 => MAX_DELAY_MS,
                1 => u64::MAX,
                2 => u.u64(),
                _ => u.int(0, 120_000),
            },
        },
    }
}

/// Documented codes, unknown ones, any `u16`, or none.
fn close_code(u: &mut Bytes<'_>) -> Option<u16> {
    match u.below(6) {
        0 => None,
        // `u16::arbitrary`: two bytes, little-endian.
        1 => Some(u16::from_le_bytes([u.byte(), u.byte()])),
        2 => Some(u.choose(&[1000, 1001, 1005, 1006, 1011, 1012, 1013, 1015])),
        _ => Some(narrow(u.int(4000, 4015))),
    }
}

fn hello(u: &mut Bytes<'_>) -> u64 {
    match u.below(4) {
        0 => u.choose(&[0, 1, 999, 41_250, 300_001, u64::MAX]),
        1 => u.u64(),
        _ => u.int(0, 400_000),
    }
}

fn seq(u: &mut Bytes<'_>) -> SeqSpec {
    match u.below(10) {
        0 => SeqSpec::Absent,
        1 => SeqSpec::Repeat,
        2 => SeqSpec::Back(u.int(1, 4)),
        3 => SeqSpec::Huge(u.int(0, 2)),
        _ => SeqSpec::Next(u.int(1, 3)),
    }
}

fn kind(u: &mut Bytes<'_>) -> Kind {
    match u.below(6) {
        0 => Kind::Ready {
            session: u.index(SESSION_IDS.len()),
            url: u.index(RESUME_URLS.len()),
        },
        1 => Kind::Resumed,
        _ => Kind::Other,
    }
}
