//! The browser WebSocket `/ws`: subscribe to runs, get their stored events
//! after a sequence, then live ones, in order, without gaps or duplicates.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use claw_proto::wire::{CLOSE_SESSION_CHANGED, CLOSE_SESSION_ENDED, ClientMessage, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::extract::token_from;
use crate::app::App;
use crate::http::query;
use crate::server::PeerAddr;
use crate::service::{Caller, ServiceError, ServiceResult, SessionCheck, SessionUser, encode};

/// Messages queued for one browser before its subscriptions wait.
const OUTBOX_CAPACITY: usize = 256;

/// One run a socket follows. Dropped (unsubscribed, replaced, the socket
/// gone), it stops the follower and frees the user's slot at once, not
/// whenever the aborted task is next polled.
struct Following {
    task: JoinHandle<()>,
    _slot: crate::hub::UserSlot,
}

impl Drop for Following {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Deserialize)]
pub struct WsQuery {
    #[serde(default)]
    token: Option<String>,
}

pub async fn upgrade(
    State(app): State<Arc<App>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    headers: HeaderMap,
    peer: Option<axum::Extension<PeerAddr>>,
    q: Result<Query<WsQuery>, QueryRejection>,
) -> ServiceResult<Response> {
    let q = query(q)?;
    let token = token_from(&headers, q.token.as_deref());
    let ip = peer.map(|axum::Extension(p)| p.0.ip().to_string());
    let session = app.authenticate(token, ip).await?;
    let ws = ws.map_err(|e| ServiceError::invalid(format!("WebSocket upgrade required: {e}")))?;
    // Every role may watch runs; the session is checked before the upgrade,
    // whenever sessions change, and before every subscription.
    tracing::debug!(USER = %session.user.username, "browser WebSocket opened");
    Ok(ws.on_upgrade(move |socket| connection(app, socket, session)))
}

fn close_frame(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }
}

/// `None` while the session stands; else the frame to close with.
async fn session_gone(app: &App, session: &SessionUser) -> Option<CloseFrame> {
    match app.check_session(session).await {
        Ok(SessionCheck::Valid) => None,
        Ok(SessionCheck::Changed) => Some(close_frame(
            CLOSE_SESSION_CHANGED,
            "your role changed: connect again",
        )),
        Ok(SessionCheck::Ended) => Some(close_frame(
            CLOSE_SESSION_ENDED,
            "the session ended: log in again",
        )),
        Err(e) => {
            tracing::warn!(error = %e, "cannot check a WebSocket's session; closing it");
            Some(close_frame(
                close_code::ERROR,
                "cannot check the session: connect again",
            ))
        }
    }
}

/// When the session expires, as an instant of the runtime's clock.
fn expiry_deadline(expires_at_ms: i64) -> tokio::time::Instant {
    let left = expires_at_ms.saturating_sub(crate::clock::now_ms());
    tokio::time::Instant::now() + std::time::Duration::from_millis(u64::try_from(left).unwrap_or(0))
}

async fn connection(app: Arc<App>, socket: WebSocket, owner: SessionUser) {
    let _connected = app.hub.client();
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut outgoing) = mpsc::channel::<Utf8Bytes>(OUTBOX_CAPACITY);
    let (closing, mut close_frame_rx) = tokio::sync::oneshot::channel::<CloseFrame>();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                // A pending close goes before anything else.
                biased;
                frame = &mut close_frame_rx => {
                    if let Ok(frame) = frame {
                        let _ = sink.send(Message::Close(Some(frame))).await;
                    }
                    break;
                }
                text = outgoing.recv() => match text {
                    Some(text) => if !write_queued(&mut sink, &mut outgoing, text).await { return },
                    None => break,
                },
            }
        }
        let _ = sink.close().await;
    });
    let mut shutdown = app.shutdown.clone();
    let mut sessions = app.hub.watch_sessions();
    let expiry = tokio::time::sleep_until(expiry_deadline(owner.expires_at));
    tokio::pin!(expiry);
    let mut subscriptions: HashMap<String, Following> = HashMap::new();
    let mut all_runs = app.hub.subscribe_all();
    let _ = outbox.send(encode(&ServerMessage::Connected)).await;
    let close = loop {
        tokio::select! {
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let _ = outbox.send(error("binary messages are not understood")).await;
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break None,
                };
                if let Err(frame) = handle(&app, &owner, &text, &outbox, &mut subscriptions).await {
                    break Some(frame);
                }
            }
            status = all_runs.recv() => match status {
                // A followed run's status comes in order with its events.
                Ok(note) => if !(note.followers_have_it && subscriptions.contains_key(&*note.run_id)) {
                    let _ = outbox.try_send(note.message);
                },
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break None,
            },
            changed = sessions.changed() => {
                if changed.is_err() {
                    break None;
                }
                if let Some(frame) = session_gone(&app, &owner).await {
                    break Some(frame);
                }
            }
            () = &mut expiry => {
                break Some(close_frame(CLOSE_SESSION_ENDED, "the session expired: log in again"));
            }
            () = shutdown.stopped() => {
                // A clean close tells the browser to reconnect, not to report an error.
                break Some(close_frame(close_code::AWAY, "clawd is shutting down"));
            }
        }
    };
    subscriptions.clear();
    if let Some(frame) = close {
        if frame.code != close_code::AWAY {
            tracing::info!(USER = %owner.user.username, code = frame.code, reason = %frame.reason, "browser WebSocket closed");
        }
        let _ = closing.send(frame);
    }
    drop(outbox);
    let _ = writer.await;
}

/// Most messages written before one flush.
const FLUSH_BATCH: usize = 256;

/// Writes one message and whatever else is already queued, then flushes
/// once: a replay of thousands of events goes out in few TLS records and
/// system calls instead of one of each per event. False when the browser
/// is gone.
async fn write_queued(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    queue: &mut mpsc::Receiver<Utf8Bytes>,
    first: Utf8Bytes,
) -> bool {
    if sink.feed(Message::Text(first)).await.is_err() {
        return false;
    }
    for _ in 1..FLUSH_BATCH {
        let Ok(text) = queue.try_recv() else { break };
        if sink.feed(Message::Text(text)).await.is_err() {
            return false;
        }
    }
    sink.flush().await.is_ok()
}

fn error(message: &str) -> Utf8Bytes {
    encode(&ServerMessage::Error {
        message: message.to_owned(),
    })
}

/// Acts on one browser message; `Err` with the close frame when the
/// socket must close (its session ended).
async fn handle(
    app: &Arc<App>,
    owner: &SessionUser,
    text: &str,
    outbox: &mpsc::Sender<Utf8Bytes>,
    subscriptions: &mut HashMap<String, Following>,
) -> Result<(), CloseFrame> {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            let _ = outbox.send(error(&format!("malformed message: {e}"))).await;
            return Ok(());
        }
    };
    match message {
        ClientMessage::Ping => {
            let _ = outbox.send(encode(&ServerMessage::Pong)).await;
        }
        ClientMessage::Subscribe {
            run_id,
            after_sequence,
            batch,
        } => {
            if let Some(frame) = session_gone(app, owner).await {
                return Err(frame);
            }
            let caller = Caller::User(owner.clone());
            if let Err(e) = app.may_follow(&caller, &run_id).await {
                let _ = outbox.send(error(&e.message)).await;
                return Ok(());
            }
            let settings = app.settings();
            let per_socket = settings.config.subscriptions_per_socket;
            // A subscription replaced frees its slot for the new one.
            let replaced = subscriptions.remove(&run_id).is_some();
            if !replaced && per_socket != 0 && subscriptions.len() >= per_socket {
                let message = format!(
                    "this connection already follows {per_socket} runs, the most it may \
                     (subscriptions_per_socket): unsubscribe from one first"
                );
                let _ = outbox.send(error(&message)).await;
                return Ok(());
            }
            let per_user = settings.config.subscriptions_per_user;
            let Some(slot) = app.hub.user_slot(&owner.user.id, per_user) else {
                let message = format!(
                    "you already follow {per_user} runs over all your connections, the most \
                     you may (subscriptions_per_user): unsubscribe from some first"
                );
                let _ = outbox.send(error(&message)).await;
                return Ok(());
            };
            let _ = outbox
                .send(encode(&ServerMessage::Subscribed {
                    run_id: run_id.clone(),
                }))
                .await;
            let app = Arc::clone(app);
            let follower_run = run_id.clone();
            let follower_outbox = outbox.clone();
            let task = tokio::spawn(async move {
                app.follow(
                    follower_run,
                    after_sequence.unwrap_or(0),
                    batch,
                    follower_outbox,
                )
                .await;
            });
            // Counted against the user's cap for as long as it follows.
            subscriptions.insert(run_id, Following { task, _slot: slot });
        }
        ClientMessage::Unsubscribe { run_id } => {
            let ids: Vec<String> = match run_id {
                Some(id) => vec![id],
                None => subscriptions.keys().cloned().collect(),
            };
            for id in ids {
                if subscriptions.remove(&id).is_some() {
                    let _ = outbox
                        .send(encode(&ServerMessage::Unsubscribed { run_id: id }))
                        .await;
                }
            }
        }
    }
    Ok(())
}
