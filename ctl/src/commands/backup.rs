//! `clawctl backup`: clawd writes the archive; `backup verify` checks one
//! here, without clawd.

use claw_proto::control::{BackupReply, BackupRequest};

use super::{print_json, show};
use crate::archive;
use crate::cli::{BackupArgs, BackupCommand};
use crate::client::Client;
use crate::error::CtlError;
use crate::output::{Text, bytes};
use crate::pg::Server;

pub async fn run(client: &Client, args: BackupArgs, json: bool) -> Result<(), CtlError> {
    if let Some(BackupCommand::Verify { file, scratch_url }) = args.command {
        let scratch = scratch_url
            .map(|url| Server::parse(&url, "--scratch-url"))
            .transpose()
            .map_err(|e| CtlError::Input(e.to_string()))?;
        let mut checked = archive::inspect(&file).map_err(|e| CtlError::Input(e.to_string()))?;
        match &scratch {
            Some(server) if checked.is_postgres() && checked.report.ok => {
                checked.check_on_scratch(server).await;
            }
            Some(_) if !checked.is_postgres() && checked.report.ok => {
                return Err(CtlError::Input(format!(
                    "{} holds a SQLite database, checked without a server: \
                     leave out --scratch-url",
                    file.display()
                )));
            }
            _ => {}
        }
        let report = checked.report;
        if json {
            print_json(&report)?;
        }
        if !report.ok {
            return Err(CtlError::Failed(format!(
                "{} is not a good backup: {}",
                file.display(),
                report.problems.join("; ")
            )));
        }
        if !json {
            println!(
                "{}: {} files match the manifest, database intact ({}schema {})",
                file.display(),
                report.files,
                match report.store.as_deref() {
                    Some("postgres") => "PostgreSQL dump, ",
                    _ => "",
                },
                report
                    .schema_version
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            );
            if let Some(scratch) = &report.scratch {
                println!(
                    "restored on {}: {} rows in {} tables as the manifest says, \
                     audit chain of {} rows intact; scratch database dropped",
                    scratch.server, scratch.rows, scratch.tables, scratch.audit_rows
                );
            }
        }
        return Ok(());
    }
    // clawd resolves the path, so it must not depend on our working directory.
    let output = match args.output {
        Some(dir) if dir.is_relative() => Some(
            std::env::current_dir()
                .map_err(|e| CtlError::Input(format!("cannot resolve {}: {e}", dir.display())))?
                .join(dir),
        ),
        other => other,
    };
    let output = output
        .map(|dir| {
            dir.into_os_string().into_string().map_err(|dir| {
                CtlError::Input(format!(
                    "{} is not UTF-8: choose another directory",
                    dir.display()
                ))
            })
        })
        .transpose()?;
    let request = BackupRequest {
        output,
        keep: Some(args.keep),
    };
    let reply: BackupReply = client.post("/v1/backup", &request).await?;
    show(json, &reply, render)
}

fn render(r: &BackupReply) -> String {
    let mut out = Text::new();
    out.line(format_args!(
        "backup written: {} ({}, {} files)",
        r.path,
        bytes(r.size),
        r.files
    ));
    for old in &r.removed {
        out.line(format_args!("removed old backup {old}"));
    }
    out.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_read_as_before() {
        let reply = BackupReply {
            path: "/b/claw-backup-2.tar.gz".into(),
            size: 2048,
            files: 9,
            removed: vec!["/b/claw-backup-1.tar.gz".into()],
        };
        assert_eq!(
            render(&reply),
            "backup written: /b/claw-backup-2.tar.gz (2.0 KiB, 9 files)\n\
             removed old backup /b/claw-backup-1.tar.gz\n"
        );
    }
}
