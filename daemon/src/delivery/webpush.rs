//! Web Push: the payload encrypted for one browser (RFC 8291 aes128gcm, by
//! `web-push-native`) and signed for its push service with the gateway's
//! VAPID key (RFC 8292: an ES256 JWT whose audience is the push service).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde::{Deserialize, Serialize};
use web_push_native::{Auth, WebPushBuilder};

use crate::secrets::Secret;

/// How long a push service keeps a message for a device that is offline.
const TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// How long a VAPID signature is good for (RFC 8292 allows at most 24 h).
const SIGNATURE_LIFETIME_SECS: i64 = 12 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("the VAPID key is not a P-256 private key in hex (replace or rotate it)")]
    BadKey,
    #[error("the subscription's keys are unusable: {0}")]
    BadSubscription(String),
    #[error("the notification cannot be encrypted: {0}")]
    Encrypt(String),
}

/// The gateway's VAPID key pair.
pub struct Vapid {
    signing: SigningKey,
}

impl Vapid {
    /// From the `vapid-key` secret: a 32-byte scalar in hex.
    pub fn from_secret(secret: &Secret) -> Result<Self, PushError> {
        let text = std::str::from_utf8(secret.expose()).map_err(|_| PushError::BadKey)?;
        let bytes = hex::decode(text.trim()).map_err(|_| PushError::BadKey)?;
        let signing = SigningKey::from_slice(&bytes).map_err(|_| PushError::BadKey)?;
        Ok(Self { signing })
    }

    /// The public key as browsers take it: the uncompressed point, base64url.
    pub fn public_key(&self) -> String {
        let point = self.signing.verifying_key().to_encoded_point(false);
        URL_SAFE_NO_PAD.encode(point.as_bytes())
    }

    /// `Authorization: vapid t=JWT, k=KEY` for a push service's origin.
    fn authorization(&self, audience: &str, subject: &str, now_secs: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": audience,
            "exp": now_secs + SIGNATURE_LIFETIME_SECS,
            "sub": subject,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        let signature: Signature = self.signing.sign(signed.as_bytes());
        format!(
            "vapid t={signed}.{}, k={}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes()),
            self.public_key()
        )
    }
}

/// A subscription's keys as stored with its channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKeys {
    pub p256dh: String,
    pub auth: String,
}

impl StoredKeys {
    /// Checks that the browser's keys are what RFC 8291 needs.
    pub fn parse(p256dh: &str, auth: &str) -> Result<(p256::PublicKey, Auth), PushError> {
        let decode = |what: &str, text: &str| {
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| PushError::BadSubscription(format!("{what} is not base64url")))
        };
        let public = p256::PublicKey::from_sec1_bytes(&decode("p256dh", p256dh)?)
            .map_err(|_| PushError::BadSubscription("p256dh is not a P-256 point".to_owned()))?;
        let auth = decode("auth", auth)?;
        if auth.len() != 16 {
            return Err(PushError::BadSubscription(
                "auth is not 16 bytes".to_owned(),
            ));
        }
        Ok((public, Auth::clone_from_slice(&auth)))
    }
}

/// The request that pushes `body` to one subscription.
pub fn request(
    client: &reqwest::Client,
    vapid: &Vapid,
    endpoint: &str,
    keys: &StoredKeys,
    subject: &str,
    body: Vec<u8>,
    now_secs: i64,
) -> Result<reqwest::RequestBuilder, PushError> {
    let uri: axum::http::Uri = endpoint
        .parse()
        .map_err(|_| PushError::BadSubscription("the endpoint is not a URL".to_owned()))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(PushError::BadSubscription(
            "the endpoint is not an absolute URL".to_owned(),
        ));
    };
    let audience = format!("{scheme}://{authority}");
    let (public, auth) = StoredKeys::parse(&keys.p256dh, &keys.auth)?;
    let encrypted = WebPushBuilder::new(uri, public, auth)
        .with_valid_duration(TTL)
        .build(body)
        .map_err(|e| PushError::Encrypt(e.to_string()))?;
    let (parts, payload) = encrypted.into_parts();
    Ok(client
        .post(endpoint)
        .headers(parts.headers)
        .header("urgency", "high")
        .header(
            reqwest::header::AUTHORIZATION,
            vapid.authorization(&audience, subject, now_secs),
        )
        .body(payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier;

    fn vapid() -> Vapid {
        let secret = crate::secrets::Secret::from_bytes(
            b"c5e2b8f4a1d3e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1".to_vec(),
        );
        Vapid::from_secret(&secret).expect("a valid key")
    }

    #[test]
    fn the_vapid_signature_verifies_with_the_public_key() {
        let vapid = vapid();
        let header = vapid.authorization("https://push.example", "mailto:a@b", 1_000);
        let rest = header.strip_prefix("vapid t=").expect("scheme");
        let (jwt, key) = rest.split_once(", k=").expect("key");
        assert_eq!(key, vapid.public_key());
        let (signed, signature) = jwt.rsplit_once('.').expect("signature");
        let point = URL_SAFE_NO_PAD.decode(key).expect("b64");
        assert_eq!(point.len(), 65);
        let verifying = VerifyingKey::from_sec1_bytes(&point).expect("point");
        let signature =
            Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).expect("b64")).expect("sig");
        verifying
            .verify(signed.as_bytes(), &signature)
            .expect("verifies");
        let claims = URL_SAFE_NO_PAD
            .decode(signed.split('.').nth(1).expect("claims"))
            .expect("b64");
        let claims: serde_json::Value = serde_json::from_slice(&claims).expect("json");
        assert_eq!(claims["aud"], "https://push.example");
        assert_eq!(claims["exp"], 1_000 + SIGNATURE_LIFETIME_SECS);
    }

    #[test]
    fn keys_that_are_not_what_rfc_8291_needs_are_refused() {
        assert!(StoredKeys::parse("AAAA", "AAAAAAAAAAAAAAAAAAAAAA").is_err());
        let point = vapid().public_key();
        assert!(StoredKeys::parse(&point, "AAAA").is_err());
        assert!(StoredKeys::parse(&point, "AAAAAAAAAAAAAAAAAAAAAA").is_ok());
        assert!(Vapid::from_secret(&crate::secrets::Secret::from_bytes(b"zz".to_vec())).is_err());
    }
}
