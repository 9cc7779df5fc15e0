//! The control API on clawd's Unix socket (HTTP/1.1 + JSON under `/v1/`):
//! the requests and replies clawd and clawctl share. Views of runs, users,
//! sessions and the audit log are the human API's ([`crate::api`]).

use serde::{Deserialize, Serialize};

use crate::api::{RunCounts, Timestamp};
use crate::wire::Role;

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReply {
    pub status: String,
}

/// `GET /v1/status`: what `clawctl status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub version: String,
    pub uptime_secs: u64,
    pub listeners: Listeners,
    pub tls: TlsStatus,
    pub database: DatabaseSummary,
    pub runs: RunCounts,
    pub last_prune: Option<JobRecord>,
    pub last_backup: Option<JobRecord>,
    pub connections: Connections,
    /// The gateways on this database (SQLite: this one), the most recently
    /// seen first.
    #[serde(default)]
    pub instances: Vec<InstanceView>,
    #[serde(default)]
    pub artifact_store: ArtifactStoreHealth,
}

/// A gateway instance on the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    pub id: String,
    pub hostname: String,
    pub address: String,
    pub version: String,
    pub started: Timestamp,
    pub last_seen: Timestamp,
    /// Seen within the last 15 s.
    pub alive: bool,
    /// The instance that answers.
    pub this: bool,
}

/// The artifact store as the gateway last found it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactStoreHealth {
    /// `file` or `s3`.
    pub backend: String,
    /// `ok` or `unreachable`.
    pub status: String,
    /// `s3://BUCKET at ENDPOINT`, or the folder.
    #[serde(default)]
    pub location: String,
    /// Why it is unreachable, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listeners {
    pub https: String,
    pub control: String,
    pub socket_activated: bool,
}

/// The certificate in use, in `clawctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsStatus {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<i64>,
    #[serde(default)]
    pub expires_soon: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSummary {
    pub path: String,
    /// The database and its log.
    pub size_bytes: u64,
    pub schema_version: u32,
}

/// When a recorded job (prune, backup) last ran, and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub at: Timestamp,
    pub summary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connections {
    /// Runners heard from within the last 30 s.
    pub runners: usize,
    /// Browser WebSockets.
    pub clients: usize,
    pub subscriptions: usize,
    /// Runs someone follows live.
    pub followed_runs: usize,
}

/// `GET /v1/runs?status=&since=&limit=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `GET /v1/runs/{id}/events?after=&follow=`: its answer is
/// newline-delimited JSON, a [`crate::wire::ServerMessage`] per line.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events after this sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Then live events until the run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<bool>,
}

/// `POST /v1/users`.
pub type AddUserRequest = crate::api::CreateUserRequest;

/// `POST /v1/users/{name}/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordRequest {
    pub password: String,
}

/// `POST /v1/users/{name}/role`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRoleRequest {
    pub role: Role,
}

/// `DELETE /v1/sessions?user=NAME` or `?all=true`: exactly one of them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
}

/// `DELETE /v1/sessions/{id}`, `?user=NAME` or `?all=true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeReply {
    pub ok: bool,
    pub revoked: usize,
}

/// `GET /v1/audit?user=&action=&since=&limit=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditListQuery {
    /// Only entries by this user ("root" for control-socket actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only this action or the actions under it (`run` takes `run.create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `POST /v1/prune`: its answer is newline-delimited JSON, a
/// [`PruneLine`] per line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PruneRequest {
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than_days: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneCounts {
    pub runs: u64,
    pub events: u64,
    pub commands: u64,
    pub artifacts: u64,
    /// Event data and artifact files removed.
    pub bytes_freed: u64,
    pub orphan_folders: u64,
    pub expired_sessions: u64,
    pub expired_nonces: u64,
    pub expired_idempotency_keys: u64,
    /// Delivered and dead-lettered notifications older than 7 days.
    #[serde(default)]
    pub old_notifications: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum PruneLine {
    #[serde(rename_all = "camelCase")]
    Progress {
        runs_done: usize,
        runs_total: usize,
    },
    #[serde(rename_all = "camelCase")]
    Result {
        dry_run: bool,
        older_than_days: u32,
        counts: PruneCounts,
    },
    Error {
        error: String,
    },
}

/// `POST /v1/reconcile`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    #[serde(default)]
    pub fix: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileReply {
    pub fix: bool,
    pub findings: Vec<Finding>,
}

/// Drift between the store's records and themselves or the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// `status_mismatch`, `stale_run`, `missing_artifact_file`,
    /// `orphan_artifact_file`, `sequence_gap`.
    pub kind: String,
    pub run_id: Option<String>,
    pub detail: String,
    /// What `--fix` does about it; none when it cannot be repaired safely.
    pub repair: Option<String>,
    pub fixed: bool,
}

/// `POST /v1/backup`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// An absolute directory on the gateway host [default /var/backups/claw].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Archives kept in it, the newest first [default 7].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupReply {
    pub path: String,
    pub size: u64,
    pub files: usize,
    /// Older archives removed to keep `keep`.
    pub removed: Vec<String>,
}

/// Which secret `POST /v1/secrets/rotate` replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretName {
    Hmac,
    Auth,
    /// The Web Push (VAPID) key pair: every browser subscription ends.
    Vapid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateRequest {
    pub secret: SecretName,
    /// How long the old HMAC secret keeps working [default 3600].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateReply {
    pub ok: bool,
    /// The new HMAC secret, for the runners' configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<Timestamp>,
    /// With the auth secret: the sessions that ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_ended: Option<usize>,
    /// With the VAPID key: the browser subscriptions removed; their users
    /// enable notifications again in Account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriptions_removed: Option<u64>,
}

/// `GET /v1/certs` and the answer of installing one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertView {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    #[serde(default)]
    pub expires_soon: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_path: Option<String>,
}

/// `POST /v1/certs/install`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallCertRequest {
    pub cert_pem: String,
    pub key_pem: String,
}

/// `POST /v1/certs/self-signed`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfSignedRequest {
    #[serde(default)]
    pub names: Vec<String>,
}

/// `GET /v1/db/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbStatus {
    pub backend: String,
    pub schema_version: u32,
    pub latest_schema_version: u32,
    pub migrations: Vec<String>,
    /// SQLite's pages; on PostgreSQL the block size and the database's
    /// size in blocks (no free list of its own: VACUUM reuses space).
    pub page_size: u64,
    pub page_count: u64,
    pub freelist_count: u64,
    /// SQLite's journal mode; none on PostgreSQL, whose WAL is the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_mode: Option<String>,
    /// Rows per table.
    pub tables: Vec<(String, u64)>,
    /// The database file, or the URL without its password.
    pub path: String,
    pub size_bytes: u64,
    /// SQLite's log beside the file; 0 on PostgreSQL.
    pub wal_bytes: u64,
    /// PostgreSQL's `server_version` (`15.18 (Debian 15.18-0+deb12u1)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// PostgreSQL: this instance's connection pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolUse>,
}

/// Connections of a pool: open and busy, open, and at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolUse {
    pub in_use: u32,
    pub open: u32,
    pub max: u32,
}

/// `GET /v1/db/check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbCheck {
    pub ok: bool,
    /// `PRAGMA integrity_check` lines other than "ok".
    pub integrity: Vec<String>,
    /// Rows whose foreign key points nowhere: (table, rowid, parent).
    pub foreign_keys: Vec<(String, i64, String)>,
}

/// `POST /v1/db/copy-to`: the installation copied into an empty
/// PostgreSQL database. Its answer is newline-delimited JSON, a
/// [`CopyLine`] per line. The URL may hold a password: clawd never shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CopyToRequest {
    pub database_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CopyLine {
    /// Rows copied so far of every table, and of the whole snapshot;
    /// `table` is the one being copied.
    Progress {
        table: String,
        copied: u64,
        total: u64,
    },
    /// Everything is in PostgreSQL; the counts and the audit chain are
    /// being checked there.
    Checking,
    Result(CopyReport),
    Error {
        error: String,
    },
}

/// What `clawctl db copy-to` copied and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    /// The target, without its password.
    pub database_url: String,
    /// When the SQLite snapshot that was copied was taken.
    pub snapshot_at: Timestamp,
    /// Rows per table in the snapshot and in PostgreSQL after the copy.
    pub tables: Vec<CopiedTable>,
    /// Audit entries whose chain verified in PostgreSQL.
    pub audit_checked: u64,
    /// The gateway wrote to SQLite after the snapshot: those writes are
    /// not in PostgreSQL.
    pub changed_since: bool,
    /// The `[store]` section to switch to.
    pub config: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopiedTable {
    pub table: String,
    pub source: u64,
    pub target: u64,
}
