//! The checking driver, behind the `testing` feature: runs one [`Case`] (a
//! set-up and a sequence of steps) through a [`Policy`](crate::Policy) and
//! checks the policy's guarantees after every output.
//!
//! The policy's property tests (`policy/tests/properties.rs`, which generate
//! cases with proptest), the `policy_sequence` fuzz target (which decodes
//! them from libFuzzer's bytes) and the corpus replay all run cases through
//! [`run`], so a guarantee is written once and searched for several ways.
//! The module is compiled only with the `testing` feature; it is not part of
//! the policy's stable interface.
//!
//! [`shard`] holds the other shared driver: one shard on the hot path, for
//! the policy benchmark and the zero-allocation test. [`Observer`] checks
//! the same guarantees passively, fed the inputs and outputs of a driver
//! that runs on real sockets (the client's tests).
//!
//! The driver answers the policy's identify requests with an in-process
//! [`IdentifyLimiter`](crate::IdentifyLimiter) at once, as a driver with the
//! limiter in the same task does.
//!
//! The driver is honest about sockets. It holds every transport the policy
//! asked for (`Connect`) until the transport is gone from its own point of
//! view: it reported `ConnectFailed` or `Closed`, or the policy asked for an
//! `Abort`. A `Close` keeps the transport alive (closing) until the driver
//! reports `Closed`, at once (`auto_close`) or in a later step, or until the
//! policy gives up waiting and aborts it. Before delivering a frame at time
//! `t`, the driver runs the timers due by `t` (a real driver's timer fires
//! before it reads a frame that arrived later), so every event reaches the
//! connection the policy considers current, except the deliberately stale
//! ones.
//!
//! The driver reads `Timestamp::MAX` from `poll_timeout` as "never" (its
//! documented meaning) and does not wake for it; the policy reads any clock
//! past `Timestamp::CEILING` as the ceiling, and so does the driver when it
//! checks times. Its clock may still step back, jump near `u64::MAX` or stop
//! there: the policy must not panic or spin.

mod driver;
mod observer;
pub mod shard;

use crate::{
    ConnectFailure, MAX_SESSION_ID_LEN, Output, PolicyConfig, PolicyStats, SessionStartLimit,
};

use driver::{Driver, Record};
pub use observer::{Observed, Observer, Violation};

// ----- the abstract inputs -------------------------------------------------

/// One thing that happens to the driver.
#[derive(Clone, Debug)]
pub enum Step {
    /// The driver wakes `ms` later than its clock (possibly late for several
    /// timers at once) and calls `handle_timeout`.
    Advance(u64),
    /// The driver sleeps exactly until `poll_timeout()` and wakes.
    AdvanceToTimeout,
    /// The driver's clock reads `ms` earlier than last time.
    Back(u64),
    /// The driver's clock jumps to `u64::MAX - ms`.
    NearEnd(u64),
    /// Whatever an honest gateway would do next on the live socket (open,
    /// Hello, READY or RESUMED, an ACK or a dispatch, finish a close), or
    /// sleep until the next timer when there is nothing to answer.
    Progress(bool),
    /// An event on the live socket (or on the last one, now stale, when no
    /// socket is live).
    On(Ev),
    /// An event on a connection that is not the current one.
    Stale(u8, Ev),
}

/// An event, before the driver fills in sequence numbers and codes.
#[derive(Clone, Debug)]
pub enum Ev {
    /// The WebSocket opened.
    Opened,
    /// The dial failed.
    ConnectFailed(ConnectFailure),
    /// op 10 with this heartbeat interval, ms.
    Hello(u64),
    /// op 0.
    Dispatch(SeqSpec, Kind),
    /// op 11.
    Ack,
    /// op 1.
    HeartbeatRequest,
    /// op 7.
    Reconnect,
    /// op 9, resumable or not.
    InvalidSession(bool),
    /// A frame the policy does not act on.
    OtherFrame,
    /// The socket closed, with this code or none.
    Closed(Option<u16>),
    /// `Closed` with the code the policy asked for (no code when the socket
    /// was not being closed by the policy: the link dropped).
    CloseAck,
}

/// How a dispatch's sequence number relates to the server's counter.
#[derive(Clone, Copy, Debug)]
pub enum SeqSpec {
    /// No `s` field.
    Absent,
    /// The next one (`last + delta`); a READY starts a new session at 1.
    Next(u64),
    /// The last one again.
    Repeat,
    /// `k` before the last one.
    Back(u64),
    /// Near `u64::MAX`.
    Huge(u64),
}

/// Which dispatch.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// READY.
    Ready {
        /// Index into [`SESSION_IDS`] (wrapping).
        session: usize,
        /// Index into [`RESUME_URLS`] (wrapping).
        url: usize,
    },
    /// RESUMED.
    Resumed,
    /// Any other event.
    Other,
}

/// The session ids READY may carry; `"long"` stands for one over
/// [`MAX_SESSION_ID_LEN`], which the policy must refuse.
pub const SESSION_IDS: [&str; 4] = ["sess-a", "sess-b", "", "long"];
/// Only the first is inside the base URL's domain with the same scheme; the
/// others must be refused, and the session with them.
pub const RESUME_URLS: [&str; 4] = [
    "wss://resume.example.com",
    "ws://resume-2.example.com",
    "https://evil.example",
    "",
];
/// The policy's base gateway URL in every case.
pub const GATEWAY_URL: &str = "wss://gateway.example.com";

/// The session id a READY with `session` carries.
#[must_use]
pub fn session_id(index: usize) -> String {
    match SESSION_IDS[index % SESSION_IDS.len()] {
        // Over MAX_SESSION_ID_LEN: READY must be refused.
        "long" => "x".repeat(MAX_SESSION_ID_LEN + 1),
        id => id.to_owned(),
    }
}

/// Whether the policy may keep a READY's session (see `Session::from_ready`
/// and `check_resume_url`): a usable id and the one allowed resume URL.
#[must_use]
pub fn usable_session(id: &str, url: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_SESSION_ID_LEN && url == RESUME_URLS[0]
}

/// One run: the policy's set-up and what happens to its driver.
#[derive(Clone, Debug)]
pub struct Case {
    /// The policy's seed.
    pub seed: u64,
    /// The shard the policy runs.
    pub shard: u32,
    /// The policy's configuration.
    pub config: PolicyConfig,
    /// The session-start limit the identify limiter starts from.
    pub limit: SessionStartLimit,
    /// The driver reports `Closed` as soon as the policy asks for a close.
    pub auto_close: bool,
    /// The gateway orders dispatches as the real one does: READY only as the
    /// answer to Identify, RESUMED only to Resume, other dispatches only
    /// once the handshake is answered. Dispatches out of that order are not
    /// delivered. Sequence numbers may still repeat or go back.
    pub honest: bool,
    /// The clock's first reading, ms.
    pub start: u64,
    /// What happens, in order.
    pub steps: Vec<Step>,
}

// ----- the guarantees ------------------------------------------------------

/// The families of properties; a run fails only on the ones it checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prop {
    /// 1: never a `Connect` while a transport is still in flight.
    SingleFlight,
    /// 1 (continued): outputs only about sockets in the right state; stale
    /// events are inert; the policy's view of its socket matches the driver's.
    Lifecycle,
    /// 2: `Connect`s at least `guard_ms` apart.
    Guard,
    /// 3: plans within the backoff bounds, honoured by the next `Connect`.
    Plans,
    /// 3 (continued): a close before a resume never uses 1000/1001.
    ResumableClose,
    /// 4: fatal close codes give up for good.
    Fatal,
    /// 5: Resume (and heartbeats) carry the session's last sequence number.
    ResumeSeq,
    /// 6: the run loop ends and the next wake-up is in the future.
    Liveness,
    /// 7: two Identify payloads of one bucket at least the gateway's
    /// window apart. Checked by the [`Observer`] of a fleet; [`run`] drives
    /// one shard whose clock may step back, and does not check it.
    IdentifySpacing,
}

impl Prop {
    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// Every family of properties.
pub const ALL_PROPS: &[Prop] = &[
    Prop::SingleFlight,
    Prop::Lifecycle,
    Prop::Guard,
    Prop::Plans,
    Prop::ResumableClose,
    Prop::Fatal,
    Prop::ResumeSeq,
    Prop::Liveness,
    Prop::IdentifySpacing,
];

/// The close codes that must end the policy for good.
pub const FATAL_CODES: [u16; 6] = [4004, 4010, 4011, 4012, 4013, 4014];

/// One recorded output with the (effective) time it was polled at.
pub type Trace = Vec<(u64, Output)>;

/// Runs `case`, checking the families in `checks` after every step and
/// output (the others are exercised, but cannot fail the run).
///
/// # Errors
///
/// The first broken guarantee, named by its family, with the step, the time
/// and the recent history; or the case's configuration, refused by
/// [`Policy::new`](crate::Policy::new).
pub fn run(case: &Case, checks: &[Prop]) -> Result<(Trace, PolicyStats), String> {
    let record = Record {
        trace: true,
        history: false,
        twin: false,
    };
    run_recording(case, mask(checks), record)
}

/// Runs `case` as [`run`] does, with a second policy built from the same
/// set-up beside the first and fed the same inputs: every answer the two
/// give, every output they produce (in order) and their final counters must
/// be the same. This checks what running the case twice and comparing the
/// traces checks, without driving the case twice; the fuzz target uses it.
/// The outputs are checked as they come and not kept.
///
/// # Errors
///
/// As [`run`]'s, and the first difference between the two policies.
pub fn run_with_twin(case: &Case, checks: &[Prop]) -> Result<PolicyStats, String> {
    let record = Record {
        trace: false,
        history: false,
        twin: true,
    };
    run_recording(case, mask(checks), record).map(|(_, stats)| stats)
}

fn mask(checks: &[Prop]) -> u32 {
    checks.iter().fold(0, |m, p| m | p.bit())
}

/// Runs `case` without keeping a history (most runs pass, and recording
/// every input and output would cost more than running the policy); a run
/// that fails is replayed with the history and the trace kept, so its
/// message shows the recent inputs and outputs. The replay is exact: the
/// driver and the policy are deterministic, which the twin checks.
fn run_recording(case: &Case, checks: u32, record: Record) -> Result<(Trace, PolicyStats), String> {
    let failure = match Driver::new(case, checks, record)?.run() {
        Ok(done) => return Ok(done),
        Err(failure) => failure,
    };
    let replay = Record {
        trace: true,
        history: true,
        ..record
    };
    match Driver::new(case, checks, replay)?.run() {
        Err(explained) => Err(explained),
        Ok(_) => Err(format!(
            "{failure}\n(no history: the same case passed when replayed, so the run is not deterministic)"
        )),
    }
}
