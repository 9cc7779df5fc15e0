//! clawd under systemd's protocols: socket activation with named sockets,
//! sd_notify readiness, status, watchdog, reload and stop, the journal.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{
    ADMIN, ADMIN_PASSWORD, client_trusting, free_port, try_first_admin, unix_get, write_certificate,
};

/// The test's end of `$NOTIFY_SOCKET`.
struct NotifyListener {
    socket: UnixDatagram,
    path: PathBuf,
    seen: Vec<String>,
}

impl NotifyListener {
    fn new(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        Self {
            socket,
            path,
            seen: Vec::new(),
        }
    }

    /// Waits until a message containing `needle` arrives after the ones
    /// already seen; returns it.
    fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(message.clone());
                if message
                    .lines()
                    .any(|l| l == needle || l.starts_with(needle))
                {
                    return message;
                }
            }
        }
        panic!(
            "no notification {needle:?} within {within:?}; saw {:?}",
            self.seen
        );
    }
}

struct Activated {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    notify: NotifyListener,
}

impl Activated {
    fn start(names: &str, extra_env: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let notify = NotifyListener::new(dir.path());
        let port = free_port();
        std::fs::write(dir.path().join("clawd.toml"), "rate_limit_per_minute = 0\n")
            .expect("config");
        let mut cmd = Command::new("systemd-socket-activate");
        cmd.arg("-l")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-l")
            .arg(dir.path().join("control.sock"))
            .arg(format!("--fdname={names}"))
            .arg("-E")
            .arg(format!("NOTIFY_SOCKET={}", notify.path.display()))
            .arg("-E")
            .arg("CLAW_LOG_TARGET=stderr");
        for env in extra_env {
            cmd.arg("-E").arg(env);
        }
        cmd.arg(env!("CARGO_BIN_EXE_clawd"))
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--config")
            .arg(dir.path().join("clawd.toml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("clawd.stderr")).expect("stderr"));
        let child = cmd
            .spawn()
            .expect("systemd-socket-activate (from the systemd package)");
        // Wait until the sockets are bound.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "socket-activate did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            dir,
            port,
            notify,
        }
    }

    fn data(&self) -> &Path {
        self.dir.path()
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal");
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "clawd did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data().join("clawd.stderr")).unwrap_or_default()
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn socket_activation_readiness_watchdog_and_control_socket() {
    let mut gw = Activated::start("https:control", &["WATCHDOG_USEC=400000"]);
    // The connection that starts clawd is the first one it serves.
    write_certificate(gw.data());
    assert!(
        !gw.data().join("db.sqlite").exists(),
        "nothing runs before the first connection"
    );
    let pem = std::fs::read(gw.data().join("certs/server.crt")).expect("cert");
    let client = client_trusting(&pem);
    let health = client
        .get(format!("https://localhost:{}/api/health", gw.port))
        .send()
        .await
        .expect("first connection is served");
    assert_eq!(health.status(), StatusCode::OK);

    let ready = gw.notify.wait_for("READY=1", Duration::from_secs(10));
    assert!(
        ready.contains("STATUS=serving 0 running runs, 0 browsers"),
        "{ready}"
    );
    gw.notify.wait_for("WATCHDOG=1", Duration::from_secs(5));
    gw.notify.wait_for("WATCHDOG=1", Duration::from_secs(5));

    // The control socket is the one systemd passed.
    let (status, body) = unix_get(&gw.data().join("control.sock"), "/v1/status").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["listeners"]["socketActivated"], true);
    assert_eq!(body["runs"]["running"], 0);
    let (status, body) = unix_get(&gw.data().join("control.sock"), "/v1/health").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));

    gw.signal(nix::sys::signal::Signal::SIGTERM);
    gw.notify.wait_for("STOPPING=1", Duration::from_secs(5));
    assert!(gw.wait_exit(Duration::from_secs(10)).success());
}

#[tokio::test]
async fn an_unknown_socket_name_stops_start_up_with_its_name() {
    let mut gw = Activated::start("https:bogus", &[]);
    let _ = std::net::TcpStream::connect(("127.0.0.1", gw.port));
    let status = gw.wait_exit(Duration::from_secs(10));
    assert!(!status.success());
    let log = gw.log();
    assert!(
        log.contains("\"bogus\"") && log.contains("FileDescriptorName"),
        "{log}"
    );
}

#[tokio::test]
async fn sighup_swaps_the_certificate_and_keeps_connections() {
    let mut gw = Activated::start("https:control", &[]);
    let first_der = write_certificate(gw.data());
    let old_pem = std::fs::read(gw.data().join("certs/server.crt")).expect("cert");
    let old_client = client_trusting(&old_pem);
    let url = format!("https://localhost:{}", gw.port);
    let resp = old_client
        .get(format!("{url}/api/auth/status"))
        .send()
        .await
        .expect("activate");
    assert_eq!(resp.status(), StatusCode::OK);
    gw.notify.wait_for("READY=1", Duration::from_secs(10));

    // A browser with an open WebSocket.
    let token = std::fs::read_to_string(gw.data().join("setup-token")).expect("token");
    let session = try_first_admin(&old_client, &url, token.trim(), ADMIN, ADMIN_PASSWORD)
        .await
        .expect("the first administrator's session");
    let mut ws = crate::common::websocket_to(gw.port, &old_pem, &session).await;

    // New certificate, then reload.
    let new_der = write_certificate(gw.data());
    assert_ne!(first_der, new_der);
    let new_pem = std::fs::read(gw.data().join("certs/server.crt")).expect("cert");
    gw.signal(nix::sys::signal::Signal::SIGHUP);
    gw.notify.wait_for("RELOADING=1", Duration::from_secs(5));
    gw.notify.wait_for("READY=1", Duration::from_secs(5));

    let fresh = client_trusting(&new_pem);
    let resp = fresh
        .get(format!("{url}/api/health"))
        .send()
        .await
        .expect("new handshake uses the new certificate");
    assert_eq!(resp.status(), StatusCode::OK);
    let stale = client_trusting(&old_pem);
    assert!(
        stale.get(format!("{url}/api/health")).send().await.is_err(),
        "the old certificate is gone"
    );
    let (_, status) = unix_get(&gw.data().join("control.sock"), "/v1/status").await;
    assert_eq!(
        status["tls"]["fingerprintSha256"],
        hex_fingerprint(&new_der),
        "control status shows the new fingerprint"
    );
    // The WebSocket opened before the reload still works.
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next().await, json!({"type": "pong"}));

    // A broken configuration is refused and the daemon keeps serving.
    std::fs::write(
        gw.data().join("clawd.toml"),
        "rate_limit_per_minute = \"lots\"\n",
    )
    .expect("write");
    gw.signal(nix::sys::signal::Signal::SIGHUP);
    gw.notify.wait_for("RELOADING=1", Duration::from_secs(5));
    gw.notify.wait_for("READY=1", Duration::from_secs(5));
    assert!(
        gw.log()
            .contains("reload failed, keeping the running configuration"),
        "{}",
        gw.log()
    );
    let resp = fresh
        .get(format!("{url}/api/health"))
        .send()
        .await
        .expect("still serving");
    assert_eq!(resp.status(), StatusCode::OK);
    // So is a broken certificate.
    std::fs::write(gw.data().join("clawd.toml"), "rate_limit_per_minute = 0\n").expect("write");
    std::fs::write(gw.data().join("certs/server.crt"), "not a certificate").expect("write");
    gw.signal(nix::sys::signal::Signal::SIGHUP);
    gw.notify.wait_for("RELOADING=1", Duration::from_secs(5));
    gw.notify.wait_for("READY=1", Duration::from_secs(5));
    let resp = fresh
        .get(format!("{url}/api/health"))
        .send()
        .await
        .expect("old certificate kept");
    assert_eq!(resp.status(), StatusCode::OK);

    gw.signal(nix::sys::signal::Signal::SIGTERM);
    // The open WebSocket is closed cleanly ("going away").
    let close = ws.next_close().await;
    assert_eq!(close, Some(1001));
    assert!(gw.wait_exit(Duration::from_secs(10)).success());
}

fn hex_fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test]
async fn sigterm_loses_no_acknowledged_event() {
    let mut gw = crate::common::Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let acked = {
        let runner = gw.runner(&run_id, &token);
        let sender = async {
            let mut acked = 0u64;
            for seq in 1..=100_000u64 {
                let (status, _) = runner
                    .try_event("stdout", &format!("line {seq}"), seq)
                    .await;
                if status != Some(StatusCode::OK) {
                    break;
                }
                acked = seq;
            }
            acked
        };
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(700)).await;
            gw.signal_term();
        };
        let (acked, ()) = tokio::join!(sender, stopper);
        acked
    };
    let status = gw.wait_stopped();
    assert!(status.success(), "exit status {status}");
    assert!(acked > 10, "the runner got going before the stop ({acked})");
    gw.relaunch();
    let (_, run) = gw.get(&format!("/api/runs/{run_id}"), &admin).await;
    let stored = run["eventCount"].as_u64().expect("count");
    assert!(stored >= acked, "acknowledged {acked}, stored {stored}");
    let (_, events) = gw
        .get(
            &format!("/api/runs/{run_id}/events?after={}&limit=1", acked - 1),
            &admin,
        )
        .await;
    assert_eq!(events[0]["data"], format!("line {acked}"));
}

#[tokio::test]
async fn sigterm_folds_the_database_log_into_the_database() {
    if !claw_testkit::on_sqlite("the SQLite log") {
        return;
    }
    let mut gw = crate::common::Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    for seq in 1..=200u64 {
        let (status, _) = runner
            .try_event("stdout", &format!("line {seq}"), seq)
            .await;
        assert_eq!(status, Some(StatusCode::OK));
    }
    let wal = gw.data().join("db.sqlite-wal");
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    assert!(size(&wal) > 0, "the writes went through the log");
    let status = gw.stop();
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        size(&wal),
        0,
        "the log was left behind; clawd said:\n{}",
        gw.log()
    );
    // Everything is in the database file itself.
    let conn = rusqlite::Connection::open_with_flags(
        gw.data().join("db.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open");
    let stored: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE run_id = ?1",
            [&run_id],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(stored, 200);
}

#[tokio::test]
async fn journal_gets_structured_fields() {
    // A private mount namespace puts a socket of the test's at the path
    // journald listens on, so clawd's journal layer writes to the test.
    let dir = tempfile::tempdir().expect("dir");
    let journal_dir = dir.path().join("journal");
    std::fs::create_dir(&journal_dir).expect("journal dir");
    let journal = UnixDatagram::bind(journal_dir.join("socket")).expect("journal socket");
    journal
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    // Read from the start: a datagram socket's queue is short, and a full
    // one blocks the sender.
    let entries = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<(String, String)>>::new()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let entries = std::sync::Arc::clone(&entries);
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = journal.recv(&mut buf) {
                    let entry = parse_journal_entry(&buf[..n]);
                    entries.lock().expect("entries").push(entry);
                }
            }
        })
    };
    let data = dir.path().join("data");
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mkdir -p /run/systemd/journal && mount --bind "$1" /run/systemd/journal && shift && exec "$@""#)
        .arg("sh")
        .arg(&journal_dir)
        .arg(env!("CARGO_BIN_EXE_clawd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("CLAW_LOG_TARGET", "journal")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("unshare (util-linux)");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("address");
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let pem = std::fs::read(data.join("certs/server.crt")).expect("cert");
    let client = client_trusting(&pem);
    let url = format!("https://localhost:{port}");
    let token = std::fs::read_to_string(data.join("setup-token")).expect("token");
    let session = try_first_admin(&client, &url, token.trim(), ADMIN, ADMIN_PASSWORD)
        .await
        .expect("the first administrator's session");
    let created: serde_json::Value = client
        .post(format!("{url}/api/runs"))
        .bearer_auth(&session)
        .json(&json!({}))
        .send()
        .await
        .expect("create run")
        .json()
        .await
        .expect("json");
    let run_id = created["id"].as_str().expect("id").to_owned();

    let has = |entry: &[(String, String)], key: &str, value: &str| {
        entry.iter().any(|(k, v)| k == key && v.starts_with(value))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut found = None;
    while found.is_none() && Instant::now() < deadline {
        found = entries
            .lock()
            .expect("entries")
            .iter()
            .find(|e| has(e, "RUN_ID", &run_id))
            .cloned();
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = reader.join();
    let all = entries.lock().expect("entries").clone();
    let entry = found.unwrap_or_else(|| panic!("no journal entry with RUN_ID; got {all:#?}"));
    for (key, value) in [
        ("USER", ADMIN),
        ("ACTION", "run.create"),
        ("PEER", "127.0.0.1:"),
        ("SYSLOG_IDENTIFIER", "clawd"),
        ("PRIORITY", "6"),
        ("MESSAGE", "run.create"),
    ] {
        assert!(
            has(&entry, key, value),
            "{key}={value} missing in {entry:?}"
        );
    }
    let secret = std::fs::read_to_string(data.join("secrets/hmac-secret")).expect("secret");
    let leaked = |needle: &str| all.iter().flatten().any(|(_, v)| v.contains(needle));
    assert!(!leaked(secret.trim()), "no HMAC secret in the journal");
    assert!(!leaked(&session), "no session token in the journal");
}

/// Parses one datagram of journald's native protocol: `KEY=value\n`, or
/// `KEY\n` + 64-bit little-endian length + value + `\n`.
fn parse_journal_entry(mut bytes: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let Some(end) = bytes.iter().position(|b| *b == b'=' || *b == b'\n') else {
            break;
        };
        let key = String::from_utf8_lossy(&bytes[..end]).into_owned();
        if bytes[end] == b'=' {
            let rest = &bytes[end + 1..];
            let stop = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            fields.push((key, String::from_utf8_lossy(&rest[..stop]).into_owned()));
            bytes = rest.get(stop + 1..).unwrap_or_default();
        } else {
            let rest = &bytes[end + 1..];
            let Some(len) = rest
                .get(..8)
                .map(|l| u64::from_le_bytes(l.try_into().expect("8 bytes")) as usize)
            else {
                break;
            };
            let value = rest.get(8..8 + len).unwrap_or_default();
            fields.push((key, String::from_utf8_lossy(value).into_owned()));
            bytes = rest.get(8 + len + 1..).unwrap_or_default();
        }
    }
    fields
}
