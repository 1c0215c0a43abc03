//! Every shard of the run driven by one `reconnect_policy::Fleet`, as a bot
//! process drives its shards: events for shard N's connection in,
//! `(shard, output)` pairs out, one wake-up time for the whole fleet. The
//! fleet's timers run first when due, every message becomes an `Event` for
//! its shard, every `Action` becomes an action on a socket; the shards'
//! identify requests never leave the fleet, whose own limiter answers them.
//! No rule of the policy is repeated here.

use std::sync::Arc;

use reconnect_policy::{Fleet, FleetError, IdentifyLimiter, Output, PolicyConfig, Timestamp};

use super::Cx;
use super::fleet_sockets::{BASE_URL, ShardSockets, hand_to_fleet};
use crate::wire::{SockId, ToClient};

/// The adapter between the simulated shards and the fleet that drives them.
#[derive(Debug)]
pub struct FleetClient {
    fleet: Fleet,
    /// The fleet's `poll_timeout` as the last call left it: only this
    /// adapter changes the fleet, and it reads the timeout once after each
    /// change, where each message and wake-up asked the fleet twice.
    timeout: Option<Timestamp>,
    /// Each shard's recent sockets.
    socks: ShardSockets,
}

impl FleetClient {
    /// A fleet of shards `0..shards` running `config` pointed at the
    /// simulated gateway, its jitter derived from `seed`, the shards'
    /// identify requests answered by `limiter`, built (and every shard
    /// started) at `now`.
    ///
    /// # Errors
    ///
    /// The configuration is invalid.
    pub fn new(
        config: &PolicyConfig,
        shards: u32,
        seed: u64,
        limiter: IdentifyLimiter,
        now: u64,
    ) -> Result<Self, FleetError> {
        let mut config = config.clone();
        BASE_URL.clone_into(&mut config.gateway_url);
        let fleet = Fleet::new(
            Arc::new(config),
            0..shards,
            seed,
            limiter,
            Timestamp::from_millis(now),
        )?;
        Ok(Self {
            timeout: fleet.poll_timeout(),
            fleet,
            socks: ShardSockets::new(0, shards),
        })
    }

    /// The fleet, for inspection.
    #[must_use]
    pub const fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    pub(super) fn on_message(
        &mut self,
        now: u64,
        shard: u32,
        (sock, tag): (SockId, Option<u64>),
        msg: ToClient,
        cx: &mut Cx<'_>,
    ) {
        let Some(conn) = ShardSockets::connection(sock, tag, msg, cx) else {
            return;
        };
        let t = Timestamp::from_millis(now);
        // Timers due by now fire before a frame that arrived now.
        if self.timeout.is_some_and(|at| at <= t) {
            self.fleet.handle_timeout(t);
            self.drain(cx);
        }
        hand_to_fleet(&mut self.fleet, t, shard, (conn, sock), msg, cx);
        self.drain(cx);
        self.timeout = self.fleet.poll_timeout();
    }

    pub(super) fn wake(&mut self, now: u64, cx: &mut Cx<'_>) {
        self.fleet.handle_timeout(Timestamp::from_millis(now));
        self.drain(cx);
        self.timeout = self.fleet.poll_timeout();
    }

    pub(super) fn next_wake(&self) -> Option<u64> {
        self.timeout
            .filter(|t| *t < Timestamp::CEILING)
            .map(Timestamp::as_millis)
    }

    /// How many shards have stopped for good.
    pub(super) fn gave_up(&self) -> u64 {
        self.fleet
            .policies()
            .filter(|(_, policy)| policy.state().is_terminal())
            .count() as u64
    }

    fn drain(&mut self, cx: &mut Cx<'_>) {
        while let Some((shard, output)) = self.fleet.poll_output() {
            // Notes are for logs; the simulator reads the policy's counters.
            // The fleet's own limiter answers identify requests (a fleet
            // built with one never hands them out), it shares no probe
            // with other processes, and `gave_up` reports a policy that
            // stopped: only socket actions remain.
            if let Output::Action(action) = output {
                self.socks.carry_out(shard, action, cx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use reconnect_policy::SessionStartLimit;

    use super::*;
    use crate::client::{Action as Did, PeerShared, RecentSockets};
    use crate::wire::{DispatchKind, SessionId, ToServer};

    /// A fleet of `shards` in one identify bucket, started at 0.
    fn fleet(shards: u32) -> FleetClient {
        let limit = SessionStartLimit {
            max_concurrency: 1,
            ..SessionStartLimit::DISCORD_DEFAULT
        };
        let limiter = IdentifyLimiter::new(limit, Timestamp::ZERO);
        FleetClient::new(&PolicyConfig::default(), shards, 1, limiter, 0).unwrap()
    }

    /// The sockets opened so far, each with the tag it was opened with
    /// (by index, from 1 on), and the fleet's records of recent sockets,
    /// which the engine would keep.
    struct Opened {
        tags: Vec<Option<u64>>,
        records: Vec<RecentSockets>,
    }

    impl Opened {
        /// Nothing opened yet by a fleet of `shards`.
        fn new(shards: usize) -> Self {
            Self {
                tags: Vec::new(),
                records: vec![RecentSockets::default(); shards],
            }
        }

        /// `sock` with the tag a message on it carries.
        fn tagged(&self, sock: SockId) -> (SockId, Option<u64>) {
            let tag = (sock.index as usize)
                .checked_sub(1)
                .and_then(|i| self.tags.get(i))
                .copied()
                .flatten();
            (sock, tag)
        }
    }

    /// Runs `f` with a context and returns what the client did.
    fn call(
        client: &mut FleetClient,
        opened: &mut Opened,
        f: impl FnOnce(&mut FleetClient, &mut Cx<'_>),
    ) -> Vec<Did> {
        let mut peers = PeerShared::new(1, 1_000, 1_000, 86_400_000);
        let mut actions = Vec::new();
        let tags = &mut opened.tags;
        let mut alloc = |_shard, tag| {
            tags.push(tag);
            SockId {
                index: u32::try_from(tags.len()).unwrap(),
                generation: 0,
            }
        };
        let mut cx = Cx::new(&mut peers, &mut actions, &mut alloc, &mut opened.records);
        f(client, &mut cx);
        actions
    }

    #[test]
    fn the_fleet_dials_its_shards_one_identify_window_apart_and_identifies_on_hello() {
        let mut client = fleet(2);
        let mut socks = Opened::new(2);
        // The fleet's first wake-up dials shard 0 alone: one bucket.
        let did = call(&mut client, &mut socks, |c, cx| c.wake(0, cx));
        let [
            Did::Connect {
                shard: 0,
                sock,
                to_resume_url: false,
            },
        ] = did[..]
        else {
            panic!("{did:?}");
        };
        let later = client.next_wake().expect("shard 1 waits for its slot");
        assert!(later >= 5_000, "{later}");
        // Shard 0's handshake: an Identify goes out on its socket, which
        // carries the connection as its tag.
        let tagged = socks.tagged(sock);
        assert!(tagged.1.is_some(), "{tagged:?}");
        let did = call(&mut client, &mut socks, |c, cx| {
            c.on_message(50, 0, tagged, ToClient::Opened, cx);
            c.on_message(
                60,
                0,
                tagged,
                ToClient::Hello {
                    interval_ms: 41_250,
                },
                cx,
            );
        });
        assert!(
            did.contains(&Did::Send {
                sock,
                msg: ToServer::Identify
            }),
            "{did:?}"
        );
        // READY is handed to the bot.
        let session = SessionId(7);
        let ready = ToClient::Dispatch {
            session,
            seq: 1,
            kind: DispatchKind::Ready,
        };
        let did = call(&mut client, &mut socks, |c, cx| {
            c.on_message(100, 0, tagged, ready, cx)
        });
        assert_eq!(did, [Did::Delivered { session, seq: 1 }]);
        assert!(client.fleet().policy(0).unwrap().state().is_connected());
        // At its slot shard 1 dials, on a socket of its own.
        let did = call(&mut client, &mut socks, |c, cx| c.wake(later, cx));
        assert!(
            matches!(did[..], [Did::Connect { shard: 1, sock: other, .. }] if other != sock),
            "{did:?}"
        );
        assert_eq!(client.gave_up(), 0);
    }

    #[test]
    fn a_socket_the_fleet_forgot_is_dropped_when_it_opens() {
        let mut client = fleet(1);
        let mut socks = Opened::new(1);
        let unknown = SockId {
            index: 3,
            generation: 9,
        };
        let did = call(&mut client, &mut socks, |c, cx| {
            c.on_message(10, 0, (unknown, None), ToClient::Opened, cx);
        });
        assert_eq!(
            did,
            [Did::Send {
                sock: unknown,
                msg: ToServer::Drop
            }]
        );
    }
}
