//! The handles a running client is used through: [`Client`] (figures,
//! notices, shutdown, the final outcome) and [`Events`] (the dispatches).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::dispatch::DispatchEvent;
use crate::driver::Outcomes;
use crate::error::ClientError;
use crate::figures::Figures;
use crate::gateway_command::GatewayCommand;
use crate::notice::Notice;
use crate::shard_handle::{SendCommandError, ShardHandle};

/// A running gateway client: one shard.
///
/// The connection is driven by a task of its own (the same run loop a
/// [`Runner`](crate::Runner) drives many shards with); this handle reads
/// its figures, subscribes to its [`Notice`]s, sends commands, and stops
/// it. Dropping the handle asks for the same graceful shutdown as
/// [`Client::shutdown`].
#[derive(Debug)]
pub struct Client {
    shutdown: watch::Sender<bool>,
    shard: ShardHandle,
    task: JoinHandle<Outcomes>,
}

impl Client {
    pub(crate) const fn new(
        shutdown: watch::Sender<bool>,
        shard: ShardHandle,
        task: JoinHandle<Outcomes>,
    ) -> Self {
        Self {
            shutdown,
            shard,
            task,
        }
    }

    /// The latest figures: attempts, resumes, re-identifies, the last
    /// close code, the uptime of the current connection, and the counts of
    /// odd input.
    #[must_use]
    pub fn figures(&self) -> Figures {
        self.shard.figures()
    }

    /// Subscribes to what the client does. The first call returns a
    /// receiver that has seen everything since the client started; later
    /// calls see what happens from then on. A subscriber that falls more
    /// than the builder's `notice_capacity` behind misses the oldest ones
    /// (see [`broadcast::error::RecvError::Lagged`]).
    #[must_use]
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.shard.notices()
    }

    /// A handle on the client's shard, to read its figures or send
    /// commands from another task.
    #[must_use]
    pub fn shard(&self) -> ShardHandle {
        self.shard.clone()
    }

    /// Sends one of the bot's own commands through the policy's send
    /// budget (see [`ShardHandle::send`]).
    ///
    /// # Errors
    ///
    /// As [`ShardHandle::send`].
    pub async fn send(&self, command: &GatewayCommand) -> Result<(), SendCommandError> {
        self.shard.send(command).await
    }

    /// Asks for a graceful shutdown: the socket, if any, is closed with
    /// 1000 (which ends the session on the gateway), and the client stops.
    /// Returns at once; [`Client::join`] waits for the end.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Waits for the client to stop and returns its last figures.
    ///
    /// # Errors
    ///
    /// Why the client stopped, if it was not a shutdown: a fatal close code
    /// ([`ClientError::FatalClose`] names it), a refused upgrade, or a
    /// give-up limit.
    pub async fn join(self) -> Result<Figures, ClientError> {
        let Self {
            shutdown,
            shard,
            task,
        } = self;
        let outcome = match task.await {
            Ok(outcomes) => outcomes
                .into_iter()
                .next()
                .map_or(Err(ClientError::Driver), |(_, outcome)| outcome),
            Err(_) => Err(ClientError::Driver),
        };
        // Keep the shutdown sender alive until the task is done, so that
        // joining does not itself ask for a shutdown.
        drop(shutdown);
        outcome?;
        Ok(shard.figures())
    }

    /// [`Client::shutdown`], then [`Client::join`].
    ///
    /// # Errors
    ///
    /// As [`Client::join`].
    pub async fn close(self) -> Result<Figures, ClientError> {
        self.shutdown();
        self.join().await
    }
}

/// The dispatches, in order, each sequence number at most once.
///
/// The stream ends when the client stops; [`Client::join`] says why.
/// Dropping it asks the client to shut down. If the user falls
/// `event_buffer` events behind, the client stops reading the socket until
/// there is room (heartbeats and deadlines keep running).
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<(u32, DispatchEvent)>,
}

impl Events {
    pub(crate) const fn new(rx: mpsc::Receiver<(u32, DispatchEvent)>) -> Self {
        Self { rx }
    }

    /// The next dispatch, or `None` once the client has stopped.
    pub async fn recv(&mut self) -> Option<DispatchEvent> {
        self.rx.recv().await.map(|(_, event)| event)
    }
}

impl Stream for Events {
    type Item = DispatchEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx
            .poll_recv(cx)
            .map(|next| next.map(|(_, event)| event))
    }
}
