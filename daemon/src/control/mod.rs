//! The privileged control API on the Unix socket (HTTP/1.1 + JSON under
//! `/v1/`). Callers are identified by their peer credentials: root, the
//! daemon's own user and members of `claw-admin` are served; anyone else is
//! refused with 403 on every request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use claw_proto::wire::RunStatus;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Gid, Group, Uid, User};
use serde_json::{Value, json};

use crate::api::ApiError;

mod backup;
mod certs;
mod commands;
mod polkit;
mod prune;
mod reconcile;
mod secrets;
use crate::hub::Hub;
use crate::store::Store;

/// The group whose members may use the control socket.
pub const ADMIN_GROUP: &str = "claw-admin";

/// Who is on the other end of a control connection.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

/// What the control API reports on and acts upon.
pub struct ControlContext {
    pub core: crate::api::Core,
    /// `run_retention_days`, kept current across reloads.
    pub retention_days: std::sync::atomic::AtomicU32,
    /// Asked to stop by `POST /v1/shutdown` (restore uses it).
    pub shutdown: Arc<tokio::sync::Notify>,
    /// `stale_run_hours`, kept current across reloads.
    pub stale_run_hours: std::sync::atomic::AtomicU32,
    pub store: Store,
    pub hub: Arc<Hub>,
    pub started: Instant,
    pub https_address: String,
    pub control_address: String,
    pub activated: bool,
    pub tls: std::sync::RwLock<Option<crate::tls::CertInfo>>,
    /// The configuration new TLS handshakes use (None with `tls = false`).
    pub tls_config: Option<crate::server::TlsConfig>,
    /// The configuration file in effect, included in backups.
    pub config_path: Option<std::path::PathBuf>,
    /// Where the certificate and key are read from and installed to.
    pub cert_paths: std::sync::RwLock<Option<crate::tls::CertPaths>>,
    pub database_path: std::path::PathBuf,
}

type Ctx = Arc<ControlContext>;

/// The router for one connection: the API for an authorised caller, a
/// refusal for anyone else. Root, the daemon's user and `claw-admin` are
/// let in at once; anyone else is asked of polkit when it is there.
pub async fn router_for(context: &Ctx, stream: &tokio::net::UnixStream) -> Router {
    let caller = match getsockopt(stream, PeerCredentials) {
        Ok(c) => Caller {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        },
        Err(e) => return refuse(format!("cannot identify the caller: {e}")),
    };
    let admitted = if in_admin_group(caller) {
        true
    } else {
        match polkit::authorised(caller).await {
            Ok(allowed) => allowed,
            Err(e) => {
                tracing::debug!(uid = caller.uid, error = %e, "polkit not asked");
                false
            }
        }
    };
    if admitted {
        tracing::debug!(uid = caller.uid, pid = caller.pid, "control connection");
        return api(Arc::clone(context)).layer(axum::Extension(caller));
    }
    tracing::warn!(
        uid = caller.uid,
        pid = caller.pid,
        "control connection refused"
    );
    refuse(format!(
        "uid {} may not use the claw control socket: run as root or as a member of the \
         {ADMIN_GROUP} group (sudo usermod -aG {ADMIN_GROUP} USER, then log in again), \
         or allow {} in polkit",
        caller.uid,
        polkit::ACTION_ID
    ))
}

fn refuse(message: String) -> Router {
    Router::new().fallback(move || {
        let message = message.clone();
        async move { ApiError::new(StatusCode::FORBIDDEN, message) }
    })
}

fn in_admin_group(caller: Caller) -> bool {
    if caller.uid == 0 || caller.uid == Uid::effective().as_raw() {
        return true;
    }
    let Ok(Some(group)) = Group::from_name(ADMIN_GROUP) else {
        return false;
    };
    if caller.gid == group.gid.as_raw() {
        return true;
    }
    match User::from_uid(Uid::from_raw(caller.uid)) {
        Ok(Some(user)) => {
            user.gid == group.gid || group.mem.contains(&user.name) || in_group(&user, group.gid)
        }
        _ => false,
    }
}

/// Supplementary groups from the group database (covers NSS sources whose
/// member lists are not enumerated in `Group::mem`).
fn in_group(user: &User, gid: Gid) -> bool {
    let Ok(name) = std::ffi::CString::new(user.name.as_str()) else {
        return false;
    };
    nix::unistd::getgrouplist(&name, user.gid).is_ok_and(|groups| groups.contains(&gid))
}

fn api(context: Ctx) -> Router {
    use axum::routing::{delete, post};
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .route(
            "/v1/runs",
            get(commands::list_runs).post(commands::create_run),
        )
        .route(
            "/v1/runs/{id}",
            get(commands::show_run).delete(commands::delete_run),
        )
        .route("/v1/runs/{id}/events", get(commands::run_events))
        .route("/v1/runs/{id}/stop", post(commands::stop_run))
        .route(
            "/v1/users",
            get(commands::list_users).post(commands::add_user),
        )
        .route("/v1/users/{name}", delete(commands::delete_user))
        .route("/v1/users/{name}/password", post(commands::set_password))
        .route("/v1/users/{name}/role", post(commands::set_role))
        .route("/v1/users/{name}/reset-totp", post(commands::reset_totp))
        .route(
            "/v1/sessions",
            get(commands::list_sessions).delete(commands::revoke_sessions),
        )
        .route("/v1/sessions/{id}", delete(commands::revoke_session))
        .route("/v1/audit", get(commands::audit_list))
        .route("/v1/audit/verify", get(commands::audit_verify))
        .route("/v1/prune", post(prune::prune))
        .route("/v1/reconcile", post(reconcile::reconcile))
        .route("/v1/shutdown", post(shutdown))
        .route("/v1/backup", post(backup::create))
        .route("/v1/secrets/rotate", post(secrets::rotate))
        .route("/v1/certs", get(certs::show))
        .route("/v1/certs/install", post(certs::install))
        .route("/v1/certs/self-signed", post(certs::self_signed))
        .route("/v1/db/status", get(db_status))
        .route("/v1/db/check", get(db_check))
        .fallback(|| async { ApiError::not_found("no such control endpoint (see clawctl(1))") })
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .with_state(context)
}

async fn health(State(ctx): State<Ctx>) -> Result<Json<Value>, ApiError> {
    // Proves the writer and the database answer, not only this task.
    ctx.store.ping().await?;
    Ok(Json(json!({ "status": "ok" })))
}

/// Stops the daemon the way SIGTERM does (for `clawctl restore --stop`).
async fn shutdown(
    State(ctx): State<Ctx>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    ctx.store
        .audit(commands::audit(caller, "daemon.stop", None, None))
        .await?;
    ctx.shutdown.notify_one();
    Ok(Json(json!({ "ok": true })))
}

async fn db_status(State(ctx): State<Ctx>) -> Result<Json<Value>, ApiError> {
    let status = ctx.store.db_status().await?;
    let mut value = json!(status);
    value["path"] = json!(ctx.database_path);
    value["sizeBytes"] = json!(file_size(&ctx.database_path, ""));
    value["walBytes"] = json!(file_size(&ctx.database_path, "-wal"));
    Ok(Json(value))
}

async fn db_check(State(ctx): State<Ctx>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(ctx.store.db_check().await?)))
}

fn file_size(db: &std::path::Path, suffix: &str) -> u64 {
    let mut path = db.as_os_str().to_owned();
    path.push(suffix);
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// When a recorded job last ran, with its summary; null when never.
async fn last(store: &Store, key: &'static str) -> Result<Value, ApiError> {
    Ok(match store.meta(key).await? {
        Some((summary, at)) => json!({ "at": crate::store::iso(at), "summary": summary }),
        None => Value::Null,
    })
}

async fn status(State(ctx): State<Ctx>) -> Result<Json<Value>, ApiError> {
    let counts = ctx.store.run_counts().await?;
    let mut runs = serde_json::Map::new();
    for state in RunStatus::ALL {
        let n = counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n);
        runs.insert(state.as_str().to_owned(), json!(n));
    }
    let cert = ctx.tls.read().unwrap_or_else(|e| e.into_inner()).clone();
    let tls = match cert {
        Some(c) => {
            let days = c.days_left();
            json!({
                "enabled": true,
                "fingerprintSha256": c.fingerprint_sha256,
                "subject": c.subject,
                "notAfter": crate::store::iso(c.not_after.saturating_mul(1000)),
                "expiresInDays": days,
                "expiresSoon": days < crate::tls::EXPIRY_WARNING_DAYS,
            })
        }
        None => json!({ "enabled": false }),
    };
    let db_size = file_size(&ctx.database_path, "") + file_size(&ctx.database_path, "-wal");
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSecs": ctx.started.elapsed().as_secs(),
        "listeners": {
            "https": ctx.https_address,
            "control": ctx.control_address,
            "socketActivated": ctx.activated,
        },
        "tls": tls,
        "database": {
            "path": ctx.database_path,
            "sizeBytes": db_size,
            "schemaVersion": Store::schema_version(),
        },
        "runs": runs,
        "lastPrune": last(&ctx.store, "last_prune").await?,
        "lastBackup": last(&ctx.store, "last_backup").await?,
        "connections": {
            "runners": ctx.hub.runners_connected(),
            "clients": ctx.hub.clients(),
            "subscriptions": ctx.hub.subscriptions(),
            "followedRuns": ctx.hub.followed_runs(),
        },
    })))
}
