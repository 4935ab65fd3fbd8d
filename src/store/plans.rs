//! Regression test of the query plans on the intake path: every query that
//! runs for each message or request must find its rows through an index,
//! never by scanning a table that grows with history (issue 9). A plan, not
//! a timing: `EXPLAIN QUERY PLAN` on the SQL the store really runs, against
//! the schema the migrations really make.

use super::{
    account_tokens, bounces, customers, inbound, migrations, outbox, reply_counts, sessions,
    suppressions, tokens, webhook_events,
};
use rusqlite::{Connection, params_from_iter, types::Null};

/// Tables that grow with traffic, and the aliases our queries give them.
const GROWING: &[&str] = &[
    "inbound",
    "decisions",
    "customers",
    "outbox",
    "outbox_bodies",
    "activation_tokens",
    "account_tokens",
    "sessions",
    "webhook_events",
    "reply_counts",
    "opt_out_tokens",
    "i",
    "d",
    "o",
    "b",
    "c",
    "t",
    "s",
];

/// Every query on the intake path (mail, portal, activation, outbox and
/// webhook claims), of the customer API's list and of the periodic purge,
/// by name.
fn queries() -> Vec<(&'static str, String)> {
    vec![
        (
            "earlier copy by Message-ID",
            inbound::EARLIER_BY_MESSAGE_ID.into(),
        ),
        (
            "earlier copy by content",
            inbound::EARLIER_BY_CONTENT.into(),
        ),
        ("daily reply budgets", reply_counts::LAST_DAY.into()),
        ("customer by identity", customers::by_identity_sql()),
        ("reply history of an address", outbox::HISTORY.into()),
        ("outbox claim", outbox::NEXT_DUE.into()),
        ("outbox next due time", outbox::NEXT_DUE_AT.into()),
        ("outbox mark sent", outbox::MARK_SENT.into()),
        ("outbox body deleted", outbox::DELETE_BODY.into()),
        ("reply named by a VERP token", bounces::BY_VERP_TOKEN.into()),
        ("bouncing address", bounces::IS_BOUNCING.into()),
        ("outbox depth (scrape)", outbox::QUEUED.into()),
        (
            "messages of an identity (export)",
            inbound::MESSAGES_OF.into(),
        ),
        ("replies by rate key (export)", outbox::BY_RATE_KEY.into()),
        ("token replace", tokens::DELETE_UNUSED.into()),
        ("token lookup", tokens::LIVE_CUSTOMER.into()),
        ("token consume", tokens::CONSUME.into()),
        ("opt-out link lookup", suppressions::OPT_OUT_ADDRESS.into()),
        ("session lookup", sessions::CUSTOMER.into()),
        (
            "purge of raw bytes: the walk",
            inbound::RAW_WALK.rows.into(),
        ),
        ("purge of raw bytes: erase", inbound::ERASE_RAW.into()),
        (
            "purge of inbound records",
            inbound::INBOUND_WALK.rows.into(),
        ),
        (
            "purge: the last message",
            inbound::INBOUND_WALK.last_id.into(),
        ),
        (
            "purge: unlink a message's decisions",
            inbound::UNLINK_DECISIONS.into(),
        ),
        ("purge: delete a message", inbound::DELETE_INBOUND.into()),
        (
            "purge: decisions after the cursor",
            inbound::DECISION_WALK.rows.into(),
        ),
        (
            "purge: the last decision",
            inbound::DECISION_WALK.last_id.into(),
        ),
        ("purge: delete a decision", inbound::DELETE_DECISION.into()),
        (
            "purge of finished replies",
            outbox::FINISHED_WALK.rows.into(),
        ),
        ("purge: delete a reply", outbox::DELETE.into()),
        (
            "purge: the last reply",
            outbox::FINISHED_WALK.last_id.into(),
        ),
        ("purge of reply counts", reply_counts::PURGE_BEFORE.into()),
        (
            "purge of opt-out links",
            suppressions::PURGE_OPT_OUT_BEFORE.into(),
        ),
        ("purge of expired sessions", sessions::PURGE_EXPIRED.into()),
        (
            "purge of expired account links",
            account_tokens::PURGE_EXPIRED.into(),
        ),
        (
            "purge of used account links",
            account_tokens::PURGE_USED.into(),
        ),
        ("purge of idle sessions", sessions::PURGE_IDLE.into()),
        (
            "purge of pending customers",
            customers::PURGE_PENDING_BEFORE.into(),
        ),
        ("customer API page", customers::page_sql()),
        ("webhook queue head", webhook_events::HEAD.into()),
        (
            "webhook mark delivered",
            webhook_events::MARK_DELIVERED.into(),
        ),
        (
            "purge of webhook events",
            webhook_events::PURGE_BEFORE.into(),
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

/// Partial indexes that hold only the queued replies: reading one whole
/// reads the queue, not the table's history.
const QUEUE_INDEXES: &[&str] = &["outbox_due"];

/// The plan line reads a queue's partial index.
fn reads_a_queue(line: &str) -> bool {
    QUEUE_INDEXES
        .iter()
        .any(|index| line.contains(&format!("INDEX {index}")))
}

/// A full scan of a growing table, even through a covering index
/// (`SCAN d USING INDEX ...` still reads every row), unless the index is a
/// queue's.
fn scans_growing_table(line: &str) -> bool {
    line.strip_prefix("SCAN ")
        .and_then(|rest| rest.split_whitespace().next())
        .is_some_and(|name| GROWING.contains(&name))
        && !reads_a_queue(line)
}

#[test]
fn intake_queries_use_indexes_and_scan_no_growing_table() {
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    super::configure(&conn).expect("configured as the store's connections are");
    migrations::run(&mut conn).expect("migrations run");
    let mut failures = Vec::new();
    for (name, sql) in queries() {
        let lines = plan(&conn, &sql);
        // Shown with `cargo test --lib store::plans -- --nocapture`.
        println!("{name}:\n    {}", lines.join("\n    "));
        if lines.iter().any(|line| scans_growing_table(line)) {
            failures.push(format!("{name}:\n    {}", lines.join("\n    ")));
        }
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("SEARCH ") || reads_a_queue(line)),
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
fn the_writes_of_a_registration_build_no_temporary_index() {
    // SQLite checks `x IN (a, b, c)` in a CHECK constraint against an index
    // it builds for every statement that checks a row (migration 14).
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    migrations::run(&mut conn).expect("migrations run");
    let mut writes = vec![
        ("new customer", customers::INSERT_PENDING),
        ("queued reply", outbox::ENQUEUE),
        ("queued reply's body", outbox::ENQUEUE_BODY),
        ("reply's body deleted", outbox::DELETE_BODY),
        ("reply sent", outbox::MARK_SENT),
    ];
    writes.extend(
        reply_counts::ADD_REPLY
            .iter()
            .map(|sql| ("reply counted", *sql)),
    );
    for (name, sql) in writes {
        let mut statement = conn
            .prepare(&format!("EXPLAIN {sql}"))
            .unwrap_or_else(|e| panic!("cannot explain {sql}: {e}"));
        let nulls = vec![Null; statement.parameter_count()];
        let opcodes: Vec<String> = statement
            .query_map(params_from_iter(nulls), |row| row.get(1))
            .and_then(Iterator::collect)
            .unwrap_or_else(|e| panic!("cannot explain {sql}: {e}"));
        assert!(
            !opcodes.iter().any(|opcode| opcode == "OpenEphemeral"),
            "{name} builds a temporary table: {opcodes:?}"
        );
    }
}

#[test]
fn the_daily_budgets_read_one_key_range_of_the_counters() {
    // At most 24 hourly rows of each key (the service, the domain, the
    // network), however much was ever sent: the budget no longer counts the
    // day's decisions.
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    migrations::run(&mut conn).expect("migrations run");
    let lines = plan(&conn, reply_counts::LAST_DAY);
    let searches: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("reply_counts"))
        .collect();
    assert!(
        searches.len() == 3
            && searches.iter().all(|line| line.contains(
                "SEARCH reply_counts USING PRIMARY KEY (scope=? AND service=? AND key=? AND hour>?)"
            )),
        "the budgets no longer read one range of the counters' primary key each: {lines:?}"
    );
}

#[test]
fn copies_are_found_by_the_index_that_bounds_them_and_purges_walk_ids() {
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    super::configure(&conn).expect("configured as the store's connections are");
    migrations::run(&mut conn).expect("migrations run");
    // The copies of one Message-ID (or of one content) within the window
    // and one period (the index's leading expression), not every decision
    // ever recorded about the sender, in the index's order: no sort.
    let lines = plan(&conn, inbound::EARLIER_BY_MESSAGE_ID);
    assert!(
        lines[0].starts_with(
            "SEARCH i USING COVERING INDEX inbound_by_message_id \
             (<expr>=? AND message_id=? AND received_at>?)"
        ) && !lines.iter().any(|line| line.contains("TEMP B-TREE")),
        "{lines:?}"
    );
    let lines = plan(&conn, inbound::EARLIER_BY_CONTENT);
    assert!(
        lines[0].starts_with(
            "SEARCH i USING COVERING INDEX inbound_by_content \
             (<expr>=? AND content_sha256=? AND received_at>?)"
        ) && !lines.iter().any(|line| line.contains("TEMP B-TREE")),
        "{lines:?}"
    );
    // The period in the SQL is the one the code counts in.
    let period = format!("received_at / {}", inbound::COPY_PERIOD_SECS);
    for sql in [
        inbound::EARLIER_BY_MESSAGE_ID,
        inbound::EARLIER_BY_CONTENT,
        include_str!("migrations/0018_copy_indexes_by_period.sql"),
    ] {
        assert!(sql.contains(&period), "{sql}");
    }
    // The purges walk their tables by id from a cursor, without an index
    // on age (issue 9): each reads only the rows after its cursor.
    for walk in [
        inbound::RAW_WALK,
        inbound::INBOUND_WALK,
        inbound::DECISION_WALK,
        outbox::FINISHED_WALK,
    ] {
        let lines = plan(&conn, walk.rows);
        assert!(
            lines[0].contains("USING INTEGER PRIMARY KEY (rowid>?)")
                && !lines.iter().any(|line| line.contains("TEMP B-TREE")),
            "{}: {lines:?}",
            walk.name
        );
    }
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
fn the_scrape_reads_the_queue_from_its_partial_index_alone() {
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    migrations::run(&mut conn).expect("migrations run");
    let lines = plan(&conn, outbox::QUEUED);
    let reads_outbox = |line: &&String| line.contains(" outbox ") || line.starts_with("SEARCH o ");
    assert!(
        lines.iter().filter(reads_outbox).count() == 2
            && lines
                .iter()
                .any(|line| line.starts_with("SCAN outbox USING")
                    && line.contains("INDEX outbox_due"))
            && lines
                .iter()
                .any(|line| line.starts_with("SEARCH o USING INTEGER PRIMARY KEY")),
        "the scrape no longer counts the queue from outbox_due alone: {lines:?}"
    );
}
