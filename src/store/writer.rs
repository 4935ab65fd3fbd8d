//! The writer thread: owns the only write connection and commits in groups.
//!
//! It takes every job waiting in its queue (up to `max_batch`), runs them in
//! one transaction, commits once, and only then answers each job.
//! Concurrent SMTP sessions therefore share one fsync instead of queueing
//! for one each, and no caller hears "done" before its rows are durable.
//! Jobs that arrive while a batch's first round runs join it: once the
//! jobs it began with have run, the writer takes those waiting (up to
//! `max_batch`), runs them, and commits. A job that arrives then waits for
//! that batch's commit, not for it and the next batch; every table's last
//! page is logged once for more messages; and no job waits for more than
//! two rounds and a commit. (Joining for as long as jobs arrived logged a
//! little less still, but kept the first jobs of a batch waiting for
//! later ones, and the rate under the load of `benches/` was no better.)
//!
//! A failed job leaves nothing behind. A savepoint around each job would see
//! to that, but SQLite then copies every page the job touches into the
//! savepoint's journal: about an eighth of the writer's work for a
//! registration. So jobs run without one while the transaction can be built
//! again, that is while every job that succeeded in it is repeatable
//! (`Store::write_repeatable`). A job that fails after changing rows then
//! has the transaction rolled back, and the jobs before it run again. Once a
//! job that runs only once has succeeded, or after one such rebuild (so that
//! failing jobs cannot make the writer repeat a batch over and over), the
//! rest of the batch runs in savepoints.

use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::checkpoint::LogLength;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// A unit of work waiting for the writer.
pub(super) type Job = Box<dyn Work>;

/// A unit of work: it runs against the connection, perhaps more than once
/// when it is repeatable, and answers its caller once the batch's fate is
/// known.
pub(super) trait Work: Send {
    /// Runs the job, replacing the result of an earlier run; false when it
    /// failed.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Whether the job may run again after it succeeded.
    fn repeatable(&self) -> bool;
    /// Answers the caller: the job's own error, or the commit's result once
    /// the job succeeded; a job that never ran hears why its batch failed.
    fn answer(self: Box<Self>, commit: Result<(), StoreError>);
}

/// A job's caller, and what the job's last run returned.
struct Caller<T> {
    answer: oneshot::Sender<Result<T, StoreError>>,
    result: Option<Result<T, StoreError>>,
}

impl<T> Caller<T> {
    fn new(answer: oneshot::Sender<Result<T, StoreError>>) -> Self {
        Self {
            answer,
            result: None,
        }
    }

    /// Runs `work` and keeps its result. A panicking job fails alone: its
    /// changes are undone like any failed job's, its caller hears a storage
    /// failure (`451` for SMTP), and the writer goes on with the batch.
    fn run(&mut self, work: impl FnOnce() -> anyhow::Result<T>) -> bool {
        let result = catch_unwind(AssertUnwindSafe(work))
            .unwrap_or_else(|_| {
                tracing::error!("a store job panicked; its changes are rolled back");
                Err(anyhow::anyhow!("a store job panicked"))
            })
            .map_err(StoreError::from_anyhow);
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn answer(self, commit: Result<(), StoreError>) {
        // A failed job answers with its own error (a full disk stays "full"
        // even when the commit then fails for another reason); a good one
        // with the commit's result. The caller may have gone away (a
        // dropped SMTP session); then nobody needs the answer.
        let answer = match (self.result, commit) {
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), commit) => commit.map(|()| value),
            (None, Err(error)) => Err(error),
            (None, Ok(())) => Err(StoreError::Failed(Arc::new(anyhow::anyhow!(
                "the store job was not run"
            )))),
        };
        let _ = self.answer.send(answer);
    }
}

/// A job that runs once.
struct Once<T, F> {
    work: Option<F>,
    caller: Caller<T>,
}

impl<T, F> Work for Once<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        match self.work.take() {
            Some(work) => self.caller.run(|| work(conn)),
            None => false,
        }
    }

    fn repeatable(&self) -> bool {
        false
    }

    fn answer(self: Box<Self>, commit: Result<(), StoreError>) {
        self.caller.answer(commit);
    }
}

/// A job that may run again, against a transaction rolled back to where
/// it first ran.
struct Repeatable<T, F> {
    work: F,
    caller: Caller<T>,
}

impl<T, F> Work for Repeatable<T, F>
where
    T: Send + 'static,
    F: Fn(&Connection) -> anyhow::Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let work = &self.work;
        self.caller.run(|| work(conn))
    }

    fn repeatable(&self) -> bool {
        true
    }

    fn answer(self: Box<Self>, commit: Result<(), StoreError>) {
        self.caller.answer(commit);
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

/// Wraps a job that runs once so its result reaches the caller after the
/// commit.
pub(super) fn job<T, F>(work: F) -> (Job, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
{
    let (answer, receiver) = oneshot::channel();
    let job = Once {
        work: Some(work),
        caller: Caller::new(answer),
    };
    (Box::new(job), receiver)
}

/// `job` for a job that may run again (see the module's note).
pub(super) fn repeatable_job<T, F>(work: F) -> (Job, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: Fn(&Connection) -> anyhow::Result<T> + Send + 'static,
{
    let (answer, receiver) = oneshot::channel();
    let job = Repeatable {
        work,
        caller: Caller::new(answer),
    };
    (Box::new(job), receiver)
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
        take_waiting(&mut queue, &mut batch, max_batch);
        // Once those have run, the jobs that arrived meanwhile join them,
        // once: no job waits for more than two rounds and a commit.
        let mut late_round = true;
        let started = Instant::now();
        let commit = commit_batch(&conn, &mut batch, |batch| {
            if std::mem::take(&mut late_round) {
                take_waiting(&mut queue, batch, max_batch);
            }
        })
        .map_err(|error| {
            tracing::error!(error.message = %error, "group commit failed; batch rolled back");
            batch_error(&error)
        });
        let size = batch.len();
        if commit.is_ok() {
            stats.record(size);
            metrics.group_commit(size, started.elapsed());
        }
        for job in batch.drain(..) {
            job.answer(commit.clone());
        }
    }
    tracing::debug!("store writer stopped");
}

/// Moves the jobs waiting in the queue into `batch`, until it holds
/// `max_batch`.
fn take_waiting(queue: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>, max_batch: usize) {
    while batch.len() < max_batch {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// Runs a batch in one transaction and commits it; on failure rolls back.
/// Each time the jobs run out, `more` may add the jobs that arrived
/// meanwhile; the batch is committed once it adds none.
fn commit_batch(
    conn: &Connection,
    jobs: &mut Vec<Job>,
    mut more: impl FnMut(&mut Vec<Job>),
) -> rusqlite::Result<()> {
    sql(conn, "BEGIN IMMEDIATE")?;
    let result = run_jobs(conn, jobs, &mut more).and_then(|()| sql(conn, "COMMIT"));
    if result.is_err() && !conn.is_autocommit() {
        let _ = sql(conn, "ROLLBACK");
    }
    result
}

/// Runs every job of a batch inside the open transaction, each leaving its
/// changes if it succeeds and none if it fails, and then those `more` adds.
fn run_jobs(
    conn: &Connection,
    jobs: &mut Vec<Job>,
    more: &mut impl FnMut(&mut Vec<Job>),
) -> rusqlite::Result<()> {
    // The jobs whose changes the transaction holds, in the order they ran,
    // while they can all run again: the transaction can then be built
    // again from them.
    let mut held = Some(Vec::with_capacity(jobs.len()));
    for index in 0.. {
        if index == jobs.len() {
            more(jobs);
            if index == jobs.len() {
                break;
            }
        }
        let Some(rebuildable) = held.as_mut() else {
            run_in_savepoint(conn, jobs[index].as_mut())?;
            continue;
        };
        match run_bare(conn, jobs[index].as_mut()) {
            Bare::Succeeded if jobs[index].repeatable() => rebuildable.push(index),
            Bare::Succeeded => held = None,
            Bare::FailedCleanly => {}
            Bare::FailedHalfway => {
                // Beginning again costs nothing while the transaction holds
                // nothing; otherwise it is done once a batch.
                let repeats = !rebuildable.is_empty();
                rebuild(conn, jobs, rebuildable)?;
                if repeats {
                    held = None;
                }
            }
        }
    }
    Ok(())
}

/// How a job run without a savepoint ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bare {
    Succeeded,
    /// It failed having changed no row: the transaction is as before it.
    FailedCleanly,
    /// It failed with changes of its own in the transaction, or SQLite
    /// rolled the whole transaction back.
    FailedHalfway,
}

/// Runs a job without a savepoint. Whether it changed anything is told by
/// SQLite's count of changed rows: jobs write only with INSERT, UPDATE and
/// DELETE, and a statement that fails undoes its own changes.
fn run_bare(conn: &Connection, job: &mut dyn Work) -> Bare {
    let before = conn.total_changes();
    if job.run(conn) {
        Bare::Succeeded
    } else if conn.is_autocommit() || conn.total_changes() != before {
        Bare::FailedHalfway
    } else {
        Bare::FailedCleanly
    }
}

/// Runs a job in its own savepoint, which is released if it succeeds and
/// rolled back if it fails.
fn run_in_savepoint(conn: &Connection, job: &mut dyn Work) -> rusqlite::Result<()> {
    sql(conn, "SAVEPOINT job")?;
    if !job.run(conn) {
        sql(conn, "ROLLBACK TO job")?;
    }
    sql(conn, "RELEASE job")
}

/// Rolls the transaction back and begins it again with the jobs it held
/// (all repeatable), run again in order. A job that now fails halfway is
/// left out, and the rest run again once more.
fn rebuild(conn: &Connection, jobs: &mut [Job], held: &mut Vec<usize>) -> rusqlite::Result<()> {
    loop {
        if !conn.is_autocommit() {
            sql(conn, "ROLLBACK")?;
        }
        sql(conn, "BEGIN IMMEDIATE")?;
        let mut kept = Vec::with_capacity(held.len());
        let mut halfway = None;
        for (position, &index) in held.iter().enumerate() {
            match run_bare(conn, jobs[index].as_mut()) {
                Bare::Succeeded => kept.push(index),
                Bare::FailedCleanly => {}
                Bare::FailedHalfway => {
                    halfway = Some(position);
                    break;
                }
            }
        }
        let Some(failed) = halfway else {
            *held = kept;
            return Ok(());
        };
        kept.extend_from_slice(&held[failed + 1..]);
        *held = kept;
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
    use super::{Job, WriterStats, commit_batch, job, repeatable_job, spawn};
    use crate::metrics::Metrics;
    use crate::store::checkpoint::LogLength;
    use crate::store::{Store, StoreError};
    use rusqlite::Connection;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::{mpsc, oneshot};

    type Answer = oneshot::Receiver<Result<(), StoreError>>;

    /// A batch built by hand, run by `commit_batch` on one connection: the
    /// writer thread's batching left out, so that each test knows its batch.
    struct Batch {
        conn: Connection,
        jobs: Vec<Job>,
        answers: Vec<Answer>,
        /// The jobs from this one on arrive while the batch runs: the
        /// writer hands them over when the ones before have run.
        arriving_from: Option<usize>,
    }

    impl Batch {
        fn new() -> Self {
            let conn = Connection::open_in_memory().expect("in-memory database");
            conn.execute_batch("CREATE TABLE t (x INTEGER)")
                .expect("creates");
            Self {
                conn,
                jobs: Vec::new(),
                answers: Vec::new(),
                arriving_from: None,
            }
        }

        /// The jobs added from now on arrive while the batch runs.
        fn then_arriving(&mut self) {
            self.arriving_from = Some(self.jobs.len());
        }

        fn add(&mut self, (job, answer): (Job, Answer)) {
            self.jobs.push(job);
            self.answers.push(answer);
        }

        /// A repeatable job inserting `x`, and how many times it ran.
        /// With `fails_from_run`, it fails after inserting on that run.
        fn repeatable(&mut self, x: i64, fails_from_run: Option<usize>) -> Arc<AtomicUsize> {
            let runs = Arc::new(AtomicUsize::new(0));
            let counted = Arc::clone(&runs);
            self.add(repeatable_job(move |conn| {
                let run = counted.fetch_add(1, Ordering::SeqCst) + 1;
                conn.execute("INSERT INTO t VALUES (?1)", [x])?;
                if fails_from_run.is_some_and(|from| run >= from) {
                    anyhow::bail!("job {x} fails after writing");
                }
                Ok(())
            }));
            runs
        }

        /// A job that runs once, inserting `x` and then failing if asked.
        fn once(&mut self, x: i64, fails: bool) {
            self.add(job(move |conn| {
                conn.execute("INSERT INTO t VALUES (?1)", [x])?;
                anyhow::ensure!(!fails, "job {x} fails after writing");
                Ok(())
            }));
        }

        /// A job that runs once and fails before writing anything.
        fn refusing(&mut self) {
            self.add(job(|conn| {
                let _: i64 = conn.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))?;
                anyhow::bail!("nothing to do")
            }));
        }

        /// Commits the batch, and checks the rows of `t` it leaves and
        /// whether each job's caller heard success.
        fn commits(self, rows: &[i64], heard: &[bool]) {
            let (left, answered) = self.commit();
            assert_eq!((left.as_slice(), answered.as_slice()), (rows, heard));
        }

        fn commit(mut self) -> (Vec<i64>, Vec<bool>) {
            let mut arriving = self
                .arriving_from
                .map(|from| self.jobs.split_off(from))
                .unwrap_or_default();
            commit_batch(&self.conn, &mut self.jobs, |jobs| {
                jobs.append(&mut arriving);
            })
            .expect("commits");
            for job in self.jobs.drain(..) {
                job.answer(Ok(()));
            }
            let heard = self
                .answers
                .iter_mut()
                .map(|answer| answer.try_recv().expect("answered").is_ok())
                .collect();
            let mut statement = self
                .conn
                .prepare("SELECT x FROM t ORDER BY x")
                .expect("prepares");
            let rows = statement
                .query_map([], |row| row.get(0))
                .expect("reads")
                .collect::<Result<Vec<i64>, _>>()
                .expect("reads");
            (rows, heard)
        }
    }

    fn runs(count: &AtomicUsize) -> usize {
        count.load(Ordering::SeqCst)
    }

    #[test]
    fn a_job_failing_halfway_is_undone_by_running_the_repeatable_jobs_before_it_again() {
        let mut batch = Batch::new();
        let first = batch.repeatable(1, None);
        let second = batch.repeatable(2, None);
        batch.once(3, true);
        let fourth = batch.repeatable(4, None);
        batch.commits(&[1, 2, 4], &[true, true, false, true]);
        assert_eq!((runs(&first), runs(&second)), (2, 2));
        assert_eq!(runs(&fourth), 1);
    }

    #[test]
    fn a_job_failing_before_it_writes_undoes_nothing() {
        let mut batch = Batch::new();
        let first = batch.repeatable(1, None);
        batch.refusing();
        let third = batch.repeatable(3, None);
        batch.commits(&[1, 3], &[true, false, true]);
        assert_eq!((runs(&first), runs(&third)), (1, 1));
    }

    #[test]
    fn after_a_job_that_runs_once_the_batch_runs_in_savepoints() {
        let mut batch = Batch::new();
        batch.once(1, false);
        let second = batch.repeatable(2, Some(1));
        let third = batch.repeatable(3, None);
        batch.commits(&[1, 3], &[true, false, true]);
        assert_eq!((runs(&second), runs(&third)), (1, 1));
    }

    #[test]
    fn a_batch_is_run_again_once_at_most() {
        let mut batch = Batch::new();
        let first = batch.repeatable(1, None);
        batch.once(2, true);
        let third = batch.repeatable(3, None);
        batch.once(4, true);
        let fifth = batch.repeatable(5, None);
        batch.commits(&[1, 3, 5], &[true, false, true, false, true]);
        assert_eq!((runs(&first), runs(&third), runs(&fifth)), (2, 1, 1));
    }

    #[test]
    fn a_repeatable_job_failing_when_run_again_is_left_out_and_the_others_run_once_more() {
        let mut batch = Batch::new();
        let first = batch.repeatable(1, None);
        let second = batch.repeatable(2, Some(2));
        let third = batch.repeatable(3, None);
        batch.once(4, true);
        let fifth = batch.repeatable(5, None);
        batch.commits(&[1, 3, 5], &[true, false, true, false, true]);
        assert_eq!((runs(&first), runs(&second), runs(&third)), (3, 2, 2));
        assert_eq!(runs(&fifth), 1);
    }

    #[test]
    fn a_first_job_failing_halfway_leaves_the_batch_without_savepoints() {
        let mut batch = Batch::new();
        batch.once(1, true);
        let second = batch.repeatable(2, None);
        batch.once(3, true);
        let fourth = batch.repeatable(4, None);
        batch.commits(&[2, 4], &[false, true, false, true]);
        // The second job ran again when the third failed: the batch was
        // still without savepoints after the first job's failure.
        assert_eq!((runs(&second), runs(&fourth)), (2, 1));
    }

    #[test]
    fn jobs_arriving_while_the_batch_runs_join_it_and_a_failure_among_them_undoes_only_itself() {
        let mut batch = Batch::new();
        let first = batch.repeatable(1, None);
        batch.then_arriving();
        let second = batch.repeatable(2, None);
        batch.once(3, true);
        let fourth = batch.repeatable(4, None);
        batch.commits(&[1, 2, 4], &[true, true, false, true]);
        // The failure of a job that arrived late rebuilt the transaction
        // from every job before it, those of the first round included.
        assert_eq!((runs(&first), runs(&second), runs(&fourth)), (2, 2, 1));
    }

    #[test]
    fn a_job_queued_while_a_batch_runs_joins_it_but_one_queued_by_a_late_job_waits() {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch("CREATE TABLE t (x INTEGER)")
            .expect("creates");
        let stats = Arc::new(WriterStats::default());
        let queue = spawn(
            conn,
            16,
            Arc::clone(&stats),
            Metrics::new(),
            Arc::new(LogLength::default()),
        )
        .expect("starts the writer");
        // Each job queues the next while it runs, as another session's
        // message would arrive meanwhile: the second joins the first's
        // batch, the third, queued by a job of the late round, waits for
        // the next batch.
        let (third, third_answer) = job(|conn| Ok(conn.execute("INSERT INTO t VALUES (3)", [])?));
        let (second, second_answer) = queuing_job(2, third, queue.clone());
        let (first, first_answer) = queuing_job(1, second, queue.clone());
        queue.blocking_send(first).expect("queued");
        for answer in [first_answer, second_answer, third_answer] {
            assert_eq!(
                answer.blocking_recv().expect("answered").expect("commits"),
                1
            );
        }
        assert_eq!(stats.commits.load(Ordering::SeqCst), 2);
        assert_eq!(stats.largest_batch.load(Ordering::SeqCst), 2);
    }

    /// A job inserting `x` that queues `next` while it runs.
    fn queuing_job(
        x: i64,
        next: Job,
        queue: mpsc::Sender<Job>,
    ) -> (Job, oneshot::Receiver<Result<usize, StoreError>>) {
        job(move |conn| {
            let inserted = conn.execute("INSERT INTO t VALUES (?1)", [x])?;
            queue
                .try_send(next)
                .map_err(|_| anyhow::anyhow!("the queue refused the job"))?;
            Ok(inserted)
        })
    }

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
        // fails, then one succeeds (it runs once, so the rest of the batch
        // runs in savepoints), one fails inside its savepoint, and the last
        // succeeds.
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
