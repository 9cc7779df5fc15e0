//! Drift between what the store says and what its own records (markers,
//! sequences) or the disk say.

use claw_proto::control::Finding;
use rusqlite::params;

use super::SqliteStore;
use crate::clock::now_ms;
use crate::store::drift::{self, Drift, SequenceGap, UnfinishedRun};
use crate::store::{Change, StatusChange, StoreError};

impl SqliteStore {
    /// Runs whose status disagrees with their last marker, runs `running`
    /// without an event for `stale_ms`, and gaps in event sequences.
    pub(super) async fn reconcile(
        &self,
        stale_ms: i64,
        fix: bool,
    ) -> Result<Vec<Finding>, StoreError> {
        let (unfinished, stale, gaps) = self
            .read(move |conn| {
                // The last finished marker and the started markers of every
                // unfinished run.
                let unfinished = conn
                    .prepare(
                        "SELECT r.id, r.status, r.stop_requested_at, \
                           (SELECT e.data FROM events e WHERE e.run_id = r.id AND e.type = 'marker' \
                              AND e.data LIKE '%finished%' ORDER BY e.sequence DESC LIMIT 1), \
                           (SELECT COUNT(*) FROM events e WHERE e.run_id = r.id AND e.type = 'marker' \
                              AND e.data LIKE '%started%') \
                         FROM runs r WHERE r.status IN ('pending', 'running', 'waiting') ORDER BY r.id",
                    )?
                    .query_map([], |r| {
                        Ok(UnfinishedRun {
                            id: r.get(0)?,
                            status: r.get(1)?,
                            stop_requested: r.get::<_, Option<i64>>(2)?.is_some(),
                            finished_marker: r.get(3)?,
                            started_markers: r.get(4)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                // Running runs nobody has heard from.
                let cutoff = now_ms() - stale_ms;
                let stale: Vec<String> = conn
                    .prepare(
                        "SELECT r.id FROM runs r WHERE r.status IN ('running', 'waiting') AND \
                           COALESCE((SELECT MAX(e.timestamp) FROM events e WHERE e.run_id = r.id), \
                                    r.started_at, r.created_at) < ?1 ORDER BY r.id",
                    )?
                    .query_map([cutoff], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let gaps = conn
                    .prepare(
                        "SELECT run_id, COUNT(*), MAX(sequence) FROM events GROUP BY run_id \
                         HAVING MAX(sequence) != COUNT(*) ORDER BY run_id",
                    )?
                    .query_map([], |r| {
                        Ok(SequenceGap {
                            run_id: r.get(0)?,
                            count: r.get(1)?,
                            max: r.get(2)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((unfinished, stale, gaps))
            })
            .await?;
        let Drift {
            mut findings,
            fixes,
        } = drift::judge(unfinished, stale, gaps, stale_ms);
        if fix {
            let fixed: Vec<String> = self
                .writer()
                .write_changes(move |conn, changes| {
                    let mut fixed = Vec::new();
                    for f in fixes {
                        let n = conn.execute(
                            "UPDATE runs SET status = ?2, exit_code = COALESCE(?3, exit_code), \
                             finished_at = CASE WHEN ?2 IN ('done', 'failed', 'stopped') THEN COALESCE(finished_at, ?4) ELSE finished_at END, \
                             started_at = COALESCE(started_at, ?4) \
                             WHERE id = ?1 AND status IN ('pending', 'running', 'waiting')",
                            params![f.run_id, f.status.as_str(), f.exit_code, now_ms()],
                        )?;
                        if n > 0 {
                            if f.status.is_finished() {
                                super::approvals::cancel_open(conn, &f.run_id, now_ms(), changes)?;
                                super::notify::run_ended(conn, &f.run_id, f.status, f.exit_code, now_ms())?;
                            }
                            changes.push(Change::RunStatus(StatusChange {
                                run_id: f.run_id.clone(),
                                status: f.status,
                                exit_code: f.exit_code,
                            }));
                            fixed.push(f.run_id);
                        }
                    }
                    Ok(fixed)
                })
                .await?;
            drift::mark_fixed(&mut findings, &fixed);
        }
        Ok(findings)
    }
}
