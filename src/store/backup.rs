//! Online backup and restore of the database, through SQLite's backup API.
//!
//! `backup` copies the database while the daemon writes to it: the copy is
//! made in one step, inside one read transaction of a read-only connection,
//! so it is one consistent snapshot (WAL lets the writer go on meanwhile; a
//! copy made in several steps would restart whenever the writer commits).
//! The copy is written beside its destination under a temporary name,
//! switched to a rollback journal (one self-contained file), checked with
//! `PRAGMA integrity_check`, synced, and only then renamed into place, so a
//! failed backup never leaves a half-written file under the name asked for.
//!
//! `restore` takes the daemon's lock (`lock`), so it refuses while a daemon
//! serves the database and no daemon starts while it runs; checks the file
//! first; keeps the database it replaces (`<db>.before-restore-<unix time>`);
//! then copies the file into the database through SQLite, so the WAL and
//! the locks of any other connection stay consistent.

use crate::store::lock::DatabaseLock;
use crate::store::migrations;
use anyhow::{Context as _, bail, ensure};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a checked database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Its schema version (`PRAGMA user_version`).
    pub schema_version: i64,
    pub customers: i64,
    pub decisions: i64,
    /// Its size in bytes.
    pub bytes: i64,
}

/// What `restore` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The database as it is now.
    pub checked: Checked,
    /// Where the database it replaced was kept, if there was one.
    pub kept: Option<PathBuf>,
}

/// Whether `other` names the database file `db` itself (or would, once
/// created), however either is spelled.
fn is_the_database(db: &Path, other: &Path) -> bool {
    let canonical = |path: &Path| -> Option<PathBuf> {
        match path.canonicalize() {
            Ok(path) => Some(path),
            Err(_) => {
                let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
                let parent = parent.unwrap_or(Path::new(".")).canonicalize().ok()?;
                Some(parent.join(path.file_name()?))
            }
        }
    };
    canonical(db).is_some_and(|db| canonical(other) == Some(db))
}

fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    ensure!(path.is_file(), "{} is not a file", path.display());
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Checks a database: `PRAGMA integrity_check` answers `ok`, and its schema
/// is one of ours, no newer than this binary.
///
/// # Errors
/// Corruption, a foreign or newer schema, or a failed read.
pub fn check(conn: &Connection) -> anyhow::Result<Checked> {
    let findings: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if findings != ["ok"] {
        bail!(
            "the integrity check failed:\n  {}",
            findings
                .iter()
                .take(10)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
    let schema_version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let latest = i64::try_from(migrations::latest())?;
    ensure!(
        (1..=latest).contains(&schema_version),
        "schema version {schema_version} is not a registrar database this version knows (1 to {latest})"
    );
    let count = |table: &str| -> anyhow::Result<i64> {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .with_context(|| format!("no {table} table: not a registrar database"))
    };
    let bytes: i64 = conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |row| row.get(0),
    )?;
    Ok(Checked {
        schema_version,
        customers: count("customers")?,
        decisions: count("decisions")?,
        bytes,
    })
}

/// How long `copy` retries while the destination is locked by a writer.
const BUSY_FOR: Duration = Duration::from_secs(30);

/// Copies everything of `src` into `dst` in one step (one snapshot). A
/// step that finds a lock held is retried for a while; a step never stops
/// halfway, so a retry starts from a fresh snapshot.
fn copy(src: &Connection, dst: &mut Connection) -> anyhow::Result<()> {
    let backup = Backup::new(src, dst)?;
    let started = std::time::Instant::now();
    loop {
        // -1: every page in one step; anything but Done (More, Busy,
        // Locked) is tried again.
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            _ => {
                ensure!(
                    started.elapsed() < BUSY_FOR,
                    "the database stayed locked for {BUSY_FOR:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Makes a consistent, checked copy of the database at `db` in `to`, while
/// a daemon may be writing to it. An existing file at `to` is replaced only
/// by a copy that passed the check.
///
/// # Errors
/// The database cannot be read, the copy cannot be written, or the copy
/// fails its check.
pub fn backup(db: &Path, to: &Path) -> anyhow::Result<Checked> {
    ensure!(
        !is_the_database(db, to),
        "{} is the database itself; name another file",
        to.display()
    );
    let src = open_read_only(db)?;
    let name = to
        .file_name()
        .with_context(|| format!("{} names no file", to.display()))?
        .to_string_lossy();
    let partial = to.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    let made = (|| {
        let mut dst = Connection::open(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        copy(&src, &mut dst).context("the copy failed")?;
        // One self-contained file, whatever the source's journal mode.
        let _: String = dst.query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))?;
        let checked = check(&dst).context("the copy is not sound")?;
        drop(dst);
        std::fs::File::open(&partial)?.sync_all()?;
        anyhow::Ok(checked)
    })();
    let checked = match made {
        Ok(checked) => checked,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    std::fs::rename(&partial, to)
        .with_context(|| format!("cannot move the copy to {}", to.display()))?;
    if let Some(dir) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The rename is durable once its directory is.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(checked)
}

/// Replaces the database at `db` with the backup `from`, refusing while a
/// daemon holds `db`. `from` is checked before anything is touched; the
/// database it replaces is kept beside it.
///
/// # Errors
/// A daemon holds the database, `from` fails its check, or a copy fails.
pub fn restore(db: &Path, from: &Path, now: i64) -> anyhow::Result<Restored> {
    ensure!(
        !is_the_database(db, from),
        "{} is the database itself, not a backup of it",
        from.display()
    );
    let _lock = DatabaseLock::acquire(db)?;
    let src = open_read_only(from)?;
    check(&src).with_context(|| format!("{} cannot be restored", from.display()))?;
    let kept = if db.exists() {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".before-restore-{now}"));
        let kept = db.with_file_name(name);
        backup(db, &kept).with_context(|| {
            format!("cannot keep a copy of {} before replacing it", db.display())
        })?;
        Some(kept)
    } else {
        None
    };
    let mut dst = Connection::open(db).with_context(|| format!("cannot open {}", db.display()))?;
    dst.busy_timeout(Duration::from_secs(5))?;
    copy(&src, &mut dst).with_context(|| format!("cannot copy into {}", db.display()))?;
    let checked = check(&dst).context("the restored database is not sound")?;
    Ok(Restored { checked, kept })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_onto_the_database_itself_is_refused_however_it_is_spelled() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("registrar.sqlite3");
        let mut conn = Connection::open(&db).expect("create");
        migrations::run(&mut conn).expect("migrate");
        drop(conn);
        let spelled_otherwise = dir.path().join(".").join("registrar.sqlite3");

        let refused = backup(&db, &spelled_otherwise).expect_err("refused");

        assert!(
            refused.to_string().contains("the database itself"),
            "{refused}"
        );
        assert!(restore(&db, &spelled_otherwise, 0).is_err());
        let copy = dir.path().join("copy.sqlite3");
        let checked = backup(&db, &copy).expect("a copy elsewhere");
        assert_eq!(checked.customers, 0);
        assert_eq!(
            checked.schema_version,
            i64::try_from(migrations::latest()).expect("small")
        );
    }
}
