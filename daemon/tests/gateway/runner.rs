//! The runner protocol: signing, replay, exactly-once events, batches,
//! markers, commands, stop and artifacts.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::Gateway;

async fn events(gw: &Gateway, session: &str, run_id: &str) -> Vec<Value> {
    let (status, body) = gw
        .get(&format!("/api/runs/{run_id}/events?limit=1000"), session)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().expect("events").clone()
}

#[tokio::test]
async fn run_lifecycle_from_create_to_finished() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let (_, run) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
    assert_eq!(run["status"], "pending");
    assert!(run.get("capabilityToken").is_none() && !run.to_string().contains(&token));

    let runner = gw.runner(&run_id, &token);
    runner.started().await;
    let (_, run) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
    assert_eq!(run["status"], "running");
    assert!(run["startedAt"].is_string());

    let (status, body) = runner.event("stdout", "hello\n", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true);
    assert!(body["eventId"].is_i64());
    runner.event("stderr", "warning: x\n", None).await;
    runner.finished(0).await;
    let (_, run) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
    assert_eq!(run["status"], "done");
    assert_eq!(run["exitCode"], 0);
    let all = events(&gw, &admin, &run_id).await;
    let kinds: Vec<&str> = all
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["marker", "stdout", "stderr", "marker"]);
    let seqs: Vec<u64> = all
        .iter()
        .map(|e| e["sequence"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(all[1]["data"], "hello\n");

    // A non-zero exit fails the run.
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    runner.started().await;
    runner.finished(3).await;
    let (_, run) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["exitCode"], 3);

    // Filtering and paging the run list.
    let (_, failed) = gw.get("/api/runs?status=failed", &admin).await;
    assert_eq!(failed.as_array().expect("runs").len(), 1);
    let (_, page) = gw.get("/api/runs?limit=1", &admin).await;
    assert_eq!(page[0]["id"], run_id, "newest first");
    let (status, _) = gw.get("/api/runs?status=bogus", &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn resent_sequences_are_stored_once() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    let (_, first) = runner.event("stdout", "one", Some(1)).await;
    let (_, second) = runner.event("stdout", "two", Some(2)).await;
    // The runner did not see the answer and sends both again.
    let (status, again) = runner.event("stdout", "one", Some(1)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["eventId"], first["eventId"]);
    let (_, again) = runner.event("stdout", "two", Some(2)).await;
    assert_eq!(again["eventId"], second["eventId"]);
    assert_eq!(events(&gw, &admin, &run_id).await.len(), 2);

    // A gap is refused and names the expected sequence.
    let (status, body) = runner.event("stdout", "five", Some(5)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().expect("error").contains('3'));
    assert_eq!(body["nextSequence"], 3, "machine-readable for the runner");
    // Without a sequence: appended.
    let (status, _) = runner.event("stdout", "three", None).await;
    assert_eq!(status, StatusCode::OK);
    let all = events(&gw, &admin, &run_id).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[2]["sequence"], 3);
}

#[tokio::test]
async fn batch_ingest_answers_one_id_per_event_in_order() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    let batch: Vec<Value> = (1..=200)
        .map(|i| json!({ "type": if i % 2 == 0 { "stderr" } else { "stdout" }, "data": format!("line {i}"), "sequence": i }))
        .collect();
    let (status, body) = runner.batch(batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<i64> = body["eventIds"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 200);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    // Overlapping resend: 150..=250 stores only 201..=250.
    let overlap: Vec<Value> = (150..=250)
        .map(|i| json!({ "type": "stdout", "data": format!("line {i}"), "sequence": i }))
        .collect();
    let (status, body) = runner.batch(overlap).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let again: Vec<i64> = body["eventIds"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_i64().expect("id"))
        .collect();
    assert_eq!(again[..51], ids[149..]);
    let (_, page) = gw
        .get(
            &format!("/api/runs/{run_id}/events?after=200&limit=1000"),
            &admin,
        )
        .await;
    let (status, beyond) = gw
        .get(
            &format!("/api/runs/{run_id}/events?after={}", u64::MAX),
            &admin,
        )
        .await;
    assert_eq!(
        (status, beyond),
        (StatusCode::OK, json!([])),
        "nothing after the largest sequence"
    );
    assert_eq!(page.as_array().expect("events").len(), 50);
    let (_, run) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
    assert_eq!(run["eventCount"], 250);

    // A bad event anywhere refuses the whole batch.
    let (status, _) = runner
        .batch(vec![
            json!({"type": "stdout", "data": "x"}),
            json!({"type": "nope", "data": "y"}),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, run) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
    assert_eq!(run["eventCount"], 250);
}

#[tokio::test]
async fn batch_over_the_configured_count_is_refused() {
    let gw = Gateway::start_with("rate_limit_per_minute = 0\nbatch_max_events = 10\n").await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let events: Vec<Value> = (0..11)
        .map(|i| json!({"type": "stdout", "data": i.to_string()}))
        .collect();
    let (status, body) = gw.runner(&run_id, &token).batch(events).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn signatures_skew_replays_and_tokens() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    let body = br#"{"type":"stdout","data":"x"}"#.to_vec();

    // Replay: the same signed request twice.
    let signed = runner.sign(Method::POST, "/api/ingest/event", body.clone());
    assert_eq!(runner.send(&signed).await.0, StatusCode::OK);
    let (status, reply) = runner.send(&signed).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    assert!(reply["error"].as_str().expect("error").contains("nonce"));

    // Tampered body with the original signature.
    let mut tampered = runner.sign(Method::POST, "/api/ingest/event", body.clone());
    tampered.body = br#"{"type":"stdout","data":"evil"}"#.to_vec();
    let (status, reply) = runner.send(&tampered).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply["error"], "invalid signature");

    // Clock skew beyond 300 s, correctly signed.
    for offset in [-301, 301] {
        let mut skewed = runner.sign(Method::POST, "/api/ingest/event", body.clone());
        skewed.timestamp += offset;
        runner.resign(&mut skewed);
        let (status, reply) = runner.send(&skewed).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
        assert!(reply["error"].as_str().expect("error").contains("clock"));
    }
    // Extreme timestamps are refused, not overflowed.
    for extreme in [i64::MIN, i64::MAX] {
        let mut skewed = runner.sign(Method::POST, "/api/ingest/event", body.clone());
        skewed.timestamp = extreme;
        runner.resign(&mut skewed);
        let (status, reply) = runner.send(&skewed).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    }
    // Within the window is fine.
    let mut skewed = runner.sign(Method::POST, "/api/ingest/event", body.clone());
    skewed.timestamp -= 200;
    runner.resign(&mut skewed);
    assert_eq!(runner.send(&skewed).await.0, StatusCode::OK);

    // Missing headers.
    let resp = gw
        .client
        .post(gw.url("/api/ingest/event"))
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let value: Value = resp.json().await.expect("json");
    assert!(
        value["error"]
            .as_str()
            .expect("error")
            .contains("x-signature")
    );

    // Wrong secret.
    let mut forged = runner.sign(Method::POST, "/api/ingest/event", body.clone());
    forged.signature = claw_proto::signing::sign(
        b"not the secret",
        &claw_proto::signing::SignedParts {
            method: "POST",
            path: "/api/ingest/event",
            body: &forged.body,
            timestamp: forged.timestamp,
            nonce: &forged.nonce,
            run_id: &run_id,
            capability_token: &token,
        },
    );
    assert_eq!(runner.send(&forged).await.0, StatusCode::UNAUTHORIZED);

    // A valid signature with another run's token.
    let (other_run, _) = gw.create_run(&admin).await;
    let wrong = gw.runner(&other_run, &token);
    let (status, reply) = wrong.event("stdout", "x", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    // Unknown run.
    let ghost = gw.runner("00000000-0000-0000-0000-000000000000", &token);
    assert_eq!(
        ghost.event("stdout", "x", None).await.0,
        StatusCode::NOT_FOUND
    );

    // Only the accepted requests stored anything.
    assert_eq!(events(&gw, &admin, &run_id).await.len(), 2);
}

#[tokio::test]
async fn malformed_and_oversized_bodies() {
    let gw = Gateway::start_with("rate_limit_per_minute = 0\nbody_limit_bytes = 4096\n").await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    for bad in [
        &b"{not json"[..],
        br#"{"type":"stdout"}"#,
        br#"{"type":"stdout","data":5}"#,
        br#"{"type":"stdout","data":"x","sequence":-1}"#,
        b"",
    ] {
        let signed = runner.sign(Method::POST, "/api/ingest/event", bad.to_vec());
        let (status, reply) = runner.send(&signed).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{:?}: {reply}",
            String::from_utf8_lossy(bad)
        );
        assert!(reply["error"].is_string());
    }
    let big = json!({"type": "stdout", "data": "x".repeat(8192)})
        .to_string()
        .into_bytes();
    let signed = runner.sign(Method::POST, "/api/ingest/event", big);
    let (status, reply) = runner.send(&signed).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{reply}");
    assert!(reply["error"].is_string());
    // Human API too.
    let (status, reply) = gw
        .call(
            Method::POST,
            "/api/runs",
            Some(&admin),
            Some(json!({"metadata": "y".repeat(8192)})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{reply}");
    let resp = gw
        .client
        .post(gw.url("/api/auth/login"))
        .header("Content-Type", "application/json")
        .body("[1,2")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (status, _) = gw.call(Method::PUT, "/api/runs", Some(&admin), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(events(&gw, &admin, &run_id).await.len(), 0);
}

#[tokio::test]
async fn secrets_are_redacted_before_storage() {
    let gw =
        Gateway::start_with("rate_limit_per_minute = 0\nredact_patterns = [\"corp-[0-9]{6}\"]\n")
            .await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    runner
        .event(
            "stdout",
            "key sk-ant-api03-abcdefghijklmnopqrstuvwxyz and corp-123456 done",
            None,
        )
        .await;
    let all = events(&gw, &admin, &run_id).await;
    assert_eq!(all[0]["data"], "key [REDACTED] and [REDACTED] done");
}

#[tokio::test]
async fn commands_allowlist_and_acks() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);

    // Not running yet.
    let (status, _) = gw
        .post(
            &format!("/api/runs/{run_id}/command"),
            &admin,
            json!({"command": "git status"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    runner.started().await;

    let (status, body) = gw
        .post(
            &format!("/api/runs/{run_id}/command"),
            &admin,
            json!({"command": "rm -rf /"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["allowed"]
            .as_array()
            .expect("allowlist")
            .iter()
            .any(|c| c == "git status")
    );
    let (_, audit) = gw.get("/api/audit?action=command.rejected", &admin).await;
    assert_eq!(audit[0]["details"], "rm -rf /");
    assert_eq!(audit[0]["target"], run_id.as_str());
    assert_eq!(audit[0]["username"], "admin");

    let (status, body) = gw
        .post(
            &format!("/api/runs/{run_id}/command"),
            &admin,
            json!({"command": "git diff --stat"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let command_id = body["commandId"].as_str().expect("id").to_owned();

    let (status, pending) = runner.commands().await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    assert_eq!(pending.as_array().expect("list").len(), 1);
    assert_eq!(pending[0]["id"], command_id.as_str());
    assert_eq!(pending[0]["command"], "git diff --stat");
    assert!(pending[0]["created_at"].is_string());
    let (_, again) = runner.commands().await;
    assert_eq!(again.as_array().expect("list").len(), 0, "delivered once");

    let (status, _) = runner
        .ack(
            &command_id,
            json!({"result": "1 file changed\ntoken=abcdef123456"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = runner.ack("no-such-command", json!({"result": "x"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = gw
        .get(&format!("/api/runs/{run_id}/commands"), &admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["status"], "completed");
    assert_eq!(list[0]["result"], "1 file changed\ntoken=[REDACTED]");

    // Extended allowlist from the configuration.
    drop(runner);
    let gw2 = Gateway::start_with(
        "rate_limit_per_minute = 0\nallowed_commands = [\"pytest -q <path>...\"]\n",
    )
    .await;
    let admin2 = gw2.admin().await;
    let (run2, token2) = gw2.create_run(&admin2).await;
    gw2.runner(&run2, &token2).started().await;
    let (status, _) = gw2
        .post(
            &format!("/api/runs/{run2}/command"),
            &admin2,
            json!({"command": "pytest -q tests"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = gw2
        .post(
            &format!("/api/runs/{run2}/command"),
            &admin2,
            json!({"command": "pytest -q --pdb tests"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an option the entry does not name"
    );
}

#[tokio::test]
async fn stop_reaches_the_runner_and_ends_the_run_as_stopped() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    runner.started().await;
    let (status, body) = gw
        .post(&format!("/api/runs/{run_id}/stop"), &admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stop_id = body["commandId"].as_str().expect("id").to_owned();
    let (_, pending) = runner.commands().await;
    assert_eq!(pending[0]["command"], "__STOP__");
    assert_eq!(pending[0]["id"], stop_id.as_str());
    runner.ack(&stop_id, json!({"result": "SIGINT sent"})).await;
    runner.finished(130).await;
    let (_, run) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
    assert_eq!(run["status"], "stopped");
    let (status, _) = gw
        .post(&format!("/api/runs/{run_id}/stop"), &admin, json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an ended run cannot be stopped"
    );

    // A run that never started is stopped at once.
    let (pending_run, _) = gw.create_run(&admin).await;
    gw.post(&format!("/api/runs/{pending_run}/stop"), &admin, json!({}))
        .await;
    let (_, run) = gw.get(&format!("/api/runs/{pending_run}"), &admin).await;
    assert_eq!(run["status"], "stopped");
}

#[tokio::test]
async fn artifacts_upload_download_and_traversal() {
    let gw = Gateway::start_with("rate_limit_per_minute = 0\nartifact_limit_bytes = 65536\n").await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);

    let diff = b"diff --git a/x b/x\n+added\n";
    let (status, body) = runner.upload("latest.diff", diff).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let diff_id = body["artifactId"].as_str().expect("id").to_owned();

    // Traversal in the uploaded name stays inside the run's folder.
    let (status, body) = runner.upload("../../../../etc/evil.txt", b"gotcha").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let evil_id = body["artifactId"].as_str().expect("id").to_owned();
    let expected = gw
        .data()
        .join("artifacts")
        .join(&run_id)
        .join(format!("{evil_id}_evil.txt"));
    assert_eq!(
        std::fs::read(&expected).expect("stored inside the run folder"),
        b"gotcha"
    );
    assert!(!gw.data().join("etc").exists());

    let (status, _) = runner.upload("payload.exe", b"MZ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = runner.upload("big.log", &vec![b'x'; 70_000]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    let (_, list) = gw
        .get(&format!("/api/runs/{run_id}/artifacts"), &admin)
        .await;
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|a| a["filename"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["latest.diff", "evil.txt"]);
    assert!(
        !list.to_string().contains("/artifacts/"),
        "no server paths leak"
    );

    let resp = gw
        .client
        .get(gw.url(&format!("/api/artifacts/{diff_id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"latest.diff\""
    );
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.bytes().await.expect("bytes").as_ref(), diff);

    let (status, _) = gw.get("/api/artifacts/does-not-exist", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = gw
        .call(
            Method::DELETE,
            &format!("/api/artifacts/{evil_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!expected.exists());

    // Deleting the run removes its events, artifacts and folder.
    let (status, _) = gw
        .call(
            Method::DELETE,
            &format!("/api/runs/{run_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!gw.data().join("artifacts").join(&run_id).exists());
    assert_eq!(
        gw.get(&format!("/api/runs/{run_id}"), &admin).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        gw.get(&format!("/api/artifacts/{diff_id}"), &admin).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn health_answers_its_documented_shape_without_authentication() {
    let gw = Gateway::start().await;
    let resp = gw
        .client
        .get(gw.url("/api/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    assert!(
        body["timestamp"]
            .as_str()
            .expect("timestamp")
            .ends_with('Z')
    );
    assert_eq!(
        body["connections"],
        json!({"clients": 0, "subscriptions": 0})
    );
    assert_eq!(body["checks"], json!({"database": "ok"}));
    assert_eq!(body.as_object().expect("object").len(), 4);
}

/// Paging back through the run list with `before` and `beforeId` lists every
/// run once, even runs created in the same millisecond.
#[tokio::test]
async fn paging_runs_skips_none_created_in_the_same_millisecond() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    // Created at once, so the writer stores several in one millisecond.
    let creates = (0..40).map(|_| gw.create_run(&admin));
    let mut created: Vec<String> = futures_util::future::join_all(creates)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut seen = Vec::new();
    let mut query = "/api/runs?limit=7".to_owned();
    loop {
        let (status, page) = gw.get(&query, &admin).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page = page.as_array().expect("runs").clone();
        let Some(last) = page.last() else { break };
        query = format!(
            "/api/runs?limit=7&before={}&beforeId={}",
            last["createdAt"].as_str().expect("createdAt"),
            last["id"].as_str().expect("id")
        );
        seen.extend(
            page.iter()
                .map(|run| run["id"].as_str().unwrap_or("").to_owned()),
        );
    }
    let times: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(times.len(), seen.len(), "a run listed twice: {seen:?}");
    seen.sort();
    created.sort();
    assert_eq!(seen, created);
}
