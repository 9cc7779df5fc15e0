//! Database facts and checks for administrators.

use rusqlite::Connection;
use serde::Serialize;

use super::{Store, StoreError, migrate};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbStatus {
    pub schema_version: u32,
    pub latest_schema_version: u32,
    pub migrations: Vec<String>,
    pub page_size: u64,
    pub page_count: u64,
    pub freelist_count: u64,
    pub journal_mode: String,
    pub tables: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbCheck {
    pub ok: bool,
    /// `PRAGMA integrity_check` lines other than "ok".
    pub integrity: Vec<String>,
    /// Rows whose foreign key points nowhere: (table, rowid, parent).
    pub foreign_keys: Vec<(String, i64, String)>,
}

const TABLES: &[&str] = &[
    "runs",
    "events",
    "commands",
    "artifacts",
    "nonces",
    "users",
    "sessions",
    "audit_log",
];

fn pragma_u64(conn: &Connection, name: &str) -> Result<u64, StoreError> {
    Ok(conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
}

impl Store {
    pub async fn db_status(&self) -> Result<DbStatus, StoreError> {
        self.read(|conn| {
            let mut tables = Vec::new();
            for table in TABLES {
                let n: u64 =
                    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
                tables.push(((*table).to_owned(), n));
            }
            let version = migrate::current_version(conn)?;
            Ok(DbStatus {
                schema_version: version,
                latest_schema_version: migrate::latest_version(),
                migrations: migrate::applied(version),
                page_size: pragma_u64(conn, "page_size")?,
                page_count: pragma_u64(conn, "page_count")?,
                freelist_count: pragma_u64(conn, "freelist_count")?,
                journal_mode: conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                tables,
            })
        })
        .await
    }

    pub async fn db_check(&self) -> Result<DbCheck, StoreError> {
        self.read(|conn| {
            let integrity: Vec<String> = conn
                .prepare("PRAGMA integrity_check")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?
                .into_iter()
                .filter(|line| line != "ok")
                .collect();
            let foreign_keys = conn
                .prepare("PRAGMA foreign_key_check")?
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get::<_, Option<i64>>(1)?.unwrap_or(-1),
                        r.get(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(DbCheck {
                ok: integrity.is_empty() && foreign_keys.is_empty(),
                integrity,
                foreign_keys,
            })
        })
        .await
    }
}
