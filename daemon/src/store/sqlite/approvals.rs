//! Approvals: made and resolved by a run's events at ingest, decided by a
//! person with the command that carries the decision, in one transaction.

use async_trait::async_trait;
use claw_proto::agent::{
    ApprovalKind, ApprovalRequest, ApprovalResolved, ApprovalStatus, DecisionScope,
};
use claw_proto::wire::{CommandKind, RunStatus};
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::runs::{insert_command, run_status};
use crate::clock::now_ms;
use crate::store::{
    ApprovalFilter, ApprovalRow, ApprovalStore, Change, NewCommand, NewDecision, StatusChange,
    StoreError,
};

const COLUMNS: &str = "id, run_id, request_id, kind, tool, input, summary, diff, reason, \
     suggestions, status, created_at, expires_at, decided_by, decided_at, scope, message, \
     answers, command_id, \
     COALESCE((SELECT status = 'completed' FROM commands WHERE commands.id = approvals.command_id), 0)";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApprovalRow> {
    let kind: String = row.get(3)?;
    let status: String = row.get(10)?;
    let scope: Option<String> = row.get(15)?;
    Ok(ApprovalRow {
        id: row.get(0)?,
        run_id: row.get(1)?,
        request_id: row.get(2)?,
        kind: match kind.as_str() {
            "question" => ApprovalKind::Question,
            "plan" => ApprovalKind::Plan,
            _ => ApprovalKind::Tool,
        },
        tool: row.get(4)?,
        input: row.get(5)?,
        summary: row.get(6)?,
        diff: row.get(7)?,
        reason: row.get(8)?,
        suggestions: row.get(9)?,
        status: ApprovalStatus::parse(&status).unwrap_or(ApprovalStatus::Pending),
        created_at: row.get(11)?,
        expires_at: row.get(12)?,
        decided_by: row.get(13)?,
        decided_at: row.get(14)?,
        scope: scope.as_deref().and_then(DecisionScope::parse),
        message: row.get(16)?,
        answers: row.get(17)?,
        command_id: row.get(18)?,
        delivered: row.get(19)?,
    })
}

fn by_request(
    conn: &Connection,
    run_id: &str,
    request_id: &str,
) -> Result<Option<ApprovalRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE run_id = ?1 AND request_id = ?2"
        ))?
        .query_row(params![run_id, request_id], from_row)
        .optional()?)
}

fn by_id(conn: &Connection, id: &str) -> Result<ApprovalRow, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("unknown approval {id}")))
}

/// The approval a decision command carries, if `command_id` is one.
pub(super) fn of_command(
    conn: &Connection,
    command_id: &str,
) -> Result<Option<ApprovalRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE command_id = ?1"
        ))?
        .query_row([command_id], from_row)
        .optional()?)
}

/// `waiting` while any approval of a running run is pending, `running`
/// again when none is; the change, if the status changed.
fn settle_run(conn: &Connection, run_id: &str) -> Result<Option<StatusChange>, StoreError> {
    let pending: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM approvals WHERE run_id = ?1 AND status = 'pending')",
        )?
        .query_row([run_id], |r| r.get(0))?;
    let (from, to) = if pending {
        (RunStatus::Running, RunStatus::Waiting)
    } else {
        (RunStatus::Waiting, RunStatus::Running)
    };
    let n = conn
        .prepare_cached("UPDATE runs SET status = ?3 WHERE id = ?1 AND status = ?2")?
        .execute(params![run_id, from.as_str(), to.as_str()])?;
    Ok((n > 0).then(|| StatusChange {
        run_id: run_id.to_owned(),
        status: to,
        exit_code: None,
    }))
}

/// Tells the channels that want it that an agent waits for someone.
fn notify_people(conn: &Connection, row: &ApprovalRow, now: i64) -> Result<(), StoreError> {
    use claw_proto::notify::NotifyKind;
    let run_title = super::notify::run_title(conn, &row.run_id)?;
    let (kind, what) = match row.kind {
        ApprovalKind::Tool => (NotifyKind::Approval, format!("asks to use {}", row.tool)),
        ApprovalKind::Question => (NotifyKind::Question, "asks you a question".to_owned()),
        ApprovalKind::Plan => (NotifyKind::Plan, "has a plan to review".to_owned()),
    };
    super::notify::enqueue(
        conn,
        &crate::store::NotificationDraft {
            kind,
            run_id: row.run_id.clone(),
            title: format!("{run_title}: {what}"),
            run_title,
            tool: Some(row.tool.clone()),
            summary: Some(claw_proto::agent::first_line(&row.summary, 200)),
            approval_id: Some(row.id.clone()),
            path: format!("#/runs/{}/approval/{}", row.run_id, row.id),
        },
        now,
    )?;
    Ok(())
}

/// An `approval_request` event: a new pending approval (once per request
/// id; a resent event changes nothing). Data that is not a request is kept
/// as the event and makes no approval.
pub(super) fn on_request(
    conn: &Connection,
    run_id: &str,
    data: &str,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<Option<StatusChange>, StoreError> {
    let Ok(request) = serde_json::from_str::<ApprovalRequest>(data) else {
        return Ok(None);
    };
    let timeout_ms = i64::try_from(request.timeout_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let suggestions = (!request.suggestions.is_empty())
        .then(|| serde_json::to_string(&request.suggestions).unwrap_or_default());
    let inserted = conn
        .prepare_cached(
            "INSERT INTO approvals (id, run_id, request_id, kind, tool, input, summary, diff, \
             reason, suggestions, status, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11, ?12) \
             ON CONFLICT (run_id, request_id) DO NOTHING",
        )?
        .execute(params![
            uuid::Uuid::new_v4().to_string(),
            run_id,
            request.request_id,
            request.kind.as_str(),
            request.tool,
            request.input.to_string(),
            request.summary,
            request.diff,
            request.reason,
            suggestions,
            now,
            now.saturating_add(timeout_ms),
        ])?;
    if inserted == 0 {
        return Ok(None);
    }
    if let Some(row) = by_request(conn, run_id, &request.request_id)? {
        notify_people(conn, &row, now)?;
        changes.push(Change::Approval(Box::new(row)));
    }
    settle_run(conn, run_id)
}

/// An `approval_resolved` event: what the runner did is what happened. A
/// decision the runner could not apply (the request had expired or been
/// withdrawn) gives way to the runner's word.
pub(super) fn on_resolved(
    conn: &Connection,
    run_id: &str,
    data: &str,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<Option<StatusChange>, StoreError> {
    let Ok(resolved) = serde_json::from_str::<ApprovalResolved>(data) else {
        return Ok(None);
    };
    if resolved.status == ApprovalStatus::Pending {
        return Ok(None);
    }
    let n = conn
        .prepare_cached(
            "UPDATE approvals SET status = ?3, message = COALESCE(?4, message), \
             decided_at = COALESCE(decided_at, ?5) \
             WHERE run_id = ?1 AND request_id = ?2 AND status <> ?3",
        )?
        .execute(params![
            run_id,
            resolved.request_id,
            resolved.status.as_str(),
            resolved.message,
            now
        ])?;
    if n > 0
        && let Some(row) = by_request(conn, run_id, &resolved.request_id)?
    {
        changes.push(Change::Approval(Box::new(row)));
    }
    settle_run(conn, run_id)
}

/// A run that ended leaves nothing to decide: its pending approvals are
/// cancelled.
pub(super) fn cancel_open(
    conn: &Connection,
    run_id: &str,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    let open: Vec<String> = conn
        .prepare_cached("SELECT id FROM approvals WHERE run_id = ?1 AND status = 'pending'")?
        .query_map([run_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in open {
        conn.prepare_cached(
            "UPDATE approvals SET status = 'cancelled', decided_at = ?2, \
             message = COALESCE(message, 'the run ended') WHERE id = ?1",
        )?
        .execute(params![id, now])?;
        changes.push(Change::Approval(Box::new(by_id(conn, &id)?)));
    }
    Ok(())
}

#[async_trait]
impl ApprovalStore for SqliteStore {
    async fn list_approvals(&self, filter: ApprovalFilter) -> Result<Vec<ApprovalRow>, StoreError> {
        self.read(move |conn| {
            // The inbox shows the longest-waiting first; history the newest.
            let order = if filter.status == Some(ApprovalStatus::Pending) {
                "ASC"
            } else {
                "DESC"
            };
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM approvals \
                     WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR run_id = ?2) \
                     ORDER BY created_at {order}, rowid {order} LIMIT ?3"
                ))?
                .query_map(
                    params![
                        filter.status.map(ApprovalStatus::as_str),
                        filter.run_id,
                        filter.limit
                    ],
                    from_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn approval(&self, id: String) -> Result<ApprovalRow, StoreError> {
        self.read(move |conn| by_id(conn, &id)).await
    }

    async fn decide(&self, decision: NewDecision) -> Result<ApprovalRow, StoreError> {
        self.writer()
            .write_changes(move |conn, changes| {
                let row = by_id(conn, &decision.approval_id)?;
                if row.status != ApprovalStatus::Pending {
                    return Err(StoreError::Conflict(row.why_closed()));
                }
                let status = run_status(conn, &row.run_id)?;
                if status.is_finished() {
                    return Err(StoreError::Conflict(format!(
                        "run {} is {}: its agent has ended",
                        row.run_id,
                        status.as_str()
                    )));
                }
                let command = insert_command(
                    conn,
                    &NewCommand {
                        id: decision.command_id.clone(),
                        run_id: row.run_id.clone(),
                        kind: CommandKind::Decision,
                        command: decision.command.clone(),
                        created_by: Some(decision.decided_by.clone()),
                    },
                )?;
                let outcome = if decision.allow {
                    ApprovalStatus::Allowed
                } else {
                    ApprovalStatus::Denied
                };
                conn.prepare_cached(
                    "UPDATE approvals SET status = ?2, decided_by = ?3, decided_at = ?4, \
                     scope = ?5, message = ?6, answers = ?7, command_id = ?8 \
                     WHERE id = ?1 AND status = 'pending'",
                )?
                .execute(params![
                    row.id,
                    outcome.as_str(),
                    decision.decided_by,
                    now_ms(),
                    decision.scope.as_str(),
                    decision.message,
                    decision.answers,
                    decision.command_id
                ])?;
                let decided = by_id(conn, &row.id)?;
                changes.push(Change::CommandQueued(command));
                changes.push(Change::Approval(Box::new(decided.clone())));
                if let Some(change) = settle_run(conn, &row.run_id)? {
                    changes.push(Change::RunStatus(change));
                }
                Ok(decided)
            })
            .await
    }
}
