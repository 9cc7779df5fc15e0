//! The gateway under test: one started here (`--spawn`, through the
//! workspace's test kit), two started here on one PostgreSQL database
//! behind HAProxy (`--instances 2`), or one already running on loopback,
//! with what a runner and an administrator need.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use claw_testkit::{Gateway, Haproxy, TempCluster};

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

/// How many clawd a spawned target runs, and where runners and browsers
/// connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One clawd; everyone connects to it.
    One,
    /// Two clawd on one PostgreSQL database behind HAProxy: the runners
    /// send through the proxy, which spreads their requests over both.
    TwoThroughProxy,
    /// Two clawd on one PostgreSQL database behind HAProxy: the runners
    /// send to instance A directly and browsers follow on instance B
    /// directly, so every event reaches them across instances.
    TwoAcross,
}

/// Where a client connects: a TLS port on loopback, the certificate it
/// trusts there, and what the report calls it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub port: u16,
    pub ca_pem: Vec<u8>,
    pub name: &'static str,
}

impl Endpoint {
    /// A fresh TLS connection (no Nagle delay).
    pub async fn connect_tls(
        &self,
    ) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        claw_testkit::connect_tls(self.port, &self.ca_pem).await
    }

    /// The `Host` header for it.
    pub fn host(&self) -> String {
        format!("localhost:{}", self.port)
    }
}

/// The second instance of `--instances 2` and the proxy in front of both.
struct Pair {
    proxy: Haproxy,
    b: Gateway,
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
    /// Start to `READY=1` (spawned gateways only; instance A's).
    pub ready_ms: Option<f64>,
    /// Where the runners send.
    pub runners: Endpoint,
    /// Where browsers (subscribers) follow runs.
    pub browsers: Endpoint,
    session: Option<String>,
    setup_token: Option<String>,
    pid: Option<u32>,
    /// The clawd started here; killed if dropped before [`Target::stop`].
    spawned: Option<Gateway>,
    /// The second instance and HAProxy (`--instances 2`); stopped before
    /// the cluster below.
    pair: Option<Pair>,
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

/// Starts clawd on `dir` and waits for its `READY=1`; the gateway and the
/// milliseconds it took.
fn launch_ready(
    clawd: &Path,
    dir: tempfile::TempDir,
    config: &str,
) -> anyhow::Result<(Gateway, f64)> {
    // clawd reports readiness as under systemd; the time to READY=1 is
    // the start-up figure.
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path)?;
    notify.set_read_timeout(Some(Duration::from_secs(30)))?;
    let spawned = Instant::now();
    // Runs are created through the human API from one address.
    let gateway = Gateway::launch(clawd)
        .dir(dir)
        .config(config)
        .quiet()
        .env("NOTIFY_SOCKET", &notify_path)
        .try_start()?;
    let mut message = [0u8; 4096];
    loop {
        let n = notify
            .recv(&mut message)
            .context("clawd did not report READY=1 within 30 s")?;
        if String::from_utf8_lossy(&message[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            return Ok((gateway, spawned.elapsed().as_secs_f64() * 1000.0));
        }
    }
}

/// A data directory for a further instance of `first`'s installation:
/// its `secrets/` copied, as every instance sharing a database needs.
fn second_instance_dir(first: &Path) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir().context("cannot make a temporary data directory")?;
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets)?;
    let from = first.join("secrets");
    for entry in
        std::fs::read_dir(&from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        std::fs::copy(entry.path(), secrets.join(entry.file_name()))
            .with_context(|| format!("cannot copy {}", entry.path().display()))?;
    }
    Ok(dir)
}

/// Waits until HAProxy answers `/api/health` several times in a row
/// (round robin: from both instances once both are up).
async fn proxy_answers(proxy_port: u16, certificate: &[u8]) -> anyhow::Result<()> {
    let client = claw_testkit::try_client_builder_trusting(certificate)?
        .http1_only()
        .build()?;
    let url = format!("https://localhost:{proxy_port}/api/health");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut in_a_row = 0;
    while in_a_row < 4 {
        let ok = client
            .get(&url)
            .send()
            .await
            .is_ok_and(|reply| reply.status().is_success());
        in_a_row = if ok { in_a_row + 1 } else { 0 };
        if Instant::now() > deadline {
            bail!("HAProxy did not answer /api/health within 15 s");
        }
        if !ok {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

impl Target {
    pub async fn spawn(
        clawd: &Path,
        db_from: Option<&Path>,
        durability: &str,
        store: Store,
        layout: Layout,
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
        if layout != Layout::One {
            if postgres_url.is_none() {
                bail!(
                    "two instances share a PostgreSQL database: give --postgres or --spawn-postgres"
                );
            }
            // As docs/OPERATIONS.md configures instances behind a proxy.
            config.push_str("trusted_proxies = [\"127.0.0.1\"]\n");
        }
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
        let (gateway, ready_ms) = launch_ready(clawd, dir, &config)?;
        let mut target = Self::read(&gateway.base(), gateway.data(), gateway.try_pid(), None)?;
        target.ready_ms = Some(ready_ms);
        if layout != Layout::One {
            let (b, _) = launch_ready(clawd, second_instance_dir(gateway.data())?, &config)?;
            let backends = [gateway.port, b.port];
            let proxy =
                tokio::task::spawn_blocking(move || Haproxy::try_start(&backends)).await??;
            proxy_answers(proxy.port, &proxy.certificate).await?;
            target.browsers = Endpoint {
                port: b.port,
                ca_pem: std::fs::read(b.data().join("certs/server.crt")).with_context(|| {
                    format!("cannot read {}/certs/server.crt", b.data().display())
                })?,
                name: "instance B",
            };
            if layout == Layout::TwoThroughProxy {
                target.runners = Endpoint {
                    port: proxy.port,
                    ca_pem: proxy.certificate.clone(),
                    name: "HAProxy",
                };
            }
            target.pair = Some(Pair { proxy, b });
        }
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
        let direct = Endpoint {
            port,
            ca_pem: ca_pem.clone(),
            name: "instance A",
        };
        Ok(Self {
            base: base.to_owned(),
            runners: direct.clone(),
            browsers: direct,
            ca_pem,
            secret,
            port,
            data_dir: data.to_owned(),
            ready_ms: None,
            session,
            setup_token,
            pid,
            spawned: None,
            pair: None,
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

    /// How many clawd instances serve (2 with `--instances 2`).
    pub fn instances(&self) -> usize {
        if self.pair.is_some() { 2 } else { 1 }
    }

    /// A client of the human API of every instance (each trusting that
    /// instance's certificate) with its base, A first.
    pub fn instance_clients(&self) -> anyhow::Result<Vec<(reqwest::Client, String)>> {
        let mut clients = vec![(self.client()?, self.base.clone())];
        if let Some(pair) = &self.pair {
            let client = claw_testkit::try_client_builder_trusting(&self.browsers.ca_pem)?
                .http1_only()
                .build()?;
            clients.push((client, pair.b.base()));
        }
        Ok(clients)
    }

    /// The process ids of the daemon's instances, A first.
    fn pids(&self) -> Option<Vec<u32>> {
        let mut pids = vec![self.pid?];
        if let Some(pair) = &self.pair {
            pids.push(pair.b.try_pid()?);
        }
        Some(pids)
    }

    /// Resident memory of the daemon (summed over its instances), from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        self.pids()?
            .into_iter()
            .map(|pid| claw_testkit::proc_status_kib(pid, "VmRSS"))
            .sum()
    }

    /// CPU seconds the HAProxy in front of the instances has used so far.
    pub fn haproxy_cpu_secs(&self) -> Option<f64> {
        let pid = self.pair.as_ref()?.proxy.pid()?;
        claw_testkit::process_cpu_secs(&pid.to_string())
    }

    /// CPU seconds the PostgreSQL cluster started here (--spawn-postgres)
    /// has used so far, over its processes.
    pub fn postgres_cpu_secs(&self) -> Option<f64> {
        self.cluster.as_ref()?.server_cpu_secs()
    }

    /// CPU seconds (user + system) the daemon has used so far (summed
    /// over its instances), from /proc.
    pub fn cpu_secs(&self) -> Option<f64> {
        self.pids()?
            .into_iter()
            .map(|pid| claw_testkit::process_cpu_secs(&pid.to_string()))
            .sum()
    }

    /// Stops a spawned clawd with SIGTERM and waits for it; an error when
    /// it did not stop cleanly.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut gateway) = self.spawned.take() else {
            return Ok(());
        };
        let cluster = self.cluster.take();
        let pair = self.pair.take();
        let (status, b_status) = tokio::task::spawn_blocking(move || {
            // The proxy first, then the instances, then their database.
            let b_status = pair.map(|Pair { proxy, mut b }| {
                drop(proxy);
                b.try_stop_within(STOP_WITHIN)
            });
            let status = gateway.try_stop_within(STOP_WITHIN);
            // pg_ctl stop waits for the server: off the runtime.
            drop(cluster);
            (status, b_status)
        })
        .await?;
        let status = status?;
        if !status.success() {
            bail!("clawd exited with {status}");
        }
        if let Some(b_status) = b_status.transpose()?
            && !b_status.success()
        {
            bail!("clawd (instance B) exited with {b_status}");
        }
        Ok(())
    }
}
