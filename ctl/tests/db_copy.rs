//! End-to-end: `clawctl db copy-to` from a real clawd on SQLite into a
//! real PostgreSQL (a temporary cluster), then a second clawd serving the
//! copy: the same runs, events, users, sessions, artifacts, approvals and
//! audit chain, and new rows after the copied ones.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use claw_testkit::{Gateway, Receiver, TEST_CONFIG, TempCluster, binary_or_build};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use common::{ctl, ctl_json};

fn clawd_binary() -> PathBuf {
    binary_or_build("clawd", "clawd", env!("CARGO"))
}

/// The installation's files but its database (and what the kit writes):
/// what a gateway switched to PostgreSQL keeps using.
fn copy_data_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read data dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("db.sqlite") || name == "clawd.toml" || name == "clawd.stderr" {
            continue;
        }
        let kind = entry.file_type().expect("file type");
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_data_dir(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

async fn wait_delivered(gw: &Gateway, delivered: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let counts = ctl_json(gw, &["notify", "status"]);
        if counts["delivered"] == delivered && counts["pending"] == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited for {delivered} delivered: {counts}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn names(values: &Value, key: &str) -> BTreeSet<String> {
    values
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v[key].as_str().expect("a name").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_postgres_serves_the_same_installation_and_refuses_a_second_copy() {
    let cluster = TempCluster::start();
    let url = cluster.create_database("moved").expect("createdb");
    // SQLite whatever store the test run puts gateways on: it is the source.
    let source = Gateway::launch(clawd_binary())
        .config(&format!(
            "{TEST_CONFIG}notify_allow_private_targets = true\n[store]\nbackend = \"sqlite\"\n"
        ))
        .quiet()
        .start();

    // An installation with a bit of everything.
    let admin = source.admin().await;
    source.user(&admin, "olive", "operator").await;
    let (run, token) = source.create_run(&admin).await;
    let runner = source.runner(&run, &token);
    runner.started().await;
    for i in 0..30 {
        runner.event_ok("stdout", &format!("line {i}\n")).await;
    }
    let (status, body) = runner.upload("notes.txt", b"artifact bytes").await;
    assert!(status.is_success(), "{body}");
    let stopped = ctl_json(&source, &["runs", "stop", &run]);
    assert!(stopped.is_object(), "{stopped}");

    let created = ctl_json(&source, &["runs", "create", "--agent", "claude"]);
    let agent_run = created["id"].as_str().expect("id").to_owned();
    let agent_token = created["capabilityToken"].as_str().expect("token");
    let agent = source.runner(&agent_run, agent_token);
    agent.started().await;
    let request = json!({
        "requestId": "r-1", "kind": "tool", "tool": "Bash",
        "input": {"command": "touch f"}, "summary": "touch f", "timeoutSecs": 600,
    });
    agent
        .event_ok("approval_request", &request.to_string())
        .await;

    let hook = Receiver::start(&[200]).await;
    let out = ctl(
        &source,
        &[
            "notify",
            "add-channel",
            "--kind",
            "webhook",
            "--name",
            "ops",
            "--target",
            &hook.url,
            "--events",
            "failed",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failing = ctl_json(&source, &["runs", "create", "--command", "make test"]);
    let failing_id = failing["id"].as_str().expect("id");
    let failing_runner = source.runner(failing_id, failing["capabilityToken"].as_str().expect("t"));
    failing_runner.started().await;
    failing_runner.finished(3).await;
    wait_delivered(&source, 1).await;
    ctl_json(&source, &["hosts", "add", "build-1"]);

    let before: Value = ctl_json(&source, &["db", "status"]);
    let rows_before: Vec<(String, u64)> =
        serde_json::from_value(before["tables"].clone()).expect("tables");

    // The copy.
    let out = ctl(&source, &["--json", "db", "copy-to", &url]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stdout.contains(cluster.password()) && !stderr.contains(cluster.password()),
        "the password is shown: {stdout}{stderr}"
    );
    let report: Value = serde_json::from_str(&stdout).expect("the report");
    let shown = format!("postgres://claw@127.0.0.1:{}/moved", cluster.port());
    assert_eq!(report["databaseUrl"], shown.as_str());
    assert_eq!(
        report["config"],
        format!(
            "[store]\nbackend = \"postgres\"\ndatabase_url = \"{shown}\"   \
             # password via the credential claw_database-password\n"
        )
        .as_str()
    );
    let copied: Vec<(String, u64, u64)> = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["table"].as_str().expect("table").to_owned(),
                t["source"].as_u64().expect("source"),
                t["target"].as_u64().expect("target"),
            )
        })
        .collect();
    let count = |name: &str| {
        copied
            .iter()
            .find(|(t, _, _)| t == name)
            .map(|(_, s, t)| {
                assert_eq!(s, t, "{name}");
                *s
            })
            .unwrap_or_else(|| panic!("no {name} in {report}"))
    };
    // What `db status` counted, but the copy's own audit entry.
    for (table, rows) in &rows_before {
        if copied.iter().any(|(t, _, _)| t == table) {
            let expected = if table == "audit_log" {
                rows + 1
            } else {
                *rows
            };
            assert_eq!(count(table), expected, "{table}");
        }
    }
    assert_eq!(count("runs"), 3);
    assert!(count("events") >= 35, "{report}");
    assert_eq!(count("users"), 2);
    assert!(count("sessions") >= 2, "{report}");
    assert_eq!(count("artifacts"), 1);
    assert!(count("commands") >= 1, "{report}");
    assert_eq!(count("approvals"), 1);
    assert_eq!(count("notify_channels"), 1);
    assert_eq!(count("outbox"), 1);
    assert_eq!(count("hosts"), 1);
    assert_eq!(report["auditChecked"].as_u64(), Some(count("audit_log")));
    assert!(count("audit_log") >= 5, "{report}");
    assert_eq!(
        cluster
            .psql("moved", "SELECT count(*) FROM events")
            .expect("psql")
            .trim(),
        count("events").to_string()
    );

    // A second copy into the same database is refused, saying why.
    let out = ctl(&source, &["db", "copy-to", &url]);
    assert_eq!(out.status.code(), Some(1));
    let refusal = String::from_utf8_lossy(&out.stderr);
    assert!(
        refusal.contains(&format!("the PostgreSQL database {shown} is not empty"))
            && refusal.contains("runs has 3 rows"),
        "{refusal}"
    );
    assert!(!refusal.contains(cluster.password()), "{refusal}");

    // A gateway on the copy, with the installation's other files.
    let dir = tempfile::tempdir().expect("tempdir");
    copy_data_dir(source.data(), dir.path());
    let target = Gateway::launch(clawd_binary())
        .dir(dir)
        .config(&format!(
            "{TEST_CONFIG}[store]\nbackend = \"postgres\"\ndatabase_url = \"{url}\"\n"
        ))
        .quiet()
        .start();
    // The administrator's session goes on; so does the password.
    let runs = target.runs(&admin).await;
    let ids: BTreeSet<String> = runs.iter().map(|r| r.id.clone()).collect();
    let expected: BTreeSet<String> = source
        .runs(&admin)
        .await
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(ids, expected);
    assert!(
        target
            .login("olive", "olive-password-long", None)
            .await
            .is_ok()
    );
    let theirs = serde_json::to_value(target.events(&admin, &run, 0).await).expect("json");
    let ours = serde_json::to_value(source.events(&admin, &run, 0).await).expect("json");
    assert_eq!(theirs, ours);
    assert_eq!(
        names(&ctl_json(&target, &["users", "list"]), "username"),
        BTreeSet::from(["admin".to_owned(), "olive".to_owned()])
    );
    let artifacts: Value = target
        .get_as(&format!("/api/runs/{run}/artifacts"), Some(&admin))
        .await;
    let artifact = artifacts[0]["id"].as_str().expect("artifact id");
    let (status, bytes) = target
        .get(&format!("/api/artifacts/{artifact}"), &admin)
        .await;
    assert!(status.is_success(), "{status}");
    assert_eq!(bytes, "artifact bytes");
    let approvals = ctl_json(&target, &["approvals", "list"]);
    assert_eq!(approvals[0]["runId"], agent_run.as_str(), "{approvals}");
    assert_eq!(
        names(&ctl_json(&target, &["hosts", "list"]), "name"),
        BTreeSet::from(["build-1".to_owned()])
    );

    // A gateway on PostgreSQL has no SQLite installation to copy.
    let other = cluster.create_database("other").expect("createdb");
    let out = ctl(&target, &["db", "copy-to", &other]);
    assert_eq!(out.status.code(), Some(1));
    let refusal = String::from_utf8_lossy(&out.stderr);
    assert!(refusal.contains("on PostgreSQL already"), "{refusal}");

    // New rows follow the copied ones: events, commands and audit entries
    // get ids of their own, and the chain goes on.
    let (fresh, fresh_token) = target.create_run(&admin).await;
    let fresh_runner = target.runner(&fresh, &fresh_token);
    fresh_runner.started().await;
    fresh_runner.event_ok("stdout", "after the move\n").await;
    ctl_json(&target, &["runs", "stop", &fresh]);
    let out = ctl(&target, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let verified = ctl_json(&target, &["audit", "verify"]);
    assert!(
        verified["checked"].as_u64().expect("checked") > count("audit_log"),
        "{verified}"
    );
    assert_eq!(
        cluster
            .psql("moved", "SELECT count(DISTINCT id) = count(*) FROM events")
            .expect("psql")
            .trim(),
        "t"
    );
}

/// A copy whose client hangs up before it commits is rolled back: the
/// database stays empty and the next copy goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_whose_client_goes_away_leaves_the_database_empty() {
    const EVENTS: i64 = 200_000;
    let cluster = TempCluster::start();
    let url = cluster.create_database("halfway").expect("createdb");
    let mut source = Gateway::launch(clawd_binary())
        .config(&format!("{TEST_CONFIG}[store]\nbackend = \"sqlite\"\n"))
        .quiet()
        .start();
    let admin = source.admin().await;
    let (run, _) = source.create_run(&admin).await;
    // Enough events that the copy takes a while.
    source.stop();
    {
        let mut conn = rusqlite::Connection::open(source.data().join("db.sqlite")).expect("open");
        let tx = conn.transaction().expect("transaction");
        for i in 1..=EVENTS {
            tx.execute(
                "INSERT INTO events (id, run_id, type, data, timestamp, sequence) \
                 VALUES (?1, ?2, 'stdout', '{\"text\":\"a line of output\"}', 1, ?1)",
                rusqlite::params![i, run],
            )
            .expect("insert");
        }
        tx.commit().expect("commit");
    }
    source.relaunch();

    // Up to the first progress line, then the connection closes.
    {
        let stream = tokio::net::UnixStream::connect(source.socket())
            .await
            .expect("connect");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        let driver = tokio::spawn(connection);
        let body = json!({ "databaseUrl": url }).to_string();
        let request = hyper::Request::builder()
            .method("POST")
            .uri("/v1/db/copy-to")
            .header("Host", "localhost")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let mut body = response.into_body();
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("\"progress\"") {
            let frame = body
                .frame()
                .await
                .expect("a progress line before the end")
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                seen.extend_from_slice(&data);
            }
        }
        let text = String::from_utf8_lossy(&seen);
        assert!(!text.contains("\"result\""), "{text}");
        driver.abort();
    }

    // The next copy finds the database empty and copies everything.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let report = loop {
        let out = ctl(&source, &["--json", "db", "copy-to", &url]);
        if out.status.success() {
            break serde_json::from_slice::<Value>(&out.stdout).expect("report");
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // The first copy's transaction may still be rolling back.
        assert!(
            stderr.contains("busy") && std::time::Instant::now() < deadline,
            "{stderr}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let events = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["table"] == "events")
        .cloned()
        .expect("events");
    assert_eq!(events["target"].as_i64(), Some(EVENTS), "{report}");
}
