//! Sockets and the links they run over.
//!
//! Each shard's side of its link is one record in [`Links`]: its random
//! source and two flags ([`ShardLink`]), beside its client's own record
//! of the shard in the same cache line, then the sockets its client holds
//! (two inline, so a fleet allocates nothing per shard for them; [`Links`]
//! keeps longer lists), so an event for a shard reads one place rather
//! than one table per field.
//!
//! The socket table is a slab whose slots carry a generation, so a message
//! still in flight for a socket that is gone is dropped rather than handed
//! to the slot's next socket. The slots themselves live where a
//! [`SlotStore`] keeps them: in a run, the gateway's socket table, each
//! beside the gateway's half of the same socket, so that a message and its
//! reply read one cache line for both. Each socket keeps the time of the last message
//! scheduled in each direction: TCP delivers in order, so a message never
//! overtakes the one sent before it on the same socket, whatever latency
//! jitter it drew.

use crate::gateway::Gateway;
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

/// Sockets held in a shard's record before its list moves to the table's
/// spilled lists: a sound client holds one socket, two while it replaces
/// it.
const INLINE_SOCKETS: usize = 2;

/// `ShardLink::held_len` of a shard whose list is spilled: its
/// `held[0].index` is then the list's place in [`Links::spilled`].
const SPILLED: u8 = u8::MAX;

/// The hot part of one shard's side of its link: what every message on
/// it reads (the draws, the flap flag) and the fatal-close flag (the
/// sockets its client holds are read and changed through [`Links`],
/// which keeps them in the shard's record beside this).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardLink {
    /// The link's draws (latency jitter, loss, flap lengths).
    pub rng: LinkRng,
    /// A flapping fault has the link down now.
    pub flap_down: bool,
    /// The client was told a fatal close code.
    pub fatal_seen: bool,
}

impl ShardLink {
    /// A link drawing from `rng`, up.
    #[must_use]
    pub const fn new(rng: LinkRng) -> Self {
        Self {
            rng,
            flap_down: false,
            fatal_seen: false,
        }
    }
}

/// Everything the engine keeps per shard, in two cache lines (128 bytes,
/// aligned to 64; fields in this order):
///
/// - first line: the link's hot part ([`ShardLink`], 16 bytes) and a
///   record the shard's client keeps (`C`, up to 48 bytes: the fleet's
///   recent sockets, see [`Links::client_mut`]). A socket action of the
///   fleet reads its record, then the send reads the link's draws and
///   flap flag: one line for both.
/// - second line: the sockets the client holds and a record the engine
///   keeps for the shard in the same events (`X`; the metrics' attempt
///   window, which a dial writes as it reads the held sockets, see
///   [`crate::metrics::Recorder::attempt_in`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
struct ShardLine<X, C> {
    link: ShardLink,
    client: C,
    /// The sockets the shard's client holds, oldest first: the first
    /// `held_len`, or, when `held_len` is [`SPILLED`], the spilled list
    /// `held[0].index`.
    held: [SockId; INLINE_SOCKETS],
    /// How many of `held` are held, or [`SPILLED`].
    held_len: u8,
    beside: X,
}

impl<X, C> ShardLine<X, C> {
    /// The held sockets' array and its length.
    const fn held_mut(&mut self) -> (&mut [SockId; INLINE_SOCKETS], &mut u8) {
        (&mut self.held, &mut self.held_len)
    }
}

/// Every shard's side of its link ([`ShardLink`], indexed by shard), each
/// with a record of its client's (`C`, see [`Links::client_mut`]) and an
/// `X` (see [`Links::beside_mut`]) beside it, and the lists of held
/// sockets too long for a shard's record (a model that leaves sockets
/// behind), in the order they were opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links<X = (), C = ()> {
    links: Vec<ShardLine<X, C>>,
    /// Spilled lists, oldest socket first; an empty one is free.
    spilled: Vec<Vec<SockId>>,
    /// The spilled lists free for reuse.
    free: Vec<u32>,
}

impl<X: Default, C: Default> FromIterator<ShardLink> for Links<X, C> {
    fn from_iter<I: IntoIterator<Item = ShardLink>>(links: I) -> Self {
        Self {
            links: links
                .into_iter()
                .map(|link| ShardLine {
                    link,
                    client: C::default(),
                    held: [SockId {
                        index: 0,
                        generation: 0,
                    }; INLINE_SOCKETS],
                    held_len: 0,
                    beside: X::default(),
                })
                .collect(),
            spilled: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<X, C> std::ops::Index<usize> for Links<X, C> {
    type Output = ShardLink;

    fn index(&self, shard: usize) -> &ShardLink {
        &self.links[shard].link
    }
}

impl<X, C> std::ops::IndexMut<usize> for Links<X, C> {
    fn index_mut(&mut self, shard: usize) -> &mut ShardLink {
        &mut self.links[shard].link
    }
}

impl<X, C> Links<X, C> {
    /// The record `shard`'s client keeps in the first line of the shard's
    /// record, beside the link's hot part, if the table has the shard.
    #[inline]
    pub fn client_mut(&mut self, shard: u32) -> Option<&mut C> {
        self.links
            .get_mut(shard as usize)
            .map(|line| &mut line.client)
    }

    /// What is kept beside `shard`'s link record, if the table has the
    /// shard.
    #[inline]
    pub fn beside_mut(&mut self, shard: u32) -> Option<&mut X> {
        self.links
            .get_mut(shard as usize)
            .map(|line| &mut line.beside)
    }

    /// What is kept beside each shard's link record, in shard order.
    pub fn beside_iter_mut(&mut self) -> impl Iterator<Item = &mut X> + '_ {
        self.links.iter_mut().map(|line| &mut line.beside)
    }

    /// Takes what is kept beside each shard's link record, in shard
    /// order, leaving the defaults.
    pub fn take_beside(&mut self) -> Vec<X>
    where
        X: Default,
    {
        self.beside_iter_mut().map(std::mem::take).collect()
    }

    /// How many shards.
    #[must_use]
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Whether there is no shard.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Every shard's link, in order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut ShardLink> + '_ {
        self.links.iter_mut().map(|line| &mut line.link)
    }

    /// The sockets `shard`'s client holds, oldest first (none for a shard
    /// the table does not have).
    #[must_use]
    pub fn held(&self, shard: u32) -> &[SockId] {
        let Some(line) = self.links.get(shard as usize) else {
            return &[];
        };
        if line.held_len == SPILLED {
            self.spilled
                .get(line.held[0].index as usize)
                .map_or(&[], Vec::as_slice)
        } else {
            &line.held[..usize::from(line.held_len)]
        }
    }

    /// `shard`'s client holds one more socket, newest; says how many it
    /// holds now.
    pub fn hold(&mut self, shard: u32, sock: SockId) -> usize {
        let Some((held, held_len)) = self.links.get_mut(shard as usize).map(ShardLine::held_mut)
        else {
            return 0;
        };
        let len = usize::from(*held_len);
        if *held_len == SPILLED {
            let list = &mut self.spilled[held[0].index as usize];
            list.push(sock);
            return list.len();
        }
        if len < INLINE_SOCKETS {
            held[len] = sock;
            *held_len += 1;
            return len + 1;
        }
        // Full: the list moves out of the record, in order.
        let mut list = Vec::with_capacity(2 * INLINE_SOCKETS);
        list.extend_from_slice(held);
        list.push(sock);
        let count = list.len();
        let at = if let Some(at) = self.free.pop() {
            self.spilled[at as usize] = list;
            at
        } else {
            self.spilled.push(list);
            u32::try_from(self.spilled.len() - 1).unwrap_or(u32::MAX)
        };
        held[0].index = at;
        *held_len = SPILLED;
        count
    }

    /// `shard`'s client lets go of `sock`, keeping the others' order.
    pub fn let_go(&mut self, shard: u32, sock: SockId) {
        let Some((held, held_len)) = self.links.get_mut(shard as usize).map(ShardLine::held_mut)
        else {
            return;
        };
        if *held_len != SPILLED {
            let len = usize::from(*held_len);
            let mut kept = 0;
            for i in 0..len {
                if held[i] != sock {
                    held[kept] = held[i];
                    kept += 1;
                }
            }
            // At most `INLINE_SOCKETS` were held.
            *held_len = u8::try_from(kept).unwrap_or(0);
            return;
        }
        let at = held[0].index;
        let list = &mut self.spilled[at as usize];
        list.retain(|x| *x != sock);
        if list.len() <= INLINE_SOCKETS {
            // Short again: back into the record, and the list is free.
            let list = std::mem::take(list);
            held[..list.len()].copy_from_slice(&list);
            *held_len = u8::try_from(list.len()).unwrap_or(0);
            self.free.push(at);
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
    /// The client keeps [`client_tag`](Self::client_tag) on the socket.
    tagged: bool,
    /// The number the client keeps on the socket, while `tagged` (see
    /// [`Socket::client_tag`]).
    tag: u64,
}

impl Socket {
    /// The number the client keeps on the socket, if any: set as it opens
    /// the socket ([`Sockets::open_tagged`]) and cleared when it forgets
    /// it ([`Socket::clear_client_tag`]), and read back with each message
    /// the socket brings, as epoll's user data. The fleet client keeps the
    /// connection its policy numbered the socket with, so that a message
    /// finds its connection in the socket's line, which the engine reads
    /// anyway, rather than in a record of the shard's of its own.
    #[must_use]
    #[inline]
    pub const fn client_tag(&self) -> Option<u64> {
        if self.tagged { Some(self.tag) } else { None }
    }

    /// The client no longer keeps a number on the socket.
    pub const fn clear_client_tag(&mut self) {
        self.tagged = false;
        self.tag = 0;
    }
}

/// A socket's slot: 32 bytes (28 used), aligned to 32 so that no slot lies across
/// two cache lines (a message in either direction reads its socket). The
/// engine keeps them in the gateway's table, each beside the gateway's
/// half of the same socket ([`Gateway::with_driver_halves`]): a message to
/// the gateway, and its reply, read one line for both halves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(align(32))]
pub struct Slot {
    generation: u32,
    socket: Option<Socket>,
}

/// One end of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client's end.
    Client,
    /// The gateway's end.
    Server,
}

/// Where a run's socket slots are kept, by index: the gateway's table
/// (each slot beside the gateway's half of the socket), or a plain list.
pub trait SlotStore {
    /// Slot `index`, if the store has it.
    fn slot(&self, index: u32) -> Option<&Slot>;
    /// Slot `index`, to change, if the store has it.
    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot>;
    /// Adds `slot` at the end; says its index.
    fn push_slot(&mut self, slot: Slot) -> usize;
    /// How many slots the store has.
    fn slot_count(&self) -> usize;
}

impl SlotStore for Vec<Slot> {
    fn slot(&self, index: u32) -> Option<&Slot> {
        self.get(index as usize)
    }

    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot> {
        self.get_mut(index as usize)
    }

    fn push_slot(&mut self, slot: Slot) -> usize {
        self.push(slot);
        self.len() - 1
    }

    fn slot_count(&self) -> usize {
        self.len()
    }
}

impl<S: Copy + Default> SlotStore for Gateway<Slot, S> {
    #[inline]
    fn slot(&self, index: u32) -> Option<&Slot> {
        self.driver_half(index)
    }

    #[inline]
    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot> {
        self.driver_half_mut(index)
    }

    fn push_slot(&mut self, slot: Slot) -> usize {
        self.push_driver_half(slot)
    }

    fn slot_count(&self) -> usize {
        self.socket_slots()
    }
}

/// All sockets of a run: the slots freed for reuse, over a [`SlotStore`]
/// that holds the slots themselves.
#[derive(Debug, Default)]
pub struct Sockets {
    free: Vec<u32>,
}

impl Sockets {
    /// Opens a socket for `shard` in `store`, with no client tag.
    pub fn open(&mut self, store: &mut impl SlotStore, shard: u32) -> SockId {
        self.open_tagged(store, shard, None)
    }

    /// Opens a socket for `shard` in `store`, the client keeping `tag` on
    /// it (see [`Socket::client_tag`]).
    pub fn open_tagged(
        &mut self,
        store: &mut impl SlotStore,
        shard: u32,
        tag: Option<u64>,
    ) -> SockId {
        let socket = Socket {
            shard,
            client_open: true,
            dead: false,
            server_open: false,
            last_to_client: 0,
            last_to_server: 0,
            tagged: tag.is_some(),
            tag: tag.unwrap_or(0),
        };
        if let Some(index) = self.free.pop()
            && let Some(slot) = store.slot_mut(index)
        {
            slot.socket = Some(socket);
            SockId {
                index,
                generation: slot.generation,
            }
        } else {
            let index = store.push_slot(Slot {
                generation: 0,
                socket: Some(socket),
            });
            SockId {
                index: u32::try_from(index).expect("fewer than 2^32 sockets at once"),
                generation: 0,
            }
        }
    }

    /// The socket, if it still exists in `store`.
    #[must_use]
    #[inline]
    pub fn get(store: &impl SlotStore, id: SockId) -> Option<&Socket> {
        let slot = store.slot(id.index)?;
        if slot.generation == id.generation {
            slot.socket.as_ref()
        } else {
            None
        }
    }

    /// The socket, if it still exists in `store`.
    #[inline]
    pub fn get_mut(store: &mut impl SlotStore, id: SockId) -> Option<&mut Socket> {
        let slot = store.slot_mut(id.index)?;
        if slot.generation == id.generation {
            slot.socket.as_mut()
        } else {
            None
        }
    }

    /// `side` of the socket lets go of it, and the socket is freed if the
    /// other side already had: one look at its slot where setting the
    /// flag and [`release_if_done`](Self::release_if_done) took two. Says
    /// the socket's shard, if the socket still existed.
    pub fn let_go(&mut self, store: &mut impl SlotStore, id: SockId, side: Side) -> Option<u32> {
        let slot = store.slot_mut(id.index)?;
        if slot.generation != id.generation {
            return None;
        }
        let s = slot.socket.as_mut()?;
        match side {
            Side::Client => s.client_open = false,
            Side::Server => s.server_open = false,
        }
        let shard = s.shard;
        self.free_if_done(slot, id.index);
        Some(shard)
    }

    /// Frees the socket once neither side holds it any more.
    pub fn release_if_done(&mut self, store: &mut impl SlotStore, id: SockId) {
        let Some(slot) = store.slot_mut(id.index) else {
            return;
        };
        if slot.generation == id.generation {
            self.free_if_done(slot, id.index);
        }
    }

    /// Frees `slot`, at `index`, if neither side holds its socket any
    /// more: a new generation, so a message still in flight for the old
    /// socket finds nothing, and the slot goes to the free list.
    fn free_if_done(&mut self, slot: &mut Slot, index: u32) {
        if let Some(s) = slot.socket
            && !s.client_open
            && !s.server_open
        {
            slot.socket = None;
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(index);
        }
    }

    /// The most sockets that ever existed at once in `store` (its size).
    #[must_use]
    pub fn high_water(store: &impl SlotStore) -> usize {
        store.slot_count()
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
    fn a_socket_keeps_its_client_tag_until_cleared_and_a_reused_slot_has_none() {
        let mut t = Sockets::default();
        let mut store: Vec<Slot> = Vec::new();
        let a = t.open_tagged(&mut store, 1, Some(7));
        assert_eq!(Sockets::get(&store, a).unwrap().client_tag(), Some(7));
        Sockets::get_mut(&mut store, a).unwrap().clear_client_tag();
        assert_eq!(Sockets::get(&store, a).unwrap().client_tag(), None);
        let b = t.open_tagged(&mut store, 1, Some(8));
        t.let_go(&mut store, b, Side::Client);
        let c = t.open(&mut store, 2);
        assert_eq!(c.index, b.index, "the slot was reused");
        assert_eq!(Sockets::get(&store, c).unwrap().client_tag(), None);
    }

    #[test]
    fn a_reused_slot_does_not_answer_for_its_old_socket() {
        let mut t = Sockets::default();
        let mut store: Vec<Slot> = Vec::new();
        let a = t.open(&mut store, 1);
        Sockets::get_mut(&mut store, a).unwrap().client_open = false;
        t.release_if_done(&mut store, a);
        let b = t.open(&mut store, 2);
        assert_eq!(a.index, b.index);
        assert!(Sockets::get(&store, a).is_none());
        assert_eq!(Sockets::get(&store, b).unwrap().shard, 2);
        assert_eq!(Sockets::high_water(&store), 1, "the slot was reused");
        // Each side lets go; the second frees the slot.
        Sockets::get_mut(&mut store, b).unwrap().server_open = true;
        assert_eq!(t.let_go(&mut store, b, Side::Client), Some(2));
        assert!(
            Sockets::get(&store, b).is_some(),
            "the gateway still holds it"
        );
        assert_eq!(t.let_go(&mut store, b, Side::Server), Some(2));
        assert!(Sockets::get(&store, b).is_none());
        assert_eq!(t.let_go(&mut store, b, Side::Server), None);
        assert_eq!(t.open(&mut store, 3).index, b.index);
    }

    #[test]
    fn the_gateway_keeps_the_slots_beside_its_own_halves() {
        let config = crate::scenario::Gateway::default();
        let mut gw: Gateway<Slot> = Gateway::with_driver_halves(&config, 2, 50, 1);
        let mut t = Sockets::default();
        let a = t.open(&mut gw, 1);
        let b = t.open(&mut gw, 0);
        assert_eq!((a.index, b.index), (0, 1));
        gw.handle_connect(10, b, 0);
        assert!(gw.is_open(b) && !gw.is_open(a));
        assert_eq!(
            Sockets::get(&gw, b).unwrap().shard,
            0,
            "the gateway left it"
        );
        Sockets::get_mut(&mut gw, a).unwrap().client_open = false;
        t.release_if_done(&mut gw, a);
        assert!(Sockets::get(&gw, a).is_none());
        let c = t.open(&mut gw, 1);
        assert_eq!(
            (c.index, c.generation),
            (0, 1),
            "the freed slot, a new generation"
        );
        assert_eq!(Sockets::high_water(&gw), 2);
    }

    #[test]
    fn held_sockets_keep_their_order_inline_and_spilled() {
        let id = |index| SockId {
            index,
            generation: 0,
        };
        let mut links: Links = (0..3).map(|s| ShardLink::new(LinkRng::new(s))).collect();
        assert_eq!(links.len(), 3);
        assert!(!links.is_empty());
        assert!(links.held(1).is_empty());
        // Shards 0 and 2, each against a plain list: pushes past the
        // inline capacity, removals, back inline and spilled again (the
        // freed list reused).
        let mut model = [Vec::new(), Vec::new(), Vec::new()];
        let mut step = |links: &mut Links, shard: u32, push: bool, sock: u32| {
            let m = &mut model[shard as usize];
            if push {
                m.push(id(sock));
                assert_eq!(links.hold(shard, id(sock)), m.len());
            } else {
                m.retain(|x| *x != id(sock));
                links.let_go(shard, id(sock));
            }
            assert_eq!(links.held(shard), &m[..], "shard {shard}");
        };
        for i in 0..6 {
            step(&mut links, 0, true, i);
        }
        for i in [2, 0, 5, 9] {
            step(&mut links, 0, false, i);
        }
        for i in 10..14 {
            step(&mut links, 2, true, i);
        }
        for i in [1, 11, 12] {
            step(&mut links, 0, false, i);
            step(&mut links, 2, false, i);
        }
        for i in 20..25 {
            step(&mut links, 0, true, i);
        }
        assert_eq!(links.spilled.len(), 2, "a freed list was used again");
        assert!(links.held(1).is_empty());
        assert!(links.held(7).is_empty());
        assert_eq!(links.hold(7, id(1)), 0, "no such shard");
        let mut inline: Links = std::iter::once(ShardLink::new(LinkRng::new(0))).collect();
        inline.hold(0, id(1));
        inline.hold(0, id(2));
        inline.let_go(0, id(1));
        inline.hold(0, id(3));
        assert_eq!(inline.held(0), &[id(2), id(3)]);
        assert_ne!(inline.links[0].held_len, SPILLED);
        inline[0].flap_down = true;
        assert!(inline.iter_mut().all(|l| l.flap_down));
    }

    #[test]
    fn a_shard_link_shares_its_line_with_a_client_record_of_48_bytes() {
        type Line = ShardLine<crate::metrics::WindowPeak, [u64; 6]>;
        assert_eq!(size_of::<ShardLink>(), 16);
        // The link's hot part and the client's record fill the first
        // line; the held sockets and the attempt window the second.
        assert_eq!(std::mem::offset_of!(Line, client), 16);
        assert_eq!(std::mem::offset_of!(Line, held), 64);
        assert_eq!(size_of::<Line>(), 128);
        assert_eq!(align_of::<Line>(), 64);
    }

    #[test]
    fn a_client_record_is_reached_by_shard() {
        let mut links: Links<(), u32> = (0..2).map(|s| ShardLink::new(LinkRng::new(s))).collect();
        *links.client_mut(1).unwrap() = 5;
        assert_eq!(links.client_mut(0).copied(), Some(0));
        assert_eq!(links.client_mut(1).copied(), Some(5));
        assert!(links.client_mut(2).is_none());
    }

    #[test]
    fn what_is_kept_beside_a_link_is_reached_and_taken_by_shard() {
        let mut links: Links<u32> = (0..3).map(|s| ShardLink::new(LinkRng::new(s))).collect();
        *links.beside_mut(1).unwrap() = 7;
        assert!(links.beside_mut(3).is_none());
        links.beside_iter_mut().for_each(|x| *x += 1);
        links[2].fatal_seen = true;
        assert_eq!(links.take_beside(), [1, 8, 1]);
        assert_eq!(links.take_beside(), [0, 0, 0]);
        assert!(links[2].fatal_seen);
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
