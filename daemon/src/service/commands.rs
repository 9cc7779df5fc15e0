//! Commands a browser queues for a run's runner.

use claw_proto::api::{CommandView, QueuedCommand};
use claw_proto::wire::{CommandKind, Role};
use serde_json::json;

use super::{Caller, Record, ServiceError, ServiceResult, views};
use crate::app::App;
use crate::store::NewCommand;

impl App {
    /// Queues an allowlisted command for a running run.
    pub async fn send_command(
        &self,
        caller: &Caller,
        run_id: String,
        command: &str,
    ) -> ServiceResult<QueuedCommand> {
        caller.require(Role::Operator)?;
        let command = command.trim().to_owned();
        let settings = self.settings();
        if let Err(refusal) = settings.allowlist.check(&command) {
            tracing::warn!(RUN_ID = %run_id, USER = caller.name().unwrap_or("-"), ACTION = "command.rejected", REASON = %refusal, "command not on the allowlist");
            self.store
                .audit(caller.audit_entry("command.rejected", Some(&run_id), Some(command)))
                .await?;
            return Err(ServiceError::forbidden(format!(
                "command is not on the allowlist: {refusal}"
            ))
            .with("allowed", json!(settings.allowlist.entries())));
        }
        let row = self
            .store
            .queue_command(NewCommand {
                id: uuid::Uuid::new_v4().to_string(),
                run_id: run_id.clone(),
                kind: CommandKind::Command,
                command: command.clone(),
                created_by: caller.name().map(str::to_owned),
            })
            .await?;
        self.record(
            caller,
            Record {
                action: "command.send",
                target: Some(&run_id),
                run_id: Some(&run_id),
                details: Some(command),
            },
        )
        .await?;
        Ok(QueuedCommand { command_id: row.id })
    }

    pub async fn list_commands(
        &self,
        caller: &Caller,
        run_id: String,
    ) -> ServiceResult<Vec<CommandView>> {
        caller.require(Role::Viewer)?;
        let rows = self.store.list_commands(run_id).await?;
        Ok(rows.into_iter().map(views::command).collect())
    }
}
