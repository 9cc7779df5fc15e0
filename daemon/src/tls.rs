//! TLS for the public listener: the configured certificate, or a self-signed
//! one generated on first start (365 days, key mode 0600).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::fsutil;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error(
        "only one of {cert} and {key} exists: restore the other or remove both to generate a self-signed pair"
    )]
    HalfPair { cert: PathBuf, key: PathBuf },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate and key do not make a usable TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where the certificate and key live.
#[derive(Debug, Clone)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Generated when missing (the defaults under the data directory only).
    pub generate_if_missing: bool,
}

/// What operators want to see about the certificate in use.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertInfo {
    pub fingerprint_sha256: String,
    pub subject: String,
    pub issuer: String,
    /// DNS names and addresses the certificate is valid for.
    pub names: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

/// Certificates closer than this to expiry are warned about.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

impl CertInfo {
    pub fn days_left(&self) -> i64 {
        (self.not_after - crate::clock::now_ms() / 1000).div_euclid(86_400)
    }

    /// Logs a warning when the certificate is about to expire.
    pub fn warn_if_expiring(&self) {
        let days = self.days_left();
        if days < EXPIRY_WARNING_DAYS {
            tracing::warn!(
                days_left = days,
                subject = %self.subject,
                "the TLS certificate expires in {days} days: renew it (clawctl certs install)"
            );
        }
    }
}

/// A loaded certificate and its description.
/// The TLS configuration new handshakes use; replaced on reload and by
/// `clawctl certs`.
pub type SharedTlsConfig = Arc<std::sync::RwLock<Arc<ServerConfig>>>;

pub struct LoadedTls {
    pub config: Arc<ServerConfig>,
    pub fingerprint_sha256: String,
    pub info: CertInfo,
}

fn describe(cert: &CertificateDer<'_>) -> CertInfo {
    let mut info = CertInfo {
        fingerprint_sha256: fingerprint(cert),
        subject: String::from("(unreadable)"),
        issuer: String::from("(unreadable)"),
        names: Vec::new(),
        not_before: 0,
        not_after: 0,
    };
    if let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) {
        info.subject = parsed.subject().to_string();
        info.issuer = parsed.issuer().to_string();
        info.not_before = parsed.validity().not_before.timestamp();
        info.not_after = parsed.validity().not_after.timestamp();
        if let Ok(Some(san)) = parsed.subject_alternative_name() {
            use x509_parser::extensions::GeneralName;
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => info.names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        let addr = match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes)
                                .ok()
                                .map(|b| std::net::IpAddr::from(b).to_string()),
                            16 => <[u8; 16]>::try_from(*bytes)
                                .ok()
                                .map(|b| std::net::IpAddr::from(b).to_string()),
                            _ => None,
                        };
                        info.names.extend(addr);
                    }
                    _ => {}
                }
            }
        }
    }
    info
}

pub fn load_or_generate(paths: &CertPaths) -> Result<LoadedTls, TlsError> {
    let (cert_exists, key_exists) = (paths.cert.exists(), paths.key.exists());
    if paths.generate_if_missing && !cert_exists && !key_exists {
        generate_self_signed(&paths.cert, &paths.key)?;
        let loaded = load(&paths.cert, &paths.key)?;
        tracing::info!(
            cert = %paths.cert.display(),
            fingerprint = %loaded.fingerprint_sha256,
            "generated a self-signed certificate valid for 365 days"
        );
        return Ok(loaded);
    }
    if cert_exists != key_exists {
        return Err(TlsError::HalfPair {
            cert: paths.cert.clone(),
            key: paths.key.clone(),
        });
    }
    load(&paths.cert, &paths.key)
}

pub fn load(cert_path: &Path, key_path: &Path) -> Result<LoadedTls, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    from_pem(&read(cert_path)?, cert_path, &read(key_path)?, key_path)
}

/// Parses a PEM chain and key and builds the server configuration, which
/// fails when the key does not belong to the first certificate.
pub fn from_pem(
    cert_pem: &[u8],
    cert_path: &Path,
    key_pem: &[u8],
    key_path: &Path,
) -> Result<LoadedTls, TlsError> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .filter_map(Result::ok)
        .collect();
    let Some(first) = certs.first() else {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    };
    let info = describe(first);
    let fingerprint_sha256 = info.fingerprint_sha256.clone();
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::NoKey {
            path: key_path.to_owned(),
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(LoadedTls {
        config: Arc::new(config),
        fingerprint_sha256,
        info,
    })
}

/// Checks a new chain and key, then writes them where clawd reads them: both
/// to temporary names first, then renamed (key 0600), so a reader never sees
/// half a file.
pub fn install(paths: &CertPaths, cert_pem: &[u8], key_pem: &[u8]) -> Result<LoadedTls, TlsError> {
    let loaded = from_pem(cert_pem, &paths.cert, key_pem, &paths.key)?;
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Write { path, source }
    };
    // server.crt.new and server.key.new: distinct even for equal stems.
    let staged = |path: &Path| {
        let mut name = path.as_os_str().to_owned();
        name.push(".new");
        std::path::PathBuf::from(name)
    };
    if let Some(dir) = paths.cert.parent() {
        std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    }
    fsutil::write_private(&staged(&paths.key), key_pem).map_err(write_err(&paths.key))?;
    std::fs::write(staged(&paths.cert), cert_pem).map_err(write_err(&paths.cert))?;
    std::fs::rename(staged(&paths.key), &paths.key).map_err(write_err(&paths.key))?;
    std::fs::rename(staged(&paths.cert), &paths.cert).map_err(write_err(&paths.cert))?;
    Ok(loaded)
}

/// A new self-signed certificate for `names` (365 days), as PEM
/// (certificate, key).
pub fn self_signed_pem(names: &[String]) -> Result<(String, String), TlsError> {
    let host = hostname();
    let mut names: Vec<String> = if names.is_empty() {
        let mut default = vec!["localhost".to_owned()];
        if !host.is_empty() && host != "localhost" {
            default.push(host.clone());
        }
        default
    } else {
        names.to_vec()
    };
    names.dedup();
    let common_name = names
        .first()
        .cloned()
        .unwrap_or_else(|| "localhost".to_owned());
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    params.subject_alt_names.push(rcgen::SanType::IpAddress(
        std::net::Ipv4Addr::LOCALHOST.into(),
    ));
    params.subject_alt_names.push(rcgen::SanType::IpAddress(
        std::net::Ipv6Addr::LOCALHOST.into(),
    ));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "claw (self-signed)");
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(60)).into();
    params.not_after = (now + std::time::Duration::from_secs(365 * 24 * 60 * 60)).into();
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Colon-separated upper-case SHA-256 of a DER certificate, as
/// `openssl x509 -fingerprint -sha256` prints it.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn generate_self_signed(cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let (cert, key) = self_signed_pem(&[])?;
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Write { path, source }
    };
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(write_err(cert_path))?;
    }
    fsutil::write_private(key_path, key.as_bytes()).map_err(write_err(key_path))?;
    std::fs::write(cert_path, cert).map_err(write_err(cert_path))?;
    Ok(())
}

fn hostname() -> String {
    fsutil::hostname().unwrap_or_default()
}
