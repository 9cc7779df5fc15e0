//! Signed requests to clawd about one run (PROTOCOL.md).

use std::time::Duration;

use claw_proto::signing::{self, SignedParts};
use reqwest::{Method, StatusCode};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Worth retrying: the gateway is unreachable, restarting or busy.
    #[error("gateway unreachable: {0}")]
    Transient(String),
    /// Retrying will not help (bad secret, wrong token, unknown run).
    #[error("gateway refused ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("cannot read {0}: {1}")]
    CaCert(String, String),
}

#[derive(Clone)]
pub struct Gateway {
    http: reqwest::Client,
    base: String,
    secret: String,
    pub run_id: String,
    token: String,
}

fn nonce() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness there is no safe request to make.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos().to_le_bytes())
            .unwrap_or_default();
    }
    hex::encode(bytes)
}

impl Gateway {
    pub fn new(config: &Config, run_id: &str, token: &str) -> Result<Self, GatewayError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60));
        if let Some(pin) = &config.cert_fingerprint {
            let sha256 = crate::pinning::parse_fingerprint(pin).ok_or_else(|| {
                GatewayError::CaCert(
                    "CLAW_CERT_FINGERPRINT".to_owned(),
                    "not a SHA-256 fingerprint (64 hex digits, colons allowed)".to_owned(),
                )
            })?;
            let tls = crate::pinning::client_config(sha256).map_err(|e| {
                GatewayError::CaCert("CLAW_CERT_FINGERPRINT".to_owned(), e.to_string())
            })?;
            builder = builder.use_preconfigured_tls(tls);
        } else if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| GatewayError::CaCert(path.display().to_string(), e.to_string()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| GatewayError::CaCert(path.display().to_string(), e.to_string()))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| GatewayError::Transient(e.to_string()))?;
        Ok(Self {
            http,
            base: config.gateway_url.clone(),
            secret: config.hmac_secret.clone(),
            run_id: run_id.to_owned(),
            token: token.to_owned(),
        })
    }

    /// The HTTP client (trusting the configured CA), for unsigned requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// One signed request; the answer's body on success.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<bytes::Bytes, GatewayError> {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let nonce = nonce();
        let signature = signing::sign(
            self.secret.as_bytes(),
            &SignedParts {
                method: method.as_str(),
                path,
                body: &body,
                timestamp,
                nonce: &nonce,
                run_id: &self.run_id,
                capability_token: &self.token,
            },
        );
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(signing::HEADER_SIGNATURE, signature)
            .header(signing::HEADER_TIMESTAMP, timestamp.to_string())
            .header(signing::HEADER_NONCE, nonce)
            .header(signing::HEADER_RUN_ID, &self.run_id)
            .header(signing::HEADER_CAPABILITY_TOKEN, &self.token)
            .body(body);
        if let Some(ct) = content_type {
            request = request.header("Content-Type", ct);
        }
        let response = request
            .send()
            .await
            .map_err(|e| GatewayError::Transient(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| GatewayError::Transient(e.to_string()))?;
        if status.is_success() {
            return Ok(bytes);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| status.to_string());
        // Skew and nonce refusals are about this attempt, not the request:
        // a new attempt is signed anew.
        let transient = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::UNAUTHORIZED && message.contains("nonce"));
        if transient {
            Err(GatewayError::Transient(format!("{status}: {message}")))
        } else {
            Err(GatewayError::Refused {
                status: status.as_u16(),
                message,
            })
        }
    }
}
