//! End-to-end with the real Claude Code CLI (installed by `scripts/test`
//! from `tests/agent/package-lock.json`), the real clawd and claw-runner,
//! and the test kit's scripted model server standing in for the API: the
//! CLI really edits files and runs commands in a temporary working
//! directory.

mod kit;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use claw_testkit::model::{self, Rule, Script, Step};
use claw_testkit::{Gateway, TEST_CONFIG, binary_or_build};
use kit::{data, of_type, session, summary};
use serde_json::{Value, json};

/// The script of the first test: an edit, a command, an answer.
fn editing(work: &Path) -> Script {
    Script {
        rules: vec![
            Rule {
                when: "fix the greeting".to_owned(),
                steps: vec![
                    Step {
                        text: Some("I will fix it.".to_owned()),
                        ..Step::tool(
                            "Edit",
                            json!({"file_path": work.join("greeting.txt"), "old_string": "hello", "new_string": "goodbye"}),
                        )
                    },
                    Step::tool(
                        "Bash",
                        json!({"command": "touch made-by-bash.txt", "description": "mark it"}),
                    ),
                    Step::text("Done: the greeting is **fixed**."),
                ],
            },
            Rule {
                when: "say hi".to_owned(),
                steps: vec![Step::text("hi there")],
            },
        ],
    }
}

fn agent_run(prompt: &str) -> Value {
    json!({
        "agent": "claude",
        "prompt": prompt,
        "permissionMode": "acceptEdits",
        "allowedTools": ["Bash(touch:*)"],
    })
}

#[tokio::test]
async fn an_agent_run_edits_runs_a_command_and_answers() {
    let s = session(editing, agent_run("please fix the greeting")).await;
    let events = s.wait_for("turn_end", 1).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    for kind in [
        "session",
        "prompt",
        "message",
        "tool_call",
        "tool_result",
        "file_change",
        "turn_end",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {}", summary(&events));
    }
    let calls: Vec<Value> = of_type(&events, "tool_call")
        .into_iter()
        .map(data)
        .collect();
    let tools: Vec<&str> = calls.iter().filter_map(|c| c["tool"].as_str()).collect();
    assert_eq!(tools, ["Edit", "Bash"]);
    assert_eq!(calls[1]["summary"], "touch made-by-bash.txt");
    let results: Vec<Value> = of_type(&events, "tool_result")
        .into_iter()
        .map(data)
        .collect();
    assert!(results.iter().all(|r| r["isError"] == false), "{results:?}");
    let change = data(of_type(&events, "file_change")[0]);
    assert_eq!(change["path"], "greeting.txt");
    let diff = change["diff"].as_str().expect("diff");
    assert!(
        diff.contains("-hello") && diff.contains("+goodbye"),
        "{diff}"
    );
    let messages: Vec<Value> = of_type(&events, "message").into_iter().map(data).collect();
    let last = messages.last().expect("a message");
    assert!(
        last["html"]
            .as_str()
            .expect("html")
            .contains("<strong>fixed</strong>"),
        "{last}"
    );
    let turn = data(of_type(&events, "turn_end")[0]);
    assert_eq!(turn["ok"], true);
    assert!(turn["costUsd"].as_f64().expect("cost") > 0.0, "{turn}");
    // The CLI really did it.
    assert_eq!(
        std::fs::read_to_string(s.work.path().join("greeting.txt")).expect("file"),
        "goodbye\n"
    );
    assert!(s.work.path().join("made-by-bash.txt").exists());
    let (_, run) = s.gw.get(&format!("/api/runs/{}", s.run_id), &s.admin).await;
    assert_eq!(run["status"], "running");
    assert!(run["agentSessionId"].is_string(), "{run}");
    // Sequences are whole: nothing lost, nothing twice.
    let sequences: Vec<u64> = events
        .iter()
        .filter_map(|e| e["sequence"].as_u64())
        .collect();
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_follow_up_prompt_reaches_the_model() {
    let s = session(editing, agent_run("please fix the greeting")).await;
    s.wait_for("turn_end", 1).await;
    s.prompt("now say hi").await;
    let events = s.wait_for("turn_end", 2).await;
    let prompts: Vec<Value> = of_type(&events, "prompt").into_iter().map(data).collect();
    assert_eq!(prompts.len(), 2);
    assert_eq!(prompts[1]["text"], "now say hi");
    assert_eq!(prompts[1]["by"], "admin");
    let seen = model::read_log(&s.log);
    assert!(
        seen.iter().any(|r| r.prompt == "now say hi"),
        "the model never saw the follow-up: {seen:?}"
    );
    let messages: Vec<Value> = of_type(&events, "message").into_iter().map(data).collect();
    assert_eq!(messages.last().expect("answer")["text"], "hi there");
    let turns: Vec<Value> = of_type(&events, "turn_end").into_iter().map(data).collect();
    let total = turns[1]["totalCostUsd"].as_f64().expect("total");
    let first = turns[0]["costUsd"].as_f64().expect("cost");
    let second = turns[1]["costUsd"].as_f64().expect("cost");
    assert!((total - first - second).abs() < 1e-9, "{turns:?}");
}

#[tokio::test]
async fn an_interrupt_ends_a_long_turn() {
    let script = |_: &Path| Script {
        rules: vec![Rule {
            when: "take your time".to_owned(),
            steps: vec![Step {
                delay_ms: 60_000,
                ..Step::text("finally")
            }],
        }],
    };
    let s = session(script, agent_run("take your time")).await;
    // The turn has begun once the model has been asked.
    let deadline = Instant::now() + Duration::from_secs(30);
    while model::read_log(&s.log).is_empty() {
        assert!(Instant::now() < deadline, "the model was never asked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let asked = Instant::now();
    let (status, body) =
        s.gw.post(
            &format!("/api/runs/{}/interrupt", s.run_id),
            &s.admin,
            json!({}),
        )
        .await;
    assert_eq!(status.as_u16(), 202, "{body}");
    let events = s.wait_for("turn_end", 1).await;
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "the turn ended only after {:?}",
        asked.elapsed()
    );
    let turn = data(of_type(&events, "turn_end")[0]);
    assert!(
        !of_type(&events, "message")
            .iter()
            .any(|m| data(m)["text"] == "finally"),
        "the interrupted answer arrived anyway: {turn}"
    );
}

#[tokio::test]
async fn a_stop_ends_the_agent_cleanly() {
    let s = session(editing, agent_run("please fix the greeting")).await;
    s.wait_for("turn_end", 1).await;
    let (status, _) =
        s.gw.post(&format!("/api/runs/{}/stop", s.run_id), &s.admin, json!({}))
            .await;
    assert_eq!(status.as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, run) = s.gw.get(&format!("/api/runs/{}", s.run_id), &s.admin).await;
        if run["status"] == "stopped" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not stopped: {run}\n{}",
            s.runner_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A prompt to an agent that has ended says so.
    let (status, body) =
        s.gw.post(
            &format!("/api/runs/{}/prompts", s.run_id),
            &s.admin,
            json!({ "text": "are you there?" }),
        )
        .await;
    assert_eq!(status.as_u16(), 409, "{body}");
    assert!(
        body["error"].as_str().expect("error").contains("ended"),
        "{body}"
    );
}

/// clawd killed with SIGKILL in the middle of a turn and started again:
/// the runner's spool sends what it had, and no event is lost or doubled.
#[tokio::test]
async fn clawd_killed_mid_turn_loses_and_doubles_nothing() {
    let script = |work: &Path| Script {
        rules: vec![Rule {
            when: "slowly".to_owned(),
            steps: vec![
                Step::tool(
                    "Edit",
                    json!({"file_path": work.join("greeting.txt"), "old_string": "hello", "new_string": "bye"}),
                ),
                Step {
                    delay_ms: 3000,
                    ..Step::tool("Bash", json!({"command": "touch late.txt"}))
                },
                Step::text("all done"),
            ],
        }],
    };
    let mut s = session(script, agent_run("do it slowly")).await;
    s.wait_for("file_change", 1).await;
    s.gw.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.gw.relaunch();
    let events = s.wait_for("turn_end", 1).await;
    let sequences: Vec<u64> = events
        .iter()
        .filter_map(|e| e["sequence"].as_u64())
        .collect();
    assert_eq!(
        sequences,
        (1..=sequences.len() as u64).collect::<Vec<_>>(),
        "{}",
        summary(&events)
    );
    let calls = of_type(&events, "tool_call").len();
    let results = of_type(&events, "tool_result").len();
    assert_eq!((calls, results), (2, 2), "{}", summary(&events));
    assert!(s.work.path().join("late.txt").exists());
}

#[tokio::test]
async fn prompts_are_checked_before_they_are_queued() {
    let gw = Gateway::launch(binary_or_build("clawd", "clawd", env!("CARGO")))
        .config(&format!("{TEST_CONFIG}prompt_max_bytes = 100\n"))
        .quiet()
        .start();
    let admin = gw.admin().await;
    let (_, agent) = gw
        .post("/api/runs", &admin, json!({ "agent": "claude" }))
        .await;
    let agent_run = agent["id"].as_str().expect("id").to_owned();
    let (raw, _) = gw.create_run(&admin).await;
    let send = |run: String, text: String| {
        let (gw, admin) = (&gw, &admin);
        async move {
            gw.post(
                &format!("/api/runs/{run}/prompts"),
                admin,
                json!({ "text": text }),
            )
            .await
        }
    };
    let (status, body) = send(agent_run.clone(), "  ".to_owned()).await;
    assert_eq!(status.as_u16(), 400, "{body}");
    let (status, body) = send(agent_run.clone(), "x".repeat(101)).await;
    assert_eq!(status.as_u16(), 413, "{body}");
    let (status, body) = send(raw, "hello".to_owned()).await;
    assert_eq!(status.as_u16(), 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("not an agent")
    );
    let (status, _) = send(agent_run, "hello".to_owned()).await;
    assert_eq!(status.as_u16(), 201);
    // Only an agent takes a prompt at creation.
    let (status, _) = gw
        .post(
            "/api/runs",
            &admin,
            json!({ "command": "x", "prompt": "y" }),
        )
        .await;
    assert_eq!(status.as_u16(), 400);
    let (status, _) = gw
        .post(
            "/api/runs",
            &admin,
            json!({ "agent": "claude", "permissionMode": "bypassPermissions" }),
        )
        .await;
    assert_eq!(status.as_u16(), 403);
}

/// An agent that never initialises fails the run with the reason.
#[tokio::test]
async fn an_agent_that_never_starts_fails_the_run_with_the_reason() {
    let gw = Gateway::launch(binary_or_build("clawd", "clawd", env!("CARGO")))
        .config(TEST_CONFIG)
        .quiet()
        .start();
    let admin = gw.admin().await;
    let (_, created) = gw
        .post(
            "/api/runs",
            &admin,
            json!({ "agent": "claude", "prompt": "hi" }),
        )
        .await;
    let run_id = created["id"].as_str().expect("id");
    let token = created["capabilityToken"].as_str().expect("token");
    let home = tempfile::tempdir().expect("home");
    let fake = home.path().join("claude");
    std::fs::write(&fake, "#!/bin/sh\necho 'no API key' >&2\nexit 3\n").expect("script");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let out = gw
        .runner_command(env!("CARGO_BIN_EXE_claw-runner"), home.path())
        .env("CLAW_STATE_DIR", home.path().join("state"))
        .env("CLAW_CLAUDE_PROGRAM", &fake)
        .args([
            "start", "--run-id", run_id, "--token", token, "--agent", "claude",
        ])
        .output()
        .expect("runner");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, run) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
    assert_eq!(run["status"], "failed");
    let (_, events) = gw.get(&format!("/api/runs/{run_id}/events"), &admin).await;
    let text = events.to_string();
    assert!(text.contains("exited before it initialised"), "{text}");
    assert!(
        text.contains("no API key"),
        "the agent's stderr is kept: {text}"
    );
}

fn clawctl(gw: &Gateway, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new(binary_or_build("clawctl", "claw-ctl", env!("CARGO")))
        .arg("--socket")
        .arg(gw.data().join("control.sock"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("clawctl");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.unwrap_or_default().as_bytes());
    }
    let out = child.wait_with_output().expect("clawctl");
    assert!(
        out.status.success(),
        "clawctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The administrator's side: create an agent run, prompt it, follow it
/// as a conversation, all with clawctl.
#[tokio::test]
async fn clawctl_creates_prompts_and_follows_an_agent_run() {
    let mut s = session(editing, json!({ "agent": "claude" })).await;
    // A run made by clawctl, its first prompt from standard input.
    let created: Value = serde_json::from_str(&clawctl(
        &s.gw,
        &[
            "--json",
            "runs",
            "create",
            "--agent",
            "claude",
            "--prompt",
            "-",
            "--permission-mode",
            "acceptEdits",
            "--allowed-tool",
            "Bash(touch:*)",
        ],
        Some("please fix the greeting"),
    ))
    .expect("created");
    let token = created["capabilityToken"]
        .as_str()
        .expect("token")
        .to_owned();
    s.run_id = created["id"].as_str().expect("id").to_owned();
    if let Some(mut old) = s.runner.take() {
        let _ = old.kill();
        let _ = old.wait();
    }
    s.start_runner(&token);
    s.wait_for("turn_end", 1).await;
    let queued = clawctl(&s.gw, &["runs", "prompt", &s.run_id, "now say hi"], None);
    assert!(queued.contains("queued"), "{queued}");
    s.wait_for("turn_end", 2).await;
    clawctl(&s.gw, &["runs", "stop", &s.run_id], None);
    let shown = clawctl(&s.gw, &["runs", "follow", &s.run_id], None);
    for expected in [
        "> root: please fix the greeting",
        "● Edit: ",
        "  ✎ greeting.txt (+1 -1)",
        "● Bash: touch made-by-bash.txt",
        "Done: the greeting is **fixed**.",
        "── turn: ",
        "> root: now say hi",
        "hi there",
        "[run stopped",
    ] {
        assert!(shown.contains(expected), "no {expected:?} in:\n{shown}");
    }
}
