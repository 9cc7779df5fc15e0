//! The agent tests' kit: clawd, the scripted model server and a real
//! claw-runner driving the real Claude Code CLI (installed by
//! `scripts/test` from `tests/agent/package-lock.json`) in a temporary
//! working directory, and what the tests read of the run.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use claw_testkit::model::{self, Script};
use claw_testkit::{Gateway, TEST_CONFIG, binary_or_build};
use serde_json::{Value, json};

/// The pinned CLI; the suite fails without it rather than pretending.
pub fn claude() -> PathBuf {
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

pub struct Session {
    pub gw: Gateway,
    pub admin: String,
    pub home: tempfile::TempDir,
    pub work: tempfile::TempDir,
    pub model: String,
    pub log: PathBuf,
    pub runner: Option<Child>,
    pub run_id: String,
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
pub async fn session(script: impl FnOnce(&Path) -> Script, request: Value) -> Session {
    session_with(TEST_CONFIG, script, request).await
}

/// [`session`] with clawd configured by `config`.
pub async fn session_with(
    config: &str,
    script: impl FnOnce(&Path) -> Script,
    request: Value,
) -> Session {
    session_configured(config, "", script, request).await
}

/// [`session`] with clawd configured by `config` and claw-runner by
/// `runner_toml` (its `~/.config/claw/runner.toml`).
pub async fn session_configured(
    config: &str,
    runner_toml: &str,
    script: impl FnOnce(&Path) -> Script,
    request: Value,
) -> Session {
    let home = tempfile::tempdir().expect("home");
    let runner_config = home.path().join(".config/claw");
    std::fs::create_dir_all(&runner_config).expect("runner config dir");
    std::fs::write(runner_config.join("runner.toml"), runner_toml).expect("runner.toml");
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
        .config(config)
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
    pub fn start_runner(&mut self, token: &str) {
        let runner = self
            .gw
            .runner_command(env!("CARGO_BIN_EXE_claw-runner"), self.home.path())
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

    pub fn runner_log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("runner.stderr")).unwrap_or_default()
    }

    pub async fn events(&self) -> Vec<Value> {
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
    pub async fn wait_for(&self, kind: &str, count: usize) -> Vec<Value> {
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

    pub async fn prompt(&self, text: &str) {
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

pub fn summary(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("{} {}", e["sequence"], e["type"].as_str().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn data(event: &Value) -> Value {
    serde_json::from_str(event["data"].as_str().expect("data")).expect("structured data")
}

pub fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}
