//! Fleets of one bot that share their fleet-wide outage probes through a
//! [`ProbeCoordinator`]: after a cut, one probe stream for the bot, not one
//! per fleet; once one probe is answered every fleet ramps; a lost or late
//! answer never wedges a fleet nor makes it probe faster than alone.

use proptest::prelude::*;
use reconnect_policy::{
    Action, Command, ConnectFailure, ConnectionId, Dispatch, Event, Fleet, IdentifyLimiter, Output,
    PolicyConfig, ProbeAnswer, ProbeCoordinator, ProbeRequest, SessionStartLimit, SharedRecovery,
    Timestamp,
};

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// How the coordinator's answers travel.
#[derive(Clone, Copy, Debug)]
struct Link {
    /// Round trip of an answer, ms.
    rtt_ms: u64,
    /// Every `lose_every`-th answer is lost (0: none).
    lose_every: u64,
    /// Whether each fleet is told the bot's size
    /// ([`SharedRecovery::for_bot`]), so the ramp is the bot's.
    bot_wide: bool,
}

/// What happened in one run.
#[derive(Debug, Default)]
struct Run {
    /// `(time, fleet)` of every dial made while the gateway was cut.
    cut_dials: Vec<(u64, usize)>,
    /// `(time, fleet)` of every dial after the heal.
    healed_dials: Vec<(u64, usize)>,
    /// The most shards of the bot dialling at once after the heal
    /// (dialled, no Hello yet, not failed): handshakes at the gateway.
    most_connecting: usize,
    /// Per fleet, the time its last shard was connected again after the
    /// heal (`None`: not all were by the end).
    back_at: Vec<Option<u64>>,
    /// Probe requests seen.
    asks: u64,
    answered_reports: u64,
    timeouts: u64,
    outages: Vec<u64>,
}

enum Pending {
    Shard(usize, u32, ConnectionId, Event),
    Answer(usize, ProbeAnswer),
}

/// Runs `fleets` fleets of `per_fleet` shards each (one bot) against a
/// gateway that is cut (every socket dropped, every dial refused) from
/// `cut_at` for `cut_ms`; `shared` says whether they share their probes
/// through one coordinator reached over `link`.
fn run(fleets: usize, per_fleet: u32, cut_at: u64, cut_ms: u64, shared: Option<Link>) -> Run {
    let total = u32::try_from(fleets).unwrap() * per_fleet;
    let mut bot: Vec<Fleet> = (0..fleets)
        .map(|p| {
            let first = u32::try_from(p).unwrap() * per_fleet;
            let limiter = IdentifyLimiter::new(
                SessionStartLimit {
                    max_concurrency: 16,
                    ..SessionStartLimit::DISCORD_DEFAULT
                },
                t(0),
            );
            let fleet = Fleet::new(
                PolicyConfig::default(),
                first..first + per_fleet,
                7 + p as u64,
                limiter,
                t(0),
            )
            .unwrap();
            match shared {
                Some(link) if link.bot_wide => {
                    fleet.with_shared_recovery(SharedRecovery::DEFAULT.for_bot(total))
                }
                Some(_) => fleet.with_shared_recovery(SharedRecovery::DEFAULT),
                None => fleet,
            }
        })
        .collect();
    let heal_at = cut_at + cut_ms;
    let end = heal_at + 60_000;
    let mut coordinator = ProbeCoordinator::new();
    let mut pending: Vec<(u64, u64, Pending)> = Vec::new();
    let mut order = 0u64;
    let mut out = Run {
        back_at: vec![None; fleets],
        ..Run::default()
    };
    let mut answers = 0u64;
    let mut now = 0u64;
    let mut cut_done = false;
    let mut connecting = std::collections::BTreeSet::new();
    loop {
        if !cut_done && now >= cut_at {
            cut_done = true;
            pending.retain(|(_, _, p)| !matches!(p, Pending::Shard(..)));
            for fleet in &mut bot {
                let live: Vec<(u32, ConnectionId)> = fleet
                    .policies()
                    .filter_map(|(id, p)| p.connection().map(|c| (id, c)))
                    .collect();
                for (id, conn) in live {
                    fleet
                        .handle_event(t(now), id, conn, Event::Closed { code: None })
                        .unwrap();
                }
            }
        }
        for fleet in &mut bot {
            fleet.handle_timeout(t(now));
        }
        pending.sort_by_key(|(at, order, _)| (*at, *order));
        while pending.first().is_some_and(|(at, ..)| *at <= now) {
            let (_, _, item) = pending.remove(0);
            match item {
                Pending::Shard(p, shard, conn, event) => {
                    if matches!(
                        event,
                        Event::Hello { .. } | Event::Closed { .. } | Event::ConnectFailed { .. }
                    ) {
                        connecting.remove(&(p, shard));
                    }
                    let _ = bot[p].handle_event(t(now), shard, conn, event);
                }
                Pending::Answer(p, answer) => bot[p].handle_probe(t(now), answer),
            }
        }
        let up = now < cut_at || now >= heal_at;
        for (p, fleet) in bot.iter_mut().enumerate() {
            while let Some((shard, output)) = fleet.poll_output() {
                let Output::Action(action) = output else {
                    continue;
                };
                let mut at = |delay: u64, item: Pending| {
                    order += 1;
                    pending.push((now + delay, order, item));
                };
                match action {
                    Action::Connect { connection, .. } => {
                        if now >= cut_at && now < heal_at {
                            out.cut_dials.push((now, p));
                        } else if now >= heal_at {
                            out.healed_dials.push((now, p));
                            connecting.insert((p, shard));
                            out.most_connecting = out.most_connecting.max(connecting.len());
                        }
                        if up {
                            at(50, Pending::Shard(p, shard, connection, Event::Opened));
                            let hello = Event::Hello {
                                heartbeat_interval_ms: 41_250,
                            };
                            at(60, Pending::Shard(p, shard, connection, hello));
                        } else {
                            let failure = ConnectFailure::Refused;
                            let event = Event::ConnectFailed { failure };
                            at(5, Pending::Shard(p, shard, connection, event));
                        }
                    }
                    Action::Send {
                        connection,
                        command,
                    } => {
                        if !up {
                            continue;
                        }
                        let reply = match command {
                            Command::Identify => Event::Dispatch {
                                seq: Some(1),
                                event: Dispatch::Ready {
                                    session_id: format!("s{shard}"),
                                    resume_gateway_url: "wss://r.discord.gg".into(),
                                },
                            },
                            Command::Resume { seq, .. } => Event::Dispatch {
                                seq: Some(seq + 1),
                                event: Dispatch::Resumed,
                            },
                            Command::Heartbeat { .. } => Event::HeartbeatAck,
                        };
                        at(40, Pending::Shard(p, shard, connection, reply));
                    }
                    Action::Close { connection, .. } => {
                        at(
                            40,
                            Pending::Shard(p, shard, connection, Event::Closed { code: None }),
                        );
                    }
                    Action::Probe(request) => {
                        let link = shared.expect("only a sharing fleet asks");
                        if matches!(request, ProbeRequest::Acquire { .. }) {
                            out.asks += 1;
                        }
                        if request == ProbeRequest::Answered {
                            out.answered_reports += 1;
                        }
                        if let Some(answer) = coordinator.answer(t(now), request) {
                            answers += 1;
                            if link.lose_every == 0 || !answers.is_multiple_of(link.lose_every) {
                                at(link.rtt_ms, Pending::Answer(p, answer));
                            }
                        }
                    }
                    Action::Identify { .. } => panic!("each fleet answers its own identify"),
                    Action::Abort { .. } | Action::GiveUp(_) => {}
                }
            }
        }
        if now >= heal_at {
            for (p, fleet) in bot.iter().enumerate() {
                if out.back_at[p].is_none()
                    && fleet
                        .policies()
                        .all(|(_, policy)| policy.state().is_connected())
                {
                    out.back_at[p] = Some(now);
                }
            }
        }
        let next = bot
            .iter()
            .filter_map(Fleet::poll_timeout)
            .map(Timestamp::as_millis)
            .chain(pending.iter().map(|(at, ..)| *at))
            .chain((!cut_done).then_some(cut_at))
            .min();
        match next {
            Some(next) if next <= end => now = next.max(now + 1),
            _ => break,
        }
    }
    out.timeouts = bot.iter().map(Fleet::probe_answer_timeouts).sum();
    out.outages = bot.iter().map(Fleet::outages).collect();
    assert!(total > 0);
    out
}

/// Dials after every fleet tripped (each fleet's own dials right at the
/// cut are its shards' first reaction, before the trip).
fn probes(run: &Run, cut_at: u64) -> Vec<(u64, usize)> {
    run.cut_dials
        .iter()
        .copied()
        .filter(|&(at, _)| at >= cut_at + 900)
        .collect()
}

const LOSSLESS: Link = Link {
    rtt_ms: 2,
    lose_every: 0,
    bot_wide: true,
};

#[test]
fn four_fleets_of_one_bot_send_one_probe_stream_and_all_ramp() {
    let (cut_at, cut_ms) = (30_000, 30_000);
    let alone = run(4, 25, cut_at, cut_ms, None);
    let shared = run(4, 25, cut_at, cut_ms, Some(LOSSLESS));
    assert!(alone.outages.iter().all(|&n| n == 1), "{:?}", alone.outages);
    assert!(
        shared.outages.iter().all(|&n| n == 1),
        "{:?}",
        shared.outages
    );
    let alone_probes = probes(&alone, cut_at);
    let shared_probes = probes(&shared, cut_at);
    // One stream: no two probes of the bot closer than a grant's gap.
    assert!(
        shared_probes.windows(2).all(|w| w[1].0 - w[0].0 >= 500),
        "{shared_probes:?}"
    );
    assert!(
        shared_probes.len() * 3 <= alone_probes.len(),
        "shared {} against alone {}",
        shared_probes.len(),
        alone_probes.len()
    );
    // Every fleet came back, and soon: the ones that did not probe learned
    // the gateway was back from the coordinator.
    let last = |run: &Run| {
        run.back_at
            .iter()
            .map(|at| at.expect("every fleet is back") - (cut_at + cut_ms))
            .max()
            .unwrap()
    };
    assert!(last(&shared) <= 8_000, "{:?}", shared.back_at);
    assert!(
        last(&shared) <= last(&alone) + 2_000,
        "{:?} {:?}",
        shared.back_at,
        alone.back_at
    );
    assert_eq!(shared.timeouts, 0);
    assert!(shared.answered_reports >= 1);
}

#[test]
fn fleets_told_the_bots_size_ramp_as_one_fleet_of_that_size() {
    let (cut_at, cut_ms) = (30_000, 30_000);
    // One fleet of 100: the ramp's window is 8 (a twentieth of 100 is
    // less than the first window).
    let one = run(1, 100, cut_at, cut_ms, None);
    let per_process = run(
        4,
        25,
        cut_at,
        cut_ms,
        Some(Link {
            bot_wide: false,
            ..LOSSLESS
        }),
    );
    let bot_wide = run(4, 25, cut_at, cut_ms, Some(LOSSLESS));
    for r in [&one, &per_process, &bot_wide] {
        assert!(r.back_at.iter().all(Option::is_some), "{:?}", r.back_at);
    }
    assert_eq!(one.most_connecting, 8);
    // Four ramps of 8 each, against the bot's one: three times as many
    // handshakes at once here.
    assert!(
        per_process.most_connecting >= 2 * one.most_connecting,
        "{} against {}",
        per_process.most_connecting,
        one.most_connecting
    );
    assert!(
        bot_wide.most_connecting <= one.most_connecting,
        "{} against {}",
        bot_wide.most_connecting,
        one.most_connecting
    );
}

#[test]
fn lost_answers_fall_back_to_each_fleets_own_schedule() {
    let (cut_at, cut_ms) = (30_000, 20_000);
    let alone = run(4, 25, cut_at, cut_ms, None);
    // Every answer lost: each fleet waits out the timeout, then probes
    // alone, never faster than it would have.
    let lost = run(
        4,
        25,
        cut_at,
        cut_ms,
        Some(Link {
            rtt_ms: 2,
            lose_every: 1,
            bot_wide: true,
        }),
    );
    assert!(lost.timeouts > 0);
    assert!(probes(&lost, cut_at).len() <= probes(&alone, cut_at).len() + 4);
    assert!(
        lost.back_at.iter().all(Option::is_some),
        "{:?}",
        lost.back_at
    );
    // One answer in three lost: still no storm and nobody wedged.
    let some = run(
        4,
        25,
        cut_at,
        cut_ms,
        Some(Link {
            rtt_ms: 30,
            lose_every: 3,
            bot_wide: true,
        }),
    );
    assert!(probes(&some, cut_at).len() <= probes(&alone, cut_at).len() + 4);
    assert!(
        some.back_at.iter().all(Option::is_some),
        "{:?}",
        some.back_at
    );
}

#[test]
fn a_fleet_that_does_not_share_ignores_probe_answers() {
    let limiter = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0));
    let mut fleet = Fleet::new(PolicyConfig::default(), 0..4, 1, limiter, t(0)).unwrap();
    assert!(!fleet.shares_recovery());
    fleet.handle_probe(t(10), ProbeAnswer::GatewayBack);
    fleet.handle_probe(t(10), ProbeAnswer::Granted);
    assert!(!fleet.is_recovering());
    while let Some((_, output)) = fleet.poll_output() {
        assert!(!matches!(output, Output::Action(Action::Probe(_))));
    }
}

#[test]
fn answers_at_a_clock_that_stepped_back_or_at_its_end_never_panic() {
    let limiter = IdentifyLimiter::new(SessionStartLimit::DISCORD_DEFAULT, t(0));
    let mut fleet = Fleet::new(PolicyConfig::default(), 0..4, 1, limiter, t(0))
        .unwrap()
        .with_shared_recovery(SharedRecovery::DEFAULT);
    for at in [50_000, 0, u64::MAX, 3] {
        for answer in [
            ProbeAnswer::Granted,
            ProbeAnswer::NotYet { retry_at: t(0) },
            ProbeAnswer::NotYet {
                retry_at: t(u64::MAX),
            },
            ProbeAnswer::GatewayBack,
        ] {
            fleet.handle_probe(t(at), answer);
            fleet.handle_timeout(t(at));
        }
    }
    let _ = fleet.poll_timeout();
}

proptest! {
    // `..default()` keeps the case count from PROPTEST_CASES.
    #![proptest_config(ProptestConfig {
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    /// Whatever the cut's length, the answers' delay and how many are
    /// lost: no fleet probes more than it would alone (plus the one probe
    /// a timeout may add), every fleet is back after the heal, and with
    /// every answer delivered the bot's probes are one stream.
    #[test]
    fn shared_probes_never_storm_nor_wedge(
        fleets in 2usize..5,
        cut_s in 3u64..45,
        rtt_ms in 0u64..2_500,
        lose_every in 0u64..4,
    ) {
        let (cut_at, cut_ms) = (30_000, cut_s * 1_000);
        let alone = run(fleets, 10, cut_at, cut_ms, None);
        let link = Link { rtt_ms, lose_every, bot_wide: true };
        let shared = run(fleets, 10, cut_at, cut_ms, Some(link));
        let alone_probes = probes(&alone, cut_at).len();
        let shared_probes = probes(&shared, cut_at);
        prop_assert!(
            shared_probes.len() <= alone_probes + fleets,
            "shared {} alone {}", shared_probes.len(), alone_probes
        );
        prop_assert!(shared.outages.iter().all(|&n| n >= 1), "{:?}", shared.outages);
        prop_assert!(shared.back_at.iter().all(Option::is_some), "{:?}", shared.back_at);
        if lose_every == 0 && rtt_ms < SharedRecovery::DEFAULT.answer_timeout_ms {
            prop_assert!(
                shared_probes.windows(2).all(|w| w[1].0 - w[0].0 >= 500),
                "{shared_probes:?}"
            );
        }
    }
}

#[test]
#[ignore = "prints the figures of one run"]
fn print_figures() {
    let (cut_at, cut_ms) = (30_000, 30_000);
    let one = run(1, 100, cut_at, cut_ms, None);
    println!(
        "one fleet of 100: back_at={:?} probes={:?}",
        one.back_at,
        probes(&one, cut_at)
    );
    for shared in [None, Some(LOSSLESS)] {
        let r = run(4, 25, cut_at, cut_ms, shared);
        let p = probes(&r, cut_at);
        println!(
            "shared={} cut dials={} probes={} {:?}",
            shared.is_some(),
            r.cut_dials.len(),
            p.len(),
            p
        );
        println!(
            "  healed dials={} back_at={:?} asks={} outages={:?}",
            r.healed_dials.len(),
            r.back_at,
            r.asks,
            r.outages
        );
    }
}
