//! What the store tells the live hub after each commit.

use super::{ApprovalRow, ArtifactRow, CommandRow, EventRow, StatusChange};

/// One committed change others may want to see at once.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// New events of one run, in sequence order.
    Events(Vec<EventRow>),
    RunStatus(StatusChange),
    CommandQueued(CommandRow),
    StopRequested {
        run_id: String,
        command_id: String,
    },
    CommandCompleted(CommandRow),
    ArtifactAdded(ArtifactRow),
    /// An approval was made, decided, expired or cancelled.
    Approval(Box<ApprovalRow>),
    /// Sessions may have ended or changed (logout, revocation, a deleted
    /// user, a new role or password).
    SessionsChanged,
}

/// Where committed changes go, in commit order. Called on the store's
/// writer thread right after the commit: it must not block.
pub trait ChangeSink: Send + Sync {
    fn publish(&self, change: Change);

    /// Whether anyone here follows this run: another instance's changes
    /// of a run nobody follows are not read from the store.
    fn follows(&self, _run_id: &str) -> bool {
        true
    }

    /// Whether anyone here hears of approvals (as [`follows`](Self::follows)).
    fn hears_approvals(&self) -> bool {
        true
    }

    /// Changes may have been committed without being published here (the
    /// feed of another instance's commits was interrupted): whoever
    /// follows catches up from the store.
    fn missed(&self) {}
}
