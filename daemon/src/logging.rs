//! Logging: to the journal with structured fields when running under
//! systemd, else human-readable to stderr. The level can change on reload.

use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Changes the level of the installed logger.
pub struct LogLevel {
    handle: reload::Handle<EnvFilter, Registry>,
}

impl LogLevel {
    /// `RUST_LOG`, when set, wins over the configured level.
    pub fn set(&self, level: &str) {
        let filter = filter(level);
        if let Err(e) = self.handle.reload(filter) {
            tracing::warn!(error = %e, "cannot change the log level");
        }
    }
}

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Where logs go: `$CLAW_LOG_TARGET` (`journal` or `stderr`) when set;
/// else the journal when `$JOURNAL_STREAM` names stderr's device and inode,
/// or when stderr is not a terminal and the journal socket exists; else
/// stderr.
fn journal_wanted() -> bool {
    match std::env::var("CLAW_LOG_TARGET").as_deref() {
        Ok("journal") => return true,
        Ok("stderr") => return false,
        _ => {}
    }
    if let (Ok(stream), Ok(meta)) = (
        std::env::var("JOURNAL_STREAM"),
        std::fs::metadata("/proc/self/fd/2"),
    ) && let Some((dev, ino)) = stream.split_once(':')
        && dev.parse::<u64>().ok() == Some(meta.dev())
        && ino.parse::<u64>().ok() == Some(meta.ino())
    {
        return true;
    }
    !std::io::stderr().is_terminal() && std::path::Path::new(JOURNAL_SOCKET).exists()
}

/// Levels as syslog means them, so `journalctl -p info` shows info and up.
fn syslog_priorities() -> tracing_journald::PriorityMappings {
    use tracing_journald::Priority;
    tracing_journald::PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

pub fn init(level: &str) -> LogLevel {
    let (filter, handle) = reload::Layer::new(filter(level));
    let journald = if journal_wanted() {
        tracing_journald::layer().ok().map(|l| {
            l.with_field_prefix(None)
                .with_syslog_identifier("clawd".to_owned())
                .with_priority_mappings(syslog_priorities())
        })
    } else {
        None
    };
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .try_init();
    LogLevel { handle }
}
