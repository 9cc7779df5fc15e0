//! Runs, events, commands and artifacts on PostgreSQL.
//!
//! At ingest, in the transaction that stores the events (as
//! sqlite/runs.rs): `approval_request` and `approval_resolved` events make
//! and resolve approvals, a run that ends cancels its open ones and queues
//! its `run_ended` notifications (approvals.rs, notify.rs); a run stopped
//! before it started queues them too, and an acknowledged decision command
//! announces its approval (now delivered).

use std::collections::HashMap;

use async_trait::async_trait;
use claw_proto::agent::{AgentKind, PermissionMode, SessionStarted};
use claw_proto::allowlist::STOP_COMMAND;
use claw_proto::api::CommandStatus;
use claw_proto::wire::{CommandKind, EventType, Marker, RunStatus};
use deadpool_postgres::GenericClient;
use subtle::ConstantTimeEq;
use tokio_postgres::Row;

use super::{PgStore, approvals, big, notify, unbig};
use crate::clock::now_ms;
use crate::store::{
    ArtifactIndex, ArtifactRow, Change, CommandOutcome, CommandRow, CommandStore, EventRow,
    Ingested, NewArtifact, NewCommand, NewEvent, NewRun, RunFilter, RunRow, RunStore, RunnerAuth,
    StatusChange, StoreError, status_at_finish, token_hash,
};

const RUN_COLUMNS: &str = "id, status, command, metadata, created_by, created_at, started_at, \
     finished_at, exit_code, stop_requested_at, \
     (SELECT COALESCE(MAX(sequence), 0) FROM events WHERE run_id = runs.id), \
     agent, model, permission_mode, allowed_tools, agent_session_id, approval_timeout_secs, \
     host_id, workspace";

fn run_from_row(row: &Row) -> RunRow {
    let status: String = row.get(1);
    let agent: Option<String> = row.get(11);
    let mode: Option<String> = row.get(13);
    let tools: Option<String> = row.get(14);
    let timeout: Option<i64> = row.get(16);
    RunRow {
        id: row.get(0),
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        command: row.get(2),
        metadata: row.get(3),
        created_by: row.get(4),
        created_at: row.get(5),
        started_at: row.get(6),
        finished_at: row.get(7),
        exit_code: row.get(8),
        stop_requested_at: row.get(9),
        event_count: unbig(row.get(10)),
        agent: agent.as_deref().and_then(AgentKind::parse),
        model: row.get(12),
        permission_mode: mode.as_deref().and_then(PermissionMode::parse),
        allowed_tools: tools
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default(),
        agent_session_id: row.get(15),
        approval_timeout_secs: timeout.map(unbig),
        host_id: row.get(17),
        workspace: row.get(18),
    }
}

fn event_from_row(row: &Row) -> EventRow {
    let kind: String = row.get(2);
    EventRow {
        id: row.get(0),
        run_id: row.get(1),
        kind: EventType::parse(&kind).unwrap_or(EventType::Info),
        data: row.get(3),
        timestamp: row.get(4),
        sequence: unbig(row.get(5)),
    }
}

const COMMAND_COLUMNS: &str =
    "id, run_id, command, status, result, error, created_by, created_at, completed_at, kind";

fn command_from_row(row: &Row) -> CommandRow {
    let status: String = row.get(3);
    let kind: String = row.get(9);
    CommandRow {
        id: row.get(0),
        run_id: row.get(1),
        command: row.get(2),
        // An unreadable status reads as delivered: seen, not answered.
        status: CommandStatus::parse(&status).unwrap_or(CommandStatus::Delivered),
        result: row.get(4),
        error: row.get(5),
        created_by: row.get(6),
        created_at: row.get(7),
        completed_at: row.get(8),
        kind: CommandKind::parse(&kind).unwrap_or_default(),
    }
}

const ARTIFACT_COLUMNS: &str = "id, run_id, filename, path, size, content_type, created_at";

fn artifact_from_row(row: &Row) -> ArtifactRow {
    ArtifactRow {
        id: row.get(0),
        run_id: row.get(1),
        filename: row.get(2),
        path: row.get(3),
        size: unbig(row.get(4)),
        content_type: row.get(5),
        created_at: row.get(6),
    }
}

async fn get_run(conn: &impl GenericClient, id: &str) -> Result<RunRow, StoreError> {
    let stmt = conn
        .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
        .await?;
    conn.query_opt(&stmt, &[&id])
        .await?
        .map(|r| run_from_row(&r))
        .ok_or_else(|| StoreError::NotFound(format!("unknown run {id}")))
}

/// Events of a run with a sequence in `first..=last`, in order (what
/// another instance announced it stored).
pub(super) async fn events_between(
    conn: &impl GenericClient,
    run_id: &str,
    first: u64,
    last: u64,
) -> Result<Vec<EventRow>, StoreError> {
    let stmt = conn
        .prepare_cached(
            "SELECT id, run_id, type, data, timestamp, sequence FROM events \
             WHERE run_id = $1 AND sequence BETWEEN $2 AND $3 ORDER BY sequence",
        )
        .await?;
    let rows = conn
        .query(&stmt, &[&run_id, &big(first), &big(last)])
        .await?;
    Ok(rows.iter().map(event_from_row).collect())
}

/// One command by its id.
pub(super) async fn command_by_id(
    conn: &impl GenericClient,
    id: &str,
) -> Result<CommandRow, StoreError> {
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {COMMAND_COLUMNS} FROM commands WHERE id = $1"
        ))
        .await?;
    conn.query_opt(&stmt, &[&id])
        .await?
        .map(|r| command_from_row(&r))
        .ok_or_else(|| StoreError::NotFound(format!("unknown command {id}")))
}

/// The run's status; with `lock`, its row is locked for the transaction
/// (`FOR NO KEY UPDATE`: rows that refer to it may still be added).
pub(super) async fn run_status(
    conn: &impl GenericClient,
    id: &str,
    lock: bool,
) -> Result<RunStatus, StoreError> {
    let sql = if lock {
        "SELECT status FROM runs WHERE id = $1 FOR NO KEY UPDATE"
    } else {
        "SELECT status FROM runs WHERE id = $1"
    };
    let stmt = conn.prepare_cached(sql).await?;
    conn.query_opt(&stmt, &[&id])
        .await?
        .and_then(|r| RunStatus::parse(&r.get::<_, String>(0)))
        .ok_or_else(|| StoreError::NotFound(format!("unknown run {id}")))
}

/// Checks the run, its token and the nonce inside the caller's
/// transaction, so a refused request leaves nothing behind. The run's row
/// stays locked to the end of the transaction: requests of one run are
/// serialised over every instance.
async fn check_runner(conn: &impl GenericClient, auth: &RunnerAuth) -> Result<(), StoreError> {
    let stmt = conn
        .prepare_cached("SELECT capability_token_hash FROM runs WHERE id = $1 FOR NO KEY UPDATE")
        .await?;
    let Some(row) = conn.query_opt(&stmt, &[&auth.run_id]).await? else {
        return Err(StoreError::NotFound(format!("unknown run {}", auth.run_id)));
    };
    let stored: String = row.get(0);
    let presented = token_hash(&auth.capability_token);
    if !bool::from(presented.as_bytes().ct_eq(stored.as_bytes())) {
        return Err(StoreError::WrongToken);
    }
    check_nonce(conn, auth).await
}

/// Records the nonce; refused when any transaction, on any instance,
/// recorded it before. A concurrent one waits for the first to commit
/// (then it is a replay) or roll back (then it is not).
pub(super) async fn check_nonce(
    conn: &impl GenericClient,
    auth: &RunnerAuth,
) -> Result<(), StoreError> {
    let stmt = conn
        .prepare_cached(
            "INSERT INTO nonces (timestamp, nonce) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .await?;
    if conn.execute(&stmt, &[&auth.timestamp, &auth.nonce]).await? == 0 {
        return Err(StoreError::Replay);
    }
    Ok(())
}

/// Stores a runner's events; the run's row is locked and the nonce
/// recorded already. All new events go in with one statement.
async fn ingest(
    conn: &impl GenericClient,
    run_id: &str,
    events: Vec<NewEvent>,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<Ingested, StoreError> {
    let stmt = conn
        .prepare_cached("SELECT COALESCE(MAX(sequence), 0) + 1 FROM events WHERE run_id = $1")
        .await?;
    let mut next = unbig(conn.query_one(&stmt, &[&run_id]).await?.get(0));
    // Each event's sequence, and whether this request stores it.
    let mut plan = Vec::with_capacity(events.len());
    for event in &events {
        let sequence = event.sequence.filter(|s| *s > 0).unwrap_or(next);
        if sequence > next {
            return Err(StoreError::SequenceGap {
                run_id: run_id.to_owned(),
                sequence,
                next,
            });
        }
        let new = sequence == next;
        if new {
            next += 1;
        }
        plan.push((sequence, new));
    }
    let mut kinds = Vec::new();
    let mut datas = Vec::new();
    let mut sequences = Vec::new();
    for (event, (sequence, new)) in events.iter().zip(&plan) {
        if *new {
            kinds.push(event.kind.as_str());
            datas.push(event.data.as_str());
            sequences.push(big(*sequence));
        }
    }
    let mut ids: HashMap<u64, i64> = HashMap::with_capacity(events.len());
    if !sequences.is_empty() {
        let insert = conn
            .prepare_cached(
                "INSERT INTO events (run_id, type, data, timestamp, sequence) \
                 SELECT $1, k, d, $2, s FROM unnest($3::text[], $4::text[], $5::bigint[]) \
                 WITH ORDINALITY AS e(k, d, s, n) ORDER BY n \
                 ON CONFLICT (run_id, sequence) DO NOTHING RETURNING id, sequence",
            )
            .await?;
        for row in conn
            .query(&insert, &[&run_id, &now, &kinds, &datas, &sequences])
            .await?
        {
            ids.insert(unbig(row.get(1)), row.get(0));
        }
    }
    // Resends (and, were the run's row not locked, a sequence another
    // transaction stored first) answer with the stored ids.
    let missing: Vec<i64> = plan
        .iter()
        .filter(|(s, _)| !ids.contains_key(s))
        .map(|(s, _)| big(*s))
        .collect();
    let mut stored_before = std::collections::HashSet::new();
    if !missing.is_empty() {
        let lookup = conn
            .prepare_cached(
                "SELECT sequence, id FROM events WHERE run_id = $1 AND sequence = ANY($2)",
            )
            .await?;
        for row in conn.query(&lookup, &[&run_id, &missing]).await? {
            let sequence = unbig(row.get(0));
            stored_before.insert(sequence);
            ids.insert(sequence, row.get(1));
        }
    }
    let mut out = Ingested {
        ids: Vec::with_capacity(events.len()),
        status_change: None,
    };
    let mut stored = Vec::new();
    for (event, (sequence, new)) in events.into_iter().zip(plan) {
        let Some(&id) = ids.get(&sequence) else {
            return Err(StoreError::Unavailable(format!(
                "event {sequence} of run {run_id} was neither stored nor found"
            )));
        };
        out.ids.push(id);
        if !new || stored_before.contains(&sequence) {
            continue;
        }
        let change = match event.kind {
            EventType::Marker => {
                let change = apply_marker(conn, run_id, &event.data, now).await?;
                if let Some(ended) = change.as_ref().filter(|c| c.status.is_finished()) {
                    approvals::cancel_open(conn, run_id, now, changes).await?;
                    notify::run_ended(conn, run_id, ended.status, ended.exit_code, now).await?;
                }
                change
            }
            EventType::ApprovalRequest => {
                approvals::on_request(conn, run_id, &event.data, now, changes).await?
            }
            EventType::ApprovalResolved => {
                approvals::on_resolved(conn, run_id, &event.data, now, changes).await?
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
            let stmt = conn
                .prepare_cached("UPDATE runs SET agent_session_id = $2 WHERE id = $1")
                .await?;
            conn.execute(&stmt, &[&run_id, &session_id]).await?;
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

async fn apply_marker(
    conn: &impl GenericClient,
    run_id: &str,
    data: &str,
    now: i64,
) -> Result<Option<StatusChange>, StoreError> {
    let change = match Marker::parse(data) {
        Some(Marker::Started { .. }) => {
            let n = conn
                .execute(
                    "UPDATE runs SET status = 'running', started_at = $2 \
                     WHERE id = $1 AND status = 'pending'",
                    &[&run_id, &now],
                )
                .await?;
            (n > 0).then(|| StatusChange {
                run_id: run_id.to_owned(),
                status: RunStatus::Running,
                exit_code: None,
            })
        }
        Some(Marker::Finished { exit_code, .. }) => {
            let stop_requested: Option<i64> = conn
                .query_one(
                    "SELECT stop_requested_at FROM runs WHERE id = $1",
                    &[&run_id],
                )
                .await?
                .get(0);
            let status = status_at_finish(stop_requested.is_some(), exit_code);
            let n = conn
                .execute(
                    "UPDATE runs SET status = $2, exit_code = $3, finished_at = $4, \
                     started_at = COALESCE(started_at, $4) \
                     WHERE id = $1 AND status IN ('pending', 'running', 'waiting')",
                    &[&run_id, &status.as_str(), &exit_code, &now],
                )
                .await?;
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

pub(super) async fn insert_command(
    conn: &impl GenericClient,
    command: &NewCommand,
) -> Result<CommandRow, StoreError> {
    let now = now_ms();
    let stmt = conn
        .prepare_cached(
            "INSERT INTO commands (id, run_id, command, status, created_by, created_at, kind) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $6)",
        )
        .await?;
    conn.execute(
        &stmt,
        &[
            &command.id,
            &command.run_id,
            &command.command,
            &command.created_by,
            &now,
            &command.kind.as_str(),
        ],
    )
    .await?;
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

async fn artifacts_of(
    conn: &impl GenericClient,
    run_id: &str,
) -> Result<Vec<ArtifactRow>, StoreError> {
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = $1 ORDER BY created_at, added"
        ))
        .await?;
    Ok(conn
        .query(&stmt, &[&run_id])
        .await?
        .iter()
        .map(artifact_from_row)
        .collect())
}

#[async_trait]
impl RunStore for PgStore {
    async fn runner_ingest(
        &self,
        auth: RunnerAuth,
        events: Vec<NewEvent>,
    ) -> Result<Ingested, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let mut changes = Vec::new();
        check_runner(&tx, &auth).await?;
        let ingested = ingest(&tx, &auth.run_id, events, now_ms(), &mut changes).await?;
        self.commit(tx, changes).await?;
        Ok(ingested)
    }

    async fn runner_check(&self, auth: RunnerAuth) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        check_runner(&tx, &auth).await?;
        self.commit(tx, Vec::new()).await
    }

    async fn create_run(&self, run: NewRun) -> Result<RunRow, StoreError> {
        let hash = token_hash(&run.capability_token);
        let tools = (!run.agent.allowed_tools.is_empty())
            .then(|| serde_json::to_string(&run.agent.allowed_tools).unwrap_or_default());
        let timeout = run.agent.approval_timeout_secs.map(big);
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let inserted = tx
            .execute(
                "INSERT INTO runs (id, status, command, metadata, capability_token_hash, \
                 created_by, created_at, agent, model, permission_mode, allowed_tools, \
                 approval_timeout_secs, host_id, workspace) \
                 VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &run.id,
                    &run.command,
                    &run.metadata,
                    &hash,
                    &run.created_by,
                    &now_ms(),
                    &run.agent.agent.map(AgentKind::as_str),
                    &run.agent.model,
                    &run.agent.permission_mode.map(PermissionMode::as_str),
                    &tools,
                    &timeout,
                    &run.host_id,
                    &run.workspace,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::Constraint(format!(
                "a run with id {} exists",
                run.id
            )));
        }
        if let Some(prompt) = &run.first_prompt {
            insert_command(&tx, prompt).await?;
        }
        let row = get_run(&tx, &run.id).await?;
        self.commit(tx, Vec::new()).await?;
        Ok(row)
    }

    async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunRow>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs \
                 WHERE ($1::text IS NULL OR status = $1) \
                 AND ($2::bigint IS NULL OR created_at < $2 \
                      OR (created_at = $2 AND id < $5::text)) \
                 AND ($4::bigint IS NULL OR created_at >= $4) \
                 ORDER BY created_at DESC, id DESC LIMIT $3"
            ))
            .await?;
        let rows = conn
            .query(
                &stmt,
                &[
                    &filter.status.map(RunStatus::as_str),
                    &filter.before,
                    &i64::from(filter.limit),
                    &filter.since,
                    &filter.before_id,
                ],
            )
            .await?;
        Ok(rows.iter().map(run_from_row).collect())
    }

    async fn run(&self, id: String) -> Result<RunRow, StoreError> {
        let conn = self.conn().await?;
        get_run(&conn, &id).await
    }

    async fn events_after(
        &self,
        run_id: String,
        after: u64,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        let conn = self.conn().await?;
        run_status(&conn, &run_id, false).await?;
        let stmt = conn
            .prepare_cached(
                "SELECT id, run_id, type, data, timestamp, sequence FROM events \
                 WHERE run_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
            )
            .await?;
        let rows = conn
            .query(&stmt, &[&run_id, &big(after), &i64::from(limit)])
            .await?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    async fn request_stop(
        &self,
        run_id: String,
        command_id: String,
        created_by: Option<String>,
    ) -> Result<CommandRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let mut changes = Vec::new();
        let status = run_status(&tx, &run_id, true).await?;
        if status.is_finished() {
            return Err(StoreError::Conflict(format!(
                "run {run_id} has already ended ({})",
                status.as_str()
            )));
        }
        let now = now_ms();
        let stopped_at_once = status == RunStatus::Pending;
        if stopped_at_once {
            tx.execute(
                "UPDATE runs SET status = 'stopped', stop_requested_at = $2, finished_at = $2 \
                 WHERE id = $1",
                &[&run_id, &now],
            )
            .await?;
        } else {
            tx.execute(
                "UPDATE runs SET stop_requested_at = COALESCE(stop_requested_at, $2) WHERE id = $1",
                &[&run_id, &now],
            )
            .await?;
        }
        let row = insert_command(
            &tx,
            &NewCommand {
                id: command_id,
                run_id: run_id.clone(),
                kind: CommandKind::Command,
                command: STOP_COMMAND.to_owned(),
                created_by,
            },
        )
        .await?;
        changes.push(Change::StopRequested {
            run_id: run_id.clone(),
            command_id: row.id.clone(),
        });
        if stopped_at_once {
            notify::run_ended(&tx, &run_id, RunStatus::Stopped, None, now_ms()).await?;
            changes.push(Change::RunStatus(StatusChange {
                run_id,
                status: RunStatus::Stopped,
                exit_code: None,
            }));
        }
        self.commit(tx, changes).await?;
        Ok(row)
    }

    async fn delete_run(&self, run_id: String) -> Result<Vec<ArtifactRow>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        run_status(&tx, &run_id, true).await?;
        let artifacts = artifacts_of(&tx, &run_id).await?;
        tx.execute("DELETE FROM runs WHERE id = $1", &[&run_id])
            .await?;
        self.commit(tx, Vec::new()).await?;
        Ok(artifacts)
    }

    async fn run_counts(&self) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query("SELECT status, COUNT(*) FROM runs GROUP BY status", &[])
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| RunStatus::parse(&r.get::<_, String>(0)).map(|s| (s, unbig(r.get(1)))))
            .collect())
    }
}

#[async_trait]
impl CommandStore for PgStore {
    async fn queue_command(&self, command: NewCommand) -> Result<CommandRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // Locked: a run that ends meanwhile does not get the command.
        let status = run_status(&tx, &command.run_id, true).await?;
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
        let row = insert_command(&tx, &command).await?;
        self.commit(tx, vec![Change::CommandQueued(row.clone())])
            .await?;
        Ok(row)
    }

    async fn reopen_run(&self, token: String, prompt: NewCommand) -> Result<RunRow, StoreError> {
        let hash = token_hash(&token);
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        run_status(&tx, &prompt.run_id, true).await?;
        let before = get_run(&tx, &prompt.run_id).await?;
        if !before.status.is_finished() {
            return Err(StoreError::Conflict(format!(
                "run {} is {}, not finished",
                before.id,
                before.status.as_str()
            )));
        }
        tx.execute(
            "UPDATE runs SET status = 'pending', finished_at = NULL, exit_code = NULL, \
             stop_requested_at = NULL, runner_lost_at = NULL, capability_token_hash = $2 \
             WHERE id = $1",
            &[&before.id, &hash],
        )
        .await?;
        let row = insert_command(&tx, &prompt).await?;
        let changes = vec![
            Change::RunStatus(StatusChange {
                run_id: before.id.clone(),
                status: RunStatus::Pending,
                exit_code: None,
            }),
            Change::CommandQueued(row),
        ];
        self.commit(tx, changes).await?;
        Ok(before)
    }

    async fn restore_run(&self, before: RunRow, prompt_id: String) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute(
            "DELETE FROM commands WHERE id = $1 AND run_id = $2",
            &[&prompt_id, &before.id],
        )
        .await?;
        let n = tx
            .execute(
                "UPDATE runs SET status = $2, finished_at = $3, exit_code = $4, \
                 stop_requested_at = $5 WHERE id = $1 AND status = 'pending'",
                &[
                    &before.id,
                    &before.status.as_str(),
                    &before.finished_at,
                    &before.exit_code,
                    &before.stop_requested_at,
                ],
            )
            .await?;
        let mut changes = Vec::new();
        if n > 0 {
            changes.push(Change::RunStatus(StatusChange {
                run_id: before.id.clone(),
                status: before.status,
                exit_code: before.exit_code,
            }));
        }
        self.commit(tx, changes).await
    }

    async fn list_commands(&self, run_id: String) -> Result<Vec<CommandRow>, StoreError> {
        let conn = self.conn().await?;
        run_status(&conn, &run_id, false).await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {COMMAND_COLUMNS} FROM commands WHERE run_id = $1 ORDER BY created_at, queued"
            ))
            .await?;
        Ok(conn
            .query(&stmt, &[&run_id])
            .await?
            .iter()
            .map(command_from_row)
            .collect())
    }

    async fn runner_pending_commands(
        &self,
        auth: RunnerAuth,
    ) -> Result<Vec<CommandRow>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        check_runner(&tx, &auth).await?;
        // An agent run's commands come again until answered (sqlite/runs.rs).
        let stmt = tx
            .prepare_cached(&format!(
                "SELECT {COMMAND_COLUMNS} FROM commands WHERE run_id = $1 AND (status = 'pending' \
                 OR (status = 'delivered' AND (SELECT agent FROM runs WHERE id = $1) IS NOT NULL)) \
                 ORDER BY created_at, queued"
            ))
            .await?;
        let rows: Vec<CommandRow> = tx
            .query(&stmt, &[&auth.run_id])
            .await?
            .iter()
            .map(command_from_row)
            .collect();
        let update = tx
            .prepare_cached(
                "UPDATE commands SET status = 'delivered' WHERE run_id = $1 AND status = 'pending'",
            )
            .await?;
        tx.execute(&update, &[&auth.run_id]).await?;
        self.commit(tx, Vec::new()).await?;
        Ok(rows)
    }

    async fn runner_ack_command(
        &self,
        auth: RunnerAuth,
        ack: CommandOutcome,
    ) -> Result<Option<CommandRow>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let now = now_ms();
        check_runner(&tx, &auth).await?;
        let status = if ack.error.is_some() {
            CommandStatus::Failed
        } else {
            CommandStatus::Completed
        };
        let changed = tx
            .execute(
                "UPDATE commands SET status = $3, result = $4, error = $5, completed_at = $6 \
                 WHERE id = $1 AND run_id = $2 AND status IN ('pending', 'delivered')",
                &[
                    &ack.command_id,
                    &auth.run_id,
                    &status.as_str(),
                    &ack.result,
                    &ack.error,
                    &now,
                ],
            )
            .await?;
        let row = tx
            .query_opt(
                &format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE id = $1 AND run_id = $2"),
                &[&ack.command_id, &auth.run_id],
            )
            .await?
            .map(|r| command_from_row(&r))
            .ok_or_else(|| StoreError::NotFound(format!("unknown command {}", ack.command_id)))?;
        if changed == 0 {
            self.commit(tx, Vec::new()).await?;
            return Ok(None);
        }
        let mut changes = vec![Change::CommandCompleted(row.clone())];
        if row.kind == CommandKind::Decision
            && let Some(approval) = approvals::of_command(&tx, &row.id).await?
        {
            changes.push(Change::Approval(Box::new(approval)));
        }
        self.commit(tx, changes).await?;
        Ok(Some(row))
    }
}

#[async_trait]
impl ArtifactIndex for PgStore {
    async fn runner_add_artifact(
        &self,
        auth: RunnerAuth,
        artifact: NewArtifact,
    ) -> Result<ArtifactRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let now = now_ms();
        check_runner(&tx, &auth).await?;
        tx.execute(
            "INSERT INTO artifacts (id, run_id, filename, path, size, content_type, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &artifact.id,
                &auth.run_id,
                &artifact.filename,
                &artifact.path,
                &big(artifact.size),
                &artifact.content_type,
                &now,
            ],
        )
        .await?;
        let row = ArtifactRow {
            id: artifact.id,
            run_id: auth.run_id,
            filename: artifact.filename,
            path: artifact.path,
            size: artifact.size,
            content_type: artifact.content_type,
            created_at: now,
        };
        self.commit(tx, vec![Change::ArtifactAdded(row.clone())])
            .await?;
        Ok(row)
    }

    async fn list_artifacts(&self, run_id: String) -> Result<Vec<ArtifactRow>, StoreError> {
        let conn = self.conn().await?;
        run_status(&conn, &run_id, false).await?;
        artifacts_of(&conn, &run_id).await
    }

    async fn artifact(&self, id: String) -> Result<ArtifactRow, StoreError> {
        let conn = self.conn().await?;
        conn.query_opt(
            &format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE id = $1"),
            &[&id],
        )
        .await?
        .map(|r| artifact_from_row(&r))
        .ok_or_else(|| StoreError::NotFound(format!("unknown artifact {id}")))
    }

    async fn delete_artifact(&self, id: String) -> Result<ArtifactRow, StoreError> {
        let conn = self.conn().await?;
        conn.query_opt(
            &format!("DELETE FROM artifacts WHERE id = $1 RETURNING {ARTIFACT_COLUMNS}"),
            &[&id],
        )
        .await?
        .map(|r| artifact_from_row(&r))
        .ok_or_else(|| StoreError::NotFound(format!("unknown artifact {id}")))
    }

    async fn all_artifacts(&self) -> Result<Vec<ArtifactRow>, StoreError> {
        let conn = self.conn().await?;
        Ok(conn
            .query(&format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts"), &[])
            .await?
            .iter()
            .map(artifact_from_row)
            .collect())
    }

    async fn delete_artifact_rows(&self, ids: Vec<String>) -> Result<usize, StoreError> {
        let conn = self.conn().await?;
        let n = conn
            .execute("DELETE FROM artifacts WHERE id = ANY($1)", &[&ids])
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
