//! Hosts end to end: an administrator adds a host, `claw-runner enroll`
//! spends its one-time token for the host's own key, `claw-runner serve`
//! shows the host online with its agents and workspaces, runs on it are
//! signed with its key (no gateway-wide secret on the host), and revoking
//! it cuts it off at once and for good.

mod kit;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use claw_testkit::model::{self, Rule, Script, Step};
use claw_testkit::{Gateway, TEST_CONFIG, binary_or_build, unix_request};
use serde_json::{Value, json};

fn gateway() -> Gateway {
    Gateway::launch(binary_or_build("clawd", "clawd", env!("CARGO")))
        .config(TEST_CONFIG)
        .quiet()
        .same_port()
        .start()
}

/// `clawctl hosts add NAME` as the control socket answers it.
async fn add_host(gw: &Gateway, name: &str) -> Value {
    let (status, added) = unix_request(
        &gw.data().join("control.sock"),
        "POST",
        "/v1/hosts",
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(status.as_u16(), 201, "{added}");
    added
}

/// claw-runner with nothing of the gateway's but its address and CA.
fn runner(gw: &Gateway, state: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_claw-runner"));
    command
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", state)
        .env("CLAW_STATE_DIR", state.join("state"))
        .env("CLAW_CLAUDE_PROGRAM", kit::claude())
        .stdin(Stdio::null());
    let _ = gw;
    command
}

fn enroll(gw: &Gateway, state: &Path, token: &str) -> Output {
    runner(gw, state)
        .args(["enroll", "--gateway"])
        .arg(format!("https://localhost:{}", gw.port))
        .arg("--ca-cert")
        .arg(gw.data().join("certs/server.crt"))
        .args(["--token", token])
        .output()
        .expect("claw-runner enroll")
}

fn serve(gw: &Gateway, state: &Path, workspace: &Path) -> Child {
    serve_with(gw, state, workspace, 3, None)
}

/// `claw-runner serve` offering `workspace` (and a directory that does not
/// exist), running at most `limit` sessions, its agent talking to `model`.
fn serve_with(
    gw: &Gateway,
    state: &Path,
    workspace: &Path,
    limit: u32,
    model: Option<&str>,
) -> Child {
    let config = state.join("runner.toml");
    std::fs::write(
        &config,
        format!(
            "workspaces = [{:?}, \"/no/such/dir\"]\nsession_limit = {limit}\n",
            workspace.display().to_string()
        ),
    )
    .expect("config");
    let mut command = runner(gw, state);
    if let Some(model) = model {
        command
            .env("ANTHROPIC_BASE_URL", model)
            .env("ANTHROPIC_API_KEY", "scripted")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_AUTOUPDATER", "1");
    }
    command
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(state.join("serve.stderr"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()
        .expect("claw-runner serve")
}

async fn host(gw: &Gateway, admin: &str, name: &str) -> Value {
    let (_, hosts) = gw.get("/api/hosts", admin).await;
    hosts
        .as_array()
        .and_then(|all| all.iter().find(|h| h["name"] == name))
        .cloned()
        .unwrap_or(Value::Null)
}

async fn wait_for_state(gw: &Gateway, admin: &str, name: &str, state: &str) -> Value {
    wait_for_host(gw, admin, name, |host| host["state"] == state).await
}

/// The host as the API shows it, once `shows` holds for it (30 s at most).
async fn wait_for_host(
    gw: &Gateway,
    admin: &str,
    name: &str,
    shows: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let host = host(gw, admin, name).await;
        if shows(&host) {
            return host;
        }
        assert!(Instant::now() < deadline, "not yet: {host}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The run's events are numbered 1, 2, 3 … with none missing or twice.
fn assert_contiguous(events: &[Value]) {
    let sequences: Vec<u64> = events
        .iter()
        .filter_map(|e| e["sequence"].as_u64())
        .collect();
    assert_eq!(
        sequences,
        (1..=sequences.len() as u64).collect::<Vec<_>>(),
        "{}",
        kit::summary(events)
    );
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_host_enrols_comes_online_signs_its_runs_and_is_cut_off_when_revoked() {
    let gw = gateway();
    let admin = gw.admin().await;
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");

    let added = add_host(&gw, "build-1").await;
    assert_eq!(added["host"]["state"], "pending");
    let token = added["enrolmentToken"].as_str().expect("token").to_owned();
    assert!(
        added["enrollCommand"]
            .as_str()
            .is_some_and(|c| c.contains(&token) && c.contains("--fingerprint")),
        "{added}"
    );

    let out = enroll(&gw, home.path(), &token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let identity = home.path().join("state/host.toml");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&identity)
            .expect("host.toml")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !std::fs::read_to_string(&identity)
            .expect("identity")
            .contains(&token)
    );
    // The token is spent.
    let again = enroll(&gw, home.path(), &token);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("used already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let mut service = serve(&gw, home.path(), work.path());
    let online = wait_for_state(&gw, &admin, "build-1", "online").await;
    let info = &online["info"];
    assert_eq!(info["sessionLimit"], 3);
    let resolved = std::fs::canonicalize(work.path()).expect("canonical");
    assert_eq!(
        info["workspaces"],
        json!([resolved.display().to_string()]),
        "only the workspaces that exist: {online}"
    );
    assert_eq!(info["agents"][0]["name"], "claude", "{online}");
    assert!(info["agents"][0]["version"].is_string(), "{online}");

    // A run on this host is signed with the host's key: no HMAC secret here.
    let (status, created) = gw
        .post(
            "/api/runs",
            &admin,
            json!({ "command": "echo from the host" }),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{created}");
    let run_id = created["id"].as_str().expect("id").to_owned();
    let run_token = created["capabilityToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let out = runner(&gw, home.path())
        .args(["start", "--run-id", &run_id, "--token", &run_token, "--"])
        .args(["sh", "-c", "echo signed by the host"])
        .output()
        .expect("claw-runner start");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, events) = gw.get(&format!("/api/runs/{run_id}/events"), &admin).await;
    assert!(
        events.to_string().contains("signed by the host"),
        "{events}"
    );
    let out = runner(&gw, home.path())
        .arg("test-connection")
        .output()
        .expect("claw-runner test-connection");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Revoked: the service is cut off at once and refused when it returns.
    let (status, revoked) = unix_request(
        &gw.data().join("control.sock"),
        "POST",
        "/v1/hosts/build-1/revoke",
        None,
    )
    .await;
    assert_eq!(status.as_u16(), 200, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    let code = wait_exit(&mut service, Duration::from_secs(20));
    let log = std::fs::read_to_string(home.path().join("serve.stderr")).unwrap_or_default();
    assert_eq!(code, Some(78), "{log}");
    assert!(log.contains("refused this host"), "{log}");
    // Its key signs nothing any more.
    let out = runner(&gw, home.path())
        .arg("test-connection")
        .output()
        .expect("claw-runner test-connection");
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // And it cannot enrol again with a new token under the same name.
    let (status, body) = unix_request(
        &gw.data().join("control.sock"),
        "POST",
        "/v1/hosts",
        Some(json!({ "name": "build-1" })),
    )
    .await;
    assert_eq!(status.as_u16(), 409, "{body}");
}

#[tokio::test]
async fn the_service_reconnects_after_clawd_restarts() {
    let mut gw = gateway();
    let admin = gw.admin().await;
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    let added = add_host(&gw, "mac.studio").await;
    let out = enroll(
        &gw,
        home.path(),
        added["enrolmentToken"].as_str().expect("token"),
    );
    assert!(out.status.success());
    let mut service = serve(&gw, home.path(), work.path());
    wait_for_state(&gw, &admin, "mac.studio", "online").await;
    gw.kill();
    gw.relaunch();
    wait_for_state(&gw, &admin, "mac.studio", "online").await;
    // SIGTERM ends it cleanly, and the host shows offline.
    let _ = nix_kill(&service);
    assert_eq!(wait_exit(&mut service, Duration::from_secs(10)), Some(0));
    wait_for_state(&gw, &admin, "mac.studio", "offline").await;
}

#[tokio::test]
async fn enrolment_tokens_that_are_unknown_or_expired_are_refused_with_what_to_do() {
    let gw = gateway();
    let home = tempfile::tempdir().expect("home");
    let out = enroll(&gw, home.path(), "0123456789abcdef0123456789abcdef");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("clawctl hosts add"), "{err}");
    assert!(!home.path().join("state/host.toml").exists());

    let added = add_host(&gw, "old").await;
    gw.sql("UPDATE hosts SET token_expires_at = 1");
    let out = enroll(
        &gw,
        home.path(),
        added["enrolmentToken"].as_str().expect("token"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("expired") && err.contains("clawctl hosts add old"),
        "{err}"
    );
    // A bad name is refused before anything is made.
    let (status, body) = unix_request(
        &gw.data().join("control.sock"),
        "POST",
        "/v1/hosts",
        Some(json!({ "name": "../etc" })),
    )
    .await;
    assert_eq!(status.as_u16(), 400, "{body}");
}

fn nix_kill(child: &Child) -> std::io::Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("kill failed"))
    }
}

/// An enrolled, online host "build-1" offering `work`; its service.
async fn online_host(
    gw: &Gateway,
    admin: &str,
    home: &Path,
    work: &Path,
    limit: u32,
    model: &str,
) -> Child {
    let added = add_host(gw, "build-1").await;
    let out = enroll(gw, home, added["enrolmentToken"].as_str().expect("token"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let service = serve_with(gw, home, work, limit, Some(model));
    wait_for_state(gw, admin, "build-1", "online").await;
    service
}

async fn events_of(gw: &Gateway, admin: &str, run_id: &str) -> Vec<Value> {
    let (_, events) = gw.get(&format!("/api/runs/{run_id}/events"), admin).await;
    events.as_array().cloned().unwrap_or_default()
}

async fn wait_for_event(gw: &Gateway, admin: &str, run_id: &str, kind: &str) -> Vec<Value> {
    wait_for_events(gw, admin, run_id, kind, 1).await
}

/// The run's events once `count` of `kind` are stored.
async fn wait_for_events(
    gw: &Gateway,
    admin: &str,
    run_id: &str,
    kind: &str,
    count: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let events = events_of(gw, admin, run_id).await;
        if events.iter().filter(|e| e["type"] == kind).count() >= count {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "no {count} {kind} within 90 s: {}",
            kit::summary(&events)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The model answers "say hello" with `hello` and "say goodbye" with
/// `goodbye`.
fn greetings(hello: &str, goodbye: &str) -> Script {
    Script {
        rules: vec![
            Rule {
                when: "say goodbye".to_owned(),
                steps: vec![Step::text(goodbye)],
            },
            Rule {
                when: "say hello".to_owned(),
                steps: vec![Step::text(hello)],
            },
        ],
    }
}

#[tokio::test]
async fn a_session_starts_on_a_host_from_the_api_and_streams() {
    let script = greetings("Hello from the host.", "Goodbye, as resumed.");
    let logs = tempfile::tempdir().expect("logs");
    let log = logs.path().join("model.jsonl");
    let (bound, _model) = model::serve(
        script,
        "127.0.0.1:0".parse().expect("addr"),
        Some(log.clone()),
    )
    .await
    .expect("model server");
    let gw = gateway();
    let admin = gw.admin().await;
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    std::fs::create_dir(work.path().join("app")).expect("subdir");
    let mut service = online_host(
        &gw,
        &admin,
        home.path(),
        work.path(),
        1,
        &format!("http://{bound}"),
    )
    .await;
    let workspace = std::fs::canonicalize(work.path().join("app")).expect("canonical");

    let (status, created) = gw
        .post(
            "/api/runs",
            &admin,
            json!({"hostId": "build-1", "workspace": workspace, "agent": "claude", "prompt": "say hello"}),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{created}");
    let run_id = created["id"].as_str().expect("id").to_owned();
    let events = wait_for_event(&gw, &admin, &run_id, "turn_end").await;
    assert_eq!(
        data(&events, "message")["text"],
        "Hello from the host.",
        "{}",
        kit::summary(&events)
    );
    let (_, run) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
    assert_eq!(run["workspace"], workspace.display().to_string());
    assert!(run["hostId"].is_string(), "{run}");
    let session = data(&events, "session");
    assert_eq!(session["cwd"], workspace.display().to_string(), "{session}");
    let shown = host(&gw, &admin, "build-1").await;
    assert_eq!(shown["info"]["sessions"], json!([run_id]), "{shown}");

    // At its limit of one session, the host takes no other.
    let (status, body) = gw
        .post(
            "/api/runs",
            &admin,
            json!({"hostId": "build-1", "workspace": workspace, "agent": "claude", "prompt": "say hello"}),
        )
        .await;
    assert_eq!(status.as_u16(), 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("limit of 1")),
        "{body}"
    );

    // Stopped, the session ends and the host says so.
    let (status, _) = gw
        .post(&format!("/api/runs/{run_id}/stop"), &admin, json!({}))
        .await;
    assert_eq!(status.as_u16(), 200);
    wait_for_host(&gw, &admin, "build-1", |h| {
        h["info"]["sessions"] == json!([])
    })
    .await;
    let (_, audit) = gw.get("/api/audit", &admin).await;
    assert!(
        audit.to_string().contains("claude on host build-1 in"),
        "{audit}"
    );
    let (_, stopped) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    let before = events_of(&gw, &admin, &run_id).await;

    // Continued: the host resumes the same conversation in the same run.
    let (status, body) = gw
        .post(
            &format!("/api/runs/{run_id}/prompts"),
            &admin,
            json!({"text": "now say goodbye"}),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{body}");
    let events = wait_for_events(&gw, &admin, &run_id, "turn_end", 2).await;
    // The sequences go on from where they were, none twice.
    assert_contiguous(&events);
    assert!(events.len() > before.len());
    let answers: Vec<Value> = events
        .iter()
        .filter(|e| e["type"] == "message")
        .filter_map(|e| e["data"].as_str())
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert_eq!(
        answers.last().expect("an answer")["text"],
        "Goodbye, as resumed."
    );
    // The CLI resumed: the model got the earlier conversation again.
    let seen = model::read_log(&log);
    let resumed = seen
        .iter()
        .find(|r| r.prompt.contains("say goodbye"))
        .expect("the model saw the new prompt");
    assert!(
        resumed
            .texts
            .iter()
            .any(|t| t.contains("Hello from the host.")),
        "{resumed:?}"
    );
    let (_, run) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
    assert_eq!(run["status"], "running", "{run}");
    let _ = nix_kill(&service);
    let _ = wait_exit(&mut service, Duration::from_secs(10));
}

#[tokio::test]
async fn starts_outside_the_hosts_workspaces_are_refused_and_leave_nothing() {
    let gw = gateway();
    let admin = gw.admin().await;
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    let outside = tempfile::tempdir().expect("outside");
    // A symbolic link inside the workspace that leads out of it.
    std::os::unix::fs::symlink(outside.path(), work.path().join("escape")).expect("symlink");
    let mut service = online_host(
        &gw,
        &admin,
        home.path(),
        work.path(),
        2,
        "http://127.0.0.1:9",
    )
    .await;
    let workspace = std::fs::canonicalize(work.path()).expect("canonical");
    let start = |workspace: String, agent: &str| json!({"hostId": "build-1", "workspace": workspace, "agent": agent, "prompt": "hi"});
    let refusals = [
        (
            start("/etc".to_owned(), "claude"),
            400,
            "not one of host build-1's workspaces",
        ),
        (
            start(format!("{}/../", workspace.display()), "claude"),
            400,
            "not one of host build-1's workspaces",
        ),
        // The gateway sees a directory inside; the host resolves the link.
        (
            start(format!("{}/escape", workspace.display()), "claude"),
            409,
            "host build-1 refused",
        ),
        (
            json!({"hostId": "build-1", "workspace": workspace, "command": "ls"}),
            400,
            "agent",
        ),
        (
            start(workspace.display().to_string(), "claude")
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("hostId".to_owned(), json!("nobody"));
                    Value::Object(o)
                })
                .unwrap_or_default(),
            404,
            "unknown host nobody",
        ),
    ];
    for (body, status, says) in refusals {
        let (got, answer) = gw.post("/api/runs", &admin, body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body} -> {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| e.contains(says)),
            "{body} -> {answer}"
        );
    }
    let (_, runs) = gw.get("/api/runs", &admin).await;
    assert_eq!(
        runs.as_array().map(Vec::len),
        Some(0),
        "nothing kept: {runs}"
    );
    let log = std::fs::read_to_string(home.path().join("serve.stderr")).unwrap_or_default();
    assert!(log.contains("refused to start run"), "{log}");

    // Offline: refused with what to do.
    let _ = nix_kill(&service);
    assert_eq!(wait_exit(&mut service, Duration::from_secs(10)), Some(0));
    wait_for_state(&gw, &admin, "build-1", "offline").await;
    let (got, answer) = gw
        .post(
            "/api/runs",
            &admin,
            start(workspace.display().to_string(), "claude"),
        )
        .await;
    assert_eq!(got.as_u16(), 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("offline")),
        "{answer}"
    );
}

fn data(events: &[Value], kind: &str) -> Value {
    events
        .iter()
        .find(|e| e["type"] == kind)
        .and_then(|e| e["data"].as_str())
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null)
}

/// Only the host service is killed: its sessions go on, a new service
/// finds them, nothing is lost or doubled; a session whose runner died
/// while the service was down is reported failed.
#[tokio::test]
async fn sessions_outlive_a_killed_host_service() {
    let script = greetings("Hello.", "Goodbye.");
    let (bound, _model) = model::serve(script, "127.0.0.1:0".parse().expect("addr"), None)
        .await
        .expect("model server");
    let model = format!("http://{bound}");
    let gw = gateway();
    let admin = gw.admin().await;
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    let mut service = online_host(&gw, &admin, home.path(), work.path(), 4, &model).await;
    let workspace = std::fs::canonicalize(work.path()).expect("canonical");
    let start = || json!({"hostId": "build-1", "workspace": workspace, "agent": "claude", "prompt": "say hello"});
    let (status, created) = gw.post("/api/runs", &admin, start()).await;
    assert_eq!(status.as_u16(), 201, "{created}");
    let run_id = created["id"].as_str().expect("id").to_owned();
    wait_for_event(&gw, &admin, &run_id, "turn_end").await;

    // SIGKILL to the service alone, as `KillMode=process` does on a stop.
    service.kill().expect("kill");
    let _ = service.wait();
    let (status, _) = gw
        .post(
            &format!("/api/runs/{run_id}/prompts"),
            &admin,
            json!({"text": "now say goodbye"}),
        )
        .await;
    assert_eq!(status.as_u16(), 201);
    wait_for_events(&gw, &admin, &run_id, "turn_end", 2).await;

    // A new service finds the session still running.
    let mut service = serve_with(&gw, home.path(), work.path(), 4, Some(&model));
    wait_for_host(&gw, &admin, "build-1", |h| {
        h["state"] == "online" && h["info"]["sessions"] == json!([run_id])
    })
    .await;
    assert_contiguous(&events_of(&gw, &admin, &run_id).await);

    // Its end is seen by the new service too.
    let (status, _) = gw
        .post(&format!("/api/runs/{run_id}/stop"), &admin, json!({}))
        .await;
    assert_eq!(status.as_u16(), 200);
    wait_for_host(&gw, &admin, "build-1", |h| {
        h["info"]["sessions"] == json!([])
    })
    .await;

    // A session started with clawctl, whose runner dies while the service
    // is down.
    let out = Command::new(binary_or_build("clawctl", "claw-ctl", env!("CARGO")))
        .arg("--socket")
        .arg(gw.data().join("control.sock"))
        .args([
            "--json",
            "runs",
            "start",
            "--host",
            "build-1",
            "--workspace",
        ])
        .arg(&workspace)
        .arg("say hello")
        .output()
        .expect("clawctl runs start");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).expect("json");
    let lost = created["id"].as_str().expect("id").to_owned();
    wait_for_event(&gw, &admin, &lost, "turn_end").await;
    service.kill().expect("kill");
    let _ = service.wait();
    let record: Value = serde_json::from_slice(
        &std::fs::read(home.path().join(format!("state/hosted/{lost}.json"))).expect("record"),
    )
    .expect("json");
    let pid = record["pid"].as_u64().expect("pid");
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut service = serve_with(&gw, home.path(), work.path(), 4, Some(&model));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, run) = gw.get(&format!("/api/runs/{lost}"), &admin).await;
        if run["status"] == "failed" {
            break;
        }
        assert!(Instant::now() < deadline, "{run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = events_of(&gw, &admin, &lost).await;
    assert!(
        events.iter().any(|e| e["type"] == "error"
            && e["data"]
                .as_str()
                .is_some_and(|d| d.contains("without reporting its end"))),
        "{}",
        kit::summary(&events)
    );
    let _ = nix_kill(&service);
    let _ = wait_exit(&mut service, Duration::from_secs(10));
}
