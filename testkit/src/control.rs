//! The control API on clawd's Unix socket (HTTP/1.1 + JSON), as clawctl
//! and `curl --unix-socket` use it.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A GET over a Unix socket (the control API), as `curl --unix-socket` does.
pub async fn unix_get(socket: &Path, uri: &str) -> (StatusCode, Value) {
    unix_request(socket, "GET", uri, None).await
}

/// A GET on the control socket that must answer 200 with a `T`.
pub async fn control_get<T: DeserializeOwned>(socket: &Path, uri: &str) -> T {
    let (status, body) = unix_get(socket, uri).await;
    assert_eq!(status, StatusCode::OK, "GET {uri}: {body}");
    crate::gateway::decode(&format!("GET {uri}"), body)
}

/// A request with an optional JSON body over a Unix socket (the control API).
pub async fn unix_request(
    socket: &Path,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    try_unix_request(socket, method, uri, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {uri} on {}: {e:#}", socket.display()))
}

/// A request with an optional JSON body over a Unix socket; the status and
/// the JSON body (`null` when it is not JSON).
pub async fn try_unix_request(
    socket: &Path,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .context("connect control socket")?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .context("handshake")?;
    tokio::spawn(connection);
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let request = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .header("Host", "localhost")
        .header("Content-Type", "application/json")
        .body(Full::new(bytes::Bytes::from(bytes)))?;
    let response = sender.send_request(request).await.context("response")?;
    let status = StatusCode::from_u16(response.status().as_u16())?;
    let body = response
        .into_body()
        .collect()
        .await
        .context("body")?
        .to_bytes();
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// A raw HTTP GET on the control socket, as root or (with `uid`) as another
/// user through `setpriv`; perl is part of every Debian system.
pub fn raw_control_get(socket: &Path, path: &str, uid: Option<u32>) -> String {
    let client = format!(
        r#"use IO::Socket::UNIX;
my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!";
print $s "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
print while <$s>;"#
    );
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg("/usr/bin/perl");
            c
        }
        None => Command::new("/usr/bin/perl"),
    };
    let out = cmd
        .arg("-e")
        .arg(client)
        .arg(socket)
        .output()
        .expect("setpriv and perl");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}
