//! A SQLite installation copied into an empty PostgreSQL database
//! (`clawctl db copy-to`): every table both schemas share, read from one
//! snapshot (a read transaction, so the rows agree with each other) and
//! written in one PostgreSQL transaction (a failed copy leaves the target
//! empty, ready for another try). Then each table's rows are counted on
//! both sides and the audit chain is verified in PostgreSQL.
//!
//! SQLite's side is in `sqlite/export.rs`, PostgreSQL's in
//! `postgres/import.rs`; this module holds what they share: which tables
//! and columns are copied, and the order that keeps foreign keys whole.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use claw_proto::control::{CopiedTable, CopyLine};
use tokio::sync::mpsc;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::postgres::{PgSettings, PgStore};
use super::sqlite::export;
use super::{AuditStore, Change, ChangeSink, StoreError};

/// How a column's values are read from SQLite and typed for PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Int,
    Text,
    Blob,
}

impl Kind {
    /// The parameter's type in PostgreSQL; an INTEGER column takes a
    /// BIGINT by assignment.
    pub(super) fn pg_type(self) -> &'static str {
        match self {
            Self::Int => "bigint",
            Self::Text => "text",
            Self::Blob => "bytea",
        }
    }
}

pub(super) struct Column {
    /// Its name in PostgreSQL.
    pub name: &'static str,
    /// What SQLite gives for it: the same column, or its rowid for the
    /// identity columns that keep SQLite's insertion order.
    pub source: &'static str,
    pub kind: Kind,
}

const fn int(name: &'static str) -> Column {
    Column {
        name,
        source: name,
        kind: Kind::Int,
    }
}

const fn text(name: &'static str) -> Column {
    Column {
        name,
        source: name,
        kind: Kind::Text,
    }
}

const fn blob(name: &'static str) -> Column {
    Column {
        name,
        source: name,
        kind: Kind::Blob,
    }
}

/// An identity column in PostgreSQL filled from SQLite's rowid.
const fn rowid(name: &'static str) -> Column {
    Column {
        name,
        source: "rowid",
        kind: Kind::Int,
    }
}

pub(super) struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// SQLite's order: ids in the order they were given.
    pub order: &'static str,
    /// PostgreSQL's identity column, advanced past the copied values.
    pub identity: Option<&'static str>,
}

/// Every table both schemas have, parents before children. Left out:
/// SQLite's `nonces_legacy` (no longer written) and PostgreSQL's own
/// `audit_head` (set from the copied chain), `login_failures` (SQLite
/// counts them in memory) and `claw_schema_migrations`.
pub(super) const TABLES: &[Table] = &[
    Table {
        name: "hosts",
        columns: &[
            text("id"),
            text("name"),
            text("token_hash"),
            int("token_expires_at"),
            text("key_salt"),
            int("created_at"),
            int("enrolled_at"),
            int("revoked_at"),
            int("last_seen_at"),
            text("info"),
        ],
        order: "rowid",
        identity: None,
    },
    Table {
        name: "runs",
        columns: &[
            text("id"),
            text("status"),
            text("command"),
            text("metadata"),
            text("capability_token_hash"),
            text("created_by"),
            int("created_at"),
            int("started_at"),
            int("finished_at"),
            int("exit_code"),
            int("stop_requested_at"),
            text("agent"),
            text("model"),
            text("permission_mode"),
            text("allowed_tools"),
            text("agent_session_id"),
            int("approval_timeout_secs"),
            int("runner_lost_at"),
            text("host_id"),
            text("workspace"),
        ],
        order: "rowid",
        identity: None,
    },
    Table {
        name: "events",
        columns: &[
            int("id"),
            text("run_id"),
            text("type"),
            text("data"),
            int("timestamp"),
            int("sequence"),
        ],
        order: "id",
        identity: Some("id"),
    },
    Table {
        name: "commands",
        columns: &[
            text("id"),
            rowid("queued"),
            text("run_id"),
            text("command"),
            text("status"),
            text("result"),
            text("error"),
            text("created_by"),
            int("created_at"),
            int("completed_at"),
            text("kind"),
        ],
        order: "rowid",
        identity: Some("queued"),
    },
    Table {
        name: "artifacts",
        columns: &[
            text("id"),
            rowid("added"),
            text("run_id"),
            text("filename"),
            text("path"),
            int("size"),
            text("content_type"),
            int("created_at"),
        ],
        order: "rowid",
        identity: Some("added"),
    },
    Table {
        name: "nonces",
        columns: &[int("timestamp"), text("nonce")],
        order: "timestamp, nonce",
        identity: None,
    },
    Table {
        name: "users",
        columns: &[
            text("id"),
            text("username"),
            text("password_hash"),
            text("role"),
            text("totp_secret"),
            int("created_at"),
            text("totp_pending_secret"),
            int("totp_last_step"),
        ],
        order: "rowid",
        identity: None,
    },
    Table {
        name: "sessions",
        columns: &[
            text("id"),
            text("user_id"),
            int("created_at"),
            int("expires_at"),
            text("ip"),
        ],
        order: "rowid",
        identity: None,
    },
    Table {
        name: "audit_log",
        columns: &[
            int("id"),
            int("timestamp"),
            text("user_id"),
            text("action"),
            text("target"),
            text("details"),
            text("ip"),
            text("username"),
            text("prev_hash"),
            text("hash"),
        ],
        order: "id",
        identity: Some("id"),
    },
    Table {
        name: "meta",
        columns: &[text("key"), text("value"), int("updated_at")],
        order: "key",
        identity: None,
    },
    Table {
        name: "idempotency_keys",
        columns: &[
            text("scope"),
            text("key"),
            text("fingerprint"),
            int("created_at"),
            int("status"),
            text("content_type"),
            blob("body"),
        ],
        order: "scope, key",
        identity: None,
    },
    Table {
        name: "approvals",
        columns: &[
            text("id"),
            text("run_id"),
            text("request_id"),
            text("kind"),
            text("tool"),
            text("input"),
            text("summary"),
            text("diff"),
            text("reason"),
            text("suggestions"),
            text("status"),
            int("created_at"),
            int("expires_at"),
            text("decided_by"),
            int("decided_at"),
            text("scope"),
            text("message"),
            text("answers"),
            text("command_id"),
            rowid("position"),
        ],
        order: "rowid",
        identity: Some("position"),
    },
    Table {
        name: "notify_channels",
        columns: &[
            text("id"),
            text("user_id"),
            text("kind"),
            text("name"),
            text("target"),
            text("secret"),
            text("events"),
            text("scope"),
            int("created_at"),
        ],
        order: "rowid",
        identity: None,
    },
    Table {
        name: "outbox",
        columns: &[
            text("id"),
            text("channel_id"),
            text("kind"),
            text("run_id"),
            text("payload"),
            text("status"),
            int("attempts"),
            int("next_at"),
            text("last_error"),
            int("created_at"),
            int("done_at"),
        ],
        order: "rowid",
        identity: None,
    },
];

/// One value as read from SQLite.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    /// Bytes it takes, to bound a batch.
    pub(super) fn size(&self) -> usize {
        match self {
            Self::Null | Self::Int(_) => 8,
            Self::Text(s) => s.len(),
            Self::Blob(b) => b.len(),
        }
    }
}

/// The statement casts each parameter to its column's [`Kind`], so a
/// value only has to encode as that type.
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Int(n) => n.to_sql(ty, out),
            Self::Text(s) => s.to_sql(ty, out),
            Self::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty)
            || <String as ToSql>::accepts(ty)
            || <Vec<u8> as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// What the reader of the snapshot sends the writer.
pub(super) enum Read {
    /// Rows of `TABLES[table]`, in its order.
    Rows { table: usize, rows: Vec<Vec<Value>> },
    /// Every table was read: the copy may be committed.
    Done,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(
        "the PostgreSQL database {database} is not empty ({tables}): \
         copy into a new, empty database (createdb NAME)"
    )]
    NotEmpty { database: String, tables: String },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("after the copy the rows differ: {0}")]
    Counts(String),
    #[error("the audit chain does not verify in PostgreSQL: entry {id}: {reason}")]
    Chain { id: i64, reason: String },
    #[error("the copy stopped: {0}")]
    Stopped(String),
}

/// What was copied and checked.
#[derive(Debug)]
pub struct Copied {
    /// When the SQLite snapshot was taken (Unix ms).
    pub snapshot_at: i64,
    pub tables: Vec<CopiedTable>,
    pub audit_checked: u64,
    /// Something was committed to SQLite after the snapshot.
    pub changed_since: bool,
}

/// Changes of the target store go nowhere: nothing serves from it yet.
struct Discard;

impl ChangeSink for Discard {
    fn publish(&self, _: Change) {}
}

/// An empty PostgreSQL database with clawd's schema, to copy into.
pub struct CopyTarget {
    store: PgStore,
    shown_url: String,
}

/// How often the copy reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

impl CopyTarget {
    /// Connects, brings the schema up to date (as a gateway starting on it
    /// would) and refuses a database whose tables hold rows.
    pub async fn open(settings: PgSettings) -> Result<Self, CopyError> {
        let shown_url = settings.url.redacted();
        let store = PgStore::open(settings, Arc::new(Discard)).await?;
        let target = Self { store, shown_url };
        let counts = target.store.rows_per_table().await?;
        target.refuse_rows(&counts)?;
        Ok(target)
    }

    fn refuse_rows(&self, counts: &[u64]) -> Result<(), CopyError> {
        let held: Vec<String> = TABLES
            .iter()
            .zip(counts)
            .filter(|(_, n)| **n > 0)
            .map(|(t, n)| format!("{} has {n} rows", t.name))
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        Err(CopyError::NotEmpty {
            database: self.shown_url.clone(),
            tables: held.join(", "),
        })
    }

    /// Copies a snapshot of the SQLite database at `source`, reporting
    /// on `progress`, then checks the copy.
    pub async fn copy_from(
        self,
        source: PathBuf,
        progress: &mpsc::Sender<CopyLine>,
    ) -> Result<Copied, CopyError> {
        let snapshot = tokio::task::spawn_blocking(move || export::Snapshot::take(&source))
            .await
            .map_err(|e| CopyError::Stopped(format!("reading SQLite failed: {e}")))??;
        let counts = snapshot.counts.clone();
        let snapshot_at = snapshot.taken_at;
        let total: u64 = counts.iter().sum();

        let (tx, rx) = mpsc::channel::<Read>(4);
        let reader = tokio::task::spawn_blocking(move || {
            let read = snapshot.stream(&tx);
            (snapshot, read)
        });
        let mut done = 0u64;
        let mut reported: Option<Instant> = None;
        let mut report = |table: usize, rows: u64| {
            done += rows;
            if reported.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY) || done == total {
                reported = Some(Instant::now());
                // Progress only: a full channel loses a line, never the copy.
                let _ = progress.try_send(CopyLine::Progress {
                    table: TABLES.get(table).map_or("", |t| t.name).to_owned(),
                    copied: done,
                    total,
                });
            }
        };
        let imported = self.store.import(rx, &mut report).await;
        let (snapshot, read) = reader
            .await
            .map_err(|e| CopyError::Stopped(format!("reading SQLite failed: {e}")))?;
        // A failed read closes the channel early: its error says more.
        read?;
        imported?;

        let _ = progress.send(CopyLine::Checking).await;
        let target = self.store.rows_per_table().await?;
        let tables: Vec<CopiedTable> = TABLES
            .iter()
            .zip(counts.iter().zip(&target))
            .map(|(t, (source, target))| CopiedTable {
                table: t.name.to_owned(),
                source: *source,
                target: *target,
            })
            .collect();
        let differ: Vec<String> = tables
            .iter()
            .filter(|t| t.source != t.target)
            .map(|t| {
                format!(
                    "{}: {} in SQLite, {} in PostgreSQL",
                    t.table, t.source, t.target
                )
            })
            .collect();
        if !differ.is_empty() {
            return Err(CopyError::Counts(differ.join("; ")));
        }
        let verdict = self.store.verify_audit_chain().await?;
        if let Some((id, reason)) = verdict.broken {
            return Err(CopyError::Chain { id, reason });
        }
        let audit_rows = tables
            .iter()
            .find(|t| t.table == "audit_log")
            .map_or(0, |t| t.source);
        if verdict.checked != audit_rows {
            return Err(CopyError::Counts(format!(
                "the audit chain has {} entries in PostgreSQL, {audit_rows} were copied",
                verdict.checked
            )));
        }
        let changed_since = tokio::task::spawn_blocking(move || snapshot.changed_since())
            .await
            .map_err(|e| CopyError::Stopped(format!("reading SQLite failed: {e}")))??;
        Ok(Copied {
            snapshot_at,
            tables,
            audit_checked: verdict.checked,
            changed_since,
        })
    }
}
