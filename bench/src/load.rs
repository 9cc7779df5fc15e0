//! The runners: each creates nothing itself (runs come from the human API)
//! and sends its run's events, signed, single or in batches, paced or flat
//! out, retrying a failed request with the same sequences (the gateway
//! stores each sequence once).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use claw_proto::api::CreateRunRequest;
use claw_proto::signing::SignedParts;
use tokio::sync::watch;

use crate::Args;
use crate::report::{Latency, Report};
use crate::runner_conn::RunnerConn;
use crate::spawn::Target;
use crate::subscribe;

struct Run {
    id: String,
    token: String,
}

/// Answered without touching the store: --https-floor's request.
const HEALTH: &str = "/api/health";

/// Request nonces cut from random bytes fetched 256 nonces at a time: a
/// `getrandom` call per request was 2–3 % of the generator's CPU, which
/// shares the machine with the daemon it measures.
struct Nonces {
    pool: [u8; 4096],
    used: usize,
}

impl Nonces {
    const LEN: usize = 16;

    fn new() -> Self {
        Self {
            pool: [0; 4096],
            used: 4096,
        }
    }

    fn next(&mut self) -> anyhow::Result<String> {
        if self.used + Self::LEN > self.pool.len() {
            getrandom::fill(&mut self.pool)
                .map_err(|e| anyhow::anyhow!("no random bytes for nonces: {e}"))?;
            self.used = 0;
        }
        let nonce = hex::encode(&self.pool[self.used..self.used + Self::LEN]);
        self.used += Self::LEN;
        Ok(nonce)
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn create_run(
    client: &reqwest::Client,
    target: &Target,
    session: &str,
) -> anyhow::Result<Run> {
    let request = CreateRunRequest {
        command: Some("claw-bench".to_owned()),
        ..Default::default()
    };
    let created = claw_testkit::try_create_run(client, &target.base, session, &request).await?;
    Ok(Run {
        id: created.id,
        token: created.capability_token,
    })
}

/// The store's (commits, writes) counters from `/api/status` of every
/// instance, A first.
async fn store_counters(
    client: &reqwest::Client,
    target: &Target,
    session: &str,
) -> Option<Vec<(u64, u64)>> {
    let mut counters = Vec::new();
    match target.instance_clients() {
        Ok(clients) if clients.len() > 1 => {
            for (client, base) in clients {
                counters.push(instance_store_counters(&client, &base, session).await?);
            }
        }
        _ => counters.push(instance_store_counters(client, &target.base, session).await?),
    }
    Some(counters)
}

async fn instance_store_counters(
    client: &reqwest::Client,
    base: &str,
    session: &str,
) -> Option<(u64, u64)> {
    let status: serde_json::Value = client
        .get(format!("{base}/api/status"))
        .bearer_auth(session)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some((
        status["store"]["commits"].as_u64()?,
        status["store"]["writes"].as_u64()?,
    ))
}

struct Sender {
    /// Nanoseconds from send to acknowledgement of every request.
    round_trips: std::sync::Mutex<Vec<u64>>,
    sent: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
}

#[allow(clippy::too_many_arguments)]
async fn runner(
    args: Args,
    target: Arc<Target>,
    run: Arc<Run>,
    epoch: Instant,
    paced_from: Instant,
    stop: Arc<AtomicBool>,
    stats: Arc<Sender>,
) -> anyhow::Result<u64> {
    let mut conn = RunnerConn::open(&target).await?;
    let pad = "x".repeat(args.event_bytes.saturating_sub(21));
    let tool_results = args.event_type == "tool-result";
    let per_runner_rate = args.rate as f64 / args.runners as f64;
    let interval =
        (args.rate > 0).then(|| Duration::from_secs_f64(args.batch as f64 / per_runner_rate));
    let limit = if args.duration.is_some() {
        u64::MAX
    } else {
        args.events
    };
    let mut nonces = Nonces::new();
    let mut sequence = 1u64;
    let mut k = 0u32;
    let mut round_trips = Vec::new();
    while sequence <= limit && !stop.load(Ordering::Relaxed) {
        if let Some(interval) = interval {
            tokio::time::sleep_until((paced_from + interval * k).into()).await;
            k += 1;
        }
        let end = (sequence + args.batch as u64).min(limit.saturating_add(1));
        let event = |seq: u64| {
            // The send time leads the output, where subscribers read it.
            let output = format!("{:020} {pad}", epoch.elapsed().as_nanos());
            if tool_results {
                let result = claw_proto::agent::ToolResult {
                    call_id: format!("toolu_bench_{seq}"),
                    output,
                    is_error: false,
                    truncated: false,
                    full_bytes: None,
                    artifact: None,
                };
                serde_json::json!({
                    "type": "tool_result",
                    "data": serde_json::to_string(&result).unwrap_or_default(),
                    "sequence": seq,
                })
            } else {
                serde_json::json!({ "type": "stdout", "data": output, "sequence": seq })
            }
        };
        let (path, body) = if args.batch == 1 {
            ("/api/ingest/event", serde_json::to_vec(&event(sequence))?)
        } else {
            let events: Vec<_> = (sequence..end).map(event).collect();
            (
                "/api/ingest/events",
                serde_json::to_vec(&serde_json::json!({ "events": events }))?,
            )
        };
        let mut attempt = 0;
        loop {
            let nonce = nonces.next()?;
            let parts = SignedParts {
                method: "POST",
                path,
                body: &body,
                timestamp: unix_now(),
                nonce: &nonce,
                run_id: &run.id,
                capability_token: &run.token,
            };
            let sent_at = Instant::now();
            let answered = if args.https_floor {
                conn.get(HEALTH).await
            } else {
                conn.post_signed(target.secret.as_bytes(), &parts).await
            };
            match answered {
                Ok(()) => {
                    round_trips.push(sent_at.elapsed().as_nanos() as u64);
                    break;
                }
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    eprintln!("claw-bench: retrying after: {e:#}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    // The same sequences again, on a fresh connection if
                    // the old one broke.
                    if let Ok(fresh) = RunnerConn::open(&target).await {
                        conn = fresh;
                    }
                }
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        stats.requests.fetch_add(1, Ordering::Relaxed);
        if !args.https_floor {
            stats.sent.fetch_add(end - sequence, Ordering::Relaxed);
        }
        sequence = end;
    }
    if let Ok(mut all) = stats.round_trips.lock() {
        all.extend(round_trips);
    }
    Ok(sequence - 1)
}

/// Runs `clawctl prune` against the target's control socket; its duration
/// and the number of events it removed.
async fn prune(args: &Args, target: &Target) -> anyhow::Result<(f64, u64)> {
    let clawctl = args.clawctl.clone().unwrap_or_else(|| {
        args.spawn
            .as_ref()
            .and_then(|clawd| clawd.parent())
            .map_or_else(|| "clawctl".into(), |dir| dir.join("clawctl"))
    });
    let started = Instant::now();
    let out = tokio::process::Command::new(&clawctl)
        .arg("--socket")
        .arg(target.data_dir.join("control.sock"))
        .args(["--json", "prune"])
        .output()
        .await
        .with_context(|| format!("cannot run {}", clawctl.display()))?;
    let took = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("clawctl prune: {}", String::from_utf8_lossy(&out.stderr));
    }
    let result: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("clawctl prune --json printed no JSON")?;
    Ok((took, result["counts"]["events"].as_u64().unwrap_or(0)))
}

/// Times pages of 1000 events at random offsets of a run.
async fn time_pages(
    client: &reqwest::Client,
    target: &Target,
    session: &str,
    run_id: &str,
) -> anyhow::Result<Option<Latency>> {
    let run: serde_json::Value = client
        .get(format!("{}/api/runs/{run_id}", target.base))
        .bearer_auth(session)
        .send()
        .await?
        .json()
        .await?;
    let events = run["eventCount"]
        .as_u64()
        .context("--page-run: no such run")?;
    let mut samples = Vec::new();
    for _ in 0..200 {
        let mut bytes = [0u8; 8];
        let _ = getrandom::fill(&mut bytes);
        let after = u64::from_le_bytes(bytes) % events.saturating_sub(1000).max(1);
        let started = Instant::now();
        let reply = client
            .get(format!(
                "{}/api/runs/{run_id}/events?after={after}&limit=1000",
                target.base
            ))
            .bearer_auth(session)
            .send()
            .await?;
        if !reply.status().is_success() {
            bail!("a page of {run_id}: {}", reply.status());
        }
        let body = reply.bytes().await?;
        samples.push(started.elapsed().as_nanos() as u64);
        if body.len() < 2 {
            bail!("an empty page of {run_id}");
        }
    }
    Ok(Latency::from_nanos(samples))
}

pub async fn drive(args: &Args, target: Target) -> anyhow::Result<(Report, Target)> {
    let mut target = target;
    let session = target.session().await?;
    let target = Arc::new(target);
    let client = target.client()?;
    let mut runs = Vec::new();
    for _ in 0..args.runners {
        runs.push(Arc::new(create_run(&client, &target, &session).await?));
    }

    let epoch = Instant::now();
    let (done_tx, done_rx) = watch::channel(false);
    let mut subscribers = Vec::new();
    let expected = if args.duration.is_some() {
        u64::MAX
    } else {
        args.events
    };
    for run in &runs {
        for _ in 0..args.subscribers {
            let socket = subscribe::connect(&target, &session).await?;
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            subscribers.push(tokio::spawn(subscribe::follow(
                socket,
                run.id.clone(),
                expected,
                epoch,
                ready_tx,
                done_rx.clone(),
            )));
            ready_rx.await.context("a subscriber did not subscribe")?;
        }
    }

    let mut stalled = Vec::new();
    for run in &runs {
        for _ in 0..args.stalled_subscribers {
            let socket = subscribe::connect(&target, &session).await?;
            stalled.push(tokio::spawn(subscribe::stall(
                socket,
                run.id.clone(),
                done_rx.clone(),
            )));
        }
    }
    // The daemon's resident memory, sampled while sending.
    let rss_peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (target, rss_peak, done) =
            (Arc::clone(&target), Arc::clone(&rss_peak), done_rx.clone());
        tokio::spawn(async move {
            while !*done.borrow() {
                if let Some(rss) = target.rss_kib() {
                    rss_peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Sender {
        round_trips: std::sync::Mutex::new(Vec::new()),
        sent: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let store_before = store_counters(&client, &target, &session).await;
    let cpu_before = target.cpu_secs();
    let postgres_cpu_before = target.postgres_cpu_secs();
    let haproxy_cpu_before = target.haproxy_cpu_secs();
    let own_cpu_before = claw_testkit::process_cpu_secs("self");
    let started = Instant::now();
    let mut senders = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        // Paced runners start a fraction of an interval apart, so the total
        // rate arrives evenly rather than in bursts of R requests at once.
        let stagger = match args.rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(args.batch as f64 / rate as f64 * index as f64),
        };
        senders.push(tokio::spawn(runner(
            args.clone(),
            Arc::clone(&target),
            Arc::clone(run),
            epoch,
            started + stagger,
            Arc::clone(&stop),
            Arc::clone(&stats),
        )));
    }
    let pruning = args.prune.then(|| {
        let (args, target) = (args.clone(), Arc::clone(&target));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            prune(&args, &target).await
        })
    });
    if let Some(duration) = args.duration {
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut per_run_sent = Vec::new();
    for sender in senders {
        per_run_sent.push(match sender.await? {
            Ok(n) => n,
            Err(e) => {
                eprintln!("claw-bench: a runner gave up: {e:#}");
                0
            }
        });
    }
    let seconds = started.elapsed().as_secs_f64();
    let daemon_cpu = target
        .cpu_secs()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let own_cpu = claw_testkit::process_cpu_secs("self")
        .zip(own_cpu_before)
        .map(|(after, before)| after - before);
    let postgres_cpu = target
        .postgres_cpu_secs()
        .zip(postgres_cpu_before)
        .map(|(after, before)| after - before);
    let haproxy_cpu = target
        .haproxy_cpu_secs()
        .zip(haproxy_cpu_before)
        .map(|(after, before)| after - before);
    let store_after = store_counters(&client, &target, &session).await;
    // Per instance: (commits, writes) while sending.
    let store_deltas: Option<Vec<(u64, u64)>> =
        store_before.zip(store_after).and_then(|(before, after)| {
            before
                .iter()
                .zip(&after)
                .map(|((commits_before, writes_before), (commits, writes))| {
                    Some((
                        commits.checked_sub(*commits_before)?,
                        writes.checked_sub(*writes_before)?,
                    ))
                })
                .collect()
        });
    let _ = done_tx.send(true);
    let _ = sampler.await;
    for stalled in stalled {
        stalled.await??;
    }

    let mut report = Report {
        runners: args.runners,
        batch: args.batch,
        subscribers_per_run: args.subscribers,
        event_bytes: args.event_bytes,
        event_type: args.event_type.clone(),
        https_floor: args.https_floor,
        events_sent: stats.sent.load(Ordering::Relaxed),
        seconds,
        errors: stats.errors.load(Ordering::Relaxed),
        daemon_cpu_share: daemon_cpu.map(|cpu| cpu / seconds),
        bench_cpu_share: own_cpu.map(|cpu| cpu / seconds),
        postgres_cpu_share: postgres_cpu.map(|cpu| cpu / seconds),
        daemon_rss_peak_kib: Some(rss_peak.load(Ordering::Relaxed)).filter(|kib| *kib > 0),
        writes_per_commit: store_deltas.as_ref().and_then(|deltas| {
            let commits: u64 = deltas.iter().map(|(commits, _)| commits).sum();
            let writes: u64 = deltas.iter().map(|(_, writes)| writes).sum();
            (commits > 0).then(|| writes as f64 / commits as f64)
        }),
        ..Report::default()
    };
    report.events_per_sec = report.events_sent as f64 / seconds;
    if target.instances() > 1 {
        report.instances = Some(target.instances());
        report.runners_to = Some(target.runners.name.to_owned());
        report.subscribers_to = (args.subscribers + args.stalled_subscribers > 0)
            .then(|| target.browsers.name.to_owned());
        report.store_writes_per_instance = store_deltas
            .as_ref()
            .map(|deltas| deltas.iter().map(|(_, writes)| *writes).collect());
        report.haproxy_cpu_share = haproxy_cpu.map(|cpu| cpu / seconds);
    }
    report.requests_per_sec = stats.requests.load(Ordering::Relaxed) as f64 / seconds;

    // Every run must hold exactly what its runner sent (with
    // --https-floor they sent nothing to store).
    for (run, sent) in runs.iter().zip(&per_run_sent) {
        if args.https_floor {
            break;
        }
        let body: serde_json::Value = client
            .get(format!("{}/api/runs/{}", target.base, run.id))
            .bearer_auth(&session)
            .send()
            .await?
            .json()
            .await?;
        let stored = body["eventCount"].as_u64().unwrap_or_default();
        report.lost += sent.saturating_sub(stored);
        report.duplicated += stored.saturating_sub(*sent);
    }
    let mut latencies = Vec::new();
    let mut sent_iter = per_run_sent
        .iter()
        .flat_map(|n| std::iter::repeat_n(*n, args.subscribers));
    for subscriber in subscribers {
        let received = subscriber.await??;
        let sent = sent_iter.next().unwrap_or_default();
        report.lost += sent.saturating_sub(received.distinct);
        report.duplicated += received.duplicated;
        latencies.extend(received.latencies_ns);
    }
    report.latency = Latency::from_nanos(latencies);
    report.request_latency = stats
        .round_trips
        .lock()
        .ok()
        .and_then(|mut all| Latency::from_nanos(std::mem::take(&mut *all)));
    if let Some(pruning) = pruning {
        let (secs, events) = pruning.await??;
        report.prune_secs = Some(secs);
        report.pruned_events = Some(events);
    }
    if let Some(run_id) = &args.page_run {
        report.page_latency = time_pages(&client, &target, &session, run_id).await?;
    }
    report.ready_ms = target.ready_ms;
    let target = Arc::try_unwrap(target).map_err(|_| anyhow::anyhow!("target still shared"))?;
    Ok((report, target))
}
