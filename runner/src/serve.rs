//! `claw-runner serve`: an enrolled host's long-running service. It keeps
//! one signed WebSocket to the gateway, says what it can run (agents on
//! PATH, its workspaces, its session limit), sends a heartbeat every few
//! seconds, and reconnects with backoff when the connection goes. A
//! gateway that refuses the host (revoked, removed) ends it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use claw_proto::hosts::{
    GatewayMessage, HEADER_HOST_ID, HostAgent, HostInfo, HostMessage, StartSession,
};
use claw_proto::signing::{self, SignedParts};
use claw_proto::wire::EventType;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

use crate::config::Config;
use crate::gateway::{GatewayError, WebSocket, new_nonce, open_websocket, unix_now};

const PATH: &str = "/api/host/ws";
const HEARTBEAT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MOST_BACKOFF: Duration = Duration::from_secs(30);
/// The exit status when the gateway refuses this host for good; the
/// service unit does not restart on it (`RestartPreventExitStatus=`).
pub const EXIT_REFUSED: i32 = 78;
/// The exit status of a service on a host that is not enrolled: a
/// configuration error, like a bad runner.toml.
pub const EXIT_NOT_ENROLLED: i32 = 2;

/// What the host can run, as found now.
async fn discover(config: &Config, workspaces: &[PathBuf]) -> HostInfo {
    let mut agents = Vec::new();
    let version = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::process::Command::new(&config.claude_program)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match version {
        Ok(Ok(out)) if out.status.success() => agents.push(HostAgent {
            name: "claude".to_owned(),
            version: String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty()),
        }),
        _ => tracing::warn!(
            "{} --version did not answer: claude cannot be started here",
            config.claude_program
        ),
    }
    HostInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        agents,
        workspaces: workspaces.iter().map(|w| w.display().to_string()).collect(),
        session_limit: config.session_limit,
        sessions: Vec::new(),
    }
}

/// The configured workspaces that exist, resolved.
pub fn workspaces(config: &Config) -> Vec<PathBuf> {
    config
        .workspaces
        .iter()
        .filter_map(|w| match std::fs::canonicalize(w) {
            Ok(path) if path.is_dir() => Some(path),
            _ => {
                tracing::warn!(
                    "workspace {} is not a directory here; left out",
                    w.display()
                );
                None
            }
        })
        .collect()
}

async fn connect(
    config: &Config,
    tls: &Arc<rustls::ClientConfig>,
    host_id: &str,
) -> Result<WebSocket, GatewayError> {
    let timestamp = unix_now();
    let nonce = new_nonce();
    let signature = signing::sign(
        config.hmac_secret.as_bytes(),
        &SignedParts {
            method: "GET",
            path: PATH,
            body: b"",
            timestamp,
            nonce: &nonce,
            run_id: "",
            capability_token: "",
        },
    );
    let headers = [
        (signing::HEADER_SIGNATURE, signature),
        (signing::HEADER_TIMESTAMP, timestamp.to_string()),
        (signing::HEADER_NONCE, nonce),
        (HEADER_HOST_ID, host_id.to_owned()),
    ];
    open_websocket(tls, &config.gateway_url, PATH, &headers).await
}

/// How a connection ended.
enum Ended {
    Lost(String),
    Stopping,
}

/// The sessions this service started and what it offers.
struct Host {
    config: Config,
    /// `--config` as this service was given it, for the sessions it starts.
    config_file: Option<PathBuf>,
    info: HostInfo,
    workspaces: Vec<PathBuf>,
    sessions: HashMap<String, Hosted>,
    ended_tx: mpsc::UnboundedSender<(String, Option<i32>)>,
    ended: mpsc::UnboundedReceiver<(String, Option<i32>)>,
}

/// A session this service started, as `STATE_DIR/hosted/RUN.json` (0600)
/// keeps it, so that a restarted service finds it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Hosted {
    run_id: String,
    pid: u32,
    /// To report the run's end when its runner could not.
    token: String,
    workspace: String,
}

impl Hosted {
    fn path(state_dir: &std::path::Path, run_id: &str) -> PathBuf {
        state_dir.join("hosted").join(format!("{run_id}.json"))
    }

    fn save(&self, state_dir: &std::path::Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        crate::host::write_private(&Self::path(state_dir, &self.run_id), &bytes)
    }

    fn remove(&self, state_dir: &std::path::Path) {
        let _ = std::fs::remove_file(Self::path(state_dir, &self.run_id));
    }

    /// Its runner is still running (the pid is its, not a reused one).
    fn alive(&self) -> bool {
        std::fs::read(format!("/proc/{}/cmdline", self.pid))
            .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&self.run_id))
    }

    /// The sessions a service before this one started.
    fn found(state_dir: &std::path::Path) -> Vec<Self> {
        let Ok(dir) = std::fs::read_dir(state_dir.join("hosted")) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect()
    }
}

/// Watches a runner this service did not start (a restarted service's
/// adopted session) until it is gone.
fn watch_adopted(hosted: &Hosted, ended: mpsc::UnboundedSender<(String, Option<i32>)>) {
    let hosted = hosted.clone();
    tokio::spawn(async move {
        while hosted.alive() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let _ = ended.send((hosted.run_id, None));
    });
}

/// A session's runner ended without an exit status of its own (killed, or
/// gone while this service was down): if the gateway still counts the run
/// as running, its end is reported from the run's spool, with what the
/// runner had not sent yet.
async fn settle(config: &Config, hosted: &Hosted, code: Option<i32>) {
    if code.is_some() {
        // The runner reported the end itself before it exited.
        hosted.remove(&config.state_dir);
        return;
    }
    let shared = match crate::run::Shared::new(config, &hosted.run_id, &hosted.token) {
        Ok(shared) => shared,
        Err(e) => {
            tracing::warn!(RUN_ID = %hosted.run_id, "cannot report the end of run {}: {e:#}", hosted.run_id);
            return;
        }
    };
    let spec = match crate::agent::fetch_spec(&shared).await {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(RUN_ID = %hosted.run_id, "cannot ask about run {}: {e:#}", hosted.run_id);
            return;
        }
    };
    if spec.status.is_some_and(|s| s.is_finished()) {
        hosted.remove(&config.state_dir);
        return;
    }
    shared
        .record(
            EventType::Error,
            "the session's runner ended without reporting its end (killed, or ended while the host service was down)\n"
                .to_owned(),
        )
        .await;
    shared
        .record(
            EventType::Marker,
            serde_json::json!({ "event": "finished", "exitCode": null, "signal": "unknown" })
                .to_string(),
        )
        .await;
    let sender = tokio::spawn(crate::run::send_loop(std::sync::Arc::clone(&shared)));
    let flushed = tokio::time::timeout(Duration::from_secs(30), crate::run::flush(&shared)).await;
    sender.abort();
    if flushed.is_ok() {
        hosted.remove(&config.state_dir);
        tracing::warn!(RUN_ID = %hosted.run_id, "reported run {} failed: its runner is gone", hosted.run_id);
    }
}

impl Host {
    fn hello(&self) -> HostMessage {
        let mut info = self.info.clone();
        info.sessions = self.sessions.keys().cloned().collect();
        info.sessions.sort();
        HostMessage::Hello { info }
    }

    /// Checks a start against this host's own list, whatever the gateway
    /// said, and starts `claw-runner start` for it in its own process
    /// group (so a restart of this service leaves it running).
    fn start(&mut self, session: &StartSession) -> Result<(), String> {
        if !self.info.agents.iter().any(|a| a.name == session.agent) {
            return Err(format!("{} is not an agent this host runs", session.agent));
        }
        let cwd = std::fs::canonicalize(&session.workspace)
            .map_err(|e| format!("workspace {}: {e}", session.workspace))?;
        if !cwd.is_dir() || !self.workspaces.iter().any(|w| cwd.starts_with(w)) {
            return Err(format!(
                "{} is not in this host's workspaces (resolved: {})",
                session.workspace,
                cwd.display()
            ));
        }
        let limit = self.config.session_limit as usize;
        if self.sessions.len() >= limit {
            return Err(format!("this host runs its limit of {limit} sessions"));
        }
        if self.sessions.contains_key(&session.run_id) {
            return Err(format!("run {} runs here already", session.run_id));
        }
        let logs = self.config.state_dir.join("hosted");
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        let log = std::fs::File::create(logs.join(format!("{}.log", session.run_id)))
            .map_err(|e| format!("cannot write the session's log: {e}"))?;
        let program =
            std::env::current_exe().map_err(|e| format!("cannot find claw-runner: {e}"))?;
        let mut command = tokio::process::Command::new(program);
        if let Some(file) = &self.config_file {
            command.arg("--config").arg(file);
        }
        command
            .args([
                "start",
                "--run-id",
                &session.run_id,
                "--agent",
                &session.agent,
                "--cwd",
            ])
            .arg(&cwd)
            .env("CLAW_RUN_TOKEN", &session.token)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start claw-runner: {e}"))?;
        let pid = child.id().unwrap_or_default();
        let hosted = Hosted {
            run_id: session.run_id.clone(),
            pid,
            token: session.token.clone(),
            workspace: cwd.display().to_string(),
        };
        if let Err(e) = hosted.save(&self.config.state_dir) {
            tracing::warn!(
                RUN_ID = %session.run_id,
                "cannot keep run {} in the state directory ({e}): a restart of this service will not find it",
                session.run_id
            );
        }
        self.sessions.insert(session.run_id.clone(), hosted);
        tracing::info!(
            RUN_ID = %session.run_id,
            "started run {} in {} (pid {pid})",
            session.run_id,
            cwd.display()
        );
        let ended = self.ended_tx.clone();
        let run_id = session.run_id.clone();
        tokio::spawn(async move {
            let code = child.wait().await.ok().and_then(|s| s.code());
            let _ = ended.send((run_id, code));
        });
        Ok(())
    }
}

async fn send(socket: &mut WebSocket, message: &HostMessage) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|e| e.to_string())?;
    socket
        .send(Message::text(text))
        .await
        .map_err(|e| e.to_string())
}

async fn session(mut socket: WebSocket, host: &mut Host, stop: &mut Stop) -> Ended {
    if let Err(e) = send(&mut socket, &host.hello()).await {
        return Ended::Lost(e);
    }
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.tick().await;
    loop {
        tokio::select! {
            _ = beat.tick() => {
                if let Err(e) = send(&mut socket, &HostMessage::Heartbeat).await {
                    return Ended::Lost(e);
                }
            }
            Some((run_id, code)) = host.ended.recv() => {
                if let Some(hosted) = host.sessions.remove(&run_id) {
                    let config = host.config.clone();
                    tokio::spawn(async move { settle(&config, &hosted, code).await }.in_current_span());
                }
                tracing::info!(
                    RUN_ID = %run_id,
                    "run {run_id} ended ({})",
                    code.map_or_else(|| "no exit status".to_owned(), |c| format!("exit {c}"))
                );
                if let Err(e) = send(&mut socket, &host.hello()).await {
                    return Ended::Lost(e);
                }
            }
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<GatewayMessage>(&text) {
                    Ok(GatewayMessage::Welcome { name, .. }) => {
                        tracing::info!("connected as host {name}");
                    }
                    Ok(GatewayMessage::Start(start)) => {
                        let error = host.start(&start).err();
                        if let Some(why) = &error {
                            tracing::warn!(RUN_ID = %start.run_id, "refused to start run {}: {why}", start.run_id);
                        }
                        let answer = HostMessage::StartAnswer { run_id: start.run_id.clone(), error };
                        if let Err(e) = send(&mut socket, &answer).await {
                            return Ended::Lost(e);
                        }
                        if let Err(e) = send(&mut socket, &host.hello()).await {
                            return Ended::Lost(e);
                        }
                    }
                    Err(e) => tracing::warn!("the gateway sent what this version does not know: {e}"),
                },
                Some(Ok(Message::Close(_))) | None => return Ended::Lost("the gateway closed the connection".to_owned()),
                Some(Err(e)) => return Ended::Lost(e.to_string()),
                Some(Ok(_)) => {}
            },
            () = stop.wait() => {
                let _ = socket.send(Message::Close(None)).await;
                return Ended::Stopping;
            }
        }
    }
}

/// SIGTERM or SIGINT.
struct Stop {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Stop {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Runs until stopped (exit 0) or refused by the gateway ([`EXIT_REFUSED`]).
pub async fn serve(config: Config, config_file: Option<PathBuf>) -> anyhow::Result<i32> {
    crate::journal::init();
    // Every line of the service names the host (the journal's HOST=).
    let name = config
        .host_name
        .clone()
        .or_else(|| config.host_id.clone())
        .unwrap_or_else(|| "(not enrolled)".to_owned());
    let span = tracing::info_span!("host", HOST = %name);
    run(config, config_file).instrument(span).await
}

async fn run(config: Config, config_file: Option<PathBuf>) -> anyhow::Result<i32> {
    let Some(host_id) = config.host_id.clone() else {
        tracing::error!(
            "this host is not enrolled (it signs with the gateway's HMAC secret): \
             ask an administrator for an enrolment token (clawctl hosts add NAME) and run \
             claw-runner enroll --gateway URL --token TOKEN"
        );
        return Ok(EXIT_NOT_ENROLLED);
    };
    let mut stop = Stop::new()?;
    let tls = Arc::new(crate::tls::client_config(&config)?);
    let listed = workspaces(&config);
    let info = discover(&config, &listed).await;
    let (ended_tx, ended) = mpsc::unbounded_channel();
    let mut host = Host {
        workspaces: listed,
        config: config.clone(),
        config_file,
        info,
        sessions: HashMap::new(),
        ended_tx,
        ended,
    };
    // Sessions a service before this one started run on (they are not
    // its children): watch those still there, settle those gone.
    for hosted in Hosted::found(&config.state_dir) {
        if hosted.alive() {
            tracing::info!(
                RUN_ID = %hosted.run_id,
                "run {} is still running here (pid {}); watching it",
                hosted.run_id,
                hosted.pid
            );
            watch_adopted(&hosted, host.ended_tx.clone());
            host.sessions.insert(hosted.run_id.clone(), hosted);
        } else {
            let config = config.clone();
            tokio::spawn(async move { settle(&config, &hosted, None).await }.in_current_span());
        }
    }
    let mut backoff = FIRST_BACKOFF;
    loop {
        match connect(&config, &tls, &host_id).await {
            Ok(socket) => {
                backoff = FIRST_BACKOFF;
                match session(socket, &mut host, &mut stop).await {
                    Ended::Stopping => return Ok(0),
                    Ended::Lost(why) => {
                        tracing::warn!("connection to the gateway lost ({why}); reconnecting");
                    }
                }
            }
            Err(GatewayError::Refused {
                status: 401 | 403,
                message,
            }) => {
                tracing::error!("the gateway refused this host: {message}");
                return Ok(EXIT_REFUSED);
            }
            Err(e) => {
                tracing::warn!(
                    "cannot reach the gateway at {} ({e}); trying again in {} s",
                    config.gateway_url,
                    backoff.as_secs()
                );
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.wait() => return Ok(0),
        }
        backoff = (backoff * 2).min(MOST_BACKOFF);
    }
}
