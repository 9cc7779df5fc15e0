//! HMAC-SHA256 request signing of the runner protocol (see PROTOCOL.md).
//!
//! The signed message is seven fields joined with `\n`: method (upper case),
//! path without query, hex SHA-256 of the body, timestamp, nonce, run id and
//! capability token (the last two empty when absent).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const HEADER_SIGNATURE: &str = "x-signature";
pub const HEADER_TIMESTAMP: &str = "x-timestamp";
pub const HEADER_NONCE: &str = "x-nonce";
pub const HEADER_RUN_ID: &str = "x-run-id";
pub const HEADER_CAPABILITY_TOKEN: &str = "x-capability-token";

type HmacSha256 = Hmac<Sha256>;

/// The parts of a request that the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
    pub timestamp: i64,
    pub nonce: &'a str,
    pub run_id: &'a str,
    pub capability_token: &'a str,
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The exact byte string that is signed.
pub fn canonical_message(parts: &SignedParts<'_>) -> String {
    canonical_message_with_digest(parts, &sha256_hex(parts.body))
}

/// [`canonical_message`] with the body's hex SHA-256 given (`parts.body`
/// is not read): for a body too large to hold, hashed as it streamed by.
pub fn canonical_message_with_digest(parts: &SignedParts<'_>, body_sha256_hex: &str) -> String {
    let path = parts.path.split('?').next().unwrap_or_default();
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}",
        parts.method.to_ascii_uppercase(),
        path,
        body_sha256_hex,
        parts.timestamp,
        parts.nonce,
        parts.run_id,
        parts.capability_token
    )
}

fn mac_for(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

/// Lowercase hex HMAC-SHA256 signature of the request.
pub fn sign(secret: &[u8], parts: &SignedParts<'_>) -> String {
    let mut mac = mac_for(secret);
    mac.update(canonical_message(parts).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a hex signature in constant time.
pub fn verify(secret: &[u8], parts: &SignedParts<'_>, signature_hex: &str) -> bool {
    verify_message(secret, &canonical_message(parts), signature_hex)
}

/// [`verify`] with the body's hex SHA-256 given instead of the body.
pub fn verify_with_digest(
    secret: &[u8],
    parts: &SignedParts<'_>,
    body_sha256_hex: &str,
    signature_hex: &str,
) -> bool {
    verify_message(
        secret,
        &canonical_message_with_digest(parts, body_sha256_hex),
        signature_hex,
    )
}

fn verify_message(secret: &[u8], message: &str, signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let mut mac = mac_for(secret);
    mac.update(message.as_bytes());
    mac.verify_slice(&signature).is_ok()
}

/// The HMAC secret as stored in a file or variable: surrounding whitespace
/// (a trailing newline in particular) is not part of it.
pub fn normalize_secret(raw: &str) -> &str {
    raw.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(body: &[u8]) -> SignedParts<'_> {
        SignedParts {
            method: "post",
            path: "/api/ingest/event?x=1",
            body,
            timestamp: 1_700_000_000,
            nonce: "00112233445566778899aabbccddeeff",
            run_id: "run-1",
            capability_token: "tok",
        }
    }

    #[test]
    fn canonical_message_layout() {
        let msg = canonical_message(&parts(b""));
        assert_eq!(
            msg,
            "POST\n/api/ingest/event\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             1700000000\n00112233445566778899aabbccddeeff\nrun-1\ntok"
        );
    }

    // Vector computed independently with:
    // printf 'POST\n/api/ingest/event\n<sha256 of body>\n1700000000\n0011…eeff\nrun-1\ntok' \
    //   | openssl dgst -sha256 -hmac 'secret'
    #[test]
    fn known_vector_matches_openssl() {
        let body = br#"{"type":"stdout","data":"hello","sequence":1}"#;
        let sig = sign(b"secret", &parts(body));
        assert_eq!(
            sig,
            "cfbc705227f2ea69a2a79eecfb635253368b4ece30de0a297dc5334a1ad35334"
        );
        assert!(verify(b"secret", &parts(body), &sig));
    }

    #[test]
    fn a_given_digest_verifies_like_the_body() {
        let body = b"a body streamed to disk";
        let sig = sign(b"secret", &parts(body));
        let digest = sha256_hex(body);
        assert!(verify_with_digest(b"secret", &parts(b""), &digest, &sig));
        assert!(!verify_with_digest(
            b"secret",
            &parts(b""),
            &sha256_hex(b"another body"),
            &sig
        ));
    }

    #[test]
    fn verify_rejects_tampering() {
        let sig = sign(b"secret", &parts(b"abc"));
        assert!(!verify(b"secret", &parts(b"abd"), &sig));
        assert!(!verify(b"other", &parts(b"abc"), &sig));
        assert!(!verify(b"secret", &parts(b"abc"), "zz"));
        assert!(!verify(b"secret", &parts(b"abc"), &sig[..10]));
    }

    #[test]
    fn secret_trailing_newline_ignored() {
        assert_eq!(normalize_secret("abc\n"), "abc");
    }
}
