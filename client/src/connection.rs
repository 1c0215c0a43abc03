//! One open gateway socket, driven from the driver's loop without ever
//! blocking it.
//!
//! Frames to send wait in a queue and are written whenever the socket can
//! take them; reading also drives tungstenite's automatic replies (pongs,
//! the reply to a close frame). A socket whose peer stopped reading fills
//! its queue, never the driver: the policy's deadlines still fire, and the
//! driver drops the socket when the policy says so. Dropping a
//! [`Connection`] closes its TCP connection at once.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream};
use reconnect_policy::ConnectionId;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;

use crate::compression::{Compression, InflateError, Inflater};
use crate::figures::SocketTicket;
use crate::transport::{GatewaySocket, ReadError, WsStream};

/// What reading the socket gave.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A message (text, binary, ping, pong or close); with transport
    /// compression, each whole payload arrives inflated as text.
    Message(Message),
    /// A compressed frame could not be inflated: the stream's context is
    /// lost, so the socket is finished.
    Undecodable(InflateError),
    /// The socket is finished: closed by the peer without (further) close
    /// frame, or broken (`Some` error).
    Ended(Option<ReadError>),
}

/// An open socket.
pub(crate) struct Connection {
    id: ConnectionId,
    ws: WsStream,
    inflater: Inflater,
    outbound: VecDeque<Message>,
    /// Frames were handed to tungstenite and not flushed yet.
    dirty: bool,
    /// We sent a close frame.
    closing: bool,
    /// Counts this socket as open until it is dropped.
    _ticket: SocketTicket,
}

impl Connection {
    /// Wraps an open socket for connection `id`; `ticket` counts it as
    /// open until it is dropped.
    pub(crate) fn new(id: ConnectionId, socket: GatewaySocket, ticket: SocketTicket) -> Self {
        Self {
            id,
            ws: socket.ws,
            inflater: socket.inflater,
            outbound: VecDeque::new(),
            dirty: false,
            closing: false,
            _ticket: ticket,
        }
    }

    /// The policy's id for this socket.
    pub(crate) const fn id(&self) -> ConnectionId {
        self.id
    }

    /// Whether a close frame was queued.
    pub(crate) const fn is_closing(&self) -> bool {
        self.closing
    }

    /// Queues a text frame.
    pub(crate) fn send_text(&mut self, text: String) {
        if !self.closing {
            self.outbound.push_back(Message::text(text));
        }
    }

    /// Queues a close frame with `code`; nothing is sent after it.
    pub(crate) fn send_close(&mut self, code: u16) {
        if !self.closing {
            self.closing = true;
            self.outbound.push_back(Message::Close(Some(CloseFrame {
                code: WsCloseCode::from(code),
                reason: "".into(),
            })));
        }
    }

    /// Writes what can be written without waiting (used right before the
    /// socket is dropped, to get a reply to the peer's close frame out).
    /// tungstenite queues that reply itself when it reads the close frame,
    /// outside our queue, so the socket is flushed even when our queue is
    /// empty. One attempt, never a wait: a peer that does not read gets no
    /// reply rather than a stalled driver.
    pub(crate) fn flush_now(&mut self) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if self.poll_write(&mut cx).is_ok() {
            let _ = Pin::new(&mut self.ws).poll_flush(&mut cx);
        }
    }

    /// The next thing the socket has to say, writing queued frames on the
    /// way; polled by a loop that waits on many sockets at once. Nothing is
    /// lost between polls: everything pending stays in `self`.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Incoming> {
        if let Err(e) = self.poll_write(cx) {
            return Poll::Ready(Incoming::Ended(Some(e)));
        }
        loop {
            return match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Ready(Some(Ok(Message::Binary(bytes))))
                    if self.inflater.compression() != Compression::None =>
                {
                    match self.inflater.push(&bytes) {
                        Ok(Some(text)) => Poll::Ready(Incoming::Message(Message::text(text))),
                        // The rest of the message is in the next frame.
                        Ok(None) => continue,
                        Err(e) => Poll::Ready(Incoming::Undecodable(e)),
                    }
                }
                other => Self::incoming(other),
            };
        }
    }

    fn incoming(polled: Poll<Option<Result<Message, ReadError>>>) -> Poll<Incoming> {
        match polled {
            Poll::Ready(Some(Ok(message))) => Poll::Ready(Incoming::Message(message)),
            Poll::Ready(Some(Err(ReadError::ConnectionClosed | ReadError::AlreadyClosed)))
            | Poll::Ready(None) => Poll::Ready(Incoming::Ended(None)),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Incoming::Ended(Some(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), ReadError> {
        while !self.outbound.is_empty() {
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    if let Some(message) = self.outbound.pop_front() {
                        Pin::new(&mut self.ws).start_send(message)?;
                        self.dirty = true;
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        if self.dirty {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.dirty = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(())
    }
}
