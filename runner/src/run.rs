//! `claw-runner start`: runs the agent, spools and streams its output,
//! executes queued commands, handles stop, and reports the exit.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use claw_proto::Redactor;
use claw_proto::allowlist::{Allowlist, STOP_COMMAND, split_command};
use claw_proto::wire::{CommandKind, EventType, PendingCommand};
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{Mutex, Notify};

use crate::config::Config;
use crate::gateway::{Gateway, GatewayError};
use crate::spool::Spool;

/// Tries to deliver a command's answer before it waits for the command to
/// come again (about a minute with the backoff).
const ACK_ATTEMPTS: u32 = 16;

/// Events per batch when output is fast.
const BATCH: usize = 500;
/// Longest piece of a line without a newline sent as one event.
const CHUNK: usize = 64 * 1024;

/// What every task of a run shares.
pub(crate) struct Shared {
    pub(crate) spool: Mutex<Spool>,
    /// Something was spooled (or the run ended).
    pub(crate) wake: Notify,
    /// The gateway pushed a note: commands are waiting.
    pub(crate) nudge: Notify,
    pub(crate) gateway: Gateway,
    pub(crate) redactor: Redactor,
    /// Commands taken, by id, with their answer once given: a command sent
    /// again (its answer was lost) is answered again, never run twice.
    answered: std::sync::Mutex<std::collections::HashMap<String, Option<serde_json::Value>>>,
}

impl Shared {
    pub(crate) fn new(config: &Config, run_id: &str, token: &str) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            spool: Mutex::new(Spool::create(&config.state_dir.join("runs").join(run_id))?),
            wake: Notify::new(),
            nudge: Notify::new(),
            gateway: Gateway::new(config, run_id, token)?,
            redactor: Redactor::new(&config.redact_patterns)?,
            answered: std::sync::Mutex::new(std::collections::HashMap::new()),
        }))
    }

    /// Redacts and spools an event; the sender sends it.
    pub(crate) async fn record(&self, kind: EventType, data: String) {
        let data = if kind.is_structured() {
            self.redactor.redact_json(&data).into_owned()
        } else {
            self.redactor.redact(&data).into_owned()
        };
        let result = self.spool.lock().await.append(kind, data);
        if let Err(e) = result {
            eprintln!("claw-runner: {e}");
        }
        self.wake.notify_one();
    }

    /// Whether a command is new here. One sent again is answered again
    /// with its first answer (or left alone while it still runs).
    pub(crate) async fn take_new(&self, command_id: &str) -> bool {
        let earlier = {
            let mut answered = self.answered.lock().unwrap_or_else(|e| e.into_inner());
            match answered.get(command_id) {
                Some(answer) => Some(answer.clone()),
                None => {
                    answered.insert(command_id.to_owned(), None);
                    None
                }
            }
        };
        match earlier {
            None => true,
            Some(Some(answer)) => {
                self.ack(command_id, answer).await;
                false
            }
            Some(None) => false,
        }
    }

    /// Answers a command, again while the gateway is away; the gateway
    /// keeps the first answer.
    pub(crate) async fn ack(&self, command_id: &str, ack: serde_json::Value) {
        self.answered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(command_id.to_owned(), Some(ack.clone()));
        let path = format!(
            "/api/runs/{}/commands/{command_id}/ack",
            self.gateway.run_id
        );
        let mut wait = Duration::from_millis(200);
        for _ in 0..ACK_ATTEMPTS {
            match self
                .gateway
                .send(
                    Method::POST,
                    &path,
                    ack.to_string().into_bytes(),
                    Some("application/json"),
                )
                .await
            {
                Ok(_) => return,
                Err(GatewayError::Refused { status, message }) => {
                    eprintln!(
                        "claw-runner: the answer to {command_id} was refused ({status}): {message}"
                    );
                    return;
                }
                Err(_) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        // Not lost: the gateway sends an agent run's command again until
        // it is answered, and it is answered from `answered` then.
        eprintln!("claw-runner: the answer to {command_id} is not through yet");
    }

    /// The commands queued for the run, delivered to this runner once.
    pub(crate) async fn pending_commands(&self) -> Option<Vec<PendingCommand>> {
        let path = format!("/api/runs/{}/commands", self.gateway.run_id);
        let body = self
            .gateway
            .send(Method::GET, &path, Vec::new(), None)
            .await
            .ok()?;
        match serde_json::from_slice(&body) {
            Ok(commands) => Some(commands),
            Err(e) => {
                eprintln!("claw-runner: unreadable commands from the gateway: {e}");
                None
            }
        }
    }
}

/// Runs the agent to its end; returns the exit status to exit with.
pub async fn start(
    config: Config,
    run_id: String,
    token: String,
    cwd: Option<std::path::PathBuf>,
    command: Vec<String>,
) -> anyhow::Result<i32> {
    let shared = Shared::new(&config, &run_id, &token)?;
    let command = if command.is_empty() {
        split_command(&config.agent_command)
            .into_iter()
            .map(str::to_owned)
            .collect()
    } else {
        command
    };
    let Some((program, args)) = command.split_first() else {
        anyhow::bail!("no agent command: give one after -- or set CLAW_AGENT_COMMAND");
    };

    let mut child = tokio::process::Command::new(program);
    child
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a stop reaches everything it started.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &cwd {
        child.current_dir(dir);
    }
    let mut child = child
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {program}: {e}"))?;
    let pgid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    shared
        .record(
            EventType::Marker,
            json!({ "event": "started", "command": command.join(" ") }).to_string(),
        )
        .await;

    let spool_dir = shared.spool.lock().await.dir().to_owned();
    let pid_file = spool_dir.join(crate::assist::PID_FILE);
    if let Err(e) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        eprintln!(
            "claw-runner: cannot write {}: {e} (assist will not find this runner)",
            pid_file.display()
        );
    }
    let assist = tokio::spawn(assist_on_request(Arc::clone(&shared), spool_dir));
    let sender = tokio::spawn(send_loop(Arc::clone(&shared)));
    let push = tokio::spawn(push_loop(Arc::clone(&shared)));
    let readers = [
        child
            .stdout
            .take()
            .map(|out| tokio::spawn(read_stream(Arc::clone(&shared), out, EventType::Stdout))),
        child
            .stderr
            .take()
            .map(|err| tokio::spawn(read_stream(Arc::clone(&shared), err, EventType::Stderr))),
    ];
    let allowlist = config.allowlist.clone();
    let commands = tokio::spawn(command_loop(
        Arc::clone(&shared),
        config.clone(),
        allowlist,
        cwd,
        pgid,
    ));

    let status = child.wait().await?;
    for reader in readers.into_iter().flatten() {
        let _ = reader.await;
    }
    commands.abort();
    push.abort();
    assist.abort();
    let _ = std::fs::remove_file(&pid_file);
    let signal = std::os::unix::process::ExitStatusExt::signal(&status);
    let exit_code = status.code().unwrap_or_else(|| 128 + signal.unwrap_or(0));
    let mut finished = json!({ "event": "finished", "exitCode": exit_code });
    if let Some(signal) = signal.and_then(|s| nix::sys::signal::Signal::try_from(s).ok()) {
        finished["signal"] = json!(signal.as_str());
    }
    shared.record(EventType::Marker, finished.to_string()).await;
    flush(&shared).await;
    sender.abort();
    upload_log(&shared).await;
    Ok(exit_code)
}

pub(crate) async fn read_stream(
    shared: Arc<Shared>,
    stream: impl AsyncRead + Unpin,
    kind: EventType,
) {
    let mut reader = BufReader::with_capacity(CHUNK, stream);
    let mut line = Vec::new();
    // Each line is an event: a private key printed line by line is
    // followed across them.
    let mut keys = claw_proto::redact::PrivateKeyLines::new();
    loop {
        line.clear();
        // A line, or a chunk of one that has no newline yet.
        let read = {
            let mut limited = (&mut reader).take(CHUNK as u64);
            limited.read_until(b'\n', &mut line).await
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                shared.record(kind, keys.filter(&text).into_owned()).await
            }
        }
    }
}

use tokio::io::AsyncReadExt;

/// Sends spooled events in order, in batches, until acknowledged; retries
/// with backoff while the gateway is away.
pub(crate) async fn send_loop(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let batch = shared.spool.lock().await.batch(BATCH);
        if batch.is_empty() {
            shared.wake.notified().await;
            continue;
        }
        let last = batch.last().and_then(|e| e.sequence).unwrap_or(0);
        let body = serde_json::to_vec(&json!({ "events": batch })).unwrap_or_default();
        match shared
            .gateway
            .send(
                Method::POST,
                "/api/ingest/events",
                body,
                Some("application/json"),
            )
            .await
        {
            Ok(_) => {
                backoff = Duration::from_millis(100);
                if let Err(e) = shared.spool.lock().await.acknowledge(last) {
                    eprintln!("claw-runner: {e}");
                }
            }
            Err(GatewayError::Behind { next }) => {
                eprintln!(
                    "claw-runner: the gateway lost events from sequence {next} on; sending them again from the spool"
                );
                let rewound = shared.spool.lock().await.rewind(next);
                match rewound {
                    Ok(true) => {}
                    Ok(false) => {
                        eprintln!("claw-runner: the spool no longer has them; retrying in 5 s");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Err(e) => {
                        eprintln!("claw-runner: {e}");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            }
            Err(GatewayError::Refused { status, message }) => {
                eprintln!(
                    "claw-runner: the gateway refused events ({status}): {message}; they stay in the spool"
                );
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(e) => {
                eprintln!("claw-runner: {e}; retrying in {} ms", backoff.as_millis());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Keeps the run's signed WebSocket open; every note on it means "commands
/// are queued", and wakes the command loop.
pub(crate) async fn push_loop(shared: Arc<Shared>) {
    use futures_util::StreamExt;
    let mut backoff = Duration::from_secs(1);
    loop {
        match shared.gateway.websocket().await {
            Ok(mut socket) => {
                backoff = Duration::from_secs(1);
                // Whatever was queued while we were away.
                shared.nudge.notify_one();
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() {
                        shared.nudge.notify_one();
                    }
                }
            }
            Err(GatewayError::Refused { status: 0, .. }) => return,
            Err(_) => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// SIGUSR1 (from `claw-runner assist`): start tmate, post its links.
pub(crate) async fn assist_on_request(shared: Arc<Shared>, spool_dir: std::path::PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut requests) = signal(SignalKind::user_defined1()) else {
        return;
    };
    while requests.recv().await.is_some() {
        match crate::assist::start_session(&spool_dir).await {
            Ok(links) => shared.record(EventType::Assist, links).await,
            Err(e) => {
                shared
                    .record(EventType::Info, format!("assist failed: {e}\n"))
                    .await
            }
        }
    }
}

/// Waits until every spooled event is acknowledged.
pub(crate) async fn flush(shared: &Shared) {
    loop {
        if shared.spool.lock().await.is_drained() {
            return;
        }
        shared.wake.notify_one();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the next poll or a pushed note, then fetches what is queued.
pub(crate) async fn next_commands(shared: &Shared, poll_secs: u64) -> Vec<PendingCommand> {
    // Polling is the fallback; a pushed note fetches at once.
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(poll_secs.max(1))) => {}
        () = shared.nudge.notified() => {}
    }
    shared.pending_commands().await.unwrap_or_default()
}

async fn command_loop(
    shared: Arc<Shared>,
    config: Config,
    allowlist: Allowlist,
    cwd: Option<std::path::PathBuf>,
    pgid: Option<nix::unistd::Pid>,
) {
    loop {
        for command in next_commands(&shared, config.poll_secs).await {
            if !shared.take_new(&command.id).await {
                continue;
            }
            if command.command == STOP_COMMAND {
                tokio::spawn(stop(
                    Arc::clone(&shared),
                    pgid,
                    config.stop_grace_secs,
                    command.id,
                ));
                continue;
            }
            let ack = match command.kind {
                CommandKind::Command => {
                    shell_command(
                        &shared,
                        &allowlist,
                        &command.command,
                        cwd.as_deref(),
                        &config,
                    )
                    .await
                }
                CommandKind::Prompt | CommandKind::Interrupt | CommandKind::Decision => json!({
                    "error": "this run runs a command, not an agent: it takes no prompts or decisions"
                }),
            };
            shared.ack(&command.id, ack).await;
        }
    }
}

/// Runs a queued shell command if the runner's allowlist admits it; the
/// answer to acknowledge it with.
pub(crate) async fn shell_command(
    shared: &Shared,
    allowlist: &Allowlist,
    command: &str,
    cwd: Option<&std::path::Path>,
    config: &Config,
) -> serde_json::Value {
    // The gateway's check again, and every path argument resolved on disk
    // inside the working directory.
    let root = crate::workdir::root(cwd);
    let inside = |path: &str| {
        root.as_deref()
            .is_some_and(|root| crate::workdir::contains(root, path))
    };
    match allowlist.check_with(command, &inside) {
        Ok(words) => {
            let (ack, stdout) = run_command(shared, &words, cwd, config).await;
            // A `git diff`'s output also becomes the run's `latest.diff`.
            if let Some(diff) = stdout.filter(|_| words.starts_with(&["git", "diff"])) {
                upload_diff(shared, diff).await;
            }
            ack
        }
        Err(refusal) => json!({ "error": format!("not on this runner's allowlist: {refusal}") }),
    }
}

/// Keeps the whole (redacted) diff beside the spool and uploads it.
async fn upload_diff(shared: &Shared, diff: String) {
    let path = shared.spool.lock().await.dir().join("latest.diff");
    if let Err(e) = tokio::fs::write(&path, diff).await {
        eprintln!("claw-runner: cannot keep {}: {e}", path.display());
        return;
    }
    // The command's answer waits for this: a short patience (the next
    // `git diff` makes a newer one anyway).
    let patience = Duration::from_secs(10);
    if let Err(e) = crate::upload::upload(&shared.gateway, &path, "latest.diff", patience).await {
        eprintln!("claw-runner: latest.diff not uploaded: {e}");
    }
}

/// Runs an allowed command's words without a shell: the ack to send, and
/// the command's whole redacted stdout when it succeeded.
async fn run_command(
    shared: &Shared,
    words: &[&str],
    cwd: Option<&std::path::Path>,
    config: &Config,
) -> (serde_json::Value, Option<String>) {
    let Some((program, args)) = words.split_first() else {
        return (json!({ "error": "empty command" }), None);
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let output = tokio::time::timeout(
        Duration::from_secs(config.command_timeout_secs),
        cmd.output(),
    )
    .await;
    let truncate = |bytes: &[u8]| {
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        if text.len() > config.command_output_limit {
            let mut cut = config.command_output_limit;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("\n[output truncated]");
        }
        shared.redactor.redact(&text).into_owned()
    };
    match output {
        Ok(Ok(out)) if out.status.success() => {
            let whole = shared
                .redactor
                .redact(&String::from_utf8_lossy(&out.stdout))
                .into_owned();
            let ack = json!({ "result": truncate(&[out.stdout, out.stderr].concat()) });
            (ack, Some(whole))
        }
        Ok(Ok(out)) => (
            json!({
                "result": truncate(&[out.stdout, out.stderr].concat()),
                "error": format!("exited with {}", out.status),
            }),
            None,
        ),
        Ok(Err(e)) => (
            json!({ "error": format!("cannot run {program}: {e}") }),
            None,
        ),
        Err(_) => (
            json!({ "error": format!("timed out after {} s", config.command_timeout_secs) }),
            None,
        ),
    }
}

/// SIGINT to the agent's process group; SIGKILL if it is still there after
/// the grace period.
async fn stop(
    shared: Arc<Shared>,
    pgid: Option<nix::unistd::Pid>,
    grace_secs: u64,
    command_id: String,
) {
    use nix::sys::signal::{Signal, killpg};
    let Some(pgid) = pgid else { return };
    let _ = killpg(pgid, Signal::SIGINT);
    shared
        .record(EventType::Info, format!("stop requested: SIGINT sent to the agent, SIGKILL in {grace_secs} s if it is still running\n"))
        .await;
    shared
        .ack(&command_id, json!({ "result": "SIGINT sent" }))
        .await;
    escalate(&shared, pgid, grace_secs).await;
}

/// SIGKILL to the process group if it is still there after the grace
/// period.
pub(crate) async fn escalate(shared: &Shared, pgid: nix::unistd::Pid, grace_secs: u64) {
    use nix::sys::signal::{Signal, killpg};
    tokio::time::sleep(Duration::from_secs(grace_secs)).await;
    // Signal 0 only asks whether the group still exists.
    if killpg(pgid, None).is_ok() {
        let _ = killpg(pgid, Signal::SIGKILL);
        shared
            .record(
                EventType::Info,
                format!("the agent did not stop within {grace_secs} s: SIGKILL sent\n"),
            )
            .await;
    }
}

/// Uploads the run's full log as an artifact (best effort, trying again
/// through transient refusals for [`crate::upload::PATIENCE`]).
pub(crate) async fn upload_log(shared: &Shared) {
    let path = shared.spool.lock().await.log_path();
    let patience = crate::upload::PATIENCE;
    if let Err(e) = crate::upload::upload(&shared.gateway, &path, "claude.log", patience).await {
        eprintln!("claw-runner: log not uploaded: {e}");
    }
}
