//! The human API for runs, events, commands, artifacts, audit and status:
//! extract, call the service, render.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use claw_proto::api::{
    ArtifactView, AuditView, ChainReport, CreateRunRequest, CreatedRun, Done, EventView, Health,
    InterruptReply, PromptRequest, QueuedCommand, QueuedPrompt, RunDetail, RunView,
    SendCommandRequest, StatusView, StopReply,
};
use serde::Deserialize;

use super::extract::{JsonBody, JsonOrEmpty, User};
use crate::app::App;
use crate::http::query;
use crate::service::ServiceResult;

type AppState = State<Arc<App>>;

/// 503 when the database does not answer: a load balancer then sends
/// requests to an instance that can serve them.
pub async fn health(State(app): AppState) -> (StatusCode, Json<Health>) {
    let health = app.health();
    let status = match health.checks.get("database").map(String::as_str) {
        Some("ok") | None => StatusCode::OK,
        Some(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(health))
}

pub async fn status(State(app): AppState, user: User) -> ServiceResult<Json<StatusView>> {
    Ok(Json(app.status(&user.caller()).await?))
}

pub async fn create_run(
    State(app): AppState,
    user: User,
    JsonOrEmpty(request): JsonOrEmpty<CreateRunRequest>,
) -> ServiceResult<(StatusCode, Json<CreatedRun>)> {
    let created = app.create_run(&user.caller(), request).await?;
    Ok((StatusCode::CREATED, Json(created)))
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
    #[serde(default, rename = "beforeId")]
    before_id: Option<String>,
}

pub async fn list_runs(
    State(app): AppState,
    user: User,
    q: Result<Query<ListRuns>, QueryRejection>,
) -> ServiceResult<Json<Vec<RunView>>> {
    let q = query(q)?;
    let runs = app
        .list_runs(
            &user.caller(),
            crate::service::RunQuery {
                status: q.status,
                before: q.before,
                before_id: q.before_id,
                since: None,
                limit: q.limit,
            },
        )
        .await?;
    Ok(Json(runs))
}

pub async fn get_run(
    State(app): AppState,
    user: User,
    Path(id): Path<String>,
) -> ServiceResult<Json<RunDetail>> {
    Ok(Json(app.run_detail(&user.caller(), id, false).await?))
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
    State(app): AppState,
    user: User,
    Path(id): Path<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> ServiceResult<Json<Vec<EventView>>> {
    let q = query(q)?;
    let events = app
        .run_events(&user.caller(), id, q.after.unwrap_or(0), q.limit)
        .await?;
    Ok(Json(events))
}

pub async fn send_command(
    State(app): AppState,
    user: User,
    Path(run_id): Path<String>,
    JsonBody(request): JsonBody<SendCommandRequest>,
) -> ServiceResult<(StatusCode, Json<QueuedCommand>)> {
    let queued = app
        .send_command(&user.caller(), run_id, &request.command)
        .await?;
    Ok((StatusCode::CREATED, Json(queued)))
}

pub async fn send_prompt(
    State(app): AppState,
    user: User,
    Path(run_id): Path<String>,
    JsonBody(request): JsonBody<PromptRequest>,
) -> ServiceResult<(StatusCode, Json<QueuedPrompt>)> {
    let queued = app
        .send_prompt(&user.caller(), run_id, &request.text)
        .await?;
    Ok((StatusCode::CREATED, Json(queued)))
}

pub async fn interrupt(
    State(app): AppState,
    user: User,
    Path(run_id): Path<String>,
) -> ServiceResult<(StatusCode, Json<InterruptReply>)> {
    let accepted = app.interrupt(&user.caller(), run_id).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

pub async fn stop_run(
    State(app): AppState,
    user: User,
    Path(run_id): Path<String>,
) -> ServiceResult<Json<StopReply>> {
    Ok(Json(app.stop_run(&user.caller(), run_id).await?))
}

pub async fn delete_run(
    State(app): AppState,
    user: User,
    Path(run_id): Path<String>,
) -> ServiceResult<Json<Done>> {
    app.delete_run(&user.caller(), run_id).await?;
    Ok(Json(Done::OK))
}

pub async fn list_artifacts(
    State(app): AppState,
    user: User,
    Path(run_id): Path<String>,
) -> ServiceResult<Json<Vec<ArtifactView>>> {
    Ok(Json(app.list_artifacts(&user.caller(), run_id).await?))
}

pub async fn download_artifact(
    State(app): AppState,
    user: User,
    Path(id): Path<String>,
) -> ServiceResult<Response> {
    let download = app.download_artifact(&user.caller(), id).await?;
    // The stored name is already reduced to [A-Za-z0-9._-].
    let disposition = format!("attachment; filename=\"{}\"", download.filename);
    let mut response = Body::from_stream(download.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(download.length));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&download.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
    );
    // Stricter than the UI's policy, which the gate leaves alone.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}

pub async fn delete_artifact(
    State(app): AppState,
    user: User,
    Path(id): Path<String>,
) -> ServiceResult<Json<Done>> {
    app.delete_artifact(&user.caller(), id).await?;
    Ok(Json(Done::OK))
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

impl From<AuditQuery> for crate::service::AuditQuery {
    fn from(q: AuditQuery) -> Self {
        Self {
            user: q.user,
            action: q.action,
            since: q.since,
            limit: q.limit,
        }
    }
}

pub async fn audit_list(
    State(app): AppState,
    user: User,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ServiceResult<Json<Vec<AuditView>>> {
    let q = query(q)?;
    Ok(Json(app.list_audit(&user.caller(), q.into()).await?))
}

pub async fn audit_verify(State(app): AppState, user: User) -> ServiceResult<Json<ChainReport>> {
    Ok(Json(app.verify_audit(&user.caller()).await?))
}
