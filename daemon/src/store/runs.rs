//! Runs, events, commands and artifacts.

use claw_proto::allowlist::STOP_COMMAND;
use claw_proto::wire::{EventType, Marker, RunStatus};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::nonces::{self, NonceCheck};
use super::{Store, StoreError, now_ms};

fn ser_json_text<S: serde::Serializer>(text: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    // Metadata is stored as JSON text and shown as JSON.
    match text
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
    {
        Some(Ok(value)) => value.serialize(s),
        _ => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: String,
    pub status: RunStatus,
    pub command: Option<String>,
    #[serde(serialize_with = "ser_json_text")]
    pub metadata: Option<String>,
    pub created_by: Option<String>,
    #[serde(serialize_with = "super::ser_iso")]
    pub created_at: i64,
    #[serde(serialize_with = "super::ser_iso_opt")]
    pub started_at: Option<i64>,
    #[serde(serialize_with = "super::ser_iso_opt")]
    pub finished_at: Option<i64>,
    pub exit_code: Option<i64>,
    #[serde(serialize_with = "super::ser_iso_opt")]
    pub stop_requested_at: Option<i64>,
    pub event_count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: i64,
    #[serde(skip)]
    pub run_id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub data: String,
    #[serde(serialize_with = "super::ser_iso")]
    pub timestamp: i64,
    pub sequence: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandRow {
    pub id: String,
    pub run_id: String,
    pub command: String,
    pub status: String,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_by: Option<String>,
    #[serde(serialize_with = "super::ser_iso")]
    pub created_at: i64,
    #[serde(serialize_with = "super::ser_iso_opt")]
    pub completed_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactRow {
    pub id: String,
    pub run_id: String,
    pub filename: String,
    #[serde(skip)]
    pub path: String,
    pub size: u64,
    pub content_type: String,
    #[serde(serialize_with = "super::ser_iso")]
    pub created_at: i64,
}

/// What a signed runner request proves, checked inside the write transaction.
#[derive(Debug, Clone)]
pub struct RunnerAuth {
    pub run_id: String,
    pub capability_token: String,
    pub nonce: String,
    /// The signed `X-Timestamp` (Unix seconds).
    pub timestamp: i64,
}

impl RunnerAuth {
    fn nonce_key(&self) -> nonces::Nonce {
        (self.timestamp, self.nonce.clone())
    }
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventType,
    pub data: String,
    pub sequence: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct StatusChange {
    pub run_id: String,
    pub status: RunStatus,
    pub exit_code: Option<i64>,
}

/// Result of an ingest: one id per submitted event, the rows that are new.
#[derive(Debug, Clone, Default)]
pub struct Ingested {
    pub ids: Vec<i64>,
    pub stored: Vec<EventRow>,
    pub status_change: Option<StatusChange>,
}

#[derive(Debug, Clone)]
pub struct NewArtifact {
    pub id: String,
    pub filename: String,
    pub path: String,
    pub size: u64,
    pub content_type: String,
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub before: Option<i64>,
    /// Created at or after this time.
    pub since: Option<i64>,
    pub limit: u32,
}

/// Lowercase hex SHA-256 of a capability token: what the store keeps.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

const RUN_COLUMNS: &str = "id, status, command, metadata, created_by, created_at, started_at, \
     finished_at, exit_code, stop_requested_at, \
     (SELECT COALESCE(MAX(sequence), 0) FROM events WHERE run_id = runs.id)";

fn run_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let status: String = row.get(1)?;
    Ok(RunRow {
        id: row.get(0)?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        command: row.get(2)?,
        metadata: row.get(3)?,
        created_by: row.get(4)?,
        created_at: row.get(5)?,
        started_at: row.get(6)?,
        finished_at: row.get(7)?,
        exit_code: row.get(8)?,
        stop_requested_at: row.get(9)?,
        event_count: row.get(10)?,
    })
}

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    let kind: String = row.get(2)?;
    Ok(EventRow {
        id: row.get(0)?,
        run_id: row.get(1)?,
        kind: EventType::parse(&kind).unwrap_or(EventType::Info),
        data: row.get(3)?,
        timestamp: row.get(4)?,
        sequence: row.get(5)?,
    })
}

const COMMAND_COLUMNS: &str =
    "id, run_id, command, status, result, error, created_by, created_at, completed_at";

fn command_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CommandRow> {
    Ok(CommandRow {
        id: row.get(0)?,
        run_id: row.get(1)?,
        command: row.get(2)?,
        status: row.get(3)?,
        result: row.get(4)?,
        error: row.get(5)?,
        created_by: row.get(6)?,
        created_at: row.get(7)?,
        completed_at: row.get(8)?,
    })
}

const ARTIFACT_COLUMNS: &str = "id, run_id, filename, path, size, content_type, created_at";

fn artifact_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ArtifactRow> {
    Ok(ArtifactRow {
        id: row.get(0)?,
        run_id: row.get(1)?,
        filename: row.get(2)?,
        path: row.get(3)?,
        size: row.get(4)?,
        content_type: row.get(5)?,
        created_at: row.get(6)?,
    })
}

fn get_run(conn: &Connection, id: &str) -> Result<RunRow, StoreError> {
    conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
        .query_row([id], run_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("unknown run {id}")))
}

fn run_status(conn: &Connection, id: &str) -> Result<RunStatus, StoreError> {
    let status: Option<String> = conn
        .prepare_cached("SELECT status FROM runs WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    status
        .and_then(|s| RunStatus::parse(&s))
        .ok_or_else(|| StoreError::NotFound(format!("unknown run {id}")))
}

/// How a request's nonce is recorded (nonces.rs).
#[derive(Clone, Copy, PartialEq, Eq)]
enum NonceUse {
    /// Written by the request's own transaction.
    Written,
    /// Only checked here; the caller records it in the buffer once its
    /// work has succeeded, and the writer writes it shortly after.
    Held,
}

/// Checks the run, its token and the nonce, all inside the caller's
/// transaction so a rejected request leaves nothing behind.
fn check_runner(
    conn: &Connection,
    auth: &RunnerAuth,
    now: i64,
    nonces: &NonceCheck,
    nonce_use: NonceUse,
) -> Result<(), StoreError> {
    let stored: Option<String> = conn
        .prepare_cached("SELECT capability_token_hash FROM runs WHERE id = ?1")?
        .query_row([&auth.run_id], |r| r.get(0))
        .optional()?;
    check_token_and_nonce(conn, auth, now, nonces, nonce_use, stored.as_deref())
}

/// [`check_runner`] for an upload of events, returning the run's next
/// sequence: one look-up for both, as this runs for every event a runner
/// sends alone.
fn check_runner_for_ingest(
    conn: &Connection,
    auth: &RunnerAuth,
    now: i64,
    nonces: &NonceCheck,
    nonce_use: NonceUse,
) -> Result<u64, StoreError> {
    let found: Option<(String, u64)> = conn
        .prepare_cached(
            "SELECT capability_token_hash, \
             (SELECT COALESCE(MAX(sequence), 0) + 1 FROM events WHERE run_id = ?1) \
             FROM runs WHERE id = ?1",
        )?
        .query_row([&auth.run_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (stored, next) = found.unzip();
    check_token_and_nonce(conn, auth, now, nonces, nonce_use, stored.as_deref())?;
    Ok(next.unwrap_or(1))
}

fn check_token_and_nonce(
    conn: &Connection,
    auth: &RunnerAuth,
    now: i64,
    nonces: &NonceCheck,
    nonce_use: NonceUse,
    stored_token_hash: Option<&str>,
) -> Result<(), StoreError> {
    let Some(stored) = stored_token_hash else {
        return Err(StoreError::NotFound(format!("unknown run {}", auth.run_id)));
    };
    let presented = token_hash(&auth.capability_token);
    if !bool::from(presented.as_bytes().ct_eq(stored.as_bytes())) {
        return Err(StoreError::Forbidden(
            "capability token does not belong to this run".to_owned(),
        ));
    }
    let seen = match nonce_use {
        NonceUse::Written => {
            conn.prepare_cached(
                "INSERT INTO nonces (timestamp, nonce) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?
            .execute(params![auth.timestamp, auth.nonce])?
                == 0
        }
        NonceUse::Held => conn
            .prepare_cached("SELECT 1 FROM nonces WHERE timestamp = ?1 AND nonce = ?2")?
            .exists(params![auth.timestamp, auth.nonce])?,
    };
    if seen
        || nonces::lock(&nonces.held).contains(&auth.nonce_key())
        || nonces.in_legacy(conn, &auth.nonce, now)?
    {
        return Err(StoreError::Replay);
    }
    Ok(())
}

/// Stores the events of `run_id`, whose next sequence is `next`.
fn ingest(
    conn: &Connection,
    run_id: &str,
    mut next: u64,
    events: Vec<NewEvent>,
    now: i64,
) -> Result<Ingested, StoreError> {
    // Taken from the cache once per request, not once per event: the
    // look-up showed in profiles of 1000-event batches.
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (run_id, type, data, timestamp, sequence) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut out = Ingested {
        ids: Vec::with_capacity(events.len()),
        stored: Vec::with_capacity(events.len()),
        status_change: None,
    };
    for event in events {
        let sequence = event.sequence.filter(|s| *s > 0).unwrap_or(next);
        if sequence < next {
            // A resend: answer with what is stored, store nothing.
            let id: i64 = conn
                .prepare_cached("SELECT id FROM events WHERE run_id = ?1 AND sequence = ?2")?
                .query_row(params![run_id, sequence], |r| r.get(0))?;
            out.ids.push(id);
            continue;
        }
        if sequence > next {
            return Err(StoreError::SequenceGap {
                run_id: run_id.to_owned(),
                sequence,
                next,
            });
        }
        let id = insert.insert(params![
            run_id,
            event.kind.as_str(),
            event.data,
            now,
            sequence
        ])?;
        next += 1;
        out.ids.push(id);
        if event.kind == EventType::Marker
            && let Some(change) = apply_marker(conn, run_id, &event.data, now)?
        {
            out.status_change = Some(change);
        }
        out.stored.push(EventRow {
            id,
            run_id: run_id.to_owned(),
            kind: event.kind,
            data: event.data,
            timestamp: now,
            sequence,
        });
    }
    Ok(out)
}

fn apply_marker(
    conn: &Connection,
    run_id: &str,
    data: &str,
    now: i64,
) -> Result<Option<StatusChange>, StoreError> {
    let change = match Marker::parse(data) {
        Some(Marker::Started { .. }) => {
            let n = conn.execute(
                "UPDATE runs SET status = 'running', started_at = ?2 WHERE id = ?1 AND status = 'pending'",
                params![run_id, now],
            )?;
            (n > 0).then(|| StatusChange {
                run_id: run_id.to_owned(),
                status: RunStatus::Running,
                exit_code: None,
            })
        }
        Some(Marker::Finished { exit_code, .. }) => {
            let stop_requested: Option<i64> = conn.query_row(
                "SELECT stop_requested_at FROM runs WHERE id = ?1",
                [run_id],
                |r| r.get(0),
            )?;
            let status = if stop_requested.is_some() {
                RunStatus::Stopped
            } else if exit_code == Some(0) {
                RunStatus::Done
            } else {
                RunStatus::Failed
            };
            let n = conn.execute(
                "UPDATE runs SET status = ?2, exit_code = ?3, finished_at = ?4, \
                 started_at = COALESCE(started_at, ?4) \
                 WHERE id = ?1 AND status IN ('pending', 'running')",
                params![run_id, status.as_str(), exit_code, now],
            )?;
            (n > 0).then(|| StatusChange {
                run_id: run_id.to_owned(),
                status,
                exit_code,
            })
        }
        None => None,
    };
    Ok(change)
}

impl Store {
    /// Stores a runner's events (exactly once per sequence) after checking
    /// the request's run, token and nonce. `after_commit` sees the result on
    /// the writer thread, in commit order.
    pub async fn runner_ingest(
        &self,
        auth: RunnerAuth,
        events: Vec<NewEvent>,
        after_commit: impl FnOnce(&Ingested) + Send + 'static,
    ) -> Result<Ingested, StoreError> {
        // A resend of sequenced events stores nothing, so their nonce can
        // wait in the buffer; an unsequenced event would be stored again.
        let nonce_use = if events.iter().all(|e| e.sequence.is_some_and(|s| s > 0)) {
            NonceUse::Held
        } else {
            NonceUse::Written
        };
        // The single statement that a lone event without a marker writes
        // is atomic by itself: it needs no savepoint of its own.
        let rows = events.len();
        let one_change = nonce_use == NonceUse::Held
            && matches!(events.as_slice(), [event] if event.kind != EventType::Marker);
        let nonces = self.nonce_check();
        let work = move |conn: &Connection| {
            let now = now_ms();
            let next = check_runner_for_ingest(conn, &auth, now, &nonces, nonce_use)?;
            let ingested = ingest(conn, &auth.run_id, next, events, now)?;
            if nonce_use == NonceUse::Held {
                nonces::lock(&nonces.held).record(auth.nonce_key());
            }
            Ok(ingested)
        };
        if one_change {
            self.writer()
                .write_one_change_then(work, after_commit)
                .await
        } else {
            self.writer()
                .write_rows_then(rows, work, after_commit)
                .await
        }
    }

    /// Checks a signed runner request (run, token, nonce) that changes nothing
    /// else, such as opening the runner's WebSocket.
    pub async fn runner_check(&self, auth: RunnerAuth) -> Result<(), StoreError> {
        let nonces = self.nonce_check();
        self.writer()
            .write(move |conn| check_runner(conn, &auth, now_ms(), &nonces, NonceUse::Written))
            .await
    }

    /// The run's pending commands, oldest first; they become `delivered`.
    pub async fn runner_pending_commands(
        &self,
        auth: RunnerAuth,
    ) -> Result<Vec<CommandRow>, StoreError> {
        let nonces = self.nonce_check();
        self.writer()
            .write(move |conn| {
                check_runner(conn, &auth, now_ms(), &nonces, NonceUse::Written)?;
                let rows = conn
                    .prepare_cached(&format!(
                        "SELECT {COMMAND_COLUMNS} FROM commands WHERE run_id = ?1 AND status = 'pending' \
                         ORDER BY created_at, rowid"
                    ))?
                    .query_map([&auth.run_id], command_from_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                conn.prepare_cached(
                    "UPDATE commands SET status = 'delivered' WHERE run_id = ?1 AND status = 'pending'",
                )?
                .execute([&auth.run_id])?;
                Ok(rows)
            })
            .await
    }

    /// Records a command's outcome. Acknowledging twice changes nothing.
    pub async fn runner_ack_command(
        &self,
        auth: RunnerAuth,
        command_id: String,
        result: Option<String>,
        error: Option<String>,
        after_commit: impl FnOnce(&Option<CommandRow>) + Send + 'static,
    ) -> Result<Option<CommandRow>, StoreError> {
        let nonces = self.nonce_check();
        self.writer()
            .write_then(
                move |conn| {
                    let now = now_ms();
                    check_runner(conn, &auth, now, &nonces, NonceUse::Written)?;
                    let status = if error.is_some() { "failed" } else { "completed" };
                    let changed = conn.execute(
                        "UPDATE commands SET status = ?3, result = ?4, error = ?5, completed_at = ?6 \
                         WHERE id = ?1 AND run_id = ?2 AND status IN ('pending', 'delivered')",
                        params![command_id, auth.run_id, status, result, error, now],
                    )?;
                    let row = conn
                        .query_row(
                            &format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE id = ?1 AND run_id = ?2"),
                            params![command_id, auth.run_id],
                            command_from_row,
                        )
                        .optional()?
                        .ok_or_else(|| StoreError::NotFound(format!("unknown command {command_id}")))?;
                    Ok((changed > 0).then_some(row))
                },
                after_commit,
            )
            .await
    }

    /// Records an uploaded artifact whose file is already in place.
    pub async fn runner_add_artifact(
        &self,
        auth: RunnerAuth,
        artifact: NewArtifact,
    ) -> Result<ArtifactRow, StoreError> {
        let nonces = self.nonce_check();
        self.writer()
            .write(move |conn| {
                let now = now_ms();
                check_runner(conn, &auth, now, &nonces, NonceUse::Written)?;
                conn.execute(
                    "INSERT INTO artifacts (id, run_id, filename, path, size, content_type, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        artifact.id,
                        auth.run_id,
                        artifact.filename,
                        artifact.path,
                        artifact.size,
                        artifact.content_type,
                        now
                    ],
                )?;
                Ok(ArtifactRow {
                    id: artifact.id,
                    run_id: auth.run_id,
                    filename: artifact.filename,
                    path: artifact.path,
                    size: artifact.size,
                    content_type: artifact.content_type,
                    created_at: now,
                })
            })
            .await
    }

    pub async fn create_run(
        &self,
        id: String,
        capability_token: &str,
        command: Option<String>,
        metadata: Option<String>,
        created_by: Option<String>,
    ) -> Result<RunRow, StoreError> {
        let hash = token_hash(capability_token);
        self.writer()
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO runs (id, status, command, metadata, capability_token_hash, created_by, created_at) \
                     VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?6)",
                    params![id, command, metadata, hash, created_by, now_ms()],
                )?;
                get_run(conn, &id)
            })
            .await
    }

    pub async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunRow>, StoreError> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs \
                     WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR created_at < ?2) \
                     AND (?4 IS NULL OR created_at >= ?4) \
                     ORDER BY created_at DESC, id DESC LIMIT ?3"
                ))?
                .query_map(
                    params![
                        filter.status.map(RunStatus::as_str),
                        filter.before,
                        filter.limit,
                        filter.since
                    ],
                    run_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn run(&self, id: String) -> Result<RunRow, StoreError> {
        self.read(move |conn| get_run(conn, &id)).await
    }

    /// Events of a run with sequence > `after`, in order, at most `limit`.
    pub async fn events_after(
        &self,
        run_id: String,
        after: u64,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        // SQLite integers are signed: nothing lies beyond i64::MAX.
        let after = after.min(i64::MAX as u64);
        self.read(move |conn| {
            run_status(conn, &run_id)?;
            let rows = conn
                .prepare_cached(
                    "SELECT id, run_id, type, data, timestamp, sequence FROM events \
                     WHERE run_id = ?1 AND sequence > ?2 ORDER BY sequence LIMIT ?3",
                )?
                .query_map(params![run_id, after, limit], event_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Queues a command for a running run.
    pub async fn queue_command(
        &self,
        run_id: String,
        command_id: String,
        command: String,
        created_by: Option<String>,
    ) -> Result<CommandRow, StoreError> {
        self.writer()
            .write(move |conn| {
                let status = run_status(conn, &run_id)?;
                if status != RunStatus::Running {
                    return Err(StoreError::Conflict(format!(
                        "run {run_id} is {}, commands go only to running runs",
                        status.as_str()
                    )));
                }
                insert_command(conn, &command_id, &run_id, &command, created_by.as_deref())
            })
            .await
    }

    /// Queues `__STOP__`. A run that never started is stopped at once.
    pub async fn request_stop(
        &self,
        run_id: String,
        command_id: String,
        created_by: Option<String>,
    ) -> Result<(CommandRow, Option<StatusChange>), StoreError> {
        self.writer()
            .write(move |conn| {
                let status = run_status(conn, &run_id)?;
                if status.is_finished() {
                    return Err(StoreError::Conflict(format!(
                        "run {run_id} has already ended ({})",
                        status.as_str()
                    )));
                }
                let now = now_ms();
                let change = if status == RunStatus::Pending {
                    conn.execute(
                        "UPDATE runs SET status = 'stopped', stop_requested_at = ?2, finished_at = ?2 WHERE id = ?1",
                        params![run_id, now],
                    )?;
                    Some(StatusChange {
                        run_id: run_id.clone(),
                        status: RunStatus::Stopped,
                        exit_code: None,
                    })
                } else {
                    conn.execute(
                        "UPDATE runs SET stop_requested_at = COALESCE(stop_requested_at, ?2) WHERE id = ?1",
                        params![run_id, now],
                    )?;
                    None
                };
                let row = insert_command(conn, &command_id, &run_id, STOP_COMMAND, created_by.as_deref())?;
                Ok((row, change))
            })
            .await
    }

    pub async fn list_commands(&self, run_id: String) -> Result<Vec<CommandRow>, StoreError> {
        self.read(move |conn| {
            run_status(conn, &run_id)?;
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {COMMAND_COLUMNS} FROM commands WHERE run_id = ?1 ORDER BY created_at, rowid"
                ))?
                .query_map([&run_id], command_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Deletes a run with its events, commands and artifact rows; returns
    /// the artifact files to remove.
    pub async fn delete_run(&self, run_id: String) -> Result<Vec<ArtifactRow>, StoreError> {
        self.writer()
            .write(move |conn| {
                run_status(conn, &run_id)?;
                let artifacts = artifacts_of(conn, &run_id)?;
                conn.execute("DELETE FROM runs WHERE id = ?1", [&run_id])?;
                Ok(artifacts)
            })
            .await
    }

    pub async fn list_artifacts(&self, run_id: String) -> Result<Vec<ArtifactRow>, StoreError> {
        self.read(move |conn| {
            run_status(conn, &run_id)?;
            artifacts_of(conn, &run_id)
        })
        .await
    }

    pub async fn artifact(&self, id: String) -> Result<ArtifactRow, StoreError> {
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE id = ?1"),
                [&id],
                artifact_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("unknown artifact {id}")))
        })
        .await
    }

    pub async fn delete_artifact(&self, id: String) -> Result<ArtifactRow, StoreError> {
        self.writer()
            .write(move |conn| {
                let row = conn
                    .query_row(
                        &format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE id = ?1"),
                        [&id],
                        artifact_from_row,
                    )
                    .optional()?
                    .ok_or_else(|| StoreError::NotFound(format!("unknown artifact {id}")))?;
                conn.execute("DELETE FROM artifacts WHERE id = ?1", [&id])?;
                Ok(row)
            })
            .await
    }
}

impl Store {
    /// Number of runs in each state.
    pub async fn run_counts(&self) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT status, COUNT(*) FROM runs GROUP BY status")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|(s, n)| RunStatus::parse(&s).map(|s| (s, n)))
                .collect())
        })
        .await
    }
}

fn insert_command(
    conn: &Connection,
    id: &str,
    run_id: &str,
    command: &str,
    created_by: Option<&str>,
) -> Result<CommandRow, StoreError> {
    let now = now_ms();
    conn.execute(
        "INSERT INTO commands (id, run_id, command, status, created_by, created_at) \
         VALUES (?1, ?2, ?3, 'pending', ?4, ?5)",
        params![id, run_id, command, created_by, now],
    )?;
    Ok(CommandRow {
        id: id.to_owned(),
        run_id: run_id.to_owned(),
        command: command.to_owned(),
        status: "pending".to_owned(),
        result: None,
        error: None,
        created_by: created_by.map(str::to_owned),
        created_at: now,
        completed_at: None,
    })
}

fn artifacts_of(conn: &Connection, run_id: &str) -> Result<Vec<ArtifactRow>, StoreError> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = ?1 ORDER BY created_at, rowid"
        ))?
        .query_map([run_id], artifact_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
