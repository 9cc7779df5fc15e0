//! The browser WebSocket `/ws`: subscribe to runs, get their stored events
//! after a sequence, then live ones, in order, without gaps or duplicates.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use claw_proto::wire::{
    BatchedEvent, CLOSE_SESSION_CHANGED, CLOSE_SESSION_ENDED, ClientMessage, ServerMessage,
};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::error::query;
use super::session::{self, Authed, ClientIp};
use super::{ApiError, Shared};
use crate::hub::{Hub, Live, RecvError, encode, event_message};
use crate::store::{EventRow, Store};

/// Messages queued for one browser before its subscriptions wait.
const OUTBOX_CAPACITY: usize = 256;
/// Events read from the store per page while catching up.
const REPLAY_PAGE: u32 = 1000;

#[derive(Deserialize)]
pub struct WsQuery {
    #[serde(default)]
    token: Option<String>,
}

pub async fn upgrade(
    State(state): State<Shared>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    q: Result<Query<WsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let token = session::token_from(&headers, q.token.as_deref());
    let user = session::authenticate(&state, token, ip).await?;
    let ws = ws.map_err(|e| ApiError::bad_request(format!("WebSocket upgrade required: {e}")))?;
    // Every role may watch runs; the session is checked before the upgrade,
    // whenever sessions change, and before every subscription.
    tracing::debug!(USER = %user.user.username, "browser WebSocket opened");
    Ok(ws.on_upgrade(move |socket| connection(state, socket, user)))
}

/// Whether the session a socket was opened with still stands.
enum SessionCheck {
    Valid,
    Closed(CloseFrame),
}

fn close_frame(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }
}

async fn check_session(state: &Shared, owner: &Authed) -> SessionCheck {
    match state.store.session_user(owner.session_hash.clone()).await {
        Ok(Some((user, _))) if user.role == owner.user.role => SessionCheck::Valid,
        Ok(Some(_)) => SessionCheck::Closed(close_frame(
            CLOSE_SESSION_CHANGED,
            "your role changed: connect again",
        )),
        Ok(None) => SessionCheck::Closed(close_frame(
            CLOSE_SESSION_ENDED,
            "the session ended: log in again",
        )),
        Err(e) => {
            tracing::warn!(error = %e, "cannot check a WebSocket's session; closing it");
            SessionCheck::Closed(close_frame(
                close_code::ERROR,
                "cannot check the session: connect again",
            ))
        }
    }
}

/// When the session expires, as an instant of the runtime's clock.
fn expiry_deadline(expires_at_ms: i64) -> tokio::time::Instant {
    let left = expires_at_ms.saturating_sub(crate::store::now_ms());
    tokio::time::Instant::now() + std::time::Duration::from_millis(u64::try_from(left).unwrap_or(0))
}

async fn connection(state: Shared, socket: WebSocket, owner: Authed) {
    state.hub.client_connected();
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
    let mut shutdown = state.shutdown.clone();
    let mut sessions = state.hub.watch_sessions();
    let expiry = tokio::time::sleep_until(expiry_deadline(owner.expires_at));
    tokio::pin!(expiry);
    let mut subscriptions: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut all_runs = state.hub.subscribe_all();
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
                if let Err(frame) = handle(&state, &owner, &text, &outbox, &mut subscriptions).await {
                    break Some(frame);
                }
            }
            status = all_runs.recv() => match status {
                Ok(text) => { let _ = outbox.try_send(text); }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break None,
            },
            changed = sessions.changed() => {
                if changed.is_err() {
                    break None;
                }
                if let SessionCheck::Closed(frame) = check_session(&state, &owner).await {
                    break Some(frame);
                }
            }
            () = &mut expiry => {
                break Some(close_frame(CLOSE_SESSION_ENDED, "the session expired: log in again"));
            }
            () = crate::server::until_stopped(&mut shutdown) => {
                // A clean close tells the browser to reconnect, not to report an error.
                break Some(close_frame(close_code::AWAY, "clawd is shutting down"));
            }
        }
    };
    for (_, task) in subscriptions.drain() {
        task.abort();
    }
    if let Some(frame) = close {
        if frame.code != close_code::AWAY {
            tracing::info!(USER = %owner.user.username, code = frame.code, reason = %frame.reason, "browser WebSocket closed");
        }
        let _ = closing.send(frame);
    }
    drop(outbox);
    let _ = writer.await;
    state.hub.client_disconnected();
}

/// An `events` message is closed once its data passes this size.
const BATCH_BYTES: usize = 256 * 1024;

/// Sends a page of stored events as `events` messages of bounded size.
async fn send_batched(
    run_id: &str,
    page: &[EventRow],
    outbox: &mpsc::Sender<Utf8Bytes>,
) -> Result<(), ()> {
    let mut events = Vec::new();
    let mut bytes = 0;
    for (i, event) in page.iter().enumerate() {
        bytes += event.data.len();
        events.push(BatchedEvent {
            event_id: event.id,
            sequence: event.sequence,
            event_type: event.kind,
            data: event.data.clone(),
            timestamp: crate::store::iso(event.timestamp),
        });
        if bytes >= BATCH_BYTES || i + 1 == page.len() {
            let message = ServerMessage::Events {
                run_id: run_id.to_owned(),
                events: std::mem::take(&mut events),
            };
            outbox.send(encode(&message)).await.map_err(|_| ())?;
            bytes = 0;
        }
    }
    Ok(())
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
    state: &Shared,
    owner: &Authed,
    text: &str,
    outbox: &mpsc::Sender<Utf8Bytes>,
    subscriptions: &mut HashMap<String, JoinHandle<()>>,
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
            if let SessionCheck::Closed(frame) = check_session(state, owner).await {
                return Err(frame);
            }
            if let Err(e) = state.store.run(run_id.clone()).await {
                let _ = outbox.send(error(&ApiError::from(e).message)).await;
                return Ok(());
            }
            let per_socket = state.config.subscriptions_per_socket;
            if let Some(old) = subscriptions.remove(&run_id) {
                old.abort();
            } else if per_socket != 0 && subscriptions.len() >= per_socket {
                let message = format!(
                    "this connection already follows {per_socket} runs, the most it may \
                     (subscriptions_per_socket): unsubscribe from one first"
                );
                let _ = outbox.send(error(&message)).await;
                return Ok(());
            }
            let per_user = state.config.subscriptions_per_user;
            let Some(slot) = state.hub.user_slot(&owner.user.id, per_user) else {
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
            let follower = follow(
                state.store.clone(),
                Arc::clone(&state.hub),
                run_id.clone(),
                after_sequence.unwrap_or(0),
                batch,
                outbox.clone(),
            );
            let task = tokio::spawn(async move {
                // Counted against the user's cap for as long as it follows.
                let _slot = slot;
                follower.await;
            });
            subscriptions.insert(run_id, task);
        }
        ClientMessage::Unsubscribe { run_id } => {
            let ids: Vec<String> = match run_id {
                Some(id) => vec![id],
                None => subscriptions.keys().cloned().collect(),
            };
            for id in ids {
                if let Some(task) = subscriptions.remove(&id) {
                    task.abort();
                    let _ = outbox
                        .send(encode(&ServerMessage::Unsubscribed { run_id: id }))
                        .await;
                }
            }
        }
    }
    Ok(())
}

/// Streams one run to one browser: replay from the store, then live.
pub async fn follow(
    store: Store,
    hub: Arc<Hub>,
    run_id: String,
    after: u64,
    batch: bool,
    outbox: mpsc::Sender<Utf8Bytes>,
) {
    // Subscribe before reading the store, so nothing committed in between is
    // missed; duplicates are dropped by sequence.
    let mut live = hub.subscribe(&run_id);
    let mut last = after;
    if catch_up(&store, &run_id, &mut last, batch, &outbox)
        .await
        .is_err()
    {
        return;
    }
    loop {
        match live.recv().await {
            Ok(Live::Event { sequence, json }) => {
                if sequence <= last {
                    continue;
                }
                if sequence == last + 1 {
                    if outbox.send(json).await.is_err() {
                        return;
                    }
                    last = sequence;
                } else if catch_up(&store, &run_id, &mut last, batch, &outbox)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(Live::Notice(json)) => {
                if outbox.send(json).await.is_err() {
                    return;
                }
            }
            Err(RecvError::Lagged(skipped)) => {
                let notice = encode(&ServerMessage::Notice {
                    message: format!(
                        "fell behind by {skipped} messages; catching up from the store"
                    ),
                });
                if outbox.send(notice).await.is_err()
                    || catch_up(&store, &run_id, &mut last, batch, &outbox)
                        .await
                        .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Sends the stored events after `after`, then returns.
pub async fn replay(store: &Store, run_id: &str, after: u64, outbox: &mpsc::Sender<Utf8Bytes>) {
    let mut last = after;
    let _ = catch_up(store, run_id, &mut last, false, outbox).await;
}

/// Sends every stored event after `last`, advancing it.
async fn catch_up(
    store: &Store,
    run_id: &str,
    last: &mut u64,
    batch: bool,
    outbox: &mpsc::Sender<Utf8Bytes>,
) -> Result<(), ()> {
    loop {
        let page = match store
            .events_after(run_id.to_owned(), *last, REPLAY_PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                let _ = outbox.send(error(&ApiError::from(e).message)).await;
                return Err(());
            }
        };
        let full = page.len() == REPLAY_PAGE as usize;
        if batch {
            send_batched(run_id, &page, outbox).await?;
            if let Some(event) = page.last() {
                *last = event.sequence;
            }
        } else {
            for event in &page {
                outbox
                    .send(encode(&event_message(event)))
                    .await
                    .map_err(|_| ())?;
                *last = event.sequence;
            }
        }
        if !full {
            return Ok(());
        }
    }
}
