//! Setup, login with and without TOTP, sessions, roles, rate limits.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{ADMIN, ADMIN_PASSWORD, Gateway};

fn totp_code(uri: &str, offset_steps: i64) -> String {
    let totp = totp_rs::TOTP::from_url_unchecked(uri).expect("otpauth uri");
    let now = crate::common::now_secs() + offset_steps * 30;
    totp.generate(now as u64)
}

#[tokio::test]
async fn setup_is_guarded_by_the_token_and_happens_once() {
    let gw = Gateway::start().await;
    let (_, status) = gw.call(Method::GET, "/api/auth/status", None, None).await;
    assert_eq!(status["setupRequired"], true);
    let token_file = gw.data().join("setup-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).expect("token").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let setup = |token: String, username: &str, password: &str| json!({ "setupToken": token, "username": username, "password": password });
    let (status, body) = gw
        .call(
            Method::POST,
            "/api/auth/setup",
            None,
            Some(setup("wrong".into(), ADMIN, ADMIN_PASSWORD)),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = gw
        .call(
            Method::POST,
            "/api/auth/setup",
            None,
            Some(setup(gw.setup_token(), "a b", ADMIN_PASSWORD)),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = gw
        .call(
            Method::POST,
            "/api/auth/setup",
            None,
            Some(setup(gw.setup_token(), ADMIN, "short")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().expect("error").contains("12"));

    let token = gw.setup_token();
    let (status, body) = gw
        .call(
            Method::POST,
            "/api/auth/setup",
            None,
            Some(setup(token.clone(), ADMIN, ADMIN_PASSWORD)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["userId"].is_string());
    assert!(!token_file.exists(), "setup token removed after use");

    let (status, body) = gw
        .call(
            Method::POST,
            "/api/auth/setup",
            None,
            Some(setup(token, "second", ADMIN_PASSWORD)),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, status) = gw.call(Method::GET, "/api/auth/status", None, None).await;
    assert_eq!(status["setupRequired"], false);
}

#[tokio::test]
async fn login_logout_me_refresh() {
    let gw = Gateway::start().await;
    let session = gw.admin().await;
    let (status, me) = gw.get("/api/auth/me", &session).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["username"], ADMIN);
    assert_eq!(me["user"]["role"], "admin");
    assert!(me["user"].get("passwordHash").is_none() && me["user"].get("password_hash").is_none());

    let err = gw
        .login(ADMIN, "wrong password here", None)
        .await
        .expect_err("wrong password");
    assert_eq!(err.0, StatusCode::UNAUTHORIZED);
    let err = gw
        .login("nobody", ADMIN_PASSWORD, None)
        .await
        .expect_err("unknown user");
    assert_eq!(err.0, StatusCode::UNAUTHORIZED);

    // The cookie works as well as the bearer header.
    let resp = gw
        .client
        .get(gw.url("/api/auth/me"))
        .header("Cookie", format!("theme=dark; session={session}"))
        .send()
        .await
        .expect("me");
    assert_eq!(resp.status(), StatusCode::OK);

    let (status, refreshed) = gw
        .call(Method::POST, "/api/auth/refresh", Some(&session), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (status, _) = gw.get("/api/auth/me", &session).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "refresh ends the old session"
    );

    let session = gw.login(ADMIN, ADMIN_PASSWORD, None).await.expect("login");
    let (status, _) = gw
        .call(Method::POST, "/api/auth/logout", Some(&session), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = gw.get("/api/auth/me", &session).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].is_string());

    let (status, audit) = gw
        .get(
            "/api/audit?action=login",
            &gw.login(ADMIN, ADMIN_PASSWORD, None).await.expect("login"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let failed = audit
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["action"] == "login.failed")
        .count();
    assert_eq!(failed, 2, "{audit}");
    assert!(
        audit
            .as_array()
            .expect("rows")
            .iter()
            .any(|r| r["action"] == "login.failed"
                && r["username"] == "nobody"
                && r["ip"] == "127.0.0.1")
    );
}

#[tokio::test]
async fn totp_enrolment_and_login() {
    let gw = Gateway::start().await;
    let session = gw.admin().await;
    let (status, enrol) = gw
        .call(Method::POST, "/api/auth/totp/enroll", Some(&session), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{enrol}");
    let uri = enrol["uri"].as_str().expect("uri").to_owned();
    assert!(uri.starts_with("otpauth://totp/"));

    // Not active before confirmation.
    gw.login(ADMIN, ADMIN_PASSWORD, None)
        .await
        .expect("no code needed yet");
    let (status, _) = gw
        .post(
            "/api/auth/totp/confirm",
            &session,
            json!({ "code": "000000" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = gw
        .post(
            "/api/auth/totp/confirm",
            &session,
            json!({ "code": totp_code(&uri, 0) }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = gw
        .login(ADMIN, ADMIN_PASSWORD, None)
        .await
        .expect_err("code needed");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["totpRequired"], true);
    let (status, body) = gw
        .login(ADMIN, ADMIN_PASSWORD, Some("123456"))
        .await
        .expect_err("wrong code");
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // The confirmation used this step's code: the next step's works once.
    let next = totp_code(&uri, 1);
    let elsewhere = session;
    let session = gw
        .login(ADMIN, ADMIN_PASSWORD, Some(&next))
        .await
        .expect("login with code");
    let (status, _) = gw.get("/api/auth/me", &session).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = gw
        .login(ADMIN, ADMIN_PASSWORD, Some(&next))
        .await
        .expect_err("code reuse");
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Removal needs the password.
    let (status, _) = gw
        .call(
            Method::DELETE,
            "/api/auth/totp",
            Some(&session),
            Some(json!({ "password": "wrong one" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = gw
        .call(
            Method::DELETE,
            "/api/auth/totp",
            Some(&session),
            Some(json!({ "password": ADMIN_PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The session that removed it stays; the user's others end.
    let (status, _) = gw.get("/api/auth/me", &session).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = gw.get("/api/auth/me", &elsewhere).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    gw.login(ADMIN, ADMIN_PASSWORD, None)
        .await
        .expect("TOTP removed");
}

#[tokio::test]
async fn setup_with_totp_requires_codes_from_the_start() {
    let gw = Gateway::start().await;
    let (status, body) = gw
        .call(
            Method::POST,
            "/api/auth/setup",
            None,
            Some(json!({ "setupToken": gw.setup_token(), "username": ADMIN, "password": ADMIN_PASSWORD, "enableTotp": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let uri = body["totpUri"].as_str().expect("totpUri");
    assert!(gw.login(ADMIN, ADMIN_PASSWORD, None).await.is_err());
    gw.login(ADMIN, ADMIN_PASSWORD, Some(&totp_code(uri, 0)))
        .await
        .expect("login");
}

/// The id of a user, by name, as an administrator sees it.
async fn user_id(gw: &Gateway, admin: &str, name: &str) -> String {
    let (_, users) = gw.get("/api/auth/users", admin).await;
    users
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["username"] == name)
        .unwrap_or_else(|| panic!("{name} in {users}"))["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[tokio::test]
async fn users_are_listed_without_secrets() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    gw.user(&admin, "viewer1", "viewer").await;
    let (status, users) = gw.get("/api/auth/users", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let text = users.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );
}

#[tokio::test]
async fn a_new_role_takes_effect_in_the_users_session() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let viewer = gw.user(&admin, "viewer1", "viewer").await;
    let (status, _) = gw.post("/api/runs", &viewer, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let id = user_id(&gw, &admin, "viewer1").await;
    let (status, body) = gw
        .call(
            Method::PATCH,
            &format!("/api/auth/users/{id}"),
            Some(&admin),
            Some(json!({"role": "operator"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "operator");
    let (status, _) = gw.post("/api/runs", &viewer, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_password_reset_ends_the_users_sessions() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let viewer = gw.user(&admin, "viewer1", "viewer").await;
    let id = user_id(&gw, &admin, "viewer1").await;
    let (status, _) = gw
        .call(
            Method::PATCH,
            &format!("/api/auth/users/{id}"),
            Some(&admin),
            Some(json!({"password": "a brand new password"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = gw.get("/api/auth/me", &viewer).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    gw.login("viewer1", "a brand new password", None)
        .await
        .expect("new password");

    // An administrator's own new password keeps the session it was set
    // from and ends their others.
    let elsewhere = gw
        .login(ADMIN, ADMIN_PASSWORD, None)
        .await
        .expect("a second session");
    let me = user_id(&gw, &admin, ADMIN).await;
    let (status, _) = gw
        .call(
            Method::PATCH,
            &format!("/api/auth/users/{me}"),
            Some(&admin),
            Some(json!({"password": "another brand new password"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = gw.get("/api/auth/me", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = gw.get("/api/auth/me", &elsewhere).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn taken_names_unknown_roles_and_the_last_admin_are_refused() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    gw.user(&admin, "viewer1", "viewer").await;
    let (status, _) = gw
        .post(
            "/api/auth/users",
            &admin,
            json!({"username": "viewer1", "password": "long enough password", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = gw
        .post(
            "/api/auth/users",
            &admin,
            json!({"username": "x1234", "password": "long enough password", "role": "root"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, me) = gw.get("/api/auth/me", &admin).await;
    let admin_id = me["user"]["id"].as_str().expect("id").to_owned();
    let (status, _) = gw
        .call(
            Method::DELETE,
            &format!("/api/auth/users/{admin_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = gw
        .call(Method::DELETE, "/api/auth/users/nope", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A refusal for want of a role names the role needed.
#[tokio::test]
async fn a_refusal_names_the_role_needed() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let viewer = gw.user(&admin, "viewer1", "viewer").await;
    let (status, body) = gw.post("/api/runs", &viewer, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().expect("error").contains("operator"));
}

#[tokio::test]
async fn login_failures_and_requests_are_rate_limited() {
    let gw = Gateway::start_with("rate_limit_per_minute = 0\nlogin_max_failures = 3\n").await;
    gw.admin().await;
    for _ in 0..3 {
        let (status, _) = gw
            .login(ADMIN, "not the password!", None)
            .await
            .expect_err("wrong");
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = gw
        .login(ADMIN, ADMIN_PASSWORD, None)
        .await
        .expect_err("locked");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    let gw = Gateway::start_with("rate_limit_per_minute = 5\n").await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(gw.call(Method::GET, "/api/auth/status", None, None).await.0);
    }
    assert_eq!(statuses[..5], [StatusCode::OK; 5]);
    assert_eq!(statuses[5..], [StatusCode::TOO_MANY_REQUESTS; 2]);
}
