//! Runner configuration: `~/.config/claw/runner.toml`, overridden by `CLAW_*`
//! environment variables (the unprefixed names, such as `GATEWAY_URL`, as
//! fallbacks), overridden by flags.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: allowed_commands: {source}")]
    Allowlist {
        path: PathBuf,
        #[source]
        source: claw_proto::allowlist::AllowlistError,
    },
    #[error("{0}")]
    Missing(String),
    #[error("{path}: {message}")]
    Identity { path: PathBuf, message: String },
}

/// The file's keys; every one optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    gateway_url: Option<String>,
    hmac_secret: Option<String>,
    hmac_secret_file: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
    cert_fingerprint: Option<String>,
    agent_command: Option<String>,
    claude_program: Option<String>,
    tool_output_max_bytes: Option<usize>,
    allowed_commands: Option<Vec<String>>,
    redact_patterns: Option<Vec<String>>,
    command_timeout_secs: Option<u64>,
    command_output_limit: Option<usize>,
    stop_grace_secs: Option<u64>,
    poll_secs: Option<u64>,
    state_dir: Option<PathBuf>,
    workspaces: Option<Vec<PathBuf>>,
    session_limit: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub gateway_url: String,
    pub hmac_secret: String,
    pub ca_cert: Option<PathBuf>,
    /// SHA-256 of the gateway's certificate to accept instead of a CA.
    pub cert_fingerprint: Option<String>,
    pub agent_command: String,
    /// The Claude Code CLI that `start --agent claude` drives.
    pub claude_program: String,
    /// How much of a tool's output goes into its event; the whole output
    /// is uploaded as an artifact.
    pub tool_output_max_bytes: usize,
    /// The built-in allowlist plus the file's `allowed_commands`, checked:
    /// an invalid entry refuses the configuration.
    pub allowlist: claw_proto::Allowlist,
    pub redact_patterns: Vec<String>,
    pub command_timeout_secs: u64,
    pub command_output_limit: usize,
    pub stop_grace_secs: u64,
    /// How often queued commands are fetched when nothing is pushed.
    pub poll_secs: u64,
    pub state_dir: PathBuf,
    /// Set when this host is enrolled and its key signs (`host.toml` in
    /// the state directory) instead of the gateway-wide HMAC secret.
    pub host_id: Option<String>,
    /// That host's name, as enrolment gave it.
    pub host_name: Option<String>,
    /// The directories `serve` starts sessions in; nothing else.
    pub workspaces: Vec<PathBuf>,
    /// Sessions `serve` runs at once at most.
    pub session_limit: u32,
}

/// Values given on the command line.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub gateway_url: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// `$XDG_CONFIG_HOME/claw/runner.toml`, or
/// `$XDG_CONFIG_HOME/claw-runner/config.toml` when only that one exists.
pub fn default_file() -> PathBuf {
    let config =
        std::env::var_os("XDG_CONFIG_HOME").map_or_else(|| home().join(".config"), PathBuf::from);
    let usual = config.join("claw/runner.toml");
    let other = config.join("claw-runner/config.toml");
    if !usual.exists() && other.exists() {
        other
    } else {
        usual
    }
}

/// The state directory as `enroll` needs it before there is a full
/// configuration: `CLAW_STATE_DIR`, else the config file's `state_dir`,
/// else the default.
pub fn state_dir(overrides: &Overrides) -> PathBuf {
    if let Some(dir) = env(&["CLAW_STATE_DIR"]) {
        return PathBuf::from(dir);
    }
    let path = overrides.config.clone().unwrap_or_else(default_file);
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| toml::from_str::<FileConfig>(&text).ok())
        .and_then(|file| file.state_dir)
        .unwrap_or_else(default_state_dir)
}

pub fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map_or_else(|| home().join(".local/state"), PathBuf::from)
        .join("claw-runner")
}

fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| claw_proto::signing::normalize_secret(&s).to_owned())
        .map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })
}

impl Config {
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let path = overrides.config.clone().unwrap_or_else(default_file);
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                path: path.clone(),
                message: e.message().to_owned(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && overrides.config.is_none() => {
                FileConfig::default()
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let state_dir = env(&["CLAW_STATE_DIR"])
            .map(PathBuf::from)
            .or(file.state_dir)
            .unwrap_or_else(default_state_dir);
        let secret = match env(&["CLAW_HMAC_SECRET", "HMAC_SECRET"]) {
            Some(s) => Some(s),
            None => match env(&["CLAW_HMAC_SECRET_FILE"])
                .map(PathBuf::from)
                .or(file.hmac_secret_file)
            {
                Some(path) => Some(read_secret_file(&path)?),
                None => file.hmac_secret,
            },
        };
        let secret = secret
            .map(|s| claw_proto::signing::normalize_secret(&s).to_owned())
            .filter(|s| !s.is_empty());
        // Without the gateway-wide secret, an enrolled host signs with its key.
        let identity = match secret {
            Some(_) => None,
            None => crate::host::Identity::load(&state_dir)?,
        };
        let gateway_url = overrides
            .gateway_url
            .clone()
            .or_else(|| env(&["CLAW_GATEWAY_URL", "GATEWAY_URL"]))
            .or(file.gateway_url)
            .or_else(|| identity.as_ref().map(|i| i.gateway_url.clone()))
            .ok_or_else(|| {
                ConfigError::Missing(
                    "no gateway: set CLAW_GATEWAY_URL (e.g. https://gateway.example:3100) or gateway_url in runner.toml".to_owned(),
                )
            })?;
        let (hmac_secret, host_id) = match (secret, &identity) {
            (Some(secret), _) => (secret, None),
            (None, Some(identity)) => (identity.key.clone(), Some(identity.host_id.clone())),
            (None, None) => {
                return Err(ConfigError::Missing(
                    "no HMAC secret and this host is not enrolled: enrol it (claw-runner enroll --gateway URL --token T), \
                     or set CLAW_HMAC_SECRET or CLAW_HMAC_SECRET_FILE (the gateway's hmac-secret)"
                        .to_owned(),
                ));
            }
        };
        Ok(Self {
            gateway_url: gateway_url.trim_end_matches('/').to_owned(),
            hmac_secret,
            ca_cert: overrides
                .ca_cert
                .clone()
                .or_else(|| env(&["CLAW_CA_CERT"]).map(PathBuf::from))
                .or(file.ca_cert)
                .or_else(|| identity.as_ref().and_then(|i| i.ca_cert.clone())),
            cert_fingerprint: env(&["CLAW_CERT_FINGERPRINT"])
                .or(file.cert_fingerprint)
                .or_else(|| identity.as_ref().and_then(|i| i.cert_fingerprint.clone())),
            agent_command: env(&["CLAW_AGENT_COMMAND", "CLAUDE_COMMAND"])
                .or(file.agent_command)
                .unwrap_or_else(|| "claude".to_owned()),
            claude_program: env(&["CLAW_CLAUDE_PROGRAM"])
                .or(file.claude_program)
                .unwrap_or_else(|| "claude".to_owned()),
            tool_output_max_bytes: file.tool_output_max_bytes.unwrap_or(64 * 1024),
            allowlist: claw_proto::Allowlist::with_defaults(
                &file.allowed_commands.unwrap_or_default(),
            )
            .map_err(|source| ConfigError::Allowlist {
                path: path.clone(),
                source,
            })?,
            redact_patterns: file.redact_patterns.unwrap_or_default(),
            command_timeout_secs: file.command_timeout_secs.unwrap_or(120),
            command_output_limit: file.command_output_limit.unwrap_or(64 * 1024),
            stop_grace_secs: file.stop_grace_secs.unwrap_or(10),
            poll_secs: file.poll_secs.unwrap_or(2),
            state_dir,
            host_name: host_id
                .as_ref()
                .and(identity.as_ref())
                .map(|i| i.name.clone()),
            host_id,
            workspaces: file.workspaces.unwrap_or_default(),
            session_limit: file.session_limit.unwrap_or(4),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_is_a_valid_configuration() {
        let file: FileConfig =
            toml::from_str(include_str!("../../packaging/runner.toml")).expect("valid");
        assert_eq!(
            file.state_dir.as_deref(),
            Some(Path::new("/var/lib/claw-runner"))
        );
        assert!(
            file.workspaces.is_none(),
            "no workspace is listed by default"
        );
    }
}
