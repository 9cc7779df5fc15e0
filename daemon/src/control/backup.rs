//! `POST /v1/backup`: an online backup archive (see `crate::backup`).

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, Ctx};
use crate::api::ApiError;
use crate::api::error::{body, parse_json_or_default};
use crate::backup::{self, BackupError};

/// Where backups go when no output directory is given.
pub const DEFAULT_OUTPUT: &str = "/var/backups/claw";
pub const DEFAULT_KEEP: usize = 7;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    #[serde(default)]
    output: Option<std::path::PathBuf>,
    #[serde(default)]
    keep: Option<usize>,
}

pub async fn create(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: BackupRequest = parse_json_or_default(&body(raw)?)?;
    let output = request
        .output
        .unwrap_or_else(|| std::path::PathBuf::from(DEFAULT_OUTPUT));
    if !output.is_absolute() {
        return Err(ApiError::bad_request(
            "the output directory must be an absolute path (clawd resolves it, not your shell)",
        ));
    }
    let keep = request.keep.unwrap_or(DEFAULT_KEEP);
    let result = backup::create(
        &ctx.store,
        &ctx.core.data_dir,
        ctx.config_path.as_deref(),
        &output,
        keep,
    )
    .await
    .map_err(|e| match e {
        BackupError::Store(e) => ApiError::from(e),
        BackupError::Io { path, source } => {
            tracing::error!(path = %path.display(), error = %source, "backup failed");
            ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                format!(
                    "backup failed, nothing was kept: {}: {source}",
                    path.display()
                ),
            )
        }
    })?;
    let summary = format!(
        "{} ({} files, {} bytes)",
        result.path.display(),
        result.files,
        result.size
    );
    ctx.store.set_meta("last_backup", summary.clone()).await?;
    ctx.store
        .audit(super::commands::audit(
            caller,
            "backup",
            Some(&result.path.display().to_string()),
            Some(summary),
        ))
        .await?;
    Ok(Json(json!(result)))
}
