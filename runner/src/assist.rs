//! Remote help with tmate: `claw-runner assist` asks the runner of a run on
//! this host (SIGUSR1, pid in the spool) to start a tmate session; the
//! runner posts its links as an `assist` event through its own spool, so the
//! event gets the run's next sequence like every other.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

pub const PID_FILE: &str = "runner.pid";

/// `tmate` on the PATH, if installed.
pub fn find_tmate() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("tmate"))
        .find(|candidate| candidate.is_file())
}

const NOT_INSTALLED: &str = "tmate is not installed on this host: install it (apt install tmate, dnf install tmate) to share the agent's terminal";

/// `claw-runner assist`: signals the run's runner. Exit code 0 when asked.
pub fn request(spool_dir: &Path, run_id: &str) -> anyhow::Result<i32> {
    if find_tmate().is_none() {
        eprintln!("claw-runner: {NOT_INSTALLED}");
        return Ok(1);
    }
    let pid_file = spool_dir.join(PID_FILE);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let pid = nix::unistd::Pid::from_raw(pid);
    if pid.as_raw() <= 0 || nix::sys::signal::kill(pid, None).is_err() {
        eprintln!(
            "claw-runner: no claw-runner is running run {run_id} on this host (start it with claw-runner start)"
        );
        return Ok(1);
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1)?;
    println!(
        "asked the runner (pid {pid}) to start a tmate session; its link appears in the run as an assist event"
    );
    Ok(0)
}

async fn tmate(tmate: &Path, socket: &Path, args: &[&str]) -> Result<String, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(tmate)
            .arg("-S")
            .arg(socket)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| format!("tmate {} timed out", args.join(" ")))?
    .map_err(|e| format!("cannot run tmate: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tmate {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Starts a detached tmate session; the event data to post (its links).
pub async fn start_session(spool_dir: &Path) -> Result<String, String> {
    let tmate_bin = find_tmate().ok_or_else(|| NOT_INSTALLED.to_owned())?;
    let socket = spool_dir.join("tmate.sock");
    tmate(&tmate_bin, &socket, &["new-session", "-d"]).await?;
    tmate(&tmate_bin, &socket, &["wait", "tmate-ready"]).await?;
    let ssh = tmate(&tmate_bin, &socket, &["display", "-p", "#{tmate_ssh}"]).await?;
    let web = tmate(&tmate_bin, &socket, &["display", "-p", "#{tmate_web}"]).await?;
    Ok(json!({ "tool": "tmate", "ssh": ssh, "web": web }).to_string())
}
