//! `clawctl restore`: runs here, next to the data, with clawd stopped.
//! The archive is checked by [`crate::archive`] and put back by
//! [`crate::restore`]; clawd is only asked whether it serves and to stop.
//! A PostgreSQL archive's dump goes into the database clawd is configured
//! for, with `pg_restore --clean --if-exists` in one transaction.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use claw_proto::api::Done;
use claw_proto::control::HealthReply;
use serde::Serialize;

use super::print_json;
use crate::client::{Client, ClientError};
use crate::error::CtlError;

/// What to restore, from the command line.
pub struct Request<'a> {
    pub socket: &'a Path,
    pub file: &'a Path,
    pub data_dir: &'a Path,
    pub stop: bool,
    pub config: Option<&'a Path>,
    pub database_url: Option<&'a str>,
}

/// `--json` output of a restore.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Restored {
    ok: bool,
    restored: Vec<String>,
    data_dir: PathBuf,
    restarted: bool,
}

/// True when systemd runs clawd here.
fn systemd_runs_clawd() -> bool {
    std::process::Command::new("systemctl")
        .args(["is-active", "--quiet", "clawd.service"])
        .status()
        .is_ok_and(|s| s.success())
}

fn systemctl(verb: &str) -> Result<(), CtlError> {
    let status = std::process::Command::new("systemctl")
        .arg(verb)
        .args(["clawd.socket", "clawd-control.socket", "clawd.service"])
        .status()
        .map_err(|e| CtlError::Failed(format!("cannot run systemctl {verb}: {e}")))?;
    if !status.success() {
        return Err(CtlError::Failed(format!(
            "systemctl {verb} clawd failed ({status})"
        )));
    }
    Ok(())
}

async fn healthy(client: &Client) -> Result<HealthReply, ClientError> {
    client.get("/v1/health").await
}

pub async fn run(client: &Client, request: Request<'_>, json: bool) -> Result<(), CtlError> {
    let Request {
        socket,
        file,
        data_dir,
        stop,
        config,
        database_url,
    } = request;
    let checked = crate::archive::inspect(file).map_err(|e| CtlError::Input(e.to_string()))?;
    let report = &checked.report;
    if !report.ok {
        return Err(CtlError::Failed(format!(
            "{} is not a good backup, nothing restored: {}",
            file.display(),
            report.problems.join("; ")
        )));
    }
    // Which database, decided before clawd is asked to stop.
    let target = if checked.is_postgres() {
        Some(postgres_target(&checked, config, database_url)?)
    } else {
        None
    };
    let serving = match healthy(client).await {
        Ok(_) => true,
        Err(ClientError::Unreachable { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    let mut restart = false;
    if serving {
        if !stop {
            return Err(CtlError::Failed(format!(
                "clawd is serving on {}: stop it first (systemctl stop clawd.socket \
                 clawd-control.socket clawd.service) or pass --stop",
                socket.display()
            )));
        }
        if systemd_runs_clawd() {
            systemctl("stop")?;
            restart = true;
        } else {
            let _: Done = client.post_empty("/v1/shutdown").await?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while healthy(client).await.is_ok() {
                if Instant::now() > deadline {
                    return Err(CtlError::Failed(
                        "clawd did not stop within 30 s; nothing restored".to_owned(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let database = match &target {
        None => crate::restore::Database::Sqlite,
        Some(server) => {
            let dump = checked.database();
            crate::restore::Database::Elsewhere(Box::new(move || {
                let dbname = server.dbname();
                server
                    .restore(dump, &dbname, true)
                    .map_err(|e| e.to_string())?;
                Ok(format!("database → {}", server.shown()))
            }))
        }
    };
    let restored = crate::restore::replace(file, data_dir, config, database).map_err(|e| {
        CtlError::Failed(format!("restore failed, the previous state is back: {e}"))
    })?;
    if restart {
        systemctl("start")?;
    }
    if json {
        print_json(&Restored {
            ok: true,
            restored,
            data_dir: data_dir.to_owned(),
            restarted: restart,
        })?;
    } else {
        println!(
            "restored {} into {}",
            restored.join(", "),
            data_dir.display()
        );
        if restart {
            println!("clawd started again on the restored data");
        } else if serving {
            println!("clawd was stopped: start it again to serve the restored data");
        }
    }
    Ok(())
}

/// `store.backend` and `store.database_url` of a clawd.toml.
fn store_of(text: &str, source: &str) -> Result<(String, Option<String>), CtlError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| CtlError::Input(format!("{source} is not valid TOML: {e}")))?;
    let store = table.get("store").and_then(toml::Value::as_table);
    let field = |key: &str| {
        store
            .and_then(|s| s.get(key))
            .and_then(toml::Value::as_str)
            .map(str::to_owned)
    };
    Ok((
        field("backend").unwrap_or_else(|| "sqlite".to_owned()),
        field("database_url"),
    ))
}

/// The database a PostgreSQL archive goes into: the one clawd is
/// configured for (the configuration at --config as it is now, else the
/// archive's), or --database-url when it names that same database.
fn postgres_target(
    checked: &crate::archive::Checked,
    config: Option<&Path>,
    database_url: Option<&str>,
) -> Result<crate::pg::Server, CtlError> {
    let input = |e: crate::pg::PgError| CtlError::Input(e.to_string());
    let archived = checked
        .config()
        .map(|text| store_of(text, "the archive's clawd.toml"))
        .transpose()?;
    let current = match config.filter(|c| c.exists()) {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CtlError::Input(format!("cannot read {}: {e}", path.display())))?;
            Some((
                path.display().to_string(),
                store_of(&text, &path.display().to_string())?,
            ))
        }
        None => None,
    };
    let (source, (backend, url)) = match (current, &archived) {
        (Some(current), _) => current,
        (None, Some(archived)) => ("the archive's clawd.toml".to_owned(), archived.clone()),
        (None, None) => {
            return Err(CtlError::Input(
                "the archive has no configuration to say which database clawd uses: \
                 pass --config with clawd's configuration file"
                    .to_owned(),
            ));
        }
    };
    if backend != "postgres" {
        return Err(CtlError::Input(format!(
            "the archive holds a PostgreSQL dump, but {source} runs clawd on {backend}: \
             nothing restored"
        )));
    }
    let configured = crate::pg::Server::parse(
        url.as_deref().ok_or_else(|| {
            CtlError::Input(format!(
                "{source} has no store.database_url: nothing restored"
            ))
        })?,
        &format!("store.database_url of {source}"),
    )
    .map_err(input)?;
    // The archive's configuration is written to --config: it must not
    // point clawd at another database than the one restored.
    if let (Some(_), Some((_, Some(archived_url)))) = (config, &archived) {
        let archived = crate::pg::Server::parse(archived_url, "the archive's store.database_url")
            .map_err(input)?;
        if !archived.same_database(&configured) {
            return Err(CtlError::Input(format!(
                "the archive's configuration uses the database {} but {source} uses {}: \
                 restore without --config, or make them name the same database",
                archived.shown(),
                configured.shown()
            )));
        }
    }
    let Some(url) = database_url else {
        return Ok(configured);
    };
    let given = crate::pg::Server::parse(url, "--database-url").map_err(input)?;
    if !given.same_database(&configured) {
        return Err(CtlError::Input(format!(
            "--database-url names {} but clawd is configured for {} ({source}): \
             a restore goes into the database clawd uses; nothing restored",
            given.shown(),
            configured.shown()
        )));
    }
    Ok(given)
}
