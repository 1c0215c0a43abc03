//! A handle on one running shard: its figures and notices, and the way its
//! bot sends commands on it (through the policy's send budget).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reconnect_policy::{SendError, Timestamp};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::clock::Clock;
use crate::driver::CommandRequest;
use crate::figures::{Figures, Published};
use crate::gateway_command::{CommandError, GatewayCommand};
use crate::notice::Notice;

/// Why a command from [`ShardHandle::send`] was not sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendCommandError {
    /// The command breaks a documented limit (see [`CommandError`]); it
    /// would cost the connection, so it was not sent.
    #[error("invalid command: {0}")]
    Invalid(#[from] CommandError),
    /// The shard has no session right now (connecting, resuming, or
    /// between connections): try again once it has.
    #[error("the shard has no session right now")]
    NoSession,
    /// The connection's send budget for the bot's own commands is spent:
    /// the next one fits at `retry_at` (on the bot's [`Clock`]), `wait`
    /// from when it was refused. Heartbeats keep their reserved room.
    #[error("the send budget is spent; retry in {} ms", wait.as_millis())]
    Throttled {
        /// When the next command fits, on the bot's clock.
        retry_at: Timestamp,
        /// How long that was from the refusal.
        wait: Duration,
    },
    /// The policy's send limit leaves no room for the bot's own commands
    /// at all (a configuration problem; waiting will not help).
    #[error("the send limit leaves no room for commands")]
    NoBudget,
    /// The shard has stopped (or is stopping).
    #[error("the shard has stopped")]
    Stopped,
}

/// A handle on one running shard. Cheap to clone; every clone speaks to the
/// same shard.
#[derive(Clone, Debug)]
pub struct ShardHandle {
    id: u32,
    count: u32,
    clock: Clock,
    published: Arc<Published>,
    /// Weak, so that a handle kept after the shard stopped does not keep
    /// its subscribers waiting for notices that cannot come.
    notices: broadcast::WeakSender<Notice>,
    first_notices: Arc<Mutex<Option<broadcast::Receiver<Notice>>>>,
    commands: mpsc::Sender<CommandRequest>,
}

impl ShardHandle {
    pub(crate) fn new(
        id: u32,
        count: u32,
        clock: Clock,
        published: Arc<Published>,
        notices: &broadcast::Sender<Notice>,
        first_notices: broadcast::Receiver<Notice>,
        commands: mpsc::Sender<CommandRequest>,
    ) -> Self {
        Self {
            id,
            count,
            clock,
            published,
            notices: notices.downgrade(),
            first_notices: Arc::new(Mutex::new(Some(first_notices))),
            commands,
        }
    }

    /// The shard's id (`shard[0]` in Identify).
    #[must_use]
    pub const fn id(&self) -> u32 {
        self.id
    }

    /// The bot's total shard count (`shard[1]` in Identify).
    #[must_use]
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The latest figures of this shard: its state, the policy's stats
    /// (attempts, resumes, identifies sent, last close code, ...), the
    /// uptime of the current connection, and the counts of odd input.
    #[must_use]
    pub fn figures(&self) -> Figures {
        self.published.read()
    }

    /// Subscribes to what this shard does. The first call (on any clone)
    /// returns a receiver that has seen everything since the shard
    /// started; later calls see what happens from then on. A subscriber
    /// that falls more than the notice capacity behind misses the oldest
    /// ones (see [`broadcast::error::RecvError::Lagged`]). Every receiver
    /// is closed once the shard has stopped.
    #[must_use]
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.first_notices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| match self.notices.upgrade() {
                Some(sender) => sender.subscribe(),
                // Stopped: a receiver that says so at once.
                None => broadcast::channel(1).1,
            })
    }

    /// Sends one of the bot's own commands on this shard's connection, if
    /// the shard has a session and the policy's send budget has room
    /// (heartbeats keep theirs, so a busy bot never starves them). Answers
    /// as soon as the run loop has looked at it: a refused command is not
    /// queued, says until when to wait, and never holds up events or other
    /// shards.
    ///
    /// # Errors
    ///
    /// [`SendCommandError`]: invalid, no session, throttled (with the time
    /// to retry at), no budget at all, or stopped.
    pub async fn send(&self, command: &GatewayCommand) -> Result<(), SendCommandError> {
        let text = command.encode()?;
        let (reply, answer) = oneshot::channel();
        let request = CommandRequest {
            shard: self.id,
            op: command.op(),
            text,
            reply,
        };
        self.commands
            .send(request)
            .await
            .map_err(|_| SendCommandError::Stopped)?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(refused)) => Err(self.refusal(refused)),
            Err(_) => Err(SendCommandError::Stopped),
        }
    }

    fn refusal(&self, refused: SendError) -> SendCommandError {
        match refused {
            SendError::Throttled { retry_at } => SendCommandError::Throttled {
                retry_at,
                wait: Duration::from_millis(retry_at.saturating_since(self.clock.now())),
            },
            SendError::NoBudget => SendCommandError::NoBudget,
            _ => SendCommandError::NoSession,
        }
    }
}
