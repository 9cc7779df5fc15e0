//! The one TLS client configuration of the runner, for HTTPS and the
//! WebSocket alike: a pinned certificate, a CA file, or the public roots.

use std::sync::Arc;

use crate::config::Config;
use crate::gateway::GatewayError;

pub fn client_config(config: &Config) -> Result<rustls::ClientConfig, GatewayError> {
    trusting(
        config.ca_cert.as_deref(),
        config.cert_fingerprint.as_deref(),
    )
}

/// Trusting the certificate with SHA-256 `fingerprint`, else the CA file,
/// else the public roots.
pub fn trusting(
    ca_cert: Option<&std::path::Path>,
    fingerprint: Option<&str>,
) -> Result<rustls::ClientConfig, GatewayError> {
    if let Some(pin) = fingerprint {
        let sha256 = crate::pinning::parse_fingerprint(pin).ok_or_else(|| {
            GatewayError::CaCert(
                "CLAW_CERT_FINGERPRINT".to_owned(),
                "not a SHA-256 fingerprint (64 hex digits, colons allowed)".to_owned(),
            )
        })?;
        return crate::pinning::client_config(sha256)
            .map_err(|e| GatewayError::CaCert("CLAW_CERT_FINGERPRINT".to_owned(), e.to_string()));
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_cert {
        Some(path) => {
            let name = path.display().to_string();
            let pem = std::fs::read(path)
                .map_err(|e| GatewayError::CaCert(name.clone(), e.to_string()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| GatewayError::CaCert(name.clone(), e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| GatewayError::CaCert(name.clone(), e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(GatewayError::CaCert(
                    name,
                    "no PEM certificate in it".to_owned(),
                ));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| GatewayError::CaCert("TLS".to_owned(), e.to_string()))
}
