//! The public HTTPS API: runner protocol, human API, browser WebSocket.

pub mod error;
mod human;
mod runner;
mod runner_ws;
mod session;
mod users;
mod web;
mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use claw_proto::{Allowlist, Redactor};
use tokio::sync::watch;

pub use error::ApiError;
pub use human::{AuditQuery, parse_time};
pub use ws::{follow, replay};

use crate::artifacts::ArtifactStore;
use crate::config::Config;
use crate::hub::Hub;
use crate::ratelimit::WindowLimiter;
use crate::secrets::Secrets;
use crate::store::Store;

/// The peer address of a connection, put on each request by the server.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// What lives as long as the daemon, whatever the configuration.
#[derive(Clone)]
pub struct Core {
    pub data_dir: PathBuf,
    pub store: Store,
    pub hub: Arc<Hub>,
    pub secrets: Arc<Secrets>,
    /// Present while no user exists.
    pub setup_token: Arc<Mutex<Option<String>>>,
    /// Turns true when the daemon shuts down (WebSockets close on it).
    pub shutdown: watch::Receiver<bool>,
}

/// The state handlers see: the core plus everything derived from one
/// configuration. A reload builds a new one; connections opened before it
/// finish with the old.
pub struct AppState {
    pub config: Config,
    pub data_dir: PathBuf,
    pub store: Store,
    pub hub: Arc<Hub>,
    pub secrets: Arc<Secrets>,
    pub redactor: Redactor,
    pub allowlist: Allowlist,
    pub artifacts: ArtifactStore,
    pub setup_token: Arc<Mutex<Option<String>>>,
    pub shutdown: watch::Receiver<bool>,
    pub requests: WindowLimiter<std::net::IpAddr>,
    pub login_failures_ip: WindowLimiter<std::net::IpAddr>,
    pub login_failures_user: WindowLimiter<String>,
    pub tls: bool,
}

pub type Shared = Arc<AppState>;

const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

impl AppState {
    pub fn new(core: &Core, config: Config, redactor: Redactor, tls: bool) -> Self {
        // Config::validate refused invalid entries; were one to get here,
        // nothing would be allowed.
        let allowlist = Allowlist::with_defaults(&config.allowed_commands).unwrap_or_default();
        let artifacts =
            ArtifactStore::new(core.data_dir.join("artifacts"), &config.artifact_extensions);
        Self {
            requests: WindowLimiter::new(config.rate_limit_per_minute, Duration::from_secs(60)),
            // Per address a little more than per user: several people may
            // share one address.
            login_failures_ip: WindowLimiter::new(
                config.login_max_failures.saturating_mul(2),
                LOGIN_WINDOW,
            ),
            login_failures_user: WindowLimiter::new(config.login_max_failures, LOGIN_WINDOW),
            config,
            data_dir: core.data_dir.clone(),
            store: core.store.clone(),
            hub: Arc::clone(&core.hub),
            secrets: core.secrets.clone(),
            redactor,
            allowlist,
            artifacts,
            setup_token: Arc::clone(&core.setup_token),
            shutdown: core.shutdown.clone(),
            tls,
        }
    }
}

pub fn router(state: Shared) -> Router {
    let body_limit = state.config.body_limit_bytes;
    // Multipart framing comes on top of the file itself.
    let artifact_limit = state.config.artifact_limit_bytes + 64 * 1024;
    Router::new()
        .route("/", get(web::serve))
        .route("/assets/{*file}", get(web::serve))
        .route("/api/health", get(human::health))
        .route("/api/status", get(human::status))
        // Runner protocol (signed).
        .route("/api/ingest/event", post(runner::ingest_event))
        .route("/api/ingest/events", post(runner::ingest_batch))
        .route(
            "/api/ingest/artifact",
            post(runner::upload_artifact).layer(DefaultBodyLimit::max(artifact_limit)),
        )
        .route(
            "/api/runs/{id}/commands/{cmd}/ack",
            post(runner::ack_command),
        )
        // Served to the runner when signed, to a browser with a session.
        .route("/api/runs/{id}/commands", get(runner::commands))
        // Human API.
        .route("/api/auth/status", get(users::status))
        .route("/api/auth/setup", post(users::setup))
        .route("/api/auth/login", post(users::login))
        .route("/api/auth/logout", post(users::logout))
        .route("/api/auth/me", get(users::me))
        .route("/api/auth/refresh", post(users::refresh))
        .route("/api/auth/totp/enroll", post(users::totp_enroll))
        .route("/api/auth/totp/confirm", post(users::totp_confirm))
        .route("/api/auth/totp", delete(users::totp_remove))
        .route("/api/auth/users", get(users::list).post(users::create))
        .route(
            "/api/auth/users/{id}",
            axum::routing::patch(users::update).delete(users::remove),
        )
        .route("/api/runs", get(human::list_runs).post(human::create_run))
        .route(
            "/api/runs/{id}",
            get(human::get_run).delete(human::delete_run),
        )
        .route("/api/runs/{id}/events", get(human::events))
        .route("/api/runs/{id}/command", post(human::send_command))
        .route("/api/runs/{id}/stop", post(human::stop_run))
        .route("/api/runs/{id}/artifacts", get(human::list_artifacts))
        .route(
            "/api/artifacts/{id}",
            get(human::download_artifact).delete(human::delete_artifact),
        )
        .route("/api/audit", get(human::audit_list))
        .route("/api/audit/verify", get(human::audit_verify))
        .route("/ws", get(ws::upgrade))
        .route("/api/runner/ws", get(runner_ws::upgrade))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

pub fn client_ip(request: &Request) -> Option<std::net::IpAddr> {
    request.extensions().get::<PeerAddr>().map(|p| p.0.ip())
}

fn is_signed(request: &Request) -> bool {
    request
        .headers()
        .contains_key(claw_proto::signing::HEADER_SIGNATURE)
}

/// Every request passes here: the per-address limit and the same-origin
/// check on the way in, the security headers on the way out (refusals get
/// them too). One middleware rather than three, as each layer boxes the
/// request's future and clones the service behind it: about 3 µs a request,
/// seen in profiles of single-event ingest.
async fn gate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let signed = is_signed(&request);
    let refusal =
        rate_limited(&state, &request, signed).or_else(|| cross_site(&state, &request, signed));
    let mut response = match refusal {
        Some(refusal) => refusal,
        None => next.run(request).await,
    };
    add_security_headers(&state, response.headers_mut());
    response
}

/// Human and anonymous API requests count against the per-address limit;
/// signed runner requests do not (they are authenticated before any work is
/// done, and a busy agent sends far more than 100 a minute), nor do the web
/// UI's static files.
fn rate_limited(state: &AppState, request: &Request, signed: bool) -> Option<Response> {
    if !signed
        && !web::is_asset_path(request.uri().path())
        && let Some(ip) = client_ip(request)
        && !state.requests.hit(&ip)
    {
        let mut response = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too many requests: try again in a minute",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return Some(response);
    }
    None
}

/// CSRF defence on top of the `SameSite=Strict` session cookie: a browser
/// names the page that sent a request in `Origin` (and `Sec-Fetch-Site`);
/// anything that changes state, and every WebSocket, must come from this
/// gateway's own pages. Clients that are not browsers send neither header
/// and authenticate with a bearer token or a signature instead.
fn cross_site(state: &AppState, request: &Request, signed: bool) -> Option<Response> {
    let method = request.method();
    let changes_state = !(method == axum::http::Method::GET
        || method == axum::http::Method::HEAD
        || method == axum::http::Method::OPTIONS);
    let websocket = request.uri().path() == "/ws";
    if (changes_state || websocket) && !signed && !from_own_page(state, request) {
        tracing::warn!(
            PEER = %client_ip(request).map(|ip| ip.to_string()).unwrap_or_default(),
            "cross-site request refused"
        );
        return Some(
            ApiError::forbidden(
                "cross-site request refused: the Origin header does not name this gateway",
            )
            .into_response(),
        );
    }
    None
}

fn from_own_page(state: &AppState, request: &Request) -> bool {
    let headers = request.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = header("origin") {
        let scheme = if state.tls { "https" } else { "http" };
        let host = header("host")
            .or_else(|| request.uri().authority().map(|a| a.as_str()))
            .unwrap_or_default();
        return !host.is_empty()
            && origin
                .strip_prefix(scheme)
                .and_then(|rest| rest.strip_prefix("://"))
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host));
    }
    // No Origin: a browser's own navigation or a non-browser client.
    header("sec-fetch-site").is_none_or(|site| site == "same-origin" || site == "none")
}

/// The web UI loads scripts, styles and images only from this gateway and
/// runs no inline script; no page may frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn add_security_headers(state: &AppState, headers: &mut axum::http::HeaderMap) {
    if state.tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}
