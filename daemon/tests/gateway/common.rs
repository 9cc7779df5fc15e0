//! Starting `clawd` and talking to it like a runner, a browser and an admin.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use claw_proto::signing::{self, SignedParts};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// A running `clawd` with its data directory.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    pub client: reqwest::Client,
    pub hmac_secret: String,
    config: String,
    env: Vec<(String, String)>,
    /// Largest file clawd may write (RLIMIT_FSIZE), as a full disk would.
    pub file_size_limit: Option<u64>,
}

/// Tests do many requests from one address: no request limit unless a test
/// asks for one.
pub const TEST_CONFIG: &str = "rate_limit_per_minute = 0\n";

impl Gateway {
    pub async fn start() -> Self {
        Self::start_with(TEST_CONFIG).await
    }

    pub async fn start_with(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, config).await
    }

    pub async fn start_in(dir: tempfile::TempDir, config: &str) -> Self {
        Self::start_in_with_env(dir, config, &[]).await
    }

    /// Starts clawd with extra environment variables.
    pub async fn start_in_with_env(
        dir: tempfile::TempDir,
        config: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut gw = Self {
            dir,
            child: None,
            port: 0,
            client: reqwest::Client::new(),
            hmac_secret: String::new(),
            config: config.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            file_size_limit: None,
        };
        gw.launch();
        gw
    }

    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    fn launch(&mut self) {
        let config_path = self.data().join("clawd.toml");
        std::fs::write(&config_path, &self.config).expect("write config");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data().join("clawd.stderr"))
            .expect("stderr file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_clawd"));
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(self.data())
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", "debug")
            .env("CLAW_LOG_TARGET", "stderr")
            .env_remove("CREDENTIALS_DIRECTORY")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(limit) = self.file_size_limit {
            use nix::sys::resource::{Resource, setrlimit};
            use nix::sys::signal::{SigHandler, Signal, signal};
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe calls between fork and exec. A
            // write past the limit then fails with EFBIG instead of
            // killing clawd with SIGXFSZ; the ignored signal survives exec.
            unsafe {
                command.pre_exec(move || {
                    signal(Signal::SIGXFSZ, SigHandler::SigIgn)?;
                    setrlimit(Resource::RLIMIT_FSIZE, limit, limit)?;
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().expect("start clawd");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read stdout");
        let Some(port) = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
        else {
            let log = std::fs::read_to_string(self.data().join("clawd.stderr")).unwrap_or_default();
            panic!("clawd did not report its address: {line:?}\n{log}");
        };
        self.port = port;
        self.child = Some(child);
        let pem = std::fs::read(self.data().join("certs/server.crt")).expect("certificate");
        self.client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
            .build()
            .expect("client");
        self.hmac_secret = std::fs::read_to_string(self.data().join("secrets/hmac-secret"))
            .expect("hmac secret")
            .trim()
            .to_owned();
    }

    /// Stops with SIGTERM and waits; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
        for _ in 0..100 {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("clawd did not stop within 5 s of SIGTERM");
    }

    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(status.success(), "clawd exited with {status}");
        self.launch();
    }

    /// clawd's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// A line of clawd's `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data().join("clawd.stderr")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    pub fn setup_token(&self) -> String {
        std::fs::read_to_string(self.data().join("setup-token"))
            .expect("setup token file")
            .trim()
            .to_owned()
    }

    /// A request with a bearer session (or none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        session: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = session {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str, session: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(session), None).await
    }

    pub async fn post(&self, path: &str, session: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(session), Some(body))
            .await
    }

    /// Runs first-run setup and logs the admin in; returns the session.
    pub async fn admin(&self) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/auth/setup",
                None,
                Some(json!({
                    "setupToken": self.setup_token(),
                    "username": ADMIN,
                    "password": ADMIN_PASSWORD,
                })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        self.login(ADMIN, ADMIN_PASSWORD, None)
            .await
            .expect("admin login")
    }

    /// Logs in; returns the session token from the cookie.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        totp: Option<&str>,
    ) -> Result<String, (StatusCode, Value)> {
        let mut body = json!({ "username": username, "password": password });
        if let Some(code) = totp {
            body["totpCode"] = json!(code);
        }
        let resp = self
            .client
            .post(self.url("/api/auth/login"))
            .json(&body)
            .send()
            .await
            .expect("login request");
        let status = resp.status();
        let cookie = resp
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let value: Value = resp.json().await.expect("login json");
        if status != StatusCode::OK {
            return Err((status, value));
        }
        let cookie = cookie.expect("session cookie");
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        let token = cookie
            .split(';')
            .next()
            .and_then(|kv| kv.strip_prefix("session="))
            .expect("session=");
        Ok(token.to_owned())
    }

    /// Creates a user with a role and returns its session.
    pub async fn user(&self, admin: &str, name: &str, role: &str) -> String {
        let password = format!("{name}-password-long");
        let (status, body) = self
            .post(
                "/api/auth/users",
                admin,
                json!({ "username": name, "password": password, "role": role }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        self.login(name, &password, None).await.expect("login")
    }

    /// Creates a run; returns (id, capability token).
    pub async fn create_run(&self, session: &str) -> (String, String) {
        let (status, body) = self
            .post("/api/runs", session, json!({ "command": "claude -p test" }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["id"].as_str().expect("id").to_owned(),
            body["capabilityToken"].as_str().expect("token").to_owned(),
        )
    }

    pub fn runner(&self, run_id: &str, token: &str) -> Runner<'_> {
        Runner {
            gw: self,
            run_id: run_id.to_owned(),
            token: token.to_owned(),
        }
    }

    /// Opens the browser WebSocket with a session token.
    pub async fn websocket(&self, session: &str) -> Ws {
        let pem = std::fs::read(self.data().join("certs/server.crt")).expect("cert");
        websocket_to(self.port, &pem, session).await
    }

    /// Sends a signal (SIGHUP: reload) without waiting.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let child = self.child.as_ref().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal");
    }

    /// SIGTERM without waiting.
    pub fn signal_term(&self) {
        let child = self.child.as_ref().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
    }

    /// Waits for the exit that a signal asked for.
    pub fn wait_stopped(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        for _ in 0..200 {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("clawd did not stop within 10 s");
    }

    /// Starts clawd again on the same data directory.
    pub fn relaunch(&mut self) {
        self.launch();
    }
}

/// Opens the browser WebSocket on a port, trusting one certificate.
pub async fn websocket_to(port: u16, pem: &[u8], session: &str) -> Ws {
    {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("tcp");
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            roots.add(cert.expect("cert")).expect("add root");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let tls = connector.connect(name, stream).await.expect("tls");
        let url = format!("wss://localhost:{port}/ws?token={session}");
        let (ws, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .expect("websocket handshake");
        let mut ws = Ws { inner: ws };
        assert_eq!(ws.next().await["type"], "connected");
        ws
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

pub fn nonce() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("random");
    hex::encode(bytes)
}

/// A runner for one run: signs every request as PROTOCOL.md says.
pub struct Runner<'a> {
    pub gw: &'a Gateway,
    pub run_id: String,
    pub token: String,
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

impl Runner<'_> {
    pub fn sign(&self, method: Method, path: &str, body: Vec<u8>) -> Signed {
        let timestamp = now_secs();
        let nonce = nonce();
        let signature = signing::sign(
            self.gw.hmac_secret.as_bytes(),
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
        Signed {
            method,
            path: path.to_owned(),
            body,
            content_type: Some("application/json".to_owned()),
            timestamp,
            nonce,
            signature,
        }
    }

    pub fn resign(&self, signed: &mut Signed) {
        signed.signature = signing::sign(
            self.gw.hmac_secret.as_bytes(),
            &SignedParts {
                method: signed.method.as_str(),
                path: &signed.path,
                body: &signed.body,
                timestamp: signed.timestamp,
                nonce: &signed.nonce,
                run_id: &self.run_id,
                capability_token: &self.token,
            },
        );
    }

    pub async fn send(&self, signed: &Signed) -> (StatusCode, Value) {
        let mut req = self
            .gw
            .client
            .request(signed.method.clone(), self.gw.url(&signed.path))
            .header("X-Signature", &signed.signature)
            .header("X-Timestamp", signed.timestamp.to_string())
            .header("X-Nonce", &signed.nonce)
            .header("X-Run-Id", &self.run_id)
            .header("X-Capability-Token", &self.token)
            .body(signed.body.clone());
        if let Some(ct) = &signed.content_type {
            req = req.header("Content-Type", ct);
        }
        let resp = req.send().await.expect("runner request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

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
        let resp = self
            .gw
            .client
            .post(self.gw.url(&signed.path))
            .header("X-Signature", &signed.signature)
            .header("X-Timestamp", signed.timestamp.to_string())
            .header("X-Nonce", &signed.nonce)
            .header("X-Run-Id", &self.run_id)
            .header("X-Capability-Token", &self.token)
            .header("Content-Type", "application/json")
            .body(signed.body.clone())
            .send()
            .await;
        match resp {
            Ok(resp) => {
                let status = resp.status();
                let value = resp.json().await.unwrap_or(Value::Null);
                (Some(status), value)
            }
            Err(_) => (None, Value::Null),
        }
    }

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

    pub async fn ack(&self, command_id: &str, body: Value) -> (StatusCode, Value) {
        let path = format!("/api/runs/{}/commands/{command_id}/ack", self.run_id);
        self.request(Method::POST, &path, Some(body)).await
    }

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

/// A browser WebSocket.
pub struct Ws {
    inner:
        tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
}

impl Ws {
    pub async fn send(&mut self, message: Value) {
        use futures_util::SinkExt;
        self.inner
            .send(tokio_tungstenite::tungstenite::Message::text(
                message.to_string(),
            ))
            .await
            .expect("ws send");
    }

    pub async fn send_text(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.inner
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .expect("ws send");
    }

    /// The next JSON message (fails the test after 10 s of silence).
    pub async fn next(&mut self) -> Value {
        use futures_util::StreamExt;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.inner.next())
                .await
                .expect("websocket message within 10 s")
                .expect("websocket open")
                .expect("websocket message");
            if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
                return serde_json::from_str(&text).expect("json message");
            }
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn next_close(&mut self) -> Option<u16> {
        use futures_util::StreamExt;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.inner.next())
                .await
                .expect("close within 10 s");
            match msg {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                    return frame.map(|f| u16::from(f.code));
                }
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    }

    /// The next message of the given type, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let msg = self.next().await;
            if msg["type"] == kind {
                return msg;
            }
        }
    }
}

pub fn db_path(gw: &Gateway) -> PathBuf {
    gw.data().join("db.sqlite")
}

/// A GET over a Unix socket (the control API), as `curl --unix-socket` does.
pub async fn unix_get(socket: &Path, uri: &str) -> (StatusCode, Value) {
    unix_request(socket, "GET", uri, None).await
}

/// A request with an optional JSON body over a Unix socket (the control API).
pub async fn unix_request(
    socket: &Path,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect control socket");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let request = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .header("Host", "localhost")
        .header("Content-Type", "application/json")
        .body(Full::new(bytes::Bytes::from(bytes)))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A self-signed certificate for localhost, written where clawd looks.
/// Returns its DER bytes.
pub fn write_certificate(data_dir: &Path) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    std::fs::create_dir_all(data_dir.join("certs")).expect("certs dir");
    std::fs::write(data_dir.join("certs/server.key"), key.serialize_pem()).expect("key");
    std::fs::write(data_dir.join("certs/server.crt"), cert.pem()).expect("cert");
    cert.der().to_vec()
}

/// A client that trusts exactly one certificate (PEM).
pub fn client_trusting(pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem).expect("pem"))
        .build()
        .expect("client")
}

/// A free TCP port on loopback (closed again before use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A raw HTTP GET on the control socket, as root or (with `uid`) as another
/// user through `setpriv`; perl is part of every Debian system.
pub fn raw_control_get(socket: &Path, path: &str, uid: Option<u32>) -> String {
    let client = format!(
        r#"use IO::Socket::UNIX;
my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!";
print $s "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
print while <$s>;"#
    );
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg("/usr/bin/perl");
            c
        }
        None => Command::new("/usr/bin/perl"),
    };
    let out = cmd
        .arg("-e")
        .arg(client)
        .arg(socket)
        .output()
        .expect("setpriv and perl");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}
