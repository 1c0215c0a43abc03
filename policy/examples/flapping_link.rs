//! Prints every decision the policy makes on a flapping link.
//!
//! A tiny deterministic driver stands in for the network: a gateway that
//! answers at once, behind a link that goes down and up at random (seeded)
//! moments, sometimes accepting a connection only to drop it 300 ms later.
//! The policy runs with its production defaults; the output is one line per
//! output, then a summary with the most attempts made in any 60 s window.
//!
//! ```text
//! cargo run --release -p reconnect-policy --example flapping_link -- [SEED] [MINUTES]
//! ```

use std::collections::VecDeque;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use reconnect_policy::{
    Action, Command, ConnectFailure, Dispatch, Event, IdentifyLimiter, Note, Output, Policy,
    PolicyConfig, PolicyState, SessionStartLimit, Timestamp,
};

/// The gateway's heartbeat interval.
const HEARTBEAT_INTERVAL_MS: u64 = 41_250;
/// One-way latency of the link.
const LATENCY_MS: u64 = 40;

/// The link's schedule: alternating up and down periods.
struct Link {
    rng: ChaCha8Rng,
    up: bool,
    /// When the current period ends.
    until: u64,
}

impl Link {
    fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x11AC),
            up: true,
            until: 90_000,
        }
    }

    /// Moves the schedule to `now`; returns whether the link went down.
    fn advance(&mut self, now: u64) -> bool {
        let mut went_down = false;
        while now >= self.until {
            self.up = !self.up;
            went_down |= !self.up;
            let length = if self.up {
                // Up for 1–120 s: sometimes long enough to prove stable.
                self.rng.random_range(1_000..=120_000)
            } else {
                // Down for 0.5–45 s.
                self.rng.random_range(500..=45_000)
            };
            self.until += length;
        }
        went_down
    }

    /// Whether a connection opened now would be dropped almost at once
    /// (the link is up but is about to fall).
    fn about_to_drop(&self, now: u64) -> bool {
        self.up && self.until.saturating_sub(now) < 300
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(7);
    let minutes: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let end = minutes.saturating_mul(60_000);

    let config = PolicyConfig::default();
    println!(
        "flapping link, seed {seed}, {minutes} min; backoff {} base {} ms cap {} ms, guard {} ms",
        config.backoff.strategy.name(),
        config.backoff.base_ms,
        config.backoff.cap_ms,
        config.guard_ms
    );
    let t = Timestamp::from_millis;
    let mut limiter = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0));
    let mut policy = Policy::new(config, 0, seed, t(0)).expect("the default config is valid");
    let mut link = Link::new(seed);
    // Events the fake gateway will deliver: (time, connection, event).
    let mut pending: VecDeque<(u64, reconnect_policy::ConnectionId, Event)> = VecDeque::new();
    let mut attempts: Vec<u64> = Vec::new();
    let mut seq = 0u64;
    let mut now = 0u64;

    loop {
        // Deliver everything due, and let the link fall.
        if link.advance(now)
            && let Some(conn) = policy.connection()
        {
            pending.clear();
            pending.push_back((now, conn, Event::Closed { code: None }));
        }
        // Timers first: a deadline that passed wins over a later frame.
        policy.handle_timeout(t(now));
        while pending.front().is_some_and(|(at, ..)| *at <= now) {
            let (_, conn, event) = pending.pop_front().expect("checked above");
            policy.handle_event(t(now), conn, event);
        }
        while let Some(output) = policy.poll_output() {
            print_output(now, &output);
            let Output::Action(action) = output else {
                continue;
            };
            match action {
                Action::Connect { connection, .. } => {
                    attempts.push(now);
                    let reply = if !link.up {
                        Event::ConnectFailed {
                            failure: ConnectFailure::TimedOut,
                        }
                    } else {
                        Event::Opened
                    };
                    let delay = if link.up { 2 * LATENCY_MS } else { 10_000 };
                    pending.push_back((now + delay, connection, reply));
                    if link.up {
                        pending.push_back((
                            now + 3 * LATENCY_MS,
                            connection,
                            Event::Hello {
                                heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
                            },
                        ));
                        if link.about_to_drop(now) {
                            pending.push_back((
                                now + 300,
                                connection,
                                Event::Closed { code: Some(1006) },
                            ));
                        }
                    }
                }
                Action::Send {
                    connection,
                    command,
                } => {
                    let reply = match command {
                        Command::Identify => {
                            seq = 1;
                            Event::Dispatch {
                                seq: Some(seq),
                                event: Dispatch::Ready {
                                    session_id: format!("session-{now}"),
                                    resume_gateway_url: "wss://gateway-us-east1-b.discord.gg"
                                        .to_owned(),
                                },
                            }
                        }
                        Command::Resume { .. } => {
                            seq += 1;
                            Event::Dispatch {
                                seq: Some(seq),
                                event: Dispatch::Resumed,
                            }
                        }
                        Command::Heartbeat { .. } => Event::HeartbeatAck,
                    };
                    if link.up {
                        pending.push_back((now + 2 * LATENCY_MS, connection, reply));
                    }
                }
                Action::Close { connection, .. } => {
                    pending.push_back((
                        now + 2 * LATENCY_MS,
                        connection,
                        Event::Closed { code: None },
                    ));
                }
                Action::Identify { shard, request } => {
                    if let Some(answer) = limiter.answer(t(now), shard, request) {
                        policy.handle_identify(t(now), answer);
                    }
                }
                Action::Abort { .. } | Action::GiveUp(_) | Action::Probe(_) => {}
            }
        }
        pending.make_contiguous().sort_by_key(|(at, ..)| *at);
        if matches!(policy.state(), PolicyState::GivenUp { .. }) {
            break;
        }
        // Jump to the next thing that happens.
        let next = [
            policy.poll_timeout().map(Timestamp::as_millis),
            pending.front().map(|(at, ..)| *at),
            Some(link.until),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(end);
        now = next.max(now + 1);
        if now > end {
            break;
        }
    }

    let stats = policy.stats();
    let worst_minute = attempts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            attempts[i..]
                .iter()
                .take_while(|&&a| a < start + 60_000)
                .count()
        })
        .max()
        .unwrap_or(0);
    println!();
    println!(
        "attempts {}, resumes sent {}, identifies sent {}, zombies {}, most attempts in any 60 s: {worst_minute}",
        stats.attempts, stats.resumes_sent, stats.identifies_sent, stats.zombies
    );
    println!("final state: {:?}", policy.state());
}

fn print_output(now: u64, output: &Output) {
    let at = format!("{:>9.3}s", now as f64 / 1000.0);
    match output {
        Output::Note(Note::Planned(plan)) => println!(
            "{at}  plan    retry {:>2} after {:?}: {:?}, backoff {} ms, attempt at {:.3}s",
            plan.retry,
            plan.trigger,
            plan.recovery,
            plan.backoff_ms,
            plan.at.as_millis() as f64 / 1000.0
        ),
        Output::Action(Action::Connect {
            connection,
            url,
            recovery,
        }) => println!("{at}  connect {connection} to {url} ({recovery:?})"),
        Output::Action(Action::Send {
            command: Command::Heartbeat { .. },
            ..
        }) => {}
        Output::Action(Action::Send {
            connection,
            command,
        }) => println!("{at}  send    {command:?} on {connection}"),
        Output::Action(Action::Close { connection, code }) => {
            println!("{at}  close   {connection} with {code}");
        }
        Output::Action(Action::Abort { connection }) => println!("{at}  abort   {connection}"),
        Output::Action(Action::Identify { request, .. }) => println!("{at}  limiter {request:?}"),
        Output::Action(Action::GiveUp(reason)) => println!("{at}  give up: {reason}"),
        Output::Action(Action::Probe(request)) => println!("{at}  probe   {request:?}"),
        Output::Note(note) => println!("{at}  {note:?}"),
    }
}
