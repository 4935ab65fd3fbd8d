//! Regression test of the query plans on the intake path: every query that
//! runs for each message or request must find its rows through an index,
//! never by scanning a table that grows with history (issue 9). A plan, not
//! a timing: `EXPLAIN QUERY PLAN` on the SQL the store really runs, against
//! the schema the migrations really make.

use super::{counters, customers, inbound, migrations, outbox, sessions, tokens};
use rusqlite::{Connection, params_from_iter, types::Null};

/// Tables that grow with traffic, and the aliases our queries give them.
const GROWING: &[&str] = &[
    "inbound",
    "decisions",
    "customers",
    "outbox",
    "activation_tokens",
    "sessions",
    "reply_counts",
    "i",
    "d",
    "c",
    "t",
    "s",
];

/// Every query on the intake path (mail, portal, activation, outbox claim
/// and marks, `/metrics`) and in the periodic purge, by name.
fn queries() -> Vec<(&'static str, String)> {
    vec![
        (
            "earlier copies by Message-ID",
            inbound::COPIES_BY_MESSAGE_ID.into(),
        ),
        (
            "earlier copies by content",
            inbound::COPIES_BY_CONTENT.into(),
        ),
        ("decision of an earlier copy", inbound::DECISION_OF.into()),
        ("customer by identity", customers::by_identity_sql()),
        (
            "replies of a key in the last day",
            counters::LAST_DAY.into(),
        ),
        ("outbox claim", outbox::next_due_sql(32)),
        ("outbox claimed reply", outbox::DUE_REPLY.into()),
        ("outbox next due time", outbox::NEXT_DUE_AT.into()),
        ("outbox mark sent", outbox::MARK_SENT.into()),
        ("outbox queued count", outbox::QUEUED.into()),
        ("token replace", tokens::DELETE_UNUSED.into()),
        ("token lookup", tokens::LIVE_CUSTOMER.into()),
        ("token consume", tokens::CONSUME.into()),
        ("session lookup", sessions::CUSTOMER.into()),
        ("purge of raw bytes", inbound::ERASE_RAW_BEFORE.into()),
        ("purge of inbound: oldest", inbound::OLDEST_BEFORE.into()),
        (
            "purge of inbound: unlink decisions",
            inbound::UNLINK_DECISIONS.into(),
        ),
        ("purge of inbound: delete", inbound::DELETE_INBOUND.into()),
        (
            "purge of decisions: next after cursor",
            inbound::DECISIONS_AFTER_CURSOR.into(),
        ),
        (
            "purge of decisions: delete",
            inbound::DELETE_DECISION.into(),
        ),
        ("purge of finished replies", outbox::PURGE_FINISHED.into()),
        ("purge of reply counts", counters::PURGE.into()),
        ("purge of expired sessions", sessions::PURGE_EXPIRED.into()),
        ("purge of idle sessions", sessions::PURGE_IDLE.into()),
        (
            "purge of pending customers",
            customers::PURGE_PENDING_BEFORE.into(),
        ),
    ]
}

/// The plan's lines, e.g. `SEARCH i USING INDEX inbound_by_content (...)`.
fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut statement = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap_or_else(|e| panic!("cannot plan {sql}: {e}"));
    let nulls = vec![Null; statement.parameter_count()];
    statement
        .query_map(params_from_iter(nulls), |row| row.get::<_, String>(3))
        .and_then(Iterator::collect)
        .unwrap_or_else(|e| panic!("cannot plan {sql}: {e}"))
}

/// A full scan of a growing table, even through a covering index
/// (`SCAN d USING INDEX ...` still reads every row).
fn scans_growing_table(line: &str) -> bool {
    line.strip_prefix("SCAN ")
        .and_then(|rest| rest.split_whitespace().next())
        .is_some_and(|name| GROWING.contains(&name))
}

#[test]
fn intake_queries_use_indexes_and_scan_no_growing_table() {
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    migrations::run(&mut conn).expect("migrations run");
    let mut failures = Vec::new();
    for (name, sql) in queries() {
        let lines = plan(&conn, &sql);
        // The plans, for the record (`--no-capture` shows them).
        println!("{name}:\n    {}", lines.join("\n    "));
        if lines.iter().any(|line| scans_growing_table(line)) {
            failures.push(format!("{name}:\n    {}", lines.join("\n    ")));
        }
        assert!(
            lines.iter().any(|line| line.starts_with("SEARCH ")),
            "{name} finds no row through an index:\n    {}",
            lines.join("\n    ")
        );
    }
    assert!(
        failures.is_empty(),
        "queries on the intake path scan a growing table:\n{}",
        failures.join("\n")
    );
}

#[test]
fn reply_counts_are_read_from_the_primary_key_alone() {
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    migrations::run(&mut conn).expect("migrations run");
    let lines = plan(&conn, counters::LAST_DAY);
    assert!(
        lines.iter().any(|line| line
            .contains("SEARCH reply_counts USING PRIMARY KEY (scope=? AND key=? AND hour>?)")),
        "the reply count no longer reads its key's hours by primary key: {lines:?}"
    );
}

#[test]
fn the_scan_check_catches_the_scan_issue_9_found() {
    // Without an index on the foreign key `decisions.inbound_id` (schema
    // version 3), the old OR join was planned as `SCAN d`: every decision
    // ever recorded, read for every message.
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    migrations::run(&mut conn).expect("migrations run");
    conn.execute_batch("DROP INDEX decisions_by_inbound")
        .expect("index dropped");
    let lines = plan(
        &conn,
        "SELECT d.outcome FROM inbound i JOIN decisions d ON d.inbound_id = i.id
         WHERE (i.message_id = ?1 AND i.envelope_from = ?2) OR i.content_sha256 = ?3
         ORDER BY i.id DESC LIMIT 1",
    );
    assert!(
        lines.iter().any(|line| scans_growing_table(line)),
        "{lines:?}"
    );
}

#[test]
fn the_queries_run_for_every_message_are_never_prepared_again() {
    // SQLite built with STAT4 (rusqlite's bundled build) prepares some
    // statements again whenever a parameter gets a new value (a join, an
    // ORDER BY, a LIMIT ?): the planning then costs more than the lookup.
    // The queries the writer runs for every message must not be among them.
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    migrations::run(&mut conn).expect("migrations run");
    let hot = [
        inbound::COPIES_BY_MESSAGE_ID.to_owned(),
        inbound::COPIES_BY_CONTENT.to_owned(),
        customers::by_identity_sql(),
        counters::LAST_DAY.to_owned(),
        counters::BUMP.to_owned(),
        outbox::next_due_sql(32),
    ];
    for sql in hot {
        let mut statement = conn.prepare(&sql).expect("prepare");
        for round in 0..3i64 {
            for index in 1..=statement.parameter_count() {
                let value = round * 1000 + i64::try_from(index).expect("small");
                statement.raw_bind_parameter(index, value).expect("bind");
            }
            let mut rows = statement.raw_query();
            while rows.next().expect("step").is_some() {}
        }
        assert_eq!(
            statement.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "prepared again for new values: {sql}"
        );
    }
}
