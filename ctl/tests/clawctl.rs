//! End-to-end: the real `clawd` and the real `clawctl` on a temporary control
//! socket; every command, its `--json` output, and its errors.

mod common;

use std::io::{BufRead, BufReader};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use claw_proto::agent::{ApprovalKind, ApprovalStatus, DecisionScope};
use claw_proto::api::ApprovalView;
use claw_testkit::{
    Gateway, Receiver, TEST_CONFIG, binary_or_build, client_trusting, on_sqlite, store_is_postgres,
};
use serde_json::{Value, json};

/// clawd is built by the same `cargo test --workspace` (scripts/test) into the
/// same folder; run these tests that way so that it is current. Built here
/// only when missing.
fn clawd_binary() -> PathBuf {
    binary_or_build("clawd", "clawd", env!("CARGO"))
}

/// A clawd of the test kit, and clawctl on its control socket.
struct Daemon(Gateway);

impl Deref for Daemon {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.0
    }
}

impl DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Gateway {
        &mut self.0
    }
}

impl Daemon {
    fn start() -> Self {
        Self(Gateway::launch(clawd_binary()).quiet().start())
    }

    /// With these lines added to the test configuration.
    fn start_with(extra: &str) -> Self {
        Self(
            Gateway::launch(clawd_binary())
                .config(&format!("{TEST_CONFIG}{extra}"))
                .quiet()
                .start(),
        )
    }

    /// Runs clawctl against this daemon.
    fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_with_stdin(args, None)
    }

    fn ctl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        common::clawctl(self, args, stdin)
    }

    /// clawctl with --json, which must succeed; its parsed output.
    fn json(&self, args: &[&str]) -> Value {
        common::ctl_json(self, args)
    }

    /// A signed runner event, as claw-runner sends it; it must be accepted.
    async fn event(&self, run_id: &str, token: &str, kind: &str, data: &str) {
        self.runner(run_id, token).event_ok(kind, data).await;
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_and_health() {
    let d = Daemon::start();
    let status = d.json(&["status"]);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        status["listeners"]["https"],
        format!("https://127.0.0.1:{}", d.port)
    );
    assert_eq!(status["runs"]["running"], 0);
    assert_eq!(status["connections"]["runners"], 0);
    let out = d.ctl(&["status"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("Listening:") && text.contains("fingerprint"),
        "{text}"
    );
    assert!(
        text.contains("(in 364 days)") || text.contains("(in 365 days)"),
        "{text}"
    );
    assert!(text.contains("Last prune:  never"), "{text}");
    let out = d.ctl(&["health"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(d.json(&["health"])["status"], "ok");
}

#[test]
fn runs_create_list_show_stop_delete() {
    let d = Daemon::start();
    let created = d.json(&["runs", "create", "--command", "claude -p hello"]);
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(
        created["capabilityToken"].as_str().expect("token").len(),
        64
    );
    let text = stdout(&d.ctl(&["runs", "create"]));
    assert!(text.contains("claw-runner start --run-id"), "{text}");

    let list = d.json(&["runs", "list"]);
    assert_eq!(list.as_array().expect("runs").len(), 2);
    let pending = d.json(&[
        "runs",
        "list",
        "--state",
        "pending",
        "--since",
        "2020-01-01T00:00:00Z",
    ]);
    assert_eq!(pending.as_array().expect("runs").len(), 2);
    assert_eq!(
        d.json(&["runs", "list", "--state", "done"])
            .as_array()
            .expect("runs")
            .len(),
        0
    );
    assert_eq!(
        d.json(&["runs", "list", "--since", "2999-01-01T00:00:00Z"])
            .as_array()
            .expect("runs")
            .len(),
        0
    );
    let table = stdout(&d.ctl(&["runs", "list"]));
    assert!(table.starts_with("ID") && table.contains(&id), "{table}");

    let shown = d.json(&["runs", "show", &id]);
    assert_eq!(shown["command"], "claude -p hello");
    assert_eq!(shown["status"], "pending");
    let stopped = d.json(&["runs", "stop", &id]);
    assert_eq!(stopped["ok"], true);
    assert_eq!(d.json(&["runs", "show", &id])["status"], "stopped");
    let shown = stdout(&d.ctl(&["runs", "show", &id]));
    assert!(shown.contains("__STOP__"), "{shown}");
    assert_eq!(d.json(&["runs", "delete", &id])["ok"], true);

    for args in [
        vec!["runs", "show", &id],
        vec!["runs", "stop", &id],
        vec!["runs", "delete", &id],
        vec!["runs", "tail", &id],
    ] {
        let out = d.ctl(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert_eq!(
            err.trim(),
            format!("clawctl: unknown run {id} (see clawctl runs list)")
        );
    }
    // Audited with the caller.
    let audit = d.json(&["audit", "list", "--action", "run"]);
    let actions: Vec<&str> = audit
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["action"].as_str().expect("action"))
        .collect();
    assert!(
        actions.contains(&"run.create")
            && actions.contains(&"run.stop")
            && actions.contains(&"run.delete"),
        "{actions:?}"
    );
    let row = &audit[0];
    assert_eq!(row["username"], "root");
    assert!(
        row["details"].as_str().expect("details").contains("pid "),
        "{row}"
    );
}

#[tokio::test]
async fn runs_tail_follows_live_events_until_the_run_ends() {
    let d = Daemon::start();
    let created = d.json(&["runs", "create"]);
    let id = created["id"].as_str().expect("id").to_owned();
    let token = created["capabilityToken"]
        .as_str()
        .expect("token")
        .to_owned();
    d.event(&id, &token, "marker", r#"{"event":"started"}"#)
        .await;
    d.event(&id, &token, "stdout", "before tail\n").await;

    let mut tail = Command::new(env!("CARGO_BIN_EXE_clawctl"))
        .arg("--socket")
        .arg(d.socket())
        .args(["runs", "tail", "-f", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tail");
    // The replayed line proves the stream is open before more is sent.
    let mut out = BufReader::new(tail.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    assert_eq!(first, "before tail\n");

    d.event(&id, &token, "stdout", "live one\n").await;
    d.event(&id, &token, "stderr", "warning: live\n").await;
    d.event(&id, &token, "stdout", "live two\n").await;
    d.event(
        &id,
        &token,
        "marker",
        r#"{"event":"finished","exitCode":0}"#,
    )
    .await;

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = tail.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tail -f did not end with the run"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).expect("rest");
    assert_eq!(rest, "live one\nlive two\n");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut tail.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(err.contains("warning: live\n"), "{err}");
    assert!(err.contains("[run done, exit code 0]"), "{err}");

    assert_eq!(d.json(&["status"])["connections"]["runners"], 1);
    // Without -f on an ended run: everything, then exit.
    let out = d.ctl(&["runs", "tail", &id]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "before tail\nlive one\nlive two\n");
    let out = d.ctl(&["--json", "runs", "tail", &id, "--after", "3"]);
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["sequence"], 4);
}

/// clawctl and the test's expectations read clawd's answers as the same
/// proto type.
fn approvals_of(out: &Output) -> Vec<ApprovalView> {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("[ApprovalView]")
}

fn approval_of(out: &Output) -> ApprovalView {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("ApprovalView")
}

/// An agent's requests as claw-runner reports them (signed
/// `approval_request` events; no Claude Code CLI), listed, shown, allowed
/// for the session, answered, denied, and decided only once.
#[tokio::test]
async fn approvals_list_show_allow_and_deny() {
    let d = Daemon::start();
    let created = d.json(&["runs", "create", "--agent", "claude"]);
    let run = created["id"].as_str().expect("id").to_owned();
    let token = created["capabilityToken"]
        .as_str()
        .expect("token")
        .to_owned();
    d.event(&run, &token, "marker", r#"{"event":"started"}"#)
        .await;
    let tool = serde_json::json!({
        "requestId": "r-1", "kind": "tool", "tool": "Bash",
        "input": {"command": "touch f"}, "summary": "touch f", "timeoutSecs": 600,
    });
    d.event(&run, &token, "approval_request", &tool.to_string())
        .await;

    // The run waits, and says so.
    let waiting = d.json(&["runs", "list", "--state", "waiting"]);
    assert_eq!(waiting[0]["id"], run.as_str(), "{waiting}");
    let table = stdout(&d.ctl(&["runs", "list"]));
    assert!(table.contains(&format!("{run}  waiting")), "{table}");
    assert_eq!(d.json(&["status"])["runs"]["waiting"], 1);

    let pending = approvals_of(&d.ctl(&["--json", "approvals", "list"]));
    assert_eq!(pending.len(), 1, "{pending:?}");
    let id = pending[0].id.clone();
    assert_eq!(pending[0].run_id, run);
    assert_eq!(pending[0].kind, ApprovalKind::Tool);
    assert_eq!(pending[0].status, ApprovalStatus::Pending);
    let out = d.ctl(&["approvals", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    for header in [
        "ID",
        "RUN",
        "KIND",
        "TOOL",
        "SUMMARY",
        "STATUS",
        "EXPIRES IN",
        "DECIDED BY",
    ] {
        assert!(lines[0].contains(header), "{table}");
    }
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row[..7],
        [
            id.as_str(),
            run.as_str(),
            "tool",
            "Bash",
            "touch",
            "f",
            "pending"
        ],
        "{table}"
    );
    // Nine-odd minutes left of the ten.
    assert!(row[7].ends_with('m') && row[9] == "-", "{table}");
    for args in [
        ["approvals", "list", "--run", run.as_str()],
        ["approvals", "list", "--status", "all"],
    ] {
        let mut all = vec!["--json"];
        all.extend_from_slice(&args);
        assert_eq!(approvals_of(&d.ctl(&all)).len(), 1, "{args:?}");
    }
    for args in [
        ["approvals", "list", "--run", "no-such-run"],
        ["approvals", "list", "--status", "allowed"],
    ] {
        let mut all = vec!["--json"];
        all.extend_from_slice(&args);
        assert!(approvals_of(&d.ctl(&all)).is_empty(), "{args:?}");
    }

    let out = d.ctl(&["approvals", "show", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for part in [
        format!("Approval:   {id}\n"),
        format!("Run:        {run}\n"),
        "Request:    r-1\n".to_owned(),
        "Tool:       Bash\n".to_owned(),
        "Status:     pending\n".to_owned(),
        "Decided by: -\n".to_owned(),
        "\"command\": \"touch f\"".to_owned(),
    ] {
        assert!(text.contains(&part), "{part:?} in {text}");
    }
    assert_eq!(
        approval_of(&d.ctl(&["--json", "approvals", "show", &id])),
        pending[0]
    );

    // Allowed for the session: by the control socket's caller.
    let out = d.ctl(&["approvals", "allow", &id, "--session"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let allowed = approval_of(&d.ctl(&["--json", "approvals", "show", &id]));
    assert_eq!(allowed.status, ApprovalStatus::Allowed);
    assert_eq!(allowed.scope, Some(DecisionScope::Session));
    let by = allowed.decided_by.clone().expect("decided by");
    assert!(allowed.decided_at.is_some());
    assert_eq!(
        stdout(&out).lines().next().expect("a line"),
        format!(
            "approval {id} allowed by {by} for the rest of the run at {}",
            allowed.decided_at.as_deref().expect("when")
        )
    );
    assert_eq!(d.json(&["runs", "show", &run])["status"], "running");
    let text = stdout(&d.ctl(&["approvals", "show", &id]));
    assert!(
        text.contains(&format!("Decided by: {by}\n"))
            && text.contains("Scope:      session")
            && text.contains("Status:     allowed\n"),
        "{text}"
    );
    let table = stdout(&d.ctl(&["approvals", "list", "--status", "allowed"]));
    assert!(
        table.lines().next().expect("header").contains("AGE")
            && table.contains(&id)
            && table.trim_end().ends_with(&by),
        "{table}"
    );
    assert!(approvals_of(&d.ctl(&["--json", "approvals", "list"])).is_empty());

    // The first decision wins; the second is clawd's 409, as it says it.
    let out = d.ctl(&["approvals", "deny", &id, "--message", "no"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "clawctl: approval {id} was already decided: allowed by {by} at "
        )),
        "{err}"
    );
    assert_eq!(stdout(&out), "");
    let out = d.ctl(&["approvals", "show", "no-such-approval"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "clawctl: unknown approval no-such-approval (see clawctl approvals list --status all)"
    );

    // A question is answered, by its text; its answers are stored.
    let question = serde_json::json!({
        "requestId": "r-2", "kind": "question", "tool": "AskUserQuestion",
        "input": {"questions": [{
            "question": "Which colour?", "header": "Colour",
            "options": [
                {"label": "Red", "description": "warm"},
                {"label": "Blue", "description": "cool"}
            ],
            "multiSelect": false
        }]},
        "summary": "Which colour?", "timeoutSecs": 600,
    });
    d.event(&run, &token, "approval_request", &question.to_string())
        .await;
    assert_eq!(d.json(&["runs", "show", &run])["status"], "waiting");
    let pending = approvals_of(&d.ctl(&["--json", "approvals", "list", "--run", &run]));
    assert_eq!(pending.len(), 1, "{pending:?}");
    let qid = pending[0].id.clone();
    assert_eq!(pending[0].kind, ApprovalKind::Question);
    let text = stdout(&d.ctl(&["approvals", "show", &qid]));
    assert!(
        text.contains(
            "Questions:\n  1. Which colour? [Colour] (pick one)\n     - Red: warm\n     - Blue: cool\n"
        ),
        "{text}"
    );
    // clawd's 400s, as clawd says them.
    let out = d.ctl(&["approvals", "allow", &qid]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("allowing questions needs their answers"),
        "{}",
        stderr(&out)
    );
    let out = d.ctl(&[
        "approvals",
        "allow",
        &qid,
        "--session",
        "--answer",
        "Which colour?=Blue",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("scope \"session\" is for allowing a tool"),
        "{}",
        stderr(&out)
    );
    // A question the agent did not ask is refused here.
    let out = d.ctl(&["approvals", "allow", &qid, "--answer", "Size=L"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the agent asks no question \"Size\""),
        "{}",
        stderr(&out)
    );
    let out = d.ctl(&["approvals", "allow", &qid, "--answer", "Blue"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        approvals_of(&d.ctl(&["--json", "approvals", "list"])).len(),
        1,
        "nothing was decided"
    );
    let answered = approval_of(&d.ctl(&[
        "--json",
        "approvals",
        "allow",
        &qid,
        "--answer",
        "Which colour?=Blue",
        "--message",
        "Blue suits",
    ]));
    assert_eq!(answered.status, ApprovalStatus::Allowed);
    assert_eq!(answered.scope, Some(DecisionScope::Once));
    assert_eq!(answered.message.as_deref(), Some("Blue suits"));
    assert_eq!(
        answered.answers.clone().map(Value::Object),
        Some(serde_json::json!({"Which colour?": "Blue"}))
    );
    assert_eq!(
        approval_of(&d.ctl(&["--json", "approvals", "show", &qid])).answers,
        answered.answers
    );
    let text = stdout(&d.ctl(&["approvals", "show", &qid]));
    assert!(
        text.contains("Answers:\n  Which colour? = Blue\n"),
        "{text}"
    );

    // A denial, with its message.
    let plan = serde_json::json!({
        "requestId": "r-3", "kind": "plan", "tool": "ExitPlanMode",
        "input": {"plan": "1. Read\n2. Fix"}, "summary": "a plan", "timeoutSecs": 600,
    });
    d.event(&run, &token, "approval_request", &plan.to_string())
        .await;
    let pid = approvals_of(&d.ctl(&["--json", "approvals", "list"]))[0]
        .id
        .clone();
    let text = stdout(&d.ctl(&["approvals", "show", &pid]));
    assert!(text.ends_with("\nPlan:\n1. Read\n2. Fix\n"), "{text}");
    let out = d.ctl(&["approvals", "deny", &pid, "--message", "not yet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("approval {pid} denied by {by} at "))
            && text.contains("Message:    not yet\n"),
        "{text}"
    );
    let all = approvals_of(&d.ctl(&["--json", "approvals", "list", "--status", "all"]));
    let statuses: Vec<ApprovalStatus> = all.iter().map(|a| a.status).collect();
    // The newest first.
    assert_eq!(
        statuses,
        [
            ApprovalStatus::Denied,
            ApprovalStatus::Allowed,
            ApprovalStatus::Allowed
        ]
    );
    assert_eq!(d.json(&["runs", "show", &run])["status"], "running");
    // Each decision is audited.
    let audit = d.json(&["audit", "list", "--action", "approval.decide"]);
    assert_eq!(audit.as_array().expect("rows").len(), 3, "{audit}");
}

#[tokio::test]
async fn users_and_sessions() {
    let d = Daemon::start();
    let out = d.ctl_with_stdin(
        &[
            "users",
            "add",
            "alice",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("alice password 1\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !d.data().join("setup-token").exists(),
        "the first user ends setup"
    );
    let out = d.ctl_with_stdin(
        &["--json", "users", "add", "bob", "--password-stdin"],
        Some("bob password 12\n"),
    );
    let bob: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(bob["role"], "viewer");
    let users = d.json(&["users", "list"]);
    let names: Vec<&str> = users
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["username"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(!users.to_string().contains("argon2"));
    // Short passwords and no password are refused.
    let out = d.ctl_with_stdin(
        &["users", "add", "carol", "--password-stdin"],
        Some("short\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("at least 12"), "{}", stderr(&out));
    let out = d.ctl_with_stdin(&["users", "add", "carol"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--password-stdin"),
        "{}",
        stderr(&out)
    );

    assert_eq!(
        d.json(&["users", "role", "bob", "operator"])["role"],
        "operator"
    );
    d.login("bob", "bob password 12", None)
        .await
        .expect("login");
    d.login("bob", "bob password 12", None)
        .await
        .expect("login");
    d.login("alice", "alice password 1", None)
        .await
        .expect("login");
    let sessions = d.json(&["sessions", "list"]);
    assert_eq!(sessions.as_array().expect("sessions").len(), 3);
    assert!(stdout(&d.ctl(&["sessions", "list"])).contains("bob"));
    let revoked = d.json(&["sessions", "revoke", "--user", "bob"]);
    assert_eq!(revoked["revoked"], 2);
    let alice_session = d.json(&["sessions", "list"])[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        d.json(&["sessions", "revoke", &alice_session[..12]])["revoked"],
        1
    );
    d.login("bob", "bob password 12", None)
        .await
        .expect("login");
    assert_eq!(d.json(&["sessions", "revoke", "--all"])["revoked"], 1);
    let out = d.ctl(&["sessions", "revoke"]);
    assert_eq!(out.status.code(), Some(2), "usage error without a selector");

    let out = d.ctl_with_stdin(
        &["users", "passwd", "bob", "--password-stdin"],
        Some("bob new password\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    d.login("bob", "bob new password", None)
        .await
        .expect("login");
    assert_eq!(
        d.json(&["users", "reset-totp", "bob"])["totpEnabled"],
        false
    );
    let out = d.ctl(&["users", "del", "bob"]);
    assert!(out.status.success());
    let out = d.ctl(&["users", "del", "bob"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "clawctl: unknown user bob (see clawctl users list)"
    );
    let out = d.ctl(&["users", "role", "nobody", "viewer"]);
    assert_eq!(out.status.code(), Some(1));
    // The last administrator stays.
    let out = d.ctl(&["users", "del", "alice"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("last administrator"),
        "{}",
        stderr(&out)
    );

    let audit = d.json(&[
        "audit",
        "list",
        "--user",
        "root",
        "--action",
        "user",
        "--since",
        "2020-01-01T00:00:00Z",
    ]);
    assert!(audit.as_array().expect("rows").len() >= 5, "{audit}");
    assert!(
        audit
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["action"].as_str().expect("a").starts_with("user."))
    );
}

#[test]
fn audit_verify_fails_after_a_row_is_altered() {
    let d = Daemon::start();
    d.json(&["runs", "create"]);
    d.json(&["runs", "create"]);
    let out = d.ctl(&["audit", "verify"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("audit log intact: 2 entries verified"),
        "{}",
        stdout(&out)
    );
    let first = d
        .json(&["audit", "list"])
        .as_array()
        .expect("rows")
        .last()
        .expect("row")["id"]
        .as_i64()
        .expect("id");
    d.sql(&format!(
        "UPDATE audit_log SET action = 'run.nothing' WHERE id = {first}"
    ));
    let out = d.ctl(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "clawctl: audit log broken at entry {first}: row content does not match its hash (the row was edited) (0 entries before it verified)"
        )
    );
    let report = d.ctl(&["--json", "audit", "verify"]);
    assert_eq!(report.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&report.stdout).expect("json");
    assert_eq!(report["brokenAt"], first);
}

#[test]
fn unreachable_and_refused() {
    let missing = Path::new("/nonexistent/claw/control.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_clawctl"))
        .args(["status"])
        .env("CLAW_CONTROL_SOCKET", missing)
        .output()
        .expect("clawctl");
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.starts_with("clawctl: cannot reach clawd at /nonexistent/claw/control.sock"),
        "{err}"
    );
    assert!(
        err.contains("systemctl start clawd-control.socket") && err.lines().count() == 1,
        "{err}"
    );

    // A socket file nobody listens on.
    let dir = tempfile::tempdir().expect("dir");
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let out = Command::new(env!("CARGO_BIN_EXE_clawctl"))
        .args(["--socket"])
        .arg(&stale)
        .arg("health")
        .output()
        .expect("clawctl");
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));

    let d = Daemon::start();
    use std::os::unix::fs::PermissionsExt;
    // Reachable for everybody, so that clawd itself must refuse.
    std::fs::set_permissions(d.data(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(d.socket(), std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_clawctl"))
        .arg("--socket")
        .arg(d.socket())
        .arg("status")
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("claw-admin"), "{}", stderr(&out));
    // The socket's own permissions refuse before clawd does.
    std::fs::set_permissions(d.socket(), std::fs::Permissions::from_mode(0o660)).expect("chmod");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_clawctl"))
        .arg("--socket")
        .arg(d.socket())
        .arg("status")
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    // Usage errors are 2.
    let out = Command::new(env!("CARGO_BIN_EXE_clawctl"))
        .args(["runs", "frobnicate"])
        .output()
        .expect("clawctl");
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn prune_removes_old_finished_runs_orphans_and_expired_sessions() {
    let d = Daemon::start();
    let new_run = |d: &Daemon| {
        let created = d.json(&["runs", "create"]);
        (
            created["id"].as_str().expect("id").to_owned(),
            created["capabilityToken"]
                .as_str()
                .expect("token")
                .to_owned(),
        )
    };
    let (old_done, old_token) = new_run(&d);
    let (old_running, running_token) = new_run(&d);
    let (recent_done, recent_token) = new_run(&d);
    for (id, token, finish) in [
        (&old_done, &old_token, true),
        (&old_running, &running_token, false),
        (&recent_done, &recent_token, true),
    ] {
        d.event(id, token, "marker", r#"{"event":"started"}"#).await;
        d.event(id, token, "stdout", "0123456789").await;
        if finish {
            d.event(id, token, "marker", r#"{"event":"finished","exitCode":0}"#)
                .await;
        }
    }
    let artifacts = d.data().join("artifacts");
    std::fs::create_dir_all(artifacts.join(&old_done)).expect("dir");
    std::fs::write(
        artifacts.join(&old_done).join("a_latest.diff"),
        vec![b'x'; 1000],
    )
    .expect("file");
    std::fs::create_dir_all(artifacts.join("no-such-run")).expect("orphan");
    std::fs::write(
        artifacts.join("no-such-run").join("b_log.txt"),
        vec![b'y'; 500],
    )
    .expect("file");
    // Age two runs by 40 days; expire a session.
    let out = d.ctl_with_stdin(
        &["users", "add", "eve", "--password-stdin"],
        Some("eve password 123\n"),
    );
    assert!(out.status.success());
    d.login("eve", "eve password 123", None)
        .await
        .expect("login");
    {
        let old = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64
            - 40 * 86_400_000;
        for id in [&old_done, &old_running] {
            d.sql(&format!(
                "UPDATE runs SET created_at = {old}, started_at = {old}, finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE {old} END WHERE id = '{id}'"
            ));
        }
        d.sql("UPDATE sessions SET expires_at = 1");
    }

    let dry = d.json(&["prune", "--dry-run"]);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["olderThanDays"], 30, "run_retention_days by default");
    assert_eq!(dry["counts"]["runs"], 1);
    assert_eq!(dry["counts"]["events"], 3);
    assert_eq!(dry["counts"]["orphanFolders"], 1);
    assert_eq!(dry["counts"]["expiredSessions"], 1);
    assert!(dry["counts"]["bytesFreed"].as_u64().expect("bytes") >= 1500);
    // Nothing changed.
    assert_eq!(d.json(&["runs", "list"]).as_array().expect("runs").len(), 3);
    assert!(artifacts.join("no-such-run").exists() && artifacts.join(&old_done).exists());
    assert!(
        d.json(&["status"])["lastPrune"].is_null(),
        "a dry run is not a prune"
    );

    let out = d.ctl(&["prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("removed 1 runs finished more than 30 days ago (3 events"),
        "{text}"
    );
    assert!(
        text.contains("1 orphaned artifact folders, 1 expired sessions"),
        "{text}"
    );
    let out = d.ctl(&["runs", "show", &old_done]);
    assert_eq!(out.status.code(), Some(1), "the old finished run is gone");
    assert!(!artifacts.join(&old_done).exists());
    assert!(!artifacts.join("no-such-run").exists());
    assert_eq!(
        d.json(&["runs", "show", &old_running])["status"],
        "running",
        "running runs stay"
    );
    assert_eq!(
        d.json(&["runs", "show", &recent_done])["eventCount"],
        3,
        "recent runs stay"
    );
    assert_eq!(
        d.json(&["sessions", "list"])
            .as_array()
            .expect("sessions")
            .len(),
        0
    );
    let status = d.json(&["status"]);
    assert!(
        status["lastPrune"]["summary"]
            .as_str()
            .expect("summary")
            .starts_with("1 runs"),
        "{status}"
    );
    let audit = d.json(&["audit", "list", "--action", "prune"]);
    assert_eq!(audit.as_array().expect("rows").len(), 1);

    // Again, and with an explicit age: nothing left to do, still fine.
    let again = d.json(&["prune"]);
    assert_eq!(again["counts"]["runs"], 0);
    let younger = d.json(&["prune", "--older-than", "0", "--dry-run"]);
    assert_eq!(
        younger["counts"]["runs"], 1,
        "the recent finished run is past a zero-day retention"
    );
}

#[test]
fn db_status_and_check() {
    let d = Daemon::start();
    d.json(&["runs", "create"]);
    let status = d.json(&["db", "status"]);
    assert_eq!(status["schemaVersion"], status["latestSchemaVersion"]);
    if let Some(url) = d.database_url() {
        // PostgreSQL: the server's version, the pool, no SQLite journal.
        assert_eq!(status["backend"], "postgres");
        assert_eq!(status.get("journalMode"), None, "{status}");
        assert_eq!(
            status["serverVersion"],
            psql(&url, "SHOW server_version").as_str(),
            "{status}"
        );
        let pool = &status["pool"];
        assert_eq!(pool["max"], 10, "the default store.max_connections");
        assert!(pool["inUse"].as_u64().expect("in use") >= 1, "{status}");
        assert!(
            pool["open"].as_u64().expect("open") >= pool["inUse"].as_u64().expect("in use"),
            "{status}"
        );
        let size: u64 = psql(&url, "SELECT pg_database_size(current_database())")
            .parse()
            .expect("size");
        let shown = status["sizeBytes"].as_u64().expect("size");
        // Other tests' writes do not reach this database; its own may grow it a little.
        assert!(
            shown > 0 && shown.abs_diff(size) < 1024 * 1024,
            "{shown} vs {size}"
        );
        if let Some(password) = password_of(&url) {
            assert!(!status.to_string().contains(&password), "a password shown");
        }
        let text = stdout(&d.ctl(&["db", "status"]));
        assert!(
            text.contains("Server:      PostgreSQL ") && text.contains("connections in use"),
            "{text}"
        );
        assert!(!text.contains("journal"), "{text}");
    } else {
        assert_eq!(status["backend"], "sqlite");
        assert_eq!(status["journalMode"], "wal");
        assert_eq!(status.get("serverVersion"), None, "{status}");
        assert_eq!(status.get("pool"), None, "{status}");
        assert!(status["pageCount"].as_u64().expect("pages") > 0);
    }
    // Each backend has its own migrations: the first is the schema.
    let first = if store_is_postgres() {
        "0001 schema"
    } else {
        "0001 initial schema"
    };
    let migrations = status["migrations"].as_array().expect("migrations");
    assert!(
        migrations[0].as_str().expect("m").starts_with(first),
        "{status}"
    );
    assert_eq!(
        migrations.len() as u64,
        status["latestSchemaVersion"].as_u64().expect("latest"),
        "{status}"
    );
    assert!(
        status["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .any(|t| t[0] == "runs" && t[1] == 1)
    );
    let text = stdout(&d.ctl(&["db", "status"]));
    let last = migrations.last().and_then(Value::as_str).expect("last");
    assert!(
        text.contains("Migrations:") && text.contains(last),
        "{text}"
    );
    assert_eq!(d.json(&["db", "check"])["ok"], true);
    let out = d.ctl(&["db", "check"]);
    assert!(out.status.success());
    if !on_sqlite("a row planted in db.sqlite with foreign keys off") {
        return;
    }
    // A row whose run does not exist, planted with foreign keys off.
    let db = rusqlite::Connection::open(d.data().join("db.sqlite")).expect("db");
    db.busy_timeout(Duration::from_secs(5)).expect("timeout");
    db.pragma_update(None, "foreign_keys", "OFF")
        .expect("fk off");
    db.execute(
        "INSERT INTO commands (id, run_id, command, status, created_at) VALUES ('c', 'ghost', 'ls', 'pending', 0)",
        [],
    )
    .expect("plant");
    let out = d.ctl(&["db", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("1 broken references"),
        "{}",
        stderr(&out)
    );
}

/// The password in a `postgres://USER:PASSWORD@…` URL.
fn password_of(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let (user_info, _) = rest.split_once('@')?;
    let (_, password) = user_info.split_once(':')?;
    Some(password.to_owned())
}

/// `psql` on `url`: the output, unaligned without headers.
fn psql(url: &str, sql: &str) -> String {
    let psql = claw_testkit::postgres::server_bindir()
        .expect("PostgreSQL's programs")
        .join("psql");
    let out = Command::new(psql)
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("psql");
    assert!(out.status.success(), "{sql}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// A self-signed certificate and key (PEM) for localhost.
fn certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    (cert.pem(), key.serialize_pem())
}

/// True when a client trusting only `pem` completes a handshake.
async fn handshake_trusting(d: &Daemon, pem: &str) -> bool {
    client_trusting(pem.as_bytes())
        .get(d.url("/api/health"))
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn certificates_show_install_and_self_signed() {
    let d = Daemon::start();
    let shown = d.json(&["certs", "show"]);
    assert!(
        shown["names"]
            .as_array()
            .expect("names")
            .iter()
            .any(|n| n == "localhost"),
        "{shown}"
    );
    assert!((364..=365).contains(&shown["daysLeft"].as_i64().expect("days")));
    assert_eq!(shown["expiresSoon"], false);
    let old_fingerprint = shown["fingerprintSha256"].as_str().expect("fp").to_owned();
    let text = stdout(&d.ctl(&["certs", "show"]));
    assert!(
        text.contains("SHA-256:") && text.contains("Days left:"),
        "{text}"
    );
    let old_pem = std::fs::read_to_string(d.data().join("certs/server.crt")).expect("cert");

    // A key that does not belong to the certificate is refused.
    let dir = tempfile::tempdir().expect("dir");
    let (cert_a, _) = certificate();
    let (_, key_b) = certificate();
    std::fs::write(dir.path().join("fullchain.pem"), &cert_a).expect("write");
    std::fs::write(dir.path().join("wrong.pem"), &key_b).expect("write");
    let fullchain = dir.path().join("fullchain.pem");
    let wrong = dir.path().join("wrong.pem");
    let out = d.ctl(&[
        "certs",
        "install",
        "--cert",
        fullchain.to_str().expect("path"),
        "--key",
        wrong.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the old one stays"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        d.json(&["certs", "show"])["fingerprintSha256"],
        old_fingerprint.as_str()
    );
    assert!(
        handshake_trusting(&d, &old_pem).await,
        "the old certificate still serves"
    );
    let out = d.ctl(&[
        "certs",
        "install",
        "--cert",
        "/nonexistent.pem",
        "--key",
        wrong.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read /nonexistent.pem"),
        "{}",
        stderr(&out)
    );

    // The certbot deploy hook installs a renewed lineage.
    let (new_cert, new_key) = certificate();
    let lineage = tempfile::tempdir().expect("lineage");
    std::fs::write(lineage.path().join("fullchain.pem"), &new_cert).expect("write");
    std::fs::write(lineage.path().join("privkey.pem"), &new_key).expect("write");
    let ctl_dir = PathBuf::from(env!("CARGO_BIN_EXE_clawctl"))
        .parent()
        .expect("dir")
        .to_owned();
    let hook = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/certbot/clawd-deploy-hook");
    let out = Command::new(&hook)
        .env("RENEWED_LINEAGE", lineage.path())
        .env("RENEWED_DOMAINS", "localhost")
        .env("CLAW_CONTROL_SOCKET", d.socket())
        .env("PATH", format!("{}:/usr/bin:/bin", ctl_dir.display()))
        .output()
        .expect("deploy hook");
    assert!(out.status.success(), "{}", stderr(&out));
    let installed = d.json(&["certs", "show"]);
    assert_ne!(installed["fingerprintSha256"], old_fingerprint.as_str());
    assert!(
        handshake_trusting(&d, &new_cert).await,
        "new handshakes present the new certificate"
    );
    assert!(
        !handshake_trusting(&d, &old_pem).await,
        "the old certificate is gone"
    );
    assert_eq!(
        std::fs::read_to_string(d.data().join("certs/server.crt")).expect("cert"),
        new_cert
    );
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.data().join("certs/server.key"))
            .expect("key")
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);

    // A new self-signed certificate with chosen names.
    let generated = d.json(&[
        "certs",
        "self-signed",
        "--name",
        "gateway.example",
        "--name",
        "localhost",
    ]);
    let names: Vec<&str> = generated["names"]
        .as_array()
        .expect("names")
        .iter()
        .map(|n| n.as_str().expect("n"))
        .collect();
    assert!(
        names.contains(&"gateway.example") && names.contains(&"localhost"),
        "{names:?}"
    );
    assert!(
        generated["subject"]
            .as_str()
            .expect("subject")
            .contains("gateway.example")
    );
    let actions: Vec<String> = d
        .json(&["audit", "list", "--action", "certs"])
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| cell(&r["action"]))
        .collect();
    assert_eq!(actions, ["certs.self-signed", "certs.install"]);

    // A certificate about to expire is pointed out.
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.not_after = (std::time::SystemTime::now() + Duration::from_secs(5 * 86_400)).into();
    let soon = params.self_signed(&key).expect("cert");
    std::fs::write(lineage.path().join("fullchain.pem"), soon.pem()).expect("write");
    std::fs::write(lineage.path().join("privkey.pem"), key.serialize_pem()).expect("write");
    let out = d.ctl(&[
        "certs",
        "install",
        "--cert",
        lineage.path().join("fullchain.pem").to_str().expect("path"),
        "--key",
        lineage.path().join("privkey.pem").to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("(renew soon)"), "{}", stdout(&out));
    let status = stdout(&d.ctl(&["status"]));
    assert!(
        status.contains("WARNING:     the certificate expires in 4 days")
            || status.contains("WARNING:     the certificate expires in 5 days"),
        "{status}"
    );
    assert_eq!(d.json(&["status"])["tls"]["expiresSoon"], true);
}

/// The manifest of a backup archive.
fn archive_manifest(archive: &Path) -> Value {
    let file = std::fs::File::open(archive).expect("open");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").to_str() == Some("manifest.json") {
            return serde_json::from_reader(&mut entry).expect("manifest");
        }
    }
    panic!("no manifest in {}", archive.display());
}

/// A fresh database on the test run's PostgreSQL server, dropped with it.
struct ScratchDatabase {
    admin_url: String,
    url: String,
    name: String,
}

impl ScratchDatabase {
    fn create(name: &str) -> Self {
        let admin_url = std::env::var("CLAW_TEST_PG_URL").expect("CLAW_TEST_PG_URL");
        let name = format!("{name}_{}", std::process::id());
        psql(&admin_url, &format!("DROP DATABASE IF EXISTS {name}"));
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let (server, _) = admin_url.rsplit_once('/').expect("URL");
        let url = format!("{server}/{name}");
        Self {
            admin_url,
            url,
            name,
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// The events of `run_id` in an unpacked archive's database, and their
/// highest sequence: SQLite's file read directly, PostgreSQL's dump
/// restored into a database of its own.
fn archived_events(unpacked: &Path, run_id: &str) -> (u64, u64) {
    if store_is_postgres() {
        let db = ScratchDatabase::create("t_archived");
        let pg_restore = claw_testkit::postgres::server_bindir()
            .expect("bindir")
            .join("pg_restore");
        let out = Command::new(pg_restore)
            .args(["--no-owner", "--exit-on-error", "-d", &db.url])
            .arg(unpacked.join("db.pgdump"))
            .output()
            .expect("pg_restore");
        assert!(out.status.success(), "{}", stderr(&out));
        let row = psql(
            &db.url,
            &format!("SELECT count(*), MAX(sequence) FROM events WHERE run_id = '{run_id}'"),
        );
        let (count, max) = row.split_once('|').expect("row");
        return (count.parse().expect("count"), max.parse().expect("max"));
    }
    let db = rusqlite::Connection::open(unpacked.join("db.sqlite")).expect("db");
    db.query_row(
        "SELECT COUNT(*), MAX(sequence) FROM events WHERE run_id = ?1",
        [run_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("count")
}

fn cell(v: &Value) -> String {
    v.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}

// The runner task streams while this thread waits for clawctl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_streaming_verify_and_keep() {
    let d = Daemon::start();
    let created = d.json(&["runs", "create"]);
    let id = created["id"].as_str().expect("id").to_owned();
    let token = created["capabilityToken"]
        .as_str()
        .expect("token")
        .to_owned();
    std::fs::create_dir_all(d.data().join("artifacts").join(&id)).expect("dir");
    std::fs::write(
        d.data().join("artifacts").join(&id).join("x_latest.diff"),
        b"+line\n",
    )
    .expect("artifact");
    for i in 0..50 {
        d.event(&id, &token, "stdout", &format!("before {i}\n"))
            .await;
    }
    let out_dir = tempfile::tempdir().expect("out");

    // A runner keeps streaming while the backup runs.
    let streaming = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let streamer = {
        let streaming = std::sync::Arc::clone(&streaming);
        let runner = d.runner_client(&id, &token);
        tokio::spawn(async move {
            let mut sent = 0;
            while streaming.load(std::sync::atomic::Ordering::Relaxed) {
                runner.event_ok("stdout", &format!("during {sent}\n")).await;
                sent += 1;
            }
            sent
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let acknowledged_before = d.json(&["runs", "show", &id])["eventCount"]
        .as_u64()
        .expect("count");
    let out = d.ctl(&[
        "--json",
        "backup",
        "--output",
        out_dir.path().to_str().expect("path"),
        "--keep",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    streaming.store(false, std::sync::atomic::Ordering::Relaxed);
    let sent_during = streamer.await.expect("streamer");
    assert!(sent_during > 0);
    let result: Value = serde_json::from_slice(&out.stdout).expect("json");
    let archive = PathBuf::from(result["path"].as_str().expect("path"));
    assert!(archive.starts_with(out_dir.path()));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&archive).expect("archive").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "archives hold secrets");

    let verified = d.ctl(&["backup", "verify", archive.to_str().expect("path")]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(
        stdout(&verified).contains("files match the manifest, database intact"),
        "{}",
        stdout(&verified)
    );
    let report = d.json(&["backup", "verify", archive.to_str().expect("path")]);
    assert_eq!(report["ok"], true);
    let manifest = archive_manifest(&archive);
    if store_is_postgres() {
        assert_eq!(report["store"], "postgres");
        assert_eq!(manifest["store"], "postgres");
        assert!(
            manifest["files"]
                .as_array()
                .expect("files")
                .iter()
                .any(|f| f["path"] == "db.pgdump")
        );
        assert_eq!(
            report["schemaVersion"],
            d.json(&["db", "status"])["schemaVersion"]
        );
    } else {
        assert_eq!(report["store"], "sqlite");
        assert!(
            manifest["files"]
                .as_array()
                .expect("files")
                .iter()
                .any(|f| f["path"] == "db.sqlite")
        );
    }

    // The archive's database has every event acknowledged before it began.
    let unpacked = tempfile::tempdir().expect("unpack");
    let file = std::fs::File::open(&archive).expect("open");
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(unpacked.path())
        .expect("unpack");
    let (stored, seqs) = archived_events(unpacked.path(), &id);
    assert!(
        stored >= acknowledged_before,
        "{stored} < {acknowledged_before}"
    );
    assert_eq!(seqs, stored, "no gaps");
    assert_eq!(
        std::fs::read(
            unpacked
                .path()
                .join("artifacts")
                .join(&id)
                .join("x_latest.diff")
        )
        .expect("artifact"),
        b"+line\n"
    );
    assert!(
        unpacked.path().join("certs/server.key").exists()
            && unpacked.path().join("secrets/hmac-secret").exists()
    );
    let status = d.json(&["status"]);
    assert!(
        status["lastBackup"]["summary"]
            .as_str()
            .expect("summary")
            .contains("claw-backup-"),
        "{status}"
    );

    // A damaged archive is caught.
    let mut bytes = std::fs::read(&archive).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let damaged = out_dir.path().join("damaged.tar.gz");
    std::fs::write(&damaged, &bytes).expect("write");
    let out = d.ctl(&["backup", "verify", damaged.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not a good backup"),
        "{}",
        stderr(&out)
    );

    // Only the newest two archives stay.
    for _ in 0..2 {
        let out = d.ctl(&[
            "backup",
            "--output",
            out_dir.path().to_str().expect("path"),
            "--keep",
            "2",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let archives = std::fs::read_dir(out_dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("claw-backup-"))
        .count();
    assert_eq!(archives, 2);
    assert!(!archive.exists(), "the oldest archive went");
    let audit = d.json(&["audit", "list", "--action", "backup"]);
    assert_eq!(audit.as_array().expect("rows").len(), 3);
}

/// What backups that never ended left beside their archives (a copy of
/// the database, artifacts copied down, a half-written archive) is removed
/// by the next backup once a day old; younger leftovers may be a running
/// backup's, and nothing else is touched.
#[test]
fn a_backup_removes_what_unfinished_backups_left() {
    let d = Daemon::start();
    let out_dir = tempfile::tempdir().expect("out");
    let dir = out_dir.path();
    let unfinished = "claw-backup-2020-01-01T000000.000Z.tar.gz";
    let stale = [
        format!(".{unfinished}.db"),
        format!(".{unfinished}.part"),
        format!(".{unfinished}.artifacts"),
    ];
    std::fs::write(dir.join(&stale[0]), b"a copy of the database").expect("db");
    std::fs::write(dir.join(&stale[1]), b"half an archive").expect("part");
    std::fs::create_dir_all(dir.join(&stale[2]).join("run-1")).expect("artifacts");
    std::fs::write(dir.join(&stale[2]).join("run-1/a1_out.log"), b"x").expect("artifact");
    let lookalike = format!(".{unfinished}.lookalike.db");
    let running = ".claw-backup-2020-01-02T000000.000Z.tar.gz.db";
    let other = ".claw-backup-notes";
    for name in [lookalike.as_str(), running, other] {
        std::fs::write(dir.join(name), b"x").expect("file");
    }
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 24 * 60 * 60);
    for name in stale
        .iter()
        .map(String::as_str)
        .chain([lookalike.as_str(), other])
    {
        std::fs::File::open(dir.join(name))
            .expect("open")
            .set_modified(two_days_ago)
            .expect("make it old");
    }

    let out = d.ctl(&["--json", "backup", "--output", dir.to_str().expect("path")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let made: Value = serde_json::from_slice(&out.stdout).expect("json");
    let archive = PathBuf::from(made["path"].as_str().expect("path"));
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut expected = vec![
        // Not a name a backup stages.
        lookalike,
        // Younger than a day.
        running.to_owned(),
        other.to_owned(),
        archive
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned(),
    ];
    expected.sort();
    assert_eq!(left, expected);
}

/// The scratch databases `backup verify --scratch-url` left on the server.
fn scratch_leftovers(admin_url: &str) -> String {
    psql(
        admin_url,
        "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE 'claw_verify_%'",
    )
}

#[tokio::test]
async fn verify_on_a_scratch_server_compares_rows_and_the_audit_chain() {
    let d = Daemon::start();
    let created = d.json(&["runs", "create"]);
    let id = created["id"].as_str().expect("id").to_owned();
    let token = created["capabilityToken"]
        .as_str()
        .expect("token")
        .to_owned();
    for i in 0..20 {
        d.event(&id, &token, "stdout", &format!("line {i}\n")).await;
    }
    // A second audited action: the chain has links to check.
    d.json(&["runs", "create"]);
    let out_dir = tempfile::tempdir().expect("out");
    let made = d.json(&["backup", "--output", out_dir.path().to_str().expect("path")]);
    let archive = PathBuf::from(made["path"].as_str().expect("path"));
    let archive_arg = archive.to_str().expect("path");
    let Ok(admin_url) = std::env::var("CLAW_TEST_PG_URL") else {
        // SQLite: nothing to restore on a server; said so, not ignored.
        assert!(!store_is_postgres());
        let out = d.ctl(&[
            "backup",
            "verify",
            archive_arg,
            "--scratch-url",
            "postgres://x@127.0.0.1:1/x",
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("holds a SQLite database"),
            "{}",
            stderr(&out)
        );
        return;
    };
    if !store_is_postgres() {
        let out = d.ctl(&["backup", "verify", archive_arg, "--scratch-url", &admin_url]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("holds a SQLite database"),
            "{}",
            stderr(&out)
        );
        return;
    }
    let out = d.ctl(&["backup", "verify", archive_arg, "--scratch-url", &admin_url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("as the manifest says") && text.contains("audit chain of"),
        "{text}"
    );
    assert!(
        !text.contains(&password_of(&admin_url).expect("password")),
        "{text}"
    );
    let report = d.json(&["backup", "verify", archive_arg, "--scratch-url", &admin_url]);
    assert_eq!(report["ok"], true, "{report}");
    let manifest = archive_manifest(&archive);
    let tables = manifest["tables"].as_array().expect("tables");
    let events = tables.iter().find(|t| t[0] == "events").expect("events");
    assert_eq!(events[1], 20);
    let rows: u64 = tables.iter().map(|t| t[1].as_u64().expect("n")).sum();
    assert_eq!(report["scratch"]["rows"], rows);
    assert_eq!(report["scratch"]["tables"], tables.len());
    let audit = tables.iter().find(|t| t[0] == "audit_log").expect("audit");
    assert_eq!(report["scratch"]["auditRows"], audit[1]);
    assert!(
        audit[1].as_u64().expect("n") >= 2,
        "two runs created: {audit:?}"
    );
    assert_eq!(
        scratch_leftovers(&admin_url),
        "",
        "the scratch database is dropped"
    );

    // A manifest that disagrees with the dump: its checksums still match
    // (they cover the files), the restored rows do not.
    let mut edited = manifest.clone();
    for table in edited["tables"].as_array_mut().expect("tables") {
        if table[0] == "events" {
            table[1] = json!(21);
        }
    }
    let edited = serde_json::to_vec(&edited).expect("json");
    let forged = out_dir.path().join("forged.tar.gz");
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        std::fs::File::create(&forged).expect("create"),
        flate2::Compression::fast(),
    ));
    let mut original = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&archive).expect("open"),
    ));
    for entry in original.entries().expect("entries") {
        let entry = entry.expect("entry");
        let mut header = entry.header().clone();
        if entry.path().expect("path").to_str() == Some("manifest.json") {
            header.set_size(edited.len() as u64);
            header.set_cksum();
            tar.append(&header, edited.as_slice()).expect("manifest");
        } else {
            tar.append(&header, entry).expect("entry");
        }
    }
    tar.into_inner().expect("tar").finish().expect("gz");
    let forged_arg = forged.to_str().expect("path");
    let out = d.ctl(&["backup", "verify", forged_arg]);
    assert!(
        out.status.success(),
        "without a server the counts are not checked: {}",
        stderr(&out)
    );
    let out = d.ctl(&["backup", "verify", forged_arg, "--scratch-url", &admin_url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("events: 20 rows restored, the manifest says 21"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        scratch_leftovers(&admin_url),
        "",
        "dropped after a failure too"
    );
}

#[tokio::test]
async fn secret_rotation() {
    let d = Daemon::start();
    let created = d.json(&["runs", "create"]);
    let id = created["id"].as_str().expect("id").to_owned();
    let token = created["capabilityToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let old = std::fs::read_to_string(d.data().join("secrets/hmac-secret")).expect("secret");
    let old = old.trim().to_owned();

    let rotated = d.json(&["secrets", "rotate", "hmac", "--grace", "2s"]);
    let new = rotated["hmacSecret"].as_str().expect("secret").to_owned();
    assert_eq!(new.len(), 64);
    assert_ne!(new, old);
    assert_eq!(
        std::fs::read_to_string(d.data().join("secrets/hmac-secret"))
            .expect("file")
            .trim(),
        new
    );
    assert_eq!(
        d.runner(&id, &token)
            .with_secret(&new)
            .event("stdout", "new", None)
            .await
            .0,
        200
    );
    assert_eq!(
        d.runner(&id, &token)
            .with_secret(&old)
            .event("stdout", "old, in grace", None)
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        d.runner(&id, &token)
            .with_secret(&old)
            .event("stdout", "old, too late", None)
            .await
            .0,
        401
    );
    assert_eq!(
        d.runner(&id, &token)
            .with_secret(&new)
            .event("stdout", "new still", None)
            .await
            .0,
        200
    );
    let text = stdout(&d.ctl(&["secrets", "rotate", "hmac"]));
    assert!(
        text.contains("shown only now") && text.contains("keeps working until"),
        "{text}"
    );

    // The session secret: every session ends.
    let out = d.ctl_with_stdin(
        &["users", "add", "sam", "--password-stdin"],
        Some("sam password 1234\n"),
    );
    assert!(out.status.success());
    let session = d
        .login("sam", "sam password 1234", None)
        .await
        .expect("login");
    let me = |session: String| {
        let client = d.client.clone();
        let url = d.url("/api/auth/me");
        async move {
            client
                .get(url)
                .bearer_auth(session)
                .send()
                .await
                .expect("me")
                .status()
                .as_u16()
        }
    };
    assert_eq!(me(session.clone()).await, 200);
    let rotated = d.json(&["secrets", "rotate", "auth"]);
    assert_eq!(rotated["sessionsEnded"], 1);
    assert_eq!(me(session).await, 401);
    let fresh = d
        .login("sam", "sam password 1234", None)
        .await
        .expect("login");
    assert_eq!(me(fresh).await, 200, "new logins work with the new secret");
    let audit = d.json(&["audit", "list", "--action", "secrets"]);
    assert_eq!(audit.as_array().expect("rows").len(), 3);
    assert!(
        !audit.to_string().contains(&new),
        "the secret is not in the audit log"
    );
}

#[tokio::test]
async fn reconcile_finds_and_fixes_planted_drift() {
    let d = Daemon::start();
    let mut runs = Vec::new();
    for _ in 0..4 {
        let created = d.json(&["runs", "create"]);
        let id = created["id"].as_str().expect("id").to_owned();
        let token = created["capabilityToken"]
            .as_str()
            .expect("token")
            .to_owned();
        d.event(&id, &token, "marker", r#"{"event":"started"}"#)
            .await;
        for i in 0..3 {
            d.event(&id, &token, "stdout", &format!("line {i}\n")).await;
        }
        runs.push(id);
    }
    let (mismatch, stale, gap, files) = (&runs[0], &runs[1], &runs[2], &runs[3]);
    let created = d.json(&["runs", "show", mismatch]);
    assert_eq!(created["status"], "running");
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        - 48 * 3_600_000;
    // A finished marker the status never caught up with.
    d.sql(&format!(
        "INSERT INTO events (run_id, type, data, timestamp, sequence) VALUES ('{mismatch}', 'marker', '{{\"event\":\"finished\",\"exitCode\":2}}', 0, 5)"
    ));
    // Nobody heard from this runner for two days.
    d.sql(&format!(
        "UPDATE events SET timestamp = {old} WHERE run_id = '{stale}'"
    ));
    d.sql(&format!(
        "UPDATE runs SET created_at = {old}, started_at = {old} WHERE id = '{stale}'"
    ));
    // A lost event.
    d.sql(&format!(
        "DELETE FROM events WHERE run_id = '{gap}' AND sequence = 2"
    ));
    // An artifact row without its file.
    d.sql(&format!(
        "INSERT INTO artifacts (id, run_id, filename, path, size, content_type, created_at) VALUES ('ghost', '{files}', 'gone.log', '{files}/ghost_gone.log', 1, 'text/plain', 0)"
    ));
    // A file without a row, older than an upload in flight.
    let folder = d.data().join("artifacts").join(files);
    std::fs::create_dir_all(&folder).expect("dir");
    let stray = folder.join("stray_file.txt");
    std::fs::write(&stray, b"?").expect("file");
    std::fs::File::options()
        .write(true)
        .open(&stray)
        .expect("open")
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .expect("mtime");

    let report = d.json(&["reconcile"]);
    let kinds = common::finding_kinds;
    assert_eq!(
        kinds(&report),
        [
            ("missing_artifact_file".to_owned(), false),
            ("orphan_artifact_file".to_owned(), false),
            ("sequence_gap".to_owned(), false),
            ("stale_run".to_owned(), false),
            ("status_mismatch".to_owned(), false),
        ]
    );
    assert_eq!(
        d.json(&["runs", "show", mismatch])["status"],
        "running",
        "no --fix, no change"
    );
    assert!(stray.exists());
    let text = stdout(&d.ctl(&["reconcile"]));
    assert!(
        text.contains("--fix would set status failed") && text.contains("cannot be repaired"),
        "{text}"
    );

    let fixed = d.json(&["reconcile", "--fix"]);
    assert_eq!(
        kinds(&fixed),
        [
            ("missing_artifact_file".to_owned(), true),
            ("orphan_artifact_file".to_owned(), true),
            ("sequence_gap".to_owned(), false),
            ("stale_run".to_owned(), true),
            ("status_mismatch".to_owned(), true),
        ]
    );
    let run = d.json(&["runs", "show", mismatch]);
    assert_eq!(
        (run["status"].as_str(), run["exitCode"].as_i64()),
        (Some("failed"), Some(2))
    );
    assert_eq!(d.json(&["runs", "show", stale])["status"], "failed");
    assert!(!stray.exists());
    assert_eq!(
        d.json(&["runs", "show", files])["artifacts"]
            .as_array()
            .expect("a")
            .len(),
        0
    );
    let again = d.json(&["reconcile"]);
    assert_eq!(kinds(&again), [("sequence_gap".to_owned(), false)]);
    assert_eq!(
        d.json(&["audit", "list", "--action", "reconcile"])
            .as_array()
            .expect("rows")
            .len(),
        1
    );
}

#[tokio::test]
async fn restore_round_trip_gives_the_same_rows_and_bytes() {
    let mut d = Daemon::start();
    let data = d.data().to_owned();
    let mut runs = Vec::new();
    for n in 0..2 {
        let created = d.json(&["runs", "create", "--command", &format!("claude {n}")]);
        let id = created["id"].as_str().expect("id").to_owned();
        let token = created["capabilityToken"]
            .as_str()
            .expect("token")
            .to_owned();
        for i in 0..5 {
            d.event(&id, &token, "stdout", &format!("run {n} line {i}\n"))
                .await;
        }
        runs.push(id);
    }
    let artifact = data
        .as_path()
        .join("artifacts")
        .join(&runs[0])
        .join("a_latest.diff");
    std::fs::create_dir_all(artifact.parent().expect("dir")).expect("dir");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    std::fs::write(&artifact, &bytes).expect("artifact");
    let out = d.ctl_with_stdin(
        &[
            "users",
            "add",
            "ruth",
            "--role",
            "operator",
            "--password-stdin",
        ],
        Some("ruth password 12\n"),
    );
    assert!(out.status.success());
    let rows = |d: &Daemon| {
        let mut runs = d.json(&["runs", "list"]);
        // Derived counters aside, every row as the API shows it.
        for run in runs.as_array_mut().expect("runs") {
            run.as_object_mut()
                .expect("run")
                .remove("stop_requested_at");
        }
        (runs, d.json(&["users", "list"]))
    };
    let before = rows(&d);
    let backups = tempfile::tempdir().expect("backups");
    let made = d.json(&["backup", "--output", backups.path().to_str().expect("path")]);
    let archive = made["path"].as_str().expect("path").to_owned();

    // Life goes on after the backup.
    d.json(&["runs", "delete", &runs[1]]);
    d.json(&["runs", "create"]);
    std::fs::write(&artifact, b"changed").expect("change");
    let out = d.ctl(&["users", "del", "ruth"]);
    assert!(out.status.success());
    assert_ne!(rows(&d), before);

    let data_arg = data.as_path().to_str().expect("path").to_owned();
    let out = d.ctl(&["restore", &archive, "--data-dir", &data_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("clawd is serving") && stderr(&out).contains("--stop"),
        "{}",
        stderr(&out)
    );

    // A damaged archive is refused before anything is touched.
    let damaged = backups.path().join("damaged.tar.gz");
    let mut raw = std::fs::read(&archive).expect("read");
    let middle = raw.len() / 2;
    raw[middle] ^= 0x55;
    std::fs::write(&damaged, raw).expect("write");
    let out = d.ctl(&[
        "restore",
        damaged.to_str().expect("path"),
        "--data-dir",
        &data_arg,
        "--stop",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing restored"),
        "{}",
        stderr(&out)
    );
    assert!(d.ctl(&["health"]).status.success(), "still serving");

    if let Some(url) = d.database_url() {
        // Only into the database clawd is configured for.
        let (server, _) = url.rsplit_once('/').expect("URL");
        let other = format!("{server}/postgres");
        let out = d.ctl(&[
            "restore",
            &archive,
            "--data-dir",
            &data_arg,
            "--stop",
            "--database-url",
            &other,
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("but clawd is configured for")
                && stderr(&out).contains("nothing restored"),
            "{}",
            stderr(&out)
        );
        assert!(d.ctl(&["health"]).status.success(), "still serving");
    }
    let out = d.ctl(&["restore", &archive, "--data-dir", &data_arg, "--stop"]);
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    assert!(stdout(&out).contains("start it again"), "{}", stdout(&out));
    if store_is_postgres() {
        assert!(stdout(&out).contains("database → "), "{}", stdout(&out));
    } else {
        assert!(stdout(&out).contains("db.sqlite"), "{}", stdout(&out));
    }
    assert!(d.wait_stopped().success());
    let leftovers: Vec<String> = std::fs::read_dir(data.as_path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".restore-") || n.starts_with(".replaced-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    d.relaunch();
    assert_eq!(rows(&d), before, "the same rows");
    assert_eq!(
        std::fs::read(&artifact).expect("artifact"),
        bytes,
        "byte-identical artifacts"
    );
    let events = d.json(&["runs", "show", &runs[1]]);
    assert_eq!(events["eventCount"], 5);
}

#[tokio::test]
async fn sigterm_is_not_held_up_by_a_followed_run() {
    let mut d = Daemon::start();
    let created = d.json(&["runs", "create"]);
    let id = created["id"].as_str().expect("id").to_owned();
    let token = created["capabilityToken"]
        .as_str()
        .expect("token")
        .to_owned();
    d.event(&id, &token, "marker", r#"{"event":"started"}"#)
        .await;
    d.event(&id, &token, "stdout", "hello\n").await;
    let mut tail = Command::new(env!("CARGO_BIN_EXE_clawctl"))
        .arg("--socket")
        .arg(d.socket())
        .args(["runs", "tail", "-f", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tail");
    let mut first = String::new();
    BufReader::new(tail.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("line");
    assert_eq!(first, "hello\n");
    d.signal_term();
    let status = d.wait_stopped_within(Duration::from_secs(20));
    assert!(status.success());
    let _ = tail.kill();
    let _ = tail.wait();
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let d = Daemon::start();
    for _ in 0..3 {
        d.json(&["runs", "create"]);
    }
    // The reading end is gone before clawctl writes, as after `| grep -q`.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_clawctl"))
        .arg("--socket")
        .arg(d.socket())
        .args(["--json", "runs", "list"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("clawctl");
    assert_eq!(
        out.status.signal(),
        Some(13),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
    assert_eq!(stderr(&out), "");
}

/// clawd with notifications to loopback receivers allowed and one attempt
/// before a notification is a dead letter.
const NOTIFY_CONFIG: &str = "notify_allow_private_targets = true\nnotify_max_attempts = 1\n";

/// Waits (15 s at most) until `notify status` has `dead` dead letters and
/// `delivered` delivered ones; the counts.
async fn wait_for_counts(d: &Daemon, dead: u64, delivered: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let counts = d.json(&["notify", "status"]);
        if counts["dead"] == dead && counts["delivered"] == delivered && counts["pending"] == 0 {
            return counts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited for {dead} dead, {delivered} delivered: {counts}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A run created by clawctl whose runner reports it failed (exit code 3):
/// a "failed" notification. Its id.
async fn failed_run(d: &Daemon) -> String {
    let created = d.json(&["runs", "create", "--command", "make test"]);
    let id = created["id"].as_str().expect("id").to_owned();
    let token = created["capabilityToken"].as_str().expect("token");
    let runner = d.runner(&id, token);
    runner.started().await;
    runner.finished(3).await;
    id
}

/// A global webhook channel added by clawctl; a failed run's notification
/// answered 500 is a dead letter that status, list and retry show and send
/// again once the receiver is back; purge --dead removes dead letters only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_dead_letters_are_listed_retried_and_purged() {
    let d = Daemon::start_with(NOTIFY_CONFIG);
    let hook = Receiver::start(&[500]).await;

    let out = d.ctl(&[
        "notify",
        "add-channel",
        "--kind",
        "webhook",
        "--name",
        "ops relay",
        "--target",
        &hook.url,
        "--events",
        "failed,finished",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("(global)"), "{text}");
    assert!(text.contains("shown only now"), "{text}");
    let secret = text
        .lines()
        .last()
        .expect("the secret's line")
        .trim()
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{text}");

    let channels = d.json(&["notify", "channels"]);
    let channels = channels.as_array().expect("channels");
    assert_eq!(channels.len(), 1, "{channels:?}");
    let channel_id = channels[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(channels[0]["owner"], Value::Null);
    assert_eq!(channels[0]["scope"], "all");
    assert_eq!(channels[0]["events"], json!(["failed", "finished"]));
    let listed = stdout(&d.ctl(&["notify", "channels"]));
    assert!(
        listed.contains("ops relay") && listed.contains("global") && listed.contains(&hook.url),
        "{listed}"
    );
    assert!(!listed.contains("whsec_"), "the secret is shown only once");

    // Nothing to say yet.
    let text = stdout(&d.ctl(&["notify", "status"]));
    assert!(text.contains("Channels:  1"), "{text}");
    assert!(!text.contains("list --dead"), "{text}");

    let run_id = failed_run(&d).await;
    let got = hook.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, 500);
    assert_eq!(got[0].json()["kind"], "failed");
    wait_for_counts(&d, 1, 0).await;

    let text = stdout(&d.ctl(&["notify", "status"]));
    assert!(text.contains("Dead:      1"), "{text}");
    assert!(text.contains("clawctl notify list --dead"), "{text}");

    let dead = d.json(&["notify", "list", "--dead"]);
    let dead = dead.as_array().expect("deliveries");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["status"], "dead");
    assert_eq!(dead[0]["kind"], "failed");
    assert_eq!(dead[0]["runId"], run_id.as_str());
    assert_eq!(dead[0]["channelId"], channel_id.as_str());
    assert_eq!(dead[0]["attempts"], 1);
    assert!(
        dead[0]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{dead:?}"
    );
    let id = dead[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        d.json(&["notify", "list", "--status", "dead"]),
        json!(dead),
        "--dead is --status dead"
    );
    let table = stdout(&d.ctl(&["notify", "list", "--dead"]));
    let row = table
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("no row for {id}: {table}"));
    for cell in ["ops relay", "failed", &run_id, "dead", "500"] {
        assert!(row.contains(cell), "{cell:?} in {row}");
    }
    assert!(table.contains("clawctl notify retry ID"), "{table}");
    assert_eq!(
        stdout(&d.ctl(&["notify", "list", "--status", "pending"]))
            .lines()
            .nth(1),
        Some("(none)")
    );
    let out = d.ctl(&["notify", "list", "--dead", "--status", "pending"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // The receiver is back: the dead letter goes again, the same notification.
    hook.answer(&[200]);
    let out = d.ctl(&["notify", "retry", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("queued again for ops relay"),
        "{}",
        stdout(&out)
    );
    let got = hook.wait_for(2).await;
    assert_eq!(got.len(), 2, "sent again once");
    assert_eq!(got[1].status, 200);
    assert_eq!(got[1].header("webhook-id"), got[0].header("webhook-id"));
    wait_for_counts(&d, 0, 1).await;
    let all = d.json(&["notify", "list"]);
    assert_eq!(all[0]["status"], "delivered", "{all}");

    // Only a dead letter is retried, and only one that exists.
    let out = d.ctl(&["notify", "retry", &id]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("only dead letters are retried") && err.contains("clawctl notify list --dead"),
        "{err}"
    );
    let out = d.ctl(&["notify", "retry", "no-such-notification"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "clawctl: unknown notification no-such-notification (see clawctl notify list --dead)"
    );

    // purge needs --dead said out loud; it purges dead letters only.
    let out = d.ctl(&["notify", "purge"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--dead"), "{}", stderr(&out));
    assert_eq!(
        stdout(&d.ctl(&["notify", "purge", "--dead"])),
        "0 dead letters purged\n"
    );
    hook.answer(&[500]);
    failed_run(&d).await;
    assert_eq!(hook.wait_for(3).await.len(), 3);
    wait_for_counts(&d, 1, 1).await;
    assert_eq!(d.json(&["notify", "purge", "--dead"])["purged"], 1);
    let counts = wait_for_counts(&d, 0, 1).await;
    assert_eq!(counts["channels"], 1);

    let audit = d.json(&["audit", "list", "--action", "notify"]);
    let actions: Vec<&str> = audit
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["action"].as_str().expect("action"))
        .collect();
    assert!(
        actions.contains(&"notify.retry") && actions.contains(&"notify.purge"),
        "{actions:?}"
    );

    let out = d.ctl(&["notify", "remove-channel", &channel_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("channel {channel_id} removed\n"));
    let out = d.ctl(&["notify", "remove-channel", &channel_id]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        format!("clawctl: unknown channel {channel_id} (see clawctl notify channels)")
    );
    assert_eq!(d.json(&["notify", "channels"]), json!([]));
}

/// What add-channel refuses, before and at clawd.
#[test]
fn notify_add_channel_refusals_say_why() {
    let d = Daemon::start_with(NOTIFY_CONFIG);
    let add = |extra: &[&str]| {
        let mut args = vec!["notify", "add-channel", "--name", "n"];
        args.extend_from_slice(extra);
        d.ctl(&args)
    };
    // A browser's subscription is the browser's to make; kinds are checked.
    let out = add(&["--kind", "webpush", "--target", "https://push.example/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("ntfy, webhook"), "{}", stderr(&out));
    let out = add(&[
        "--kind",
        "ntfy",
        "--target",
        "https://ntfy.example/t",
        "--events",
        "failed,bogus",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("runner_lost"), "{}", stderr(&out));
    // clawd's own refusals come through as they are.
    let out = add(&[
        "--kind",
        "webhook",
        "--target",
        "https://hooks.example/x",
        "--token",
        "t",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("a webhook takes no token"),
        "{}",
        stderr(&out)
    );
    let out = add(&["--kind", "ntfy", "--target", "ftp://ntfy.example/t"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("only http and https"),
        "{}",
        stderr(&out)
    );
    // An ntfy channel has no secret to show.
    let created = d.json(&[
        "notify",
        "add-channel",
        "--kind",
        "ntfy",
        "--name",
        "phone",
        "--target",
        "https://ntfy.example/claw",
        "--token",
        "tk_x",
    ]);
    assert_eq!(created["secret"], Value::Null);
    assert_eq!(
        created["channel"]["events"],
        json!(["approval", "question", "failed"])
    );
    let listed = serde_json::to_string(&d.json(&["notify", "channels"])).expect("json");
    assert!(!listed.contains("tk_x"), "the token is not shown: {listed}");
}

/// A new VAPID key ends every browser subscription: clawctl says how many
/// and what users do about it.
#[tokio::test]
async fn secrets_rotate_vapid_removes_the_browser_subscriptions() {
    let d = Daemon::start_with("notify_allow_private_targets = true\n");
    let admin = d.admin().await;
    let key_file = d.data().join("secrets/vapid-key");
    let old_key = std::fs::read_to_string(&key_file).expect("vapid-key");
    let (_, old_public) = d.get("/api/notify/push/key", &admin).await;
    // The generator of P-256: a valid browser key.
    let p256dh =
        "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";
    for device in ["laptop", "phone"] {
        let (status, body) = d
            .post(
                "/api/notify/push",
                &admin,
                json!({
                    "endpoint": format!("https://push.example/{device}"),
                    "keys": {"p256dh": p256dh, "auth": "AAECAwQFBgcICQoLDA0ODw"},
                    "name": device,
                }),
            )
            .await;
        assert!(status.is_success(), "{status} {body}");
    }
    let channels = stdout(&d.ctl(&["notify", "channels"]));
    assert_eq!(
        channels.lines().filter(|l| l.contains("webpush")).count(),
        2,
        "{channels}"
    );
    assert!(channels.contains(claw_testkit::ADMIN), "{channels}");

    let out = d.ctl(&["secrets", "rotate", "vapid"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "New Web Push (VAPID) key; 2 browser subscriptions removed.\n\
         Browsers cannot be told of the new key: users who want notifications must \
         enable them again in Account, on each device.\n"
    );
    let new_key = std::fs::read_to_string(&key_file).expect("vapid-key");
    assert_ne!(new_key.trim(), old_key.trim());
    let (_, new_public) = d.get("/api/notify/push/key", &admin).await;
    assert_ne!(new_public["publicKey"], old_public["publicKey"]);
    assert_eq!(d.json(&["notify", "channels"]), json!([]));

    let rotated = d.json(&["secrets", "rotate", "vapid"]);
    assert_eq!(rotated["subscriptionsRemoved"], 0);
    assert_ne!(
        std::fs::read_to_string(&key_file)
            .expect("vapid-key")
            .trim(),
        new_key.trim()
    );
    let text = stdout(&d.ctl(&["secrets", "rotate", "vapid"]));
    assert!(text.contains("0 browser subscriptions removed"), "{text}");
}

/// `POST /api/hosts/enroll` over HTTPS, as `claw-runner enroll` sends it:
/// its status and its answer.
async fn enroll(d: &Daemon, token: &str) -> (u16, Value) {
    let response = d
        .client
        .post(d.url("/api/hosts/enroll"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("enroll");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The hosts `clawctl --json hosts list` shows.
fn hosts(d: &Daemon) -> Vec<Value> {
    d.json(&["hosts", "list"])
        .as_array()
        .expect("hosts")
        .clone()
}

/// The one host of that name in `clawctl --json hosts list`.
fn host(d: &Daemon, name: &str) -> Value {
    hosts(d)
        .into_iter()
        .find(|h| h["name"] == name)
        .unwrap_or(Value::Null)
}

/// The line after the one that starts with `label` in clawctl's text.
fn line_after(text: &str, label: &str) -> String {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(label));
    lines.next().expect(label);
    lines.next().expect("the line after").to_owned()
}

#[tokio::test]
async fn hosts_add_enrol_revoke_and_remove() {
    let d = Daemon::start();
    let text = stdout(&d.ctl(&["hosts", "list"]));
    assert!(
        text.starts_with("NAME  STATE  LAST SEEN") && text.contains("clawctl hosts add NAME"),
        "{text}"
    );
    assert!(hosts(&d).is_empty());

    // Added: its token shown once, with the command to run on the host.
    let added = d.json(&["hosts", "add", "build-1"]);
    assert_eq!(added["host"]["name"], "build-1");
    assert_eq!(added["host"]["state"], "pending");
    let old = added["enrolmentToken"].as_str().expect("token").to_owned();
    assert!(
        added["enrollCommand"]
            .as_str()
            .is_some_and(|c| c.starts_with("claw-runner enroll --gateway ") && c.contains(&old)),
        "{added}"
    );
    let listed = host(&d, "build-1");
    assert_eq!(listed["state"], "pending", "{listed}");
    assert_eq!(listed["enrolledAt"], Value::Null);
    let text = stdout(&d.ctl(&["hosts", "list"]));
    let row = text.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with("build-1  pending  never"), "{text}");
    assert!(!text.contains(&old), "the token is never listed: {text}");

    // Again before it enrols: a fresh token, and the old one is dead.
    let out = d.ctl(&["hosts", "add", "build-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("shown only now; valid until "), "{text}");
    assert!(text.contains(", once):"), "{text}");
    let new = line_after(&text, "Enrolment token");
    assert_eq!(new.len(), old.len(), "{text}");
    assert_ne!(new, old);
    let command = line_after(&text, "On the host, run:");
    assert!(
        command.starts_with("claw-runner enroll --gateway ")
            && command.contains(&format!("--token {new}")),
        "{text}"
    );
    assert!(text.contains("clawctl hosts add build-1 again"), "{text}");
    assert_eq!(hosts(&d).len(), 1, "still one host");

    let (status, body) = enroll(&d, &old).await;
    assert_eq!(status, 401, "the old token: {body}");
    let (status, body) = enroll(&d, &new).await;
    assert_eq!(status, 200, "the new token: {body}");
    assert_eq!(body["name"], "build-1");
    assert!(
        body["key"].as_str().is_some_and(|k| !k.is_empty()),
        "{body}"
    );
    let (status, _) = enroll(&d, &new).await;
    assert_eq!(status, 401, "a token works once");

    // Enrolled, not connected.
    let listed = host(&d, "build-1");
    assert_eq!(listed["state"], "offline", "{listed}");
    assert!(listed["enrolledAt"].is_string(), "{listed}");
    let text = stdout(&d.ctl(&["hosts", "list"]));
    assert!(text.contains("build-1  offline"), "{text}");
    // An enrolled host gets no new token.
    let out = d.ctl(&["hosts", "add", "build-1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .starts_with("clawctl: no new enrolment token: host build-1 is enrolled already"),
        "{}",
        stderr(&out)
    );

    // Revoked: cut off for good, and it says so.
    let out = d.ctl(&["hosts", "revoke", "build-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("host build-1 revoked: cut off now, its key never works again"),
        "{text}"
    );
    let listed = host(&d, "build-1");
    assert_eq!(listed["state"], "revoked", "{listed}");
    assert!(listed["revokedAt"].is_string(), "{listed}");
    let again = d.json(&["hosts", "revoke", "build-1"]);
    assert_eq!(again["state"], "revoked", "{again}");
    let out = d.ctl(&["hosts", "add", "build-1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("host build-1 was revoked") && err.contains("clawctl hosts remove build-1"),
        "{err}"
    );

    // Removed without a question, saying what went.
    let out = d.ctl(&["hosts", "remove", "build-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("host build-1 removed (it was revoked, enrolled "),
        "{}",
        stdout(&out)
    );
    assert!(hosts(&d).is_empty());
    // Gone, the name is free again; a pending host goes with --json.
    let added = d.json(&["hosts", "add", "build-1"]);
    assert_eq!(added["host"]["state"], "pending");
    assert_eq!(d.json(&["hosts", "remove", "build-1"])["ok"], true);
    let (status, _) = enroll(&d, added["enrolmentToken"].as_str().expect("token")).await;
    assert_eq!(status, 401, "a removed host's token is dead");

    for args in [["hosts", "remove", "build-1"], ["hosts", "revoke", "nope"]] {
        let out = d.ctl(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&out).trim(),
            format!("clawctl: unknown host {} (see clawctl hosts list)", args[2]),
            "{args:?}"
        );
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    for bad in ["a b", "-x", "build/1"] {
        let out = d.ctl(&["hosts", "add", "--", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!(
                "clawctl: cannot add host {bad:?}: a host's name is 1 to 64"
            )),
            "{err}"
        );
    }
    assert!(hosts(&d).is_empty());

    // Audited with the caller.
    let audit = d.json(&["audit", "list", "--action", "hosts"]);
    let mut actions: Vec<&str> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    actions.sort_unstable();
    actions.dedup();
    assert_eq!(
        actions,
        ["hosts.add", "hosts.enroll", "hosts.remove", "hosts.revoke"]
    );
}
