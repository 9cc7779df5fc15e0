//! `claw-runner start --agent claude`: drives an agent through its
//! structured interface. The agent's lines become claw's agent-neutral
//! events (spooled first, sent exactly once, like raw output); prompts and
//! interrupts queued at the gateway are written to its stdin in order; a
//! stop interrupts the turn, closes stdin, then signals as a raw run does.

pub mod approvals;
pub mod claude;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use claw_proto::agent::{AgentKind, PromptSent};
use claw_proto::allowlist::STOP_COMMAND;
use claw_proto::wire::{CommandKind, EventType, PendingCommand, RunSpec};
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::ChildStdin;
use tokio::sync::{Mutex, oneshot};

use crate::config::Config;
use crate::run::{self, Shared};
use approvals::Approvals;
use claude::{Limits, Output, Translator};

/// Longest output line read whole; past it the line is kept cut, as an
/// `agent_raw` event. Tool results of several megabytes arrive as one line.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// How long a request of the agent waits for a person's decision when the
/// gateway does not say.
const APPROVAL_TIMEOUT: Duration = Duration::from_secs(1800);

/// How long the agent may take to answer `initialize`.
const INIT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an interrupted agent with its stdin closed gets to end by
/// itself before it is signalled.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// The agent's stdin while the session lasts; `None` once closed.
type Stdin = Arc<Mutex<Option<ChildStdin>>>;

async fn write_line(stdin: &Stdin, line: &str) -> std::io::Result<()> {
    let mut guard = stdin.lock().await;
    let Some(pipe) = guard.as_mut() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "the agent's input is closed",
        ));
    };
    pipe.write_all(line.as_bytes()).await?;
    pipe.write_all(b"\n").await?;
    pipe.flush().await
}

/// The run's spec from the gateway, retried while the gateway is away.
pub(crate) async fn fetch_spec(shared: &Shared) -> anyhow::Result<RunSpec> {
    let path = format!("/api/runs/{}/spec", shared.gateway.run_id);
    let mut wait = Duration::from_millis(200);
    for _ in 0..10 {
        match shared
            .gateway
            .send(Method::GET, &path, Vec::new(), None)
            .await
        {
            Ok(body) => return serde_json::from_slice(&body).context("unreadable run spec"),
            Err(crate::gateway::GatewayError::Refused { status, message }) => {
                anyhow::bail!("the gateway refused the run's spec ({status}): {message}")
            }
            Err(e) => {
                eprintln!("claw-runner: {e}; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
    anyhow::bail!("the gateway did not answer with the run's spec")
}

/// Runs the agent session to its end; returns the exit status to exit with.
pub async fn start(
    config: Config,
    run_id: String,
    token: String,
    cwd: Option<std::path::PathBuf>,
    agent: AgentKind,
) -> anyhow::Result<i32> {
    let shared = Shared::new(&config, &run_id, &token)?;
    let spec = fetch_spec(&shared).await?;
    if spec.agent != Some(agent) {
        anyhow::bail!(
            "run {run_id} was created {}, not for {}: start it without --agent, or create a run with \"agent\": \"{}\"",
            spec.agent.map_or("for a command".to_owned(), |a| format!(
                "for {}",
                a.as_str()
            )),
            agent.as_str(),
            agent.as_str()
        );
    }
    if let Some(next) = spec.next_sequence {
        shared.spool.lock().await.continue_from(next);
    }
    let mode = spec.permission_mode.unwrap_or_default();
    // A run whose agent session began before continues that conversation.
    let args = claude::arguments(
        spec.model.as_deref(),
        mode.as_str(),
        &spec.allowed_tools,
        spec.agent_session_id.as_deref(),
    );
    let program = &config.claude_program;
    let mut child = tokio::process::Command::new(program);
    child
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &cwd {
        child.current_dir(dir);
    }
    let mut child = child.spawn().with_context(|| {
        format!("cannot start {program}: is Claude Code installed (claude_program)?")
    })?;
    let pgid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    shared
        .record(
            EventType::Marker,
            json!({ "event": "started", "command": format!("{program} {}", args.join(" ")) })
                .to_string(),
        )
        .await;
    let stdin: Stdin = Arc::new(Mutex::new(child.stdin.take()));
    let approvals = Approvals::new(
        spec.approval_timeout_secs
            .map_or(APPROVAL_TIMEOUT, Duration::from_secs),
    );
    let sender = tokio::spawn(run::send_loop(Arc::clone(&shared)));
    let push = tokio::spawn(run::push_loop(Arc::clone(&shared)));
    let (initialised, ready) = oneshot::channel();
    let reader = child.stdout.take().map(|out| {
        tokio::spawn(read_output(
            Arc::clone(&shared),
            out,
            Arc::clone(&stdin),
            Limits {
                tool_output: config.tool_output_max_bytes,
                ..Limits::default()
            },
            Arc::clone(&approvals),
            initialised,
        ))
    });
    let errors = child.stderr.take().map(|err| {
        tokio::spawn(run::read_stream(
            Arc::clone(&shared),
            err,
            EventType::Stderr,
        ))
    });

    let ready = match write_line(&stdin, &claude::initialize()).await {
        Ok(()) => tokio::select! {
            answer = tokio::time::timeout(INIT_TIMEOUT, ready) => match answer {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(refused))) => Err(format!("the agent refused to start: {refused}")),
                // Output ends when the agent exits: its status says more than the closed pipe.
                Ok(Err(_)) => match tokio::time::timeout(CLOSE_GRACE, child.wait()).await {
                    Ok(Ok(status)) => Err(format!("the agent exited before it initialised ({status})")),
                    _ => Err("the agent ended its output before it initialised".to_owned()),
                },
                Err(_) => Err(format!("the agent did not initialise within {} s", INIT_TIMEOUT.as_secs())),
            },
            status = child.wait() => Err(format!(
                "the agent exited before it initialised ({})",
                status.map_or_else(|e| e.to_string(), |s| s.to_string())
            )),
        },
        // It may have ended already: then its end is the reason.
        Err(e) => match tokio::time::timeout(CLOSE_GRACE, child.wait()).await {
            Ok(Ok(status)) => Err(format!("the agent exited before it initialised ({status})")),
            _ => Err(format!("cannot write to the agent: {e}")),
        },
    };
    let commands = match ready {
        Ok(()) => Some(tokio::spawn(command_loop(
            Arc::clone(&shared),
            config.clone(),
            Arc::clone(&stdin),
            Arc::clone(&approvals),
            cwd,
            pgid,
        ))),
        Err(reason) => {
            shared.record(EventType::Error, format!("{reason}\n")).await;
            stdin.lock().await.take();
            if let Some(pgid) = pgid {
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            }
            None
        }
    };

    let status = child.wait().await?;
    for task in [reader, errors].into_iter().flatten() {
        let _ = task.await;
    }
    if let Some(commands) = commands {
        commands.abort();
    }
    push.abort();
    let signal = std::os::unix::process::ExitStatusExt::signal(&status);
    let exit_code = status.code().unwrap_or_else(|| 128 + signal.unwrap_or(0));
    let mut finished = json!({ "event": "finished", "exitCode": exit_code });
    if let Some(signal) = signal.and_then(|s| nix::sys::signal::Signal::try_from(s).ok()) {
        finished["signal"] = json!(signal.as_str());
    }
    shared.record(EventType::Marker, finished.to_string()).await;
    run::flush(&shared).await;
    sender.abort();
    run::upload_log(&shared).await;
    Ok(exit_code)
}

/// Reads the agent's lines whole (up to [`MAX_LINE`]) and acts on each.
async fn read_output(
    shared: Arc<Shared>,
    out: impl AsyncRead + Unpin,
    stdin: Stdin,
    limits: Limits,
    approvals: Arc<Approvals>,
    initialised: oneshot::Sender<Result<(), String>>,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, out);
    let mut translator = Translator::new(limits);
    let mut initialised = Some(initialised);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = {
            let mut limited = (&mut reader).take(MAX_LINE as u64);
            limited.read_until(b'\n', &mut line).await
        };
        let cut = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n == MAX_LINE && line.last() != Some(&b'\n'),
        };
        if cut {
            // The rest of an overlong line is read and dropped.
            let mut rest = Vec::new();
            let _ = reader.read_until(b'\n', &mut rest).await;
        }
        let text = String::from_utf8_lossy(&line);
        let outputs = if cut {
            vec![Output::Event(
                EventType::AgentRaw,
                json!({
                    "line": text.chars().take(limits.text).collect::<String>(),
                    "reason": format!("a line longer than {MAX_LINE} bytes"),
                    "truncated": true,
                })
                .to_string(),
            )]
        } else {
            translator.line(&text)
        };
        for output in outputs {
            act(&shared, &stdin, &approvals, &mut initialised, output).await;
        }
    }
}

async fn act(
    shared: &Arc<Shared>,
    stdin: &Stdin,
    approvals: &Arc<Approvals>,
    initialised: &mut Option<oneshot::Sender<Result<(), String>>>,
    output: Output,
) {
    match output {
        Output::Event(kind, data) => {
            if kind == EventType::ToolCall
                && let Ok(call) = serde_json::from_str(&data)
            {
                approvals.note_call(&call);
            }
            shared.record(kind, data).await
        }
        Output::KeepWhole { artifact, output } => {
            let shared = Arc::clone(shared);
            tokio::spawn(async move { keep_output(&shared, &artifact, output).await });
        }
        Output::Initialised => {
            if let Some(tx) = initialised.take() {
                let _ = tx.send(Ok(()));
            }
        }
        Output::ControlError { request_id, error } => {
            if request_id == claude::INIT_REQUEST
                && let Some(tx) = initialised.take()
            {
                let _ = tx.send(Err(error));
            } else {
                shared
                    .record(
                        EventType::Info,
                        format!("the agent refused request {request_id}: {error}\n"),
                    )
                    .await;
            }
        }
        // A person decides, through the gateway.
        Output::Permission(request) => approvals.ask(shared, stdin, request).await,
        Output::Cancelled { request_id } => approvals.cancelled(shared, &request_id).await,
    }
}

/// Keeps a tool's whole output beside the spool and uploads it.
async fn keep_output(shared: &Shared, artifact: &str, output: String) {
    let output = shared.redactor.redact(&output).into_owned();
    let path = shared.spool.lock().await.dir().join(artifact);
    if let Err(e) = tokio::fs::write(&path, output).await {
        eprintln!("claw-runner: cannot keep {}: {e}", path.display());
        return;
    }
    let patience = crate::upload::PATIENCE;
    if let Err(e) = crate::upload::upload(&shared.gateway, &path, artifact, patience).await {
        eprintln!("claw-runner: {artifact} not uploaded: {e}");
    }
}

async fn command_loop(
    shared: Arc<Shared>,
    config: Config,
    stdin: Stdin,
    approvals: Arc<Approvals>,
    cwd: Option<std::path::PathBuf>,
    pgid: Option<nix::unistd::Pid>,
) {
    let mut interrupts = 0u64;
    loop {
        for command in run::next_commands(&shared, config.poll_secs).await {
            if !shared.take_new(&command.id).await {
                continue;
            }
            let ack = match command.kind {
                CommandKind::Command if command.command == STOP_COMMAND => {
                    tokio::spawn(stop(
                        Arc::clone(&shared),
                        Arc::clone(&stdin),
                        pgid,
                        config.stop_grace_secs,
                        command.id,
                    ));
                    continue;
                }
                CommandKind::Command => {
                    run::shell_command(
                        &shared,
                        &config.allowlist,
                        &command.command,
                        cwd.as_deref(),
                        &config,
                    )
                    .await
                }
                CommandKind::Prompt => prompt(&shared, &stdin, &command).await,
                CommandKind::Decision => approvals.decide(&shared, &stdin, &command).await,
                CommandKind::Interrupt => {
                    interrupts += 1;
                    match write_line(
                        &stdin,
                        &claude::interrupt(&format!("claw-interrupt-{interrupts}")),
                    )
                    .await
                    {
                        Ok(()) => json!({ "result": "interrupt sent to the agent" }),
                        Err(e) => json!({ "error": format!("cannot reach the agent: {e}") }),
                    }
                }
            };
            shared.ack(&command.id, ack).await;
        }
    }
}

/// Writes a prompt to the agent, then records it as a `prompt` event; the
/// answer acknowledges it as written.
async fn prompt(shared: &Shared, stdin: &Stdin, command: &PendingCommand) -> serde_json::Value {
    match write_line(stdin, &claude::user_turn(&command.command)).await {
        Ok(()) => {
            let event = PromptSent {
                text: command.command.clone(),
                by: command.created_by.clone(),
                prompt_id: Some(command.id.clone()),
            };
            shared
                .record(
                    EventType::Prompt,
                    serde_json::to_string(&event).unwrap_or_default(),
                )
                .await;
            json!({ "result": "written to the agent" })
        }
        Err(e) => json!({ "error": format!("the agent is gone: {e}") }),
    }
}

/// Ends the session: interrupt the turn, close stdin, then SIGINT and,
/// after the grace period, SIGKILL.
async fn stop(
    shared: Arc<Shared>,
    stdin: Stdin,
    pgid: Option<nix::unistd::Pid>,
    grace_secs: u64,
    command_id: String,
) {
    use nix::sys::signal::{Signal, killpg};
    let _ = write_line(&stdin, &claude::interrupt("claw-stop")).await;
    stdin.lock().await.take();
    shared
        .record(
            EventType::Info,
            "stop requested: the agent's turn interrupted and its input closed\n".to_owned(),
        )
        .await;
    shared
        .ack(
            &command_id,
            json!({ "result": "interrupted, input closed" }),
        )
        .await;
    let Some(pgid) = pgid else { return };
    tokio::time::sleep(CLOSE_GRACE).await;
    if killpg(pgid, None).is_err() {
        return;
    }
    let _ = killpg(pgid, Signal::SIGINT);
    shared
        .record(EventType::Info, format!("the agent is still running: SIGINT sent, SIGKILL in {grace_secs} s if it does not end\n"))
        .await;
    run::escalate(&shared, pgid, grace_secs).await;
}
