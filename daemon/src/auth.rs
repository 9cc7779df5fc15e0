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
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("dummy password for timing").unwrap_or_default())
}

pub fn valid_username(name: &str) -> bool {
    (3..=50).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
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
