//! The runner protocol over HTTPS: every request signed (PROTOCOL.md).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use claw_proto::api::{Done, UploadReply};
use claw_proto::signing;
use claw_proto::wire::{
    CommandAck, IngestBatch, IngestBatchReply, IngestEvent, IngestEventReply, RunSpec,
};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::Semaphore;

use super::extract::User;
use crate::app::App;
use crate::blobs::{BlobError, ByteStream};
use crate::http::{SPOOL_DIR, parse_json, parse_json_or_default, read_body, spool_body};
use crate::service::{RunnerAuth, ServiceError, ServiceResult, SignedRequest};

type AppState = State<Arc<App>>;

/// Multipart framing comes on top of an artifact's own bytes.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks a signed request's signature over its method, path and body.
pub fn verify(
    app: &App,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ServiceResult<RunnerAuth> {
    verify_body(app, method, path, headers, body, None)
}

/// [`verify`] for a body that is either held or, when too large to hold,
/// streamed to disk and known by its digest.
fn verify_body(
    app: &App,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    body_sha256: Option<&str>,
) -> ServiceResult<RunnerAuth> {
    app.verify_runner(&signed_request(method, path, headers, body, body_sha256))
}

fn signed_request<'a>(
    method: &'a str,
    path: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
    body_sha256: Option<&'a str>,
) -> SignedRequest<'a> {
    SignedRequest {
        method,
        path,
        body,
        body_sha256,
        signature: header(headers, signing::HEADER_SIGNATURE),
        timestamp: header(headers, signing::HEADER_TIMESTAMP),
        nonce: header(headers, signing::HEADER_NONCE),
        run_id: header(headers, signing::HEADER_RUN_ID),
        capability_token: header(headers, signing::HEADER_CAPABILITY_TOKEN),
        host_id: header(headers, claw_proto::hosts::HEADER_HOST_ID),
    }
}

/// A runner request whose signature verified: who sent it and its body.
pub struct Signed {
    pub auth: RunnerAuth,
    pub body: Bytes,
}

impl FromRequest<Arc<App>> for Signed {
    type Rejection = ServiceError;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Self, ServiceError> {
        let (parts, body) = request.into_parts();
        let limit = app.settings().config.body_limit_bytes;
        let body = read_body(body, limit).await?;
        let auth = verify(
            app,
            parts.method.as_str(),
            parts.uri.path(),
            &parts.headers,
            &body,
        )?;
        Ok(Self { auth, body })
    }
}

pub async fn ingest_event(
    State(app): AppState,
    signed: Signed,
) -> ServiceResult<Json<IngestEventReply>> {
    let event: IngestEvent = parse_json(&signed.body)?;
    Ok(Json(app.runner_ingest_event(signed.auth, event).await?))
}

pub async fn ingest_batch(
    State(app): AppState,
    signed: Signed,
) -> ServiceResult<Json<IngestBatchReply>> {
    let batch: IngestBatch = parse_json(&signed.body)?;
    Ok(Json(app.runner_ingest_batch(signed.auth, batch).await?))
}

/// `GET /api/runs/{id}/commands`: the pending commands for a signed runner,
/// every command of the run for a browser session.
pub async fn commands(
    State(app): AppState,
    Path(run_id): Path<String>,
    request: Request,
) -> ServiceResult<Response> {
    if request.headers().contains_key(signing::HEADER_SIGNATURE) {
        let signed = Signed::from_request(request, &app).await?;
        let pending = app.runner_commands(signed.auth, &run_id).await?;
        return Ok(Json(pending).into_response());
    }
    let (mut parts, _) = request.into_parts();
    let user =
        <User as axum::extract::FromRequestParts<Arc<App>>>::from_request_parts(&mut parts, &app)
            .await?;
    Ok(Json(app.list_commands(&user.caller(), run_id).await?).into_response())
}

/// `GET /api/runs/{id}/spec`: how the run's agent is to be started.
pub async fn spec(
    State(app): AppState,
    Path(run_id): Path<String>,
    signed: Signed,
) -> ServiceResult<Json<RunSpec>> {
    Ok(Json(app.runner_spec(signed.auth, &run_id).await?))
}

pub async fn ack_command(
    State(app): AppState,
    Path((run_id, command_id)): Path<(String, String)>,
    signed: Signed,
) -> ServiceResult<Json<Done>> {
    let ack: CommandAck = parse_json_or_default(&signed.body)?;
    app.runner_ack(signed.auth, &run_id, command_id, ack)
        .await?;
    Ok(Json(Done::OK))
}

/// Uploads being spooled at once. Each may hold `artifact_limit_bytes` of
/// disk (50 MiB by default) before its signature can be checked, so this
/// bounds what anyone can make clawd write at one time; runners upload
/// seldom (a file or two at the end of a run), so 16 is plenty.
const SPOOLS_AT_ONCE: usize = 16;

/// Shared by every upload of the process: they share its disk.
static SPOOLS: Semaphore = Semaphore::const_new(SPOOLS_AT_ONCE);

/// An upload body that sends nothing for this long is refused: its client
/// stalled or is holding a spool on purpose.
const UPLOAD_IDLE: Duration = Duration::from_secs(30);

/// The slowest an upload may come on average (64 KiB/s, about 0.5 Mbit/s),
/// after [`UPLOAD_GRACE`]: at the default limit, about 15 minutes.
const UPLOAD_MIN_BYTES_PER_SEC: usize = 64 * 1024;
const UPLOAD_GRACE: Duration = Duration::from_secs(60);

/// `POST /api/ingest/artifact`: the body (up to `artifact_limit_bytes`) is
/// written to a temporary file as it comes, hashed on the way for the
/// signature, then its file part streams from there to the artifact store:
/// memory holds chunks, never the file.
///
/// The signature covers the body, so it is checked only once the body is
/// on disk; what can be checked before (the declared length, the signed
/// headers and the clock) is, so that a request refused anyway writes
/// nothing, and the spools are bounded in number and time.
pub async fn upload_artifact(
    State(app): AppState,
    request: Request,
) -> ServiceResult<Json<UploadReply>> {
    let (parts, body) = request.into_parts();
    let limit = app.settings().config.artifact_limit_bytes + MULTIPART_OVERHEAD;
    check_declared_length(&parts.headers, limit)?;
    let method = parts.method.as_str();
    let path = parts.uri.path();
    app.precheck_runner(&signed_request(method, path, &parts.headers, b"", None))?;
    // The artifact store known away: refused before the body is read.
    if let Some(why) = app.blobs.health().error {
        return Err(ServiceError::upload(BlobError::Unavailable(why)));
    }
    // Held until the spooled file is closed, when the upload is done.
    let _spool = SPOOLS.try_acquire().map_err(|_| {
        ServiceError::busy(
            "too many artifact uploads at once: try again in a few seconds",
            5,
        )
    })?;
    let total = UPLOAD_GRACE + Duration::from_secs((limit / UPLOAD_MIN_BYTES_PER_SEC) as u64);
    let dir = app.data_dir.join(SPOOL_DIR);
    let spooled = spool_body(body, limit, UPLOAD_IDLE, total, &dir).await?;
    let auth = verify_body(
        &app,
        method,
        path,
        &parts.headers,
        b"",
        Some(&spooled.sha256_hex),
    )?;
    let (name, data) = first_file(&parts.headers, spooled.file).await?;
    Ok(Json(app.runner_upload(auth, &name, data).await?))
}

/// Refuses with 413, before any of the body is read, a request whose
/// `Content-Length` is past `limit`; a body without one is held to the
/// limit as it streams.
fn check_declared_length(headers: &HeaderMap, limit: usize) -> ServiceResult<()> {
    let declared = header(headers, axum::http::header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Err(ServiceError::too_large(
            "request body is larger than the configured limit",
        )),
        _ => Ok(()),
    }
}

/// The first file part of a multipart body: (file name, its bytes as they
/// are read from `body`).
async fn first_file(
    headers: &HeaderMap,
    body: tokio::fs::File,
) -> ServiceResult<(String, ByteStream)> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ServiceError::invalid("artifact upload must be multipart/form-data with a boundary")
    })?;
    // multer reads its source until that is pending, which a file seldom
    // is: it held up to 8 MiB (128 reads, tokio's budget) at once. A yield
    // before each read but the first keeps it to one chunk. (Not between a
    // read and its chunk: a chunk that came with the end was refused.)
    let chunks = tokio_util::io::ReaderStream::with_capacity(body, 64 * 1024);
    let stream = futures_util::stream::unfold((chunks, false), |(mut chunks, read)| async move {
        if read {
            tokio::task::yield_now().await;
        }
        let chunk = chunks.next().await?;
        Some((chunk, (chunks, true)))
    });
    let mut multipart = multer::Multipart::new(stream, boundary);
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| ServiceError::invalid(format!("malformed multipart body: {e}")))?;
        let Some(field) = field else {
            return Err(ServiceError::invalid("multipart body has no file part"));
        };
        let Some(name) = field.file_name().map(str::to_owned) else {
            continue;
        };
        // The rest of the multipart body goes with the field.
        let bytes = field.map_err(std::io::Error::other);
        return Ok((name, Box::pin(bytes)));
    }
}
