//! The daemon's life: start-up, serving, reload on SIGHUP, orderly stop on
//! SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use claw_proto::Redactor;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::api::{self, AppState, Core};
use crate::config::{self, Config};
use crate::control::ControlContext;
use crate::hub::Hub;
use crate::listeners::{self, Listeners};
use crate::logging::LogLevel;
use crate::server::{self, CurrentApp, TlsConfig};
use crate::{fsutil, notify, secrets, store, tls};

/// What the command line says.
pub struct Options {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

/// How long WebSockets get to close after SIGTERM.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

impl Options {
    /// The configuration file in effect: `--config`, else the default path
    /// when it exists.
    fn config_path(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            let default = Path::new(config::DEFAULT_CONFIG_PATH);
            default.exists().then(|| default.to_owned())
        })
    }

    pub fn load_config(&self) -> anyhow::Result<Config> {
        let mut config = match self.config_path() {
            Some(path) => Config::load(&path)?,
            None => Config::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        Ok(config)
    }

    /// `--data-dir`, the config's `data_dir`, systemd's `$STATE_DIRECTORY`,
    /// else `./.data`.
    fn data_dir(&self, config: &Config) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| config.data_dir.clone())
            .or_else(|| {
                std::env::var_os("STATE_DIRECTORY").and_then(|dirs| {
                    dirs.to_str()
                        .and_then(|d| d.split(':').next())
                        .map(PathBuf::from)
                })
            })
            .unwrap_or_else(|| PathBuf::from("./.data"))
    }
}

fn cert_paths(config: &Config, data_dir: &Path) -> tls::CertPaths {
    tls::CertPaths {
        generate_if_missing: config.tls_cert.is_none(),
        cert: config
            .tls_cert
            .clone()
            .unwrap_or_else(|| data_dir.join("certs/server.crt")),
        key: config
            .tls_key
            .clone()
            .unwrap_or_else(|| data_dir.join("certs/server.key")),
    }
}

/// A request is accepted while its timestamp is within the skew, so its
/// nonce must be kept at least that long.
fn nonce_retention_secs(config: &Config) -> u64 {
    config.nonce_lifetime_secs.max(config.clock_skew_secs)
}

/// Runs the gateway until SIGTERM or SIGINT.
pub async fn run(options: Options, config: Config, log: LogLevel) -> anyhow::Result<()> {
    let started = Instant::now();
    // Socket activation first: a misconfigured clawd.socket is reported
    // before anything is written.
    let activated = listeners::from_systemd()?;
    let data_dir = options.data_dir(&config);
    fsutil::prepare_data_dir(&data_dir)?;

    let secrets = secrets::Secrets::load(&data_dir)?;
    let db_path = data_dir.join("db.sqlite");
    let store = store::Store::open(
        &db_path,
        store::StoreSettings {
            durability: config.durability,
            nonce_retention_secs: nonce_retention_secs(&config),
        },
    )
    .with_context(|| format!("cannot open the database {}", db_path.display()))?;
    let redactor = Redactor::new(&config.redact_patterns)?;
    let setup_token = setup_token(&store, &data_dir).await?;

    let (tls, cert_info) = if config.tls {
        let loaded = tls::load_or_generate(&cert_paths(&config, &data_dir))?;
        tracing::info!(fingerprint = %loaded.fingerprint_sha256, "TLS certificate loaded");
        loaded.info.warn_if_expiring();
        (
            Some(Arc::new(RwLock::new(loaded.config))),
            Some(loaded.info),
        )
    } else {
        tracing::warn!("TLS is off (tls = false): serve only behind a TLS-terminating proxy");
        (None, None)
    };

    let listeners = match activated {
        Some(listeners) => listeners,
        None => listeners::bind(config.listen, &data_dir.join("control.sock"))?,
    };
    let Listeners {
        https,
        control,
        activated,
        control_path,
    } = listeners;
    let https = tokio::net::TcpListener::from_std(https)?;
    let bound = https.local_addr()?;
    let control = control
        .map(tokio::net::UnixListener::from_std)
        .transpose()?;
    let control_address = control
        .as_ref()
        .and_then(|c| c.local_addr().ok())
        .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
        .unwrap_or_else(|| "(none)".to_owned());

    let (stop, stopped) = watch::channel(false);
    let core = Core {
        data_dir: data_dir.clone(),
        store: store.clone(),
        hub: Arc::new(Hub::default()),
        secrets,
        setup_token: Arc::new(Mutex::new(setup_token)),
        shutdown: stopped.clone(),
    };
    let state = AppState::new(&core, config.clone(), redactor, tls.is_some());
    let app: CurrentApp = Arc::new(RwLock::new(api::router(Arc::new(state))));

    let scheme = if tls.is_some() { "https" } else { "http" };
    let control_context = Arc::new(ControlContext {
        core: core.clone(),
        shutdown: Arc::new(tokio::sync::Notify::new()),
        retention_days: std::sync::atomic::AtomicU32::new(config.run_retention_days),
        stale_run_hours: std::sync::atomic::AtomicU32::new(config.stale_run_hours),
        store: store.clone(),
        hub: Arc::clone(&core.hub),
        started,
        https_address: format!("{scheme}://{bound}"),
        control_address: control_address.clone(),
        activated,
        tls: RwLock::new(cert_info),
        tls_config: tls.clone(),
        config_path: options.config_path(),
        cert_paths: RwLock::new(tls.is_some().then(|| cert_paths(&config, &data_dir))),
        database_path: db_path,
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(server::serve(
        https,
        tls.clone(),
        Arc::clone(&app),
        stopped.clone(),
    ));
    if let Some(control) = control {
        tasks.spawn(server::serve_control(
            control,
            Arc::clone(&control_context),
            stopped.clone(),
        ));
    }
    tokio::spawn(crate::notify::watchdog(
        store.clone(),
        Arc::clone(&core.hub),
        stopped.clone(),
    ));
    tokio::spawn(housekeeping(
        store.clone(),
        Arc::clone(&control_context),
        stopped.clone(),
    ));

    tracing::info!(
        address = %bound,
        control = %control_address,
        socket_activated = activated,
        runtime_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        "listening on {scheme}://{bound}"
    );
    // Scripts and tests read the bound address (port 0) from stdout.
    println!("clawd listening on {scheme}://{bound}");
    notify::ready(&notify::status_line(&store, &core.hub).await);

    let mut live = Reloadable {
        options,
        config,
        core,
        app,
        tls,
        control: control_context,
        log,
    };
    wait_for_stop(&mut live).await?;

    notify::stopping();
    tracing::info!("shutting down: finishing requests and closing WebSockets");
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    let deadline = Instant::now() + CLOSE_GRACE;
    while live.core.hub.clients() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Everything queued before this has committed once it returns.
    if let Err(e) = store.drain().await {
        tracing::error!(error = %e, "the store did not drain cleanly");
    } else if let Err(e) = store.checkpoint_log().await {
        tracing::warn!(error = %e, "the database log was not folded into the database");
    }
    if let Some(path) = control_path {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("stopped");
    Ok(())
}

/// What SIGHUP may change.
struct Reloadable {
    options: Options,
    config: Config,
    core: Core,
    app: CurrentApp,
    tls: Option<TlsConfig>,
    control: Arc<ControlContext>,
    log: LogLevel,
}

impl Reloadable {
    /// Re-reads the configuration and the certificate. All or nothing: a
    /// broken file keeps everything as it was.
    fn reload(&mut self) -> anyhow::Result<()> {
        let new = self.options.load_config()?;
        let redactor = Redactor::new(&new.redact_patterns)?;
        for (name, changed) in [
            ("listen", new.listen != self.config.listen),
            ("data_dir", new.data_dir != self.config.data_dir),
            ("tls", new.tls != self.config.tls),
            ("durability", new.durability != self.config.durability),
            (
                "worker_threads",
                new.worker_threads != self.config.worker_threads,
            ),
        ] {
            if changed {
                tracing::warn!("{name} changed: this takes effect at the next restart");
            }
        }
        let loaded = match &self.tls {
            Some(_) => Some(tls::load_or_generate(&cert_paths(
                &new,
                &self.core.data_dir,
            ))?),
            None => None,
        };
        if let (Some(current), Some(loaded)) = (&self.tls, loaded) {
            *current.write().unwrap_or_else(|e| e.into_inner()) = loaded.config;
            loaded.info.warn_if_expiring();
            *self.control.tls.write().unwrap_or_else(|e| e.into_inner()) = Some(loaded.info);
            *self
                .control
                .cert_paths
                .write()
                .unwrap_or_else(|e| e.into_inner()) = Some(cert_paths(&new, &self.core.data_dir));
            tracing::info!(fingerprint = %loaded.fingerprint_sha256, "TLS certificate reloaded");
        }
        let state = AppState::new(&self.core, new.clone(), redactor, self.tls.is_some());
        *self.app.write().unwrap_or_else(|e| e.into_inner()) = api::router(Arc::new(state));
        self.log.set(&new.log_level);
        self.control
            .retention_days
            .store(new.run_retention_days, std::sync::atomic::Ordering::Relaxed);
        self.control
            .stale_run_hours
            .store(new.stale_run_hours, std::sync::atomic::Ordering::Relaxed);
        self.core
            .store
            .set_nonce_retention(nonce_retention_secs(&new));
        self.config = new;
        Ok(())
    }
}

async fn wait_for_stop(live: &mut Reloadable) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                notify::reloading();
                match live.reload() {
                    Ok(()) => tracing::info!("configuration reloaded"),
                    Err(e) => tracing::error!("reload failed, keeping the running configuration: {e:#}"),
                }
                notify::ready(&notify::status_line(&live.core.store, &live.core.hub).await);
            }
            _ = term.recv() => return Ok(()),
            () = live.control.shutdown.notified() => {
                tracing::info!("stop requested on the control socket");
                return Ok(());
            }
            _ = int.recv() => return Ok(()),
        }
    }
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

/// Removes expired sessions and nonces once a minute; warns once a day
/// when the certificate is about to expire.
async fn housekeeping(
    store: store::Store,
    control: Arc<ControlContext>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    // Start-up already warned.
    let mut last_expiry_check = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = store.purge_expired().await {
                    tracing::warn!(error = %e, "could not purge expired sessions and nonces");
                }
                if last_expiry_check.elapsed() >= Duration::from_secs(86_400) {
                    last_expiry_check = Instant::now();
                    let cert = control.tls.read().unwrap_or_else(|e| e.into_inner()).clone();
                    if let Some(cert) = cert {
                        cert.warn_if_expiring();
                    }
                }
            }
            () = server::until_stopped(&mut stopped) => return,
        }
    }
}
