//! Asks polkit (over the system D-Bus) whether a control-socket caller who
//! is neither root nor in `claw-admin` may manage claw (`org.claw.manage`).

use std::collections::HashMap;

use zbus::zvariant::Value;

use super::Peer;

/// The polkit action that grants the control API.
pub const ACTION_ID: &str = "org.claw.manage";

/// Let the caller's polkit agent ask for a password if the rules say so.
const ALLOW_USER_INTERACTION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PolkitError {
    #[error("system bus unavailable: {0}")]
    Bus(#[from] zbus::Error),
    #[error("cannot read the caller's start time: {0}")]
    StartTime(String),
}

/// The process start time polkit uses to tell a process from a later one
/// with the same pid (field 22 of /proc/PID/stat).
fn start_time(pid: i32) -> Result<u64, PolkitError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| PolkitError::StartTime(e.to_string()))?;
    // The command name (field 2) may contain spaces; fields after it are
    // counted from the closing parenthesis.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| PolkitError::StartTime("malformed stat".to_owned()))?;
    after_name
        .split_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| PolkitError::StartTime("malformed stat".to_owned()))
}

/// True when polkit authorises the caller for [`ACTION_ID`].
pub async fn authorised(caller: Peer) -> Result<bool, PolkitError> {
    let connection = zbus::Connection::system().await?;
    let proxy = zbus::Proxy::new(
        &connection,
        "org.freedesktop.PolicyKit1",
        "/org/freedesktop/PolicyKit1/Authority",
        "org.freedesktop.PolicyKit1.Authority",
    )
    .await?;
    let mut subject: HashMap<&str, Value<'_>> = HashMap::new();
    subject.insert("pid", Value::U32(u32::try_from(caller.pid).unwrap_or(0)));
    subject.insert("start-time", Value::U64(start_time(caller.pid)?));
    subject.insert("uid", Value::I32(i32::try_from(caller.uid).unwrap_or(-1)));
    let details: HashMap<&str, &str> = HashMap::new();
    let (is_authorised, _challenge, _details): (bool, bool, HashMap<String, String>) = proxy
        .call(
            "CheckAuthorization",
            &(
                ("unix-process", subject),
                ACTION_ID,
                details,
                ALLOW_USER_INTERACTION,
                "",
            ),
        )
        .await?;
    Ok(is_authorised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable() {
        let pid = i32::try_from(std::process::id()).expect("pid");
        assert!(start_time(pid).expect("start time") > 0);
        assert!(start_time(i32::MAX).is_err());
    }
}
