//! A runner of one run: every request signed as PROTOCOL.md says
//! ([`claw_proto::signing`]), with the signed pieces open to tampering.

use std::ops::Deref;
use std::time::{SystemTime, UNIX_EPOCH};

use claw_proto::signing::{self, SignedParts};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::gateway::Gateway;

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// 16 random bytes in hex.
pub fn nonce() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("random");
    hex::encode(bytes)
}

/// The pieces of a signed request, so tests can tamper with any of them.
pub struct Signed {
    pub method: Method,
    pub path: String,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub timestamp: i64,
    pub nonce: String,
    pub signature: String,
}

/// A runner that owns what it needs: a client trusting the gateway, its
/// address, the HMAC secret, the run and its capability token. `Clone`
/// and `'static`, for spawned tasks.
#[derive(Clone)]
pub struct RunnerClient {
    pub client: reqwest::Client,
    /// `https://localhost:PORT`.
    pub base: String,
    pub secret: String,
    pub run_id: String,
    pub token: String,
}

/// A runner of a [`Gateway`]'s run (see [`Gateway::runner`]); everything
/// it does is [`RunnerClient`]'s.
pub struct Runner<'a> {
    pub gw: &'a Gateway,
    client: RunnerClient,
}

impl<'a> Runner<'a> {
    pub(crate) fn new(gw: &'a Gateway, client: RunnerClient) -> Self {
        Self { gw, client }
    }

    /// The same runner signing with another secret (an old one, a wrong
    /// one).
    pub fn with_secret(mut self, secret: &str) -> Self {
        secret.clone_into(&mut self.client.secret);
        self
    }
}

impl Deref for Runner<'_> {
    type Target = RunnerClient;

    fn deref(&self) -> &RunnerClient {
        &self.client
    }
}

impl RunnerClient {
    fn signature(&self, signed: &Signed) -> String {
        signing::sign(
            self.secret.as_bytes(),
            &SignedParts {
                method: signed.method.as_str(),
                path: &signed.path,
                body: &signed.body,
                timestamp: signed.timestamp,
                nonce: &signed.nonce,
                run_id: &self.run_id,
                capability_token: &self.token,
            },
        )
    }

    /// A JSON request signed now with a fresh nonce.
    pub fn sign(&self, method: Method, path: &str, body: Vec<u8>) -> Signed {
        let mut signed = Signed {
            method,
            path: path.to_owned(),
            body,
            content_type: Some("application/json".to_owned()),
            timestamp: now_secs(),
            nonce: nonce(),
            signature: String::new(),
        };
        self.resign(&mut signed);
        signed
    }

    /// Signs the (changed) pieces again.
    pub fn resign(&self, signed: &mut Signed) {
        signed.signature = self.signature(signed);
    }

    /// The request for these pieces, to send oneself (and read its headers).
    pub fn request_of(&self, signed: &Signed) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .request(
                signed.method.clone(),
                format!("{}{}", self.base, signed.path),
            )
            .header("X-Signature", &signed.signature)
            .header("X-Timestamp", signed.timestamp.to_string())
            .header("X-Nonce", &signed.nonce)
            .header("X-Run-Id", &self.run_id)
            .header("X-Capability-Token", &self.token)
            .body(signed.body.clone());
        if let Some(ct) = &signed.content_type {
            req = req.header("Content-Type", ct);
        }
        req
    }

    /// Sends the pieces as they are.
    pub async fn send(&self, signed: &Signed) -> (StatusCode, Value) {
        let resp = self
            .request_of(signed)
            .send()
            .await
            .expect("runner request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Signs and sends a request with an optional JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let signed = self.sign(method, path, bytes);
        self.send(&signed).await
    }

    /// Sends one event; `None` when the connection failed (daemon gone).
    pub async fn try_event(
        &self,
        kind: &str,
        data: &str,
        sequence: u64,
    ) -> (Option<StatusCode>, Value) {
        let body = json!({ "type": kind, "data": data, "sequence": sequence }).to_string();
        let signed = self.sign(Method::POST, "/api/ingest/event", body.into_bytes());
        match self.request_of(&signed).send().await {
            Ok(resp) => {
                let status = resp.status();
                let value = resp.json().await.unwrap_or(Value::Null);
                (Some(status), value)
            }
            Err(_) => (None, Value::Null),
        }
    }

    /// Sends one event, with a sequence number or appended.
    pub async fn event(
        &self,
        kind: &str,
        data: &str,
        sequence: Option<u64>,
    ) -> (StatusCode, Value) {
        let mut body = json!({ "type": kind, "data": data });
        if let Some(seq) = sequence {
            body["sequence"] = json!(seq);
        }
        self.request(Method::POST, "/api/ingest/event", Some(body))
            .await
    }

    /// Sends one appended event, which must be accepted.
    pub async fn event_ok(&self, kind: &str, data: &str) {
        let (status, body) = self.event(kind, data, None).await;
        assert_eq!(status, StatusCode::OK, "{kind} event: {body}");
    }

    pub async fn batch(&self, events: Vec<Value>) -> (StatusCode, Value) {
        self.request(
            Method::POST,
            "/api/ingest/events",
            Some(json!({ "events": events })),
        )
        .await
    }

    pub async fn started(&self) {
        let (status, body) = self
            .event("marker", r#"{"event":"started","command":"claude"}"#, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    pub async fn finished(&self, exit_code: i64) {
        let data = format!(r#"{{"event":"finished","exitCode":{exit_code}}}"#);
        let (status, body) = self.event("marker", &data, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    pub async fn commands(&self) -> (StatusCode, Value) {
        let path = format!("/api/runs/{}/commands", self.run_id);
        self.request(Method::GET, &path, None).await
    }

    /// The pending commands, which must be answered with 200.
    pub async fn pending_commands(&self) -> Vec<claw_proto::wire::PendingCommand> {
        let (status, body) = self.commands().await;
        assert_eq!(status, StatusCode::OK, "commands: {body}");
        crate::gateway::decode("the pending commands", body)
    }

    pub async fn ack(&self, command_id: &str, body: Value) -> (StatusCode, Value) {
        let path = format!("/api/runs/{}/commands/{command_id}/ack", self.run_id);
        self.request(Method::POST, &path, Some(body)).await
    }

    /// Uploads a file as an artifact (multipart, signed).
    pub async fn upload(&self, filename: &str, data: &[u8]) -> (StatusCode, Value) {
        let boundary = "claw-test-boundary-7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut signed = self.sign(Method::POST, "/api/ingest/artifact", body);
        signed.content_type = Some(format!("multipart/form-data; boundary={boundary}"));
        self.send(&signed).await
    }
}
