//! Artifact uploads before their signature can be checked (it covers the
//! body, which is written to disk first): what is refused before any of
//! the body is read, how many bodies may be written at once, and how long
//! one may take. Spoken as raw HTTP/1.1 over TLS, so that a request can
//! declare a body it never sends.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::common::{Gateway, TEST_CONFIG, connect_tls, nonce, now_secs};

const PATH: &str = "/api/ingest/artifact";
const BOUNDARY: &str = "claw-upload-test";
const TEN_MIB: u64 = 10 << 20;
/// Long enough for a loaded machine; a body that is waited for never
/// answers within it.
const PROMPTLY: Duration = Duration::from_secs(10);

/// Request headers, as (name, value).
type Headers = Vec<(String, String)>;

/// An answer read off the connection: its status, head and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// The headers of a runner that signs an upload of `body`.
fn signed_headers(runner: &claw_testkit::RunnerClient, body: &[u8]) -> Headers {
    let signed = runner.sign(Method::POST, PATH, body.to_vec());
    vec![
        ("X-Signature".to_owned(), signed.signature),
        ("X-Timestamp".to_owned(), signed.timestamp.to_string()),
        ("X-Nonce".to_owned(), signed.nonce),
        ("X-Run-Id".to_owned(), runner.run_id.clone()),
        ("X-Capability-Token".to_owned(), runner.token.clone()),
    ]
}

/// Sends an upload's request head declaring `length` bytes, with
/// `headers`, then `body` (which may be less than declared, or nothing).
async fn send_head(
    gw: &Gateway,
    length: u64,
    headers: &[(String, String)],
    body: &[u8],
) -> TlsStream<TcpStream> {
    let mut head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: localhost:{}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {length}\r\n",
        gw.port
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut tls = connect_tls(gw.port, &gw.certificate())
        .await
        .expect("TLS connection");
    tls.write_all(head.as_bytes()).await.expect("head");
    tls.write_all(body).await.expect("body");
    tls.flush().await.expect("flush");
    tls
}

/// The next answer on `tls` (an interim `100 Continue` too); `None` when
/// none came within `within`.
async fn answer(tls: &mut TlsStream<TcpStream>, within: Duration) -> Option<Answer> {
    tokio::time::timeout(within, read_answer(tls)).await.ok()
}

async fn read_answer(tls: &mut TlsStream<TcpStream>) -> Answer {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = tls.read(&mut buf).await.expect("read the answer");
        assert!(n > 0, "the connection closed without an answer");
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = bytes[end + 4..].to_vec();
    while body.len() < length {
        let n = tls.read(&mut buf).await.expect("read the answer's body");
        assert!(n > 0, "the connection closed within the answer");
        body.extend_from_slice(&buf[..n]);
    }
    Answer {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The answer to an upload that declares `length` bytes and sends none of
/// them: it must come without the body.
async fn answer_without_body(gw: &Gateway, length: u64, headers: &[(String, String)]) -> Answer {
    let mut tls = send_head(gw, length, headers, b"").await;
    answer(&mut tls, PROMPTLY)
        .await
        .expect("an answer before any of the body was sent")
}

#[tokio::test]
async fn an_upload_declared_past_the_limit_is_refused_before_its_body() {
    let gw = Gateway::start_with(&format!("{TEST_CONFIG}artifact_limit_bytes = 65536\n")).await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner_client(&run_id, &token);
    // Signed as a runner would sign the 10 MiB it means to send.
    let headers = signed_headers(&runner, b"ten mebibytes, never sent");
    let refused = answer_without_body(&gw, TEN_MIB, &headers).await;
    assert_eq!(refused.status, 413, "{}", refused.head);
    assert!(
        refused.body.contains("larger than the configured limit"),
        "{}",
        refused.body
    );
    // Unsigned, the same.
    let refused = answer_without_body(&gw, TEN_MIB, &[]).await;
    assert_eq!(refused.status, 413, "{}", refused.head);
    // Within the limit, an upload is taken as before.
    let (status, body) = gw.runner(&run_id, &token).upload("small.log", b"ok").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn unsigned_and_malformed_uploads_are_refused_before_their_body() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner_client(&run_id, &token);
    let good = signed_headers(&runner, b"whatever");
    let with = |name: &str, value: &str| -> Headers {
        let mut headers: Vec<_> = good.iter().filter(|(n, _)| n != name).cloned().collect();
        headers.push((name.to_owned(), value.to_owned()));
        headers
    };
    let without =
        |name: &str| -> Headers { good.iter().filter(|(n, _)| n != name).cloned().collect() };
    let stale = now_secs() - 3600;
    let cases: Vec<(&str, Headers, &str)> = vec![
        ("no headers at all", Vec::new(), "missing x-signature"),
        (
            "a signature that is no signature",
            with("X-Signature", "garbage"),
            "invalid signature",
        ),
        (
            "a signature of the wrong length",
            with("X-Signature", "abcd"),
            "invalid signature",
        ),
        (
            "an hour-old timestamp",
            with("X-Timestamp", &stale.to_string()),
            "check the runner's clock",
        ),
        (
            "a timestamp that is no number",
            with("X-Timestamp", "yesterday"),
            "Unix seconds",
        ),
        ("a short nonce", with("X-Nonce", "abc"), "X-Nonce"),
        ("no nonce", without("X-Nonce"), "missing x-nonce"),
        ("no run", without("X-Run-Id"), "missing x-run-id"),
        (
            "no capability token",
            without("X-Capability-Token"),
            "missing x-capability-token",
        ),
        (
            "a host that is not enrolled",
            with("X-Host-Id", "no-such-host"),
            "not enrolled",
        ),
    ];
    for (case, headers, says) in cases {
        let refused = answer_without_body(&gw, TEN_MIB, &headers).await;
        assert_eq!(refused.status, 401, "{case}: {}", refused.head);
        assert!(refused.body.contains(says), "{case}: {}", refused.body);
    }
    // A fresh nonce is taken as before.
    let fresh = with("X-Nonce", &nonce());
    let mut tls = send_head(&gw, TEN_MIB, &fresh, b"").await;
    assert!(
        answer(&mut tls, Duration::from_millis(500)).await.is_none(),
        "well-formed headers wait for the body that their signature covers"
    );
}

/// 16 uploads spooling at once; the 17th is refused with Retry-After
/// before its body, and the places come back when the 16 end.
#[tokio::test]
async fn uploads_spooling_at_once_are_bounded() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner_client(&run_id, &token);
    let expect = || {
        let mut headers = signed_headers(&runner, b"not what is sent");
        headers.push(("Expect".to_owned(), "100-continue".to_owned()));
        headers
    };
    // `100 Continue` comes when clawd starts reading the body: by then the
    // upload holds its place.
    let mut spooling = Vec::new();
    for n in 0..16 {
        let mut tls = send_head(&gw, TEN_MIB, &expect(), b"").await;
        let went_on = answer(&mut tls, PROMPTLY).await;
        assert_eq!(went_on.map(|a| a.status), Some(100), "upload {n}");
        tls.write_all(&[b'x'; 1024]).await.expect("some body");
        spooling.push(tls);
    }
    let refused = answer_without_body(&gw, TEN_MIB, &expect()).await;
    assert_eq!(refused.status, 503, "{}", refused.head);
    assert!(
        refused.head.to_ascii_lowercase().contains("retry-after:"),
        "{}",
        refused.head
    );
    assert!(
        refused.body.contains("too many artifact uploads"),
        "{}",
        refused.body
    );
    drop(spooling);
    // The places come back as the 16 connections end.
    let uploader = gw.runner(&run_id, &token);
    let mut last = None;
    for _ in 0..50 {
        let (status, body) = uploader.upload("after.log", b"done").await;
        if status != StatusCode::SERVICE_UNAVAILABLE {
            last = Some((status, body));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = last.expect("a place came back");
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A body that stops coming is refused after 30 s without data, rather
/// than holding its file and its place for ever.
#[tokio::test]
async fn an_upload_whose_body_stalls_is_refused() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner_client(&run_id, &token);
    let headers = signed_headers(&runner, b"not what is sent");
    let mut tls = send_head(&gw, TEN_MIB, &headers, &[b'x'; 1024]).await;
    let begun = std::time::Instant::now();
    let refused = answer(&mut tls, Duration::from_secs(60))
        .await
        .expect("refused within a minute");
    assert_eq!(refused.status, 400, "{}", refused.head);
    assert!(
        refused
            .body
            .contains("no data of the request body came for 30 s"),
        "{}",
        refused.body
    );
    assert!(begun.elapsed() >= Duration::from_secs(25));
}
