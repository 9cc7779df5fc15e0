//! Used nonces of idempotent runner requests, held by the writer for a
//! moment and then written to the `nonces` table together.
//!
//! Recording each request's nonce in its own transaction wrote one random
//! leaf of the nonce index per request: 5–9 µs of the writer's time and a
//! WAL frame, a sixth of single-event ingest (PERFORMANCE.md). Held back for
//! up to [`WAL_SYNC_INTERVAL`](super::WAL_SYNC_INTERVAL) and written sorted,
//! many share each leaf they change. They are written a slice at a time,
//! lowest keys first: a slice covers a narrow range of keys, so it shares
//! leaves as well as the whole would, and no commit stalls the requests
//! behind it for long.
//!
//! Only requests whose replay would change nothing are held: event uploads
//! in which every event carries its sequence (a resend of a stored sequence
//! stores nothing). A crash of clawd can forget the held nonces, and then
//! a replay of such a request is answered as a resend, which it is. Every
//! other runner request records its nonce in its own transaction. While clawd
//! runs, a held nonce is refused like a stored one.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use super::StoreError;

/// Most nonces held before they are written regardless of their age.
const MOST_HELD: usize = 8192;

/// Most held nonces one transaction writes (about 0.3 ms of the writer).
const MOST_PER_COMMIT: usize = 256;

/// What a transaction wrote of the held nonces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    Nothing,
    /// The lowest `n` of those held from earlier transactions.
    Lowest(usize),
    /// Everything held, its own nonces too.
    All,
}

/// A used nonce: the signed timestamp (Unix seconds) and the nonce.
pub(super) type Nonce = (i64, String);

pub(super) struct NonceBuffer {
    /// How long a committed nonce may stay out of the table; zero writes
    /// every nonce in the transaction that used it.
    hold: Duration,
    /// Used by committed transactions, not yet in the table.
    committed: BTreeSet<Nonce>,
    /// When the oldest of `committed` was committed.
    oldest: Option<Instant>,
    /// Used by the open transaction.
    pending: BTreeSet<Nonce>,
    /// Write everything at the end of the open transaction (a stop).
    write_now: bool,
}

impl NonceBuffer {
    pub(super) fn new(hold: Duration) -> Self {
        Self {
            hold,
            committed: BTreeSet::new(),
            oldest: None,
            pending: BTreeSet::new(),
            write_now: false,
        }
    }

    /// True when the nonce is held, used by this transaction or an earlier one.
    pub(super) fn contains(&self, nonce: &Nonce) -> bool {
        self.pending.contains(nonce) || self.committed.contains(nonce)
    }

    /// Records a nonce used by the open transaction.
    pub(super) fn record(&mut self, nonce: Nonce) {
        self.pending.insert(nonce);
    }

    /// Asks for everything held to be written by the open transaction.
    pub(super) fn write_at_commit(&mut self) {
        self.write_now = true;
    }

    /// When the held nonces must be written, if any are held.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|at| at + self.hold)
    }

    /// Whether the open transaction must write what is held.
    pub(super) fn due(&self, now: Instant) -> bool {
        if self.committed.is_empty() && self.pending.is_empty() {
            return false;
        }
        self.write_now
            || self.hold.is_zero()
            || self.committed.len() + self.pending.len() >= MOST_HELD
            || self.deadline().is_some_and(|at| at <= now)
    }

    /// Inside the open transaction, before its commit: writes what is due,
    /// sorted. Call only when [`due`](Self::due).
    pub(super) fn write(&self, conn: &Connection) -> Result<Written, StoreError> {
        let mut insert = conn.prepare_cached(
            "INSERT INTO nonces (timestamp, nonce) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?;
        let everything =
            self.write_now || self.hold.is_zero() || self.committed.len() < MOST_PER_COMMIT;
        if everything {
            let mut held: Vec<&Nonce> = self.committed.iter().chain(&self.pending).collect();
            held.sort_unstable();
            for (timestamp, nonce) in held {
                insert.execute(params![timestamp, nonce])?;
            }
            return Ok(Written::All);
        }
        let slice = self.committed.len().min(MOST_PER_COMMIT);
        for (timestamp, nonce) in self.committed.iter().take(slice) {
            insert.execute(params![timestamp, nonce])?;
        }
        Ok(Written::Lowest(slice))
    }

    /// After the open transaction: what it wrote or used is settled.
    pub(super) fn transaction_ended(&mut self, committed: bool, written: Written) {
        self.write_now = false;
        let pending = std::mem::take(&mut self.pending);
        if !committed {
            // Its requests failed; what earlier ones used is still held.
            return;
        }
        match written {
            Written::Nothing => {}
            Written::All => {
                self.committed.clear();
                self.oldest = None;
                return;
            }
            Written::Lowest(n) => {
                for _ in 0..n {
                    self.committed.pop_first();
                }
                if self.committed.is_empty() {
                    self.oldest = None;
                }
            }
        }
        if !pending.is_empty() {
            self.committed.extend(pending);
            // The rest of a due set stays due; fresh ones wait a hold.
            self.oldest.get_or_insert_with(Instant::now);
        }
    }

    /// After a failed write of what is held: tries again one hold later
    /// rather than at every turn of the writer.
    pub(super) fn postpone(&mut self) {
        if self.oldest.is_some() {
            self.oldest = Some(Instant::now());
        }
    }
}

/// What the writer needs to refuse a replayed nonce besides the `nonces`
/// table: the held nonces, and whether `nonces_legacy` can still match.
#[derive(Clone)]
pub(super) struct NonceCheck {
    pub(super) held: Arc<Mutex<NonceBuffer>>,
    /// When the last nonce of `nonces_legacy` expires (Unix ms), if it has
    /// any. Nothing adds to that table since migration 4, so past this the
    /// look-up is skipped: it was a statement per runner request.
    pub(super) legacy_until: Option<i64>,
}

impl NonceCheck {
    /// Whether `nonce` is in `nonces_legacy` and unexpired at `now` (ms).
    pub(super) fn in_legacy(
        &self,
        conn: &Connection,
        nonce: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        if self.legacy_until.is_none_or(|until| until <= now) {
            return Ok(false);
        }
        Ok(conn
            .prepare_cached("SELECT 1 FROM nonces_legacy WHERE nonce = ?1 AND expires_at > ?2")?
            .exists(params![nonce, now])?)
    }
}

/// When the last nonce of `nonces_legacy` expires, if it holds any.
pub(super) fn legacy_until(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(
        conn.query_row("SELECT MAX(expires_at) FROM nonces_legacy", [], |r| {
            r.get(0)
        })?,
    )
}

/// The buffer, also after a panic elsewhere: it holds plain data.
pub(super) fn lock(nonces: &Mutex<NonceBuffer>) -> MutexGuard<'_, NonceBuffer> {
    nonces.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().expect("db");
        conn.execute_batch(
            "CREATE TABLE nonces (timestamp INTEGER NOT NULL, nonce TEXT NOT NULL, \
             PRIMARY KEY (timestamp, nonce)) WITHOUT ROWID",
        )
        .expect("schema");
        conn
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM nonces", [], |r| r.get(0))
            .expect("count")
    }

    fn nonce(n: u8) -> Nonce {
        (1_700_000_000, format!("{n:032x}"))
    }

    #[test]
    fn held_nonces_are_written_once_due_and_refused_meanwhile() {
        let conn = db();
        let mut buffer = NonceBuffer::new(Duration::from_millis(50));
        buffer.record(nonce(1));
        assert!(buffer.contains(&nonce(1)));
        assert!(!buffer.due(Instant::now()));
        buffer.transaction_ended(true, Written::Nothing);
        assert!(buffer.contains(&nonce(1)));
        assert!(buffer.deadline().is_some());
        assert_eq!(count(&conn), 0);
        assert!(!buffer.due(Instant::now()));
        std::thread::sleep(Duration::from_millis(60));
        assert!(buffer.due(Instant::now()));
        assert_eq!(buffer.write(&conn).expect("write"), Written::All);
        buffer.transaction_ended(true, Written::All);
        assert_eq!(count(&conn), 1);
        assert!(!buffer.contains(&nonce(1)));
        assert_eq!(buffer.deadline(), None);
    }

    #[test]
    fn a_failed_transaction_forgets_only_its_own_nonces() {
        let conn = db();
        let mut buffer = NonceBuffer::new(Duration::from_secs(60));
        buffer.record(nonce(1));
        buffer.transaction_ended(true, Written::Nothing);
        buffer.record(nonce(2));
        buffer.write_at_commit();
        assert!(buffer.due(Instant::now()));
        let written = buffer.write(&conn).expect("write");
        buffer.transaction_ended(false, written);
        assert!(buffer.contains(&nonce(1)));
        assert!(!buffer.contains(&nonce(2)));
    }

    #[test]
    fn without_a_hold_every_transaction_writes_its_nonces() {
        let conn = db();
        let mut buffer = NonceBuffer::new(Duration::ZERO);
        assert!(!buffer.due(Instant::now()), "nothing is held");
        buffer.record(nonce(3));
        assert!(buffer.due(Instant::now()));
        assert_eq!(buffer.write(&conn).expect("write"), Written::All);
        buffer.transaction_ended(true, Written::All);
        assert_eq!(count(&conn), 1);
        assert_eq!(buffer.deadline(), None);
    }

    #[test]
    fn many_held_nonces_are_written_a_sorted_slice_per_transaction() {
        let conn = db();
        let mut buffer = NonceBuffer::new(Duration::from_millis(1));
        let held = MOST_PER_COMMIT * 2 + 10;
        for n in (0..held).rev() {
            buffer.record((1_700_000_000, format!("{n:032x}")));
        }
        buffer.transaction_ended(true, Written::Nothing);
        std::thread::sleep(Duration::from_millis(2));
        let mut slices = Vec::new();
        while buffer.due(Instant::now()) {
            // A request of this transaction is held too.
            buffer.record((1_700_000_001, format!("{:032x}", slices.len())));
            let written = buffer.write(&conn).expect("write");
            buffer.transaction_ended(true, written);
            slices.push(written);
            if slices.len() == 1 {
                // The lowest keys went first.
                let highest: String = conn
                    .query_row("SELECT MAX(nonce) FROM nonces", [], |r| r.get(0))
                    .expect("highest");
                assert_eq!(highest, format!("{:032x}", MOST_PER_COMMIT - 1));
            }
            assert!(slices.len() < 10, "{slices:?}");
        }
        assert_eq!(
            slices,
            [
                Written::Lowest(MOST_PER_COMMIT),
                Written::Lowest(MOST_PER_COMMIT),
                Written::All
            ]
        );
        assert_eq!(count(&conn), (held + 3) as i64);
        assert_eq!(buffer.deadline(), None);
    }
}
