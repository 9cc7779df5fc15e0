//! Runs, events, commands and artifacts.

use async_trait::async_trait;
use claw_proto::agent::{AgentKind, PermissionMode, SessionStarted};
use claw_proto::allowlist::STOP_COMMAND;
use claw_proto::api::CommandStatus;
use claw_proto::wire::{CommandKind, EventType, Marker, RunStatus};
use rusqlite::{Connection, OptionalExtension, params};
use subtle::ConstantTimeEq;

use super::nonces::{self, NonceCheck};
use super::{SqliteStore, approvals, notify};
use crate::clock::now_ms;
use crate::store::{
    ArtifactIndex, ArtifactRow, Change, CommandOutcome, CommandRow, CommandStore, EventRow,
    Ingested, NewArtifact, NewCommand, NewEvent, NewRun, RunFilter, RunRow, RunStore, RunnerAuth,
    StatusChange, StoreError, status_at_finish, token_hash,
};

impl RunnerAuth {
    fn nonce_key(&self) -> nonces::Nonce {
        (self.timestamp, self.nonce.clone())
    }
}

const RUN_COLUMNS: &str = "id, status, command, metadata, created_by, created_at, started_at, \
     finished_at, exit_code, stop_requested_at, \
     (SELECT COALESCE(MAX(sequence), 0) FROM events WHERE run_id = runs.id), \
     agent, model, permission_mode, allowed_tools, agent_session_id, approval_timeout_secs, \
     host_id, workspace";

fn run_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let status: String = row.get(1)?;
    let agent: Option<String> = row.get(11)?;
    let mode: Option<String> = row.get(13)?;
    let tools: Option<String> = row.get(14)?;
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
        agent: agent.as_deref().and_then(AgentKind::parse),
        model: row.get(12)?,
        permission_mode: mode.as_deref().and_then(PermissionMode::parse),
        allowed_tools: tools
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default(),
        agent_session_id: row.get(15)?,
        approval_timeout_secs: row.get(16)?,
        host_id: row.get(17)?,
        workspace: row.get(18)?,
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
    "id, run_id, command, status, result, error, created_by, created_at, completed_at, kind";

fn command_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CommandRow> {
    let status: String = row.get(3)?;
    Ok(CommandRow {
        id: row.get(0)?,
        run_id: row.get(1)?,
        command: row.get(2)?,
        // An unreadable status reads as delivered: seen, not answered.
        status: CommandStatus::parse(&status).unwrap_or(CommandStatus::Delivered),
        result: row.get(4)?,
        error: row.get(5)?,
        created_by: row.get(6)?,
        created_at: row.get(7)?,
        completed_at: row.get(8)?,
        kind: CommandKind::parse(&row.get::<_, String>(9)?).unwrap_or_default(),
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

pub(super) fn run_status(conn: &Connection, id: &str) -> Result<RunStatus, StoreError> {
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
pub(super) enum NonceUse {
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
        return Err(StoreError::WrongToken);
    }
    check_nonce(conn, auth, now, nonces, nonce_use)
}

/// Refuses a nonce seen before (held in memory, in the table, or in the
/// old table); with [`NonceUse::Written`] records it.
pub(super) fn check_nonce(
    conn: &Connection,
    auth: &RunnerAuth,
    now: i64,
    nonces: &NonceCheck,
    nonce_use: NonceUse,
) -> Result<(), StoreError> {
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

/// Stores the events of `run_id`, whose next sequence is `next`; records
/// the new rows and any status change in `changes`.
fn ingest(
    conn: &Connection,
    run_id: &str,
    mut next: u64,
    events: Vec<NewEvent>,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<Ingested, StoreError> {
    // Taken from the cache once per request, not once per event: the
    // look-up showed in profiles of 1000-event batches.
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (run_id, type, data, timestamp, sequence) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut out = Ingested {
        ids: Vec::with_capacity(events.len()),
        status_change: None,
    };
    let mut stored = Vec::with_capacity(events.len());
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
        let change = match event.kind {
            EventType::Marker => {
                let change = apply_marker(conn, run_id, &event.data, now)?;
                if let Some(ended) = change.as_ref().filter(|c| c.status.is_finished()) {
                    approvals::cancel_open(conn, run_id, now, changes)?;
                    notify::run_ended(conn, run_id, ended.status, ended.exit_code, now)?;
                }
                change
            }
            EventType::ApprovalRequest => {
                approvals::on_request(conn, run_id, &event.data, now, changes)?
            }
            EventType::ApprovalResolved => {
                approvals::on_resolved(conn, run_id, &event.data, now, changes)?
            }
            _ => None,
        };
        if change.is_some() {
            out.status_change = change;
        }
        if event.kind == EventType::Session
            && let Ok(session) = serde_json::from_str::<SessionStarted>(&event.data)
            && let Some(session_id) = session.session_id
        {
            conn.prepare_cached("UPDATE runs SET agent_session_id = ?2 WHERE id = ?1")?
                .execute(params![run_id, session_id])?;
        }
        stored.push(EventRow {
            id,
            run_id: run_id.to_owned(),
            kind: event.kind,
            data: event.data,
            timestamp: now,
            sequence,
        });
    }
    if !stored.is_empty() {
        changes.push(Change::Events(stored));
    }
    if let Some(change) = &out.status_change {
        changes.push(Change::RunStatus(change.clone()));
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
            let status = status_at_finish(stop_requested.is_some(), exit_code);
            let n = conn.execute(
                "UPDATE runs SET status = ?2, exit_code = ?3, finished_at = ?4, \
                 started_at = COALESCE(started_at, ?4) \
                 WHERE id = ?1 AND status IN ('pending', 'running', 'waiting')",
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

#[async_trait]
impl RunStore for SqliteStore {
    async fn runner_ingest(
        &self,
        auth: RunnerAuth,
        events: Vec<NewEvent>,
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
        let work = move |conn: &Connection, changes: &mut Vec<Change>| {
            let now = now_ms();
            let next = check_runner_for_ingest(conn, &auth, now, &nonces, nonce_use)?;
            let ingested = ingest(conn, &auth.run_id, next, events, now, changes)?;
            if nonce_use == NonceUse::Held {
                nonces::lock(&nonces.held).record(auth.nonce_key());
            }
            Ok(ingested)
        };
        if one_change {
            self.writer().write_one_change(work).await
        } else {
            self.writer().write_rows_changes(rows, work).await
        }
    }

    async fn runner_check(&self, auth: RunnerAuth) -> Result<(), StoreError> {
        let nonces = self.nonce_check();
        self.writer()
            .write(move |conn| check_runner(conn, &auth, now_ms(), &nonces, NonceUse::Written))
            .await
    }

    async fn create_run(&self, run: NewRun) -> Result<RunRow, StoreError> {
        let hash = token_hash(&run.capability_token);
        let tools = (!run.agent.allowed_tools.is_empty())
            .then(|| serde_json::to_string(&run.agent.allowed_tools).unwrap_or_default());
        self.writer()
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO runs (id, status, command, metadata, capability_token_hash, created_by, \
                     created_at, agent, model, permission_mode, allowed_tools, approval_timeout_secs, \
                     host_id, workspace) \
                     VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    params![
                        run.id,
                        run.command,
                        run.metadata,
                        hash,
                        run.created_by,
                        now_ms(),
                        run.agent.agent.map(AgentKind::as_str),
                        run.agent.model,
                        run.agent.permission_mode.map(PermissionMode::as_str),
                        tools,
                        run.agent.approval_timeout_secs,
                        run.host_id,
                        run.workspace
                    ],
                )?;
                if let Some(prompt) = &run.first_prompt {
                    insert_command(conn, prompt)?;
                }
                get_run(conn, &run.id)
            })
            .await
    }

    async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunRow>, StoreError> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs \
                     WHERE (?1 IS NULL OR status = ?1) \
                     AND (?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND id < ?5)) \
                     AND (?4 IS NULL OR created_at >= ?4) \
                     ORDER BY created_at DESC, id DESC LIMIT ?3"
                ))?
                .query_map(
                    params![
                        filter.status.map(RunStatus::as_str),
                        filter.before,
                        filter.limit,
                        filter.since,
                        filter.before_id
                    ],
                    run_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn run(&self, id: String) -> Result<RunRow, StoreError> {
        self.read(move |conn| get_run(conn, &id)).await
    }

    async fn events_after(
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

    async fn request_stop(
        &self,
        run_id: String,
        command_id: String,
        created_by: Option<String>,
    ) -> Result<CommandRow, StoreError> {
        self.writer()
            .write_changes(move |conn, changes| {
                let status = run_status(conn, &run_id)?;
                if status.is_finished() {
                    return Err(StoreError::Conflict(format!(
                        "run {run_id} has already ended ({})",
                        status.as_str()
                    )));
                }
                let now = now_ms();
                let stopped_at_once = status == RunStatus::Pending;
                if stopped_at_once {
                    conn.execute(
                        "UPDATE runs SET status = 'stopped', stop_requested_at = ?2, finished_at = ?2 WHERE id = ?1",
                        params![run_id, now],
                    )?;
                } else {
                    conn.execute(
                        "UPDATE runs SET stop_requested_at = COALESCE(stop_requested_at, ?2) WHERE id = ?1",
                        params![run_id, now],
                    )?;
                }
                let row = insert_command(
                    conn,
                    &NewCommand {
                        id: command_id,
                        run_id: run_id.clone(),
                        kind: CommandKind::Command,
                        command: STOP_COMMAND.to_owned(),
                        created_by,
                    },
                )?;
                changes.push(Change::StopRequested {
                    run_id: run_id.clone(),
                    command_id: row.id.clone(),
                });
                if stopped_at_once {
                    notify::run_ended(conn, &run_id, RunStatus::Stopped, None, now_ms())?;
                    changes.push(Change::RunStatus(StatusChange {
                        run_id,
                        status: RunStatus::Stopped,
                        exit_code: None,
                    }));
                }
                Ok(row)
            })
            .await
    }

    async fn delete_run(&self, run_id: String) -> Result<Vec<ArtifactRow>, StoreError> {
        self.writer()
            .write(move |conn| {
                run_status(conn, &run_id)?;
                let artifacts = artifacts_of(conn, &run_id)?;
                conn.execute("DELETE FROM runs WHERE id = ?1", [&run_id])?;
                Ok(artifacts)
            })
            .await
    }

    async fn run_counts(&self) -> Result<Vec<(RunStatus, u64)>, StoreError> {
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

#[async_trait]
impl CommandStore for SqliteStore {
    async fn queue_command(&self, command: NewCommand) -> Result<CommandRow, StoreError> {
        self.writer()
            .write_changes(move |conn, changes| {
                let status = run_status(conn, &command.run_id)?;
                // Prompts may wait for a runner that has not started yet.
                let open = match command.kind {
                    CommandKind::Prompt | CommandKind::Decision => !status.is_finished(),
                    CommandKind::Command | CommandKind::Interrupt => {
                        matches!(status, RunStatus::Running | RunStatus::Waiting)
                    }
                };
                if !open {
                    return Err(StoreError::Conflict(format!(
                        "run {} is {}: {}",
                        command.run_id,
                        status.as_str(),
                        match command.kind {
                            CommandKind::Prompt => "its agent has ended",
                            _ => "commands go only to running runs",
                        }
                    )));
                }
                let row = insert_command(conn, &command)?;
                changes.push(Change::CommandQueued(row.clone()));
                Ok(row)
            })
            .await
    }

    async fn reopen_run(&self, token: String, prompt: NewCommand) -> Result<RunRow, StoreError> {
        let hash = token_hash(&token);
        self.writer()
            .write_changes(move |conn, changes| {
                let before = conn
                    .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
                    .query_row([&prompt.run_id], run_from_row)
                    .optional()?
                    .ok_or_else(|| {
                        StoreError::NotFound(format!("unknown run {}", prompt.run_id))
                    })?;
                if !before.status.is_finished() {
                    return Err(StoreError::Conflict(format!(
                        "run {} is {}, not finished",
                        before.id,
                        before.status.as_str()
                    )));
                }
                conn.execute(
                    "UPDATE runs SET status = 'pending', finished_at = NULL, exit_code = NULL, \
                     stop_requested_at = NULL, runner_lost_at = NULL, capability_token_hash = ?2 \
                     WHERE id = ?1",
                    params![before.id, hash],
                )?;
                let row = insert_command(conn, &prompt)?;
                changes.push(Change::RunStatus(StatusChange {
                    run_id: before.id.clone(),
                    status: RunStatus::Pending,
                    exit_code: None,
                }));
                changes.push(Change::CommandQueued(row));
                Ok(before)
            })
            .await
    }

    async fn restore_run(&self, before: RunRow, prompt_id: String) -> Result<(), StoreError> {
        self.writer()
            .write_changes(move |conn, changes| {
                conn.execute(
                    "DELETE FROM commands WHERE id = ?1 AND run_id = ?2",
                    params![prompt_id, before.id],
                )?;
                let n = conn.execute(
                    "UPDATE runs SET status = ?2, finished_at = ?3, exit_code = ?4, \
                     stop_requested_at = ?5 WHERE id = ?1 AND status = 'pending'",
                    params![
                        before.id,
                        before.status.as_str(),
                        before.finished_at,
                        before.exit_code,
                        before.stop_requested_at
                    ],
                )?;
                if n > 0 {
                    changes.push(Change::RunStatus(StatusChange {
                        run_id: before.id.clone(),
                        status: before.status,
                        exit_code: before.exit_code,
                    }));
                }
                Ok(())
            })
            .await
    }

    async fn list_commands(&self, run_id: String) -> Result<Vec<CommandRow>, StoreError> {
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

    async fn runner_pending_commands(
        &self,
        auth: RunnerAuth,
    ) -> Result<Vec<CommandRow>, StoreError> {
        let nonces = self.nonce_check();
        self.writer()
            .write(move |conn| {
                check_runner(conn, &auth, now_ms(), &nonces, NonceUse::Written)?;
                // An agent run's runner answers each command once whatever
                // it is sent, so its commands come again until answered: a
                // reply lost with the connection loses no prompt or
                // decision. A raw run's runner gets each command once.
                let rows = conn
                    .prepare_cached(&format!(
                        "SELECT {COMMAND_COLUMNS} FROM commands WHERE run_id = ?1 AND (status = 'pending' \
                         OR (status = 'delivered' AND (SELECT agent FROM runs WHERE id = ?1) IS NOT NULL)) \
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

    async fn runner_ack_command(
        &self,
        auth: RunnerAuth,
        ack: CommandOutcome,
    ) -> Result<Option<CommandRow>, StoreError> {
        let nonces = self.nonce_check();
        self.writer()
            .write_changes(move |conn, changes| {
                let now = now_ms();
                check_runner(conn, &auth, now, &nonces, NonceUse::Written)?;
                let status = if ack.error.is_some() {
                    CommandStatus::Failed
                } else {
                    CommandStatus::Completed
                };
                let changed = conn.execute(
                    "UPDATE commands SET status = ?3, result = ?4, error = ?5, completed_at = ?6 \
                     WHERE id = ?1 AND run_id = ?2 AND status IN ('pending', 'delivered')",
                    params![
                        ack.command_id,
                        auth.run_id,
                        status.as_str(),
                        ack.result,
                        ack.error,
                        now
                    ],
                )?;
                let row = conn
                    .query_row(
                        &format!(
                            "SELECT {COMMAND_COLUMNS} FROM commands WHERE id = ?1 AND run_id = ?2"
                        ),
                        params![ack.command_id, auth.run_id],
                        command_from_row,
                    )
                    .optional()?
                    .ok_or_else(|| {
                        StoreError::NotFound(format!("unknown command {}", ack.command_id))
                    })?;
                if changed == 0 {
                    return Ok(None);
                }
                changes.push(Change::CommandCompleted(row.clone()));
                if row.kind == CommandKind::Decision
                    && let Some(approval) = approvals::of_command(conn, &row.id)?
                {
                    changes.push(Change::Approval(Box::new(approval)));
                }
                Ok(Some(row))
            })
            .await
    }
}

#[async_trait]
impl ArtifactIndex for SqliteStore {
    async fn runner_add_artifact(
        &self,
        auth: RunnerAuth,
        artifact: NewArtifact,
    ) -> Result<ArtifactRow, StoreError> {
        let nonces = self.nonce_check();
        self.writer()
            .write_changes(move |conn, changes| {
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
                let row = ArtifactRow {
                    id: artifact.id,
                    run_id: auth.run_id,
                    filename: artifact.filename,
                    path: artifact.path,
                    size: artifact.size,
                    content_type: artifact.content_type,
                    created_at: now,
                };
                changes.push(Change::ArtifactAdded(row.clone()));
                Ok(row)
            })
            .await
    }

    async fn list_artifacts(&self, run_id: String) -> Result<Vec<ArtifactRow>, StoreError> {
        self.read(move |conn| {
            run_status(conn, &run_id)?;
            artifacts_of(conn, &run_id)
        })
        .await
    }

    async fn artifact(&self, id: String) -> Result<ArtifactRow, StoreError> {
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

    async fn delete_artifact(&self, id: String) -> Result<ArtifactRow, StoreError> {
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

    async fn all_artifacts(&self) -> Result<Vec<ArtifactRow>, StoreError> {
        self.read(|conn| {
            let rows = conn
                .prepare(&format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts"))?
                .query_map([], artifact_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn delete_artifact_rows(&self, ids: Vec<String>) -> Result<usize, StoreError> {
        self.writer()
            .write(move |conn| {
                let mut deleted = 0;
                let mut delete = conn.prepare_cached("DELETE FROM artifacts WHERE id = ?1")?;
                for id in &ids {
                    deleted += delete.execute([id])?;
                }
                Ok(deleted)
            })
            .await
    }
}

pub(super) fn insert_command(
    conn: &Connection,
    command: &NewCommand,
) -> Result<CommandRow, StoreError> {
    let now = now_ms();
    conn.prepare_cached(
        "INSERT INTO commands (id, run_id, command, status, created_by, created_at, kind) \
         VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6)",
    )?
    .execute(params![
        command.id,
        command.run_id,
        command.command,
        command.created_by,
        now,
        command.kind.as_str()
    ])?;
    Ok(CommandRow {
        id: command.id.clone(),
        run_id: command.run_id.clone(),
        kind: command.kind,
        command: command.command.clone(),
        status: CommandStatus::Pending,
        result: None,
        error: None,
        created_by: command.created_by.clone(),
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
