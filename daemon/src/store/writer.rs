//! The single writer: one thread owns the write connection and commits the
//! jobs that queued up meanwhile in one transaction (group commit). Each job
//! runs in its own savepoint, so a failing job rolls back alone; its caller is
//! answered only after the whole transaction has committed.

use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::StoreError;

/// Most jobs folded into one transaction; bounds the latency of the first.
const MAX_JOBS_PER_COMMIT: usize = 512;

type Completion = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread; it ends when every `Writer` is dropped.
    pub fn start(conn: Connection) -> std::io::Result<(Self, thread::JoinHandle<()>)> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let handle = thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || run(conn, &queue))?;
        Ok((Self { jobs }, handle))
    }

    /// Runs `work` in the next transaction; resolves once it has committed.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_then(work, |_| {}).await
    }

    /// Like [`write`](Self::write), and calls `after_commit` on the writer
    /// thread right after the commit, before the next transaction starts:
    /// notifications sent from there are in commit order.
    pub async fn write_then<T, F, A>(&self, work: F, after_commit: A) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let outcome = in_savepoint(conn, work);
            Box::new(move |committed| {
                let result = match committed {
                    Ok(()) => outcome,
                    // The job's own error says more than the failed commit.
                    Err(e) => outcome.and(Err(StoreError::Commit(e.to_string()))),
                };
                if let Ok(value) = &result {
                    after_commit(value);
                }
                let _ = reply.send(result);
            })
        });
        self.jobs.send(job).map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT job")?;
    match work(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE job")?;
            Ok(value)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

fn run(conn: Connection, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let err = StoreError::from(e);
            for job in batch {
                // Nothing ran: answer every caller with the error.
                let completion = job_failed_before_start(job, &conn);
                completion(Err(&err));
            }
            continue;
        }
        let completions: Vec<Completion> = batch.into_iter().map(|job| job(&conn)).collect();
        let committed = conn.execute_batch("COMMIT").map_err(StoreError::from);
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for completion in completions {
            completion(committed.as_ref().map(|_| ()));
        }
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
