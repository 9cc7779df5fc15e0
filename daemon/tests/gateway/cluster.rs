//! Several gateways on one database: each records itself and sees the
//! others, they must have the same secrets, one setup token serves all,
//! and health says when the database does not answer.

use std::time::{Duration, Instant};

use claw_testkit::{ADMIN, ADMIN_PASSWORD, StatusCode, TEST_CONFIG, TempCluster};

use crate::common::Gateway;
use crate::postgres::{on_postgres, second_gateway};

/// `clawctl status` of each lists both instances, alive, and which one
/// answers; an instance with other secrets refuses to start and says
/// which secrets differ and from whom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_see_each_other_and_must_share_their_secrets() {
    let cluster = TempCluster::start();
    let config = on_postgres(&cluster.url(), "", "");
    let a = Gateway::start_with(&config).await;
    a.admin().await;
    let b = second_gateway(&a, &config).await;
    for gw in [&a, &b] {
        let status = gw.control_status().await;
        assert_eq!(status.instances.len(), 2, "{:?}", status.instances);
        assert!(
            status.instances.iter().all(|i| i.alive),
            "{:?}",
            status.instances
        );
        let this: Vec<_> = status.instances.iter().filter(|i| i.this).collect();
        assert_eq!(this.len(), 1);
        assert_eq!(this[0].address, gw.base().replace("localhost", "127.0.0.1"));
    }

    // A third with secrets of its own (a fresh data directory).
    let Err(e) = Gateway::launch().config(&config).try_start() else {
        panic!("an instance with other secrets started");
    };
    let e = format!("{e:#}");
    assert!(
        e.contains("differ from those of the instances alive"),
        "{e}"
    );
    for secret in ["hmac-secret", "auth-secret", "hosts-secret", "vapid-key"] {
        assert!(e.contains(secret), "{e}");
    }
    assert!(
        e.contains(&a.base().replace("https://localhost", "")),
        "{e}"
    );
}

/// A gateway alone whose secrets were changed on purpose (a new
/// auth-secret while it was stopped) records them and starts.
#[tokio::test]
async fn secrets_changed_while_no_other_instance_runs_are_taken() {
    let mut gw = Gateway::start_with(TEST_CONFIG).await;
    gw.admin().await;
    gw.stop();
    std::fs::write(
        gw.data().join("secrets/auth-secret"),
        format!("{}\n", "ab".repeat(32)),
    )
    .expect("new secret");
    gw.relaunch();
    assert!(
        gw.log()
            .contains("no other instance is alive: recorded this instance's"),
        "{}",
        gw.log()
    );
    gw.login(ADMIN, ADMIN_PASSWORD, None)
        .await
        .expect("it serves");
}

/// The setup token made by the first instance serves on the second, which
/// has no token file; once used, neither asks for setup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_setup_token_serves_every_instance() {
    let cluster = TempCluster::start();
    let config = on_postgres(&cluster.url(), "", "");
    let a = Gateway::start_with(&config).await;
    let token = a.setup_token();
    let b = second_gateway(&a, &config).await;
    assert!(b.try_setup_token().is_none(), "the second made no token");
    assert!(b.log().contains("the instance that made it"), "{}", b.log());
    claw_testkit::try_setup(&b.client, &b.base(), &token, ADMIN, ADMIN_PASSWORD)
        .await
        .expect("setup through the second instance");
    for gw in [&a, &b] {
        assert!(!gw.auth_status().await.setup_required);
        gw.login(ADMIN, ADMIN_PASSWORD, None)
            .await
            .expect("the administrator");
    }
}

/// PostgreSQL stopped: `/api/health` turns 503 `degraded` naming the
/// database within a heartbeat or two, and `ok` again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_when_the_database_does_not_answer() {
    let cluster = TempCluster::start();
    let gw =
        Gateway::start_with(&on_postgres(&cluster.url(), "", "connect_timeout_secs = 1")).await;
    let health = |gw: &Gateway| {
        let client = gw.client.clone();
        let url = gw.url("/api/health");
        async move {
            let resp = client.get(url).send().await.expect("health");
            let status = resp.status();
            let body: serde_json::Value = resp.json().await.expect("json");
            (status, body)
        }
    };
    let (status, body) = health(&gw).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["database"], "ok", "{body}");
    cluster.stop_server().expect("stop PostgreSQL");
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = health(&gw).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break body;
        }
        assert!(Instant::now() < deadline, "never degraded: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(
        body["checks"]["database"]
            .as_str()
            .is_some_and(|d| d.starts_with("unreachable")),
        "{body}"
    );
    cluster.start_server().expect("start PostgreSQL");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = health(&gw).await;
        if status == StatusCode::OK {
            assert_eq!(body["status"], "ok", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "never ok again: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
