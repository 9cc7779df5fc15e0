//! The runner protocol: HMAC-signed requests about one run (PROTOCOL.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use claw_proto::agent::AgentMessage;
use claw_proto::api::UploadReply;
use claw_proto::signing::SignedParts;
use claw_proto::wire::{
    CommandAck, EventType, IngestBatch, IngestBatchReply, IngestEvent, IngestEventReply,
    PendingCommand, RunSpec,
};
use futures_util::StreamExt;

use super::{ServiceError, ServiceResult, views};
use crate::app::App;
use crate::artifacts;
use crate::blobs::{ByteStream, valid_run_id};
use crate::clock::now_ms;
use crate::hub::RunSubscription;
use crate::store::{CommandOutcome, Ingested, NewArtifact, NewEvent, RunnerAuth};

/// A runner request as its signature covers it; header values are `None`
/// when missing.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
    /// The body's hex SHA-256 when it was streamed to disk rather than
    /// held (`body` is then empty).
    pub body_sha256: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub run_id: Option<&'a str>,
    pub capability_token: Option<&'a str>,
    /// An enrolled host signing with its own key.
    pub host_id: Option<&'a str>,
}

/// A `message` event's data with the gateway's own sanitised HTML of its
/// markdown (a runner's `html` is replaced); data that is no message is
/// kept as it came.
fn with_html(data: String) -> String {
    match serde_json::from_str::<AgentMessage>(&data) {
        Ok(mut message) => {
            message.html = Some(crate::markdown::to_safe_html(&message.text));
            serde_json::to_string(&message).unwrap_or(data)
        }
        Err(_) => data,
    }
}

fn required<'a>(value: Option<&'a str>, name: &str) -> ServiceResult<&'a str> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ServiceError::unauthenticated(format!("missing {name} header")))
}

impl App {
    /// The signature, the timestamp (within the clock skew) and the nonce
    /// (its shape) of a signed request.
    pub(super) fn signed_headers<'a>(
        &self,
        request: &SignedRequest<'a>,
    ) -> ServiceResult<(&'a str, i64, &'a str)> {
        use claw_proto::signing as h;
        let signature = required(request.signature, h::HEADER_SIGNATURE)?;
        let timestamp_text = required(request.timestamp, h::HEADER_TIMESTAMP)?;
        let nonce = required(request.nonce, h::HEADER_NONCE)?;
        let timestamp: i64 = timestamp_text
            .parse()
            .map_err(|_| ServiceError::unauthenticated("X-Timestamp must be Unix seconds"))?;
        let skew = i64::try_from(self.settings().config.clock_skew_secs).unwrap_or(i64::MAX);
        // Saturating: a timestamp near i64::MIN or MAX must not overflow.
        let difference = (now_ms() / 1000).saturating_sub(timestamp);
        if difference.unsigned_abs() > skew.unsigned_abs() {
            return Err(ServiceError::unauthenticated(format!(
                "timestamp is {difference} s from the gateway's clock (allowed: {skew} s): check the runner's clock"
            )));
        }
        if !(16..=128).contains(&nonce.len()) || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ServiceError::unauthenticated(
                "X-Nonce must be 16 to 128 hex characters",
            ));
        }
        Ok((signature, timestamp, nonce))
    }

    /// What [`Self::verify_runner`] can check without the body: the headers
    /// there and well-formed, the timestamp within the clock skew, the host
    /// enrolled. An upload failing these is refused before it is written
    /// to disk.
    pub fn precheck_runner(&self, request: &SignedRequest<'_>) -> ServiceResult<()> {
        use claw_proto::signing as h;
        let (signature, _, _) = self.signed_headers(request)?;
        required(request.run_id, h::HEADER_RUN_ID)?;
        required(request.capability_token, h::HEADER_CAPABILITY_TOKEN)?;
        // A hex HMAC-SHA256, as verification decodes it: nothing else can
        // verify.
        if !hex::decode(signature.trim()).is_ok_and(|s| s.len() == 32) {
            return Err(ServiceError::unauthenticated("invalid signature"));
        }
        if let Some(host) = request.host_id.filter(|h| !h.is_empty())
            && self.hosts.key(host).is_none()
        {
            return Err(ServiceError::unauthenticated(
                "invalid signature, or the host is not enrolled (revoked or removed?)",
            ));
        }
        Ok(())
    }

    /// Checks the signature (by the gateway's HMAC secret, or by the key of
    /// the enrolled host named in `X-Host-Id`), the clock skew and the
    /// headers' shapes; the nonce, run and token are checked by the store
    /// inside the request's own transaction.
    pub fn verify_runner(&self, request: &SignedRequest<'_>) -> ServiceResult<RunnerAuth> {
        use claw_proto::signing as h;
        let (signature, timestamp, nonce) = self.signed_headers(request)?;
        let run_id = required(request.run_id, h::HEADER_RUN_ID)?;
        let token = required(request.capability_token, h::HEADER_CAPABILITY_TOKEN)?;
        let parts = SignedParts {
            method: request.method,
            path: request.path,
            body: request.body,
            timestamp,
            nonce,
            run_id,
            capability_token: token,
        };
        // A body streamed to disk was hashed on the way.
        let digest = request
            .body_sha256
            .map_or_else(|| h::sha256_hex(request.body), str::to_owned);
        let verified = match request.host_id.filter(|h| !h.is_empty()) {
            Some(host) => self
                .hosts
                .key(host)
                .is_some_and(|key| h::verify_with_digest(key.expose(), &parts, &digest, signature)),
            None => self.secrets.verify_signature(&parts, &digest, signature),
        };
        if !verified {
            tracing::warn!(
                RUN_ID = run_id,
                HOST = request.host_id,
                "rejected a runner request with a bad signature"
            );
            return Err(ServiceError::unauthenticated(
                if request.host_id.is_some() {
                    "invalid signature, or the host is not enrolled (revoked or removed?)"
                } else {
                    "invalid signature"
                },
            ));
        }
        if !valid_run_id(run_id) {
            return Err(ServiceError::not_found(format!("unknown run {run_id}")));
        }
        Ok(RunnerAuth {
            run_id: run_id.to_owned(),
            capability_token: token.to_owned(),
            nonce: nonce.to_ascii_lowercase(),
            timestamp,
        })
    }

    fn to_new_event(&self, event: IngestEvent) -> ServiceResult<NewEvent> {
        let settings = self.settings();
        if event.data.len() > settings.config.event_max_bytes {
            return Err(ServiceError::too_large(format!(
                "event data is {} bytes; the limit is {} (event_max_bytes)",
                event.data.len(),
                settings.config.event_max_bytes
            )));
        }
        let data = if event.kind.is_structured() {
            settings.redactor.redact_json(&event.data).into_owned()
        } else {
            settings.redactor.redact(&event.data).into_owned()
        };
        let data = match event.kind {
            EventType::Message => with_html(data),
            _ => data,
        };
        Ok(NewEvent {
            kind: event.kind,
            data,
            sequence: event.sequence,
        })
    }

    async fn ingest(&self, auth: RunnerAuth, events: Vec<NewEvent>) -> ServiceResult<Ingested> {
        let run_id = auth.run_id.clone();
        let ingested = self.store.runner_ingest(auth, events).await?;
        // Counted as connected only once the store accepted the run and token.
        self.hub.runner_seen(&run_id);
        if let Some(change) = &ingested.status_change {
            tracing::info!(RUN_ID = %change.run_id, status = change.status.as_str(), "run status changed");
        }
        Ok(ingested)
    }

    pub async fn runner_ingest_event(
        &self,
        auth: RunnerAuth,
        event: IngestEvent,
    ) -> ServiceResult<IngestEventReply> {
        let event = self.to_new_event(event)?;
        let ingested = self.ingest(auth, vec![event]).await?;
        let event_id = ingested.ids.first().copied().unwrap_or_default();
        Ok(IngestEventReply { ok: true, event_id })
    }

    pub async fn runner_ingest_batch(
        &self,
        auth: RunnerAuth,
        batch: IngestBatch,
    ) -> ServiceResult<IngestBatchReply> {
        let most = self.settings().config.batch_max_events;
        if batch.events.len() > most {
            return Err(ServiceError::too_large(format!(
                "batch has {} events; the limit is {most} (batch_max_events)",
                batch.events.len()
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
            return Err(ServiceError::invalid(format!(
                "the batch mixes {sequenced} events with a sequence and {} without: give every \
                 event a sequence, or none",
                batch.events.len() - sequenced
            )));
        }
        let events = batch
            .events
            .into_iter()
            .map(|e| self.to_new_event(e))
            .collect::<Result<Vec<_>, _>>()?;
        let ingested = self.ingest(auth, events).await?;
        Ok(IngestBatchReply {
            ok: true,
            event_ids: ingested.ids,
        })
    }

    fn same_run(auth: &RunnerAuth, run_id: &str) -> ServiceResult<()> {
        if auth.run_id == run_id {
            Ok(())
        } else {
            Err(ServiceError::forbidden(
                "X-Run-Id does not match the run in the path",
            ))
        }
    }

    /// The run's pending commands; they become `delivered`.
    pub async fn runner_commands(
        &self,
        auth: RunnerAuth,
        run_id: &str,
    ) -> ServiceResult<Vec<PendingCommand>> {
        Self::same_run(&auth, run_id)?;
        let rows = self.store.runner_pending_commands(auth).await?;
        self.hub.runner_seen(run_id);
        Ok(rows.into_iter().map(views::pending_command).collect())
    }

    /// A command's outcome; acknowledging twice changes nothing.
    pub async fn runner_ack(
        &self,
        auth: RunnerAuth,
        run_id: &str,
        command_id: String,
        ack: CommandAck,
    ) -> ServiceResult<()> {
        Self::same_run(&auth, run_id)?;
        let settings = self.settings();
        let redact = |s: Option<String>| s.map(|s| settings.redactor.redact(&s).into_owned());
        self.store
            .runner_ack_command(
                auth,
                CommandOutcome {
                    command_id,
                    result: redact(ack.result),
                    error: redact(ack.error),
                },
            )
            .await?;
        Ok(())
    }

    /// Stores an uploaded file's bytes as they stream in, then its row; a
    /// refused row takes the bytes with it.
    pub async fn runner_upload(
        &self,
        auth: RunnerAuth,
        name: &str,
        data: ByteStream,
    ) -> ServiceResult<UploadReply> {
        let settings = self.settings();
        let limit = settings.config.artifact_limit_bytes as u64;
        let name = artifacts::safe_name(name);
        settings
            .extensions
            .allowed(&name)
            .map_err(ServiceError::invalid)?;
        let id = uuid::Uuid::new_v4().to_string();
        // Past the limit the stream ends in an error, so the store keeps
        // nothing; the flag tells that error from the store's own.
        let too_large = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&too_large);
        let mut seen = 0u64;
        let data = Box::pin(data.map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > limit {
                flag.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other("artifact too large"));
            }
            Ok(chunk)
        }));
        let (key, size) = match self.blobs.put(&auth.run_id, &id, &name, data).await {
            Ok(stored) => stored,
            Err(_) if too_large.load(Ordering::Relaxed) => {
                return Err(ServiceError::too_large(format!(
                    "artifact is larger than the limit of {limit} bytes (artifact_limit_bytes)"
                )));
            }
            Err(e) => return Err(ServiceError::upload(e)),
        };
        let artifact = NewArtifact {
            id,
            content_type: artifacts::content_type(&name).to_owned(),
            filename: name,
            path: key.clone(),
            size,
        };
        match self.store.runner_add_artifact(auth, artifact).await {
            Ok(row) => {
                tracing::info!(RUN_ID = %row.run_id, artifact = %row.filename, size = row.size, "artifact stored");
                Ok(UploadReply {
                    ok: true,
                    artifact_id: row.id,
                })
            }
            Err(e) => {
                self.blobs.remove(&key).await;
                Err(e.into())
            }
        }
    }

    /// Opens the runner's push channel: the run's notices from now on.
    pub async fn runner_connect(&self, auth: RunnerAuth) -> ServiceResult<RunSubscription> {
        let run_id = auth.run_id.clone();
        self.store.runner_check(auth).await?;
        self.hub.runner_seen(&run_id);
        Ok(self.hub.subscribe(&run_id))
    }

    /// How the run's agent is to be started (`claw-runner start --agent`).
    pub async fn runner_spec(&self, auth: RunnerAuth, run_id: &str) -> ServiceResult<RunSpec> {
        Self::same_run(&auth, run_id)?;
        self.store.runner_check(auth).await?;
        let run = self.store.run(run_id.to_owned()).await?;
        self.hub.runner_seen(run_id);
        Ok(RunSpec {
            run_id: run.id,
            agent: run.agent,
            model: run.model,
            permission_mode: run.permission_mode,
            allowed_tools: run.allowed_tools,
            approval_timeout_secs: Some(
                run.approval_timeout_secs
                    .unwrap_or(self.settings().config.approval_timeout_secs),
            ),
            next_sequence: Some(run.event_count + 1),
            agent_session_id: run.agent_session_id,
            status: Some(run.status),
        })
    }

    pub fn runner_alive(&self, run_id: &str) {
        self.hub.runner_seen(run_id);
    }
}
