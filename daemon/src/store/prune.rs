//! Pruning: finished runs past the retention go with their events, commands
//! and artifacts, in bounded batches so that ingest never waits long.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::{Store, StoreError, now_ms};

/// Events deleted per transaction: small enough that a concurrent ingest
/// waits only milliseconds for the writer.
const EVENT_BATCH: usize = 5000;

/// A run that pruning removes.
#[derive(Debug, Clone)]
pub struct PruneCandidate {
    pub id: String,
    pub events: u64,
    pub event_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
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
}

impl Store {
    /// Finished runs (done, failed, stopped) that ended before `cutoff`
    /// (Unix ms), oldest first. Running and pending runs are never listed.
    pub async fn prune_candidates(&self, cutoff: i64) -> Result<Vec<PruneCandidate>, StoreError> {
        self.read(move |conn| {
            let rows = conn
                .prepare(
                    "SELECT r.id, \
                        (SELECT COUNT(*) FROM events e WHERE e.run_id = r.id), \
                        (SELECT COALESCE(SUM(LENGTH(e.data)), 0) FROM events e WHERE e.run_id = r.id) \
                     FROM runs r WHERE r.status IN ('done', 'failed', 'stopped') \
                       AND COALESCE(r.finished_at, r.created_at) < ?1 \
                     ORDER BY COALESCE(r.finished_at, r.created_at)",
                )?
                .query_map([cutoff], |r| {
                    Ok(PruneCandidate {
                        id: r.get(0)?,
                        events: r.get(1)?,
                        event_bytes: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Counts of commands and artifact rows of a run, and its artifacts' paths.
    pub async fn run_children(&self, run_id: String) -> Result<(u64, Vec<String>), StoreError> {
        self.read(move |conn| {
            let commands: u64 = conn.query_row(
                "SELECT COUNT(*) FROM commands WHERE run_id = ?1",
                [&run_id],
                |r| r.get(0),
            )?;
            let paths = conn
                .prepare("SELECT path FROM artifacts WHERE run_id = ?1")?
                .query_map([&run_id], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok((commands, paths))
        })
        .await
    }

    /// Deletes one finished run, its events in batches first. Refuses (and
    /// leaves it) if the run is no longer finished and old, so a run that a
    /// runner revived is never touched.
    pub async fn prune_run(&self, run_id: String, cutoff: i64) -> Result<bool, StoreError> {
        loop {
            let id = run_id.clone();
            let deleted = self
                .writer()
                .write(move |conn| {
                    if !still_prunable(conn, &id, cutoff)? {
                        return Ok(None);
                    }
                    Ok(Some(conn.execute(
                        "DELETE FROM events WHERE id IN \
                         (SELECT id FROM events WHERE run_id = ?1 LIMIT ?2)",
                        params![id, EVENT_BATCH],
                    )?))
                })
                .await?;
            match deleted {
                None => return Ok(false),
                Some(n) if n == EVENT_BATCH => continue,
                Some(_) => break,
            }
        }
        let id = run_id.clone();
        self.writer()
            .write(move |conn| {
                if !still_prunable(conn, &id, cutoff)? {
                    return Ok(false);
                }
                conn.execute("DELETE FROM runs WHERE id = ?1", [&id])?;
                Ok(true)
            })
            .await
    }

    /// Ids of every run (to find artifact folders that belong to none).
    pub async fn run_ids(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        self.read(|conn| {
            let ids = conn
                .prepare("SELECT id FROM runs")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(ids)
        })
        .await
    }

    /// Expired sessions and nonces that a purge would remove.
    pub async fn expired_counts(&self) -> Result<(u64, u64), StoreError> {
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
            Ok((sessions, nonces))
        })
        .await
    }

    /// Records a fact such as `last_prune` with the time it happened.
    pub async fn set_meta(&self, key: &'static str, value: String) -> Result<(), StoreError> {
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
}

fn still_prunable(conn: &Connection, run_id: &str, cutoff: i64) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM runs WHERE id = ?1 \
           AND status IN ('done', 'failed', 'stopped') \
           AND COALESCE(finished_at, created_at) < ?2)",
        params![run_id, cutoff],
        |r| r.get(0),
    )?)
}
