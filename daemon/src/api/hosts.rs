//! `/api/hosts`: coding hosts for people (list, add, revoke, remove), the
//! enrolment a host makes with its token, and the host's signed socket
//! `GET /api/host/ws`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use claw_proto::api::Done;
use claw_proto::hosts::{
    AddedHost, EnrollReply, EnrollRequest, GatewayMessage, HEADER_HOST_ID, HostMessage, HostView,
    NewHost,
};
use claw_proto::signing;

use super::extract::{Anyone, JsonBody, User};
use crate::app::App;
use crate::service::{ServiceError, ServiceResult, SignedRequest};

type AppState = State<Arc<App>>;

/// A host that says nothing for this long is taken for gone (it sends a
/// heartbeat every 10 s).
const SILENCE: Duration = Duration::from_secs(45);

pub async fn list(State(app): AppState, user: User) -> ServiceResult<Json<Vec<HostView>>> {
    Ok(Json(app.list_hosts(&user.caller()).await?))
}

pub async fn add(
    State(app): AppState,
    user: User,
    JsonBody(request): JsonBody<NewHost>,
) -> ServiceResult<(StatusCode, Json<AddedHost>)> {
    let added = app.add_host(&user.caller(), request).await?;
    Ok((StatusCode::CREATED, Json(added)))
}

pub async fn revoke(
    State(app): AppState,
    user: User,
    Path(name): Path<String>,
) -> ServiceResult<Json<HostView>> {
    Ok(Json(app.revoke_host(&user.caller(), name).await?))
}

pub async fn remove(
    State(app): AppState,
    user: User,
    Path(name): Path<String>,
) -> ServiceResult<Json<Done>> {
    app.remove_host(&user.caller(), name).await?;
    Ok(Json(Done::OK))
}

/// `claw-runner enroll`: the one-time token for the host's key.
pub async fn enroll(
    State(app): AppState,
    Anyone(caller): Anyone,
    JsonBody(request): JsonBody<EnrollRequest>,
) -> ServiceResult<Json<EnrollReply>> {
    Ok(Json(app.enroll_host(&caller, request).await?))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `claw-runner serve`'s socket, signed with the host's key.
pub async fn socket(State(app): AppState, request: Request) -> ServiceResult<Response> {
    let (mut parts, _) = request.into_parts();
    let (host_id, auth) = app.verify_host(&SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        body: b"",
        body_sha256: None,
        signature: header(&parts.headers, signing::HEADER_SIGNATURE),
        timestamp: header(&parts.headers, signing::HEADER_TIMESTAMP),
        nonce: header(&parts.headers, signing::HEADER_NONCE),
        run_id: None,
        capability_token: None,
        host_id: header(&parts.headers, HEADER_HOST_ID),
    })?;
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &app)
        .await
        .map_err(|e| ServiceError::invalid(format!("WebSocket upgrade required: {e}")))?;
    let host = app.host_check(host_id, auth).await?;
    Ok(ws.on_upgrade(move |socket| serve(app, socket, host)))
}

/// Reads what the host says until it goes, is cut off, or clawd stops.
async fn serve(app: Arc<App>, mut socket: WebSocket, host: crate::store::HostRow) {
    // Online once the socket is open, not when it was asked for.
    let mut connection = app.host_connected(&host).await;
    let (host_id, name) = (host.id, host.name);
    let mut shutdown = app.shutdown.clone();
    let welcome = GatewayMessage::Welcome {
        host_id: host_id.clone(),
        name: name.clone(),
    };
    if let Ok(text) = serde_json::to_string(&welcome)
        && socket.send(Message::Text(text.into())).await.is_err()
    {
        app.host_disconnected(&host_id, &name, connection.id);
        return;
    }
    loop {
        tokio::select! {
            incoming = tokio::time::timeout(SILENCE, socket.recv()) => match incoming {
                Ok(Some(Ok(Message::Text(text)))) => {
                    match serde_json::from_str::<HostMessage>(&text) {
                        Ok(HostMessage::Hello { info }) => {
                            if let Err(e) = app.host_hello(&host_id, connection.id, info).await {
                                tracing::warn!(HOST = %name, error = %e, "could not keep a host's hello");
                            }
                        }
                        Ok(HostMessage::Heartbeat) => {
                            let _ = app.host_heartbeat(&host_id).await;
                        }
                        Ok(HostMessage::StartAnswer { run_id, error }) => {
                            app.hosts.answered(&run_id, error);
                        }
                        Err(e) => {
                            tracing::warn!(HOST = %name, error = %e, "a host sent what is not a message");
                        }
                    }
                }
                Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => break,
                Ok(Some(Ok(_))) => {}
                Err(_) => {
                    tracing::warn!(HOST = %name, "a host fell silent; closing its socket");
                    break;
                }
            },
            Some(message) = connection.outbox.recv() => {
                let Ok(text) = serde_json::to_string(&message) else { continue };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            changed = connection.cut.changed() => {
                if changed.is_err() || *connection.cut.borrow() {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            }
            () = shutdown.stopped() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
    app.host_disconnected(&host_id, &name, connection.id);
}
