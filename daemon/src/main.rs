//! `clawd`, the claw gateway daemon.

mod api;
mod artifacts;
mod auth;
mod config;
mod fsutil;
mod hub;
mod ratelimit;
mod secrets;
mod server;
mod store;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "clawd",
    version,
    about = "The claw gateway: runs AI coding agents' output, commands and artifacts over HTTPS",
    long_about = "clawd accepts HMAC-signed connections from claw-runner, stores runs, events, \
                  commands and artifacts in SQLite, and serves the human API and live WebSocket \
                  to browsers. See clawd(8) and clawd.toml(5)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway in the foreground.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Directory for the database, certificates, secrets and artifacts.
    #[arg(long, value_name = "DIR", env = "CLAW_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file (TOML) [default: /etc/claw/clawd.toml when present].
    #[arg(long, value_name = "FILE", env = "CLAW_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the HTTPS listener; port 0 picks a free port [default: 0.0.0.0:3100].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Database, secrets and artifacts are private to the service user.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let Command::Serve(args) = cli.command;
    let config = match load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("clawd: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clawd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args, config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("clawd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn load_config(explicit: Option<&Path>) -> anyhow::Result<Config> {
    if let Some(path) = explicit {
        return Ok(Config::load(path)?);
    }
    let default = Path::new(config::DEFAULT_CONFIG_PATH);
    if default.exists() {
        return Ok(Config::load(default)?);
    }
    Ok(Config::default())
}

fn init_logging(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

async fn serve(args: ServeArgs, mut config: Config) -> anyhow::Result<()> {
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let data_dir = args
        .data_dir
        .or_else(|| config.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("./.data"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;

    let secrets = secrets::Secrets::load(&data_dir)?;
    let store = store::Store::open(&data_dir.join("db.sqlite"))
        .with_context(|| format!("cannot open the database in {}", data_dir.display()))?;
    let redactor = claw_proto::Redactor::new(&config.redact_patterns)?;
    let setup_token = setup_token(&store, &data_dir).await?;

    let tls = if config.tls {
        let paths = tls::CertPaths {
            generate_if_missing: config.tls_cert.is_none(),
            cert: config
                .tls_cert
                .clone()
                .unwrap_or_else(|| data_dir.join("certs/server.crt")),
            key: config
                .tls_key
                .clone()
                .unwrap_or_else(|| data_dir.join("certs/server.key")),
        };
        let loaded = tls::load_or_generate(&paths)?;
        tracing::info!(fingerprint = %loaded.fingerprint_sha256, "TLS certificate loaded");
        Some(Arc::new(RwLock::new(loaded.config)))
    } else {
        tracing::warn!("TLS is off (tls = false): serve only behind a TLS-terminating proxy");
        None
    };

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };

    let state = Arc::new(api::AppState::new(
        config,
        data_dir,
        store.clone(),
        secrets,
        redactor,
        setup_token,
        tls.is_some(),
    ));
    let app = api::router(Arc::clone(&state));

    let (stop, stopped) = watch::channel(false);
    tokio::spawn(housekeeping(store, stopped.clone()));
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });

    tracing::info!(address = %bound, "listening on {scheme}://{bound}");
    // Scripts and tests read the bound address (port 0) from stdout.
    println!("clawd listening on {scheme}://{bound}");
    server::serve(listener, tls, app, stopped).await;
    Ok(())
}

/// The setup token while no user exists: kept in `DATA_DIR/setup-token`
/// (0600) so it survives restarts until setup is done.
async fn setup_token(store: &store::Store, data_dir: &Path) -> anyhow::Result<Option<String>> {
    let path = data_dir.join("setup-token");
    if store.user_count().await? > 0 {
        let _ = std::fs::remove_file(&path);
        return Ok(None);
    }
    let existing = std::fs::read_to_string(&path)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let token = match existing {
        Some(token) => token,
        None => {
            let token = fsutil::random_hex(16)?;
            fsutil::write_private(&path, format!("{token}\n").as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            token
        }
    };
    tracing::info!(
        file = %path.display(),
        "no user exists yet: finish setup in the web UI with the setup token {token}"
    );
    Ok(Some(token))
}

/// Removes expired sessions and nonces once a minute.
async fn housekeeping(store: store::Store, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = store.purge_expired().await {
                    tracing::warn!(error = %e, "could not purge expired sessions and nonces");
                }
            }
            () = server::until_stopped(&mut stopped) => return,
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
