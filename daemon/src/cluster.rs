//! This gateway among the others on its database: who it is, the heartbeat
//! that says it is alive (and whether the database answers it), and the
//! agreement that every instance has the same secrets.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::app::App;
use crate::clock::now_ms;
use crate::secrets::Secrets;
use crate::shutdown::Shutdown;
use crate::store::{InstanceRow, Store, StoreError};

/// How often an instance says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// An instance not seen for this long is taken as gone.
pub const ALIVE_MS: i64 = 15_000;
/// Where the secrets' fingerprints are kept (`meta`).
const SECRETS_KEY: &str = "secrets_fingerprints";

/// This instance: made at each start.
pub struct Instance {
    pub id: String,
    pub hostname: String,
    pub started_at: i64,
    /// What is wrong with the database as the last heartbeat found it.
    database_problem: RwLock<Option<String>>,
}

impl Instance {
    pub fn new() -> Self {
        let hostname = crate::fsutil::hostname().unwrap_or_else(|| "localhost".to_owned());
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            hostname,
            started_at: now_ms(),
            database_problem: RwLock::new(None),
        }
    }

    pub fn row(&self, address: &str) -> InstanceRow {
        InstanceRow {
            id: self.id.clone(),
            hostname: self.hostname.clone(),
            address: address.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: self.started_at,
            seen_at: now_ms(),
        }
    }

    /// None while the database answers.
    pub fn database_problem(&self) -> Option<String> {
        self.database_problem
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_database_problem(&self, problem: Option<String>) {
        let mut slot = self
            .database_problem
            .write()
            .unwrap_or_else(|e| e.into_inner());
        match (&*slot, &problem) {
            (None, Some(p)) => tracing::error!(error = %p, "the database does not answer"),
            (Some(_), None) => tracing::info!("the database answers again"),
            _ => {}
        }
        *slot = problem;
    }
}

impl Default for Instance {
    fn default() -> Self {
        Self::new()
    }
}

/// Says every [`HEARTBEAT`] that this instance is alive; what the
/// database answers is what `/api/health` reports.
pub async fn heartbeat(app: Arc<App>, mut stopped: Shutdown) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.stopped() => return,
        }
        beat(&app).await;
    }
}

/// Records this instance as alive now. The first beat comes before the
/// gateway says it listens, so the others see it as soon as it serves.
pub async fn beat(app: &App) {
    let row = app.instance.row(&app.facts.https_address);
    let beat = tokio::time::timeout(HEARTBEAT, app.store.heartbeat(row)).await;
    let problem = match beat {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", HEARTBEAT.as_secs())),
    };
    app.instance.set_database_problem(problem);
}

/// Every instance on one database must have the same secrets: runners'
/// signatures, sessions and push subscriptions made on one are checked on
/// the others. Each instance compares fingerprints of its secrets with
/// those recorded; a difference while another instance is alive stops
/// this one, naming the secrets. With no other instance alive the
/// secrets were changed on purpose (rotated, restored): they are recorded.
pub async fn agree_on_secrets(
    store: &dyn Store,
    secrets: &Secrets,
    me: &str,
) -> Result<(), AgreementError> {
    let mine = secrets.fingerprints();
    let text = serde_json::to_string(&mine).map_err(|e| AgreementError::Store(e.to_string()))?;
    let recorded = store.claim_meta(SECRETS_KEY, text.clone()).await?;
    if recorded == text {
        return Ok(());
    }
    let theirs: BTreeMap<String, String> = serde_json::from_str(&recorded).unwrap_or_default();
    let differ: Vec<String> = mine
        .iter()
        .filter(|(name, fp)| theirs.get(*name) != Some(*fp))
        .map(|(name, _)| name.clone())
        .collect();
    let now = now_ms();
    let alive: Vec<InstanceRow> = store
        .instances()
        .await?
        .into_iter()
        .filter(|i| i.id != me && now - i.seen_at < ALIVE_MS)
        .collect();
    if alive.is_empty() {
        tracing::warn!(
            secrets = %differ.join(", "),
            "secrets differ from those recorded and no other instance is alive: recorded this instance's"
        );
        store.set_meta(SECRETS_KEY, text).await?;
        return Ok(());
    }
    Err(AgreementError::Differ {
        secrets: differ,
        others: alive
            .iter()
            .map(|i| format!("{} ({})", i.hostname, i.address))
            .collect(),
    })
}

/// Records this instance's secrets as the ones every instance must have
/// (after a rotation on this instance).
pub async fn record_secrets(store: &dyn Store, secrets: &Secrets) -> Result<(), StoreError> {
    let text = serde_json::to_string(&secrets.fingerprints())
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    store.set_meta(SECRETS_KEY, text).await
}

#[derive(Debug, thiserror::Error)]
pub enum AgreementError {
    #[error(
        "this instance's secrets ({}) differ from those of the instances alive on the same \
         database: {}; give every instance the same credentials (hmac-secret, auth-secret, \
         hosts-secret, vapid-key), or stop the others first to change them on purpose",
        secrets.join(", "),
        others.join(", ")
    )]
    Differ {
        secrets: Vec<String>,
        others: Vec<String>,
    },
    #[error("cannot compare this instance's secrets with the others': {0}")]
    Store(String),
}

impl From<StoreError> for AgreementError {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}
