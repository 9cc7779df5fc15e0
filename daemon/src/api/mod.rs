//! The public HTTPS API: runner protocol, human API, browser WebSocket.
//! Handlers are thin: extract, call a service, render.

mod approvals;
mod extract;
mod hosts;
mod human;
mod idempotency;
mod notify;
mod runner;
mod runner_ws;
mod users;
mod web;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use crate::app::App;
use crate::server::PeerAddr;
use crate::service::ServiceError;

/// The router of the public listener; built once, it reads the settings in
/// effect for every request.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(web::serve))
        .route("/assets/{*file}", get(web::serve))
        .route("/sw.js", get(web::serve))
        .route("/api/health", get(human::health))
        .route("/api/status", get(human::status))
        // Runner protocol (signed).
        .route("/api/ingest/event", post(runner::ingest_event))
        .route("/api/ingest/events", post(runner::ingest_batch))
        .route("/api/ingest/artifact", post(runner::upload_artifact))
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
        .route("/api/runs/{id}/prompts", post(human::send_prompt))
        .route("/api/runs/{id}/interrupt", post(human::interrupt))
        .route("/api/runs/{id}/spec", get(runner::spec))
        .route("/api/runs/{id}/artifacts", get(human::list_artifacts))
        .route(
            "/api/artifacts/{id}",
            get(human::download_artifact).delete(human::delete_artifact),
        )
        .route("/api/approvals", get(approvals::list))
        .route("/api/approvals/{id}", get(approvals::show))
        .route("/api/approvals/{id}/decision", post(approvals::decide))
        .route(
            "/api/notify/channels",
            get(notify::channels).post(notify::add_channel),
        )
        .route(
            "/api/notify/channels/{id}",
            axum::routing::patch(notify::update_channel).delete(notify::remove_channel),
        )
        .route("/api/notify/status", get(notify::status))
        .route("/api/notify/push/key", get(notify::push_key))
        .route("/api/notify/push", axum::routing::post(notify::subscribe))
        .route("/api/hosts", get(hosts::list).post(hosts::add))
        .route("/api/hosts/enroll", post(hosts::enroll))
        .route("/api/hosts/{name}", delete(hosts::remove))
        .route("/api/hosts/{name}/revoke", post(hosts::revoke))
        .route("/api/host/ws", get(hosts::socket))
        .route("/api/audit", get(human::audit_list))
        .route("/api/audit/verify", get(human::audit_verify))
        .route("/ws", get(ws::upgrade))
        .route("/api/runner/ws", get(runner_ws::upgrade))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read by the extractors, each up to its own limit.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            idempotency::layer,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), gate))
        .with_state(app)
}

async fn not_found() -> ServiceError {
    ServiceError::not_found("no such endpoint")
}

pub async fn method_not_allowed() -> Response {
    let mut response = ServiceError::invalid("method not allowed on this endpoint").into_response();
    *response.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    response
}

pub fn client_ip(request: &Request) -> Option<std::net::IpAddr> {
    request.extensions().get::<PeerAddr>().map(|p| p.0.ip())
}

/// Behind a trusted proxy the client is the last address in
/// `X-Forwarded-For` that is not itself a trusted proxy: what every limit,
/// log and audit entry then names. From anyone else the header is ignored,
/// as a client may write anything in it.
fn forwarded_client(trusted: &[ipnet::IpNet], request: &mut Request) {
    let Some(peer) = request.extensions().get::<PeerAddr>().map(|p| p.0) else {
        return;
    };
    let trusts = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !trusts(&peer.ip()) {
        return;
    }
    let hops: Vec<std::net::IpAddr> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    if let Some(client) = hops.iter().rev().find(|ip| !trusts(ip)).or(hops.first()) {
        request
            .extensions_mut()
            .insert(PeerAddr(std::net::SocketAddr::new(*client, peer.port())));
    }
}

/// A request to a route of the runner protocol that carries a signature.
/// Those routes authenticate by signature alone (a session cookie means
/// nothing to them), and the one route that also serves browsers
/// (`GET /api/runs/{id}/commands`) takes the signed path only when a
/// signature is there.
fn runner_protocol(request: &Request) -> bool {
    use axum::http::Method;
    if !request
        .headers()
        .contains_key(claw_proto::signing::HEADER_SIGNATURE)
    {
        return false;
    }
    let path = request.uri().path();
    let method = request.method();
    match path.strip_prefix("/api/") {
        Some("ingest/event" | "ingest/events" | "ingest/artifact") => method == Method::POST,
        Some("runner/ws" | "host/ws") => method == Method::GET,
        Some(rest) => {
            let mut parts = rest.split('/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("runs"), Some(_), Some("commands" | "spec"), None) => method == Method::GET,
                (Some("runs"), Some(_), Some("commands"), Some(_)) => {
                    method == Method::POST && parts.next() == Some("ack") && parts.next().is_none()
                }
                _ => false,
            }
        }
        None => false,
    }
}

/// Every request passes here: the per-address limit and the same-origin
/// check on the way in, the security headers on the way out (refusals get
/// them too). One middleware rather than three, as each layer boxes the
/// request's future and clones the service behind it: about 3 µs a request,
/// seen in profiles of single-event ingest.
async fn gate(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let settings = app.settings();
    forwarded_client(&settings.trusted_proxies, &mut request);
    let runner = runner_protocol(&request);
    let ip = client_ip(&request);
    let refusal = rate_limited(&settings, &request, ip, runner).or_else(|| {
        (!runner)
            .then(|| cross_site(app.facts.tls, &request))
            .flatten()
    });
    let mut response = match refusal {
        Some(refusal) => refusal,
        None => next.run(request).await,
    };
    // A runner request whose signature (or anything else about who sent
    // it) was refused counts against its address; past the limit the
    // refusal says so. Signed requests from the same address (runners
    // behind one NAT) still pass: checking a signature costs a hash.
    if runner
        && let Some(ip) = ip
        && matches!(
            response.status(),
            axum::http::StatusCode::UNAUTHORIZED | axum::http::StatusCode::FORBIDDEN
        )
        && !settings.runner_refusals.hit(&ip)
    {
        response = too_many_requests();
    }
    add_security_headers(app.facts.tls, response.headers_mut());
    response
}

fn too_many_requests() -> Response {
    ServiceError::throttled("too many requests: try again in a minute", 60).into_response()
}

/// Human and anonymous API requests count against the per-address limit,
/// except the web UI's static files. Runner requests are not limited here:
/// those whose signature verifies never count (a busy agent sends far more
/// than 100 a minute), refused ones count in [`gate`].
fn rate_limited(
    settings: &crate::app::Settings,
    request: &Request,
    ip: Option<std::net::IpAddr>,
    runner: bool,
) -> Option<Response> {
    let ip = ip?;
    if runner {
        return None;
    }
    if !web::is_asset_path(request.uri().path()) && !settings.requests.hit(&ip) {
        return Some(too_many_requests());
    }
    None
}

/// CSRF defence on top of the `SameSite=Strict` session cookie: a browser
/// names the page that sent a request in `Origin` (and `Sec-Fetch-Site`);
/// anything that changes state, and every WebSocket, must come from this
/// gateway's own pages. Clients that are not browsers send neither header
/// and authenticate with a bearer token instead; runners, with a signature
/// on routes that accept nothing else, never get here.
fn cross_site(tls: bool, request: &Request) -> Option<Response> {
    let method = request.method();
    let changes_state = !(method == axum::http::Method::GET
        || method == axum::http::Method::HEAD
        || method == axum::http::Method::OPTIONS);
    let websocket = request.uri().path() == "/ws";
    if (changes_state || websocket) && !from_own_page(tls, request) {
        tracing::warn!(
            PEER = %client_ip(request).map(|ip| ip.to_string()).unwrap_or_default(),
            "cross-site request refused"
        );
        return Some(
            ServiceError::forbidden(
                "cross-site request refused: the Origin header does not name this gateway",
            )
            .into_response(),
        );
    }
    None
}

fn from_own_page(tls: bool, request: &Request) -> bool {
    let headers = request.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = header("origin") {
        // With TLS off clawd sits behind a TLS-terminating proxy, whose
        // pages browsers name as https.
        let schemes: &[&str] = if tls { &["https"] } else { &["https", "http"] };
        let host = header("host")
            .or_else(|| request.uri().authority().map(|a| a.as_str()))
            .unwrap_or_default();
        return !host.is_empty()
            && schemes.iter().any(|scheme| {
                origin
                    .strip_prefix(scheme)
                    .and_then(|rest| rest.strip_prefix("://"))
                    .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
            });
    }
    // No Origin: a browser's own navigation or a non-browser client.
    header("sec-fetch-site").is_none_or(|site| site == "same-origin" || site == "none")
}

/// The web UI loads scripts, styles and images only from this gateway and
/// runs no inline script; no page may frame it. Its one worker is the
/// service worker at `/sw.js`, for Web Push.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    worker-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
    font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

fn add_security_headers(tls: bool, headers: &mut axum::http::HeaderMap) {
    if tls {
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
    // A response with its own, stricter policy (an artifact download)
    // keeps it.
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_from(peer: &str, forwarded: &[&str]) -> Request {
        let mut builder = axum::http::Request::builder().uri("/api/health");
        for f in forwarded {
            builder = builder.header("x-forwarded-for", *f);
        }
        let mut request = builder.body(axum::body::Body::empty()).expect("request");
        request
            .extensions_mut()
            .insert(PeerAddr(peer.parse().expect("peer")));
        request
    }

    #[test]
    fn the_client_behind_a_trusted_proxy_is_the_last_untrusted_hop() {
        let trusted = crate::config::proxy_networks(&["10.0.0.0/24".into(), "127.0.0.1".into()])
            .expect("networks");
        let ip = |peer: &str, forwarded: &[&str]| {
            let mut request = request_from(peer, forwarded);
            forwarded_client(&trusted, &mut request);
            client_ip(&request).map(|ip| ip.to_string())
        };
        // The proxy appends who it saw: a client's own entries come first.
        assert_eq!(
            ip("127.0.0.1:4000", &["1.2.3.4, 198.51.100.7"]).as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(
            ip("127.0.0.1:4000", &["198.51.100.7", "10.0.0.9"]).as_deref(),
            Some("198.51.100.7")
        );
        // Only proxies on the way: the first of them.
        assert_eq!(ip("10.0.0.2:1", &["10.0.0.9"]).as_deref(), Some("10.0.0.9"));
        // No header, or garbage: the proxy itself.
        assert_eq!(
            ip("10.0.0.2:1", &["not an address"]).as_deref(),
            Some("10.0.0.2")
        );
        // Anyone else's header is not believed.
        assert_eq!(
            ip("203.0.113.5:1", &["198.51.100.7"]).as_deref(),
            Some("203.0.113.5")
        );
        assert!(crate::config::proxy_networks(&["10.0.0.0/33".into()]).is_err());
        assert!(crate::config::proxy_networks(&["proxy.example".into()]).is_err());
    }
}
