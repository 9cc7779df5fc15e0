//! The public listener: accepts TCP connections, performs the TLS handshake
//! (off the accept loop) and serves HTTP/1.1 with upgrades for WebSockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::shutdown::Shutdown;
use crate::tls::SharedTlsConfig;

/// The peer address of a connection, put on each request it carries.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown begins; streams
/// that never end (a followed run) are cut after it.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits for connection tasks to finish, then cuts the rest.
async fn drain(mut connections: tokio::task::JoinSet<()>) {
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            open = connections.len(),
            "closing connections still open after the drain period"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// Serves `app` until shutdown, then lets open connections finish. New
/// handshakes use the TLS configuration in `tls` at the time.
pub async fn serve(
    listener: TcpListener,
    tls: Option<SharedTlsConfig>,
    app: Router,
    mut shutdown: Shutdown,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.stopped() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls
            .as_ref()
            .map(|c| Arc::clone(&c.read().unwrap_or_else(|e| e.into_inner())));
        let shutdown = shutdown.clone();
        // Every event logged while serving this connection carries PEER=.
        let span = tracing::info_span!("conn", PEER = %peer);
        let connection = async move {
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(PeerAddr(peer));
                    app.clone().oneshot(request)
                });
            match tls {
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(TokioIo::new(stream), service, shutdown).await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
                None => serve_connection(TokioIo::new(stream), service, shutdown).await,
            }
        };
        connections.spawn(tracing::Instrument::instrument(connection, span));
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    drain(connections).await;
}

async fn serve_connection<I, S>(io: I, service: S, mut shutdown: Shutdown)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<hyper::Request<Incoming>, Response = axum::response::Response>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(Duration::from_secs(30))
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = shutdown.stopped() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Serves the control API on the Unix socket until shutdown; `route`
/// gives each connection its router (from the peer's credentials).
pub async fn serve_control<R, F>(
    listener: tokio::net::UnixListener,
    route: R,
    mut shutdown: Shutdown,
) where
    R: Fn(&tokio::net::UnixStream) -> F,
    F: std::future::Future<Output = Router> + Send + 'static,
{
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.stopped() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shutdown = shutdown.clone();
        // May ask polkit: off the accept loop.
        let router = route(&stream);
        connections.spawn(async move {
            let router = router.await;
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                router.clone().oneshot(request)
            });
            serve_connection(TokioIo::new(stream), service, shutdown).await;
        });
        while connections.try_join_next().is_some() {}
    }
    drain(connections).await;
}
