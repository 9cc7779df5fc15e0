//! Housekeeping, jobs and facts about the database for administrators.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use claw_proto::control::{DatabaseSummary, DbCheck, DbStatus, Finding};
use rusqlite::{Connection, OptionalExtension, params};

use super::{CHECKPOINT_AT_STOP_WAIT, SqliteStore, migrate, nonces, wal_path};
use crate::clock::now_ms;
use crate::store::{
    CopyError, DbCopy, Expired, MaintenanceStore, PruneCandidate, StoreError, WriterStats,
};

/// How long delivered and dead-lettered notifications are kept.
const NOTIFICATIONS_KEPT_MS: i64 = 7 * 24 * 3600 * 1000;
/// Outbox rows done with before `?1`.
const FINISHED_NOTIFICATIONS: &str =
    "status IN ('delivered', 'dead') AND COALESCE(done_at, created_at) < ?1";

const TABLES: &[&str] = &[
    "runs",
    "events",
    "commands",
    "artifacts",
    "nonces",
    "users",
    "sessions",
    "audit_log",
    "idempotency_keys",
    "approvals",
    "notify_channels",
    "outbox",
];

fn pragma_u64(conn: &Connection, name: &str) -> Result<u64, StoreError> {
    Ok(conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[async_trait]
impl MaintenanceStore for SqliteStore {
    fn summary(&self) -> DatabaseSummary {
        let path = &self.inner.path;
        DatabaseSummary {
            path: path.display().to_string(),
            size_bytes: file_size(path) + file_size(&wal_path(path)),
            schema_version: migrate::latest_version(),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.writer()
            .write(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await?;
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await?;
        Ok(())
    }

    async fn drain(&self) -> Result<(), StoreError> {
        let nonces = std::sync::Arc::clone(&self.inner.nonce_check.held);
        self.writer()
            .write(move |_| {
                nonces::lock(&nonces).write_at_commit();
                Ok(())
            })
            .await
    }

    /// Copies the whole log into the database and truncates it to nothing,
    /// so a stopped gateway leaves no log of up to 68 MB beside it. Run at
    /// shutdown, after the writer has drained; on its own connection, since
    /// a checkpoint cannot run inside the writer's transactions.
    async fn close(&self) -> Result<(), StoreError> {
        let path = self.inner.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = Connection::open(&path)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            // Busy (the first column) when the checkpointer thread is in a
            // checkpoint of its own: SQLite does not wait for that lock, so
            // this does, for a while. A reader still in a transaction can
            // hold it back too; then the log stays for the next start.
            let deadline = std::time::Instant::now() + CHECKPOINT_AT_STOP_WAIT;
            loop {
                let busy: i64 =
                    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
                if busy == 0 {
                    return Ok(());
                }
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::Busy(
                        "the database log is still in use; it stays until the next start"
                            .to_owned(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("the final checkpoint failed: {e}")))?
    }

    fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    fn set_nonce_retention(&self, secs: u64) {
        self.inner
            .nonce_retention_secs
            .store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    async fn db_status(&self) -> Result<DbStatus, StoreError> {
        let path = self.inner.path.clone();
        self.read(move |conn| {
            let mut tables = Vec::new();
            for table in TABLES {
                let n: u64 =
                    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
                tables.push(((*table).to_owned(), n));
            }
            let version = migrate::current_version(conn)?;
            Ok(DbStatus {
                backend: "sqlite".to_owned(),
                schema_version: version,
                latest_schema_version: migrate::latest_version(),
                migrations: migrate::applied(version),
                page_size: pragma_u64(conn, "page_size")?,
                page_count: pragma_u64(conn, "page_count")?,
                freelist_count: pragma_u64(conn, "freelist_count")?,
                journal_mode: Some(conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?),
                tables,
                path: path.display().to_string(),
                size_bytes: file_size(&path),
                wal_bytes: file_size(&wal_path(&path)),
                server_version: None,
                pool: None,
            })
        })
        .await
    }

    async fn db_check(&self) -> Result<DbCheck, StoreError> {
        self.read(|conn| {
            let integrity: Vec<String> = conn
                .prepare("PRAGMA integrity_check")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?
                .into_iter()
                .filter(|line| line != "ok")
                .collect();
            let foreign_keys = conn
                .prepare("PRAGMA foreign_key_check")?
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get::<_, Option<i64>>(1)?.unwrap_or(-1),
                        r.get(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(DbCheck {
                ok: integrity.is_empty() && foreign_keys.is_empty(),
                integrity,
                foreign_keys,
            })
        })
        .await
    }

    /// `VACUUM INTO` inside one read transaction: concurrent writers are
    /// not blocked.
    async fn copy_for_backup(&self, target: PathBuf) -> Result<DbCopy, CopyError> {
        self.read(move |conn| {
            let target = target
                .to_str()
                .ok_or_else(|| StoreError::Conflict("backup path is not UTF-8".to_owned()))?
                .to_owned();
            conn.execute("VACUUM INTO ?1", [target])?;
            Ok(())
        })
        .await?;
        Ok(DbCopy {
            name: "db.sqlite",
            store: "sqlite",
            schema_version: SqliteStore::schema_version(),
            tables: Vec::new(),
        })
    }

    async fn meta(&self, key: &'static str) -> Result<Option<(String, i64)>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT value, updated_at FROM meta WHERE key = ?1")?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
        })
        .await
    }

    async fn set_meta(&self, key: &'static str, value: String) -> Result<(), StoreError> {
        self.writer()
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO meta (key, value, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    params![key, value, now_ms()],
                )?;
                Ok(())
            })
            .await
    }

    async fn claim_meta(&self, key: &'static str, value: String) -> Result<String, StoreError> {
        self.writer()
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO meta (key, value, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT(key) DO NOTHING",
                    params![key, value, now_ms()],
                )?;
                Ok(conn
                    .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                    .query_row([key], |r| r.get(0))?)
            })
            .await
    }

    async fn delete_meta(&self, key: &'static str) -> Result<(), StoreError> {
        self.writer()
            .write(move |conn| {
                conn.execute("DELETE FROM meta WHERE key = ?1", [key])?;
                Ok(())
            })
            .await
    }

    async fn prune_candidates(&self, cutoff: i64) -> Result<Vec<PruneCandidate>, StoreError> {
        self.candidates(cutoff).await
    }

    async fn run_children(&self, run_id: String) -> Result<(u64, Vec<String>), StoreError> {
        self.children(run_id).await
    }

    async fn prune_run(&self, run_id: String, cutoff: i64) -> Result<bool, StoreError> {
        self.prune(run_id, cutoff).await
    }

    async fn run_ids(&self) -> Result<HashSet<String>, StoreError> {
        self.read(|conn| {
            let ids = conn
                .prepare("SELECT id FROM runs")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(ids)
        })
        .await
    }

    async fn expired_counts(&self, keys_before: i64) -> Result<Expired, StoreError> {
        let cutoff = self.nonce_cutoff();
        self.read(move |conn| {
            let now = now_ms();
            let sessions = conn.query_row(
                "SELECT COUNT(*) FROM sessions WHERE expires_at <= ?1",
                [now],
                |r| r.get(0),
            )?;
            let nonces = conn.query_row(
                "SELECT (SELECT COUNT(*) FROM nonces WHERE timestamp < ?1) \
                 + (SELECT COUNT(*) FROM nonces_legacy WHERE expires_at <= ?2)",
                [cutoff, now],
                |r| r.get(0),
            )?;
            let idempotency_keys = conn.query_row(
                "SELECT COUNT(*) FROM idempotency_keys WHERE created_at < ?1",
                [keys_before],
                |r| r.get(0),
            )?;
            let notifications = conn.query_row(
                &format!("SELECT COUNT(*) FROM outbox WHERE {FINISHED_NOTIFICATIONS}"),
                [now - NOTIFICATIONS_KEPT_MS],
                |r| r.get(0),
            )?;
            Ok(Expired {
                sessions,
                nonces,
                idempotency_keys,
                notifications,
            })
        })
        .await
    }

    async fn purge_expired(&self, keys_before: i64) -> Result<Expired, StoreError> {
        let cutoff = self.nonce_cutoff();
        self.writer()
            .write_changes(move |conn, changes| {
                let now = now_ms();
                let sessions =
                    conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
                let nonces = conn.execute("DELETE FROM nonces WHERE timestamp < ?1", [cutoff])?
                    + conn.execute("DELETE FROM nonces_legacy WHERE expires_at <= ?1", [now])?;
                let idempotency_keys = conn.execute(
                    "DELETE FROM idempotency_keys WHERE created_at < ?1",
                    [keys_before],
                )?;
                let notifications = conn.execute(
                    &format!("DELETE FROM outbox WHERE {FINISHED_NOTIFICATIONS}"),
                    [now - NOTIFICATIONS_KEPT_MS],
                )?;
                if sessions > 0 {
                    changes.push(crate::store::Change::SessionsChanged);
                }
                Ok(Expired {
                    sessions: sessions as u64,
                    nonces: nonces as u64,
                    idempotency_keys: idempotency_keys as u64,
                    notifications: notifications as u64,
                })
            })
            .await
    }

    async fn reconcile_store(&self, stale_ms: i64, fix: bool) -> Result<Vec<Finding>, StoreError> {
        self.reconcile(stale_ms, fix).await
    }
}
