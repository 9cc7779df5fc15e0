//! The real clawd on a temporary data directory: started, stopped, killed
//! and started again on the same directory, with its log, its pid and its
//! memory; and the human API as an administrator uses it.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use claw_proto::api::{
    AuditView, AuthStatus, ChainReport, CreateRunRequest, CreatedRun, EventView, Health, MeReply,
    RunDetail, RunView, StatusView, UserView,
};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::https;
use crate::runner::{Runner, RunnerClient};
use crate::ws::{Ws, websocket_to};

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// Tests do many requests from one address: no request limit unless a test
/// asks for one.
pub const TEST_CONFIG: &str = "rate_limit_per_minute = 0\n";

/// The variables a service manager passes, which a clawd started by a test
/// must not inherit from whatever runs the tests.
const SERVICE_MANAGER_ENV: [&str; 7] = [
    "CREDENTIALS_DIRECTORY",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// The store the gateways of a test run keep their data in: SQLite in
/// their data directory, or with `CLAW_TEST_STORE=postgres` a database of
/// their own on the PostgreSQL server whose superuser's URL is
/// `CLAW_TEST_PG_URL` (scripts/test starts one with `pg-cluster`).
pub fn store_is_postgres() -> bool {
    std::env::var("CLAW_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// False, saying so, when the gateways of this run are on PostgreSQL: for
/// tests of what only SQLite has (the database file, its log, a copy of
/// the data directory that holds the whole installation).
pub fn on_sqlite(why: &str) -> bool {
    let sqlite = !store_is_postgres();
    if !sqlite {
        eprintln!("SQLite only, skipped on PostgreSQL: {why}");
    }
    sqlite
}

/// A gateway's own database on the test run's PostgreSQL server; dropped
/// with the gateway.
struct TestDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    fn create() -> anyhow::Result<Self> {
        let admin_url = std::env::var("CLAW_TEST_PG_URL")
            .context("CLAW_TEST_STORE=postgres needs CLAW_TEST_PG_URL (scripts/test sets it)")?;
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).context("random database name")?;
        let db = Self {
            admin_url,
            name: format!("t_{}", hex::encode(id)),
        };
        db.psql(&format!("CREATE DATABASE {}", db.name))?;
        Ok(db)
    }

    fn url(&self) -> anyhow::Result<String> {
        let (server, _) = self
            .admin_url
            .rsplit_once('/')
            .context("CLAW_TEST_PG_URL is not postgres://USER:PASSWORD@HOST:PORT/DATABASE")?;
        Ok(format!("{server}/{}", self.name))
    }

    fn psql(&self, sql: &str) -> anyhow::Result<()> {
        let psql = crate::postgres::server_bindir()?.join("psql");
        let out = Command::new(&psql)
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.admin_url,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", psql.display()))?;
        if !out.status.success() {
            bail!("{sql}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }
}

/// Runs one statement with `psql` on the database at `url`; its rows, the
/// columns parted by `|`.
fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let psql = crate::postgres::server_bindir()?.join("psql");
    let out = Command::new(&psql)
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", psql.display()))?;
    if !out.status.success() {
        bail!("{sql}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Err(e) = self.psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )) {
            eprintln!("test database: {e:#}");
        }
    }
}

/// How to start clawd: `Launch::new(path).config(…).env(…).start()`.
pub struct Launch {
    clawd: PathBuf,
    dir: Option<tempfile::TempDir>,
    config: String,
    env: Vec<(String, OsString)>,
    log_file: bool,
    rust_log: Option<String>,
    file_size_limit: Option<u64>,
    same_port: bool,
}

impl Launch {
    /// The clawd binary at `clawd`, with [`TEST_CONFIG`], `RUST_LOG=debug`
    /// and its log in `clawd.stderr` of the data directory.
    pub fn new(clawd: impl Into<PathBuf>) -> Self {
        Self {
            clawd: clawd.into(),
            dir: None,
            config: TEST_CONFIG.to_owned(),
            env: Vec::new(),
            log_file: true,
            rust_log: Some("debug".to_owned()),
            file_size_limit: None,
            same_port: false,
        }
    }

    /// The text of `clawd.toml` (written to the data directory).
    pub fn config(mut self, config: &str) -> Self {
        config.clone_into(&mut self.config);
        self
    }

    /// This data directory instead of a new one.
    pub fn dir(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// An environment variable for clawd.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn envs(mut self, env: &[(&str, &str)]) -> Self {
        for (k, v) in env {
            self = self.env(k, v);
        }
        self
    }

    /// clawd's log goes nowhere and `RUST_LOG` is what the caller's
    /// environment says: for tests that do not read the log, and for
    /// measurements.
    pub fn quiet(mut self) -> Self {
        self.log_file = false;
        self.rust_log = None;
        self
    }

    /// Largest file clawd may write (RLIMIT_FSIZE), as a full disk would.
    pub fn file_size_limit(mut self, bytes: u64) -> Self {
        self.file_size_limit = Some(bytes);
        self
    }

    /// Started again (relaunch, restart), clawd listens on the port it had
    /// first, so that runners given its address find it again.
    pub fn same_port(mut self) -> Self {
        self.same_port = true;
        self
    }

    /// Starts clawd and waits until it listens; fails the test otherwise.
    pub fn start(self) -> Gateway {
        self.try_start()
            .unwrap_or_else(|e| panic!("clawd did not start: {e:#}"))
    }

    /// Starts clawd and waits until it listens.
    pub fn try_start(self) -> anyhow::Result<Gateway> {
        let dir = match self.dir {
            Some(dir) => dir,
            None => tempfile::tempdir().context("cannot make a temporary data directory")?,
        };
        let mut gw = Gateway {
            dir,
            child: None,
            port: 0,
            client: reqwest::Client::new(),
            hmac_secret: String::new(),
            file_size_limit: self.file_size_limit,
            clawd: self.clawd,
            config: self.config,
            env: self.env,
            log_file: self.log_file,
            rust_log: self.rust_log,
            same_port: self.same_port,
            database: None,
        };
        // A test that chose its store keeps it.
        if store_is_postgres() && !gw.config.contains("[store]") {
            let database = TestDatabase::create()?;
            gw.config.push_str(&format!(
                "\n[store]\nbackend = \"postgres\"\ndatabase_url = \"{}\"\n",
                database.url()?
            ));
            gw.database = Some(database);
        }
        gw.try_launch()?;
        Ok(gw)
    }
}

/// A running `clawd` with its data directory; killed when dropped.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    /// Trusts the gateway's certificate (as it was at the last start).
    pub client: reqwest::Client,
    pub hmac_secret: String,
    /// Largest file clawd may write (RLIMIT_FSIZE) from its next start on.
    pub file_size_limit: Option<u64>,
    clawd: PathBuf,
    config: String,
    env: Vec<(String, OsString)>,
    log_file: bool,
    rust_log: Option<String>,
    same_port: bool,
    /// With `CLAW_TEST_STORE=postgres`: where the store is.
    database: Option<TestDatabase>,
}

impl Gateway {
    /// How to start the clawd binary at `clawd`.
    pub fn launch(clawd: impl Into<PathBuf>) -> Launch {
        Launch::new(clawd)
    }

    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    /// `claw-runner` (at `program`) in a clean environment, set up to talk
    /// to this gateway: its address, HMAC secret and certificate; `home` as
    /// its HOME.
    pub fn runner_command(&self, program: impl AsRef<OsStr>, home: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", home)
            .env(
                "CLAW_GATEWAY_URL",
                format!("https://localhost:{}", self.port),
            )
            .env(
                "CLAW_HMAC_SECRET_FILE",
                self.data().join("secrets/hmac-secret"),
            )
            .env("CLAW_CA_CERT", self.data().join("certs/server.crt"));
        command
    }

    /// A data directory for another instance of this installation: new,
    /// with this gateway's secrets, as every instance shares them.
    pub fn instance_dir(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("data directory");
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&secrets).expect("secrets");
        for entry in std::fs::read_dir(self.data().join("secrets")).expect("secrets") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), secrets.join(entry.file_name())).expect("copy");
        }
        dir
    }

    /// With `CLAW_TEST_STORE=postgres`: the URL of the gateway's database
    /// (with the password).
    pub fn database_url(&self) -> Option<String> {
        self.database.as_ref().and_then(|db| db.url().ok())
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.data().join("control.sock")
    }

    /// The gateway's certificate (PEM) as it is now on disk.
    pub fn certificate(&self) -> Vec<u8> {
        std::fs::read(self.data().join("certs/server.crt")).expect("the gateway's certificate")
    }

    fn try_launch(&mut self) -> anyhow::Result<()> {
        let config_path = self.data().join("clawd.toml");
        std::fs::write(&config_path, &self.config)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let stderr = if self.log_file {
            Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.data().join("clawd.stderr"))
                    .context("cannot open clawd.stderr")?,
            )
        } else {
            Stdio::null()
        };
        let port = if self.same_port { self.port } else { 0 };
        let mut command = Command::new(&self.clawd);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(self.data())
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("CLAW_LOG_TARGET", "stderr");
        for key in SERVICE_MANAGER_ENV {
            command.env_remove(key);
        }
        if let Some(level) = &self.rust_log {
            command.env("RUST_LOG", level);
        }
        command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", self.clawd.display()))?;
        let address = child
            .stdout
            .take()
            .context("no stdout from clawd")
            .and_then(|stdout| {
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line)?;
                listening_address(&line).with_context(|| {
                    format!(
                        "{} did not report its address: {line:?}",
                        self.clawd.display()
                    )
                })
            });
        let address = match address {
            Ok(address) => address,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = self.log();
                if log.is_empty() {
                    return Err(e);
                }
                bail!("{e:#}\n{log}");
            }
        };
        self.port = address.port();
        self.child = Some(child);
        let pem = std::fs::read(self.data().join("certs/server.crt"))
            .context("cannot read the gateway's certificate")?;
        self.client = https::try_client_builder_trusting(&pem)?.build()?;
        self.hmac_secret = std::fs::read_to_string(self.data().join("secrets/hmac-secret"))
            .context("cannot read the HMAC secret")?
            .trim()
            .to_owned();
        Ok(())
    }

    fn child(&self) -> &Child {
        self.child.as_ref().expect("clawd is running")
    }

    /// Stops with SIGTERM and waits up to 5 s; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.try_stop_within(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Stops with SIGTERM and waits; kills clawd when it is still there
    /// after `within`, and says so.
    pub fn try_stop_within(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        self.try_signal(nix::sys::signal::Signal::SIGTERM)?;
        self.try_wait_stopped_within(within)
            .with_context(|| "clawd did not stop on SIGTERM")
    }

    /// Stops with SIGTERM, then starts again on the same data directory.
    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(status.success(), "clawd exited with {status}");
        self.relaunch();
    }

    /// Kills clawd (SIGKILL), as a crash or a power cut would, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// clawd's process id.
    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    /// clawd's process id, when it runs.
    pub fn try_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A line of clawd's `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        crate::proc_status_kib(self.pid(), field)
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }

    /// clawd's log so far (empty when [`Launch::quiet`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data().join("clawd.stderr")).unwrap_or_default()
    }

    /// `https://localhost:PORT`.
    pub fn base(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    pub fn setup_token(&self) -> String {
        self.try_setup_token().expect("setup token file")
    }

    /// The setup token, while there are no users.
    pub fn try_setup_token(&self) -> Option<String> {
        std::fs::read_to_string(self.data().join("setup-token"))
            .ok()
            .map(|t| t.trim().to_owned())
    }

    /// Sends a signal (SIGHUP: reload) without waiting.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        self.try_signal(signal)
            .unwrap_or_else(|e| panic!("{signal}: {e:#}"));
    }

    fn try_signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("clawd is not running")?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, signal)?;
        Ok(())
    }

    /// SIGTERM without waiting.
    pub fn signal_term(&self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }

    /// Waits up to 10 s for the exit that a signal or a request asked for.
    pub fn wait_stopped(&mut self) -> ExitStatus {
        self.wait_stopped_within(Duration::from_secs(10))
    }

    pub fn wait_stopped_within(&mut self, within: Duration) -> ExitStatus {
        self.try_wait_stopped_within(within)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Waits for clawd's exit; kills it when it is still there after
    /// `within`.
    pub fn try_wait_stopped_within(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("clawd is not running")?;
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("clawd did not stop within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// clawd's exit status when it has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("wait for clawd"))
    }

    /// Runs one SQL statement on the gateway's database, whichever the
    /// store (values written into the statement: `?` parameters are
    /// SQLite's own); its rows (with `RETURNING` for a change), each
    /// column as text, NULL as "", a blob as lowercase hex. For tests that
    /// plant or age what no interface would.
    pub fn sql(&self, sql: &str) -> Vec<Vec<String>> {
        self.try_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e:#}"))
    }

    pub fn try_sql(&self, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
        if let Some(database) = &self.database {
            let out = psql(&database.url()?, sql)?;
            return Ok(out
                .lines()
                .map(|line| {
                    line.split('|')
                        // psql shows a bytea as `\x` and hex.
                        .map(|v| v.strip_prefix("\\x").unwrap_or(v).to_owned())
                        .collect()
                })
                .collect());
        }
        use rusqlite::types::ValueRef;
        let db = rusqlite::Connection::open(db_path(self))?;
        db.busy_timeout(Duration::from_secs(5))?;
        let mut stmt = db.prepare(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => String::new(),
                    ValueRef::Integer(n) => n.to_string(),
                    ValueRef::Real(x) => x.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(b) => hex::encode(b),
                });
            }
            out.push(values);
        }
        Ok(out)
    }

    /// Starts clawd again on the same data directory.
    pub fn relaunch(&mut self) {
        self.try_launch()
            .unwrap_or_else(|e| panic!("clawd did not start again: {e:#}"));
    }

    /// A request with a bearer session (or none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        session: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        https::try_call(
            &self.client,
            method,
            &self.url(path),
            session,
            body.as_ref(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub async fn get(&self, path: &str, session: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(session), None).await
    }

    pub async fn post(&self, path: &str, session: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(session), Some(body))
            .await
    }

    /// A GET that must answer 200 with a `T`.
    pub async fn get_as<T: DeserializeOwned>(&self, path: &str, session: Option<&str>) -> T {
        let (status, body) = self.call(Method::GET, path, session, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        decode(&format!("GET {path}"), body)
    }

    /// A request that must succeed (2xx) with a `T`.
    pub async fn send_as<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        session: &str,
        body: Option<Value>,
    ) -> T {
        let what = format!("{method} {path}");
        let (status, body) = self.call(method, path, Some(session), body).await;
        assert!(status.is_success(), "{what}: {status} {body}");
        decode(&what, body)
    }

    /// Runs first-run setup and logs the admin in; returns the session.
    pub async fn admin(&self) -> String {
        https::try_setup(
            &self.client,
            &self.base(),
            &self.setup_token(),
            ADMIN,
            ADMIN_PASSWORD,
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
        self.login(ADMIN, ADMIN_PASSWORD, None)
            .await
            .expect("admin login")
    }

    /// Logs in; returns the session token from the cookie, which must be
    /// `HttpOnly`, `Secure` and `SameSite=Strict`.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        totp: Option<&str>,
    ) -> Result<String, (StatusCode, Value)> {
        let login = https::try_login(&self.client, &self.base(), username, password, totp)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        if login.status != StatusCode::OK {
            return Err((login.status, login.body));
        }
        let cookie = login.cookie.as_deref().expect("session cookie");
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        Ok(login.session().expect("session=").to_owned())
    }

    /// Creates a user with a role and returns its session; the password is
    /// `{name}-password-long`.
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

    /// Creates a run of `claude -p test`; returns (id, capability token).
    pub async fn create_run(&self, session: &str) -> (String, String) {
        let run = self
            .create_run_with(
                session,
                &CreateRunRequest {
                    command: Some("claude -p test".to_owned()),
                    ..Default::default()
                },
            )
            .await;
        (run.id, run.capability_token)
    }

    /// Creates a run as asked.
    pub async fn create_run_with(&self, session: &str, request: &CreateRunRequest) -> CreatedRun {
        https::try_create_run(&self.client, &self.base(), session, request)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// `GET /api/runs/{id}`.
    pub async fn run(&self, session: &str, run_id: &str) -> RunDetail {
        self.get_as(&format!("/api/runs/{run_id}"), Some(session))
            .await
    }

    /// `GET /api/runs`.
    pub async fn runs(&self, session: &str) -> Vec<RunView> {
        self.get_as("/api/runs", Some(session)).await
    }

    /// `GET /api/runs/{id}/events?after=…`: a page of a run's events.
    pub async fn events(&self, session: &str, run_id: &str, after: u64) -> Vec<EventView> {
        self.get_as(
            &format!("/api/runs/{run_id}/events?after={after}"),
            Some(session),
        )
        .await
    }

    /// `GET /api/health`.
    pub async fn health(&self) -> Health {
        self.get_as("/api/health", None).await
    }

    /// `GET /api/status`.
    pub async fn status(&self, session: &str) -> StatusView {
        self.get_as("/api/status", Some(session)).await
    }

    /// `GET /api/auth/status`.
    pub async fn auth_status(&self) -> AuthStatus {
        self.get_as("/api/auth/status", None).await
    }

    /// `GET /api/auth/me`.
    pub async fn me(&self, session: &str) -> MeReply {
        self.get_as("/api/auth/me", Some(session)).await
    }

    /// `GET /api/auth/users`.
    pub async fn users(&self, session: &str) -> Vec<UserView> {
        self.get_as("/api/auth/users", Some(session)).await
    }

    /// `GET /api/audit`.
    pub async fn audit(&self, session: &str) -> Vec<AuditView> {
        self.get_as("/api/audit", Some(session)).await
    }

    /// `GET /api/audit/verify`.
    pub async fn audit_verify(&self, session: &str) -> ChainReport {
        self.get_as("/api/audit/verify", Some(session)).await
    }

    /// A runner of one run, borrowing this gateway.
    pub fn runner(&self, run_id: &str, token: &str) -> Runner<'_> {
        Runner::new(self, self.runner_client(run_id, token))
    }

    /// A runner of one run that owns what it needs (for a spawned task).
    pub fn runner_client(&self, run_id: &str, token: &str) -> RunnerClient {
        RunnerClient {
            client: self.client.clone(),
            base: self.base(),
            secret: self.hmac_secret.clone(),
            run_id: run_id.to_owned(),
            token: token.to_owned(),
        }
    }

    /// Opens the browser WebSocket with a session token.
    pub async fn websocket(&self, session: &str) -> Ws {
        websocket_to(self.port, &self.certificate(), session).await
    }

    /// A request on the control socket.
    pub async fn control(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        crate::unix_request(&self.socket(), method, uri, body).await
    }

    /// A GET on the control socket that must answer 200 with a `T`, such
    /// as [`claw_proto::control::Status`] for `/v1/status`.
    pub async fn control_get<T: DeserializeOwned>(&self, uri: &str) -> T {
        crate::control_get(&self.socket(), uri).await
    }

    /// `GET /v1/status` on the control socket.
    pub async fn control_status(&self) -> claw_proto::control::Status {
        self.control_get("/v1/status").await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The database file of a gateway.
pub fn db_path(gw: &Gateway) -> PathBuf {
    gw.data().join("db.sqlite")
}

/// The address in clawd's first line, `clawd listening on https://ADDR`.
fn listening_address(line: &str) -> anyhow::Result<SocketAddr> {
    let url = line
        .trim()
        .strip_prefix("clawd listening on ")
        .context("not `clawd listening on …`")?;
    let (_, address) = url.split_once("://").context("no scheme")?;
    Ok(address.parse()?)
}

pub(crate) fn decode<T: DeserializeOwned>(what: &str, body: Value) -> T {
    serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("{what}: not a {}: {e}\n{body}", std::any::type_name::<T>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_the_first_line() {
        assert_eq!(
            listening_address("clawd listening on https://127.0.0.1:41234\n").unwrap(),
            "127.0.0.1:41234".parse().unwrap()
        );
        assert_eq!(
            listening_address("clawd listening on http://[::1]:3100").unwrap(),
            "[::1]:3100".parse().unwrap()
        );
        assert!(listening_address("").is_err());
        assert!(listening_address("error: no such file").is_err());
    }
}
