//! A passive checker for a live driver: fed every input a driver gives a
//! [`Fleet`] (with its time) and every output it takes out, it checks the
//! guarantees a driver relies on, shard by shard, without driving anything.
//!
//! The checking driver ([`run`](super::run)) plays the gateway and the
//! sockets itself; a real driver (the client's run loop over real sockets)
//! cannot be replaced by it, but it can report what it does. The observer
//! keeps the driver's view of each shard's transports (a `Connect` starts
//! one; `ConnectFailed`, `Closed` or an `Abort` ends it) and records a
//! [`Violation`] whenever an output breaks one of these:
//!
//! - [`Prop::SingleFlight`]: no `Connect` while a transport of the shard is
//!   still in flight;
//! - [`Prop::Guard`]: a shard's `Connect`s at least its `guard_ms` apart;
//! - [`Prop::IdentifySpacing`]: two Identify payloads of one bucket
//!   (`shard % max_concurrency`) at least [`IDENTIFY_WINDOW_MS`] apart;
//! - [`Prop::Fatal`] and [`Prop::Lifecycle`]: no action for a shard after
//!   it gave up; a fatal close on its live socket makes it give up; a
//!   `GiveUp` only with nothing in flight; sends only on an open socket,
//!   closes and aborts only of a transport in flight; an event on the live
//!   socket never called stale;
//! - [`Prop::ResumeSeq`]: a Resume names the session of the last READY (or
//!   of the last Resume, for a session handed over from an earlier
//!   process) and the last sequence number the policy accepted.
//!
//! Outputs are stamped with the time of the last input, which is the time
//! the policy produced them at. The observer never panics; a test reads
//! [`Observer::violations`] or calls [`Observer::check`].

use std::collections::BTreeMap;
use std::fmt;
use std::ops::AddAssign;

use crate::{
    Action, CloseCode, Command, ConnectionId, Dispatch, Event, Fleet, GiveUpReason, Handled,
    IDENTIFY_WINDOW_MS, IdentifyAnswer, IdentifyLimiter, Output, Timestamp,
};

use super::Prop;

/// The most violations kept (later ones are only counted).
const MAX_KEPT: usize = 100;

/// One broken guarantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// When (the time of the input before the output).
    pub at: Timestamp,
    /// The shard.
    pub shard: u32,
    /// The family of the guarantee.
    pub prop: Prop,
    /// What happened.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: shard {}: {:?}: {}",
            self.at, self.shard, self.prop, self.message
        )
    }
}

/// What the observer saw, to show it was fed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Observed {
    /// Inputs (events, timeouts, identify answers, shutdowns).
    pub inputs: u64,
    /// Outputs (actions and notes).
    pub outputs: u64,
    /// `Connect` actions.
    pub connects: u64,
    /// Identify payloads sent.
    pub identifies: u64,
    /// Resume payloads sent.
    pub resumes: u64,
    /// Violations, kept or not.
    pub violations: u64,
}

impl AddAssign for Observed {
    fn add_assign(&mut self, other: Self) {
        self.inputs = self.inputs.saturating_add(other.inputs);
        self.outputs = self.outputs.saturating_add(other.outputs);
        self.connects = self.connects.saturating_add(other.connects);
        self.identifies = self.identifies.saturating_add(other.identifies);
        self.resumes = self.resumes.saturating_add(other.resumes);
        self.violations = self.violations.saturating_add(other.violations);
    }
}

/// Where a transport is, as the driver sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sock {
    Dialing,
    Open,
    Closing,
}

/// One shard, as its driver sees it.
#[derive(Clone, Debug, Default)]
struct ShardView {
    guard_ms: u64,
    /// The transports in flight (at most one unless single flight broke).
    live: Vec<(ConnectionId, Sock)>,
    last_connect: Option<Timestamp>,
    gave_up: Option<GiveUpReason>,
    /// A fatal close on the live socket not yet followed by `GiveUp`.
    fatal: Option<CloseCode>,
    /// The session a Resume must name, when known.
    session: Option<String>,
    /// The last sequence number the policy accepted in that session.
    seq: Option<u64>,
}

impl ShardView {
    fn find(&self, conn: ConnectionId) -> Option<usize> {
        self.live.iter().position(|(id, _)| *id == conn)
    }
}

/// A passive checker of a [`Fleet`]'s inputs and outputs (see the module
/// documentation).
///
/// ```
/// use reconnect_policy::testing::Observer;
/// use reconnect_policy::{Fleet, IdentifyLimiter, PolicyConfig, SessionStartLimit, Timestamp};
///
/// let t = Timestamp::from_millis;
/// let limiter = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0));
/// let mut fleet = Fleet::new(PolicyConfig::default(), 0..2, 1, limiter, t(0)).unwrap();
/// let mut observer = Observer::new(&fleet, t(0));
/// while let Some((shard, output)) = fleet.poll_output() {
///     observer.output(shard, &output);
///     // ... carry it out ...
/// }
/// assert_eq!(observer.check().unwrap().connects, 1);
/// ```
#[derive(Clone, Debug)]
pub struct Observer {
    buckets: u32,
    now: Timestamp,
    shards: BTreeMap<u32, ShardView>,
    /// The last Identify of each bucket: when, and which shard.
    identified: BTreeMap<u32, (Timestamp, u32)>,
    stopping: bool,
    violations: Vec<Violation>,
    observed: Observed,
}

impl Observer {
    /// An observer of `fleet`, whose driver's clock reads `now`: each
    /// shard's guard from its configuration, the identify buckets from the
    /// fleet's limiter (one bucket when the limiter lives outside the
    /// fleet: set them with [`Observer::with_identify_buckets`]).
    #[must_use]
    pub fn new(fleet: &Fleet, now: Timestamp) -> Self {
        let shards = fleet
            .policies()
            .map(|(id, policy)| {
                let view = ShardView {
                    guard_ms: policy.config().guard_ms,
                    ..ShardView::default()
                };
                (id, view)
            })
            .collect();
        Self {
            buckets: fleet.limiter().map_or(1, IdentifyLimiter::buckets),
            now,
            shards,
            identified: BTreeMap::new(),
            stopping: false,
            violations: Vec::new(),
            observed: Observed::default(),
        }
    }

    /// The number of identify buckets (`max_concurrency`; 0 is read as 1),
    /// for a fleet whose limiter lives outside it.
    #[must_use]
    pub fn with_identify_buckets(mut self, buckets: u32) -> Self {
        self.buckets = buckets.max(1);
        self
    }

    fn input(&mut self, now: Timestamp) {
        self.now = now;
        self.observed.inputs = self.observed.inputs.saturating_add(1);
    }

    fn violate(&mut self, shard: u32, prop: Prop, message: String) {
        self.observed.violations = self.observed.violations.saturating_add(1);
        if self.violations.len() < MAX_KEPT {
            self.violations.push(Violation {
                at: self.now,
                shard,
                prop,
                message,
            });
        }
    }

    /// The driver called [`Fleet::handle_timeout`] at `now`.
    pub fn timeout(&mut self, now: Timestamp) {
        self.input(now);
    }

    /// The driver fed an identify answer for `shard` at `now`
    /// ([`Fleet::handle_identify`]).
    pub fn identify(&mut self, now: Timestamp, _shard: u32, _answer: &IdentifyAnswer) {
        self.input(now);
    }

    /// The driver asked the fleet to shut down at `now` (either way).
    pub fn shutdown(&mut self, now: Timestamp) {
        self.input(now);
        self.stopping = true;
    }

    /// The driver fed `event` about `shard`'s connection `conn` at `now`,
    /// and the fleet answered `handled`.
    pub fn event(
        &mut self,
        now: Timestamp,
        shard: u32,
        conn: ConnectionId,
        event: &Event,
        handled: Handled,
    ) {
        self.input(now);
        let Some(view) = self.shards.get_mut(&shard) else {
            return;
        };
        let Some(index) = view.find(conn) else {
            // An event on a transport the driver no longer holds: the
            // policy decides what it means (stale, most often).
            return;
        };
        if handled == Handled::Stale {
            self.violate(
                shard,
                Prop::Lifecycle,
                format!("{event:?} on the live connection {conn} was called stale"),
            );
            return;
        }
        match event {
            Event::Opened if view.live[index].1 == Sock::Dialing => {
                view.live[index].1 = Sock::Open;
            }
            Event::ConnectFailed { .. } => {
                view.live.remove(index);
            }
            Event::Closed { code } => {
                view.live.remove(index);
                let fatal = code.map(CloseCode::from_u16).filter(|c| c.is_fatal());
                if fatal.is_some() && view.gave_up.is_none() && !self.stopping {
                    view.fatal = fatal;
                }
            }
            Event::Dispatch { seq, event } if handled == Handled::Accepted => {
                if let Dispatch::Ready { session_id, .. } = event {
                    view.session = Some(session_id.clone());
                    view.seq = *seq;
                } else if let Some(seq) = *seq {
                    view.seq = Some(view.seq.map_or(seq, |last| last.max(seq)));
                }
            }
            _ => {}
        }
    }

    /// The driver took `output` for `shard` out of the fleet
    /// ([`Fleet::poll_output`]).
    pub fn output(&mut self, shard: u32, output: &Output) {
        self.observed.outputs = self.observed.outputs.saturating_add(1);
        let Output::Action(action) = output else {
            return;
        };
        let Some(mut view) = self.shards.remove(&shard) else {
            self.violate(
                shard,
                Prop::Lifecycle,
                format!("{action:?} for a shard the fleet does not run"),
            );
            return;
        };
        self.action(shard, &mut view, action);
        self.shards.insert(shard, view);
    }

    fn action(&mut self, shard: u32, view: &mut ShardView, action: &Action) {
        let now = self.now;
        if let Some(reason) = view.gave_up {
            let prop = match reason {
                GiveUpReason::FatalCloseCode { .. } => Prop::Fatal,
                _ => Prop::Lifecycle,
            };
            self.violate(shard, prop, format!("{action:?} after GiveUp({reason:?})"));
            return;
        }
        match action {
            Action::Connect { connection, .. } => {
                self.observed.connects = self.observed.connects.saturating_add(1);
                if !view.live.is_empty() {
                    self.violate(
                        shard,
                        Prop::SingleFlight,
                        format!("Connect {connection} while {:?} is in flight", view.live),
                    );
                }
                if let Some(code) = view.fatal {
                    self.violate(
                        shard,
                        Prop::Fatal,
                        format!("Connect {connection} after the fatal close {code}"),
                    );
                }
                if let Some(last) = view.last_connect {
                    let since = now.saturating_since(last);
                    if since < view.guard_ms {
                        self.violate(
                            shard,
                            Prop::Guard,
                            format!(
                                "Connect {connection} {since} ms after the previous one (guard {} ms)",
                                view.guard_ms
                            ),
                        );
                    }
                }
                view.last_connect = Some(now);
                view.live.push((*connection, Sock::Dialing));
            }
            Action::Send {
                connection,
                command,
            } => {
                let open = view
                    .find(*connection)
                    .is_some_and(|i| view.live[i].1 == Sock::Open);
                if !open {
                    self.violate(
                        shard,
                        Prop::Lifecycle,
                        format!("{command:?} on {connection}, which is not open"),
                    );
                }
                match command {
                    Command::Identify => self.identify_sent(shard, view),
                    Command::Resume { session_id, seq } => {
                        self.observed.resumes = self.observed.resumes.saturating_add(1);
                        if let Some(session) = &view.session {
                            let last = view.seq.unwrap_or(0);
                            if session != session_id || *seq != last {
                                self.violate(
                                    shard,
                                    Prop::ResumeSeq,
                                    format!(
                                        "Resume of {session_id:?} at {seq}; the session is \
                                         {session:?} and its last accepted sequence {last}"
                                    ),
                                );
                            }
                        }
                        // A session handed over from an earlier process is
                        // learnt from its first Resume.
                        view.session = Some(session_id.clone());
                        view.seq = Some(*seq);
                    }
                    Command::Heartbeat { .. } => {}
                }
            }
            Action::Close { connection, .. } => match view.find(*connection) {
                Some(i) => view.live[i].1 = Sock::Closing,
                None => self.violate(
                    shard,
                    Prop::Lifecycle,
                    format!("Close {connection}, which is not in flight"),
                ),
            },
            Action::Abort { connection } => match view.find(*connection) {
                Some(i) => {
                    view.live.remove(i);
                }
                None => self.violate(
                    shard,
                    Prop::Lifecycle,
                    format!("Abort {connection}, which is not in flight"),
                ),
            },
            Action::GiveUp(reason) => {
                if !view.live.is_empty() {
                    self.violate(
                        shard,
                        Prop::Lifecycle,
                        format!("GiveUp({reason:?}) while {:?} is in flight", view.live),
                    );
                }
                if matches!(reason, GiveUpReason::FatalCloseCode { .. }) {
                    view.fatal = None;
                }
                view.gave_up = Some(*reason);
            }
            // Neither concerns a connection: the limiter and the probe
            // coordinator answer through inputs of their own.
            Action::Identify { .. } | Action::Probe(_) => {}
        }
    }

    fn identify_sent(&mut self, shard: u32, view: &mut ShardView) {
        let now = self.now;
        self.observed.identifies = self.observed.identifies.saturating_add(1);
        let bucket = shard % self.buckets.max(1);
        if let Some((last, by)) = self.identified.insert(bucket, (now, shard)) {
            let since = now.saturating_since(last);
            if since < IDENTIFY_WINDOW_MS {
                self.violate(
                    shard,
                    Prop::IdentifySpacing,
                    format!(
                        "Identify {since} ms after shard {by}'s in bucket {bucket} \
                         (window {IDENTIFY_WINDOW_MS} ms)"
                    ),
                );
            }
        }
        // A new session: its numbering starts with READY.
        view.session = None;
        view.seq = None;
    }

    /// The violations so far (the first 100).
    #[must_use]
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// What the observer saw so far.
    #[must_use]
    pub const fn observed(&self) -> Observed {
        self.observed
    }

    /// What the observer saw, if no guarantee was broken; a shard whose
    /// live socket closed with a fatal code and that never gave up (while
    /// the fleet was not shutting down) breaks one too.
    ///
    /// # Errors
    ///
    /// Every violation kept, one a line.
    pub fn check(&self) -> Result<Observed, String> {
        let mut lines: Vec<String> = self.violations.iter().map(ToString::to_string).collect();
        for (shard, view) in &self.shards {
            if let Some(code) = view.fatal {
                lines.push(format!(
                    "shard {shard}: Fatal: the live socket closed with {code} and the shard did not give up"
                ));
            }
        }
        if lines.is_empty() {
            Ok(self.observed)
        } else {
            let dropped = self
                .observed
                .violations
                .saturating_sub(self.violations.len() as u64);
            if dropped > 0 {
                lines.push(format!("... and {dropped} more"));
            }
            Err(lines.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PolicyConfig, Recovery, SessionStartLimit};

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn fleet(shards: u32, buckets: u16) -> Fleet {
        let limit = SessionStartLimit {
            max_concurrency: buckets,
            ..SessionStartLimit::DISCORD_DEFAULT
        };
        let limiter = IdentifyLimiter::new(limit, t(0));
        Fleet::new(PolicyConfig::default(), 0..shards, 1, limiter, t(0)).unwrap()
    }

    fn connect(id: u64) -> Output {
        Output::Action(Action::Connect {
            connection: ConnectionId(id),
            url: "wss://gateway.discord.gg".to_owned(),
            recovery: Recovery::Reidentify,
        })
    }

    fn identify(id: u64) -> Output {
        Output::Action(Action::Send {
            connection: ConnectionId(id),
            command: Command::Identify,
        })
    }

    fn props(observer: &Observer) -> Vec<Prop> {
        observer.violations().iter().map(|v| v.prop).collect()
    }

    #[test]
    fn a_second_connect_in_flight_or_within_the_guard_is_caught() {
        let mut o = Observer::new(&fleet(1, 1), t(0));
        o.output(0, &connect(1));
        o.timeout(t(500));
        o.output(0, &connect(2));
        assert_eq!(props(&o), [Prop::SingleFlight, Prop::Guard]);
        assert!(o.check().is_err());
    }

    #[test]
    fn identifies_of_one_bucket_closer_than_the_window_are_caught() {
        let mut o = Observer::new(&fleet(4, 2), t(0));
        for (shard, conn) in [(0, 1), (1, 2), (2, 3)] {
            o.output(shard, &connect(conn));
            o.event(
                t(10),
                shard,
                ConnectionId(conn),
                &Event::Opened,
                Handled::Accepted,
            );
        }
        // Buckets 0 and 1 side by side: fine.
        o.output(0, &identify(1));
        o.output(1, &identify(2));
        assert!(o.violations().is_empty(), "{:?}", o.violations());
        // Shard 2 is in bucket 0 again, 4.99 s later.
        o.timeout(t(5_000 + 9));
        o.output(2, &identify(3));
        assert_eq!(props(&o), [Prop::IdentifySpacing]);
    }

    #[test]
    fn actions_after_giving_up_and_fatal_closes_without_giving_up_are_caught() {
        let mut o = Observer::new(&fleet(2, 1), t(0));
        o.output(0, &connect(1));
        o.event(
            t(5),
            0,
            ConnectionId(1),
            &Event::Closed { code: Some(4004) },
            Handled::Accepted,
        );
        let reason = GiveUpReason::FatalCloseCode {
            code: CloseCode::from_u16(4004),
        };
        o.output(0, &Output::Action(Action::GiveUp(reason)));
        assert!(o.check().is_ok(), "{:?}", o.check());
        o.timeout(t(2_000));
        o.output(0, &connect(2));
        assert_eq!(props(&o), [Prop::Fatal]);
        // Shard 1 closes with 4014 and never gives up.
        o.output(1, &connect(3));
        o.event(
            t(2_010),
            1,
            ConnectionId(3),
            &Event::Closed { code: Some(4014) },
            Handled::Accepted,
        );
        assert!(o.check().unwrap_err().contains("did not give up"));
    }

    #[test]
    fn a_resume_must_name_the_session_and_its_last_sequence() {
        let mut o = Observer::new(&fleet(1, 1), t(0));
        o.output(0, &connect(1));
        o.event(t(1), 0, ConnectionId(1), &Event::Opened, Handled::Accepted);
        o.output(0, &identify(1));
        let ready = Event::Dispatch {
            seq: Some(1),
            event: Dispatch::Ready {
                session_id: "s".to_owned(),
                resume_gateway_url: "wss://gateway.discord.gg".to_owned(),
            },
        };
        o.event(t(2), 0, ConnectionId(1), &ready, Handled::Accepted);
        let other = Event::Dispatch {
            seq: Some(2),
            event: Dispatch::Other,
        };
        o.event(t(3), 0, ConnectionId(1), &other, Handled::Accepted);
        o.event(
            t(4),
            0,
            ConnectionId(1),
            &Event::Closed { code: None },
            Handled::Accepted,
        );
        o.timeout(t(2_000));
        o.output(0, &connect(2));
        o.event(
            t(2_001),
            0,
            ConnectionId(2),
            &Event::Opened,
            Handled::Accepted,
        );
        let resume = |seq| {
            Output::Action(Action::Send {
                connection: ConnectionId(2),
                command: Command::Resume {
                    session_id: "s".to_owned(),
                    seq,
                },
            })
        };
        o.output(0, &resume(2));
        assert!(o.violations().is_empty(), "{:?}", o.violations());
        o.output(0, &resume(1));
        assert_eq!(props(&o), [Prop::ResumeSeq]);
    }

    #[test]
    fn a_live_event_called_stale_and_a_send_on_a_dial_are_caught() {
        let mut o = Observer::new(&fleet(1, 1), t(0));
        o.output(0, &connect(1));
        o.output(0, &identify(1));
        o.event(t(1), 0, ConnectionId(1), &Event::Opened, Handled::Stale);
        // An event on a connection the driver no longer holds is the
        // policy's business.
        o.event(t(1), 0, ConnectionId(9), &Event::Opened, Handled::Stale);
        assert_eq!(props(&o), [Prop::Lifecycle, Prop::Lifecycle]);
    }
}
