//! The writer thread: owns the only write connection and commits in groups.
//!
//! It takes every job waiting in its queue (up to `max_batch`), runs each in
//! its own savepoint inside one transaction (the first needs none), commits
//! once, and only then answers each job. Concurrent SMTP sessions therefore share one fsync
//! instead of queueing for one each, and no caller hears "done" before its
//! rows are durable.

use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::checkpoint::LogLength;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Called after the commit with its result.
type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A unit of work waiting for the writer.
pub(super) type Job = Box<dyn Work>;

/// A unit of work: either it runs against the connection (saying whether it
/// succeeded and what to do once the batch is committed), or it is abandoned
/// unrun because its batch already failed.
pub(super) trait Work: Send {
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Finish);
    fn abandon(self: Box<Self>, error: StoreError);
}

struct Typed<T, F> {
    work: F,
    answer: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Work for Typed<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Finish) {
        let Typed { work, answer } = *self;
        // A panicking job fails alone: its savepoint is rolled back like any
        // failed job's, its caller hears a storage failure (`451` for SMTP),
        // and the writer thread goes on with the rest of the batch.
        let result = catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| {
                tracing::error!("a store job panicked; its changes are rolled back");
                Err(anyhow::anyhow!("a store job panicked"))
            })
            .map_err(StoreError::from_anyhow);
        let succeeded = result.is_ok();
        let finish: Finish = Box::new(move |commit| {
            // A failed job answers with its own error (a full disk stays
            // "full" even when the commit then fails for another reason);
            // a good one with the commit's result. The caller may have gone
            // away (a dropped SMTP session); then nobody needs the answer.
            let answer_is = match result {
                Err(error) => Err(error),
                Ok(value) => commit.map(|()| value),
            };
            let _ = answer.send(answer_is);
        });
        (succeeded, finish)
    }

    fn abandon(self: Box<Self>, error: StoreError) {
        let _ = self.answer.send(Err(error));
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
    F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
{
    let (answer, receiver) = oneshot::channel();
    (Box::new(Typed { work, answer }), receiver)
}

/// Starts the writer thread.
pub(super) fn spawn(
    conn: Connection,
    max_batch: usize,
    stats: Arc<WriterStats>,
    metrics: Metrics,
    log: Arc<LogLength>,
) -> anyhow::Result<mpsc::Sender<Job>> {
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(conn, receiver, max_batch, &stats, &metrics, &log))?;
    Ok(sender)
}

fn run(
    conn: Connection,
    mut queue: mpsc::Receiver<Job>,
    max_batch: usize,
    stats: &WriterStats,
    metrics: &Metrics,
    log: &LogLength,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = queue.blocking_recv() {
        log.restart_if_long(&conn);
        batch.push(first);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let size = batch.len();
        let started = Instant::now();
        let (finishers, commit) = commit_batch(&conn, batch.drain(..));
        if commit.is_ok() {
            stats.record(size);
            metrics.group_commit(size, started.elapsed());
        }
        for finish in finishers {
            finish(commit.clone());
        }
    }
    tracing::debug!("store writer stopped");
}

fn commit_batch(
    conn: &Connection,
    jobs: impl Iterator<Item = Job>,
) -> (Vec<Finish>, Result<(), StoreError>) {
    let mut finishers = Vec::new();
    let mut failure = sql(conn, "BEGIN IMMEDIATE").err();
    let began = failure.is_none();
    // Until a job has succeeded the transaction holds nothing: a job run
    // then needs no savepoint of its own (SQLite would copy every page it
    // touches into the savepoint's journal), because undoing it is rolling
    // the transaction back and beginning again.
    let mut empty = true;
    for job in jobs {
        if let Some(error) = &failure {
            job.abandon(batch_error(error));
            continue;
        }
        let guarded = !empty;
        if guarded && let Err(error) = sql(conn, "SAVEPOINT job") {
            job.abandon(batch_error(&error));
            failure = Some(error);
            continue;
        }
        let (succeeded, finish) = job.run(conn);
        finishers.push(finish);
        let ended = match (succeeded, guarded) {
            (true, true) => sql(conn, "RELEASE job"),
            (true, false) => Ok(()),
            (false, true) => sql(conn, "ROLLBACK TO job").and_then(|()| sql(conn, "RELEASE job")),
            (false, false) => begin_again(conn),
        };
        empty &= !succeeded;
        if let Err(error) = ended {
            failure = Some(error);
        }
    }
    let result = match failure {
        Some(error) => Err(error),
        None => sql(conn, "COMMIT"),
    };
    match result {
        Ok(()) => (finishers, Ok(())),
        Err(error) => {
            if began && !conn.is_autocommit() {
                let _ = sql(conn, "ROLLBACK");
            }
            tracing::error!(error.message = %error, "group commit failed; batch rolled back");
            (finishers, Err(batch_error(&error)))
        }
    }
}

/// Undoes the only job the transaction held, and begins it again for the
/// rest of the batch. SQLite may already have rolled the transaction back
/// itself (after some errors, such as a full disk).
fn begin_again(conn: &Connection) -> rusqlite::Result<()> {
    if !conn.is_autocommit() {
        sql(conn, "ROLLBACK")?;
    }
    sql(conn, "BEGIN IMMEDIATE")
}

/// Runs one of the writer's own statements, kept prepared (four of them
/// run for every job).
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
    use crate::metrics::Metrics;
    use crate::store::{Store, StoreError};

    /// Every `x` of the test table `t`, in order.
    async fn rows_of_t(store: &Store) -> Vec<i64> {
        store
            .read(|conn| {
                let mut statement = conn.prepare("SELECT x FROM t ORDER BY x")?;
                let rows = statement
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<Vec<i64>, _>>()?;
                Ok(rows)
            })
            .await
            .expect("reads")
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("db.sqlite3"), 16, Metrics::new()).expect("opens");
        let before = store
            .write(|conn| {
                conn.execute_batch("CREATE TABLE t (x INTEGER)")?;
                Ok(())
            })
            .await;
        assert!(before.is_ok());
        let panicking = store.write(|conn| -> anyhow::Result<()> {
            conn.execute("INSERT INTO t VALUES (1)", [])?;
            panic!("a bug in a job");
        });
        let fine = store.write(|conn| Ok(conn.execute("INSERT INTO t VALUES (2)", [])?));
        let (panicked, fine) = tokio::join!(panicking, fine);
        assert!(
            matches!(panicked, Err(StoreError::Failed(_))),
            "{panicked:?}"
        );
        assert_eq!(fine.expect("the other job commits"), 1);
        let rows = rows_of_t(&store).await;
        assert_eq!(rows, vec![2], "the panicking job left nothing behind");
        let after = store.write(|conn| Ok(conn.execute("INSERT INTO t VALUES (3)", [])?));
        assert_eq!(after.await.expect("the writer still runs"), 1);
    }

    #[tokio::test]
    async fn failed_jobs_leave_nothing_whether_first_in_their_batch_or_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("db.sqlite3"), 16, Metrics::new()).expect("opens");
        store
            .write(|conn| Ok(conn.execute_batch("CREATE TABLE t (x INTEGER)")?))
            .await
            .expect("creates");
        let insert_then_fail = |x: i64| {
            store.write(move |conn| -> anyhow::Result<()> {
                conn.execute("INSERT INTO t VALUES (?1)", [x])?;
                anyhow::bail!("job {x} fails after writing")
            })
        };
        let insert =
            |x: i64| store.write(move |conn| Ok(conn.execute("INSERT INTO t VALUES (?1)", [x])?));
        // Submitted together, so they usually share one batch: the first
        // fails (it runs without a savepoint), then one succeeds, one fails
        // inside its savepoint, and the last succeeds.
        let (first, second, third, fourth) = tokio::join!(
            insert_then_fail(1),
            insert(2),
            insert_then_fail(3),
            insert(4)
        );
        assert!(matches!(first, Err(StoreError::Failed(_))), "{first:?}");
        assert!(matches!(third, Err(StoreError::Failed(_))), "{third:?}");
        assert_eq!(second.expect("commits"), 1);
        assert_eq!(fourth.expect("commits"), 1);
        let rows = rows_of_t(&store).await;
        assert_eq!(rows, vec![2, 4]);
    }
}
