//! Drift between what the store says and what its own records (markers,
//! sequences) or the disk say.

use claw_proto::control::Finding;
use claw_proto::wire::{Marker, RunStatus};
use rusqlite::params;

use super::SqliteStore;
use crate::clock::now_ms;
use crate::store::{Change, StatusChange, StoreError};

/// A status change that brings a run in line with its markers.
#[derive(Debug, Clone)]
struct StatusFix {
    run_id: String,
    status: RunStatus,
    exit_code: Option<i64>,
}

impl SqliteStore {
    /// Runs whose status disagrees with their last marker, runs `running`
    /// without an event for `stale_ms`, and gaps in event sequences.
    pub(super) async fn reconcile(
        &self,
        stale_ms: i64,
        fix: bool,
    ) -> Result<Vec<Finding>, StoreError> {
        let (mut findings, fixes, stale) = self
            .read(move |conn| {
                let mut findings = Vec::new();
                let mut fixes = Vec::new();
                // The last started/finished marker of every unfinished run.
                let mut stmt = conn.prepare(
                    "SELECT r.id, r.status, r.stop_requested_at, \
                       (SELECT e.data FROM events e WHERE e.run_id = r.id AND e.type = 'marker' \
                          AND e.data LIKE '%finished%' ORDER BY e.sequence DESC LIMIT 1), \
                       (SELECT COUNT(*) FROM events e WHERE e.run_id = r.id AND e.type = 'marker' \
                          AND e.data LIKE '%started%') \
                     FROM runs r WHERE r.status IN ('pending', 'running', 'waiting')",
                )?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<i64>>(2)?,
                            r.get::<_, Option<String>>(3)?,
                            r.get::<_, u64>(4)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                for (id, status, stop_requested, finished, started) in rows {
                    if let Some(Marker::Finished { exit_code, .. }) =
                        finished.as_deref().and_then(Marker::parse)
                    {
                        let should = if stop_requested.is_some() {
                            RunStatus::Stopped
                        } else if exit_code == Some(0) {
                            RunStatus::Done
                        } else {
                            RunStatus::Failed
                        };
                        findings.push(Finding {
                            kind: "status_mismatch".to_owned(),
                            run_id: Some(id.clone()),
                            detail: format!("status is {status} but the run has a finished marker"),
                            repair: Some(format!("set status {}", should.as_str())),
                            fixed: false,
                        });
                        fixes.push(StatusFix {
                            run_id: id,
                            status: should,
                            exit_code,
                        });
                    } else if status == "pending" && started > 0 {
                        findings.push(Finding {
                            kind: "status_mismatch".to_owned(),
                            run_id: Some(id.clone()),
                            detail: "status is pending but the run has a started marker".to_owned(),
                            repair: Some("set status running".to_owned()),
                            fixed: false,
                        });
                        fixes.push(StatusFix {
                            run_id: id,
                            status: RunStatus::Running,
                            exit_code: None,
                        });
                    }
                }
                // Running runs nobody has heard from.
                let cutoff = now_ms() - stale_ms;
                let stale: Vec<String> = conn
                    .prepare(
                        "SELECT r.id FROM runs r WHERE r.status IN ('running', 'waiting') AND \
                           COALESCE((SELECT MAX(e.timestamp) FROM events e WHERE e.run_id = r.id), \
                                    r.started_at, r.created_at) < ?1",
                    )?
                    .query_map([cutoff], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                // Sequence gaps: a run whose highest sequence exceeds its count.
                let gaps = conn
                    .prepare(
                        "SELECT run_id, COUNT(*), MAX(sequence) FROM events GROUP BY run_id \
                         HAVING MAX(sequence) != COUNT(*)",
                    )?
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, u64>(1)?,
                            r.get::<_, u64>(2)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                for (id, count, max) in gaps {
                    findings.push(Finding {
                        kind: "sequence_gap".to_owned(),
                        run_id: Some(id),
                        detail: format!(
                            "{count} events but sequences up to {max}: {} missing",
                            max.saturating_sub(count)
                        ),
                        repair: None,
                        fixed: false,
                    });
                }
                Ok((findings, fixes, stale))
            })
            .await?;
        for id in &stale {
            findings.push(Finding {
                kind: "stale_run".to_owned(),
                run_id: Some(id.clone()),
                detail: format!(
                    "running, but no runner contact for more than {} hours",
                    stale_ms / 3_600_000
                ),
                repair: Some("set status failed".to_owned()),
                fixed: false,
            });
        }
        if fix {
            let mut all = fixes;
            for run_id in stale {
                // A finished marker says more than silence does.
                if !all.iter().any(|f| f.run_id == run_id) {
                    all.push(StatusFix {
                        run_id,
                        status: RunStatus::Failed,
                        exit_code: None,
                    });
                }
            }
            let fixed: Vec<String> = self
                .writer()
                .write_changes(move |conn, changes| {
                    let mut fixed = Vec::new();
                    for f in all {
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
            for finding in &mut findings {
                if finding.repair.is_some()
                    && finding.run_id.as_ref().is_some_and(|id| fixed.contains(id))
                {
                    finding.fixed = true;
                }
            }
        }
        Ok(findings)
    }
}
