//! The syncer: makes committed batches durable, then answers their jobs.
//!
//! The writer commits with `synchronous = NORMAL`, which writes the commit's
//! frames to the write-ahead log without waiting for the disk, and hands the
//! batch here. This thread `fdatasync`s the log file (one sync covers every
//! batch committed before it began) and only then answers the jobs. So a
//! `250` still means the message survives a power cut, as with
//! `synchronous = FULL`, but the writer runs the next batch while the disk
//! syncs instead of waiting for it: the writer's time per batch no longer
//! includes the disk's.
//!
//! What a commit makes visible before its sync: other connections may read
//! it (the outbox may send a reply) a few milliseconds before it is durable.
//! A power cut in between loses the rows of a message whose sender heard no
//! `250`, and which it therefore sends again.

use crate::store::StoreError;
use crate::store::writer::{Job, Wake};
use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use tokio::sync::mpsc as jobs;

/// Committed batches waiting for the sync.
pub(super) type Committed = Vec<Job>;

/// Starts the syncer for the database at `path`; it ends when every sender
/// is dropped, after answering what it holds. `syncing` says whether it is
/// busy; when it runs out of work it clears it and sends the writer a
/// `Wake` through `writer`, so that a transaction kept open meanwhile
/// commits.
///
/// # Errors
/// The thread cannot start.
pub(super) fn spawn(
    path: &Path,
    writer: jobs::WeakSender<Job>,
    syncing: Arc<AtomicBool>,
) -> anyhow::Result<mpsc::Sender<Committed>> {
    let (sender, receiver) = mpsc::channel::<Committed>();
    let mut log = Log::new(path);
    std::thread::Builder::new()
        .name("store-sync".into())
        .spawn(move || {
            let mut pending = receiver.recv().ok();
            while let Some(first) = pending.take() {
                let mut batches = vec![first];
                batches.extend(receiver.try_iter());
                let synced = log.sync();
                for job in batches.into_iter().flatten() {
                    job.answer(synced.clone());
                }
                pending = match receiver.try_recv() {
                    Ok(batch) => Some(batch),
                    Err(mpsc::TryRecvError::Empty) => {
                        syncing.store(false, Ordering::Release);
                        if let Some(writer) = writer.upgrade() {
                            // A full queue wakes the writer anyway.
                            let _ = writer.try_send(Box::new(Wake));
                        }
                        receiver.recv().ok()
                    }
                    Err(mpsc::TryRecvError::Disconnected) => None,
                };
            }
        })?;
    Ok(sender)
}

/// The write-ahead log file, opened once and again if SQLite made a new one.
struct Log {
    path: PathBuf,
    file: Option<File>,
}

impl Log {
    fn new(database: &Path) -> Self {
        let mut path = database.as_os_str().to_owned();
        path.push("-wal");
        Self {
            path: PathBuf::from(path),
            file: None,
        }
    }

    /// Syncs the log's data to disk.
    fn sync(&mut self) -> Result<(), StoreError> {
        self.sync_once().map_err(|error| {
            // The commit is in the log but may not be on disk: the jobs hear
            // an error (451 for mail), so nobody is told "done" for it.
            tracing::error!(error.message = %error, "failed to sync the write-ahead log");
            self.file = None;
            StoreError::Failed(Arc::new(
                anyhow::Error::new(error).context("failed to sync the write-ahead log"),
            ))
        })
    }

    fn sync_once(&mut self) -> std::io::Result<()> {
        // SQLite keeps its log file while the writer's connection is open;
        // should it ever make a new one, follow it.
        let current = std::fs::metadata(&self.path)?;
        let stale = match &self.file {
            Some(file) => {
                let open = file.metadata()?;
                open.ino() != current.ino() || open.dev() != current.dev()
            }
            None => true,
        };
        if stale {
            self.file = Some(File::open(&self.path)?);
        }
        match &self.file {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }
}
