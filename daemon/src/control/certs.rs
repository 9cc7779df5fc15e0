//! Certificates: show the one in use, install a new chain and key (checked,
//! written atomically, used by new handshakes at once), or make a new
//! self-signed one.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, Ctx};
use crate::api::ApiError;
use crate::api::error::{body, parse_json, parse_json_or_default};
use crate::tls::{self, CertPaths, LoadedTls};

fn paths(ctx: &Ctx) -> Result<CertPaths, ApiError> {
    ctx.cert_paths
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| {
            ApiError::conflict("TLS is off (tls = false in clawd.toml): no certificate to manage")
        })
}

fn view(ctx: &Ctx) -> Value {
    let paths = ctx
        .cert_paths
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match ctx.tls.read().unwrap_or_else(|e| e.into_inner()).clone() {
        Some(info) => {
            let days = info.days_left();
            let mut value = json!(info);
            value["notBefore"] = json!(crate::store::iso(info.not_before.saturating_mul(1000)));
            value["notAfter"] = json!(crate::store::iso(info.not_after.saturating_mul(1000)));
            value["daysLeft"] = json!(days);
            value["expiresSoon"] = json!(days < tls::EXPIRY_WARNING_DAYS);
            value["certPath"] = json!(paths.as_ref().map(|p| p.cert.clone()));
            value["keyPath"] = json!(paths.as_ref().map(|p| p.key.clone()));
            value
        }
        None => json!({ "enabled": false }),
    }
}

pub async fn show(State(ctx): State<Ctx>) -> Json<Value> {
    Json(view(&ctx))
}

/// Makes `loaded` the certificate of every new handshake.
fn activate(ctx: &Ctx, loaded: LoadedTls) {
    if let Some(config) = &ctx.tls_config {
        *config.write().unwrap_or_else(|e| e.into_inner()) = loaded.config;
    }
    loaded.info.warn_if_expiring();
    tracing::info!(fingerprint = %loaded.info.fingerprint_sha256, subject = %loaded.info.subject, "TLS certificate installed");
    *ctx.tls.write().unwrap_or_else(|e| e.into_inner()) = Some(loaded.info);
}

async fn install_pem(
    ctx: &Ctx,
    caller: Caller,
    action: &str,
    cert: Vec<u8>,
    key: Vec<u8>,
) -> Result<Json<Value>, ApiError> {
    let paths = paths(ctx)?;
    let target = paths.cert.display().to_string();
    let loaded = tokio::task::spawn_blocking(move || tls::install(&paths, &cert, &key))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            ApiError::bad_request(format!("certificate not installed, the old one stays: {e}"))
        })?;
    let fingerprint = loaded.info.fingerprint_sha256.clone();
    activate(ctx, loaded);
    ctx.store
        .audit(super::commands::audit(
            caller,
            action,
            Some(&target),
            Some(format!("fingerprint {fingerprint}")),
        ))
        .await?;
    Ok(Json(view(ctx)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Install {
    cert_pem: String,
    key_pem: String,
}

pub async fn install(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: Install = parse_json(&body(raw)?)?;
    install_pem(
        &ctx,
        caller,
        "certs.install",
        request.cert_pem.into_bytes(),
        request.key_pem.into_bytes(),
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SelfSigned {
    #[serde(default)]
    names: Vec<String>,
}

pub async fn self_signed(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: SelfSigned = parse_json_or_default(&body(raw)?)?;
    if let Some(bad) = request.names.iter().find(|n| {
        n.is_empty() || n.len() > 253 || n.chars().any(|c| c.is_whitespace() || c.is_control())
    }) {
        return Err(ApiError::bad_request(format!("{bad:?} is not a host name")));
    }
    let (cert, key) =
        tls::self_signed_pem(&request.names).map_err(|e| ApiError::bad_request(e.to_string()))?;
    install_pem(
        &ctx,
        caller,
        "certs.self-signed",
        cert.into_bytes(),
        key.into_bytes(),
    )
    .await
}
