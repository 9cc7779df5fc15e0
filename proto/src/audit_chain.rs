//! The audit log's hash chain, one definition for every backend and for
//! clawctl (which checks the chain of a backup restored on a scratch
//! server): each row carries a SHA-256 over its content and the previous
//! row's hash, so an edited, inserted or removed row breaks the chain at
//! that point.

use sha2::{Digest, Sha256};

/// An audit row as stored, with its links.
pub struct ChainRow {
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
pub fn row_hash(prev_hash: &str, row: &ChainRow) -> String {
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
