//! Accounts: first-run setup, login, sessions, TOTP, user management.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use claw_proto::wire::Role;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::error::{body, ok, parse_json, parse_json_or_default};
use super::session::{Authed, COOKIE_NAME, ClientIp};
use super::{ApiError, AppState, Shared};
use crate::auth;
use crate::store::{AuditEntry, NewUser, UserRow, UserUpdate, iso, now_ms};

pub async fn status(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    let users = state.store.user_count().await?;
    Ok(Json(
        json!({ "setupRequired": users == 0, "localAuthEnabled": true }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetupRequest {
    setup_token: String,
    username: String,
    password: String,
    #[serde(default)]
    enable_totp: bool,
}

fn check_new_credentials(username: &str, password: &str) -> Result<(), ApiError> {
    if !auth::valid_username(username) {
        return Err(ApiError::bad_request(auth::USERNAME_RULE));
    }
    if let Some(problem) = auth::password_problem(password) {
        return Err(ApiError::bad_request(problem));
    }
    Ok(())
}

/// One login or setup attempt, counted against the failure limits before
/// its password or token is checked, so that concurrent guesses cannot all
/// slip under the limit. Dropped, it gives its count back (it was no
/// guess: a right password awaiting its TOTP code, a busy gateway, a store
/// error); [`failed`](Self::failed) keeps it counted, [`succeeded`](Self::succeeded)
/// also clears the user's failures.
struct Attempt<'a> {
    state: &'a AppState,
    ip: Option<std::net::IpAddr>,
    user: Option<String>,
}

fn too_many_failures() -> ApiError {
    ApiError::too_many(
        "too many failed logins: wait 15 minutes or ask an administrator",
        15 * 60,
    )
}

impl<'a> Attempt<'a> {
    fn reserve(
        state: &'a AppState,
        ip: Option<&str>,
        user: Option<String>,
    ) -> Result<Self, ApiError> {
        let ip = ip.and_then(|i| i.parse().ok());
        if let Some(ip) = &ip
            && !state.login_failures_ip.hit(ip)
        {
            state.login_failures_ip.release(ip);
            return Err(too_many_failures());
        }
        if let Some(user) = &user
            && !state.login_failures_user.hit(user)
        {
            state.login_failures_user.release(user);
            if let Some(ip) = &ip {
                state.login_failures_ip.release(ip);
            }
            return Err(too_many_failures());
        }
        Ok(Self { state, ip, user })
    }

    fn failed(mut self) {
        self.ip = None;
        self.user = None;
    }

    fn succeeded(mut self) {
        if let Some(user) = self.user.take() {
            self.state.login_failures_user.clear(&user);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(ip) = &self.ip {
            self.state.login_failures_ip.release(ip);
        }
        if let Some(user) = &self.user {
            self.state.login_failures_user.release(user);
        }
    }
}

pub async fn setup(
    State(state): State<Shared>,
    ClientIp(ip): ClientIp,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: SetupRequest = parse_json(&body(raw)?)?;
    let expected = state
        .setup_token
        .lock()
        .map_err(|_| ApiError::internal())?
        .clone();
    let Some(expected) = expected else {
        return Err(ApiError::conflict(
            "setup is already done: log in, or ask an administrator for an account",
        ));
    };
    // Wrong tokens count against the address like failed logins.
    let attempt = Attempt::reserve(&state, ip.as_deref(), None)?;
    if !bool::from(
        expected
            .as_bytes()
            .ct_eq(request.setup_token.trim().as_bytes()),
    ) {
        attempt.failed();
        let name = auth::loggable_username(&request.username);
        tracing::warn!(USER = %name, ACTION = "setup.failed", "wrong setup token");
        state
            .store
            .audit(AuditEntry {
                action: "setup.failed".to_owned(),
                username: Some(name.into_owned()),
                details: Some("wrong setup token".to_owned()),
                ip: ip.clone(),
                ..Default::default()
            })
            .await?;
        return Err(ApiError::forbidden(
            "wrong setup token: it is in the setup-token file of the data directory",
        ));
    }
    check_new_credentials(&request.username, &request.password)?;
    let password_hash = state.hashing.hash(request.password).await?;
    let user = state
        .store
        .create_first_user(NewUser {
            id: uuid::Uuid::new_v4().to_string(),
            username: request.username,
            password_hash,
            role: Role::Admin,
        })
        .await?;
    attempt.succeeded();
    if let Ok(mut token) = state.setup_token.lock() {
        *token = None;
    }
    let _ = std::fs::remove_file(state.data_dir.join("setup-token"));
    let mut reply = json!({ "ok": true, "userId": user.id });
    if request.enable_totp {
        let secret = auth::new_totp_secret()?;
        // Active at once: the first login then asks for a code.
        state
            .store
            .set_totp_pending(user.id.clone(), secret.clone())
            .await?;
        state.store.confirm_totp(user.id.clone(), 0).await?;
        let uri = auth::totp_uri(&secret, &user.username)?;
        reply["qrSvg"] = json!(crate::qr::svg(&uri));
        reply["totpUri"] = json!(uri);
    }
    state
        .store
        .audit(AuditEntry {
            user_id: Some(user.id.clone()),
            username: Some(user.username.clone()),
            action: "setup.completed".to_owned(),
            ip,
            ..Default::default()
        })
        .await?;
    tracing::info!(USER = %user.username, ACTION = "setup.completed", "first administrator created");
    Ok(Json(reply))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
    #[serde(default)]
    totp_code: Option<String>,
}

fn user_json(user: &UserRow) -> Value {
    json!({ "id": user.id, "username": user.username, "role": user.role })
}

fn session_cookie(token: &str, max_age: u64) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age}"
    ))
    .map_err(|_| ApiError::internal())
}

/// Starts a session and answers like a login.
async fn start_session(
    state: &Shared,
    user: &UserRow,
    ip: Option<String>,
) -> Result<Response, ApiError> {
    let token = auth::new_session_token()?;
    let lifetime = state.config.session_lifetime_secs;
    let expires_at =
        now_ms().saturating_add(i64::try_from(lifetime.saturating_mul(1000)).unwrap_or(i64::MAX));
    state
        .store
        .create_session(
            auth::session_id_hash(state.secrets.auth().expose(), &token),
            user.id.clone(),
            expires_at,
            ip,
        )
        .await?;
    let mut response = Json(json!({
        "ok": true,
        "user": user_json(user),
        "expiresAt": iso(expires_at),
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&token, lifetime)?);
    Ok(response)
}

/// Logs and audits a failed login under a name that is safe to keep.
async fn login_failed(
    state: &AppState,
    username: &str,
    reason: &'static str,
    ip: Option<String>,
) -> Result<(), ApiError> {
    let name = auth::loggable_username(username);
    tracing::warn!(USER = %name, ACTION = "login.failed", reason, "failed login");
    state
        .store
        .audit(AuditEntry {
            username: Some(name.into_owned()),
            action: "login.failed".to_owned(),
            details: Some(reason.to_owned()),
            ip,
            ..Default::default()
        })
        .await?;
    Ok(())
}

pub async fn login(
    State(state): State<Shared>,
    ClientIp(ip): ClientIp,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: LoginRequest = parse_json(&body(raw)?)?;
    // A name that is no valid account name cannot exist: it is refused
    // without the password check, and only the address counts it.
    let valid_name = auth::valid_username(&request.username);
    let attempt = Attempt::reserve(
        &state,
        ip.as_deref(),
        valid_name.then(|| request.username.to_ascii_lowercase()),
    )?;
    let user = match valid_name {
        true => state.store.user_by_name(request.username.clone()).await?,
        false => None,
    };
    let password_ok = valid_name
        && state
            .hashing
            .verify(
                request.password,
                user.as_ref().map(|u| u.password_hash.clone()),
            )
            .await?;
    let (true, Some(user)) = (password_ok, user) else {
        attempt.failed();
        login_failed(&state, &request.username, "bad user name or password", ip).await?;
        return Err(ApiError::unauthorized("wrong user name or password"));
    };
    if let Some(secret) = &user.totp_secret {
        let Some(code) = request.totp_code.filter(|c| !c.trim().is_empty()) else {
            return Err(
                ApiError::unauthorized("a TOTP code is needed").with("totpRequired", json!(true))
            );
        };
        let step = auth::totp_check(secret, &user.username, &code);
        let fresh = match step {
            Some(step) => state.store.use_totp_step(user.id.clone(), step).await?,
            None => false,
        };
        if !fresh {
            attempt.failed();
            login_failed(&state, &request.username, "bad TOTP code", ip).await?;
            return Err(ApiError::unauthorized("wrong or already used TOTP code")
                .with("totpRequired", json!(true)));
        }
    }
    attempt.succeeded();
    state
        .store
        .audit(AuditEntry {
            user_id: Some(user.id.clone()),
            username: Some(user.username.clone()),
            action: "login.success".to_owned(),
            ip: ip.clone(),
            ..Default::default()
        })
        .await?;
    tracing::info!(USER = %user.username, ACTION = "login.success", "login");
    start_session(&state, &user, ip).await
}

fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("session=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

pub async fn logout(State(state): State<Shared>, user: Authed) -> Result<Response, ApiError> {
    state
        .store
        .delete_session(user.session_hash.clone())
        .await?;
    state.hub.sessions_changed();
    state.store.audit(user.audit("logout", None, None)).await?;
    let mut response = ok().into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie());
    Ok(response)
}

pub async fn me(user: Authed) -> Json<Value> {
    Json(json!({ "user": user.user }))
}

pub async fn refresh(State(state): State<Shared>, user: Authed) -> Result<Response, ApiError> {
    state
        .store
        .delete_session(user.session_hash.clone())
        .await?;
    state.hub.sessions_changed();
    start_session(&state, &user.user, user.ip.clone()).await
}

pub async fn totp_enroll(
    State(state): State<Shared>,
    user: Authed,
) -> Result<Json<Value>, ApiError> {
    let secret = auth::new_totp_secret()?;
    let uri = auth::totp_uri(&secret, &user.user.username)?;
    state
        .store
        .set_totp_pending(user.user.id.clone(), secret.clone())
        .await?;
    Ok(Json(
        json!({ "ok": true, "secret": secret, "qrSvg": crate::qr::svg(&uri), "uri": uri }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    code: String,
}

pub async fn totp_confirm(
    State(state): State<Shared>,
    user: Authed,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: CodeRequest = parse_json(&body(raw)?)?;
    let fresh = state.store.user(user.user.id.clone()).await?;
    let Some(pending) = fresh.totp_pending_secret else {
        return Err(ApiError::conflict(
            "no TOTP enrolment is pending: start with POST /api/auth/totp/enroll",
        ));
    };
    let Some(step) = auth::totp_check(&pending, &fresh.username, &request.code) else {
        return Err(ApiError::bad_request(
            "wrong TOTP code: check the authenticator's clock",
        ));
    };
    state.store.confirm_totp(user.user.id.clone(), step).await?;
    state
        .store
        .audit(user.audit("totp.enroll", Some(&user.user.id), None))
        .await?;
    Ok(ok())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    #[serde(default)]
    password: Option<String>,
}

/// Removes one's own TOTP; needs the password.
pub async fn totp_remove(
    State(state): State<Shared>,
    user: Authed,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: PasswordRequest = parse_json_or_default(&body(raw)?)?;
    let Some(password) = request.password else {
        return Err(ApiError::bad_request(
            "give your password to remove TOTP (an administrator can reset it instead)",
        ));
    };
    if !state
        .hashing
        .verify(password, Some(user.user.password_hash.clone()))
        .await?
    {
        return Err(ApiError::forbidden("wrong password"));
    }
    state
        .store
        .update_user(
            user.user.id.clone(),
            UserUpdate {
                reset_totp: true,
                ..Default::default()
            },
        )
        .await?;
    state.hub.sessions_changed();
    state
        .store
        .audit(user.audit("totp.remove", Some(&user.user.id), None))
        .await?;
    Ok(ok())
}

pub async fn list(State(state): State<Shared>, user: Authed) -> Result<Json<Value>, ApiError> {
    user.require(Role::Admin)?;
    Ok(Json(json!(state.store.list_users().await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    password: String,
    #[serde(default = "default_role")]
    role: Role,
}

fn default_role() -> Role {
    Role::Viewer
}

pub async fn create(
    State(state): State<Shared>,
    user: Authed,
    raw: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    user.require(Role::Admin)?;
    let request: CreateUser = parse_json(&body(raw)?)?;
    check_new_credentials(&request.username, &request.password)?;
    let created = state
        .store
        .create_user(NewUser {
            id: uuid::Uuid::new_v4().to_string(),
            username: request.username,
            password_hash: state.hashing.hash(request.password).await?,
            role: request.role,
        })
        .await?;
    state
        .store
        .audit(user.audit(
            "user.create",
            Some(&created.username),
            Some(format!("role {}", created.role.as_str())),
        ))
        .await?;
    Ok((StatusCode::CREATED, Json(json!(created))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchUser {
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    reset_totp: bool,
}

pub async fn update(
    State(state): State<Shared>,
    user: Authed,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    user.require(Role::Admin)?;
    let request: PatchUser = parse_json(&body(raw)?)?;
    let password_hash = match request.password {
        Some(password) => {
            if let Some(problem) = auth::password_problem(&password) {
                return Err(ApiError::bad_request(problem));
            }
            Some(state.hashing.hash(password).await?)
        }
        None => None,
    };
    let mut changes = Vec::new();
    if let Some(role) = request.role {
        changes.push(format!("role {}", role.as_str()));
    }
    if password_hash.is_some() {
        changes.push("password reset".to_owned());
    }
    if request.reset_totp {
        changes.push("TOTP reset".to_owned());
    }
    let updated = state
        .store
        .update_user(
            id,
            UserUpdate {
                role: request.role,
                password_hash,
                reset_totp: request.reset_totp,
            },
        )
        .await?;
    state.hub.sessions_changed();
    state
        .store
        .audit(user.audit(
            "user.update",
            Some(&updated.username),
            Some(changes.join(", ")),
        ))
        .await?;
    Ok(Json(json!(updated)))
}

pub async fn remove(
    State(state): State<Shared>,
    user: Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    user.require(Role::Admin)?;
    let removed = state.store.delete_user(id).await?;
    state.hub.sessions_changed();
    state
        .store
        .audit(user.audit("user.delete", Some(&removed.username), None))
        .await?;
    Ok(ok())
}
