//! Starting `clawd` and talking to it like a runner, a browser and an admin:
//! the workspace's test kit (`claw-testkit`) with this build's clawd.

#![allow(dead_code, unused_imports)]

use std::ops::{Deref, DerefMut};

pub use claw_testkit::{
    ADMIN, ADMIN_PASSWORD, Launch, Login, Runner, RunnerClient, Signed, TEST_CONFIG, Ws, api,
    client_trusting, connect_tls, control_api, control_get, db_path, free_port, nonce, now_secs,
    raw_control_get, tls_config, try_call, try_create_run, try_first_admin, try_login, try_setup,
    try_unix_request, unix_get, unix_request, websocket_to, wire, write_certificate,
};

/// The clawd that cargo built for these tests.
pub const CLAWD: &str = env!("CARGO_BIN_EXE_clawd");

/// A running `clawd` of this build with its data directory: everything of
/// [`claw_testkit::Gateway`].
pub struct Gateway(claw_testkit::Gateway);

impl Gateway {
    /// How to start this build's clawd, for what the constructors below
    /// do not say.
    pub fn launch() -> Launch {
        Launch::new(CLAWD)
    }

    pub async fn start() -> Self {
        Self::start_with(TEST_CONFIG).await
    }

    pub async fn start_with(config: &str) -> Self {
        Self(Self::launch().config(config).start())
    }

    pub async fn start_in(dir: tempfile::TempDir, config: &str) -> Self {
        Self::start_in_with_env(dir, config, &[]).await
    }

    /// Starts clawd with extra environment variables.
    pub async fn start_in_with_env(
        dir: tempfile::TempDir,
        config: &str,
        env: &[(&str, &str)],
    ) -> Self {
        Self(Self::launch().dir(dir).config(config).envs(env).start())
    }

    /// A run of `session`'s user whose runner started and finished with
    /// `exit_code`.
    pub async fn finished_run(&self, session: &str, exit_code: i64) -> String {
        let (run_id, token) = self.create_run(session).await;
        let runner = self.runner(&run_id, &token);
        runner.started().await;
        runner.finished(exit_code).await;
        run_id
    }

    /// A running agent run of `session`'s user, its first prompt `prompt`;
    /// (id, token).
    pub async fn agent_run(&self, session: &str, prompt: &str) -> (String, String) {
        let (status, created) = self
            .post(
                "/api/runs",
                session,
                serde_json::json!({"agent": "claude", "prompt": prompt}),
            )
            .await;
        assert_eq!(status.as_u16(), 201, "{created}");
        let id = created["id"].as_str().expect("id").to_owned();
        let token = created["capabilityToken"]
            .as_str()
            .expect("token")
            .to_owned();
        self.runner(&id, &token).started().await;
        (id, token)
    }
}

impl Deref for Gateway {
    type Target = claw_testkit::Gateway;

    fn deref(&self) -> &claw_testkit::Gateway {
        &self.0
    }
}

impl DerefMut for Gateway {
    fn deref_mut(&mut self) -> &mut claw_testkit::Gateway {
        &mut self.0
    }
}
