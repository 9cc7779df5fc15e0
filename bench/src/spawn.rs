//! The gateway under test: one started here (`--spawn`) or one already
//! running on loopback, with what a runner and an administrator need.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, bail};

pub struct Target {
    pub base: String,
    pub ca_pem: Vec<u8>,
    pub secret: String,
    pub port: u16,
    pub data_dir: std::path::PathBuf,
    /// Start to `READY=1` (spawned gateways only).
    pub ready_ms: Option<f64>,
    session: Option<String>,
    setup_token: Option<String>,
    pid: Option<u32>,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

fn loopback_port(url: &str) -> anyhow::Result<u16> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("not a URL: {url}"))?;
    match parsed.host_str() {
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1") => {}
        other => bail!("claw-bench targets loopback only, not {other:?}"),
    }
    parsed
        .port_or_known_default()
        .context("no port in the gateway URL")
}

impl Target {
    pub async fn spawn(
        clawd: &Path,
        db_from: Option<&Path>,
        durability: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("cannot make a temporary data directory")?;
        if let Some(db) = db_from {
            std::fs::copy(db, dir.path().join("db.sqlite"))
                .with_context(|| format!("cannot copy {}", db.display()))?;
        }
        // clawd reports readiness as under systemd; the time to READY=1 is
        // the start-up figure.
        let notify_path = dir.path().join("notify.sock");
        let notify = std::os::unix::net::UnixDatagram::bind(&notify_path)?;
        notify.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
        let spawned = std::time::Instant::now();
        let config = dir.path().join("clawd.toml");
        // Runs are created through the human API from one address.
        std::fs::write(
            &config,
            format!(
                "rate_limit_per_minute = 0\nlog_level = \"warn\"\ndurability = \"{durability}\"\n"
            ),
        )?;
        let mut child = Command::new(clawd)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0"])
            .env("CLAW_LOG_TARGET", "stderr")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("LISTEN_FDS")
            .env("NOTIFY_SOCKET", &notify_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", clawd.display()))?;
        let stdout = child.stdout.take().context("no stdout from clawd")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port: u16 = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("clawd did not print its address: {line:?}"))?;
        let mut ready_ms = None;
        let mut message = [0u8; 4096];
        while ready_ms.is_none() {
            let n = notify
                .recv(&mut message)
                .context("clawd did not report READY=1 within 30 s")?;
            if String::from_utf8_lossy(&message[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                ready_ms = Some(spawned.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let base = format!("https://localhost:{port}");
        let pid = child.id();
        let mut target = Self::read(&base, dir.path(), Some(pid), None)?;
        target.ready_ms = ready_ms;
        target.child = Some(child);
        target._dir = Some(dir);
        Ok(target)
    }

    pub fn existing(
        url: &str,
        data_dir: &Path,
        pid: Option<u32>,
        session: Option<String>,
    ) -> anyhow::Result<Self> {
        Self::read(url.trim_end_matches('/'), data_dir, pid, session)
    }

    fn read(
        base: &str,
        data: &Path,
        pid: Option<u32>,
        session: Option<String>,
    ) -> anyhow::Result<Self> {
        let port = loopback_port(base)?;
        let ca_pem = std::fs::read(data.join("certs/server.crt"))
            .with_context(|| format!("cannot read {}/certs/server.crt", data.display()))?;
        let secret = std::fs::read_to_string(data.join("secrets/hmac-secret"))
            .with_context(|| format!("cannot read {}/secrets/hmac-secret", data.display()))?
            .trim()
            .to_owned();
        let setup_token = std::fs::read_to_string(data.join("setup-token"))
            .ok()
            .map(|t| t.trim().to_owned());
        if session.is_none() && setup_token.is_none() {
            bail!("the gateway has users: give --session TOKEN of an operator");
        }
        Ok(Self {
            base: base.to_owned(),
            ca_pem,
            secret,
            port,
            data_dir: data.to_owned(),
            ready_ms: None,
            session,
            setup_token,
            pid,
            child: None,
            _dir: None,
        })
    }

    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca_pem)?)
            .http1_only()
            .pool_max_idle_per_host(4)
            .build()?)
    }

    /// A TLS client trusting the gateway's certificate.
    pub fn tls_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut &self.ca_pem[..]) {
            roots.add(cert?)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// A fresh TLS connection to the gateway (no Nagle delay).
    pub async fn connect_tls(
        &self,
    ) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?;
        Ok(tokio_rustls::TlsConnector::from(self.tls_config()?)
            .connect(name, tcp)
            .await?)
    }

    /// A bearer session for the human API: the one given, or a first
    /// administrator made with the setup token.
    pub async fn session(&mut self) -> anyhow::Result<String> {
        if let Some(session) = &self.session {
            return Ok(session.clone());
        }
        let token = self.setup_token.clone().context("no setup token")?;
        let client = self.client()?;
        let (user, password) = ("bench", "claw-bench-password");
        let setup = client
            .post(format!("{}/api/auth/setup", self.base))
            .json(
                &serde_json::json!({ "setupToken": token, "username": user, "password": password }),
            )
            .send()
            .await?;
        if !setup.status().is_success() {
            bail!("setup failed: {}", setup.text().await.unwrap_or_default());
        }
        let login = client
            .post(format!("{}/api/auth/login", self.base))
            .json(&serde_json::json!({ "username": user, "password": password }))
            .send()
            .await?;
        let cookie = login
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .and_then(|kv| kv.strip_prefix("session="))
            .context("login gave no session cookie")?
            .to_owned();
        self.session = Some(cookie.clone());
        Ok(cookie)
    }

    /// Resident memory of the daemon, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// CPU seconds (user + system) the daemon has used so far, from /proc.
    pub fn cpu_secs(&self) -> Option<f64> {
        process_cpu_secs(&self.pid?.to_string())
    }

    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
    }
}

/// CPU seconds (user + system) a process (`"self"` or a pid) has used so
/// far, over all its threads, from /proc.
pub fn process_cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks / 100.0)
}
