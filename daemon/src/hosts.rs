//! Enrolled hosts' keys, held in memory so a host's signature is checked
//! as quickly as a run's, and which hosts are connected now. Revoking a
//! host takes its key out and cuts its connection at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use claw_proto::hosts::{GatewayMessage, HostInfo};
use tokio::sync::{mpsc, oneshot, watch};

use crate::secrets::{Secret, Secrets};
use crate::store::HostRow;

/// One host's connection.
struct Connected {
    connection: u64,
    /// Set to true to close it.
    cut: watch::Sender<bool>,
    /// What its socket sends it.
    outbox: mpsc::Sender<GatewayMessage>,
    info: Option<HostInfo>,
}

/// What a host answered about a run it was asked to start: `None` when it
/// started, else why not.
pub type StartAnswer = Option<String>;

#[derive(Default)]
pub struct HostRegistry {
    keys: RwLock<HashMap<String, Secret>>,
    online: Mutex<HashMap<String, Connected>>,
    connections: AtomicU64,
    /// Starts waiting for their host's answer, by run id.
    answers: Mutex<HashMap<String, oneshot::Sender<StartAnswer>>>,
}

/// A host's connection as its socket holds it: closes when `cut` says so.
pub struct Connection {
    pub id: u64,
    pub cut: watch::Receiver<bool>,
    /// What the gateway sends the host.
    pub outbox: mpsc::Receiver<GatewayMessage>,
}

impl HostRegistry {
    /// The keys of `hosts` that are enrolled and not revoked.
    pub fn load(&self, hosts: &[HostRow], secrets: &Secrets) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.clear();
        for host in hosts {
            if let (Some(salt), None) = (&host.key_salt, host.revoked_at) {
                keys.insert(host.id.clone(), secrets.host_key(&host.id, salt));
            }
        }
    }

    pub fn key(&self, host_id: &str) -> Option<Secret> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(host_id)
            .cloned()
    }

    pub fn enrolled(&self, host_id: &str, key: Secret) {
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host_id.to_owned(), key);
    }

    /// Revoked or removed: its key stops working and its socket closes.
    pub fn forget(&self, host_id: &str) {
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(host_id);
        if let Some(gone) = self.lock_online().remove(host_id) {
            gone.cut.send_replace(true);
        }
    }

    fn lock_online(&self) -> std::sync::MutexGuard<'_, HashMap<String, Connected>> {
        self.online.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A host connected; a connection it had before is closed.
    pub fn connected(&self, host_id: &str) -> Connection {
        let id = self.connections.fetch_add(1, Ordering::Relaxed);
        let (cut, watch) = watch::channel(false);
        let (outbox, messages) = mpsc::channel(64);
        let before = self.lock_online().insert(
            host_id.to_owned(),
            Connected {
                connection: id,
                cut,
                outbox,
                info: None,
            },
        );
        if let Some(before) = before {
            before.cut.send_replace(true);
        }
        Connection {
            id,
            cut: watch,
            outbox: messages,
        }
    }

    /// What the host said of itself on connection `connection`.
    pub fn hello(&self, host_id: &str, connection: u64, info: HostInfo) {
        if let Some(c) = self.lock_online().get_mut(host_id)
            && c.connection == connection
        {
            c.info = Some(info);
        }
    }

    /// Connection `connection` ended (a newer one stays).
    pub fn disconnected(&self, host_id: &str, connection: u64) {
        let mut online = self.lock_online();
        if online
            .get(host_id)
            .is_some_and(|c| c.connection == connection)
        {
            online.remove(host_id);
        }
    }

    /// Sends a start to a connected host; its answer arrives on the
    /// receiver. `None` when the host is not connected.
    pub fn start(
        &self,
        host_id: &str,
        session: claw_proto::hosts::StartSession,
    ) -> Option<oneshot::Receiver<StartAnswer>> {
        let outbox = self.lock_online().get(host_id)?.outbox.clone();
        let (answer, answered) = oneshot::channel();
        let run_id = session.run_id.clone();
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run_id.clone(), answer);
        if outbox.try_send(GatewayMessage::Start(session)).is_err() {
            self.answers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&run_id);
            return None;
        }
        Some(answered)
    }

    /// A host's answer to a start.
    pub fn answered(&self, run_id: &str, answer: StartAnswer) {
        let waiting = self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(run_id);
        if let Some(waiting) = waiting {
            let _ = waiting.send(answer);
        }
    }

    /// Gives up waiting for a start's answer.
    pub fn forget_start(&self, run_id: &str) {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(run_id);
    }

    /// Connected now, with what it said, if it said.
    pub fn online(&self, host_id: &str) -> Option<Option<HostInfo>> {
        self.lock_online().get(host_id).map(|c| c.info.clone())
    }
}
