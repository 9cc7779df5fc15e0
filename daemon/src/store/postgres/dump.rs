//! Backups of the PostgreSQL store: `pg_dump --format=custom` of one
//! exported snapshot, with the rows per table counted in that same
//! snapshot, so that a restored copy can be checked against the counts.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use deadpool_postgres::GenericClient;
use tokio_postgres::IsolationLevel;

use super::{PgStore, maintenance::TABLES, unbig};
use crate::store::{CopyError, DbCopy};

/// How `pg_dump` connects: the URL without its password, and the password
/// (from the URL or the credential) for its environment.
pub(super) struct DumpSource {
    pub conninfo: String,
    pub password: Option<crate::secrets::Secret>,
}

/// Where Debian and most distributions put the server's programs, one
/// folder per major version.
const SERVER_BINDIRS: &str = "/usr/lib/postgresql";

/// `name` (pg_dump) in PATH, else in the newest `/usr/lib/postgresql/*/bin`.
pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(found) = in_path
        .iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
    {
        return Some(found);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(SERVER_BINDIRS)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let tool = entry.path().join("bin").join(name);
            tool.is_file().then_some((version, tool))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, tool)| tool)
}

fn missing(name: &str) -> CopyError {
    CopyError::Tool(format!(
        "{name} is not installed (looked in PATH and {SERVER_BINDIRS}/*/bin): \
         install the package postgresql-client, of the server's major version or newer"
    ))
}

impl PgStore {
    /// Exports a snapshot from a read-only repeatable-read transaction,
    /// counts the rows in it and has `pg_dump` dump exactly it while the
    /// transaction stays open; writers are not blocked.
    pub(super) async fn dump_to(&self, target: PathBuf) -> Result<DbCopy, CopyError> {
        let pg_dump = find_tool("pg_dump").ok_or_else(|| missing("pg_dump"))?;
        let mut conn = self.conn().await?;
        let tx = conn
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(crate::store::StoreError::from)?;
        let snapshot: String = tx
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(crate::store::StoreError::from)?
            .get(0);
        let version: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM claw_schema_migrations",
                &[],
            )
            .await
            .map_err(crate::store::StoreError::from)?
            .get(0);
        let mut tables = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let n = count_rows(&tx, table)
                .await
                .map_err(crate::store::StoreError::from)?;
            tables.push(((*table).to_owned(), n));
        }
        let dumped = self.run_pg_dump(&pg_dump, &snapshot, &target).await;
        // Read-only: ending it either way changes nothing.
        let _ = tx.rollback().await;
        dumped?;
        Ok(DbCopy {
            name: "db.pgdump",
            store: "postgres",
            schema_version: u32::try_from(version).unwrap_or(0),
            tables,
        })
    }

    async fn run_pg_dump(
        &self,
        pg_dump: &Path,
        snapshot: &str,
        target: &Path,
    ) -> Result<(), CopyError> {
        let source = &self.inner.dump;
        let mut command = tokio::process::Command::new(pg_dump);
        command
            .arg("--format=custom")
            .arg("--no-password")
            .arg(format!("--snapshot={snapshot}"))
            .arg("--file")
            .arg(target)
            .arg("--dbname")
            .arg(&source.conninfo)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(password) = &source.password {
            use std::os::unix::ffi::OsStrExt;
            command.env("PGPASSWORD", std::ffi::OsStr::from_bytes(password.expose()));
        }
        let out = command.output().await.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => missing("pg_dump"),
            _ => CopyError::Tool(format!("cannot run {}: {e}", pg_dump.display())),
        })?;
        if out.status.success() {
            return Ok(());
        }
        // pg_dump's messages name the server and user, never a password.
        let said = String::from_utf8_lossy(&out.stderr);
        Err(CopyError::Tool(format!(
            "{} failed ({}): {}",
            pg_dump.display(),
            out.status,
            said.trim()
        )))
    }
}

/// The rows of one table; used by `db status` too.
pub(super) async fn count_rows(
    conn: &impl GenericClient,
    table: &str,
) -> Result<u64, tokio_postgres::Error> {
    let n: i64 = conn
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0);
    Ok(unbig(n))
}
