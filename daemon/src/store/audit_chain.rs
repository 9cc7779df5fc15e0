//! The audit log's hash chain, one definition for every backend: each row
//! carries a SHA-256 over its content and the previous row's hash, so an
//! edited, inserted or removed row breaks the chain at that point, and
//! `clawctl audit verify` means the same on SQLite and PostgreSQL.

pub(super) use claw_proto::audit_chain::{ChainRow, row_hash};

use super::{AuditRow, ChainVerdict};

/// Checks rows in id order, one at a time.
#[derive(Default)]
pub(super) struct ChainCheck {
    prev: String,
    checked: u64,
}

impl ChainCheck {
    /// Takes the next row; the verdict when it breaks the chain.
    pub fn check(&mut self, row: &ChainRow) -> Option<ChainVerdict> {
        let broken = |reason: &str| ChainVerdict {
            checked: self.checked,
            broken: Some((row.id, reason.to_owned())),
        };
        if row.prev_hash != self.prev {
            return Some(broken(
                "row does not follow the row before it (a row was removed or inserted)",
            ));
        }
        if row.hash != row_hash(&self.prev, row) {
            return Some(broken(
                "row content does not match its hash (the row was edited)",
            ));
        }
        self.prev.clone_from(&row.hash);
        self.checked += 1;
        None
    }

    /// Every row followed the one before it.
    pub fn verdict(self) -> ChainVerdict {
        ChainVerdict {
            checked: self.checked,
            broken: None,
        }
    }
}

impl From<ChainRow> for AuditRow {
    fn from(r: ChainRow) -> Self {
        Self {
            id: r.id,
            timestamp: r.timestamp,
            user_id: r.user_id,
            username: r.username,
            action: r.action,
            target: r.target,
            details: r.details,
            ip: r.ip,
            hash: r.hash,
        }
    }
}
