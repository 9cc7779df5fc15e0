//! Notifications through ntfy and webhooks: channels per user or global,
//! written to the outbox with the change that causes them, delivered with
//! retries, signed the Standard Webhooks way, never into the gateway's own
//! network unless allowed, dead letters retried by hand, nothing lost or
//! sent twice across a kill.

use std::time::Duration;

use base64::Engine;
use claw_testkit::Receiver;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::{Gateway, TEST_CONFIG, unix_request};

/// Targets on loopback allowed: the receivers listen there.
fn config(extra: &str) -> String {
    format!("{TEST_CONFIG}notify_allow_private_targets = true\n{extra}")
}

async fn add_channel(gw: &Gateway, session: &str, body: Value) -> Value {
    let (status, created) = gw.post("/api/notify/channels", session, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// The dead letters, once there is one (15 s at most).
async fn dead_letters(gw: &Gateway) -> Value {
    let socket = gw.data().join("control.sock");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, dead) = unix_request(&socket, "GET", "/v1/notify/outbox?status=dead", None).await;
        if dead.as_array().is_some_and(|d| !d.is_empty()) {
            return dead;
        }
        assert!(std::time::Instant::now() < deadline, "never dead");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn approval_request(id: &str, command: &str) -> String {
    json!({
        "requestId": id, "kind": "tool", "tool": "Bash",
        "input": {"command": command}, "summary": command, "timeoutSecs": 600
    })
    .to_string()
}

fn verify(secret: &str, received: &claw_testkit::Received) -> bool {
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(
        format!(
            "{}.{}.",
            received.header("webhook-id"),
            received.header("webhook-timestamp")
        )
        .as_bytes(),
    );
    mac.update(&received.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    received
        .header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

#[tokio::test]
async fn an_approval_reaches_a_signed_webhook_with_only_what_it_needs() {
    let gw = Gateway::start_with(&config("public_url = \"https://claw.example.org\"\n")).await;
    let admin = gw.admin().await;
    let olivia = gw.user(&admin, "olivia", "operator").await;
    let hook = Receiver::start(&[]).await;
    let created = add_channel(
        &gw,
        &olivia,
        json!({"kind": "webhook", "name": "my phone relay", "target": hook.url}),
    )
    .await;
    let secret = created["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        created["channel"]["events"],
        json!(["approval", "question", "failed"])
    );
    assert_eq!(created["channel"]["scope"], "own");
    assert_eq!(created["channel"]["owner"], "olivia");
    let (_, listed) = gw.get("/api/notify/channels", &olivia).await;
    assert!(
        listed.to_string().find("whsec_").is_none(),
        "secrets are not shown again"
    );

    let (run_id, token) = gw.agent_run(&olivia, "fix the flaky test").await;
    let runner = gw.runner(&run_id, &token);
    runner
        .event_ok(
            "stdout",
            "the output sk-ant-api03-secretsecretsecretsecret\n",
        )
        .await;
    let started = std::time::Instant::now();
    runner
        .event_ok(
            "approval_request",
            &approval_request("r-1", "touch made.txt"),
        )
        .await;
    let got = hook.wait_for(1).await;
    assert_eq!(got.len(), 1, "one notification");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let note = got[0].json();
    assert_eq!(note["kind"], "approval");
    assert_eq!(note["tool"], "Bash");
    assert_eq!(note["summary"], "touch made.txt");
    assert_eq!(note["runId"], run_id.as_str());
    assert_eq!(note["runTitle"], "fix the flaky test");
    let approval_id = note["approvalId"].as_str().expect("approvalId");
    assert_eq!(
        note["url"],
        format!("https://claw.example.org/#/runs/{run_id}/approval/{approval_id}")
    );
    assert_eq!(
        got[0].header("webhook-id"),
        note["id"].as_str().expect("id")
    );
    assert!(verify(&secret, &got[0]), "the signature checks out");
    let body = String::from_utf8_lossy(&got[0].body);
    assert!(
        !body.contains("sk-ant") && !body.contains("the output"),
        "{body}"
    );

    // Not olivia's run: her own-runs channel hears nothing of it.
    let (other, other_token) = gw.agent_run(&admin, "fix the flaky test").await;
    gw.runner(&other, &other_token)
        .event_ok("approval_request", &approval_request("r-2", "ls"))
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(hook.received().len(), 1);
}

#[tokio::test]
async fn ntfy_gets_the_title_the_link_and_the_token() {
    let gw = Gateway::start_with(&config("")).await;
    let admin = gw.admin().await;
    let topic = Receiver::start(&[]).await;
    add_channel(
        &gw,
        &admin,
        json!({"kind": "ntfy", "name": "ntfy", "target": topic.url, "token": "tk_secret",
               "events": ["failed", "finished"], "scope": "all"}),
    )
    .await;
    let (run_id, token) = gw.agent_run(&admin, "fix the flaky test").await;
    gw.runner(&run_id, &token).finished(3).await;
    let got = topic.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("authorization"), "Bearer tk_secret");
    assert_eq!(got[0].header("x-title"), "claw: failed");
    assert!(
        got[0]
            .header("x-click")
            .ends_with(&format!("#/runs/{run_id}"))
    );
    assert_eq!(got[0].header("x-tags"), "failed");
    let body = String::from_utf8_lossy(&got[0].body);
    assert!(
        body.contains("fix the flaky test failed (exit code 3)"),
        "{body}"
    );
}

#[tokio::test]
async fn targets_in_the_gateways_own_network_are_refused() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    for target in [
        "http://127.0.0.1:9/hook",
        "https://10.0.0.7/hook",
        "https://[::1]/x",
        "https://localhost/x",
        "https://169.254.169.254/latest/meta-data",
    ] {
        let (status, body) = gw
            .post(
                "/api/notify/channels",
                &admin,
                json!({"kind": "webhook", "name": "inside", "target": target}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{target}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("notify_allow_private_targets")),
            "{target}: {body}"
        );
    }
    let (status, body) = gw
        .post(
            "/api/notify/channels",
            &admin,
            json!({"kind": "webhook", "name": "ftp", "target": "ftp://example.org/x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn a_failing_receiver_gets_it_once_it_answers_with_the_same_id() {
    let gw = Gateway::start_with(&config("")).await;
    let admin = gw.admin().await;
    let hook = Receiver::start(&[500, 500, 500]).await;
    add_channel(
        &gw,
        &admin,
        json!({"kind": "webhook", "name": "flaky", "target": hook.url}),
    )
    .await;
    let (run_id, token) = gw.agent_run(&admin, "fix the flaky test").await;
    gw.runner(&run_id, &token)
        .event_ok("approval_request", &approval_request("r-1", "touch f"))
        .await;
    // Attempts 1 s, 2 s and 4 s apart.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while hook.received().len() < 4 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = hook.received();
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 500, 200]
    );
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 1, "one notification, the same id each time");
    // Long enough for the answer to be recorded and a fifth attempt to show.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, outbox) = unix_request(
        &gw.data().join("control.sock"),
        "GET",
        "/v1/notify/outbox?status=delivered",
        None,
    )
    .await;
    assert_eq!(outbox[0]["attempts"], 4, "{outbox}");
    assert_eq!(hook.received().len(), 4, "delivered once");
}

#[tokio::test]
async fn a_dead_letter_is_retried_by_hand_when_the_target_is_back() {
    let gw = Gateway::start_with(&config("notify_max_attempts = 2\n")).await;
    let admin = gw.admin().await;
    let hook = Receiver::start(&[503; 20]).await;
    add_channel(
        &gw,
        &admin,
        json!({"kind": "webhook", "name": "down", "target": hook.url}),
    )
    .await;
    let (run_id, token) = gw.agent_run(&admin, "fix the flaky test").await;
    gw.runner(&run_id, &token)
        .event_ok("approval_request", &approval_request("r-1", "touch f"))
        .await;
    let socket = gw.data().join("control.sock");
    let dead = dead_letters(&gw).await;
    assert_eq!(dead[0]["attempts"], 2);
    assert!(
        dead[0]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{dead}"
    );
    let (_, counts) = unix_request(&socket, "GET", "/v1/notify/status", None).await;
    assert_eq!(counts["dead"], 1);

    hook.answer(&[]);
    let id = dead[0]["id"].as_str().expect("id");
    let (status, retried) = unix_request(
        &socket,
        "POST",
        &format!("/v1/notify/outbox/{id}/retry"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    let got = hook.wait_for(3).await;
    assert_eq!(got.last().map(|r| r.status), Some(200));
    // A pending one is not a dead letter to retry; dead letters are purged.
    let (status, _) = unix_request(
        &socket,
        "POST",
        &format!("/v1/notify/outbox/{id}/retry"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, purged) =
        unix_request(&socket, "DELETE", "/v1/notify/outbox?status=dead", None).await;
    assert_eq!(status, StatusCode::OK, "{purged}");
    assert_eq!(purged["purged"], 0);
}

/// clawd killed while notifications wait for their receiver: after the
/// restart each is delivered once.
#[tokio::test]
async fn a_kill_with_notifications_pending_loses_and_doubles_none() {
    let mut gw = Gateway::start_with(&config("")).await;
    let admin = gw.admin().await;
    // Busy at first: "come back in 2 s".
    let hook = Receiver::start(&[]).await;
    hook.answer(&[429; 100]);
    add_channel(
        &gw,
        &admin,
        json!({"kind": "webhook", "name": "busy", "target": hook.url, "events": ["finished"], "scope": "all"}),
    )
    .await;
    for _ in 0..100 {
        gw.finished_run(&admin, 0).await;
    }
    let (_, counts) = gw.get("/api/notify/status", &admin).await;
    assert_eq!(
        counts["pending"].as_u64().unwrap_or(0) + counts["delivered"].as_u64().unwrap_or(0),
        100
    );
    gw.kill();
    // Accepted only from the new clawd: a request the killed one had sent
    // is answered "later" even if it is read after the kill.
    gw.relaunch();
    hook.answer(&[]);
    // On PostgreSQL what the killed clawd had claimed waits out its lease.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let delivered: std::collections::HashMap<String, usize> = hook
            .received()
            .iter()
            .filter(|r| r.status == 200)
            .fold(Default::default(), |mut m, r| {
                *m.entry(r.header("webhook-id").to_owned()).or_default() += 1;
                m
            });
        if delivered.len() == 100 {
            assert!(delivered.values().all(|n| *n == 1), "{delivered:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of 100 delivered",
            delivered.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The receiver has answered; the sender records each answer just after.
    loop {
        let (_, counts) = gw.get("/api/notify/status", &admin).await;
        if counts["delivered"] == 100 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{counts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_silent_runner_is_reported_once() {
    let gw = Gateway::start_with(&config("runner_lost_secs = 1\n")).await;
    let admin = gw.admin().await;
    let hook = Receiver::start(&[]).await;
    add_channel(
        &gw,
        &admin,
        json!({"kind": "webhook", "name": "ops", "target": hook.url, "events": ["runner_lost"]}),
    )
    .await;
    let (run_id, _) = gw.agent_run(&admin, "fix the flaky test").await;
    let got = hook.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let note = got[0].json();
    assert_eq!(note["kind"], "runner_lost");
    assert_eq!(note["runId"], run_id.as_str());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.received().len(), 1, "reported once");
}

#[tokio::test]
async fn channels_are_their_owners_and_global_ones_are_for_administrators() {
    let gw = Gateway::start_with(&config("")).await;
    let admin = gw.admin().await;
    let olivia = gw.user(&admin, "olivia", "operator").await;
    let vera = gw.user(&admin, "vera", "viewer").await;
    let hook = Receiver::start(&[]).await;
    let hers = add_channel(
        &gw,
        &olivia,
        json!({"kind": "webhook", "name": "hers", "target": hook.url}),
    )
    .await;
    let id = hers["channel"]["id"].as_str().expect("id");
    // A viewer may be told too, but not change another's channel.
    add_channel(
        &gw,
        &vera,
        json!({"kind": "ntfy", "name": "vera's", "target": hook.url}),
    )
    .await;
    let (status, _) = gw
        .call(
            reqwest::Method::DELETE,
            &format!("/api/notify/channels/{id}"),
            Some(&vera),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = gw
        .post(
            "/api/notify/channels",
            &olivia,
            json!({"kind": "webhook", "name": "all", "target": hook.url, "global": true}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    add_channel(
        &gw,
        &admin,
        json!({"kind": "webhook", "name": "team", "target": hook.url, "global": true}),
    )
    .await;
    let (_, vera_sees) = gw.get("/api/notify/channels", &vera).await;
    let names: Vec<&str> = vera_sees
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["vera's", "team"]);
    let (status, changed) = gw
        .call(
            reqwest::Method::PATCH,
            &format!("/api/notify/channels/{id}"),
            Some(&olivia),
            Some(json!({"events": ["finished"], "scope": "all"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["events"], json!(["finished"]));
    let (status, body) = gw
        .call(
            reqwest::Method::PATCH,
            &format!("/api/notify/channels/{id}"),
            Some(&olivia),
            Some(json!({"events": []})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// Prune removes delivered and dead-lettered notifications older than 7
/// days, and never a pending one.
#[tokio::test]
async fn prune_removes_notifications_done_with_over_a_week_ago() {
    let gw = Gateway::start_with(&config("")).await;
    let admin = gw.admin().await;
    let hook = Receiver::start(&[]).await;
    add_channel(
        &gw,
        &admin,
        json!({"kind": "webhook", "name": "all", "target": hook.url, "events": ["finished"], "scope": "all"}),
    )
    .await;
    for _ in 0..3 {
        gw.finished_run(&admin, 0).await;
    }
    assert_eq!(hook.wait_for(3).await.len(), 3);
    let socket = gw.data().join("control.sock");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ids: Vec<String> = loop {
        let (_, done) =
            unix_request(&socket, "GET", "/v1/notify/outbox?status=delivered", None).await;
        let ids: Vec<String> = done
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["id"].as_str().map(str::to_owned))
            .collect();
        if ids.len() == 3 {
            break ids;
        }
        assert!(std::time::Instant::now() < deadline, "{done}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let week_ago = claw_testkit::now_secs() * 1000 - 8 * 24 * 3600 * 1000;
    gw.sql(&format!(
        "UPDATE outbox SET done_at = {week_ago} WHERE id = '{}'",
        ids[0]
    ));
    gw.sql(&format!(
        "UPDATE outbox SET status = 'dead', done_at = {week_ago} WHERE id = '{}'",
        ids[1]
    ));
    gw.sql(&format!(
        "UPDATE outbox SET status = 'pending', done_at = NULL, created_at = {week_ago}, \
         next_at = {} WHERE id = '{}'",
        week_ago + 30 * 24 * 3600 * 1000,
        ids[2]
    ));
    let (status, _) = unix_request(&socket, "POST", "/v1/prune", Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, left) = unix_request(&socket, "GET", "/v1/notify/outbox", None).await;
    let left: Vec<(&str, &str)> = left
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["id"].as_str().unwrap_or_default(),
                d["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(left, [(ids[2].as_str(), "pending")]);
}

/// A channel on loopback added while private targets were allowed gets
/// nothing once they are not: the address in its URL is checked at every
/// delivery, as names are by the resolver.
#[tokio::test]
async fn turning_private_targets_off_stops_channels_that_use_them() {
    let gw = Gateway::start_with(&config("notify_max_attempts = 1\n")).await;
    let admin = gw.admin().await;
    let hook = Receiver::start(&[]).await;
    add_channel(
        &gw,
        &admin,
        json!({"kind": "webhook", "name": "lan", "target": hook.url, "events": ["finished"], "scope": "all"}),
    )
    .await;
    std::fs::write(
        gw.data().join("clawd.toml"),
        format!("{TEST_CONFIG}notify_max_attempts = 1\n"),
    )
    .expect("config");
    gw.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gw.log().contains("configuration reloaded") {
        assert!(std::time::Instant::now() < deadline, "{}", gw.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.finished_run(&admin, 0).await;
    let dead = dead_letters(&gw).await;
    assert!(
        dead[0]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("notify_allow_private_targets is off")),
        "{dead}"
    );
    assert!(hook.received().is_empty(), "nothing reached the receiver");
}
