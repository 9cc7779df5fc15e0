//! Credentials: argon2id password hashes, session tokens, TOTP codes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use totp_rs::{Algorithm as TotpAlgorithm, Secret as TotpSecret, TOTP};

use crate::fsutil;

pub const USERNAME_RULE: &str = "user names are 3 to 50 letters, digits, '_' or '-'";
pub const PASSWORD_MIN: usize = 12;
pub const PASSWORD_MAX: usize = 200;
const TOTP_ISSUER: &str = "claw";
const TOTP_STEP_SECS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("no randomness available: {0}")]
    Random(#[from] std::io::Error),
    #[error("TOTP secret is unusable: {0}")]
    Totp(String),
}

/// argon2id with 64 MiB, 3 iterations, parallelism 4.
fn hasher() -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(64 * 1024, 3, 4, None).map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt_bytes = fsutil::random_bytes(16)?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Hash(e.to_string()))?
        .to_string())
}

/// Constant-time check; an unparsable stored hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    // The parameters come from the stored hash itself.
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash to verify against when the user does not exist, so that unknown
/// and known user names take the same time.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("dummy password for timing").unwrap_or_default())
}

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// Every hashing slot is taken and the queue is full.
    #[error("too many password checks at once")]
    Busy,
    #[error(transparent)]
    Failed(#[from] AuthError),
    #[error("password hashing task failed")]
    Panicked,
}

/// Bounds the argon2 work done at once. Each hash or check holds 64 MiB for
/// about 0.1 s of one CPU; without a bound, 100 concurrent failed logins
/// took clawd to 4.85 GB. At most one per slot runs, a few more wait, and
/// anything past them is refused at once (the caller answers 503 with
/// Retry-After), so hashing never holds more than `slots` × 64 MiB.
pub struct HashingPool {
    slots: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    queue: usize,
}

/// Decrements the waiting count however the wait ends (also when the
/// request is dropped while it waits).
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl HashingPool {
    /// `slots` at once (at least one), and up to `queue` more waiting.
    pub fn new(slots: usize, queue: usize) -> Self {
        Self {
            slots: tokio::sync::Semaphore::new(slots.max(1)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            queue,
        }
    }

    /// One slot per CPU clawd may use, and four waiting per slot.
    pub fn for_this_machine() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::new(cpus, 4 * cpus)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let permit = match self.slots.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                let waiting = self
                    .waiting
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                let _waiting = Waiting(&self.waiting);
                if waiting >= self.queue {
                    return Err(HashingError::Busy);
                }
                self.slots
                    .acquire()
                    .await
                    .map_err(|_| HashingError::Panicked)?
            }
        };
        let result = tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| HashingError::Panicked);
        drop(permit);
        result
    }

    pub async fn hash(&self, password: String) -> Result<String, HashingError> {
        Ok(self.run(move || hash_password(&password)).await??)
    }

    /// Checks a password against a stored hash, or against a dummy one when
    /// there is none (an unknown user), which costs the same.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashingError> {
        self.run(move || match stored {
            Some(stored) => verify_password(&password, &stored),
            None => {
                verify_password(&password, dummy_hash());
                false
            }
        })
        .await
    }
}

pub fn valid_username(name: &str) -> bool {
    (3..=50).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A user name as logs and the audit log may show it: itself when it is a
/// valid account name, else only that it was not one. A password typed
/// into the user field, or a megabyte of junk, never reaches either.
pub fn loggable_username(name: &str) -> std::borrow::Cow<'_, str> {
    if valid_username(name) {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(format!("(not a valid user name, {} bytes)", name.len()))
    }
}

pub fn password_problem(password: &str) -> Option<String> {
    let n = password.chars().count();
    if n < PASSWORD_MIN {
        Some(format!(
            "password must be at least {PASSWORD_MIN} characters"
        ))
    } else if n > PASSWORD_MAX {
        Some(format!(
            "password must be at most {PASSWORD_MAX} characters"
        ))
    } else {
        None
    }
}

/// A new session token: 48 random bytes, hex.
pub fn new_session_token() -> Result<String, AuthError> {
    Ok(fsutil::random_hex(48)?)
}

/// What the store keeps of a session token: HMAC-SHA256 under the auth
/// secret, so a database leak yields no usable token and rotating the secret
/// ends every session.
pub fn session_id_hash(auth_secret: &[u8], token: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(auth_secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A new base32 TOTP secret (160 bits).
pub fn new_totp_secret() -> Result<String, AuthError> {
    Ok(TotpSecret::Raw(fsutil::random_bytes(20)?)
        .to_encoded()
        .to_string())
}

fn totp(secret_b32: &str, account: &str) -> Result<TOTP, AuthError> {
    let bytes = TotpSecret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .map_err(|e| AuthError::Totp(format!("{e:?}")))?;
    TOTP::new(
        TotpAlgorithm::SHA1,
        6,
        1,
        TOTP_STEP_SECS,
        bytes,
        Some(TOTP_ISSUER.to_owned()),
        account.to_owned(),
    )
    .map_err(|e| AuthError::Totp(e.to_string()))
}

/// The `otpauth://` URI an authenticator app enrols from.
pub fn totp_uri(secret_b32: &str, account: &str) -> Result<String, AuthError> {
    Ok(totp(secret_b32, account)?.get_url())
}

/// The time step a code is valid for (now, or one step either side), or
/// `None` if the code is wrong.
pub fn totp_check(secret_b32: &str, account: &str, code: &str) -> Option<u64> {
    let totp = totp(secret_b32, account).ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let code = code.trim();
    [
        now,
        now.saturating_sub(TOTP_STEP_SECS),
        now + TOTP_STEP_SECS,
    ]
    .into_iter()
    .find(|t| {
        let expected = totp.generate(*t);
        bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            code.as_bytes(),
        ))
    })
    .map(|t| t / TOTP_STEP_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[tokio::test]
    async fn hashing_pool_refuses_past_its_queue_and_frees_its_slots() {
        let pool = std::sync::Arc::new(HashingPool::new(1, 1));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let pool = std::sync::Arc::clone(&pool);
            tokio::spawn(async move {
                pool.run(move || {
                    let _ = hold.recv();
                })
                .await
            })
        };
        // The slot is taken: one may wait, the next is refused.
        while pool.slots.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let waiter = {
            let pool = std::sync::Arc::clone(&pool);
            tokio::spawn(async move { pool.run(|| 1).await })
        };
        while pool.waiting.load(std::sync::atomic::Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(pool.run(|| 2).await, Err(HashingError::Busy)));
        release.send(()).expect("release");
        assert!(blocker.await.expect("task").is_ok());
        assert_eq!(waiter.await.expect("task").expect("ran"), 1);
        assert_eq!(pool.waiting.load(std::sync::atomic::Ordering::Acquire), 0);
        assert_eq!(pool.run(|| 3).await.expect("free again"), 3);
    }

    #[test]
    fn loggable_names() {
        assert_eq!(loggable_username("alice"), "alice");
        let long = "x".repeat(1 << 20);
        assert_eq!(
            loggable_username(&long),
            "(not a valid user name, 1048576 bytes)"
        );
        assert!(!loggable_username("hunter2 correct horse!").contains("hunter2"));
    }

    #[test]
    fn usernames() {
        assert!(valid_username("alice_01"));
        assert!(!valid_username("al"));
        assert!(!valid_username("alice smith"));
        assert!(!valid_username(&"a".repeat(51)));
    }

    #[test]
    fn totp_codes() {
        let secret = new_totp_secret().expect("secret");
        let t = totp(&secret, "alice").expect("totp");
        let code = t.generate_current().expect("code");
        assert!(totp_check(&secret, "alice", &code).is_some());
        assert!(totp_check(&secret, "alice", "000000x").is_none());
        assert!(
            totp_uri(&secret, "alice")
                .expect("uri")
                .starts_with("otpauth://totp/claw:alice")
        );
    }
}
