//! Pruning: finished runs past the retention go with their events, commands
//! and artifacts, in bounded batches so that ingest never waits long.

use rusqlite::{Connection, params};

use super::SqliteStore;
use crate::store::{PruneCandidate, StoreError};

/// Events deleted per transaction: small enough that a concurrent ingest
/// waits only milliseconds for the writer.
const EVENT_BATCH: usize = 5000;

impl SqliteStore {
    /// Finished runs (done, failed, stopped) that ended before `cutoff`
    /// (Unix ms), oldest first. Running and pending runs are never listed.
    pub(super) async fn candidates(&self, cutoff: i64) -> Result<Vec<PruneCandidate>, StoreError> {
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
    pub(super) async fn children(&self, run_id: String) -> Result<(u64, Vec<String>), StoreError> {
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
    pub(super) async fn prune(&self, run_id: String, cutoff: i64) -> Result<bool, StoreError> {
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
