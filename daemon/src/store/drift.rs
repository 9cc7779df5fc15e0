//! Reconcile's judgement, one for both stores: from what a store read
//! (unfinished runs with their markers, silent runs, sequence counts) come
//! the findings and the status changes that repair them. The stores only
//! read the rows and apply the changes, each in its own SQL.

use claw_proto::control::Finding;
use claw_proto::wire::{Marker, RunStatus};

use super::status_at_finish;

/// An unfinished run (pending, running, waiting) and its markers.
pub struct UnfinishedRun {
    pub id: String,
    pub status: String,
    pub stop_requested: bool,
    /// The data of its last `finished` marker.
    pub finished_marker: Option<String>,
    pub started_markers: u64,
}

/// A run whose highest sequence exceeds its number of events.
pub struct SequenceGap {
    pub run_id: String,
    pub count: u64,
    pub max: u64,
}

/// A status change that brings a run in line with its records.
#[derive(Debug, Clone)]
pub struct StatusFix {
    pub run_id: String,
    pub status: RunStatus,
    pub exit_code: Option<i64>,
}

/// The findings, and the fixes `--fix` applies.
pub struct Drift {
    pub findings: Vec<Finding>,
    pub fixes: Vec<StatusFix>,
}

/// Runs whose status disagrees with their markers, runs silent (`stale`)
/// for longer than `stale_ms`, and sequence gaps.
pub fn judge(
    unfinished: Vec<UnfinishedRun>,
    stale: Vec<String>,
    gaps: Vec<SequenceGap>,
    stale_ms: i64,
) -> Drift {
    let mut findings = Vec::new();
    let mut fixes = Vec::new();
    for run in unfinished {
        if let Some(Marker::Finished { exit_code, .. }) =
            run.finished_marker.as_deref().and_then(Marker::parse)
        {
            let should = status_at_finish(run.stop_requested, exit_code);
            findings.push(mismatch(
                &run.id,
                format!("status is {} but the run has a finished marker", run.status),
                should,
            ));
            fixes.push(StatusFix {
                run_id: run.id,
                status: should,
                exit_code,
            });
        } else if run.status == "pending" && run.started_markers > 0 {
            findings.push(mismatch(
                &run.id,
                "status is pending but the run has a started marker".to_owned(),
                RunStatus::Running,
            ));
            fixes.push(StatusFix {
                run_id: run.id,
                status: RunStatus::Running,
                exit_code: None,
            });
        }
    }
    for gap in gaps {
        findings.push(Finding {
            kind: "sequence_gap".to_owned(),
            run_id: Some(gap.run_id),
            detail: format!(
                "{} events but sequences up to {}: {} missing",
                gap.count,
                gap.max,
                gap.max.saturating_sub(gap.count)
            ),
            repair: None,
            fixed: false,
        });
    }
    for run_id in stale {
        findings.push(Finding {
            kind: "stale_run".to_owned(),
            run_id: Some(run_id.clone()),
            detail: format!(
                "running, but no runner contact for more than {} hours",
                stale_ms / 3_600_000
            ),
            repair: Some("set status failed".to_owned()),
            fixed: false,
        });
        // A finished marker says more than silence does.
        if !fixes.iter().any(|f| f.run_id == run_id) {
            fixes.push(StatusFix {
                run_id,
                status: RunStatus::Failed,
                exit_code: None,
            });
        }
    }
    Drift { findings, fixes }
}

fn mismatch(run_id: &str, detail: String, should: RunStatus) -> Finding {
    Finding {
        kind: "status_mismatch".to_owned(),
        run_id: Some(run_id.to_owned()),
        detail,
        repair: Some(format!("set status {}", should.as_str())),
        fixed: false,
    }
}

/// Marks the repairable findings of the runs in `fixed` as fixed.
pub fn mark_fixed(findings: &mut [Finding], fixed: &[String]) {
    for finding in findings {
        if finding.repair.is_some() && finding.run_id.as_ref().is_some_and(|id| fixed.contains(id))
        {
            finding.fixed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, status: &str, finished: Option<&str>, started: u64) -> UnfinishedRun {
        UnfinishedRun {
            id: id.to_owned(),
            status: status.to_owned(),
            stop_requested: false,
            finished_marker: finished.map(str::to_owned),
            started_markers: started,
        }
    }

    #[test]
    fn markers_silence_and_gaps_each_make_their_finding() {
        let finished = r#"{"event":"finished","exitCode":3}"#;
        let drift = judge(
            vec![
                run("a", "running", Some(finished), 1),
                run("b", "pending", None, 1),
                run("c", "running", None, 1),
            ],
            vec!["a".to_owned(), "d".to_owned()],
            vec![SequenceGap {
                run_id: "e".to_owned(),
                count: 8,
                max: 10,
            }],
            7_200_000,
        );
        let kinds: Vec<(&str, Option<&str>)> = drift
            .findings
            .iter()
            .map(|f| (f.kind.as_str(), f.run_id.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("status_mismatch", Some("a")),
                ("status_mismatch", Some("b")),
                ("sequence_gap", Some("e")),
                ("stale_run", Some("a")),
                ("stale_run", Some("d")),
            ]
        );
        assert_eq!(
            drift.findings[2].detail,
            "8 events but sequences up to 10: 2 missing"
        );
        assert!(drift.findings[3].detail.contains("more than 2 hours"));
        // The marker's verdict wins over silence for a; d fails.
        let fixes: Vec<(&str, RunStatus, Option<i64>)> = drift
            .fixes
            .iter()
            .map(|f| (f.run_id.as_str(), f.status, f.exit_code))
            .collect();
        assert_eq!(
            fixes,
            [
                ("a", RunStatus::Failed, Some(3)),
                ("b", RunStatus::Running, None),
                ("d", RunStatus::Failed, None),
            ]
        );
        let mut findings = drift.findings;
        mark_fixed(&mut findings, &["a".to_owned(), "e".to_owned()]);
        let fixed: Vec<bool> = findings.iter().map(|f| f.fixed).collect();
        assert_eq!(
            fixed,
            [true, false, false, true, false],
            "a gap is not repairable"
        );
    }

    #[test]
    fn a_stop_asked_for_makes_a_finished_run_stopped() {
        let mut stopped = run(
            "a",
            "running",
            Some(r#"{"event":"finished","exitCode":0}"#),
            1,
        );
        stopped.stop_requested = true;
        let drift = judge(vec![stopped], vec![], vec![], 3_600_000);
        assert_eq!(drift.fixes[0].status, RunStatus::Stopped);
        assert_eq!(
            drift.findings[0].repair.as_deref(),
            Some("set status stopped")
        );
    }
}
