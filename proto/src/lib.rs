//! Types and pure functions shared by `clawd`, `clawctl` and `claw-runner`:
//! the runner wire protocol, the human and control APIs, request signing,
//! secret redaction and the command allowlist. No I/O lives here.

pub mod agent;
pub mod allowlist;
pub mod api;
pub mod audit_chain;
pub mod control;
pub mod hosts;
pub mod notify;
pub mod redact;
pub mod signing;
pub mod wire;

pub use allowlist::Allowlist;
pub use redact::Redactor;
