//! End-to-end: the real clawd, clawctl and claw-runner; the agent is a small
//! shell script.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use claw_testkit::{Gateway, TEST_CONFIG, binary_or_build, client_trusting};
use serde_json::Value;

/// clawd and clawctl come from the same `cargo test --workspace` build.
fn sibling(name: &str) -> PathBuf {
    let package = if name == "clawd" { "clawd" } else { "claw-ctl" };
    binary_or_build(name, package, env!("CARGO"))
}

struct Setup {
    /// clawd, on the same port when started again.
    gw: Gateway,
    home: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Self::with_config("")
    }

    /// clawd with `extra` in its clawd.toml.
    fn with_config(extra: &str) -> Self {
        let home = tempfile::tempdir().expect("home");
        let gw = Gateway::launch(sibling("clawd"))
            .config(&format!("{TEST_CONFIG}{extra}"))
            .quiet()
            .same_port()
            .start();
        Self { gw, home }
    }

    fn start_clawd(&mut self) {
        self.gw.relaunch();
    }

    fn kill_clawd(&mut self) {
        self.gw.kill();
    }

    fn ctl(&self, args: &[&str]) -> Value {
        let out = Command::new(sibling("clawctl"))
            .arg("--socket")
            .arg(self.gw.data().join("control.sock"))
            .arg("--json")
            .args(args)
            .output()
            .expect("clawctl");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    }

    /// All events of a run, in order.
    fn events(&self, run_id: &str) -> Vec<Value> {
        let out = Command::new(sibling("clawctl"))
            .arg("--socket")
            .arg(self.gw.data().join("control.sock"))
            .args(["--json", "runs", "tail", run_id])
            .output()
            .expect("clawctl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("ndjson"))
            .filter(|v: &Value| v["type"] == "event")
            .collect()
    }

    fn runner(&self, run_id: &str, token: &str, extra_config: &str, agent: &str) -> Command {
        self.runner_in(run_id, token, extra_config, agent, None)
    }

    /// The runner, with the agent (and queued commands) in `cwd`.
    fn runner_in(
        &self,
        run_id: &str,
        token: &str,
        extra_config: &str,
        agent: &str,
        cwd: Option<&std::path::Path>,
    ) -> Command {
        let config_dir = self.home.path().join(".config/claw");
        std::fs::create_dir_all(&config_dir).expect("config dir");
        std::fs::write(config_dir.join("runner.toml"), extra_config).expect("runner.toml");
        let mut cmd = self
            .gw
            .runner_command(env!("CARGO_BIN_EXE_claw-runner"), self.home.path());
        cmd.args(["start", "--run-id", run_id, "--token", token]);
        if let Some(dir) = cwd {
            cmd.arg("--cwd").arg(dir);
        }
        cmd.args(["--", "sh", "-c", agent]).stdin(Stdio::null());
        cmd
    }

    fn create_run(&self) -> (String, String) {
        let created = self.ctl(&["runs", "create"]);
        (
            created["id"].as_str().expect("id").to_owned(),
            created["capabilityToken"]
                .as_str()
                .expect("token")
                .to_owned(),
        )
    }

    fn state(&self, run_id: &str) -> PathBuf {
        self.home
            .path()
            .join(".local/state/claw-runner/runs")
            .join(run_id)
    }
}

fn data_of(events: &[Value], kind: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["eventType"] == kind)
        .map(|e| e["data"].as_str().expect("data").to_owned())
        .collect()
}

/// A private key printed line by line (each line an event) leaves the host
/// redacted from its BEGIN line to its END line, not just the BEGIN line.
#[test]
fn a_private_key_printed_line_by_line_is_redacted_whole() {
    let s = Setup::new();
    let (run_id, token) = s.create_run();
    let out: Output = s
        .runner(
            &run_id,
            &token,
            "",
            "printf '%s\\n' 'cat key' '-----BEGIN OPENSSH PRIVATE KEY-----' \
             'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ' 'QyNTUxOQAAACDf2zLwZ' \
             '-----END OPENSSH PRIVATE KEY-----' 'done'",
        )
        .output()
        .expect("runner");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = s.events(&run_id);
    assert_eq!(
        data_of(&events, "stdout"),
        [
            "cat key\n",
            "[REDACTED]\n",
            "[REDACTED]\n",
            "[REDACTED]\n",
            "[REDACTED]\n",
            "done\n"
        ]
    );
}

#[test]
fn transcript_exit_code_redaction_and_log_artifact() {
    let s = Setup::new();
    let (run_id, token) = s.create_run();
    let out: Output = s
        .runner(
            &run_id,
            &token,
            "",
            "for i in 1 2 3; do echo out $i; echo err $i >&2; done; echo key sk-ant-abcdefghijklmnopqrstuvwx; exit 3",
        )
        .output()
        .expect("runner");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = s.events(&run_id);
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        sequences,
        (1..=sequences.len() as u64).collect::<Vec<_>>(),
        "gapless, in order"
    );
    assert_eq!(
        data_of(&events, "stdout"),
        ["out 1\n", "out 2\n", "out 3\n", "key [REDACTED]\n"]
    );
    assert_eq!(
        data_of(&events, "stderr"),
        ["err 1\n", "err 2\n", "err 3\n"]
    );
    let markers = data_of(&events, "marker");
    assert!(markers[0].contains("\"started\""), "{markers:?}");
    assert!(markers[1].contains("\"exitCode\":3"), "{markers:?}");
    let run = s.ctl(&["runs", "show", &run_id]);
    assert_eq!(
        (run["status"].as_str(), run["exitCode"].as_i64()),
        (Some("failed"), Some(3))
    );
    let artifacts: Vec<&str> = run["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| a["filename"].as_str().expect("name"))
        .collect();
    assert_eq!(artifacts, ["claude.log"]);
    // Any other file, uploaded by hand.
    let report = s.home.path().join("report.md");
    std::fs::write(&report, "# done\n").expect("report");
    let mut upload =
        s.gw.runner_command(env!("CARGO_BIN_EXE_claw-runner"), s.home.path());
    upload
        .env("CLAW_RUN_TOKEN", &token)
        .args(["upload", "--run-id", &run_id])
        .arg(&report);
    let out = upload.output().expect("upload");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let run = s.ctl(&["runs", "show", &run_id]);
    assert!(
        run["artifacts"]
            .as_array()
            .expect("artifacts")
            .iter()
            .any(|a| a["id"] == id.as_str() && a["filename"] == "report.md"),
        "{run}"
    );

    // The local spool keeps the run's record, redacted.
    let log = std::fs::read_to_string(s.state(&run_id).join("claude.log")).expect("log");
    assert!(
        log.contains("out 3\n") && log.contains("key [REDACTED]") && !log.contains("sk-ant"),
        "{log}"
    );
}

#[test]
fn gateway_killed_and_restarted_mid_run_loses_nothing() {
    let mut s = Setup::new();
    let (run_id, token) = s.create_run();
    let agent = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); echo line $i; \
                 case $i in *000) sleep 0.15;; esac; done";
    let mut runner = s
        .runner(&run_id, &token, "", agent)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner");
    std::thread::sleep(Duration::from_millis(700));
    s.kill_clawd();
    std::thread::sleep(Duration::from_millis(1000));
    s.start_clawd();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = runner.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "runner did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
    let events = s.events(&run_id);
    let lines = data_of(&events, "stdout");
    assert_eq!(lines.len(), 20_000, "every line exactly once");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line, &format!("line {}\n", i + 1), "in order");
    }
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().expect("seq"))
        .collect();
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
    assert_eq!(s.ctl(&["runs", "show", &run_id])["status"], "done");
}

#[test]
fn events_the_gateway_lost_after_acknowledging_are_sent_again() {
    // With `durability = "batched"` a power cut can take the gateway's last
    // acknowledged commits. The runner hears of it from the gap its next
    // batch leaves, and sends the lost events again from its spool.
    let mut s = Setup::new();
    let (run_id, token) = s.create_run();
    let agent = "i=0; while [ $i -lt 50 ]; do i=$((i+1)); echo line $i; done; \
                 sleep 4; while [ $i -lt 100 ]; do i=$((i+1)); echo line $i; done";
    let mut runner = s
        .runner(&run_id, &token, "", agent)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner");
    let deadline = Instant::now() + Duration::from_secs(30);
    while data_of(&s.events(&run_id), "stdout").len() < 50 {
        assert!(Instant::now() < deadline, "first half never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.kill_clawd();
    let last_kept = {
        let highest: u64 = s.gw.sql(&format!(
            "SELECT MAX(sequence) FROM events WHERE run_id = '{run_id}'"
        ))[0][0]
            .parse()
            .expect("highest");
        s.gw.sql(&format!(
            "DELETE FROM events WHERE run_id = '{run_id}' AND sequence > {}",
            highest - 20
        ));
        highest - 20
    };
    s.start_clawd();
    assert_eq!(
        s.events(&run_id).len() as u64,
        last_kept,
        "the gateway lost 20 acknowledged events"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = runner.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "runner did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
    let events = s.events(&run_id);
    let lines = data_of(&events, "stdout");
    let expected: Vec<String> = (1..=100).map(|i| format!("line {i}\n")).collect();
    assert_eq!(lines, expected, "every line once, in order");
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().expect("seq"))
        .collect();
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
    assert_eq!(s.ctl(&["runs", "show", &run_id])["status"], "done");
}

#[test]
fn stop_escalates_to_sigkill_when_sigint_is_ignored() {
    let s = Setup::new();
    let (run_id, token) = s.create_run();
    let mut runner = s
        .runner(
            &run_id,
            &token,
            "stop_grace_secs = 1\n",
            "trap '' INT; echo ready; sleep 60",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner");
    // Wait until the agent runs, then stop it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.ctl(&["runs", "show", &run_id])["status"] != "running" {
        assert!(Instant::now() < deadline, "run never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.ctl(&["runs", "stop", &run_id]);
    let status = loop {
        if let Some(status) = runner.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(20),
            "runner did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(128 + 9), "killed by SIGKILL");
    let events = s.events(&run_id);
    let info = data_of(&events, "info").join("");
    assert!(
        info.contains("SIGINT sent") && info.contains("SIGKILL sent"),
        "{info}"
    );
    let run = s.ctl(&["runs", "show", &run_id]);
    assert_eq!(run["status"], "stopped");
    let stop = &run["commands"][0];
    assert_eq!(
        (stop["command"].as_str(), stop["status"].as_str()),
        (Some("__STOP__"), Some("completed"))
    );
}

/// A client trusting the gateway's certificate.
/// (A new one for each runtime of [`block_on`].)
fn https_client(s: &Setup) -> reqwest::Client {
    client_trusting(&s.gw.certificate())
}

/// Runs a future to completion on a small runtime of its own.
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Logs in over HTTPS as a fresh operator; returns the session token.
fn operator_session(s: &Setup) -> String {
    let mut add = Command::new(sibling("clawctl"))
        .arg("--socket")
        .arg(s.gw.data().join("control.sock"))
        .args([
            "users",
            "add",
            "opal",
            "--role",
            "operator",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("clawctl");
    std::io::Write::write_all(
        &mut add.stdin.take().expect("stdin"),
        b"opal password 123\n",
    )
    .expect("password");
    assert!(add.wait().expect("wait").success());
    let client = https_client(s);
    let login = block_on(claw_testkit::try_login(
        &client,
        &s.gw.base(),
        "opal",
        "opal password 123",
        None,
    ))
    .expect("login");
    login.session().expect("session").to_owned()
}

fn send_command(s: &Setup, session: &str, run_id: &str, command: &str) -> u16 {
    let client = https_client(s);
    block_on(async {
        client
            .post(s.gw.url(&format!("/api/runs/{run_id}/command")))
            .bearer_auth(session)
            .json(&serde_json::json!({ "command": command }))
            .send()
            .await
            .expect("command")
            .status()
            .as_u16()
    })
}

#[test]
fn queued_commands_run_in_the_working_directory_and_answer() {
    let s = Setup::new();
    let (run_id, token) = s.create_run();
    let work = tempfile::tempdir().expect("work");
    std::fs::write(work.path().join("README.claw"), "first\n").expect("file");
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(["-c", "user.email=t@example.invalid", "-c", "user.name=t"])
            .args(args)
            .current_dir(work.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("git");
        assert!(ok.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "README.claw"]);
    git(&["commit", "-q", "-m", "first"]);
    std::fs::write(
        work.path().join("README.claw"),
        "first\nchanged token=supersecret1\n",
    )
    .expect("change");
    let mut runner = s
        .runner_in(
            &run_id,
            &token,
            // Polling too slow to matter: commands must arrive by push.
            "poll_secs = 120\n",
            "echo ready; sleep 12",
            Some(work.path()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner");
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.ctl(&["runs", "show", &run_id])["status"] != "running" {
        assert!(Instant::now() < deadline, "run never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let session = operator_session(&s);
    assert_eq!(send_command(&s, &session, &run_id, "ls -la"), 201);
    assert_eq!(
        send_command(&s, &session, &run_id, "rm -rf /"),
        403,
        "refused by the gateway"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let run = s.ctl(&["runs", "show", &run_id]);
        let commands = run["commands"].as_array().cloned().unwrap_or_default();
        if let Some(c) = commands
            .iter()
            .find(|c| c["command"] == "ls -la" && c["status"] == "completed")
        {
            break c.clone();
        }
        assert!(Instant::now() < deadline, "no answer: {run}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        done["result"]
            .as_str()
            .expect("result")
            .contains("README.claw"),
        "{done}"
    );

    // git diff answers, and its output becomes latest.diff (redacted).
    assert_eq!(send_command(&s, &session, &run_id, "git diff"), 201);
    let deadline = Instant::now() + Duration::from_secs(20);
    let artifact = loop {
        let run = s.ctl(&["runs", "show", &run_id]);
        let found = run["artifacts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["filename"] == "latest.diff")
            .cloned();
        if let Some(a) = found {
            break a;
        }
        assert!(Instant::now() < deadline, "no latest.diff: {run}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let stored = s.gw.data().join("artifacts").join(&run_id).join(format!(
        "{}_latest.diff",
        artifact["id"].as_str().expect("id")
    ));
    let diff = std::fs::read_to_string(stored).expect("diff");
    assert!(
        diff.contains("+changed token=[REDACTED]") && !diff.contains("supersecret1"),
        "{diff}"
    );
    assert_eq!(runner.wait().expect("wait").code(), Some(0));
}

#[test]
fn test_connection_and_info_report_plainly() {
    let s = Setup::new();
    let diagnose = |args: &[&str], secret_file: Option<&std::path::Path>, ca: bool| {
        let real_secret = s.gw.data().join("secrets/hmac-secret");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_claw-runner"));
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", s.home.path())
            .env(
                "CLAW_GATEWAY_URL",
                format!("https://localhost:{}", s.gw.port),
            )
            .env("CLAW_HMAC_SECRET_FILE", secret_file.unwrap_or(&real_secret));
        if ca {
            cmd.env("CLAW_CA_CERT", s.gw.data().join("certs/server.crt"));
        }
        cmd.args(args).output().expect("claw-runner")
    };
    let out = diagnose(&["test-connection"], None, true);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("TLS:        ok")
            && text.contains("Clock:      ok")
            && text.contains("Signature:  ok"),
        "{text}"
    );
    assert_eq!(
        s.ctl(&["status"])["connections"]["runners"],
        0,
        "a probe is not a runner"
    );

    let wrong = s.home.path().join("wrong-secret");
    std::fs::write(&wrong, "not the secret\n").expect("write");
    let out = diagnose(&["test-connection"], Some(&wrong), true);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("Signature:  FAILED (401): invalid signature"),
        "{text}"
    );

    let out = diagnose(&["test-connection"], None, false);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("TLS:        FAILED") && text.contains("--ca-cert"),
        "{text}"
    );

    // A pinned fingerprint instead of a CA file.
    let fingerprint = s.ctl(&["certs", "show"])["fingerprintSha256"]
        .as_str()
        .expect("fingerprint")
        .to_owned();
    let pinned = |pin: &str| {
        Command::new(env!("CARGO_BIN_EXE_claw-runner"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", s.home.path())
            .env(
                "CLAW_GATEWAY_URL",
                format!("https://localhost:{}", s.gw.port),
            )
            .env(
                "CLAW_HMAC_SECRET_FILE",
                s.gw.data().join("secrets/hmac-secret"),
            )
            .env("CLAW_CERT_FINGERPRINT", pin)
            .arg("test-connection")
            .output()
            .expect("claw-runner")
    };
    let out = pinned(&fingerprint);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Signature:  ok"), "{text}");
    let out = pinned(
        &"00:"
            .repeat(31)
            .to_string()
            .chars()
            .chain("00".chars())
            .collect::<String>(),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("TLS:        FAILED") && text.contains("not the pinned one"),
        "{text}"
    );

    let out = diagnose(&["info"], None, true);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success());
    let secret = std::fs::read_to_string(s.gw.data().join("secrets/hmac-secret")).expect("secret");
    assert!(!text.contains(secret.trim()), "secret masked: {text}");
    assert!(
        text.contains("hmac secret:       set (64 characters, not shown)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "gateway:           https://localhost:{}",
            s.gw.port
        )),
        "{text}"
    );
    assert!(text.contains("git status"), "{text}");
}

#[test]
fn assist_posts_tmate_links_or_says_why_not() {
    let s = Setup::new();
    let (run_id, token) = s.create_run();
    // A stand-in tmate that answers the calls the runner makes.
    let bin = s.home.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let fake = bin.join("tmate");
    std::fs::write(
        &fake,
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do case \"$1\" in -S) shift 2;; *) break;; esac; done\n\
         case \"$1\" in\n  new-session|wait) exit 0;;\n  display) case \"$3\" in *ssh*) echo 'ssh Xy12@lon1.tmate.io';; \
         *) echo 'https://tmate.io/t/Xy12';; esac;;\nesac\n",
    )
    .expect("fake tmate");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let path_with_tmate = format!("{}:/usr/bin:/bin", bin.display());
    let mut runner = s
        .runner(&run_id, &token, "", "echo ready; sleep 6")
        .env("PATH", &path_with_tmate)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner");
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.ctl(&["runs", "show", &run_id])["status"] != "running" {
        assert!(Instant::now() < deadline, "run never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let assist = |path: &str, run: &str| {
        Command::new(env!("CARGO_BIN_EXE_claw-runner"))
            .env_clear()
            .env("PATH", path)
            .env("HOME", s.home.path())
            .env(
                "CLAW_GATEWAY_URL",
                format!("https://localhost:{}", s.gw.port),
            )
            .env(
                "CLAW_HMAC_SECRET_FILE",
                s.gw.data().join("secrets/hmac-secret"),
            )
            .args(["assist", "--run-id", run])
            .output()
            .expect("claw-runner assist")
    };
    let out = assist("/usr/bin:/bin", &run_id);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tmate is not installed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = assist(&path_with_tmate, "some-other-run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no claw-runner is running run some-other-run")
    );
    let out = assist(&path_with_tmate, &run_id);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let links = loop {
        let events = s.events(&run_id);
        if let Some(data) = data_of(&events, "assist").first() {
            break serde_json::from_str::<Value>(data).expect("assist json");
        }
        assert!(Instant::now() < deadline, "no assist event");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(links["web"], "https://tmate.io/t/Xy12");
    assert_eq!(links["ssh"], "ssh Xy12@lon1.tmate.io");
    assert_eq!(runner.wait().expect("wait").code(), Some(0));
    let sequences: Vec<u64> = s
        .events(&run_id)
        .iter()
        .map(|e| e["sequence"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        sequences,
        (1..=sequences.len() as u64).collect::<Vec<_>>(),
        "the assist event is in the run's sequence"
    );
}

/// A git working directory with one commit: a tracked `README.claw` and a
/// Makefile whose `test` target passes.
fn git_workspace() -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("work");
    std::fs::write(work.path().join("README.claw"), "first\n").expect("file");
    std::fs::write(work.path().join("Makefile"), "test:\n\t@echo tests pass\n").expect("Makefile");
    for args in [
        &["init", "-q"][..],
        &["add", "README.claw", "Makefile"],
        &["commit", "-q", "-m", "first"],
    ] {
        let ok = Command::new("git")
            .args(["-c", "user.email=t@example.invalid", "-c", "user.name=t"])
            .args(args)
            .current_dir(work.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("git");
        assert!(ok.success(), "git {args:?}");
    }
    work
}

/// Waits until the run has `count` commands (besides a stop) and each is
/// answered; returns them.
fn answered(s: &Setup, run_id: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = s.ctl(&["runs", "show", run_id]);
        let commands: Vec<Value> = run["commands"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["command"] != "__STOP__")
            .collect();
        if commands.len() == count
            && commands
                .iter()
                .all(|c| c["status"] == "completed" || c["status"] == "failed")
        {
            return commands;
        }
        assert!(Instant::now() < deadline, "not all answered: {run}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A runner that is killed when a test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a runner in `work` whose agent waits until the run is stopped.
fn waiting_runner(s: &Setup, run_id: &str, token: &str, work: &std::path::Path) -> Running {
    let runner = s
        .runner_in(run_id, token, "", "echo ready; sleep 30", Some(work))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner");
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.ctl(&["runs", "show", run_id])["status"] != "running" {
        assert!(Instant::now() < deadline, "run never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    Running(runner)
}

/// Stops the run and waits for the runner to end.
fn stop_runner(s: &Setup, run_id: &str, mut runner: Running) {
    s.ctl(&["runs", "stop", run_id]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while runner.0.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "runner did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_four_injections_are_refused_by_the_runner_even_when_the_gateway_queues_them() {
    let outside = tempfile::tempdir().expect("outside");
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "TOP-SECRET-c0ffee\n").expect("secret");
    let injections = [
        "make test --eval=pwn:;id>pwned-by-make pwn".to_owned(),
        "git diff --output=README.claw".to_owned(),
        "git log --output=pwned-by-log -1".to_owned(),
        format!("git diff --no-index {} /dev/null", secret.display()),
    ];
    // The gateway allows them as literal entries, so only the runner's own
    // (default) allowlist stands between them and the coding host.
    let entries: Vec<String> = injections.iter().map(|c| format!("{c:?}")).collect();
    let s = Setup::with_config(&format!("allowed_commands = [{}]\n", entries.join(", ")));
    let (run_id, token) = s.create_run();
    let work = git_workspace();
    let runner = waiting_runner(&s, &run_id, &token, work.path());
    let session = operator_session(&s);
    for command in &injections {
        assert_eq!(
            send_command(&s, &session, &run_id, command),
            201,
            "the gateway queues {command}"
        );
    }
    let commands = answered(&s, &run_id, injections.len());
    for command in &injections {
        let c = commands
            .iter()
            .find(|c| c["command"] == command.as_str())
            .expect("the command");
        assert_eq!(c["status"], "failed", "{c}");
        let error = c["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("not on this runner's allowlist: "), "{c}");
        assert!(c["result"].is_null(), "it never ran: {c}");
    }
    stop_runner(&s, &run_id, runner);

    assert!(!work.path().join("pwned-by-make").exists(), "make ran id");
    assert!(
        !work.path().join("pwned-by-log").exists(),
        "git log wrote a file"
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("README.claw")).expect("README"),
        "first\n",
        "git diff overwrote a file"
    );
    let mut files: Vec<String> = std::fs::read_dir(work.path())
        .expect("work")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [".git", "Makefile", "README.claw"],
        "no file created"
    );
    let run = s.ctl(&["runs", "show", &run_id]);
    let events = s.events(&run_id);
    for text in [run.to_string(), Value::from(events).to_string()] {
        assert!(
            !text.contains("TOP-SECRET"),
            "the outside file leaked: {text}"
        );
    }
    assert!(
        !run.to_string().contains("latest.diff"),
        "no diff was taken: {run}"
    );
}

#[test]
fn path_arguments_are_resolved_inside_the_working_directory() {
    let s = Setup::new();
    let (run_id, token) = s.create_run();
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("outside-name.txt"), "x").expect("outside file");
    let work = git_workspace();
    std::fs::create_dir(work.path().join("src")).expect("src");
    std::fs::write(work.path().join("src/lib.rs"), "").expect("lib.rs");
    std::os::unix::fs::symlink(outside.path(), work.path().join("escape")).expect("link");
    std::os::unix::fs::symlink(
        outside.path().join("outside-name.txt"),
        work.path().join("src/leak"),
    )
    .expect("link");
    let runner = waiting_runner(&s, &run_id, &token, work.path());
    let session = operator_session(&s);
    // Each passes the gateway's lexical check (`ls <path>...`,
    // `ls -la <path>...`); the runner resolves them on disk.
    for command in ["ls escape", "ls -la src/leak", "ls src escape/", "ls src"] {
        assert_eq!(
            send_command(&s, &session, &run_id, command),
            201,
            "{command}"
        );
    }
    let commands = answered(&s, &run_id, 4);
    let find = |command: &str| {
        commands
            .iter()
            .find(|c| c["command"] == command)
            .cloned()
            .expect("the command")
    };
    for (command, argument) in [
        ("ls escape", "escape"),
        ("ls -la src/leak", "src/leak"),
        ("ls src escape/", "escape/"),
    ] {
        let c = find(command);
        assert_eq!(c["status"], "failed", "{c}");
        let error = c["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("not on this runner's allowlist: ")
                && error.contains(&format!("{argument:?} leads outside the working directory")),
            "{c}"
        );
        assert!(!c.to_string().contains("outside-name"), "{c}");
    }
    let inside = find("ls src");
    assert_eq!(inside["status"], "completed", "{inside}");
    // The link's name is inside; only following it leads out.
    assert_eq!(inside["result"], "leak\nlib.rs\n", "{inside}");
    stop_runner(&s, &run_id, runner);
}

#[test]
fn an_invalid_entry_stops_the_runner_with_its_name() {
    let s = Setup::new();
    let (run_id, token) = s.create_run();
    let out = s
        .runner(
            &run_id,
            &token,
            "allowed_commands = [\"cat <file>\"]\n",
            "echo the agent ran",
        )
        .output()
        .expect("runner");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("runner.toml: allowed_commands: allowlist entry \"cat <file>\"")
            && stderr.contains("unknown placeholder"),
        "{stderr}"
    );
    assert_eq!(
        s.ctl(&["runs", "show", &run_id])["status"],
        "pending",
        "the agent never started"
    );
}
