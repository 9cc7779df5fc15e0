//! `Idempotency-Key`: a retried mutation (a phone on a bad connection)
//! gets the first answer again and does nothing twice.

use sha2::{Digest, Sha256};

use super::{ErrorKind, ServiceError, ServiceResult};
use crate::app::App;
use crate::clock::now_ms;
use crate::store::{IdempotencyClaim, IdempotencyState, StoredAnswer};

/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// A claimed key, to be completed with the answer or released.
#[derive(Debug, Clone)]
pub struct IdempotentRequest {
    scope: String,
    key: String,
}

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum Replay {
    /// First time: handle it, then [`App::idempotency_done`].
    Handle(IdempotentRequest),
    /// Answered before: send this again.
    Answer(StoredAnswer),
}

impl App {
    /// Looks a key up for the caller `scope` (a user id); the request is
    /// named by its method, path and body.
    pub async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> ServiceResult<Replay> {
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServiceError::invalid(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} printable ASCII characters"
            )));
        }
        let mut hash = Sha256::new();
        for part in [method.as_bytes(), path.as_bytes(), body] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        let claim = IdempotencyClaim {
            scope: scope.to_owned(),
            key: key.to_owned(),
            fingerprint: hex::encode(hash.finalize()),
            now: now_ms(),
            expired_before: self.idempotency_cutoff(),
        };
        match self.store.claim_idempotency_key(claim).await? {
            IdempotencyState::Claimed => Ok(Replay::Handle(IdempotentRequest {
                scope: scope.to_owned(),
                key: key.to_owned(),
            })),
            IdempotencyState::Answered(answer) => Ok(Replay::Answer(answer)),
            IdempotencyState::Mismatch => Err(ServiceError::new(
                ErrorKind::KeyReused,
                "this Idempotency-Key was used for another request: use a new key for a new request",
            )),
            IdempotencyState::InProgress => Err(ServiceError::conflict(
                "the first request with this Idempotency-Key is still being answered: retry in a moment",
            )
            .retry_after(1)),
        }
    }

    /// Keeps the answer for retries; an answer that a retry might better
    /// (a failure of the gateway, a throttle) gives the key up instead.
    pub async fn idempotency_done(&self, request: IdempotentRequest, answer: StoredAnswer) {
        let keep = answer.status < 500 && answer.status != 429;
        let result = if keep {
            self.store
                .complete_idempotency_key(request.scope, request.key, answer)
                .await
        } else {
            self.store
                .release_idempotency_key(request.scope, request.key)
                .await
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "an idempotency key's answer was not kept");
        }
    }
}
