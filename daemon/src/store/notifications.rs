//! What both stores' notification code shares: the columns a channel and
//! a delivery are read from (the same SQL in either dialect), how a
//! channel's kinds are kept, a run's title, and the notification of a
//! run's end. The stores keep only their own SQL and row reading.

use claw_proto::notify::NotifyKind;
use claw_proto::wire::RunStatus;

use super::{NotificationDraft, StoreError};

pub const CHANNEL_COLUMNS: &str = "c.id, c.user_id, u.username, c.kind, c.name, c.target, \
     c.secret, c.events, c.scope, c.created_at";
pub const CHANNEL_FROM: &str = "notify_channels c LEFT JOIN users u ON u.id = c.user_id";

pub const DELIVERY_COLUMNS: &str = "o.id, o.channel_id, c.name, o.kind, o.run_id, o.payload, \
     o.status, o.attempts, o.next_at, o.last_error, o.created_at, o.done_at";
pub const DELIVERY_FROM: &str = "outbox o JOIN notify_channels c ON c.id = o.channel_id";

/// The longest a run's title in a notification.
const TITLE_CHARS: usize = 80;

/// A channel's kinds as stored (a JSON array of names); unknown names are
/// dropped.
pub fn events_from(text: &str) -> Vec<NotifyKind> {
    serde_json::from_str::<Vec<String>>(text)
        .unwrap_or_default()
        .iter()
        .filter_map(|k| NotifyKind::parse(k))
        .collect()
}

pub fn events_text(events: &[NotifyKind]) -> String {
    serde_json::to_string(&events.iter().map(|k| k.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".to_owned())
}

/// A run's title for people, from its command or first prompt (`found`),
/// or its id.
pub fn run_title(found: Option<String>, run_id: &str) -> String {
    let title = found.unwrap_or_else(|| run_id.to_owned());
    claw_proto::agent::first_line(&title, TITLE_CHARS)
}

/// The outbox's payload of `draft`.
pub fn payload(draft: &NotificationDraft) -> Result<String, StoreError> {
    serde_json::to_string(draft)
        .map_err(|e| StoreError::Unavailable(format!("a notification could not be encoded: {e}")))
}

/// The notification of a run's end in `status`; none for a run not ended.
pub fn run_ended(
    run_id: &str,
    run_title: String,
    status: RunStatus,
    exit_code: Option<i64>,
) -> Option<NotificationDraft> {
    let (kind, how) = match status {
        RunStatus::Done => (NotifyKind::Finished, "finished".to_owned()),
        RunStatus::Failed => (
            NotifyKind::Failed,
            exit_code.map_or("failed".to_owned(), |c| format!("failed (exit code {c})")),
        ),
        RunStatus::Stopped => (NotifyKind::Stopped, "was stopped".to_owned()),
        _ => return None,
    };
    Some(NotificationDraft {
        kind,
        run_id: run_id.to_owned(),
        title: format!("{run_title} {how}"),
        run_title,
        tool: None,
        summary: None,
        approval_id: None,
        path: format!("#/runs/{run_id}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_says_its_exit_code_and_links_to_itself() {
        let draft =
            run_ended("r1", "make test".to_owned(), RunStatus::Failed, Some(2)).expect("a draft");
        assert_eq!(draft.kind, NotifyKind::Failed);
        assert_eq!(draft.title, "make test failed (exit code 2)");
        assert_eq!(draft.path, "#/runs/r1");
        assert!(run_ended("r1", String::new(), RunStatus::Running, None).is_none());
    }

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_dropped() {
        let kinds = [NotifyKind::Approval, NotifyKind::Failed];
        assert_eq!(events_from(&events_text(&kinds)), kinds);
        assert_eq!(
            events_from(r#"["approval","nonsense"]"#),
            [NotifyKind::Approval]
        );
        assert_eq!(events_from("not json"), []);
    }

    #[test]
    fn a_title_is_one_short_line_or_the_id() {
        assert_eq!(run_title(None, "r1"), "r1");
        assert_eq!(run_title(Some("a\nb".to_owned()), "r1"), "a…");
    }
}
