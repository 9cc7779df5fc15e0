//! Approvals: the "Needs you" inbox and a person's decision, which travels
//! to the runner as a queued command of its own kind (pushed, delivered
//! once, acknowledged once written to the agent).

use claw_proto::agent::{ApprovalKind, ApprovalStatus, Decision, DecisionScope};
use claw_proto::api::{ApprovalQuery, ApprovalView, DecisionRequest, DecisionVerb};
use claw_proto::wire::Role;

use super::{Caller, Record, ServiceError, ServiceResult, views};
use crate::app::App;
use crate::store::{ApprovalFilter, NewDecision};

/// Longest message to the agent with a decision.
const MESSAGE_MAX_CHARS: usize = 2000;
/// Most approvals in one list.
const LIST_MAX: u32 = 500;

impl App {
    pub async fn list_approvals(
        &self,
        caller: &Caller,
        query: ApprovalQuery,
    ) -> ServiceResult<Vec<ApprovalView>> {
        caller.require(Role::Viewer)?;
        let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
            None | Some("all") => None,
            Some(text) => Some(ApprovalStatus::parse(text).ok_or_else(|| {
                ServiceError::invalid(format!(
                    "{text:?} is not an approval status: pending, allowed, denied, expired, cancelled or all"
                ))
            })?),
        };
        let rows = self
            .store
            .list_approvals(ApprovalFilter {
                status,
                run_id: query.run_id.filter(|id| !id.is_empty()),
                limit: LIST_MAX,
            })
            .await?;
        Ok(rows.into_iter().map(views::approval).collect())
    }

    pub async fn approval(&self, caller: &Caller, id: String) -> ServiceResult<ApprovalView> {
        caller.require(Role::Viewer)?;
        Ok(views::approval(self.store.approval(id).await?))
    }

    /// The first decision on a pending approval wins; the agent hears it
    /// as soon as its runner is reachable.
    pub async fn decide(
        &self,
        caller: &Caller,
        id: String,
        request: DecisionRequest,
    ) -> ServiceResult<ApprovalView> {
        caller.require(Role::Operator)?;
        let approval = self.store.approval(id.clone()).await?;
        let allow = request.decision == DecisionVerb::Allow;
        let scope = request.scope.unwrap_or_default();
        if scope == DecisionScope::Session && (!allow || approval.kind != ApprovalKind::Tool) {
            return Err(ServiceError::invalid(
                "scope \"session\" is for allowing a tool; questions and plans are decided once",
            ));
        }
        let message = request
            .message
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty());
        if message
            .as_ref()
            .is_some_and(|m| m.chars().count() > MESSAGE_MAX_CHARS)
        {
            return Err(ServiceError::invalid(format!(
                "the message is longer than {MESSAGE_MAX_CHARS} characters"
            )));
        }
        if request.answers.is_some() && approval.kind != ApprovalKind::Question {
            return Err(ServiceError::invalid(
                "answers are for questions; this approval asks for a tool or a plan",
            ));
        }
        if allow
            && approval.kind == ApprovalKind::Question
            && request.answers.as_ref().is_none_or(|a| a.is_empty())
        {
            return Err(ServiceError::invalid(
                "allowing questions needs their answers: {\"answers\": {\"<question>\": \"<answer>\"}}",
            ));
        }
        let by = caller.name().unwrap_or("unknown").to_owned();
        let decision = Decision {
            approval_id: approval.id.clone(),
            request_id: approval.request_id.clone(),
            allow,
            scope,
            message: message.clone(),
            answers: request.answers.clone(),
            by: Some(by.clone()),
        };
        let command = serde_json::to_string(&decision).map_err(|e| {
            tracing::error!(error = %e, "a decision could not be encoded");
            ServiceError::internal()
        })?;
        let decided = self
            .store
            .decide(NewDecision {
                approval_id: approval.id.clone(),
                allow,
                decided_by: by,
                scope,
                message,
                answers: request
                    .answers
                    .map(|a| serde_json::Value::Object(a).to_string()),
                command_id: uuid::Uuid::new_v4().to_string(),
                command,
            })
            .await?;
        let verdict = match (allow, scope) {
            (true, DecisionScope::Session) => "allow for the session",
            (true, DecisionScope::Once) => "allow",
            (false, _) => "deny",
        };
        self.record(
            caller,
            Record {
                action: "approval.decide",
                target: Some(&decided.id),
                run_id: Some(&decided.run_id),
                details: Some(format!(
                    "{verdict}: {} {}",
                    decided.tool,
                    claw_proto::agent::first_line(&decided.summary, 200)
                )),
            },
        )
        .await?;
        Ok(views::approval(decided))
    }
}
