//! `POST /v1/reconcile`: finds drift between the store and reality and, with
//! `fix`, repairs what can be repaired safely. Every finding is logged as
//! `drift detected` with structured fields.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, Ctx};
use crate::api::ApiError;
use crate::api::error::{body, parse_json_or_default};
use crate::store::Finding;

/// Files younger than this may belong to an upload whose row is being
/// written: never called orphans.
const UPLOAD_GRACE: Duration = Duration::from_secs(600);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    #[serde(default)]
    fix: bool,
}

pub async fn reconcile(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: ReconcileRequest = parse_json_or_default(&body(raw)?)?;
    let stale_hours = ctx
        .stale_run_hours
        .load(std::sync::atomic::Ordering::Relaxed);
    let stale_ms = i64::from(stale_hours) * 3_600_000;
    let mut findings = ctx.store.reconcile_store(stale_ms, request.fix).await?;
    findings.extend(artifact_drift(&ctx, request.fix).await?);
    for f in &findings {
        tracing::warn!(
            KIND = f.kind,
            RUN_ID = f.run_id.as_deref().unwrap_or(""),
            fixed = f.fixed,
            "drift detected: {}",
            f.detail
        );
    }
    if request.fix {
        let fixed = findings.iter().filter(|f| f.fixed).count();
        ctx.store
            .audit(super::commands::audit(
                caller,
                "reconcile.fix",
                None,
                Some(format!("{} findings, {fixed} fixed", findings.len())),
            ))
            .await?;
    }
    Ok(Json(json!({ "fix": request.fix, "findings": findings })))
}

fn old_enough(path: &std::path::Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age >= UPLOAD_GRACE)
}

/// Artifact rows whose file is gone, and files in run folders that no row
/// names.
async fn artifact_drift(ctx: &Ctx, fix: bool) -> Result<Vec<Finding>, ApiError> {
    let root = ctx.core.data_dir.join("artifacts");
    let rows = ctx.store.artifact_rows().await?;
    let runs = ctx.store.run_ids().await?;
    let mut findings = Vec::new();
    let mut missing = Vec::new();
    let known: HashSet<String> = rows.iter().map(|(_, _, path)| path.clone()).collect();
    for (id, run_id, path) in &rows {
        if !root.join(path).is_file() {
            missing.push(id.clone());
            findings.push(Finding {
                kind: "missing_artifact_file",
                run_id: Some(run_id.clone()),
                detail: format!("artifact {id} has no file {path}"),
                repair: Some("delete the artifact's row".to_owned()),
                fixed: false,
            });
        }
    }
    if fix && !missing.is_empty() {
        ctx.store.delete_artifact_rows(missing).await?;
        for f in findings.iter_mut() {
            f.fixed = true;
        }
    }
    let folders = std::fs::read_dir(&root)
        .map(|d| d.filter_map(Result::ok).collect::<Vec<_>>())
        .unwrap_or_default();
    for folder in folders {
        let run_id = folder.file_name().to_string_lossy().into_owned();
        // Folders of deleted runs are prune's to remove.
        if !runs.contains(&run_id) || !folder.path().is_dir() {
            continue;
        }
        let files = std::fs::read_dir(folder.path())
            .map(|d| d.filter_map(Result::ok).collect::<Vec<_>>())
            .unwrap_or_default();
        for file in files {
            let name = file.file_name().to_string_lossy().into_owned();
            let relative = format!("{run_id}/{name}");
            if known.contains(&relative) || !file.path().is_file() || !old_enough(&file.path()) {
                continue;
            }
            let fixed = fix && std::fs::remove_file(file.path()).is_ok();
            findings.push(Finding {
                kind: "orphan_artifact_file",
                run_id: Some(run_id.clone()),
                detail: format!("file {relative} belongs to no artifact"),
                repair: Some("delete the file".to_owned()),
                fixed,
            });
        }
    }
    Ok(findings)
}
