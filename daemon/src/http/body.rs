//! Request bodies read up to a limit, and JSON and query strings parsed
//! with errors that say what is wrong.

use axum::body::Body;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::time::Instant;

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
/// on the way; refused with 413 past `limit` bytes, and with 400 when no
/// data came for `idle` or the body took longer than `total`: a client
/// that stops sending must not hold its file (and its place) for ever.
pub async fn spool_body(
    body: Body,
    limit: usize,
    idle: Duration,
    total: Duration,
    dir: &Path,
) -> ServiceResult<Spooled> {
    let disk = |e: std::io::Error| ServiceError::from(BlobError::from(e));
    let deadline = Instant::now() + total;
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
    loop {
        let wait = deadline.min(Instant::now() + idle);
        let chunk = match tokio::time::timeout_at(wait, stream.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) if Instant::now() >= deadline => {
                return Err(ServiceError::invalid(format!(
                    "the request body took longer than {} s to arrive: send it again over a \
                     faster connection",
                    total.as_secs()
                )));
            }
            Err(_) => {
                return Err(ServiceError::invalid(format!(
                    "no data of the request body came for {} s: send it again",
                    idle.as_secs()
                )));
            }
        };
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::StreamExt;
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::service::ErrorKind;

    const LONG: Duration = Duration::from_secs(60);

    fn chunks(parts: &[&'static [u8]]) -> Body {
        let parts: Vec<Result<Bytes, std::io::Error>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Body::from_stream(futures_util::stream::iter(parts))
    }

    #[tokio::test]
    async fn a_whole_body_is_spooled_with_its_digest() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spooled = spool_body(chunks(&[b"hello ", b"world"]), 64, LONG, LONG, dir.path())
            .await
            .expect("spooled");
        let mut text = String::new();
        spooled.file.read_to_string(&mut text).await.expect("read");
        assert_eq!(text, "hello world");
        assert_eq!(
            spooled.sha256_hex,
            claw_proto::signing::sha256_hex(b"hello world")
        );
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_too_large() {
        let dir = tempfile::tempdir().expect("dir");
        let refused = spool_body(chunks(&[b"hello ", b"world"]), 8, LONG, LONG, dir.path()).await;
        assert_eq!(refused.err().map(|e| e.kind), Some(ErrorKind::TooLarge));
    }

    #[tokio::test]
    async fn a_body_that_stops_coming_is_refused_after_the_idle_time() {
        let dir = tempfile::tempdir().expect("dir");
        let first = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(Bytes::from_static(b"start"))
        });
        let body = Body::from_stream(first.chain(futures_util::stream::pending()));
        let spooling = spool_body(body, 64, Duration::from_millis(200), LONG, dir.path());
        let refused = tokio::time::timeout(Duration::from_secs(10), spooling)
            .await
            .expect("refused within 10 s");
        let error = refused.err().expect("refused");
        assert_eq!(error.kind, ErrorKind::Invalid);
        assert!(error.message.contains("no data"), "{}", error.message);
    }

    #[tokio::test]
    async fn a_body_that_dribbles_is_refused_at_the_deadline() {
        let dir = tempfile::tempdir().expect("dir");
        // A byte every 20 ms, for ever: never idle, never done.
        let dribble = futures_util::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), ()))
        });
        let spooling = spool_body(
            Body::from_stream(dribble),
            1 << 20,
            Duration::from_secs(1),
            Duration::from_millis(300),
            dir.path(),
        );
        let refused = tokio::time::timeout(Duration::from_secs(10), spooling)
            .await
            .expect("refused within 10 s");
        let error = refused.err().expect("refused");
        assert_eq!(error.kind, ErrorKind::Invalid);
        assert!(error.message.contains("took longer"), "{}", error.message);
    }
}
