//! Steering an agent through the whole push path, with a real claw-runner
//! whose agent is claw-bench itself (started as its `claude_program` with
//! `CLAW_BENCH_STAND_IN` set): it speaks just enough of Claude Code's
//! stream-json to be driven, and tells the bench over a datagram socket
//! when something reached its stdin.
//!
//! - `--prompt-latency N`: `POST /api/runs/{id}/prompts` → the gateway's
//!   note on the runner's WebSocket → the runner fetching its commands →
//!   the agent's stdin.
//! - `--decision-latency N`: the agent asks permission (a `can_use_tool`
//!   request), the bench sees the approval on its browser WebSocket and
//!   decides; timed from `POST /api/approvals/{id}/decision` to the control
//!   response on the agent's stdin.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use claw_proto::agent::AgentKind;
use claw_proto::api::{CreateRunRequest, PromptRequest};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::Args;
use crate::report::{Latency, Report};
use crate::spawn::Target;

/// Set by the bench in the stand-in agent's environment: the datagram
/// socket to report arrivals to.
pub const STAND_IN_ENV: &str = "CLAW_BENCH_STAND_IN";

/// A prompt that makes the stand-in ask permission instead of answering.
const ASK: &str = "claw-bench-ask";

/// How long one sample may take before the bench gives up.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the runner and its agent may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A pause between samples, so each travels an idle path as a person's
/// prompt or tap would rather than queueing behind the last.
const THINK: Duration = Duration::from_millis(20);

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn result_line(turns: u64) -> Value {
    json!({
        "type": "result",
        "subtype": "success",
        "is_error": false,
        "duration_ms": 1,
        "total_cost_usd": 0.0,
        "usage": { "input_tokens": 10, "output_tokens": 1 },
        "num_turns": turns,
        "session_id": "claw-bench-stand-in"
    })
}

/// The stand-in agent. It answers `initialize` and interrupts; for each
/// user turn it reports `prompt <now − the send time in its text>` and ends
/// the turn with a `result` line, or, for a turn that says [`ASK`], asks to
/// use a tool and reports `decision <when the answer arrived>` before it
/// ends the turn. Ends when stdin closes.
pub fn stand_in(report_to: &Path) -> anyhow::Result<()> {
    let socket = std::os::unix::net::UnixDatagram::unbound()?;
    let report = |text: String| {
        socket
            .send_to(text.as_bytes(), report_to)
            .context("cannot report to the bench")
    };
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut turns = 0u64;
    for line in stdin.lines() {
        let line = line?;
        let received = unix_nanos();
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let reply = match message["type"].as_str() {
            Some("control_request") => json!({
                "type": "control_response",
                "response": {
                    "subtype": "success",
                    "request_id": message["request_id"],
                    "response": {}
                }
            }),
            // The answer to a permission request of ours.
            Some("control_response") => {
                report(format!("decision {received}"))?;
                turns += 1;
                result_line(turns)
            }
            Some("user") => {
                let text = message["message"]["content"].as_str().unwrap_or_default();
                if text.starts_with(ASK) {
                    json!({
                        "type": "control_request",
                        "request_id": format!("ask-{turns}"),
                        "request": {
                            "subtype": "can_use_tool",
                            "tool_name": "Bash",
                            "input": { "command": "touch claw-bench.txt" },
                            "tool_use_id": format!("toolu_bench_{turns}")
                        }
                    })
                } else {
                    let sent = text
                        .rsplit(' ')
                        .next()
                        .and_then(|stamp| stamp.parse::<u64>().ok())
                        .context("a prompt without the bench's send time")?;
                    report(format!("prompt {}", received.saturating_sub(sent)))?;
                    turns += 1;
                    result_line(turns)
                }
            }
            _ => continue,
        };
        writeln!(stdout, "{reply}")?;
        stdout.flush()?;
    }
    Ok(())
}

/// claw-runner: the one given, else beside the clawd.
fn runner_binary(args: &Args) -> PathBuf {
    args.runner_bin.clone().unwrap_or_else(|| {
        args.spawn
            .as_ref()
            .and_then(|clawd| clawd.parent())
            .map_or_else(|| "claw-runner".into(), |dir| dir.join("claw-runner"))
    })
}

/// An agent run driven by a real claw-runner whose agent is the stand-in.
struct Steered {
    client: reqwest::Client,
    base: String,
    session: String,
    run_id: String,
    runner: tokio::process::Child,
    arrivals: tokio::net::UnixDatagram,
    /// Holds the socket, the runner's HOME and state directory.
    _scratch: tempfile::TempDir,
}

impl Steered {
    async fn start(args: &Args, target: &mut Target) -> anyhow::Result<Self> {
        let session = target.session().await?;
        let client = target.client()?;
        let created = claw_testkit::try_create_run(
            &client,
            &target.base,
            &session,
            &CreateRunRequest {
                agent: Some(AgentKind::Claude),
                ..Default::default()
            },
        )
        .await?;
        let scratch = tempfile::tempdir().context("cannot make a temporary directory")?;
        let socket_path = scratch.path().join("stand-in.sock");
        let arrivals = tokio::net::UnixDatagram::bind(&socket_path)
            .with_context(|| format!("cannot bind {}", socket_path.display()))?;
        let me = std::env::current_exe().context("cannot find claw-bench's own binary")?;
        let program = runner_binary(args);
        let runner = tokio::process::Command::new(&program)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", scratch.path())
            .env(
                "CLAW_GATEWAY_URL",
                format!("https://localhost:{}", target.port),
            )
            .env(
                "CLAW_HMAC_SECRET_FILE",
                target.data_dir.join("secrets/hmac-secret"),
            )
            .env("CLAW_CA_CERT", target.data_dir.join("certs/server.crt"))
            .env("CLAW_STATE_DIR", scratch.path().join("state"))
            .env("CLAW_CLAUDE_PROGRAM", &me)
            .env(STAND_IN_ENV, &socket_path)
            .args(["start", "--run-id", &created.id, "--token"])
            .arg(&created.capability_token)
            .args(["--agent", "claude"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let steered = Self {
            client,
            base: target.base.clone(),
            session,
            run_id: created.id,
            runner,
            arrivals,
            _scratch: scratch,
        };
        // The first prompt waits for the runner to start and connect; it
        // warms the path and is not counted.
        steered
            .prompt(&format!("claw-bench {}", unix_nanos()))
            .await?;
        steered.arrival("prompt", START_TIMEOUT).await?;
        Ok(steered)
    }

    /// Queues a prompt; the POST's round trip.
    async fn prompt(&self, text: &str) -> anyhow::Result<u64> {
        let sent = Instant::now();
        let reply = self
            .client
            .post(format!("{}/api/runs/{}/prompts", self.base, self.run_id))
            .bearer_auth(&self.session)
            .json(&PromptRequest {
                text: text.to_owned(),
            })
            .send()
            .await?;
        let round_trip = sent.elapsed().as_nanos() as u64;
        if !reply.status().is_success() {
            bail!(
                "the gateway refused a prompt: {} {}",
                reply.status(),
                reply.text().await.unwrap_or_default()
            );
        }
        Ok(round_trip)
    }

    /// The stand-in's next report of `kind`: its number.
    async fn arrival(&self, kind: &str, within: Duration) -> anyhow::Result<u64> {
        let mut buf = [0u8; 128];
        let n = tokio::time::timeout(within, self.arrivals.recv(&mut buf))
            .await
            .with_context(|| {
                format!("no {kind} reached the agent within {} s", within.as_secs())
            })??;
        let text = std::str::from_utf8(&buf[..n]).context("an unreadable report")?;
        match text.split_once(' ') {
            Some((k, number)) if k == kind => number.parse().context("an unreadable report"),
            _ => bail!("the stand-in reported {text:?}, not a {kind}"),
        }
    }

    /// Stops the run; an error when the runner did not end cleanly.
    async fn stop(self) -> anyhow::Result<()> {
        let stop = self
            .client
            .post(format!("{}/api/runs/{}/stop", self.base, self.run_id))
            .bearer_auth(&self.session)
            .send()
            .await?;
        if !stop.status().is_success() {
            bail!("the gateway refused to stop the run: {}", stop.status());
        }
        let ended = tokio::time::timeout(Duration::from_secs(30), self.runner.wait_with_output())
            .await
            .context("claw-runner did not end within 30 s of the stop")??;
        if !ended.status.success() {
            bail!(
                "claw-runner ended with {}: {}",
                ended.status,
                String::from_utf8_lossy(&ended.stderr)
            );
        }
        Ok(())
    }
}

/// `count` prompts, one after another, each timed from the send to the
/// agent's read.
pub async fn prompt_latency(
    args: &Args,
    mut target: Target,
    count: usize,
) -> anyhow::Result<(Report, Target)> {
    let steered = Steered::start(args, &mut target).await?;
    let mut samples = Vec::with_capacity(count);
    let mut round_trips = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        round_trips.push(
            steered
                .prompt(&format!("claw-bench {}", unix_nanos()))
                .await?,
        );
        samples.push(steered.arrival("prompt", SAMPLE_TIMEOUT).await?);
        tokio::time::sleep(THINK).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    steered.stop().await?;
    let report = Report {
        runners: 1,
        batch: 1,
        seconds,
        prompt_latency: Latency::from_nanos(samples),
        request_latency: Latency::from_nanos(round_trips),
        ready_ms: target.ready_ms,
        ..Report::default()
    };
    Ok((report, target))
}

/// `count` permission requests of the agent, each decided as soon as the
/// approval shows on a browser WebSocket, timed from the decision's POST
/// to the answer on the agent's stdin.
pub async fn decision_latency(
    args: &Args,
    mut target: Target,
    count: usize,
) -> anyhow::Result<(Report, Target)> {
    let steered = Steered::start(args, &mut target).await?;
    let mut socket = crate::subscribe::connect(&target, &steered.session).await?;
    let mut samples = Vec::with_capacity(count);
    let mut round_trips = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        steered.prompt(ASK).await?;
        let approval_id = tokio::time::timeout(SAMPLE_TIMEOUT, async {
            while let Some(message) = socket.next().await {
                let Message::Text(text) = message? else {
                    continue;
                };
                let value: Value = serde_json::from_str(&text)?;
                if value["type"] == "approval" && value["approval"]["status"] == "pending" {
                    return value["approval"]["id"]
                        .as_str()
                        .map(str::to_owned)
                        .context("an approval without an id");
                }
            }
            bail!("the WebSocket closed")
        })
        .await
        .context("no approval within 10 s")??;
        let decided_at = unix_nanos();
        let sent = Instant::now();
        let reply = steered
            .client
            .post(format!(
                "{}/api/approvals/{approval_id}/decision",
                target.base
            ))
            .bearer_auth(&steered.session)
            .json(&json!({ "decision": "allow" }))
            .send()
            .await?;
        round_trips.push(sent.elapsed().as_nanos() as u64);
        if !reply.status().is_success() {
            bail!(
                "the gateway refused a decision: {} {}",
                reply.status(),
                reply.text().await.unwrap_or_default()
            );
        }
        let arrived = steered.arrival("decision", SAMPLE_TIMEOUT).await?;
        samples.push(arrived.saturating_sub(decided_at));
        tokio::time::sleep(THINK).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    steered.stop().await?;
    let report = Report {
        runners: 1,
        batch: 1,
        seconds,
        decision_latency: Latency::from_nanos(samples),
        request_latency: Latency::from_nanos(round_trips),
        ready_ms: target.ready_ms,
        ..Report::default()
    };
    Ok((report, target))
}
