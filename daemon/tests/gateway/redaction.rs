//! Redaction before storage: secrets hidden by escapes or invisible
//! characters, the providers' key shapes, and coloured output kept as sent.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::Gateway;

async fn stored(gw: &Gateway, session: &str, run_id: &str) -> Vec<String> {
    let (status, body) = gw
        .get(&format!("/api/runs/{run_id}/events?limit=1000"), session)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .expect("events")
        .iter()
        .map(|event| event["data"].as_str().expect("data").to_owned())
        .collect()
}

/// (sent, stored)
const CASES: &[(&str, &str)] = &[
    (
        "key sk-\x1b[0mant-api03-abcdefghijklmnopqrstuvwxyz end",
        "key [REDACTED] end",
    ),
    (
        "token g\u{200b}hp_0123456789abcdefghij0123456789abcdef\n",
        "token [REDACTED]\n",
    ),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = [REDACTED]",
    ),
    (
        r#"{"AccessKeyId": "ASIAY34FZKBOKMUTVV7A", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#,
        r#"{"AccessKeyId": "[REDACTED]", "SecretAccessKey": "[REDACTED]"}"#,
    ),
    (
        "posting with xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "posting with [REDACTED]",
    ),
    (
        "\x1b[31mkey\x1b[0m AKIA\u{200d}IOSFODNN7EXAMPLE \x1b[2mdone\x1b[0m",
        "\x1b[31mkey\x1b[0m [REDACTED] \x1b[2mdone\x1b[0m",
    ),
    (
        "curl -d @- https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "curl -d @- https://hooks.slack.com/services/[REDACTED]",
    ),
    (
        "-----BEGIN OPENSSH PRIVATE\u{ad} KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
        "[REDACTED]",
    ),
];

/// Coloured output, a hyperlink and bidirectional controls with no secret:
/// stored byte for byte.
const COLOURED: &str = "\x1b[1m\x1b[32m   Compiling\x1b[0m claw v0.1.0 \x1b]8;;https://example.com/docs\x1b\\docs\x1b]8;;\x1b\\ abc\u{202e}def\u{200b} \x1b[33m12 warnings\x1b[0m\r\n";

#[tokio::test]
async fn hidden_secrets_are_redacted_and_colours_kept() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let (run_id, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run_id, &token);
    for (sent, _) in CASES {
        let (status, body) = runner.event("stdout", sent, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = runner.event("stderr", COLOURED, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The batch path redacts the same way.
    let batch: Vec<Value> = CASES
        .iter()
        .map(|(sent, _)| json!({ "type": "stdout", "data": sent }))
        .chain([json!({ "type": "stdout", "data": COLOURED })])
        .collect();
    let (status, body) = runner.batch(batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let expected: Vec<&str> = CASES
        .iter()
        .map(|(_, redacted)| *redacted)
        .chain([COLOURED])
        .collect();
    let all = stored(&gw, &admin, &run_id).await;
    assert_eq!(all.len(), 2 * expected.len());
    assert_eq!(all[..expected.len()], expected[..]);
    assert_eq!(all[expected.len()..], expected[..]);
    let everything = all.concat();
    for secret in [
        "ant-api03",
        "hp_0123",
        "wJalr",
        "IOSFODNN7",
        "AbCdEf",
        "b3Bl",
    ] {
        assert!(!everything.contains(secret), "{secret} stored");
    }
}
