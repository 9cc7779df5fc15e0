//! Accounts over the human API: setup, login, sessions, TOTP, users.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use claw_proto::api::{
    AuthStatus, CodeRequest, CreateUserRequest, Done, LoginRequest, MeReply, PasswordConfirmation,
    SetupReply, SetupRequest, TotpEnrolment, UserChange, UserView,
};

use super::extract::{Anyone, COOKIE_NAME, JsonBody, JsonOrEmpty, User};
use crate::app::App;
use crate::service::{NewLogin, ServiceError, ServiceResult, UserRef, views};

type AppState = State<Arc<App>>;

pub async fn status(State(app): AppState) -> ServiceResult<Json<AuthStatus>> {
    Ok(Json(app.auth_status().await?))
}

pub async fn setup(
    State(app): AppState,
    Anyone(caller): Anyone,
    JsonBody(request): JsonBody<SetupRequest>,
) -> ServiceResult<Json<SetupReply>> {
    Ok(Json(app.setup(&caller, request).await?))
}

/// The answer of a login or a refresh, with the session cookie.
fn with_cookie(login: NewLogin) -> ServiceResult<Response> {
    let cookie = HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        login.token, login.lifetime_secs
    ))
    .map_err(|_| ServiceError::internal())?;
    let mut response = Json(login.reply).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

pub async fn login(
    State(app): AppState,
    Anyone(caller): Anyone,
    JsonBody(request): JsonBody<LoginRequest>,
) -> ServiceResult<Response> {
    with_cookie(app.login(&caller, request).await?)
}

pub async fn logout(State(app): AppState, user: User) -> ServiceResult<Response> {
    app.logout(&user.0).await?;
    let mut response = Json(Done::OK).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("session=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

pub async fn me(user: User) -> Json<MeReply> {
    Json(MeReply {
        user: views::user(user.0.user),
    })
}

pub async fn refresh(State(app): AppState, user: User) -> ServiceResult<Response> {
    with_cookie(app.refresh(&user.0).await?)
}

pub async fn totp_enroll(State(app): AppState, user: User) -> ServiceResult<Json<TotpEnrolment>> {
    Ok(Json(app.totp_enroll(&user.0).await?))
}

pub async fn totp_confirm(
    State(app): AppState,
    user: User,
    JsonBody(request): JsonBody<CodeRequest>,
) -> ServiceResult<Json<Done>> {
    app.totp_confirm(&user.0, &request.code).await?;
    Ok(Json(Done::OK))
}

pub async fn totp_remove(
    State(app): AppState,
    user: User,
    JsonOrEmpty(request): JsonOrEmpty<PasswordConfirmation>,
) -> ServiceResult<Json<Done>> {
    app.totp_remove(&user.0, request.password).await?;
    Ok(Json(Done::OK))
}

pub async fn list(State(app): AppState, user: User) -> ServiceResult<Json<Vec<UserView>>> {
    Ok(Json(app.list_users(&user.caller()).await?))
}

pub async fn create(
    State(app): AppState,
    user: User,
    JsonBody(request): JsonBody<CreateUserRequest>,
) -> ServiceResult<(StatusCode, Json<UserView>)> {
    let created = app.create_user(&user.caller(), request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn update(
    State(app): AppState,
    user: User,
    Path(id): Path<String>,
    JsonBody(change): JsonBody<UserChange>,
) -> ServiceResult<Json<UserView>> {
    Ok(Json(
        app.update_user(&user.caller(), UserRef::Id(id), change)
            .await?,
    ))
}

pub async fn remove(
    State(app): AppState,
    user: User,
    Path(id): Path<String>,
) -> ServiceResult<Json<Done>> {
    app.delete_user(&user.caller(), UserRef::Id(id)).await?;
    Ok(Json(Done::OK))
}
