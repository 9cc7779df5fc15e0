//! Numbered schema migrations of the PostgreSQL store, recorded one row
//! each in `claw_schema_migrations`. They are applied at start under a
//! session-level advisory lock, so of several instances starting together
//! one migrates and the others wait and find nothing left to do; each
//! migration is one transaction (PostgreSQL's DDL is transactional), so a
//! failing one leaves the schema as it was.

use tokio_postgres::Client;

use crate::store::StoreError;

pub(super) struct Migration {
    pub(super) version: u32,
    pub(super) sql: &'static str,
}

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("migrations/0001_schema.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("migrations/0002_approval_order.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("migrations/0003_instances.sql"),
    },
];

/// The advisory lock's key: "claw" and "migr" in ASCII, so that it meets
/// no other application's lock by chance.
pub(super) const MIGRATION_LOCK: i64 = 0x636c_6177_6d69_6772;

pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Names of the migrations applied up to `version`, e.g. "0001 schema: …".
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

const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS claw_schema_migrations (\
     version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// The schema version of the database: its highest applied migration.
pub async fn current_version(client: &Client) -> Result<u32, StoreError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('claw_schema_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let version: i32 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM claw_schema_migrations",
            &[],
        )
        .await?
        .get(0);
    Ok(u32::try_from(version).unwrap_or(0))
}

/// Brings the database up to date; returns the migrations this call
/// applied (none when another instance had).
pub async fn migrate(client: &mut Client) -> Result<Vec<u32>, StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = migrate_locked(client).await;
    // The lock is the session's: give it back whatever happened (a
    // connection that broke gave it back already).
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn migrate_locked(client: &mut Client) -> Result<Vec<u32>, StoreError> {
    client.batch_execute(CREATE_LEDGER).await?;
    let from = current_version(client).await?;
    let latest = latest_version();
    if from > latest {
        return Err(StoreError::Migration(format!(
            "database schema version {from} is newer than this clawd understands ({latest}); \
             install a newer clawd"
        )));
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > from) {
        let tx = client.transaction().await?;
        tx.batch_execute(migration.sql).await.map_err(|e| {
            StoreError::Migration(format!(
                "migration {} failed: {}",
                migration.version,
                super::describe(&e)
            ))
        })?;
        let name = applied_name(migration);
        tx.execute(
            "INSERT INTO claw_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[
                &i32::try_from(migration.version).unwrap_or(i32::MAX),
                &name,
                &crate::clock::now_ms(),
            ],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            version = migration.version,
            "applied PostgreSQL schema migration"
        );
        applied.push(migration.version);
    }
    Ok(applied)
}

fn applied_name(migration: &Migration) -> String {
    applied(migration.version).pop().unwrap_or_default()
}
