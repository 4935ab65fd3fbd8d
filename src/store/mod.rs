//! Storage: one SQLite file in WAL mode with `synchronous=FULL`, so a `250`
//! survives power loss and not only a crash, and `secure_delete`, so erased
//! bodies and links are overwritten rather than left in free pages. The
//! file, its WAL and its directory are private to the daemon's user.
//!
//! All writes go through one writer thread (`writer`) that commits in groups;
//! reads use a small pool of read connections. Async callers reach both
//! without blocking a tokio worker: writes wait on a oneshot channel, reads run
//! on the blocking pool. This module and its children are the only code that
//! writes SQL. `backup` copies and restores the whole file (SQLite's backup
//! API); `lock` is the daemon's hold on it.

pub mod account_tokens;
pub mod backup;
pub mod bounces;
mod checkpoint;
pub mod customers;
#[cfg(test)]
mod fixtures;
pub mod inbound;
pub mod lock;
mod migrations;
pub mod outbox;
#[cfg(test)]
mod plans;
pub mod reply_counts;
pub mod sessions;
pub mod suppressions;
pub mod tokens;
mod walk;
pub mod webhook_events;
mod writer;

use crate::metrics::Metrics;
use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags, params};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

pub use walk::Walked;
pub use writer::WriterStats;

/// A storage failure, as callers need to tell them apart.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The disk or database is full: a temporary condition for SMTP (`452`).
    #[error("the database is full")]
    Full,
    /// The writer thread is gone (the process is shutting down).
    #[error("the store writer has stopped")]
    Closed,
    /// Any other failure; the transaction was rolled back.
    #[error("storage failure: {0:#}")]
    Failed(Arc<anyhow::Error>),
}

impl StoreError {
    fn from_anyhow(error: anyhow::Error) -> Self {
        let full = error.chain().any(|cause| {
            cause
                .downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code)
                .is_some_and(|code| code == rusqlite::ErrorCode::DiskFull)
        });
        if full {
            StoreError::Full
        } else {
            StoreError::Failed(Arc::new(error))
        }
    }
}

/// Opens the database at `path` read-only, beside a daemon that may be
/// writing it (WAL, with a busy timeout); for tools that must change nothing.
///
/// # Errors
/// The file cannot be opened.
pub fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open the database {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// Queue of the writer thread. Closing it (dropping every `Store`) ends
    /// the thread after it has committed what it holds.
    jobs: mpsc::Sender<writer::Job>,
    /// Idle read connections; a read takes one or opens a new one.
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    stats: Arc<WriterStats>,
    /// Dropping it stops the checkpointer thread.
    _checkpointer: std::sync::mpsc::Sender<()>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, migrates it and
    /// starts the writer thread, which reports each group commit to
    /// `metrics`.
    ///
    /// # Errors
    /// Fails when the file cannot be opened, configured or migrated.
    pub fn open(path: &Path, max_batch: usize, metrics: Metrics) -> anyhow::Result<Self> {
        Self::open_capped(path, max_batch, None, metrics)
    }

    /// `open`, with the database held to `max_size_bytes`: past it, writes
    /// fail as on a full disk (`StoreError::Full`) until space is freed
    /// (the purge erases old raw mail), and the store goes on by itself.
    ///
    /// # Errors
    /// Fails when the file cannot be opened, configured or migrated.
    pub fn open_capped(
        path: &Path,
        max_batch: usize,
        max_size_bytes: Option<u64>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| {
                    format!("failed to create the data directory {}", parent.display())
                })?;
        }
        // Created private before SQLite opens it; SQLite gives the WAL and
        // shared-memory files the database file's permissions.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("failed to create the database {}", path.display()))?;
        let mut conn = Connection::open(path)
            .with_context(|| format!("failed to open the database {}", path.display()))?;
        configure(&conn).context("failed to configure the database")?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "the database refused WAL mode (got {mode})"
        );
        migrations::run(&mut conn).context("failed to migrate the database")?;
        if let Some(max) = max_size_bytes {
            let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
            let pages = i64::try_from(max)
                .unwrap_or(i64::MAX)
                .checked_div(page_size)
                .unwrap_or(1)
                .max(1);
            conn.pragma_update(None, "max_page_count", pages)
                .context("failed to cap the database size")?;
        }

        // The checkpointer thread copies the log into the database file
        // beside the writer, whose commits no longer wait for that copy.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A log that grew long under load is cut back when it starts over.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        let log = Arc::new(checkpoint::LogLength::default());
        let checkpointer = checkpoint::spawn(path, Arc::clone(&log))?;

        let stats = Arc::new(WriterStats::default());
        let jobs = writer::spawn(conn, max_batch, Arc::clone(&stats), metrics, log)?;
        Ok(Self {
            inner: Arc::new(Inner {
                jobs,
                readers: Mutex::new(Vec::new()),
                path: path.to_owned(),
                stats,
                _checkpointer: checkpointer,
            }),
        })
    }

    /// Runs `job` inside the writer's next transaction and waits for the
    /// commit. If the job fails, its own changes are rolled back, and only
    /// those.
    ///
    /// # Errors
    /// The job's own error, or a commit failure (the job's changes are gone).
    pub async fn write<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        self.submit(writer::job(job)).await
    }

    /// `write` for a job that may run more than once: should a later job of
    /// its batch fail halfway, the writer rolls the transaction back and
    /// runs this one again, and its caller hears the last run's result.
    /// The writer then needs no savepoint around it, which spares SQLite a
    /// copy of every page it touches (see `writer`). Its effects outside
    /// the database (a counter in memory) then happen twice; they already
    /// happen for a job whose batch fails to commit.
    ///
    /// # Errors
    /// As `write`.
    pub async fn write_repeatable<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        self.submit(writer::repeatable_job(job)).await
    }

    async fn submit<T>(
        &self,
        (job, answer): (writer::Job, oneshot::Receiver<Result<T, StoreError>>),
    ) -> Result<T, StoreError> {
        self.inner
            .jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.unwrap_or(Err(StoreError::Closed))
    }

    /// `write` for threads outside the tokio runtime (SMTP sessions, CLI).
    ///
    /// # Errors
    /// As `write`.
    pub fn write_blocking<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let (job, answer) = writer::job(job);
        self.inner
            .jobs
            .blocking_send(job)
            .map_err(|_| StoreError::Closed)?;
        answer.blocking_recv().unwrap_or(Err(StoreError::Closed))
    }

    /// Runs a read on the blocking pool with a pooled read connection.
    ///
    /// # Errors
    /// The read's own error.
    pub async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(read))
            .await
            .map_err(|e| StoreError::Failed(Arc::new(anyhow::anyhow!("read task failed: {e}"))))?
    }

    /// `read` for threads outside the tokio runtime.
    ///
    /// # Errors
    /// The read's own error.
    pub fn read_blocking<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> anyhow::Result<T>,
    {
        let conn = match self.take_reader() {
            Ok(conn) => conn,
            Err(error) => return Err(StoreError::from_anyhow(error)),
        };
        let result = read(&conn).map_err(StoreError::from_anyhow);
        self.inner
            .readers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(conn);
        result
    }

    /// Whether the database answers a trivial read (for `/readyz`).
    ///
    /// # Errors
    /// The read failed.
    pub async fn health(&self) -> Result<(), StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?;
            Ok(())
        })
        .await
    }

    /// Whether the database takes a write: one row written through the
    /// writer and committed like every other job (for `/healthz`).
    ///
    /// # Errors
    /// The write or its commit failed.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.prepare_cached(
                "INSERT INTO health (id, checked_at) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
            )?
            .execute(params![now()])?;
            Ok(())
        })
        .await
    }

    /// Copies the WAL into the database and truncates it to nothing, so
    /// bytes erased since (with `secure_delete`) leave no old copy in the
    /// WAL file. Waits (up to the busy timeout) for readers to move on.
    ///
    /// # Errors
    /// The checkpoint could not run; the next one will.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        let path = self.inner.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = Connection::open(&path)?;
            configure(&conn)?;
            let busy: i64 =
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
            anyhow::ensure!(busy == 0, "the checkpoint was blocked by a reader");
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Failed(Arc::new(anyhow::anyhow!("checkpoint task failed: {e}"))))?
        .map_err(StoreError::from_anyhow)
    }

    /// Group-commit figures since start.
    pub fn stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn take_reader(&self) -> anyhow::Result<Connection> {
        let pooled = self
            .inner
            .readers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .pop();
        if let Some(conn) = pooled {
            return Ok(conn);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.inner.path, flags)?;
        configure(&conn)?;
        Ok(conn)
    }
}

/// Settings every connection needs. `secure_delete` overwrites deleted
/// content (erased raw mail, delivered bodies with their links) with zeros
/// instead of leaving it in free pages.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Every statement of the hot paths stays prepared (the default keeps
    // 16, fewer than one message's decision runs).
    conn.set_prepared_statement_cache_capacity(128);
    // Savepoints' journals (the writer's, see `writer`) stay in memory
    // instead of a temporary file made and removed with each batch.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // A statement keeps the plan it was prepared with: without this, binding
    // a new value to a parameter compared with a column that has a partial
    // index (or a LIMIT) makes SQLite prepare the statement again, on every
    // run. `store/plans.rs` checks the plans hold.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(())
}

/// Current time in Unix milliseconds, for schedules shorter than a second.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Current time in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// A row count as SQLite's `LIMIT` takes it.
pub(crate) fn sql_limit(rows: usize) -> i64 {
    i64::try_from(rows).unwrap_or(i64::MAX)
}
