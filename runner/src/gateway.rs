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

#[derive(Clone)]
pub struct Gateway {
    http: reqwest::Client,
    tls: std::sync::Arc<rustls::ClientConfig>,
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
            run_id: run_id.to_owned(),
            token: token.to_owned(),
        })
    }

    /// The HTTP client (trusting the configured CA), for unsigned requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The five headers that sign a request (PROTOCOL.md).
    fn signed_headers(
        &self,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> [(&'static str, String); 5] {
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
                body,
                timestamp,
                nonce: &nonce,
                run_id: &self.run_id,
                capability_token: &self.token,
            },
        );
        [
            (signing::HEADER_SIGNATURE, signature),
            (signing::HEADER_TIMESTAMP, timestamp.to_string()),
            (signing::HEADER_NONCE, nonce),
            (signing::HEADER_RUN_ID, self.run_id.clone()),
            (signing::HEADER_CAPABILITY_TOKEN, self.token.clone()),
        ]
    }

    /// Opens the run's signed WebSocket (`/api/runner/ws`) over the same TLS
    /// trust as the HTTPS requests.
    pub async fn websocket(
        &self,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        GatewayError,
    > {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let path = "/api/runner/ws";
        let url =
            reqwest::Url::parse(&self.base).map_err(|e| GatewayError::Transient(e.to_string()))?;
        if url.scheme() != "https" {
            return Err(GatewayError::Refused {
                status: 0,
                message: "commands are pushed only over HTTPS; polling instead".to_owned(),
            });
        }
        let host = url.host_str().unwrap_or("localhost").to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| GatewayError::Transient(e.to_string()))?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| GatewayError::Transient(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(&self.tls))
            .connect(name, tcp)
            .await
            .map_err(|e| GatewayError::Transient(e.to_string()))?;
        let mut request = format!("wss://{host}:{port}{path}")
            .into_client_request()
            .map_err(|e| GatewayError::Transient(e.to_string()))?;
        for (name, value) in self.signed_headers(&Method::GET, path, b"") {
            if let Ok(value) = value.parse() {
                request.headers_mut().insert(name, value);
            }
        }
        let (socket, _) = tokio_tungstenite::client_async(request, tls)
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(response) => GatewayError::Refused {
                    status: response.status().as_u16(),
                    message: "the gateway refused the runner WebSocket".to_owned(),
                },
                other => GatewayError::Transient(other.to_string()),
            })?;
        Ok(socket)
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
