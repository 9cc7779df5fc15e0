//! The SQLite side of `clawctl db copy-to` (`store/copy.rs`): one read
//! transaction on a connection of its own, so that every table is read
//! as it was at one moment while the gateway goes on writing.

use std::path::Path;

use rusqlite::Connection;
use tokio::sync::mpsc;

use crate::clock::now_ms;
use crate::store::StoreError;
use crate::store::copy::{Kind, Read, TABLES, Table, Value};

/// Most rows in one batch; PostgreSQL takes at most 65535 parameters in
/// a statement, the widest table has 20 columns.
const BATCH_ROWS: usize = 500;
/// Bytes of values past which a batch is sent before it is full (events
/// may be large).
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The database as it was when [`Snapshot::take`] returned.
pub(in crate::store) struct Snapshot {
    conn: Connection,
    /// `PRAGMA data_version` in the snapshot: it changes once another
    /// connection commits.
    data_version: i64,
    pub taken_at: i64,
    /// Rows of each of [`TABLES`].
    pub counts: Vec<u64>,
}

impl Snapshot {
    /// Starts the read transaction and counts each table's rows in it.
    pub fn take(path: &Path) -> Result<Self, StoreError> {
        let conn = super::open_reader(path)?;
        conn.execute_batch("BEGIN")?;
        // The first read fixes the snapshot.
        let mut counts = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let n: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM \"{}\"", table.name),
                [],
                |r| r.get(0),
            )?;
            counts.push(u64::try_from(n).unwrap_or(0));
        }
        let data_version = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok(Self {
            conn,
            data_version,
            taken_at: now_ms(),
            counts,
        })
    }

    /// Sends every table's rows in batches, then [`Read::Done`], and ends
    /// the read transaction. Blocking; stops when the receiver is gone
    /// (the copy failed or was given up).
    pub fn stream(&self, out: &mpsc::Sender<Read>) -> Result<(), StoreError> {
        let sent = self.stream_tables(out);
        // Ending the transaction lets SQLite's log start over.
        self.conn.execute_batch("COMMIT")?;
        if sent? {
            let _ = out.blocking_send(Read::Done);
        }
        Ok(())
    }

    /// False when the receiver went away.
    fn stream_tables(&self, out: &mpsc::Sender<Read>) -> Result<bool, StoreError> {
        for (index, table) in TABLES.iter().enumerate() {
            let mut stmt = self.conn.prepare(&select(table))?;
            let mut rows = stmt.query([])?;
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(row) = rows.next()? {
                let mut values = Vec::with_capacity(table.columns.len());
                for (i, column) in table.columns.iter().enumerate() {
                    let value = match column.kind {
                        Kind::Int => row.get::<_, Option<i64>>(i)?.map(Value::Int),
                        Kind::Text => row.get::<_, Option<String>>(i)?.map(Value::Text),
                        Kind::Blob => row.get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
                    };
                    let value = value.unwrap_or(Value::Null);
                    bytes += value.size();
                    values.push(value);
                }
                batch.push(values);
                if batch.len() >= BATCH_ROWS || bytes >= BATCH_BYTES {
                    let rows = std::mem::take(&mut batch);
                    bytes = 0;
                    if out
                        .blocking_send(Read::Rows { table: index, rows })
                        .is_err()
                    {
                        return Ok(false);
                    }
                }
            }
            if !batch.is_empty()
                && out
                    .blocking_send(Read::Rows {
                        table: index,
                        rows: batch,
                    })
                    .is_err()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether anything was committed to the database after the snapshot.
    pub fn changed_since(&self) -> Result<bool, StoreError> {
        let now: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok(now != self.data_version)
    }
}

fn select(table: &Table) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.source))
        .collect();
    format!(
        "SELECT {} FROM \"{}\" ORDER BY {}",
        columns.join(", "),
        table.name,
        table.order
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::*;
    use crate::store::sqlite::{Durability, SqliteStore, StoreSettings};
    use crate::store::{Change, ChangeSink};

    struct Nowhere;
    impl ChangeSink for Nowhere {
        fn publish(&self, _: Change) {}
    }

    fn fresh_database() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        let store = SqliteStore::open(
            &path,
            StoreSettings {
                durability: Durability::Commit,
                nonce_retention_secs: 600,
            },
            Arc::new(Nowhere),
        )
        .expect("open");
        drop(store);
        (dir, path)
    }

    fn add_meta(path: &Path, key: &str) {
        Connection::open(path)
            .expect("open")
            .execute(
                "INSERT INTO meta (key, value, updated_at) VALUES (?1, 'v', 1)",
                [key],
            )
            .expect("insert");
    }

    /// What is written after the snapshot is neither counted nor sent,
    /// and is noticed.
    #[test]
    fn the_snapshot_is_of_one_moment_and_knows_what_came_after() {
        let (_dir, path) = fresh_database();
        add_meta(&path, "before");
        let snapshot = Snapshot::take(&path).expect("snapshot");
        add_meta(&path, "after");
        let meta = TABLES
            .iter()
            .position(|t| t.name == "meta")
            .expect("meta is copied");
        assert_eq!(snapshot.counts[meta], 1);
        let (tx, mut rx) = mpsc::channel(64);
        snapshot.stream(&tx).expect("stream");
        let mut sent = Vec::new();
        let mut done = false;
        while let Ok(read) = rx.try_recv() {
            match read {
                Read::Rows { table, rows } => sent.push((table, rows)),
                Read::Done => done = true,
            }
        }
        assert!(done);
        assert_eq!(sent.len(), 1, "only meta has rows");
        assert_eq!(sent[0].0, meta);
        assert_eq!(
            sent[0].1,
            vec![vec![
                Value::Text("before".to_owned()),
                Value::Text("v".to_owned()),
                Value::Int(1)
            ]]
        );
        assert!(snapshot.changed_since().expect("data_version"));

        let quiet = Snapshot::take(&path).expect("snapshot");
        assert!(!quiet.changed_since().expect("data_version"));
    }

    /// The copy names every table of SQLite's schema but the one it means
    /// to leave, and exactly the columns each has: a migration that adds
    /// one fails here until the copy takes it.
    #[test]
    fn the_copy_takes_every_table_and_column_of_the_schema() {
        let (_dir, path) = fresh_database();
        let conn = Connection::open(&path).expect("open again");
        let mut stmt = conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .expect("prepare");
        let tables: BTreeSet<String> = stmt
            .query_map([], |r| r.get(0))
            .expect("tables")
            .collect::<Result<_, _>>()
            .expect("names");
        let mut copied: BTreeSet<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
        copied.insert("nonces_legacy".to_owned());
        assert_eq!(tables, copied);
        for table in TABLES {
            let mut stmt = conn
                .prepare(&format!("PRAGMA table_info(\"{}\")", table.name))
                .expect("table_info");
            let columns: BTreeSet<String> = stmt
                .query_map([], |r| r.get(1))
                .expect("columns")
                .collect::<Result<_, _>>()
                .expect("names");
            let named: BTreeSet<String> = table
                .columns
                .iter()
                .filter(|c| c.source != "rowid")
                .map(|c| c.name.to_owned())
                .collect();
            assert_eq!(columns, named, "{}", table.name);
            // Each select runs.
            conn.prepare(&select(table)).expect("select");
        }
    }
}
