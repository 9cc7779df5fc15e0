//! The PostgreSQL side of `clawctl db copy-to` (`store/copy.rs`): rows
//! from SQLite's snapshot written in one transaction with multi-row
//! INSERTs, ids and all, then the identity columns and the audit chain's
//! head set past what was copied.

use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::store::StoreError;
use crate::store::copy::{CopyError, Read, TABLES, Table};

/// Held by a copy's transaction: two copies into one database at once
/// wait for each other, and the second then finds rows and stops.
/// "claw" and "copy" in ASCII.
const COPY_LOCK: i64 = 0x636c_6177_636f_7079;

impl From<tokio_postgres::Error> for CopyError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Store(e.into())
    }
}

impl PgStore {
    /// Rows in each of [`TABLES`].
    pub(in crate::store) async fn rows_per_table(&self) -> Result<Vec<u64>, StoreError> {
        let conn = self.conn().await?;
        let mut counts = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let n: i64 = conn
                .query_one(&format!("SELECT COUNT(*) FROM \"{}\"", table.name), &[])
                .await?
                .get(0);
            counts.push(super::unbig(n));
        }
        Ok(counts)
    }

    /// Writes what `rows` brings in one transaction, committed only once
    /// it says [`Read::Done`]; `copied` is told each batch's table and
    /// rows.
    pub(in crate::store) async fn import(
        &self,
        mut rows: mpsc::Receiver<Read>,
        copied: &mut (dyn FnMut(usize, u64) + Send),
    ) -> Result<(), CopyError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&COPY_LOCK])
            .await?;
        // Checked again under the lock: another copy may have been first.
        for table in TABLES {
            let any: bool = tx
                .query_one(
                    &format!("SELECT EXISTS (SELECT 1 FROM \"{}\")", table.name),
                    &[],
                )
                .await?
                .get(0);
            if any {
                return Err(CopyError::NotEmpty {
                    database: self.inner.shown_url.clone(),
                    tables: format!("{} has rows", table.name),
                });
            }
        }
        loop {
            match rows.recv().await {
                Some(Read::Rows { table, rows }) => {
                    let spec = TABLES.get(table).ok_or_else(|| {
                        CopyError::Stopped(format!("no table number {table} to copy"))
                    })?;
                    // Not cached: batches cut by size have many lengths.
                    let stmt = insert(spec, rows.len());
                    let params: Vec<&(dyn ToSql + Sync)> = rows
                        .iter()
                        .flatten()
                        .map(|v| v as &(dyn ToSql + Sync))
                        .collect();
                    tx.execute(stmt.as_str(), &params).await.map_err(|e| {
                        CopyError::Stopped(format!(
                            "PostgreSQL refused rows of {}: {}",
                            spec.name,
                            super::describe(&e)
                        ))
                    })?;
                    copied(table, rows.len() as u64);
                }
                Some(Read::Done) => break,
                None => {
                    return Err(CopyError::Stopped(
                        "reading the SQLite snapshot ended early".to_owned(),
                    ));
                }
            }
        }
        // Later inserts take ids after the copied ones.
        for table in TABLES {
            let Some(column) = table.identity else {
                continue;
            };
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{name}', '{column}'), m) \
                     FROM (SELECT MAX(\"{column}\") AS m FROM \"{name}\") AS copied \
                     WHERE m IS NOT NULL",
                    name = table.name
                ),
                &[],
            )
            .await?;
        }
        // The next audit entry links to the last copied one.
        tx.execute(
            "UPDATE audit_head SET last_id = last.id, hash = last.hash \
             FROM (SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1) AS last",
            &[],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// `INSERT INTO t (…) VALUES (…), (…)` for `rows` rows, each parameter
/// cast to its column's type.
fn insert(table: &Table, rows: usize) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    let width = table.columns.len();
    let mut values = Vec::with_capacity(rows);
    for row in 0..rows {
        let params: Vec<String> = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}", row * width + i + 1, c.kind.pg_type()))
            .collect();
        values.push(format!("({})", params.join(", ")));
    }
    let overriding = if table.identity.is_some() {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    format!(
        "INSERT INTO \"{}\" ({}){overriding} VALUES {}",
        table.name,
        columns.join(", "),
        values.join(", ")
    )
}
