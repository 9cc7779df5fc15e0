//! `Idempotency-Key`: a retried mutation (a phone on a bad connection)
//! gets the first answer again and does nothing twice. Kept answers may
//! hold a secret shown once (a run's capability token), so they are kept
//! sealed (AES-256-GCM under a key derived from the auth secret): a copy of
//! the database does not show them, and rotating the secret makes them
//! unreadable, which turns their keys new again.

use hmac::{Hmac, Mac};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
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
        let handle = Replay::Handle(IdempotentRequest {
            scope: scope.to_owned(),
            key: key.to_owned(),
        });
        match self.store.claim_idempotency_key(claim.clone()).await? {
            IdempotencyState::Claimed => Ok(handle),
            IdempotencyState::Answered(sealed) => match self.open_answer(scope, key, sealed) {
                Some(answer) => Ok(Replay::Answer(answer)),
                None => {
                    // Sealed under an earlier auth secret: a new key now.
                    let anew = IdempotencyClaim {
                        expired_before: i64::MAX,
                        ..claim
                    };
                    self.store.claim_idempotency_key(anew).await?;
                    Ok(handle)
                }
            },
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
        let sealed = keep
            .then(|| self.seal_answer(&request.scope, &request.key, answer))
            .flatten();
        let result = if let Some(sealed) = sealed {
            self.store
                .complete_idempotency_key(request.scope, request.key, sealed)
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

    /// Gives a claimed key up: its request never got an answer.
    pub async fn idempotency_abandon(&self, request: IdempotentRequest) {
        if let Err(e) = self
            .store
            .release_idempotency_key(request.scope, request.key)
            .await
        {
            tracing::warn!(error = %e, "an abandoned idempotency key was not released");
        }
    }

    /// A key for sealing answers, derived from the auth secret.
    fn answer_key(&self) -> Option<LessSafeKey> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secrets.auth().expose()).ok()?;
        mac.update(b"claw idempotency answers v1");
        let key = UnboundKey::new(&AES_256_GCM, &mac.finalize().into_bytes()).ok()?;
        Some(LessSafeKey::new(key))
    }

    /// The answer's body sealed, bound to its scope and key; `None` (kept
    /// nowhere) when sealing fails.
    fn seal_answer(
        &self,
        scope: &str,
        key: &str,
        mut answer: StoredAnswer,
    ) -> Option<StoredAnswer> {
        let sealing = self.answer_key()?;
        let nonce_bytes: [u8; 12] = crate::fsutil::random_bytes(12).ok()?.try_into().ok()?;
        let aad = format!("{scope}\n{key}");
        sealing
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad.as_bytes()),
                &mut answer.body,
            )
            .ok()?;
        let mut body = nonce_bytes.to_vec();
        body.append(&mut answer.body);
        answer.body = body;
        Some(answer)
    }

    fn open_answer(
        &self,
        scope: &str,
        key: &str,
        mut sealed: StoredAnswer,
    ) -> Option<StoredAnswer> {
        let opening = self.answer_key()?;
        if sealed.body.len() < 12 {
            return None;
        }
        let mut body = sealed.body.split_off(12);
        let nonce = Nonce::try_assume_unique_for_key(&sealed.body).ok()?;
        let aad = format!("{scope}\n{key}");
        let plain = opening
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut body)
            .ok()?
            .len();
        body.truncate(plain);
        sealed.body = body;
        Some(sealed)
    }
}
