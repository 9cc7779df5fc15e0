//! The control API's commands (what `clawctl` calls). Every mutating call is
//! audited with the caller's uid and pid and logged to the journal.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use claw_proto::wire::{Role, RunStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Caller, Ctx};
use crate::api::ApiError;
use crate::api::error::{body, ok, parse_json, parse_json_or_default, query};
use crate::auth;
use crate::store::{AuditEntry, NewUser, RunFilter, SessionSelector, UserUpdate};

/// The audit entry for an action of the caller.
pub(super) fn audit(
    caller: Caller,
    action: &str,
    target: Option<&str>,
    details: Option<String>,
) -> AuditEntry {
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(caller.uid))
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {}", caller.uid), |u| u.name);
    let pid = format!("pid {}", caller.pid);
    tracing::info!(USER = %name, ACTION = action, target = target.unwrap_or(""), uid = caller.uid, pid = caller.pid, "control action");
    AuditEntry {
        user_id: Some(format!("uid:{}", caller.uid)),
        username: Some(name),
        action: action.to_owned(),
        target: target.map(str::to_owned),
        details: Some(match details {
            Some(d) => format!("{d} (via control socket, {pid})"),
            None => format!("via control socket, {pid}"),
        }),
        ip: None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

pub async fn list_runs(
    State(ctx): State<Ctx>,
    q: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request("state must be pending, running, done, failed or stopped")
        })?),
        None => None,
    };
    let since = match q.since.as_deref().filter(|s| !s.is_empty()) {
        Some(text) => Some(crate::api::parse_time(text)?),
        None => None,
    };
    let runs = ctx
        .store
        .list_runs(RunFilter {
            status,
            before: None,
            since,
            limit: q.limit.unwrap_or(100).clamp(1, 10_000),
        })
        .await?;
    Ok(Json(json!(runs)))
}

pub async fn show_run(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = ctx.store.run(id.clone()).await?;
    let artifacts = ctx.store.list_artifacts(id.clone()).await?;
    let commands = ctx.store.list_commands(id).await?;
    let mut value = json!(run);
    value["artifacts"] = json!(artifacts);
    value["commands"] = json!(commands);
    Ok(Json(value))
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
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: CreateRun = parse_json_or_default(&body(raw)?)?;
    let entry = audit(caller, "run.create", None, request.command.clone());
    let (run, token) = crate::ops::create_run(
        &ctx.store,
        request.command,
        request.metadata.map(|m| m.to_string()),
        entry.username.clone(),
    )
    .await?;
    ctx.store
        .audit(AuditEntry {
            target: Some(run.id.clone()),
            ..entry
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": run.id, "capabilityToken": token, "status": run.status })),
    ))
}

pub async fn stop_run(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let entry = audit(caller, "run.stop", Some(&id), None);
    let row = crate::ops::stop_run(&ctx.store, &ctx.hub, &id, entry.username.clone()).await?;
    ctx.store.audit(entry).await?;
    Ok(Json(json!({ "ok": true, "commandId": row.id })))
}

pub async fn delete_run(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    crate::ops::delete_run(&ctx.store, &ctx.core.data_dir.join("artifacts"), &id).await?;
    ctx.store
        .audit(audit(caller, "run.delete", Some(&id), None))
        .await?;
    Ok(ok())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    follow: Option<bool>,
}

/// Newline-delimited JSON, one event per line: the stored events after
/// `after`, then (with `follow=true`) live ones until the run ends.
pub async fn run_events(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let run = ctx.store.run(id.clone()).await?;
    let (tx, rx) = mpsc::channel(256);
    let follow = q.follow.unwrap_or(false) && !run.status.is_finished();
    let after = q.after.unwrap_or(0);
    let task = if follow {
        tokio::spawn(crate::api::follow(
            ctx.store.clone(),
            Arc::clone(&ctx.hub),
            id,
            after,
            false,
            tx,
        ))
    } else {
        let store = ctx.store.clone();
        tokio::spawn(async move { crate::api::replay(&store, &id, after, &tx).await })
    };
    // Ends the stream once the run has ended (the status message is the
    // last line) or the client goes away.
    let stream = futures_util::stream::unfold(
        (false, rx, AbortOnDrop(task), ctx.core.shutdown.clone()),
        |(ended, mut rx, task, mut shutdown)| async move {
            if ended {
                return None;
            }
            // A daemon shutting down ends followed streams at once.
            let message = tokio::select! {
                message = rx.recv() => message?,
                () = crate::server::until_stopped(&mut shutdown) => return None,
            };
            let ended = message_ends_run(&message);
            let mut line = message.as_str().to_owned();
            line.push('\n');
            Some((
                Ok::<_, std::convert::Infallible>(line),
                (ended, rx, task, shutdown),
            ))
        },
    );
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// Stops the task feeding a stream when the stream (its client) goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn message_ends_run(message: &str) -> bool {
    serde_json::from_str::<Value>(message).is_ok_and(|v| {
        v["type"] == "run_status"
            && v["status"]
                .as_str()
                .and_then(RunStatus::parse)
                .is_some_and(RunStatus::is_finished)
    })
}

pub async fn list_users(State(ctx): State<Ctx>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(ctx.store.list_users().await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddUser {
    username: String,
    password: String,
    #[serde(default)]
    role: Option<Role>,
}

async fn hash(ctx: &Ctx, password: String) -> Result<String, ApiError> {
    if let Some(problem) = auth::password_problem(&password) {
        return Err(ApiError::bad_request(problem));
    }
    Ok(ctx.core.hashing.hash(password).await?)
}

pub async fn add_user(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: AddUser = parse_json(&body(raw)?)?;
    if !auth::valid_username(&request.username) {
        return Err(ApiError::bad_request(auth::USERNAME_RULE));
    }
    let role = request.role.unwrap_or(Role::Viewer);
    let user = ctx
        .store
        .create_user(NewUser {
            id: uuid::Uuid::new_v4().to_string(),
            username: request.username,
            password_hash: hash(&ctx, request.password).await?,
            role,
        })
        .await?;
    // The first user makes setup unnecessary.
    if let Ok(mut token) = ctx.core.setup_token.lock()
        && token.take().is_some()
    {
        let _ = std::fs::remove_file(ctx.core.data_dir.join("setup-token"));
    }
    ctx.store
        .audit(audit(
            caller,
            "user.create",
            Some(&user.username),
            Some(format!("role {}", role.as_str())),
        ))
        .await?;
    Ok((StatusCode::CREATED, Json(json!(user))))
}

async fn user_id(ctx: &Ctx, name: &str) -> Result<String, ApiError> {
    ctx.store
        .user_by_name(name.to_owned())
        .await?
        .map(|u| u.id)
        .ok_or_else(|| ApiError::not_found(format!("unknown user {name} (see clawctl users list)")))
}

async fn update(
    ctx: &Ctx,
    caller: Caller,
    name: &str,
    update: UserUpdate,
    what: String,
) -> Result<Json<Value>, ApiError> {
    let id = user_id(ctx, name).await?;
    let user = ctx.store.update_user(id, update).await?;
    ctx.hub.sessions_changed();
    ctx.store
        .audit(audit(caller, "user.update", Some(name), Some(what)))
        .await?;
    Ok(Json(json!(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Password {
    password: String,
}

pub async fn set_password(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: Password = parse_json(&body(raw)?)?;
    let password_hash = Some(hash(&ctx, request.password).await?);
    update(
        &ctx,
        caller,
        &name,
        UserUpdate {
            password_hash,
            ..Default::default()
        },
        "password reset".to_owned(),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    role: Role,
}

pub async fn set_role(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: SetRole = parse_json(&body(raw)?)?;
    let what = format!("role {}", request.role.as_str());
    update(
        &ctx,
        caller,
        &name,
        UserUpdate {
            role: Some(request.role),
            ..Default::default()
        },
        what,
    )
    .await
}

pub async fn reset_totp(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    update(
        &ctx,
        caller,
        &name,
        UserUpdate {
            reset_totp: true,
            ..Default::default()
        },
        "TOTP reset".to_owned(),
    )
    .await
}

pub async fn delete_user(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = user_id(&ctx, &name).await?;
    ctx.store.delete_user(id).await?;
    ctx.hub.sessions_changed();
    ctx.store
        .audit(audit(caller, "user.delete", Some(&name), None))
        .await?;
    Ok(ok())
}

pub async fn list_sessions(State(ctx): State<Ctx>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(ctx.store.list_sessions().await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeQuery {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    all: Option<bool>,
}

async fn revoke(
    ctx: &Ctx,
    caller: Caller,
    which: SessionSelector,
) -> Result<Json<Value>, ApiError> {
    let target = match &which {
        SessionSelector::Id(id) => format!("session {id}"),
        SessionSelector::User(user) => format!("sessions of {user}"),
        SessionSelector::All => "all sessions".to_owned(),
    };
    let revoked = ctx.store.revoke_sessions(which).await?;
    ctx.hub.sessions_changed();
    ctx.store
        .audit(audit(
            caller,
            "session.revoke",
            Some(&target),
            Some(format!("{revoked} ended")),
        ))
        .await?;
    Ok(Json(json!({ "ok": true, "revoked": revoked })))
}

/// `DELETE /v1/sessions?user=U` or `?all=true`.
pub async fn revoke_sessions(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<RevokeQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let which = match query(q)? {
        RevokeQuery {
            user: Some(user),
            all: None | Some(false),
        } => SessionSelector::User(user),
        RevokeQuery {
            user: None,
            all: Some(true),
        } => SessionSelector::All,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of user=NAME or all=true",
            ));
        }
    };
    revoke(&ctx, caller, which).await
}

pub async fn revoke_session(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    revoke(&ctx, caller, SessionSelector::Id(id.to_ascii_lowercase())).await
}

pub async fn audit_list(
    State(ctx): State<Ctx>,
    q: Result<Query<crate::api::AuditQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let rows = ctx.store.list_audit(query(q)?.filter()?).await?;
    Ok(Json(json!(rows)))
}

pub async fn audit_verify(State(ctx): State<Ctx>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(ctx.store.verify_audit_chain().await?)))
}
