//! The host service's log: to the journal, with `HOST` and `RUN_ID`
//! fields (`journalctl -u claw-runner RUN_ID=…`), when systemd connected
//! stderr to it (`$JOURNAL_STREAM` names stderr's device and inode); else
//! plain lines on stderr.

use std::os::unix::fs::MetadataExt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn stderr_is_the_journal() -> bool {
    let (Ok(stream), Ok(meta)) = (
        std::env::var("JOURNAL_STREAM"),
        std::fs::metadata("/proc/self/fd/2"),
    ) else {
        return false;
    };
    stream.split_once(':').is_some_and(|(dev, ino)| {
        dev.parse::<u64>().ok() == Some(meta.dev()) && ino.parse::<u64>().ok() == Some(meta.ino())
    })
}

pub fn init() {
    let journald = stderr_is_the_journal()
        .then(|| tracing_journald::layer().ok())
        .flatten()
        .map(|l| {
            l.with_field_prefix(None)
                .with_syslog_identifier("claw-runner".to_owned())
        });
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time()
    });
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(journald)
        .with(stderr)
        .try_init();
}
