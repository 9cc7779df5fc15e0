//! The store: what clawd keeps, behind traits by concern, so that a second
//! backend is an added module and not an edit everywhere. The rest of the
//! daemon holds an [`AnyStore`] and never names a backend; SQLite (the
//! embedded default) is in [`sqlite`].
//!
//! After each commit the store publishes typed [`Change`]s, in commit order,
//! to one [`ChangeSink`] (the live hub): nothing else announces what the
//! store did.

mod audit_chain;
mod change;
pub mod copy;
mod drift;
mod error;
mod login_failures;
mod notifications;
pub mod postgres;
pub mod sqlite;
mod types;

#[cfg(test)]
mod conformance;

use std::sync::Arc;

use async_trait::async_trait;
use claw_proto::control::{DatabaseSummary, DbCheck, DbStatus, Finding};
use claw_proto::wire::RunStatus;

pub use change::{Change, ChangeSink};
pub use error::StoreError;
pub use login_failures::LoginFailuresInMemory;
pub use types::*;

/// Runs, their events, and the signed requests that add to them.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Stores a runner's events exactly once per (run, sequence) after
    /// checking the request's run, token and nonce in the same transaction.
    async fn runner_ingest(
        &self,
        auth: RunnerAuth,
        events: Vec<NewEvent>,
    ) -> Result<Ingested, StoreError>;
    /// Checks a signed request (run, token, nonce) that changes nothing
    /// else, such as opening the runner's WebSocket.
    async fn runner_check(&self, auth: RunnerAuth) -> Result<(), StoreError>;
    async fn create_run(&self, run: NewRun) -> Result<RunRow, StoreError>;
    async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunRow>, StoreError>;
    async fn run(&self, id: String) -> Result<RunRow, StoreError>;
    /// Events of a run with sequence > `after`, in order, at most `limit`.
    async fn events_after(
        &self,
        run_id: String,
        after: u64,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError>;
    /// Queues the stop command; a run that never started is stopped at once.
    async fn request_stop(
        &self,
        run_id: String,
        command_id: String,
        created_by: Option<String>,
    ) -> Result<CommandRow, StoreError>;
    /// Deletes a run with its events, commands and artifact rows; returns
    /// the artifacts whose bytes are to go.
    async fn delete_run(&self, run_id: String) -> Result<Vec<ArtifactRow>, StoreError>;
    async fn run_counts(&self) -> Result<Vec<(RunStatus, u64)>, StoreError>;
}

/// Commands queued for a run's runner.
#[async_trait]
pub trait CommandStore: Send + Sync {
    /// Queues a command for a running run.
    async fn queue_command(&self, command: NewCommand) -> Result<CommandRow, StoreError>;
    /// A finished agent run made pending again, with a new capability
    /// token and `prompt` queued: its session is resumed. Returns the run
    /// as it was, for [`CommandStore::restore_run`].
    async fn reopen_run(&self, token: String, prompt: NewCommand) -> Result<RunRow, StoreError>;
    /// Undoes a reopening nobody resumed: the run as it was, without the
    /// prompt.
    async fn restore_run(&self, before: RunRow, prompt_id: String) -> Result<(), StoreError>;
    async fn list_commands(&self, run_id: String) -> Result<Vec<CommandRow>, StoreError>;
    /// The run's pending commands, oldest first; they become `delivered`.
    async fn runner_pending_commands(
        &self,
        auth: RunnerAuth,
    ) -> Result<Vec<CommandRow>, StoreError>;
    /// Records a command's outcome; `None` when it was already recorded.
    async fn runner_ack_command(
        &self,
        auth: RunnerAuth,
        ack: CommandOutcome,
    ) -> Result<Option<CommandRow>, StoreError>;
}

/// What is known of artifacts; their bytes are in a [`crate::blobs`] store.
#[async_trait]
pub trait ArtifactIndex: Send + Sync {
    /// Records an uploaded artifact whose bytes are already stored.
    async fn runner_add_artifact(
        &self,
        auth: RunnerAuth,
        artifact: NewArtifact,
    ) -> Result<ArtifactRow, StoreError>;
    async fn list_artifacts(&self, run_id: String) -> Result<Vec<ArtifactRow>, StoreError>;
    async fn artifact(&self, id: String) -> Result<ArtifactRow, StoreError>;
    async fn delete_artifact(&self, id: String) -> Result<ArtifactRow, StoreError>;
    /// Every artifact row, for reconciliation.
    async fn all_artifacts(&self) -> Result<Vec<ArtifactRow>, StoreError>;
    async fn delete_artifact_rows(&self, ids: Vec<String>) -> Result<usize, StoreError>;
}

/// Users, their sessions and TOTP.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    async fn user_count(&self) -> Result<u64, StoreError>;
    /// Creates the first administrator; refused once any user exists.
    async fn create_first_user(&self, user: NewUser) -> Result<UserRow, StoreError>;
    async fn create_user(&self, user: NewUser) -> Result<UserRow, StoreError>;
    async fn user_by_name(&self, username: String) -> Result<Option<UserRow>, StoreError>;
    async fn user(&self, id: String) -> Result<UserRow, StoreError>;
    async fn list_users(&self) -> Result<Vec<UserRow>, StoreError>;
    /// Changes role, password or TOTP, never leaving the system without an
    /// administrator; a new password or a TOTP reset ends the user's sessions.
    async fn update_user(&self, id: String, update: UserUpdate) -> Result<UserRow, StoreError>;
    async fn delete_user(&self, id: String) -> Result<UserRow, StoreError>;
    async fn set_totp_pending(&self, user_id: String, secret: String) -> Result<(), StoreError>;
    async fn confirm_totp(&self, user_id: String, step: u64) -> Result<(), StoreError>;
    /// Records a TOTP step as used; false when it was used already.
    async fn use_totp_step(&self, user_id: String, step: u64) -> Result<bool, StoreError>;
    async fn create_session(&self, session: NewSession) -> Result<(), StoreError>;
    /// The live session with this hash: its user and when it expires.
    async fn session_user(&self, id_hash: String) -> Result<Option<(UserRow, i64)>, StoreError>;
    async fn delete_session(&self, id_hash: String) -> Result<(), StoreError>;
    async fn list_sessions(&self) -> Result<Vec<SessionRow>, StoreError>;
    /// Ends sessions; returns how many.
    async fn revoke_sessions(&self, which: SessionSelector) -> Result<usize, StoreError>;
}

/// The hash-chained audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn audit(&self, entry: AuditEntry) -> Result<i64, StoreError>;
    async fn list_audit(&self, filter: AuditFilter) -> Result<Vec<AuditRow>, StoreError>;
    async fn verify_audit_chain(&self) -> Result<ChainVerdict, StoreError>;
}

/// Answers kept for `Idempotency-Key`s.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims a key for a request, or says what became of it before.
    async fn claim_idempotency_key(
        &self,
        claim: IdempotencyClaim,
    ) -> Result<IdempotencyState, StoreError>;
    /// Keeps the answer of a claimed key.
    async fn complete_idempotency_key(
        &self,
        scope: String,
        key: String,
        answer: StoredAnswer,
    ) -> Result<(), StoreError>;
    /// Gives a claimed key up (the request failed before it changed anything).
    async fn release_idempotency_key(&self, scope: String, key: String) -> Result<(), StoreError>;
}

/// Failed logins per key (`ip:ADDRESS`, `user:NAME`) over a sliding
/// window. One SQLite gateway counts them in memory; PostgreSQL counts them
/// in the database, so that the limits hold over every instance.
#[async_trait]
pub trait LoginFailureStore: Send + Sync {
    /// Counts one attempt at `now` (Unix ms) when fewer than `limit` were
    /// counted in the `window_ms` before; false, counting nothing, at the
    /// limit. Concurrent attempts on one key cannot all slip under it.
    /// `limit` 0: no limit, nothing counted.
    async fn login_hit(
        &self,
        key: String,
        limit: u32,
        window_ms: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Takes back the attempt counted at `at` (it turned out no guess).
    async fn login_release(&self, key: String, at: i64) -> Result<(), StoreError>;
    /// Forgets the key's failures (a successful login).
    async fn login_clear(&self, key: String) -> Result<(), StoreError>;
}

/// A copy of the database a backup archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbCopy {
    /// Its name in the archive: `db.sqlite` or `db.pgdump`.
    pub name: &'static str,
    /// The backend: `sqlite` or `postgres`.
    pub store: &'static str,
    pub schema_version: u32,
    /// Rows per table in the copy, counted in the snapshot the copy was
    /// taken from (PostgreSQL); empty when the copy checks itself (SQLite).
    pub tables: Vec<(String, u64)>,
}

/// Why a copy for a backup could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The program that writes the copy is missing or failed; the message
    /// is for the administrator as it is (it holds no password).
    #[error("{0}")]
    Tool(String),
}

/// The gateways that share the database: each records that it is alive.
/// SQLite has one, and keeps it in memory.
#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Records `instance` as seen now (`seen_at`); forgets instances not
    /// seen for a day.
    async fn heartbeat(&self, instance: InstanceRow) -> Result<(), StoreError>;
    /// Every instance recorded, the most recently seen first.
    async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError>;
    /// Forgets an instance that stops.
    async fn leave(&self, id: String) -> Result<(), StoreError>;
}

/// Housekeeping, jobs and the database itself.
#[async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// Where the database is, its size and schema, cheaply.
    fn summary(&self) -> DatabaseSummary;
    /// A round trip through the writer and a reader: proves both answer.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Writes what is held in memory and waits for everything queued
    /// before: the first step of a stop.
    async fn drain(&self) -> Result<(), StoreError>;
    /// Leaves the database tidy for a stop (SQLite folds its log in).
    async fn close(&self) -> Result<(), StoreError>;
    fn writer_stats(&self) -> WriterStats;
    /// Takes a reloaded `nonce_lifetime_secs` or `clock_skew_secs`.
    fn set_nonce_retention(&self, secs: u64);
    async fn db_status(&self) -> Result<DbStatus, StoreError>;
    async fn db_check(&self) -> Result<DbCheck, StoreError>;
    /// Writes a consistent copy of the database to `target` for a backup
    /// archive, and says what it is.
    async fn copy_for_backup(&self, target: std::path::PathBuf) -> Result<DbCopy, CopyError>;
    /// A fact about the installation (`last_prune`) and when it was set.
    async fn meta(&self, key: &'static str) -> Result<Option<(String, i64)>, StoreError>;
    async fn set_meta(&self, key: &'static str, value: String) -> Result<(), StoreError>;
    /// Sets a fact that is not set yet; the value that stands, the given
    /// one or the one set before (by whichever instance).
    async fn claim_meta(&self, key: &'static str, value: String) -> Result<String, StoreError>;
    async fn delete_meta(&self, key: &'static str) -> Result<(), StoreError>;
    /// Finished runs that ended before `cutoff` (Unix ms), oldest first.
    async fn prune_candidates(&self, cutoff: i64) -> Result<Vec<PruneCandidate>, StoreError>;
    /// A run's commands and artifact keys, counted before pruning it.
    async fn run_children(&self, run_id: String) -> Result<(u64, Vec<String>), StoreError>;
    /// Deletes a finished run in bounded batches; false when it is no
    /// longer a candidate.
    async fn prune_run(&self, run_id: String, cutoff: i64) -> Result<bool, StoreError>;
    async fn run_ids(&self) -> Result<std::collections::HashSet<String>, StoreError>;
    /// Expired sessions, nonces and idempotency keys, counted.
    async fn expired_counts(&self, keys_before: i64) -> Result<Expired, StoreError>;
    /// Removes them.
    async fn purge_expired(&self, keys_before: i64) -> Result<Expired, StoreError>;
    /// Runs whose status disagrees with their markers, stale runs, gaps.
    async fn reconcile_store(&self, stale_ms: i64, fix: bool) -> Result<Vec<Finding>, StoreError>;
}

/// Agents' requests for a person's decision. They are made and resolved by
/// the run's events (`approval_request`, `approval_resolved`) at ingest.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    async fn list_approvals(&self, filter: ApprovalFilter) -> Result<Vec<ApprovalRow>, StoreError>;
    async fn approval(&self, id: String) -> Result<ApprovalRow, StoreError>;
    /// Records the first decision on a pending approval and queues its
    /// command for the runner, in one transaction; a decided one is a
    /// conflict that says who decided and how.
    async fn decide(&self, decision: NewDecision) -> Result<ApprovalRow, StoreError>;
}

/// Notification channels and the outbox. Notifications are written by the
/// changes that cause them (approvals, a run's end) in their transaction.
#[async_trait]
pub trait NotifyStore: Send + Sync {
    async fn add_channel(&self, channel: NewChannelRow) -> Result<ChannelRow, StoreError>;
    /// A user's channels and the global ones; every channel for `None`.
    async fn channels(&self, user_id: Option<String>) -> Result<Vec<ChannelRow>, StoreError>;
    async fn channel(&self, id: String) -> Result<ChannelRow, StoreError>;
    async fn update_channel(
        &self,
        id: String,
        events: Option<Vec<claw_proto::notify::NotifyKind>>,
        scope: Option<claw_proto::notify::ChannelScope>,
    ) -> Result<ChannelRow, StoreError>;
    async fn delete_channel(&self, id: String) -> Result<ChannelRow, StoreError>;
    /// A browser's subscription: added, or, when its owner already has
    /// that endpoint, given the new keys (and name) with its settings kept.
    async fn save_push_subscription(
        &self,
        channel: NewChannelRow,
    ) -> Result<ChannelRow, StoreError>;
    /// Every browser subscription removed (the VAPID key changed); how many.
    async fn remove_push_subscriptions(&self) -> Result<u64, StoreError>;
    /// Pending deliveries due at `now`, oldest first, with their channels.
    /// A store shared by several gateways claims them for a while, so that
    /// each is attempted by one sender at a time.
    async fn due_deliveries(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<(DeliveryRow, ChannelRow)>, StoreError>;
    async fn record_attempt(&self, id: String, attempt: Attempt) -> Result<(), StoreError>;
    async fn deliveries(
        &self,
        status: Option<claw_proto::notify::DeliveryStatus>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError>;
    /// A dead letter made pending again, due now.
    async fn retry_delivery(&self, id: String) -> Result<DeliveryRow, StoreError>;
    async fn purge_dead(&self) -> Result<u64, StoreError>;
    async fn outbox_counts(&self) -> Result<claw_proto::notify::OutboxCounts, StoreError>;
    /// Running runs not heard from since `silent_since` and not yet
    /// reported: each reported once (a `runner_lost` notification).
    async fn report_lost_runners(&self, run_ids: Vec<String>) -> Result<usize, StoreError>;
}

#[async_trait]
pub trait HostStore: Send + Sync {
    /// A new host with its enrolment token's hash; a host of that name not
    /// enrolled yet gets the new token instead. Conflict once enrolled.
    async fn add_host(
        &self,
        id: String,
        name: String,
        token_hash: String,
        token_expires_at: i64,
    ) -> Result<HostRow, StoreError>;
    /// Spends an enrolment token (once): the host is enrolled with `salt`.
    async fn enroll_host(
        &self,
        token_hash: String,
        salt: String,
        now: i64,
    ) -> Result<Enrolment, StoreError>;
    async fn hosts(&self) -> Result<Vec<HostRow>, StoreError>;
    /// By name or id.
    async fn host(&self, name: String) -> Result<HostRow, StoreError>;
    /// Cut off for good; its token, if unused, goes too.
    async fn revoke_host(&self, name: String, now: i64) -> Result<HostRow, StoreError>;
    async fn remove_host(&self, name: String) -> Result<HostRow, StoreError>;
    /// A signed host request: the host enrolled and not revoked, and the
    /// nonce new (recorded).
    async fn host_check(&self, host_id: String, auth: RunnerAuth) -> Result<HostRow, StoreError>;
    /// The host was heard from; with what it reported when it said.
    async fn host_seen(
        &self,
        host_id: String,
        info: Option<String>,
        now: i64,
    ) -> Result<(), StoreError>;
}

/// Every concern: what the daemon holds.
pub trait Store:
    RunStore
    + CommandStore
    + ApprovalStore
    + NotifyStore
    + HostStore
    + ArtifactIndex
    + IdentityStore
    + AuditStore
    + IdempotencyStore
    + LoginFailureStore
    + ClusterStore
    + MaintenanceStore
{
}

impl<T> Store for T where
    T: RunStore
        + CommandStore
        + ApprovalStore
        + NotifyStore
        + HostStore
        + ArtifactIndex
        + IdentityStore
        + AuditStore
        + IdempotencyStore
        + LoginFailureStore
        + ClusterStore
        + MaintenanceStore
{
}

pub type AnyStore = Arc<dyn Store>;

/// Where the setup token's SHA-256 is kept (`meta`) while no user exists.
pub const SETUP_TOKEN_KEY: &str = "setup_token_sha256";

/// Lowercase hex SHA-256 of a capability token: what a store keeps.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
