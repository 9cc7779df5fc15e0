//! The audit log for administrators.

use claw_proto::api::{AuditView, ChainReport};
use claw_proto::wire::Role;

use super::runs::time_param;
use super::{Caller, ServiceResult, views};
use crate::app::App;
use crate::store::AuditFilter;

/// Which audit rows to list; empty texts mean "any".
#[derive(Debug, Default)]
pub struct AuditQuery {
    pub user: Option<String>,
    /// The action or any below it (`login` matches `login.failed`).
    pub action: Option<String>,
    pub since: Option<String>,
    pub limit: Option<u32>,
}

impl App {
    /// Newest first; at most 10,000 rows (100 by default).
    pub async fn list_audit(
        &self,
        caller: &Caller,
        query: AuditQuery,
    ) -> ServiceResult<Vec<AuditView>> {
        caller.require(Role::Admin)?;
        let rows = self
            .store
            .list_audit(AuditFilter {
                username: query.user.filter(|s| !s.is_empty()),
                action: query.action.filter(|s| !s.is_empty()),
                since: time_param(query.since.as_deref())?,
                limit: query.limit.unwrap_or(100).clamp(1, 10_000),
            })
            .await?;
        Ok(rows.into_iter().map(views::audit).collect())
    }

    pub async fn verify_audit(&self, caller: &Caller) -> ServiceResult<ChainReport> {
        caller.require(Role::Admin)?;
        let verdict = self.store.verify_audit_chain().await?;
        let (broken_at, reason) = verdict.broken.unzip();
        Ok(ChainReport {
            ok: broken_at.is_none(),
            checked: verdict.checked,
            broken_at,
            reason,
        })
    }
}
