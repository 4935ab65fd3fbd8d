//! The checkpointer: copies the write-ahead log into the database file on a
//! thread and connection of its own, a few times a second.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its
//! threshold, so the writer, and every job of that batch, waited for the
//! copy and an fsync of the database file. A passive checkpoint from here
//! runs beside the writer instead. It stops when the `Store` is dropped.
//!
//! The log only starts over from its beginning when a write transaction
//! begins with every frame copied, which a checkpoint beside a busy writer
//! never sees. So this thread publishes the log's length, and once it has
//! grown past `RESTART_FRAMES` the writer checkpoints between two batches
//! itself (`restart_if_long`): the copy is nearly done by then, and the
//! writer's next transaction starts the log over.

use anyhow::Context as _;
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How often the log is copied into the database file.
const INTERVAL: Duration = Duration::from_millis(200);

/// Frames (pages) in the log past which the writer makes it start over:
/// 32 MiB of 4 KiB pages.
const RESTART_FRAMES: i64 = 8192;

/// The log's length in frames, as the checkpointer last saw it.
#[derive(Debug, Default)]
pub(super) struct LogLength(AtomicI64);

impl LogLength {
    /// Between two batches, on the writer's connection: when the log has
    /// grown long, copies the rest of it so that the next transaction
    /// starts it over.
    pub(super) fn restart_if_long(&self, conn: &Connection) {
        if self.0.load(Ordering::Relaxed) <= RESTART_FRAMES {
            return;
        }
        self.0.store(0, Ordering::Relaxed);
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error.message = %error, "WAL checkpoint by the writer failed");
        }
    }
}

/// Starts the checkpointer on the database at `path`; it runs until the
/// returned sender is dropped, and keeps `length` up to date.
///
/// # Errors
/// The database cannot be opened or the thread cannot start.
pub(super) fn spawn(path: &Path, length: Arc<LogLength>) -> anyhow::Result<mpsc::Sender<()>> {
    let conn = Connection::open(path)
        .with_context(|| format!("failed to open the database {}", path.display()))?;
    super::configure(&conn).context("failed to configure the checkpoint connection")?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                // Passive: copies what no reader still needs, never waits for
                // the writer or a reader. Its second column is the log's
                // length in frames.
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                    row.get::<_, i64>(1)
                }) {
                    Ok(frames) => length.0.store(frames, Ordering::Relaxed),
                    Err(error) => tracing::warn!(error.message = %error, "WAL checkpoint failed"),
                }
            }
        })?;
    Ok(stop)
}
