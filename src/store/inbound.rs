//! The `inbound` and `decisions` tables: what arrived, and what was decided
//! about it and why.

use rusqlite::{Connection, OptionalExtension, params};

/// An accepted message, as recorded.
#[derive(Debug, Clone)]
pub struct NewInbound<'a> {
    pub service: &'a str,
    pub client_ip: &'a str,
    pub helo: &'a str,
    pub envelope_from: &'a str,
    pub envelope_to: &'a str,
    pub message_id: Option<&'a str>,
    pub content_sha256: &'a [u8; 32],
    pub raw: &'a [u8],
}

/// A decision, as recorded.
#[derive(Debug, Clone)]
pub struct NewDecision<'a> {
    pub inbound_id: Option<i64>,
    pub channel: &'a str,
    pub service: &'a str,
    pub address: &'a str,
    pub identity: Option<&'a str>,
    pub outcome: &'a str,
    pub reason: &'a str,
    pub dropped: bool,
    pub reply_code: Option<u16>,
}

/// A recorded decision, as the CLI shows it.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub decided_at: i64,
    pub channel: String,
    pub service: String,
    pub outcome: String,
    pub reason: String,
    pub dropped: bool,
    pub reply_code: Option<u16>,
}

/// Earlier copies by Message-ID and envelope sender within the window.
/// One table, no join and no ORDER BY: SQLite (built with STAT4) prepares
/// a statement with either again every time a new value is bound, which
/// cost the writer more than the lookup itself.
pub(super) const COPIES_BY_MESSAGE_ID: &str = "SELECT id FROM inbound
     WHERE message_id = ?1 AND envelope_from = ?2 AND received_at >= ?3";

/// Earlier copies by content within the window.
pub(super) const COPIES_BY_CONTENT: &str =
    "SELECT id FROM inbound WHERE content_sha256 = ?1 AND received_at >= ?2";

/// The decision recorded for a stored message.
pub(super) const DECISION_OF: &str =
    "SELECT outcome, reason FROM decisions WHERE inbound_id = ?1 ORDER BY id DESC LIMIT 1";

/// The decision recorded for an earlier copy of the same message received
/// at or after `since` (the idempotency window, `store.idempotency_days`):
/// same Message-ID and envelope sender, or the same bytes. Indexed lookups
/// only; each finds the copies of this one message (a duplicate is never
/// stored again, so there are few), and the newest copy wins.
///
/// # Errors
/// A storage failure.
pub fn earlier_copy(
    conn: &Connection,
    message_id: Option<&str>,
    envelope_from: &str,
    content_sha256: &[u8; 32],
    since: i64,
) -> rusqlite::Result<Option<(String, String)>> {
    let mut newest: Option<i64> = None;
    let mut note = |id: rusqlite::Result<i64>| -> rusqlite::Result<()> {
        let id = id?;
        newest = Some(newest.map_or(id, |seen| seen.max(id)));
        Ok(())
    };
    if let Some(message_id) = message_id {
        let mut statement = conn.prepare_cached(COPIES_BY_MESSAGE_ID)?;
        for id in
            statement.query_map(params![message_id, envelope_from, since], |row| row.get(0))?
        {
            note(id)?;
        }
    }
    let mut statement = conn.prepare_cached(COPIES_BY_CONTENT)?;
    for id in statement.query_map(params![&content_sha256[..], since], |row| row.get(0))? {
        note(id)?;
    }
    let Some(id) = newest else {
        return Ok(None);
    };
    conn.prepare_cached(DECISION_OF)?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
}

/// Records an accepted message and returns its id.
pub fn insert(conn: &Connection, message: &NewInbound<'_>, now: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO inbound (received_at, service, client_ip, helo, envelope_from, envelope_to, message_id,
                              content_sha256, size, raw)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        now,
        message.service,
        message.client_ip,
        message.helo,
        message.envelope_from,
        message.envelope_to,
        message.message_id,
        &message.content_sha256[..],
        i64::try_from(message.raw.len()).unwrap_or(i64::MAX),
        message.raw
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The purge of raw bytes; `raw IS NOT NULL` selects the partial index
/// `inbound_raw_by_age`.
pub(super) const ERASE_RAW_BEFORE: &str = "UPDATE inbound SET raw = NULL WHERE id IN
     (SELECT id FROM inbound WHERE raw IS NOT NULL AND received_at < ?1 LIMIT ?2)";

/// Erases the raw bytes of up to `limit` messages received before `before`;
/// returns how many were erased.
///
/// # Errors
/// A storage failure.
pub fn erase_raw_before(conn: &Connection, before: i64, limit: usize) -> rusqlite::Result<usize> {
    conn.prepare_cached(ERASE_RAW_BEFORE)?
        .execute(params![before, sql_limit(limit)])
}

/// The oldest inbound records received before a time, from `inbound_by_age`.
pub(super) const OLDEST_BEFORE: &str =
    "SELECT id FROM inbound WHERE received_at < ?1 ORDER BY received_at LIMIT ?2";
/// A decision keeps its record of what was decided, not of the message.
pub(super) const UNLINK_DECISIONS: &str =
    "UPDATE decisions SET inbound_id = NULL WHERE inbound_id = ?1";
pub(super) const DELETE_INBOUND: &str = "DELETE FROM inbound WHERE id = ?1";

/// Deletes up to `limit` inbound records received before `before`; their
/// decisions stay, no longer linked to a message. Returns how many.
///
/// # Errors
/// A storage failure.
pub fn delete_before(conn: &Connection, before: i64, limit: usize) -> rusqlite::Result<usize> {
    let ids: Vec<i64> = conn
        .prepare_cached(OLDEST_BEFORE)?
        .query_map(params![before, sql_limit(limit)], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut unlink = conn.prepare_cached(UNLINK_DECISIONS)?;
    let mut delete = conn.prepare_cached(DELETE_INBOUND)?;
    for id in &ids {
        unlink.execute([id])?;
        delete.execute([id])?;
    }
    Ok(ids.len())
}

/// Where the purge of decision records has got to: every decision up to
/// and including `after` was deleted or is kept. Decisions are walked in id
/// order (the order they were recorded in), so no index beyond the primary
/// key is needed and rows already kept are not read again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecisionCursor {
    pub after: i64,
}

/// The next decisions after the cursor: whether each is older than the
/// retention, and whether it is about a customer that still exists.
pub(super) const DECISIONS_AFTER_CURSOR: &str = "SELECT d.id, d.decided_at < ?2,
            EXISTS (SELECT 1 FROM customers c WHERE c.identity = d.identity)
     FROM decisions d WHERE d.id > ?1 ORDER BY d.id LIMIT ?3";
pub(super) const DELETE_DECISION: &str = "DELETE FROM decisions WHERE id = ?1";

/// What one step of the decision purge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionPurge {
    pub deleted: usize,
    pub cursor: DecisionCursor,
    /// The walk reached decisions within the retention: nothing older is
    /// left after the cursor.
    pub done: bool,
}

/// Looks at up to `limit` decisions after `cursor` and deletes those
/// recorded before `before` that are not about an existing customer (a
/// customer's own history stays as long as the customer).
///
/// # Errors
/// A storage failure.
pub fn purge_decisions(
    conn: &Connection,
    cursor: DecisionCursor,
    before: i64,
    limit: usize,
) -> rusqlite::Result<DecisionPurge> {
    let rows: Vec<(i64, bool, bool)> = conn
        .prepare_cached(DECISIONS_AFTER_CURSOR)?
        .query_map(params![cursor.after, before, sql_limit(limit)], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut delete = conn.prepare_cached(DELETE_DECISION)?;
    let mut step = DecisionPurge {
        deleted: 0,
        cursor,
        done: rows.len() < limit,
    };
    for (id, old, kept) in rows {
        if !old {
            step.done = true;
            break;
        }
        if !kept {
            delete.execute([id])?;
            step.deleted += 1;
        }
        step.cursor.after = id;
    }
    Ok(step)
}

/// A row count as SQLite's `LIMIT` takes it.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Records a decision.
pub fn record_decision(
    conn: &Connection,
    decision: &NewDecision<'_>,
    now: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO decisions (decided_at, inbound_id, channel, service, address, identity, outcome, reason,
                                dropped, reply_code)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        now,
        decision.inbound_id,
        decision.channel,
        decision.service,
        decision.address,
        decision.identity,
        decision.outcome,
        decision.reason,
        decision.dropped,
        decision.reply_code
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Columns of `DecisionRecord`, in the order `decision_from_row` reads them.
const DECISION_COLUMNS: &str = "decided_at, channel, service, outcome, reason, dropped, reply_code";

fn decision_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DecisionRecord> {
    Ok(DecisionRecord {
        decided_at: row.get(0)?,
        channel: row.get(1)?,
        service: row.get(2)?,
        outcome: row.get(3)?,
        reason: row.get(4)?,
        dropped: row.get(5)?,
        reply_code: row.get(6)?,
    })
}

/// Decisions recorded for an identity, oldest first.
pub fn decisions_for(conn: &Connection, identity: &str) -> rusqlite::Result<Vec<DecisionRecord>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {DECISION_COLUMNS} FROM decisions WHERE identity = ?1 ORDER BY id"
    ))?;
    statement
        .query_map([identity], decision_from_row)?
        .collect()
}

/// The id of the newest decision, or 0 when none is recorded.
pub fn last_decision_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM decisions")?
        .query_row([], |row| row.get(0))
}

/// Decisions recorded after the decision with id `after`, oldest first.
pub fn decisions_after(conn: &Connection, after: i64) -> rusqlite::Result<Vec<DecisionRecord>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {DECISION_COLUMNS} FROM decisions WHERE id > ?1 ORDER BY id"
    ))?;
    statement.query_map([after], decision_from_row)?.collect()
}
