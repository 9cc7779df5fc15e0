//! clawd on PostgreSQL: the server failing under it, and two gateways on
//! one database. Each test starts a cluster of its own (it stops it, or
//! needs a database nobody else writes to).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use claw_testkit::{ADMIN, ADMIN_PASSWORD, StatusCode, TEST_CONFIG, TempCluster};
use serde_json::{Value, json};

use crate::common::Gateway;

/// clawd.toml for a gateway on `url`; `store` adds to its `[store]`.
pub(crate) fn on_postgres(url: &str, top: &str, store: &str) -> String {
    format!(
        "{TEST_CONFIG}{top}\n[store]\nbackend = \"postgres\"\ndatabase_url = \"{url}\"\n{store}\n"
    )
}

fn lines(first: u64, count: u64) -> Vec<Value> {
    (first..first + count)
        .map(|s| json!({ "type": "stdout", "data": format!("line {s}"), "sequence": s }))
        .collect()
}

/// Every event of a run, in order, through the API.
async fn all_events(gw: &Gateway, session: &str, run_id: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    loop {
        let after = out.last().map_or(0, |(s, _)| *s);
        let page = gw.events(session, run_id, after).await;
        if page.is_empty() {
            return out;
        }
        out.extend(page.into_iter().map(|e| (e.sequence, e.data)));
    }
}

fn assert_lines_once(events: &[(u64, String)], count: u64) {
    assert_eq!(events.len() as u64, count, "each line once");
    for (i, (sequence, data)) in events.iter().enumerate() {
        let expected = i as u64 + 1;
        assert_eq!(*sequence, expected);
        assert_eq!(data, &format!("line {expected}"));
    }
}

/// PostgreSQL stopped and started again while a runner streams: requests
/// in flight are answered 503 and nothing else, the runner's resends fill
/// in, every acknowledged line is there exactly once, and clawd serves
/// again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_ingest_loses_nothing_and_clawd_recovers() {
    let cluster = Arc::new(TempCluster::start());
    let gw =
        Gateway::start_with(&on_postgres(&cluster.url(), "", "connect_timeout_secs = 2")).await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner_client(&run_id, &token);
    const BATCHES: u64 = 300;
    const PER_BATCH: u64 = 10;
    let sent = Arc::new(AtomicU64::new(0));
    let streaming = {
        let sent = Arc::clone(&sent);
        tokio::spawn(async move {
            let mut refusals = Vec::new();
            for b in 0..BATCHES {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let signed = runner.sign(
                        claw_testkit::Method::POST,
                        "/api/ingest/events",
                        json!({ "events": lines(b * PER_BATCH + 1, PER_BATCH) })
                            .to_string()
                            .into_bytes(),
                    );
                    let (status, body) = runner.send(&signed).await;
                    if status == StatusCode::OK {
                        break;
                    }
                    refusals.push((status, body));
                    assert!(Instant::now() < deadline, "never stored: {refusals:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                sent.store(b + 1, Ordering::Relaxed);
            }
            refusals
        })
    };
    while sent.load(Ordering::Relaxed) < BATCHES / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let server = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || {
        server.stop_server().expect("stop PostgreSQL");
        std::thread::sleep(Duration::from_secs(1));
        server.start_server().expect("start PostgreSQL again");
    })
    .await
    .expect("restart");
    let refusals = streaming.await.expect("streaming");
    assert!(!refusals.is_empty(), "the restart was never noticed");
    for (status, body) in &refusals {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("nothing was stored")),
            "{body}"
        );
    }
    assert_lines_once(&all_events(&gw, &admin, &run_id).await, BATCHES * PER_BATCH);
    assert!(gw.try_pid().is_some(), "the same clawd serves");
}

/// Every pooled connection waits on a lock: the next requests are
/// answered 503 with Retry-After, and served once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_busy_answers_503_with_retry_after() {
    let cluster = Arc::new(TempCluster::start());
    let gw = Gateway::start_with(&on_postgres(
        &cluster.url(),
        "",
        "max_connections = 2\nconnect_timeout_secs = 1\nstatement_timeout_secs = 3",
    ))
    .await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner_client(&run_id, &token);
    let holder = Arc::clone(&cluster);
    let lock = std::thread::spawn(move || {
        holder.psql(
            claw_testkit::postgres::PG_DATABASE,
            "BEGIN; LOCK TABLE runs IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;",
        )
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster
        .psql(
            claw_testkit::postgres::PG_DATABASE,
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 'runs' AND l.mode = 'AccessExclusiveLock' AND l.granted",
        )
        .expect("pg_locks")
        != "1"
    {
        assert!(Instant::now() < deadline, "the lock was never taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sends: Vec<_> = (0..6u64)
        .map(|_| {
            let runner = runner.clone();
            tokio::spawn(async move {
                let signed = runner.sign(
                    claw_testkit::Method::POST,
                    "/api/ingest/events",
                    json!({ "events": [{ "type": "stdout", "data": "not stored" }] })
                        .to_string()
                        .into_bytes(),
                );
                let resp = runner.request_of(&signed).send().await.expect("an answer");
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                (resp.status(), retry_after, resp.text().await.expect("body"))
            })
        })
        .collect();
    for send in sends {
        let (status, retry_after, body) = send.await.expect("send");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
        assert!(body.contains("busy"), "{body}");
    }
    lock.join().expect("lock").expect("psql");
    let (status, body) = runner.batch(lines(1, 3)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_lines_once(&all_events(&gw, &admin, &run_id).await, 3);
}

/// No server at start: clawd tries for `start_wait_secs`, then ends with an
/// error that names the database without its password (systemd's Restart=
/// tries again).
#[tokio::test]
async fn no_postgres_at_start_is_a_clear_error() {
    let port = claw_testkit::free_port();
    let url = format!("postgres://claw:s3cret@127.0.0.1:{port}/claw");
    let started = Instant::now();
    let Err(e) = Gateway::launch()
        .config(&on_postgres(
            &url,
            "",
            "connect_timeout_secs = 1\nstart_wait_secs = 3",
        ))
        .try_start()
    else {
        panic!("clawd started without its database");
    };
    let e = format!("{e:#}");
    assert!(
        e.contains(&format!(
            "cannot open the PostgreSQL store at postgres://claw@127.0.0.1:{port}/claw"
        )),
        "{e}"
    );
    assert!(e.contains("cannot connect"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
    assert!(
        e.contains("PostgreSQL is not answering: trying again in 2 s"),
        "it waited first: {e}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "it waited first"
    );
}

/// A second gateway on the first one's database, with its secrets (as
/// every instance of one installation shares them).
pub(crate) async fn second_gateway(first: &Gateway, config: &str) -> Gateway {
    Gateway::start_in(first.instance_dir(), config).await
}

/// Two gateways on `cluster`'s database with the same secrets and `extra`
/// configuration, and the administrator's session on each.
async fn two_gateways(cluster: &TempCluster, extra: &str) -> (Gateway, String, Gateway, String) {
    let config = on_postgres(&cluster.url(), extra, "");
    let a = Gateway::start_with(&config).await;
    let admin_a = a.admin().await;
    let b = second_gateway(&a, &config).await;
    let admin_b = b
        .login(ADMIN, ADMIN_PASSWORD, None)
        .await
        .expect("the same administrator on the second gateway");
    (a, admin_a, b, admin_b)
}

/// Two gateways on one database behave as one: the same sequences resent
/// to both at once are stored once; a nonce used on one is refused on the
/// other; a thousand audited actions spread over both make one chain that
/// verifies; failed logins spread over both trip the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_database_act_as_one() {
    let cluster = TempCluster::start();
    let (a, admin_a, b, admin_b) = two_gateways(&cluster, "login_max_failures = 4").await;

    // Resends of the same 50 sequences, to both at once.
    let (run_id, token) = a.create_run(&admin_a).await;
    let sends = (0..20).map(|n| {
        let runner = if n % 2 == 0 { &a } else { &b }.runner_client(&run_id, &token);
        tokio::spawn(async move { runner.batch(lines(1, 50)).await })
    });
    for send in sends {
        let (status, body) = send.await.expect("send");
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_lines_once(&all_events(&b, &admin_b, &run_id).await, 50);

    // One nonce, two gateways.
    let runner_a = a.runner_client(&run_id, &token);
    let runner_b = b.runner_client(&run_id, &token);
    let signed = runner_a.sign(
        claw_testkit::Method::POST,
        "/api/ingest/events",
        json!({ "events": lines(51, 1) }).to_string().into_bytes(),
    );
    let (status, body) = runner_a.send(&signed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = runner_b.send(&signed).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.to_string().contains("nonce already used"), "{body}");

    // A thousand audited actions (run creations), eight at a time over both.
    let before = a.audit_verify(&admin_a).await.checked;
    let sessions = [admin_a.clone(), admin_b.clone()];
    for round in 0..125 {
        let creations = (0..8).map(|n| {
            let (gw, session) = if (round + n) % 2 == 0 {
                (&a, &sessions[0])
            } else {
                (&b, &sessions[1])
            };
            gw.create_run(session)
        });
        futures_util::future::join_all(creations).await;
    }
    for (gw, session) in [(&a, &admin_a), (&b, &admin_b)] {
        let report = gw.audit_verify(session).await;
        assert!(report.ok, "{report:?}");
        assert!(report.checked >= before + 1000, "{report:?}");
    }

    // Four failures spread over both; the fifth is refused on either.
    for n in 0..4 {
        let gw = if n % 2 == 0 { &a } else { &b };
        let (status, _) = gw
            .login(ADMIN, "wrong password", None)
            .await
            .expect_err("wrong");
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for gw in [&a, &b] {
        let (status, body) = gw
            .login(ADMIN, ADMIN_PASSWORD, None)
            .await
            .expect_err("throttled");
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    }
}

/// A database of PostgreSQL schema 1 with data in it (made by the gateway
/// of that schema: fixtures/pg-schema1.sql) is migrated at start and keeps
/// everything: users and their passwords, the run and its events, the
/// pending approvals in their order, and an audit chain that verifies.
#[tokio::test]
async fn a_schema_1_postgres_database_is_migrated_with_its_data() {
    let cluster = TempCluster::start();
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pg-schema1.sql"
    ))
    .expect("fixture");
    cluster
        .psql(claw_testkit::postgres::PG_DATABASE, &fixture)
        .expect("load schema 1");
    let gw = Gateway::start_with(&on_postgres(&cluster.url(), "", "")).await;
    assert_eq!(gw.control_status().await.database.schema_version, 3);
    let admin = gw
        .login(ADMIN, ADMIN_PASSWORD, None)
        .await
        .expect("the administrator's password");
    gw.login("olga", "olga-password-long", None)
        .await
        .expect("the operator's password");
    let run_id = "f121cfda-dca5-4a22-a5e8-cc5debcea5be";
    let run = gw.run(&admin, run_id).await;
    assert_eq!(run.run.status, claw_testkit::wire::RunStatus::Waiting);
    let events = all_events(&gw, &admin, run_id).await;
    assert_eq!(
        events.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    let (status, pending) = gw.get("/api/approvals?status=pending", &admin).await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    let requests: Vec<&str> = pending
        .as_array()
        .expect("approvals")
        .iter()
        .filter_map(|a| a["requestId"].as_str())
        .collect();
    assert_eq!(requests, ["r-1", "r-2"]);
    let report = gw.audit_verify(&admin).await;
    assert!(report.ok && report.checked >= 5, "{report:?}");
    // The migrated database takes new rows as before.
    let (new_run, _) = gw.create_run(&admin).await;
    assert_eq!(gw.run(&admin, &new_run).await.run.id, new_run);
}

/// The run's signed WebSocket (`/api/runner/ws`) of a runner, on `gw`.
async fn runner_socket(
    gw: &Gateway,
    runner: &claw_testkit::RunnerClient,
) -> tokio_tungstenite::WebSocketStream<
    impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + use<>,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let signed = runner.sign(claw_testkit::Method::GET, "/api/runner/ws", Vec::new());
    let tls = crate::common::connect_tls(gw.port, &gw.certificate())
        .await
        .expect("tls");
    let mut request = format!("wss://localhost:{}/api/runner/ws", gw.port)
        .into_client_request()
        .expect("request");
    let headers = request.headers_mut();
    for (name, value) in [
        ("X-Signature", signed.signature.clone()),
        ("X-Timestamp", signed.timestamp.to_string()),
        ("X-Nonce", signed.nonce.clone()),
        ("X-Run-Id", runner.run_id.clone()),
        ("X-Capability-Token", runner.token.clone()),
    ] {
        headers.insert(name, value.parse().expect("header"));
    }
    let (socket, _) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("runner websocket");
    socket
}

/// The next note of type `kind` pushed to a runner's socket (others, such
/// as the run's status, are skipped); fails after `within`.
async fn pushed(
    socket: &mut (
             impl futures_util::Stream<
        Item = Result<
            tokio_tungstenite::tungstenite::Message,
            tokio_tungstenite::tungstenite::Error,
        >,
    > + Unpin
         ),
    kind: &str,
    within: Duration,
) -> Value {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} pushed within {within:?}"))
            .expect("socket open")
            .expect("message");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let note: Value = serde_json::from_str(&text).expect("json");
            if note["type"] == kind {
                return note;
            }
        }
    }
}

/// Reads `count` events of `run_id` from a browser socket, in the order
/// they come; any other message is skipped.
async fn read_events(ws: &mut claw_testkit::Ws, run_id: &str, count: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let msg = ws.next_of("event").await;
        assert_eq!(msg["runId"], run_id);
        let sequence = msg["sequence"].as_u64().expect("sequence");
        assert_eq!(msg["data"], format!("line {sequence}"));
        seen.push(sequence);
    }
    seen
}

/// Nothing more comes before the answer to a ping: no event twice.
async fn no_more_events(ws: &mut claw_testkit::Ws) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(json!({"type": "ping"})).await;
    loop {
        let message = ws.next().await;
        assert_ne!(message["type"], "event", "more than asked for: {message}");
        if message["type"] == "pong" {
            return;
        }
    }
}

/// A browser on one gateway sees, live, the events a runner
/// posts to another, in order and each once, also when the runner fails
/// over between the two in the middle (resends to both); reconnected to
/// the other gateway after the last sequence it saw, it misses nothing
/// and sees nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_on_one_gateway_follows_a_run_written_to_another() {
    let cluster = TempCluster::start();
    let (a, admin_a, b, admin_b) = two_gateways(&cluster, "").await;
    let (run_id, token) = a.create_run(&admin_a).await;
    let on_a = a.runner_client(&run_id, &token);
    let on_b = b.runner_client(&run_id, &token);

    let mut ws = b.websocket(&admin_b).await;
    ws.send(json!({ "type": "subscribe", "runId": run_id, "afterSequence": 0 }))
        .await;
    ws.next_of("subscribed").await;
    // Batches of ten to a, each resending the last three; then the runner
    // fails over to b for a while (its resends go to both), then back to a.
    let writer = async {
        for chunk in 0..15u64 {
            let from = 1 + chunk * 10;
            let first = from.saturating_sub(3).max(1);
            let batch = lines(first, from + 10 - first);
            let sends: Vec<&claw_testkit::RunnerClient> = match chunk {
                5..=9 => vec![&on_b, &on_a],
                _ => vec![&on_a],
            };
            for runner in sends {
                let (status, body) = runner.batch(batch.clone()).await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        }
    };
    let ((), seen) = tokio::join!(writer, read_events(&mut ws, &run_id, 150));
    assert_eq!(seen, (1..=150).collect::<Vec<_>>());
    no_more_events(&mut ws).await;
    drop(ws);

    // Written while no browser was connected, and while one reconnects to
    // a after the last sequence it saw.
    let (status, body) = on_a.batch(lines(151, 25)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut ws = a.websocket(&admin_a).await;
    ws.send(json!({ "type": "subscribe", "runId": run_id, "afterSequence": 150 }))
        .await;
    let writer = async {
        for chunk in 0..5u64 {
            let runner = if chunk % 2 == 0 { &on_b } else { &on_a };
            let (status, body) = runner.batch(lines(176 + chunk * 5, 5)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    let ((), seen) = tokio::join!(writer, read_events(&mut ws, &run_id, 50));
    assert_eq!(seen, (151..=200).collect::<Vec<_>>());
    no_more_events(&mut ws).await;
}

/// An agent run on gateway `a`, started, its runner's WebSocket open on
/// `a`: (run id, token, socket).
async fn agent_run_pushed_on(
    a: &Gateway,
    admin: &str,
) -> (
    String,
    String,
    tokio_tungstenite::WebSocketStream<
        impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + use<>,
    >,
) {
    let created = a
        .create_run_with(
            admin,
            &claw_testkit::api::CreateRunRequest {
                agent: Some(claw_proto::agent::AgentKind::Claude),
                ..Default::default()
            },
        )
        .await;
    a.runner(&created.id, &created.capability_token)
        .started()
        .await;
    let socket = runner_socket(a, &a.runner_client(&created.id, &created.capability_token)).await;
    (created.id, created.capability_token, socket)
}

/// A command, a prompt and a stop queued through one gateway
/// reach a runner whose WebSocket is on another within a second (not at
/// its next poll).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_queued_on_one_gateway_reach_a_runner_on_another_at_once() {
    let cluster = TempCluster::start();
    let (a, admin_a, b, admin_b) = two_gateways(&cluster, "").await;
    let (run_id, _, mut socket) = agent_run_pushed_on(&a, &admin_a).await;
    let within = Duration::from_secs(1);

    let (status, body) = b
        .post(
            &format!("/api/runs/{run_id}/command"),
            &admin_b,
            json!({"command": "git status"}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let note = pushed(&mut socket, "command_queued", within).await;
    assert_eq!(note["commandId"], body["commandId"], "{note}");
    assert_eq!(note["command"], "git status", "{note}");

    let (status, body) = b
        .post(
            &format!("/api/runs/{run_id}/prompts"),
            &admin_b,
            json!({"text": "and now the tests"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let note = pushed(&mut socket, "command_queued", within).await;
    assert_eq!(note["kind"], "prompt", "{note}");

    let (status, body) = b
        .post(&format!("/api/runs/{run_id}/stop"), &admin_b, json!({}))
        .await;
    assert!(status.is_success(), "{body}");
    let note = pushed(&mut socket, "stop_requested", within).await;
    assert_eq!(note["runId"], run_id.as_str(), "{note}");
}

/// An approval decided through one gateway reaches the runner
/// whose WebSocket is on another at once, and browsers on the other see
/// it decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_decided_on_one_gateway_reaches_a_runner_on_another() {
    let cluster = TempCluster::start();
    let (a, admin_a, b, admin_b) = two_gateways(&cluster, "").await;
    let (run_id, token, mut socket) = agent_run_pushed_on(&a, &admin_a).await;
    let mut browser_a = a.websocket(&admin_a).await;
    let request = json!({
        "requestId": "r-1", "kind": "tool", "tool": "Bash",
        "input": {"command": "touch made.txt"}, "summary": "touch made.txt",
        "timeoutSecs": 600
    });
    // Asked through b: the browser on a hears of it.
    b.runner(&run_id, &token)
        .event_ok("approval_request", &request.to_string())
        .await;
    let made = browser_a.next_of("approval").await;
    assert_eq!(made["approval"]["status"], "pending", "{made}");
    let id = made["approval"]["id"].as_str().expect("id").to_owned();

    let (status, body) = b
        .post(
            &format!("/api/approvals/{id}/decision"),
            &admin_b,
            json!({"decision": "allow"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let note = pushed(&mut socket, "command_queued", Duration::from_secs(1)).await;
    assert_eq!(note["kind"], "decision", "{note}");
    let decided = browser_a.next_of("approval").await;
    assert_eq!(decided["approval"]["id"], id.as_str(), "{decided}");
    assert_eq!(decided["approval"]["status"], "allowed", "{decided}");
    // What was pushed is what the runner fetches.
    let commands = a.runner(&run_id, &token).pending_commands().await;
    assert_eq!(commands.len(), 1);
    assert_eq!(note["commandId"], commands[0].id.as_str());
}

/// Events committed on one gateway while the other was not
/// listening (its listening connection killed) still reach the other's
/// browser, from the store once it listens again, and its runner is
/// nudged to fetch its commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_committed_while_a_gateway_was_not_listening_reaches_it() {
    let cluster = TempCluster::start();
    let (a, admin_a, b, admin_b) = two_gateways(&cluster, "").await;
    let (run_id, token) = a.create_run(&admin_a).await;
    let on_a = a.runner_client(&run_id, &token);
    let mut socket_b = runner_socket(&b, &b.runner_client(&run_id, &token)).await;
    let mut ws = b.websocket(&admin_b).await;
    ws.send(json!({ "type": "subscribe", "runId": run_id, "afterSequence": 0 }))
        .await;
    ws.next_of("subscribed").await;
    let (status, body) = on_a.batch(lines(1, 3)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(read_events(&mut ws, &run_id, 3).await, [1, 2, 3]);

    // Both listeners killed; lines written before they listen again.
    let killed = cluster
        .psql(
            claw_testkit::postgres::PG_DATABASE,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'clawd (listen)'",
        )
        .expect("terminate");
    assert_eq!(killed, "2");
    let (status, body) = on_a.batch(lines(4, 3)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(read_events(&mut ws, &run_id, 3).await, [4, 5, 6]);
    no_more_events(&mut ws).await;
    let nudge = pushed(&mut socket_b, "notice", Duration::from_secs(10)).await;
    assert_eq!(nudge["message"], "lagged", "{nudge}");
    // And live again afterwards.
    let (status, body) = on_a.batch(lines(7, 1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(read_events(&mut ws, &run_id, 1).await, [7]);
}
