//! The runner's signed WebSocket `/api/runner/ws`: the gateway pushes a note
//! whenever a command (or a stop) is queued for the run, so the runner
//! fetches it at once instead of at its next poll. Polling keeps working.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

use super::{ApiError, Shared, runner};
use crate::hub::{Live, RecvError};

pub async fn upgrade(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let auth = runner::verify(&state, &method, &uri, &headers, b"")?;
    let run_id = auth.run_id.clone();
    state.store.runner_check(auth).await?;
    let (mut parts, _) = request.into_parts();
    let ws = <WebSocketUpgrade as axum::extract::FromRequestParts<Shared>>::from_request_parts(
        &mut parts, &state,
    )
    .await
    .map_err(|e| ApiError::bad_request(format!("WebSocket upgrade required: {e}")))?;
    state.hub.runner_seen(&run_id);
    Ok(ws.on_upgrade(move |socket| push(state, socket, run_id)))
}

/// Forwards the run's command notices until either side goes away.
async fn push(state: Shared, mut socket: WebSocket, run_id: String) {
    let mut live = state.hub.subscribe(&run_id);
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            notice = live.recv() => match notice {
                Ok(Live::Notice(text)) => {
                    if socket.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                    state.hub.runner_seen(&run_id);
                }
                Ok(Live::Event { .. }) => {}
                // Missed notices: a nudge makes the runner fetch everything.
                Err(RecvError::Lagged(_)) => {
                    if socket.send(Message::Text("{\"type\":\"notice\",\"message\":\"lagged\"}".into())).await.is_err() {
                        break;
                    }
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => state.hub.runner_seen(&run_id),
            },
            () = crate::server::until_stopped(&mut shutdown) => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
}
