//! Requests the agent puts to a person (a tool to use, questions, a plan):
//! held open and recorded as `approval_request` events (spooled, so they
//! reach the gateway whenever it is there), until a decision arrives as a
//! command, the agent withdraws the request, or the timeout denies it.
//! Whichever comes first answers the agent; the others find nothing open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use claw_proto::agent::{
    ApprovalKind, ApprovalRequest, ApprovalResolved, ApprovalStatus, Decision, DecisionScope,
    edit_preview, summarise,
};
use claw_proto::wire::{EventType, PendingCommand};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::claude::{self, PermissionRequest};
use super::{Stdin, write_line};
use crate::run::Shared;

struct Open {
    request: PermissionRequest,
    kind: ApprovalKind,
    timer: JoinHandle<()>,
}

pub struct Approvals {
    open: Mutex<HashMap<String, Open>>,
    /// What the agent showed of its recent calls: the plan it wrote.
    plans: Mutex<Plans>,
    /// Requests allowed for the rest of the session that came without the
    /// agent's own rules: the same tool with the same input is allowed at
    /// once.
    allowed: Mutex<Vec<(String, Value)>>,
    timeout: Duration,
}

/// Where to find the plan an `ExitPlanMode` request is about: the CLI asks
/// with an empty input and shows the plan the model wrote to its plan file
/// (`~/.claude/plans/…`); a model may also pass it in the call itself.
#[derive(Default)]
struct Plans {
    /// The `plan` given in a call, by call id.
    in_calls: HashMap<String, String>,
    /// The plan file last written or edited.
    file: Option<std::path::PathBuf>,
}

/// Most plans remembered from calls.
const PLANS_KEPT: usize = 16;
/// Most of a plan file shown.
const PLAN_MAX_BYTES: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn resolved(
    request_id: &str,
    status: ApprovalStatus,
    approval_id: Option<String>,
    message: Option<String>,
) -> String {
    serde_json::to_string(&ApprovalResolved {
        request_id: request_id.to_owned(),
        status,
        approval_id,
        message,
    })
    .unwrap_or_default()
}

impl Approvals {
    pub fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new(HashMap::new()),
            plans: Mutex::new(Plans::default()),
            allowed: Mutex::new(Vec::new()),
            timeout,
        })
    }

    /// Notes what a tool call shows of a plan: one passed to `ExitPlanMode`,
    /// or the plan file written.
    pub fn note_call(&self, call: &claw_proto::agent::ToolCall) {
        let mut plans = lock(&self.plans);
        if let Some(plan) = call.input.get("plan").and_then(Value::as_str) {
            if plans.in_calls.len() >= PLANS_KEPT {
                plans.in_calls.clear();
            }
            plans.in_calls.insert(call.call_id.clone(), plan.to_owned());
        }
        if matches!(call.tool.as_str(), "Write" | "Edit" | "MultiEdit")
            && let Some(path) = call.input.get("file_path").and_then(Value::as_str)
            && path.contains("/.claude/plans/")
        {
            plans.file = Some(path.into());
        }
    }

    /// The plan an `ExitPlanMode` request is about, for the person deciding.
    fn plan_of(&self, request: &PermissionRequest) -> Option<String> {
        if let Some(plan) = request.input.get("plan").and_then(Value::as_str) {
            return Some(plan.to_owned());
        }
        let plans = lock(&self.plans);
        if let Some(plan) = request
            .call_id
            .as_ref()
            .and_then(|id| plans.in_calls.get(id))
        {
            return Some(plan.clone());
        }
        let text = std::fs::read_to_string(plans.file.as_ref()?).ok()?;
        let mut end = text.len().min(PLAN_MAX_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Some(text[..end].to_owned())
    }

    /// A request of the agent: allowed at once when a decision for the
    /// session covers it, else held open and recorded for the gateway.
    pub async fn ask(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        stdin: &Stdin,
        request: PermissionRequest,
    ) {
        let covered = lock(&self.allowed)
            .iter()
            .any(|(tool, input)| *tool == request.tool && *input == request.input);
        let summary = summarise(&request.tool, &request.input);
        if covered {
            let written = write_line(
                stdin,
                &claude::allow(&request.request_id, &request.input, &[]),
            )
            .await;
            let note = match written {
                Ok(()) => format!("allowed for this session: {} ({summary})\n", request.tool),
                Err(e) => format!(
                    "could not answer the agent's request for {}: {e}\n",
                    request.tool
                ),
            };
            shared.record(EventType::Info, note).await;
            return;
        }
        let kind = ApprovalKind::of_tool(&request.tool);
        // What is shown; the agent gets its own input back.
        let mut shown = request.input.clone();
        if kind == ApprovalKind::Plan
            && let (Some(plan), Some(fields)) = (self.plan_of(&request), shown.as_object_mut())
        {
            fields.insert("plan".to_owned(), Value::String(plan));
        }
        let event = ApprovalRequest {
            request_id: request.request_id.clone(),
            kind,
            tool: request.tool.clone(),
            input: shown,
            summary,
            diff: edit_preview(&request.tool, &request.input),
            reason: request.description.clone(),
            suggestions: request.suggestions.clone(),
            call_id: request.call_id.clone(),
            timeout_secs: self.timeout.as_secs(),
        };
        // Open before it is recorded: a decision can only follow the record.
        let timer = {
            let (this, shared, stdin) = (Arc::clone(self), Arc::clone(shared), Arc::clone(stdin));
            let request_id = request.request_id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(this.timeout).await;
                this.expire(&shared, &stdin, &request_id).await;
            })
        };
        lock(&self.open).insert(
            request.request_id.clone(),
            Open {
                request,
                kind,
                timer,
            },
        );
        shared
            .record(
                EventType::ApprovalRequest,
                serde_json::to_string(&event).unwrap_or_default(),
            )
            .await;
    }

    /// No decision within the timeout: the agent is told so.
    async fn expire(&self, shared: &Shared, stdin: &Stdin, request_id: &str) {
        let Some(open) = lock(&self.open).remove(request_id) else {
            return;
        };
        let message = format!(
            "No decision arrived within {} s, so claw denied this {}. Do not retry it unless the user asks; continue without it or ask the user.",
            self.timeout.as_secs(),
            match open.kind {
                ApprovalKind::Tool => "tool use",
                ApprovalKind::Question => "question",
                ApprovalKind::Plan => "plan",
            }
        );
        let _ = write_line(stdin, &claude::deny(request_id, &message)).await;
        shared
            .record(
                EventType::ApprovalResolved,
                resolved(request_id, ApprovalStatus::Expired, None, Some(message)),
            )
            .await;
    }

    /// The agent withdrew its request: it wants no answer.
    pub async fn cancelled(&self, shared: &Shared, request_id: &str) {
        let Some(open) = lock(&self.open).remove(request_id) else {
            return;
        };
        open.timer.abort();
        shared
            .record(
                EventType::ApprovalResolved,
                resolved(
                    request_id,
                    ApprovalStatus::Cancelled,
                    None,
                    Some("the agent withdrew its request".to_owned()),
                ),
            )
            .await;
    }

    /// A person's decision: written to the agent if its request is still
    /// open; the answer acknowledges the command.
    pub async fn decide(&self, shared: &Shared, stdin: &Stdin, command: &PendingCommand) -> Value {
        let decision: Decision = match serde_json::from_str(&command.command) {
            Ok(decision) => decision,
            Err(e) => return json!({ "error": format!("an unreadable decision: {e}") }),
        };
        let Some(open) = lock(&self.open).remove(&decision.request_id) else {
            return json!({
                "error": format!(
                    "the agent's request {} is no longer open: it expired or was withdrawn",
                    decision.request_id
                )
            });
        };
        open.timer.abort();
        let request = open.request;
        let line = if decision.allow {
            let mut input = request.input.clone();
            if let (Some(answers), Some(fields)) = (&decision.answers, input.as_object_mut()) {
                fields.insert("answers".to_owned(), Value::Object(answers.clone()));
            }
            let permissions: &[Value] = if decision.scope == DecisionScope::Session {
                if request.suggestions.is_empty() {
                    lock(&self.allowed).push((request.tool.clone(), request.input.clone()));
                }
                &request.suggestions
            } else {
                &[]
            };
            claude::allow(&request.request_id, &input, permissions)
        } else {
            let by = decision.by.as_deref().unwrap_or("a person");
            let message = match &decision.message {
                Some(m) => format!("{by} denied this in claw: {m}"),
                None => format!("{by} denied this in claw."),
            };
            claude::deny(&request.request_id, &message)
        };
        if let Err(e) = write_line(stdin, &line).await {
            return json!({ "error": format!("the agent is gone: {e}") });
        }
        let status = if decision.allow {
            ApprovalStatus::Allowed
        } else {
            ApprovalStatus::Denied
        };
        shared
            .record(
                EventType::ApprovalResolved,
                resolved(
                    &request.request_id,
                    status,
                    Some(decision.approval_id.clone()),
                    decision.message.clone(),
                ),
            )
            .await;
        json!({ "result": format!("{} written to the agent", status.as_str()) })
    }
}
