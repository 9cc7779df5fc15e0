//! Micro-benchmarks of the pure parts every event passes through:
//! signature verification, secret redaction, and event encoding/decoding.
//! `cargo bench -p claw-proto` (divan); figures in docs/PERFORMANCE.md.

use claw_proto::Redactor;
use claw_proto::signing::{self, SignedParts};
use claw_proto::wire::{EventType, IngestBatch, IngestEvent, ServerMessage};

fn main() {
    divan::main();
}

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn parts(body: &[u8]) -> SignedParts<'_> {
    SignedParts {
        method: "POST",
        path: "/api/ingest/events",
        body,
        timestamp: 1_790_000_000,
        nonce: "00112233445566778899aabbccddeeff",
        run_id: "3f0c9b8e-5a7d-4c1e-9f2a-6b8d0e1f2a3b",
        capability_token: "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
    }
}

/// Verifying a request signature, for a single event and a 1000-event batch body.
#[divan::bench(args = [150, 100_000])]
fn verify_signature(bencher: divan::Bencher, body_len: usize) {
    let body = vec![b'x'; body_len];
    let signature = signing::sign(SECRET, &parts(&body));
    bencher.bench(|| signing::verify(SECRET, divan::black_box(&parts(&body)), &signature));
}

const CLEAN_LINE: &str =
    "   Compiling claw-proto v0.1.0 (/work/proto): 12 warnings, see the build log for details";
const SECRET_LINE: &str = "export OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz0123456789 and ghp_abcdefghijklmnopqrstuvwxyz0123456789";
/// Agent prose: clean, but not ASCII.
const PROSE_LINE: &str =
    "I’ll run the tests now — the build log shows 12 warnings, nothing that blocks ✓";
/// Coloured output as cargo prints it: escapes, no secret.
const COLOURED_LINE: &str = "\x1b[1m\x1b[32m   Compiling\x1b[0m claw-proto v0.1.0 (/work/proto): \x1b[33m12 warnings\x1b[0m, see the build log for details";
/// A secret with an escape and a zero-width space inside it.
const HIDDEN_LINE: &str = "key: \x1b[31msk-\x1b[0mant-api03-abcdefghijklmnopqrstuv\x1b[0m and g\u{200b}hp_abcdefghijklmnopqrstuvwxyz0123456789";

/// Redacting one line of output: clean (ASCII or not), with plain secrets, coloured without
/// secrets, and with secrets hidden by escapes or invisible characters.
#[divan::bench(args = ["clean", "prose", "with_secrets", "coloured", "hidden_secrets"])]
fn redact_line(bencher: divan::Bencher, which: &str) {
    let line = match which {
        "clean" => CLEAN_LINE,
        "prose" => PROSE_LINE,
        "with_secrets" => SECRET_LINE,
        "coloured" => COLOURED_LINE,
        _ => HIDDEN_LINE,
    };
    let redactor = Redactor::builtin();
    bencher.bench(|| redactor.redact(divan::black_box(line)).len());
}

/// Redacting a 64 KiB chunk of ordinary output.
#[divan::bench]
fn redact_64k(bencher: divan::Bencher) {
    let redactor = Redactor::builtin();
    let chunk = CLEAN_LINE.repeat(64 * 1024 / CLEAN_LINE.len());
    bencher.bench(|| redactor.redact(divan::black_box(&chunk)).len());
}

/// Decoding a 1000-event ingest batch as the gateway does.
#[divan::bench]
fn decode_batch_1000(bencher: divan::Bencher) {
    let batch = IngestBatch {
        events: (1..=1000)
            .map(|i| IngestEvent {
                kind: EventType::Stdout,
                data: format!("{i:020} {}", "x".repeat(79)),
                sequence: Some(i),
            })
            .collect(),
    };
    let body = serde_json::to_vec(&batch).unwrap_or_default();
    bencher.bench(|| {
        serde_json::from_slice::<IngestBatch>(divan::black_box(&body)).map(|b| b.events.len())
    });
}

/// Encoding one live event for browsers.
#[divan::bench]
fn encode_event_message(bencher: divan::Bencher) {
    let message = ServerMessage::Event {
        run_id: "3f0c9b8e-5a7d-4c1e-9f2a-6b8d0e1f2a3b".to_owned(),
        event_id: 123_456,
        sequence: 4242,
        event_type: EventType::Stdout,
        data: "test result: ok. 104 passed; 0 failed; 0 ignored".to_owned(),
        timestamp: "2026-11-22T12:00:00.000Z".to_owned(),
    };
    bencher.bench(|| serde_json::to_string(divan::black_box(&message)).map(|s| s.len()));
}
