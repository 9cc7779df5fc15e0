//! What the gateway says about itself: health, the web status page, and
//! `clawctl status`.

use claw_proto::api::{Health, HealthConnections, RunCounts, StatusView};
use claw_proto::control::{
    Connections, HealthReply, InstanceView, JobRecord, Listeners, Status, TlsStatus,
};
use claw_proto::wire::Role;

use super::{Caller, ServiceResult};
use crate::app::App;
use crate::clock::{iso, now_ms};

impl App {
    /// `GET /api/health`: answers without touching the store, from what
    /// the heartbeat and the artifact store's watch last found. Anyone may
    /// ask, so it says only `ok` or `unreachable`: why is in the journal
    /// and `clawctl status`.
    pub fn health(&self) -> Health {
        let state = |up: bool| if up { "ok" } else { "unreachable" }.to_owned();
        let mut checks = std::collections::BTreeMap::new();
        checks.insert(
            "database".to_owned(),
            state(self.instance.database_problem().is_none()),
        );
        let artifacts = self.blobs.health();
        if artifacts.backend != "file" {
            checks.insert("artifactStore".to_owned(), state(artifacts.error.is_none()));
        }
        let status = if checks.values().all(|c| c == "ok") {
            "ok"
        } else {
            "degraded"
        };
        Health {
            status: status.to_owned(),
            checks,
            timestamp: iso(now_ms()),
            connections: HealthConnections {
                clients: self.hub.clients(),
                subscriptions: self.hub.subscriptions(),
            },
        }
    }

    /// Proves that the store's writer and readers answer.
    pub async fn deep_health(&self) -> ServiceResult<HealthReply> {
        self.store.ping().await?;
        Ok(HealthReply {
            status: "ok".to_owned(),
        })
    }

    pub async fn run_counts(&self) -> ServiceResult<RunCounts> {
        let mut counts = RunCounts::default();
        for (status, n) in self.store.run_counts().await? {
            counts.add(status, n);
        }
        Ok(counts)
    }

    /// The web UI's status page and command box.
    pub async fn status(&self, caller: &Caller) -> ServiceResult<StatusView> {
        caller.require(Role::Viewer)?;
        Ok(StatusView {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            runs: self.run_counts().await?,
            runners_connected: self.hub.runners_connected(),
            browsers: self.hub.clients(),
            subscriptions: self.hub.subscriptions(),
            allowed_commands: self.settings().allowlist.entries(),
            store: self.store.writer_stats(),
        })
    }

    async fn job_record(&self, key: &'static str) -> ServiceResult<Option<JobRecord>> {
        Ok(self.store.meta(key).await?.map(|(summary, at)| JobRecord {
            at: iso(at),
            summary,
        }))
    }

    fn tls_status(&self) -> TlsStatus {
        let info = self
            .tls
            .info
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match info {
            Some(c) => {
                let days = c.days_left();
                TlsStatus {
                    enabled: true,
                    fingerprint_sha256: Some(c.fingerprint_sha256),
                    subject: Some(c.subject),
                    not_after: Some(iso(c.not_after.saturating_mul(1000))),
                    expires_in_days: Some(days),
                    expires_soon: days < crate::tls::EXPIRY_WARNING_DAYS,
                }
            }
            None => TlsStatus {
                enabled: false,
                fingerprint_sha256: None,
                subject: None,
                not_after: None,
                expires_in_days: None,
                expires_soon: false,
            },
        }
    }

    /// `clawctl status`.
    pub async fn control_status(&self, caller: &Caller) -> ServiceResult<Status> {
        caller.require(Role::Admin)?;
        Ok(Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_secs: self.facts.started.elapsed().as_secs(),
            listeners: Listeners {
                https: self.facts.https_address.clone(),
                control: self.facts.control_address.clone(),
                socket_activated: self.facts.socket_activated,
            },
            tls: self.tls_status(),
            database: self.store.summary(),
            runs: self.run_counts().await?,
            last_prune: self.job_record("last_prune").await?,
            last_backup: self.job_record("last_backup").await?,
            connections: Connections {
                runners: self.hub.runners_connected(),
                clients: self.hub.clients(),
                subscriptions: self.hub.subscriptions(),
                followed_runs: self.hub.followed_runs(),
            },
            instances: self.instances().await?,
            artifact_store: self.blobs.health(),
        })
    }

    async fn instances(&self) -> ServiceResult<Vec<InstanceView>> {
        let now = now_ms();
        Ok(self
            .store
            .instances()
            .await?
            .into_iter()
            .map(|i| InstanceView {
                this: i.id == self.instance.id,
                alive: now - i.seen_at < crate::cluster::ALIVE_MS,
                started: iso(i.started_at),
                last_seen: iso(i.seen_at),
                id: i.id,
                hostname: i.hostname,
                address: i.address,
                version: i.version,
            })
            .collect())
    }

    /// The line `systemctl status clawd` shows.
    pub async fn status_line(&self) -> String {
        let running = self.run_counts().await.map_or(0, |c| c.running);
        let clients = self.hub.clients();
        format!(
            "serving {running} running run{}, {clients} browser{}",
            if running == 1 { "" } else { "s" },
            if clients == 1 { "" } else { "s" }
        )
    }
}
