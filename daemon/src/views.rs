//! Store rows as the API's views (`claw_proto::api`): the one place where
//! what is stored becomes what is shown.

use claw_proto::api::{
    ApprovalView, ArtifactView, AuditView, CommandView, EventView, RunView, SessionView,
    UserSummary, UserView,
};
use claw_proto::wire::PendingCommand;

use crate::clock::iso;
use crate::store::{
    ApprovalRow, ArtifactRow, AuditRow, CommandRow, EventRow, RunRow, SessionRow, UserRow,
};

pub fn run(row: RunRow) -> RunView {
    RunView {
        id: row.id,
        status: row.status,
        command: row.command,
        // Stored as the JSON text it was given as.
        metadata: row
            .metadata
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok()),
        created_by: row.created_by,
        created_at: iso(row.created_at),
        started_at: row.started_at.map(iso),
        finished_at: row.finished_at.map(iso),
        exit_code: row.exit_code,
        stop_requested_at: row.stop_requested_at.map(iso),
        event_count: row.event_count,
        agent: row.agent,
        model: row.model,
        permission_mode: row.permission_mode,
        allowed_tools: row.allowed_tools,
        agent_session_id: row.agent_session_id,
        approval_timeout_secs: row.approval_timeout_secs,
        host_id: row.host_id,
        workspace: row.workspace,
    }
}

pub fn event(row: EventRow) -> EventView {
    EventView {
        id: row.id,
        kind: row.kind,
        data: row.data,
        timestamp: iso(row.timestamp),
        sequence: row.sequence,
    }
}

pub fn command(row: CommandRow) -> CommandView {
    CommandView {
        id: row.id,
        run_id: row.run_id,
        kind: row.kind,
        command: row.command,
        status: row.status,
        result: row.result,
        error: row.error,
        created_by: row.created_by,
        created_at: iso(row.created_at),
        completed_at: row.completed_at.map(iso),
    }
}

/// A command as the runner receives it (PROTOCOL.md's field names).
pub fn pending_command(row: CommandRow) -> PendingCommand {
    PendingCommand {
        id: row.id,
        command: row.command,
        created_at: iso(row.created_at),
        kind: row.kind,
        created_by: row.created_by,
    }
}

pub fn artifact(row: ArtifactRow) -> ArtifactView {
    ArtifactView {
        id: row.id,
        run_id: row.run_id,
        filename: row.filename,
        size: row.size,
        content_type: row.content_type,
        created_at: iso(row.created_at),
    }
}

pub fn user(row: UserRow) -> UserView {
    UserView {
        totp_enabled: row.totp_secret.is_some(),
        id: row.id,
        username: row.username,
        role: row.role,
        created_at: iso(row.created_at),
    }
}

pub fn user_summary(row: &UserRow) -> UserSummary {
    UserSummary {
        id: row.id.clone(),
        username: row.username.clone(),
        role: row.role,
    }
}

pub fn session(row: SessionRow) -> SessionView {
    SessionView {
        id: row.id,
        username: row.username,
        role: row.role,
        created_at: iso(row.created_at),
        expires_at: iso(row.expires_at),
        ip: row.ip,
    }
}

pub fn audit(row: AuditRow) -> AuditView {
    AuditView {
        id: row.id,
        timestamp: iso(row.timestamp),
        user_id: row.user_id,
        username: row.username,
        action: row.action,
        target: row.target,
        details: row.details,
        ip: row.ip,
        hash: row.hash,
    }
}

pub fn approval(row: ApprovalRow) -> ApprovalView {
    ApprovalView {
        id: row.id,
        run_id: row.run_id,
        request_id: row.request_id,
        kind: row.kind,
        tool: row.tool,
        // Stored as the JSON the runner sent.
        input: serde_json::from_str(&row.input).unwrap_or(serde_json::Value::Null),
        summary: row.summary,
        diff: row.diff,
        reason: row.reason,
        suggestions: row
            .suggestions
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default(),
        status: row.status,
        created_at: iso(row.created_at),
        expires_at: iso(row.expires_at),
        decided_by: row.decided_by,
        decided_at: row.decided_at.map(iso),
        scope: row.scope,
        message: row.message,
        answers: row
            .answers
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok()),
        delivered: row.delivered,
    }
}
