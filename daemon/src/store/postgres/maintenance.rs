//! Housekeeping and facts about the database, on PostgreSQL: pruning,
//! purging what expired, reconciling runs with their markers, and status.
//! What SQLite does to its file (checkpoints, integrity pragmas) is
//! PostgreSQL's own business; those answers say so. Backups are
//! `pg_dump`'s (dump.rs).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use claw_proto::control::{DatabaseSummary, DbCheck, DbStatus, Finding, PoolUse};
use deadpool_postgres::GenericClient;

use super::{PgStore, approvals, dump, migrate, notify, unbig};
use crate::clock::now_ms;
use crate::store::drift::{self, Drift, SequenceGap, UnfinishedRun};
use crate::store::{
    Change, CopyError, DbCopy, Expired, MaintenanceStore, PruneCandidate, StatusChange, StoreError,
    WriterStats,
};

/// How long delivered and dead-lettered notifications are kept (as SQLite).
const NOTIFICATIONS_KEPT_MS: i64 = 7 * 24 * 3600 * 1000;
/// Outbox rows done with before `$1`.
const FINISHED_NOTIFICATIONS: &str =
    "status IN ('delivered', 'dead') AND COALESCE(done_at, created_at) < $1";
/// Failed logins older than this are past every login window (15 min).
const LOGIN_FAILURES_KEPT_MS: i64 = 24 * 3600 * 1000;
/// Events deleted per transaction when pruning a run.
const EVENT_BATCH: i64 = 5000;

pub(super) const TABLES: &[&str] = &[
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
    "hosts",
    "login_failures",
];

impl PgStore {
    /// Asks the server for the database's size and keeps it for `summary`.
    pub(super) async fn refresh_size(&self, conn: &impl GenericClient) -> Result<u64, StoreError> {
        let size: i64 = conn
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await?
            .get(0);
        let size = unbig(size);
        self.inner.size_bytes.store(size, Ordering::Relaxed);
        Ok(size)
    }
}

/// Whether the run is still finished and old, its row locked against an
/// ingest reviving it (which locks it `FOR NO KEY UPDATE`) until commit.
async fn still_prunable(
    conn: &impl GenericClient,
    run_id: &str,
    cutoff: i64,
) -> Result<bool, StoreError> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM runs WHERE id = $1 \
               AND status IN ('done', 'failed', 'stopped') \
               AND COALESCE(finished_at, created_at) < $2 FOR UPDATE",
            &[&run_id, &cutoff],
        )
        .await?
        .is_some())
}

async fn count(conn: &impl GenericClient, sql: &str, arg: i64) -> Result<u64, StoreError> {
    let n: i64 = conn.query_one(sql, &[&arg]).await?.get(0);
    Ok(unbig(n))
}

#[async_trait]
impl MaintenanceStore for PgStore {
    /// The size is the one last asked for (at open, ping or status): this
    /// answers without a round trip.
    fn summary(&self) -> DatabaseSummary {
        DatabaseSummary {
            path: self.inner.shown_url.clone(),
            size_bytes: self.inner.size_bytes.load(Ordering::Relaxed),
            schema_version: migrate::latest_version(),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        self.refresh_size(&conn).await?;
        Ok(())
    }

    /// Every write is committed before it is answered: nothing is held.
    /// Waits for a commit still publishing its changes.
    async fn drain(&self) -> Result<(), StoreError> {
        drop(self.inner.publish.lock().await);
        Ok(())
    }

    /// No log to fold in: PostgreSQL's WAL is the server's. The pool's
    /// connections close as the store is dropped.
    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// There is no single writer: commits counted through this store, and
    /// each of them is one write.
    fn writer_stats(&self) -> WriterStats {
        let commits = self.inner.commits.load(Ordering::Relaxed);
        WriterStats {
            commits,
            writes: commits,
        }
    }

    fn set_nonce_retention(&self, secs: u64) {
        self.inner
            .nonce_retention_secs
            .store(secs, Ordering::Relaxed);
    }

    /// The server's version, the schema's, the database's size (also in
    /// blocks, SQLite's pages), the rows per table and the pool's use.
    async fn db_status(&self) -> Result<DbStatus, StoreError> {
        let conn = self.conn().await?;
        let mut tables = Vec::new();
        for table in TABLES {
            tables.push(((*table).to_owned(), dump::count_rows(&conn, table).await?));
        }
        let version = migrate::current_version(&conn).await?;
        let row = conn
            .query_one(
                "SELECT current_setting('server_version'), \
                        current_setting('block_size')::bigint",
                &[],
            )
            .await?;
        let server: String = row.get(0);
        let block: i64 = row.get(1);
        let size_bytes = self.refresh_size(&conn).await?;
        let pool = self.inner.pool.status();
        let page_size = unbig(block).max(1);
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(DbStatus {
            backend: "postgres".to_owned(),
            schema_version: version,
            latest_schema_version: migrate::latest_version(),
            migrations: migrate::applied(version),
            page_size,
            page_count: size_bytes / page_size,
            freelist_count: 0,
            journal_mode: None,
            tables,
            path: self.inner.shown_url.clone(),
            size_bytes,
            // The WAL is the whole server's, not this database's.
            wal_bytes: 0,
            server_version: Some(server),
            pool: Some(PoolUse {
                in_use: count(pool.size.saturating_sub(pool.available)),
                open: count(pool.size),
                max: count(pool.max_size),
            }),
        })
    }

    /// PostgreSQL enforces foreign keys on every write and checksums its
    /// pages itself (when the cluster has them): what can be checked from
    /// here is that the schema is the one this build expects.
    async fn db_check(&self) -> Result<DbCheck, StoreError> {
        let conn = self.conn().await?;
        let version = migrate::current_version(&conn).await?;
        let latest = migrate::latest_version();
        let integrity = if version == latest {
            Vec::new()
        } else {
            vec![format!(
                "schema version {version}, but this build expects {latest}"
            )]
        };
        Ok(DbCheck {
            ok: integrity.is_empty(),
            integrity,
            foreign_keys: Vec::new(),
        })
    }

    /// `pg_dump --format=custom` of one snapshot ([`PgStore::dump_to`]).
    async fn copy_for_backup(&self, target: PathBuf) -> Result<DbCopy, CopyError> {
        self.dump_to(target).await
    }

    async fn meta(&self, key: &'static str) -> Result<Option<(String, i64)>, StoreError> {
        let conn = self.conn().await?;
        Ok(conn
            .query_opt("SELECT value, updated_at FROM meta WHERE key = $1", &[&key])
            .await?
            .map(|r| (r.get(0), r.get(1))))
    }

    async fn set_meta(&self, key: &'static str, value: String) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO meta (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
            &[&key, &value, &now_ms()],
        )
        .await?;
        self.inner.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn claim_meta(&self, key: &'static str, value: String) -> Result<String, StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO meta (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO NOTHING",
            &[&key, &value, &now_ms()],
        )
        .await?;
        Ok(conn
            .query_one("SELECT value FROM meta WHERE key = $1", &[&key])
            .await?
            .get(0))
    }

    async fn delete_meta(&self, key: &'static str) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute("DELETE FROM meta WHERE key = $1", &[&key])
            .await?;
        Ok(())
    }

    async fn prune_candidates(&self, cutoff: i64) -> Result<Vec<PruneCandidate>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT r.id, \
                    (SELECT count(*) FROM events e WHERE e.run_id = r.id), \
                    (SELECT COALESCE(SUM(length(e.data)), 0)::bigint FROM events e \
                       WHERE e.run_id = r.id) \
                 FROM runs r WHERE r.status IN ('done', 'failed', 'stopped') \
                   AND COALESCE(r.finished_at, r.created_at) < $1 \
                 ORDER BY COALESCE(r.finished_at, r.created_at), r.id",
                &[&cutoff],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| PruneCandidate {
                id: r.get(0),
                events: unbig(r.get(1)),
                event_bytes: unbig(r.get(2)),
            })
            .collect())
    }

    async fn run_children(&self, run_id: String) -> Result<(u64, Vec<String>), StoreError> {
        let conn = self.conn().await?;
        let commands: i64 = conn
            .query_one(
                "SELECT count(*) FROM commands WHERE run_id = $1",
                &[&run_id],
            )
            .await?
            .get(0);
        let paths = conn
            .query("SELECT path FROM artifacts WHERE run_id = $1", &[&run_id])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok((unbig(commands), paths))
    }

    /// Events go in batches of their own transactions, then the run with
    /// what cascades from it (commands, artifacts, approvals). Each step
    /// locks the run and checks it is still finished and old, so a run a
    /// runner revived is left. Outbox rows stay, as on SQLite: they are
    /// delivered and purged on their own schedule.
    async fn prune_run(&self, run_id: String, cutoff: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        loop {
            let tx = conn.transaction().await?;
            if !still_prunable(&tx, &run_id, cutoff).await? {
                return Ok(false);
            }
            let n = tx
                .execute(
                    "DELETE FROM events WHERE id IN \
                     (SELECT id FROM events WHERE run_id = $1 LIMIT $2)",
                    &[&run_id, &EVENT_BATCH],
                )
                .await?;
            self.commit(tx, Vec::new()).await?;
            if n < unbig(EVENT_BATCH) {
                break;
            }
        }
        let tx = conn.transaction().await?;
        if !still_prunable(&tx, &run_id, cutoff).await? {
            return Ok(false);
        }
        tx.execute("DELETE FROM runs WHERE id = $1", &[&run_id])
            .await?;
        self.commit(tx, Vec::new()).await?;
        Ok(true)
    }

    async fn run_ids(&self) -> Result<HashSet<String>, StoreError> {
        let conn = self.conn().await?;
        Ok(conn
            .query("SELECT id FROM runs", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn expired_counts(&self, keys_before: i64) -> Result<Expired, StoreError> {
        let cutoff = self.nonce_cutoff();
        let now = now_ms();
        let conn = self.conn().await?;
        Ok(Expired {
            sessions: count(
                &conn,
                "SELECT count(*) FROM sessions WHERE expires_at <= $1",
                now,
            )
            .await?,
            nonces: count(
                &conn,
                "SELECT count(*) FROM nonces WHERE timestamp < $1",
                cutoff,
            )
            .await?,
            idempotency_keys: count(
                &conn,
                "SELECT count(*) FROM idempotency_keys WHERE created_at < $1",
                keys_before,
            )
            .await?,
            notifications: count(
                &conn,
                &format!("SELECT count(*) FROM outbox WHERE {FINISHED_NOTIFICATIONS}"),
                now - NOTIFICATIONS_KEPT_MS,
            )
            .await?,
        })
    }

    /// Also drops failed logins past every window (not counted: the
    /// service keeps its own counts in memory until it uses the store's).
    async fn purge_expired(&self, keys_before: i64) -> Result<Expired, StoreError> {
        let cutoff = self.nonce_cutoff();
        let now = now_ms();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let sessions = tx
            .execute("DELETE FROM sessions WHERE expires_at <= $1", &[&now])
            .await?;
        let nonces = tx
            .execute("DELETE FROM nonces WHERE timestamp < $1", &[&cutoff])
            .await?;
        let idempotency_keys = tx
            .execute(
                "DELETE FROM idempotency_keys WHERE created_at < $1",
                &[&keys_before],
            )
            .await?;
        let notifications = tx
            .execute(
                &format!("DELETE FROM outbox WHERE {FINISHED_NOTIFICATIONS}"),
                &[&(now - NOTIFICATIONS_KEPT_MS)],
            )
            .await?;
        tx.execute(
            "DELETE FROM login_failures WHERE at < $1",
            &[&(now - LOGIN_FAILURES_KEPT_MS)],
        )
        .await?;
        let changes = if sessions > 0 {
            vec![Change::SessionsChanged]
        } else {
            Vec::new()
        };
        self.commit(tx, changes).await?;
        Ok(Expired {
            sessions,
            nonces,
            idempotency_keys,
            notifications,
        })
    }

    /// As SQLite's: runs whose status disagrees with their last marker,
    /// runs `running` without an event for `stale_ms`, gaps in sequences;
    /// with `fix`, statuses set in one transaction, which also cancels an
    /// ended run's approvals and queues its notification.
    async fn reconcile_store(&self, stale_ms: i64, fix: bool) -> Result<Vec<Finding>, StoreError> {
        let mut conn = self.conn().await?;
        let unfinished = conn
            .query(
                "SELECT r.id, r.status, r.stop_requested_at, \
                   (SELECT e.data FROM events e WHERE e.run_id = r.id AND e.type = 'marker' \
                      AND e.data LIKE '%finished%' ORDER BY e.sequence DESC LIMIT 1), \
                   (SELECT count(*) FROM events e WHERE e.run_id = r.id AND e.type = 'marker' \
                      AND e.data LIKE '%started%') \
                 FROM runs r WHERE r.status IN ('pending', 'running', 'waiting') ORDER BY r.id",
                &[],
            )
            .await?
            .iter()
            .map(|row| UnfinishedRun {
                id: row.get(0),
                status: row.get(1),
                stop_requested: row.get::<_, Option<i64>>(2).is_some(),
                finished_marker: row.get(3),
                started_markers: unbig(row.get(4)),
            })
            .collect();
        let cutoff = now_ms() - stale_ms;
        let stale: Vec<String> = conn
            .query(
                "SELECT r.id FROM runs r WHERE r.status IN ('running', 'waiting') AND \
                   COALESCE((SELECT MAX(e.timestamp) FROM events e WHERE e.run_id = r.id), \
                            r.started_at, r.created_at) < $1 ORDER BY r.id",
                &[&cutoff],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let gaps = conn
            .query(
                "SELECT run_id, count(*), MAX(sequence) FROM events GROUP BY run_id \
                 HAVING MAX(sequence) != count(*) ORDER BY run_id",
                &[],
            )
            .await?
            .iter()
            .map(|row| SequenceGap {
                run_id: row.get(0),
                count: unbig(row.get(1)),
                max: unbig(row.get(2)),
            })
            .collect();
        let Drift {
            mut findings,
            fixes,
        } = drift::judge(unfinished, stale, gaps, stale_ms);
        if !fix {
            return Ok(findings);
        }
        let tx = conn.transaction().await?;
        let mut changes = Vec::new();
        let mut fixed = Vec::new();
        for f in fixes {
            let now = now_ms();
            // Only a run still unfinished: an ingest may have ended it since.
            let n = tx
                .execute(
                    "UPDATE runs SET status = $2, exit_code = COALESCE($3, exit_code), \
                     finished_at = CASE WHEN $2 IN ('done', 'failed', 'stopped') \
                       THEN COALESCE(finished_at, $4) ELSE finished_at END, \
                     started_at = COALESCE(started_at, $4) \
                     WHERE id = $1 AND status IN ('pending', 'running', 'waiting')",
                    &[&f.run_id, &f.status.as_str(), &f.exit_code, &now],
                )
                .await?;
            if n > 0 {
                if f.status.is_finished() {
                    approvals::cancel_open(&tx, &f.run_id, now, &mut changes).await?;
                    notify::run_ended(&tx, &f.run_id, f.status, f.exit_code, now).await?;
                }
                changes.push(Change::RunStatus(StatusChange {
                    run_id: f.run_id.clone(),
                    status: f.status,
                    exit_code: f.exit_code,
                }));
                fixed.push(f.run_id);
            }
        }
        self.commit(tx, changes).await?;
        drift::mark_fixed(&mut findings, &fixed);
        Ok(findings)
    }
}
