//! The writer thread: owns the only write connection and commits in groups.
//!
//! It takes every job waiting in its queue (up to `max_batch`), runs them all
//! in one transaction and commits once; a syncer (`sync`) makes the commit
//! durable and only then answers each job. Concurrent SMTP sessions
//! therefore share one fsync instead of queueing for one each, the writer
//! runs the next batch while the disk syncs the last, and no caller hears
//! "done" before its rows are durable.
//!
//! A job that fails must not take the others with it, but a savepoint per job
//! costs every job a copy of each page it touches. So a batch first runs
//! without savepoints; only when a job fails is the transaction rolled back
//! and the batch run again, each job in its own savepoint, so that only the
//! failing job's changes are undone. Jobs are therefore `Fn`: one may run
//! twice, and only the run that is committed counts.

use crate::store::StoreError;
use crate::store::checkpoint::LogLength;
use crate::store::sync::{self, Committed};
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::{mpsc, oneshot};

/// A unit of work waiting for the writer.
pub(super) type Job = Box<dyn Work>;

/// A unit of work: it runs against the connection (perhaps twice), keeping
/// its latest result, and is answered once the batch is committed or failed.
pub(super) trait Work: Send {
    /// Runs the job; says whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller: the job's own result if `commit` succeeded, else
    /// the commit's error.
    fn answer(self: Box<Self>, commit: Result<(), StoreError>);
    /// The syncer's wake-up (`Wake`), which is no work at all.
    fn is_wake(&self) -> bool {
        false
    }
}

/// Sent by the syncer when it has nothing left to sync: a transaction the
/// writer kept open meanwhile can commit now.
pub(super) struct Wake;

impl Work for Wake {
    fn run(&mut self, _: &Connection) -> bool {
        true
    }

    fn answer(self: Box<Self>, _: Result<(), StoreError>) {}

    fn is_wake(&self) -> bool {
        true
    }
}

struct Typed<T, F> {
    work: F,
    result: Option<Result<T, StoreError>>,
    answer: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Work for Typed<T, F>
where
    T: Send + 'static,
    F: Fn(&Connection) -> anyhow::Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.work)(conn).map_err(StoreError::from_anyhow);
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn answer(self: Box<Self>, commit: Result<(), StoreError>) {
        let Typed { result, answer, .. } = *self;
        let result = result.unwrap_or_else(|| Err(StoreError::Closed));
        // The caller may have gone away (a dropped SMTP session); then
        // nobody needs the answer.
        let _ = answer.send(commit.and(result));
    }
}

/// Queue capacity; senders wait (asynchronously or on their own thread) when
/// it is full, which is the back-pressure on intake.
const QUEUE_CAPACITY: usize = 1024;

/// Batch-size figures, for `/metrics` and benchmarks.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub jobs: AtomicU64,
    pub largest_batch: AtomicU64,
}

impl WriterStats {
    fn record(&self, batch: usize) {
        let batch = batch as u64;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.jobs.fetch_add(batch, Ordering::Relaxed);
        self.largest_batch.fetch_max(batch, Ordering::Relaxed);
    }
}

/// Wraps a typed job so its result reaches the caller after the commit.
pub(super) fn job<T, F>(work: F) -> (Job, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: Fn(&Connection) -> anyhow::Result<T> + Send + 'static,
{
    let (answer, receiver) = oneshot::channel();
    (
        Box::new(Typed {
            work,
            result: None,
            answer,
        }),
        receiver,
    )
}

/// Starts the writer thread and its syncer (`sync`) for the database at
/// `path`, the writer's connection `conn`.
pub(super) fn spawn(
    conn: Connection,
    path: &std::path::Path,
    max_batch: usize,
    stats: Arc<WriterStats>,
    log: Arc<LogLength>,
) -> anyhow::Result<mpsc::Sender<Job>> {
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let synced = sync::spawn(path, &sender.downgrade(), &in_flight)?;
    let writer = Writer {
        conn,
        max_batch,
        stats,
        synced,
        in_flight,
        log,
    };
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || writer.run(receiver))?;
    Ok(sender)
}

/// The writer thread's own state.
struct Writer {
    conn: Connection,
    max_batch: usize,
    stats: Arc<WriterStats>,
    /// Where committed batches go to be synced and answered.
    synced: std::sync::mpsc::Sender<Committed>,
    /// Batches committed and not yet synced and answered.
    in_flight: Arc<AtomicUsize>,
    log: Arc<LogLength>,
}

impl Writer {
    /// Runs jobs as they come, in one open transaction, and commits it when
    /// a syncer is free (a commit made while all sync would only wait for
    /// the next sync anyway), when the batch is full, or when a job failed.
    /// The longer the batch, the fewer pages each job writes to the log.
    fn run(self, mut queue: mpsc::Receiver<Job>) {
        let mut open: Vec<Job> = Vec::new();
        let mut failed = false;
        while let Some(first) = queue.blocking_recv() {
            let mut next = Some(first);
            while let Some(mut job) = next.take() {
                if !job.is_wake() {
                    if open.is_empty() {
                        self.log.restart_if_long(&self.conn);
                        if let Err(error) = sql(&self.conn, "BEGIN IMMEDIATE") {
                            job.answer(Err(batch_error(&error)));
                            next = queue.try_recv().ok();
                            continue;
                        }
                    }
                    failed |= !job.run(&self.conn);
                    open.push(job);
                }
                if open.len() < self.max_batch {
                    next = queue.try_recv().ok();
                }
            }
            let commit_now = failed
                || open.len() >= self.max_batch
                || self.in_flight.load(Ordering::Acquire) < sync::SYNCERS;
            if !open.is_empty() && commit_now {
                self.commit(std::mem::take(&mut open), failed);
                failed = false;
            }
        }
        if !open.is_empty() {
            self.commit(open, failed);
        }
        tracing::debug!("store writer stopped");
    }

    /// Commits the open transaction (again with savepoints when a job
    /// failed) and hands the batch to the syncer, or answers its error.
    fn commit(&self, mut batch: Vec<Job>, failed: bool) {
        let committed = if failed {
            retry_with_savepoints(&self.conn, &mut batch)
        } else {
            finish(&self.conn, "COMMIT")
        };
        match committed {
            Ok(()) => {
                self.stats.record(batch.len());
                self.in_flight.fetch_add(1, Ordering::AcqRel);
                if let Err(unsent) = self.synced.send(batch) {
                    // The syncer is gone: nobody can say these are durable.
                    for job in unsent.0 {
                        job.answer(Err(StoreError::Closed));
                    }
                }
            }
            Err(error) => {
                for job in batch {
                    job.answer(Err(error.clone()));
                }
            }
        }
    }
}

/// Runs the batch and commits it: all at once when every job succeeds, or
/// again with a savepoint per job when one fails.
#[cfg(test)]
fn commit_batch(conn: &Connection, jobs: &mut [Job]) -> Result<(), StoreError> {
    let all_succeeded = transaction(conn, |conn| {
        let mut all = true;
        for job in jobs.iter_mut() {
            all &= job.run(conn);
        }
        Ok(all)
    })?;
    if all_succeeded {
        return finish(conn, "COMMIT");
    }
    retry_with_savepoints(conn, jobs)
}

/// Rolls back the open transaction, in which a job failed, and runs the
/// batch again with a savepoint per job, so that only the failing job's
/// changes are undone; then commits.
fn retry_with_savepoints(conn: &Connection, jobs: &mut [Job]) -> Result<(), StoreError> {
    finish(conn, "ROLLBACK")?;
    transaction(conn, |conn| {
        for job in jobs.iter_mut() {
            sql(conn, "SAVEPOINT job")?;
            if !job.run(conn) {
                sql(conn, "ROLLBACK TO job")?;
            }
            sql(conn, "RELEASE job")?;
        }
        Ok(())
    })?;
    finish(conn, "COMMIT")
}

/// Begins a transaction and runs `body` in it; on an error of SQLite's own
/// (not a job's), rolls back.
fn transaction<T>(
    conn: &Connection,
    body: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    sql(conn, "BEGIN IMMEDIATE").map_err(|error| batch_error(&error))?;
    body(conn).map_err(|error| {
        rollback(conn);
        batch_error(&error)
    })
}

/// Ends the transaction with `COMMIT` or `ROLLBACK`.
fn finish(conn: &Connection, end: &str) -> Result<(), StoreError> {
    sql(conn, end).map_err(|error| {
        rollback(conn);
        tracing::error!(error.message = %error, "group commit failed; batch rolled back");
        batch_error(&error)
    })
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = sql(conn, "ROLLBACK");
    }
}

/// Runs one of the writer's own statements, kept prepared.
fn sql(conn: &Connection, statement: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(statement)?.execute([])?;
    Ok(())
}

fn batch_error(error: &rusqlite::Error) -> StoreError {
    let full = error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull);
    if full {
        StoreError::Full
    } else {
        StoreError::Failed(std::sync::Arc::new(anyhow::anyhow!(
            "failed to commit: {error}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_failing_job_is_undone_alone_and_the_batch_still_commits() {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch("CREATE TABLE t (v TEXT NOT NULL)")
            .expect("table");
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let (good, good_answer) = job(move |conn| {
            counted.fetch_add(1, Ordering::Relaxed);
            conn.execute("INSERT INTO t (v) VALUES ('good')", [])?;
            Ok(())
        });
        let (bad, bad_answer) = job(|conn| -> anyhow::Result<()> {
            conn.execute("INSERT INTO t (v) VALUES ('bad')", [])?;
            anyhow::bail!("this job fails after writing")
        });
        let mut batch = vec![good, bad];

        let commit = commit_batch(&conn, &mut batch);
        for job in batch {
            job.answer(commit.clone());
        }

        assert!(commit.is_ok());
        let mut good_answer = good_answer;
        let mut bad_answer = bad_answer;
        assert!(matches!(good_answer.try_recv(), Ok(Ok(()))));
        assert!(matches!(
            bad_answer.try_recv(),
            Ok(Err(StoreError::Failed(_)))
        ));
        let rows: Vec<String> = conn
            .prepare("SELECT v FROM t")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("rows");
        assert_eq!(rows, ["good"]);
        assert_eq!(
            runs.load(Ordering::Relaxed),
            2,
            "run once in the batch, again in its savepoint"
        );
    }
}
