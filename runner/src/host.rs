//! This host's membership of a gateway: `claw-runner enroll` spends a
//! one-time token for the host's own key and keeps it in
//! `STATE_DIR/host.toml` (0600). Runs this host starts are signed with it,
//! so the gateway-wide HMAC secret never has to be here.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use claw_proto::hosts::{EnrollReply, EnrollRequest};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

pub const IDENTITY_FILE: &str = "host.toml";

/// What enrolment gave this host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub gateway_url: String,
    pub host_id: String,
    pub name: String,
    /// Signs this host's requests; never printed.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_fingerprint: Option<String>,
}

impl Identity {
    /// The identity in `state_dir`, if this host is enrolled.
    pub fn load(state_dir: &Path) -> Result<Option<Self>, ConfigError> {
        let path = state_dir.join(IDENTITY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let identity: Self = toml::from_str(&text).map_err(|e| ConfigError::Identity {
            path: path.clone(),
            message: format!("{}: enrol this host again", e.message()),
        })?;
        Ok(Some(identity))
    }

    fn save(&self, state_dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(state_dir)?;
        std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700))?;
        let path = state_dir.join(IDENTITY_FILE);
        let text = toml::to_string(self).map_err(std::io::Error::other)?;
        write_private(&path, text.as_bytes())?;
        Ok(path)
    }
}

/// Writes `bytes` to `path` whole or not at all, readable by its owner
/// only (a key, a token).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

/// What `enroll` was given.
pub struct Enrolment {
    pub gateway_url: String,
    pub token: String,
    pub ca_cert: Option<PathBuf>,
    pub cert_fingerprint: Option<String>,
    pub state_dir: PathBuf,
}

/// Spends the token for this host's key and keeps it; exit code 0.
pub async fn enroll(request: Enrolment) -> anyhow::Result<i32> {
    let gateway_url = request.gateway_url.trim_end_matches('/').to_owned();
    let tls = crate::tls::trusting(
        request.ca_cert.as_deref(),
        request.cert_fingerprint.as_deref(),
    )?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .use_preconfigured_tls(tls)
        .build()?;
    let response = http
        .post(format!("{gateway_url}/api/hosts/enroll"))
        .json(&EnrollRequest {
            token: request.token.trim().to_owned(),
        })
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the gateway at {gateway_url}: {e}"))?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| status.to_string());
        anyhow::bail!("the gateway refused the enrolment: {message}");
    }
    let reply: EnrollReply = serde_json::from_slice(&body)
        .map_err(|e| anyhow::anyhow!("the gateway's answer is not an enrolment: {e}"))?;
    let identity = Identity {
        gateway_url,
        host_id: reply.host_id,
        name: reply.name,
        key: reply.key,
        ca_cert: request
            .ca_cert
            .map(|p| std::path::absolute(&p).unwrap_or(p)),
        cert_fingerprint: request.cert_fingerprint,
    };
    let path = identity.save(&request.state_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot keep the host key in {}: {e}",
            request.state_dir.display()
        )
    })?;
    println!(
        "enrolled as host {} ({}); its key is in {} (0600)",
        identity.name,
        identity.host_id,
        path.display()
    );
    println!(
        "next: list workspaces in the runner's config, then start the service: \
         systemctl enable --now claw-runner (or claw-runner serve)"
    );
    Ok(0)
}
