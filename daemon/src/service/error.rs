//! What went wrong in a service call, by kind; each transport says it its
//! own way (an HTTP status, a WebSocket error message).

use serde_json::{Map, Value, json};

use crate::auth::{AuthError, HashingError};
use crate::blobs::BlobError;
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong.
    Invalid,
    /// No (valid) credentials.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    NotFound,
    /// The state of things forbids it.
    Conflict,
    TooLarge,
    /// An `Idempotency-Key` reused for another request.
    KeyReused,
    /// Too many attempts or requests: try later.
    Throttled,
    /// The gateway is busy: try again shortly.
    Busy,
    /// No room to store it; nothing was stored.
    Full,
    /// The store or a dependency failed; nothing was stored.
    Unavailable,
    Internal,
}

/// A service failure: its kind, a message for the caller that says what to
/// do, and fields a client can act on (`nextSequence`, `allowed`).
#[derive(Debug, Clone)]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub message: String,
    pub extra: Map<String, Value>,
    /// Seconds after which a retry may succeed.
    pub retry_after: Option<u32>,
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::TooLarge, message)
    }

    pub fn throttled(message: impl Into<String>, retry_after_secs: u32) -> Self {
        Self::new(ErrorKind::Throttled, message).retry_after(retry_after_secs)
    }

    pub fn busy(message: impl Into<String>, retry_after_secs: u32) -> Self {
        Self::new(ErrorKind::Busy, message).retry_after(retry_after_secs)
    }

    pub fn internal() -> Self {
        Self::new(ErrorKind::Internal, "internal error: see the clawd log")
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::not_found(m),
            StoreError::Conflict(m) => Self::conflict(m),
            StoreError::WrongToken => {
                Self::forbidden("capability token does not belong to this run")
            }
            StoreError::Replay => {
                Self::unauthenticated("nonce already used: every request needs a fresh X-Nonce")
            }
            StoreError::SequenceGap { next, .. } => {
                Self::conflict(e.to_string()).with("nextSequence", json!(next))
            }
            StoreError::DiskFull(detail) => {
                tracing::error!(error = %detail, "store is out of space");
                Self::new(
                    ErrorKind::Full,
                    "the gateway's disk is full: nothing was stored, retry later",
                )
            }
            StoreError::Busy(detail) => {
                tracing::warn!(error = %detail, "store is busy");
                Self::busy(
                    "the gateway's database is busy: nothing was stored, retry in a second",
                    1,
                )
            }
            e @ (StoreError::Constraint(_)
            | StoreError::Migration(_)
            | StoreError::Unavailable(_)) => {
                tracing::error!(error = %e, "store error");
                Self::new(
                    ErrorKind::Unavailable,
                    "the gateway could not store this: nothing was stored, retry later",
                )
            }
        }
    }
}

impl From<HashingError> for ServiceError {
    fn from(e: HashingError) -> Self {
        match e {
            HashingError::Busy => Self::busy(
                "the gateway is busy checking passwords: try again in a second",
                1,
            ),
            HashingError::Failed(e) => e.into(),
            HashingError::Panicked => {
                tracing::error!("a password hashing task failed");
                Self::internal()
            }
        }
    }
}

impl From<AuthError> for ServiceError {
    fn from(e: AuthError) -> Self {
        tracing::error!(error = %e, "credential handling failed");
        Self::internal()
    }
}

impl From<BlobError> for ServiceError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound(key) => {
                tracing::warn!(key, "artifact data missing");
                Self::not_found("artifact file is missing on the gateway")
            }
            BlobError::Full(detail) => {
                tracing::error!(error = %detail, "artifact store is out of space");
                Self::new(
                    ErrorKind::Full,
                    "the gateway's disk is full: artifact not stored",
                )
            }
            BlobError::Failed(detail) => {
                tracing::error!(error = %detail, "artifact store failed");
                Self::new(
                    ErrorKind::Unavailable,
                    "the gateway could not store the artifact: retry later",
                )
            }
            BlobError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "artifact store unreachable");
                Self::new(
                    ErrorKind::Unavailable,
                    "the artifact store is unreachable: retry later",
                )
                .retry_after(10)
            }
            BlobError::Input(detail) => {
                Self::invalid(format!("the upload could not be read: {detail}"))
            }
        }
    }
}

impl ServiceError {
    /// A failed upload, saying that nothing was kept.
    pub fn upload(e: BlobError) -> Self {
        match e {
            BlobError::Unavailable(_) => {
                let mut error = Self::from(e);
                error.message = "the artifact store is unreachable: nothing was stored, \
                                 retry later (events are still taken)"
                    .to_owned();
                error
            }
            BlobError::Failed(_) => {
                let mut error = Self::from(e);
                error.message = "the gateway could not store the artifact: nothing was \
                                 stored, retry later"
                    .to_owned();
                error
            }
            e => Self::from(e),
        }
    }
}
