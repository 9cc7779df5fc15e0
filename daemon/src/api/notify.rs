//! `/api/notify`: a user's notification channels (this browser's push
//! subscription among them), and the outbox's counts.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use claw_proto::api::Done;
use claw_proto::notify::{
    ChannelChange, ChannelView, CreatedChannel, NewChannel, NewPushSubscription, OutboxCounts,
    PushKey,
};

use super::extract::{JsonBody, User};
use crate::app::App;
use crate::service::ServiceResult;

type AppState = State<Arc<App>>;

pub async fn channels(State(app): AppState, user: User) -> ServiceResult<Json<Vec<ChannelView>>> {
    Ok(Json(app.list_channels(&user.caller()).await?))
}

pub async fn add_channel(
    State(app): AppState,
    user: User,
    JsonBody(request): JsonBody<NewChannel>,
) -> ServiceResult<(StatusCode, Json<CreatedChannel>)> {
    let created = app.add_channel(&user.caller(), request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn update_channel(
    State(app): AppState,
    user: User,
    Path(id): Path<String>,
    JsonBody(change): JsonBody<ChannelChange>,
) -> ServiceResult<Json<ChannelView>> {
    Ok(Json(app.update_channel(&user.caller(), id, change).await?))
}

pub async fn remove_channel(
    State(app): AppState,
    user: User,
    Path(id): Path<String>,
) -> ServiceResult<Json<Done>> {
    app.remove_channel(&user.caller(), id).await?;
    Ok(Json(Done::OK))
}

pub async fn status(State(app): AppState, user: User) -> ServiceResult<Json<OutboxCounts>> {
    Ok(Json(app.outbox_counts(&user.caller()).await?))
}

pub async fn push_key(State(app): AppState, user: User) -> ServiceResult<Json<PushKey>> {
    Ok(Json(app.push_key(&user.caller())?))
}

pub async fn subscribe(
    State(app): AppState,
    user: User,
    JsonBody(request): JsonBody<NewPushSubscription>,
) -> ServiceResult<(StatusCode, Json<ChannelView>)> {
    let channel = app.add_push_subscription(&user.caller(), request).await?;
    Ok((StatusCode::CREATED, Json(channel)))
}
