//! The handles a running client is used through: [`Client`] (figures,
//! notices, shutdown, the final outcome) and [`Events`] (the dispatches).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use reconnect_policy::SavedSession;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::dispatch::DispatchEvent;
use crate::driver::{Finished, Stop};
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
    shutdown: watch::Sender<Stop>,
    shard: ShardHandle,
    task: JoinHandle<Finished>,
}

impl Client {
    pub(crate) const fn new(
        shutdown: watch::Sender<Stop>,
        shard: ShardHandle,
        task: JoinHandle<Finished>,
    ) -> Self {
        Self {
            shutdown,
            shard,
            task,
        }
    }

    /// The latest figures: the policy's stats (attempts, resumes,
    /// identifies sent, the last close code, ...), the uptime of the
    /// current connection, and the counts of odd input.
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
    /// Returns at once; [`Client::join`] waits for the end. To stop and
    /// keep the session for a later process, see
    /// [`Client::close_keeping_session`].
    pub fn shutdown(&self) {
        self.shutdown.send_replace(Stop::EndingSessions);
    }

    /// Waits for the client to stop and returns its last figures.
    ///
    /// # Errors
    ///
    /// Why the client stopped, if it was not a shutdown: a fatal close code
    /// ([`ClientError::FatalClose`] names it), a refused upgrade, or a
    /// give-up limit.
    pub async fn join(self) -> Result<Figures, ClientError> {
        let shard = self.shard.clone();
        self.finish().await?;
        Ok(shard.figures())
    }

    /// Stops without ending the session, and hands it back to start a
    /// later process from ([`ClientBuilder::resume_from`](crate::ClientBuilder::resume_from)):
    /// the socket is closed with 4000, a code that keeps the session
    /// resumable on the gateway (1000 and 1001 end it), and the client
    /// stops. Read the event stream to its end: the saved sequence number
    /// is that of the last dispatch handed to it, so nothing is lost and
    /// nothing is delivered twice across the restart. Store the value
    /// (it is serde; it holds no token) and start the next process within
    /// the gateway's session timeout (a few minutes on Discord).
    ///
    /// `Ok(None)` when there was no session to keep (the client had not
    /// received READY, or its session had just been dropped).
    ///
    /// # Errors
    ///
    /// As [`Client::join`]: the client had stopped on its own.
    pub async fn close_keeping_session(self) -> Result<Option<SavedSession>, ClientError> {
        self.shutdown.send_replace(Stop::KeepingSessions);
        let id = self.shard.id();
        let mut sessions = self.finish().await?;
        Ok(sessions.remove(&id))
    }

    /// Waits for the run loop and returns the saved sessions, or why the
    /// shard stopped.
    async fn finish(self) -> Result<reconnect_policy::SavedSessions, ClientError> {
        let Self {
            shutdown,
            shard: _,
            task,
        } = self;
        let finished = task.await.map_err(|_| ClientError::Driver);
        // Keep the shutdown sender alive until the task is done, so that
        // joining does not itself ask for a shutdown.
        drop(shutdown);
        let Finished { outcomes, sessions } = finished?;
        outcomes
            .into_iter()
            .next()
            .map_or(Err(ClientError::Driver), |(_, outcome)| outcome)?;
        Ok(sessions)
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
