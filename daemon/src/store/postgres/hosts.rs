//! Coding hosts on PostgreSQL (as sqlite/hosts.rs): added with a one-time
//! enrolment token (only its hash is kept), enrolled once, revoked for
//! good. A host's row is locked by whatever changes it, so an enrolment
//! token is spent once over every instance; a host request's nonce is
//! written by its own transaction and refused on any instance after.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::PgStore;
use super::runs::check_nonce;
use crate::clock::now_ms;
use crate::store::{Enrolment, HostRow, HostStore, RunnerAuth, StoreError};

const HOST_COLUMNS: &str = "id, name, token_expires_at, key_salt, created_at, enrolled_at, \
     revoked_at, last_seen_at, info";

fn host_from_row(row: &Row) -> HostRow {
    HostRow {
        id: row.get(0),
        name: row.get(1),
        token_expires_at: row.get(2),
        key_salt: row.get(3),
        created_at: row.get(4),
        enrolled_at: row.get(5),
        revoked_at: row.get(6),
        last_seen_at: row.get(7),
        info: row.get(8),
    }
}

/// By name or id; with `lock`, its row is locked for the transaction.
async fn find(
    conn: &impl GenericClient,
    name_or_id: &str,
    lock: bool,
) -> Result<HostRow, StoreError> {
    let sql = if lock {
        format!(
            "SELECT {HOST_COLUMNS} FROM hosts WHERE name = $1 OR id = $1 \
             ORDER BY (name = $1) DESC LIMIT 1 FOR UPDATE"
        )
    } else {
        format!(
            "SELECT {HOST_COLUMNS} FROM hosts WHERE name = $1 OR id = $1 \
             ORDER BY (name = $1) DESC LIMIT 1"
        )
    };
    let stmt = conn.prepare_cached(&sql).await?;
    conn.query_opt(&stmt, &[&name_or_id])
        .await?
        .map(|r| host_from_row(&r))
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "unknown host {name_or_id} (clawctl hosts list shows them)"
            ))
        })
}

#[async_trait]
impl HostStore for PgStore {
    async fn add_host(
        &self,
        id: String,
        name: String,
        token_hash: String,
        token_expires_at: i64,
    ) -> Result<HostRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // One transaction at a time adds a given name, over every
        // instance: the second finds the first's host (SQLite has its
        // single writer for this).
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('claw host'), hashtext($1::text))",
            &[&name],
        )
        .await?;
        let existing = match find(&tx, &name, true).await {
            Ok(host) => Some(host),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let row = match existing {
            Some(host) if host.revoked_at.is_some() => {
                return Err(StoreError::Conflict(format!(
                    "host {name} was revoked: remove it (clawctl hosts remove {name}) to add it again"
                )));
            }
            Some(host) if host.enrolled_at.is_some() => {
                return Err(StoreError::Conflict(format!(
                    "host {name} is enrolled already: revoke and remove it to enrol it again"
                )));
            }
            Some(host) => {
                tx.execute(
                    "UPDATE hosts SET token_hash = $2, token_expires_at = $3 WHERE id = $1",
                    &[&host.id, &token_hash, &token_expires_at],
                )
                .await?;
                find(&tx, &host.id, false).await?
            }
            None => {
                tx.execute(
                    "INSERT INTO hosts (id, name, token_hash, token_expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&id, &name, &token_hash, &token_expires_at, &now_ms()],
                )
                .await?;
                find(&tx, &id, false).await?
            }
        };
        self.commit(tx, Vec::new()).await?;
        Ok(row)
    }

    async fn enroll_host(
        &self,
        token_hash: String,
        salt: String,
        now: i64,
    ) -> Result<Enrolment, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // Locked: a second enrolment with the same token waits, then finds
        // the token spent (no row) and is told it is unknown.
        let host = tx
            .query_opt(
                &format!("SELECT {HOST_COLUMNS} FROM hosts WHERE token_hash = $1 FOR UPDATE"),
                &[&token_hash],
            )
            .await?
            .map(|r| host_from_row(&r));
        let Some(host) = host else {
            return Ok(Enrolment::Unknown);
        };
        if host.revoked_at.is_some() || host.enrolled_at.is_some() {
            return Ok(Enrolment::Unknown);
        }
        if host.token_expires_at.is_none_or(|at| at <= now) {
            return Ok(Enrolment::Expired { host: host.name });
        }
        tx.execute(
            "UPDATE hosts SET token_hash = NULL, token_expires_at = NULL, key_salt = $2, \
             enrolled_at = $3 WHERE id = $1",
            &[&host.id, &salt, &now],
        )
        .await?;
        let row = find(&tx, &host.id, false).await?;
        self.commit(tx, Vec::new()).await?;
        Ok(Enrolment::Enrolled(row))
    }

    async fn hosts(&self) -> Result<Vec<HostRow>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY name"))
            .await?;
        Ok(conn
            .query(&stmt, &[])
            .await?
            .iter()
            .map(host_from_row)
            .collect())
    }

    async fn host(&self, name: String) -> Result<HostRow, StoreError> {
        let conn = self.conn().await?;
        find(&conn, &name, false).await
    }

    async fn revoke_host(&self, name: String, now: i64) -> Result<HostRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let host = find(&tx, &name, true).await?;
        if host.revoked_at.is_none() {
            tx.execute(
                "UPDATE hosts SET revoked_at = $2, token_hash = NULL, \
                 token_expires_at = NULL WHERE id = $1",
                &[&host.id, &now],
            )
            .await?;
        }
        let row = find(&tx, &host.id, false).await?;
        self.commit(tx, Vec::new()).await?;
        Ok(row)
    }

    async fn remove_host(&self, name: String) -> Result<HostRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let host = find(&tx, &name, true).await?;
        tx.execute("DELETE FROM hosts WHERE id = $1", &[&host.id])
            .await?;
        self.commit(tx, Vec::new()).await?;
        Ok(host)
    }

    async fn host_check(&self, host_id: String, auth: RunnerAuth) -> Result<HostRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let host = tx
            .query_opt(
                &format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = $1 FOR KEY SHARE"),
                &[&host_id],
            )
            .await?
            .map(|r| host_from_row(&r))
            .filter(|h| h.enrolled_at.is_some() && h.revoked_at.is_none())
            .ok_or_else(|| StoreError::NotFound(format!("host {host_id} is not enrolled")))?;
        check_nonce(&tx, &auth).await?;
        self.commit(tx, Vec::new()).await?;
        Ok(host)
    }

    async fn host_seen(
        &self,
        host_id: String,
        info: Option<String>,
        now: i64,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "UPDATE hosts SET last_seen_at = $2, info = COALESCE($3, info) WHERE id = $1",
            &[&host_id, &now, &info],
        )
        .await?;
        Ok(())
    }
}
