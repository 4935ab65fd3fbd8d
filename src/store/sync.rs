//! The syncers: make committed batches durable, then answer their jobs.
//!
//! The writer commits with `synchronous = NORMAL`, which writes the commit's
//! frames to the write-ahead log without waiting for the disk, and hands the
//! batch here. A syncer `fdatasync`s the log file (one sync covers every
//! batch committed before it began) and only then answers the jobs. So a
//! `250` still means the message survives a power cut, as with
//! `synchronous = FULL`, but the writer runs the next batch while the disk
//! syncs instead of waiting for it.
//!
//! There are two syncers: a batch committed while one sync is under way is
//! taken by the other at once, instead of waiting for the first sync to end
//! and then for its own. (Syncs of one file overlap well: a sync finds
//! little left to write when another has just flushed.)
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::mpsc as jobs;

/// Committed batches waiting for a sync.
pub(super) type Committed = Vec<Job>;

/// Syncs under way at once at most.
pub(super) const SYNCERS: usize = 2;

/// Starts the syncers for the database at `path`; they end when every
/// sender is dropped, after answering what they hold. `in_flight` counts
/// the batches committed and not yet answered (the writer adds, a syncer
/// takes away); when it drops below `SYNCERS`, a syncer sends the writer a
/// `Wake` through `writer`, so that a transaction kept open meanwhile
/// commits.
///
/// # Errors
/// A thread cannot start.
pub(super) fn spawn(
    path: &Path,
    writer: &jobs::WeakSender<Job>,
    in_flight: &Arc<AtomicUsize>,
) -> anyhow::Result<mpsc::Sender<Committed>> {
    let (sender, receiver) = mpsc::channel::<Committed>();
    let receiver = Arc::new(Mutex::new(receiver));
    for n in 0..SYNCERS {
        let receiver = Arc::clone(&receiver);
        let writer = writer.clone();
        let in_flight = Arc::clone(in_flight);
        let mut log = Log::new(path);
        std::thread::Builder::new()
            .name(format!("store-sync-{n}"))
            .spawn(move || {
                while let Some(batches) = take(&receiver) {
                    let taken = batches.len();
                    let synced = log.sync();
                    for job in batches.into_iter().flatten() {
                        job.answer(synced.clone());
                    }
                    if in_flight.fetch_sub(taken, Ordering::AcqRel) - taken < SYNCERS
                        && let Some(writer) = writer.upgrade()
                    {
                        // A full queue wakes the writer anyway.
                        let _ = writer.try_send(Box::new(Wake));
                    }
                }
            })?;
    }
    Ok(sender)
}

/// Waits for committed batches and takes every one waiting; `None` once the
/// writer is gone.
fn take(receiver: &Mutex<mpsc::Receiver<Committed>>) -> Option<Vec<Committed>> {
    let receiver = receiver
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let first = receiver.recv().ok()?;
    let mut batches = vec![first];
    batches.extend(receiver.try_iter());
    Some(batches)
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
