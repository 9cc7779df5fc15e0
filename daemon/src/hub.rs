//! Live fan-out: committed events and run notices go to every browser that
//! subscribed to the run. Messages are serialised once and shared; channels
//! are bounded, so a subscriber that stops reading lags (and catches up from
//! the store) instead of growing memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::ws::Utf8Bytes;
use claw_proto::wire::ServerMessage;
use tokio::sync::broadcast;

use crate::store::{EventRow, StatusChange, iso};

/// Messages buffered per run before a slow subscriber lags.
const RUN_CHANNEL_CAPACITY: usize = 1024;
const GLOBAL_CHANNEL_CAPACITY: usize = 256;

#[derive(Debug, Clone)]
pub enum Live {
    /// An event: subscribers de-duplicate and order by sequence.
    Event { sequence: u64, json: Utf8Bytes },
    /// Any other message for the run (commands, stop, status).
    Notice(Utf8Bytes),
}

pub struct Hub {
    runs: Mutex<HashMap<String, broadcast::Sender<Live>>>,
    /// Run status changes of every run, for run lists.
    all: broadcast::Sender<Utf8Bytes>,
    clients: AtomicUsize,
    subscriptions: AtomicUsize,
    /// When each run's runner last made a correctly signed request.
    runners: Mutex<HashMap<String, std::time::Instant>>,
}

/// A runner counts as connected this long after its last request (it polls
/// for commands every 2 s while it runs).
const RUNNER_FRESH: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for Hub {
    fn default() -> Self {
        Self {
            runs: Mutex::new(HashMap::new()),
            all: broadcast::channel(GLOBAL_CHANNEL_CAPACITY).0,
            clients: AtomicUsize::new(0),
            subscriptions: AtomicUsize::new(0),
            runners: Mutex::new(HashMap::new()),
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

impl Hub {
    pub fn subscribe(&self, run_id: &str) -> broadcast::Receiver<Live> {
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.entry(run_id.to_owned())
            .or_insert_with(|| broadcast::channel(RUN_CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Call after dropping a receiver from [`subscribe`](Self::subscribe).
    pub fn unsubscribed(&self, run_id: &str) {
        self.subscriptions.fetch_sub(1, Ordering::Relaxed);
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        if runs.get(run_id).is_some_and(|tx| tx.receiver_count() == 0) {
            runs.remove(run_id);
        }
    }

    pub fn subscribe_all(&self) -> broadcast::Receiver<Utf8Bytes> {
        self.all.subscribe()
    }

    fn sender(&self, run_id: &str) -> Option<broadcast::Sender<Live>> {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(run_id).cloned()
    }

    /// Newly committed events (all of one run, in sequence order).
    pub fn publish_events(&self, events: &[EventRow]) {
        let Some(first) = events.first() else { return };
        let Some(tx) = self.sender(&first.run_id) else {
            return;
        };
        for event in events {
            let _ = tx.send(Live::Event {
                sequence: event.sequence,
                json: encode(&event_message(event)),
            });
        }
    }

    pub fn publish(&self, run_id: &str, message: &ServerMessage) {
        if let Some(tx) = self.sender(run_id) {
            let _ = tx.send(Live::Notice(encode(message)));
        }
    }

    pub fn publish_status(&self, change: &StatusChange) {
        let message = ServerMessage::RunStatus {
            run_id: change.run_id.clone(),
            status: change.status,
            exit_code: change.exit_code,
        };
        let _ = self.all.send(encode(&message));
    }

    pub fn runner_seen(&self, run_id: &str) {
        let mut runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        runners.insert(run_id.to_owned(), std::time::Instant::now());
    }

    /// Runners heard from within the last 30 s.
    pub fn runners_connected(&self) -> usize {
        let mut runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        runners.retain(|_, seen| seen.elapsed() < RUNNER_FRESH);
        runners.len()
    }

    pub fn client_connected(&self) {
        self.clients.fetch_add(1, Ordering::Relaxed);
    }

    pub fn client_disconnected(&self) {
        self.clients.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }
}
