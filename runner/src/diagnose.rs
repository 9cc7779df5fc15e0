//! `info` and `test-connection`: what the runner would use, and whether the
//! gateway accepts it, each step reported plainly.

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use reqwest::Method;

use crate::config::Config;
use crate::gateway::{Gateway, GatewayError};

/// The effective configuration, the HMAC secret masked.
pub fn info(config: &Config, file: &Path) -> String {
    let mut out = String::new();
    let source = if file.exists() {
        file.display().to_string()
    } else {
        format!("{} (not present)", file.display())
    };
    let _ = writeln!(out, "config file:       {source}");
    let _ = writeln!(out, "gateway:           {}", config.gateway_url);
    let _ = writeln!(
        out,
        "hmac secret:       set ({} characters, not shown)",
        config.hmac_secret.len()
    );
    let trust = match (&config.cert_fingerprint, &config.ca_cert) {
        (Some(pin), _) => format!("the certificate with SHA-256 {pin}"),
        (None, Some(ca)) => ca.display().to_string(),
        (None, None) => "system roots".to_owned(),
    };
    let _ = writeln!(out, "trusted:           {trust}");
    let _ = writeln!(out, "agent command:     {}", config.agent_command);
    let allowed = config.allowlist.entries();
    let _ = writeln!(out, "allowed commands:  {}", allowed.join(", "));
    let _ = writeln!(out, "extra redactions:  {}", config.redact_patterns.len());
    let _ = writeln!(
        out,
        "command timeout:   {} s, output kept up to {} bytes",
        config.command_timeout_secs, config.command_output_limit
    );
    let _ = writeln!(
        out,
        "stop grace:        {} s before SIGKILL",
        config.stop_grace_secs
    );
    let _ = writeln!(
        out,
        "spool:             {}",
        config.state_dir.join("runs").display()
    );
    out
}

/// Checks TLS, the clock difference and the signature; exit 1 on any failure.
pub async fn test_connection(config: &Config) -> anyhow::Result<i32> {
    let mut ok = true;
    // A run that cannot exist: a valid signature gets "unknown run" (404),
    // an invalid one "invalid signature" (401).
    let gateway = Gateway::new(
        config,
        "00000000-0000-0000-0000-000000000000",
        "test-connection",
    )?;
    let client = gateway.http();
    let health = client
        .get(format!("{}/api/health", config.gateway_url))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let timestamp = match health {
        Ok(resp) if resp.status().is_success() => {
            println!(
                "TLS:        ok, {} answered and its certificate is trusted",
                config.gateway_url
            );
            resp.json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["timestamp"].as_str().map(str::to_owned))
        }
        Ok(resp) => {
            println!("TLS:        ok, but /api/health answered {}", resp.status());
            ok = false;
            None
        }
        Err(e) => {
            // The cause is at the bottom of the chain (e.g. UnknownIssuer).
            let mut chain = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                chain.push_str(": ");
                chain.push_str(&cause.to_string());
                source = cause.source();
            }
            let hint = if chain.contains("certificate") || chain.contains("UnknownIssuer") {
                " (a self-signed gateway needs --ca-cert FILE or CLAW_CA_CERT with its certificate)"
            } else {
                ""
            };
            println!("TLS:        FAILED: {chain}{hint}");
            return Ok(1);
        }
    };
    match timestamp
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
    {
        Some(theirs) => {
            let now = std::time::SystemTime::now();
            let (ahead, diff) = match theirs.duration_since(now) {
                Ok(d) => ("ahead of", d),
                Err(e) => ("behind", e.duration()),
            };
            let secs = diff.as_secs();
            if secs > 300 {
                ok = false;
                println!(
                    "Clock:      FAILED: the gateway is {secs} s {ahead} this host (allowed: 300 s): fix the time (timedatectl)"
                );
            } else {
                println!(
                    "Clock:      ok, the gateway is {secs} s {ahead} this host (allowed: 300 s)"
                );
            }
        }
        None => {
            ok = false;
            println!("Clock:      unknown (the gateway did not say its time)");
        }
    }
    let probe = "/api/runs/00000000-0000-0000-0000-000000000000/commands";
    match gateway.send(Method::GET, probe, Vec::new(), None).await {
        Err(GatewayError::Refused { status: 404, .. }) | Ok(_) => {
            println!("Signature:  ok, the gateway accepts this HMAC secret");
        }
        Err(GatewayError::Refused { status, message }) => {
            ok = false;
            println!(
                "Signature:  FAILED ({status}): {message}; check CLAW_HMAC_SECRET against the gateway's hmac-secret"
            );
        }
        Err(e) => {
            ok = false;
            println!("Signature:  FAILED: {e}");
        }
    }
    Ok(if ok { 0 } else { 1 })
}
