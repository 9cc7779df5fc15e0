//! The application: every service's dependencies in one place, and the
//! configuration in effect, which a reload replaces as a whole. The
//! services are `impl App` blocks in `service/`, one file per aggregate.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use claw_proto::{Allowlist, Redactor};
use tokio::sync::{Notify, Semaphore, watch};

use crate::artifacts::Extensions;
use crate::auth::HashingPool;
use crate::blobs::BlobStore;
use crate::config::Config;
use crate::hub::Hub;
use crate::ratelimit::WindowLimiter;
use crate::secrets::Secrets;
use crate::shutdown::Shutdown;
use crate::store::AnyStore;
use crate::tls::{CertInfo, CertPaths, SharedTlsConfig};

/// How long failed logins are counted.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Everything derived from one configuration. A reload builds a new one;
/// its limits' counters start again.
pub struct Settings {
    pub config: Config,
    pub allowlist: Allowlist,
    pub redactor: Redactor,
    pub extensions: Extensions,
    /// Human and anonymous API requests per address and minute.
    pub requests: WindowLimiter<std::net::IpAddr>,
    /// Refused runner requests per address and minute.
    pub runner_refusals: WindowLimiter<std::net::IpAddr>,
    /// Artifact downloads being served.
    pub downloads: Arc<Semaphore>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Settings {
    pub fn new(config: Config) -> Result<Self, claw_proto::redact::PatternError> {
        let per_minute =
            || WindowLimiter::new(config.rate_limit_per_minute, Duration::from_secs(60));
        Ok(Self {
            // Config::validate refused invalid entries; were one to get
            // here, nothing would be allowed.
            allowlist: Allowlist::with_defaults(&config.allowed_commands).unwrap_or_default(),
            redactor: Redactor::new(&config.redact_patterns)?,
            extensions: Extensions::new(&config.artifact_extensions),
            requests: per_minute(),
            runner_refusals: per_minute(),
            downloads: Arc::new(Semaphore::new(config.artifact_downloads_max)),
            // Config::validate refused invalid entries.
            trusted_proxies: crate::config::proxy_networks(&config.trusted_proxies)
                .unwrap_or_default(),
            config,
        })
    }
}

/// Where the daemon listens and since when, for status pages.
#[derive(Debug, Clone)]
pub struct Facts {
    pub started: Instant,
    pub https_address: String,
    /// The port bound (the configured one may be 0).
    pub https_port: u16,
    pub control_address: String,
    pub socket_activated: bool,
    pub tls: bool,
}

/// The certificate in use.
#[derive(Default)]
pub struct TlsState {
    /// None with `tls = false`.
    pub config: Option<SharedTlsConfig>,
    pub info: RwLock<Option<CertInfo>>,
    pub paths: RwLock<Option<CertPaths>>,
}

pub struct App {
    pub store: AnyStore,
    pub hub: Arc<Hub>,
    pub blobs: Arc<dyn BlobStore>,
    pub secrets: Arc<Secrets>,
    /// Enrolled hosts' keys and which are connected.
    pub hosts: crate::hosts::HostRegistry,
    pub hashing: HashingPool,
    pub data_dir: PathBuf,
    /// The configuration file in effect, included in backups.
    pub config_path: Option<PathBuf>,
    pub facts: Facts,
    pub tls: TlsState,
    /// The setup token's SHA-256, while no user exists.
    pub setup_token: Mutex<Option<String>>,
    /// This instance among those on the database.
    pub instance: crate::cluster::Instance,
    pub shutdown: Shutdown,
    /// Asked to stop by `POST /v1/shutdown` (restore uses it).
    pub stop_requested: Notify,
    settings: watch::Sender<Arc<Settings>>,
}

/// What an [`App`] is made of.
pub struct Parts {
    pub store: AnyStore,
    pub hub: Arc<Hub>,
    pub blobs: Arc<dyn BlobStore>,
    pub secrets: Arc<Secrets>,
    pub data_dir: PathBuf,
    pub config_path: Option<PathBuf>,
    pub facts: Facts,
    pub tls: TlsState,
    pub setup_token: Option<String>,
    pub instance: crate::cluster::Instance,
    pub shutdown: Shutdown,
    pub settings: Settings,
}

impl App {
    pub fn new(parts: Parts) -> Arc<Self> {
        let store = parts.store;
        store.set_nonce_retention(nonce_retention_secs(&parts.settings.config));
        Arc::new(Self {
            store,
            hub: parts.hub,
            blobs: parts.blobs,
            secrets: parts.secrets,
            hosts: crate::hosts::HostRegistry::default(),
            hashing: HashingPool::for_this_machine(),
            data_dir: parts.data_dir,
            config_path: parts.config_path,
            facts: parts.facts,
            tls: parts.tls,
            setup_token: Mutex::new(parts.setup_token),
            instance: parts.instance,
            shutdown: parts.shutdown,
            stop_requested: Notify::new(),
            settings: watch::channel(Arc::new(parts.settings)).0,
        })
    }

    /// The settings in effect now. A request keeps the ones it started with.
    pub fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.settings.borrow())
    }

    /// Makes `settings` the ones in effect: the one way a reload reaches
    /// the code.
    pub fn apply(&self, settings: Settings) {
        self.store
            .set_nonce_retention(nonce_retention_secs(&settings.config));
        self.settings.send_replace(Arc::new(settings));
    }
}

/// A request is accepted while its timestamp is within the skew, so its
/// nonce must be kept at least that long.
pub fn nonce_retention_secs(config: &Config) -> u64 {
    config.nonce_lifetime_secs.max(config.clock_skew_secs)
}
