//! Sockets and the links they run over.
//!
//! The socket table is a slab whose slots carry a generation, so a message
//! still in flight for a socket that is gone is dropped rather than handed
//! to the slot's next socket. Each socket keeps the time of the last message
//! scheduled in each direction: TCP delivers in order, so a message never
//! overtakes the one sent before it on the same socket, whatever latency
//! jitter it drew.

use crate::wire::SockId;

/// A cheap, seeded random source for per-message link draws (SplitMix64):
/// eight bytes per link instead of a ChaCha block, for fleet-scale runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkRng(u64);

impl LinkRng {
    /// A stream starting from `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        crate::rng::mix(self.0)
    }

    /// Uniform in `0..=max`.
    pub fn upto(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        // Lemire's multiply-shift; the bias is below 2^-64 · max.
        ((u128::from(self.next_u64()) * u128::from(max + 1)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Socket {
    /// The shard that opened it.
    pub shard: u32,
    /// The client still holds it (not yet seen closed, not dropped).
    pub client_open: bool,
    /// Traffic is dropped silently (half-open, or black-holed).
    pub dead: bool,
    /// The gateway holds its end open (accepted, not yet closed); the
    /// gateway keeps the rest of its view of the socket itself.
    pub server_open: bool,
    /// Arrival time of the last message scheduled towards the client.
    pub last_to_client: u64,
    /// Arrival time of the last message scheduled towards the server.
    pub last_to_server: u64,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    generation: u32,
    socket: Option<Socket>,
}

/// All sockets of a run.
#[derive(Debug, Default)]
pub struct Sockets {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Sockets {
    /// Opens a socket for `shard`.
    pub fn open(&mut self, shard: u32) -> SockId {
        let socket = Socket {
            shard,
            client_open: true,
            dead: false,
            server_open: false,
            last_to_client: 0,
            last_to_server: 0,
        };
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.socket = Some(socket);
            SockId {
                index,
                generation: slot.generation,
            }
        } else {
            let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 sockets at once");
            self.slots.push(Slot {
                generation: 0,
                socket: Some(socket),
            });
            SockId {
                index,
                generation: 0,
            }
        }
    }

    /// The socket, if it still exists.
    #[must_use]
    pub fn get(&self, id: SockId) -> Option<&Socket> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation == id.generation {
            slot.socket.as_ref()
        } else {
            None
        }
    }

    /// The socket, if it still exists.
    pub fn get_mut(&mut self, id: SockId) -> Option<&mut Socket> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation == id.generation {
            slot.socket.as_mut()
        } else {
            None
        }
    }

    /// Frees the socket once neither side holds it any more.
    pub fn release_if_done(&mut self, id: SockId) {
        let Some(slot) = self.slots.get_mut(id.index as usize) else {
            return;
        };
        if slot.generation != id.generation {
            return;
        }
        if let Some(s) = slot.socket
            && !s.client_open
            && !s.server_open
        {
            slot.socket = None;
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(id.index);
        }
    }

    /// The most sockets that ever existed at once (the table's size).
    #[must_use]
    pub fn high_water(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_does_not_answer_for_its_old_socket() {
        let mut t = Sockets::default();
        let a = t.open(1);
        t.get_mut(a).unwrap().client_open = false;
        t.release_if_done(a);
        let b = t.open(2);
        assert_eq!(a.index, b.index);
        assert!(t.get(a).is_none());
        assert_eq!(t.get(b).unwrap().shard, 2);
        assert_eq!(t.high_water(), 1, "the slot was reused");
    }

    #[test]
    fn link_rng_is_uniform_enough_and_bounded() {
        let mut r = LinkRng::new(5);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            let v = r.upto(9);
            counts[v as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(LinkRng::new(1).upto(0), 0);
        let u = r.unit();
        assert!((0.0..1.0).contains(&u));
    }
}
