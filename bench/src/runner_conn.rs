//! One runner's keep-alive HTTPS connection, on hyper's HTTP/1.1 client
//! directly: a load generator must cost less than the server it measures,
//! and a pooling client (reqwest) spends more CPU per request than clawd.
//! The connection is driven by the runner's own task, inside each request,
//! rather than by a task of its own: a request then wakes no other task.

use std::pin::Pin;

use anyhow::{Context, bail};
use bytes::Bytes;
use claw_proto::signing::{self, SignedParts};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::spawn::Target;

type Connection = http1::Connection<TokioIo<TlsStream<TcpStream>>, Full<Bytes>>;

pub struct RunnerConn {
    sender: SendRequest<Full<Bytes>>,
    connection: Pin<Box<Connection>>,
    /// The connection future has finished and must not be polled again.
    closed: bool,
    host: String,
}

impl RunnerConn {
    pub async fn open(target: &Target) -> anyhow::Result<Self> {
        // Instance A, or HAProxy in front of two (--instances 2).
        let tls = target.runners.connect_tls().await?;
        let (sender, connection) = http1::handshake(TokioIo::new(tls))
            .await
            .context("HTTP/1.1 handshake")?;
        Ok(Self {
            sender,
            connection: Box::pin(connection),
            closed: false,
            host: target.runners.host(),
        })
    }

    /// GETs `path` with no body; an error carries the status and body.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<()> {
        let request = hyper::Request::get(path)
            .header("host", &self.host)
            .body(Full::new(Bytes::new()))?;
        self.send(request).await
    }

    /// POSTs a signed runner request; an error carries the status and body.
    pub async fn post_signed(
        &mut self,
        secret: &[u8],
        parts: &SignedParts<'_>,
    ) -> anyhow::Result<()> {
        let signature = signing::sign(secret, parts);
        let request = hyper::Request::post(parts.path)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .header(signing::HEADER_SIGNATURE, signature)
            .header(signing::HEADER_TIMESTAMP, parts.timestamp)
            .header(signing::HEADER_NONCE, parts.nonce)
            .header(signing::HEADER_RUN_ID, parts.run_id)
            .header(signing::HEADER_CAPABILITY_TOKEN, parts.capability_token)
            .body(Full::new(Bytes::copy_from_slice(parts.body)))?;
        self.send(request).await
    }

    async fn send(&mut self, request: hyper::Request<Full<Bytes>>) -> anyhow::Result<()> {
        if self.closed {
            bail!("the connection is closed");
        }
        let sender = &mut self.sender;
        let exchange = async {
            sender.ready().await.context("connection closed")?;
            let reply = sender.send_request(request).await?;
            let status = reply.status();
            let body = reply.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        };
        // The connection reads and writes the socket while the exchange
        // waits on it; it ends only when the server closes or on an error.
        let (status, body) = tokio::select! {
            exchanged = exchange => exchanged?,
            ended = &mut self.connection => {
                self.closed = true;
                match ended {
                    Ok(()) => bail!("the gateway closed the connection"),
                    Err(e) => bail!("connection failed: {e}"),
                }
            }
        };
        if !status.is_success() {
            bail!("{status} {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }
}
