//! `POST /v1/secrets/rotate`: a new HMAC secret (the old one keeps working
//! for a grace period) or a new auth secret (every session ends).

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, Ctx};
use crate::api::ApiError;
use crate::api::error::{body, parse_json};
use crate::secrets::SecretError;
use crate::store::SessionSelector;

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Which {
    Hmac,
    Auth,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rotate {
    secret: Which,
    #[serde(default)]
    grace_secs: Option<u64>,
}

/// The default time the old HMAC secret keeps working.
const DEFAULT_GRACE_SECS: u64 = 3600;

fn refused(e: SecretError) -> ApiError {
    match e {
        SecretError::FromCredentials { .. } => ApiError::conflict(e.to_string()),
        other => {
            tracing::error!(error = %other, "secret rotation failed");
            ApiError::internal()
        }
    }
}

pub async fn rotate(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: Rotate = parse_json(&body(raw)?)?;
    match request.secret {
        Which::Hmac => {
            let grace = request.grace_secs.unwrap_or(DEFAULT_GRACE_SECS);
            let (secret, until) = ctx.core.secrets.rotate_hmac(grace).map_err(refused)?;
            let until = crate::store::iso(until.saturating_mul(1000));
            ctx.store
                .audit(super::commands::audit(
                    caller,
                    "secrets.rotate",
                    Some("hmac-secret"),
                    Some(format!("old secret valid until {until}")),
                ))
                .await?;
            Ok(Json(
                json!({ "ok": true, "hmacSecret": secret, "previousValidUntil": until }),
            ))
        }
        Which::Auth => {
            ctx.core.secrets.rotate_auth().map_err(refused)?;
            let ended = ctx.store.revoke_sessions(SessionSelector::All).await?;
            ctx.hub.sessions_changed();
            ctx.store
                .audit(super::commands::audit(
                    caller,
                    "secrets.rotate",
                    Some("auth-secret"),
                    Some(format!("{ended} sessions ended")),
                ))
                .await?;
            Ok(Json(json!({ "ok": true, "sessionsEnded": ended })))
        }
    }
}
