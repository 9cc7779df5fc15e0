//! Approvals on PostgreSQL: made and resolved by a run's events at ingest,
//! decided by a person with the command that carries the decision, in one
//! transaction (as sqlite/approvals.rs).
//!
//! Every write to a run's approvals holds the run's row lock first (an
//! ingest takes it in `check_runner`, a decision in [`ApprovalStore::decide`]),
//! so over every instance one decision wins and a run that ends and a
//! decision on it are serialised, always in the same lock order.
//!
//! One difference from SQLite: approvals made in the same millisecond are
//! listed in the order of their ids, not of their making (the schema has no
//! insertion-order column for them, as `queued` is for commands).

use async_trait::async_trait;
use claw_proto::agent::{
    ApprovalKind, ApprovalRequest, ApprovalResolved, ApprovalStatus, DecisionScope,
};
use claw_proto::wire::{CommandKind, RunStatus};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::PgStore;
use super::runs::{insert_command, run_status};
use crate::clock::now_ms;
use crate::store::{
    ApprovalFilter, ApprovalRow, ApprovalStore, Change, NewCommand, NewDecision, NotificationDraft,
    StatusChange, StoreError,
};

const COLUMNS: &str = "id, run_id, request_id, kind, tool, input, summary, diff, reason, \
     suggestions, status, created_at, expires_at, decided_by, decided_at, scope, message, \
     answers, command_id, \
     COALESCE((SELECT status = 'completed' FROM commands WHERE commands.id = approvals.command_id), \
     FALSE)";

fn from_row(row: &Row) -> ApprovalRow {
    let kind: String = row.get(3);
    let status: String = row.get(10);
    let scope: Option<String> = row.get(15);
    ApprovalRow {
        id: row.get(0),
        run_id: row.get(1),
        request_id: row.get(2),
        kind: match kind.as_str() {
            "question" => ApprovalKind::Question,
            "plan" => ApprovalKind::Plan,
            _ => ApprovalKind::Tool,
        },
        tool: row.get(4),
        input: row.get(5),
        summary: row.get(6),
        diff: row.get(7),
        reason: row.get(8),
        suggestions: row.get(9),
        status: ApprovalStatus::parse(&status).unwrap_or(ApprovalStatus::Pending),
        created_at: row.get(11),
        expires_at: row.get(12),
        decided_by: row.get(13),
        decided_at: row.get(14),
        scope: scope.as_deref().and_then(DecisionScope::parse),
        message: row.get(16),
        answers: row.get(17),
        command_id: row.get(18),
        delivered: row.get(19),
    }
}

async fn by_request(
    conn: &impl GenericClient,
    run_id: &str,
    request_id: &str,
) -> Result<Option<ApprovalRow>, StoreError> {
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE run_id = $1 AND request_id = $2"
        ))
        .await?;
    Ok(conn
        .query_opt(&stmt, &[&run_id, &request_id])
        .await?
        .map(|r| from_row(&r)))
}

async fn by_id(conn: &impl GenericClient, id: &str) -> Result<ApprovalRow, StoreError> {
    let stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"))
        .await?;
    conn.query_opt(&stmt, &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| StoreError::NotFound(format!("unknown approval {id}")))
}

/// The approval a decision command carries, if `command_id` is one.
pub(super) async fn of_command(
    conn: &impl GenericClient,
    command_id: &str,
) -> Result<Option<ApprovalRow>, StoreError> {
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE command_id = $1"
        ))
        .await?;
    Ok(conn
        .query_opt(&stmt, &[&command_id])
        .await?
        .map(|r| from_row(&r)))
}

/// `waiting` while any approval of a running run is pending, `running`
/// again when none is; the change, if the status changed.
async fn settle_run(
    conn: &impl GenericClient,
    run_id: &str,
) -> Result<Option<StatusChange>, StoreError> {
    let stmt = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM approvals WHERE run_id = $1 AND status = 'pending')",
        )
        .await?;
    let pending: bool = conn.query_one(&stmt, &[&run_id]).await?.get(0);
    let (from, to) = if pending {
        (RunStatus::Running, RunStatus::Waiting)
    } else {
        (RunStatus::Waiting, RunStatus::Running)
    };
    let stmt = conn
        .prepare_cached("UPDATE runs SET status = $3 WHERE id = $1 AND status = $2")
        .await?;
    let n = conn
        .execute(&stmt, &[&run_id, &from.as_str(), &to.as_str()])
        .await?;
    Ok((n > 0).then(|| StatusChange {
        run_id: run_id.to_owned(),
        status: to,
        exit_code: None,
    }))
}

/// Tells the channels that want it that an agent waits for someone.
async fn notify_people(
    conn: &impl GenericClient,
    row: &ApprovalRow,
    now: i64,
) -> Result<(), StoreError> {
    use claw_proto::notify::NotifyKind;
    let run_title = super::notify::run_title(conn, &row.run_id).await?;
    let (kind, what) = match row.kind {
        ApprovalKind::Tool => (NotifyKind::Approval, format!("asks to use {}", row.tool)),
        ApprovalKind::Question => (NotifyKind::Question, "asks you a question".to_owned()),
        ApprovalKind::Plan => (NotifyKind::Plan, "has a plan to review".to_owned()),
    };
    super::notify::enqueue(
        conn,
        &NotificationDraft {
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
    )
    .await?;
    Ok(())
}

/// An `approval_request` event: a new pending approval (once per request
/// id; a resent event changes nothing). Data that is not a request is kept
/// as the event and makes no approval.
pub(super) async fn on_request(
    conn: &impl GenericClient,
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
    let stmt = conn
        .prepare_cached(
            "INSERT INTO approvals (id, run_id, request_id, kind, tool, input, summary, diff, \
             reason, suggestions, status, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12) \
             ON CONFLICT (run_id, request_id) DO NOTHING",
        )
        .await?;
    let inserted = conn
        .execute(
            &stmt,
            &[
                &uuid::Uuid::new_v4().to_string(),
                &run_id,
                &request.request_id,
                &request.kind.as_str(),
                &request.tool,
                &request.input.to_string(),
                &request.summary,
                &request.diff,
                &request.reason,
                &suggestions,
                &now,
                &now.saturating_add(timeout_ms),
            ],
        )
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    if let Some(row) = by_request(conn, run_id, &request.request_id).await? {
        notify_people(conn, &row, now).await?;
        changes.push(Change::Approval(Box::new(row)));
    }
    settle_run(conn, run_id).await
}

/// An `approval_resolved` event: what the runner did is what happened. A
/// decision the runner could not apply (the request had expired or been
/// withdrawn) gives way to the runner's word.
pub(super) async fn on_resolved(
    conn: &impl GenericClient,
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
    let stmt = conn
        .prepare_cached(
            "UPDATE approvals SET status = $3, message = COALESCE($4, message), \
             decided_at = COALESCE(decided_at, $5) \
             WHERE run_id = $1 AND request_id = $2 AND status <> $3",
        )
        .await?;
    let n = conn
        .execute(
            &stmt,
            &[
                &run_id,
                &resolved.request_id,
                &resolved.status.as_str(),
                &resolved.message,
                &now,
            ],
        )
        .await?;
    if n > 0
        && let Some(row) = by_request(conn, run_id, &resolved.request_id).await?
    {
        changes.push(Change::Approval(Box::new(row)));
    }
    settle_run(conn, run_id).await
}

/// A run that ended leaves nothing to decide: its pending approvals are
/// cancelled, in the order they were made.
pub(super) async fn cancel_open(
    conn: &impl GenericClient,
    run_id: &str,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    let stmt = conn
        .prepare_cached(
            "SELECT id FROM approvals WHERE run_id = $1 AND status = 'pending' \
             ORDER BY created_at, position",
        )
        .await?;
    let open: Vec<String> = conn
        .query(&stmt, &[&run_id])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let update = conn
        .prepare_cached(
            "UPDATE approvals SET status = 'cancelled', decided_at = $2, \
             message = COALESCE(message, 'the run ended') WHERE id = $1",
        )
        .await?;
    for id in open {
        conn.execute(&update, &[&id, &now]).await?;
        changes.push(Change::Approval(Box::new(by_id(conn, &id).await?)));
    }
    Ok(())
}

#[async_trait]
impl ApprovalStore for PgStore {
    async fn list_approvals(&self, filter: ApprovalFilter) -> Result<Vec<ApprovalRow>, StoreError> {
        // The inbox shows the longest-waiting first; history the newest.
        let order = if filter.status == Some(ApprovalStatus::Pending) {
            "ASC"
        } else {
            "DESC"
        };
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM approvals \
                 WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR run_id = $2) \
                 ORDER BY created_at {order}, position {order} LIMIT $3"
            ))
            .await?;
        let rows = conn
            .query(
                &stmt,
                &[
                    &filter.status.map(ApprovalStatus::as_str),
                    &filter.run_id,
                    &i64::from(filter.limit),
                ],
            )
            .await?;
        Ok(rows.iter().map(from_row).collect())
    }

    async fn approval(&self, id: String) -> Result<ApprovalRow, StoreError> {
        let conn = self.conn().await?;
        by_id(&conn, &id).await
    }

    async fn decide(&self, decision: NewDecision) -> Result<ApprovalRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // The run's row first, as an ingest takes it: then the approval
        // read again under that lock is the one every instance sees.
        let run_id = by_id(&tx, &decision.approval_id).await?.run_id;
        let status = run_status(&tx, &run_id, true).await?;
        let row = by_id(&tx, &decision.approval_id).await?;
        if row.status != ApprovalStatus::Pending {
            return Err(StoreError::Conflict(row.why_closed()));
        }
        if status.is_finished() {
            return Err(StoreError::Conflict(format!(
                "run {} is {}: its agent has ended",
                row.run_id,
                status.as_str()
            )));
        }
        let command = insert_command(
            &tx,
            &NewCommand {
                id: decision.command_id.clone(),
                run_id: row.run_id.clone(),
                kind: CommandKind::Decision,
                command: decision.command.clone(),
                created_by: Some(decision.decided_by.clone()),
            },
        )
        .await?;
        let outcome = if decision.allow {
            ApprovalStatus::Allowed
        } else {
            ApprovalStatus::Denied
        };
        tx.execute(
            "UPDATE approvals SET status = $2, decided_by = $3, decided_at = $4, \
             scope = $5, message = $6, answers = $7, command_id = $8 \
             WHERE id = $1 AND status = 'pending'",
            &[
                &row.id,
                &outcome.as_str(),
                &decision.decided_by,
                &now_ms(),
                &decision.scope.as_str(),
                &decision.message,
                &decision.answers,
                &decision.command_id,
            ],
        )
        .await?;
        let decided = by_id(&tx, &row.id).await?;
        let mut changes = vec![
            Change::CommandQueued(command),
            Change::Approval(Box::new(decided.clone())),
        ];
        if let Some(change) = settle_run(&tx, &row.run_id).await? {
            changes.push(Change::RunStatus(change));
        }
        self.commit(tx, changes).await?;
        Ok(decided)
    }
}
