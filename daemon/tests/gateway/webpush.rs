//! Web Push to a browser's subscription, received by an independent
//! implementation (tests/push/receiver.py: Python's `http_ece` decrypts
//! the RFC 8291 payload with the subscription's private key, `py_vapid`
//! checks the RFC 8292 signature against the gateway's public key).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use claw_testkit::{Push, PushReceiver};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Gateway, TEST_CONFIG, unix_request};

/// The receiver listens on loopback.
fn config() -> String {
    format!("{TEST_CONFIG}notify_allow_private_targets = true\n")
}

async fn push_key(gw: &Gateway, session: &str) -> String {
    let (status, key) = gw.get("/api/notify/push/key", session).await;
    assert_eq!(status, StatusCode::OK, "{key}");
    key["publicKey"].as_str().expect("publicKey").to_owned()
}

/// Subscribes `receiver` as this user's browser; the channel.
async fn subscribe(gw: &Gateway, session: &str, receiver: &PushReceiver, extra: Value) -> Value {
    let mut body = receiver.subscription.clone();
    body["name"] = json!("Chromium on Linux");
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, channel) = gw.post("/api/notify/push", session, body).await;
    assert_eq!(status, StatusCode::CREATED, "{channel}");
    assert_eq!(channel["kind"], "webpush");
    channel
}

fn approval_request(id: &str) -> String {
    json!({
        "requestId": id, "kind": "tool", "tool": "Bash",
        "input": {"command": "cargo test -p parser"}, "summary": "cargo test -p parser",
        "timeoutSecs": 600
    })
    .to_string()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn accepted(pushes: &[Push]) -> Vec<&Push> {
    pushes.iter().filter(|p| p["status"] == 201).collect()
}

#[tokio::test]
async fn an_approval_reaches_the_browser_encrypted_and_signed_within_a_second() {
    let gw = Gateway::start_with(&config()).await;
    let admin = gw.admin().await;
    let key = push_key(&gw, &admin).await;
    let receiver = PushReceiver::start(&key, &[]);
    let channel = subscribe(&gw, &admin, &receiver, json!({})).await;
    // The same endpoint again (new keys, a reload): one channel, kept.
    let again = subscribe(&gw, &admin, &receiver, json!({})).await;
    assert_eq!(again["id"], channel["id"]);
    assert_eq!(
        channel["events"],
        json!(["approval", "question", "failed"]),
        "the defaults"
    );
    let (_, channels) = gw.get("/api/notify/channels", &admin).await;
    assert_eq!(channels.as_array().map(Vec::len), Some(1), "{channels}");

    let (run_id, token) = gw.agent_run(&admin, "tidy the parser").await;
    let sent = unix_now();
    gw.runner(&run_id, &token)
        .event_ok("approval_request", &approval_request("r-1"))
        .await;
    let pushes = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    let push = &pushes[0];
    assert_eq!(push["vapid"], "ok", "{push}");
    assert_eq!(push["contentEncoding"], "aes128gcm");
    let arrived = push["at"].as_f64().expect("at") - sent;
    assert!(arrived < 1.0, "arrived after {arrived:.3} s");
    let note = &push["payload"];
    assert_eq!(note["kind"], "approval", "{push}");
    assert_eq!(note["tool"], "Bash");
    assert_eq!(note["summary"], "cargo test -p parser");
    assert_eq!(note["runTitle"], "tidy the parser");
    let approval = note["approvalId"].as_str().expect("approvalId");
    assert!(
        note["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/#/runs/{run_id}/approval/{approval}"))),
        "{note}"
    );
    // Only what the notification needs.
    let mut fields: Vec<&str> = note
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "approvalId",
            "createdAt",
            "id",
            "kind",
            "runId",
            "runTitle",
            "summary",
            "title",
            "tool",
            "url"
        ]
    );
}

#[tokio::test]
async fn a_push_service_failing_three_times_gets_it_once_with_the_same_id() {
    let gw = Gateway::start_with(&config()).await;
    let admin = gw.admin().await;
    let key = push_key(&gw, &admin).await;
    let receiver = PushReceiver::start(&key, &[500, 500, 500]);
    subscribe(&gw, &admin, &receiver, json!({})).await;
    let (run_id, token) = gw.agent_run(&admin, "tidy the parser").await;
    gw.runner(&run_id, &token)
        .event_ok("approval_request", &approval_request("r-1"))
        .await;
    // Attempts 1 s, 2 s and 4 s apart.
    let pushes = receiver.wait_for(4, Duration::from_secs(20)).await;
    let statuses: Vec<&Value> = pushes.iter().map(|p| &p["status"]).collect();
    assert_eq!(statuses, [500, 500, 500, 201]);
    let ids: std::collections::HashSet<&Value> =
        pushes.iter().map(|p| &p["payload"]["id"]).collect();
    assert_eq!(ids.len(), 1, "one notification, the same id each time");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.pushes().len(), 4, "delivered once");
    let (_, delivered) = unix_request(
        &gw.data().join("control.sock"),
        "GET",
        "/v1/notify/outbox?status=delivered",
        None,
    )
    .await;
    assert_eq!(delivered[0]["attempts"], 4, "{delivered}");
}

#[tokio::test]
async fn a_subscription_the_push_service_calls_gone_is_removed() {
    let gw = Gateway::start_with(&config()).await;
    let admin = gw.admin().await;
    let key = push_key(&gw, &admin).await;
    let receiver = PushReceiver::start(&key, &[410]);
    let channel = subscribe(&gw, &admin, &receiver, json!({})).await;
    let (run_id, token) = gw.agent_run(&admin, "tidy the parser").await;
    gw.runner(&run_id, &token)
        .event_ok("approval_request", &approval_request("r-1"))
        .await;
    assert_eq!(receiver.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, channels) = gw.get("/api/notify/channels", &admin).await;
        if channels.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "still there: {channels}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its notifications went with it.
    let (_, counts) = gw.get("/api/notify/status", &admin).await;
    assert_eq!(counts["pending"], 0, "{counts}");
    assert_eq!(counts["channels"], 0, "{counts}");
    let (status, _) = gw
        .call(
            reqwest::Method::DELETE,
            &format!(
                "/api/notify/channels/{}",
                channel["id"].as_str().expect("id")
            ),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// clawd SIGKILLed with 100 pushes pending (the push service asks it to
/// come back later): after the restart each arrives exactly once.
#[tokio::test]
async fn a_kill_with_100_pushes_pending_delivers_each_once() {
    // Asked back every second, none may give up before the kill: making
    // 100 runs can take longer than 8 attempts.
    let mut gw = Gateway::start_with(&format!("{}notify_max_attempts = 1000\n", config())).await;
    let admin = gw.admin().await;
    let key = push_key(&gw, &admin).await;
    let mut receiver = PushReceiver::start(&key, &[429; 1000]);
    subscribe(
        &gw,
        &admin,
        &receiver,
        json!({"events": ["finished"], "scope": "all"}),
    )
    .await;
    for _ in 0..100 {
        gw.finished_run(&admin, 0).await;
    }
    let (_, counts) = gw.get("/api/notify/status", &admin).await;
    assert_eq!(
        counts["pending"].as_u64().unwrap_or(0) + counts["delivered"].as_u64().unwrap_or(0),
        100,
        "{counts}"
    );
    gw.kill();
    // Accepted only from the new clawd: a push the killed one had sent is
    // answered "later" even if it is read after the kill.
    gw.relaunch();
    receiver.answer(&[]);
    // On PostgreSQL what the killed clawd had claimed waits out its lease.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pushes = receiver.pushes();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for push in accepted(&pushes) {
            assert_eq!(push["vapid"], "ok", "{push}");
            let id = push["payload"]["id"]
                .as_str()
                .expect("decrypted")
                .to_owned();
            *seen.entry(id).or_default() += 1;
        }
        if seen.len() == 100 {
            assert!(seen.values().all(|n| *n == 1), "{seen:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{} of 100 delivered", seen.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The receiver has answered; each answer is recorded just after.
    loop {
        let (_, counts) = gw.get("/api/notify/status", &admin).await;
        if counts["delivered"] == 100 {
            break;
        }
        assert!(Instant::now() < deadline, "{counts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(accepted(&receiver.pushes()).len(), 100, "none twice");
}

#[tokio::test]
async fn rotating_the_vapid_key_ends_every_subscription() {
    let gw = Gateway::start_with(&config()).await;
    let admin = gw.admin().await;
    let key = push_key(&gw, &admin).await;
    let receiver = PushReceiver::start(&key, &[]);
    subscribe(&gw, &admin, &receiver, json!({})).await;
    let file = gw.data().join("secrets/vapid-key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("vapid-key").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let (status, reply) = unix_request(
        &gw.data().join("control.sock"),
        "POST",
        "/v1/secrets/rotate",
        Some(json!({"secret": "vapid"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["subscriptionsRemoved"], 1, "{reply}");
    assert_ne!(push_key(&gw, &admin).await, key);
    let (_, channels) = gw.get("/api/notify/channels", &admin).await;
    assert_eq!(channels, json!([]));
}

#[tokio::test]
async fn subscriptions_with_unusable_keys_or_private_endpoints_are_refused() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let key = push_key(&gw, &admin).await;
    let receiver = PushReceiver::start(&key, &[]);
    // Loopback is the gateway's own network: refused by default.
    let (status, body) = gw
        .post("/api/notify/push", &admin, receiver.subscription.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let mut bad = receiver.subscription.clone();
    bad["endpoint"] = json!("https://push.example.org/x");
    bad["keys"]["auth"] = json!("c2hvcnQ");
    let (status, body) = gw.post("/api/notify/push", &admin, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("auth"), "{body}");
}
