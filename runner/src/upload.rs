//! Artifact upload: one file as multipart/form-data, signed.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;

use crate::gateway::{Gateway, GatewayError};

/// How long an upload keeps trying through transient refusals: the
/// gateway's artifact store away (503), the gateway busy or restarting,
/// the network down.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// The longest wait between two tries.
const MOST_BETWEEN_TRIES: Duration = Duration::from_secs(15);

/// Uploads `path` under `name`, trying again for up to `patience` while
/// the refusals are transient; returns the artifact id.
pub async fn upload(
    gateway: &Gateway,
    path: &Path,
    name: &str,
    patience: Duration,
) -> Result<String, GatewayError> {
    let data = tokio::fs::read(path)
        .await
        .map_err(|e| GatewayError::Refused {
            status: 0,
            message: format!("cannot read {}: {e}", path.display()),
        })?;
    // Random, so that no file can contain it by accident.
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| GatewayError::Transient(e.to_string()))?;
    let boundary = format!("claw-boundary-{}", hex::encode(random));
    let safe_name = name.replace(['"', '\r', '\n'], "_");
    let mut body = Vec::with_capacity(data.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{safe_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let started = Instant::now();
    let mut wait = Duration::from_secs(1);
    let answer = loop {
        // Each try is signed anew (a new nonce), so the body goes again.
        match gateway
            .send(
                Method::POST,
                "/api/ingest/artifact",
                body.clone(),
                Some(&content_type),
            )
            .await
        {
            Err(GatewayError::Transient(e)) if started.elapsed() + wait < patience => {
                eprintln!(
                    "claw-runner: upload of {name} not taken ({e}): trying again in {} s",
                    wait.as_secs()
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MOST_BETWEEN_TRIES);
            }
            other => break other?,
        }
    };
    let value: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
    Ok(value["artifactId"].as_str().unwrap_or_default().to_owned())
}
