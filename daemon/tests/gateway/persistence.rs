//! Restarts, migrations from an older schema, the audit chain, config errors.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{ADMIN, ADMIN_PASSWORD, Gateway, TEST_CONFIG, db_path, nonce, now_secs};

#[tokio::test]
async fn restart_keeps_runs_events_sessions_and_secrets() {
    let mut gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner_events: Vec<_> = (1..=20)
        .map(|i| json!({"type": "stdout", "data": format!("l{i}"), "sequence": i}))
        .collect();
    gw.runner(&run_id, &token).batch(runner_events).await;
    let secret_before = gw.hmac_secret.clone();
    let cert_before = std::fs::read(gw.data().join("certs/server.crt")).expect("cert");

    gw.restart();

    assert_eq!(gw.hmac_secret, secret_before);
    assert_eq!(
        std::fs::read(gw.data().join("certs/server.crt")).expect("cert"),
        cert_before
    );
    let (status, run) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
    assert_eq!(status, StatusCode::OK, "session survives a restart: {run}");
    assert_eq!(run["eventCount"], 20);
    // The runner resumes where it was.
    let (status, body) = gw
        .runner(&run_id, &token)
        .event("stdout", "after restart", Some(21))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = gw
        .runner(&run_id, &token)
        .event("stdout", "l20", Some(20))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, events) = gw
        .get(&format!("/api/runs/{run_id}/events?after=19"), &admin)
        .await;
    assert_eq!(events.as_array().expect("events").len(), 2);
    assert!(!gw.data().join("setup-token").exists());
}

#[tokio::test]
async fn audit_chain_verifies_and_detects_an_edited_row() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    for _ in 0..3 {
        gw.create_run(&admin).await;
    }
    let (status, report) = gw.get("/api/audit/verify", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["ok"], true, "{report}");
    let checked = report["checked"].as_u64().expect("checked");
    assert!(checked >= 5, "{report}");

    let (_, rows) = gw.get("/api/audit?action=run.create", &admin).await;
    let victim = rows[1]["id"].as_i64().expect("id");
    gw.sql(&format!(
        "UPDATE audit_log SET details = 'innocent' WHERE id = {victim}"
    ));
    let (_, report) = gw.get("/api/audit/verify", &admin).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["brokenAt"], victim);
    assert!(
        report["reason"]
            .as_str()
            .expect("reason")
            .contains("edited")
    );
}

#[tokio::test]
async fn a_schema_1_database_is_backed_up_and_migrated_with_its_data() {
    if !claw_testkit::on_sqlite("a SQLite database of schema 1") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("db.sqlite");
    {
        let conn = rusqlite::Connection::open(&db).expect("create fixture db");
        conn.execute_batch(include_str!("../fixtures/schema1.sql"))
            .expect("fixture");
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, 1);
    }
    let gw = Gateway::start_in(dir, TEST_CONFIG).await;

    let backups: Vec<_> = std::fs::read_dir(gw.data())
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("db.sqlite.pre-migration-v1-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let backup = rusqlite::Connection::open(gw.data().join(&backups[0])).expect("backup");
    let (version, events): (u32, u32) = (
        backup
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("v"),
        backup
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .expect("n"),
    );
    assert_eq!((version, events), (1, 5));

    // The fixture has no users: set up, then read the old data.
    let admin = gw.admin().await;
    let (status, run) = gw.get("/api/runs/run-old-1", &admin).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "done");
    assert_eq!(run["exitCode"], 0);
    assert_eq!(run["artifacts"][0]["filename"], "latest.diff");
    let (_, events) = gw.get("/api/runs/run-old-1/events", &admin).await;
    let seqs: Vec<u64> = events
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["sequence"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(events[1]["data"], "working\n");
    let (_, other) = gw.get("/api/runs/run-old-2/events", &admin).await;
    assert_eq!(other.as_array().expect("events").len(), 2);
    assert_eq!(other[1]["sequence"], 2);
    // The old audit rows were chained by the migration.
    let (_, report) = gw.get("/api/audit/verify", &admin).await;
    assert_eq!(report["ok"], true, "{report}");
    let (_, rows) = gw.get("/api/audit?action=run.create", &admin).await;
    assert_eq!(rows.as_array().expect("rows").len(), 2);
    // Migration 5 took AUTOINCREMENT off events: the stored statement is
    // edited, the database is sound, and the daemon's own (migrating)
    // connection inserts without sqlite_sequence.
    let (run_id, token) = gw.create_run(&admin).await;
    let (status, reply) = gw
        .runner(&run_id, &token)
        .event("stdout", "new", Some(1))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(reply["eventId"].as_i64().expect("id") > 5, "{reply}");
    let conn = rusqlite::Connection::open(db_path(&gw)).expect("db");
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'events'",
            [],
            |r| r.get(0),
        )
        .expect("events table");
    assert!(!sql.contains("AUTOINCREMENT"), "{sql}");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok");
    let sequences: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_sequence ORDER BY name")
        .expect("sqlite_sequence")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("names");
    assert_eq!(sequences, ["audit_log"]);
    let _ = ADMIN;
    let _ = ADMIN_PASSWORD;
}

#[tokio::test]
async fn unknown_config_keys_stop_the_daemon_with_their_name() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("clawd.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nrun_retention_dayz = 3\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawd"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run clawd");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("run_retention_dayz"), "{stderr}");
    assert!(stderr.contains("clawd.toml"), "{stderr}");
}

#[tokio::test]
async fn secrets_and_keys_are_private_files() {
    let gw = Gateway::start().await;
    for file in [
        "secrets/hmac-secret",
        "secrets/auth-secret",
        "certs/server.key",
    ]
    .into_iter()
    .chain(claw_testkit::on_sqlite("no db.sqlite").then_some("db.sqlite"))
    {
        let meta = std::fs::metadata(gw.data().join(file)).expect(file);
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
        assert_eq!(mode & 0o077, 0, "{file} has mode {mode:o}");
    }
    let secret = std::fs::read_to_string(gw.data().join("secrets/hmac-secret")).expect("secret");
    assert_eq!(secret.trim().len(), 64);
    assert!(
        !gw.log().contains(secret.trim()),
        "the HMAC secret is never logged"
    );
}

/// Starts clawd with a credentials directory until it listens; returns the
/// data directory it used.
fn start_with_credentials(creds: &std::path::Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clawd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("CREDENTIALS_DIRECTORY", creds)
        .env("CLAW_LOG_TARGET", "stderr")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("listening"), "{line}");
    dir
}

#[tokio::test]
async fn credentials_directory_wins_over_generated_secrets() {
    let creds = tempfile::tempdir().expect("creds");
    std::fs::write(creds.path().join("hmac-secret"), "from-credential\n").expect("write");
    let dir = start_with_credentials(creds.path());
    assert!(
        !dir.path().join("secrets/hmac-secret").exists(),
        "credential used, nothing generated"
    );
    assert!(
        dir.path().join("secrets/auth-secret").exists(),
        "the missing one is generated"
    );
    // LoadCredential=claw:/etc/claw/credentials names them claw_….
    std::fs::write(creds.path().join("claw_auth-secret"), "auth-credential\n").expect("write");
    let dir = start_with_credentials(creds.path());
    assert!(!dir.path().join("secrets/auth-secret").exists());
    assert!(!dir.path().join("secrets/hmac-secret").exists());
}

#[tokio::test]
async fn plain_http_only_when_tls_is_off() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("clawd.toml"), "tls = false\n").expect("config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clawd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(dir.path().join("clawd.toml"))
        .env("CLAW_LOG_TARGET", "stderr")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("line");
    assert!(
        line.starts_with("clawd listening on http://127.0.0.1:"),
        "{line}"
    );
    let url = line.trim().rsplit(' ').next().expect("url").to_owned();
    let resp = reqwest::get(format!("{url}/api/health"))
        .await
        .expect("plain HTTP");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get("strict-transport-security").is_none(),
        "no HSTS without TLS"
    );
    assert!(
        !dir.path().join("certs").exists(),
        "no certificate is generated"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_nonce_recorded_before_the_nonce_migration_is_still_refused() {
    if !claw_testkit::on_sqlite("a SQLite migration") {
        return;
    }
    let mut gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    // Schema 3 kept nonces by receipt time; migration 4 moved them aside,
    // and clawd reads at start whether any can still match.
    let status = gw.stop();
    assert!(status.success(), "clawd exited with {status}");
    let seen_before = nonce();
    let expired = nonce();
    {
        let db = rusqlite::Connection::open(gw.data().join("db.sqlite")).expect("db");
        let legacy = "INSERT INTO nonces_legacy (nonce, expires_at) VALUES (?1, ?2)";
        db.execute(
            legacy,
            rusqlite::params![seen_before, (now_secs() + 600) * 1000],
        )
        .expect("legacy nonce");
        db.execute(legacy, rusqlite::params![expired, (now_secs() - 1) * 1000])
            .expect("expired legacy nonce");
    }
    gw.relaunch();
    let runner = gw.runner(&run_id, &token);

    let mut replayed = runner.sign(
        Method::POST,
        "/api/ingest/event",
        br#"{"type":"stdout","data":"x","sequence":1}"#.to_vec(),
    );
    replayed.nonce = seen_before;
    runner.resign(&mut replayed);
    let (status, reply) = runner.send(&replayed).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    assert!(reply["error"].as_str().expect("error").contains("nonce"));
    // An expired legacy nonce no longer counts, and a fresh one is fine.
    let mut reused = runner.sign(
        Method::POST,
        "/api/ingest/event",
        br#"{"type":"stdout","data":"x","sequence":1}"#.to_vec(),
    );
    reused.nonce = expired;
    runner.resign(&mut reused);
    assert_eq!(runner.send(&reused).await.0, StatusCode::OK);
    let fresh = runner.sign(
        Method::POST,
        "/api/ingest/event",
        br#"{"type":"stdout","data":"y"}"#.to_vec(),
    );
    assert_eq!(runner.send(&fresh).await.0, StatusCode::OK);
}

/// Counts a nonce's rows in the table.
fn stored_nonces(gw: &Gateway, nonce: &str) -> i64 {
    let db = rusqlite::Connection::open(db_path(gw)).expect("db");
    db.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    db.query_row(
        "SELECT COUNT(*) FROM nonces WHERE nonce = ?1",
        [nonce],
        |r| r.get(0),
    )
    .expect("count")
}

#[tokio::test]
async fn held_nonces_are_refused_written_shortly_and_kept_across_a_restart() {
    if !claw_testkit::on_sqlite("nonces held by the SQLite writer") {
        return;
    }
    let mut gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);

    // Sequenced events: the nonce is held by the writer first.
    let sequenced = runner.sign(
        Method::POST,
        "/api/ingest/event",
        br#"{"type":"stdout","data":"a","sequence":1}"#.to_vec(),
    );
    assert_eq!(runner.send(&sequenced).await.0, StatusCode::OK);
    let (status, reply) = runner.send(&sequenced).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "held: {reply}");
    // Within the log flush interval (0.1 s) it reaches the table.
    let mut written = false;
    for _ in 0..50 {
        if stored_nonces(&gw, &sequenced.nonce) == 1 {
            written = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(written, "the held nonce was not written within 1 s");
    let (status, reply) = runner.send(&sequenced).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "written: {reply}");

    // An unsequenced event would be stored again: its nonce is written at once.
    let unsequenced = runner.sign(
        Method::POST,
        "/api/ingest/event",
        br#"{"type":"stdout","data":"b"}"#.to_vec(),
    );
    assert_eq!(runner.send(&unsequenced).await.0, StatusCode::OK);
    assert_eq!(stored_nonces(&gw, &unsequenced.nonce), 1);

    // A stop writes what is held, so a replay after the restart is refused.
    let last = runner.sign(
        Method::POST,
        "/api/ingest/event",
        br#"{"type":"stdout","data":"c","sequence":3}"#.to_vec(),
    );
    assert_eq!(runner.send(&last).await.0, StatusCode::OK);
    gw.restart();
    assert_eq!(stored_nonces(&gw, &last.nonce), 1);
    let (status, reply) = gw.runner(&run_id, &token).send(&last).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "after a restart: {reply}");
}

/// Sequences of a run's stored events, paged through the human API.
async fn stored_sequences(gw: &Gateway, session: &str, run_id: &str) -> Vec<u64> {
    let mut sequences = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = gw
            .get(
                &format!("/api/runs/{run_id}/events?after={after}&limit=1000"),
                session,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page = page.as_array().expect("events").clone();
        let Some(last) = page.last() else {
            return sequences;
        };
        after = last["id"].as_i64().expect("id");
        sequences.extend(
            page.iter()
                .map(|e| e["sequence"].as_u64().expect("sequence")),
        );
    }
}

#[tokio::test]
async fn a_full_disk_fails_uploads_cleanly_and_keeps_every_acknowledged_event() {
    if !claw_testkit::on_sqlite("fills the SQLite log under RLIMIT_FSIZE") {
        return;
    }
    // clawd may write files of at most 3 MiB: its database log fills up
    // as on a full disk, with every commit's frames gathered into one write.
    let mut gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    gw.stop();
    gw.file_size_limit = Some(3 * 1024 * 1024);
    gw.relaunch();

    let mut acknowledged = 0u64;
    let mut refused = None;
    for _ in 0..200 {
        let first = acknowledged + 1;
        let events = (first..first + 50)
            .map(|s| json!({"type": "stdout", "data": format!("{s:06} {}", "x".repeat(1000)), "sequence": s}))
            .collect();
        let (status, reply) = gw.runner(&run_id, &token).batch(events).await;
        if status != StatusCode::OK {
            refused = Some((status, reply));
            break;
        }
        acknowledged += 50;
    }
    let (status, reply) = refused.expect("the log never reached the size limit");
    assert!(acknowledged > 0, "nothing was stored before the limit");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or_default()
            .contains("nothing was stored"),
        "{reply}"
    );
    // Still refused, and still answered: nothing half-stored in between.
    assert_eq!(
        stored_sequences(&gw, &admin, &run_id).await.len() as u64,
        acknowledged
    );

    // With room again, every acknowledged event is there and nothing else.
    gw.signal_term();
    gw.wait_stopped();
    gw.file_size_limit = None;
    gw.relaunch();
    assert_eq!(
        stored_sequences(&gw, &admin, &run_id).await,
        (1..=acknowledged).collect::<Vec<_>>()
    );
    let runner = gw.runner(&run_id, &token);
    let (status, reply) = runner
        .event("stdout", "after the disk had room", Some(acknowledged + 1))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let conn = rusqlite::Connection::open(db_path(&gw)).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok");
}
