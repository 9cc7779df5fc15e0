//! `clawctl db`: status, check, copy-to.

use std::io::IsTerminal;

use claw_proto::control::{CopyLine, CopyReport, CopyToRequest, DbCheck, DbStatus};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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
        DbCommand::CopyTo { database_url } => copy_to(client, database_url, json).await,
    }
}

/// Streams the copy's progress into a bar on a terminal, then shows the
/// report.
async fn copy_to(client: &Client, database_url: String, json: bool) -> Result<(), CtlError> {
    let bar = progress_bar(!json && std::io::stderr().is_terminal());
    let mut last = None;
    let request = CopyToRequest { database_url };
    let streamed = client
        .post_lines("/v1/db/copy-to", &request, |line: CopyLine| match line {
            CopyLine::Progress {
                table,
                copied,
                total,
            } => {
                bar.set_length(total);
                bar.set_position(copied);
                bar.set_message(table);
            }
            CopyLine::Checking => bar.set_message("checking"),
            ended => last = Some(ended),
        })
        .await;
    bar.finish_and_clear();
    streamed?;
    match last {
        None | Some(CopyLine::Progress { .. } | CopyLine::Checking) => Err(CtlError::Failed(
            "clawd ended the copy without a result; the target is left as it was: \
             run it again"
                .to_owned(),
        )),
        Some(CopyLine::Error { error }) => Err(CtlError::Failed(format!(
            "copy to PostgreSQL failed: {error}"
        ))),
        Some(CopyLine::Result(report)) => {
            if json {
                print_json(&report)
            } else {
                print!("{}", render_copy(&report));
                Ok(())
            }
        }
    }
}

const BAR_TEMPLATE: &str = "{msg:<16} [{bar:30}] {human_pos}/{human_len} rows {eta}";

/// A bar of rows copied, drawn on stderr; hidden when it is no terminal.
fn progress_bar(shown: bool) -> ProgressBar {
    if !shown {
        return ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(0);
    // The template is fixed (a test parses it); a failure would only cost the look.
    if let Ok(style) = ProgressStyle::with_template(BAR_TEMPLATE) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn render_copy(r: &CopyReport) -> String {
    let mut out = Text::new();
    out.line(format_args!(
        "Copied a snapshot of this gateway's database taken at {} into {}:",
        r.snapshot_at, r.database_url
    ));
    let rows: Vec<Vec<String>> = r
        .tables
        .iter()
        .map(|t| vec![t.table.clone(), t.source.to_string(), t.target.to_string()])
        .collect();
    out.push(&table(&["TABLE", "SQLITE", "POSTGRESQL"], &rows));
    out.line(format_args!(
        "Every table has as many rows in PostgreSQL; the audit chain verifies there ({} entries).",
        r.audit_checked
    ));
    out.line("");
    if r.changed_since {
        out.line(
            "Warning: clawd wrote to SQLite after the snapshot; those writes are not in \
             PostgreSQL. For a switch that loses nothing, stop the runners and keep the \
             gateway quiet, empty the database (dropdb, createdb) and copy again.",
        );
    } else {
        out.line(
            "Nothing was written to SQLite after the snapshot so far: stop clawd before \
             anything is (runners, logins), then switch.",
        );
    }
    out.line("");
    out.line("To switch, stop clawd and set in its configuration (clawd.toml):");
    out.line("");
    out.push(&r.config);
    out.line("");
    out.line("Keep the data directory: secrets, certificates and artifact files stay there.");
    out.into_string()
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
    use claw_proto::control::CopiedTable;

    #[test]
    fn the_progress_bar_template_parses() {
        assert!(ProgressStyle::with_template(BAR_TEMPLATE).is_ok());
    }

    #[test]
    fn a_copy_reads_as_it_should() {
        let report = CopyReport {
            database_url: "postgres://claw@db/claw".into(),
            snapshot_at: "2026-01-02T03:04:05.000Z".into(),
            tables: vec![
                CopiedTable {
                    table: "runs".into(),
                    source: 2,
                    target: 2,
                },
                CopiedTable {
                    table: "audit_log".into(),
                    source: 10,
                    target: 10,
                },
            ],
            audit_checked: 10,
            changed_since: false,
            config: "[store]\nbackend = \"postgres\"\n".into(),
        };
        let text = render_copy(&report);
        assert!(
            text.starts_with(
                "Copied a snapshot of this gateway's database taken at \
                 2026-01-02T03:04:05.000Z into postgres://claw@db/claw:\n\
                 TABLE      SQLITE  POSTGRESQL\n\
                 runs       2       2\n\
                 audit_log  10      10\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\n[store]\nbackend = \"postgres\"\n\n"),
            "{text}"
        );
        assert!(!text.contains("Warning"), "{text}");
        let changed = CopyReport {
            changed_since: true,
            ..report
        };
        assert!(render_copy(&changed).contains("Warning: clawd wrote"));
    }

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
