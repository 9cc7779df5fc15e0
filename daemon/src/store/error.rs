//! What can go wrong in a store, by kind: callers decide what each means
//! to their clients.

/// A store failure. Cheap to clone: a failed commit answers every job in
/// it with the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what is stored (a finished run, a taken
    /// name, the last administrator).
    #[error("{0}")]
    Conflict(String),
    /// A runner request whose capability token is not its run's.
    #[error("capability token does not belong to this run")]
    WrongToken,
    /// A runner request whose nonce was used before.
    #[error("nonce already used")]
    Replay,
    /// The runner is ahead of the store: events it sent were lost (a power
    /// cut before the log was flushed) and it must send from `next` again.
    #[error(
        "sequence {sequence} leaves a gap: the next expected sequence of run {run_id} is {next}; send again from there"
    )]
    SequenceGap {
        run_id: String,
        sequence: u64,
        next: u64,
    },
    /// The disk (or the database's size limit) is full; nothing was stored.
    #[error("the disk is full: {0}")]
    DiskFull(String),
    /// The database was too busy to take the request in time.
    #[error("the database is busy: {0}")]
    Busy(String),
    /// The database refused a row that breaks one of its rules.
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// The schema cannot be brought to this version.
    #[error("schema migration: {0}")]
    Migration(String),
    /// The database is unreachable or failed (I/O, a stopped writer).
    #[error("{0}")]
    Unavailable(String),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(28) {
            Self::DiskFull(e.to_string())
        } else {
            Self::Unavailable(format!("I/O error: {e}"))
        }
    }
}
