//! End-to-end with the real Claude Code CLI (installed by `scripts/test`
//! from `tests/agent/package-lock.json`), the real clawd and claw-runner,
//! and the test kit's scripted model server standing in for the API: the
//! CLI really edits files and runs commands in a temporary working
//! directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use claw_testkit::model::{self, Rule, Script, Step};
use claw_testkit::{Gateway, TEST_CONFIG, binary_or_build};
use serde_json::{Value, json};

/// The pinned CLI; the suite fails without it rather than pretending.
fn claude() -> PathBuf {
    if let Some(path) = std::env::var_os("CLAW_TEST_CLAUDE") {
        return PathBuf::from(path);
    }
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/agent/node_modules/.bin/claude");
    assert!(
        path.exists(),
        "the Claude Code CLI is not installed: run `npm ci` in tests/agent (scripts/test does)"
    );
    path
}

struct Session {
    gw: Gateway,
    admin: String,
    home: tempfile::TempDir,
    work: tempfile::TempDir,
    model: String,
    log: PathBuf,
    runner: Option<Child>,
    run_id: String,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(mut runner) = self.runner.take() {
            let _ = runner.kill();
            let _ = runner.wait();
        }
    }
}

/// The scripted model (its script knows the working directory), clawd,
/// and an agent run created with `request`, its runner started.
async fn session(script: impl FnOnce(&Path) -> Script, request: Value) -> Session {
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    std::fs::write(work.path().join("greeting.txt"), "hello\n").expect("file");
    let script = script(work.path());
    let log = home.path().join("model.jsonl");
    let (bound, _server) = model::serve(
        script,
        "127.0.0.1:0".parse().expect("addr"),
        Some(log.clone()),
    )
    .await
    .expect("model server");
    let gw = Gateway::launch(binary_or_build("clawd", "clawd", env!("CARGO")))
        .config(TEST_CONFIG)
        .quiet()
        .same_port()
        .start();
    let admin = gw.admin().await;
    let (status, created) = gw.post("/api/runs", &admin, request).await;
    assert_eq!(status.as_u16(), 201, "{created}");
    let run_id = created["id"].as_str().expect("id").to_owned();
    let token = created["capabilityToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let line = created["runnerCommand"].as_str().expect("runner command");
    assert_eq!(
        line,
        format!("claw-runner start --run-id {run_id} --token {token} --agent claude")
    );
    let mut s = Session {
        gw,
        admin,
        home,
        work,
        model: format!("http://{bound}"),
        log,
        runner: None,
        run_id,
    };
    s.start_runner(&token);
    s
}

impl Session {
    fn start_runner(&mut self, token: &str) {
        let runner = Command::new(env!("CARGO_BIN_EXE_claw-runner"))
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.home.path())
            .env(
                "CLAW_GATEWAY_URL",
                format!("https://localhost:{}", self.gw.port),
            )
            .env(
                "CLAW_HMAC_SECRET_FILE",
                self.gw.data().join("secrets/hmac-secret"),
            )
            .env("CLAW_CA_CERT", self.gw.data().join("certs/server.crt"))
            .env("CLAW_STATE_DIR", self.home.path().join("state"))
            .env("CLAW_CLAUDE_PROGRAM", claude())
            .env("ANTHROPIC_BASE_URL", &self.model)
            .env("ANTHROPIC_API_KEY", "scripted")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .args([
                "start",
                "--run-id",
                &self.run_id,
                "--token",
                token,
                "--agent",
                "claude",
            ])
            .arg("--cwd")
            .arg(self.work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.home.path().join("runner.stderr"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("start claw-runner");
        self.runner = Some(runner);
    }

    fn runner_log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("runner.stderr")).unwrap_or_default()
    }

    async fn events(&self) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let after = all
                .last()
                .map_or(0, |e: &Value| e["sequence"].as_u64().unwrap_or(0));
            let (_, page) = self
                .gw
                .get(
                    &format!("/api/runs/{}/events?after={after}", self.run_id),
                    &self.admin,
                )
                .await;
            let page = page.as_array().cloned().unwrap_or_default();
            let full = page.len() == 1000;
            all.extend(page);
            if !full {
                return all;
            }
        }
    }

    /// Waits until `count` events of `kind` are stored; all events then.
    async fn wait_for(&self, kind: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let events = self.events().await;
            if events.iter().filter(|e| e["type"] == kind).count() >= count {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "no {count} {kind} events within 90 s: {}\nrunner: {}",
                summary(&events),
                self.runner_log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn prompt(&self, text: &str) {
        let (status, body) = self
            .gw
            .post(
                &format!("/api/runs/{}/prompts", self.run_id),
                &self.admin,
                json!({ "text": text }),
            )
            .await;
        assert_eq!(status.as_u16(), 201, "{body}");
    }
}

fn summary(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("{} {}", e["sequence"], e["type"].as_str().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn data(event: &Value) -> Value {
    serde_json::from_str(event["data"].as_str().expect("data")).expect("structured data")
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

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
async fn a_request_the_mode_does_not_cover_is_refused_at_once_and_recorded() {
    let script = |_: &Path| Script {
        rules: vec![Rule {
            when: "make a file".to_owned(),
            steps: vec![
                Step::tool("Bash", json!({"command": "touch not-allowed.txt"})),
                Step::text("I could not."),
            ],
        }],
    };
    let s = session(
        script,
        json!({ "agent": "claude", "prompt": "make a file" }),
    )
    .await;
    let events = s.wait_for("turn_end", 1).await;
    let notes: Vec<String> = of_type(&events, "info")
        .iter()
        .filter_map(|e| e["data"].as_str().map(str::to_owned))
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("denied Bash") && n.contains("permission mode (default)")),
        "{notes:?}"
    );
    let result = data(of_type(&events, "tool_result")[0]);
    assert_eq!(result["isError"], true, "{result}");
    assert!(!s.work.path().join("not-allowed.txt").exists());
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
    let out = Command::new(env!("CARGO_BIN_EXE_claw-runner"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.path())
        .env("CLAW_GATEWAY_URL", format!("https://localhost:{}", gw.port))
        .env(
            "CLAW_HMAC_SECRET_FILE",
            gw.data().join("secrets/hmac-secret"),
        )
        .env("CLAW_CA_CERT", gw.data().join("certs/server.crt"))
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
