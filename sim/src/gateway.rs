//! The gateway server model, faithful to the rules clients are judged by, as
//! a sans-IO state machine.
//!
//! It holds the server half of every socket and knows nothing of links,
//! clients or the event queue: what arrives on a socket goes in through the
//! `handle_*` methods, each with the time; what the gateway sends, closes
//! and observes comes out of [`Gateway::poll_output`]; [`Gateway::poll_timeout`]
//! says when it next wants to be woken, and [`Gateway::handle_timeout`] is
//! the one place its timers run (heartbeat timeouts, dispatches, the resume
//! window, the close that follows op 7). The simulator's engine drives it as
//! it drives the clients; a test can drive it alone. A driver with an event
//! queue of its own can keep the timers there instead
//! ([`Gateway::driver_holds_timers`]): each [`Output::Timer`] names its
//! timer, and [`Gateway::handle_timer`] runs it when it is due, so a timer
//! is queued once rather than in two queues that must agree.
//!
//! Every close code rule comes from the referee's own table
//! ([`crate::rules`]), written from the Discord docs; nothing here asks the
//! policy crate what a code means.
//!
//! - **Admission**: a token bucket of `admission_per_s` handshakes per
//!   second (0: no cap, as documented); beyond it, a handshake is refused
//!   or answered with 429 and Retry-After ([`Overload`]).
//! - **Hello and heartbeats**: Hello right after the handshake; an ACK for
//!   every heartbeat; a socket that sends no heartbeat for
//!   `heartbeat_timeout_ms` is closed.
//! - **Identify**: one per bucket (`shard % max_concurrency`) per 5 s. An
//!   Identify inside the window is a violation, counted and answered with
//!   op 9 (not resumable) a few seconds later, as the gateway does. Each
//!   session start spends one of the daily allowance; running out
//!   terminates every session and invalidates the token (every later
//!   Identify or Resume is closed with 4004), as the gateway does.
//! - **Sessions**: READY with a session id (sequence 1); dispatches every
//!   `dispatch_interval_ms` while the session lives; a session outlives its
//!   socket for `resume_window_ms`. Resume with a valid sequence replays
//!   every missed event in order, then RESUMED; a sequence of 0 (`null`) or
//!   beyond the session's closes with 4007 and ends the session; an unknown
//!   or expired session gets op 9.
//! - **Closing**: a client close with 1000 or 1001 ends the session; any
//!   other close, or a dropped connection, keeps it resumable.
//!
//! ```
//! use reconnect_sim::gateway::{Gateway, Output};
//! use reconnect_sim::scenario;
//! use reconnect_sim::wire::{DispatchKind, SockId, ToClient, ToServer};
//!
//! let mut gw = Gateway::new(&scenario::Gateway::default(), 1, 50, 7);
//! let mut sent = Vec::new();
//! let mut carry = |gw: &mut Gateway| {
//!     while let Some(output) = gw.poll_output() {
//!         if let Output::Send { msg, .. } = output {
//!             sent.push(msg);
//!         }
//!     }
//! };
//! let sock = SockId { index: 0, generation: 0 };
//! gw.handle_connect(10, sock, 0);
//! carry(&mut gw);
//! gw.handle_message(20, sock, ToServer::Identify);
//! carry(&mut gw);
//! // The session's first dispatch is its first timer, 10 to 30 s later.
//! let due = gw.poll_timeout().unwrap();
//! assert!((10_020..=30_020).contains(&due));
//! gw.handle_timeout(due);
//! carry(&mut gw);
//! assert!(matches!(
//!     sent[..],
//!     [
//!         ToClient::Opened,
//!         ToClient::Hello { .. },
//!         ToClient::Dispatch { seq: 1, kind: DispatchKind::Ready, .. },
//!         ToClient::Dispatch { seq: 2, kind: DispatchKind::Other, .. },
//!     ]
//! ));
//! ```

use std::num::NonZeroU32;

use crate::net::LinkRng;
use crate::queue::Queue;
use crate::rules::{self, IDENTIFY_WINDOW_MS};
use crate::scenario::{self, Overload};
use crate::wire::{DispatchKind, SessionId, SockId, ToClient, ToServer};

/// How long after op 7 the gateway closes the socket itself.
pub const RECONNECT_GRACE_MS: u64 = 5_000;

/// How long the daily session start allowance lasts once refilled.
const DAY_MS: u64 = 24 * 3_600_000;

/// A fault the scenario makes the gateway commit against one shard's
/// current socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerFault {
    /// op 7 (a restart): the socket is closed with 1001
    /// [`RECONNECT_GRACE_MS`] later if the client has not closed it.
    Reconnect,
    /// op 9; a session that is not resumable ends at once.
    InvalidSession {
        /// `d`.
        resumable: bool,
    },
    /// The gateway closes the socket with this code.
    Close {
        /// The close code.
        code: u16,
    },
}

/// What the gateway asks its driver to carry out or to know, in the order
/// it happened; see [`Gateway::poll_output`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `msg` to the client on `sock`, `delay_ms` later than the link
    /// alone would deliver it (the gateway's own delay, as before an op 9).
    Send {
        /// The socket.
        sock: SockId,
        /// The message.
        msg: ToClient,
        /// The gateway's own delay, ms.
        delay_ms: u64,
    },
    /// Turn the handshake on `sock` away for lack of capacity: the
    /// connection is refused (`None`), or answered with HTTP 429 and this
    /// Retry-After in ms.
    RefuseHandshake {
        /// The socket.
        sock: SockId,
        /// The Retry-After of a 429, ms; `None` for a refused connection.
        retry_after_ms: Option<u64>,
    },
    /// The gateway closed its side of `sock`. With `notify`, the client is
    /// sent a close frame with `code` (`None`: the connection is dropped
    /// with no frame); without, the client's side already went (it
    /// dropped the connection, or the link reset it).
    Close {
        /// The socket.
        sock: SockId,
        /// The close code, if a frame is sent.
        code: Option<u16>,
        /// Whether the client is told.
        notify: bool,
    },
    /// A timer was armed, due at `at` (never before the time of the input
    /// that armed it). [`Gateway::poll_timeout`] gives the earliest; a
    /// driver that runs the gateway among other machines off one event
    /// queue can instead queue one wake per timer at `at`, so each timer
    /// runs at its place among same-millisecond events, in arming order
    /// (and, if it holds the timers itself, run `timer` then with
    /// [`Gateway::handle_timer`]).
    Timer {
        /// When it is due, ms.
        at: u64,
        /// Which timer.
        timer: Timer,
    },
    /// The shard's current session is established: READY or RESUMED was
    /// just sent on an open socket.
    Established {
        /// The shard.
        shard: u32,
    },
    /// The shard's current session lost its socket, or ended.
    Lost {
        /// The shard.
        shard: u32,
    },
}

/// One of the gateway's timers, as [`Gateway::handle_timeout`] reports the
/// one it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Close the socket if no heartbeat came within the timeout.
    Heartbeat(SockId),
    /// Close the socket op 7 was sent on, if it is still open.
    ReconnectGrace(SockId),
    /// The session's next dispatch.
    Dispatch(SessionId),
    /// The session's resume window may have run out.
    Expiry(SessionId),
}

/// The gateway's counts since it started, read by the referee's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Handshakes turned away for lack of capacity (only under an assumed
    /// admission cap).
    pub rejected: u64,
    /// Identify payloads received.
    pub identifies: u64,
    /// Resume payloads received.
    pub resumes: u64,
    /// RESUMED sent.
    pub resumes_succeeded: u64,
    /// Identify payloads inside a bucket's 5 s window, less the tolerance.
    pub identify_violations: u64,
    /// Identify payloads inside a bucket's 5 s window with no tolerance.
    pub identify_violations_strict: u64,
    /// Identify payloads from a shard whose session could still be resumed.
    pub identifies_while_resumable: u64,
    /// Sessions started (READY sent).
    pub session_starts: u64,
    /// Sessions that expired: detached for the whole resume window, the
    /// client never resumed them in time.
    pub sessions_expired: u64,
}

/// A session id as a socket record or the shard table keeps it (see
/// `ServerSocket::session`).
/// Ids count sessions started, each at least one event of a run whose
/// budget is below 2^32 events, so the id plus one never saturates in a
/// run; a saturated one would only name a session that does not exist.
fn attach(id: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(id.saturating_add(1))
}

/// The session id a socket record keeps (see [`attach`]).
const fn attached_id(kept: NonZeroU32) -> u32 {
    kept.get() - 1
}

/// The most shards a gateway serves: a session keeps its shard in the
/// low 30 bits of a word whose top two are its flags (a fleet of more
/// would need a terabyte of memory).
const MAX_SHARDS: u32 = 1 << 30;

/// `Session::shard_and_flags`: the session is alive.
const ALIVE: u32 = 1 << 31;

/// `Session::shard_and_flags`: an expiry timer is armed.
const EXPIRY_ARMED: u32 = 1 << 30;

/// `Session::attached` of a session with no socket: no socket has this
/// id (the socket table would need 2^32 slots, 256 GiB).
const NO_SOCKET: SockId = SockId {
    index: u32::MAX,
    generation: u32::MAX,
};

/// One session, in 20 bytes, so that a driver's 12 bytes fit beside it in
/// an aligned 32 (see [`SessionLine`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Session {
    /// The shard (below [`MAX_SHARDS`]), with [`ALIVE`] and
    /// [`EXPIRY_ARMED`] in its top two bits.
    shard_and_flags: u32,
    /// The last sequence number used. Each one is an event of a run whose
    /// budget is below 2^32 events by default, and a session makes at
    /// most one dispatch a millisecond of a run of at most 14 days (1.2
    /// ·10^9): a u32 holds it (a later one saturates).
    seq: u32,
    /// The socket it runs on, or [`NO_SOCKET`].
    attached: SockId,
    /// When it last lost its socket: since then it has had none, while
    /// it is not attached (a session starts attached, and only a close
    /// detaches it). A u32 of ms: a simulated run lasts at most 7 days and
    /// a start-up, far below the 49 days it holds (a later time
    /// saturates).
    detached_since: u32,
}

impl Session {
    /// A new live session of `shard` attached to `sock`, at sequence 1.
    const fn new(shard: u32, sock: SockId) -> Self {
        Self {
            shard_and_flags: shard | ALIVE,
            seq: 1,
            attached: sock,
            detached_since: 0,
        }
    }

    /// Its shard.
    const fn shard(&self) -> u32 {
        self.shard_and_flags & (MAX_SHARDS - 1)
    }

    /// It can still be resumed or receive dispatches.
    const fn alive(&self) -> bool {
        self.shard_and_flags & ALIVE != 0
    }

    /// It has ended.
    const fn kill(&mut self) {
        self.shard_and_flags &= !ALIVE;
    }

    /// An expiry timer is armed (at most one per session, however often
    /// it loses its socket).
    const fn expiry_armed(&self) -> bool {
        self.shard_and_flags & EXPIRY_ARMED != 0
    }

    /// Says whether an expiry timer is armed.
    const fn set_expiry_armed(&mut self, armed: bool) {
        if armed {
            self.shard_and_flags |= EXPIRY_ARMED;
        } else {
            self.shard_and_flags &= !EXPIRY_ARMED;
        }
    }

    /// The socket it runs on, if any.
    fn attached(&self) -> Option<SockId> {
        (self.attached != NO_SOCKET).then_some(self.attached)
    }

    /// Runs on `sock` from now on, or on none.
    fn set_attached(&mut self, sock: Option<SockId>) {
        self.attached = sock.unwrap_or(NO_SOCKET);
    }

    /// The last sequence number used.
    const fn seq(&self) -> u64 {
        self.seq as u64
    }

    /// Uses the next sequence number and says it.
    const fn next_seq(&mut self) -> u64 {
        self.seq = self.seq.saturating_add(1);
        self.seq as u64
    }
}

/// One session's line of the gateway's table: the session and, beside
/// it, the half its driver keeps of the same session (`S`; nothing for a
/// gateway driven alone, see [`Gateway::session_half_mut`]), in an aligned
/// 32 bytes. The engine keeps the metrics' delivery tally there: a
/// dispatch is delivered one link latency after its tick read the
/// session, so the tally's line is most often still in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(align(32))]
struct SessionLine<S> {
    session: Session,
    /// The driver's view, which the gateway never reads.
    driver: S,
}

/// The server half of one socket: 24 bytes, aligned to 32 so that no
/// socket lies across two cache lines (a heartbeat check or a message
/// reads one line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(align(32))]
struct ServerSocket {
    generation: u32,
    shard: u32,
    /// Accepted and not closed.
    open: bool,
    /// The session attached to it (after READY or RESUMED), as
    /// [`attach`] stores it: the id plus one, so that a socket record
    /// keeps it in four bytes.
    session: Option<NonZeroU32>,
    /// When a heartbeat last arrived (or the socket was accepted), ms: a
    /// u32, as `Session::detached_since`.
    last_heartbeat: u32,
    /// op 7 or op 9 was sent on it, or the gateway closed it.
    told_to_reconnect: bool,
    /// The order of acceptance, over the whole run: each acceptance is an
    /// event of a run whose budget is below 2^32 events (as [`attach`]
    /// argues), so a u32 holds it (a later one saturates, and only the
    /// socket's id orders such sockets). With the u32 times, a socket
    /// takes 24 bytes rather than 32.
    accepted: u32,
}

/// One socket's line of the gateway's table: its server half and, beside
/// it, the half its driver keeps of the same socket (`D`; nothing for a
/// gateway driven alone, see [`Gateway::with_driver_halves`]). Aligned to
/// a cache line, so that a message the driver carries to the gateway, and
/// the reply it carries back, read one line for both halves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(align(64))]
struct SocketLine<D> {
    /// The gateway's view, once it accepted the socket.
    server: Option<ServerSocket>,
    /// The driver's view, which the gateway never reads.
    driver: D,
}

/// An output, or a dispatch timer to arm when the outputs get that far
/// (so a dispatch stop the driver sets in reaction to an earlier output of
/// the same input applies to it).
#[derive(Clone, Copy, Debug)]
enum Pending {
    Ready(Output),
    ArmDispatch(u32),
}

/// The gateway: sessions, identify buckets, the session start budget, the
/// admission bucket and the server half of every socket.
///
/// Inputs: [`handle_connect`](Self::handle_connect),
/// [`handle_message`](Self::handle_message),
/// [`handle_socket_reset`](Self::handle_socket_reset),
/// [`handle_fault`](Self::handle_fault) and
/// [`handle_timeout`](Self::handle_timeout), each with the time in ms
/// (time never goes back: an earlier time is read as the latest one seen).
/// After every input, poll [`poll_output`](Self::poll_output) until it
/// returns `None`, then read [`poll_timeout`](Self::poll_timeout).
///
/// Times are those of a simulated run, which lasts at most 7 days after a
/// start-up of at most 7 days: a session's and a socket's records keep
/// theirs in 32 bits of ms, which hold 49.7 days (a later time saturates).
///
/// `D` is what its driver keeps per socket beside the gateway's own record
/// (see [`Gateway::with_driver_halves`]), `S` what it keeps per session
/// (see [`Gateway::session_half_mut`]); a gateway driven alone keeps
/// nothing there.
#[derive(Debug)]
pub struct Gateway<D = (), S = ()> {
    config: scenario::Gateway,
    shards: u32,
    identify_tolerance_ms: u64,
    now: u64,
    rng: LinkRng,
    /// Each session's line, by id: the session, and the driver's half
    /// beside it.
    sessions: Vec<SessionLine<S>>,
    /// Each shard's latest session, as [`attach`] stores it (four bytes a
    /// shard rather than eight).
    shard_session: Vec<Option<NonZeroU32>>,
    /// Each socket's line, by the socket's slot: the server half, and the
    /// driver's half beside it.
    sockets: Vec<SocketLine<D>>,
    accepted: u64,
    /// Each bucket's last accepted Identify.
    last_identify: Vec<Option<u64>>,
    starts_remaining: u32,
    starts_reset_at: u64,
    token_reset: bool,
    admission_per_s: u32,
    /// Admission tokens, in thousandths.
    tokens_milli: u64,
    tokens_at: u64,
    /// Dispatch timers are not armed for this time or later.
    dispatch_stop_at: u64,
    /// The armed timers, unless the driver holds them
    /// ([`Gateway::driver_holds_timers`]).
    timers: Queue<Timer>,
    /// The driver holds the timers: they are only handed out as
    /// [`Output::Timer`], never queued here.
    driver_holds_timers: bool,
    /// Outputs not yet polled: those before `polled` have been.
    outputs: Vec<Pending>,
    polled: usize,
    tally: Tally,
}

impl Gateway {
    /// A gateway with the rules of `config` for a bot of `shards` shards,
    /// an identify window enforced `identify_tolerance_ms` short of 5 s (the
    /// link alone moves arrivals by up to its jitter), and its own random
    /// stream (dispatch times, op 9 delays) seeded with `seed`.
    #[must_use]
    pub fn new(
        config: &scenario::Gateway,
        shards: u32,
        identify_tolerance_ms: u64,
        seed: u64,
    ) -> Self {
        Self::with_driver_halves(config, shards, identify_tolerance_ms, seed)
    }
}

impl<D: Copy + Default, S: Copy + Default> Gateway<D, S> {
    /// As [`Gateway::new`], keeping beside each socket's server half a
    /// `D` of its driver's, in the same cache line: a driver that keeps a
    /// record per socket of its own (the engine's link half) reads both
    /// halves of a socket with one line rather than two tables. The
    /// gateway never reads a driver's half; the driver adds a line with
    /// [`push_driver_half`](Self::push_driver_half) for each socket it
    /// opens and reaches its half by the socket's index.
    #[must_use]
    pub fn with_driver_halves(
        config: &scenario::Gateway,
        shards: u32,
        identify_tolerance_ms: u64,
        seed: u64,
    ) -> Self {
        Self {
            config: *config,
            shards: shards.min(MAX_SHARDS),
            identify_tolerance_ms,
            now: 0,
            rng: LinkRng::new(seed),
            // A fleet starts one session and holds one socket per shard:
            // room for those, without a doubling's slack.
            sessions: Vec::with_capacity(shards as usize),
            shard_session: vec![None; shards as usize],
            sockets: Vec::with_capacity(shards as usize),
            accepted: 0,
            last_identify: vec![None; usize::from(config.max_concurrency.max(1))],
            starts_remaining: config.session_start_remaining,
            starts_reset_at: config.session_start_reset_after_ms,
            token_reset: false,
            admission_per_s: config.admission_per_s,
            tokens_milli: u64::from(config.admission_per_s).saturating_mul(1_000),
            tokens_at: 0,
            dispatch_stop_at: u64::MAX,
            timers: Queue::default(),
            driver_holds_timers: false,
            outputs: Vec::new(),
            polled: 0,
            tally: Tally::default(),
        }
    }

    // ----- configuration ----------------------------------------------

    /// The same gateway, whose driver keeps the timers in its own event
    /// queue: every timer is handed out as an [`Output::Timer`] naming it
    /// and never queued here, so [`poll_timeout`](Self::poll_timeout)
    /// says nothing and [`handle_timeout`](Self::handle_timeout) runs
    /// nothing; the driver runs each with [`handle_timer`](Self::handle_timer)
    /// when it is due. A timer then costs one push and one pop of the
    /// driver's queue, rather than one of each in both queues.
    #[must_use]
    pub const fn driver_holds_timers(mut self) -> Self {
        self.driver_holds_timers = true;
        self
    }

    /// Sets the handshakes per second admitted from now on (0: no cap), as
    /// an overload fault does while it lasts.
    pub const fn set_admission_per_s(&mut self, per_s: u32) {
        self.admission_per_s = per_s;
    }

    /// Dispatch timers due at `at` or later are not armed from now on (a
    /// driver stops the traffic a while before the end so that what was
    /// sent can be delivered).
    pub const fn stop_dispatches_at(&mut self, at: u64) {
        self.dispatch_stop_at = at;
    }

    // ----- inputs -----------------------------------------------------

    /// A handshake for a new socket `sock` of `shard` arrives. The gateway
    /// accepts it (Hello follows, and a heartbeat timer starts) or, beyond
    /// an admission cap, turns it away. A shard outside the bot is ignored.
    pub fn handle_connect(&mut self, now: u64, sock: SockId, shard: u32) {
        let now = self.advance(now);
        if shard >= self.shards {
            return;
        }
        let rate = u64::from(self.admission_per_s);
        let refill = now.saturating_sub(self.tokens_at).saturating_mul(rate);
        self.tokens_milli = self
            .tokens_milli
            .saturating_add(refill)
            .min(rate.saturating_mul(1_000));
        self.tokens_at = now;
        if rate > 0 && self.tokens_milli < 1_000 {
            self.tally.rejected += 1;
            let retry_after_ms = match self.config.overload {
                Overload::Refuse => None,
                Overload::RateLimit { retry_after_ms } => Some(retry_after_ms),
            };
            self.emit(Output::RefuseHandshake {
                sock,
                retry_after_ms,
            });
            return;
        }
        self.tokens_milli = self.tokens_milli.saturating_sub(1_000);
        let index = sock.index as usize;
        if self.sockets.len() <= index {
            self.sockets.resize(index + 1, SocketLine::default());
        }
        self.accepted += 1;
        self.sockets[index].server = Some(ServerSocket {
            generation: sock.generation,
            shard,
            open: true,
            session: None,
            last_heartbeat: u32::try_from(now).unwrap_or(u32::MAX),
            told_to_reconnect: false,
            accepted: u32::try_from(self.accepted).unwrap_or(u32::MAX),
        });
        self.send(sock, ToClient::Opened, 0);
        let interval_ms = self.config.heartbeat_interval_ms;
        self.send(sock, ToClient::Hello { interval_ms }, 0);
        let due = now.saturating_add(self.config.heartbeat_timeout_ms);
        self.arm(due, Timer::Heartbeat(sock));
    }

    /// A message from the client arrives on `sock`. Anything on a socket
    /// the gateway does not hold open is ignored, as is a second handshake
    /// on one it does.
    pub fn handle_message(&mut self, now: u64, sock: SockId, msg: ToServer) {
        let now = self.advance(now);
        let Some(s) = self.socket_mut(sock) else {
            return;
        };
        if !s.open {
            return;
        }
        let shard = s.shard;
        match msg {
            ToServer::Connect { .. } => {}
            ToServer::Identify => self.identify(sock, shard),
            ToServer::Resume { session, seq } => self.resume(sock, shard, session, seq),
            ToServer::Heartbeat => {
                s.last_heartbeat = u32::try_from(now).unwrap_or(u32::MAX);
                self.send(sock, ToClient::HeartbeatAck, 0);
            }
            ToServer::Close { code } => {
                let ends_session = rules::client_close_ends_session(code);
                self.close(sock, Some(code), ends_session, true);
            }
            ToServer::Drop => self.close(sock, None, false, false),
        }
    }

    /// The connection under `sock` was reset (the link failed, or dropped
    /// it): the gateway's side closes with no frame, and the session stays
    /// resumable.
    pub fn handle_socket_reset(&mut self, now: u64, sock: SockId) {
        self.advance(now);
        self.close(sock, None, false, false);
    }

    /// The gateway commits `fault` against the socket `shard`'s current
    /// session runs on (nothing if it has none).
    pub fn handle_fault(&mut self, now: u64, shard: u32, fault: ServerFault) {
        let now = self.advance(now);
        let Some(id) = self.latest_session(shard) else {
            return;
        };
        let Some(sock) = self.sessions[id as usize].session.attached() else {
            return;
        };
        if let Some(s) = self.socket_mut(sock) {
            s.told_to_reconnect = true;
        }
        match fault {
            ServerFault::Reconnect => {
                self.send(sock, ToClient::Reconnect, 0);
                self.arm(
                    now.saturating_add(RECONNECT_GRACE_MS),
                    Timer::ReconnectGrace(sock),
                );
            }
            ServerFault::InvalidSession { resumable } => {
                self.send(sock, ToClient::InvalidSession { resumable }, 0);
                if !resumable {
                    self.kill_session(id);
                }
            }
            ServerFault::Close { code } => self.close(sock, Some(code), false, true),
        }
    }

    /// Runs the earliest timer due at or before `now`, if any, and says
    /// which it was. One timer per call: a driver that queues one wake per
    /// [`Output::Timer`] calls it once per wake, so every timer runs at its
    /// own place among same-millisecond events; a driver of the gateway
    /// alone calls it while [`poll_timeout`](Self::poll_timeout) is at or
    /// before `now`.
    pub fn handle_timeout(&mut self, now: u64) -> Option<Timer> {
        let now = self.advance(now);
        let (_, timer) = self.timers.pop_until(now)?;
        self.run_timer(timer);
        Some(timer)
    }

    /// Runs `timer`, which a driver that holds the timers
    /// ([`driver_holds_timers`](Self::driver_holds_timers)) was handed in
    /// an [`Output::Timer`], at `now`, its due time.
    pub fn handle_timer(&mut self, now: u64, timer: Timer) {
        self.advance(now);
        self.run_timer(timer);
    }

    /// Runs `timer` at the current time.
    fn run_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Heartbeat(sock) => self.heartbeat_check(sock),
            Timer::ReconnectGrace(sock) => self.close(sock, Some(1001), false, true),
            Timer::Dispatch(session) => self.dispatch_tick(session.0),
            Timer::Expiry(session) => self.session_expiry(session.0),
        }
    }

    // ----- outputs ----------------------------------------------------

    /// The next thing to carry out or to know, in the order it happened.
    #[inline]
    pub fn poll_output(&mut self) -> Option<Output> {
        while let Some(&pending) = self.outputs.get(self.polled) {
            self.polled += 1;
            match pending {
                Pending::Ready(output) => return Some(output),
                Pending::ArmDispatch(session) => {
                    if let Some(at) = self.arm_dispatch(session) {
                        let timer = Timer::Dispatch(SessionId(session));
                        return Some(Output::Timer { at, timer });
                    }
                }
            }
        }
        // All polled: the buffer starts over, keeping its capacity.
        self.outputs.clear();
        self.polled = 0;
        None
    }

    /// When the earliest timer is due, if any is armed. It changes with
    /// every input and every [`Output::Timer`].
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.peek_time()
    }

    // ----- what the referee reads ---------------------------------------

    /// The counts so far.
    #[must_use]
    pub const fn tally(&self) -> Tally {
        self.tally
    }

    /// Whether the daily session start budget ran out (the token is reset).
    #[must_use]
    pub const fn token_reset(&self) -> bool {
        self.token_reset
    }

    /// Sessions started so far; their ids are `0..` this.
    #[must_use]
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The last sequence number the session used (the events it
    /// generated), if it exists.
    #[must_use]
    pub fn session_seq(&self, session: SessionId) -> Option<u64> {
        self.sessions
            .get(session.0 as usize)
            .map(|line| line.session.seq())
    }

    /// Whether the shard has a session it could resume now.
    #[must_use]
    pub fn has_resumable_session(&self, shard: u32) -> bool {
        self.latest_session(shard)
            .is_some_and(|id| self.sessions[id as usize].session.alive())
    }

    /// Session starts left at `now`, and when the allowance next refills.
    #[must_use]
    pub const fn session_starts_left(&self, now: u64) -> (u32, u64) {
        if now >= self.starts_reset_at {
            (self.config.session_start_total, now.saturating_add(DAY_MS))
        } else {
            (self.starts_remaining, self.starts_reset_at)
        }
    }

    /// Whether the gateway holds `sock` open.
    #[must_use]
    #[inline]
    pub fn is_open(&self, sock: SockId) -> bool {
        self.socket(sock).is_some_and(|s| s.open)
    }

    /// Whether op 7 or op 9 was sent on `sock`, or the gateway closed it: a
    /// close by the client is then expected, not a sign of a false zombie.
    #[must_use]
    #[inline]
    pub fn told_to_reconnect(&self, sock: SockId) -> bool {
        self.socket(sock).is_some_and(|s| s.told_to_reconnect)
    }

    /// When the gateway last heard a heartbeat on `sock` (or accepted it),
    /// if it ever accepted it.
    #[must_use]
    pub fn last_heartbeat(&self, sock: SockId) -> Option<u64> {
        self.socket(sock).map(|s| u64::from(s.last_heartbeat))
    }

    // ----- the rules ----------------------------------------------------

    fn identify(&mut self, sock: SockId, shard: u32) {
        let now = self.now;
        self.tally.identifies += 1;
        if self.token_reset {
            self.close(sock, Some(4004), false, true);
            return;
        }
        let bucket = shard as usize % self.last_identify.len();
        let gap = self.last_identify[bucket].map(|last| now.saturating_sub(last));
        if gap.is_some_and(|gap| gap < IDENTIFY_WINDOW_MS) {
            self.tally.identify_violations_strict += 1;
        }
        let window = IDENTIFY_WINDOW_MS.saturating_sub(self.identify_tolerance_ms);
        if gap.is_some_and(|gap| gap < window) {
            self.tally.identify_violations += 1;
            let delay = 1_000 + self.rng.upto(2_000);
            self.send(sock, ToClient::InvalidSession { resumable: false }, delay);
            if let Some(s) = self.socket_mut(sock) {
                s.told_to_reconnect = true;
            }
            return;
        }
        if now >= self.starts_reset_at {
            self.starts_remaining = self.config.session_start_total;
            self.starts_reset_at = now.saturating_add(DAY_MS);
        }
        if self.starts_remaining == 0 {
            self.terminate_everything();
            return;
        }
        self.starts_remaining -= 1;
        self.last_identify[bucket] = Some(now);
        if let Some(old) = self.latest_session(shard)
            && self.sessions[old as usize].session.alive()
        {
            if self.sessions[old as usize].session.attached().is_none() {
                self.tally.identifies_while_resumable += 1;
            }
            self.kill_session(old);
        }
        let id = u32::try_from(self.sessions.len()).unwrap_or(u32::MAX);
        self.sessions.push(SessionLine {
            session: Session::new(shard, sock),
            driver: S::default(),
        });
        self.tally.session_starts += 1;
        self.shard_session[shard as usize] = attach(id);
        if let Some(s) = self.socket_mut(sock) {
            s.session = attach(id);
        }
        let session = SessionId(id);
        let ready = ToClient::Dispatch {
            session,
            seq: 1,
            kind: DispatchKind::Ready,
        };
        self.send(sock, ready, 0);
        self.emit(Output::Established { shard });
        self.outputs.push(Pending::ArmDispatch(id));
    }

    /// The daily budget ran out: every session ends and every socket the
    /// gateway holds is closed with 4004, shard by shard in the order they
    /// were accepted; the token stays reset.
    fn terminate_everything(&mut self) {
        self.token_reset = true;
        let mut open: Vec<(u32, u32, SockId)> = self
            .sockets
            .iter()
            .zip(0u32..)
            .filter_map(|(line, index)| {
                let s = line.server.as_ref().filter(|s| s.open)?;
                let sock = SockId {
                    index,
                    generation: s.generation,
                };
                Some((s.shard, s.accepted, sock))
            })
            .collect();
        open.sort_unstable();
        for (_, _, sock) in open {
            self.close(sock, Some(4004), true, true);
        }
    }

    fn resume(&mut self, sock: SockId, shard: u32, session: Option<SessionId>, seq: u64) {
        self.tally.resumes += 1;
        if self.token_reset {
            self.close(sock, Some(4004), false, true);
            return;
        }
        let valid = session.filter(|id| {
            self.sessions
                .get(id.0 as usize)
                .is_some_and(|line| line.session.alive() && line.session.shard() == shard)
        });
        let Some(id) = valid else {
            let delay = 1_000 + self.rng.upto(1_000);
            self.send(sock, ToClient::InvalidSession { resumable: false }, delay);
            if let Some(s) = self.socket_mut(sock) {
                s.told_to_reconnect = true;
            }
            return;
        };
        let current = self.sessions[id.0 as usize].session.seq();
        // Sequences start at 1 (READY): 0 (a `null` seq) or one the session
        // never reached is invalid, and the session is gone.
        if seq == 0 || seq > current {
            self.kill_session(id.0);
            self.close(sock, Some(4007), false, true);
            return;
        }
        // Take the session over from any socket it still runs on.
        if let Some(old) = self.sessions[id.0 as usize].session.attached()
            && let Some(s) = self.socket_mut(old)
        {
            s.session = None;
        }
        let s = &mut self.sessions[id.0 as usize].session;
        s.set_attached(Some(sock));
        let resumed_seq = s.next_seq();
        if let Some(s) = self.socket_mut(sock) {
            s.session = attach(id.0);
        }
        for k in seq + 1..resumed_seq {
            let missed = ToClient::Dispatch {
                session: id,
                seq: k,
                kind: DispatchKind::Other,
            };
            self.send(sock, missed, 0);
        }
        let resumed = ToClient::Dispatch {
            session: id,
            seq: resumed_seq,
            kind: DispatchKind::Resumed,
        };
        self.send(sock, resumed, 0);
        self.tally.resumes_succeeded += 1;
        self.emit(Output::Established { shard });
    }

    /// Closes the gateway's side of `sock`: a frame with `code` goes to the
    /// client if `notify`; the session ends if `ends_session` (or the code
    /// ends it), otherwise it stays resumable for the resume window.
    fn close(&mut self, sock: SockId, code: Option<u16>, ends_session: bool, notify: bool) {
        let now = self.now;
        let Some(s) = self.socket_mut(sock) else {
            return;
        };
        if !s.open {
            return;
        }
        s.open = false;
        s.told_to_reconnect = true;
        let shard = s.shard;
        if let Some(id) = s.session.take().map(attached_id) {
            let ends = ends_session || code.is_some_and(rules::server_close_ends_session);
            let current = self.latest_session(shard) == Some(id);
            let session = &mut self.sessions[id as usize].session;
            if session.attached() == Some(sock) {
                session.set_attached(None);
                session.detached_since = u32::try_from(now).unwrap_or(u32::MAX);
                let arm_expiry = !session.expiry_armed();
                session.set_expiry_armed(true);
                if current {
                    self.emit(Output::Lost { shard });
                }
                if arm_expiry {
                    let at = now.saturating_add(self.config.resume_window_ms);
                    self.arm(at, Timer::Expiry(SessionId(id)));
                }
            }
            if ends {
                self.kill_session(id);
            }
        }
        self.emit(Output::Close { sock, code, notify });
    }

    fn kill_session(&mut self, id: u32) {
        let s = &mut self.sessions[id as usize].session;
        s.kill();
        let shard = s.shard();
        let attached = s.attached();
        s.set_attached(None);
        if let Some(sock) = attached {
            if let Some(sk) = self.socket_mut(sock) {
                sk.session = None;
            }
            if self.latest_session(shard) == Some(id) {
                self.emit(Output::Lost { shard });
            }
        }
    }

    fn heartbeat_check(&mut self, sock: SockId) {
        let Some(s) = self.socket(sock) else {
            return;
        };
        if !s.open {
            return;
        }
        let due = u64::from(s.last_heartbeat).saturating_add(self.config.heartbeat_timeout_ms);
        if self.now >= due {
            self.close(sock, None, false, true);
        } else {
            self.arm(due, Timer::Heartbeat(sock));
        }
    }

    /// Arms the session's next dispatch, unless dispatches are off or have
    /// stopped; says when.
    fn arm_dispatch(&mut self, session: u32) -> Option<u64> {
        let interval = self.config.dispatch_interval_ms;
        if interval == 0 {
            return None;
        }
        let at = self
            .now
            .saturating_add(interval / 2)
            .saturating_add(self.rng.upto(interval));
        if at >= self.dispatch_stop_at {
            return None;
        }
        self.file(at, Timer::Dispatch(SessionId(session)));
        Some(at)
    }

    fn dispatch_tick(&mut self, session: u32) {
        let Some(s) = self.sessions.get_mut(session as usize) else {
            return;
        };
        let s = &mut s.session;
        if !s.alive() {
            return;
        }
        let seq = s.next_seq();
        if let Some(sock) = s.attached() {
            let event = ToClient::Dispatch {
                session: SessionId(session),
                seq,
                kind: DispatchKind::Other,
            };
            self.send(sock, event, 0);
        }
        self.outputs.push(Pending::ArmDispatch(session));
    }

    fn session_expiry(&mut self, session: u32) {
        let window = self.config.resume_window_ms;
        let now = self.now;
        let Some(s) = self.sessions.get_mut(session as usize) else {
            return;
        };
        let s = &mut s.session;
        s.set_expiry_armed(false);
        if !s.alive() || s.attached().is_some() {
            return;
        }
        let d = u64::from(s.detached_since);
        if d.saturating_add(window) <= now {
            self.tally.sessions_expired += 1;
            self.kill_session(session);
        } else {
            // It lost a later socket: check again when that one's window ends.
            s.set_expiry_armed(true);
            self.arm(d.saturating_add(window), Timer::Expiry(SessionId(session)));
        }
    }

    // ----- plumbing -----------------------------------------------------

    /// The shard's latest session.
    fn latest_session(&self, shard: u32) -> Option<u32> {
        self.shard_session
            .get(shard as usize)
            .copied()
            .flatten()
            .map(attached_id)
    }

    /// Moves the clock to `now` (never back) and returns it.
    fn advance(&mut self, now: u64) -> u64 {
        self.now = self.now.max(now);
        self.now
    }

    fn emit(&mut self, output: Output) {
        self.outputs.push(Pending::Ready(output));
    }

    fn send(&mut self, sock: SockId, msg: ToClient, delay_ms: u64) {
        self.emit(Output::Send {
            sock,
            msg,
            delay_ms,
        });
    }

    fn arm(&mut self, at: u64, timer: Timer) {
        let at = at.max(self.now);
        self.file(at, timer);
        self.emit(Output::Timer { at, timer });
    }

    /// Files `timer` at `at` in the gateway's own wheel, unless its driver
    /// holds the timers (then the `Output::Timer` that announces it is all).
    fn file(&mut self, at: u64, timer: Timer) {
        if !self.driver_holds_timers {
            self.timers.push(at, timer);
        }
    }

    #[inline]
    fn socket(&self, sock: SockId) -> Option<&ServerSocket> {
        self.sockets
            .get(sock.index as usize)?
            .server
            .as_ref()
            .filter(|s| s.generation == sock.generation)
    }

    fn socket_mut(&mut self, sock: SockId) -> Option<&mut ServerSocket> {
        self.sockets
            .get_mut(sock.index as usize)?
            .server
            .as_mut()
            .filter(|s| s.generation == sock.generation)
    }

    // ----- the driver's halves ------------------------------------------

    /// The driver's half of the socket in slot `index`, if the table
    /// reaches it.
    #[must_use]
    #[inline]
    pub fn driver_half(&self, index: u32) -> Option<&D> {
        self.sockets.get(index as usize).map(|line| &line.driver)
    }

    /// The driver's half of the socket in slot `index`, to change, if the
    /// table reaches it.
    #[inline]
    pub fn driver_half_mut(&mut self, index: u32) -> Option<&mut D> {
        self.sockets
            .get_mut(index as usize)
            .map(|line| &mut line.driver)
    }

    /// A new slot at the end of the table, holding `half` for the driver
    /// and no server half yet; says its index.
    pub fn push_driver_half(&mut self, half: D) -> usize {
        self.sockets.push(SocketLine {
            server: None,
            driver: half,
        });
        self.sockets.len() - 1
    }

    /// The driver's half of session `id`, to change, if the session
    /// exists (the gateway adds one, `S::default()`, with each session it
    /// starts, and never reads it).
    #[inline]
    pub fn session_half_mut(&mut self, id: u32) -> Option<&mut S> {
        self.sessions
            .get_mut(id as usize)
            .map(|line| &mut line.driver)
    }

    /// Each session's last sequence number and the driver's half of it,
    /// by session id.
    pub fn session_halves(&self) -> impl Iterator<Item = (u64, &S)> + '_ {
        self.sessions
            .iter()
            .map(|line| (line.session.seq(), &line.driver))
    }

    /// How many socket slots the table holds (the most sockets that ever
    /// existed at once, for a driver that adds one per socket it opens and
    /// reuses freed ones).
    #[must_use]
    pub fn socket_slots(&self) -> usize {
        self.sockets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_keeps_its_shard_flags_socket_and_sequence_apart() {
        let sock = SockId {
            index: 3,
            generation: 9,
        };
        let shard = MAX_SHARDS - 1;
        let mut s = Session::new(shard, sock);
        assert!(s.alive() && !s.expiry_armed());
        assert_eq!((s.shard(), s.attached(), s.seq()), (shard, Some(sock), 1));
        s.set_expiry_armed(true);
        s.set_attached(None);
        assert!(s.alive() && s.expiry_armed());
        assert_eq!((s.shard(), s.attached()), (shard, None));
        s.kill();
        s.set_expiry_armed(false);
        assert!(!s.alive() && !s.expiry_armed());
        assert_eq!(s.shard(), shard);
        assert_eq!(s.next_seq(), 2);
        s.seq = u32::MAX;
        assert_eq!(s.next_seq(), u64::from(u32::MAX), "saturates");
    }

    #[test]
    fn a_session_its_shard_entry_and_a_socket_take_68_bytes() {
        // One of each per shard, at least, in a fleet, none across two
        // cache lines.
        assert_eq!(size_of::<Session>(), 20);
        assert_eq!(size_of::<SessionLine<()>>(), 32);
        assert_eq!(size_of::<SessionLine<crate::metrics::DeliveryTally>>(), 32);
        assert_eq!(align_of::<SessionLine<crate::metrics::DeliveryTally>>(), 32);
        assert_eq!(size_of::<Option<NonZeroU32>>(), 4);
        assert_eq!(size_of::<Option<ServerSocket>>(), 32);
        assert_eq!(align_of::<Option<ServerSocket>>(), 32);
        // With the engine's half of a socket beside it: one line.
        assert_eq!(size_of::<SocketLine<crate::net::Slot>>(), 64);
        assert_eq!(align_of::<SocketLine<crate::net::Slot>>(), 64);
    }
}
