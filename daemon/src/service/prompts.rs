//! Steering a run's agent: the next instruction, and interrupting a turn.
//! Both travel to the runner as queued commands of their own kind,
//! delivered once and in order, pushed over the runner's WebSocket.

use claw_proto::api::{InterruptReply, QueuedPrompt};
use claw_proto::wire::{CommandKind, Role};

use super::{Caller, Record, ServiceError, ServiceResult};
use crate::app::App;
use crate::store::NewCommand;

impl App {
    /// Checks a prompt's text: not empty, not past `prompt_max_bytes`.
    pub(crate) fn check_prompt(&self, text: &str) -> ServiceResult<()> {
        if text.trim().is_empty() {
            return Err(ServiceError::invalid("the prompt is empty"));
        }
        let most = self.settings().config.prompt_max_bytes;
        if text.len() > most {
            return Err(ServiceError::too_large(format!(
                "the prompt is {} bytes; the limit is {most} (prompt_max_bytes)",
                text.len()
            )));
        }
        Ok(())
    }

    /// Queues the agent's next instruction. Its text is redacted before it
    /// is kept; the audit log records its length, not its text.
    pub async fn send_prompt(
        &self,
        caller: &Caller,
        run_id: String,
        text: &str,
    ) -> ServiceResult<QueuedPrompt> {
        caller.require(Role::Operator)?;
        self.check_prompt(text)?;
        let run = self.store.run(run_id.clone()).await?;
        if run.agent.is_none() {
            return Err(ServiceError::conflict(format!(
                "run {run_id} runs a command, not an agent: send it commands instead"
            )));
        }
        let settings = self.settings();
        let prompt = NewCommand {
            id: uuid::Uuid::new_v4().to_string(),
            run_id: run_id.clone(),
            kind: CommandKind::Prompt,
            command: settings.redactor.redact(text).into_owned(),
            created_by: caller.name().map(str::to_owned),
        };
        // A finished session started on a host goes on where it ended.
        let (prompt_id, details) = match (&run.host_id, &run.agent_session_id) {
            (Some(host), Some(_)) if run.status.is_finished() => (
                self.resume_on_host(&run, host, prompt).await?,
                format!("{} bytes, resuming the session", text.len()),
            ),
            _ => (
                self.store.queue_command(prompt).await?.id,
                format!("{} bytes", text.len()),
            ),
        };
        self.record(
            caller,
            Record {
                action: "prompt.send",
                target: Some(&run_id),
                run_id: Some(&run_id),
                details: Some(details),
            },
        )
        .await?;
        Ok(QueuedPrompt { prompt_id })
    }

    /// Asks the runner to end the agent's current turn.
    pub async fn interrupt(
        &self,
        caller: &Caller,
        run_id: String,
    ) -> ServiceResult<InterruptReply> {
        caller.require(Role::Operator)?;
        let run = self.store.run(run_id.clone()).await?;
        if run.agent.is_none() {
            return Err(ServiceError::conflict(format!(
                "run {run_id} runs a command, not an agent: stop it instead"
            )));
        }
        let row = self
            .store
            .queue_command(NewCommand {
                id: uuid::Uuid::new_v4().to_string(),
                run_id: run_id.clone(),
                kind: CommandKind::Interrupt,
                command: "interrupt".to_owned(),
                created_by: caller.name().map(str::to_owned),
            })
            .await?;
        self.record(
            caller,
            Record {
                action: "run.interrupt",
                target: Some(&run_id),
                run_id: Some(&run_id),
                details: None,
            },
        )
        .await?;
        Ok(InterruptReply {
            ok: true,
            command_id: row.id,
        })
    }
}
