//! `clawctl db`: status, check.

use claw_proto::control::{DbCheck, DbStatus};

use super::{print_json, show};
use crate::cli::DbCommand;
use crate::client::Client;
use crate::error::CtlError;
use crate::output::{Text, bytes, table};

pub async fn run(client: &Client, cmd: DbCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        DbCommand::Status => {
            let status: DbStatus = client.get("/v1/db/status").await?;
            show(json, &status, render_status)
        }
        DbCommand::Check => {
            let check: DbCheck = client.get("/v1/db/check").await?;
            if json {
                print_json(&check)?;
            }
            if !check.ok {
                return Err(CtlError::Failed(format!(
                    "database check failed: {} integrity problems, {} broken references; \
                     restore a backup or see clawctl db status",
                    check.integrity.len(),
                    check.foreign_keys.len()
                )));
            }
            if !json {
                println!("database ok: integrity and foreign keys check out");
            }
            Ok(())
        }
    }
}

fn render_status(s: &DbStatus) -> String {
    let mut out = Text::new();
    out.line(format_args!("Database:    {}", s.path));
    if let Some(server) = &s.server_version {
        out.line(format_args!("Server:      PostgreSQL {server}"));
    }
    out.line(format_args!(
        "Schema:      version {} (this clawd writes {}){}",
        s.schema_version,
        s.latest_schema_version,
        if s.schema_version == s.latest_schema_version {
            ""
        } else {
            ", migrations pending"
        }
    ));
    match &s.journal_mode {
        // SQLite: the file, its log and its pages.
        Some(journal) => {
            out.line(format_args!(
                "Size:        {} (WAL {})",
                bytes(s.size_bytes),
                bytes(s.wal_bytes)
            ));
            out.line(format_args!(
                "Pages:       {} of {} ({} free), journal {journal}",
                s.page_count,
                bytes(s.page_size),
                s.freelist_count,
            ));
        }
        None => {
            out.line(format_args!("Size:        {}", bytes(s.size_bytes)));
        }
    }
    if let Some(pool) = &s.pool {
        out.line(format_args!(
            "Pool:        {} of {} connections in use ({} open)",
            pool.in_use, pool.max, pool.open
        ));
    }
    out.line("Migrations:");
    for migration in &s.migrations {
        out.line(format_args!("  {migration}"));
    }
    let rows: Vec<Vec<String>> = s
        .tables
        .iter()
        .map(|(table, rows)| vec![table.clone(), rows.to_string()])
        .collect();
    out.push(&table(&["TABLE", "ROWS"], &rows));
    out.into_string()
}

#[cfg(test)]
mod tests {
    use claw_proto::control::PoolUse;

    use super::*;

    #[test]
    fn db_status_reads_as_before() {
        let status = DbStatus {
            backend: "sqlite".into(),
            schema_version: 3,
            latest_schema_version: 3,
            migrations: vec!["0001 initial schema".into()],
            page_size: 4096,
            page_count: 10,
            freelist_count: 1,
            journal_mode: Some("wal".into()),
            tables: vec![("runs".into(), 2), ("events".into(), 10)],
            path: "/d/db.sqlite".into(),
            size_bytes: 40960,
            wal_bytes: 0,
            server_version: None,
            pool: None,
        };
        assert_eq!(
            render_status(&status),
            "Database:    /d/db.sqlite\n\
             Schema:      version 3 (this clawd writes 3)\n\
             Size:        40.0 KiB (WAL 0 B)\n\
             Pages:       10 of 4.0 KiB (1 free), journal wal\n\
             Migrations:\n\
             \x20 0001 initial schema\n\
             TABLE   ROWS\n\
             runs    2\n\
             events  10\n"
        );
    }

    #[test]
    fn db_status_on_postgres_shows_the_server_and_the_pool() {
        let status = DbStatus {
            backend: "postgres".into(),
            schema_version: 2,
            latest_schema_version: 3,
            migrations: vec!["0001 initial schema".into()],
            page_size: 8192,
            page_count: 1000,
            freelist_count: 0,
            journal_mode: None,
            tables: vec![("runs".into(), 2)],
            path: "postgres://claw@db/claw".into(),
            size_bytes: 8_192_000,
            wal_bytes: 0,
            server_version: Some("15.18".into()),
            pool: Some(PoolUse {
                in_use: 1,
                open: 2,
                max: 10,
            }),
        };
        assert_eq!(
            render_status(&status),
            "Database:    postgres://claw@db/claw\n\
             Server:      PostgreSQL 15.18\n\
             Schema:      version 2 (this clawd writes 3), migrations pending\n\
             Size:        7.8 MiB\n\
             Pool:        1 of 10 connections in use (2 open)\n\
             Migrations:\n\
             \x20 0001 initial schema\n\
             TABLE  ROWS\n\
             runs   2\n"
        );
    }
}
