//! The HMAC secret (runner signatures) and the auth secret (sessions):
//! from systemd credentials when `$CREDENTIALS_DIRECTORY` holds them, else from
//! `DATA_DIR/secrets/`, generated with mode 0600 on first start. Never logged.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::fsutil;

pub const HMAC_SECRET: &str = "hmac-secret";
pub const AUTH_SECRET: &str = "auth-secret";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret {path} is empty")]
    Empty { path: PathBuf },
    #[error("cannot create secret {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A secret that never prints itself.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[derive(Debug, Clone)]
pub struct Secrets {
    pub hmac: Secret,
    pub auth: Secret,
}

impl Secrets {
    pub fn load(data_dir: &Path) -> Result<Self, SecretError> {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Ok(Self {
            hmac: load_one(HMAC_SECRET, credentials.as_deref(), data_dir)?,
            auth: load_one(AUTH_SECRET, credentials.as_deref(), data_dir)?,
        })
    }
}

fn load_one(
    name: &'static str,
    credentials: Option<&Path>,
    data_dir: &Path,
) -> Result<Secret, SecretError> {
    // A credential wins; without one the state directory's file is used.
    // `claw_NAME` is how `LoadCredential=claw:/etc/claw/credentials` (a
    // directory) names them.
    if let Some(dir) = credentials
        && let Some(path) = [name.to_owned(), format!("claw_{name}")]
            .iter()
            .map(|file| dir.join(file))
            .find(|p| p.exists())
    {
        return read_secret(&path);
    }
    let path = data_dir.join("secrets").join(name);
    if path.exists() {
        return read_secret(&path);
    }
    let generated = fsutil::random_hex(32).map_err(|source| SecretError::Create {
        path: path.clone(),
        source,
    })?;
    fsutil::create_private_dir(&data_dir.join("secrets"))
        .and_then(|()| fsutil::write_private(&path, format!("{generated}\n").as_bytes()))
        .map_err(|source| SecretError::Create {
            path: path.clone(),
            source,
        })?;
    tracing::info!(path = %path.display(), "generated new {name}");
    Ok(Secret(generated.into_bytes()))
}

fn read_secret(path: &Path) -> Result<Secret, SecretError> {
    let raw = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        path: path.to_owned(),
        source,
    })?;
    let value = claw_proto::signing::normalize_secret(&raw);
    if value.is_empty() {
        return Err(SecretError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(Secret(value.as_bytes().to_vec()))
}
