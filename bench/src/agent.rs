//! `--prompt-latency N`: the time from `POST /api/runs/{id}/prompts` to the
//! agent reading the prompt on its stdin, through the whole push path
//! (gateway → the runner's WebSocket note → the runner fetching its
//! commands → the agent's stdin). The agent is claw-bench itself, started
//! by a real claw-runner as its `claude_program` with
//! `CLAW_BENCH_STAND_IN` set: it speaks just enough of Claude Code's
//! stream-json to be driven, and tells the bench over a datagram socket
//! when each prompt arrived.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use claw_proto::agent::AgentKind;
use claw_proto::api::{CreateRunRequest, PromptRequest};
use serde_json::{Value, json};

use crate::Args;
use crate::report::{Latency, Report};
use crate::spawn::Target;

/// Set by the bench in the stand-in agent's environment: the datagram
/// socket to report each prompt's arrival to.
pub const STAND_IN_ENV: &str = "CLAW_BENCH_STAND_IN";

/// How long one prompt may take to reach the agent before the bench gives up.
const PROMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the runner and its agent may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A pause between prompts, so each one travels an idle path as a person's
/// prompt would rather than queueing behind the last.
const THINK: Duration = Duration::from_millis(20);

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The stand-in agent: answers `initialize` and interrupts, reports each
/// user turn's arrival (now minus the send time in its text), and ends the
/// turn with a `result` line as Claude Code does. Ends when stdin closes.
pub fn stand_in(report_to: &Path) -> anyhow::Result<()> {
    let socket = std::os::unix::net::UnixDatagram::unbound()?;
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
            Some("user") => {
                let sent = message["message"]["content"]
                    .as_str()
                    .and_then(|text| text.rsplit(' ').next())
                    .and_then(|stamp| stamp.parse::<u64>().ok())
                    .context("a prompt without the bench's send time")?;
                socket
                    .send_to(&received.saturating_sub(sent).to_le_bytes(), report_to)
                    .context("cannot report to the bench")?;
                turns += 1;
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
            _ => continue,
        };
        writeln!(stdout, "{reply}")?;
        stdout.flush()?;
    }
    Ok(())
}

/// claw-runner for --prompt-latency: the one given, else beside the clawd.
fn runner_binary(args: &Args) -> PathBuf {
    args.runner_bin.clone().unwrap_or_else(|| {
        args.spawn
            .as_ref()
            .and_then(|clawd| clawd.parent())
            .map_or_else(|| "claw-runner".into(), |dir| dir.join("claw-runner"))
    })
}

/// Sends `count` prompts one after another to an agent run driven by a real
/// claw-runner, timing each from the send to the agent's read.
pub async fn prompt_latency(
    args: &Args,
    mut target: Target,
    count: usize,
) -> anyhow::Result<(Report, Target)> {
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
    let runner = runner_binary(args);
    let child = tokio::process::Command::new(&runner)
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
        .with_context(|| format!("cannot start {}", runner.display()))?;

    let prompts_url = format!("{}/api/runs/{}/prompts", target.base, created.id);
    let mut samples = Vec::with_capacity(count);
    let mut round_trips = Vec::with_capacity(count);
    let mut answer = [0u8; 8];
    let mut started = Instant::now();
    // The first prompt waits for the runner to start and connect; it warms
    // the path and is not counted.
    for n in 0..=count {
        let body = PromptRequest {
            text: format!("claw-bench {}", unix_nanos()),
        };
        let sent = Instant::now();
        let reply = client
            .post(&prompts_url)
            .bearer_auth(&session)
            .json(&body)
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
        let within = if n == 0 {
            START_TIMEOUT
        } else {
            PROMPT_TIMEOUT
        };
        let got = tokio::time::timeout(within, arrivals.recv(&mut answer))
            .await
            .with_context(|| {
                format!(
                    "prompt {n} did not reach the agent within {} s",
                    within.as_secs()
                )
            })??;
        if got != answer.len() {
            bail!("the stand-in agent sent {got} bytes, not 8");
        }
        if n == 0 {
            started = Instant::now();
        } else {
            samples.push(u64::from_le_bytes(answer));
            round_trips.push(round_trip);
        }
        tokio::time::sleep(THINK).await;
    }
    let seconds = started.elapsed().as_secs_f64();

    let stop = client
        .post(format!("{}/api/runs/{}/stop", target.base, created.id))
        .bearer_auth(&session)
        .send()
        .await?;
    if !stop.status().is_success() {
        bail!("the gateway refused to stop the run: {}", stop.status());
    }
    let ended = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .context("claw-runner did not end within 30 s of the stop")??;
    if !ended.status.success() {
        bail!(
            "claw-runner ended with {}: {}",
            ended.status,
            String::from_utf8_lossy(&ended.stderr)
        );
    }
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
