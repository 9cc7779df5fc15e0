//! The SQLite store, clawd's embedded default. Every SQL statement of the
//! daemon lives in this module and its children.
//!
//! Writes go through the single [`writer::Writer`] (group commit), which
//! publishes each job's changes after the commit; reads use a small pool of
//! read-only connections on blocking threads.

mod approvals;
mod audit;
pub(super) mod export;
mod hosts;
mod idempotency;
mod identity;
mod maintenance;
mod migrate;
mod nonces;
mod notify;
mod prune;
mod reconcile;
mod runs;
mod wal_vfs;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{Change, ChangeSink, ClusterStore, InstanceRow, LoginFailuresInMemory, StoreError};
use crate::clock::now_ms;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Self::DiskFull(e.to_string()),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Self::Busy(e.to_string()),
            Some(ErrorCode::ConstraintViolation) => Self::Constraint(e.to_string()),
            _ => Self::Unavailable(format!("database error: {e}")),
        }
    }
}

/// When an acknowledged write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The write-ahead log is flushed by a background thread at most
    /// [`WAL_SYNC_INTERVAL`] after a commit (and at every checkpoint). A
    /// crash of clawd loses nothing; a power cut may lose the last fraction
    /// of a second, which runners send again from their spool.
    #[default]
    Batched,
    /// Every commit is flushed before it is acknowledged (`synchronous=FULL`).
    Commit,
}

/// How the store is run: from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct StoreSettings {
    pub durability: Durability,
    /// How long a used nonce is kept after its signed timestamp.
    pub nonce_retention_secs: u64,
}

/// Longest time a committed write stays unflushed with [`Durability::Batched`].
pub const WAL_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// Log size (pages) past which the writer checkpoints itself (64 MiB).
/// Only a writer can start the log over, so it must checkpoint now and
/// then, and every request waits while it does; SQLite's usual 1000 pages
/// made that a fifth of the writer's time under ingest (PERFORMANCE.md,
/// "Store").
const WRITER_CHECKPOINT_PAGES: u32 = 16384;

/// Size the log is cut back to when it starts over (96 MiB): a log that
/// grew while a long read held it does not keep its disk space. Above the
/// 68 MB that the writer's threshold makes (frames are 4120 bytes), so a
/// log of normal size keeps its blocks instead of being cut and regrown.
const WAL_SIZE_LIMIT_BYTES: i64 = 96 * 1024 * 1024;

/// How long the checkpoint at a stop waits for the checkpointer thread to
/// finish one of its own; well inside systemd's stop timeout.
const CHECKPOINT_AT_STOP_WAIT: Duration = Duration::from_secs(3);

/// Statements the writer keeps prepared.
const WRITER_STATEMENT_CACHE: usize = 64;

/// Most idle read-only connections kept open.
const READ_POOL_SIZE: usize = 4;

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: writer::Writer,
    /// Nonces the writer holds before writing them, and the legacy table's
    /// expiry (nonces.rs).
    nonce_check: nonces::NonceCheck,
    readers: Mutex<Vec<Connection>>,
    nonce_retention_secs: AtomicU64,
    /// One gateway owns a SQLite database: memory is where its failed
    /// logins are counted.
    login_failures: LoginFailuresInMemory,
    /// The one gateway on this database, as it last said.
    instance: Mutex<Option<InstanceRow>>,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database; changes go to
    /// `sink` after each commit.
    pub fn open(
        path: &Path,
        settings: StoreSettings,
        sink: Arc<dyn ChangeSink>,
    ) -> Result<Self, StoreError> {
        let durability = settings.durability;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // The writer gathers each commit's log frames into one write
        // (wal_vfs.rs); everyone else reads through SQLite's own VFS.
        let mut conn = if wal_vfs::register() {
            Connection::open_with_flags_and_vfs(
                path,
                rusqlite::OpenFlags::default(),
                wal_vfs::NAME,
            )?
        } else {
            Connection::open(path)?
        };
        configure(&conn, durability)?;
        migrate::migrate(&mut conn, path)?;
        // The checkpointer copies the log beside the writer; the writer's
        // own, rare checkpoint then has little left to copy, and lets the
        // log start over.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
        // Room for every statement the writer runs, so that none is parsed
        // again after being pushed out of rusqlite's cache (16 by default).
        conn.set_prepared_statement_cache_capacity(WRITER_STATEMENT_CACHE);
        let legacy_until = nonces::legacy_until(&conn)?;
        // With `commit` durability every nonce is written by its own
        // transaction, as an acknowledged write must survive anything.
        let hold = match durability {
            Durability::Batched => WAL_SYNC_INTERVAL,
            Durability::Commit => Duration::ZERO,
        };
        let nonces = Arc::new(Mutex::new(nonces::NonceBuffer::new(hold)));
        let (writer, _thread) = writer::Writer::start(conn, Arc::clone(&nonces), sink)?;
        let checkpointer = Connection::open(path)?;
        configure(&checkpointer, durability)?;
        writer.start_checkpointer(
            checkpointer,
            wal_path(path),
            WAL_SYNC_INTERVAL,
            durability == Durability::Batched,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer,
                nonce_check: nonces::NonceCheck {
                    held: nonces,
                    legacy_until,
                },
                readers: Mutex::new(Vec::new()),
                nonce_retention_secs: AtomicU64::new(settings.nonce_retention_secs),
                login_failures: LoginFailuresInMemory::default(),
                instance: Mutex::new(None),
            }),
        })
    }

    pub fn schema_version() -> u32 {
        migrate::latest_version()
    }

    /// Nonces signed before this (Unix seconds) have expired.
    fn nonce_cutoff(&self) -> i64 {
        let secs = self.inner.nonce_retention_secs.load(Ordering::Relaxed);
        let retention = i64::try_from(secs).unwrap_or(i64::MAX);
        (now_ms() / 1000).saturating_sub(retention)
    }

    fn nonce_check(&self) -> nonces::NonceCheck {
        self.inner.nonce_check.clone()
    }

    fn writer(&self) -> &writer::Writer {
        &self.inner.writer
    }

    /// Runs `work` on a pooled read-only connection on a blocking thread.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut pool| pool.pop());
            let conn = match pooled {
                Some(conn) => conn,
                None => open_reader(&inner.path)?,
            };
            let result = work(&conn);
            if let Ok(mut pool) = inner.readers.lock()
                && pool.len() < READ_POOL_SIZE
            {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("a database read failed: {e}")))?
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn configure(conn: &Connection, durability: Durability) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL flushes the log at every commit (group commit pays once per
    // batch); NORMAL only at checkpoints, and the checkpointer's flush
    // bounds the rest. Both survive a crash of clawd and never tear a
    // transaction.
    let synchronous = match durability {
        Durability::Commit => "FULL",
        Durability::Batched => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// One gateway owns a SQLite database: the cluster is this instance.
#[async_trait::async_trait]
impl ClusterStore for SqliteStore {
    async fn heartbeat(&self, instance: InstanceRow) -> Result<(), StoreError> {
        *self
            .inner
            .instance
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(instance);
        Ok(())
    }

    async fn leave(&self, _id: String) -> Result<(), StoreError> {
        *self
            .inner
            .instance
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        Ok(self
            .inner
            .instance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect())
    }
}
