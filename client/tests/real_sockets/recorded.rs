//! A runner whose merged event stream (and, when asked, every shard's
//! notices) is recorded by shard as it happens, with the waits the
//! multi-shard tests share: for a condition, and for every shard to stream
//! past a sequence number.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use reconnect_client::{Clock, Figures, Notice, Runner, RunnerError, SavedSessions, ShardEvents};
use reconnect_policy::{Command, Timestamp};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::support::{Seen, max_seq};

/// Each shard's record, by shard id.
type ByShard<T> = Arc<Mutex<BTreeMap<u32, Vec<T>>>>;

/// A runner whose events, and optionally notices, are recorded by shard.
pub(crate) struct RecordedRunner {
    pub(crate) runner: Runner,
    events: ByShard<Seen>,
    notices: ByShard<Notice>,
    tasks: Vec<JoinHandle<()>>,
}

impl RecordedRunner {
    /// Records the merged event stream only.
    pub(crate) fn events_only(runner: Runner, events: ShardEvents) -> Self {
        Self::start(runner, events, false)
    }

    /// Records the merged event stream and every shard's notices; a notice
    /// recorder that falls behind its channel fails the test.
    pub(crate) fn with_notices(runner: Runner, events: ShardEvents) -> Self {
        Self::start(runner, events, true)
    }

    fn start(runner: Runner, mut stream: ShardEvents, notices: bool) -> Self {
        let events = ByShard::<Seen>::default();
        let heard = ByShard::<Notice>::default();
        let mut tasks = Vec::new();
        {
            let events = Arc::clone(&events);
            tasks.push(tokio::spawn(async move {
                while let Some((shard, event)) = stream.next().await {
                    let seen = Seen::of(&event);
                    events.lock().unwrap().entry(shard).or_default().push(seen);
                }
            }));
        }
        for handle in runner.shards().iter().filter(|_| notices) {
            let mut receiver = handle.notices();
            let id = handle.id();
            let heard = Arc::clone(&heard);
            tasks.push(tokio::spawn(async move {
                loop {
                    match receiver.recv().await {
                        Ok(notice) => heard.lock().unwrap().entry(id).or_default().push(notice),
                        Err(RecvError::Lagged(n)) => {
                            panic!("shard {id}'s notice recorder fell {n} behind")
                        }
                        Err(RecvError::Closed) => break,
                    }
                }
            }));
        }
        Self {
            runner,
            events,
            notices: heard,
            tasks,
        }
    }

    /// Every event delivered so far, by shard.
    pub(crate) fn events(&self) -> BTreeMap<u32, Vec<Seen>> {
        self.events.lock().unwrap().clone()
    }

    /// Every notice recorded so far, by shard (none from `events_only`).
    pub(crate) fn notices(&self) -> BTreeMap<u32, Vec<Notice>> {
        self.notices.lock().unwrap().clone()
    }

    /// When each shard sent an Identify, by shard (from its notices).
    pub(crate) fn identifies(&self) -> BTreeMap<u32, Vec<Timestamp>> {
        let notices = self.notices.lock().unwrap();
        notices
            .iter()
            .map(|(shard, notices)| {
                let sent = notices.iter().filter_map(|notice| match notice {
                    Notice::Sent {
                        command: Command::Identify,
                        at,
                        ..
                    } => Some(*at),
                    _ => None,
                });
                (*shard, sent.collect::<Vec<_>>())
            })
            .filter(|(_, sent)| !sent.is_empty())
            .collect()
    }

    /// The last sequence number delivered to each shard that got one.
    pub(crate) fn last_seqs(&self) -> BTreeMap<u32, u64> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .map(|(shard, seen)| (*shard, max_seq(seen)))
            .collect()
    }

    /// Waits for `condition`, failing after `seconds` with the fleet's figures.
    pub(crate) async fn wait(&self, what: &str, seconds: u64, condition: impl Fn(&Self) -> bool) {
        let clock = Clock::start();
        while !condition(self) {
            assert!(
                clock.elapsed() < Duration::from_secs(seconds),
                "timed out waiting for {what}; figures: {:?}",
                self.runner.figures()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every shard is connected and has delivered a dispatch
    /// past `past[shard] + more`; failing after `seconds`, it says how many
    /// shards are behind and sums the fleet's figures.
    pub(crate) async fn wait_all_past(
        &self,
        what: &str,
        past: &BTreeMap<u32, u64>,
        more: u64,
        seconds: u64,
    ) {
        let clock = Clock::start();
        loop {
            let last = self.last_seqs();
            let behind = self
                .runner
                .shards()
                .iter()
                .filter(|shard| {
                    let past = past.get(&shard.id()).copied().unwrap_or(0);
                    !shard.figures().state.is_connected()
                        || last.get(&shard.id()).copied().unwrap_or(0) <= past.saturating_add(more)
                })
                .count();
            if behind == 0 {
                return;
            }
            if clock.elapsed() >= Duration::from_secs(seconds) {
                panic!(
                    "{what}: {behind} shards not there after {seconds} s; {}",
                    summary(&self.runner.figures())
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every shard is connected and has delivered a dispatch
    /// past the sequence number it had when this was called, plus `more`.
    pub(crate) async fn wait_all_streaming(&self, more: u64, seconds: u64) {
        let from = self.last_seqs();
        self.wait_all_past("every shard to stream", &from, more, seconds)
            .await;
    }

    /// Closes every session (1000) and stops the recorders; the runner's
    /// outcome (every shard's figures) and every event delivered.
    pub(crate) async fn close(
        self,
    ) -> (
        Result<BTreeMap<u32, Figures>, RunnerError>,
        BTreeMap<u32, Vec<Seen>>,
    ) {
        let outcome = self.runner.close().await;
        let events = Self::stop_recording(self.tasks, &self.events).await;
        (outcome, events)
    }

    /// Stops keeping every session (4000); the saved sessions and every
    /// event delivered.
    pub(crate) async fn close_keeping_sessions(self) -> (SavedSessions, BTreeMap<u32, Vec<Seen>>) {
        let saved = self
            .runner
            .close_keeping_sessions()
            .await
            .expect("stopped cleanly");
        let events = Self::stop_recording(self.tasks, &self.events).await;
        (saved, events)
    }

    /// Waits for the recorders, which end with the runner's streams, and
    /// reads what they recorded.
    async fn stop_recording(
        tasks: Vec<JoinHandle<()>>,
        events: &ByShard<Seen>,
    ) -> BTreeMap<u32, Vec<Seen>> {
        for task in tasks {
            let _ = task.await;
        }
        events.lock().unwrap().clone()
    }
}

/// The fleet's attempts, Identify, resumes and zombies summed, and how
/// many shards are in each state.
fn summary(figures: &BTreeMap<u32, Figures>) -> String {
    let sum = |f: fn(&Figures) -> u64| -> u64 { figures.values().map(f).sum() };
    let states = figures
        .values()
        .fold(BTreeMap::<String, u32>::new(), |mut by, f| {
            *by.entry(format!("{:?}", f.state)).or_default() += 1;
            by
        });
    format!(
        "attempts {}, identifies {}, resumes {}, zombies {}, states {states:?}",
        sum(|f| f.policy.attempts),
        sum(|f| f.policy.identifies_sent),
        sum(|f| f.policy.resumes_succeeded),
        sum(|f| f.policy.zombies),
    )
}
