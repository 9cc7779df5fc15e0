//! Request bodies read up to a limit, and JSON and query strings parsed
//! with errors that say what is wrong.

use axum::body::Body;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::blobs::BlobError;
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

/// Where bodies too large to hold wait, under the data directory: on the
/// same disk as the data, and never in a backup.
pub const SPOOL_DIR: &str = "spool";

/// A body written to an unnamed temporary file (gone when closed), rewound.
pub struct Spooled {
    pub file: tokio::fs::File,
    pub sha256_hex: String,
}

/// Writes the body to a temporary file in `dir` as it arrives, hashing it
/// on the way; refused with 413 past `limit` bytes.
pub async fn spool_body(body: Body, limit: usize, dir: &Path) -> ServiceResult<Spooled> {
    let disk = |e: std::io::Error| ServiceError::from(BlobError::from(e));
    tokio::fs::create_dir_all(dir).await.map_err(disk)?;
    let dir = dir.to_owned();
    let file = tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir))
        .await
        .map_err(|_| ServiceError::internal())?
        .map_err(disk)?;
    let mut file = tokio::fs::File::from_std(file);
    let mut hasher = Sha256::new();
    let mut size = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ServiceError::invalid(format!("cannot read request body: {e}")))?;
        size += chunk.len();
        if size > limit {
            return Err(ServiceError::too_large(
                "request body is larger than the configured limit",
            ));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(disk)?;
    }
    file.flush().await.map_err(disk)?;
    file.seek(std::io::SeekFrom::Start(0)).await.map_err(disk)?;
    Ok(Spooled {
        file,
        sha256_hex: hex::encode(hasher.finalize()),
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
