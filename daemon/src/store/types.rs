//! What goes into the store and what comes out: plain rows, no wire format
//! (the services turn rows into the views of `claw_proto::api`).

use claw_proto::agent::{AgentKind, PermissionMode};
use claw_proto::api::CommandStatus;
use claw_proto::wire::{CommandKind, EventType, Role, RunStatus};

pub use claw_proto::api::WriterStats;

#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub status: RunStatus,
    pub command: Option<String>,
    /// JSON text, as given at creation.
    pub metadata: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i64>,
    pub stop_requested_at: Option<i64>,
    /// The run's highest sequence.
    pub event_count: u64,
    pub agent: Option<AgentKind>,
    pub model: Option<String>,
    pub permission_mode: Option<PermissionMode>,
    pub allowed_tools: Vec<String>,
    pub agent_session_id: Option<String>,
    pub approval_timeout_secs: Option<u64>,
    pub host_id: Option<String>,
    pub workspace: Option<String>,
}

/// How a run's agent is to run.
#[derive(Debug, Clone, Default)]
pub struct AgentSpec {
    pub agent: Option<AgentKind>,
    pub model: Option<String>,
    pub permission_mode: Option<PermissionMode>,
    pub allowed_tools: Vec<String>,
    pub approval_timeout_secs: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    /// Only its SHA-256 is kept.
    pub capability_token: String,
    pub command: Option<String>,
    pub metadata: Option<String>,
    pub created_by: Option<String>,
    pub agent: AgentSpec,
    /// The agent's first prompt, queued with the run.
    pub first_prompt: Option<NewCommand>,
    /// The host and workspace it is started on.
    pub host_id: Option<String>,
    pub workspace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub id: i64,
    pub run_id: String,
    pub kind: EventType,
    pub data: String,
    pub timestamp: i64,
    pub sequence: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRow {
    pub id: String,
    pub run_id: String,
    pub kind: CommandKind,
    pub command: String,
    pub status: CommandStatus,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewCommand {
    pub id: String,
    pub run_id: String,
    pub kind: CommandKind,
    pub command: String,
    pub created_by: Option<String>,
}

/// A runner's answer to a command: an error makes it `failed`.
#[derive(Debug, Clone)]
pub struct CommandOutcome {
    pub command_id: String,
    pub result: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRow {
    pub id: String,
    pub run_id: String,
    pub filename: String,
    /// Where the bytes are, for the blob store.
    pub path: String,
    pub size: u64,
    pub content_type: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewArtifact {
    pub id: String,
    pub filename: String,
    pub path: String,
    pub size: u64,
    pub content_type: String,
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

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventType,
    pub data: String,
    /// Absent or 0: appended after the run's last event.
    pub sequence: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub run_id: String,
    pub status: RunStatus,
    pub exit_code: Option<i64>,
}

/// What a run's finished marker makes it: stopped when a stop was asked
/// for, done on exit code 0, failed otherwise.
pub fn status_at_finish(stop_requested: bool, exit_code: Option<i64>) -> RunStatus {
    if stop_requested {
        RunStatus::Stopped
    } else if exit_code == Some(0) {
        RunStatus::Done
    } else {
        RunStatus::Failed
    }
}

/// Result of an ingest: one id per submitted event (a resend answers with
/// the stored one), and the run's new status if a marker changed it.
#[derive(Debug, Clone, Default)]
pub struct Ingested {
    pub ids: Vec<i64>,
    pub status_change: Option<StatusChange>,
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub before: Option<i64>,
    /// With `before`: runs created at that very time whose id sorts before
    /// this one are listed too (the last run of the previous page).
    pub before_id: Option<String>,
    /// Created at or after this time.
    pub since: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub created_at: i64,
    pub password_hash: String,
    pub totp_secret: Option<String>,
    pub totp_pending_secret: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub password_hash: Option<String>,
    pub reset_totp: bool,
    /// The session (its id hash) that made the change for itself: it stays
    /// when a new password or a TOTP reset ends the user's other sessions.
    pub keep_session: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    /// HMAC of the token under the auth secret.
    pub id_hash: String,
    pub user_id: String,
    pub expires_at: i64,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub created_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
}

/// Which sessions to end.
#[derive(Debug, Clone)]
pub enum SessionSelector {
    /// One session, by its id or an unambiguous prefix of it (8+ chars).
    Id(String),
    User(String),
    All,
}

/// One action to record in the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub details: Option<String>,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub timestamp: i64,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub details: Option<String>,
    pub ip: Option<String>,
    pub hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub username: Option<String>,
    /// Matches the action itself or any `action.…` below it.
    pub action: Option<String>,
    pub since: Option<i64>,
    pub limit: u32,
}

/// Whether every audit row's hash follows from its content and the row
/// before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainVerdict {
    pub checked: u64,
    /// The first row that does not follow, and why.
    pub broken: Option<(i64, String)>,
}

/// A run that pruning removes.
#[derive(Debug, Clone)]
pub struct PruneCandidate {
    pub id: String,
    pub events: u64,
    pub event_bytes: u64,
}

/// Expired rows, counted or removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    pub sessions: u64,
    pub nonces: u64,
    pub idempotency_keys: u64,
    /// Delivered and dead-lettered notifications past their keeping.
    pub notifications: u64,
}

/// A request that carries an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    /// Whose keys these are (a user id): keys of different callers never meet.
    pub scope: String,
    pub key: String,
    /// SHA-256 of the method, path and body.
    pub fingerprint: String,
    pub now: i64,
    /// Keys created before this have expired and are claimed anew.
    pub expired_before: i64,
}

/// A kept answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyState {
    /// New: the request goes ahead.
    Claimed,
    /// The same request was answered before: answer the same.
    Answered(StoredAnswer),
    /// The same key with another request.
    Mismatch,
    /// The first request with this key is still being answered.
    InProgress,
}

/// An agent's request for a person's decision, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRow {
    pub id: String,
    pub run_id: String,
    pub request_id: String,
    pub kind: claw_proto::agent::ApprovalKind,
    pub tool: String,
    /// JSON text.
    pub input: String,
    pub summary: String,
    pub diff: Option<String>,
    pub reason: Option<String>,
    /// JSON text of an array.
    pub suggestions: Option<String>,
    pub status: claw_proto::agent::ApprovalStatus,
    pub created_at: i64,
    pub expires_at: i64,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub scope: Option<claw_proto::agent::DecisionScope>,
    pub message: Option<String>,
    /// JSON text of an object.
    pub answers: Option<String>,
    /// The command that carries the decision to the runner.
    pub command_id: Option<String>,
    /// The runner acknowledged that command.
    pub delivered: bool,
}

impl ApprovalRow {
    /// Why this approval, no longer pending, cannot be decided, in words.
    pub fn why_closed(&self) -> String {
        use claw_proto::agent::ApprovalStatus;
        let when = self.decided_at.map(crate::clock::iso).unwrap_or_default();
        match (self.status, &self.decided_by) {
            (ApprovalStatus::Expired, _) => format!(
                "approval {} expired at {when}: the agent was told no decision arrived",
                self.id
            ),
            (ApprovalStatus::Cancelled, _) => format!(
                "approval {} was withdrawn at {when}: {}",
                self.id,
                self.message
                    .as_deref()
                    .unwrap_or("the agent no longer asks")
            ),
            (status, Some(by)) => format!(
                "approval {} was already decided: {} by {by} at {when}",
                self.id,
                status.as_str()
            ),
            (status, None) => format!("approval {} is already {}", self.id, status.as_str()),
        }
    }
}

/// Which approvals to list.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    pub status: Option<claw_proto::agent::ApprovalStatus>,
    pub run_id: Option<String>,
    pub limit: u32,
}

/// A person's decision on an approval, with the command that carries it.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub approval_id: String,
    pub allow: bool,
    pub decided_by: String,
    pub scope: claw_proto::agent::DecisionScope,
    pub message: Option<String>,
    /// JSON text of an object.
    pub answers: Option<String>,
    /// The decision command's id and its text ([`claw_proto::agent::Decision`] as JSON).
    pub command_id: String,
    pub command: String,
}

/// A notification channel, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    pub id: String,
    /// None: a global channel.
    pub user_id: Option<String>,
    /// The owner's user name.
    pub owner: Option<String>,
    pub kind: claw_proto::notify::ChannelKind,
    pub name: String,
    pub target: String,
    /// A webhook's signing secret, an ntfy token, a push subscription's keys.
    pub secret: Option<String>,
    pub events: Vec<claw_proto::notify::NotifyKind>,
    pub scope: claw_proto::notify::ChannelScope,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewChannelRow {
    pub id: String,
    pub user_id: Option<String>,
    pub kind: claw_proto::notify::ChannelKind,
    pub name: String,
    pub target: String,
    pub secret: Option<String>,
    pub events: Vec<claw_proto::notify::NotifyKind>,
    pub scope: claw_proto::notify::ChannelScope,
}

/// A notification as the outbox keeps it, before the sender fills in its
/// id and the gateway's address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationDraft {
    pub kind: claw_proto::notify::NotifyKind,
    pub run_id: String,
    pub run_title: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// The UI's page for it, e.g. `#/runs/ID`.
    pub path: String,
}

/// One notification for one channel in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: String,
    pub channel_id: String,
    pub channel_name: String,
    pub kind: claw_proto::notify::NotifyKind,
    pub run_id: String,
    /// A [`NotificationDraft`] as JSON.
    pub payload: String,
    pub status: claw_proto::notify::DeliveryStatus,
    pub attempts: u32,
    pub next_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub done_at: Option<i64>,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Try again at `next_at`.
    Retry {
        next_at: i64,
        error: String,
    },
    /// Given up: a dead letter.
    Dead {
        error: String,
    },
    /// The push service says the subscription is gone: the channel goes.
    ChannelGone {
        error: String,
    },
}

/// A coding host, as stored.
#[derive(Debug, Clone)]
pub struct HostRow {
    pub id: String,
    pub name: String,
    pub token_expires_at: Option<i64>,
    /// With the hosts secret and the id, makes the host's key; none until
    /// it enrolled.
    pub key_salt: Option<String>,
    pub created_at: i64,
    pub enrolled_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    /// [`claw_proto::hosts::HostInfo`] as JSON, as last reported.
    pub info: Option<String>,
}

/// What an enrolment token was good for.
#[derive(Debug, Clone)]
pub enum Enrolment {
    Enrolled(HostRow),
    /// Never issued, already used, or its host revoked or removed.
    Unknown,
    /// Issued, but more than an hour ago.
    Expired {
        host: String,
    },
}

/// One gateway instance on the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    /// Made at each start.
    pub id: String,
    pub hostname: String,
    /// Where it serves (`https://ADDRESS`).
    pub address: String,
    pub version: String,
    pub started_at: i64,
    pub seen_at: i64,
}
