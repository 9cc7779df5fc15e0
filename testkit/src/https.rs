//! HTTPS to a gateway whose certificate is self-signed: clients and TLS
//! connections that trust exactly that certificate, and the human API's
//! first steps (setup, login, a run) as fallible calls.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use claw_proto::api::{CreateRunRequest, CreatedRun};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A client builder that trusts exactly one certificate (PEM).
pub fn try_client_builder_trusting(pem: &[u8]) -> anyhow::Result<reqwest::ClientBuilder> {
    let cert = reqwest::Certificate::from_pem(pem).context("the certificate is not PEM")?;
    Ok(reqwest::Client::builder().add_root_certificate(cert))
}

/// A client that trusts exactly one certificate (PEM).
pub fn client_trusting(pem: &[u8]) -> reqwest::Client {
    try_client_builder_trusting(pem)
        .and_then(|b| Ok(b.build()?))
        .expect("an HTTPS client trusting the certificate")
}

/// A rustls client configuration that trusts exactly the certificates in
/// `pem`.
pub fn tls_config(pem: &[u8]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.context("a certificate in the PEM")?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS connection to `localhost` on a loopback port (no Nagle delay),
/// trusting exactly the certificates in `pem`.
pub async fn connect_tls(
    port: u16,
    pem: &[u8],
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot connect to 127.0.0.1:{port}"))?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    tokio_rustls::TlsConnector::from(tls_config(pem)?)
        .connect(name, tcp)
        .await
        .context("TLS handshake")
}

/// A request with a bearer session (or none) and a JSON body (or none);
/// the status and the body, as JSON or else as a JSON string.
pub async fn try_call(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    session: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut req = client.request(method.clone(), url);
    if let Some(token) = session {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .with_context(|| format!("the body of {method} {url}"))?;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, value))
}

/// First-run setup on `base` (`https://localhost:PORT`): makes the first
/// administrator with the setup token.
pub async fn try_setup(
    client: &reqwest::Client,
    base: &str,
    setup_token: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<()> {
    let body = json!({ "setupToken": setup_token, "username": username, "password": password });
    let (status, reply) = try_call(
        client,
        Method::POST,
        &format!("{base}/api/auth/setup"),
        None,
        Some(&body),
    )
    .await?;
    if status != StatusCode::OK {
        bail!("setup failed: {status} {reply}");
    }
    Ok(())
}

/// What a login answered.
#[derive(Debug, Clone)]
pub struct Login {
    pub status: StatusCode,
    pub body: Value,
    /// The `Set-Cookie` header, when there was one.
    pub cookie: Option<String>,
}

impl Login {
    /// The session token of a successful login (from the `session` cookie).
    pub fn session(&self) -> Option<&str> {
        if self.status != StatusCode::OK {
            return None;
        }
        session_from_cookie(self.cookie.as_deref()?)
    }
}

/// The token of a `session=TOKEN; …` cookie.
pub fn session_from_cookie(cookie: &str) -> Option<&str> {
    cookie.split(';').next()?.strip_prefix("session=")
}

/// Logs in on `base`; whatever the gateway answered, as long as it
/// answered.
pub async fn try_login(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
    totp: Option<&str>,
) -> anyhow::Result<Login> {
    let mut body = json!({ "username": username, "password": password });
    if let Some(code) = totp {
        body["totpCode"] = json!(code);
    }
    let resp = client
        .post(format!("{base}/api/auth/login"))
        .json(&body)
        .send()
        .await
        .context("login request")?;
    let status = resp.status();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.context("the login reply")?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Login {
        status,
        body,
        cookie,
    })
}

/// First-run setup of an administrator on `base`, then its login; the
/// session token.
pub async fn try_first_admin(
    client: &reqwest::Client,
    base: &str,
    setup_token: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<String> {
    try_setup(client, base, setup_token, username, password).await?;
    let login = try_login(client, base, username, password, None).await?;
    login.session().map(str::to_owned).with_context(|| {
        format!(
            "login gave no session cookie: {} {}",
            login.status, login.body
        )
    })
}

/// Creates a run through the human API on `base`.
pub async fn try_create_run(
    client: &reqwest::Client,
    base: &str,
    session: &str,
    request: &CreateRunRequest,
) -> anyhow::Result<CreatedRun> {
    let body = serde_json::to_value(request)?;
    let (status, reply) = try_call(
        client,
        Method::POST,
        &format!("{base}/api/runs"),
        Some(session),
        Some(&body),
    )
    .await?;
    if status != StatusCode::CREATED {
        bail!("creating a run: {status} {reply}");
    }
    serde_json::from_value(reply.clone()).with_context(|| format!("a created run: {reply}"))
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

/// A free TCP port on loopback (closed again before use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
