//! The messages crossing a link, held beside the event queue.
//!
//! A fleet's pending events are mostly small (a flap, a gateway timer),
//! while a message carries its socket and the message itself: held in the
//! queue, every event took the room of the largest. The queue holds a
//! message's index here instead, so each of its entries is 16 bytes where
//! it was 32; the messages in flight at once are few (each crosses its
//! link in tens of milliseconds), and a freed slot is the next one used,
//! so this table stays small and in the cache.

use crate::packed::{PackedToClient, PackedToServer};
use crate::wire::SockId;

/// A message on its way, as the queue's event for it names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// Towards the client end of `sock`.
    ToClient { sock: SockId, msg: PackedToClient },
    /// Towards the gateway's end of `sock`.
    ToServer { sock: SockId, msg: PackedToServer },
}

/// The messages in flight, each in a slot until it arrives.
#[derive(Debug)]
pub(crate) struct InFlight {
    slots: Vec<Slot>,
    /// The free slot freed last, the head of a list linked through the
    /// free slots themselves ([`NONE`]: none), so that freeing a slot
    /// writes no list beside the table.
    free: u32,
}

impl Default for InFlight {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: NONE,
        }
    }
}

/// No free slot: the end of the free list.
const NONE: u32 = u32::MAX;

/// A slot of [`InFlight`].
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// A message on its way.
    Held(Message),
    /// Free; the next free slot, or [`NONE`].
    Free { next: u32 },
}

impl InFlight {
    /// Holds `msg` until [`take`](Self::take) is given the index returned.
    #[inline]
    pub(crate) fn put(&mut self, msg: Message) -> u32 {
        let index = self.free;
        if let Some(slot) = self.slots.get_mut(index as usize)
            && let Slot::Free { next } = *slot
        {
            *slot = Slot::Held(msg);
            self.free = next;
            index
        } else {
            let index = u32::try_from(self.slots.len())
                .ok()
                .filter(|&i| i != NONE)
                .expect("fewer than 2^32 - 1 messages in flight at once");
            self.slots.push(Slot::Held(msg));
            index
        }
    }

    /// The message held at `index`, which is free again.
    #[inline]
    pub(crate) fn take(&mut self, index: u32) -> Option<Message> {
        let slot = self.slots.get_mut(index as usize)?;
        let Slot::Held(msg) = *slot else {
            return None;
        };
        *slot = Slot::Free { next: self.free };
        self.free = index;
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ToClient, ToServer};

    #[test]
    fn a_message_comes_back_once_and_its_slot_is_used_again() {
        let sock = |index| SockId {
            index,
            generation: 1,
        };
        let mut t = InFlight::default();
        let a = Message::ToClient {
            sock: sock(3),
            msg: ToClient::HeartbeatAck.into(),
        };
        let b = Message::ToServer {
            sock: sock(4),
            msg: ToServer::Heartbeat.into(),
        };
        let ia = t.put(a);
        let ib = t.put(b);
        assert_ne!(ia, ib);
        assert_eq!(t.take(ia), Some(a));
        assert_eq!(t.take(ia), None);
        assert_eq!(t.take(99), None);
        assert_eq!(t.put(b), ia, "the freed slot");
        assert_eq!(t.take(ib), Some(b));
        assert_eq!(t.slots.len(), 2);
    }
}
