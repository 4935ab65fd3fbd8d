//! The checkpointer: copies the write-ahead log into the database file on a
//! thread and connection of its own, a few times a second.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its
//! threshold, so the writer, and every job of that batch, waited for the
//! copy and an fsync of the database file. A passive checkpoint from here
//! runs beside the writer instead. It stops when the `Store` is dropped.

use anyhow::Context as _;
use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// How often the log is copied into the database file.
const INTERVAL: Duration = Duration::from_millis(200);

/// Starts the checkpointer on the database at `path`; it runs until the
/// returned sender is dropped.
///
/// # Errors
/// The database cannot be opened or the thread cannot start.
pub(super) fn spawn(path: &Path) -> anyhow::Result<mpsc::Sender<()>> {
    let conn = Connection::open(path)
        .with_context(|| format!("failed to open the database {}", path.display()))?;
    super::configure(&conn).context("failed to configure the checkpoint connection")?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                // Passive: copies what no reader still needs, never waits for
                // the writer or a reader.
                if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                {
                    tracing::warn!(error.message = %error, "WAL checkpoint failed");
                }
            }
        })?;
    Ok(stop)
}
