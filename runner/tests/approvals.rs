//! Approvals end to end: the real Claude Code CLI asks (its default mode
//! puts `touch` and edits to the user), claw-runner holds the request and
//! records it, clawd makes it an approval, a person decides through the
//! API, and the decision reaches the agent once — across a killed clawd
//! and a cut connection too.

mod kit;

use std::path::Path;
use std::time::{Duration, Instant};

use claw_testkit::model::{self, Rule, Script, Step};
use kit::{Session, data, of_type, session, session_with};
use serde_json::{Value, json};

fn asks(when: &str, steps: Vec<Step>) -> impl FnOnce(&Path) -> Script {
    let when = when.to_owned();
    move |_: &Path| Script {
        rules: vec![Rule { when, steps }],
    }
}

fn touch(file: &str) -> Step {
    Step::tool(
        "Bash",
        json!({"command": format!("touch {file}"), "description": "make the file"}),
    )
}

fn agent_run(prompt: &str) -> Value {
    json!({ "agent": "claude", "prompt": prompt })
}

impl Session {
    async fn approvals(&self, status: &str) -> Vec<Value> {
        let (code, body) = self
            .gw
            .get(
                &format!("/api/approvals?status={status}&runId={}", self.run_id),
                &self.admin,
            )
            .await;
        assert_eq!(code.as_u16(), 200, "{body}");
        body.as_array().cloned().unwrap_or_default()
    }

    /// Waits for the run's next pending approval.
    async fn pending(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(first) = self.approvals("pending").await.into_iter().next() {
                return first;
            }
            assert!(
                Instant::now() < deadline,
                "no pending approval within 90 s: {}\nrunner: {}",
                kit::summary(&self.events().await),
                self.runner_log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn decide(&self, id: &str, body: Value) -> Value {
        let (code, reply) = self
            .gw
            .post(&format!("/api/approvals/{id}/decision"), &self.admin, body)
            .await;
        assert_eq!(code.as_u16(), 200, "{reply}");
        reply
    }

    async fn run_status(&self) -> String {
        let (_, run) = self
            .gw
            .get(&format!("/api/runs/{}", self.run_id), &self.admin)
            .await;
        run["status"].as_str().unwrap_or_default().to_owned()
    }

    /// What the model was told by tool results, over every request.
    fn tool_results_seen(&self) -> Vec<String> {
        model::read_log(&self.log)
            .into_iter()
            .flat_map(|seen| seen.results)
            .collect()
    }

    async fn approval(&self, id: &str) -> Value {
        self.gw
            .get(&format!("/api/approvals/{id}"), &self.admin)
            .await
            .1
    }
}

fn resolutions(events: &[Value]) -> Vec<Value> {
    of_type(events, "approval_resolved")
        .into_iter()
        .map(data)
        .collect()
}

#[tokio::test]
async fn an_allowed_request_runs_and_the_model_gets_its_result() {
    let s = session(
        asks(
            "make a file",
            vec![touch("made-by-agent.txt"), Step::text("It is **made**.")],
        ),
        agent_run("please make a file"),
    )
    .await;
    let approval = s.pending().await;
    assert_eq!(approval["tool"], "Bash");
    assert_eq!(approval["kind"], "tool");
    assert_eq!(approval["summary"], "touch made-by-agent.txt");
    assert_eq!(approval["reason"], "make the file");
    assert_eq!(s.run_status().await, "waiting");
    assert!(!s.work.path().join("made-by-agent.txt").exists());

    let id = approval["id"].as_str().expect("id");
    let decided = s.decide(id, json!({"decision": "allow"})).await;
    assert_eq!(decided["status"], "allowed");
    assert_eq!(decided["decidedBy"], "admin");
    let events = s.wait_for("turn_end", 1).await;
    assert!(s.work.path().join("made-by-agent.txt").exists());
    let resolved = resolutions(&events);
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert_eq!(resolved[0]["status"], "allowed");
    let result = data(of_type(&events, "tool_result")[0]);
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(s.approval(id).await["delivered"], true);
    assert_eq!(s.run_status().await, "running");
    // The decision is audited.
    let (_, audit) = s.gw.get("/api/audit", &s.admin).await;
    assert!(
        audit
            .as_array()
            .expect("audit")
            .iter()
            .any(|e| e["action"] == "approval.decide"
                && e["details"]
                    .as_str()
                    .is_some_and(|d| d.contains("allow: Bash touch made-by-agent.txt"))),
        "{audit}"
    );
}

#[tokio::test]
async fn a_denial_with_a_message_reaches_the_model_and_nothing_runs() {
    let s = session(
        asks(
            "make a file",
            vec![touch("denied.txt"), Step::text("I did not.")],
        ),
        agent_run("please make a file"),
    )
    .await;
    let approval = s.pending().await;
    s.decide(
        approval["id"].as_str().expect("id"),
        json!({"decision": "deny", "message": "not in this repository"}),
    )
    .await;
    let events = s.wait_for("turn_end", 1).await;
    assert!(!s.work.path().join("denied.txt").exists());
    assert_eq!(resolutions(&events)[0]["status"], "denied");
    let told = s.tool_results_seen();
    assert!(
        told.iter()
            .any(|r| r.contains("admin denied this in claw: not in this repository")),
        "{told:?}"
    );
}

#[tokio::test]
async fn allowed_for_the_session_the_same_request_is_not_asked_again() {
    let s = session(
        asks(
            "make files",
            vec![
                touch("again.txt"),
                touch("again.txt"),
                Step::text("Both done."),
            ],
        ),
        agent_run("please make files"),
    )
    .await;
    let approval = s.pending().await;
    s.decide(
        approval["id"].as_str().expect("id"),
        json!({"decision": "allow", "scope": "session"}),
    )
    .await;
    let events = s.wait_for("turn_end", 1).await;
    let results: Vec<Value> = of_type(&events, "tool_result")
        .into_iter()
        .map(data)
        .collect();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results.iter().all(|r| r["isError"] == false), "{results:?}");
    assert_eq!(
        s.approvals("all").await.len(),
        1,
        "the second identical request was asked again"
    );
}

#[tokio::test]
async fn no_decision_in_time_denies_and_tells_the_model() {
    let s = session(
        asks(
            "make a file",
            vec![touch("late.txt"), Step::text("Nobody answered.")],
        ),
        json!({ "agent": "claude", "prompt": "please make a file", "approvalTimeoutSecs": 2 }),
    )
    .await;
    let approval = s.pending().await;
    let id = approval["id"].as_str().expect("id");
    let events = s.wait_for("turn_end", 1).await;
    assert!(!s.work.path().join("late.txt").exists());
    assert_eq!(resolutions(&events)[0]["status"], "expired");
    assert_eq!(s.approval(id).await["status"], "expired");
    let told = s.tool_results_seen();
    assert!(
        told.iter()
            .any(|r| r.contains("No decision arrived within 2 s")),
        "{told:?}"
    );
    // Too late now: the decision says what became of it.
    let (code, body) =
        s.gw.post(
            &format!("/api/approvals/{id}/decision"),
            &s.admin,
            json!({"decision": "allow"}),
        )
        .await;
    assert_eq!(code.as_u16(), 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("expired")),
        "{body}"
    );
}

/// clawd killed while the agent waits: the request is in the runner's
/// spool and in the store, the decision after the restart is applied once.
#[tokio::test]
async fn clawd_killed_while_an_approval_waits_then_decided_applies_once() {
    let mut s = session(
        asks(
            "make a file",
            vec![touch("after-restart.txt"), Step::text("Made.")],
        ),
        agent_run("please make a file"),
    )
    .await;
    let approval = s.pending().await;
    s.gw.kill();
    s.gw.relaunch();
    let again = s.pending().await;
    assert_eq!(
        again["id"], approval["id"],
        "the same approval after the restart"
    );
    s.decide(
        again["id"].as_str().expect("id"),
        json!({"decision": "allow"}),
    )
    .await;
    let events = s.wait_for("turn_end", 1).await;
    assert!(s.work.path().join("after-restart.txt").exists());
    assert_eq!(resolutions(&events).len(), 1, "applied once");
    assert_eq!(s.approvals("all").await.len(), 1);
}

/// The connection to the runner cut just after the decision: it reaches
/// the agent once, when the runner is back in touch.
#[tokio::test]
async fn a_decision_made_as_the_connection_drops_is_applied_once() {
    let mut s = session(
        asks(
            "make a file",
            vec![touch("after-cut.txt"), Step::text("Made.")],
        ),
        agent_run("please make a file"),
    )
    .await;
    let approval = s.pending().await;
    let id = approval["id"].as_str().expect("id").to_owned();
    s.decide(&id, json!({"decision": "allow"})).await;
    s.gw.kill();
    s.gw.relaunch();
    let events = s.wait_for("turn_end", 1).await;
    assert!(s.work.path().join("after-cut.txt").exists());
    assert_eq!(resolutions(&events).len(), 1, "applied once");
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.approval(&id).await["delivered"] != true {
        assert!(Instant::now() < deadline, "{}", s.approval(&id).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_question_is_answered_with_an_option() {
    let question = json!({"questions": [{
        "question": "Which colour should the button be?",
        "header": "Colour",
        "options": [
            {"label": "Red", "description": "warm"},
            {"label": "Blue", "description": "cool"}
        ],
        "multiSelect": false
    }]});
    let s = session(
        asks(
            "pick a colour",
            vec![
                Step::tool("AskUserQuestion", question),
                Step::text("Blue it is."),
            ],
        ),
        agent_run("please pick a colour"),
    )
    .await;
    let approval = s.pending().await;
    assert_eq!(approval["kind"], "question");
    assert_eq!(
        approval["input"]["questions"][0]["options"][1]["label"],
        "Blue"
    );
    s.decide(
        approval["id"].as_str().expect("id"),
        json!({"decision": "allow", "answers": {"Which colour should the button be?": "Blue"}}),
    )
    .await;
    s.wait_for("turn_end", 1).await;
    let told = s.tool_results_seen();
    assert!(told.iter().any(|r| r.contains("Blue")), "{told:?}");
}

#[tokio::test]
async fn a_plan_is_approved() {
    let s = session(
        asks(
            "plan the change",
            vec![
                Step::tool(
                    "ExitPlanMode",
                    json!({"plan": "1. Read the parser\n2. Fix **the bug**"}),
                ),
                Step::text("Starting."),
            ],
        ),
        json!({ "agent": "claude", "prompt": "please plan the change", "permissionMode": "plan" }),
    )
    .await;
    let approval = s.pending().await;
    assert_eq!(approval["kind"], "plan");
    assert!(
        approval["input"]["plan"]
            .as_str()
            .is_some_and(|p| p.contains("Fix **the bug**")),
        "{approval}"
    );
    s.decide(
        approval["id"].as_str().expect("id"),
        json!({"decision": "allow"}),
    )
    .await;
    let events = s.wait_for("turn_end", 1).await;
    assert_eq!(resolutions(&events)[0]["status"], "allowed");
    let told = s.tool_results_seen();
    assert!(
        told.iter().any(|r| r.to_lowercase().contains("approved")),
        "{told:?}"
    );
}

/// An approval asked while clawd is down waits in the runner's spool and
/// reaches clawd when it is back.
#[tokio::test]
async fn a_request_made_while_clawd_is_down_arrives_when_it_returns() {
    let mut s = session(
        asks(
            "make a file",
            vec![
                Step {
                    delay_ms: 1500,
                    ..touch("while-down.txt")
                },
                Step::text("Made."),
            ],
        ),
        agent_run("please make a file"),
    )
    .await;
    // The turn has begun: the model holds its answer for 1.5 s.
    s.wait_for("prompt", 1).await;
    s.gw.kill();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    s.gw.relaunch();
    let approval = s.pending().await;
    s.decide(
        approval["id"].as_str().expect("id"),
        json!({"decision": "allow"}),
    )
    .await;
    s.wait_for("turn_end", 1).await;
    assert!(s.work.path().join("while-down.txt").exists());
}

/// Interrupting the turn while the agent waits withdraws its request: the
/// approval is cancelled, not left for someone to decide.
#[tokio::test]
async fn an_interrupted_turn_withdraws_its_request() {
    let s = session(
        asks("make a file", vec![touch("never.txt"), Step::text("Made.")]),
        agent_run("please make a file"),
    )
    .await;
    let approval = s.pending().await;
    let id = approval["id"].as_str().expect("id").to_owned();
    let (status, body) =
        s.gw.post(
            &format!("/api/runs/{}/interrupt", s.run_id),
            &s.admin,
            json!({}),
        )
        .await;
    assert_eq!(status.as_u16(), 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = s.approval(&id).await;
        if now["status"] != "pending" {
            assert_eq!(now["status"], "cancelled", "{now}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still pending after the interrupt: {}\nrunner: {}",
            kit::summary(&s.events().await),
            s.runner_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!s.work.path().join("never.txt").exists());
    assert_eq!(s.run_status().await, "running");
}

/// The approval the real CLI asks for reaches a browser's push
/// subscription within a second, encrypted for it and signed by the gateway
/// (checked by an independent implementation: tests/push/receiver.py).
#[tokio::test]
async fn an_approval_reaches_a_subscribed_phone_within_a_second() {
    let rules = |_: &Path| Script {
        rules: vec![
            Rule {
                when: "make a file".to_owned(),
                steps: vec![touch("pushed.txt"), Step::text("Made.")],
            },
            Rule {
                when: "say hello".to_owned(),
                steps: vec![Step::text("hello")],
            },
        ],
    };
    let config = format!(
        "{}notify_allow_private_targets = true\n",
        claw_testkit::TEST_CONFIG
    );
    let s = session_with(&config, rules, agent_run("say hello")).await;
    s.wait_for("turn_end", 1).await;
    let (_, key) = s.gw.get("/api/notify/push/key", &s.admin).await;
    let receiver = claw_testkit::PushReceiver::start(key["publicKey"].as_str().expect("key"), &[]);
    let (status, channel) =
        s.gw.post("/api/notify/push", &s.admin, receiver.subscription.clone())
            .await;
    assert_eq!(status.as_u16(), 201, "{channel}");

    s.prompt("please make a file").await;
    let approval = s.pending().await;
    let pushes = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    let push = &pushes[0];
    assert_eq!(push["vapid"], "ok", "{push}");
    let note = &push["payload"];
    assert_eq!(note["kind"], "approval", "{push}");
    assert_eq!(note["tool"], "Bash");
    assert_eq!(note["summary"], "touch pushed.txt");
    assert_eq!(note["approvalId"], approval["id"]);
    let asked = humantime::parse_rfc3339_weak(approval["createdAt"].as_str().expect("at"))
        .expect("a time")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    let after = push["at"].as_f64().expect("at") - asked.as_secs_f64();
    assert!(after < 1.0, "pushed {after:.3} s after the request");
}
