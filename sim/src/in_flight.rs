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
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    slots: Vec<Option<Message>>,
    /// Free slots, the one freed last first.
    free: Vec<u32>,
}

impl InFlight {
    /// Holds `msg` until [`take`](Self::take) is given the index returned.
    #[inline]
    pub(crate) fn put(&mut self, msg: Message) -> u32 {
        if let Some(index) = self.free.pop() {
            self.slots[index as usize] = Some(msg);
            index
        } else {
            let index = u32::try_from(self.slots.len())
                .expect("fewer than 2^32 messages in flight at once");
            self.slots.push(Some(msg));
            index
        }
    }

    /// The message held at `index`, which is free again.
    #[inline]
    pub(crate) fn take(&mut self, index: u32) -> Option<Message> {
        let msg = self.slots.get_mut(index as usize)?.take()?;
        self.free.push(index);
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
