//! `Idempotency-Key` on mutating human-API calls: a phone on a bad
//! connection never creates two runs or sends a command twice.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Gateway, TEST_CONFIG, unix_request};

/// A POST with a bearer session and an idempotency key: (status, replayed, body).
async fn post_with_key(
    gw: &Gateway,
    session: &str,
    path: &str,
    key: &str,
    body: Value,
) -> (StatusCode, bool, Value) {
    let response = gw
        .client
        .request(Method::POST, gw.url(path))
        .bearer_auth(session)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    let body = response.json().await.expect("json");
    (status, replayed, body)
}

async fn run_count(gw: &Gateway, session: &str) -> usize {
    let (_, runs) = gw.get("/api/runs", session).await;
    runs.as_array().expect("runs").len()
}

#[tokio::test]
async fn a_retried_create_makes_one_run_and_answers_the_same() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let body = json!({ "command": "claude -p 'fix it'" });
    let (status, replayed, first) =
        post_with_key(&gw, &admin, "/api/runs", "k-1", body.clone()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{first}");
    let (status, replayed, again) = post_with_key(&gw, &admin, "/api/runs", "k-1", body).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    assert_eq!(again, first, "the same run and token");
    assert_eq!(run_count(&gw, &admin).await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    post_with_key(&gw, &admin, "/api/runs", "k-2", json!({ "command": "a" })).await;
    let (status, _, body) =
        post_with_key(&gw, &admin, "/api/runs", "k-2", json!({ "command": "b" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("Idempotency-Key")
    );
    assert_eq!(run_count(&gw, &admin).await, 1);
}

#[tokio::test]
async fn a_retried_command_is_queued_once() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    gw.runner(&run_id, &token).started().await;
    let path = format!("/api/runs/{run_id}/command");
    let body = json!({ "command": "git status" });
    let (status, _, first) = post_with_key(&gw, &admin, &path, "cmd-1", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (_, replayed, again) = post_with_key(&gw, &admin, &path, "cmd-1", body).await;
    assert!(replayed);
    assert_eq!(again["commandId"], first["commandId"]);
    let (_, commands) = gw
        .get(&format!("/api/runs/{run_id}/commands"), &admin)
        .await;
    assert_eq!(commands.as_array().expect("commands").len(), 1);
}

#[tokio::test]
async fn keys_belong_to_their_user() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let operator = gw.user(&admin, "olivia", "operator").await;
    let body = json!({ "command": "claude" });
    let (_, _, mine) = post_with_key(&gw, &admin, "/api/runs", "shared", body.clone()).await;
    let (status, replayed, theirs) =
        post_with_key(&gw, &operator, "/api/runs", "shared", body).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false));
    assert_ne!(theirs["id"], mine["id"]);
}

/// Past `idempotency_ttl_hours` a key is new again, and pruning removes it.
#[tokio::test]
async fn after_the_ttl_a_key_makes_a_new_run_and_prune_removes_it() {
    let gw = Gateway::start_with(&format!("{TEST_CONFIG}idempotency_ttl_hours = 0\n")).await;
    let admin = gw.admin().await;
    let body = json!({ "command": "claude" });
    let (_, _, first) = post_with_key(&gw, &admin, "/api/runs", "k-3", body.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (status, replayed, second) = post_with_key(&gw, &admin, "/api/runs", "k-3", body).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false));
    assert_ne!(second["id"], first["id"]);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let socket = gw.data().join("control.sock");
    let (status, _) = unix_request(&socket, "POST", "/v1/prune", Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, db) = crate::common::unix_get(&socket, "/v1/db/status").await;
    let keys = db["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t[0] == "idempotency_keys")
        .expect("idempotency_keys")[1]
        .clone();
    assert_eq!(keys, 0, "expired keys pruned");
}

/// A 4xx answer is the answer: a retry gets it again, and nothing is done.
#[tokio::test]
async fn a_refusal_is_the_answer_a_retry_gets() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (status, _, _) = post_with_key(
        &gw,
        &admin,
        "/api/runs/no-such-run/stop",
        "stop-1",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, replayed, _) = post_with_key(
        &gw,
        &admin,
        "/api/runs/no-such-run/stop",
        "stop-1",
        json!({}),
    )
    .await;
    assert_eq!((status, replayed), (StatusCode::NOT_FOUND, true));
}

/// A kept answer can hold a secret shown once (the capability token): it
/// is kept sealed, so the database does not show it.
#[tokio::test]
async fn kept_answers_are_sealed_in_the_database() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (_, _, created) = post_with_key(
        &gw,
        &admin,
        "/api/runs",
        "sealed",
        json!({ "command": "claude" }),
    )
    .await;
    let token = created["capabilityToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let bodies = gw.sql("SELECT body FROM idempotency_keys");
    assert_eq!(bodies.len(), 1);
    let kept = hex::decode(&bodies[0][0]).expect("a blob");
    assert!(!kept.is_empty());
    let kept = String::from_utf8_lossy(&kept);
    assert!(!kept.contains(&token) && !kept.contains("capabilityToken"));
    // The retry still gets it.
    let (_, replayed, again) = post_with_key(
        &gw,
        &admin,
        "/api/runs",
        "sealed",
        json!({ "command": "claude" }),
    )
    .await;
    assert!(replayed);
    assert_eq!(again["capabilityToken"], token.as_str());
}
