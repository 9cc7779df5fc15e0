//! Approvals through the gateway alone (a signed runner stands in for
//! claw-runner; runner/tests/approvals.rs drives the real agent): made from
//! `approval_request` events, decided once, delivered as commands that
//! come again until answered, live to every socket.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Gateway, Runner};

fn request(id: &str) -> String {
    json!({
        "requestId": id, "kind": "tool", "tool": "Bash",
        "input": {"command": "touch made.txt"}, "summary": "touch made.txt",
        "reason": "make the file", "timeoutSecs": 600,
        "suggestions": [{"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": "touch:*"}], "behavior": "allow", "destination": "session"}]
    })
    .to_string()
}

/// A running agent run whose runner asked for approval `r-1`: (run id, token, approval id).
async fn waiting_run(gw: &Gateway, admin: &str) -> (String, String, String) {
    let created = gw
        .create_run_with(
            admin,
            &claw_proto::api::CreateRunRequest {
                agent: Some(claw_proto::agent::AgentKind::Claude),
                ..Default::default()
            },
        )
        .await;
    let runner = gw.runner(&created.id, &created.capability_token);
    runner.started().await;
    runner.event_ok("approval_request", &request("r-1")).await;
    let (_, pending) = gw
        .get(
            &format!("/api/approvals?status=pending&runId={}", created.id),
            admin,
        )
        .await;
    let id = pending[0]["id"].as_str().expect("approval id").to_owned();
    (created.id, created.capability_token, id)
}

async fn decide(gw: &Gateway, session: &str, id: &str, body: Value) -> (StatusCode, Value) {
    gw.post(&format!("/api/approvals/{id}/decision"), session, body)
        .await
}

#[tokio::test]
async fn a_request_waits_as_an_approval_and_the_run_as_waiting() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, _, id) = waiting_run(&gw, &admin).await;
    let (status, approval) = gw.get(&format!("/api/approvals/{id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(approval["runId"], run_id.as_str());
    assert_eq!(approval["requestId"], "r-1");
    assert_eq!(approval["status"], "pending");
    assert_eq!(approval["input"]["command"], "touch made.txt");
    assert_eq!(approval["reason"], "make the file");
    assert_eq!(approval["suggestions"][0]["type"], "addRules");
    assert_eq!(gw.run(&admin, &run_id).await.run.status.as_str(), "waiting");
    let (_, runs) = gw.get("/api/runs?status=waiting", &admin).await;
    assert_eq!(runs.as_array().expect("runs").len(), 1);
    let (_, status_view) = gw.get("/api/status", &admin).await;
    assert_eq!(status_view["runs"]["waiting"], 1);
    // A bad status filter says which there are.
    let (status, body) = gw.get("/api/approvals?status=maybe", &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("pending")),
        "{body}"
    );
}

#[tokio::test]
async fn two_operators_at_once_one_wins_the_other_hears_who() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let alice = gw.user(&admin, "alice", "operator").await;
    let bob = gw.user(&admin, "bob", "operator").await;
    let (run_id, token, id) = waiting_run(&gw, &admin).await;
    let (first, second) = tokio::join!(
        decide(&gw, &alice, &id, json!({"decision": "allow"})),
        decide(&gw, &bob, &id, json!({"decision": "deny", "message": "no"}))
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let (winner, loser) = if first.0 == StatusCode::OK {
        (first.1, second.1)
    } else {
        (second.1, first.1)
    };
    let who = winner["decidedBy"].as_str().expect("decidedBy");
    let how = winner["status"].as_str().expect("status");
    assert!(
        loser["error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("{how} by {who}"))),
        "{loser}"
    );
    // One decision reaches the runner, and the run runs again.
    let runner = gw.runner(&run_id, &token);
    let commands = runner.pending_commands().await;
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].kind, claw_proto::wire::CommandKind::Decision);
    let decision: claw_proto::agent::Decision =
        serde_json::from_str(&commands[0].command).expect("a decision");
    assert_eq!(decision.request_id, "r-1");
    assert_eq!(decision.by.as_deref(), Some(who));
    assert_eq!(gw.run(&admin, &run_id).await.run.status.as_str(), "running");
}

#[tokio::test]
async fn a_viewer_may_look_but_not_decide_and_bad_decisions_are_refused() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let viewer = gw.user(&admin, "vera", "viewer").await;
    let (_, _, id) = waiting_run(&gw, &admin).await;
    let (status, list) = gw.get("/api/approvals", &viewer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().expect("list").len(), 1);
    let (status, _) = decide(&gw, &viewer, &id, json!({"decision": "allow"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (body, why) in [
        (json!({"decision": "maybe"}), "expected `allow` or `deny`"),
        (json!({"decision": "deny", "scope": "session"}), "session"),
        (
            json!({"decision": "allow", "answers": {"q": "a"}}),
            "answers are for questions",
        ),
        (
            json!({"decision": "deny", "message": "x".repeat(2001)}),
            "longer than 2000",
        ),
    ] {
        let (status, reply) = decide(&gw, &admin, &id, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| e.contains(why)),
            "{body}: {reply}"
        );
    }
    let (status, _) = decide(
        &gw,
        &admin,
        "no-such-approval",
        json!({"decision": "allow"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, still) = gw.get(&format!("/api/approvals/{id}"), &admin).await;
    assert_eq!(still["status"], "pending");
}

#[tokio::test]
async fn a_replayed_decision_changes_nothing() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token, id) = waiting_run(&gw, &admin).await;
    let send = || async {
        let response = gw
            .client
            .request(
                Method::POST,
                gw.url(&format!("/api/approvals/{id}/decision")),
            )
            .bearer_auth(&admin)
            .header("Idempotency-Key", "decide-once")
            .json(&json!({"decision": "allow", "scope": "session"}))
            .send()
            .await
            .expect("request");
        let replayed = response.headers().get("idempotent-replayed").is_some();
        (
            response.status(),
            replayed,
            response.json::<Value>().await.expect("json"),
        )
    };
    let (status, replayed, first) = send().await;
    assert_eq!((status, replayed), (StatusCode::OK, false), "{first}");
    let (status, replayed, again) = send().await;
    assert_eq!((status, replayed), (StatusCode::OK, true), "{again}");
    assert_eq!(again["decidedAt"], first["decidedAt"]);
    let commands = gw.runner(&run_id, &token).pending_commands().await;
    assert_eq!(commands.len(), 1, "one decision queued");
}

/// An agent run's commands come again until the runner answers them (a
/// reply lost with the connection loses nothing); a raw run's come once.
#[tokio::test]
async fn an_agent_runs_commands_come_again_until_answered() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token, id) = waiting_run(&gw, &admin).await;
    decide(&gw, &admin, &id, json!({"decision": "allow"})).await;
    let runner: Runner<'_> = gw.runner(&run_id, &token);
    let first = runner.pending_commands().await;
    let again = runner.pending_commands().await;
    assert_eq!(first.len(), 1);
    assert_eq!(again.len(), 1, "sent again: not answered yet");
    assert_eq!(first[0].id, again[0].id);
    let (status, _) = runner
        .ack(
            &first[0].id,
            json!({"result": "allowed written to the agent"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(runner.pending_commands().await.is_empty());
    let (_, approval) = gw.get(&format!("/api/approvals/{id}"), &admin).await;
    assert_eq!(approval["delivered"], true);

    let (raw_run, raw_token) = gw.create_run(&admin).await;
    let raw = gw.runner(&raw_run, &raw_token);
    raw.started().await;
    gw.post(
        &format!("/api/runs/{raw_run}/command"),
        &admin,
        json!({"command": "git status"}),
    )
    .await;
    assert_eq!(raw.pending_commands().await.len(), 1);
    assert!(raw.pending_commands().await.is_empty(), "a raw run's once");
}

#[tokio::test]
async fn approvals_reach_every_socket_live_and_the_runner_resolves_them() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    // A socket that follows no run still hears of approvals.
    let mut ws = gw.websocket(&admin).await;
    let (run_id, token, id) = waiting_run(&gw, &admin).await;
    let made = ws.next_of("approval").await;
    assert_eq!(made["approval"]["id"], id.as_str());
    assert_eq!(made["approval"]["status"], "pending");
    // The runner says it expired: the approval follows the runner's word.
    gw.runner(&run_id, &token)
        .event_ok(
            "approval_resolved",
            &json!({"requestId": "r-1", "status": "expired", "message": "no decision arrived"})
                .to_string(),
        )
        .await;
    let expired = ws.next_of("approval").await;
    assert_eq!(expired["approval"]["status"], "expired");
    assert_eq!(gw.run(&admin, &run_id).await.run.status.as_str(), "running");
    let (status, body) = decide(&gw, &admin, &id, json!({"decision": "allow"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("expired")),
        "{body}"
    );
    // A run that ends cancels what it still asked.
    let runner = gw.runner(&run_id, &token);
    runner.event_ok("approval_request", &request("r-2")).await;
    assert_eq!(
        ws.next_of("approval").await["approval"]["status"],
        "pending"
    );
    runner.finished(0).await;
    let cancelled = ws.next_of("approval").await;
    assert_eq!(cancelled["approval"]["status"], "cancelled");
    assert_eq!(cancelled["approval"]["message"], "the run ended");
}

/// Data in an `approval_request` that is not a request is kept as the
/// event and makes no approval; the run goes on.
#[tokio::test]
async fn a_malformed_request_is_kept_as_an_event_and_makes_no_approval() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let created = gw
        .create_run_with(
            &admin,
            &claw_proto::api::CreateRunRequest {
                agent: Some(claw_proto::agent::AgentKind::Claude),
                ..Default::default()
            },
        )
        .await;
    let runner = gw.runner(&created.id, &created.capability_token);
    runner.started().await;
    runner.event_ok("approval_request", "{not json").await;
    runner
        .event_ok("approval_request", &json!({"requestId": 7}).to_string())
        .await;
    let (_, all) = gw.get("/api/approvals?status=all", &admin).await;
    assert_eq!(all, json!([]));
    assert_eq!(gw.events(&admin, &created.id, 0).await.len(), 3);
    assert_eq!(
        gw.run(&admin, &created.id).await.run.status.as_str(),
        "running"
    );
}
