//! The audit log on PostgreSQL, chained and verified as on SQLite
//! (`store/audit_chain.rs`).
//!
//! Appends from every instance are serialised by the one-row
//! `audit_head`: an append locks it (`FOR UPDATE`), links to the hash it
//! holds, takes its id from the identity column while holding the lock and
//! leaves its own hash there. The lock is held to the commit, so ids grow
//! in the chain's order and the next append links to a committed row; an
//! append that rolls back leaves the head as it was (and a gap in the ids,
//! which the chain does not mind).

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::PgStore;
use crate::clock::now_ms;
use crate::store::audit_chain::{ChainCheck, ChainRow, row_hash};
use crate::store::{AuditEntry, AuditFilter, AuditRow, AuditStore, ChainVerdict, StoreError};

const COLUMNS: &str =
    "id, timestamp, user_id, username, action, target, details, ip, prev_hash, hash";

/// Rows read per query when verifying.
const VERIFY_PAGE: i64 = 2000;

fn chain_row(r: &Row) -> ChainRow {
    ChainRow {
        id: r.get(0),
        timestamp: r.get(1),
        user_id: r.get(2),
        username: r.get(3),
        action: r.get(4),
        target: r.get(5),
        details: r.get(6),
        ip: r.get(7),
        prev_hash: r.get(8),
        hash: r.get(9),
    }
}

async fn append(conn: &impl GenericClient, entry: AuditEntry) -> Result<i64, StoreError> {
    let head = conn
        .prepare_cached("SELECT hash FROM audit_head FOR UPDATE")
        .await?;
    let prev_hash: String = conn
        .query_opt(&head, &[])
        .await?
        .ok_or_else(|| {
            StoreError::Unavailable("the audit log's head row is missing (audit_head)".to_owned())
        })?
        .get(0);
    let id: i64 = conn
        .query_one(
            "SELECT nextval(pg_get_serial_sequence('audit_log', 'id'))",
            &[],
        )
        .await?
        .get(0);
    let mut row = ChainRow {
        id,
        timestamp: now_ms(),
        user_id: entry.user_id,
        username: entry.username,
        action: entry.action,
        target: entry.target,
        details: entry.details,
        ip: entry.ip,
        prev_hash,
        hash: String::new(),
    };
    row.hash = row_hash(&row.prev_hash, &row);
    let insert = conn
        .prepare_cached(
            "INSERT INTO audit_log \
             (id, timestamp, user_id, username, action, target, details, ip, prev_hash, hash) \
             OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?;
    conn.execute(
        &insert,
        &[
            &row.id,
            &row.timestamp,
            &row.user_id,
            &row.username,
            &row.action,
            &row.target,
            &row.details,
            &row.ip,
            &row.prev_hash,
            &row.hash,
        ],
    )
    .await?;
    let advance = conn
        .prepare_cached("UPDATE audit_head SET last_id = $1, hash = $2")
        .await?;
    conn.execute(&advance, &[&row.id, &row.hash]).await?;
    Ok(id)
}

#[async_trait]
impl AuditStore for PgStore {
    async fn audit(&self, entry: AuditEntry) -> Result<i64, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let id = append(&tx, entry).await?;
        self.commit(tx, Vec::new()).await?;
        Ok(id)
    }

    /// Reads the log in id order, a page at a time, in one snapshot.
    async fn verify_audit_chain(&self) -> Result<ChainVerdict, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let page = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .await?;
        let mut chain = ChainCheck::default();
        let mut after = i64::MIN;
        loop {
            let rows = tx.query(&page, &[&after, &VERIFY_PAGE]).await?;
            for row in &rows {
                let row = chain_row(row);
                if let Some(broken) = chain.check(&row) {
                    return Ok(broken);
                }
                after = row.id;
            }
            if rows.len() < usize::try_from(VERIFY_PAGE).unwrap_or(usize::MAX) {
                break;
            }
        }
        tx.commit().await?;
        Ok(chain.verdict())
    }

    async fn list_audit(&self, filter: AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let conn = self.conn().await?;
        let action_prefix = filter.action.as_ref().map(|a| format!("{a}.%"));
        // ILIKE: SQLite's LIKE ignores ASCII case.
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM audit_log \
                 WHERE ($1::text IS NULL OR username = $1) \
                   AND ($2::text IS NULL OR action = $2 OR action ILIKE $3) \
                   AND ($4::bigint IS NULL OR timestamp >= $4) \
                 ORDER BY id DESC LIMIT $5"
            ))
            .await?;
        let rows = conn
            .query(
                &stmt,
                &[
                    &filter.username,
                    &filter.action,
                    &action_prefix,
                    &filter.since,
                    &i64::from(filter.limit),
                ],
            )
            .await?;
        Ok(rows.iter().map(|r| AuditRow::from(chain_row(r))).collect())
    }
}
