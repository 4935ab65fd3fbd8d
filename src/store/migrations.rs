//! Versioned schema migrations, compiled into the binary and applied in order
//! at start-up. `PRAGMA user_version` records how many have run.

use rusqlite::Connection;

/// Every migration, oldest first. Never edit one that has shipped; add another.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_portal.sql"),
    include_str!("migrations/0003_decisions_by_service.sql"),
    include_str!("migrations/0004_bounded_intake.sql"),
    include_str!("migrations/0005_decision_notes.sql"),
    include_str!("migrations/0006_account_tokens.sql"),
    include_str!("migrations/0007_inbound_relay.sql"),
    include_str!("migrations/0008_facing_the_internet.sql"),
    include_str!("migrations/0009_delivery.sql"),
    include_str!("migrations/0010_operations.sql"),
    include_str!("migrations/0011_webhooks.sql"),
    include_str!("migrations/0012_counters_and_retention.sql"),
    include_str!("migrations/0013_purge_and_copy_indexes.sql"),
];

/// The schema version this binary migrates to.
pub fn latest() -> usize {
    MIGRATIONS.len()
}

/// Applies the migrations this database has not seen, each in its own
/// transaction.
///
/// # Errors
/// Fails when a migration fails or the database is newer than this binary.
pub fn run(conn: &mut Connection) -> anyhow::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let current = usize::try_from(current)?;
    anyhow::ensure!(
        current <= MIGRATIONS.len(),
        "the database schema (version {current}) is newer than this registrar (version {})",
        MIGRATIONS.len()
    );
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i64::try_from(index + 1)?)?;
        tx.commit()?;
        tracing::info!(schema.version = index + 1, "database migrated");
    }
    Ok(())
}
