//! What a web handler takes from a request: the caller (a session from the
//! `session` cookie or a bearer token, or nobody), its address, and a JSON
//! body read up to the configured limit.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::http::{parse_json, parse_json_or_default, read_body};
use crate::server::PeerAddr;
use crate::service::{Caller, ServiceError, SessionUser};

pub const COOKIE_NAME: &str = "session";

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

pub fn peer_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<PeerAddr>()
        .map(|p| p.0.ip().to_string())
}

/// A logged-in user.
pub struct User(pub SessionUser);

impl User {
    pub fn caller(&self) -> Caller {
        Caller::User(self.0.clone())
    }
}

impl FromRequestParts<Arc<App>> for User {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ServiceError> {
        let token = token_from(&parts.headers, None);
        Ok(Self(app.authenticate(token, peer_ip(parts)).await?))
    }
}

/// Anyone, known by address only (setup, login).
pub struct Anyone(pub Caller);

impl FromRequestParts<Arc<App>> for Anyone {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<App>) -> Result<Self, Self::Rejection> {
        Ok(Self(Caller::Anonymous { ip: peer_ip(parts) }))
    }
}

/// A JSON body of at most `body_limit_bytes`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for JsonBody<T> {
    type Rejection = ServiceError;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Self, ServiceError> {
        let limit = app.settings().config.body_limit_bytes;
        let bytes = read_body(request.into_body(), limit).await?;
        Ok(Self(parse_json(&bytes)?))
    }
}

/// Like [`JsonBody`], an empty body meaning the default.
pub struct JsonOrEmpty<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<Arc<App>> for JsonOrEmpty<T> {
    type Rejection = ServiceError;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Self, ServiceError> {
        let limit = app.settings().config.body_limit_bytes;
        let bytes = read_body(request.into_body(), limit).await?;
        Ok(Self(parse_json_or_default(&bytes)?))
    }
}
