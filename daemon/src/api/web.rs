//! The web UI: static files built into the binary, so `clawd` needs no
//! front-end files on disk, no CDN and no Node at run time.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::service::ServiceError;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../../web/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("/", "index.html", "text/html; charset=utf-8"),
    // The service worker, at the root so that its scope is the whole app:
    // it shows Web Push notifications and opens the page one points to.
    asset!("/sw.js", "sw.js", JS),
    asset!("/assets/app.css", "app.css", "text/css; charset=utf-8"),
    asset!("/assets/app.js", "app.js", JS),
    asset!("/assets/api.js", "api.js", JS),
    asset!("/assets/dom.js", "dom.js", JS),
    asset!("/assets/socket.js", "socket.js", JS),
    asset!("/assets/logview.js", "logview.js", JS),
    asset!("/assets/ansi.js", "ansi.js", JS),
    asset!("/assets/html.js", "html.js", JS),
    asset!("/assets/diff.js", "diff.js", JS),
    asset!("/assets/conversation.js", "conversation.js", JS),
    asset!("/assets/composer.js", "composer.js", JS),
    asset!("/assets/approvals.js", "approvals.js", JS),
    asset!("/assets/notify.js", "notify.js", JS),
    asset!("/assets/pages/auth.js", "pages/auth.js", JS),
    asset!("/assets/pages/runs.js", "pages/runs.js", JS),
    asset!("/assets/pages/run.js", "pages/run.js", JS),
    asset!("/assets/pages/admin.js", "pages/admin.js", JS),
    asset!("/assets/pages/approvals.js", "pages/approvals.js", JS),
    asset!("/assets/pages/notify.js", "pages/notify.js", JS),
    asset!("/assets/pages/hosts.js", "pages/hosts.js", JS),
    asset!("/assets/pages/session.js", "pages/session.js", JS),
    asset!("/assets/icon.svg", "icon.svg", "image/svg+xml"),
    // What a phone's "Add to Home Screen" installs; on iPhone and iPad,
    // Web Push works only for an app installed so.
    asset!(
        "/assets/manifest.webmanifest",
        "manifest.webmanifest",
        "application/manifest+json"
    ),
];

/// One strong validator per asset, computed once: browsers revalidate
/// (`no-cache`) and get 304 until the binary changes.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.body))[..32]))
            .collect()
    })
}

pub fn is_asset_path(path: &str) -> bool {
    path == "/" || path == "/sw.js" || path.starts_with("/assets/")
}

pub async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.path == uri.path()) else {
        return ServiceError::not_found("no such file").into_response();
    };
    let asset = &ASSETS[index];
    let Some(etag) = etags().get(index) else {
        return ServiceError::internal().into_response();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_the_pages_import_is_served() {
        // A module imported but not listed here would break the UI only in
        // a browser; catch it at `cargo test`.
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).unwrap_or_default();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(spec) = line.split('\'').nth(1) else {
                    continue;
                };
                let base = asset.path.rsplit_once('/').map_or("", |(dir, _)| dir);
                let mut parts: Vec<&str> = base.split('/').collect();
                for piece in spec.split('/') {
                    match piece {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        other => parts.push(other),
                    }
                }
                let target = parts.join("/");
                assert!(
                    ASSETS.iter().any(|a| a.path == target),
                    "{} imports {spec} ({target}), which is not served",
                    asset.path
                );
            }
        }
    }
}
