//! Live notices come from the store after the commit that made them: a
//! browser that hears of a command, an answer, an artifact or a stop finds
//! it stored, and hears of them in the order they were committed.

use serde_json::json;

use crate::common::Gateway;

#[tokio::test]
async fn notices_arrive_after_their_commit_and_in_commit_order() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    runner.started().await;
    let mut ws = gw.websocket(&admin).await;
    ws.send(json!({ "type": "subscribe", "runId": run_id }))
        .await;
    ws.next_of("subscribed").await;

    let (_, queued) = gw
        .post(
            &format!("/api/runs/{run_id}/command"),
            &admin,
            json!({ "command": "git status" }),
        )
        .await;
    let command_id = queued["commandId"].as_str().expect("command id").to_owned();
    let (_, pending) = runner.commands().await;
    assert_eq!(pending[0]["id"], command_id.as_str());
    runner.ack(&command_id, json!({ "result": "clean" })).await;
    let (_, uploaded) = runner.upload("notes.txt", b"notes").await;
    let artifact_id = uploaded["artifactId"]
        .as_str()
        .expect("artifact")
        .to_owned();
    gw.post(&format!("/api/runs/{run_id}/stop"), &admin, json!({}))
        .await;

    let mut order = Vec::new();
    while order.len() < 4 {
        let message = ws.next().await;
        let kind = message["type"].as_str().unwrap_or("").to_owned();
        // Each notice finds its row stored.
        match kind.as_str() {
            "command_queued" | "command_completed" => {
                let (_, commands) = gw
                    .get(&format!("/api/runs/{run_id}/commands"), &admin)
                    .await;
                let stored = &commands[0];
                assert_eq!(stored["id"], command_id.as_str());
                if kind == "command_completed" {
                    assert_eq!(stored["status"], "completed");
                    assert_eq!(stored["result"], "clean");
                }
            }
            "artifact_added" => {
                assert_eq!(message["artifactId"], artifact_id.as_str());
                let (_, artifacts) = gw
                    .get(&format!("/api/runs/{run_id}/artifacts"), &admin)
                    .await;
                assert_eq!(artifacts[0]["id"], artifact_id.as_str());
            }
            "stop_requested" => {
                let (_, run) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
                assert!(run["stopRequestedAt"].is_string(), "{run}");
            }
            _ => continue,
        }
        order.push(kind);
    }
    assert_eq!(
        order,
        [
            "command_queued",
            "command_completed",
            "artifact_added",
            "stop_requested"
        ]
    );
}
