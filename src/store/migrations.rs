//! Versioned schema migrations, compiled into the binary and applied in order
//! at start-up. `PRAGMA user_version` records how many have run. Most are
//! SQL scripts; a step SQL alone cannot take is a function.

use rusqlite::{Connection, Transaction, params};

/// One step of the schema.
#[derive(Clone, Copy)]
enum Migration {
    /// A script, run as it is.
    Sql(&'static str),
    /// A step a script cannot take.
    Code(fn(&Transaction<'_>) -> anyhow::Result<()>),
}

impl Migration {
    fn apply(self, tx: &Transaction<'_>) -> anyhow::Result<()> {
        match self {
            Migration::Sql(sql) => Ok(tx.execute_batch(sql)?),
            Migration::Code(step) => step(tx),
        }
    }
}

/// Every migration, oldest first. Never edit one that has shipped; add another.
const MIGRATIONS: &[Migration] = &[
    Migration::Sql(include_str!("migrations/0001_initial.sql")),
    Migration::Sql(include_str!("migrations/0002_portal.sql")),
    Migration::Sql(include_str!("migrations/0003_decisions_by_service.sql")),
    Migration::Sql(include_str!("migrations/0004_bounded_intake.sql")),
    Migration::Sql(include_str!("migrations/0005_decision_notes.sql")),
    Migration::Sql(include_str!("migrations/0006_account_tokens.sql")),
    Migration::Sql(include_str!("migrations/0007_inbound_relay.sql")),
    Migration::Sql(include_str!("migrations/0008_facing_the_internet.sql")),
    Migration::Sql(include_str!("migrations/0009_delivery.sql")),
    Migration::Sql(include_str!("migrations/0010_operations.sql")),
    Migration::Sql(include_str!("migrations/0011_webhooks.sql")),
    Migration::Sql(include_str!("migrations/0012_counters_and_retention.sql")),
    Migration::Sql(include_str!("migrations/0013_purge_and_copy_indexes.sql")),
    Migration::Code(equality_checks),
    Migration::Sql(include_str!("migrations/0015_outbox_bodies.sql")),
    Migration::Sql(include_str!(
        "migrations/0016_fewer_indexes_per_message.sql"
    )),
    Migration::Code(updated_at_not_null),
    Migration::Sql(include_str!("migrations/0018_copy_indexes_by_period.sql")),
    Migration::Sql(include_str!("migrations/0019_one_index_on_the_queue.sql")),
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
    migrate_to(conn, MIGRATIONS.len())
}

/// `run`, stopping at schema version `target`.
fn migrate_to(conn: &mut Connection, target: usize) -> anyhow::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let current = usize::try_from(current)?;
    anyhow::ensure!(
        current <= MIGRATIONS.len(),
        "the database schema (version {current}) is newer than this registrar (version {})",
        MIGRATIONS.len()
    );
    for (index, migration) in MIGRATIONS.iter().enumerate().take(target).skip(current) {
        let tx = conn.transaction()?;
        migration.apply(&tx)?;
        tx.pragma_update(None, "user_version", i64::try_from(index + 1)?)?;
        tx.commit()?;
        tracing::info!(schema.version = index + 1, "database migrated");
    }
    Ok(())
}

/// The CHECK constraints of the tables a registration writes, each
/// `column IN (a, b, c)` and the chain of equalities that replaces it.
///
/// SQLite checks an IN list of three values or more against a temporary
/// index it builds every time a statement checks a row: about 2 µs, seven
/// times per registration, on the writer thread. The chain means the same
/// and builds nothing.
const EQUALITY_CHECKS: &[(&str, &str, &str)] = &[
    (
        "customers",
        "CHECK (status IN ('pending', 'active', 'disabled'))",
        "CHECK (status = 'pending' OR status = 'active' OR status = 'disabled')",
    ),
    (
        "outbox",
        "CHECK (status IN ('queued', 'sent', 'dead'))",
        "CHECK (status = 'queued' OR status = 'sent' OR status = 'dead')",
    ),
    (
        "reply_counts",
        "CHECK (scope IN ('domain', 'network', 'service'))",
        "CHECK (scope = 'domain' OR scope = 'network' OR scope = 'service')",
    ),
    (
        "webhook_events",
        "CHECK (status IN ('queued', 'delivered', 'dead'))",
        "CHECK (status = 'queued' OR status = 'delivered' OR status = 'dead')",
    ),
];

/// Migration 14: `EQUALITY_CHECKS`. SQLite cannot alter a CHECK constraint,
/// and rebuilding `customers` and `outbox` would copy every row. Every row
/// already satisfies the new constraint, which means the same as the old.
fn equality_checks(tx: &Transaction<'_>) -> anyhow::Result<()> {
    edit_definitions(tx, EQUALITY_CHECKS)
}

/// Migration 17: `customers.updated_at` is NOT NULL, and the trigger that
/// filled it in on insert goes.
///
/// Schema 11 added the column with two triggers, so that no write path could
/// forget it. The insert trigger's `WHEN NEW.updated_at IS NULL` is never
/// true for the daemon's own inserts, which set it; yet SQLite ran it for
/// every new customer: about 6,500 of the writer's instructions per registration
/// (issue 9). NOT NULL keeps the guarantee for the price of one test of the
/// value: an insert that forgets the column fails. The update trigger stays.
fn updated_at_not_null(tx: &Transaction<'_>) -> anyhow::Result<()> {
    // None is NULL (the insert trigger saw to it); this makes sure.
    tx.execute(
        "UPDATE customers SET updated_at = COALESCE(activated_at, created_at)
         WHERE updated_at IS NULL",
        [],
    )?;
    edit_definitions(
        tx,
        &[(
            "customers",
            ", updated_at INTEGER)",
            ", updated_at INTEGER NOT NULL)",
        )],
    )?;
    tx.execute_batch("DROP TRIGGER customers_updated_on_insert")?;
    Ok(())
}

/// Edits table definitions in place: in each `(table, from, to)`, the text
/// `from` becomes `to`. SQLite cannot alter a constraint, and rebuilding a
/// table copies every row; when every row already satisfies the new
/// definition, SQLite's documented in-place edit of the schema applies
/// (<https://www.sqlite.org/lang_altertable.html#otheralter>): the table's
/// definition is rewritten in `sqlite_schema` and the schema version bumped,
/// in the migration's transaction, so other connections read it anew.
fn edit_definitions(tx: &Transaction<'_>, edits: &[(&str, &str, &str)]) -> anyhow::Result<()> {
    let version: i64 = tx.query_row("PRAGMA schema_version", [], |row| row.get(0))?;
    tx.pragma_update(None, "writable_schema", true)?;
    let edited = edits.iter().try_for_each(|(table, from, to)| {
        let changed = tx.execute(
            "UPDATE sqlite_schema SET sql = replace(sql, ?2, ?3)
             WHERE type = 'table' AND name = ?1 AND instr(sql, ?2) > 0",
            params![table, from, to],
        )?;
        anyhow::ensure!(changed == 1, "the table {table} has no `{from}`");
        Ok(())
    });
    tx.pragma_update(None, "schema_version", version + 1)?;
    // Off again, and this connection reads the schema anew.
    tx.pragma_update(None, "writable_schema", "RESET")?;
    edited
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database migrated to `version` only.
    fn migrated_to(version: usize) -> Connection {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        migrate_to(&mut conn, version).expect("migrates");
        conn
    }

    fn insert_customer(conn: &Connection, identity: &str, status: &str) -> rusqlite::Result<usize> {
        conn.execute(
            "INSERT INTO customers (email, identity, service, status, source, created_at, updated_at)
             VALUES (?1, ?1, 'desk', ?2, 'mail', 1, 1)",
            params![identity, status],
        )
    }

    #[test]
    fn the_checks_keep_their_meaning_on_a_database_that_held_rows_before() {
        let mut conn = migrated_to(13);
        insert_customer(&conn, "a@example.com", "active").expect("valid before");
        conn.execute(
            "INSERT INTO reply_counts (scope, service, key, hour, replies) VALUES ('domain', 'desk', 'example.com', 1, 2)",
            [],
        )
        .expect("valid before");

        run(&mut conn).expect("migrates");

        let (customers, replies): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM customers), (SELECT SUM(replies) FROM reply_counts)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("rows read");
        assert_eq!((customers, replies), (1, 2), "rows kept");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("checked");
        assert_eq!(check, "ok");

        for status in ["pending", "active", "disabled"] {
            insert_customer(&conn, &format!("{status}@example.com"), status)
                .unwrap_or_else(|error| panic!("{status} refused: {error}"));
        }
        let refused = insert_customer(&conn, "b@example.com", "deleted").expect_err("refused");
        assert!(
            refused.to_string().contains("CHECK constraint failed"),
            "{refused}"
        );
        let refused = conn
            .execute(
                "INSERT INTO reply_counts (scope, service, key, hour, replies) VALUES ('planet', 'desk', '', 1, 1)",
                [],
            )
            .expect_err("refused");
        assert!(
            refused.to_string().contains("CHECK constraint failed"),
            "{refused}"
        );
        let refused = conn
            .execute("UPDATE customers SET status = 'gone'", [])
            .expect_err("refused");
        assert!(
            refused.to_string().contains("CHECK constraint failed"),
            "{refused}"
        );
    }

    use crate::store::fixtures::message;
    use crate::store::outbox;

    fn insert_reply(conn: &Connection, status: &str, body: Option<&[u8]>) -> i64 {
        conn.execute(
            "INSERT INTO outbox (created_at, kind, recipient, rate_key, envelope_from, message_id,
                                 body, status, next_attempt_at)
             VALUES (1, 'activation', 'a@example.com', 'a@example.com', '', 'm', ?1, ?2, 1)",
            params![body, status],
        )
        .expect("valid at schema 14");
        conn.last_insert_rowid()
    }

    #[test]
    fn queued_bodies_move_to_their_own_table_and_go_when_their_reply_is_sent() {
        let mut conn = migrated_to(14);
        conn.pragma_update(None, "foreign_keys", "ON")
            .expect("as the store runs");
        let queued = insert_reply(&conn, "queued", Some(b"a live link"));
        insert_reply(&conn, "sent", None);

        run(&mut conn).expect("migrates");

        let bodies: Vec<(i64, Vec<u8>)> = conn
            .prepare("SELECT outbox_id, body FROM outbox_bodies")
            .and_then(|mut s| {
                s.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .expect("bodies read");
        assert_eq!(bodies, vec![(queued, b"a live link".to_vec())]);
        let left: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE body IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .expect("counted");
        assert_eq!(left, 0, "no body is left in the outbox rows");
        let due = outbox::next_due(&conn, 2, 10).expect("claims");
        assert_eq!(due.len(), 1, "the queued reply is still due");
        assert_eq!(
            (due[0].id, due[0].body.as_slice()),
            (queued, &b"a live link"[..])
        );
        let bodies = |conn: &Connection| -> i64 {
            conn.query_row("SELECT COUNT(*) FROM outbox_bodies", [], |r| r.get(0))
                .expect("counted")
        };
        let attempt = outbox::Attempt {
            at: 3,
            code: Some(451),
            reply: "try later",
        };
        outbox::mark_retry(&conn, queued, 4, attempt).expect("retries");
        assert_eq!(bodies(&conn), 1, "a reply tried again keeps its body");
        outbox::mark_sent(&conn, queued, attempt).expect("sent");
        assert_eq!(bodies(&conn), 0, "a sent reply's body goes");

        let again = insert_reply(&conn, "queued", None);
        conn.execute(
            "INSERT INTO outbox_bodies (outbox_id, body) VALUES (?1, x'00')",
            [again],
        )
        .expect("a body");
        conn.execute("DELETE FROM outbox WHERE id = ?1", [again])
            .expect("deletes");
        assert_eq!(bodies(&conn), 0, "a deleted reply takes its body with it");
    }

    fn raw_cursor(conn: &Connection) -> i64 {
        conn.query_row(
            "SELECT after_id FROM purge_cursors WHERE name = 'inbound_raw'",
            [],
            |row| row.get(0),
        )
        .expect("the raw walk has a cursor")
    }

    #[test]
    fn the_raw_walk_starts_before_the_oldest_message_that_keeps_its_bytes() {
        let mut conn = migrated_to(15);
        message(&conn, 10, None);
        let oldest_kept = message(&conn, 20, Some(b"raw"));
        message(&conn, 30, Some(b"raw"));

        run(&mut conn).expect("migrates");

        assert_eq!(raw_cursor(&conn), oldest_kept - 1);
        let indexes: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name IN
                 ('inbound_by_age', 'inbound_raw_by_age', 'outbox_finished_by_age')",
                [],
                |row| row.get(0),
            )
            .expect("counted");
        assert_eq!(indexes, 0, "the indexes on age are gone");

        let mut erased = migrated_to(15);
        message(&erased, 10, None);
        let last = message(&erased, 20, None);
        run(&mut erased).expect("migrates");
        assert_eq!(raw_cursor(&erased), last, "nothing is left to erase");
    }

    #[test]
    fn every_customer_has_a_time_of_change_without_the_insert_trigger() {
        let mut conn = migrated_to(16);
        insert_customer(&conn, "old@example.com", "active").expect("valid at schema 16");

        run(&mut conn).expect("migrates");

        let triggers: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger' ORDER BY name")
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .expect("triggers read");
        assert_eq!(triggers, ["customers_updated_on_update"]);
        let forgotten = conn
            .execute(
                "INSERT INTO customers (email, identity, service, status, source, created_at)
                 VALUES ('new@example.com', 'new@example.com', 'desk', 'pending', 'mail', 5)",
                [],
            )
            .expect_err("an insert that forgets updated_at fails");
        assert!(
            forgotten.to_string().contains("NOT NULL constraint failed"),
            "{forgotten}"
        );

        let customer = crate::store::customers::NewCustomer {
            email: "new@example.com",
            identity: "new@example.com",
            name: None,
            company: None,
            service: "desk",
            source: "mail",
        };
        let id = crate::store::customers::insert_pending(&conn, &customer, 7).expect("inserted");
        let updated_at = |conn: &Connection| -> i64 {
            conn.query_row(
                "SELECT updated_at FROM customers WHERE id = ?1",
                [id],
                |row| row.get(0),
            )
            .expect("read")
        };
        assert_eq!(updated_at(&conn), 7, "a new customer changed when created");
        conn.execute("UPDATE customers SET name = 'New' WHERE id = ?1", [id])
            .expect("updated");
        assert!(updated_at(&conn) > 7, "the update trigger still keeps it");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("checked");
        assert_eq!(check, "ok");
    }

    #[test]
    fn no_table_checks_an_in_list_of_three_values_or_more() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        run(&mut conn).expect("migrates");
        for (table, from, to) in EQUALITY_CHECKS {
            let sql: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                    [table],
                    |row| row.get(0),
                )
                .expect("table exists");
            assert!(!sql.contains(from) && sql.contains(to), "{table}: {sql}");
        }
    }
}
