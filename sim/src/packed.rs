//! The messages of [`crate::wire`] as the engine holds them while they
//! cross a link (in [`crate::in_flight`], beside the event queue).
//!
//! A message carries a few 64-bit numbers (a sequence number, a heartbeat
//! interval, a `Retry-After`), which give [`ToClient`] and [`ToServer`] an
//! 8-byte alignment: a message and its socket took 32 bytes. Kept here as
//! two 32-bit halves, the same numbers align to 4 bytes, so a packed
//! message is at most 16 bytes, and 4-aligned beside its socket. Packing and
//! unpacking lose nothing: every message comes back as it went in.

use crate::wire::{DispatchKind, Refusal, SessionId, ToClient, ToServer};

/// A `u64` as its low and high 32 bits, aligned to 4 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Halves([u32; 2]);

impl Halves {
    /// The number.
    const fn get(self) -> u64 {
        (self.0[1] as u64) << 32 | self.0[0] as u64
    }
}

impl From<u64> for Halves {
    fn from(n: u64) -> Self {
        // Truncation is the point: each half keeps its 32 bits.
        Self([n as u32, (n >> 32) as u32])
    }
}

/// A [`ToClient`] in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PackedToClient {
    /// [`ToClient::Opened`].
    Opened,
    /// [`ToClient::ConnectFailed`] with [`Refusal::Refused`].
    Refused,
    /// [`ToClient::ConnectFailed`] with [`Refusal::RateLimited`].
    RateLimited { retry_after_ms: Halves },
    /// [`ToClient::Hello`].
    Hello { interval_ms: Halves },
    /// [`ToClient::Dispatch`].
    Dispatch {
        session: SessionId,
        seq: Halves,
        kind: DispatchKind,
    },
    /// [`ToClient::HeartbeatAck`].
    HeartbeatAck,
    /// [`ToClient::HeartbeatRequest`].
    HeartbeatRequest,
    /// [`ToClient::Reconnect`].
    Reconnect,
    /// [`ToClient::InvalidSession`].
    InvalidSession { resumable: bool },
    /// [`ToClient::Closed`].
    Closed { code: Option<u16> },
}

impl From<ToClient> for PackedToClient {
    #[inline]
    fn from(msg: ToClient) -> Self {
        match msg {
            ToClient::Opened => Self::Opened,
            ToClient::ConnectFailed(Refusal::Refused) => Self::Refused,
            ToClient::ConnectFailed(Refusal::RateLimited { retry_after_ms }) => Self::RateLimited {
                retry_after_ms: retry_after_ms.into(),
            },
            ToClient::Hello { interval_ms } => Self::Hello {
                interval_ms: interval_ms.into(),
            },
            ToClient::Dispatch { session, seq, kind } => Self::Dispatch {
                session,
                seq: seq.into(),
                kind,
            },
            ToClient::HeartbeatAck => Self::HeartbeatAck,
            ToClient::HeartbeatRequest => Self::HeartbeatRequest,
            ToClient::Reconnect => Self::Reconnect,
            ToClient::InvalidSession { resumable } => Self::InvalidSession { resumable },
            ToClient::Closed { code } => Self::Closed { code },
        }
    }
}

impl From<PackedToClient> for ToClient {
    #[inline]
    fn from(msg: PackedToClient) -> Self {
        match msg {
            PackedToClient::Opened => Self::Opened,
            PackedToClient::Refused => Self::ConnectFailed(Refusal::Refused),
            PackedToClient::RateLimited { retry_after_ms } => {
                Self::ConnectFailed(Refusal::RateLimited {
                    retry_after_ms: retry_after_ms.get(),
                })
            }
            PackedToClient::Hello { interval_ms } => Self::Hello {
                interval_ms: interval_ms.get(),
            },
            PackedToClient::Dispatch { session, seq, kind } => Self::Dispatch {
                session,
                seq: seq.get(),
                kind,
            },
            PackedToClient::HeartbeatAck => Self::HeartbeatAck,
            PackedToClient::HeartbeatRequest => Self::HeartbeatRequest,
            PackedToClient::Reconnect => Self::Reconnect,
            PackedToClient::InvalidSession { resumable } => Self::InvalidSession { resumable },
            PackedToClient::Closed { code } => Self::Closed { code },
        }
    }
}

/// A [`ToServer`] in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PackedToServer {
    /// [`ToServer::Connect`].
    Connect { to_resume_url: bool },
    /// [`ToServer::Identify`].
    Identify,
    /// [`ToServer::Resume`].
    Resume {
        session: Option<SessionId>,
        seq: Halves,
    },
    /// [`ToServer::Heartbeat`].
    Heartbeat,
    /// [`ToServer::Close`].
    Close { code: u16 },
    /// [`ToServer::Drop`].
    Drop,
}

impl From<ToServer> for PackedToServer {
    #[inline]
    fn from(msg: ToServer) -> Self {
        match msg {
            ToServer::Connect { to_resume_url } => Self::Connect { to_resume_url },
            ToServer::Identify => Self::Identify,
            ToServer::Resume { session, seq } => Self::Resume {
                session,
                seq: seq.into(),
            },
            ToServer::Heartbeat => Self::Heartbeat,
            ToServer::Close { code } => Self::Close { code },
            ToServer::Drop => Self::Drop,
        }
    }
}

impl From<PackedToServer> for ToServer {
    #[inline]
    fn from(msg: PackedToServer) -> Self {
        match msg {
            PackedToServer::Connect { to_resume_url } => Self::Connect { to_resume_url },
            PackedToServer::Identify => Self::Identify,
            PackedToServer::Resume { session, seq } => Self::Resume {
                session,
                seq: seq.get(),
            },
            PackedToServer::Heartbeat => Self::Heartbeat,
            PackedToServer::Close { code } => Self::Close { code },
            PackedToServer::Drop => Self::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDE: [u64; 6] = [0, 1, 41_250, u32::MAX as u64, 1 << 32, u64::MAX];

    #[test]
    fn every_message_comes_back_as_it_went_in() {
        let session = SessionId(7);
        let mut to_client = vec![
            ToClient::Opened,
            ToClient::ConnectFailed(Refusal::Refused),
            ToClient::HeartbeatAck,
            ToClient::HeartbeatRequest,
            ToClient::Reconnect,
            ToClient::InvalidSession { resumable: true },
            ToClient::InvalidSession { resumable: false },
            ToClient::Closed { code: None },
            ToClient::Closed { code: Some(4000) },
        ];
        let mut to_server = vec![
            ToServer::Connect {
                to_resume_url: true,
            },
            ToServer::Identify,
            ToServer::Heartbeat,
            ToServer::Close { code: 1000 },
            ToServer::Drop,
        ];
        for n in WIDE {
            to_client.push(ToClient::ConnectFailed(Refusal::RateLimited {
                retry_after_ms: n,
            }));
            to_client.push(ToClient::Hello { interval_ms: n });
            for kind in [
                DispatchKind::Ready,
                DispatchKind::Resumed,
                DispatchKind::Other,
            ] {
                to_client.push(ToClient::Dispatch {
                    session,
                    seq: n,
                    kind,
                });
            }
            to_server.push(ToServer::Resume {
                session: Some(session),
                seq: n,
            });
            to_server.push(ToServer::Resume {
                session: None,
                seq: n,
            });
        }
        for msg in to_client {
            assert_eq!(ToClient::from(PackedToClient::from(msg)), msg);
        }
        for msg in to_server {
            assert_eq!(ToServer::from(PackedToServer::from(msg)), msg);
        }
    }

    #[test]
    fn packed_messages_align_to_four_bytes() {
        assert_eq!(align_of::<PackedToClient>(), 4);
        assert_eq!(align_of::<PackedToServer>(), 4);
        assert!(size_of::<PackedToClient>() <= 16);
        assert!(size_of::<PackedToServer>() <= 16);
    }
}
