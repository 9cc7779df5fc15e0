//! The audit log's hash chain, one definition for every backend: each row
//! carries a SHA-256 over its content and the previous row's hash, so an
//! edited, inserted or removed row breaks the chain at that point, and
//! `clawctl audit verify` means the same on SQLite and PostgreSQL.

use sha2::{Digest, Sha256};

use super::{AuditRow, ChainVerdict};

/// An audit row as stored, with its links.
pub(super) struct ChainRow {
    pub id: i64,
    pub timestamp: i64,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub details: Option<String>,
    pub ip: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of `row` following a row whose hash is `prev_hash` (the first
/// row follows the empty string).
pub(super) fn row_hash(prev_hash: &str, row: &ChainRow) -> String {
    let mut h = Sha256::new();
    // Length-prefixed fields: no two different rows hash the same input.
    let fields: [Option<&str>; 7] = [
        row.user_id.as_deref(),
        row.username.as_deref(),
        Some(row.action.as_str()),
        row.target.as_deref(),
        row.details.as_deref(),
        row.ip.as_deref(),
        Some(prev_hash),
    ];
    h.update(row.id.to_le_bytes());
    h.update(row.timestamp.to_le_bytes());
    for field in fields {
        match field {
            Some(text) => {
                h.update([1]);
                h.update((text.len() as u64).to_le_bytes());
                h.update(text.as_bytes());
            }
            None => h.update([0]),
        }
    }
    hex::encode(h.finalize())
}

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
