//! Numbered schema migrations, recorded in `PRAGMA user_version`. Before an
//! existing database is migrated, a copy is written next to it with SQLite's
//! online backup API.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{StoreError, audit};

/// Data rewrites that SQL alone cannot express.
type PostStep = fn(&Connection) -> Result<(), StoreError>;

struct Migration {
    version: u32,
    sql: &'static str,
    post: Option<PostStep>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("migrations/0001_initial.sql"),
        post: None,
    },
    Migration {
        version: 2,
        sql: include_str!("migrations/0002_sequences_and_audit_chain.sql"),
        post: Some(audit::rechain_all),
    },
    Migration {
        version: 3,
        sql: include_str!("migrations/0003_meta.sql"),
        post: None,
    },
    Migration {
        version: 4,
        sql: include_str!("migrations/0004_nonces_by_time.sql"),
        post: None,
    },
    Migration {
        version: 5,
        sql: include_str!("migrations/0005_event_ids_without_autoincrement.sql"),
        post: Some(finish_schema_edit),
    },
    Migration {
        version: 6,
        sql: include_str!("migrations/0006_idempotency_keys.sql"),
        post: None,
    },
    Migration {
        version: 7,
        sql: include_str!("migrations/0007_agent_runs.sql"),
        post: None,
    },
    Migration {
        version: 8,
        sql: include_str!("migrations/0008_approvals.sql"),
        post: None,
    },
    Migration {
        version: 9,
        sql: include_str!("migrations/0009_notifications.sql"),
        post: None,
    },
    Migration {
        version: 10,
        sql: include_str!("migrations/0010_hosts.sql"),
        post: None,
    },
];

/// The end of an edit of `sqlite_schema` (SQLite's documented procedure):
/// a new schema version makes connections read the edited statements, and
/// the first statement on `events` proves that they parse, before the
/// transaction commits.
fn finish_schema_edit(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    conn.pragma_update(None, "schema_version", version + 1)?;
    conn.pragma_update(None, "writable_schema", false)?;
    conn.prepare("SELECT id FROM events LIMIT 0")?;
    Ok(())
}

/// Names of the migrations applied up to `version`, e.g. "0002 sequences and audit chain".
pub fn applied(version: u32) -> Vec<String> {
    MIGRATIONS
        .iter()
        .filter(|m| m.version <= version)
        .map(|m| {
            let title = m
                .sql
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("-- "))
                .unwrap_or_default();
            format!("{:04} {title}", m.version)
        })
        .collect()
}

/// The schema version this build writes.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

pub fn current_version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Brings the database at `db_path` up to date. Returns the path of the
/// backup taken first, if any.
pub fn migrate(conn: &mut Connection, db_path: &Path) -> Result<Option<PathBuf>, StoreError> {
    let from = current_version(conn)?;
    let latest = latest_version();
    if from > latest {
        return Err(StoreError::Migration(format!(
            "database schema version {from} is newer than this clawd understands ({latest}); \
             install a newer clawd or restore a backup"
        )));
    }
    if from == latest {
        return Ok(None);
    }
    let backup = if from > 0 {
        Some(backup_before_migration(conn, db_path, from)?)
    } else {
        None
    };
    for migration in MIGRATIONS.iter().filter(|m| m.version > from) {
        let tx = conn.transaction()?;
        tx.execute_batch(migration.sql).map_err(|e| {
            StoreError::Migration(format!("migration {} failed: {e}", migration.version))
        })?;
        if let Some(post) = migration.post {
            post(&tx)?;
        }
        tx.pragma_update(None, "user_version", migration.version)?;
        tx.commit()?;
        tracing::info!(version = migration.version, "applied schema migration");
    }
    Ok(backup)
}

fn backup_before_migration(
    conn: &Connection,
    db_path: &Path,
    from: u32,
) -> Result<PathBuf, StoreError> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let name = format!(
        "{}.pre-migration-v{from}-{stamp}.bak",
        db_path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("db.sqlite")
    );
    let target = db_path.with_file_name(name);
    conn.backup(rusqlite::MAIN_DB, &target, None).map_err(|e| {
        StoreError::Migration(format!(
            "cannot write the pre-migration backup {}: {e}; free some space and start again",
            target.display()
        ))
    })?;
    tracing::info!(backup = %target.display(), from, "backed up the database before migrating");
    Ok(target)
}
