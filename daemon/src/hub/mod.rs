//! Live fan-out: committed events and run notices go to every browser that
//! subscribed to the run. Messages are serialised once and shared; channels
//! are bounded, so a subscriber that stops reading lags (and catches up from
//! the store) instead of growing memory. A run's channel exists while
//! someone follows the run, and holds only messages not yet read by all.

mod run_channel;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use claw_proto::wire::ServerMessage;
use tokio::sync::broadcast;

pub use run_channel::RecvError;
use run_channel::{Channel, Receiver};

use crate::clock::iso;
use crate::store::{Change, ChangeSink, EventRow, StatusChange};

const GLOBAL_CHANNEL_CAPACITY: usize = 256;

type RunChannels = Arc<Mutex<HashMap<String, Arc<Channel<Live>>>>>;

#[derive(Debug, Clone)]
pub enum Live {
    /// An event: subscribers de-duplicate and order by sequence.
    Event { sequence: u64, json: Utf8Bytes },
    /// Any other message for the run (commands, stop, status).
    Notice(Utf8Bytes),
    /// Messages may have been missed (another instance's commits were not
    /// heard for a while): read the store again (browsers catch up, a
    /// runner fetches its commands).
    Resync,
}

/// A message for every socket: a run's status change for run lists (a
/// socket that follows the run gets it in order there and skips this
/// copy), or an approval.
#[derive(Debug, Clone)]
pub struct StatusNote {
    pub run_id: Arc<str>,
    pub message: Utf8Bytes,
    /// Followers of the run have it already.
    pub followers_have_it: bool,
}

pub struct Hub {
    runs: RunChannels,
    /// Run status changes of every run, for run lists.
    all: broadcast::Sender<StatusNote>,
    clients: Arc<AtomicUsize>,
    subscriptions: Arc<AtomicUsize>,
    /// Run subscriptions per user, for the per-user cap.
    per_user: Arc<Mutex<HashMap<String, usize>>>,
    /// When each run's runner last made a correctly signed request.
    runners: Mutex<HashMap<String, std::time::Instant>>,
    /// Bumped whenever sessions may have ended or changed; every browser
    /// socket then checks its own session again.
    sessions: tokio::sync::watch::Sender<u64>,
}

/// A runner counts as connected this long after its last request (it polls
/// for commands every 2 s while it runs).
const RUNNER_FRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// A runner silent this long is forgotten (its run has long been reported).
const RUNNER_FORGOTTEN: std::time::Duration = std::time::Duration::from_secs(86_400);

impl Default for Hub {
    fn default() -> Self {
        Self {
            runs: Arc::new(Mutex::new(HashMap::new())),
            all: broadcast::channel(GLOBAL_CHANNEL_CAPACITY).0,
            clients: Arc::new(AtomicUsize::new(0)),
            subscriptions: Arc::new(AtomicUsize::new(0)),
            per_user: Arc::new(Mutex::new(HashMap::new())),
            runners: Mutex::new(HashMap::new()),
            sessions: tokio::sync::watch::channel(0).0,
        }
    }
}

pub fn encode(message: &ServerMessage) -> Utf8Bytes {
    // Serialising these plain enums cannot fail.
    Utf8Bytes::from(serde_json::to_string(message).unwrap_or_default())
}

pub fn event_message(event: &EventRow) -> ServerMessage {
    ServerMessage::Event {
        run_id: event.run_id.clone(),
        event_id: event.id,
        sequence: event.sequence,
        event_type: event.kind,
        data: event.data.clone(),
        timestamp: iso(event.timestamp),
    }
}

/// A subscription to one run's live messages; leaving it (dropping it)
/// releases the run's channel when it was the last.
pub struct RunSubscription {
    receiver: Option<Receiver<Live>>,
    run_id: String,
    runs: RunChannels,
    subscriptions: Arc<AtomicUsize>,
}

impl RunSubscription {
    pub async fn recv(&mut self) -> Result<Live, RecvError> {
        match self.receiver.as_mut() {
            Some(receiver) => receiver.recv().await,
            None => std::future::pending().await,
        }
    }
}

impl Drop for RunSubscription {
    fn drop(&mut self) {
        self.subscriptions.fetch_sub(1, Ordering::Relaxed);
        // The map's lock first, as in `subscribe`: no one can join the
        // channel between the last one leaving and its removal.
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.receiver.take());
        if runs
            .get(&self.run_id)
            .is_some_and(|channel| channel.receivers() == 0)
        {
            runs.remove(&self.run_id);
        }
    }
}

/// A connected browser, counted until dropped.
pub struct ClientGuard(Arc<AtomicUsize>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One of a user's run subscriptions, counted against the per-user cap
/// until dropped.
pub struct UserSlot {
    user_id: String,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_user.get_mut(&self.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_user.remove(&self.user_id);
            }
        }
    }
}

impl Hub {
    pub fn subscribe(&self, run_id: &str) -> RunSubscription {
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let receiver = runs
            .entry(run_id.to_owned())
            .or_insert_with(Channel::new)
            .subscribe();
        RunSubscription {
            receiver: Some(receiver),
            run_id: run_id.to_owned(),
            runs: Arc::clone(&self.runs),
            subscriptions: Arc::clone(&self.subscriptions),
        }
    }

    /// Counts one more run subscription of a user; `None` when the user
    /// already has `cap` (0: no cap).
    pub fn user_slot(&self, user_id: &str, cap: usize) -> Option<UserSlot> {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let n = per_user.entry(user_id.to_owned()).or_insert(0);
        if cap != 0 && *n >= cap {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            user_id: user_id.to_owned(),
            per_user: Arc::clone(&self.per_user),
        })
    }

    /// Runs with a live channel (someone follows them).
    pub fn followed_runs(&self) -> usize {
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Tells every browser socket to check its session again: call after
    /// anything that may end or change sessions (logout, revocation, a
    /// deleted user, a new role or password, a rotated auth secret).
    pub fn sessions_changed(&self) {
        self.sessions.send_modify(|generation| *generation += 1);
    }

    /// Changes whenever [`sessions_changed`](Self::sessions_changed) is called.
    pub fn watch_sessions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.sessions.subscribe()
    }

    pub fn subscribe_all(&self) -> broadcast::Receiver<StatusNote> {
        self.all.subscribe()
    }

    fn channel(&self, run_id: &str) -> Option<Arc<Channel<Live>>> {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(run_id).cloned()
    }

    /// Newly committed events (all of one run, in sequence order).
    fn publish_events(&self, events: &[EventRow]) {
        let Some(first) = events.first() else { return };
        let Some(channel) = self.channel(&first.run_id) else {
            return;
        };
        for event in events {
            channel.publish(Live::Event {
                sequence: event.sequence,
                json: encode(&event_message(event)),
            });
        }
    }

    /// Every follower of every run reads the store again, and every
    /// socket checks its session again: for changes committed without
    /// being published here.
    pub fn resync(&self) {
        let channels: Vec<Arc<Channel<Live>>> = {
            let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
            runs.values().cloned().collect()
        };
        for channel in channels {
            channel.publish(Live::Resync);
        }
        self.sessions_changed();
    }

    fn publish_notice(&self, run_id: &str, message: &ServerMessage) {
        if let Some(channel) = self.channel(run_id) {
            channel.publish(Live::Notice(encode(message)));
        }
    }

    fn publish_encoded(&self, run_id: &str, message: Utf8Bytes) {
        if let Some(channel) = self.channel(run_id) {
            channel.publish(Live::Notice(message));
        }
    }

    /// A run's new status goes to its followers and to every run list.
    fn publish_status(&self, change: &StatusChange) {
        let message = ServerMessage::RunStatus {
            run_id: change.run_id.clone(),
            status: change.status,
            exit_code: change.exit_code,
        };
        let message = encode(&message);
        self.publish_encoded(&change.run_id, message.clone());
        let _ = self.all.send(StatusNote {
            run_id: Arc::from(change.run_id.as_str()),
            message,
            followers_have_it: true,
        });
    }

    pub fn runner_seen(&self, run_id: &str) {
        let mut runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        runners.insert(run_id.to_owned(), std::time::Instant::now());
    }

    /// Runners heard from within the last 30 s.
    pub fn runners_connected(&self) -> usize {
        let mut runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        runners.retain(|_, seen| seen.elapsed() < RUNNER_FORGOTTEN);
        runners
            .values()
            .filter(|seen| seen.elapsed() < RUNNER_FRESH)
            .count()
    }

    /// When a run's runner was last heard from (since clawd started).
    pub fn runner_last_seen(&self, run_id: &str) -> Option<std::time::Instant> {
        let runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        runners.get(run_id).copied()
    }

    /// Counts a browser socket for as long as the guard lives.
    pub fn client(&self) -> ClientGuard {
        self.clients.fetch_add(1, Ordering::Relaxed);
        ClientGuard(Arc::clone(&self.clients))
    }

    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }
}

/// The hub is the one place where committed changes become messages.
impl ChangeSink for Hub {
    fn publish(&self, change: Change) {
        match change {
            Change::Events(events) => self.publish_events(&events),
            Change::RunStatus(status) => self.publish_status(&status),
            Change::CommandQueued(row) => self.publish_notice(
                &row.run_id,
                &ServerMessage::CommandQueued {
                    run_id: row.run_id.clone(),
                    command_id: row.id,
                    kind: row.kind,
                    command: row.command,
                },
            ),
            Change::StopRequested { run_id, command_id } => self.publish_notice(
                &run_id,
                &ServerMessage::StopRequested {
                    run_id: run_id.clone(),
                    command_id,
                },
            ),
            Change::CommandCompleted(row) => self.publish_notice(
                &row.run_id,
                &ServerMessage::CommandCompleted {
                    run_id: row.run_id.clone(),
                    command_id: row.id,
                    status: row.status.as_str().to_owned(),
                    result: row.result,
                    error: row.error,
                },
            ),
            Change::ArtifactAdded(row) => self.publish_notice(
                &row.run_id,
                &ServerMessage::ArtifactAdded {
                    run_id: row.run_id.clone(),
                    artifact_id: row.id,
                    filename: row.filename,
                    size: row.size,
                },
            ),
            Change::Approval(row) => {
                let run_id = Arc::from(row.run_id.as_str());
                let message = encode(&ServerMessage::Approval {
                    approval: Box::new(crate::views::approval(*row)),
                });
                let _ = self.all.send(StatusNote {
                    run_id,
                    message,
                    followers_have_it: false,
                });
            }
            Change::SessionsChanged => self.sessions_changed(),
        }
    }

    fn follows(&self, run_id: &str) -> bool {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.contains_key(run_id)
    }

    fn hears_approvals(&self) -> bool {
        self.all.receiver_count() > 0
    }

    fn missed(&self) {
        self.resync();
    }
}

#[cfg(test)]
mod tests {
    use claw_proto::api::CommandStatus;
    use claw_proto::wire::{EventType, RunStatus};

    use super::*;
    use crate::store::CommandRow;

    fn event(sequence: u64) -> EventRow {
        EventRow {
            id: sequence as i64,
            run_id: "r".to_owned(),
            kind: EventType::Stdout,
            data: format!("line {sequence}"),
            timestamp: 0,
            sequence,
        }
    }

    fn message(live: Live) -> serde_json::Value {
        let text = match live {
            Live::Event { json, .. } | Live::Notice(json) => json,
            Live::Resync => return serde_json::json!({ "type": "resync" }),
        };
        serde_json::from_str(text.as_str()).expect("json")
    }

    #[tokio::test]
    async fn changes_reach_followers_in_order_as_messages() {
        let hub = Hub::default();
        let mut follower = hub.subscribe("r");
        let mut lists = hub.subscribe_all();
        hub.publish(Change::Events(vec![event(1), event(2)]));
        hub.publish(Change::RunStatus(StatusChange {
            run_id: "r".to_owned(),
            status: RunStatus::Done,
            exit_code: Some(0),
        }));
        hub.publish(Change::CommandCompleted(CommandRow {
            id: "c".to_owned(),
            run_id: "r".to_owned(),
            kind: claw_proto::wire::CommandKind::Command,
            command: "git status".to_owned(),
            status: CommandStatus::Completed,
            result: Some("clean".to_owned()),
            error: None,
            created_by: None,
            created_at: 0,
            completed_at: Some(1),
        }));
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(message(follower.recv().await.expect("message")));
        }
        let kinds: Vec<&str> = seen
            .iter()
            .map(|m| m["type"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(kinds, ["event", "event", "run_status", "command_completed"]);
        assert_eq!(seen[1]["sequence"], 2);
        assert_eq!(seen[3]["status"], "completed");
        let note = lists.recv().await.expect("status");
        assert_eq!(&*note.run_id, "r");
        let listed: serde_json::Value = serde_json::from_str(note.message.as_str()).expect("json");
        assert_eq!(listed["status"], "done");
    }

    #[test]
    fn a_runs_channel_lives_while_someone_follows_it() {
        let hub = Hub::default();
        let first = hub.subscribe("r");
        let second = hub.subscribe("r");
        assert_eq!((hub.followed_runs(), hub.subscriptions()), (1, 2));
        drop(first);
        assert_eq!(hub.followed_runs(), 1);
        drop(second);
        assert_eq!((hub.followed_runs(), hub.subscriptions()), (0, 0));
        // Nobody follows: a change is dropped, nothing is kept for it.
        hub.publish(Change::Events(vec![event(1)]));
        assert_eq!(hub.followed_runs(), 0);
    }

    #[test]
    fn a_users_slots_are_capped_and_given_back() {
        let hub = Hub::default();
        let slots: Vec<_> = (0..3).map(|_| hub.user_slot("u", 3)).collect();
        assert!(slots.iter().all(Option::is_some));
        assert!(hub.user_slot("u", 3).is_none());
        assert!(hub.user_slot("other", 3).is_some());
        drop(slots);
        assert!(hub.user_slot("u", 3).is_some());
        assert!(hub.user_slot("u", 0).is_some(), "0 is no cap");
    }

    #[tokio::test]
    async fn missed_changes_make_every_follower_resync() {
        let hub = Hub::default();
        let mut a = hub.subscribe("a");
        let mut b = hub.subscribe("b");
        let sessions = hub.watch_sessions();
        assert!(hub.follows("a") && !hub.follows("c"));
        assert!(!hub.hears_approvals());
        let _lists = hub.subscribe_all();
        assert!(hub.hears_approvals());
        hub.missed();
        assert!(matches!(a.recv().await, Ok(Live::Resync)));
        assert!(matches!(b.recv().await, Ok(Live::Resync)));
        assert!(sessions.has_changed().expect("hub alive"));
    }

    #[tokio::test]
    async fn sessions_changed_wakes_every_socket() {
        let hub = Hub::default();
        let mut watcher = hub.watch_sessions();
        hub.publish(Change::SessionsChanged);
        tokio::time::timeout(std::time::Duration::from_secs(5), watcher.changed())
            .await
            .expect("woken")
            .expect("hub alive");
    }
}
