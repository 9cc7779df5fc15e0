//! A typed client of clawd's control API: HTTP/1.1 + JSON over its Unix
//! socket. Requests and replies are `claw_proto` types; long answers are
//! newline-delimited JSON, read a typed value per line.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use claw_proto::api::ErrorBody;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

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

    /// True when clawd answered "not found" (an unknown run, user, …).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
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

    /// `GET path`, its typed answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body, its typed answer.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(to_json(body)?)).await
    }

    /// `POST path` without a body (the action is all in the path).
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::POST, path, None).await
    }

    /// `DELETE path`, its typed answer.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::DELETE, path, None).await
    }

    /// `GET path` answered with newline-delimited JSON: `each` gets one
    /// typed value per line, as it arrives.
    pub async fn get_lines<T: DeserializeOwned>(
        &self,
        path: &str,
        each: impl FnMut(T),
    ) -> Result<(), ClientError> {
        self.lines(Method::GET, path, None, each).await
    }

    /// `POST path` with a JSON body, answered with newline-delimited JSON.
    pub async fn post_lines<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        each: impl FnMut(T),
    ) -> Result<(), ClientError> {
        self.lines(Method::POST, path, Some(to_json(body)?), each)
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let response = self.send(method, path, body).await?;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    async fn lines<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        mut each: impl FnMut(T),
    ) -> Result<(), ClientError> {
        let mut body = self.send(method, path, body).await?.into_body();
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if let Some(value) = parse_line(&line)? {
                    each(value);
                }
            }
        }
        // A line cut short by a closed connection is not a value.
        Ok(())
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
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let stream = self.connect().await?;
        let stream = crate::socket::ControlStream::new(stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "localhost");
        if body.is_some() {
            request = request.header("Content-Type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
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
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| format!("clawd answered {status}"));
        Err(if status == StatusCode::FORBIDDEN {
            ClientError::PermissionDenied(message)
        } else {
            ClientError::Api {
                status: status.as_u16(),
                message,
            }
        })
    }
}

fn to_json<B: Serialize + ?Sized>(body: &B) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(body).map_err(|e| ClientError::Protocol(format!("cannot encode: {e}")))
}

/// One line of a newline-delimited answer (with its `\n`); blank lines are
/// none.
fn parse_line<T: DeserializeOwned>(line: &[u8]) -> Result<Option<T>, ClientError> {
    let text = line.trim_ascii();
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(text).map(Some).map_err(|e| {
        ClientError::Protocol(format!("{e} in line {}", String::from_utf8_lossy(text)))
    })
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

/// A path with a query struct's fields as its query string: each field that
/// is set, by its serialised name, its value percent-encoded. The struct
/// must be flat (strings, numbers, booleans, absent fields).
pub fn with_query<Q: Serialize>(path: &str, query: &Q) -> Result<String, ClientError> {
    use serde_json::Value;
    let fields = match serde_json::to_value(query) {
        Ok(Value::Object(fields)) => fields,
        Ok(other) => {
            return Err(ClientError::Protocol(format!(
                "a query must be a struct, not {other}"
            )));
        }
        Err(e) => return Err(ClientError::Protocol(format!("cannot encode a query: {e}"))),
    };
    let mut pairs = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Array(_) | Value::Object(_) => {
                return Err(ClientError::Protocol(format!(
                    "query field {name} is not a plain value"
                )));
            }
        };
        pairs.push(format!("{}={}", encode(&name), encode(&text)));
    }
    Ok(if pairs.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", pairs.join("&"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use claw_proto::control::{AuditListQuery, EventsQuery, RevokeQuery, RunsQuery};
    use claw_proto::wire::ServerMessage;

    #[test]
    fn queries_carry_the_set_fields() {
        let q = RunsQuery {
            status: Some("done".into()),
            since: Some("2026-11-01T00:00:00+01:00".into()),
            limit: Some(5),
        };
        assert_eq!(
            with_query("/v1/runs", &q).expect("query"),
            "/v1/runs?limit=5&since=2026-11-01T00%3A00%3A00%2B01%3A00&status=done"
        );
        assert_eq!(
            with_query("/v1/audit", &AuditListQuery::default()).expect("query"),
            "/v1/audit"
        );
        let q = EventsQuery {
            after: Some(3),
            follow: Some(false),
        };
        assert_eq!(
            with_query("/v1/runs/r/events", &q).expect("query"),
            "/v1/runs/r/events?after=3&follow=false"
        );
        let q = RevokeQuery {
            user: Some("a b&c".into()),
            all: None,
        };
        assert_eq!(
            with_query("/v1/sessions", &q).expect("query"),
            "/v1/sessions?user=a%20b%26c"
        );
        assert!(with_query("/x", &vec![1]).is_err());
    }

    #[test]
    fn lines_parse_into_their_type() {
        let line = br#"{"type":"run_status","runId":"r","status":"done","exitCode":0}
"#;
        let message: Option<ServerMessage> = parse_line(line).expect("line");
        assert!(matches!(
            message,
            Some(ServerMessage::RunStatus {
                exit_code: Some(0),
                ..
            })
        ));
        assert!(parse_line::<ServerMessage>(b"\n").expect("blank").is_none());
        assert!(parse_line::<ServerMessage>(b"{\"type\":\"bogus\"}\n").is_err());
    }

    #[test]
    fn not_found_is_recognised() {
        let e = ClientError::Api {
            status: 404,
            message: "no such run".into(),
        };
        assert!(e.is_not_found());
        assert_eq!(e.exit_code(), 1);
        assert!(!ClientError::PermissionDenied("no".into()).is_not_found());
    }
}
