//! `POST /v1/prune`: removes finished runs past the retention with their
//! events, commands and artifact files, artifact folders of no run, and
//! expired sessions and nonces. Streams progress as newline-delimited JSON.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Caller, Ctx};
use crate::api::ApiError;
use crate::api::error::{body, parse_json_or_default};
use crate::store::{PruneCounts, StoreError, now_ms};

/// How often progress is reported on long jobs.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PruneRequest {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    older_than_days: Option<u32>,
}

pub async fn prune(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: PruneRequest = parse_json_or_default(&body(raw)?)?;
    let days = request.older_than_days.unwrap_or_else(|| {
        ctx.retention_days
            .load(std::sync::atomic::Ordering::Relaxed)
    });
    let (tx, rx) = mpsc::channel::<Value>(64);
    tokio::spawn(async move {
        let result = run(&ctx, days, request.dry_run, &tx).await;
        let last = match result {
            Ok(counts) => {
                let summary = summary(&counts, days);
                if !request.dry_run {
                    let _ = ctx.store.set_meta("last_prune", summary.clone()).await;
                    let _ = ctx
                        .store
                        .audit(super::commands::audit(caller, "prune", None, Some(summary)))
                        .await;
                }
                json!({ "type": "result", "dryRun": request.dry_run, "olderThanDays": days, "counts": counts })
            }
            Err(e) => json!({ "type": "error", "error": ApiError::from(e).message }),
        };
        let _ = tx.send(last).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let value = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(format!("{value}\n")), rx))
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

fn summary(c: &PruneCounts, days: u32) -> String {
    format!(
        "{} runs older than {days} days, {} events, {} artifacts, {} orphan folders, {} bytes freed",
        c.runs, c.events, c.artifacts, c.orphan_folders, c.bytes_freed
    )
}

/// Total size of the files under `dir` (0 when it does not exist).
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

async fn run(
    ctx: &Ctx,
    days: u32,
    dry_run: bool,
    progress: &mpsc::Sender<Value>,
) -> Result<PruneCounts, StoreError> {
    let cutoff = now_ms().saturating_sub(i64::from(days) * 86_400_000);
    let artifacts = ctx.core.data_dir.join("artifacts");
    let candidates = ctx.store.prune_candidates(cutoff).await?;
    let total = candidates.len();
    let mut counts = PruneCounts::default();
    let mut reported = Instant::now();
    for (done, run) in candidates.into_iter().enumerate() {
        let (commands, paths) = ctx.store.run_children(run.id.clone()).await?;
        let folder = artifacts.join(&run.id);
        let files = tree_size(&folder);
        let removed = dry_run || ctx.store.prune_run(run.id.clone(), cutoff).await?;
        if removed {
            if !dry_run && crate::artifacts::valid_run_id(&run.id) {
                let _ = std::fs::remove_dir_all(&folder);
            }
            counts.runs += 1;
            counts.events += run.events;
            counts.commands += commands;
            counts.artifacts += paths.len() as u64;
            counts.bytes_freed += run.event_bytes + files;
        }
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            let _ = progress
                .send(json!({ "type": "progress", "runsDone": done + 1, "runsTotal": total }))
                .await;
        }
    }
    // Folders first, then the runs: a folder listed here belongs to a run
    // created before the list of runs is read.
    let folders: Vec<_> = std::fs::read_dir(&artifacts)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .collect()
        })
        .unwrap_or_default();
    let runs = ctx.store.run_ids().await?;
    for folder in folders {
        let name = folder.file_name().to_string_lossy().into_owned();
        if runs.contains(&name) {
            continue;
        }
        counts.orphan_folders += 1;
        counts.bytes_freed += tree_size(&folder.path());
        if !dry_run {
            let _ = std::fs::remove_dir_all(folder.path());
        }
    }
    let (sessions, nonces) = if dry_run {
        ctx.store.expired_counts().await?
    } else {
        let (s, n) = ctx.store.purge_expired().await?;
        (s as u64, n as u64)
    };
    counts.expired_sessions = sessions;
    counts.expired_nonces = nonces;
    Ok(counts)
}
