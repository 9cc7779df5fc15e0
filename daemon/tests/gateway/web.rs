//! The web UI as served by clawd: assets from the binary, a strict
//! Content-Security-Policy, the Origin check against cross-site requests,
//! batched replay on the WebSocket, and what the UI's pages read.

use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, ORIGIN,
    X_FRAME_OPTIONS,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::Gateway;

#[tokio::test]
async fn the_ui_is_served_from_the_binary_with_a_strict_policy() {
    // A tight request limit: static files must not count against it.
    let gw = Gateway::start_with("rate_limit_per_minute = 3\n").await;
    for _ in 0..6 {
        let page = gw.client.get(gw.url("/")).send().await.expect("GET /");
        assert_eq!(page.status(), StatusCode::OK);
    }
    let page = gw.client.get(gw.url("/")).send().await.expect("GET /");
    let headers = page.headers().clone();
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
    let csp = headers[CONTENT_SECURITY_POLICY].to_str().expect("csp");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    let html = page.text().await.expect("html");
    assert!(html.contains(r#"<script type="module" src="/assets/app.js"></script>"#));
    // No inline script or handler for the policy to block.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    let handlers = html
        .split('<')
        .flat_map(|tag| tag.split_whitespace().skip(1))
        .any(|attribute| attribute.starts_with("on"));
    assert!(!handlers, "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN: {html}"
    );

    let script = gw
        .client
        .get(gw.url("/assets/app.js"))
        .send()
        .await
        .expect("app.js");
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script.headers()[CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    let etag = script.headers()[ETAG].clone();
    let again = gw
        .client
        .get(gw.url("/assets/app.js"))
        .header(IF_NONE_MATCH, etag)
        .send()
        .await
        .expect("app.js again");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // The service worker: at the root for its scope, revalidated on every
    // update check, allowed by the policy, and not counted like the API.
    for _ in 0..6 {
        let worker = gw.client.get(gw.url("/sw.js")).send().await.expect("sw.js");
        assert_eq!(worker.status(), StatusCode::OK);
        assert_eq!(
            worker.headers()[CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(worker.headers()[CACHE_CONTROL], "no-cache");
    }
    assert!(csp.contains("worker-src 'self'"), "{csp}");

    for missing in ["/assets/nope.js", "/assets/../Cargo.toml", "/index.html"] {
        let response = gw.client.get(gw.url(missing)).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
    }
}

async fn post_from(
    gw: &Gateway,
    path: &str,
    session: &str,
    headers: &[(&str, &str)],
) -> StatusCode {
    let mut request = gw
        .client
        .post(gw.url(path))
        .header("cookie", format!("session={session}"))
        .json(&json!({}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request").status()
}

#[tokio::test]
async fn cross_site_requests_are_refused() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let own = format!("https://localhost:{}", gw.port);

    // A page elsewhere that makes the browser send the cookie gets nothing done.
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![("origin", "http://localhost")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
    ] {
        assert_eq!(
            post_from(&gw, "/api/runs", &admin, &headers).await,
            StatusCode::FORBIDDEN,
            "{headers:?}"
        );
    }
    let (_, runs) = gw.get("/api/runs", &admin).await;
    assert_eq!(runs, json!([]), "nothing was created");
    // A refusal carries the security headers too.
    let refused = gw
        .client
        .post(gw.url("/api/runs"))
        .header("cookie", format!("session={admin}"))
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    for (name, value) in [("x-frame-options", "DENY"), ("cache-control", "no-store")] {
        assert_eq!(
            refused.headers().get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name}"
        );
    }

    // The gateway's own pages, and clients that are not browsers, work.
    assert_eq!(
        post_from(&gw, "/api/runs", &admin, &[("origin", own.as_str())]).await,
        StatusCode::CREATED
    );
    assert_eq!(
        post_from(
            &gw,
            "/api/runs",
            &admin,
            &[("sec-fetch-site", "same-origin")]
        )
        .await,
        StatusCode::CREATED
    );
    assert_eq!(
        post_from(&gw, "/api/runs", &admin, &[]).await,
        StatusCode::CREATED
    );

    // Signing in from another site is refused too (login CSRF).
    let login = gw
        .client
        .post(gw.url("/api/auth/login"))
        .header(ORIGIN, "https://evil.example")
        .json(&json!({ "username": "admin", "password": "x" }))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::FORBIDDEN);

    // A cross-site WebSocket is refused before the upgrade.
    let upgrade = gw
        .client
        .get(gw.url("/ws"))
        .header("cookie", format!("session={admin}"))
        .header(ORIGIN, "https://evil.example")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("upgrade");
    assert_eq!(upgrade.status(), StatusCode::FORBIDDEN);

    // Reads stay readable (the browser keeps them from other sites' scripts).
    let read = gw
        .client
        .get(gw.url("/api/runs"))
        .header("cookie", format!("session={admin}"))
        .header(ORIGIN, "https://evil.example")
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), StatusCode::OK);
    assert!(read.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_batched_subscription_replays_in_few_messages_then_streams_live() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    let events: Vec<Value> = (1..=2500)
        .map(|i| json!({ "type": if i % 2 == 0 { "stderr" } else { "stdout" }, "data": format!("line {i}"), "sequence": i }))
        .collect();
    for chunk in events.chunks(1000) {
        let (status, body) = runner.batch(chunk.to_vec()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let mut ws = gw.websocket(&admin).await;
    ws.send(json!({ "type": "subscribe", "runId": run_id, "afterSequence": 3, "batch": true }))
        .await;
    assert_eq!(ws.next().await["type"], "subscribed");
    let mut seen = Vec::new();
    let mut messages = 0;
    while seen.len() < 2497 {
        let message = ws.next_of("events").await;
        messages += 1;
        assert_eq!(message["runId"], run_id.as_str());
        for event in message["events"].as_array().expect("events") {
            let seq = event["sequence"].as_u64().expect("sequence");
            assert_eq!(event["data"], format!("line {seq}"));
            let kind = if seq % 2 == 0 { "stderr" } else { "stdout" };
            assert_eq!(event["eventType"], kind);
            assert!(event["eventId"].is_i64() && event["timestamp"].is_string());
            seen.push(seq);
        }
    }
    assert_eq!(seen, (4..=2500).collect::<Vec<_>>());
    assert!(messages <= 3, "{messages} messages for 2497 events");

    runner.event("stdout", "live one", Some(2501)).await;
    let live = ws.next_of("event").await;
    assert_eq!(live["sequence"], 2501);
    assert_eq!(live["data"], "live one");
}

#[tokio::test]
async fn status_and_totp_enrolment_give_the_ui_what_it_shows() {
    let gw = Gateway::start_with("allowed_commands = [\"just test\"]\n").await;
    let admin = gw.admin().await;
    let viewer = gw.user(&admin, "viewer1", "viewer").await;
    let (status, body) = gw.get("/api/status", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let allowed = body["allowedCommands"].as_array().expect("allowlist");
    assert!(allowed.contains(&json!("git status")) && allowed.contains(&json!("just test")));
    assert_eq!(body["runnersConnected"], 0);
    assert_eq!(body["runs"]["running"], 0);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let (status, _) = gw.call(Method::GET, "/api/status", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Artifacts announce themselves to watchers.
    let (run_id, token) = gw.create_run(&admin).await;
    let mut ws = gw.websocket(&admin).await;
    ws.send(json!({ "type": "subscribe", "runId": run_id }))
        .await;
    assert_eq!(ws.next().await["type"], "subscribed");
    let (status, body) = gw
        .runner(&run_id, &token)
        .upload("notes.txt", b"hello")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let added = ws.next_of("artifact_added").await;
    assert_eq!(added["filename"], "notes.txt");
    assert_eq!(added["size"], 5);
    assert_eq!(added["artifactId"], body["artifactId"]);

    let (status, body) = gw.post("/api/auth/totp/enroll", &viewer, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let svg = body["qrSvg"].as_str().expect("qrSvg");
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    assert!(!svg.contains("<script"));
}
