//! The test kit of the workspace: starts the real `clawd` on a temporary
//! data directory and a free port, and talks to it as an administrator, a
//! browser (HTTPS and WebSocket), a runner (signed requests, PROTOCOL.md)
//! and `clawctl` (the control socket).
//!
//! Callers name the `clawd` binary ([`Launch::new`]): clawd's own tests
//! with `env!("CARGO_BIN_EXE_clawd")`, others with [`find_binary`], which
//! looks in the running executable's build folder and builds nothing, or
//! with [`binary_or_build`], which builds the package with the caller's
//! cargo only when the binary is missing there.
//!
//! Test helpers panic with a message that says what failed; the `try_`
//! functions return errors instead, for claw-bench, which is a program.

mod binary;
mod control;
pub mod garage;
mod gateway;
pub mod haproxy;
mod https;
pub mod model;
pub mod postgres;
mod process;
mod push;
mod receiver;
mod runner;
mod ws;

pub use binary::{binary_or_build, find_binary, try_find_binary};
pub use control::{control_get, raw_control_get, try_unix_request, unix_get, unix_request};
pub use garage::TempGarage;
pub use gateway::{
    ADMIN, ADMIN_PASSWORD, Gateway, Launch, TEST_CONFIG, db_path, on_sqlite, store_is_postgres,
};
pub use haproxy::Haproxy;
pub use https::{
    Login, client_trusting, connect_tls, free_port, session_from_cookie, tls_config, try_call,
    try_client_builder_trusting, try_create_run, try_first_admin, try_login, try_setup,
    write_certificate,
};
pub use postgres::{ClusterBuilder, TempCluster};
pub use process::{proc_status_kib, process_cpu_secs};
pub use push::{Push, PushReceiver};
pub use receiver::{Received, Receiver};
pub use runner::{Runner, RunnerClient, Signed, nonce, now_secs};
pub use ws::{Ws, try_websocket_to, websocket_to};

/// The contract's types, for typed results.
pub use claw_proto::{api, control as control_api, wire};
pub use reqwest::{Method, StatusCode};
