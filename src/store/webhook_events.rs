//! The `webhook_events` table: one row per (event, endpoint), queued in the
//! transaction of the decision behind the event, with its delivery state.
//! Each endpoint's queue is first in, first out: its worker reads only the
//! head of its own queue.

use rusqlite::{Connection, params};

/// Delivery state of one event at one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Delivered,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Delivered => "delivered",
            Status::Dead => "dead",
        }
    }

    /// Parses a status as stored or typed on the command line.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "queued" => Some(Status::Queued),
            "delivered" => Some(Status::Delivered),
            "dead" => Some(Status::Dead),
            _ => None,
        }
    }
}

/// An event to queue for one endpoint.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// The `msg_…` id (the `webhook-id` header).
    pub event_id: &'a str,
    pub endpoint: &'a str,
    /// `customer.activated`, …
    pub kind: &'a str,
    /// The identity key of the customer it is about, so an erasure can
    /// find it; `None` for the erasure's own event.
    pub identity: Option<&'a str>,
    /// The JSON body, exactly as it will be signed and sent.
    pub body: &'a str,
}

/// A queued event, at the head of its endpoint's queue.
#[derive(Debug, Clone)]
pub struct QueuedEvent {
    pub id: i64,
    pub event_id: String,
    pub kind: String,
    pub body: String,
    pub attempts: u32,
    /// Where its maximum age counts from.
    pub age_from: i64,
    /// When (Unix milliseconds) it may be attempted.
    pub next_attempt_ms: i64,
}

/// An event as `registrar webhooks list` shows it.
#[derive(Debug, Clone)]
pub struct ListedEvent {
    pub event_id: String,
    pub endpoint: String,
    pub kind: String,
    pub status: Status,
    pub created_at: i64,
    pub attempts: u32,
    /// Unix milliseconds.
    pub next_attempt_ms: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

/// Queues an event for an endpoint, due at once.
pub fn enqueue(conn: &Connection, event: &NewEvent<'_>, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO webhook_events (event_id, endpoint, kind, identity, body, status, created_at,
                                     age_from, next_attempt_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6, ?6 * 1000)",
    )?
    .execute(params![
        event.event_id,
        event.endpoint,
        event.kind,
        event.identity,
        event.body,
        now
    ])?;
    Ok(())
}

/// The head of an endpoint's queue, from the `webhook_events_queue` index.
pub(super) const HEAD: &str =
    "SELECT id, event_id, kind, body, attempts, age_from, next_attempt_ms FROM webhook_events
     WHERE endpoint = ?1 AND status = 'queued' ORDER BY id LIMIT ?2";

/// The oldest `limit` queued events of an endpoint, oldest first, due or
/// not.
pub fn head(conn: &Connection, endpoint: &str, limit: usize) -> rusqlite::Result<Vec<QueuedEvent>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached(HEAD)?
        .query_map(params![endpoint, limit], |row| {
            Ok(QueuedEvent {
                id: row.get(0)?,
                event_id: row.get(1)?,
                kind: row.get(2)?,
                // A queued row always has its body; '' fails its delivery
                // rather than the whole claim.
                body: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                attempts: row.get(4)?,
                age_from: row.get(5)?,
                next_attempt_ms: row.get(6)?,
            })
        })?
        .collect()
}

pub(super) const MARK_DELIVERED: &str = "UPDATE webhook_events
     SET status = 'delivered', delivered_at = ?2, body = NULL, attempts = attempts + 1,
         last_status = ?3, last_error = NULL
     WHERE id = ?1";

/// Marks an event delivered and erases its body (it names a customer).
pub fn mark_delivered(
    conn: &Connection,
    id: i64,
    http_status: u16,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(MARK_DELIVERED)?
        .execute(params![id, now, http_status])?;
    Ok(())
}

/// Records a failed attempt and when (Unix milliseconds) to try again.
pub fn mark_retry(
    conn: &Connection,
    id: i64,
    next_attempt_ms: i64,
    http_status: Option<u16>,
    error: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE webhook_events
         SET attempts = attempts + 1, next_attempt_ms = ?2, last_status = ?3, last_error = ?4
         WHERE id = ?1",
    )?
    .execute(params![id, next_attempt_ms, http_status, error])?;
    Ok(())
}

/// Gives up on an event (past its maximum age, or refused for good). The
/// body stays, so `registrar webhooks retry` can send it again.
pub fn mark_dead(
    conn: &Connection,
    id: i64,
    attempted: bool,
    http_status: Option<u16>,
    error: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE webhook_events
         SET status = 'dead', attempts = attempts + ?2, last_status = COALESCE(?3, last_status),
             last_error = ?4
         WHERE id = ?1",
    )?
    .execute(params![id, i64::from(attempted), http_status, error])?;
    Ok(())
}

/// Queues dead events again, due at once, with their maximum age counted
/// from now: every dead event of `endpoint` (any endpoint when `None`), or
/// only those whose event id is in `event_ids` when it is not empty.
/// Returns how many were queued.
pub fn retry_dead(
    conn: &Connection,
    endpoint: Option<&str>,
    event_ids: &[String],
    now: i64,
) -> rusqlite::Result<usize> {
    let mut statement = conn.prepare_cached(
        "UPDATE webhook_events
         SET status = 'queued', next_attempt_ms = ?3 * 1000, age_from = ?3, last_error = NULL
         WHERE status = 'dead' AND body IS NOT NULL
           AND (?1 IS NULL OR endpoint = ?1) AND (?2 IS NULL OR event_id = ?2)",
    )?;
    if event_ids.is_empty() {
        return statement.execute(params![endpoint, Option::<&str>::None, now]);
    }
    let mut queued = 0;
    for event_id in event_ids {
        queued += statement.execute(params![endpoint, event_id, now])?;
    }
    Ok(queued)
}

/// Events, newest first, at most `limit`, optionally by status and endpoint.
pub fn list(
    conn: &Connection,
    status: Option<Status>,
    endpoint: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<ListedEvent>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare(
        "SELECT event_id, endpoint, kind, status, created_at, attempts, next_attempt_ms,
                last_status, last_error
         FROM webhook_events
         WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR endpoint = ?2)
         ORDER BY id DESC LIMIT ?3",
    )?
    .query_map(
        params![status.map(Status::as_str), endpoint, limit],
        |row| {
            let status: String = row.get(3)?;
            Ok(ListedEvent {
                event_id: row.get(0)?,
                endpoint: row.get(1)?,
                kind: row.get(2)?,
                status: Status::parse(&status).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        3,
                        rusqlite::types::Type::Text,
                        format!("unknown status {status:?}").into(),
                    )
                })?,
                created_at: row.get(4)?,
                attempts: row.get(5)?,
                next_attempt_ms: row.get(6)?,
                last_status: row.get(7)?,
                last_error: row.get(8)?,
            })
        },
    )?
    .collect()
}

/// How many events each endpoint has in each status: (endpoint, queued,
/// delivered, dead), by endpoint name.
pub fn counts(conn: &Connection) -> rusqlite::Result<Vec<(String, i64, i64, i64)>> {
    conn.prepare_cached(
        "SELECT endpoint, COALESCE(SUM(status = 'queued'), 0), COALESCE(SUM(status = 'delivered'), 0),
                COALESCE(SUM(status = 'dead'), 0)
         FROM webhook_events GROUP BY endpoint ORDER BY endpoint",
    )?
    .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
    .collect()
}

/// An endpoint's queue at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Depth {
    pub endpoint: String,
    pub queued: i64,
    /// When (Unix seconds) the oldest queued event was queued.
    pub oldest_queued_at: i64,
}

/// Every endpoint's queued events, from the `webhook_events_queue` index
/// (queued rows only).
pub fn depths(conn: &Connection) -> rusqlite::Result<Vec<Depth>> {
    conn.prepare_cached(
        "SELECT endpoint, COUNT(*), MIN(created_at) FROM webhook_events
         WHERE status = 'queued' GROUP BY endpoint",
    )?
    .query_map([], |row| {
        Ok(Depth {
            endpoint: row.get(0)?,
            queued: row.get(1)?,
            oldest_queued_at: row.get(2)?,
        })
    })?
    .collect()
}

/// Delivered and dead events older than `cutoff`, removed in one bounded
/// batch (the periodic purge runs again later for the rest).
pub(super) const PURGE_BEFORE: &str = "DELETE FROM webhook_events WHERE id IN (
         SELECT id FROM webhook_events WHERE status = ?1 AND created_at < ?2 LIMIT ?3)";

/// Removes up to `batch` delivered and `batch` dead events queued before
/// `cutoff`; returns how many.
pub fn purge_before(conn: &Connection, cutoff: i64, batch: usize) -> rusqlite::Result<usize> {
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    let mut statement = conn.prepare_cached(PURGE_BEFORE)?;
    let delivered = statement.execute(params!["delivered", cutoff, batch])?;
    let dead = statement.execute(params!["dead", cutoff, batch])?;
    Ok(delivered + dead)
}

/// An event about a customer, as a data-protection export shows it.
#[derive(Debug, Clone)]
pub struct EventAbout {
    pub created_at: i64,
    pub endpoint: String,
    pub kind: String,
    pub status: Status,
}

/// The events kept about `identity`, oldest first.
pub fn about(conn: &Connection, identity: &str) -> rusqlite::Result<Vec<EventAbout>> {
    conn.prepare_cached(
        "SELECT created_at, endpoint, kind, status FROM webhook_events
         WHERE identity = ?1 ORDER BY id",
    )?
    .query_map([identity], |row| {
        let status: String = row.get(3)?;
        Ok(EventAbout {
            created_at: row.get(0)?,
            endpoint: row.get(1)?,
            kind: row.get(2)?,
            status: Status::parse(&status).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    3,
                    rusqlite::types::Type::Text,
                    format!("unknown status {status:?}").into(),
                )
            })?,
        })
    })?
    .collect()
}

/// Removes every event about `identity` (an erasure: undelivered ones
/// would carry the customer's data on); returns how many.
pub fn forget(conn: &Connection, identity: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM webhook_events WHERE identity = ?1")?
        .execute([identity])
}
