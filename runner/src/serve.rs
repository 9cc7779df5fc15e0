//! `claw-runner serve`: an enrolled host's long-running service. It keeps
//! one signed WebSocket to the gateway, says what it can run (agents on
//! PATH, its workspaces, its session limit), sends a heartbeat every few
//! seconds, and reconnects with backoff when the connection goes. A
//! gateway that refuses the host (revoked, removed) ends it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use claw_proto::hosts::{GatewayMessage, HEADER_HOST_ID, HostAgent, HostInfo, HostMessage};
use claw_proto::signing::{self, SignedParts};
use futures_util::{SinkExt, StreamExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio_tungstenite::tungstenite::Message;

use crate::config::Config;
use crate::gateway::{GatewayError, WebSocket, new_nonce, open_websocket, unix_now};

const PATH: &str = "/api/host/ws";
const HEARTBEAT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MOST_BACKOFF: Duration = Duration::from_secs(30);
/// The exit status when the gateway refuses this host for good; the
/// service unit does not restart on it (`RestartPreventExitStatus=`).
pub const EXIT_REFUSED: i32 = 78;

/// What the host can run, as found now.
async fn discover(config: &Config) -> HostInfo {
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
        _ => eprintln!(
            "claw-runner: {} --version did not answer: claude cannot be started here",
            config.claude_program
        ),
    }
    HostInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        agents,
        workspaces: workspaces(config)
            .iter()
            .map(|w| w.display().to_string())
            .collect(),
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
                eprintln!(
                    "claw-runner: workspace {} is not a directory here; left out",
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

async fn session(mut socket: WebSocket, info: &HostInfo, stop: &mut Stop) -> Ended {
    let hello = HostMessage::Hello { info: info.clone() };
    let Ok(text) = serde_json::to_string(&hello) else {
        return Ended::Lost("cannot write the hello".to_owned());
    };
    if let Err(e) = socket.send(Message::text(text)).await {
        return Ended::Lost(e.to_string());
    }
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.tick().await;
    loop {
        tokio::select! {
            _ = beat.tick() => {
                let text = serde_json::to_string(&HostMessage::Heartbeat).unwrap_or_default();
                if let Err(e) = socket.send(Message::text(text)).await {
                    return Ended::Lost(e.to_string());
                }
            }
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<GatewayMessage>(&text) {
                    Ok(GatewayMessage::Welcome { name, .. }) => {
                        eprintln!("claw-runner: connected as host {name}");
                    }
                    Err(e) => eprintln!("claw-runner: the gateway sent what this version does not know: {e}"),
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
pub async fn serve(config: Config) -> anyhow::Result<i32> {
    let Some(host_id) = config.host_id.clone() else {
        anyhow::bail!(
            "this host is not enrolled: ask an administrator for an enrolment token \
             (clawctl hosts add NAME) and run claw-runner enroll --gateway URL --token TOKEN"
        );
    };
    let mut stop = Stop::new()?;
    let tls = Arc::new(crate::tls::client_config(&config)?);
    let info = discover(&config).await;
    let mut backoff = FIRST_BACKOFF;
    loop {
        match connect(&config, &tls, &host_id).await {
            Ok(socket) => {
                backoff = FIRST_BACKOFF;
                match session(socket, &info, &mut stop).await {
                    Ended::Stopping => return Ok(0),
                    Ended::Lost(why) => {
                        eprintln!(
                            "claw-runner: connection to the gateway lost ({why}); reconnecting"
                        );
                    }
                }
            }
            Err(GatewayError::Refused {
                status: 401 | 403,
                message,
            }) => {
                eprintln!("claw-runner: the gateway refused this host: {message}");
                return Ok(EXIT_REFUSED);
            }
            Err(e) => {
                eprintln!(
                    "claw-runner: cannot reach the gateway at {} ({e}); trying again in {} s",
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
