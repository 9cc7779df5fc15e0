//! The services: each action once — validation, authorisation, the store
//! call, the audit record and the journal line. Live notices come from the
//! store's changes after each commit (`store::Change`, turned into messages
//! by the hub). The web API, the control API and the runner API only
//! extract a request, call one of these and render the answer.
//!
//! Services are `impl App` blocks, one file per aggregate; a new action
//! goes into the file of what it acts on, and every transport that offers
//! it calls the same function.

mod approvals;
mod artifacts;
mod audit;
mod caller;
mod commands;
mod error;
mod hosts;
mod idempotency;
mod identity;
mod jobs;
mod live;
mod notifications;
mod prompts;
mod runner;
mod runs;
mod status;
pub(crate) use crate::views;

pub use audit::AuditQuery;
pub use caller::{Caller, LocalCaller, SessionUser};
pub use error::{ErrorKind, ServiceError, ServiceResult};
pub use idempotency::{IdempotentRequest, Replay};
pub use identity::{NewLogin, UserRef};
pub use live::SessionCheck;
pub use runner::SignedRequest;
pub use runs::RunQuery;

/// What the adapters name of the layers below, through the services.
pub use crate::hub::{Live, RecvError, RunSubscription, encode};
pub use crate::store::{RunnerAuth, SessionSelector, StoredAnswer};

use crate::app::App;

/// What the audit log and the journal say of one action.
pub struct Record<'a> {
    pub action: &'static str,
    /// What it acted on (a run id, a user name).
    pub target: Option<&'a str>,
    /// The run, when the action concerns one (the journal's `RUN_ID=`).
    pub run_id: Option<&'a str>,
    pub details: Option<String>,
}

impl App {
    /// Records an action in the audit log and the journal.
    pub(crate) async fn record(&self, caller: &Caller, record: Record<'_>) -> ServiceResult<()> {
        let user = caller.name().unwrap_or("-");
        let target = record.target.unwrap_or("");
        match record.run_id {
            Some(run_id) => {
                tracing::info!(
                    RUN_ID = run_id,
                    USER = user,
                    ACTION = record.action,
                    target,
                    "{}",
                    record.action
                )
            }
            None => tracing::info!(
                USER = user,
                ACTION = record.action,
                target,
                "{}",
                record.action
            ),
        }
        let entry = caller.audit_entry(record.action, record.target, record.details);
        self.store.audit(entry).await?;
        Ok(())
    }
}
