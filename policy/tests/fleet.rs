//! A fleet is its shards' policies and one identify limiter, nothing more:
//! driven with the same inputs, its `(shard, output)` stream is exactly what
//! lone policies sharing one limiter produce (identify requests answered at
//! once, due shards woken in order of their wake-up times), and its
//! wake-up time is the earliest of theirs. Property-tested over random
//! fleets, events and clock jumps, so a wake-up the fleet forgets to file,
//! or files twice, shows up as a difference. Fleet-wide recovery is off
//! here: it is the one thing a fleet adds to its policies (it holds and
//! releases them), tested in `policy/src/fleet_recovery.rs`,
//! `policy/src/fleet.rs` and the simulator's `sim/tests/fleet_recovery.rs`.

use std::collections::VecDeque;

use proptest::prelude::*;
use reconnect_policy::{
    Action, Dispatch, Event, Fleet, FleetRecovery, IdentifyLimiter, Output, Policy, PolicyConfig,
    SessionStartLimit, Timestamp,
};

const fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// Drains a lone policy as the fleet does: identify requests to the shared
/// limiter, everything else out.
fn drain(policy: &mut Policy, limiter: &mut IdentifyLimiter, now: Timestamp) -> Vec<(u32, Output)> {
    let mut out = Vec::new();
    while let Some(output) = policy.poll_output() {
        if let Output::Action(Action::Identify { shard, request }) = output {
            if let Some(answer) = limiter.answer(now, shard, request) {
                policy.handle_identify(now, answer);
            }
            continue;
        }
        out.push((policy.shard(), output));
    }
    out
}

fn event(kind: u8, seq: u64) -> Event {
    match kind {
        1 => Event::Opened,
        2 => Event::Hello {
            heartbeat_interval_ms: 41_250,
        },
        3 => Event::Dispatch {
            seq: Some(seq),
            event: Dispatch::Ready {
                session_id: "s".into(),
                resume_gateway_url: "wss://r.discord.gg".into(),
            },
        },
        4 => Event::Dispatch {
            seq: Some(seq),
            event: Dispatch::Resumed,
        },
        5 => Event::HeartbeatAck,
        6 => Event::Closed { code: None },
        7 => Event::Closed { code: Some(4000) },
        8 => Event::Reconnect,
        _ => Event::InvalidSession { resumable: false },
    }
}

proptest! {
    #[test]
    fn a_fleet_is_its_policies_and_one_limiter(
        seed in any::<u64>(),
        shards in 1u32..6,
        max_concurrency in 1u16..3,
        steps in prop::collection::vec((0u32..6, 0u8..10, 1u64..20_000), 1..150),
    ) {
        // Ids need not be contiguous.
        let ids: Vec<u32> = (0..shards).map(|i| i * 3 + 1).collect();
        let limit = SessionStartLimit { max_concurrency, ..SessionStartLimit::DISCORD_DEFAULT };
        let config = PolicyConfig {
            fleet_recovery: FleetRecovery::OFF,
            ..PolicyConfig::default()
        };
        let mut fleet =
            Fleet::new(config.clone(), ids.clone(), seed, IdentifyLimiter::new(limit, t(0)), t(0))
                .unwrap();
        let mut limiter = IdentifyLimiter::new(limit, t(0));
        let mut lone: Vec<Policy> = ids
            .iter()
            .map(|&id| Policy::new(config.clone(), id, seed, t(0)).unwrap())
            .collect();
        let mut expected: VecDeque<(u32, Output)> = VecDeque::new();
        for policy in &mut lone {
            expected.extend(drain(policy, &mut limiter, t(0)));
        }
        let mut now = 0;
        for (i, (pick, kind, dt)) in steps.into_iter().enumerate() {
            if kind == 0 {
                now += dt;
                fleet.handle_timeout(t(now));
                let mut due: Vec<(Timestamp, usize)> = lone
                    .iter()
                    .enumerate()
                    .filter_map(|(index, p)| p.poll_timeout().filter(|w| *w <= t(now)).map(|w| (w, index)))
                    .collect();
                due.sort_unstable();
                for (_, index) in due {
                    lone[index].handle_timeout(t(now));
                    expected.extend(drain(&mut lone[index], &mut limiter, t(now)));
                }
            } else {
                let index = (pick % shards) as usize;
                let Some(conn) = lone[index].connection() else { continue };
                let e = event(kind, i as u64 + 1);
                let got = fleet.handle_event(t(now), ids[index], conn, e.clone()).unwrap();
                let want = lone[index].handle_event(t(now), conn, e);
                prop_assert_eq!(got, want);
                expected.extend(drain(&mut lone[index], &mut limiter, t(now)));
            }
            let got: Vec<(u32, Output)> = std::iter::from_fn(|| fleet.poll_output()).collect();
            let want: Vec<(u32, Output)> = expected.drain(..).collect();
            prop_assert_eq!(got, want, "step {}", i);
            prop_assert_eq!(
                fleet.poll_timeout(),
                lone.iter().filter_map(Policy::poll_timeout).min(),
                "step {}", i
            );
            for (index, policy) in lone.iter().enumerate() {
                prop_assert_eq!(fleet.policy(ids[index]).map(Policy::state), Some(policy.state()));
            }
        }
        prop_assert_eq!(fleet.limiter().map(|l| *l.stats()), Some(*limiter.stats()));
    }
}
