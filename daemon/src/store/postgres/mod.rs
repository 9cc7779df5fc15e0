//! The PostgreSQL store, for installations that outgrow one machine
//! (`store.backend = "postgres"`): several gateways on one database.
//!
//! Every request is one transaction on a pooled connection
//! (deadpool-postgres over tokio-postgres), committed before it is
//! answered. What SQLite gets from its single writer, this store gets from
//! PostgreSQL's locks, so that it holds with several instances writing:
//! a runner request locks its run's row (`FOR NO KEY UPDATE`), which
//! serialises the ingests of one run over every instance; nonces are
//! written by the request's own transaction (a unique key refuses the
//! second use, on whichever instance); events are inserted in one
//! statement per request with `ON CONFLICT DO NOTHING` on their unique
//! (run, sequence).
//!
//! Changes are published after the commit, in commit order: the commit
//! and the publishing of a transaction that has changes are done under
//! one lock, so a transaction that waited for another's row is announced
//! after it. The same transaction notifies the other instances on the
//! database, which publish the change too (fanout.rs).

mod approvals;
mod audit;
mod cluster;
mod dump;
mod fanout;
mod hosts;
mod idempotency;
mod identity;
mod import;
mod logins;
mod maintenance;
mod migrate;
mod notify;
mod runs;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::{Change, ChangeSink, StoreError};
use crate::clock::now_ms;
use crate::config::DatabaseUrl;

/// How the PostgreSQL store is run: from `[store]` and the credential.
#[derive(Debug, Clone)]
pub struct PgSettings {
    pub url: DatabaseUrl,
    /// From the credential `claw_database-password`, for a URL without one.
    pub password: Option<crate::secrets::Secret>,
    pub max_connections: u32,
    pub connect_timeout: Duration,
    /// Zero: no limit.
    pub statement_timeout: Duration,
    /// How long a used nonce is kept after its signed timestamp.
    pub nonce_retention_secs: u64,
}

#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// The URL without its password, for messages.
    shown_url: String,
    /// How `pg_dump` reaches the database (backups).
    dump: dump::DumpSource,
    sink: Arc<dyn ChangeSink>,
    /// This instance, in its notifications (fanout.rs): its own are not
    /// published twice.
    instance: String,
    /// How the listening connection connects (as the pool's do).
    config: tokio_postgres::Config,
    /// The listener of other instances' changes, once started.
    listener: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    /// Held over the commit and the publishing of changes (module doc).
    publish: tokio::sync::Mutex<()>,
    nonce_retention_secs: AtomicU64,
    /// Transactions committed through [`PgStore::commit`] (writer stats).
    commits: AtomicU64,
    /// `pg_database_size` when last asked (open, ping, db status): the
    /// summary is answered without a round trip.
    size_bytes: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let listener = self.listener.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = listener.take() {
            task.abort();
        }
    }
}

/// A tokio-postgres error as one line: the server's message and its
/// detail, or the client's. Never the URL or its password.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {} ({detail})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        },
        None => e.to_string(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let what = describe(&e);
        let Some(code) = e.code() else {
            return Self::Unavailable(format!("database error: {what}"));
        };
        if *code == SqlState::DISK_FULL || *code == SqlState::PROGRAM_LIMIT_EXCEEDED {
            Self::DiskFull(what)
        } else if *code == SqlState::UNIQUE_VIOLATION
            || *code == SqlState::FOREIGN_KEY_VIOLATION
            || *code == SqlState::CHECK_VIOLATION
            || *code == SqlState::NOT_NULL_VIOLATION
        {
            Self::Constraint(what)
        } else if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::QUERY_CANCELED
            || *code == SqlState::TOO_MANY_CONNECTIONS
        {
            Self::Busy(what)
        } else {
            Self::Unavailable(format!("database error: {what}"))
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match e {
            PoolError::Backend(e) => e.into(),
            PoolError::Timeout(_) => {
                Self::Busy("every connection to PostgreSQL is in use".to_owned())
            }
            other => Self::Unavailable(format!("PostgreSQL connection pool: {other}")),
        }
    }
}

impl PgStore {
    /// Connects, migrates (once over every instance starting together),
    /// and opens the pool; changes go to `sink` after each commit.
    pub async fn open(settings: PgSettings, sink: Arc<dyn ChangeSink>) -> Result<Self, StoreError> {
        let shown_url = settings.url.redacted();
        let mut config: tokio_postgres::Config = settings
            .url
            .expose()
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("database_url {shown_url}: {e}")))?;
        if let Some(password) = &settings.password {
            if config.get_password().is_some() {
                return Err(StoreError::Unavailable(format!(
                    "database_url {shown_url} has a password and so has the credential \
                     claw_database-password: keep one"
                )));
            }
            config.password(password.expose());
        }
        // pg_dump gets the URL without the password and the password in
        // its environment: a command line is visible to every local user.
        let dump = dump::DumpSource {
            conninfo: shown_url.clone(),
            password: config
                .get_password()
                .map(|p| crate::secrets::Secret::from_bytes(p.to_vec())),
        };
        config.connect_timeout(settings.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("clawd");
        }
        if !settings.statement_timeout.is_zero() {
            config.options(format!(
                "-c statement_timeout={}",
                settings.statement_timeout.as_millis()
            ));
        }
        let unavailable = |e: tokio_postgres::Error| {
            StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {shown_url}: {}",
                describe(&e)
            ))
        };
        // Migrations on a connection of their own: the advisory lock is
        // held by its session.
        let (mut client, connection) = config.connect(NoTls).await.map_err(unavailable)?;
        let driver = tokio::spawn(connection);
        let migrated = migrate::migrate(&mut client).await;
        drop(client);
        let _ = driver.await;
        migrated?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let max = usize::try_from(settings.max_connections.max(1)).unwrap_or(1);
        let pool = Pool::builder(manager)
            .max_size(max)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(settings.connect_timeout))
            .wait_timeout(Some(settings.connect_timeout.max(Duration::from_secs(1))))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("PostgreSQL connection pool: {e}")))?;
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                shown_url,
                dump,
                sink,
                instance: uuid::Uuid::new_v4().simple().to_string(),
                config,
                listener: std::sync::Mutex::new(None),
                publish: tokio::sync::Mutex::new(()),
                nonce_retention_secs: AtomicU64::new(settings.nonce_retention_secs),
                commits: AtomicU64::new(0),
                size_bytes: AtomicU64::new(0),
            }),
        };
        // A first connection now: a server that takes none fails the start.
        let conn = store.conn().await?;
        store.refresh_size(&conn).await?;
        drop(conn);
        Ok(store)
    }

    /// The URL without its password.
    #[cfg(test)]
    pub fn shown_url(&self) -> &str {
        &self.inner.shown_url
    }

    /// The schema version of the database.
    #[cfg(test)]
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        let conn = self.conn().await?;
        migrate::current_version(&conn).await
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.inner.pool.get().await?)
    }

    /// Nonces signed before this (Unix seconds) have expired.
    fn nonce_cutoff(&self) -> i64 {
        let secs = self.inner.nonce_retention_secs.load(Ordering::Relaxed);
        let retention = i64::try_from(secs).unwrap_or(i64::MAX);
        (now_ms() / 1000).saturating_sub(retention)
    }

    /// Commits `tx`, then publishes its changes, in commit order; the
    /// other instances hear of them at the commit (fanout.rs).
    async fn commit(
        &self,
        tx: deadpool_postgres::Transaction<'_>,
        changes: Vec<Change>,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            tx.commit().await?;
            self.inner.commits.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        // In the transaction: sent at its commit, never for a rollback.
        let notify = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
        let payload = fanout::payload(&self.inner.instance, &changes);
        tx.execute(&notify, &[&fanout::CHANNEL, &payload]).await?;
        let _order = self.inner.publish.lock().await;
        tx.commit().await?;
        self.inner.commits.fetch_add(1, Ordering::Relaxed);
        for change in changes {
            self.inner.sink.publish(change);
        }
        Ok(())
    }
}

/// A u64 count or size as PostgreSQL's BIGINT.
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A BIGINT read back as the u64 it was.
fn unbig(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
