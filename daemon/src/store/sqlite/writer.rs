//! The single writer: one thread owns the write connection and commits the
//! jobs that queued up meanwhile in one transaction (group commit). Each job
//! runs in its own savepoint, so a failing job rolls back alone, unless it
//! changes the database with at most one statement, which SQLite makes
//! atomic by itself; its caller is answered only after the whole transaction
//! has committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::WriterStats;

use super::nonces::{NonceBuffer, Written, lock};
use super::{Change, ChangeSink, StoreError};

/// Most jobs folded into one transaction; bounds the latency of the first.
const MAX_JOBS_PER_COMMIT: usize = 512;

/// Rows (events) past which no further job joins the transaction. Grouping
/// saves the commit's fixed cost, which is nothing beside a large upload's
/// rows; waiting for others' rows only delays its answer.
const MAX_ROWS_PER_COMMIT: usize = 1000;

/// A job and how many rows it writes, about.
struct Queued {
    rows: usize,
    job: Job,
}

type Completion = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Queued>,
    counters: Arc<Counters>,
    /// Where each job's changes go once its transaction has committed.
    sink: Arc<dyn ChangeSink>,
}

/// What the writer has done since start: jobs per commit is how well group
/// commit amortises the durable commit (shown by `/api/status`).
#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    jobs: AtomicU64,
}

impl Writer {
    /// Starts the writer thread; it ends when every `Writer` is dropped,
    /// after writing the nonces it holds. Jobs record nonces in `nonces`;
    /// the writer writes them to the table when they are due.
    pub fn start(
        conn: Connection,
        nonces: Arc<Mutex<NonceBuffer>>,
        sink: Arc<dyn ChangeSink>,
    ) -> std::io::Result<(Self, thread::JoinHandle<()>)> {
        let (jobs, queue) = mpsc::channel::<Queued>();
        let counters = Arc::new(Counters::default());
        let handle = thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn({
                let counters = Arc::clone(&counters);
                move || run(conn, &queue, &counters, &nonces)
            })?;
        Ok((
            Self {
                jobs,
                counters,
                sink,
            },
            handle,
        ))
    }

    /// Starts the checkpointer: a thread with its own connection that, at
    /// most `interval` after a commit, copies the write-ahead log into the
    /// database (a passive checkpoint, which never blocks the writer) and,
    /// with `flush_wal`, flushes the log (`fdatasync`). Most checkpoint work
    /// thus runs beside the writer instead of inside a commit, and with
    /// `synchronous=NORMAL` the flush bounds what a power cut can take. The
    /// thread ends with the writer.
    pub fn start_checkpointer(
        &self,
        conn: Connection,
        wal: std::path::PathBuf,
        interval: Duration,
        flush_wal: bool,
    ) -> std::io::Result<thread::JoinHandle<()>> {
        let counters = Arc::downgrade(&self.counters);
        thread::Builder::new()
            .name("checkpointer".to_owned())
            .spawn(move || {
                let mut done = 0;
                // Said once per failure, not every interval.
                let mut failing = false;
                loop {
                    thread::sleep(interval);
                    let Some(counters) = counters.upgrade() else {
                        return;
                    };
                    let commits = counters.commits.load(Ordering::Acquire);
                    if commits == done {
                        continue;
                    }
                    // Busy when the writer is checkpointing itself: fine.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if !flush_wal {
                        done = commits;
                        continue;
                    }
                    // The checkpoint flushes the log only when it has pages
                    // to copy; a long reader can hold those back.
                    match std::fs::File::open(&wal).and_then(|f| f.sync_data()) {
                        Ok(()) => {
                            if failing {
                                tracing::info!("the database log is flushed again");
                            }
                            (done, failing) = (commits, false);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => done = commits,
                        Err(e) => {
                            if !failing {
                                tracing::error!(
                                    "cannot flush the database log {}: {e}; acknowledged writes may not survive a power cut until it can",
                                    wal.display()
                                );
                            }
                            failing = true;
                        }
                    }
                }
            })
    }

    pub fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            writes: self.counters.jobs.load(Ordering::Relaxed),
        }
    }

    /// Runs `work` in the next transaction; resolves once it has committed.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(move |conn, _| work(conn), Guard::Savepoint, 1)
            .await
    }

    /// Like [`write`](Self::write) for `work` that records what it changed:
    /// once the transaction has committed, and before the next one starts,
    /// the changes go to the sink on the writer thread, so they arrive in
    /// commit order and never before the rows are there.
    pub async fn write_changes<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Change>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(work, Guard::Savepoint, 1).await
    }

    /// Like [`write_changes`](Self::write_changes) for `work` that writes
    /// about `rows` rows: a large job does not wait for others to join it.
    pub async fn write_rows_changes<T, F>(&self, rows: usize, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Change>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(work, Guard::Savepoint, rows).await
    }

    /// Like [`write_changes`](Self::write_changes) for `work` that changes
    /// the database with at most one statement, and fails only before it
    /// or by it: that statement is rolled back by SQLite alone, so the job
    /// needs no savepoint. A savepoint copies every page the job changes
    /// (two or three for an event) and costs two statements more, which is
    /// much of the writer's time for a single event.
    pub async fn write_one_change<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Change>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(work, Guard::None, 1).await
    }

    async fn submit<T, F>(&self, work: F, guard: Guard, rows: usize) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Change>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let sink = Arc::clone(&self.sink);
        let job: Job = Box::new(move |conn| {
            let mut changes = Vec::new();
            let outcome = match guard {
                Guard::Savepoint => in_savepoint(conn, |conn| work(conn, &mut changes)),
                Guard::None => work(conn, &mut changes),
            };
            Box::new(move |committed| {
                let result = match committed {
                    Ok(()) => outcome,
                    // The job's own error says more than the failed commit.
                    Err(e) => outcome.and(Err(e.clone())),
                };
                if result.is_ok() {
                    for change in changes {
                        sink.publish(change);
                    }
                }
                let _ = reply.send(result);
            })
        });
        self.jobs
            .send(Queued { rows, job })
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the store's writer has stopped".to_owned())
}

/// How a job's changes are undone when it fails.
#[derive(Clone, Copy)]
enum Guard {
    Savepoint,
    /// The job's only change is one statement, atomic by itself.
    None,
}

/// Runs a statement without parameters, prepared once per connection:
/// parsing the same few statements for every job and commit showed up in
/// profiles of single-event ingest.
fn execute_cached(conn: &Connection, sql: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([]))
}

fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let run = |sql: &str| execute_cached(conn, sql);
    run("SAVEPOINT job")?;
    match work(conn) {
        Ok(value) => {
            run("RELEASE job")?;
            Ok(value)
        }
        Err(e) => {
            run("ROLLBACK TO job")?;
            run("RELEASE job")?;
            Err(e)
        }
    }
}

fn run(
    conn: Connection,
    queue: &mpsc::Receiver<Queued>,
    counters: &Counters,
    nonces: &Mutex<NonceBuffer>,
) {
    loop {
        // Wakes for the held nonces' deadline even when no job comes.
        let deadline = lock(nonces).deadline();
        let first = match deadline {
            None => queue
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(at) => queue.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        let batch = match first {
            Ok(queued) => gather(Some(queued), queue),
            Err(mpsc::RecvTimeoutError::Timeout) => gather(None, queue),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        commit(&conn, batch, counters, nonces);
    }
    // The last transaction: what is still held goes to the table.
    lock(nonces).write_at_commit();
    commit(&conn, Vec::new(), counters, nonces);
}

/// The jobs of the next transaction: `first`, then what queued meanwhile,
/// up to [`MAX_JOBS_PER_COMMIT`] jobs and about [`MAX_ROWS_PER_COMMIT`] rows.
fn gather(first: Option<Queued>, queue: &mpsc::Receiver<Queued>) -> Vec<Job> {
    let (mut batch, mut rows) = match first {
        Some(queued) => (vec![queued.job], queued.rows),
        None => (Vec::new(), 0),
    };
    while batch.len() < MAX_JOBS_PER_COMMIT && rows < MAX_ROWS_PER_COMMIT {
        match queue.try_recv() {
            Ok(queued) => {
                rows += queued.rows;
                batch.push(queued.job);
            }
            Err(_) => break,
        }
    }
    batch
}

/// Runs the jobs in one transaction, with the held nonces when they are
/// due, and answers each job's caller once it has committed.
fn commit(conn: &Connection, batch: Vec<Job>, counters: &Counters, nonces: &Mutex<NonceBuffer>) {
    if batch.is_empty() && !lock(nonces).due(Instant::now()) {
        return;
    }
    if let Err(e) = execute_cached(conn, "BEGIN IMMEDIATE") {
        let err = StoreError::from(e);
        for job in batch {
            // Nothing ran: answer every caller with the error.
            let completion = job_failed_before_start(job, conn);
            completion(Err(&err));
        }
        let mut held = lock(nonces);
        held.transaction_ended(false, Written::Nothing);
        held.postpone();
        return;
    }
    let completions: Vec<Completion> = batch
        .into_iter()
        .map(|job| {
            // SQLite rolls the whole transaction back on some errors (a
            // full disk, I/O); the jobs after that must not commit alone.
            if conn.is_autocommit() {
                job_failed_before_start(job, conn)
            } else {
                job(conn)
            }
        })
        .collect();
    let written = {
        let held = lock(nonces);
        if held.due(Instant::now()) && !conn.is_autocommit() {
            in_savepoint(conn, |conn| held.write(conn))
        } else {
            Ok(Written::Nothing)
        }
    };
    let committed = execute_cached(conn, "COMMIT").map_err(StoreError::from);
    if committed.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    } else {
        counters.commits.fetch_add(1, Ordering::Release);
        counters
            .jobs
            .fetch_add(completions.len() as u64, Ordering::Relaxed);
    }
    {
        let mut held = lock(nonces);
        held.transaction_ended(
            committed.is_ok(),
            *written.as_ref().unwrap_or(&Written::Nothing),
        );
        if let Err(e) = &written {
            tracing::warn!(error = %e, "cannot write the used nonces; trying again shortly");
            held.postpone();
        }
    }
    for completion in completions {
        completion(committed.as_ref().map(|_| ()));
    }
}

/// When `BEGIN` itself fails the jobs must still answer; running them outside
/// a transaction would commit piecemeal, so their work is discarded by
/// running them against a rolled-back savepoint.
fn job_failed_before_start(job: Job, conn: &Connection) -> Completion {
    let _ = conn.execute_batch("SAVEPOINT failed");
    let completion = job(conn);
    let _ = conn.execute_batch("ROLLBACK TO failed; RELEASE failed");
    completion
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that runs `work` and reports whether its transaction committed.
    fn job(
        work: impl FnOnce(&Connection) + Send + 'static,
        committed: &Arc<Mutex<Vec<bool>>>,
    ) -> Job {
        let committed = Arc::clone(committed);
        Box::new(move |conn| {
            work(conn);
            Box::new(move |result| {
                if let Ok(mut seen) = committed.lock() {
                    seen.push(result.is_ok());
                }
            })
        })
    }

    fn rows(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn a_transaction_groups_many_small_jobs_but_not_large_ones() {
        let (send, queue) = mpsc::channel();
        let queued = |rows| Queued {
            rows,
            job: Box::new(|_: &Connection| -> Completion { Box::new(|_| {}) }),
        };
        for _ in 0..MAX_JOBS_PER_COMMIT + 3 {
            send.send(queued(1)).expect("queue");
        }
        assert_eq!(gather(None, &queue).len(), MAX_JOBS_PER_COMMIT);
        assert_eq!(gather(None, &queue).len(), 3);

        // A 1000-event upload commits alone; smaller ones share until the
        // rows reach the bound.
        for rows in [1000, 600, 600, 600, 1] {
            send.send(queued(rows)).expect("queue");
        }
        let sizes: Vec<usize> = (0..3)
            .map(|_| gather(queue.try_recv().ok(), &queue).len())
            .collect();
        assert_eq!(sizes, [1, 2, 2]);
        assert!(gather(None, &queue).is_empty());
    }

    #[test]
    fn jobs_after_sqlite_rolled_the_transaction_back_do_not_commit_alone() {
        let conn = Connection::open_in_memory().expect("db");
        conn.execute_batch("CREATE TABLE t (n INTEGER)")
            .expect("schema");
        let nonces = Mutex::new(NonceBuffer::new(Duration::ZERO));
        let committed = Arc::new(Mutex::new(Vec::new()));
        let batch = vec![
            job(
                |conn| {
                    let _ = conn.execute("INSERT INTO t VALUES (1)", []);
                    // What SQLite does by itself after a full disk or an
                    // I/O error in the middle of a transaction.
                    let _ = conn.execute_batch("ROLLBACK");
                },
                &committed,
            ),
            job(
                |conn| {
                    let _ = conn.execute("INSERT INTO t VALUES (2)", []);
                },
                &committed,
            ),
        ];
        commit(&conn, batch, &Counters::default(), &nonces);
        assert_eq!(rows(&conn), 0, "the second job committed on its own");
        assert_eq!(*committed.lock().expect("lock"), [false, false]);
        assert!(conn.is_autocommit(), "no transaction is left open");

        // The writer goes on: the next batch commits.
        let batch = vec![job(
            |conn| {
                let _ = conn.execute("INSERT INTO t VALUES (3)", []);
            },
            &committed,
        )];
        commit(&conn, batch, &Counters::default(), &nonces);
        assert_eq!(rows(&conn), 1);
        assert_eq!(*committed.lock().expect("lock"), [false, false, true]);
    }
}
