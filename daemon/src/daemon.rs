//! The daemon's life: start-up, serving, reload on SIGHUP, orderly stop on
//! SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::app::{App, Facts, Parts, Settings, TlsState, nonce_retention_secs};
use crate::blobs::s3::{Key as S3Key, S3Blobs};
use crate::blobs::{BlobStore, FileBlobs};
use crate::cluster;
use crate::config::{self, ArtifactBackend, Backend, Config};
use crate::delivery;
use crate::hub::Hub;
use crate::listeners::{self, Listeners};
use crate::logging::LogLevel;
use crate::shutdown::Shutdown;
use crate::store::postgres::{PgSettings, PgStore};
use crate::store::sqlite::{SqliteStore, StoreSettings};
use crate::store::{AnyStore, ChangeSink, SETUP_TOKEN_KEY, Store, StoreError, token_hash};
use crate::{api, control, fsutil, notify, secrets, server, shutdown, tls};

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

/// Between attempts to reach PostgreSQL at start.
const START_RETRY: Duration = Duration::from_secs(2);

/// Opens the configured store: SQLite in the data directory, or
/// PostgreSQL (migrated, with a first connection made) at `database_url`.
async fn open_store(
    config: &Config,
    data_dir: &Path,
    sink: Arc<dyn ChangeSink>,
) -> anyhow::Result<AnyStore> {
    let nonce_retention_secs = nonce_retention_secs(config);
    match config.store.backend {
        Backend::Sqlite => {
            let db_path = data_dir.join("db.sqlite");
            let store = SqliteStore::open(
                &db_path,
                StoreSettings {
                    durability: config.durability,
                    nonce_retention_secs,
                },
                sink,
            )
            .with_context(|| format!("cannot open the database {}", db_path.display()))?;
            Ok(Arc::new(store))
        }
        Backend::Postgres => {
            let Some(url) = config.store.database_url.clone() else {
                anyhow::bail!("store.backend is \"postgres\" but store.database_url is not set");
            };
            let shown = url.redacted();
            let settings = PgSettings {
                url,
                password: secrets::database_password()?,
                max_connections: config.store.max_connections,
                connect_timeout: Duration::from_secs(config.store.connect_timeout_secs),
                statement_timeout: Duration::from_secs(config.store.statement_timeout_secs),
                nonce_retention_secs,
            };
            // A database that starts with the machine may answer after
            // clawd asks: keep trying a while before giving up.
            let deadline = Instant::now() + Duration::from_secs(config.store.start_wait_secs);
            let store = loop {
                match PgStore::open(settings.clone(), Arc::clone(&sink)).await {
                    Ok(store) => break store,
                    Err(StoreError::Unavailable(why)) if Instant::now() < deadline => {
                        tracing::warn!(error = %why, "PostgreSQL is not answering: trying again in 2 s");
                        notify::status(&format!("waiting for PostgreSQL at {shown}: {why}"));
                        tokio::time::sleep(START_RETRY).await;
                    }
                    Err(e) => {
                        return Err(anyhow::Error::new(e)
                            .context(format!("cannot open the PostgreSQL store at {shown}")));
                    }
                }
            };
            // Other instances on the database: their changes go live here.
            store.listen_to_other_instances();
            tracing::info!(database = %shown, "store: PostgreSQL");
            Ok(Arc::new(store))
        }
    }
}

/// The artifact store: the data directory's folder, or an S3 bucket.
fn open_blobs(config: &Config, data_dir: &Path) -> anyhow::Result<Arc<dyn BlobStore>> {
    let local = data_dir.join("artifacts");
    match config.artifacts.backend {
        ArtifactBackend::File => Ok(Arc::new(FileBlobs::new(local))),
        ArtifactBackend::S3 => {
            let key = S3Key::find(secrets::s3_key()?, &config.artifacts)
                .map_err(|m| anyhow::anyhow!("the object store's key: {m}"))?;
            if key.is_none() {
                // object_store then asks the cloud's instance metadata for
                // one, which a store of one's own does not have.
                tracing::warn!(
                    "no key for the object store: give the credentials claw_s3-access-key-id and \
                     claw_s3-secret-access-key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); \
                     without one only an AWS instance role can sign"
                );
            }
            let blobs = S3Blobs::new(&config.artifacts, key, &local)
                .context("cannot set up the artifact store")?;
            tracing::info!(store = %blobs.health().location, "artifacts: S3");
            Ok(Arc::new(blobs))
        }
    }
}

/// How often the artifact store is asked whether it answers.
const BLOB_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Keeps the artifact store's health current (and lets it catch up on
/// what waited for it) while clawd runs.
async fn watch_blobs(app: Arc<App>, mut stopped: Shutdown) {
    let mut tick = tokio::time::interval(BLOB_CHECK_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => app.blobs.check().await,
            () = stopped.stopped() => return,
        }
    }
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
    let hub = Arc::new(Hub::default());
    let store = open_store(&config, &data_dir, Arc::clone(&hub) as Arc<dyn ChangeSink>).await?;
    let settings = Settings::new(config.clone())?;
    let instance = cluster::Instance::new();
    cluster::agree_on_secrets(store.as_ref(), &secrets, &instance.id).await?;
    let setup_token = setup_token(store.as_ref(), &data_dir).await?;

    let tls_state = if config.tls {
        let paths = cert_paths(&config, &data_dir);
        let loaded = tls::load_or_generate(&paths)?;
        tracing::info!(fingerprint = %loaded.fingerprint_sha256, "TLS certificate loaded");
        loaded.info.warn_if_expiring();
        TlsState {
            config: Some(Arc::new(RwLock::new(loaded.config))),
            info: RwLock::new(Some(loaded.info)),
            paths: RwLock::new(Some(paths)),
        }
    } else {
        tracing::warn!("TLS is off (tls = false): serve only behind a TLS-terminating proxy");
        TlsState::default()
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

    let scheme = if config.tls { "https" } else { "http" };
    let (trigger, stopped) = shutdown::channel();
    let tls_config = tls_state.config.clone();
    let app = App::new(Parts {
        store: Arc::clone(&store),
        hub,
        blobs: open_blobs(&config, &data_dir)?,
        secrets,
        data_dir: data_dir.clone(),
        config_path: options.config_path(),
        facts: Facts {
            started,
            https_address: format!("{scheme}://{bound}"),
            https_port: bound.port(),
            control_address: control_address.clone(),
            socket_activated: activated,
            tls: config.tls,
        },
        tls: tls_state,
        setup_token,
        instance,
        shutdown: stopped.clone(),
        settings,
    });
    let hosts = store
        .hosts()
        .await
        .context("cannot read the enrolled hosts")?;
    app.hosts.load(&hosts, &app.secrets);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(server::serve(
        https,
        tls_config,
        api::router(Arc::clone(&app)),
        stopped.clone(),
    ));
    if let Some(control) = control {
        let control_app = Arc::clone(&app);
        tasks.spawn(server::serve_control(
            control,
            move |stream| control::router_for(&control_app, stream),
            stopped.clone(),
        ));
    }
    tokio::spawn(notify::watchdog(Arc::clone(&app), stopped.clone()));
    tokio::spawn(housekeeping(Arc::clone(&app), stopped.clone()));
    cluster::beat(&app).await;
    tokio::spawn(cluster::heartbeat(Arc::clone(&app), stopped.clone()));
    tokio::spawn(watch_blobs(Arc::clone(&app), stopped.clone()));
    tokio::spawn(delivery::run(Arc::clone(&app), stopped.clone()));

    tracing::info!(
        address = %bound,
        control = %control_address,
        socket_activated = activated,
        runtime_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        "listening on {scheme}://{bound}"
    );
    // Scripts and tests read the bound address (port 0) from stdout.
    println!("clawd listening on {scheme}://{bound}");
    notify::ready(&app.status_line().await);

    let mut live = Reloadable {
        options,
        config,
        app: Arc::clone(&app),
        log,
    };
    wait_for_stop(&mut live).await?;

    notify::stopping();
    tracing::info!("shutting down: finishing requests and closing WebSockets");
    trigger.stop();
    while tasks.join_next().await.is_some() {}
    let deadline = Instant::now() + CLOSE_GRACE;
    while app.hub.clients() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The others need not wait for this one's heartbeat to run out.
    if let Err(e) = store.leave(app.instance.id.clone()).await {
        tracing::warn!(error = %e, "this instance stays listed until its heartbeat runs out");
    }
    // Everything queued before this has committed once it returns.
    if let Err(e) = store.drain().await {
        tracing::error!(error = %e, "the store did not drain cleanly");
    } else if let Err(e) = store.close().await {
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
    app: Arc<App>,
    log: LogLevel,
}

impl Reloadable {
    /// Re-reads the configuration and the certificate. All or nothing: a
    /// broken file keeps everything as it was.
    fn reload(&mut self) -> anyhow::Result<()> {
        let new = self.options.load_config()?;
        let settings = Settings::new(new.clone())?;
        for (name, changed) in [
            ("listen", new.listen != self.config.listen),
            ("data_dir", new.data_dir != self.config.data_dir),
            ("tls", new.tls != self.config.tls),
            ("durability", new.durability != self.config.durability),
            ("store", new.store != self.config.store),
            (
                "worker_threads",
                new.worker_threads != self.config.worker_threads,
            ),
        ] {
            if changed {
                tracing::warn!("{name} changed: this takes effect at the next restart");
            }
        }
        if self.app.tls.config.is_some() {
            let paths = cert_paths(&new, &self.app.data_dir);
            let loaded = tls::load_or_generate(&paths)?;
            self.app.activate_cert(loaded);
            *self
                .app
                .tls
                .paths
                .write()
                .unwrap_or_else(|e| e.into_inner()) = Some(paths);
        }
        self.app.apply(settings);
        self.log.set(&new.log_level);
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
                notify::ready(&live.app.status_line().await);
            }
            _ = term.recv() => return Ok(()),
            () = live.app.stop_requested.notified() => {
                tracing::info!("stop requested on the control socket");
                return Ok(());
            }
            _ = int.recv() => return Ok(()),
        }
    }
}

/// The setup token while no user exists: kept in `DATA_DIR/setup-token`
/// (0600) so it survives restarts until setup is done.
/// The setup token's SHA-256 while no user exists. One token serves every
/// instance on the database: the first to start makes it (in its data
/// directory's `setup-token` file and in its log) and records its hash;
/// the others check against that hash.
async fn setup_token(store: &dyn Store, data_dir: &Path) -> anyhow::Result<Option<String>> {
    let path = data_dir.join("setup-token");
    if store.user_count().await? > 0 {
        let _ = std::fs::remove_file(&path);
        return Ok(None);
    }
    let existing = std::fs::read_to_string(&path)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let token = match &existing {
        Some(token) => token.clone(),
        None => fsutil::random_hex(16)?,
    };
    let hash = token_hash(&token);
    let recorded = store.claim_meta(SETUP_TOKEN_KEY, hash.clone()).await?;
    if recorded != hash {
        // Another instance's token stands; this one's file is stale.
        let _ = std::fs::remove_file(&path);
        tracing::info!(
            "no user exists yet: finish setup in the web UI with the setup token in the \
             setup-token file of the instance that made it (another instance on this database)"
        );
        return Ok(Some(recorded));
    }
    if existing.is_none() {
        fsutil::write_private(&path, format!("{token}\n").as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    tracing::info!(
        file = %path.display(),
        "no user exists yet: finish setup in the web UI with the setup token {token}"
    );
    Ok(Some(hash))
}

/// Removes expired sessions, nonces and idempotency keys once a minute;
/// warns once a day when the certificate is about to expire.
async fn housekeeping(app: Arc<App>, mut stopped: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    // Start-up already warned.
    let mut last_expiry_check = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = app.store.purge_expired(app.idempotency_cutoff()).await {
                    tracing::warn!(error = %e, "could not purge expired sessions and nonces");
                }
                if last_expiry_check.elapsed() >= Duration::from_secs(86_400) {
                    last_expiry_check = Instant::now();
                    let cert = app.tls.info.read().unwrap_or_else(|e| e.into_inner()).clone();
                    if let Some(cert) = cert {
                        cert.warn_if_expiring();
                    }
                }
            }
            () = stopped.stopped() => return,
        }
    }
}

#[cfg(test)]
mod store_backend_tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_postgres_fails_the_start_naming_it_without_its_password() {
        let config = Config::from_toml(
            "store.backend = \"postgres\"\n\
             store.database_url = \"postgres://claw:s3cret@127.0.0.1:1/claw\"\n\
             store.connect_timeout_secs = 2\n\
             store.start_wait_secs = 0",
            Path::new("clawd.toml"),
        )
        .expect("valid");
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = Arc::new(Hub::default()) as Arc<dyn ChangeSink>;
        let Err(err) = open_store(&config, dir.path(), sink).await else {
            panic!("nothing listens on port 1");
        };
        let err = format!("{err:#}");
        assert!(err.contains("postgres://claw@127.0.0.1:1/claw"), "{err}");
        assert!(err.contains("cannot connect"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
