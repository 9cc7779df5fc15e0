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
    /// The gateway has fewer events than were acknowledged (it lost the
    /// last ones, e.g. in a power cut) and asks for them again from `next`.
    #[error("the gateway asks for events again from sequence {next}")]
    Behind { next: u64 },
    #[error("cannot read {0}: {1}")]
    CaCert(String, String),
}

pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `path` of the gateway at `base` with `headers`
/// (its signature), trusting what `tls` trusts.
pub async fn open_websocket(
    tls: &std::sync::Arc<rustls::ClientConfig>,
    base: &str,
    path: &str,
    headers: &[(&'static str, String)],
) -> Result<WebSocket, GatewayError> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = reqwest::Url::parse(base).map_err(|e| GatewayError::Transient(e.to_string()))?;
    if url.scheme() != "https" {
        return Err(GatewayError::Refused {
            status: 0,
            message: "WebSockets to the gateway are HTTPS only".to_owned(),
        });
    }
    let host = url.host_str().unwrap_or("localhost").to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| GatewayError::Transient(e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| GatewayError::Transient(e.to_string()))?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| GatewayError::Transient(e.to_string()))?;
    let mut request = format!("wss://{host}:{port}{path}")
        .into_client_request()
        .map_err(|e| GatewayError::Transient(e.to_string()))?;
    for (name, value) in headers {
        if let Ok(value) = value.parse() {
            request.headers_mut().insert(*name, value);
        }
    }
    let (socket, _) = tokio_tungstenite::client_async(request, tls)
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                let status = response.status().as_u16();
                let message = response
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("the gateway refused the WebSocket ({status})"));
                GatewayError::Refused { status, message }
            }
            other => GatewayError::Transient(other.to_string()),
        })?;
    Ok(socket)
}

/// A fresh nonce for a signed request.
pub fn new_nonce() -> String {
    nonce()
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[derive(Clone)]
pub struct Gateway {
    http: reqwest::Client,
    tls: std::sync::Arc<rustls::ClientConfig>,
    base: String,
    secret: String,
    /// An enrolled host signing with its own key.
    host_id: Option<String>,
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
        let tls = crate::tls::client_config(config)?;
        builder = builder.use_preconfigured_tls(tls.clone());
        let http = builder
            .build()
            .map_err(|e| GatewayError::Transient(e.to_string()))?;
        Ok(Self {
            http,
            tls: std::sync::Arc::new(tls),
            base: config.gateway_url.clone(),
            secret: config.hmac_secret.clone(),
            host_id: config.host_id.clone(),
            run_id: run_id.to_owned(),
            token: token.to_owned(),
        })
    }

    /// The HTTP client (trusting the configured CA), for unsigned requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The headers that sign a request (PROTOCOL.md), and the host's id
    /// when an enrolled host's key signs.
    fn signed_headers(
        &self,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        let timestamp = unix_now();
        let nonce = nonce();
        let signature = signing::sign(
            self.secret.as_bytes(),
            &SignedParts {
                method: method.as_str(),
                path,
                body,
                timestamp,
                nonce: &nonce,
                run_id: &self.run_id,
                capability_token: &self.token,
            },
        );
        let mut headers = vec![
            (signing::HEADER_SIGNATURE, signature),
            (signing::HEADER_TIMESTAMP, timestamp.to_string()),
            (signing::HEADER_NONCE, nonce),
            (signing::HEADER_RUN_ID, self.run_id.clone()),
            (signing::HEADER_CAPABILITY_TOKEN, self.token.clone()),
        ];
        if let Some(host) = &self.host_id {
            headers.push((claw_proto::hosts::HEADER_HOST_ID, host.clone()));
        }
        headers
    }

    /// Opens the run's signed WebSocket (`/api/runner/ws`) over the same TLS
    /// trust as the HTTPS requests.
    pub async fn websocket(&self) -> Result<WebSocket, GatewayError> {
        let path = "/api/runner/ws";
        let headers = self.signed_headers(&Method::GET, path, b"");
        open_websocket(&self.tls, &self.base, path, &headers).await
    }

    /// One signed request; the answer's body on success.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<bytes::Bytes, GatewayError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        for (name, value) in self.signed_headers(&method, path, &body) {
            request = request.header(name, value);
        }
        let mut request = request.body(body);
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
        let answer = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
        if status == StatusCode::CONFLICT
            && let Some(next) = answer.as_ref().and_then(|v| v["nextSequence"].as_u64())
        {
            return Err(GatewayError::Behind { next });
        }
        let message = answer
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
