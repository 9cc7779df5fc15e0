//! `clawctl runs`: list, show, tail, create, stop, delete.

use std::io::Write;

use claw_proto::agent::{AgentKind, PermissionMode};
use claw_proto::api::{
    CreateRunRequest, CreatedRun, Done, InterruptReply, PromptRequest, QueuedPrompt, RunDetail,
    RunView, StopReply,
};
use claw_proto::control::{EventsQuery, RunsQuery};
use claw_proto::wire::{EventType, ServerMessage};

use super::{conversation, done, show};
use crate::cli::RunsCommand;
use crate::client::{Client, ClientError, encode, with_query};
use crate::error::CtlError;
use crate::output::{Text, bytes, opt, table};

pub async fn run(client: &Client, cmd: RunsCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        RunsCommand::List {
            state,
            since,
            limit,
        } => {
            let query = RunsQuery {
                status: state.map(|s| s.as_str().to_owned()),
                since,
                limit: Some(limit),
            };
            let runs: Vec<RunView> = client.get(&with_query("/v1/runs", &query)?).await?;
            show(json, &runs, |runs| render_list(runs))
        }
        RunsCommand::Show { id } => {
            let run: RunDetail = client
                .get(&run_path(&id, ""))
                .await
                .map_err(unknown_run(&id))?;
            show(json, &run, render_detail)
        }
        RunsCommand::Tail { id, follow, after } => {
            let query = EventsQuery {
                after: Some(after),
                follow: Some(follow),
            };
            let path = with_query(&run_path(&id, "/events"), &query)?;
            let mut stdout = std::io::stdout().lock();
            let mut stderr = std::io::stderr().lock();
            client
                .get_lines(&path, |message: ServerMessage| {
                    // A closed pipe ends clawctl by SIGPIPE; other write
                    // errors leave nothing better to do than go on.
                    let _ = tail_line(&message, json, &mut stdout, &mut stderr);
                })
                .await
                .map_err(unknown_run(&id))
        }
        RunsCommand::Follow { id, after } => {
            let query = EventsQuery {
                after: Some(after),
                follow: Some(true),
            };
            let path = with_query(&run_path(&id, "/events"), &query)?;
            let mut stdout = std::io::stdout().lock();
            client
                .get_lines(&path, |message: ServerMessage| {
                    let shown = if json {
                        tail_line(&message, true, &mut stdout, &mut std::io::sink())
                    } else {
                        conversation::line(&message)
                            .map_or(Ok(()), |text| writeln!(stdout, "{text}"))
                            .and_then(|()| stdout.flush())
                    };
                    // A closed pipe ends clawctl by SIGPIPE.
                    let _ = shown;
                })
                .await
                .map_err(unknown_run(&id))
        }
        RunsCommand::Create {
            command,
            agent,
            prompt,
            model,
            permission_mode,
            allowed_tools,
        } => {
            let prompt = match prompt.as_deref() {
                Some("-") => Some(read_stdin()?),
                other => other.map(str::to_owned),
            };
            let request = CreateRunRequest {
                command,
                agent: agent.as_deref().and_then(AgentKind::parse),
                prompt,
                model,
                permission_mode: permission_mode.as_deref().and_then(PermissionMode::parse),
                allowed_tools,
                ..Default::default()
            };
            let created: CreatedRun = client.post("/v1/runs", &request).await?;
            show(json, &created, render_created)
        }
        RunsCommand::Start {
            host,
            workspace,
            agent,
            model,
            permission_mode,
            allowed_tools,
            prompt,
        } => {
            let prompt = match prompt.as_deref() {
                None | Some("-") => read_stdin()?,
                Some(text) => text.to_owned(),
            };
            let request = CreateRunRequest {
                agent: AgentKind::parse(&agent),
                prompt: Some(prompt),
                model,
                permission_mode: permission_mode.as_deref().and_then(PermissionMode::parse),
                allowed_tools,
                host_id: Some(host.clone()),
                workspace: Some(workspace.clone()),
                ..Default::default()
            };
            let created: CreatedRun = client.post("/v1/runs", &request).await?;
            show(json, &created, |created| {
                format!(
                    "run {} started on host {host} in {workspace}\nfollow it: clawctl runs follow {}\n",
                    created.id, created.id
                )
            })
        }
        RunsCommand::Prompt { id, text } => {
            let text = match text.as_deref() {
                None | Some("-") => read_stdin()?,
                Some(text) => text.to_owned(),
            };
            let queued: QueuedPrompt = client
                .post(&run_path(&id, "/prompts"), &PromptRequest { text })
                .await
                .map_err(unknown_run(&id))?;
            show(json, &queued, |queued| {
                format!("prompt {} queued for run {id}\n", queued.prompt_id)
            })
        }
        RunsCommand::Interrupt { id } => {
            let accepted: InterruptReply = client
                .post_empty(&run_path(&id, "/interrupt"))
                .await
                .map_err(unknown_run(&id))?;
            done(json, &accepted, &format!("interrupt sent to run {id}"))
        }
        RunsCommand::Stop { id } => {
            let stopped: StopReply = client
                .post_empty(&run_path(&id, "/stop"))
                .await
                .map_err(unknown_run(&id))?;
            done(json, &stopped, &format!("stop requested for run {id}"))
        }
        RunsCommand::Delete { id } => {
            let deleted: Done = client
                .delete(&run_path(&id, ""))
                .await
                .map_err(unknown_run(&id))?;
            done(json, &deleted, &format!("run {id} deleted"))
        }
    }
}

fn run_path(id: &str, rest: &str) -> String {
    format!("/v1/runs/{}{rest}", encode(id))
}

/// An unknown run gets a hint on how to find the right one.
fn unknown_run(id: &str) -> impl Fn(ClientError) -> CtlError + '_ {
    move |e| {
        if e.is_not_found() {
            CtlError::Failed(format!("unknown run {id} (see clawctl runs list)"))
        } else {
            CtlError::Client(e)
        }
    }
}

fn render_list(runs: &[RunView]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.status.as_str().to_owned(),
                r.created_at.clone(),
                opt(r.exit_code),
                r.event_count.to_string(),
                opt(r.command.as_deref()),
            ]
        })
        .collect();
    table(
        &["ID", "STATE", "CREATED", "EXIT", "EVENTS", "COMMAND"],
        &rows,
    )
}

fn render_detail(detail: &RunDetail) -> String {
    let run = &detail.run;
    let mut out = Text::new();
    for (label, value) in [
        ("Run", run.id.clone()),
        ("State", run.status.as_str().to_owned()),
        ("Command", opt(run.command.as_deref())),
        ("Created", run.created_at.clone()),
        ("Created by", opt(run.created_by.as_deref())),
        ("Started", opt(run.started_at.as_deref())),
        ("Finished", opt(run.finished_at.as_deref())),
        ("Exit code", opt(run.exit_code)),
        ("Events", run.event_count.to_string()),
    ] {
        out.line(format_args!("{:<12}{value}", format!("{label}:")));
    }
    let commands: Vec<Vec<String>> = detail
        .commands
        .iter()
        .flatten()
        .map(|c| {
            vec![
                c.id.clone(),
                c.status.as_str().to_owned(),
                c.command.clone(),
            ]
        })
        .collect();
    out.line("\nCommands:");
    out.push(&table(&["ID", "STATUS", "COMMAND"], &commands));
    let artifacts: Vec<Vec<String>> = detail
        .artifacts
        .iter()
        .map(|a| vec![a.id.clone(), bytes(a.size), a.filename.clone()])
        .collect();
    out.line("\nArtifacts:");
    out.push(&table(&["ID", "SIZE", "NAME"], &artifacts));
    out.into_string()
}

fn render_created(created: &CreatedRun) -> String {
    let mut out = Text::new();
    out.line(format_args!("Run:              {}", created.id));
    out.line(format_args!(
        "Capability token: {}",
        created.capability_token
    ));
    out.line("The token is shown only now. On the coding host:");
    out.line(format_args!("  {}", created.runner_command));
    out.into_string()
}

/// All of standard input, for a prompt given as `-`.
fn read_stdin() -> Result<String, CtlError> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|e| CtlError::Input(format!("cannot read the prompt from standard input: {e}")))?;
    Ok(text)
}

/// One line of a run's stream: with `--json` the message itself; else the
/// output on the stream it came from, other events and the run's end as
/// notes on stderr.
fn tail_line(
    message: &ServerMessage,
    json: bool,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> std::io::Result<()> {
    if json {
        let line = serde_json::to_string(message).map_err(std::io::Error::other)?;
        writeln!(stdout, "{line}")?;
        return stdout.flush();
    }
    match message {
        ServerMessage::Event {
            event_type: EventType::Stdout,
            data,
            ..
        } => {
            stdout.write_all(data.as_bytes())?;
            stdout.flush()
        }
        ServerMessage::Event {
            event_type: EventType::Stderr,
            data,
            ..
        } => stderr.write_all(data.as_bytes()),
        ServerMessage::Event {
            event_type, data, ..
        } => writeln!(stderr, "[{}] {data}", event_type.as_str()),
        ServerMessage::RunStatus {
            status, exit_code, ..
        } => writeln!(
            stderr,
            "[run {}{}]",
            status.as_str(),
            exit_code
                .map(|c| format!(", exit code {c}"))
                .unwrap_or_default()
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use claw_proto::api::{ArtifactView, CommandStatus, CommandView};
    use claw_proto::wire::RunStatus;

    use super::*;

    fn run(id: &str) -> RunView {
        RunView {
            id: id.into(),
            status: RunStatus::Stopped,
            command: Some("claude -p hi".into()),
            metadata: None,
            created_by: Some("root".into()),
            created_at: "2026-11-30T05:00:00.000Z".into(),
            started_at: None,
            finished_at: Some("2026-11-30T05:01:00.000Z".into()),
            exit_code: None,
            stop_requested_at: None,
            event_count: 7,
            agent: None,
            model: None,
            permission_mode: None,
            allowed_tools: Vec::new(),
            agent_session_id: None,
            approval_timeout_secs: None,
            host_id: None,
            workspace: None,
        }
    }

    #[test]
    fn lists_and_details_read_as_before() {
        assert_eq!(
            render_list(&[run("r1")]),
            "ID  STATE    CREATED                   EXIT  EVENTS  COMMAND\n\
             r1  stopped  2026-11-30T05:00:00.000Z  -     7       claude -p hi\n"
        );
        // An agent waiting for a person's decision is running, and says so.
        let waiting = RunView {
            status: RunStatus::Waiting,
            finished_at: None,
            ..run("r2")
        };
        assert_eq!(
            render_list(&[run("r1"), waiting]),
            "ID  STATE    CREATED                   EXIT  EVENTS  COMMAND\n\
             r1  stopped  2026-11-30T05:00:00.000Z  -     7       claude -p hi\n\
             r2  waiting  2026-11-30T05:00:00.000Z  -     7       claude -p hi\n"
        );
        let detail = RunDetail {
            run: run("r1"),
            artifacts: vec![ArtifactView {
                id: "a1".into(),
                run_id: "r1".into(),
                filename: "latest.diff".into(),
                size: 2048,
                content_type: "text/x-diff".into(),
                created_at: "t".into(),
            }],
            commands: Some(vec![CommandView {
                id: "c1".into(),
                run_id: "r1".into(),
                kind: Default::default(),
                command: "__STOP__".into(),
                status: CommandStatus::Delivered,
                result: None,
                error: None,
                created_by: None,
                created_at: "t".into(),
                completed_at: None,
            }]),
        };
        assert_eq!(
            render_detail(&detail),
            "Run:        r1\n\
             State:      stopped\n\
             Command:    claude -p hi\n\
             Created:    2026-11-30T05:00:00.000Z\n\
             Created by: root\n\
             Started:    -\n\
             Finished:   2026-11-30T05:01:00.000Z\n\
             Exit code:  -\n\
             Events:     7\n\
             \n\
             Commands:\n\
             ID  STATUS     COMMAND\n\
             c1  delivered  __STOP__\n\
             \n\
             Artifacts:\n\
             ID  SIZE     NAME\n\
             a1  2.0 KiB  latest.diff\n"
        );
        let bare = RunDetail {
            commands: None,
            artifacts: Vec::new(),
            ..detail
        };
        assert!(render_detail(&bare).ends_with(
            "Commands:\nID  STATUS  COMMAND\n(none)\n\nArtifacts:\nID  SIZE  NAME\n(none)\n"
        ));
    }

    #[test]
    fn tail_splits_the_streams() {
        let event = |kind, data: &str| ServerMessage::Event {
            run_id: "r".into(),
            event_id: 1,
            sequence: 1,
            event_type: kind,
            data: data.into(),
            timestamp: "t".into(),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        for message in [
            event(EventType::Stdout, "one\n"),
            event(EventType::Stderr, "warn\n"),
            event(EventType::Info, "note"),
            ServerMessage::Notice {
                message: "fell behind".into(),
            },
            ServerMessage::RunStatus {
                run_id: "r".into(),
                status: RunStatus::Failed,
                exit_code: Some(2),
            },
            ServerMessage::RunStatus {
                run_id: "r".into(),
                status: RunStatus::Running,
                exit_code: None,
            },
        ] {
            tail_line(&message, false, &mut out, &mut err).expect("write");
        }
        assert_eq!(String::from_utf8_lossy(&out), "one\n");
        assert_eq!(
            String::from_utf8_lossy(&err),
            "warn\n[info] note\n[run failed, exit code 2]\n[run running]\n"
        );
        let mut json = Vec::new();
        tail_line(&event(EventType::Stdout, "x"), true, &mut json, &mut err).expect("write");
        let back: ServerMessage = serde_json::from_slice(&json).expect("one JSON line");
        assert!(matches!(back, ServerMessage::Event { sequence: 1, .. }));
        assert!(json.ends_with(b"}\n"));
    }
}
