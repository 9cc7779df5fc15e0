//! The command allowlist at the gateway: an entry matches exactly its own
//! words, `<path>` admits only relative paths without `..` or a leading
//! `-`, and an invalid entry stops clawd.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Gateway, TEST_CONFIG};

/// Commands that ran code, wrote files or read a file outside the
/// repository on a runner while the allowlist matched leading words only.
const INJECTIONS: [&str; 4] = [
    "make test --eval=pwn:;id>pwned pwn",
    "git diff --output=pwned",
    "git log --output=pwned -1",
    "git diff --no-index /outside/secret /dev/null",
];

/// A running run and an operator's session.
async fn running(gw: &Gateway) -> (String, String, String) {
    let admin = gw.admin().await;
    let operator = gw.user(&admin, "opal", "operator").await;
    let (run_id, token) = gw.create_run(&operator).await;
    gw.runner(&run_id, &token).started().await;
    (admin, operator, run_id)
}

async fn send(gw: &Gateway, session: &str, run_id: &str, command: &str) -> (StatusCode, Value) {
    gw.post(
        &format!("/api/runs/{run_id}/command"),
        session,
        json!({ "command": command }),
    )
    .await
}

#[tokio::test]
async fn the_four_injections_are_refused_and_nothing_is_queued() {
    let gw = Gateway::start().await;
    let (admin, operator, run_id) = running(&gw).await;
    for command in INJECTIONS {
        let (status, body) = send(&gw, &operator, &run_id, command).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {body}");
        let error = body["error"].as_str().expect("error");
        assert!(
            error.starts_with("command is not on the allowlist: "),
            "{error}"
        );
        let allowed = body["allowed"].as_array().expect("allowed");
        assert!(allowed.contains(&json!("git diff <path>...")), "{body}");
        assert!(allowed.contains(&json!("make test")), "{body}");
    }
    // Why, in the words of the refusal.
    let (_, body) = send(&gw, &operator, &run_id, "git diff --output=pwned").await;
    let error = body["error"].as_str().expect("error");
    assert!(
        error.contains("\"--output=pwned\" is not a path argument") && error.contains("`..`"),
        "{error}"
    );
    let (_, body) = send(
        &gw,
        &operator,
        &run_id,
        "make test --eval=pwn:;id>pwned pwn",
    )
    .await;
    let error = body["error"].as_str().expect("error");
    assert!(
        error.contains("an entry matches only its own words, with no further arguments"),
        "{error}"
    );

    let (status, queued) = gw
        .get(&format!("/api/runs/{run_id}/commands"), &operator)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(queued, json!([]), "nothing queued");
    let (_, audit) = gw.get("/api/audit?action=command.rejected", &admin).await;
    let mut rejected: Vec<&str> = audit
        .as_array()
        .expect("audit")
        .iter()
        .map(|a| a["details"].as_str().expect("details"))
        .collect();
    rejected.sort_unstable();
    rejected.dedup();
    let mut expected = INJECTIONS.to_vec();
    expected.sort_unstable();
    assert_eq!(rejected, expected, "each refusal is audited");
}

#[tokio::test]
async fn options_and_paths_outside_are_refused_exact_forms_are_queued() {
    let gw = Gateway::start().await;
    let (_, operator, run_id) = running(&gw).await;
    for command in [
        "git status --porcelain",
        "git log -p",
        "git show HEAD:../secret",
        "git diff ../secret",
        "git diff src/../../secret",
        "git diff --stat /etc/passwd",
        "ls -la /",
        "ls -R",
        "ls -- x",
        "pwd -P",
        "cargo test --config=x",
        "npm test -- --watch",
        "git statusx",
    ] {
        let (status, body) = send(&gw, &operator, &run_id, command).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {body}");
    }
    let allowed = [
        "git diff src/main.rs",
        "git status",
        "git diff",
        "git diff --stat src",
        "git diff --cached src/main.rs README.md",
        "git log --oneline",
        "ls -la src",
        "  make   test ",
    ];
    for command in allowed {
        let (status, body) = send(&gw, &operator, &run_id, command).await;
        assert_eq!(status, StatusCode::CREATED, "{command}: {body}");
    }
    let (_, queued) = gw
        .get(&format!("/api/runs/{run_id}/commands"), &operator)
        .await;
    let mut queued: Vec<&str> = queued
        .as_array()
        .expect("commands")
        .iter()
        .map(|c| c["command"].as_str().expect("command"))
        .collect();
    queued.sort_unstable();
    let mut expected: Vec<&str> = allowed.iter().map(|c| c.trim()).collect();
    expected.sort_unstable();
    assert_eq!(queued, expected, "exactly the allowed forms");
}

#[tokio::test]
async fn an_invalid_entry_stops_clawd_with_its_name() {
    for (entry, why) in [
        ("pytest <path>... -q", "may only be the last word"),
        ("cat <file>", "unknown placeholder"),
        ("<path>", "the first word must be the program"),
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let config = dir.path().join("clawd.toml");
        std::fs::write(
            &config,
            format!("listen = \"127.0.0.1:0\"\nallowed_commands = [\"git status\", {entry:?}]\n"),
        )
        .expect("write");
        let stderr_path = dir.path().join("stderr");
        let mut clawd = std::process::Command::new(env!("CARGO_BIN_EXE_clawd"))
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .arg("--config")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("run clawd");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = clawd.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = clawd.kill();
                let _ = clawd.wait();
                panic!("clawd started with {entry:?} in allowed_commands");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = std::fs::read_to_string(&stderr_path).expect("stderr");
        assert_eq!(status.code(), Some(2), "{entry}: {stderr}");
        assert!(
            stderr.contains("allowed_commands")
                && stderr.contains(&format!("{entry:?}"))
                && stderr.contains(why),
            "{stderr}"
        );
        assert!(
            !dir.path().join("db.sqlite").exists(),
            "refused before anything is written"
        );
    }
}

#[tokio::test]
async fn a_reload_with_an_invalid_entry_keeps_the_running_list() {
    let gw = Gateway::start_with(&format!(
        "{TEST_CONFIG}allowed_commands = [\"pytest -q <path>...\"]\n"
    ))
    .await;
    let (_, operator, run_id) = running(&gw).await;
    std::fs::write(
        gw.data().join("clawd.toml"),
        format!("{TEST_CONFIG}allowed_commands = [\"pytest <path>... -q\"]\n"),
    )
    .expect("write");
    gw.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw.log().contains("reload failed") {
        assert!(Instant::now() < deadline, "no reload: {}", gw.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = gw.log();
    assert!(
        log.contains("reload failed, keeping the running configuration")
            && log.contains("\"pytest <path>... -q\""),
        "{log}"
    );
    let (status, body) = send(&gw, &operator, &run_id, "pytest -q tests").await;
    assert_eq!(status, StatusCode::CREATED, "the running list: {body}");
}
