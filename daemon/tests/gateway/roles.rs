//! Who may call what: every endpoint of the public listener, for nobody, a
//! viewer, an operator and an administrator, against a table of the
//! statuses each must get. Each cell that changes something gets fresh
//! things to change (a run, an artifact, a user), so cells never depend on
//! each other.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Gateway, Runner};

/// What a cell needs made first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    /// A pending run: `{run}`.
    Run,
    /// A running run: `{run}`.
    RunningRun,
    /// An artifact of a run: `{artifact}`.
    Artifact,
    /// A user to change or delete: `{user}`.
    User,
    /// A session of its own (the call ends or replaces it).
    OwnSession,
    /// A running agent run: `{run}`.
    AgentRun,
    /// A pending approval of a running agent run: `{approval}`.
    Approval,
}

struct Row {
    method: Method,
    path: &'static str,
    body: Option<fn() -> Value>,
    needs: Needs,
    /// Nobody, viewer, operator, admin.
    expect: [u16; 4],
}

fn row(
    method: Method,
    path: &'static str,
    needs: Needs,
    body: Option<fn() -> Value>,
    expect: [u16; 4],
) -> Row {
    Row {
        method,
        path,
        body,
        needs,
        expect,
    }
}

fn table() -> Vec<Row> {
    use Method as M;
    use Needs::*;
    vec![
        row(M::GET, "/", Nothing, None, [200; 4]),
        row(M::GET, "/assets/app.js", Nothing, None, [200; 4]),
        row(M::GET, "/api/health", Nothing, None, [200; 4]),
        row(M::GET, "/api/status", Nothing, None, [401, 200, 200, 200]),
        row(M::GET, "/api/auth/status", Nothing, None, [200; 4]),
        row(
            M::POST,
            "/api/auth/setup",
            Nothing,
            Some(
                || json!({"setupToken": "x", "username": "nobody1", "password": "long enough password"}),
            ),
            [409; 4],
        ),
        row(
            M::POST,
            "/api/auth/login",
            Nothing,
            Some(|| json!({"username": "nobody1", "password": "not the password"})),
            [401; 4],
        ),
        row(M::GET, "/api/auth/me", Nothing, None, [401, 200, 200, 200]),
        row(
            M::POST,
            "/api/auth/refresh",
            OwnSession,
            None,
            [401, 200, 200, 200],
        ),
        row(
            M::POST,
            "/api/auth/logout",
            OwnSession,
            None,
            [401, 200, 200, 200],
        ),
        // Confirming with nothing enrolled: 409 for anyone logged in.
        row(
            M::POST,
            "/api/auth/totp/confirm",
            Nothing,
            Some(|| json!({"code": "000000"})),
            [401, 409, 409, 409],
        ),
        row(
            M::POST,
            "/api/auth/totp/enroll",
            Nothing,
            None,
            [401, 200, 200, 200],
        ),
        // Removing one's TOTP needs the password.
        row(
            M::DELETE,
            "/api/auth/totp",
            Nothing,
            None,
            [401, 400, 400, 400],
        ),
        row(
            M::GET,
            "/api/auth/users",
            Nothing,
            None,
            [401, 403, 403, 200],
        ),
        row(
            M::POST,
            "/api/auth/users",
            Nothing,
            Some(
                || json!({"username": format!("u{}", crate::common::nonce()), "password": "long enough password"}),
            ),
            [401, 403, 403, 201],
        ),
        row(
            M::PATCH,
            "/api/auth/users/{user}",
            User,
            Some(|| json!({"role": "operator"})),
            [401, 403, 403, 200],
        ),
        row(
            M::DELETE,
            "/api/auth/users/{user}",
            User,
            None,
            [401, 403, 403, 200],
        ),
        row(M::GET, "/api/runs", Nothing, None, [401, 200, 200, 200]),
        row(
            M::POST,
            "/api/runs",
            Nothing,
            Some(|| json!({"command": "claude"})),
            [401, 403, 201, 201],
        ),
        row(M::GET, "/api/runs/{run}", Run, None, [401, 200, 200, 200]),
        row(
            M::DELETE,
            "/api/runs/{run}",
            Run,
            None,
            [401, 403, 200, 200],
        ),
        row(
            M::GET,
            "/api/runs/{run}/events",
            Run,
            None,
            [401, 200, 200, 200],
        ),
        row(
            M::POST,
            "/api/runs/{run}/command",
            RunningRun,
            Some(|| json!({"command": "git status"})),
            [401, 403, 201, 201],
        ),
        row(
            M::POST,
            "/api/runs/{run}/stop",
            Run,
            None,
            [401, 403, 200, 200],
        ),
        row(
            M::GET,
            "/api/runs/{run}/artifacts",
            Run,
            None,
            [401, 200, 200, 200],
        ),
        // Without a signature, the browser's list of the run's commands.
        row(
            M::GET,
            "/api/runs/{run}/commands",
            Run,
            None,
            [401, 200, 200, 200],
        ),
        row(
            M::GET,
            "/api/artifacts/{artifact}",
            Artifact,
            None,
            [401, 200, 200, 200],
        ),
        row(
            M::DELETE,
            "/api/artifacts/{artifact}",
            Artifact,
            None,
            [401, 403, 200, 200],
        ),
        row(
            M::POST,
            "/api/runs/{run}/prompts",
            AgentRun,
            Some(|| json!({"text": "and now the tests"})),
            [401, 403, 201, 201],
        ),
        row(
            M::POST,
            "/api/runs/{run}/interrupt",
            AgentRun,
            None,
            [401, 403, 202, 202],
        ),
        // The runner's spec takes a signature only.
        row(M::GET, "/api/runs/{run}/spec", AgentRun, None, [401; 4]),
        row(
            M::GET,
            "/api/approvals",
            Nothing,
            None,
            [401, 200, 200, 200],
        ),
        row(
            M::GET,
            "/api/approvals/{approval}",
            Approval,
            None,
            [401, 200, 200, 200],
        ),
        row(
            M::POST,
            "/api/approvals/{approval}/decision",
            Approval,
            Some(|| json!({"decision": "deny", "message": "not now"})),
            [401, 403, 200, 200],
        ),
        row(
            M::GET,
            "/api/notify/channels",
            Nothing,
            None,
            [401, 200, 200, 200],
        ),
        // Anyone signed in may add a channel of their own; this one is on
        // loopback, which the gateway refuses by default.
        row(
            M::POST,
            "/api/notify/channels",
            Nothing,
            Some(|| json!({"kind": "webhook", "name": "mine", "target": "http://127.0.0.1:9/x"})),
            [401, 400, 400, 400],
        ),
        row(
            M::PATCH,
            "/api/notify/channels/no-such-channel",
            Nothing,
            Some(|| json!({"scope": "all"})),
            [401, 404, 404, 404],
        ),
        row(
            M::DELETE,
            "/api/notify/channels/no-such-channel",
            Nothing,
            None,
            [401, 404, 404, 404],
        ),
        row(
            M::GET,
            "/api/notify/status",
            Nothing,
            None,
            [401, 200, 200, 200],
        ),
        row(
            M::GET,
            "/api/notify/push/key",
            Nothing,
            None,
            [401, 200, 200, 200],
        ),
        // Keys that are no P-256 point: refused for everyone signed in.
        row(
            M::POST,
            "/api/notify/push",
            Nothing,
            Some(
                || json!({"endpoint": "https://push.example/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}),
            ),
            [401, 400, 400, 400],
        ),
        row(M::GET, "/api/hosts", Nothing, None, [401, 200, 200, 200]),
        row(
            M::POST,
            "/api/hosts",
            Nothing,
            Some(|| json!({"name": "build-1"})),
            [401, 403, 403, 201],
        ),
        row(
            M::POST,
            "/api/hosts/no-such-host/revoke",
            Nothing,
            None,
            [401, 403, 403, 404],
        ),
        row(
            M::DELETE,
            "/api/hosts/no-such-host",
            Nothing,
            None,
            [401, 403, 403, 404],
        ),
        // Anyone may enrol: the token is what counts.
        row(
            M::POST,
            "/api/hosts/enroll",
            Nothing,
            Some(|| json!({"token": "0123456789abcdef"})),
            [401, 401, 401, 401],
        ),
        row(M::GET, "/api/host/ws", Nothing, None, [401; 4]),
        row(M::GET, "/api/audit", Nothing, None, [401, 403, 403, 200]),
        row(
            M::GET,
            "/api/audit/verify",
            Nothing,
            None,
            [401, 403, 403, 200],
        ),
        // A WebSocket needs its upgrade headers; the session is checked first.
        row(M::GET, "/ws", Nothing, None, [401, 400, 400, 400]),
        // The runner protocol takes signatures only: a session means nothing.
        row(
            M::POST,
            "/api/ingest/event",
            Nothing,
            Some(|| json!({"type": "stdout", "data": "x"})),
            [401; 4],
        ),
        row(
            M::POST,
            "/api/ingest/events",
            Nothing,
            Some(|| json!({"events": []})),
            [401; 4],
        ),
        row(M::POST, "/api/ingest/artifact", Nothing, None, [401; 4]),
        row(
            M::POST,
            "/api/runs/{run}/commands/c1/ack",
            Run,
            Some(|| json!({})),
            [401; 4],
        ),
        row(M::GET, "/api/runner/ws", Nothing, None, [401; 4]),
        row(M::GET, "/api/nothing-here", Nothing, None, [404; 4]),
    ]
}

const ROLES: [&str; 4] = ["nobody", "viewer", "operator", "admin"];

/// The runner asks for an approval; its id.
async fn pending_approval(gw: &Gateway, admin: &str, runner: &Runner<'_>, run_id: &str) -> String {
    let request = json!({
        "requestId": "r-1", "kind": "tool", "tool": "Bash",
        "input": {"command": "touch f"}, "summary": "touch f", "timeoutSecs": 600,
    });
    runner
        .event_ok("approval_request", &request.to_string())
        .await;
    let (status, body) = gw
        .get(&format!("/api/approvals?runId={run_id}"), admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body[0]["id"].as_str().expect("approval id").to_owned()
}

#[tokio::test]
async fn every_endpoint_answers_each_role_as_the_table_says() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let mut sessions = [None, None, None, Some(admin.clone())];
    for (i, role) in ["viewer", "operator"].into_iter().enumerate() {
        sessions[i + 1] = Some(gw.user(&admin, &format!("{role}1"), role).await);
    }
    let mut wrong = Vec::new();
    for row in table() {
        for (i, role) in ROLES.iter().enumerate() {
            let mut path = row.path.to_owned();
            match row.needs {
                Needs::Nothing | Needs::OwnSession => {}
                Needs::Run | Needs::RunningRun => {
                    let (run_id, token) = gw.create_run(&admin).await;
                    if row.needs == Needs::RunningRun {
                        gw.runner(&run_id, &token).started().await;
                    }
                    path = path.replace("{run}", &run_id);
                }
                Needs::AgentRun | Needs::Approval => {
                    let created = gw
                        .create_run_with(
                            &admin,
                            &claw_proto::api::CreateRunRequest {
                                agent: Some(claw_proto::agent::AgentKind::Claude),
                                ..Default::default()
                            },
                        )
                        .await;
                    let runner = gw.runner(&created.id, &created.capability_token);
                    runner.started().await;
                    path = path.replace("{run}", &created.id);
                    if row.needs == Needs::Approval {
                        path = path.replace(
                            "{approval}",
                            &pending_approval(&gw, &admin, &runner, &created.id).await,
                        );
                    }
                }
                Needs::Artifact => {
                    let (run_id, token) = gw.create_run(&admin).await;
                    let runner: Runner<'_> = gw.runner(&run_id, &token);
                    let (_, body) = runner.upload("out.log", b"hello").await;
                    let id = body["artifactId"].as_str().expect("artifact id");
                    path = path.replace("{artifact}", id);
                }
                Needs::User => {
                    let name = format!("u{}", &crate::common::nonce()[..12]);
                    let (status, body) = gw
                        .post(
                            "/api/auth/users",
                            &admin,
                            json!({"username": name, "password": "long enough password"}),
                        )
                        .await;
                    assert_eq!(status, StatusCode::CREATED, "{body}");
                    path = path.replace("{user}", body["id"].as_str().expect("user id"));
                }
            }
            let session = match (row.needs, i) {
                (Needs::OwnSession, 1..) => {
                    let name = if i == 3 { "admin" } else { &format!("{role}1") };
                    let password = if i == 3 {
                        crate::common::ADMIN_PASSWORD.to_owned()
                    } else {
                        format!("{role}1-password-long")
                    };
                    Some(gw.login(name, &password, None).await.expect("own session"))
                }
                _ => sessions[i].clone(),
            };
            let (status, body) = gw
                .call(
                    row.method.clone(),
                    &path,
                    session.as_deref(),
                    row.body.map(|b| b()),
                )
                .await;
            if status.as_u16() != row.expect[i] {
                wrong.push(format!(
                    "{} {} as {role}: {} (expected {}): {}",
                    row.method,
                    row.path,
                    status.as_u16(),
                    row.expect[i],
                    body.to_string().chars().take(200).collect::<String>()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
