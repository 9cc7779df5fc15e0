//! Request bodies read up to a limit, and JSON and query strings parsed
//! with errors that say what is wrong.

use axum::body::Body;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::service::{ServiceError, ServiceResult};

/// The whole body, refused with 413 past `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> ServiceResult<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ServiceError::too_large("request body is larger than the configured limit")
        } else {
            ServiceError::invalid(format!("cannot read request body: {e}"))
        }
    })
}

/// Parses JSON with a 400 that says what is wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ServiceResult<T> {
    if bytes.is_empty() {
        return Err(ServiceError::invalid("request body must be JSON"));
    }
    serde_json::from_slice(bytes).map_err(|e| ServiceError::invalid(format!("invalid JSON: {e}")))
}

/// Like [`parse_json`], an empty body meaning `{}`.
pub fn parse_json_or_default<T: DeserializeOwned + Default>(bytes: &[u8]) -> ServiceResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(bytes)
}

pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> ServiceResult<T> {
    q.map(|Query(v)| v)
        .map_err(|e| ServiceError::invalid(format!("invalid query: {}", e.body_text())))
}
