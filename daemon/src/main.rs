//! `clawd`, the claw gateway daemon.

mod api;
mod app;
mod artifacts;
mod auth;
mod backup;
mod blobs;
mod clock;
mod cluster;
mod config;
mod control;
mod daemon;
mod delivery;
mod fsutil;
mod hosts;
mod http;
mod hub;
mod listeners;
mod logging;
mod markdown;
mod notify;
mod qr;
mod ratelimit;
mod secrets;
mod server;
mod service;
mod shutdown;
mod store;
mod tls;
mod views;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "clawd",
    version,
    about = "The claw gateway: runs AI coding agents' output, commands and artifacts over HTTPS",
    long_about = "clawd accepts HMAC-signed connections from claw-runner, stores runs, events, \
                  commands and artifacts in SQLite, and serves the human API and live WebSocket \
                  to browsers. Under systemd it takes its sockets from clawd.socket. \
                  See clawd(8) and clawd.toml(5)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway in the foreground (SIGHUP reloads, SIGTERM stops).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Directory for the database, certificates, secrets and artifacts
    /// [default: $STATE_DIRECTORY under systemd, else ./.data].
    #[arg(long, value_name = "DIR", env = "CLAW_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file (TOML) [default: /etc/claw/clawd.toml when present].
    #[arg(long, value_name = "FILE", env = "CLAW_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the HTTPS listener when not socket-activated; port 0 picks
    /// a free port [default: 0.0.0.0:3100].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
}

/// Threads for blocking work (database reads, password hashing, file
/// writes); more work waits in tokio's queue. Bounds the threads and the
/// read connections' caches (2 MiB each) that a burst of requests can
/// create; clawd.service's TasksMax= counts on it.
const BLOCKING_THREADS: usize = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command;
    // Database, secrets and artifacts are private to the service user.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let options = daemon::Options {
        config: args.config,
        data_dir: args.data_dir,
        listen: args.listen,
    };
    let config = match options.load_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("clawd: {e:#}");
            return ExitCode::from(2);
        }
    };
    let log = logging::init(&config.log_level);
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.runtime_workers(cpus))
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clawd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(options, config, log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("clawd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
