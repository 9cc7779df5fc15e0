//! Who is calling: a session from the `session` cookie or a bearer token.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use claw_proto::wire::Role;

use super::{ApiError, PeerAddr, Shared};
use crate::auth;
use crate::store::{AuditEntry, UserRow};

pub const COOKIE_NAME: &str = "session";

/// An authenticated user with a live session.
pub struct Authed {
    pub user: UserRow,
    pub session_hash: String,
    /// When the session ends (Unix ms).
    pub expires_at: i64,
    pub ip: Option<String>,
}

impl Authed {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.user.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role; you are {}",
                role.as_str(),
                self.user.role.as_str()
            )))
        }
    }

    /// An audit entry for an action by this user.
    pub fn audit(&self, action: &str, target: Option<&str>, details: Option<String>) -> AuditEntry {
        AuditEntry {
            user_id: Some(self.user.id.clone()),
            username: Some(self.user.username.clone()),
            action: action.to_owned(),
            target: target.map(str::to_owned),
            details,
            ip: self.ip.clone(),
        }
    }
}

/// The session token a request carries, if any.
pub fn token_from(headers: &HeaderMap, query_token: Option<&str>) -> Option<String> {
    if let Some(bearer) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_owned());
    }
    let from_cookie = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned());
    from_cookie.or_else(|| query_token.map(str::to_owned))
}

pub async fn authenticate(
    state: &Shared,
    token: Option<String>,
    ip: Option<String>,
) -> Result<Authed, ApiError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::unauthorized("not logged in"));
    };
    let session_hash = auth::session_id_hash(state.secrets.auth().expose(), &token);
    match state.store.session_user(session_hash.clone()).await? {
        Some((user, expires_at)) => Ok(Authed {
            user,
            session_hash,
            expires_at,
            ip,
        }),
        None => Err(ApiError::unauthorized(
            "session expired or unknown: log in again",
        )),
    }
}

pub fn peer_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<PeerAddr>()
        .map(|p| p.0.ip().to_string())
}

impl FromRequestParts<Shared> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let token = token_from(&parts.headers, None);
        authenticate(state, token, peer_ip(parts)).await
    }
}

/// The caller's address, for handlers that need it without a session.
pub struct ClientIp(pub Option<String>);

impl FromRequestParts<Shared> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &Shared) -> Result<Self, Self::Rejection> {
        Ok(Self(peer_ip(parts)))
    }
}
