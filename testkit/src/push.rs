//! A browser's push service and user agent, from an independent
//! implementation: `tests/push/receiver.py` (Python's `http_ece` decrypts,
//! `py_vapid` checks the VAPID signature), installed by `scripts/test` into
//! `tests/push/.pylib`. It makes a subscription, answers pushes with
//! scripted statuses and reports each push it got, decrypted.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One push the receiver got: `status` (its answer), `vapid` ("ok" or what
/// failed), `payload` (the decrypted notification, or null), headers.
pub type Push = Value;

pub struct PushReceiver {
    child: Child,
    stdin: ChildStdin,
    /// `PushSubscription.toJSON()`: `{endpoint, keys: {p256dh, auth}}`.
    pub subscription: Value,
    pushes: Arc<Mutex<Vec<Push>>>,
    /// How many `STATUS` lines the receiver has applied.
    applied: Arc<AtomicUsize>,
}

fn push_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/push")
}

impl PushReceiver {
    /// Starts a receiver that expects pushes signed with `gateway_key` (the
    /// gateway's VAPID public key) and answers `statuses` in turn, then 201.
    pub fn start(gateway_key: &str, statuses: &[u16]) -> Self {
        let dir = push_dir();
        let lib = dir.join(".pylib");
        assert!(
            lib.join("http_ece").exists(),
            "the Web Push receiver's Python packages are missing: run scripts/test, or \
             python3 -m pip install --no-deps --target {} -r {}",
            lib.display(),
            dir.join("requirements.txt").display()
        );
        let mut child = Command::new("python3")
            .arg(dir.join("receiver.py"))
            .arg(gateway_key)
            .args(statuses.iter().map(u16::to_string))
            .env("PYTHONPATH", &lib)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 starts tests/push/receiver.py");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines
            .next()
            .and_then(Result::ok)
            .expect("the receiver prints its subscription");
        let subscription: Value = serde_json::from_str(&first).expect("a subscription");
        let pushes = Arc::new(Mutex::new(Vec::new()));
        let applied = Arc::new(AtomicUsize::new(0));
        let (sink, acks) = (Arc::clone(&pushes), Arc::clone(&applied));
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let Ok(report) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if report.get("statusesSet").is_some() {
                    acks.fetch_add(1, Ordering::SeqCst);
                } else if report.get("status").is_some() {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(report);
                }
            }
        });
        Self {
            child,
            stdin,
            subscription,
            pushes,
            applied,
        }
    }

    /// The statuses to answer from now on, then 201.
    pub fn answer(&mut self, statuses: &[u16]) {
        let before = self.applied.load(Ordering::SeqCst);
        let words: Vec<String> = statuses.iter().map(u16::to_string).collect();
        writeln!(self.stdin, "STATUS {}", words.join(" ")).expect("the receiver reads");
        self.stdin.flush().expect("the receiver reads");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.applied.load(Ordering::SeqCst) == before {
            assert!(
                Instant::now() < deadline,
                "the receiver took no new statuses"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn pushes(&self) -> Vec<Push> {
        self.pushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The pushes so far once there are `count`, or after `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Push> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.pushes();
            if got.len() >= count || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for PushReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
