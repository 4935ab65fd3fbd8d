//! The daemon's hold on its database: an exclusive `flock` on a lock file
//! beside it (`registrar.sqlite3.lock` for `registrar.sqlite3`), taken when
//! the daemon starts and held until it exits.
//!
//! A second daemon on the same database refuses to start, and `registrar
//! restore` refuses to replace a database a daemon is serving. The kernel
//! drops the lock when the process dies however it dies, so a crash leaves
//! nothing stale behind; the file itself stays (removing a lock file races
//! with whoever opens it next). The operator's other commands (`invite`,
//! `customers`, `backup`, …) work beside the daemon and never take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it: a daemon serves this database (or a
    /// restore is replacing it).
    #[error(
        "{db} is in use by another registrar{holder}; stop it first (it holds {lock})",
        db = .db.display(),
        lock = .lock.display(),
        holder = .pid.map(|pid| format!(", process {pid}")).unwrap_or_default()
    )]
    Held {
        db: PathBuf,
        lock: PathBuf,
        pid: Option<u32>,
    },
    #[error("cannot use the lock file {}: {source}", .lock.display())]
    Io {
        lock: PathBuf,
        source: std::io::Error,
    },
}

/// An exclusive hold on a database; released when dropped (or when the
/// process ends).
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

/// The lock file of the database at `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    db.with_file_name(name)
}

impl DatabaseLock {
    /// Takes the lock of the database at `db` without waiting, and writes
    /// our process id into the lock file for whoever finds it held.
    ///
    /// # Errors
    /// `Held` when another process holds it; `Io` when the file cannot be
    /// created.
    pub fn acquire(db: &Path) -> Result<Self, LockError> {
        let lock = lock_path(db);
        let io = |source| LockError::Io {
            lock: lock.clone(),
            source,
        };
        // Created private, as the store creates the database and its folder
        // (the lock is taken first, so it may be what makes the folder).
        if let Some(parent) = lock.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    db: db.to_owned(),
                    lock: lock.clone(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("registrar.sqlite3");
        let first = DatabaseLock::acquire(&db).expect("first");
        match DatabaseLock::acquire(&db) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        DatabaseLock::acquire(&db).expect("free again");
        assert_eq!(
            lock_path(&db),
            dir.path().join("registrar.sqlite3.lock"),
            "the lock sits beside the database"
        );
    }
}
