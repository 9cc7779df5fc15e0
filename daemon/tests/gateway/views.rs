//! The human and control APIs answer in the contract's types: every view
//! the test kit offers decodes from the real clawd.

use claw_proto::api::{CreateRunRequest, QueuedCommand};
use claw_proto::control::Status;
use claw_proto::wire::{EventType, Role, RunStatus, ServerMessage};
use reqwest::Method;
use serde_json::json;

use crate::common::{ADMIN, Gateway};

#[tokio::test]
async fn every_view_decodes_into_the_contracts_types() {
    let gw = Gateway::start().await;
    assert_eq!(gw.health().await.status, "ok");
    assert!(gw.auth_status().await.setup_required);
    let admin = gw.admin().await;
    assert_eq!(gw.me(&admin).await.user.username, ADMIN);
    let users = gw.users(&admin).await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].role, Role::Admin);

    let created = gw
        .create_run_with(
            &admin,
            &serde_json::from_value::<CreateRunRequest>(
                json!({ "command": "claude -p views", "metadata": { "ticket": 7 } }),
            )
            .expect("a run request"),
        )
        .await;
    assert_eq!(created.status, RunStatus::Pending);
    assert_eq!(created.capability_token.len(), 64);
    let id = created.id.clone();
    let mut ws = gw.websocket(&admin).await;
    ws.send(json!({ "type": "subscribe", "runId": id })).await;
    let subscribed: ServerMessage = ws.next_as("subscribed").await;
    assert!(matches!(subscribed, ServerMessage::Subscribed { run_id } if run_id == id));

    let runner = gw.runner(&id, &created.capability_token);
    runner.started().await;
    runner.event_ok("stdout", "one\n").await;
    match ws.next_as("event").await {
        ServerMessage::Event {
            event_type, data, ..
        } => assert_eq!(
            (event_type, data.as_str()),
            (
                EventType::Marker,
                r#"{"event":"started","command":"claude"}"#
            )
        ),
        other => panic!("{other:?}"),
    }
    let queued: QueuedCommand = gw
        .send_as(
            Method::POST,
            &format!("/api/runs/{id}/command"),
            &admin,
            Some(json!({ "command": "git status" })),
        )
        .await;
    let pending = runner.pending_commands().await;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].id.as_str(), pending[0].command.as_str()),
        (queued.command_id.as_str(), "git status")
    );
    runner.finished(0).await;

    let run = gw.run(&admin, &id).await;
    assert_eq!(run.run.status, RunStatus::Done);
    assert_eq!(run.run.exit_code, Some(0));
    assert_eq!(run.run.event_count, 3);
    assert_eq!(run.run.metadata, Some(json!({ "ticket": 7 })));
    assert_eq!(gw.runs(&admin).await, std::slice::from_ref(&run.run));
    let events = gw.events(&admin, &id, 1).await;
    let kinds: Vec<(u64, EventType)> = events.iter().map(|e| (e.sequence, e.kind)).collect();
    assert_eq!(kinds, [(2, EventType::Stdout), (3, EventType::Marker)]);
    assert_eq!(gw.status(&admin).await.runs.done, 1);
    assert!(
        gw.audit(&admin)
            .await
            .iter()
            .any(|a| a.action == "run.create")
    );
    assert!(gw.audit_verify(&admin).await.ok);

    let status: Status = gw.control_status().await;
    assert_eq!(status.runs.done, 1);
    assert_eq!(
        status.listeners.https,
        format!("https://127.0.0.1:{}", gw.port)
    );
    let shown: claw_proto::api::RunDetail = gw.control_get(&format!("/v1/runs/{id}")).await;
    assert_eq!(shown.commands.map(|c| c.len()), Some(1));
}
