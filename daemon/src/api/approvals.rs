//! `/api/approvals`: the "Needs you" inbox and decisions.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use claw_proto::api::{ApprovalQuery, ApprovalView, DecisionRequest};

use super::extract::{JsonBody, User};
use crate::app::App;
use crate::http::query;
use crate::service::ServiceResult;

type AppState = State<Arc<App>>;

pub async fn list(
    State(app): AppState,
    user: User,
    q: Result<Query<ApprovalQuery>, QueryRejection>,
) -> ServiceResult<Json<Vec<ApprovalView>>> {
    let q = query(q)?;
    Ok(Json(app.list_approvals(&user.caller(), q).await?))
}

pub async fn show(
    State(app): AppState,
    user: User,
    Path(id): Path<String>,
) -> ServiceResult<Json<ApprovalView>> {
    Ok(Json(app.approval(&user.caller(), id).await?))
}

pub async fn decide(
    State(app): AppState,
    user: User,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<DecisionRequest>,
) -> ServiceResult<Json<ApprovalView>> {
    Ok(Json(app.decide(&user.caller(), id, request).await?))
}
