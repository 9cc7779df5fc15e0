//! PostgreSQL from clawctl: finding `pg_restore`, reaching a server
//! without its password on a command line (libpq reads `PGPASSWORD` from
//! the environment), checking a backup's dump on a scratch server, and
//! restoring one into the gateway's database.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use claw_proto::audit_chain::{ChainRow, row_hash};
use serde::Serialize;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

/// Where Debian and most distributions put the server's programs, one
/// folder per major version.
const SERVER_BINDIRS: &str = "/usr/lib/postgresql";
/// Rows SQL may name: the tables a backup counts are the gateway's own.
const TABLE_NAME: fn(char) -> bool = |c| c.is_ascii_lowercase() || c == '_';

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PgError(pub String);

fn fail(what: impl std::fmt::Display) -> PgError {
    PgError(what.to_string())
}

/// `name` (pg_restore) in PATH, else in the newest `/usr/lib/postgresql/*/bin`.
pub fn find_tool(name: &str) -> Result<PathBuf, PgError> {
    let in_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(found) = in_path
        .iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
    {
        return Ok(found);
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
    versions.pop().map(|(_, tool)| tool).ok_or_else(|| {
        fail(format!(
            "{name} is not installed (looked in PATH and {SERVER_BINDIRS}/*/bin): \
             install the package postgresql-client"
        ))
    })
}

/// A PostgreSQL server and database from a `postgres://` URL or a
/// `key=value` string.
#[derive(Clone)]
pub struct Server {
    config: tokio_postgres::Config,
}

impl Server {
    /// Without a password in `url`, `PGPASSWORD` is used when set; else
    /// `pg_restore` looks where libpq looks (`~/.pgpass`).
    pub fn parse(url: &str, what: &str) -> Result<Self, PgError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| fail(format!("{what} is not a PostgreSQL URL: {e}")))?;
        if config.get_password().is_none()
            && let Some(password) = std::env::var_os("PGPASSWORD")
        {
            config.password(password.as_bytes());
        }
        Ok(Self { config })
    }

    pub fn hosts(&self) -> Vec<String> {
        self.config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect()
    }

    fn ports(&self) -> Vec<u16> {
        match self.config.get_ports() {
            [] => vec![5432],
            ports => ports.to_vec(),
        }
    }

    fn user(&self) -> String {
        self.config
            .get_user()
            .map(str::to_owned)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_default()
    }

    /// The database: the URL's, else the user's name (as libpq has it).
    pub fn dbname(&self) -> String {
        self.config
            .get_dbname()
            .map(str::to_owned)
            .unwrap_or_else(|| self.user())
    }

    /// `user@host:port/database`, never the password.
    pub fn shown(&self) -> String {
        let ports: Vec<String> = self.ports().iter().map(u16::to_string).collect();
        format!(
            "{}@{}:{}/{}",
            self.user(),
            self.hosts().join(","),
            ports.join(","),
            self.dbname()
        )
    }

    /// The same server, host, port and database (not user or password).
    pub fn same_database(&self, other: &Self) -> bool {
        self.hosts() == other.hosts()
            && self.ports() == other.ports()
            && self.dbname() == other.dbname()
    }

    /// `tool` connected to `dbname` on this server: host, port, user and
    /// password in libpq's environment, the database as a quoted `dbname=`.
    fn command(&self, tool: &Path, dbname: &str) -> std::process::Command {
        let mut command = std::process::Command::new(tool);
        let ports: Vec<String> = self.ports().iter().map(u16::to_string).collect();
        command
            .env("PGHOST", self.hosts().join(","))
            .env("PGPORT", ports.join(","))
            .env("PGUSER", self.user())
            .arg("--no-password")
            .arg("--dbname")
            .arg(format!(
                "dbname='{}'",
                dbname.replace('\\', "\\\\").replace('\'', "\\'")
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(password) = self.config.get_password() {
            command.env("PGPASSWORD", OsStr::from_bytes(password));
        }
        command
    }

    async fn connect(&self, dbname: &str) -> Result<tokio_postgres::Client, PgError> {
        let mut config = self.config.clone();
        config.dbname(dbname);
        if config.get_user().is_none() {
            config.user(self.user());
        }
        let (client, connection) = config.connect(NoTls).await.map_err(|e| {
            fail(format!(
                "cannot connect to PostgreSQL at {}: {}",
                self.shown(),
                describe(&e)
            ))
        })?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// `pg_restore` of `dump` into `dbname`, in one transaction: either all
    /// of it or nothing. `clean` drops what the dump holds first.
    pub fn restore(&self, dump: &Path, dbname: &str, clean: bool) -> Result<(), PgError> {
        let pg_restore = find_tool("pg_restore")?;
        let mut command = self.command(&pg_restore, dbname);
        command.args([
            "--single-transaction",
            "--exit-on-error",
            // The dump's owners and grants may be roles this server lacks.
            "--no-owner",
            "--no-acl",
        ]);
        if clean {
            command.args(["--clean", "--if-exists"]);
        }
        command.arg(dump);
        let out = command
            .output()
            .map_err(|e| fail(format!("cannot run {}: {e}", pg_restore.display())))?;
        if !out.status.success() {
            return Err(fail(format!(
                "pg_restore into {} failed, nothing was changed there: {}",
                self.with_dbname(dbname),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    fn with_dbname(&self, dbname: &str) -> String {
        let mut other = self.clone();
        other.config.dbname(dbname);
        other.shown()
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// Reads the dump's table of contents: a `pg_restore` of this version can
/// read it, and it is not cut short.
pub fn list_dump(dump: &Path) -> Result<(), PgError> {
    let pg_restore = find_tool("pg_restore")?;
    let out = std::process::Command::new(&pg_restore)
        .arg("--list")
        .arg(dump)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| fail(format!("cannot run {}: {e}", pg_restore.display())))?;
    if !out.status.success() {
        return Err(fail(format!(
            "db.pgdump: pg_restore cannot read it: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// What the manifest says the dump holds.
pub struct Expected<'a> {
    pub schema_version: u32,
    pub tables: &'a [(String, u64)],
}

/// What a restore on a scratch server found.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScratchReport {
    /// The server, without a password.
    pub server: String,
    pub rows: u64,
    pub tables: usize,
    pub audit_rows: u64,
    pub problems: Vec<String>,
}

/// Restores `dump` into a new database on `scratch`, compares it with
/// the manifest (schema version, rows per table) and checks the audit
/// log's chain; the database is dropped afterwards, whatever happened.
pub async fn check_on_scratch(
    scratch: &Server,
    dump: &Path,
    expected: &Expected<'_>,
) -> Result<ScratchReport, PgError> {
    let admin = scratch.connect(&scratch.dbname()).await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let name = format!("claw_verify_{}_{stamp}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| {
            fail(format!(
                "cannot create a scratch database on {}: {}",
                scratch.shown(),
                describe(&e)
            ))
        })?;
    let checked = check_restored(scratch, &name, dump, expected).await;
    let dropped = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    let report = checked?;
    dropped.map_err(|e| {
        fail(format!(
            "the scratch database {name} on {} could not be dropped: {}",
            scratch.shown(),
            describe(&e)
        ))
    })?;
    Ok(report)
}

async fn check_restored(
    scratch: &Server,
    name: &str,
    dump: &Path,
    expected: &Expected<'_>,
) -> Result<ScratchReport, PgError> {
    scratch.restore(dump, name, false)?;
    let db = scratch.connect(name).await?;
    let query = |e: tokio_postgres::Error| fail(format!("restored database: {}", describe(&e)));
    let mut problems = Vec::new();
    let version: i32 = db
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM claw_schema_migrations",
            &[],
        )
        .await
        .map_err(query)?
        .get(0);
    if u32::try_from(version).ok() != Some(expected.schema_version) {
        problems.push(format!(
            "restored schema version {version}, the manifest says {}",
            expected.schema_version
        ));
    }
    let mut rows = 0;
    for (table, want) in expected.tables {
        if !table.chars().all(TABLE_NAME) {
            problems.push(format!("manifest names an odd table {table:?}"));
            continue;
        }
        let n: i64 = db
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .map_err(query)?
            .get(0);
        let n = u64::try_from(n).unwrap_or(0);
        rows += n;
        if n != *want {
            problems.push(format!(
                "{table}: {n} rows restored, the manifest says {want}"
            ));
        }
    }
    if expected.tables.is_empty() {
        problems.push("the manifest has no row counts to check against".to_owned());
    }
    let (audit_rows, broken) = audit_chain(&db).await.map_err(query)?;
    problems.extend(broken);
    Ok(ScratchReport {
        server: scratch.shown(),
        rows,
        tables: expected.tables.len(),
        audit_rows,
        problems,
    })
}

/// Every audit row follows the one before it and matches its hash, and
/// the head names the last.
async fn audit_chain(
    db: &tokio_postgres::Client,
) -> Result<(u64, Option<String>), tokio_postgres::Error> {
    let rows = db
        .query(
            "SELECT id, timestamp, user_id, username, action, target, details, ip, \
             prev_hash, hash FROM audit_log ORDER BY id",
            &[],
        )
        .await?;
    let mut prev = String::new();
    let mut checked = 0;
    for r in &rows {
        let row = ChainRow {
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
        };
        if row.prev_hash != prev || row.hash != row_hash(&prev, &row) {
            return Ok((
                checked,
                Some(format!("audit log: the chain breaks at row {}", row.id)),
            ));
        }
        prev = row.hash;
        checked += 1;
    }
    let head: Option<String> = db
        .query_opt("SELECT hash FROM audit_head", &[])
        .await?
        .map(|r| r.get(0));
    if head.as_deref() != Some(prev.as_str()) {
        return Ok((
            checked,
            Some(
                "audit log: the head does not name the last row (rows removed at the end)"
                    .to_owned(),
            ),
        ));
    }
    Ok((checked, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_shown_and_compared_without_its_password() {
        let a = Server::parse("postgres://claw:s3cret@db:5433/claw", "url").expect("a");
        assert_eq!(a.shown(), "claw@db:5433/claw");
        let b = Server::parse("host=db port=5433 user=other dbname=claw", "url").expect("b");
        assert!(a.same_database(&b), "the same database as another role");
        let c = Server::parse("postgres://claw@db/claw", "url").expect("c");
        assert!(!a.same_database(&c), "another port");
        assert!(Server::parse("mysql://x", "--scratch-url").is_err());
    }
}
