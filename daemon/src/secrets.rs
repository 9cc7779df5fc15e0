//! The HMAC secret (runner signatures), the auth secret (sessions), the
//! VAPID key (Web Push: the private P-256 scalar, hex) and the hosts secret
//! (makes enrolled hosts' keys):
//! from systemd credentials when `$CREDENTIALS_DIRECTORY` holds them, else from
//! `DATA_DIR/secrets/`, generated with mode 0600 on first start. Never logged.
//!
//! Both can be rotated while the daemon runs. After an HMAC rotation the old
//! secret keeps working for a grace period (kept in
//! `secrets/hmac-secret.previous` with its end, so a restart keeps it), so
//! running runners can be switched without failing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use claw_proto::signing::{self, SignedParts};

use crate::fsutil;

pub const HMAC_SECRET: &str = "hmac-secret";
pub const AUTH_SECRET: &str = "auth-secret";
pub const VAPID_KEY: &str = "vapid-key";
pub const HOSTS_SECRET: &str = "hosts-secret";
/// PostgreSQL's password (`[store] database_url` without one): only ever
/// a credential, never generated.
pub const DATABASE_PASSWORD: &str = "database-password";
/// The object store's access key (`[artifacts] backend = "s3"`): only ever
/// credentials, never generated.
pub const S3_ACCESS_KEY_ID: &str = "s3-access-key-id";
pub const S3_SECRET_ACCESS_KEY: &str = "s3-secret-access-key";
const PREVIOUS_SUFFIX: &str = ".previous";

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
    #[error("credential {path} is missing: the key's other half is there")]
    Missing { path: PathBuf },
    #[error("cannot create secret {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the {name} comes from systemd credentials ({path}): replace that file and restart clawd instead"
    )]
    FromCredentials { name: &'static str, path: PathBuf },
}

/// A secret that never prints itself.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Where a secret was read from.
#[derive(Debug, Clone)]
enum Source {
    Credential(PathBuf),
    File(PathBuf),
}

#[derive(Debug)]
struct Slot {
    current: Secret,
    source: Source,
}

/// The daemon's secrets, shared by every request and replaceable at run time.
#[derive(Debug)]
pub struct Secrets {
    data_dir: PathBuf,
    hmac: RwLock<Slot>,
    /// The HMAC secret before the last rotation and when it stops working
    /// (Unix seconds).
    hmac_previous: RwLock<Option<(Secret, i64)>>,
    auth: RwLock<Slot>,
    vapid: RwLock<Slot>,
    /// Makes each enrolled host's key; never leaves the gateway.
    hosts: Secret,
}

fn now_secs() -> i64 {
    crate::clock::now_ms() / 1000
}

impl Secrets {
    pub fn load(data_dir: &Path) -> Result<Arc<Self>, SecretError> {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let hmac = load_one(HMAC_SECRET, credentials.as_deref(), data_dir)?;
        let auth = load_one(AUTH_SECRET, credentials.as_deref(), data_dir)?;
        let vapid = load_one(VAPID_KEY, credentials.as_deref(), data_dir)?;
        let hosts = load_one(HOSTS_SECRET, credentials.as_deref(), data_dir)?.current;
        let previous = read_previous(
            &data_dir
                .join("secrets")
                .join(format!("{HMAC_SECRET}{PREVIOUS_SUFFIX}")),
        );
        Ok(Arc::new(Self {
            data_dir: data_dir.to_owned(),
            hmac: RwLock::new(hmac),
            hmac_previous: RwLock::new(previous),
            auth: RwLock::new(auth),
            vapid: RwLock::new(vapid),
            hosts,
        }))
    }

    /// A fingerprint of each secret (name → 16 hex digits of an HMAC under
    /// it): equal on two instances when their secrets are, and no help to
    /// anyone guessing them.
    pub fn fingerprints(&self) -> std::collections::BTreeMap<String, String> {
        use hmac::{Hmac, Mac};
        let print = |secret: &Secret| -> String {
            match Hmac::<sha2::Sha256>::new_from_slice(secret.expose()) {
                Ok(mut mac) => {
                    mac.update(b"claw: the same secrets on every instance");
                    hex::encode(&mac.finalize().into_bytes()[..8])
                }
                Err(_) => String::new(),
            }
        };
        [
            (HMAC_SECRET, self.hmac()),
            (AUTH_SECRET, self.auth()),
            (HOSTS_SECRET, self.hosts.clone()),
            (VAPID_KEY, self.vapid()),
        ]
        .into_iter()
        .map(|(name, secret)| (name.to_owned(), print(&secret)))
        .collect()
    }

    /// The current HMAC secret.
    pub fn hmac(&self) -> Secret {
        self.hmac
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .current
            .clone()
    }

    pub fn auth(&self) -> Secret {
        self.auth
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .current
            .clone()
    }

    /// The VAPID private key: 32 bytes, hex.
    pub fn vapid(&self) -> Secret {
        self.vapid
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .current
            .clone()
    }

    /// Checks a runner signature with the current secret, or with the
    /// previous one while its grace period lasts. `body_sha256`: the
    /// body's hex digest (`parts.body` is not read).
    pub fn verify_signature(
        &self,
        parts: &SignedParts<'_>,
        body_sha256: &str,
        signature: &str,
    ) -> bool {
        let check = |secret: &Secret| {
            signing::verify_with_digest(secret.expose(), parts, body_sha256, signature)
        };
        if check(&self.hmac()) {
            return true;
        }
        let previous = self.hmac_previous.read().unwrap_or_else(|e| e.into_inner());
        matches!(&*previous, Some((secret, until)) if now_secs() < *until && check(secret))
    }

    /// Generates a new HMAC secret and returns it; the old one works for
    /// `grace_secs` more.
    pub fn rotate_hmac(&self, grace_secs: u64) -> Result<(String, i64), SecretError> {
        let mut slot = self.hmac.write().unwrap_or_else(|e| e.into_inner());
        let path = writable(&slot.source, HMAC_SECRET)?;
        let new = fsutil::random_hex(32).map_err(|source| SecretError::Create {
            path: path.clone(),
            source,
        })?;
        let until = now_secs().saturating_add(i64::try_from(grace_secs).unwrap_or(i64::MAX));
        let previous_path = self
            .data_dir
            .join("secrets")
            .join(format!("{HMAC_SECRET}{PREVIOUS_SUFFIX}"));
        let old = String::from_utf8_lossy(slot.current.expose()).into_owned();
        fsutil::write_private(&previous_path, format!("{until}\n{old}\n").as_bytes()).map_err(
            |source| SecretError::Create {
                path: previous_path.clone(),
                source,
            },
        )?;
        fsutil::write_private(&path, format!("{new}\n").as_bytes()).map_err(|source| {
            SecretError::Create {
                path: path.clone(),
                source,
            }
        })?;
        *self
            .hmac_previous
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some((slot.current.clone(), until));
        slot.current = Secret(new.clone().into_bytes());
        Ok((new, until))
    }

    /// An enrolled host's key: HMAC-SHA256 of its id and salt under the
    /// hosts secret, hex. The database keeps only the salt.
    pub fn host_key(&self, host_id: &str, salt: &str) -> Secret {
        use hmac::{Hmac, Mac};
        let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(self.hosts.expose()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
        };
        mac.update(format!("claw host key\n{host_id}\n{salt}").as_bytes());
        Secret(hex::encode(mac.finalize().into_bytes()).into_bytes())
    }

    /// Generates a new auth secret: every session token stops matching.
    pub fn rotate_auth(&self) -> Result<(), SecretError> {
        replace(&self.auth, AUTH_SECRET)
    }

    /// Generates a new VAPID key: every browser subscription made for the
    /// old one stops being accepted by its push service.
    pub fn rotate_vapid(&self) -> Result<(), SecretError> {
        replace(&self.vapid, VAPID_KEY)
    }
}

/// PostgreSQL's password from the systemd credential
/// `claw_database-password` (or `database-password`), when
/// `$CREDENTIALS_DIRECTORY` has it.
pub fn database_password() -> Result<Option<Secret>, SecretError> {
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from) else {
        return Ok(None);
    };
    database_password_in(&dir)
}

fn database_password_in(dir: &Path) -> Result<Option<Secret>, SecretError> {
    credential_in(dir, DATABASE_PASSWORD)
}

/// The object store's key from the systemd credentials
/// `claw_s3-access-key-id` and `claw_s3-secret-access-key`, when
/// `$CREDENTIALS_DIRECTORY` has both; one without the other is an error.
pub fn s3_key() -> Result<Option<(Secret, Secret)>, SecretError> {
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from) else {
        return Ok(None);
    };
    s3_key_in(&dir)
}

fn s3_key_in(dir: &Path) -> Result<Option<(Secret, Secret)>, SecretError> {
    match (
        credential_in(dir, S3_ACCESS_KEY_ID)?,
        credential_in(dir, S3_SECRET_ACCESS_KEY)?,
    ) {
        (Some(id), Some(secret)) => Ok(Some((id, secret))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(SecretError::Missing {
            path: dir.join(format!("claw_{S3_SECRET_ACCESS_KEY}")),
        }),
        (None, Some(_)) => Err(SecretError::Missing {
            path: dir.join(format!("claw_{S3_ACCESS_KEY_ID}")),
        }),
    }
}

/// A credential `claw_NAME` (or `NAME`) taken as written but for the line
/// end a file has.
fn credential_in(dir: &Path, name: &str) -> Result<Option<Secret>, SecretError> {
    let Some(path) = [format!("claw_{name}"), name.to_owned()]
        .iter()
        .map(|file| dir.join(file))
        .find(|p| p.exists())
    else {
        return Ok(None);
    };
    let raw = std::fs::read_to_string(&path).map_err(|source| SecretError::Read {
        path: path.clone(),
        source,
    })?;
    // A password is taken as written but for the line end a file has.
    let value = raw.strip_suffix('\n').unwrap_or(&raw);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        return Err(SecretError::Empty { path });
    }
    Ok(Some(Secret(value.as_bytes().to_vec())))
}

/// A fresh random secret for `slot`, written to its file first.
fn replace(slot: &RwLock<Slot>, name: &'static str) -> Result<(), SecretError> {
    let mut slot = slot.write().unwrap_or_else(|e| e.into_inner());
    let path = writable(&slot.source, name)?;
    let new = fsutil::random_hex(32).map_err(|source| SecretError::Create {
        path: path.clone(),
        source,
    })?;
    fsutil::write_private(&path, format!("{new}\n").as_bytes())
        .map_err(|source| SecretError::Create { path, source })?;
    slot.current = Secret(new.into_bytes());
    Ok(())
}

fn writable(source: &Source, name: &'static str) -> Result<PathBuf, SecretError> {
    match source {
        Source::File(path) => Ok(path.clone()),
        Source::Credential(path) => Err(SecretError::FromCredentials {
            name,
            path: path.clone(),
        }),
    }
}

/// `UNTIL\nSECRET` as written by a rotation; ignored when unreadable or over.
fn read_previous(path: &Path) -> Option<(Secret, i64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let until: i64 = lines.next()?.trim().parse().ok()?;
    let secret = lines.next()?.trim();
    (until > now_secs() && !secret.is_empty()).then(|| (Secret(secret.as_bytes().to_vec()), until))
}

fn load_one(
    name: &'static str,
    credentials: Option<&Path>,
    data_dir: &Path,
) -> Result<Slot, SecretError> {
    // A credential wins; without one the state directory's file is used.
    // `claw_NAME` is how `LoadCredential=claw:/etc/claw/credentials` (a
    // directory) names them.
    if let Some(dir) = credentials
        && let Some(path) = [name.to_owned(), format!("claw_{name}")]
            .iter()
            .map(|file| dir.join(file))
            .find(|p| p.exists())
    {
        return Ok(Slot {
            current: read_secret(&path)?,
            source: Source::Credential(path),
        });
    }
    let path = data_dir.join("secrets").join(name);
    if path.exists() {
        return Ok(Slot {
            current: read_secret(&path)?,
            source: Source::File(path),
        });
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
    Ok(Slot {
        current: Secret(generated.into_bytes()),
        source: Source::File(path),
    })
}

fn read_secret(path: &Path) -> Result<Secret, SecretError> {
    let raw = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        path: path.to_owned(),
        source,
    })?;
    let value = signing::normalize_secret(&raw);
    if value.is_empty() {
        return Err(SecretError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(Secret(value.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_store_key_is_two_credentials_or_none() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(s3_key_in(dir.path()).expect("none").is_none());
        std::fs::write(dir.path().join("claw_s3-access-key-id"), "GK123\n").expect("write");
        let err = s3_key_in(dir.path()).expect_err("half a key");
        assert!(err.to_string().contains("s3-secret-access-key"), "{err}");
        std::fs::write(dir.path().join("claw_s3-secret-access-key"), "abc\n").expect("write");
        let (id, secret) = s3_key_in(dir.path()).expect("read").expect("found");
        assert_eq!(id.expose(), b"GK123");
        assert_eq!(secret.expose(), b"abc");
    }

    #[test]
    fn the_database_password_is_a_credential_taken_as_written() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(database_password_in(dir.path()).expect("none").is_none());
        std::fs::write(dir.path().join("claw_database-password"), " pa ss \n").expect("write");
        let secret = database_password_in(dir.path())
            .expect("read")
            .expect("found");
        assert_eq!(secret.expose(), b" pa ss ");
        assert_eq!(format!("{secret:?}"), "Secret(…)");
        std::fs::write(dir.path().join("claw_database-password"), "\n").expect("write");
        assert!(matches!(
            database_password_in(dir.path()),
            Err(SecretError::Empty { .. })
        ));
    }
}
