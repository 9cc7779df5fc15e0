//! Artifact upload: one file as multipart/form-data, signed.

use std::path::Path;

use reqwest::Method;

use crate::gateway::{Gateway, GatewayError};

/// Uploads `path` under `name`; returns the artifact id.
pub async fn upload(gateway: &Gateway, path: &Path, name: &str) -> Result<String, GatewayError> {
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
    let answer = gateway
        .send(
            Method::POST,
            "/api/ingest/artifact",
            body,
            Some(&format!("multipart/form-data; boundary={boundary}")),
        )
        .await?;
    let value: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
    Ok(value["artifactId"].as_str().unwrap_or_default().to_owned())
}
