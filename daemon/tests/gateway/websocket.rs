//! The browser WebSocket: replay then live, in order, no gaps or duplicates.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::Gateway;

fn batch(from: u64, to: u64) -> Vec<Value> {
    (from..=to)
        .map(|i| json!({ "type": "stdout", "data": format!("line {i}"), "sequence": i }))
        .collect()
}

#[tokio::test]
async fn replay_then_live_in_order_without_gaps_or_duplicates() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    runner.batch(batch(1, 50)).await;

    let mut ws = gw.websocket(&admin).await;
    ws.send(json!({ "type": "subscribe", "runId": run_id, "afterSequence": 10 }))
        .await;
    assert_eq!(
        ws.next().await,
        json!({ "type": "subscribed", "runId": run_id })
    );

    // Live events arrive while the replay may still be running; resends of
    // already stored sequences must not show up twice.
    let writer = async {
        for chunk in 0..10u64 {
            let from = 51 + chunk * 10;
            let (status, body) = runner.batch(batch(from.saturating_sub(3), from + 9)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    let reader = async {
        let mut seen = Vec::new();
        while seen.len() < 140 {
            let msg = ws.next_of("event").await;
            assert_eq!(msg["runId"], run_id.as_str());
            assert_eq!(msg["eventType"], "stdout");
            let seq = msg["sequence"].as_u64().expect("sequence");
            assert_eq!(msg["data"], format!("line {seq}"));
            assert!(msg["eventId"].is_i64() && msg["timestamp"].is_string());
            seen.push(seq);
        }
        seen
    };
    let ((), seen) = tokio::join!(writer, reader);
    assert_eq!(seen, (11..=150).collect::<Vec<_>>());

    // Notices for commands and stop reach the subscriber too.
    runner.event("marker", r#"{"event":"started"}"#, None).await;
    gw.post(
        &format!("/api/runs/{run_id}/command"),
        &admin,
        json!({"command": "git status"}),
    )
    .await;
    let queued = ws.next_of("command_queued").await;
    assert_eq!(queued["command"], "git status");
    let command_id = queued["commandId"].as_str().expect("id").to_owned();
    runner.ack(&command_id, json!({"result": "clean"})).await;
    let done = ws.next_of("command_completed").await;
    assert_eq!(done["result"], "clean");
    assert_eq!(done["status"], "completed");
    gw.post(&format!("/api/runs/{run_id}/stop"), &admin, json!({}))
        .await;
    assert_eq!(ws.next_of("stop_requested").await["runId"], run_id.as_str());
    runner
        .event("marker", r#"{"event":"finished","exitCode":130}"#, None)
        .await;
    let status = ws.next_of("run_status").await;
    assert_eq!(status["status"], "stopped");
    // Once: the run list's copy is not sent to a socket that follows the run.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    ws.send(json!({"type": "ping"})).await;
    loop {
        let message = ws.next().await;
        assert_ne!(message["type"], "run_status", "sent twice: {message}");
        if message["type"] == "pong" {
            break;
        }
    }

    let (_, health) = gw.call(Method::GET, "/api/health", None, None).await;
    assert_eq!(health["connections"]["clients"], 1);
    assert_eq!(health["connections"]["subscriptions"], 1);
}

#[tokio::test]
async fn malformed_messages_get_errors_and_the_connection_stays() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let mut ws = gw.websocket(&admin).await;
    ws.send_text("{not json").await;
    assert_eq!(ws.next().await["type"], "error");
    ws.send(json!({"type": "dance"})).await;
    assert_eq!(ws.next().await["type"], "error");
    ws.send(json!({"type": "subscribe", "runId": "no-such-run"}))
        .await;
    let err = ws.next().await;
    assert_eq!(err["type"], "error");
    assert!(
        err["message"]
            .as_str()
            .expect("message")
            .contains("unknown run")
    );
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next().await, json!({"type": "pong"}));
}

#[tokio::test]
async fn websocket_needs_a_session() {
    let gw = Gateway::start().await;
    let resp = gw
        .client
        .get(gw.url("/ws"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// A page that loaded a run as pending and subscribed after its runner
/// started still learns that it runs: every subscription sends the run's
/// current status after the stored events.
#[tokio::test]
async fn a_subscription_sends_the_runs_current_status_after_its_events() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    runner.started().await;
    runner.event_ok("stdout", "one\n").await;
    let mut ws = gw.websocket(&admin).await;
    ws.send(json!({"type": "subscribe", "runId": run_id})).await;
    ws.next_of("subscribed").await;
    let mut kinds = Vec::new();
    let status = loop {
        let message = ws.next().await;
        if message["type"] == "run_status" {
            break message;
        }
        kinds.push(message["type"].clone());
    };
    assert_eq!(kinds, ["event", "event"], "the stored events come first");
    assert_eq!(status["runId"], run_id.as_str());
    assert_eq!(status["status"], "running");
}
