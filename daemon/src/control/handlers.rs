//! The control API's routes: extract, call the service as the local
//! caller (an administrator), render. Long answers (a followed run's
//! events, prune's progress) are newline-delimited JSON.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::Utf8Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use claw_proto::api::{
    ApprovalQuery, ApprovalView, AuditView, ChainReport, CreateRunRequest, CreatedRun,
    DecisionRequest, Done, InterruptReply, PromptRequest, QueuedPrompt, RunDetail, RunView,
    SessionView, StopReply, UserChange, UserView,
};
use claw_proto::control::{
    AddUserRequest, AuditListQuery, BackupReply, BackupRequest, CertView, CopyLine, CopyToRequest,
    DbCheck, DbStatus, EventsQuery, HealthReply, InstallCertRequest, PruneLine, PruneRequest,
    ReconcileReply, ReconcileRequest, RevokeQuery, RevokeReply, RotateReply, RotateRequest,
    RunsQuery, SelfSignedRequest, SetPasswordRequest, SetRoleRequest, Status,
};
use claw_proto::hosts::{AddedHost, HostView, NewHost};
use claw_proto::notify::{
    ChannelView, CreatedChannel, DeliveryStatus, DeliveryView, NewChannel, OutboxCounts,
    OutboxQuery, Purged,
};
use claw_proto::wire::RunStatus;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::Ctx;
use crate::app::App;
use crate::http::{parse_json, parse_json_or_default, query, read_body};
use crate::service::{
    AuditQuery, Caller, LocalCaller, RunQuery, ServiceError, ServiceResult, SessionSelector,
    UserRef,
};

/// Largest request body on the control socket.
const BODY_LIMIT: usize = 1024 * 1024;

pub fn router(app: Ctx) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/runs", get(list_runs).post(create_run))
        .route("/v1/runs/{id}", get(show_run).delete(delete_run))
        .route("/v1/runs/{id}/events", get(run_events))
        .route("/v1/runs/{id}/stop", post(stop_run))
        .route("/v1/runs/{id}/prompts", post(send_prompt))
        .route("/v1/runs/{id}/interrupt", post(interrupt))
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/approvals/{id}", get(show_approval))
        .route("/v1/approvals/{id}/decision", post(decide))
        .route("/v1/notify/status", get(notify_status))
        .route(
            "/v1/notify/channels",
            get(notify_channels).post(add_notify_channel),
        )
        .route("/v1/notify/channels/{id}", delete(remove_notify_channel))
        .route("/v1/notify/outbox", get(outbox).delete(purge_outbox))
        .route("/v1/notify/outbox/{id}/retry", post(retry_delivery))
        .route("/v1/hosts", get(list_hosts).post(add_host))
        .route("/v1/hosts/{name}", delete(remove_host))
        .route("/v1/hosts/{name}/revoke", post(revoke_host))
        .route("/v1/users", get(list_users).post(add_user))
        .route("/v1/users/{name}", delete(delete_user))
        .route("/v1/users/{name}/password", post(set_password))
        .route("/v1/users/{name}/role", post(set_role))
        .route("/v1/users/{name}/reset-totp", post(reset_totp))
        .route("/v1/sessions", get(list_sessions).delete(revoke_sessions))
        .route("/v1/sessions/{id}", delete(revoke_session))
        .route("/v1/audit", get(audit_list))
        .route("/v1/audit/verify", get(audit_verify))
        .route("/v1/prune", post(prune))
        .route("/v1/reconcile", post(reconcile))
        .route("/v1/shutdown", post(shutdown))
        .route("/v1/backup", post(backup))
        .route("/v1/secrets/rotate", post(rotate_secret))
        .route("/v1/certs", get(show_cert))
        .route("/v1/certs/install", post(install_cert))
        .route("/v1/certs/self-signed", post(self_signed_cert))
        .route("/v1/db/status", get(db_status))
        .route("/v1/db/check", get(db_check))
        .route("/v1/db/copy-to", post(db_copy_to))
        .fallback(|| async { ServiceError::not_found("no such control endpoint (see clawctl(1))") })
        .method_not_allowed_fallback(crate::api::method_not_allowed)
        .with_state(app)
}

type AppState = State<Arc<App>>;

/// The process on the other end, as a caller.
struct Local(Caller);

impl FromRequestParts<Arc<App>> for Local {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<App>) -> Result<Self, ServiceError> {
        parts
            .extensions
            .get::<LocalCaller>()
            .map(|local| Self(Caller::Local(local.clone())))
            .ok_or_else(ServiceError::internal)
    }
}

/// A JSON body; with `Option`, an empty body means the default.
struct JsonBody<T>(T);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for JsonBody<T> {
    type Rejection = ServiceError;

    async fn from_request(request: Request, _: &Arc<App>) -> Result<Self, ServiceError> {
        let bytes = read_body(request.into_body(), BODY_LIMIT).await?;
        Ok(Self(parse_json(&bytes)?))
    }
}

struct JsonOrEmpty<T>(T);

impl<T: DeserializeOwned + Default> FromRequest<Arc<App>> for JsonOrEmpty<T> {
    type Rejection = ServiceError;

    async fn from_request(request: Request, _: &Arc<App>) -> Result<Self, ServiceError> {
        let bytes = read_body(request.into_body(), BODY_LIMIT).await?;
        Ok(Self(parse_json_or_default(&bytes)?))
    }
}

/// Newline-delimited JSON from a channel, until it closes or the daemon
/// stops: `line` renders an item, `last` says which item ends the stream.
fn ndjson<T: Send + 'static>(
    app: &App,
    rx: mpsc::Receiver<T>,
    feeder: tokio::task::JoinHandle<()>,
    line: fn(&T) -> String,
    last: fn(&T) -> bool,
) -> Response {
    // Stops the task feeding the stream when its client goes away.
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let stream = futures_util::stream::unfold(
        (false, rx, AbortOnDrop(feeder), app.shutdown.clone()),
        move |(ended, mut rx, feeder, mut shutdown)| async move {
            if ended {
                return None;
            }
            let item = tokio::select! {
                item = rx.recv() => item?,
                () = shutdown.stopped() => return None,
            };
            let ended = last(&item);
            let mut text = line(&item);
            text.push('\n');
            Some((
                Ok::<_, std::convert::Infallible>(text),
                (ended, rx, feeder, shutdown),
            ))
        },
    );
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

async fn health(State(app): AppState) -> ServiceResult<Json<HealthReply>> {
    Ok(Json(app.deep_health().await?))
}

async fn status(State(app): AppState, Local(caller): Local) -> ServiceResult<Json<Status>> {
    Ok(Json(app.control_status(&caller).await?))
}

async fn list_runs(
    State(app): AppState,
    Local(caller): Local,
    q: Result<Query<RunsQuery>, QueryRejection>,
) -> ServiceResult<Json<Vec<RunView>>> {
    let q = query(q)?;
    let runs = app
        .list_runs(
            &caller,
            RunQuery {
                status: q.status,
                before: None,
                before_id: None,
                since: q.since,
                limit: q.limit,
            },
        )
        .await?;
    Ok(Json(runs))
}

async fn show_run(
    State(app): AppState,
    Local(caller): Local,
    Path(id): Path<String>,
) -> ServiceResult<Json<RunDetail>> {
    Ok(Json(app.run_detail(&caller, id, true).await?))
}

async fn create_run(
    State(app): AppState,
    Local(caller): Local,
    JsonOrEmpty(request): JsonOrEmpty<CreateRunRequest>,
) -> ServiceResult<(StatusCode, Json<CreatedRun>)> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_run(&caller, request).await?),
    ))
}

async fn stop_run(
    State(app): AppState,
    Local(caller): Local,
    Path(id): Path<String>,
) -> ServiceResult<Json<StopReply>> {
    Ok(Json(app.stop_run(&caller, id).await?))
}

async fn send_prompt(
    State(app): AppState,
    Local(caller): Local,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<PromptRequest>,
) -> ServiceResult<(StatusCode, Json<QueuedPrompt>)> {
    Ok((
        StatusCode::CREATED,
        Json(app.send_prompt(&caller, id, &request.text).await?),
    ))
}

async fn interrupt(
    State(app): AppState,
    Local(caller): Local,
    Path(id): Path<String>,
) -> ServiceResult<(StatusCode, Json<InterruptReply>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(app.interrupt(&caller, id).await?),
    ))
}

async fn list_approvals(
    State(app): AppState,
    Local(caller): Local,
    q: Result<Query<ApprovalQuery>, QueryRejection>,
) -> ServiceResult<Json<Vec<ApprovalView>>> {
    let q = query(q)?;
    Ok(Json(app.list_approvals(&caller, q).await?))
}

async fn show_approval(
    State(app): AppState,
    Local(caller): Local,
    Path(id): Path<String>,
) -> ServiceResult<Json<ApprovalView>> {
    Ok(Json(app.approval(&caller, id).await?))
}

async fn decide(
    State(app): AppState,
    Local(caller): Local,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<DecisionRequest>,
) -> ServiceResult<Json<ApprovalView>> {
    Ok(Json(app.decide(&caller, id, request).await?))
}

async fn list_hosts(
    State(app): AppState,
    Local(caller): Local,
) -> ServiceResult<Json<Vec<HostView>>> {
    Ok(Json(app.list_hosts(&caller).await?))
}

async fn add_host(
    State(app): AppState,
    Local(caller): Local,
    JsonBody(request): JsonBody<NewHost>,
) -> ServiceResult<(StatusCode, Json<AddedHost>)> {
    Ok((
        StatusCode::CREATED,
        Json(app.add_host(&caller, request).await?),
    ))
}

async fn revoke_host(
    State(app): AppState,
    Local(caller): Local,
    Path(name): Path<String>,
) -> ServiceResult<Json<HostView>> {
    Ok(Json(app.revoke_host(&caller, name).await?))
}

async fn remove_host(
    State(app): AppState,
    Local(caller): Local,
    Path(name): Path<String>,
) -> ServiceResult<Json<Done>> {
    app.remove_host(&caller, name).await?;
    Ok(Json(Done::OK))
}

async fn notify_status(
    State(app): AppState,
    Local(caller): Local,
) -> ServiceResult<Json<OutboxCounts>> {
    Ok(Json(app.outbox_counts(&caller).await?))
}

async fn notify_channels(
    State(app): AppState,
    Local(caller): Local,
) -> ServiceResult<Json<Vec<ChannelView>>> {
    Ok(Json(app.list_channels(&caller).await?))
}

async fn add_notify_channel(
    State(app): AppState,
    Local(caller): Local,
    JsonBody(request): JsonBody<NewChannel>,
) -> ServiceResult<(StatusCode, Json<CreatedChannel>)> {
    Ok((
        StatusCode::CREATED,
        Json(app.add_channel(&caller, request).await?),
    ))
}

async fn remove_notify_channel(
    State(app): AppState,
    Local(caller): Local,
    Path(id): Path<String>,
) -> ServiceResult<Json<Done>> {
    app.remove_channel(&caller, id).await?;
    Ok(Json(Done::OK))
}

async fn outbox(
    State(app): AppState,
    Local(caller): Local,
    q: Result<Query<OutboxQuery>, QueryRejection>,
) -> ServiceResult<Json<Vec<DeliveryView>>> {
    let q = query(q)?;
    let status = match q.status.as_deref().filter(|s| !s.is_empty() && *s != "all") {
        None => None,
        Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
            crate::service::ServiceError::invalid(format!(
                "{text:?} is not a delivery status: pending, delivered, dead or all"
            ))
        })?),
    };
    Ok(Json(app.list_deliveries(&caller, status).await?))
}

async fn purge_outbox(
    State(app): AppState,
    Local(caller): Local,
    q: Result<Query<OutboxQuery>, QueryRejection>,
) -> ServiceResult<Json<Purged>> {
    let q = query(q)?;
    if q.status.as_deref() != Some("dead") {
        return Err(crate::service::ServiceError::invalid(
            "only dead letters are purged: ?status=dead",
        ));
    }
    Ok(Json(Purged {
        purged: app.purge_dead_letters(&caller).await?,
    }))
}

async fn retry_delivery(
    State(app): AppState,
    Local(caller): Local,
    Path(id): Path<String>,
) -> ServiceResult<Json<DeliveryView>> {
    Ok(Json(app.retry_delivery(&caller, id).await?))
}

async fn delete_run(
    State(app): AppState,
    Local(caller): Local,
    Path(id): Path<String>,
) -> ServiceResult<Json<Done>> {
    app.delete_run(&caller, id).await?;
    Ok(Json(Done::OK))
}

/// One event per line: the stored events after `after`, then (with
/// `follow=true`) live ones until the run ends.
async fn run_events(
    State(app): AppState,
    Local(caller): Local,
    Path(id): Path<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> ServiceResult<Response> {
    let q = query(q)?;
    let run = app.run_detail(&caller, id.clone(), false).await?;
    let (tx, rx) = mpsc::channel(256);
    let follow = q.follow.unwrap_or(false) && !run.run.status.is_finished();
    let after = q.after.unwrap_or(0);
    let feeder = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            if follow {
                app.follow_to_end(id, after, tx).await;
            } else {
                app.replay(&id, after, &tx).await;
            }
        })
    };
    // The lines are the WebSocket's messages; the run's final status ends
    // the stream.
    Ok(ndjson(
        &app,
        rx,
        feeder,
        |text: &Utf8Bytes| text.as_str().to_owned(),
        ends_run,
    ))
}

fn ends_run(message: &Utf8Bytes) -> bool {
    serde_json::from_str::<serde_json::Value>(message.as_str()).is_ok_and(|v| {
        v["type"] == "run_status"
            && v["status"]
                .as_str()
                .and_then(RunStatus::parse)
                .is_some_and(RunStatus::is_finished)
    })
}

async fn list_users(
    State(app): AppState,
    Local(caller): Local,
) -> ServiceResult<Json<Vec<UserView>>> {
    Ok(Json(app.list_users(&caller).await?))
}

async fn add_user(
    State(app): AppState,
    Local(caller): Local,
    JsonBody(request): JsonBody<AddUserRequest>,
) -> ServiceResult<(StatusCode, Json<UserView>)> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_user(&caller, request).await?),
    ))
}

async fn change_user(
    app: &App,
    caller: &Caller,
    name: String,
    change: UserChange,
) -> ServiceResult<Json<UserView>> {
    Ok(Json(
        app.update_user(caller, UserRef::Name(name), change).await?,
    ))
}

async fn set_password(
    State(app): AppState,
    Local(caller): Local,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<SetPasswordRequest>,
) -> ServiceResult<Json<UserView>> {
    let change = UserChange {
        password: Some(request.password),
        ..Default::default()
    };
    change_user(&app, &caller, name, change).await
}

async fn set_role(
    State(app): AppState,
    Local(caller): Local,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<SetRoleRequest>,
) -> ServiceResult<Json<UserView>> {
    let change = UserChange {
        role: Some(request.role),
        ..Default::default()
    };
    change_user(&app, &caller, name, change).await
}

async fn reset_totp(
    State(app): AppState,
    Local(caller): Local,
    Path(name): Path<String>,
) -> ServiceResult<Json<UserView>> {
    let change = UserChange {
        reset_totp: true,
        ..Default::default()
    };
    change_user(&app, &caller, name, change).await
}

async fn delete_user(
    State(app): AppState,
    Local(caller): Local,
    Path(name): Path<String>,
) -> ServiceResult<Json<Done>> {
    app.delete_user(&caller, UserRef::Name(name)).await?;
    Ok(Json(Done::OK))
}

async fn list_sessions(
    State(app): AppState,
    Local(caller): Local,
) -> ServiceResult<Json<Vec<SessionView>>> {
    Ok(Json(app.list_sessions(&caller).await?))
}

async fn revoke(
    app: &App,
    caller: &Caller,
    which: SessionSelector,
) -> ServiceResult<Json<RevokeReply>> {
    let revoked = app.revoke_sessions(caller, which).await?;
    Ok(Json(RevokeReply { ok: true, revoked }))
}

/// `DELETE /v1/sessions?user=U` or `?all=true`.
async fn revoke_sessions(
    State(app): AppState,
    Local(caller): Local,
    q: Result<Query<RevokeQuery>, QueryRejection>,
) -> ServiceResult<Json<RevokeReply>> {
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
            return Err(ServiceError::invalid(
                "give exactly one of user=NAME or all=true",
            ));
        }
    };
    revoke(&app, &caller, which).await
}

async fn revoke_session(
    State(app): AppState,
    Local(caller): Local,
    Path(id): Path<String>,
) -> ServiceResult<Json<RevokeReply>> {
    revoke(&app, &caller, SessionSelector::Id(id.to_ascii_lowercase())).await
}

async fn audit_list(
    State(app): AppState,
    Local(caller): Local,
    q: Result<Query<AuditListQuery>, QueryRejection>,
) -> ServiceResult<Json<Vec<AuditView>>> {
    let q = query(q)?;
    let query = AuditQuery {
        user: q.user,
        action: q.action,
        since: q.since,
        limit: q.limit,
    };
    Ok(Json(app.list_audit(&caller, query).await?))
}

async fn audit_verify(
    State(app): AppState,
    Local(caller): Local,
) -> ServiceResult<Json<ChainReport>> {
    Ok(Json(app.verify_audit(&caller).await?))
}

async fn prune(
    State(app): AppState,
    Local(caller): Local,
    JsonOrEmpty(request): JsonOrEmpty<PruneRequest>,
) -> ServiceResult<Response> {
    let (tx, rx) = mpsc::channel::<PruneLine>(64);
    let feeder = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            app.prune(&caller, request.older_than_days, request.dry_run, tx)
                .await;
        })
    };
    Ok(ndjson(
        &app,
        rx,
        feeder,
        |line| serde_json::to_string(line).unwrap_or_default(),
        |line| !matches!(line, PruneLine::Progress { .. }),
    ))
}

async fn reconcile(
    State(app): AppState,
    Local(caller): Local,
    JsonOrEmpty(request): JsonOrEmpty<ReconcileRequest>,
) -> ServiceResult<Json<ReconcileReply>> {
    let findings = app.reconcile(&caller, request.fix).await?;
    Ok(Json(ReconcileReply {
        fix: request.fix,
        findings,
    }))
}

async fn shutdown(State(app): AppState, Local(caller): Local) -> ServiceResult<Json<Done>> {
    app.stop_daemon(&caller).await?;
    Ok(Json(Done::OK))
}

async fn backup(
    State(app): AppState,
    Local(caller): Local,
    JsonOrEmpty(request): JsonOrEmpty<BackupRequest>,
) -> ServiceResult<Json<BackupReply>> {
    Ok(Json(app.backup(&caller, request).await?))
}

async fn rotate_secret(
    State(app): AppState,
    Local(caller): Local,
    JsonBody(request): JsonBody<RotateRequest>,
) -> ServiceResult<Json<RotateReply>> {
    Ok(Json(
        app.rotate_secret(&caller, request.secret, request.grace_secs)
            .await?,
    ))
}

async fn show_cert(State(app): AppState, Local(caller): Local) -> ServiceResult<Json<CertView>> {
    Ok(Json(app.show_cert(&caller)?))
}

async fn install_cert(
    State(app): AppState,
    Local(caller): Local,
    JsonBody(request): JsonBody<InstallCertRequest>,
) -> ServiceResult<Json<CertView>> {
    let view = app
        .install_cert(
            &caller,
            "certs.install",
            request.cert_pem.into_bytes(),
            request.key_pem.into_bytes(),
        )
        .await?;
    Ok(Json(view))
}

async fn self_signed_cert(
    State(app): AppState,
    Local(caller): Local,
    JsonOrEmpty(request): JsonOrEmpty<SelfSignedRequest>,
) -> ServiceResult<Json<CertView>> {
    Ok(Json(app.self_signed_cert(&caller, request.names).await?))
}

async fn db_status(State(app): AppState, Local(caller): Local) -> ServiceResult<Json<DbStatus>> {
    Ok(Json(app.db_status(&caller).await?))
}

async fn db_check(State(app): AppState, Local(caller): Local) -> ServiceResult<Json<DbCheck>> {
    Ok(Json(app.db_check(&caller).await?))
}

/// Progress lines while the copy runs, then its report or its error.
async fn db_copy_to(
    State(app): AppState,
    Local(caller): Local,
    JsonBody(request): JsonBody<CopyToRequest>,
) -> ServiceResult<Response> {
    let (tx, rx) = mpsc::channel::<CopyLine>(64);
    let feeder = {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.copy_to(&caller, request, tx).await })
    };
    Ok(ndjson(
        &app,
        rx,
        feeder,
        |line| serde_json::to_string(line).unwrap_or_default(),
        |line| matches!(line, CopyLine::Result(_) | CopyLine::Error { .. }),
    ))
}
