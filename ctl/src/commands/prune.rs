//! `clawctl prune`: its progress streams in while clawd works.

use std::io::IsTerminal;

use claw_proto::control::{PruneCounts, PruneLine, PruneRequest};

use super::print_json;
use crate::client::Client;
use crate::error::CtlError;
use crate::output::{Text, bytes};

pub async fn run(
    client: &Client,
    dry_run: bool,
    older_than: Option<u32>,
    json: bool,
) -> Result<(), CtlError> {
    let request = PruneRequest {
        dry_run,
        older_than_days: older_than,
    };
    let show_progress = !json && std::io::stderr().is_terminal();
    let mut last = None;
    client
        .post_lines("/v1/prune", &request, |line: PruneLine| match line {
            PruneLine::Progress {
                runs_done,
                runs_total,
            } => {
                if show_progress {
                    eprint!("\rpruning: {runs_done}/{runs_total} runs");
                }
            }
            ended => last = Some(ended),
        })
        .await?;
    if show_progress {
        eprint!("\r\x1b[K");
    }
    match last {
        None | Some(PruneLine::Progress { .. }) => Err(CtlError::Failed(
            "clawd ended the prune without a result; run it again".to_owned(),
        )),
        Some(PruneLine::Error { error }) => Err(CtlError::Failed(format!(
            "prune failed: {error}; run it again to continue"
        ))),
        Some(
            result @ PruneLine::Result {
                older_than_days,
                counts,
                ..
            },
        ) => {
            if json {
                print_json(&result)
            } else {
                print!("{}", render(dry_run, older_than_days, &counts));
                Ok(())
            }
        }
    }
}

/// What went (or would go). `dry_run` is the request's, as before.
fn render(dry_run: bool, older_than_days: u32, c: &PruneCounts) -> String {
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut out = Text::new();
    out.line(format_args!(
        "{verb} {} runs finished more than {older_than_days} days ago \
         ({} events, {} commands, {} artifacts)",
        c.runs, c.events, c.commands, c.artifacts
    ));
    out.line(format_args!(
        "{verb} {} orphaned artifact folders, {} expired sessions, {} expired nonces",
        c.orphan_folders, c.expired_sessions, c.expired_nonces
    ));
    if c.old_notifications > 0 {
        out.line(format_args!(
            "{verb} {} notifications delivered or given up on more than 7 days ago",
            c.old_notifications
        ));
    }
    out.line(format_args!(
        "{}: {}",
        if dry_run { "would free" } else { "freed" },
        bytes(c.bytes_freed)
    ));
    out.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_reads_as_before() {
        let counts = PruneCounts {
            runs: 1,
            events: 3,
            commands: 0,
            artifacts: 1,
            bytes_freed: 1500,
            orphan_folders: 1,
            expired_sessions: 1,
            expired_nonces: 4,
            expired_idempotency_keys: 0,
            old_notifications: 0,
        };
        assert_eq!(
            render(false, 30, &counts),
            "removed 1 runs finished more than 30 days ago (3 events, 0 commands, 1 artifacts)\n\
             removed 1 orphaned artifact folders, 1 expired sessions, 4 expired nonces\n\
             freed: 1.5 KiB\n"
        );
        assert!(render(true, 0, &counts).starts_with("would remove 1 runs"));
    }
}
