//! `Idempotency-Key` on the human API: a mutating call retried with the
//! same key and body gets the first answer and does nothing again; the
//! same key with another body is refused with 422. Keys belong to the
//! user whose session sends them. Passed through: calls without a session,
//! the session calls themselves (setup, login, logout, refresh, TOTP: their
//! answer is a cookie or a secret for one moment), and runner requests
//! (which resend by sequence).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::extract::token_from;
use super::{client_ip, runner_protocol};
use crate::app::App;
use crate::http::read_body;
use crate::service::{Replay, StoredAnswer};

pub const HEADER: &str = "idempotency-key";
/// Set on an answer given again for a retried key.
const REPLAYED: &str = "idempotent-replayed";
/// Largest answer kept; mutating calls answer with small JSON.
const MOST_KEPT: usize = 1024 * 1024;

pub async fn layer(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Some(key) = request.headers().get(HEADER).cloned() else {
        return next.run(request).await;
    };
    let mutating = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let path = request.uri().path();
    let session_call = path.starts_with("/api/auth/") && !path.starts_with("/api/auth/users");
    if !mutating || !path.starts_with("/api/") || session_call || runner_protocol(&request) {
        return next.run(request).await;
    }
    let ip = client_ip(&request).map(|ip| ip.to_string());
    let token = token_from(request.headers(), None);
    let Ok(session) = app.authenticate(token, ip).await else {
        return next.run(request).await;
    };
    let Ok(key) = key.to_str().map(str::to_owned) else {
        return crate::service::ServiceError::invalid("Idempotency-Key must be printable ASCII")
            .into_response();
    };
    let (parts, body) = request.into_parts();
    let limit = app.settings().config.body_limit_bytes;
    let body = match read_body(body, limit).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let begun = app
        .idempotency_begin(&session.user.id, &key, parts.method.as_str(), path, &body)
        .await;
    let claim = match begun {
        Err(e) => return e.into_response(),
        Ok(Replay::Answer(answer)) => return replayed(answer),
        Ok(Replay::Handle(claim)) => claim,
    };
    // A client that goes away mid-request must not leave its key "in
    // progress" for a day: the guard gives it up unless it is answered.
    let mut pending = Pending {
        app: Arc::clone(&app),
        claim: Some(claim),
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let Some(claim) = pending.claim.take() else {
        return response;
    };
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MOST_KEPT).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "an answer was too large to keep for its idempotency key");
            app.idempotency_done(
                claim,
                StoredAnswer {
                    status: 500,
                    content_type: None,
                    body: Vec::new(),
                },
            )
            .await;
            return crate::service::ServiceError::internal().into_response();
        }
    };
    let answer = StoredAnswer {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: bytes.to_vec(),
    };
    app.idempotency_done(claim, answer).await;
    parts.headers.remove(REPLAYED);
    Response::from_parts(parts, Body::from(bytes))
}

fn replayed(answer: StoredAnswer) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() =
        axum::http::StatusCode::from_u16(answer.status).unwrap_or(axum::http::StatusCode::OK);
    let headers = response.headers_mut();
    if let Some(content_type) = answer
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// A claimed key whose request is being answered.
struct Pending {
    app: Arc<App>,
    claim: Option<crate::service::IdempotentRequest>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            let app = Arc::clone(&self.app);
            tokio::spawn(async move { app.idempotency_abandon(claim).await });
        }
    }
}
