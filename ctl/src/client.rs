//! HTTP/1.1 + JSON over clawd's Unix control socket.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach clawd at {socket}: {reason}")]
    Unreachable { socket: PathBuf, reason: String },
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("unexpected answer from clawd: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The exit status clawctl ends with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Unreachable { .. } => 3,
            Self::PermissionDenied(_) => 4,
            Self::Api { .. } | Self::Protocol(_) => 1,
        }
    }
}

pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_owned(),
        }
    }

    async fn connect(&self) -> Result<tokio::net::UnixStream, ClientError> {
        tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::PermissionDenied => ClientError::PermissionDenied(format!(
                    "cannot open {}: permission denied; run as root or join the claw-admin group \
                     (sudo usermod -aG claw-admin $USER, then log in again)",
                    self.socket.display()
                )),
                ErrorKind::NotFound => ClientError::Unreachable {
                    socket: self.socket.clone(),
                    reason: "no such socket; is clawd installed and clawd-control.socket \
                             started (systemctl start clawd-control.socket)? Use --socket for \
                             another path"
                        .to_owned(),
                },
                ErrorKind::ConnectionRefused => ClientError::Unreachable {
                    socket: self.socket.clone(),
                    reason: "connection refused; clawd is not running (systemctl status clawd)"
                        .to_owned(),
                },
                _ => ClientError::Unreachable {
                    socket: self.socket.clone(),
                    reason: e.to_string(),
                },
            })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let stream = self.connect().await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        tokio::spawn(connection);
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "localhost");
        if body.is_some() {
            request = request.header("Content-Type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let response =
            sender
                .send_request(request)
                .await
                .map_err(|e| ClientError::Unreachable {
                    socket: self.socket.clone(),
                    reason: format!("clawd closed the connection: {e}"),
                })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("clawd answered {status}"));
        Err(if status == StatusCode::FORBIDDEN {
            ClientError::PermissionDenied(message)
        } else {
            ClientError::Api {
                status: status.as_u16(),
                message,
            }
        })
    }

    /// One request, its JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let response = self.send(method, path, body).await?;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// Streams a newline-delimited JSON answer, one value per call.
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
        request: Option<&Value>,
        mut each: impl FnMut(Value),
    ) -> Result<(), ClientError> {
        let mut body = self.send(method, path, request).await?.into_body();
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if let Ok(value) = serde_json::from_slice(&line[..line.len() - 1]) {
                    each(value);
                }
            }
        }
        Ok(())
    }
}

/// Percent-encodes a query or path value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
