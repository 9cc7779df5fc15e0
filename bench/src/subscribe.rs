//! A browser stand-in: a WebSocket subscriber of one run that times every
//! event from the moment its runner sent it (the send time rides in the
//! event's data) and notes gaps and repeats.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::spawn::Target;

/// How long a subscriber waits for stragglers once the senders are done.
const QUIET: Duration = Duration::from_secs(2);

pub struct Received {
    pub latencies_ns: Vec<u64>,
    pub distinct: u64,
    pub duplicated: u64,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

pub async fn connect(target: &Target, session: &str) -> anyhow::Result<Socket> {
    // Instance A, or B of two (--instances 2).
    let tls = target.browsers.connect_tls().await?;
    let url = format!("wss://{}/ws?token={session}", target.browsers.host());
    let (socket, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .context("WebSocket handshake")?;
    Ok(socket)
}

/// A browser that stopped reading: subscribes, then holds the socket
/// without reading until the senders are done. clawd must neither buffer
/// for it without limit nor slow anyone else down.
pub async fn stall(
    mut socket: Socket,
    run_id: String,
    mut done: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    socket
        .send(Message::text(
            serde_json::json!({ "type": "subscribe", "runId": run_id }).to_string(),
        ))
        .await?;
    while !*done.borrow() {
        if done.changed().await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Subscribes, reports readiness, then reads until `expected` distinct
/// events arrived, or, once `done` says the senders finished, until the
/// socket has been quiet for two seconds.
pub async fn follow(
    mut socket: Socket,
    run_id: String,
    expected: u64,
    epoch: Instant,
    ready: tokio::sync::oneshot::Sender<()>,
    mut done: watch::Receiver<bool>,
) -> anyhow::Result<Received> {
    socket
        .send(Message::text(
            serde_json::json!({ "type": "subscribe", "runId": run_id }).to_string(),
        ))
        .await?;
    let mut ready = Some(ready);
    let mut seen = HashSet::new();
    let mut received = Received {
        latencies_ns: Vec::with_capacity(expected.min(1 << 20) as usize),
        distinct: 0,
        duplicated: 0,
    };
    let mut deadline: Option<()> = None;
    loop {
        if received.distinct >= expected {
            break;
        }
        let quiet = deadline.is_some();
        let next = async {
            if quiet {
                tokio::time::timeout(QUIET, socket.next())
                    .await
                    .ok()
                    .flatten()
            } else {
                socket.next().await
            }
        };
        tokio::select! {
            message = next => {
                let Some(message) = message else { break };
                let Message::Text(text) = message? else { continue };
                let value: serde_json::Value = serde_json::from_str(&text)?;
                match value["type"].as_str() {
                    Some("subscribed") => {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                    }
                    Some("event") => {
                        let now = epoch.elapsed().as_nanos() as u64;
                        let sequence = value["sequence"].as_u64().unwrap_or_default();
                        let sent = value["data"].as_str().and_then(sent_at).unwrap_or(now);
                        if seen.insert(sequence) {
                            received.distinct += 1;
                            received.latencies_ns.push(now.saturating_sub(sent));
                        } else {
                            received.duplicated += 1;
                        }
                    }
                    _ => {}
                }
            }
            _ = done.changed(), if deadline.is_none() => {
                deadline = Some(());
            }
        }
    }
    Ok(received)
}

/// The send time an event carries: the first 20 digits of a `stdout` line,
/// or of a `tool_result`'s output.
fn sent_at(data: &str) -> Option<u64> {
    let stamp = |text: &str| text.get(..20)?.parse().ok();
    stamp(data).or_else(|| {
        let result: claw_proto::agent::ToolResult = serde_json::from_str(data).ok()?;
        stamp(&result.output)
    })
}
