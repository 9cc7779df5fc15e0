//! The control socket when clawd binds it itself: mode 0660, served to
//! root, refused to anyone else with a message naming the group.

use std::os::unix::fs::PermissionsExt;

use reqwest::StatusCode;

use crate::common::{Gateway, unix_get, unix_request};

#[tokio::test]
async fn control_socket_is_0660_and_serves_root() {
    let gw = Gateway::start().await;
    let socket = gw.data().join("control.sock");
    let mode = std::fs::metadata(&socket)
        .expect("control socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
    let (status, body) = unix_get(&socket, "/v1/status").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["listeners"]["socketActivated"], false);
    assert_eq!(body["listeners"]["control"], socket.display().to_string());
    let schema = if claw_testkit::store_is_postgres() {
        3
    } else {
        10
    };
    assert_eq!(body["database"]["schemaVersion"], schema);
    assert!(
        body["lastPrune"].is_null() && body["lastBackup"].is_null(),
        "{body}"
    );
    assert!(body["database"]["sizeBytes"].as_u64().expect("size") > 0);
    assert_eq!(body["tls"]["enabled"], true);
    assert!(
        body["tls"]["subject"]
            .as_str()
            .expect("subject")
            .contains("O=claw (self-signed)"),
        "{body}"
    );
    let days = body["tls"]["expiresInDays"].as_i64().expect("days");
    assert!((363..=365).contains(&days), "{days}");
    let (status, body) = unix_get(&socket, "/v1/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].is_string(), "{body}");
    // A wrong method says so in JSON too, as clawctl expects.
    let (status, body) = unix_request(&socket, "DELETE", "/v1/status", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("method not allowed")),
        "{body}"
    );
}

#[tokio::test]
async fn control_socket_refuses_other_users() {
    let gw = Gateway::start().await;
    let socket = gw.data().join("control.sock");
    // Let an unprivileged user reach the socket at all, so that clawd itself
    // has to refuse it.
    std::fs::set_permissions(gw.data(), std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))
        .expect("chmod socket");
    // perl is part of every Debian system (perl-base), and its Unix socket
    // module is core.
    let client = r#"
use IO::Socket::UNIX;
my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!";
print $s "GET /v1/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
print while <$s>;
"#;
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/perl",
            "-e",
            client,
        ])
        .arg(&socket)
        .output()
        .expect("setpriv (util-linux) and perl");
    let response = String::from_utf8_lossy(&out.stdout);
    assert!(
        response.starts_with("HTTP/1.1 403"),
        "{response}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(response.contains("claw-admin"), "{response}");
    assert!(
        !response.contains("\"runs\""),
        "no status leaks: {response}"
    );
}

/// A backup that cannot be written where the administrator asked says so
/// as their mistake (400), not as a full disk.
#[tokio::test]
async fn a_backup_to_a_path_that_is_no_directory_is_refused_as_such() {
    let gw = Gateway::start().await;
    let socket = gw.data().join("control.sock");
    let file = gw.data().join("not-a-directory");
    std::fs::write(&file, b"x").expect("write a file");
    let output = file.join("backups");
    let (status, body) = unix_request(
        &socket,
        "POST",
        "/v1/backup",
        Some(serde_json::json!({ "output": output })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("nothing was kept") && error.contains("not-a-directory"),
        "{body}"
    );
}

/// `clawctl runs tail --follow` ends with the run, also when the run ends
/// while the stream is being set up.
#[tokio::test]
async fn a_followed_stream_ends_even_when_the_run_ends_as_it_starts() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let socket = gw.data().join("control.sock");
    for _ in 0..40 {
        let (run_id, token) = gw.create_run(&admin).await;
        let runner = gw.runner(&run_id, &token);
        runner.started().await;
        let uri = format!("/v1/runs/{run_id}/events?follow=true");
        let (stream, ()) = tokio::join!(
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                unix_request(&socket, "GET", &uri, None)
            ),
            runner.finished(0)
        );
        let (status, _) = stream.expect("the stream did not end with the run");
        assert_eq!(status, StatusCode::OK);
    }
}
