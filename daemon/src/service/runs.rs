//! Runs: create, list, show, stop, delete, and their stored events.

use claw_proto::agent::PermissionMode;
use claw_proto::allowlist::MAX_COMMAND_LEN;
use claw_proto::api::{CreateRunRequest, CreatedRun, EventView, RunDetail, RunView, StopReply};
use claw_proto::wire::{CommandKind, Role, RunStatus};

use super::{Caller, Record, ServiceError, ServiceResult, views};
use crate::app::App;
use crate::clock::parse_time;
use crate::fsutil;
use crate::store::{AgentSpec, NewCommand, NewRun, RunFilter, RunRow};

/// The range of a run's own `approvalTimeoutSecs`.
const MIN_APPROVAL_TIMEOUT_SECS: u64 = 1;
const MAX_APPROVAL_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// Which runs to list; empty texts mean "any".
#[derive(Debug, Default)]
pub struct RunQuery {
    pub status: Option<String>,
    /// Created before this time (paging backwards).
    pub before: Option<String>,
    /// With `before`, the id of the last run seen: runs created in the same
    /// millisecond are not skipped.
    pub before_id: Option<String>,
    /// Created at or after this time.
    pub since: Option<String>,
    pub limit: Option<u32>,
}

/// A time given as a query parameter: RFC 3339 or Unix ms.
pub fn time_param(text: Option<&str>) -> ServiceResult<Option<i64>> {
    match text.filter(|s| !s.is_empty()) {
        Some(text) => parse_time(text)
            .map(Some)
            .ok_or_else(|| ServiceError::invalid(format!("{text:?} is not an RFC 3339 time"))),
        None => Ok(None),
    }
}

impl App {
    /// Creates a run; its capability token is in the answer only.
    pub async fn create_run(
        &self,
        caller: &Caller,
        request: CreateRunRequest,
    ) -> ServiceResult<CreatedRun> {
        caller.require(Role::Operator)?;
        if request
            .command
            .as_ref()
            .is_some_and(|c| c.len() > MAX_COMMAND_LEN)
        {
            return Err(ServiceError::invalid(format!(
                "command is longer than {MAX_COMMAND_LEN} bytes"
            )));
        }
        let agent = self.agent_spec(caller, &request)?;
        let placement = match &request.host_id {
            Some(host) => Some(
                self.host_for_run(host, request.workspace.as_deref(), agent.agent)
                    .await?,
            ),
            None if request.workspace.is_some() => {
                return Err(ServiceError::invalid(
                    "a workspace is on a host: pass \"hostId\" too",
                ));
            }
            None => None,
        };
        let token = fsutil::random_hex(32).map_err(|e| {
            tracing::error!(error = %e, "no randomness for a capability token");
            ServiceError::internal()
        })?;
        let id = uuid::Uuid::new_v4().to_string();
        let first_prompt = match &request.prompt {
            Some(text) => {
                self.check_prompt(text)?;
                Some(NewCommand {
                    id: uuid::Uuid::new_v4().to_string(),
                    run_id: id.clone(),
                    kind: CommandKind::Prompt,
                    command: self.settings().redactor.redact(text).into_owned(),
                    created_by: caller.name().map(str::to_owned),
                })
            }
            None => None,
        };
        let run = self
            .store
            .create_run(NewRun {
                id,
                capability_token: token.clone(),
                command: request.command,
                metadata: request.metadata.map(|m| m.to_string()),
                created_by: caller.name().map(str::to_owned),
                agent,
                first_prompt,
                host_id: placement.as_ref().map(|(host, _)| host.id.clone()),
                workspace: placement.as_ref().map(|(_, w)| w.clone()),
            })
            .await?;
        if let Some((host, workspace)) = &placement {
            let session = claw_proto::hosts::StartSession {
                run_id: run.id.clone(),
                token: token.clone(),
                workspace: workspace.clone(),
                agent: run.agent.map_or("claude", |a| a.as_str()).to_owned(),
            };
            if let Err(refused) = self.start_on_host(host, session).await {
                // Nothing started: nothing kept.
                if let Err(e) = self.store.delete_run(run.id.clone()).await {
                    tracing::warn!(RUN_ID = %run.id, error = %e, "could not remove a run its host refused");
                }
                return Err(refused);
            }
        }
        self.record(
            caller,
            Record {
                action: "run.create",
                target: Some(&run.id),
                run_id: Some(&run.id),
                details: match &placement {
                    Some((host, workspace)) => Some(format!(
                        "{} on host {} in {workspace}",
                        run.agent.map_or("agent", |a| a.as_str()),
                        host.name
                    )),
                    None => run.command.clone(),
                },
            },
        )
        .await?;
        let runner_command = runner_command(&run, &token);
        Ok(CreatedRun {
            id: run.id,
            capability_token: token,
            status: run.status,
            runner_command,
        })
    }

    /// The agent a new run asks for, checked: a run drives a raw command or
    /// an agent, and only an agent takes a prompt, a model, a permission
    /// mode and allowed tools.
    fn agent_spec(&self, caller: &Caller, request: &CreateRunRequest) -> ServiceResult<AgentSpec> {
        let Some(agent) = request.agent else {
            if request.prompt.is_some()
                || request.model.is_some()
                || request.permission_mode.is_some()
                || !request.allowed_tools.is_empty()
                || request.approval_timeout_secs.is_some()
            {
                return Err(ServiceError::invalid(
                    "prompt, model, permissionMode, allowedTools and approvalTimeoutSecs need an agent (\"agent\": \"claude\")",
                ));
            }
            return Ok(AgentSpec::default());
        };
        if request.command.is_some() {
            return Err(ServiceError::invalid(
                "give a command or an agent, not both",
            ));
        }
        if let Some(model) = &request.model
            && (model.is_empty()
                || model.len() > 100
                || !model
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-[]".contains(&b)))
        {
            return Err(ServiceError::invalid(format!(
                "{model:?} is not a model name"
            )));
        }
        if request.allowed_tools.len() > 50
            || request
                .allowed_tools
                .iter()
                .any(|t| t.is_empty() || t.len() > 200 || t.chars().any(char::is_control))
        {
            return Err(ServiceError::invalid(
                "allowedTools takes at most 50 tool rules of up to 200 characters each",
            ));
        }
        let mode = request.permission_mode.unwrap_or_default();
        if mode == PermissionMode::BypassPermissions {
            if !self.settings().config.allow_bypass_permissions {
                return Err(ServiceError::forbidden(
                    "bypassPermissions is off on this gateway (allow_bypass_permissions in clawd.toml)",
                ));
            }
            caller.require(Role::Admin)?;
        }
        if let Some(secs) = request.approval_timeout_secs
            && !(MIN_APPROVAL_TIMEOUT_SECS..=MAX_APPROVAL_TIMEOUT_SECS).contains(&secs)
        {
            return Err(ServiceError::invalid(format!(
                "approvalTimeoutSecs is {MIN_APPROVAL_TIMEOUT_SECS} to {MAX_APPROVAL_TIMEOUT_SECS} (a week)"
            )));
        }
        Ok(AgentSpec {
            agent: Some(agent),
            model: request.model.clone(),
            permission_mode: Some(mode),
            allowed_tools: request.allowed_tools.clone(),
            approval_timeout_secs: request.approval_timeout_secs,
        })
    }

    pub async fn list_runs(&self, caller: &Caller, query: RunQuery) -> ServiceResult<Vec<RunView>> {
        caller.require(Role::Viewer)?;
        let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
                ServiceError::invalid("status must be pending, running, done, failed or stopped")
            })?),
            None => None,
        };
        // Browsers page by 50; administrators may ask for a long list.
        let most = if matches!(caller, Caller::Local(_)) {
            10_000
        } else {
            500
        };
        let default = if matches!(caller, Caller::Local(_)) {
            100
        } else {
            50
        };
        let rows = self
            .store
            .list_runs(RunFilter {
                status,
                before: time_param(query.before.as_deref())?,
                before_id: query.before_id.filter(|id| !id.is_empty()),
                since: time_param(query.since.as_deref())?,
                limit: query.limit.unwrap_or(default).clamp(1, most),
            })
            .await?;
        Ok(rows.into_iter().map(views::run).collect())
    }

    /// A run with its artifacts, and with its commands for `with_commands`.
    pub async fn run_detail(
        &self,
        caller: &Caller,
        run_id: String,
        with_commands: bool,
    ) -> ServiceResult<RunDetail> {
        caller.require(Role::Viewer)?;
        let run = self.store.run(run_id.clone()).await?;
        let artifacts = self.store.list_artifacts(run_id.clone()).await?;
        let commands = match with_commands {
            true => Some(self.store.list_commands(run_id).await?),
            false => None,
        };
        Ok(RunDetail {
            run: views::run(run),
            artifacts: artifacts.into_iter().map(views::artifact).collect(),
            commands: commands.map(|c| c.into_iter().map(views::command).collect()),
        })
    }

    /// Stored events after a sequence: at most 1000 a page.
    pub async fn run_events(
        &self,
        caller: &Caller,
        run_id: String,
        after: u64,
        limit: Option<u32>,
    ) -> ServiceResult<Vec<EventView>> {
        caller.require(Role::Viewer)?;
        let limit = limit.unwrap_or(1000);
        if !(1..=1000).contains(&limit) {
            return Err(ServiceError::invalid("limit must be between 1 and 1000"));
        }
        let rows = self.store.events_after(run_id, after, limit).await?;
        Ok(rows.into_iter().map(views::event).collect())
    }

    /// Queues the stop for the runner; a run that never started stops at once.
    pub async fn stop_run(&self, caller: &Caller, run_id: String) -> ServiceResult<StopReply> {
        caller.require(Role::Operator)?;
        let row = self
            .store
            .request_stop(
                run_id.clone(),
                uuid::Uuid::new_v4().to_string(),
                caller.name().map(str::to_owned),
            )
            .await?;
        self.record(
            caller,
            Record {
                action: "run.stop",
                target: Some(&run_id),
                run_id: Some(&run_id),
                details: None,
            },
        )
        .await?;
        Ok(StopReply {
            ok: true,
            command_id: row.id,
        })
    }

    /// Deletes a run with its events, commands and artifacts.
    pub async fn delete_run(&self, caller: &Caller, run_id: String) -> ServiceResult<()> {
        caller.require(Role::Operator)?;
        self.store.delete_run(run_id.clone()).await?;
        // Everything of the run goes, rows or not.
        self.blobs.remove_run(&run_id).await;
        self.record(
            caller,
            Record {
                action: "run.delete",
                target: Some(&run_id),
                run_id: Some(&run_id),
                details: None,
            },
        )
        .await
    }
}

/// A word as a POSIX shell reads it back: quoted when it has to be.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The line that starts a run's runner. The gateway's address and the HMAC
/// secret come from the runner's own configuration, never from here.
fn runner_command(run: &RunRow, token: &str) -> String {
    let mut line = format!("claw-runner start --run-id {} --token {token}", run.id);
    if let Some(agent) = run.agent {
        line.push_str(" --agent ");
        line.push_str(agent.as_str());
    } else if let Some(command) = &run.command {
        line.push_str(" --");
        for word in command.split_whitespace() {
            line.push(' ');
            line.push_str(&shell_word(word));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_they_must_be() {
        assert_eq!(shell_word("claude"), "claude");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("a;b"), "'a;b'");
        assert_eq!(shell_word(""), "''");
    }
}
