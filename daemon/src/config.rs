//! `clawd.toml`: every setting with its default, loaded
//! from TOML with unknown keys refused by name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::sqlite::Durability;

/// The configuration file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/claw/clawd.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("configuration file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the public HTTPS listener (when not socket-activated).
    pub listen: SocketAddr,
    /// Where the database, certificates, secrets and artifacts live.
    pub data_dir: Option<PathBuf>,
    /// Serve HTTPS (true) or plain HTTP (only behind a TLS-terminating proxy).
    pub tls: bool,
    /// Certificate chain (PEM); default `DATA_DIR/certs/server.crt`.
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM); default `DATA_DIR/certs/server.key`.
    pub tls_key: Option<PathBuf>,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace` or a
    /// `tracing` directive); `RUST_LOG` overrides it.
    pub log_level: String,
    /// Finished runs older than this are removed by pruning.
    pub run_retention_days: u32,
    /// A running run without any event for this long is reported (and with
    /// `clawctl reconcile --fix` marked failed).
    pub stale_run_hours: u32,
    /// An artifact file (or object) without a row younger than this may be
    /// an upload between its bytes and its row: reconcile leaves it.
    pub artifact_orphan_grace_secs: u64,
    /// Largest accepted difference between a runner's clock and ours.
    pub clock_skew_secs: u64,
    /// How long a used nonce is remembered (replay protection).
    pub nonce_lifetime_secs: u64,
    /// Largest request body, except artifact uploads.
    pub body_limit_bytes: usize,
    /// Largest artifact upload.
    pub artifact_limit_bytes: usize,
    /// Requests per minute per client address on the human API
    /// (signed runner requests are not counted); 0 disables the limit.
    pub rate_limit_per_minute: u32,
    /// Failed logins per 15 minutes, per client address and per user name,
    /// before further attempts are refused with 429.
    pub login_max_failures: u32,
    /// Lifetime of a login session.
    pub session_lifetime_secs: u64,
    /// Commands allowed in addition to the built-in allowlist, in the
    /// grammar of `claw_proto::allowlist` (exact words, `<path>`,
    /// `<path>...`); an invalid entry refuses the configuration.
    pub allowed_commands: Vec<String>,
    /// File name extensions accepted as artifacts.
    pub artifact_extensions: Vec<String>,
    /// Extra redaction patterns (regular expressions), matched text becomes
    /// `[REDACTED]`.
    pub redact_patterns: Vec<String>,
    /// Most events accepted in one `POST /api/ingest/events`.
    pub batch_max_events: usize,
    /// Largest `data` of a single event.
    pub event_max_bytes: usize,
    /// When an acknowledged write is flushed to disk: `batched` (within
    /// 0.1 s, by a background thread) or `commit` (before every reply).
    pub durability: Durability,
    /// Threads serving connections; 0 is one less than the CPUs clawd may
    /// use (at least one), leaving a CPU to the store's writer thread.
    pub worker_threads: usize,
    /// Runs one browser WebSocket may follow at once; 0 is no limit.
    pub subscriptions_per_socket: usize,
    /// Runs one user may follow at once over all their WebSockets; 0 is no
    /// limit.
    pub subscriptions_per_user: usize,
    /// Artifact downloads served at once; more wait for none and get 503.
    pub artifact_downloads_max: usize,
    /// How long the answer of a request with an `Idempotency-Key` is kept.
    pub idempotency_ttl_hours: u32,
    /// Largest prompt for an agent, in bytes.
    pub prompt_max_bytes: usize,
    /// Whether administrators may start agents that never ask
    /// (`permissionMode: bypassPermissions`).
    pub allow_bypass_permissions: bool,
    /// How long an agent's request waits for a person's decision before
    /// the runner denies it (a run may set its own).
    pub approval_timeout_secs: u64,
    /// Attempts to deliver a notification before it becomes a dead letter
    /// (it also does after 24 h).
    pub notify_max_attempts: u32,
    /// Whether notification targets may be on loopback, link-local or
    /// private addresses (off: SSRF).
    pub notify_allow_private_targets: bool,
    /// The gateway's address as people reach it, for links in
    /// notifications; default `https://HOSTNAME:PORT` of `listen`.
    pub public_url: Option<String>,
    /// A running run's runner silent this long is reported (`runner_lost`).
    pub runner_lost_secs: u64,
    /// Proxies (addresses or CIDR networks) whose `X-Forwarded-For` names
    /// the client: a load balancer in front of several gateways.
    pub trusted_proxies: Vec<String>,
    /// Where the store is: SQLite in the data directory, or PostgreSQL.
    pub store: StoreConfig,
    /// Where artifact files are kept: the data directory, or an S3 bucket.
    pub artifacts: ArtifactsConfig,
}

/// `[artifacts]` (or `artifacts.KEY = …`): where artifact bytes are kept.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArtifactsConfig {
    pub backend: ArtifactBackend,
    /// The S3 API's address, `http(s)://HOST[:PORT]`; unset is AWS's own.
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: String,
    /// `http://HOST/BUCKET/KEY` rather than `http://BUCKET.HOST/KEY`.
    pub path_style: bool,
    /// Creates the bucket at start when it does not exist.
    pub create_bucket: bool,
    /// Retries of a failed request (with exponential backoff).
    pub retries: u32,
    /// The longest wait between two retries.
    pub max_backoff_secs: u64,
    /// Keys in the clear in this file, only if the administrator wants
    /// that: systemd credentials or the environment are preferred.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
}

impl Default for ArtifactsConfig {
    fn default() -> Self {
        Self {
            backend: ArtifactBackend::File,
            endpoint: None,
            bucket: None,
            region: "us-east-1".to_owned(),
            path_style: true,
            create_bucket: false,
            retries: 3,
            max_backoff_secs: 30,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactBackend {
    /// `DATA_DIR/artifacts/RUN/ID_NAME`.
    #[default]
    File,
    /// An S3-compatible object store (AWS S3, Garage, MinIO, Ceph RGW…).
    S3,
}

/// A secret written in the configuration file: never printed.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(…)")
    }
}

impl ArtifactsConfig {
    fn validate(&self) -> Result<(), String> {
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(
                "artifacts.access_key_id and artifacts.secret_access_key must be set together"
                    .to_owned(),
            );
        }
        if self.backend == ArtifactBackend::File {
            return Ok(());
        }
        match self.bucket.as_deref() {
            None | Some("") => {
                return Err(
                    "artifacts.backend is \"s3\" but artifacts.bucket is not set".to_owned(),
                );
            }
            Some(_) => {}
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            return Err(format!(
                "artifacts.endpoint {endpoint:?} is not an http(s) address"
            ));
        }
        Ok(())
    }
}

/// `[store]` (or `store.KEY = …`): the database behind clawd.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: Backend,
    /// PostgreSQL's address, `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`;
    /// the password may come from the credential `claw_database-password`.
    pub database_url: Option<DatabaseUrl>,
    /// Most connections clawd opens to PostgreSQL.
    pub max_connections: u32,
    /// How long opening a connection may take.
    pub connect_timeout_secs: u64,
    /// Longest statement before PostgreSQL cancels it; 0 is no limit.
    pub statement_timeout_secs: u64,
    /// How long clawd keeps trying to reach PostgreSQL at start before it
    /// gives up (and systemd starts it again).
    pub start_wait_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            database_url: None,
            max_connections: 10,
            connect_timeout_secs: 5,
            statement_timeout_secs: 30,
            start_wait_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `DATA_DIR/db.sqlite`, embedded.
    #[default]
    Sqlite,
    /// A PostgreSQL server, shared by several gateways.
    Postgres,
}

/// A database URL, which may hold a password: shown and logged only
/// without it ([`DatabaseUrl::redacted`]).
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    #[cfg_attr(not(test), allow(dead_code))] // the PostgreSQL store's tests
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL as written, password and all: for the database client only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without its password (`postgres://claw@db/claw`), also in
    /// the `password=` of a key-value string or a query parameter.
    pub fn redacted(&self) -> String {
        redact_password(&self.0)
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Drops the password from a `postgres://` URL (user info and `password=`
/// query parameters) or from a `key=value` connection string.
pub fn redact_password(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = match authority.rsplit_once('@') {
            Some((user_info, host)) => {
                let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
                format!("{user}@{host}")
            }
            None => authority.to_owned(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|p| !p.to_ascii_lowercase().starts_with("password="))
                    .collect();
                if kept.is_empty() {
                    path.to_owned()
                } else {
                    format!("{path}?{}", kept.join("&"))
                }
            }
            None => tail.to_owned(),
        };
        return format!("{scheme}://{authority}{tail}");
    }
    // key=value pairs; a quoted password may hold spaces.
    let mut out = Vec::new();
    let mut rest = url.trim();
    while !rest.is_empty() {
        let (pair, after) = next_pair(rest);
        if !pair
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("password")
        {
            out.push(pair.trim());
        }
        rest = after.trim_start();
    }
    out.join(" ")
}

/// The first `key = value` of a connection string and what follows it.
fn next_pair(text: &str) -> (&str, &str) {
    let Some(eq) = text.find('=') else {
        return (text, "");
    };
    let value = text[eq + 1..].trim_start();
    let value_start = text.len() - value.len();
    let end = if let Some(quoted) = value.strip_prefix('\'') {
        let mut escaped = false;
        let mut close = quoted.len();
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '\'' if !escaped => {
                    close = i + 1;
                    break;
                }
                _ => escaped = false,
            }
        }
        value_start + 1 + close
    } else {
        value_start + value.find(char::is_whitespace).unwrap_or(value.len())
    };
    text.split_at(end.min(text.len()))
}

/// More runtime threads than this is a typo, not a machine.
const MOST_WORKER_THREADS: usize = 1024;

pub const DEFAULT_ARTIFACT_EXTENSIONS: &[&str] = &[
    "log", "txt", "diff", "patch", "json", "md", "csv", "html", "xml", "yaml", "yml", "toml",
    "png", "jpg", "jpeg", "gif", "webp", "pdf", "zip", "tar", "gz", "tgz",
];

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 3100)),
            data_dir: None,
            tls: true,
            tls_cert: None,
            tls_key: None,
            log_level: "info".to_owned(),
            run_retention_days: 30,
            stale_run_hours: 24,
            artifact_orphan_grace_secs: 600,
            clock_skew_secs: 300,
            nonce_lifetime_secs: 600,
            body_limit_bytes: 10 * 1024 * 1024,
            artifact_limit_bytes: 50 * 1024 * 1024,
            rate_limit_per_minute: 100,
            login_max_failures: 5,
            session_lifetime_secs: 24 * 60 * 60,
            allowed_commands: Vec::new(),
            artifact_extensions: DEFAULT_ARTIFACT_EXTENSIONS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            redact_patterns: Vec::new(),
            batch_max_events: 1000,
            event_max_bytes: 1024 * 1024,
            durability: Durability::default(),
            worker_threads: 0,
            subscriptions_per_socket: 100,
            subscriptions_per_user: 500,
            artifact_downloads_max: 32,
            idempotency_ttl_hours: 24,
            prompt_max_bytes: 100_000,
            allow_bypass_permissions: false,
            approval_timeout_secs: 1800,
            notify_max_attempts: 8,
            notify_allow_private_targets: false,
            public_url: None,
            trusted_proxies: Vec::new(),
            runner_lost_secs: 120,
            store: StoreConfig::default(),
            artifacts: ArtifactsConfig::default(),
        }
    }
}

impl Config {
    /// How many threads serve connections on a machine where clawd may use
    /// `cpus` CPUs. With one per CPU, the writer thread competed with them
    /// for the CPUs, and answers woke a second worker: one fewer was 4–7 %
    /// faster at single-event ingest on two CPUs (PERFORMANCE.md).
    pub fn runtime_workers(&self, cpus: usize) -> usize {
        match self.worker_threads {
            0 => cpus.saturating_sub(1).max(1),
            n => n,
        }
    }

    /// Parses TOML text; `path` only names the source in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned() + &location(text, e.span()),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            message: message.to_owned(),
        };
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(invalid("tls_cert and tls_key must be set together"));
        }
        if self.batch_max_events == 0 {
            return Err(invalid("batch_max_events must be at least 1"));
        }
        if self.session_lifetime_secs == 0 {
            return Err(invalid("session_lifetime_secs must be at least 1"));
        }
        if self.artifact_downloads_max == 0 {
            return Err(invalid("artifact_downloads_max must be at least 1"));
        }
        if self.worker_threads > MOST_WORKER_THREADS {
            return Err(invalid(&format!(
                "worker_threads is {}; the most is {MOST_WORKER_THREADS} (0 picks one less than the CPUs)",
                self.worker_threads
            )));
        }
        if self.notify_max_attempts == 0 {
            return Err(invalid("notify_max_attempts must be at least 1"));
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(invalid(&format!(
                "public_url {url:?} is not an http(s) address"
            )));
        }
        proxy_networks(&self.trusted_proxies).map_err(|m| invalid(&m))?;
        self.store.validate().map_err(|m| invalid(&m))?;
        self.artifacts.validate().map_err(|m| invalid(&m))?;
        if let Err(e) = claw_proto::Redactor::new(&self.redact_patterns) {
            return Err(invalid(&e.to_string()));
        }
        if let Err(e) = claw_proto::Allowlist::new(&self.allowed_commands) {
            return Err(invalid(&format!("allowed_commands: {e}")));
        }
        Ok(())
    }
}

/// `trusted_proxies` as networks: `10.0.0.5` is `10.0.0.5/32`.
pub fn proxy_networks(entries: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
    entries
        .iter()
        .map(|entry| {
            let entry = entry.trim();
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!(
                        "trusted_proxies: {entry:?} is neither an address nor a network \
                         (10.0.0.5, 10.0.0.0/24, fd00::/8)"
                    )
                })
        })
        .collect()
}

impl StoreConfig {
    fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("store.max_connections must be at least 1".to_owned());
        }
        if self.connect_timeout_secs == 0 {
            return Err("store.connect_timeout_secs must be at least 1".to_owned());
        }
        match (self.backend, &self.database_url) {
            (Backend::Postgres, None) => Err(
                "store.backend is \"postgres\" but store.database_url is not set \
                 (postgres://USER@HOST/DATABASE)"
                    .to_owned(),
            ),
            (_, Some(url)) => {
                url.expose()
                    .parse::<tokio_postgres::Config>()
                    .map_err(|e| format!("store.database_url {url} is not valid: {e}"))?;
                Ok(())
            }
            (Backend::Sqlite, None) => Ok(()),
        }
    }
}

fn location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return String::new();
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    format!(" (line {line})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::default();
        assert_eq!(c.listen.port(), 3100);
        assert_eq!(c.run_retention_days, 30);
        assert_eq!(c.clock_skew_secs, 300);
        assert_eq!(c.nonce_lifetime_secs, 600);
        assert_eq!(c.body_limit_bytes, 10 * 1024 * 1024);
        assert_eq!(c.artifact_limit_bytes, 50 * 1024 * 1024);
        assert_eq!(c.rate_limit_per_minute, 100);
        assert_eq!(c.session_lifetime_secs, 86_400);
    }

    #[test]
    fn partial_file_keeps_defaults() {
        let c = Config::from_toml("listen = \"127.0.0.1:9000\"\ntls = false\n", Path::new("x"))
            .expect("valid");
        assert_eq!(c.listen.port(), 9000);
        assert!(!c.tls);
        assert_eq!(c.clock_skew_secs, 300);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml(
            "listen = \"127.0.0.1:1\"\nlisten_port = 3\n",
            Path::new("c.toml"),
        )
        .expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("listen_port"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    /// The shipped, commented configuration file documents every key with
    /// its real default.
    #[test]
    fn shipped_config_documents_every_default() {
        let doc = include_str!("../../packaging/clawd.toml");
        let mut documented = Vec::new();
        let mut active = String::new();
        for line in doc.lines() {
            let Some(rest) = line.strip_prefix("# ") else {
                continue;
            };
            let Some((key, _)) = rest.split_once(" = ") else {
                continue;
            };
            if key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
            {
                documented.push(key.to_owned());
                // Keys without a default are shown as "(unset)".
                if toml::from_str::<toml::Table>(rest).is_ok() {
                    active.push_str(rest);
                    active.push('\n');
                }
            }
        }
        let parsed =
            Config::from_toml(&active, Path::new("clawd.toml")).expect("documented defaults parse");
        assert_eq!(parsed, Config::default());
        // Every field, the optional ones included, is documented.
        let all = Config {
            data_dir: Some("/d".into()),
            tls_cert: Some("/c".into()),
            tls_key: Some("/k".into()),
            public_url: Some("https://u".into()),
            store: StoreConfig {
                database_url: Some(DatabaseUrl::new("postgres://u@h/d")),
                ..StoreConfig::default()
            },
            artifacts: ArtifactsConfig {
                endpoint: Some("http://s3".into()),
                bucket: Some("b".into()),
                access_key_id: Some("k".into()),
                secret_access_key: Some(SecretString("s".into())),
                ..ArtifactsConfig::default()
            },
            ..Config::default()
        };
        let table = toml::Table::try_from(&all).expect("serialise");
        // A table's keys are documented as `table.key`.
        let mut fields: Vec<String> = table
            .iter()
            .flat_map(|(key, value)| match value {
                toml::Value::Table(inner) => inner.keys().map(|k| format!("{key}.{k}")).collect(),
                _ => vec![key.clone()],
            })
            .collect();
        fields.sort();
        documented.sort();
        assert_eq!(documented, fields);
    }

    #[test]
    fn runtime_workers_leave_a_cpu_to_the_writer_unless_set() {
        let auto = Config::default();
        assert_eq!(auto.runtime_workers(1), 1);
        assert_eq!(auto.runtime_workers(2), 1);
        assert_eq!(auto.runtime_workers(8), 7);
        let set = Config::from_toml("worker_threads = 4", Path::new("x")).expect("valid");
        assert_eq!(set.runtime_workers(2), 4);
        let err = Config::from_toml("worker_threads = 100000", Path::new("c.toml"))
            .expect_err("too many");
        assert!(err.to_string().contains("worker_threads"), "{err}");
    }

    #[test]
    fn durability_is_batched_unless_set_and_checked() {
        assert_eq!(Config::default().durability, Durability::Batched);
        let c = Config::from_toml("durability = \"commit\"", Path::new("x")).expect("valid");
        assert_eq!(c.durability, Durability::Commit);
        let err = Config::from_toml("durability = \"sometimes\"", Path::new("c.toml"))
            .expect_err("unknown value");
        let msg = err.to_string();
        assert!(msg.contains("batched") && msg.contains("commit"), "{msg}");
    }

    #[test]
    fn an_invalid_allowlist_entry_is_refused_by_name() {
        let c = Config::from_toml(
            "allowed_commands = [\"pytest -q <path>...\"]",
            Path::new("x"),
        )
        .expect("valid");
        assert_eq!(c.allowed_commands, ["pytest -q <path>..."]);
        for entry in ["pytest <file>", "pytest <path>... -q", ""] {
            let err = Config::from_toml(
                &format!("allowed_commands = [{entry:?}]"),
                Path::new("c.toml"),
            )
            .expect_err("invalid entry");
            let msg = err.to_string();
            assert!(
                msg.contains("allowed_commands") && msg.contains(&format!("{entry:?}")),
                "{msg}"
            );
        }
    }

    /// The shipped file lists the built-in allowlist as it is.
    #[test]
    fn shipped_config_lists_the_default_allowlist() {
        let doc = include_str!("../../packaging/clawd.toml").replace("\n# ", " ");
        for entry in claw_proto::allowlist::DEFAULT_ALLOWED {
            assert!(
                doc.contains(entry),
                "{entry} is not in packaging/clawd.toml"
            );
        }
    }

    #[test]
    fn the_store_is_sqlite_unless_set_and_postgres_needs_a_valid_url() {
        let c = Config::default();
        assert_eq!(c.store.backend, Backend::Sqlite);
        assert_eq!(c.store.max_connections, 10);
        let table = "[store]\nbackend = \"postgres\"\n\
                     database_url = \"postgres://claw:s3cret@db.example:5433/claw\"\n\
                     max_connections = 20\nstatement_timeout_secs = 0\n";
        let c = Config::from_toml(table, Path::new("x")).expect("valid");
        assert_eq!(c.store.backend, Backend::Postgres);
        assert_eq!(c.store.max_connections, 20);
        assert_eq!(c.store.statement_timeout_secs, 0);
        // Dotted keys are the same settings.
        let dotted = "store.backend = \"postgres\"\n\
                      store.database_url = \"postgres://claw:s3cret@db.example:5433/claw\"\n\
                      store.max_connections = 20\nstore.statement_timeout_secs = 0\n";
        assert_eq!(Config::from_toml(dotted, Path::new("x")).expect("valid"), c);
        let err = Config::from_toml("store.backend = \"postgres\"", Path::new("c.toml"))
            .expect_err("no url");
        assert!(err.to_string().contains("store.database_url"), "{err}");
        let err = Config::from_toml("store.backend = \"mysql\"", Path::new("c.toml"))
            .expect_err("unknown backend");
        assert!(err.to_string().contains("postgres"), "{err}");
        let err = Config::from_toml(
            "store.database_url = \"postgres://claw:s3cret@db:notaport/claw\"",
            Path::new("c.toml"),
        )
        .expect_err("bad url");
        let msg = err.to_string();
        assert!(msg.contains("store.database_url"), "{msg}");
        assert!(!msg.contains("s3cret"), "the password is shown: {msg}");
        let err = Config::from_toml("store.max_connections = 0", Path::new("c.toml"))
            .expect_err("no connections");
        assert!(err.to_string().contains("max_connections"), "{err}");
    }

    #[test]
    fn artifacts_are_files_unless_set_and_s3_needs_a_bucket() {
        let c = Config::from_toml("", Path::new("c.toml")).expect("parse");
        assert_eq!(c.artifacts.backend, ArtifactBackend::File);
        assert_eq!(c.artifacts.retries, 3);
        assert_eq!(c.artifacts.max_backoff_secs, 30);
        let table = "[artifacts]\nbackend = \"s3\"\nendpoint = \"http://127.0.0.1:3900\"\n\
                     bucket = \"claw\"\nregion = \"garage\"\n";
        let c = Config::from_toml(table, Path::new("c.toml")).expect("parse");
        assert_eq!(c.artifacts.backend, ArtifactBackend::S3);
        assert_eq!(c.artifacts.bucket.as_deref(), Some("claw"));
        let err = Config::from_toml("artifacts.backend = \"s3\"", Path::new("c.toml"))
            .expect_err("no bucket");
        assert!(err.to_string().contains("artifacts.bucket"), "{err}");
        let err = Config::from_toml(
            "artifacts.backend = \"s3\"\nartifacts.bucket = \"b\"\nartifacts.endpoint = \"s3.example\"",
            Path::new("c.toml"),
        )
        .expect_err("no scheme");
        assert!(err.to_string().contains("artifacts.endpoint"), "{err}");
        let err = Config::from_toml("artifacts.access_key_id = \"k\"", Path::new("c.toml"))
            .expect_err("half a key");
        assert!(err.to_string().contains("together"), "{err}");
        let c = Config::from_toml(
            "artifacts.access_key_id = \"k\"\nartifacts.secret_access_key = \"hidden\"",
            Path::new("c.toml"),
        )
        .expect("parse");
        assert!(!format!("{c:?}").contains("hidden"));
    }

    #[test]
    fn a_database_url_never_shows_its_password() {
        for (url, shown) in [
            (
                "postgres://claw:s3cret@db.example:5432/claw?sslmode=require",
                "postgres://claw@db.example:5432/claw?sslmode=require",
            ),
            (
                "postgresql://claw:p%40ss@db/claw?password=s3cret&application_name=x",
                "postgresql://claw@db/claw?application_name=x",
            ),
            ("postgres://claw@db/claw", "postgres://claw@db/claw"),
            ("postgres://db", "postgres://db"),
            (
                "host=db user=claw password='s3 cret' dbname=claw",
                "host=db user=claw dbname=claw",
            ),
            ("host=db password=s3cret", "host=db"),
        ] {
            let url = DatabaseUrl::new(url);
            assert_eq!(url.redacted(), shown);
            assert_eq!(url.to_string(), shown);
            assert!(!format!("{url:?}").contains("s3"), "{url:?}");
        }
        let config = Config {
            store: StoreConfig {
                database_url: Some(DatabaseUrl::new("postgres://claw:s3cret@db/claw")),
                ..StoreConfig::default()
            },
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn bad_pattern_and_half_tls_refused() {
        assert!(Config::from_toml("redact_patterns = [\"(\"]", Path::new("x")).is_err());
        assert!(Config::from_toml("tls_cert = \"/a\"", Path::new("x")).is_err());
    }
}
