//! Storage: one SQLite file in WAL mode; a job is answered only once its
//! commit is on disk (`sync`), so a `250` survives power loss and not only
//! a crash.
//!
//! All writes go through one writer thread (`writer`) that commits in groups
//! and leaves the waiting for the disk to the syncers (`sync`) and the
//! copying of the log into the file to the checkpointer (`checkpoint`);
//! reads use a small pool of read connections. Async callers reach both
//! without blocking a tokio worker: writes wait on a oneshot channel, reads run
//! on the blocking pool. This module and its children are the only code that
//! writes SQL.

mod checkpoint;
pub mod counters;
pub mod customers;
pub mod inbound;
mod migrations;
pub mod outbox;
#[cfg(test)]
mod plans;
pub mod sessions;
mod sync;
pub mod tokens;
mod writer;

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

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
    /// starts the writer thread.
    ///
    /// # Errors
    /// Fails when the file cannot be opened, configured or migrated.
    pub fn open(path: &Path, max_batch: usize) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| {
                format!("failed to create the data directory {}", parent.display())
            })?;
        }
        let mut conn = Connection::open(path)
            .with_context(|| format!("failed to open the database {}", path.display()))?;
        configure(&conn).context("failed to configure the database")?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "the database refused WAL mode (got {mode})"
        );
        migrations::run(&mut conn).context("failed to migrate the database")?;
        // The checkpointer thread copies the log into the file, and the
        // syncer makes each commit durable before it is answered: the
        // writer's commits wait for neither.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // A log that grew long under load is cut back when it starts over.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        let log = Arc::new(checkpoint::LogLength::default());
        let checkpointer = checkpoint::spawn(path, Arc::clone(&log))?;

        let stats = Arc::new(WriterStats::default());
        let jobs = writer::spawn(conn, path, max_batch, Arc::clone(&stats), log)?;
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
    /// commit. If the job fails, only its own changes are rolled back. The
    /// job may run twice (the writer runs a batch again, one savepoint per
    /// job, when one of its jobs failed); only the committed run counts, so
    /// a job must do nothing but SQL.
    ///
    /// # Errors
    /// The job's own error, or a commit failure (the job's changes are gone).
    pub async fn write<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let (job, answer) = writer::job(job);
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
        F: Fn(&Connection) -> anyhow::Result<T> + Send + 'static,
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

    /// Whether the database answers a trivial read (for `/healthz`).
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

/// Settings every connection needs.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Every statement of the hot paths stays prepared.
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// Current time in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}
