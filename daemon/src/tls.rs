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
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub fingerprint_sha256: String,
    pub subject: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// A loaded certificate and its description.
pub struct LoadedTls {
    pub config: Arc<ServerConfig>,
    pub fingerprint_sha256: String,
    pub info: CertInfo,
}

fn describe(cert: &CertificateDer<'_>) -> CertInfo {
    let (subject, not_after) = match x509_parser::parse_x509_certificate(cert.as_ref()) {
        Ok((_, parsed)) => (
            parsed.subject().to_string(),
            parsed.validity().not_after.timestamp(),
        ),
        Err(_) => (String::from("(unreadable)"), 0),
    };
    CertInfo {
        fingerprint_sha256: fingerprint(cert),
        subject,
        not_after,
    }
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
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    let Some(first) = certs.first() else {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    };
    let info = describe(first);
    let fingerprint_sha256 = info.fingerprint_sha256.clone();
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
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
    let host = hostname();
    let mut names = vec!["localhost".to_owned()];
    if host != "localhost" && !host.is_empty() {
        names.push(host.clone());
    }
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    params.subject_alt_names.push(rcgen::SanType::IpAddress(
        std::net::Ipv4Addr::LOCALHOST.into(),
    ));
    params.subject_alt_names.push(rcgen::SanType::IpAddress(
        std::net::Ipv6Addr::LOCALHOST.into(),
    ));
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        if host.is_empty() {
            "localhost".to_owned()
        } else {
            host
        },
    );
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
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Write { path, source }
    };
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(write_err(cert_path))?;
    }
    fsutil::write_private(key_path, key.serialize_pem().as_bytes()).map_err(write_err(key_path))?;
    std::fs::write(cert_path, cert.pem()).map_err(write_err(cert_path))?;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}
