//! The gateway under test: one started here (`--spawn`, through the
//! workspace's test kit) or one already running on loopback, with what a
//! runner and an administrator need.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use claw_testkit::{Gateway, TempCluster};

/// Where a spawned clawd stores.
pub enum Store {
    /// SQLite in its data directory (or what `CLAW_TEST_STORE` says, as
    /// for every gateway the test kit starts).
    Default,
    /// A PostgreSQL database at this URL.
    Postgres(String),
    /// A temporary PostgreSQL cluster with durable settings, started here
    /// and removed after clawd stopped.
    TempPostgres,
}

/// How long a spawned clawd may take to stop on SIGTERM (it folds its
/// database log into the database first) before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(300);

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
    /// The clawd started here; killed if dropped before [`Target::stop`].
    spawned: Option<Gateway>,
    /// The PostgreSQL database the spawned clawd stores in.
    postgres_url: Option<String>,
    /// Dropped (stopped and removed) after the clawd that used it: fields
    /// drop in order.
    cluster: Option<TempCluster>,
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
        store: Store,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("cannot make a temporary data directory")?;
        let (postgres_url, cluster) = match store {
            Store::Default => (None, None),
            Store::Postgres(url) => (Some(url), None),
            Store::TempPostgres => {
                let cluster = tokio::task::spawn_blocking(|| {
                    TempCluster::builder()
                        .durable()
                        .try_start()
                        .context("cannot start a temporary PostgreSQL cluster")
                })
                .await??;
                (Some(cluster.url()), Some(cluster))
            }
        };
        let mut config = format!(
            "rate_limit_per_minute = 0\nlog_level = \"warn\"\ndurability = \"{durability}\"\n"
        );
        if let Some(url) = &postgres_url {
            // A TOML basic string: the URL's own quotes and backslashes escaped.
            let quoted = url.replace('\\', "\\\\").replace('"', "\\\"");
            config.push_str(&format!(
                "\n[store]\nbackend = \"postgres\"\ndatabase_url = \"{quoted}\"\n"
            ));
        }
        if let Some(db) = db_from {
            std::fs::copy(db, dir.path().join("db.sqlite"))
                .with_context(|| format!("cannot copy {}", db.display()))?;
        }
        // clawd reports readiness as under systemd; the time to READY=1 is
        // the start-up figure.
        let notify_path = dir.path().join("notify.sock");
        let notify = std::os::unix::net::UnixDatagram::bind(&notify_path)?;
        notify.set_read_timeout(Some(Duration::from_secs(30)))?;
        let spawned = Instant::now();
        // Runs are created through the human API from one address.
        let gateway = Gateway::launch(clawd)
            .dir(dir)
            .config(&config)
            .quiet()
            .env("NOTIFY_SOCKET", &notify_path)
            .try_start()?;
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
        let mut target = Self::read(&gateway.base(), gateway.data(), gateway.try_pid(), None)?;
        target.ready_ms = ready_ms;
        target.spawned = Some(gateway);
        target.postgres_url = postgres_url;
        target.cluster = cluster;
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
            spawned: None,
            postgres_url: None,
            cluster: None,
        })
    }

    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        Ok(claw_testkit::try_client_builder_trusting(&self.ca_pem)?
            .http1_only()
            .pool_max_idle_per_host(4)
            .build()?)
    }

    /// A fresh TLS connection to the gateway (no Nagle delay).
    pub async fn connect_tls(
        &self,
    ) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        claw_testkit::connect_tls(self.port, &self.ca_pem).await
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
        let session =
            claw_testkit::try_first_admin(&client, &self.base, &token, user, password).await?;
        self.session = Some(session.clone());
        Ok(session)
    }

    /// The PostgreSQL database a spawned clawd stores in, if it does.
    pub fn postgres_url(&self) -> Option<&str> {
        self.postgres_url.as_deref()
    }

    /// Resident memory of the daemon, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        claw_testkit::proc_status_kib(self.pid?, "VmRSS")
    }

    /// CPU seconds the PostgreSQL cluster started here (--spawn-postgres)
    /// has used so far, over its processes.
    pub fn postgres_cpu_secs(&self) -> Option<f64> {
        self.cluster.as_ref()?.server_cpu_secs()
    }

    /// CPU seconds (user + system) the daemon has used so far, from /proc.
    pub fn cpu_secs(&self) -> Option<f64> {
        claw_testkit::process_cpu_secs(&self.pid?.to_string())
    }

    /// Stops a spawned clawd with SIGTERM and waits for it; an error when
    /// it did not stop cleanly.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut gateway) = self.spawned.take() else {
            return Ok(());
        };
        let cluster = self.cluster.take();
        let status = tokio::task::spawn_blocking(move || {
            let status = gateway.try_stop_within(STOP_WITHIN);
            // pg_ctl stop waits for the server: off the runtime.
            drop(cluster);
            status
        })
        .await??;
        if !status.success() {
            bail!("clawd exited with {status}");
        }
        Ok(())
    }
}
