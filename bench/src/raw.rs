//! The store's physical limit: the same event rows inserted straight into
//! SQLite with the daemon's schema, pragmas and batch size (one transaction
//! per batch, as clawd commits one request or one group).

use std::time::Instant;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags, params};

/// The daemon's writer writes through this VFS (one write per commit's log
/// frames); the limit is measured through it too.
#[path = "../../daemon/src/store/sqlite/wal_vfs.rs"]
mod wal_vfs;

const MIGRATIONS: &[&str] = &[
    include_str!("../../daemon/src/store/sqlite/migrations/0001_initial.sql"),
    include_str!("../../daemon/src/store/sqlite/migrations/0002_sequences_and_audit_chain.sql"),
    include_str!("../../daemon/src/store/sqlite/migrations/0003_meta.sql"),
    include_str!("../../daemon/src/store/sqlite/migrations/0004_nonces_by_time.sql"),
    include_str!(
        "../../daemon/src/store/sqlite/migrations/0005_event_ids_without_autoincrement.sql"
    ),
    include_str!("../../daemon/src/store/sqlite/migrations/0006_idempotency_keys.sql"),
    include_str!("../../daemon/src/store/sqlite/migrations/0007_agent_runs.sql"),
    include_str!("../../daemon/src/store/sqlite/migrations/0008_approvals.sql"),
    include_str!("../../daemon/src/store/sqlite/migrations/0009_notifications.sql"),
    include_str!("../../daemon/src/store/sqlite/migrations/0010_hosts.sql"),
];

/// Creates a database at `path` with the daemon's schema, recorded as
/// migrated, and opens it again as clawd's writer does: a migration that
/// edits the stored schema takes effect on a new connection.
pub fn create_with_schema(path: &std::path::Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    for sql in MIGRATIONS {
        conn.execute_batch(sql)
            .context("applying the daemon's schema")?;
    }
    // As migrated: clawd starts on it without migrating (or copying) it.
    conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    conn.close().map_err(|(_, e)| e)?;
    if !wal_vfs::register() {
        anyhow::bail!("SQLite has no unix VFS to write through");
    }
    Ok(Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::default(),
        wal_vfs::NAME,
    )?)
}

/// Inserted rows per second.
pub fn insert_rate(
    total: u64,
    batch: usize,
    event_bytes: usize,
    runs: usize,
    synchronous_full: bool,
) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let mut conn = create_with_schema(&dir.path().join("db.sqlite"))?;
    // As clawd's store opens its writer: `batched` durability is NORMAL
    // (the log flushed beside the writer), `commit` is FULL.
    let synchronous = if synchronous_full { "FULL" } else { "NORMAL" };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // The writer's own checkpoint threshold (WRITER_CHECKPOINT_PAGES in
    // daemon/src/store/sqlite/mod.rs); clawd's checkpointer thread has no
    // counterpart here, so this limit checkpoints all the log itself.
    conn.pragma_update(None, "wal_autocheckpoint", 16384)?;
    let run_ids: Vec<String> = (0..runs.max(1)).map(|i| format!("raw-run-{i}")).collect();
    for id in &run_ids {
        conn.execute(
            "INSERT INTO runs (id, status, capability_token_hash, created_at) VALUES (?1, 'running', 'x', 0)",
            [id],
        )?;
    }
    let data = format!("{:020} {}", 0, "x".repeat(event_bytes.saturating_sub(21)));
    let per_run = total / run_ids.len() as u64;
    let started = Instant::now();
    let mut inserted = 0u64;
    for (r, run_id) in run_ids.iter().enumerate() {
        let _ = r;
        let mut sequence = 1u64;
        while sequence <= per_run {
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO events (run_id, type, data, timestamp, sequence) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                let end = (sequence + batch as u64).min(per_run + 1);
                for seq in sequence..end {
                    insert.execute(params![run_id, "stdout", data, 0i64, seq as i64])?;
                }
                inserted += end - sequence;
                sequence = end;
            }
            tx.commit()?;
        }
    }
    Ok(inserted as f64 / started.elapsed().as_secs_f64())
}
