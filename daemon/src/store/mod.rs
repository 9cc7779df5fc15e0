//! The SQLite store. Every SQL statement of the daemon lives in this module
//! and its children; the rest of the daemon calls typed async functions.
//!
//! Writes go through the single [`writer::Writer`] (group commit); reads use a
//! small pool of read-only connections on blocking threads.

mod audit;
mod auth;
mod maintenance;
mod migrate;
mod nonces;
mod prune;
mod reconcile;
mod runs;
mod wal_vfs;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

pub use audit::{AuditEntry, AuditFilter};
pub use auth::{NewUser, SessionSelector, UserRow, UserUpdate};
pub use prune::PruneCounts;
pub use reconcile::Finding;
pub use runs::{
    CommandRow, EventRow, Ingested, NewArtifact, NewEvent, RunFilter, RunRow, RunnerAuth,
    StatusChange,
};
pub use writer::WriterStats;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the store's writer has stopped")]
    WriterGone,
    #[error("schema migration: {0}")]
    Migration(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("nonce already used")]
    Replay,
    /// The runner is ahead of the store: events it sent were lost (a power
    /// cut before the log was flushed) and it must send from `next` again.
    #[error(
        "sequence {sequence} leaves a gap: the next expected sequence of run {run_id} is {next}; send again from there"
    )]
    SequenceGap {
        run_id: String,
        sequence: u64,
        next: u64,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// True when the disk (or the database's size limit) is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            Self::Commit(msg) => msg.contains("full"),
            Self::Io(e) => e.raw_os_error() == Some(28),
            _ => false,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// RFC 3339 with milliseconds, as the first seed's API prints times.
pub fn iso(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// Serialises Unix milliseconds as [`iso`] text.
pub(crate) fn ser_iso<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(*ms))
}

pub(crate) fn ser_iso_opt<S: serde::Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&iso(*ms)),
        None => s.serialize_none(),
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
/// Only a writer can start the log over, and under steady ingest the
/// checkpointer never quite catches up, so the writer must checkpoint now
/// and then; but that checkpoint flushes the log and the database while
/// every request waits (3–7 ms here). At SQLite's usual 1000 pages that
/// happened 30 times a second under single-event load: a fifth of the
/// writer's time, and the round trip's p99 of 6–7 ms. At 8192 pages it
/// still came four times a second at 18,000 single events a second;
/// 16384 was 4 % faster (PERFORMANCE.md).
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
pub struct Store {
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
}

impl Store {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path, settings: StoreSettings) -> Result<Self, StoreError> {
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
        let (writer, _thread) = writer::Writer::start(conn, Arc::clone(&nonces))?;
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
            }),
        })
    }

    pub fn schema_version() -> u32 {
        migrate::latest_version()
    }

    /// A fact about the installation (e.g. `last_prune`) and when it was set.
    pub async fn meta(&self, key: &'static str) -> Result<Option<(String, i64)>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT value, updated_at FROM meta WHERE key = ?1")?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
        })
        .await
    }

    /// Writes a consistent copy of the database to `target` (`VACUUM INTO`
    /// inside one read transaction: concurrent writers are not blocked).
    pub async fn snapshot_to(&self, target: PathBuf) -> Result<(), StoreError> {
        self.read(move |conn| {
            let target = target
                .to_str()
                .ok_or_else(|| StoreError::Conflict("backup path is not UTF-8".to_owned()))?
                .to_owned();
            conn.execute("VACUUM INTO ?1", [target])?;
            Ok(())
        })
        .await
    }

    /// A round trip through the writer and a reader: proves both answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.writer()
            .write(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await?;
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await?;
        Ok(())
    }

    /// Writes the nonces the writer holds and waits for everything queued
    /// before: the first step of a stop.
    pub async fn drain(&self) -> Result<(), StoreError> {
        let nonces = Arc::clone(&self.inner.nonce_check.held);
        self.writer()
            .write(move |_| {
                nonces::lock(&nonces).write_at_commit();
                Ok(())
            })
            .await
    }

    /// Copies the whole log into the database and truncates it to nothing,
    /// so a stopped gateway leaves no log of up to 68 MB beside it. Run at
    /// shutdown, after the writer has drained; on its own connection, since
    /// a checkpoint cannot run inside the writer's transactions.
    pub async fn checkpoint_log(&self) -> Result<(), StoreError> {
        let path = self.inner.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = Connection::open(&path)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            // Busy (the first column) when the checkpointer thread is in a
            // checkpoint of its own: SQLite does not wait for that lock, so
            // this does, for a while. A reader still in a transaction can
            // hold it back too; then the log stays for the next start.
            let deadline = std::time::Instant::now() + CHECKPOINT_AT_STOP_WAIT;
            loop {
                let busy: i64 =
                    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
                if busy == 0 {
                    return Ok(());
                }
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::Conflict(
                        "the database log is still in use; it stays until the next start"
                            .to_owned(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .await
        .map_err(|_| StoreError::WriterGone)?
    }

    /// Takes a reloaded `nonce_lifetime_secs` or `clock_skew_secs`.
    pub fn set_nonce_retention(&self, secs: u64) {
        self.inner
            .nonce_retention_secs
            .store(secs, Ordering::Relaxed);
    }

    /// Nonces signed before this (Unix seconds) have expired.
    fn nonce_cutoff(&self) -> i64 {
        let secs = self.inner.nonce_retention_secs.load(Ordering::Relaxed);
        let retention = i64::try_from(secs).unwrap_or(i64::MAX);
        (now_ms() / 1000).saturating_sub(retention)
    }

    /// Commits and writes since start.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
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
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
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
