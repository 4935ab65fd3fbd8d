//! The `outbox` table: rendered replies waiting for delivery, with their
//! retry state. Bodies are erased once delivered, because they hold live
//! activation links.

use rusqlite::{Connection, OptionalExtension, params};

/// A reply to queue.
#[derive(Debug, Clone)]
pub struct NewReply<'a> {
    pub kind: &'a str,
    pub recipient: &'a str,
    pub rate_key: &'a str,
    pub envelope_from: &'a str,
    pub message_id: &'a str,
    pub body: &'a [u8],
}

/// A reply that is due for a delivery attempt.
#[derive(Debug, Clone)]
pub struct DueReply {
    pub id: i64,
    pub recipient: String,
    pub envelope_from: String,
    pub body: Vec<u8>,
    pub attempts: u32,
}

/// Queues a reply, due at once.
pub fn enqueue(conn: &Connection, reply: &NewReply<'_>, now: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO outbox (created_at, kind, recipient, rate_key, envelope_from, message_id, body, status,
                             next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?1)",
    )?
    .execute(params![now, reply.kind, reply.recipient, reply.rate_key, reply.envelope_from, reply.message_id, reply.body])?;
    Ok(conn.last_insert_rowid())
}

/// The outbox's claim: the ids of the oldest due replies, from the
/// `outbox_due` index alone (bodies are read only for the replies taken).
/// The limit is written into the SQL: a `LIMIT ?` would make SQLite prepare
/// the statement again for every new value.
pub(super) fn next_due_sql(limit: usize) -> String {
    format!(
        "SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= ?1
         ORDER BY next_attempt_at, id LIMIT {limit}"
    )
}

pub(super) const DUE_REPLY: &str = "SELECT recipient, envelope_from, body, attempts FROM outbox WHERE id = ?1 AND status = 'queued'";

/// Up to `limit` queued replies that are due at `now`, oldest first, leaving
/// out those in `skip` (being delivered already).
///
/// # Errors
/// A storage failure.
pub fn next_due(
    conn: &Connection,
    now: i64,
    limit: usize,
    skip: &std::collections::HashSet<i64>,
) -> rusqlite::Result<Vec<DueReply>> {
    // A few distinct limits, so that the statement cache holds them all.
    let wanted = (limit + skip.len()).next_power_of_two();
    let ids: Vec<i64> = conn
        .prepare_cached(&next_due_sql(wanted))?
        .query_map(params![now], |row| row.get(0))?
        .filter(|id| id.as_ref().map_or(true, |id| !skip.contains(id)))
        .take(limit)
        .collect::<rusqlite::Result<_>>()?;
    let mut reply = conn.prepare_cached(DUE_REPLY)?;
    let mut due = Vec::with_capacity(ids.len());
    for id in ids {
        let found = reply
            .query_row([id], |row| {
                Ok(DueReply {
                    id,
                    recipient: row.get(0)?,
                    envelope_from: row.get(1)?,
                    body: row.get::<_, Option<Vec<u8>>>(2)?.unwrap_or_default(),
                    attempts: row.get(3)?,
                })
            })
            .optional()?;
        due.extend(found);
    }
    Ok(due)
}

pub(super) const NEXT_DUE_AT: &str =
    "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'queued'";

/// When the next queued reply falls due, if any.
pub fn next_due_at(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(NEXT_DUE_AT)?
        .query_row([], |row| row.get(0))
}

pub(super) const MARK_SENT: &str = "UPDATE outbox
     SET status = 'sent', sent_at = ?2, body = NULL, attempts = attempts + 1, last_error = NULL
     WHERE id = ?1 AND status = 'queued'";
pub(super) const ADD_TO_TOTAL: &str =
    "UPDATE outbox_totals SET replies = replies + ?2 WHERE status = ?1";

/// Marks delivered replies sent (one transaction for a batch) and erases
/// their bodies.
///
/// # Errors
/// A storage failure.
pub fn mark_sent(conn: &Connection, ids: &[i64], now: i64) -> rusqlite::Result<()> {
    let mut mark = conn.prepare_cached(MARK_SENT)?;
    let mut marked = 0i64;
    for id in ids {
        marked += i64::try_from(mark.execute(params![id, now])?).unwrap_or(0);
    }
    conn.prepare_cached(ADD_TO_TOTAL)?
        .execute(params!["sent", marked])?;
    Ok(())
}

/// Records a failed attempt and when to try again.
pub fn mark_retry(
    conn: &Connection,
    id: i64,
    next_attempt_at: i64,
    error: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
    )?
    .execute(params![id, next_attempt_at, error])?;
    Ok(())
}

/// Gives up on a reply after its last attempt; the body is erased.
///
/// # Errors
/// A storage failure.
pub fn mark_dead(conn: &Connection, id: i64, error: &str) -> rusqlite::Result<()> {
    let marked = conn
        .prepare_cached(
            "UPDATE outbox SET status = 'dead', attempts = attempts + 1, body = NULL, last_error = ?2
             WHERE id = ?1 AND status = 'queued'",
        )?
        .execute(params![id, error])?;
    conn.prepare_cached(ADD_TO_TOTAL)?
        .execute(params!["dead", i64::try_from(marked).unwrap_or(0)])?;
    Ok(())
}

pub(super) const QUEUED: &str = "SELECT COUNT(*) FROM outbox WHERE status = 'queued'";
pub(super) const TOTALS: &str = "SELECT status, replies FROM outbox_totals";

/// Replies queued now, and sent and dead ever, for `/metrics`: the queued
/// ones from the `outbox_due` index, the others from `outbox_totals`, so
/// the count never reads the outbox's history.
///
/// # Errors
/// A storage failure.
pub fn counts(conn: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    let queued: i64 = conn
        .prepare_cached(QUEUED)?
        .query_row([], |row| row.get(0))?;
    let (mut sent, mut dead) = (0, 0);
    let mut totals = conn.prepare_cached(TOTALS)?;
    for row in totals.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
    })? {
        match row? {
            (status, replies) if status == "sent" => sent = replies,
            (_, replies) => dead = replies,
        }
    }
    Ok((queued, sent, dead))
}

/// The purge of delivered and dead replies by age, through `outbox_due`.
pub(super) const PURGE_FINISHED: &str = "DELETE FROM outbox WHERE id IN
     (SELECT id FROM outbox WHERE status = ?1 AND next_attempt_at < ?2 ORDER BY next_attempt_at LIMIT ?3)";

/// Deletes up to `limit` replies delivered or given up on, last tried
/// before `before`; returns how many. Queued replies are never purged.
///
/// # Errors
/// A storage failure.
pub fn purge_finished(conn: &Connection, before: i64, limit: usize) -> rusqlite::Result<usize> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut purge = conn.prepare_cached(PURGE_FINISHED)?;
    let sent = purge.execute(params!["sent", before, limit])?;
    let left = limit - i64::try_from(sent).unwrap_or(limit);
    let dead = if left > 0 {
        purge.execute(params!["dead", before, left])?
    } else {
        0
    };
    Ok(sent + dead)
}
