//! `clawctl restore`: runs here, next to the data, with clawd stopped.
//! The archive is checked by [`crate::archive`] and put back by
//! [`crate::restore`]; clawd is only asked whether it serves and to stop.

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
    } = request;
    let report = crate::archive::verify(file).map_err(|e| CtlError::Input(e.to_string()))?;
    if !report.ok {
        return Err(CtlError::Failed(format!(
            "{} is not a good backup, nothing restored: {}",
            file.display(),
            report.problems.join("; ")
        )));
    }
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
    let restored = crate::restore::replace(file, data_dir, config).map_err(|e| {
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
