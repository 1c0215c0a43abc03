//! Sockets and the links they run over.
//!
//! Each shard's side of its link is one small record ([`ShardLink`]): its
//! random source, the sockets its client holds (kept inline, so a fleet
//! allocates nothing per shard for them) and two flags, so an event for a
//! shard reads one place rather than one table per field.
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

/// Sockets held inline before a shard's list moves to the heap: a sound
/// client holds one socket, two while it replaces it.
const INLINE_SOCKETS: usize = 3;

/// The sockets one shard's client still holds, in the order it opened them.
///
/// Up to three live in the record itself; a model that leaves
/// sockets behind spills onto the heap, keeping the order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeldSockets {
    /// Few: the first `len` of `socks`.
    Inline {
        /// How many of `socks` are held.
        len: u8,
        /// The sockets, oldest first.
        socks: [SockId; INLINE_SOCKETS],
    },
    /// More than fit inline, oldest first.
    Spilled(Vec<SockId>),
}

impl Default for HeldSockets {
    fn default() -> Self {
        Self::Inline {
            len: 0,
            socks: [SockId {
                index: 0,
                generation: 0,
            }; INLINE_SOCKETS],
        }
    }
}

impl HeldSockets {
    /// The sockets, oldest first.
    #[must_use]
    pub fn as_slice(&self) -> &[SockId] {
        match self {
            Self::Inline { len, socks } => &socks[..usize::from(*len)],
            Self::Spilled(socks) => socks,
        }
    }

    /// How many are held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether none is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Holds one more, newest.
    pub fn push(&mut self, sock: SockId) {
        match self {
            Self::Inline { len, socks } if usize::from(*len) < INLINE_SOCKETS => {
                socks[usize::from(*len)] = sock;
                *len += 1;
            }
            Self::Inline { socks, .. } => {
                let mut spilled = socks.to_vec();
                spilled.push(sock);
                *self = Self::Spilled(spilled);
            }
            Self::Spilled(socks) => socks.push(sock),
        }
    }

    /// Lets go of `sock`, keeping the others' order.
    pub fn remove(&mut self, sock: SockId) {
        match self {
            Self::Inline { len, socks } => {
                let mut kept = 0;
                for i in 0..usize::from(*len) {
                    if socks[i] != sock {
                        socks[kept] = socks[i];
                        kept += 1;
                    }
                }
                // At most `INLINE_SOCKETS` were held.
                *len = u8::try_from(kept).unwrap_or(u8::MAX);
            }
            Self::Spilled(socks) => socks.retain(|x| *x != sock),
        }
    }
}

/// One shard's side of its link: everything the engine keeps per shard
/// about it, in one record.
///
/// Its 42 bytes are aligned to a cache line: unaligned, a table of
/// 48-byte records puts half of them across two lines, and a shard's
/// event (a send reads the flap flag and the draws, a dial the flags and
/// the held sockets) then misses twice where it could miss once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(align(64))]
pub struct ShardLink {
    /// The link's draws (latency jitter, loss, flap lengths).
    pub rng: LinkRng,
    /// The sockets the shard's client still holds.
    pub held: HeldSockets,
    /// A flapping fault has the link down now.
    pub flap_down: bool,
    /// The client was told a fatal close code.
    pub fatal_seen: bool,
}

impl ShardLink {
    /// A link drawing from `rng`, up, holding nothing.
    #[must_use]
    pub fn new(rng: LinkRng) -> Self {
        Self {
            rng,
            held: HeldSockets::default(),
            flap_down: false,
            fatal_seen: false,
        }
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
    /// Arrival time of the last message scheduled towards the client, ms
    /// (u32: a run lasts at most 7 days and a start-up, far below the
    /// 49 days a u32 of ms holds; a later time saturates).
    pub last_to_client: u32,
    /// Arrival time of the last message scheduled towards the server, ms
    /// (as `last_to_client`).
    pub last_to_server: u32,
}

/// A socket's slot: 20 bytes, aligned to 32 so that no slot lies across
/// two cache lines (a message in either direction reads its socket).
#[derive(Clone, Copy, Debug)]
#[repr(align(32))]
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
    /// An empty table with room for `sockets` sockets (a fleet holds one a
    /// shard), so it need not grow by doubling to hold them.
    #[must_use]
    pub fn with_capacity(sockets: usize) -> Self {
        Self {
            slots: Vec::with_capacity(sockets),
            free: Vec::new(),
        }
    }

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
    fn a_socket_slot_lies_in_one_cache_line() {
        assert_eq!(size_of::<Slot>(), 32);
        assert_eq!(align_of::<Slot>(), 32);
    }

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
    fn held_sockets_keep_their_order_inline_and_spilled() {
        let id = |index| SockId {
            index,
            generation: 0,
        };
        let mut held = HeldSockets::default();
        assert!(held.is_empty());
        let mut model = Vec::new();
        // Pushes past the inline capacity and removals, checked against a
        // plain list.
        for i in 0..6 {
            held.push(id(i));
            model.push(id(i));
            assert_eq!(held.as_slice(), &model[..]);
        }
        for i in [2, 0, 5, 9] {
            held.remove(id(i));
            model.retain(|x| *x != id(i));
            assert_eq!(held.as_slice(), &model[..]);
        }
        let mut held = HeldSockets::default();
        held.push(id(1));
        held.push(id(2));
        held.remove(id(1));
        held.push(id(3));
        assert_eq!(held.as_slice(), &[id(2), id(3)]);
        assert_eq!(held.len(), 2);
        assert!(matches!(held, HeldSockets::Inline { .. }));
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
