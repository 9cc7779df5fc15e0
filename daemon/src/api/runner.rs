//! The runner protocol: HMAC-signed requests about one run.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use bytes::Bytes;
use claw_proto::signing::{self, SignedParts};
use claw_proto::wire::{
    CommandAck, IngestBatch, IngestBatchReply, IngestEvent, IngestEventReply, PendingCommand,
    ServerMessage,
};
use serde_json::{Value, json};

use super::error::{body, parse_json, parse_json_or_default};
use super::session::{self, ClientIp};
use super::{ApiError, Shared};
use crate::artifacts::{self, valid_run_id};
use crate::hub::Hub;
use crate::store::{Ingested, NewArtifact, NewEvent, RunnerAuth, iso, now_ms};
use std::sync::Arc;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::unauthorized(format!("missing {name} header")))
}

/// Checks the signature, clock skew and header shapes; the nonce, run and
/// token are checked by the store inside the request's transaction.
pub fn verify(
    state: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<RunnerAuth, ApiError> {
    let signature = header(headers, signing::HEADER_SIGNATURE)?;
    let timestamp_text = header(headers, signing::HEADER_TIMESTAMP)?;
    let nonce = header(headers, signing::HEADER_NONCE)?;
    let run_id = header(headers, signing::HEADER_RUN_ID)?;
    let token = header(headers, signing::HEADER_CAPABILITY_TOKEN)?;
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| ApiError::unauthorized("X-Timestamp must be Unix seconds"))?;
    let now = now_ms() / 1000;
    let skew = i64::try_from(state.config.clock_skew_secs).unwrap_or(i64::MAX);
    // Saturating: a timestamp near i64::MIN or MAX must not overflow.
    let difference = now.saturating_sub(timestamp);
    if difference.unsigned_abs() > skew.unsigned_abs() {
        return Err(ApiError::unauthorized(format!(
            "timestamp is {difference} s from the gateway's clock (allowed: {skew} s): check the runner's clock"
        )));
    }
    if !(16..=128).contains(&nonce.len()) || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::unauthorized(
            "X-Nonce must be 16 to 128 hex characters",
        ));
    }
    let parts = SignedParts {
        method: method.as_str(),
        path: uri.path(),
        body,
        timestamp,
        nonce,
        run_id,
        capability_token: token,
    };
    if !state.secrets.verify_signature(&parts, signature) {
        tracing::warn!(
            RUN_ID = run_id,
            "rejected a runner request with a bad signature"
        );
        return Err(ApiError::unauthorized("invalid signature"));
    }
    if !valid_run_id(run_id) {
        return Err(ApiError::not_found(format!("unknown run {run_id}")));
    }
    Ok(RunnerAuth {
        run_id: run_id.to_owned(),
        capability_token: token.to_owned(),
        nonce: nonce.to_ascii_lowercase(),
        timestamp,
    })
}

fn to_new_event(state: &Shared, event: IngestEvent) -> Result<NewEvent, ApiError> {
    if event.data.len() > state.config.event_max_bytes {
        return Err(ApiError::too_large(format!(
            "event data is {} bytes; the limit is {} (event_max_bytes)",
            event.data.len(),
            state.config.event_max_bytes
        )));
    }
    let data = state.redactor.redact(&event.data).into_owned();
    Ok(NewEvent {
        kind: event.kind,
        data,
        sequence: event.sequence,
    })
}

async fn ingest(
    state: &Shared,
    auth: RunnerAuth,
    events: Vec<NewEvent>,
) -> Result<Ingested, ApiError> {
    let run_id = auth.run_id.clone();
    let hub_state = Arc::clone(state);
    let ingested = state
        .store
        .runner_ingest(auth, events, move |ingested| {
            publish(&hub_state.hub, ingested)
        })
        .await?;
    // Counted as connected only once the store accepted the run and token.
    state.hub.runner_seen(&run_id);
    if let Some(change) = &ingested.status_change {
        tracing::info!(RUN_ID = %change.run_id, status = change.status.as_str(), "run status changed");
    }
    Ok(ingested)
}

/// Runs on the store's writer thread right after the commit.
fn publish(hub: &Hub, ingested: &Ingested) {
    hub.publish_events(&ingested.stored);
    if let Some(change) = &ingested.status_change {
        hub.publish(
            &change.run_id,
            &ServerMessage::RunStatus {
                run_id: change.run_id.clone(),
                status: change.status,
                exit_code: change.exit_code,
            },
        );
        hub.publish_status(change);
    }
}

pub async fn ingest_event(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<IngestEventReply>, ApiError> {
    let raw = body(raw)?;
    let auth = verify(&state, &method, &uri, &headers, &raw)?;
    let event: IngestEvent = parse_json(&raw)?;
    let ingested = ingest(&state, auth, vec![to_new_event(&state, event)?]).await?;
    let event_id = ingested.ids.first().copied().unwrap_or_default();
    Ok(Json(IngestEventReply { ok: true, event_id }))
}

pub async fn ingest_batch(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<IngestBatchReply>, ApiError> {
    let raw = body(raw)?;
    let auth = verify(&state, &method, &uri, &headers, &raw)?;
    let batch: IngestBatch = parse_json(&raw)?;
    if batch.events.len() > state.config.batch_max_events {
        return Err(ApiError::too_large(format!(
            "batch has {} events; the limit is {} (batch_max_events)",
            batch.events.len(),
            state.config.batch_max_events
        )));
    }
    // Unsequenced events are appended after the run's last one; amid
    // sequenced ones they would take a sequence that the batch gives to
    // another event, which would then be answered as a resend and lost.
    let sequenced = batch
        .events
        .iter()
        .filter(|e| e.sequence.is_some_and(|s| s > 0))
        .count();
    if sequenced != 0 && sequenced != batch.events.len() {
        return Err(ApiError::bad_request(format!(
            "the batch mixes {sequenced} events with a sequence and {} without: give every \
             event a sequence, or none",
            batch.events.len() - sequenced
        )));
    }
    let events = batch
        .events
        .into_iter()
        .map(|e| to_new_event(&state, e))
        .collect::<Result<Vec<_>, _>>()?;
    let ingested = ingest(&state, auth, events).await?;
    Ok(Json(IngestBatchReply {
        ok: true,
        event_ids: ingested.ids,
    }))
}

/// `GET /api/runs/{id}/commands`: pending commands for a signed runner, the
/// full list for a browser session.
pub async fn commands(
    State(state): State<Shared>,
    Path(run_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
) -> Result<Json<Value>, ApiError> {
    if headers.contains_key(signing::HEADER_SIGNATURE) {
        let auth = verify(&state, &method, &uri, &headers, b"")?;
        if auth.run_id != run_id {
            return Err(ApiError::forbidden(
                "X-Run-Id does not match the run in the path",
            ));
        }
        let pending: Vec<PendingCommand> = state
            .store
            .runner_pending_commands(auth)
            .await
            .inspect(|_| state.hub.runner_seen(&run_id))?
            .into_iter()
            .map(|c| PendingCommand {
                id: c.id,
                command: c.command,
                created_at: iso(c.created_at),
            })
            .collect();
        return Ok(Json(json!(pending)));
    }
    let user = session::authenticate(&state, session::token_from(&headers, None), ip).await?;
    user.require(claw_proto::wire::Role::Viewer)?;
    Ok(Json(json!(state.store.list_commands(run_id).await?)))
}

pub async fn ack_command(
    State(state): State<Shared>,
    Path((run_id, command_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let raw = body(raw)?;
    let auth = verify(&state, &method, &uri, &headers, &raw)?;
    if auth.run_id != run_id {
        return Err(ApiError::forbidden(
            "X-Run-Id does not match the run in the path",
        ));
    }
    let ack: CommandAck = parse_json_or_default(&raw)?;
    let redact = |s: Option<String>| s.map(|s| state.redactor.redact(&s).into_owned());
    let hub_state = Arc::clone(&state);
    state
        .store
        .runner_ack_command(
            auth,
            command_id,
            redact(ack.result),
            redact(ack.error),
            move |row| {
                if let Some(row) = row {
                    hub_state.hub.publish(
                        &row.run_id,
                        &ServerMessage::CommandCompleted {
                            run_id: row.run_id.clone(),
                            command_id: row.id.clone(),
                            status: row.status.clone(),
                            result: row.result.clone(),
                            error: row.error.clone(),
                        },
                    );
                }
            },
        )
        .await?;
    Ok(super::error::ok())
}

pub async fn upload_artifact(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let raw = body(raw)?;
    let auth = verify(&state, &method, &uri, &headers, &raw)?;
    let (name, data) = first_file(&headers, raw).await?;
    if data.len() > state.config.artifact_limit_bytes {
        return Err(ApiError::too_large(format!(
            "artifact is {} bytes; the limit is {} (artifact_limit_bytes)",
            data.len(),
            state.config.artifact_limit_bytes
        )));
    }
    let name = artifacts::safe_name(&name);
    state
        .artifacts
        .allowed(&name)
        .map_err(ApiError::bad_request)?;
    let id = uuid::Uuid::new_v4().to_string();
    let store_dir = state.artifacts.root().to_owned();
    let (run_id, artifact_id, file_name) = (auth.run_id.clone(), id.clone(), name.clone());
    let data_len = data.len() as u64;
    let artifacts_state = Arc::clone(&state);
    let relative = tokio::task::spawn_blocking(move || {
        artifacts_state
            .artifacts
            .save(&run_id, &artifact_id, &file_name, &data)
    })
    .await
    .map_err(|_| ApiError::internal())?
    .map_err(|e| {
        tracing::error!(error = %e, dir = %store_dir.display(), "cannot write artifact");
        if e.raw_os_error() == Some(28) {
            ApiError::new(
                axum::http::StatusCode::INSUFFICIENT_STORAGE,
                "the gateway's disk is full: artifact not stored",
            )
        } else {
            ApiError::internal()
        }
    })?;
    let artifact = NewArtifact {
        id,
        content_type: artifacts::content_type(&name).to_owned(),
        filename: name,
        path: relative.clone(),
        size: data_len,
    };
    match state.store.runner_add_artifact(auth, artifact).await {
        Ok(row) => {
            tracing::info!(RUN_ID = %row.run_id, artifact = %row.filename, size = row.size, "artifact stored");
            state.hub.publish(
                &row.run_id,
                &ServerMessage::ArtifactAdded {
                    run_id: row.run_id.clone(),
                    artifact_id: row.id.clone(),
                    filename: row.filename.clone(),
                    size: row.size,
                },
            );
            Ok(Json(json!({ "ok": true, "artifactId": row.id })))
        }
        Err(e) => {
            // The row was refused: the file must not stay behind.
            state.artifacts.remove(&relative);
            Err(e.into())
        }
    }
}

/// The first file part of a multipart body: (file name, contents).
async fn first_file(headers: &HeaderMap, raw: Bytes) -> Result<(String, Bytes), ApiError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::bad_request("artifact upload must be multipart/form-data with a boundary")
    })?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(raw) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))?;
        let Some(field) = field else {
            return Err(ApiError::bad_request("multipart body has no file part"));
        };
        let Some(name) = field.file_name().map(str::to_owned) else {
            continue;
        };
        let data = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))?;
        return Ok((name, data));
    }
}
