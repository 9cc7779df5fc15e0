//! Jobs administrators run (and the timers call): prune, reconcile,
//! backup, secret rotation, certificates, database checks, stop.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use claw_proto::control::{
    BackupReply, BackupRequest, CertView, CopyLine, CopyReport, CopyToRequest, DbCheck, DbStatus,
    Finding, PruneCounts, PruneLine, RotateReply, SecretName,
};
use claw_proto::wire::Role;
use tokio::sync::mpsc;

use super::{Caller, Record, ServiceError, ServiceResult};
use crate::app::App;
use crate::backup::{self, BackupError};
use crate::clock::{iso, now_ms};
use crate::config::{Backend, DatabaseUrl};
use crate::secrets::SecretError;
use crate::store::copy::CopyTarget;
use crate::store::postgres::PgSettings;
use crate::store::{SessionSelector, StoreError};
use crate::tls::{self, LoadedTls};

/// How often a long prune reports progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Where backups go when no output directory is given.
pub const DEFAULT_BACKUP_DIR: &str = "/var/backups/claw";
const DEFAULT_BACKUP_KEEP: usize = 7;
/// The default time the old HMAC secret keeps working.
const DEFAULT_GRACE_SECS: u64 = 3600;

impl App {
    /// Idempotency keys created before this have expired.
    pub fn idempotency_cutoff(&self) -> i64 {
        let hours = i64::from(self.settings().config.idempotency_ttl_hours);
        now_ms().saturating_sub(hours.saturating_mul(3_600_000))
    }

    /// Removes finished runs older than `older_than_days` (default:
    /// `run_retention_days`), artifact folders of no run, and expired
    /// sessions, nonces and idempotency keys; reports progress on
    /// `progress` and ends with the result or the error.
    pub async fn prune(
        &self,
        caller: &Caller,
        older_than_days: Option<u32>,
        dry_run: bool,
        progress: mpsc::Sender<PruneLine>,
    ) {
        if let Err(e) = caller.require(Role::Admin) {
            let _ = progress.send(PruneLine::Error { error: e.message }).await;
            return;
        }
        let days = older_than_days.unwrap_or_else(|| self.settings().config.run_retention_days);
        let line = match self.prune_runs(days, dry_run, &progress).await {
            Ok(counts) => {
                if !dry_run {
                    let summary = format!(
                        "{} runs older than {days} days, {} events, {} artifacts, {} orphan folders, {} bytes freed",
                        counts.runs,
                        counts.events,
                        counts.artifacts,
                        counts.orphan_folders,
                        counts.bytes_freed
                    );
                    let _ = self.store.set_meta("last_prune", summary.clone()).await;
                    let _ = self
                        .record(
                            caller,
                            Record {
                                action: "prune",
                                target: None,
                                run_id: None,
                                details: Some(summary),
                            },
                        )
                        .await;
                }
                PruneLine::Result {
                    dry_run,
                    older_than_days: days,
                    counts,
                }
            }
            Err(e) => PruneLine::Error {
                error: ServiceError::from(e).message,
            },
        };
        let _ = progress.send(line).await;
    }

    async fn prune_runs(
        &self,
        days: u32,
        dry_run: bool,
        progress: &mpsc::Sender<PruneLine>,
    ) -> Result<PruneCounts, StoreError> {
        let cutoff = now_ms().saturating_sub(i64::from(days) * 86_400_000);
        let candidates = self.store.prune_candidates(cutoff).await?;
        let total = candidates.len();
        let mut counts = PruneCounts::default();
        let mut reported = Instant::now();
        for (done, run) in candidates.into_iter().enumerate() {
            let (commands, keys) = self.store.run_children(run.id.clone()).await?;
            let files = self.blobs.run_size(&run.id).await;
            let removed = dry_run || self.store.prune_run(run.id.clone(), cutoff).await?;
            if removed {
                if !dry_run {
                    self.blobs.remove_run(&run.id).await;
                }
                counts.runs += 1;
                counts.events += run.events;
                counts.commands += commands;
                counts.artifacts += keys.len() as u64;
                counts.bytes_freed += run.event_bytes + files;
            }
            if reported.elapsed() >= PROGRESS_EVERY {
                reported = Instant::now();
                let _ = progress
                    .send(PruneLine::Progress {
                        runs_done: done + 1,
                        runs_total: total,
                    })
                    .await;
            }
        }
        let runs = self.store.run_ids().await?;
        for folder in self.blobs.runs().await.unwrap_or_default() {
            if runs.contains(&folder) {
                continue;
            }
            counts.orphan_folders += 1;
            counts.bytes_freed += self.blobs.run_size(&folder).await;
            if !dry_run {
                self.blobs.remove_run(&folder).await;
            }
        }
        let keys_before = self.idempotency_cutoff();
        let expired = if dry_run {
            self.store.expired_counts(keys_before).await?
        } else {
            self.store.purge_expired(keys_before).await?
        };
        counts.expired_sessions = expired.sessions;
        counts.expired_nonces = expired.nonces;
        counts.expired_idempotency_keys = expired.idempotency_keys;
        counts.old_notifications = expired.notifications;
        Ok(counts)
    }

    /// Drift between the store and itself or the artifact files; `fix`
    /// repairs what is safe.
    pub async fn reconcile(&self, caller: &Caller, fix: bool) -> ServiceResult<Vec<Finding>> {
        caller.require(Role::Admin)?;
        let stale_ms = i64::from(self.settings().config.stale_run_hours) * 3_600_000;
        let mut findings = self.store.reconcile_store(stale_ms, fix).await?;
        findings.extend(self.artifact_drift(fix).await?);
        for f in &findings {
            tracing::warn!(
                KIND = %f.kind,
                RUN_ID = f.run_id.as_deref().unwrap_or(""),
                fixed = f.fixed,
                "drift detected: {}",
                f.detail
            );
        }
        if fix {
            let fixed = findings.iter().filter(|f| f.fixed).count();
            self.record(
                caller,
                Record {
                    action: "reconcile.fix",
                    target: None,
                    run_id: None,
                    details: Some(format!("{} findings, {fixed} fixed", findings.len())),
                },
            )
            .await?;
        }
        Ok(findings)
    }

    async fn artifact_drift(&self, fix: bool) -> ServiceResult<Vec<Finding>> {
        let rows = self.store.all_artifacts().await?;
        let runs = self.store.run_ids().await?;
        let mut findings = Vec::new();
        let mut missing = Vec::new();
        let known: HashSet<&str> = rows.iter().map(|a| a.path.as_str()).collect();
        // One listing per run, not a request per row; a store that does not
        // answer stops reconcile rather than making every row look lost.
        let mut stored: HashMap<&str, HashSet<String>> = HashMap::new();
        for row in &rows {
            if !stored.contains_key(row.run_id.as_str()) {
                let keys = self.blobs.list(&row.run_id).await?;
                stored.insert(
                    row.run_id.as_str(),
                    keys.into_iter().map(|b| b.key).collect(),
                );
            }
            if !stored
                .get(row.run_id.as_str())
                .is_some_and(|keys| keys.contains(&row.path))
            {
                missing.push(row.id.clone());
                findings.push(Finding {
                    kind: "missing_artifact_file".to_owned(),
                    run_id: Some(row.run_id.clone()),
                    detail: format!("artifact {} has no file {}", row.id, row.path),
                    repair: Some("delete the artifact's row".to_owned()),
                    fixed: false,
                });
            }
        }
        if fix && !missing.is_empty() {
            self.store.delete_artifact_rows(missing).await?;
            for f in findings.iter_mut() {
                f.fixed = true;
            }
        }
        for run_id in self.blobs.runs().await? {
            if !runs.contains(&run_id) {
                continue;
            }
            for blob in self.blobs.list(&run_id).await? {
                // Younger may be an upload in flight: its row comes next.
                let grace = Duration::from_secs(self.settings().config.artifact_orphan_grace_secs);
                let old_enough = SystemTime::now()
                    .duration_since(blob.modified)
                    .is_ok_and(|age| age >= grace);
                if known.contains(blob.key.as_str()) || !old_enough {
                    continue;
                }
                let fixed = if fix {
                    self.blobs.remove(&blob.key).await;
                    matches!(self.blobs.exists(&blob.key).await, Ok(false))
                } else {
                    false
                };
                findings.push(Finding {
                    kind: "orphan_artifact_file".to_owned(),
                    run_id: Some(run_id.clone()),
                    detail: format!("file {} belongs to no artifact", blob.key),
                    repair: Some("delete the file".to_owned()),
                    fixed,
                });
            }
        }
        Ok(findings)
    }

    /// An online backup archive of the database, the artifacts, the
    /// certificates, the secrets and the configuration.
    pub async fn backup(
        &self,
        caller: &Caller,
        request: BackupRequest,
    ) -> ServiceResult<BackupReply> {
        caller.require(Role::Admin)?;
        let output = std::path::PathBuf::from(
            request
                .output
                .unwrap_or_else(|| DEFAULT_BACKUP_DIR.to_owned()),
        );
        if !output.is_absolute() {
            return Err(ServiceError::invalid(
                "the output directory must be an absolute path (clawd resolves it, not your shell)",
            ));
        }
        let keep = request.keep.unwrap_or(DEFAULT_BACKUP_KEEP);
        let result = backup::create(
            self.store.as_ref(),
            self.blobs.as_ref(),
            &self.data_dir,
            self.config_path.as_deref(),
            &output,
            keep,
        )
        .await
        .map_err(|e| match e {
            BackupError::Store(e) => ServiceError::from(e),
            BackupError::Blobs(e) => {
                tracing::error!(error = %e, "backup failed");
                ServiceError::new(
                    super::ErrorKind::Unavailable,
                    format!("backup failed, nothing was kept: {e}"),
                )
            }
            BackupError::Copy(message) => {
                tracing::error!(error = %message, "backup failed");
                ServiceError::new(
                    super::ErrorKind::Unavailable,
                    format!("backup failed, nothing was kept: {message}"),
                )
            }
            BackupError::Io { path, source } => {
                tracing::error!(path = %path.display(), error = %source, "backup failed");
                let message = format!(
                    "backup failed, nothing was kept: {}: {source}",
                    path.display()
                );
                use std::io::ErrorKind as Io;
                let kind = match source.kind() {
                    Io::StorageFull | Io::QuotaExceeded | Io::FileTooLarge => {
                        super::ErrorKind::Full
                    }
                    // Where the administrator asked it to be written.
                    Io::NotFound
                    | Io::PermissionDenied
                    | Io::ReadOnlyFilesystem
                    | Io::NotADirectory => super::ErrorKind::Invalid,
                    _ => super::ErrorKind::Unavailable,
                };
                ServiceError::new(kind, message)
            }
        })?;
        let path = result.path.display().to_string();
        let summary = format!("{path} ({} files, {} bytes)", result.files, result.size);
        self.store.set_meta("last_backup", summary.clone()).await?;
        self.record(
            caller,
            Record {
                action: "backup",
                target: Some(&path),
                run_id: None,
                details: Some(summary),
            },
        )
        .await?;
        Ok(BackupReply {
            path,
            size: result.size,
            files: result.files,
            removed: result
                .removed
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        })
    }

    /// A new HMAC secret (the old one keeps working for a grace period) or
    /// a new auth secret (every session ends).
    pub async fn rotate_secret(
        &self,
        caller: &Caller,
        which: SecretName,
        grace_secs: Option<u64>,
    ) -> ServiceResult<RotateReply> {
        caller.require(Role::Admin)?;
        let refused = |e: SecretError| match e {
            SecretError::FromCredentials { .. } => ServiceError::conflict(e.to_string()),
            other => {
                tracing::error!(error = %other, "secret rotation failed");
                ServiceError::internal()
            }
        };
        match which {
            SecretName::Hmac => {
                let grace = grace_secs.unwrap_or(DEFAULT_GRACE_SECS);
                let (secret, until) = self.secrets.rotate_hmac(grace).map_err(refused)?;
                // The new secret is the one every instance must have now.
                crate::cluster::record_secrets(self.store.as_ref(), &self.secrets).await?;
                let until = iso(until.saturating_mul(1000));
                self.record(
                    caller,
                    Record {
                        action: "secrets.rotate",
                        target: Some("hmac-secret"),
                        run_id: None,
                        details: Some(format!("old secret valid until {until}")),
                    },
                )
                .await?;
                Ok(RotateReply {
                    ok: true,
                    hmac_secret: Some(secret),
                    previous_valid_until: Some(until),
                    sessions_ended: None,
                    subscriptions_removed: None,
                })
            }
            SecretName::Auth => {
                self.secrets.rotate_auth().map_err(refused)?;
                // The new secret is the one every instance must have now.
                crate::cluster::record_secrets(self.store.as_ref(), &self.secrets).await?;
                let ended = self.store.revoke_sessions(SessionSelector::All).await?;
                self.record(
                    caller,
                    Record {
                        action: "secrets.rotate",
                        target: Some("auth-secret"),
                        run_id: None,
                        details: Some(format!("{ended} sessions ended")),
                    },
                )
                .await?;
                Ok(RotateReply {
                    ok: true,
                    hmac_secret: None,
                    previous_valid_until: None,
                    sessions_ended: Some(ended),
                    subscriptions_removed: None,
                })
            }
            SecretName::Vapid => {
                self.secrets.rotate_vapid().map_err(refused)?;
                // The new secret is the one every instance must have now.
                crate::cluster::record_secrets(self.store.as_ref(), &self.secrets).await?;
                let removed = self.store.remove_push_subscriptions().await?;
                self.record(
                    caller,
                    Record {
                        action: "secrets.rotate",
                        target: Some("vapid-key"),
                        run_id: None,
                        details: Some(format!("{removed} browser subscriptions removed")),
                    },
                )
                .await?;
                Ok(RotateReply {
                    ok: true,
                    hmac_secret: None,
                    previous_valid_until: None,
                    sessions_ended: None,
                    subscriptions_removed: Some(removed),
                })
            }
        }
    }

    /// The certificate in use.
    pub fn cert_view(&self) -> CertView {
        let paths = self
            .tls
            .paths
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match self
            .tls
            .info
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            Some(info) => {
                let days = info.days_left();
                CertView {
                    enabled: true,
                    fingerprint_sha256: Some(info.fingerprint_sha256),
                    subject: Some(info.subject),
                    issuer: Some(info.issuer),
                    names: info.names,
                    not_before: Some(iso(info.not_before.saturating_mul(1000))),
                    not_after: Some(iso(info.not_after.saturating_mul(1000))),
                    days_left: Some(days),
                    expires_soon: days < tls::EXPIRY_WARNING_DAYS,
                    cert_path: paths.as_ref().map(|p| p.cert.display().to_string()),
                    key_path: paths.as_ref().map(|p| p.key.display().to_string()),
                }
            }
            None => CertView {
                enabled: false,
                fingerprint_sha256: None,
                subject: None,
                issuer: None,
                names: Vec::new(),
                not_before: None,
                not_after: None,
                days_left: None,
                expires_soon: false,
                cert_path: None,
                key_path: None,
            },
        }
    }

    pub fn show_cert(&self, caller: &Caller) -> ServiceResult<CertView> {
        caller.require(Role::Admin)?;
        Ok(self.cert_view())
    }

    /// Makes `loaded` the certificate of every new handshake.
    pub fn activate_cert(&self, loaded: LoadedTls) {
        if let Some(config) = &self.tls.config {
            *config.write().unwrap_or_else(|e| e.into_inner()) = loaded.config;
        }
        loaded.info.warn_if_expiring();
        tracing::info!(fingerprint = %loaded.info.fingerprint_sha256, subject = %loaded.info.subject, "TLS certificate in use");
        *self.tls.info.write().unwrap_or_else(|e| e.into_inner()) = Some(loaded.info);
    }

    /// Installs a certificate chain and key (checked, written atomically,
    /// used by new handshakes at once); the old one stays on any error.
    pub async fn install_cert(
        &self,
        caller: &Caller,
        action: &'static str,
        cert: Vec<u8>,
        key: Vec<u8>,
    ) -> ServiceResult<CertView> {
        caller.require(Role::Admin)?;
        let paths = self
            .tls
            .paths
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| {
                ServiceError::conflict(
                    "TLS is off (tls = false in clawd.toml): no certificate to manage",
                )
            })?;
        let target = paths.cert.display().to_string();
        let loaded = tokio::task::spawn_blocking(move || tls::install(&paths, &cert, &key))
            .await
            .map_err(|_| ServiceError::internal())?
            .map_err(|e| {
                ServiceError::invalid(format!("certificate not installed, the old one stays: {e}"))
            })?;
        let fingerprint = loaded.info.fingerprint_sha256.clone();
        self.activate_cert(loaded);
        self.record(
            caller,
            Record {
                action,
                target: Some(&target),
                run_id: None,
                details: Some(format!("fingerprint {fingerprint}")),
            },
        )
        .await?;
        Ok(self.cert_view())
    }

    /// A new self-signed certificate for `names` (and localhost).
    pub async fn self_signed_cert(
        &self,
        caller: &Caller,
        names: Vec<String>,
    ) -> ServiceResult<CertView> {
        caller.require(Role::Admin)?;
        if let Some(bad) = names.iter().find(|n| {
            n.is_empty() || n.len() > 253 || n.chars().any(|c| c.is_whitespace() || c.is_control())
        }) {
            return Err(ServiceError::invalid(format!("{bad:?} is not a host name")));
        }
        let (cert, key) =
            tls::self_signed_pem(&names).map_err(|e| ServiceError::invalid(e.to_string()))?;
        self.install_cert(
            caller,
            "certs.self-signed",
            cert.into_bytes(),
            key.into_bytes(),
        )
        .await
    }

    pub async fn db_status(&self, caller: &Caller) -> ServiceResult<DbStatus> {
        caller.require(Role::Admin)?;
        Ok(self.store.db_status().await?)
    }

    pub async fn db_check(&self, caller: &Caller) -> ServiceResult<DbCheck> {
        caller.require(Role::Admin)?;
        Ok(self.store.db_check().await?)
    }

    /// Copies this SQLite installation into the empty PostgreSQL database
    /// of the request; reports progress on `progress` and ends with the
    /// report (what to configure) or the error.
    pub async fn copy_to(
        &self,
        caller: &Caller,
        request: CopyToRequest,
        progress: mpsc::Sender<CopyLine>,
    ) {
        let line = match self.copy_to_postgres(caller, request, &progress).await {
            Ok(report) => CopyLine::Result(report),
            Err(error) => {
                tracing::warn!(error = %error, "copy to PostgreSQL failed");
                CopyLine::Error { error }
            }
        };
        let _ = progress.send(line).await;
    }

    /// The messages of these errors never hold the URL's password: the
    /// PostgreSQL store shows only the redacted URL.
    async fn copy_to_postgres(
        &self,
        caller: &Caller,
        request: CopyToRequest,
        progress: &mpsc::Sender<CopyLine>,
    ) -> Result<CopyReport, String> {
        caller.require(Role::Admin).map_err(|e| e.message)?;
        let settings = self.settings();
        let config = &settings.config;
        if config.store.backend != Backend::Sqlite {
            return Err(
                "this gateway is on PostgreSQL already: db copy-to copies a SQLite \
                        installation (run it on the gateway that is on SQLite)"
                    .to_owned(),
            );
        }
        let url = DatabaseUrl::new(request.database_url);
        let shown = url.redacted();
        let parsed: tokio_postgres::Config = url
            .expose()
            .parse()
            .map_err(|e| format!("{shown} is not a PostgreSQL URL: {e}"))?;
        // As a gateway on PostgreSQL would: a URL without a password takes
        // the credential's.
        let in_url = parsed.get_password().is_some();
        let password = if in_url {
            None
        } else {
            crate::secrets::database_password().map_err(|e| e.to_string())?
        };
        let has_password = in_url || password.is_some();
        let target = CopyTarget::open(PgSettings {
            url,
            password,
            max_connections: 2,
            connect_timeout: Duration::from_secs(config.store.connect_timeout_secs),
            statement_timeout: Duration::from_secs(config.store.statement_timeout_secs),
            nonce_retention_secs: crate::app::nonce_retention_secs(config),
        })
        .await
        .map_err(|e| e.to_string())?;
        // Recorded before the snapshot: the copy's chain has it too.
        self.record(
            caller,
            Record {
                action: "db.copy_to",
                target: Some(&shown),
                run_id: None,
                details: None,
            },
        )
        .await
        .map_err(|e| e.message)?;
        // Where the daemon opens it (daemon.rs).
        let source = self.data_dir.join("db.sqlite");
        let copied = target
            .copy_from(source, progress)
            .await
            .map_err(|e| e.to_string())?;
        let rows: u64 = copied.tables.iter().map(|t| t.target).sum();
        tracing::info!(
            database = %shown,
            rows,
            audit_entries = copied.audit_checked,
            changed_since = copied.changed_since,
            "copied the SQLite store into PostgreSQL"
        );
        Ok(CopyReport {
            config: store_section(&shown, has_password),
            database_url: shown,
            snapshot_at: iso(copied.snapshot_at),
            tables: copied.tables,
            audit_checked: copied.audit_checked,
            changed_since: copied.changed_since,
        })
    }

    /// Stops the daemon the way SIGTERM does (for `clawctl restore`).
    pub async fn stop_daemon(&self, caller: &Caller) -> ServiceResult<()> {
        caller.require(Role::Admin)?;
        self.record(
            caller,
            Record {
                action: "daemon.stop",
                target: None,
                run_id: None,
                details: None,
            },
        )
        .await?;
        self.stop_requested.notify_one();
        Ok(())
    }
}

/// The `[store]` section of a gateway on the copy; the URL without its
/// password, which goes into the credential.
fn store_section(shown_url: &str, has_password: bool) -> String {
    let url = toml::Value::String(shown_url.to_owned());
    let comment = if has_password {
        "   # password via the credential claw_database-password"
    } else {
        ""
    };
    format!("[store]\nbackend = \"postgres\"\ndatabase_url = {url}{comment}\n")
}
