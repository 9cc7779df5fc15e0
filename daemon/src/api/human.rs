//! The human API for runs, events, commands, artifacts, audit and health.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use claw_proto::wire::{Role, RunStatus, ServerMessage};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{body, ok, parse_json, parse_json_or_default, query};
use super::session::Authed;
use super::{ApiError, Shared};
use crate::ops;
use crate::store::{AuditFilter, RunFilter};

pub async fn health(State(state): State<Shared>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "timestamp": crate::store::iso(crate::store::now_ms()),
        "connections": {
            "clients": state.hub.clients(),
            "subscriptions": state.hub.subscriptions(),
        }
    }))
}

/// What the web UI's status view and command box need: counts, who is
/// connected, and the allowlist (for suggestions; the API checks it again).
pub async fn status(State(state): State<Shared>, user: Authed) -> Result<Json<Value>, ApiError> {
    user.require(Role::Viewer)?;
    let counts = state.store.run_counts().await?;
    let runs: serde_json::Map<String, Value> = RunStatus::ALL
        .iter()
        .map(|s| {
            let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
            (s.as_str().to_owned(), json!(n))
        })
        .collect();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "runs": runs,
        "runnersConnected": state.hub.runners_connected(),
        "browsers": state.hub.clients(),
        "subscriptions": state.hub.subscriptions(),
        "allowedCommands": state.allowlist.entries(),
        "store": state.store.writer_stats(),
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

pub async fn create_run(
    State(state): State<Shared>,
    user: Authed,
    raw: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    user.require(Role::Operator)?;
    let request: CreateRun = parse_json_or_default(&body(raw)?)?;
    if request.command.as_ref().is_some_and(|c| c.len() > 4096) {
        return Err(ApiError::bad_request("command is longer than 4096 bytes"));
    }
    let metadata = request.metadata.map(|m| m.to_string());
    let (run, token) = ops::create_run(
        &state.store,
        request.command,
        metadata,
        Some(user.user.username.clone()),
    )
    .await?;
    state
        .store
        .audit(user.audit("run.create", Some(&run.id), run.command.clone()))
        .await?;
    tracing::info!(RUN_ID = %run.id, USER = %user.user.username, ACTION = "run.create", "run created");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": run.id, "capabilityToken": token, "status": run.status })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRuns {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    before: Option<String>,
}

pub async fn list_runs(
    State(state): State<Shared>,
    user: Authed,
    q: Result<Query<ListRuns>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    user.require(Role::Viewer)?;
    let q = query(q)?;
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request("status must be pending, running, done, failed or stopped")
        })?),
        None => None,
    };
    let before = match q.before.as_deref().filter(|s| !s.is_empty()) {
        Some(text) => Some(parse_time(text)?),
        None => None,
    };
    let runs = state
        .store
        .list_runs(RunFilter {
            status,
            before,
            since: None,
            limit: q.limit.unwrap_or(50).clamp(1, 500),
        })
        .await?;
    Ok(Json(json!(runs)))
}

/// RFC 3339 time or Unix milliseconds.
pub fn parse_time(text: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| ApiError::bad_request(format!("{text:?} is not an RFC 3339 time")))
}

pub async fn get_run(
    State(state): State<Shared>,
    user: Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    user.require(Role::Viewer)?;
    let run = state.store.run(id.clone()).await?;
    let artifacts = state.store.list_artifacts(id).await?;
    let mut value = json!(run);
    value["artifacts"] = json!(artifacts);
    Ok(Json(value))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<u32>,
}

pub async fn events(
    State(state): State<Shared>,
    user: Authed,
    Path(id): Path<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    user.require(Role::Viewer)?;
    let q = query(q)?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let events = state
        .store
        .events_after(id, q.after.unwrap_or(0), limit)
        .await?;
    Ok(Json(json!(events)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendCommand {
    command: String,
}

pub async fn send_command(
    State(state): State<Shared>,
    user: Authed,
    Path(run_id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    user.require(Role::Operator)?;
    let request: SendCommand = parse_json(&body(raw)?)?;
    let command = request.command.trim().to_owned();
    if let Err(refusal) = state.allowlist.check(&command) {
        state
            .store
            .audit(user.audit("command.rejected", Some(&run_id), Some(command.clone())))
            .await?;
        tracing::warn!(RUN_ID = %run_id, USER = %user.user.username, ACTION = "command.rejected", REASON = %refusal, "command not on the allowlist");
        return Err(
            ApiError::forbidden(format!("command is not on the allowlist: {refusal}"))
                .with("allowed", json!(state.allowlist.entries())),
        );
    }
    let row = state
        .store
        .queue_command(
            run_id.clone(),
            uuid::Uuid::new_v4().to_string(),
            command.clone(),
            Some(user.user.username.clone()),
        )
        .await?;
    state.hub.publish(
        &run_id,
        &ServerMessage::CommandQueued {
            run_id: run_id.clone(),
            command_id: row.id.clone(),
            command: row.command.clone(),
        },
    );
    state
        .store
        .audit(user.audit("command.send", Some(&run_id), Some(command)))
        .await?;
    tracing::info!(RUN_ID = %run_id, USER = %user.user.username, ACTION = "command.send", "command queued");
    Ok((StatusCode::CREATED, Json(json!({ "commandId": row.id }))))
}

pub async fn stop_run(
    State(state): State<Shared>,
    user: Authed,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    user.require(Role::Operator)?;
    let row = ops::stop_run(
        &state.store,
        &state.hub,
        &run_id,
        Some(user.user.username.clone()),
    )
    .await?;
    state
        .store
        .audit(user.audit("run.stop", Some(&run_id), None))
        .await?;
    tracing::info!(RUN_ID = %run_id, USER = %user.user.username, ACTION = "run.stop", "stop requested");
    Ok(Json(json!({ "ok": true, "commandId": row.id })))
}

pub async fn delete_run(
    State(state): State<Shared>,
    user: Authed,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    user.require(Role::Operator)?;
    ops::delete_run(&state.store, state.artifacts.root(), &run_id).await?;
    state
        .store
        .audit(user.audit("run.delete", Some(&run_id), None))
        .await?;
    tracing::info!(RUN_ID = %run_id, USER = %user.user.username, ACTION = "run.delete", "run deleted");
    Ok(ok())
}

pub async fn list_artifacts(
    State(state): State<Shared>,
    user: Authed,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    user.require(Role::Viewer)?;
    Ok(Json(json!(state.store.list_artifacts(run_id).await?)))
}

pub async fn download_artifact(
    State(state): State<Shared>,
    user: Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    user.require(Role::Viewer)?;
    let artifact = state.store.artifact(id).await?;
    let path = state
        .artifacts
        .absolute(&artifact.path)
        .ok_or_else(|| ApiError::not_found("artifact file is missing"))?;
    let data = tokio::fs::read(&path).await.map_err(|e| {
        tracing::warn!(error = %e, path = %path.display(), "artifact file unreadable");
        ApiError::not_found("artifact file is missing on the gateway")
    })?;
    // The stored name is already reduced to [A-Za-z0-9._-].
    let disposition = format!("attachment; filename=\"{}\"", artifact.filename);
    let mut response = Body::from(data).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&artifact.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}

pub async fn delete_artifact(
    State(state): State<Shared>,
    user: Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    user.require(Role::Operator)?;
    let artifact = state.store.delete_artifact(id).await?;
    state.artifacts.remove(&artifact.path);
    state
        .store
        .audit(user.audit(
            "artifact.delete",
            Some(&artifact.id),
            Some(artifact.filename.clone()),
        ))
        .await?;
    Ok(ok())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

pub async fn audit_list(
    State(state): State<Shared>,
    user: Authed,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    user.require(Role::Admin)?;
    let rows = state.store.list_audit(query(q)?.filter()?).await?;
    Ok(Json(json!(rows)))
}

impl AuditQuery {
    /// The store's filter: empty parameters mean "any", `since` is RFC 3339
    /// or Unix ms, at most 10,000 rows (100 by default).
    pub fn filter(self) -> Result<AuditFilter, ApiError> {
        let since = match self.since.as_deref().filter(|s| !s.is_empty()) {
            Some(text) => Some(parse_time(text)?),
            None => None,
        };
        Ok(AuditFilter {
            username: self.user.filter(|s| !s.is_empty()),
            action: self.action.filter(|s| !s.is_empty()),
            since,
            limit: self.limit.unwrap_or(100).clamp(1, 10_000),
        })
    }
}

pub async fn audit_verify(
    State(state): State<Shared>,
    user: Authed,
) -> Result<Json<Value>, ApiError> {
    user.require(Role::Admin)?;
    Ok(Json(json!(state.store.verify_audit_chain().await?)))
}
