//! `claw-bench`: drives a clawd on loopback with R signed runners sending
//! single events or batches of B, optionally S WebSocket subscribers per run
//! timing each event from send to receipt, and measures the raw SQLite
//! insert rate of the same rows beside it. Prints a human summary and one
//! JSON line. Not installed by the packages.

mod agent;
mod bigdb;
mod load;
mod raw;
mod raw_pg;
mod report;
mod runner_conn;
mod spawn;
mod subscribe;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "claw-bench",
    version,
    about = "Load generator for clawd (loopback only)",
    long_about = "Creates runs through the human API, drives concurrent signed runners \
                  sending single events or batches, optionally with WebSocket subscribers \
                  that time each event from send to receipt, then checks every run holds \
                  exactly what was sent. With --spawn it starts its own clawd on a \
                  temporary data directory and a free port, storing in SQLite or (with \
                  --postgres or --spawn-postgres) PostgreSQL. Prints a summary and one JSON \
                  line (events/s, latency percentiles, errors, daemon RSS, raw SQLite or \
                  PostgreSQL rate)."
)]
pub struct Args {
    /// Start this clawd binary on a temporary data directory and free port.
    #[arg(long, value_name = "CLAWD", conflicts_with = "gateway")]
    pub spawn: Option<PathBuf>,
    /// An already running gateway on loopback, e.g. https://127.0.0.1:3100.
    #[arg(long, value_name = "URL", requires_all = ["data_dir"])]
    pub gateway: Option<String>,
    /// The running gateway's data directory (certificate, HMAC secret, setup token).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A session token (bearer) for a running gateway that already has users;
    /// without it a first administrator is made with the setup token.
    #[arg(long, value_name = "TOKEN", env = "CLAW_BENCH_SESSION")]
    pub session: Option<String>,
    /// PID of the running gateway, for its resident memory.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Concurrent runners, one run each.
    #[arg(long, default_value_t = 8)]
    pub runners: usize,
    /// Events per request: 1 uses POST /api/ingest/event, more /api/ingest/events.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Events each runner sends.
    #[arg(long, default_value_t = 10_000)]
    pub events: u64,
    /// Send for this long instead of a fixed count (e.g. 10s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Total events per second across runners (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// WebSocket subscribers per run, timing each event.
    #[arg(long, default_value_t = 0)]
    pub subscribers: usize,
    /// WebSocket subscribers per run that subscribe and then never read.
    #[arg(long, default_value_t = 0)]
    pub stalled_subscribers: usize,
    /// Bytes of output per event.
    #[arg(long, default_value_t = 100)]
    pub event_bytes: usize,
    /// What the events are: raw `stdout` lines, or the structured
    /// `tool_result` events an agent run sends (a tool's output of
    /// --event-bytes as JSON, which the gateway parses and redacts).
    #[arg(long, default_value = "stdout", value_parser = ["stdout", "tool-result"])]
    pub event_type: String,
    /// Instead of events: create an agent run, start a real claw-runner
    /// for it whose agent is claw-bench itself, and send N prompts one at
    /// a time, timing each from `POST /api/runs/{id}/prompts` to the
    /// agent reading it on its stdin.
    #[arg(long, value_name = "N", conflicts_with_all = ["https_floor", "subscribers", "stalled_subscribers", "raw_sqlite", "prune", "page_run", "decision_latency"])]
    pub prompt_latency: Option<usize>,
    /// Instead of events: as --prompt-latency, but the agent asks
    /// permission N times, one at a time; each approval is decided as soon
    /// as it shows on a browser WebSocket, timed from the decision's POST
    /// to the answer on the agent's stdin.
    #[arg(long, value_name = "N", conflicts_with_all = ["https_floor", "subscribers", "stalled_subscribers", "raw_sqlite", "prune", "page_run"])]
    pub decision_latency: Option<usize>,
    /// claw-runner for --prompt-latency and --decision-latency (default:
    /// beside the --spawn binary, else PATH).
    #[arg(long, value_name = "CLAW_RUNNER")]
    pub runner_bin: Option<PathBuf>,
    /// Also insert the same rows straight into SQLite with the daemon's
    /// schema and pragmas, for the store's physical limit.
    #[arg(long)]
    pub raw_sqlite: bool,
    /// The spawned clawd stores in this PostgreSQL database
    /// (`postgres://USER:PASSWORD@HOST:PORT/DB`) instead of SQLite.
    #[arg(long, value_name = "URL", requires = "spawn", group = "postgres_store",
          conflicts_with_all = ["db_from", "spawn_postgres"])]
    pub postgres: Option<String>,
    /// Start a temporary PostgreSQL cluster with the server's durability
    /// settings (fsync and synchronous_commit on) for the spawned clawd to
    /// store in, and remove it at the end.
    #[arg(
        long,
        requires = "spawn",
        group = "postgres_store",
        conflicts_with = "db_from"
    )]
    pub spawn_postgres: bool,
    /// Spawn this many clawd instances (1 or 2) on the one PostgreSQL
    /// database of --postgres or --spawn-postgres, the second with the
    /// first one's secrets, behind HAProxy (TLS at the proxy, health
    /// checks on /api/health, round robin). With 2 the runners send
    /// through the proxy; with --subscribers or --stalled-subscribers the
    /// runners send to instance A directly and the subscribers follow on
    /// instance B directly, so event -> browser crosses instances (LISTEN/
    /// NOTIFY). Runs are made and checked on A; daemon CPU and memory are
    /// both instances' sum.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub instances: u8,
    /// Also insert the same rows into the store's events table on the same
    /// PostgreSQL server through one connection, a transaction per batch,
    /// with multi-row INSERT and with COPY: the store's physical limit.
    #[arg(long, requires = "postgres_store")]
    pub raw_postgres: bool,
    /// Instead of events, each runner asks `GET /api/health` on its
    /// keep-alive connection: what an HTTPS request that stores nothing
    /// costs, the gateway's other limit beside --raw-sqlite. Unsigned, so
    /// with --gateway it needs `rate_limit_per_minute = 0` there.
    #[arg(long, conflicts_with_all = ["subscribers", "stalled_subscribers", "raw_sqlite", "batch"])]
    pub https_floor: bool,
    /// Print only the JSON line.
    #[arg(long)]
    pub json: bool,
    /// The spawned clawd's `durability` (batched or commit); --raw-sqlite
    /// uses the matching `synchronous` (NORMAL or FULL).
    #[arg(long, default_value = "batched", value_parser = ["batched", "commit"])]
    pub durability: String,
    /// Start the spawned clawd on a copy of this database (see --make-db);
    /// the report then says how long clawd took to READY=1 on it.
    #[arg(long, value_name = "FILE", requires = "spawn")]
    pub db_from: Option<PathBuf>,
    /// After sending, time 200 pages (1000 events each, random offsets) of
    /// this run's events over the human API.
    #[arg(long, value_name = "RUN_ID")]
    pub page_run: Option<String>,
    /// One second into sending, prune finished runs past retention with
    /// `clawctl prune`; the report gives its duration beside the ingest
    /// requests' worst latency.
    #[arg(long)]
    pub prune: bool,
    /// clawctl for --prune (default: beside the --spawn binary, else PATH).
    #[arg(long, value_name = "CLAWCTL")]
    pub clawctl: Option<PathBuf>,
    /// Write a database for --db-from and exit: a run `bench-big` of
    /// --big-run-events events finished long ago, and filler runs up to
    /// --db-size-mb.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["spawn", "gateway"])]
    pub make_db: Option<PathBuf>,
    #[arg(long, default_value_t = 1024)]
    pub db_size_mb: u64,
    #[arg(long, default_value_t = 1_000_000)]
    pub big_run_events: u64,
}

fn main() -> anyhow::Result<()> {
    // Started by claw-runner as --prompt-latency's agent.
    if let Some(report_to) = std::env::var_os(agent::STAND_IN_ENV) {
        return agent::stand_in(std::path::Path::new(&report_to));
    }
    let args = Args::parse();
    if let Some(path) = &args.make_db {
        return bigdb::make(path, args.db_size_mb * 1_000_000, args.big_run_events);
    }
    if args.runners == 0 || args.batch == 0 {
        bail!("--runners and --batch must be at least 1");
    }
    if args.instances > 1 {
        if args.postgres.is_none() && !args.spawn_postgres {
            bail!("--instances 2 shares one database: give --postgres URL or --spawn-postgres");
        }
        if args.prompt_latency.is_some() || args.decision_latency.is_some() {
            bail!("--instances 2 measures events, not --prompt-latency or --decision-latency");
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(run(args.clone()))?;
    if !args.json {
        report.print_summary();
    }
    println!("{}", serde_json::to_string(&report)?);
    if report.errors > 0 || report.lost > 0 || report.duplicated > 0 {
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<report::Report> {
    let target = match (&args.spawn, &args.gateway) {
        (Some(clawd), _) => {
            let store = match (&args.postgres, args.spawn_postgres) {
                (Some(url), _) => spawn::Store::Postgres(url.clone()),
                (None, true) => spawn::Store::TempPostgres,
                (None, false) => spawn::Store::Default,
            };
            let layout = match args.instances {
                1 => spawn::Layout::One,
                _ if args.subscribers + args.stalled_subscribers > 0 => spawn::Layout::TwoAcross,
                _ => spawn::Layout::TwoThroughProxy,
            };
            spawn::Target::spawn(
                clawd,
                args.db_from.as_deref(),
                &args.durability,
                store,
                layout,
            )
            .await?
        }
        (None, Some(url)) => {
            let dir = args
                .data_dir
                .clone()
                .context("--gateway needs --data-dir")?;
            spawn::Target::existing(url, &dir, args.pid, args.session.clone())?
        }
        (None, None) => bail!("give --spawn CLAWD or --gateway URL --data-dir DIR"),
    };
    let (mut report, target) = match (args.prompt_latency, args.decision_latency) {
        (Some(count), _) => agent::prompt_latency(&args, target, count).await?,
        (None, Some(count)) => agent::decision_latency(&args, target, count).await?,
        (None, None) => load::drive(&args, target).await?,
    };
    report.daemon_rss_kib = target.rss_kib();
    if args.raw_sqlite {
        let total = report.events_sent;
        let raw = tokio::task::spawn_blocking({
            let (batch, bytes, runners) = (args.batch, args.event_bytes, args.runners);
            let full = args.durability == "commit";
            move || raw::insert_rate(total, batch, bytes, runners, full)
        })
        .await??;
        report.raw_sqlite_events_per_sec = Some(raw);
        report.ratio_to_raw = Some(report.events_per_sec / raw);
    }
    if let Some(url) = target.postgres_url() {
        report.postgres = Some(raw_pg::settings(url).await?);
        if args.raw_postgres {
            let raw = raw_pg::insert_rates(
                url,
                report.events_sent,
                args.batch,
                args.event_bytes,
                args.runners,
            )
            .await?;
            report.raw_postgres_insert_events_per_sec = Some(raw.insert);
            report.raw_postgres_copy_events_per_sec = Some(raw.copy);
            report.ratio_to_raw_postgres_insert = Some(report.events_per_sec / raw.insert);
            report.ratio_to_raw_postgres_copy = Some(report.events_per_sec / raw.copy);
        }
    }
    // The figures stand; a clawd that did not stop cleanly is said.
    if let Err(e) = target.stop().await {
        eprintln!("claw-bench: {e:#}");
    }
    Ok(report)
}
