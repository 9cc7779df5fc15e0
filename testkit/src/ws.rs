//! The browser's WebSocket (`/ws`), JSON messages with a time limit.

use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// A browser WebSocket.
pub struct Ws {
    inner:
        tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
}

/// Opens the browser WebSocket on a port, trusting one certificate (PEM);
/// the `connected` greeting is read.
pub async fn websocket_to(port: u16, pem: &[u8], session: &str) -> Ws {
    let mut ws = try_websocket_to(port, pem, session)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(ws.next().await["type"], "connected");
    ws
}

/// Opens the browser WebSocket on a port, trusting one certificate (PEM);
/// nothing is read yet.
pub async fn try_websocket_to(port: u16, pem: &[u8], session: &str) -> anyhow::Result<Ws> {
    let tls = crate::connect_tls(port, pem).await?;
    let url = format!("wss://localhost:{port}/ws?token={session}");
    let (inner, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .context("websocket handshake")?;
    Ok(Ws { inner })
}

impl Ws {
    pub async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.inner.send(Message::text(text)).await.expect("ws send");
    }

    /// The next JSON message; None when the socket closed, failed or was
    /// silent for `within` (a follower that reconnects).
    pub async fn try_next(&mut self, within: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(within, self.inner.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Text(text) => return serde_json::from_str(&text).ok(),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// The next JSON message (fails the test after 10 s of silence).
    pub async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.inner.next())
                .await
                .expect("websocket message within 10 s")
                .expect("websocket open")
                .expect("websocket message");
            if let Message::Text(text) = msg {
                return serde_json::from_str(&text).expect("json message");
            }
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn next_close(&mut self) -> Option<u16> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.inner.next())
                .await
                .expect("close within 10 s");
            match msg {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| u16::from(f.code));
                }
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    }

    /// The next message of the given type, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let msg = self.next().await;
            if msg["type"] == kind {
                return msg;
            }
        }
    }

    /// The next message of the given type, as a `T` (such as
    /// [`claw_proto::wire::ServerMessage`]).
    pub async fn next_as<T: serde::de::DeserializeOwned>(&mut self, kind: &str) -> T {
        let msg = self.next_of(kind).await;
        crate::gateway::decode(&format!("a {kind} message"), msg)
    }
}
