//! The human API's JSON (`/api/…` for browsers and scripts) and the views
//! the control API shares with it. One casing rule: camelCase fields,
//! lowercase enum values, times as RFC 3339 text with milliseconds. The
//! runner protocol's own shapes are in [`crate::wire`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::{AgentKind, PermissionMode};
use crate::wire::{CommandKind, EventType, Role, RunStatus};

/// RFC 3339 time with milliseconds, UTC (`2026-11-30T05:04:31.123Z`).
pub type Timestamp = String;

/// `{"ok": true}`: the answer of actions with nothing else to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub ok: bool,
}

impl Done {
    pub const OK: Self = Self { ok: true };
}

/// Every error: `{"error": "what happened and what to do"}`, with fields of
/// its own where a caller can act on them (`nextSequence`, `allowed`,
/// `totpRequired`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub id: String,
    pub status: RunStatus,
    pub command: Option<String>,
    /// The JSON given when the run was created.
    pub metadata: Option<Value>,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: Option<i64>,
    pub stop_requested_at: Option<Timestamp>,
    /// The run's highest event sequence.
    pub event_count: u64,
    /// The agent the run drives; none for a raw command.
    #[serde(default)]
    pub agent: Option<AgentKind>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub permission_mode: Option<PermissionMode>,
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    /// The agent's own id of its session, once it started.
    #[serde(default)]
    pub agent_session_id: Option<String>,
    /// How long its agent's requests wait for a decision, when the run set
    /// its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout_secs: Option<u64>,
    /// The enrolled host that runs it, when one was asked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// The directory on that host it runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

/// A run with its artifacts (`GET /api/runs/{id}`), and with its commands
/// on the control socket (`clawctl runs show`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunView,
    pub artifacts: Vec<ArtifactView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<CommandView>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub data: String,
    pub timestamp: Timestamp,
    pub sequence: u64,
}

/// Where a queued command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandStatus {
    Pending,
    Delivered,
    Completed,
    Failed,
}

impl CommandStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Delivered,
            Self::Completed,
            Self::Failed,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandView {
    pub id: String,
    pub run_id: String,
    #[serde(default)]
    pub kind: CommandKind,
    pub command: String,
    pub status: CommandStatus,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactView {
    pub id: String,
    pub run_id: String,
    pub filename: String,
    pub size: u64,
    pub content_type: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub totp_enabled: bool,
    pub created_at: Timestamp,
}

/// A login session as administrators see it; `id` is the stored HMAC of
/// the token: it names the session and cannot be used to log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    pub id: i64,
    pub timestamp: Timestamp,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub details: Option<String>,
    pub ip: Option<String>,
    pub hash: String,
}

/// `GET /api/audit/verify`: whether every row's hash follows from its
/// content and the row before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainReport {
    pub ok: bool,
    pub checked: u64,
    /// The first row that does not follow.
    pub broken_at: Option<i64>,
    pub reason: Option<String>,
}

/// Runs in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub pending: u64,
    pub running: u64,
    #[serde(default)]
    pub waiting: u64,
    pub done: u64,
    pub failed: u64,
    pub stopped: u64,
}

impl RunCounts {
    pub fn add(&mut self, status: RunStatus, n: u64) {
        let slot = match status {
            RunStatus::Pending => &mut self.pending,
            RunStatus::Running => &mut self.running,
            RunStatus::Waiting => &mut self.waiting,
            RunStatus::Done => &mut self.done,
            RunStatus::Failed => &mut self.failed,
            RunStatus::Stopped => &mut self.stopped,
        };
        *slot += n;
    }
}

/// `GET /api/health` (no authentication): `ok`, or `degraded` when
/// something the gateway depends on does not answer (then 503 when it is
/// the database: this instance cannot serve).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub timestamp: Timestamp,
    pub connections: HealthConnections,
    /// Per dependency (`database`; `artifactStore` when artifacts are in an
    /// object store): `ok`, or what is wrong.
    #[serde(default)]
    pub checks: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConnections {
    pub clients: usize,
    pub subscriptions: usize,
}

/// Commits and writes since start: writes per commit is how well group
/// commit works.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterStats {
    pub commits: u64,
    pub writes: u64,
}

/// `GET /api/status` [viewer]: what the status page and the command box need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub version: String,
    pub runs: RunCounts,
    pub runners_connected: usize,
    pub browsers: usize,
    pub subscriptions: usize,
    /// The allowlist, for suggestions; the API checks commands again.
    pub allowed_commands: Vec<String>,
    pub store: WriterStats,
}

/// `GET /api/auth/status` (no authentication).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthStatus {
    pub setup_required: bool,
    pub local_auth_enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetupRequest {
    pub setup_token: String,
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub enable_totp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupReply {
    pub ok: bool,
    pub user_id: String,
    /// With `enableTotp`: the authenticator's enrolment, as a URI and as
    /// an SVG QR code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_svg: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_code: Option<String>,
}

/// Who is logged in, as a login answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: String,
    pub username: String,
    pub role: Role,
}

/// A login or refresh: the session itself is the `session` cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginReply {
    pub ok: bool,
    pub user: UserSummary,
    pub expires_at: Timestamp,
}

/// `GET /api/auth/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeReply {
    pub user: UserView,
}

/// `POST /api/auth/totp/enroll`: a pending TOTP secret to confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TotpEnrolment {
    pub ok: bool,
    pub secret: String,
    pub uri: String,
    pub qr_svg: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub code: String,
}

/// Removing one's own TOTP needs the password.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirmation {
    #[serde(default)]
    pub password: Option<String>,
}

/// `POST /api/auth/users` [admin] and `clawctl users add`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// `PATCH /api/auth/users/{id}` [admin]: any of a new role, a new password,
/// a TOTP reset.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default)]
    pub reset_totp: bool,
}

/// A new run: a raw `command`, or an `agent` with its first `prompt`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRunRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<PermissionMode>,
    /// Tool rules the agent may use without asking (`Bash(npm test:*)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_tools: Vec<String>,
    /// How long the agent's requests wait for a decision [clawd.toml's
    /// `approval_timeout_secs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout_secs: Option<u64>,
    /// Start it on this enrolled host (its id or name), which must be
    /// online; with `workspace` and `agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// One of the host's workspaces, or a directory inside one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

/// A new run with its capability token, shown this once, and the line that
/// starts its runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedRun {
    pub id: String,
    pub capability_token: String,
    pub status: RunStatus,
    /// `claw-runner start …` for this run (the gateway's address and the
    /// HMAC secret come from the runner's configuration).
    #[serde(default)]
    pub runner_command: String,
}

/// `POST /api/runs/{id}/prompts`: the agent's next instruction.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptRequest {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedPrompt {
    pub prompt_id: String,
}

/// `POST /api/runs/{id}/interrupt`: accepted; the runner ends the turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterruptReply {
    pub ok: bool,
    pub command_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendCommandRequest {
    pub command: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedCommand {
    pub command_id: String,
}

/// A stop: the `__STOP__` command queued for the runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopReply {
    pub ok: bool,
    pub command_id: String,
}

/// An artifact stored by `POST /api/ingest/artifact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadReply {
    pub ok: bool,
    pub artifact_id: String,
}

/// An approval: an agent's request waiting for, or decided by, a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalView {
    pub id: String,
    pub run_id: String,
    /// The agent's own id of its request.
    pub request_id: String,
    pub kind: crate::agent::ApprovalKind,
    pub tool: String,
    pub input: Value,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<Value>,
    pub status: crate::agent::ApprovalStatus,
    pub created_at: Timestamp,
    /// When the runner denies it if nobody has decided.
    pub expires_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<crate::agent::DecisionScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<serde_json::Map<String, Value>>,
    /// The runner wrote the decision to the agent.
    #[serde(default)]
    pub delivered: bool,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionVerb {
    Allow,
    Deny,
}

/// `POST /api/approvals/{id}/decision`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionRequest {
    pub decision: DecisionVerb,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<crate::agent::DecisionScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For questions: each question's text and the chosen label(s) or text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<serde_json::Map<String, Value>>,
}

/// `GET /api/approvals?status=&runId=`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_camel_case() {
        let run = RunView {
            id: "r".into(),
            status: RunStatus::Done,
            command: None,
            metadata: None,
            created_by: Some("admin".into()),
            created_at: "t".into(),
            started_at: None,
            finished_at: None,
            exit_code: Some(0),
            stop_requested_at: None,
            event_count: 3,
            agent: Some(AgentKind::Claude),
            model: None,
            permission_mode: Some(PermissionMode::AcceptEdits),
            allowed_tools: Vec::new(),
            agent_session_id: None,
            approval_timeout_secs: None,
            host_id: None,
            workspace: None,
        };
        let json = serde_json::to_value(&run).expect("json");
        for key in [
            "createdBy",
            "createdAt",
            "exitCode",
            "stopRequestedAt",
            "eventCount",
        ] {
            assert!(json.get(key).is_some(), "{key} in {json}");
        }
        assert_eq!(json["status"], "done");
        assert_eq!(json["permissionMode"], "acceptEdits");
        assert_eq!(json["agent"], "claude");
    }

    #[test]
    fn run_detail_flattens_the_run() {
        let text = r#"{"id":"r","status":"running","command":null,"metadata":{"a":1},
            "createdBy":null,"createdAt":"t","startedAt":"t","finishedAt":null,"exitCode":null,
            "stopRequestedAt":null,"eventCount":0,"artifacts":[]}"#;
        let detail: RunDetail = serde_json::from_str(text).expect("parse");
        assert_eq!(detail.run.metadata, Some(serde_json::json!({"a": 1})));
        assert!(detail.commands.is_none());
    }
}
