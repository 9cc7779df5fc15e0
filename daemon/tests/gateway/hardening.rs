//! What an adversarial review broke, each through the real interfaces:
//! password hashing under a flood, login limits under concurrency, user
//! names that are not names, WebSockets that outlive their session, header
//! tricks around the per-address limit and the Origin check, artifact
//! downloads, subscription caps and mixed batches.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{ADMIN, ADMIN_PASSWORD, Gateway, TEST_CONFIG, unix_request};

/// Statuses of concurrent logins, in any order.
async fn concurrent_logins(gw: &Gateway, attempts: Vec<(String, String)>) -> Vec<StatusCode> {
    let requests = attempts.into_iter().map(|(user, password)| {
        let request = gw
            .client
            .post(gw.url("/api/auth/login"))
            .json(&json!({ "username": user, "password": password }))
            .send();
        async move {
            let response = request.await.expect("login request");
            let status = response.status();
            if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS
            {
                assert!(
                    response.headers().contains_key("retry-after"),
                    "{status} without Retry-After"
                );
            }
            status
        }
    });
    join_all(requests).await
}

fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// argon2id takes 64 MiB per check; with no bound, 100 concurrent failed
/// logins took clawd to 4.85 GB. With one check per CPU and a short queue
/// its peak stays under 64 MiB per CPU plus 160 MiB for everything else
/// (a debug clawd idles at about 20 MiB).
#[tokio::test]
async fn a_hundred_concurrent_failed_logins_keep_memory_bounded() {
    let gw = Gateway::start_with(&format!("{TEST_CONFIG}login_max_failures = 100000\n")).await;
    let admin = gw.admin().await;
    let attempts = (0..100)
        .map(|i| {
            // Half known, half unknown: the dummy check counts too.
            let user = if i % 2 == 0 {
                ADMIN.to_owned()
            } else {
                format!("nobody{i}")
            };
            (user, format!("wrong password {i}"))
        })
        .collect();
    let statuses = concurrent_logins(&gw, attempts).await;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let peak_mib = gw.memory_kib("VmHWM") / 1024;
    let bound_mib = 64 * cpus + 160;
    assert!(
        peak_mib <= bound_mib,
        "clawd peaked at {peak_mib} MiB (bound {bound_mib} MiB for {cpus} CPUs)"
    );
    let refused = count(&statuses, StatusCode::SERVICE_UNAVAILABLE);
    let checked = count(&statuses, StatusCode::UNAUTHORIZED);
    assert_eq!(refused + checked, 100, "{statuses:?}");
    assert!(
        refused > 0,
        "a flood past the queue is refused: {statuses:?}"
    );
    // The gateway is usable again at once.
    let (status, _) = gw.get("/api/auth/me", &admin).await;
    assert_eq!(status, StatusCode::OK);
    gw.login(ADMIN, ADMIN_PASSWORD, None)
        .await
        .expect("login after the flood");
}

/// 40 concurrent guesses for one user from one address: the limit (5 per
/// user, 10 per address) is taken before each check, so at most 5 are
/// checked, and the real password afterwards is refused too.
#[tokio::test]
async fn concurrent_guesses_cannot_pass_the_login_limit() {
    let gw = Gateway::start().await;
    gw.admin().await;
    let attempts = (0..40)
        .map(|i| (ADMIN.to_owned(), format!("guess number {i}")))
        .collect();
    let statuses = concurrent_logins(&gw, attempts).await;
    let checked = count(&statuses, StatusCode::UNAUTHORIZED);
    assert!(checked <= 5, "{checked} guesses were checked: {statuses:?}");
    assert_eq!(
        count(&statuses, StatusCode::TOO_MANY_REQUESTS) + checked,
        40,
        "{statuses:?}"
    );
    let (status, body) = gw
        .login(ADMIN, ADMIN_PASSWORD, None)
        .await
        .expect_err("the right password after the limit");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

/// With TOTP, the password alone is no guess, but each wrong code is; 40
/// concurrent codes get no more checks than the limit.
#[tokio::test]
async fn concurrent_totp_codes_cannot_pass_the_login_limit() {
    let gw = Gateway::start().await;
    let (status, body) = gw
        .call(
            Method::POST,
            "/api/auth/setup",
            None,
            Some(json!({
                "setupToken": gw.setup_token(),
                "username": ADMIN,
                "password": ADMIN_PASSWORD,
                "enableTotp": true,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let uri = body["totpUri"].as_str().expect("totpUri").to_owned();
    let totp = totp_rs::TOTP::from_url_unchecked(&uri).expect("otpauth uri");
    let right = totp.generate_current().expect("code");
    let wrong = |i: u32| {
        let code = format!("{:06}", (i * 7919) % 1_000_000);
        if code == right {
            "999999x".to_owned()
        } else {
            code
        }
    };
    let requests = (0..40).map(|i| {
        let request = gw
            .client
            .post(gw.url("/api/auth/login"))
            .json(&json!({ "username": ADMIN, "password": ADMIN_PASSWORD, "totpCode": wrong(i) }))
            .send();
        async move { request.await.expect("login").status() }
    });
    let statuses = join_all(requests).await;
    let checked = count(&statuses, StatusCode::UNAUTHORIZED);
    assert!(checked <= 5, "{checked} codes were checked: {statuses:?}");
    let (status, _) = gw
        .login(ADMIN, ADMIN_PASSWORD, Some(&right))
        .await
        .expect_err("the right code after the limit");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

fn database_bytes(gw: &Gateway) -> u64 {
    ["db.sqlite", "db.sqlite-wal"]
        .iter()
        .map(|f| std::fs::metadata(gw.data().join(f)).map_or(0, |m| m.len()))
        .sum()
}

/// A user name that is no account name — a megabyte of junk, a password
/// typed into the wrong field — is neither stored nor logged verbatim.
#[tokio::test]
async fn oversized_user_names_leave_the_database_and_the_log_alone() {
    let gw = Gateway::start_with(&format!("{TEST_CONFIG}login_max_failures = 100000\n")).await;
    let admin = gw.admin().await;
    let name = format!("Tr0ub4dor&3 {}", "x".repeat(1 << 20));
    let (db_before, log_before) = (database_bytes(&gw), gw.log().len());
    for _ in 0..50 {
        let (status, _) = gw
            .login(&name, "some password", None)
            .await
            .expect_err("no such user");
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let grown_db = database_bytes(&gw).saturating_sub(db_before);
    let log = gw.log();
    let grown_log = log.len() - log_before;
    assert!(grown_db < 2 << 20, "the database grew by {grown_db} bytes");
    assert!(grown_log < 256 << 10, "the log grew by {grown_log} bytes");
    assert!(!log.contains("Tr0ub4dor"), "the name reached the log");
    let (status, audit) = gw.get("/api/audit?action=login&limit=100", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let rows = audit.as_array().expect("rows");
    assert_eq!(rows.len(), 51, "50 failures and the admin's login");
    assert!(!audit.to_string().contains("Tr0ub4dor"));
    assert!(
        audit.to_string().contains("not a valid user name"),
        "{}",
        rows[0]
    );
}

/// Wrong setup tokens are limited like failed logins, and their user names
/// are not kept either.
#[tokio::test]
async fn wrong_setup_tokens_are_limited_and_their_names_not_kept() {
    let gw = Gateway::start().await;
    let name = format!("hunter2hunter2! {}", "y".repeat(1 << 20));
    let (db_before, log_before) = (database_bytes(&gw), gw.log().len());
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let (status, _) = gw
            .call(
                Method::POST,
                "/api/auth/setup",
                None,
                Some(json!({ "setupToken": "0".repeat(32), "username": name, "password": "x" })),
            )
            .await;
        statuses.push(status);
    }
    assert_eq!(
        count(&statuses, StatusCode::FORBIDDEN),
        10,
        "login_max_failures x 2 per address: {statuses:?}"
    );
    assert_eq!(count(&statuses, StatusCode::TOO_MANY_REQUESTS), 10);
    let grown_db = database_bytes(&gw).saturating_sub(db_before);
    let log = gw.log();
    assert!(grown_db < 1 << 20, "the database grew by {grown_db} bytes");
    assert!(log.len() - log_before < 128 << 10);
    assert!(!log.contains("hunter2hunter2"));
}

/// A browser socket subscribed to a run; returns it once subscribed.
async fn watching(gw: &Gateway, session: &str, run_id: &str) -> crate::common::Ws {
    let mut ws = gw.websocket(session).await;
    ws.send(json!({ "type": "subscribe", "runId": run_id }))
        .await;
    ws.next_of("subscribed").await;
    ws
}

const SESSION_ENDED: u16 = 4401;
const SESSION_CHANGED: u16 = 4409;

/// An operator with a socket on a run; (admin session, operator session,
/// operator's user id, run id).
async fn operator_watching(gw: &Gateway) -> (String, String, String, String) {
    let admin = gw.admin().await;
    let operator = gw.user(&admin, "olivia", "operator").await;
    let (run_id, _) = gw.create_run(&admin).await;
    let (_, me) = gw.get("/api/auth/me", &operator).await;
    let id = me["user"]["id"].as_str().expect("id").to_owned();
    (admin, operator, id, run_id)
}

#[tokio::test]
async fn logout_closes_the_sessions_sockets() {
    let gw = Gateway::start().await;
    let (_, operator, _, run_id) = operator_watching(&gw).await;
    let mut ws = watching(&gw, &operator, &run_id).await;
    let (status, _) = gw.post("/api/auth/logout", &operator, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ws.next_close().await, Some(SESSION_ENDED));
}

#[tokio::test]
async fn an_expired_session_closes_its_sockets() {
    let gw = Gateway::start_with(&format!("{TEST_CONFIG}session_lifetime_secs = 3\n")).await;
    let (_, operator, _, run_id) = operator_watching(&gw).await;
    let mut ws = watching(&gw, &operator, &run_id).await;
    assert_eq!(ws.next_close().await, Some(SESSION_ENDED));
}

#[tokio::test]
async fn deleting_the_user_closes_their_sockets() {
    let gw = Gateway::start().await;
    let (admin, operator, id, run_id) = operator_watching(&gw).await;
    let mut ws = watching(&gw, &operator, &run_id).await;
    let (status, body) = gw
        .call(
            Method::DELETE,
            &format!("/api/auth/users/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ws.next_close().await, Some(SESSION_ENDED));
}

#[tokio::test]
async fn a_role_change_closes_the_users_sockets() {
    let gw = Gateway::start().await;
    let (admin, operator, id, run_id) = operator_watching(&gw).await;
    let mut ws = watching(&gw, &operator, &run_id).await;
    let (status, body) = gw
        .call(
            Method::PATCH,
            &format!("/api/auth/users/{id}"),
            Some(&admin),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ws.next_close().await, Some(SESSION_CHANGED));
}

#[tokio::test]
async fn revoking_all_sessions_on_the_control_socket_closes_every_socket() {
    let gw = Gateway::start().await;
    let (admin, operator, _, run_id) = operator_watching(&gw).await;
    let mut theirs = watching(&gw, &operator, &run_id).await;
    let mut mine = watching(&gw, &admin, &run_id).await;
    let (status, body) = unix_request(
        &gw.data().join("control.sock"),
        "DELETE",
        "/v1/sessions?all=true",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(theirs.next_close().await, Some(SESSION_ENDED));
    assert_eq!(mine.next_close().await, Some(SESSION_ENDED));
}

#[tokio::test]
async fn rotating_the_auth_secret_closes_every_socket() {
    let gw = Gateway::start().await;
    let (_, operator, _, run_id) = operator_watching(&gw).await;
    let mut ws = watching(&gw, &operator, &run_id).await;
    let (status, body) = unix_request(
        &gw.data().join("control.sock"),
        "POST",
        "/v1/secrets/rotate",
        Some(json!({ "secret": "auth" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ws.next_close().await, Some(SESSION_ENDED));
}

/// A session that ends where this gateway cannot see it (another
/// instance, a direct edit) still cannot subscribe: every subscription
/// checks the session first.
#[tokio::test]
async fn every_subscription_checks_the_session_first() {
    let gw = Gateway::start().await;
    let (admin, operator, id, run_id) = operator_watching(&gw).await;
    let mut ws = watching(&gw, &operator, &run_id).await;
    let ended = gw.sql(&format!(
        "DELETE FROM sessions WHERE user_id = '{id}' RETURNING user_id"
    ));
    assert_eq!(ended.len(), 1);
    let (later, _) = gw.create_run(&admin).await;
    ws.send(json!({ "type": "subscribe", "runId": later }))
        .await;
    assert_eq!(ws.next_close().await, Some(SESSION_ENDED));
}

/// A bare `X-Signature` header neither skips the per-address limit on the
/// human API nor the Origin check.
#[tokio::test]
async fn a_signature_header_skips_neither_the_limit_nor_the_origin_check() {
    let gw = Gateway::start_with("rate_limit_per_minute = 100\n").await;
    let admin = gw.admin().await;
    let mut statuses = Vec::new();
    for _ in 0..150 {
        let response = gw
            .client
            .get(gw.url("/api/runs"))
            .bearer_auth(&admin)
            .header("X-Signature", "x")
            .send()
            .await
            .expect("request");
        statuses.push(response.status());
    }
    assert!(
        count(&statuses, StatusCode::TOO_MANY_REQUESTS) >= 50,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_cookie_request_with_a_signature_header_is_still_origin_checked() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let response = gw
        .client
        .post(gw.url("/api/runs"))
        .header("Cookie", format!("session={admin}"))
        .header("Origin", "https://evil.example")
        .header("X-Signature", "bogus")
        .json(&json!({ "command": "claude" }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, runs) = gw.get("/api/runs", &admin).await;
    assert_eq!(runs, json!([]), "no run was created");
}

/// Runner requests with bad signatures count against their address and
/// are refused with 429 past the limit, while a runner signing correctly
/// from the same address (behind the same NAT) is not held up.
#[tokio::test]
async fn bad_runner_signatures_are_limited_per_address() {
    let gw = Gateway::start_with("rate_limit_per_minute = 100\n").await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    let mut statuses = Vec::new();
    for _ in 0..110 {
        let mut signed = runner.sign(
            Method::POST,
            "/api/ingest/event",
            br#"{"type":"stdout","data":"x"}"#.to_vec(),
        );
        signed.signature = "0".repeat(64);
        statuses.push(runner.send(&signed).await.0);
    }
    assert_eq!(count(&statuses, StatusCode::UNAUTHORIZED), 100);
    assert_eq!(count(&statuses, StatusCode::TOO_MANY_REQUESTS), 10);
    let (other_run, other_token) = gw.create_run(&admin).await;
    let neighbour = gw.runner(&other_run, &other_token);
    for n in 0..20 {
        let (status, body) = neighbour
            .event("stdout", &format!("line {n}\n"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// A 50 MiB artifact uploaded by the run's runner; (admin session, id).
async fn big_artifact(gw: &Gateway) -> (String, String, Vec<u8>) {
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let data: Vec<u8> = (0..50u32 << 20).map(|i| (i % 251) as u8).collect();
    let (status, body) = gw.runner(&run_id, &token).upload("big.log", &data).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["artifactId"].as_str().expect("id").to_owned();
    (admin, id, data)
}

/// 30 slow downloads of a 50 MiB artifact: read whole, they took clawd
/// from 70 MB to 1.57 GB; streamed, memory stays flat.
#[tokio::test]
async fn slow_downloads_of_a_large_artifact_keep_memory_flat() {
    let gw = Gateway::start().await;
    let (admin, id, data) = big_artifact(&gw).await;
    let before_kib = gw.memory_kib("VmRSS");
    let mut slow = Vec::new();
    for _ in 0..30 {
        let response = gw
            .client
            .get(gw.url(&format!("/api/artifacts/{id}")))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("download");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-length"],
            (50u64 << 20).to_string().as_str()
        );
        slow.push(response);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during_kib = gw.memory_kib("VmRSS");
    let grown_mib = during_kib.saturating_sub(before_kib) / 1024;
    assert!(
        grown_mib < 64,
        "30 slow downloads grew clawd by {grown_mib} MiB"
    );
    // Each is whole when read to its end.
    let first = slow.pop().expect("one").bytes().await.expect("body");
    assert!(first == data, "the download differs from the upload");
}

#[tokio::test]
async fn downloads_past_the_limit_are_refused_with_retry_after() {
    let gw = Gateway::start_with(&format!("{TEST_CONFIG}artifact_downloads_max = 2\n")).await;
    let (admin, id, _) = big_artifact(&gw).await;
    let url = gw.url(&format!("/api/artifacts/{id}"));
    let mut held = Vec::new();
    for _ in 0..2 {
        let response = gw.client.get(&url).bearer_auth(&admin).send().await;
        held.push(response.expect("download"));
    }
    let refused = gw
        .client
        .get(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .expect("third");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    drop(held);
    // Slots come back when the downloads end.
    let mut ok = false;
    for _ in 0..50 {
        let response = gw.client.get(&url).bearer_auth(&admin).send().await;
        if response.expect("again").status() == StatusCode::OK {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "a download slot came back");
}

#[tokio::test]
async fn an_artifact_keeps_its_own_sandboxing_policy() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let (status, body) = gw
        .runner(&run_id, &token)
        .upload("page.html", b"<script>alert(1)</script>")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["artifactId"].as_str().expect("id");
    let response = gw
        .client
        .get(gw.url(&format!("/api/artifacts/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-security-policy"],
        "default-src 'none'; sandbox"
    );
}

/// Subscriptions past the per-socket and per-user caps are answered with
/// an error that names the setting.
#[tokio::test]
async fn subscriptions_past_the_caps_are_refused_with_a_message() {
    let gw = Gateway::start_with(&format!(
        "{TEST_CONFIG}subscriptions_per_socket = 3\nsubscriptions_per_user = 5\n"
    ))
    .await;
    let admin = gw.admin().await;
    let mut runs = Vec::new();
    for _ in 0..6 {
        runs.push(gw.create_run(&admin).await.0);
    }
    let mut first = gw.websocket(&admin).await;
    for run in &runs[..3] {
        first
            .send(json!({ "type": "subscribe", "runId": run }))
            .await;
        first.next_of("subscribed").await;
    }
    first
        .send(json!({ "type": "subscribe", "runId": runs[3] }))
        .await;
    let refused = first.next_of("error").await;
    assert!(
        refused["message"]
            .as_str()
            .expect("message")
            .contains("subscriptions_per_socket"),
        "{refused}"
    );
    // Subscribing again to a followed run is no new subscription.
    first
        .send(json!({ "type": "subscribe", "runId": runs[0] }))
        .await;
    first.next_of("subscribed").await;
    let mut second = gw.websocket(&admin).await;
    for run in &runs[3..5] {
        second
            .send(json!({ "type": "subscribe", "runId": run }))
            .await;
        second.next_of("subscribed").await;
    }
    second
        .send(json!({ "type": "subscribe", "runId": runs[5] }))
        .await;
    let refused: Value = second.next_of("error").await;
    assert!(
        refused["message"]
            .as_str()
            .expect("message")
            .contains("subscriptions_per_user"),
        "{refused}"
    );
    // Leaving one makes room.
    first
        .send(json!({ "type": "unsubscribe", "runId": runs[1] }))
        .await;
    first.next_of("unsubscribed").await;
    second
        .send(json!({ "type": "subscribe", "runId": runs[5] }))
        .await;
    second.next_of("subscribed").await;
    // At the cap again: a run left makes room at once, for the very next
    // message.
    for _ in 0..20 {
        second
            .send(json!({ "type": "unsubscribe", "runId": runs[5] }))
            .await;
        second
            .send(json!({ "type": "subscribe", "runId": runs[5] }))
            .await;
        // Each subscription also sends the run's current status.
        let mut answers = Vec::new();
        while answers.len() < 2 {
            let answer = second.next().await;
            if answer["type"] != "run_status" {
                answers.push(answer["type"].clone());
            }
        }
        assert_eq!(answers, ["unsubscribed", "subscribed"]);
    }
}

/// `[{seq 1}, {no seq}, {seq 2}]` would store the unsequenced event as 2
/// and answer the real 2 as a resend; the batch is refused whole.
#[tokio::test]
async fn a_batch_mixing_sequenced_and_unsequenced_events_is_refused() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let (status, body) = gw
        .runner(&run_id, &token)
        .batch(vec![
            json!({ "type": "stdout", "data": "one", "sequence": 1 }),
            json!({ "type": "stdout", "data": "loose" }),
            json!({ "type": "stdout", "data": "two", "sequence": 2 }),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("every event a sequence"),
        "{body}"
    );
    let (_, events) = gw.get(&format!("/api/runs/{run_id}/events"), &admin).await;
    assert_eq!(events, json!([]), "nothing was stored");
}
