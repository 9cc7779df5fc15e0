//! The runner's signed WebSocket `/api/runner/ws`: the gateway pushes a note
//! whenever a command (or a stop) is queued for the run, so the runner
//! fetches it at once instead of at its next poll. Polling keeps working.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::response::Response;

use super::runner::verify;
use crate::app::App;
use crate::service::{Live, RecvError, RunSubscription, ServiceError, ServiceResult};

pub async fn upgrade(State(app): State<Arc<App>>, request: Request) -> ServiceResult<Response> {
    let (mut parts, _) = request.into_parts();
    let auth = verify(
        &app,
        parts.method.as_str(),
        parts.uri.path(),
        &parts.headers,
        b"",
    )?;
    let run_id = auth.run_id.clone();
    let live = app.runner_connect(auth).await?;
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &app)
        .await
        .map_err(|e| ServiceError::invalid(format!("WebSocket upgrade required: {e}")))?;
    Ok(ws.on_upgrade(move |socket| push(app, socket, run_id, live)))
}

/// Forwards the run's command notices until either side goes away.
async fn push(app: Arc<App>, mut socket: WebSocket, run_id: String, mut live: RunSubscription) {
    let mut shutdown = app.shutdown.clone();
    loop {
        tokio::select! {
            notice = live.recv() => match notice {
                Ok(Live::Notice(text)) => {
                    if socket.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                    app.runner_alive(&run_id);
                }
                Ok(Live::Event { .. }) => {}
                // Missed notices: a nudge makes the runner fetch everything.
                Err(RecvError::Lagged(_)) | Ok(Live::Resync) => {
                    if socket.send(Message::Text("{\"type\":\"notice\",\"message\":\"lagged\"}".into())).await.is_err() {
                        break;
                    }
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => app.runner_alive(&run_id),
            },
            () = shutdown.stopped() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
}
