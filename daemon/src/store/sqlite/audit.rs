//! The tamper-evident audit log; its hash chain is in `store/audit_chain.rs`.

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::SqliteStore;
use crate::clock::now_ms;
use crate::store::audit_chain::{ChainCheck, ChainRow as RawRow, row_hash};
use crate::store::{AuditEntry, AuditFilter, AuditRow, AuditStore, ChainVerdict, StoreError};

const COLUMNS: &str =
    "id, timestamp, user_id, username, action, target, details, ip, prev_hash, hash";

fn raw_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get(0)?,
        timestamp: r.get(1)?,
        user_id: r.get(2)?,
        username: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        details: r.get(6)?,
        ip: r.get(7)?,
        prev_hash: r.get(8)?,
        hash: r.get(9)?,
    })
}

fn last_hash(conn: &Connection) -> Result<String, StoreError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row(
            "SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_default())
}

fn append(conn: &Connection, entry: &AuditEntry) -> Result<i64, StoreError> {
    let prev_hash = last_hash(conn)?;
    let timestamp = now_ms();
    conn.prepare_cached(
        "INSERT INTO audit_log (timestamp, user_id, username, action, target, details, ip, prev_hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        timestamp,
        entry.user_id,
        entry.username,
        entry.action,
        entry.target,
        entry.details,
        entry.ip,
        prev_hash
    ])?;
    let id = conn.last_insert_rowid();
    let raw = RawRow {
        id,
        timestamp,
        user_id: entry.user_id.clone(),
        username: entry.username.clone(),
        action: entry.action.clone(),
        target: entry.target.clone(),
        details: entry.details.clone(),
        ip: entry.ip.clone(),
        prev_hash: prev_hash.clone(),
        hash: String::new(),
    };
    conn.prepare_cached("UPDATE audit_log SET hash = ?2 WHERE id = ?1")?
        .execute(params![id, row_hash(&prev_hash, &raw)])?;
    Ok(id)
}

/// Computes the chain over every existing row (used when migrating a
/// database whose audit log predates the chain).
pub(super) fn rechain_all(conn: &Connection) -> Result<(), StoreError> {
    let rows = conn
        .prepare(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY id"))?
        .query_map([], raw_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut prev = String::new();
    let mut update =
        conn.prepare("UPDATE audit_log SET prev_hash = ?2, hash = ?3 WHERE id = ?1")?;
    for row in rows {
        let hash = row_hash(&prev, &row);
        update.execute(params![row.id, prev, hash])?;
        prev = hash;
    }
    Ok(())
}

fn verify(conn: &Connection) -> Result<ChainVerdict, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY id"))?;
    let mut rows = stmt.query([])?;
    let mut chain = ChainCheck::default();
    while let Some(row) = rows.next()? {
        if let Some(broken) = chain.check(&raw_from_row(row)?) {
            return Ok(broken);
        }
    }
    Ok(chain.verdict())
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit(&self, entry: AuditEntry) -> Result<i64, StoreError> {
        self.writer().write(move |conn| append(conn, &entry)).await
    }

    async fn verify_audit_chain(&self) -> Result<ChainVerdict, StoreError> {
        self.read(verify).await
    }

    async fn list_audit(&self, filter: AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        self.read(move |conn| {
            let action_prefix = filter.action.as_ref().map(|a| format!("{a}.%"));
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM audit_log \
                     WHERE (?1 IS NULL OR username = ?1) \
                       AND (?2 IS NULL OR action = ?2 OR action LIKE ?3) \
                       AND (?4 IS NULL OR timestamp >= ?4) \
                     ORDER BY id DESC LIMIT ?5"
                ))?
                .query_map(
                    params![
                        filter.username,
                        filter.action,
                        action_prefix,
                        filter.since,
                        filter.limit
                    ],
                    raw_from_row,
                )?
                .map(|r| r.map(AuditRow::from))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}
