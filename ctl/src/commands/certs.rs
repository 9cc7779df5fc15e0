//! `clawctl certs`: show, install, self-signed.

use std::path::Path;

use claw_proto::control::{CertView, InstallCertRequest, SelfSignedRequest};

use super::show;
use crate::cli::CertsCommand;
use crate::client::Client;
use crate::error::CtlError;
use crate::output::{Text, opt};

pub async fn run(client: &Client, cmd: CertsCommand, json: bool) -> Result<(), CtlError> {
    let cert: CertView = match cmd {
        CertsCommand::Show => client.get("/v1/certs").await?,
        CertsCommand::Install { cert, key } => {
            let request = InstallCertRequest {
                cert_pem: read(&cert)?,
                key_pem: read(&key)?,
            };
            client.post("/v1/certs/install", &request).await?
        }
        CertsCommand::SelfSigned { names } => {
            client
                .post("/v1/certs/self-signed", &SelfSignedRequest { names })
                .await?
        }
    };
    show(json, &cert, render)
}

fn read(path: &Path) -> Result<String, CtlError> {
    std::fs::read_to_string(path)
        .map_err(|e| CtlError::Input(format!("cannot read {}: {e}", path.display())))
}

fn render(c: &CertView) -> String {
    let mut out = Text::new();
    if !c.enabled {
        out.line("TLS is off (tls = false in clawd.toml)");
        return out.into_string();
    }
    out.line(format_args!("Subject:     {}", opt(c.subject.as_deref())));
    out.line(format_args!("Names:       {}", c.names.join(", ")));
    out.line(format_args!("Issuer:      {}", opt(c.issuer.as_deref())));
    out.line(format_args!(
        "Valid:       {} to {}",
        opt(c.not_before.as_deref()),
        opt(c.not_after.as_deref())
    ));
    out.line(format_args!(
        "Days left:   {}{}",
        opt(c.days_left),
        if c.expires_soon { " (renew soon)" } else { "" }
    ));
    out.line(format_args!(
        "SHA-256:     {}",
        opt(c.fingerprint_sha256.as_deref())
    ));
    out.line(format_args!(
        "Files:       {} {}",
        opt(c.cert_path.as_deref()),
        opt(c.key_path.as_deref())
    ));
    out.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_read_as_before() {
        let cert = CertView {
            enabled: true,
            fingerprint_sha256: Some("AA:BB".into()),
            subject: Some("CN=gw".into()),
            issuer: Some("CN=gw".into()),
            names: vec!["gw".into(), "::1".into()],
            not_before: Some("a".into()),
            not_after: Some("b".into()),
            days_left: Some(5),
            expires_soon: true,
            cert_path: Some("/c".into()),
            key_path: None,
        };
        assert_eq!(
            render(&cert),
            "Subject:     CN=gw\n\
             Names:       gw, ::1\n\
             Issuer:      CN=gw\n\
             Valid:       a to b\n\
             Days left:   5 (renew soon)\n\
             SHA-256:     AA:BB\n\
             Files:       /c -\n"
        );
        let off = CertView {
            enabled: false,
            ..cert
        };
        assert_eq!(render(&off), "TLS is off (tls = false in clawd.toml)\n");
    }
}
