//! Coding hosts: added with a one-time enrolment token (only its hash is
//! kept), enrolled once, revoked for good.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::runs::{NonceUse, check_nonce};
use crate::clock::now_ms;
use crate::store::{Enrolment, HostRow, HostStore, RunnerAuth, StoreError};

const HOST_COLUMNS: &str = "id, name, token_expires_at, key_salt, created_at, enrolled_at, \
     revoked_at, last_seen_at, info";

fn host_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<HostRow> {
    Ok(HostRow {
        id: row.get(0)?,
        name: row.get(1)?,
        token_expires_at: row.get(2)?,
        key_salt: row.get(3)?,
        created_at: row.get(4)?,
        enrolled_at: row.get(5)?,
        revoked_at: row.get(6)?,
        last_seen_at: row.get(7)?,
        info: row.get(8)?,
    })
}

fn find(conn: &Connection, name_or_id: &str) -> Result<HostRow, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {HOST_COLUMNS} FROM hosts WHERE name = ?1 OR id = ?1"
    ))?
    .query_row([name_or_id], host_from_row)
    .optional()?
    .ok_or_else(|| {
        StoreError::NotFound(format!(
            "unknown host {name_or_id} (clawctl hosts list shows them)"
        ))
    })
}

#[async_trait]
impl HostStore for SqliteStore {
    async fn add_host(
        &self,
        id: String,
        name: String,
        token_hash: String,
        token_expires_at: i64,
    ) -> Result<HostRow, StoreError> {
        self.writer()
            .write(move |conn| {
                let existing = find(conn, &name).ok();
                match existing {
                    Some(host) if host.revoked_at.is_some() => Err(StoreError::Conflict(format!(
                        "host {name} was revoked: remove it (clawctl hosts remove {name}) to add it again"
                    ))),
                    Some(host) if host.enrolled_at.is_some() => Err(StoreError::Conflict(format!(
                        "host {name} is enrolled already: revoke and remove it to enrol it again"
                    ))),
                    Some(host) => {
                        conn.execute(
                            "UPDATE hosts SET token_hash = ?2, token_expires_at = ?3 WHERE id = ?1",
                            params![host.id, token_hash, token_expires_at],
                        )?;
                        find(conn, &host.id)
                    }
                    None => {
                        conn.execute(
                            "INSERT INTO hosts (id, name, token_hash, token_expires_at, created_at) \
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![id, name, token_hash, token_expires_at, now_ms()],
                        )?;
                        find(conn, &id)
                    }
                }
            })
            .await
    }

    async fn enroll_host(
        &self,
        token_hash: String,
        salt: String,
        now: i64,
    ) -> Result<Enrolment, StoreError> {
        self.writer()
            .write(move |conn| {
                let host = conn
                    .prepare_cached(&format!(
                        "SELECT {HOST_COLUMNS} FROM hosts WHERE token_hash = ?1"
                    ))?
                    .query_row([&token_hash], host_from_row)
                    .optional()?;
                let Some(host) = host else {
                    return Ok(Enrolment::Unknown);
                };
                if host.revoked_at.is_some() || host.enrolled_at.is_some() {
                    return Ok(Enrolment::Unknown);
                }
                if host.token_expires_at.is_none_or(|at| at <= now) {
                    return Ok(Enrolment::Expired { host: host.name });
                }
                conn.execute(
                    "UPDATE hosts SET token_hash = NULL, token_expires_at = NULL, key_salt = ?2, \
                     enrolled_at = ?3 WHERE id = ?1",
                    params![host.id, salt, now],
                )?;
                Ok(Enrolment::Enrolled(find(conn, &host.id)?))
            })
            .await
    }

    async fn hosts(&self) -> Result<Vec<HostRow>, StoreError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY name"))?
                .query_map([], host_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn host(&self, name: String) -> Result<HostRow, StoreError> {
        self.read(move |conn| find(conn, &name)).await
    }

    async fn revoke_host(&self, name: String, now: i64) -> Result<HostRow, StoreError> {
        self.writer()
            .write(move |conn| {
                let host = find(conn, &name)?;
                if host.revoked_at.is_none() {
                    conn.execute(
                        "UPDATE hosts SET revoked_at = ?2, token_hash = NULL, \
                         token_expires_at = NULL WHERE id = ?1",
                        params![host.id, now],
                    )?;
                }
                find(conn, &host.id)
            })
            .await
    }

    async fn remove_host(&self, name: String) -> Result<HostRow, StoreError> {
        self.writer()
            .write(move |conn| {
                let host = find(conn, &name)?;
                conn.execute("DELETE FROM hosts WHERE id = ?1", [&host.id])?;
                Ok(host)
            })
            .await
    }

    async fn host_check(&self, host_id: String, auth: RunnerAuth) -> Result<HostRow, StoreError> {
        let nonces = self.nonce_check();
        self.writer()
            .write(move |conn| {
                let host = conn
                    .prepare_cached(&format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = ?1"))?
                    .query_row([&host_id], host_from_row)
                    .optional()?
                    .filter(|h| h.enrolled_at.is_some() && h.revoked_at.is_none())
                    .ok_or_else(|| {
                        StoreError::NotFound(format!("host {host_id} is not enrolled"))
                    })?;
                check_nonce(conn, &auth, now_ms(), &nonces, NonceUse::Written)?;
                Ok(host)
            })
            .await
    }

    async fn host_seen(
        &self,
        host_id: String,
        info: Option<String>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.writer()
            .write(move |conn| {
                conn.execute(
                    "UPDATE hosts SET last_seen_at = ?2, info = COALESCE(?3, info) WHERE id = ?1",
                    params![host_id, now, info],
                )?;
                Ok(())
            })
            .await
    }
}
