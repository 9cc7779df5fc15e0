//! Two gateways on one PostgreSQL database behind HAProxy, as
//! docs/OPERATIONS.md sets them up: a runner streams 20,000 lines through
//! the proxy while a browser follows the run through it, and the instance
//! serving them is killed mid-run.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use claw_testkit::{
    ADMIN, ADMIN_PASSWORD, Haproxy, Launch, TEST_CONFIG, TempCluster, binary_or_build,
};
use serde_json::json;

fn clawd() -> PathBuf {
    binary_or_build("clawd", "clawd", env!("CARGO"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_under_load_behind_haproxy_loses_nothing() {
    let cluster = TempCluster::start();
    let config = format!(
        "{TEST_CONFIG}trusted_proxies = [\"127.0.0.1\"]\n\
         [store]\nbackend = \"postgres\"\ndatabase_url = \"{}\"\n",
        cluster.url()
    );
    let mut a = Launch::new(clawd()).config(&config).quiet().start();
    a.admin().await;
    // The second instance has the first one's secrets, as every instance
    // of one installation does.
    let b = Launch::new(clawd())
        .dir(a.instance_dir())
        .config(&config)
        .quiet()
        .start();
    let proxy = Haproxy::start(&[a.port, b.port]);

    // The administrator, through the proxy.
    let client = claw_testkit::client_trusting(&proxy.certificate);
    let login = claw_testkit::try_login(&client, &proxy.base(), ADMIN, ADMIN_PASSWORD, None)
        .await
        .expect("login");
    let session = login.session().expect("session").to_owned();
    let created = claw_testkit::try_create_run(
        &client,
        &proxy.base(),
        &session,
        &claw_testkit::api::CreateRunRequest {
            command: Some("sh".to_owned()),
            ..Default::default()
        },
    )
    .await
    .expect("run");

    // A browser following the run through the proxy, reconnecting (to
    // whichever instance is left) from the last sequence it saw.
    let follower = {
        let (port, pem, session, run_id) = (
            proxy.port,
            proxy.certificate.clone(),
            session.clone(),
            created.id.clone(),
        );
        tokio::spawn(async move {
            let mut seen: Vec<(u64, String)> = Vec::new();
            let mut connections = 0;
            let deadline = Instant::now() + Duration::from_secs(180);
            while seen.len() < 20_000 && Instant::now() < deadline {
                let Ok(mut ws) = claw_testkit::try_websocket_to(port, &pem, &session).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                connections += 1;
                let after = seen.last().map_or(0, |(s, _)| *s);
                ws.send(json!({"type": "subscribe", "runId": run_id, "afterSequence": after}))
                    .await;
                while let Some(msg) = ws.try_next(Duration::from_secs(10)).await {
                    if msg["type"] == "event" && msg["eventType"] == "stdout" {
                        let sequence = msg["sequence"].as_u64().expect("sequence");
                        let data = msg["data"].as_str().expect("data").to_owned();
                        seen.push((sequence, data));
                        if seen.len() == 20_000 {
                            break;
                        }
                    }
                }
            }
            (seen, connections)
        })
    };

    let home = tempfile::tempdir().expect("home");
    let agent = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); echo line $i; \
                 case $i in *000) sleep 0.15;; esac; done";
    let mut runner = Command::new(env!("CARGO_BIN_EXE_claw-runner"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.path())
        .env("CLAW_GATEWAY_URL", proxy.base())
        .env(
            "CLAW_HMAC_SECRET_FILE",
            a.data().join("secrets/hmac-secret"),
        )
        .env("CLAW_CA_CERT", proxy.certificate_path())
        .args([
            "start",
            "--run-id",
            &created.id,
            "--token",
            &created.capability_token,
        ])
        .args(["--", "sh", "-c", agent])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner");
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Round robin: both instances serve the runner and the browser may be
    // on either; A goes.
    a.kill();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = runner.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "runner did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(0), "{}", proxy.log());

    let expected: Vec<String> = (1..=20_000).map(|i| format!("line {i}\n")).collect();
    let in_order = |lines: &[(u64, String)]| lines.windows(2).all(|w| w[0].0 < w[1].0);
    // Stored: every line once, in order.
    let mut stored: Vec<(u64, String)> = Vec::new();
    let mut after = 0;
    loop {
        let page = b.events(&session, &created.id, after).await;
        let Some(last) = page.last() else { break };
        after = last.sequence;
        stored.extend(
            page.into_iter()
                .filter(|e| e.kind == claw_testkit::wire::EventType::Stdout)
                .map(|e| (e.sequence, e.data)),
        );
    }
    assert!(in_order(&stored));
    let lines: Vec<String> = stored.into_iter().map(|(_, d)| d).collect();
    assert_eq!(lines.len(), 20_000, "every line stored once");
    assert!(lines == expected, "stored in order");
    // Seen by the browser: every line once, in order.
    let (seen, connections) = follower.await.expect("follower");
    assert!(in_order(&seen), "over {connections} connections");
    let lines: Vec<String> = seen.into_iter().map(|(_, d)| d).collect();
    assert_eq!(lines.len(), 20_000, "over {connections} connections");
    assert!(lines == expected, "seen in order");
}
