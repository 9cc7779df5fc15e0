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
            runner_lost_secs: 120,
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
        if let Err(e) = claw_proto::Redactor::new(&self.redact_patterns) {
            return Err(invalid(&e.to_string()));
        }
        if let Err(e) = claw_proto::Allowlist::new(&self.allowed_commands) {
            return Err(invalid(&format!("allowed_commands: {e}")));
        }
        Ok(())
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
            if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
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
            ..Config::default()
        };
        let table = toml::Table::try_from(&all).expect("serialise");
        let mut fields: Vec<String> = table.keys().cloned().collect();
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
    fn bad_pattern_and_half_tls_refused() {
        assert!(Config::from_toml("redact_patterns = [\"(\"]", Path::new("x")).is_err());
        assert!(Config::from_toml("tls_cert = \"/a\"", Path::new("x")).is_err());
    }
}
