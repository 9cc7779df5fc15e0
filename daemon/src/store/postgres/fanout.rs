//! Live fan-out across instances on one database, through PostgreSQL's
//! LISTEN/NOTIFY (no broker of its own).
//!
//! Every transaction with changes sends, before it commits, one
//! notification on [`CHANNEL`]: the sending instance's id and a small hint
//! per change (a run and the range of sequences it stored, a command's id,
//! a run's new status...). PostgreSQL delivers it at the commit, in commit
//! order, to every listening session, and never for a transaction that
//! rolled back.
//!
//! Each instance keeps one connection of its own that listens. A
//! notification of another instance is turned back into [`Change`]s, reading
//! the rows it names (only for runs someone follows here), and published to
//! the same sink as this instance's own changes, which are still published
//! directly after their commit (no round trip, and no dependence on the
//! listener). One run's events may so reach the hub from two paths (a runner
//! failing over from one instance to another); followers order and
//! de-duplicate events by sequence, and catch up from the store on a gap.
//!
//! After the listening connection is lost (or a notification could not be
//! read), what others committed meanwhile was not announced: the sink is
//! told ([`ChangeSink::missed`]) and its followers catch up from the store,
//! runners are nudged to fetch their commands.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use claw_proto::wire::RunStatus;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{Inner, PgStore, describe, runs};
use crate::store::{ApprovalStore, ArtifactIndex, Change, StatusChange, StoreError};

/// The notification channel of one database's instances.
pub(super) const CHANNEL: &str = "claw_changes";

/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7900;

/// Notifications held between the connection and their reading; past this
/// they are dropped and followers catch up from the store instead (the
/// connection must always be drained: a listener that stops reading fills
/// the server's queue, and then every instance's commits fail).
const QUEUE: usize = 4096;

/// Notifications read together (adjacent event ranges of a run merged).
const BATCH: usize = 64;

/// A silent connection is checked this often (a half-open TCP connection
/// would otherwise go unnoticed).
const PING_EVERY: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MOST: Duration = Duration::from_secs(10);

/// What one commit changed, as small as will do: what fits in the payload
/// is named, everything else is read from the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k")]
enum Hint {
    /// Events of run `r` with sequences `f..=l` were stored.
    #[serde(rename = "e")]
    Events { r: String, f: u64, l: u64 },
    #[serde(rename = "s")]
    Status {
        r: String,
        s: RunStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        x: Option<i64>,
    },
    #[serde(rename = "q")]
    Queued { r: String, c: String },
    #[serde(rename = "t")]
    Stop { r: String, c: String },
    #[serde(rename = "d")]
    Completed { r: String, c: String },
    #[serde(rename = "a")]
    Artifact { r: String, a: String },
    #[serde(rename = "p")]
    Approval { p: String },
    #[serde(rename = "u")]
    Sessions,
}

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    /// The instance that committed.
    i: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    h: Vec<Hint>,
    /// Too much for one payload: every listener catches up from the store.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    all: bool,
}

impl Hint {
    fn of(change: &Change) -> Option<Self> {
        Some(match change {
            Change::Events(events) => Self::Events {
                r: events.first()?.run_id.clone(),
                f: events.iter().map(|e| e.sequence).min()?,
                l: events.iter().map(|e| e.sequence).max()?,
            },
            Change::RunStatus(status) => Self::Status {
                r: status.run_id.clone(),
                s: status.status,
                x: status.exit_code,
            },
            Change::CommandQueued(row) => Self::Queued {
                r: row.run_id.clone(),
                c: row.id.clone(),
            },
            Change::StopRequested { run_id, command_id } => Self::Stop {
                r: run_id.clone(),
                c: command_id.clone(),
            },
            Change::CommandCompleted(row) => Self::Completed {
                r: row.run_id.clone(),
                c: row.id.clone(),
            },
            Change::ArtifactAdded(row) => Self::Artifact {
                r: row.run_id.clone(),
                a: row.id.clone(),
            },
            Change::Approval(row) => Self::Approval { p: row.id.clone() },
            Change::SessionsChanged => Self::Sessions,
        })
    }
}

/// The notification for a commit of `instance` with these changes.
pub(super) fn payload(instance: &str, changes: &[Change]) -> String {
    let all = Payload {
        i: instance.to_owned(),
        h: Vec::new(),
        all: true,
    };
    let named = Payload {
        h: changes.iter().filter_map(Hint::of).collect(),
        all: false,
        ..all
    };
    match serde_json::to_string(&named) {
        Ok(text) if text.len() <= MAX_PAYLOAD => text,
        // The ids alone are too long: "read everything" is short.
        _ => format!(
            "{{\"i\":{},\"all\":true}}",
            serde_json::Value::String(named.i)
        ),
    }
}

/// Merges each run of adjacent event hints of one run into one range: one
/// read instead of many when a run streams fast. Nothing is reordered.
fn merge(hints: Vec<Hint>) -> Vec<Hint> {
    let mut out: Vec<Hint> = Vec::with_capacity(hints.len());
    for hint in hints {
        if let (
            Some(Hint::Events { r, f, l }),
            Hint::Events {
                r: run,
                f: first,
                l: last,
            },
        ) = (out.last_mut(), &hint)
            && r == run
        {
            *f = (*f).min(*first);
            *l = (*l).max(*last);
            continue;
        }
        out.push(hint);
    }
    out
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PgStore {
    /// Starts listening for the commits of the other instances on this
    /// database, for as long as the store lives.
    pub fn listen_to_other_instances(&self) {
        let weak = Arc::downgrade(&self.inner);
        let mut config = self.inner.config.clone();
        // Told apart in pg_stat_activity.
        let name = config.get_application_name().unwrap_or("clawd");
        config.application_name(format!("{name} (listen)"));
        let task = tokio::spawn(listen(weak, config));
        let mut slot = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.replace(task.abort_handle()) {
            old.abort();
        }
    }

    /// This instance's id in notifications.
    #[cfg(test)]
    pub(super) fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Publishes what other instances committed, as announced by these
    /// payloads.
    async fn fan_in(&self, payloads: Vec<String>) {
        let sink = &self.inner.sink;
        let mut missed = false;
        let mut hints = Vec::new();
        for text in payloads {
            match serde_json::from_str::<Payload>(&text) {
                Ok(p) if p.i == self.inner.instance => {}
                Ok(p) => {
                    missed |= p.all;
                    hints.extend(p.h);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "an unreadable notification of another instance");
                    missed = true;
                }
            }
        }
        if !hints.is_empty() {
            match self.conn().await {
                Ok(conn) => {
                    for hint in merge(hints) {
                        match self.change_of(&conn, hint).await {
                            Ok(Some(change)) => sink.publish(change),
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot read a change of another instance");
                                missed = true;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the changes of another instance");
                    missed = true;
                }
            }
        }
        if missed {
            sink.missed();
        }
    }

    /// The change a hint names, read from the store when needed; `None`
    /// when nobody here wants it or its row is gone (a deleted run).
    async fn change_of(
        &self,
        conn: &deadpool_postgres::Object,
        hint: Hint,
    ) -> Result<Option<Change>, StoreError> {
        let sink = &self.inner.sink;
        let found = |r: Result<Change, StoreError>| match r {
            Ok(change) => Ok(Some(change)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        };
        match hint {
            Hint::Events { r, f, l } => {
                if !sink.follows(&r) {
                    return Ok(None);
                }
                let events = runs::events_between(conn, &r, f, l).await?;
                Ok((!events.is_empty()).then_some(Change::Events(events)))
            }
            Hint::Status { r, s, x } => Ok(Some(Change::RunStatus(StatusChange {
                run_id: r,
                status: s,
                exit_code: x,
            }))),
            Hint::Queued { r, c } if sink.follows(&r) => found(
                runs::command_by_id(conn, &c)
                    .await
                    .map(Change::CommandQueued),
            ),
            Hint::Completed { r, c } if sink.follows(&r) => found(
                runs::command_by_id(conn, &c)
                    .await
                    .map(Change::CommandCompleted),
            ),
            Hint::Stop { r, c } if sink.follows(&r) => Ok(Some(Change::StopRequested {
                run_id: r,
                command_id: c,
            })),
            Hint::Artifact { r, a } if sink.follows(&r) => {
                found(self.artifact(a).await.map(Change::ArtifactAdded))
            }
            Hint::Approval { p } if sink.hears_approvals() => found(
                self.approval(p)
                    .await
                    .map(|row| Change::Approval(Box::new(row))),
            ),
            Hint::Sessions => Ok(Some(Change::SessionsChanged)),
            Hint::Queued { .. }
            | Hint::Completed { .. }
            | Hint::Stop { .. }
            | Hint::Artifact { .. }
            | Hint::Approval { .. } => Ok(None),
        }
    }
}

/// Listens until the store is dropped, connecting again with backoff.
async fn listen(store: Weak<Inner>, config: tokio_postgres::Config) {
    let mut retry = RETRY_FIRST;
    loop {
        let lost = match session(&store, &config, &mut retry).await {
            Ok(()) => return,
            Err(e) => e,
        };
        tracing::warn!(
            error = %lost,
            "not hearing the other instances' changes: listening again in {} ms \
             (runners poll meanwhile)",
            retry.as_millis()
        );
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MOST);
        if store.strong_count() == 0 {
            return;
        }
    }
}

/// One listening connection, until it fails (`Err`) or the store is
/// dropped (`Ok`).
async fn session(
    store: &Weak<Inner>,
    config: &tokio_postgres::Config,
    retry: &mut Duration,
) -> Result<(), String> {
    let (client, mut connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("cannot connect: {}", describe(&e)))?;
    let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
    let overflow = Arc::new(AtomicBool::new(false));
    let dropped = Arc::clone(&overflow);
    // The connection is driven on its own, always drained (QUEUE).
    let mut driver = AbortOnDrop(tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                    match tx.try_send(n.payload().to_owned()) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            dropped.store(true, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    }));
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| format!("LISTEN: {}", describe(&e)))?;
    // Heard from now on; whatever others committed before is in the
    // store, and followers catch up from it.
    match store.upgrade() {
        Some(inner) => inner.sink.missed(),
        None => return Ok(()),
    }
    tracing::info!("hearing the other instances' changes (LISTEN {CHANNEL})");
    *retry = RETRY_FIRST;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            first = rx.recv() => {
                let Some(first) = first else {
                    return Err(match (&mut driver.0).await {
                        Ok(Err(e)) => format!("connection lost: {}", describe(&e)),
                        _ => "connection closed".to_owned(),
                    });
                };
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(payload) => batch.push(payload),
                        Err(_) => break,
                    }
                }
                // Only while reading: a dropped store ends the listener.
                let Some(inner) = store.upgrade() else { return Ok(()) };
                let pg = PgStore { inner };
                pg.fan_in(batch).await;
                if overflow.swap(false, Ordering::Relaxed) {
                    tracing::warn!("notifications came faster than they were read: catching up from the store");
                    pg.inner.sink.missed();
                }
            }
            _ = ping.tick() => {
                if store.strong_count() == 0 {
                    return Ok(());
                }
                match tokio::time::timeout(PING_TIMEOUT, client.simple_query("")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(format!("connection lost: {}", describe(&e))),
                    Err(_) => return Err("no answer within 10 s".to_owned()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CommandRow, EventRow};
    use claw_proto::api::CommandStatus;
    use claw_proto::wire::{CommandKind, EventType};

    fn event(sequence: u64) -> EventRow {
        EventRow {
            id: 1,
            run_id: "run".to_owned(),
            kind: EventType::Stdout,
            data: "x".repeat(100),
            timestamp: 0,
            sequence,
        }
    }

    #[test]
    fn a_commit_is_named_in_a_few_bytes() {
        let command = CommandRow {
            id: "cmd".to_owned(),
            run_id: "run".to_owned(),
            kind: CommandKind::Command,
            command: "git status".to_owned(),
            status: CommandStatus::Pending,
            result: None,
            error: None,
            created_by: None,
            created_at: 0,
            completed_at: None,
        };
        let text = payload(
            "me",
            &[
                Change::Events((3..=500).map(event).collect()),
                Change::RunStatus(StatusChange {
                    run_id: "run".to_owned(),
                    status: RunStatus::Done,
                    exit_code: Some(0),
                }),
                Change::CommandQueued(command),
                Change::SessionsChanged,
            ],
        );
        assert_eq!(
            text,
            r#"{"i":"me","h":[{"k":"e","r":"run","f":3,"l":500},{"k":"s","r":"run","s":"done","x":0},{"k":"q","r":"run","c":"cmd"},{"k":"u"}]}"#
        );
        let back: Payload = serde_json::from_str(&text).expect("payload");
        assert_eq!(back.h.len(), 4);
        assert!(!back.all);
    }

    #[test]
    fn too_many_changes_for_one_payload_say_read_everything() {
        let changes: Vec<Change> = (0..200)
            .map(|n| Change::StopRequested {
                run_id: format!("run-{n:040}"),
                command_id: format!("command-{n:040}"),
            })
            .collect();
        let text = payload("me", &changes);
        assert!(text.len() < MAX_PAYLOAD, "{}", text.len());
        let back: Payload = serde_json::from_str(&text).expect("payload");
        assert!(back.all && back.h.is_empty());
        assert_eq!(back.i, "me");
    }

    #[test]
    fn adjacent_ranges_of_a_run_merge_and_nothing_moves() {
        let e = |r: &str, f, l| Hint::Events {
            r: r.to_owned(),
            f,
            l,
        };
        let stop = Hint::Stop {
            r: "a".to_owned(),
            c: "c".to_owned(),
        };
        let merged = merge(vec![
            e("a", 1, 10),
            e("a", 11, 20),
            e("b", 1, 5),
            e("a", 21, 30),
            stop.clone(),
            e("a", 31, 40),
            e("a", 25, 45),
        ]);
        assert_eq!(
            merged,
            vec![
                e("a", 1, 20),
                e("b", 1, 5),
                e("a", 21, 30),
                stop,
                e("a", 25, 45)
            ]
        );
    }
}
