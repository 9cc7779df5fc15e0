//! An HTTP receiver of notifications (webhooks, ntfy): keeps every request
//! it is sent and answers with the statuses it was told to, one per
//! request, then 200.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// What the receiver answered.
    pub status: u16,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Statuses still to answer with, in order; 200 after them.
    script: Vec<u16>,
}

#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
}

async fn take(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    let status = if inner.script.is_empty() {
        200
    } else {
        inner.script.remove(0)
    };
    inner.received.push(Received {
        status,
        path: uri.path().to_owned(),
        headers,
        body,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

impl Receiver {
    /// Listens on a free loopback port; answers `script`'s statuses first.
    pub async fn start(script: &[u16]) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            received: Vec::new(),
            script: script.to_vec(),
        }));
        let app = axum::Router::new()
            .fallback(axum::routing::post(take))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            inner,
            url: format!("http://127.0.0.1:{port}/hook"),
        }
    }

    /// Answers with these statuses next.
    pub fn answer(&self, script: &[u16]) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).script = script.to_vec();
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .received
            .clone()
    }

    /// Waits until `count` requests came (10 s at most); all of them.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.received();
            if got.len() >= count || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
