//! Two gateways on one PostgreSQL database, as docs/OPERATIONS.md sets
//! them up: the real claw-runner and Claude Code CLI are connected to
//! instance A, the person decides and prompts through instance B, and
//! what they do reaches the agent through A's WebSocket.

mod kit;

use std::time::{Duration, Instant};

use claw_testkit::model::{Rule, Script, Step};
use claw_testkit::{ADMIN, ADMIN_PASSWORD, Gateway, TEST_CONFIG, TempCluster, binary_or_build};
use kit::{data, of_type, session_configured};
use serde_json::{Value, json};

/// Polling is the runner's fallback: set far beyond the test's deadlines,
/// only the push through A can deliver in time.
const RUNNER_TOML: &str = "poll_secs = 300\n";

async fn pending_on(gw: &Gateway, session: &str, run_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, list) = gw
            .get(
                &format!("/api/approvals?status=pending&runId={run_id}"),
                session,
            )
            .await;
        assert_eq!(status.as_u16(), 200, "{list}");
        if let Some(first) = list.as_array().and_then(|l| l.first()) {
            return first.clone();
        }
        assert!(Instant::now() < deadline, "no pending approval on B");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_and_a_prompt_given_through_b_reach_the_agent_on_a() {
    let cluster = TempCluster::start();
    let config = format!(
        "{TEST_CONFIG}[store]\nbackend = \"postgres\"\ndatabase_url = \"{}\"\n",
        cluster.url()
    );
    let s = session_configured(
        &config,
        RUNNER_TOML,
        |_| Script {
            rules: vec![
                Rule {
                    when: "make a file".to_owned(),
                    steps: vec![
                        Step::tool(
                            "Bash",
                            json!({"command": "touch made-through-b.txt", "description": "make the file"}),
                        ),
                        Step::text("It is made."),
                    ],
                },
                Rule {
                    when: "now say goodbye".to_owned(),
                    steps: vec![Step::text("Goodbye from the agent.")],
                },
            ],
        },
        json!({ "agent": "claude", "prompt": "please make a file" }),
    )
    .await;
    let b = Gateway::launch(binary_or_build("clawd", "clawd", env!("CARGO")))
        .dir(s.gw.instance_dir())
        .config(&config)
        .quiet()
        .start();
    let on_b = b
        .login(ADMIN, ADMIN_PASSWORD, None)
        .await
        .expect("the administrator on B");

    // The agent's request, made through A, is an approval B shows.
    let approval = pending_on(&b, &on_b, &s.run_id).await;
    assert_eq!(approval["summary"], "touch made-through-b.txt");
    assert!(!s.work.path().join("made-through-b.txt").exists());
    let id = approval["id"].as_str().expect("id");
    let (status, decided) = b
        .post(
            &format!("/api/approvals/{id}/decision"),
            &on_b,
            json!({"decision": "allow"}),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{decided}");
    assert_eq!(decided["status"], "allowed");

    let events = s.wait_for("turn_end", 1).await;
    assert!(s.work.path().join("made-through-b.txt").exists());
    let resolved: Vec<Value> = of_type(&events, "approval_resolved")
        .into_iter()
        .map(data)
        .collect();
    assert_eq!(resolved.len(), 1, "decided once: {resolved:?}");
    assert_eq!(resolved[0]["status"], "allowed");
    let result = data(of_type(&events, "tool_result")[0]);
    assert_eq!(result["isError"], false, "{result}");

    // The next instruction, sent through B.
    let (status, body) = b
        .post(
            &format!("/api/runs/{}/prompts", s.run_id),
            &on_b,
            json!({ "text": "now say goodbye" }),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{body}");
    let events = s.wait_for("turn_end", 2).await;
    assert!(
        of_type(&events, "message").iter().any(|e| data(e)["text"]
            .as_str()
            .is_some_and(|t| t.contains("Goodbye from the agent."))),
        "{}",
        kit::summary(&events)
    );
    // B's view of the run is A's.
    let (_, seen_on_b) = b
        .get(&format!("/api/runs/{}/events?after=0", s.run_id), &on_b)
        .await;
    assert_eq!(
        seen_on_b.as_array().map(Vec::len),
        Some(events.len()),
        "B reads what A stored"
    );
}
