//! The `outbox` table: rendered replies waiting for delivery, with their
//! retry state and what the relay answered to the last attempt. Bodies are
//! erased once delivered, because they hold live activation links; the rest
//! of the row stays, so an operator can see what became of each mail.

use crate::policy::{Bouncing, ReplyHistory};
use rusqlite::{Connection, OptionalExtension, params};

/// Seconds in a day, for the daily reply limit.
const DAY_SECS: i64 = 24 * 60 * 60;

/// A reply to queue.
#[derive(Debug, Clone)]
pub struct NewReply<'a> {
    pub kind: &'a str,
    /// The service the reply speaks for.
    pub service: &'a str,
    pub recipient: &'a str,
    pub rate_key: &'a str,
    pub envelope_from: &'a str,
    pub message_id: &'a str,
    pub body: &'a [u8],
    /// The token of a VERP envelope sender, when `envelope_from` is one.
    pub verp_token: Option<&'a str>,
}

/// A reply that is due for a delivery attempt.
#[derive(Debug, Clone)]
pub struct DueReply {
    pub id: i64,
    /// `None` for rows queued before services were recorded.
    pub service: Option<String>,
    pub recipient: String,
    pub envelope_from: String,
    pub body: Vec<u8>,
    pub attempts: u32,
}

/// Queues a reply, due at once.
pub fn enqueue(conn: &Connection, reply: &NewReply<'_>, now: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO outbox (created_at, kind, service, recipient, rate_key, envelope_from, message_id, body,
                             status, next_attempt_at, verp_token)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?1, ?9)",
    )?
    .execute(params![
        now,
        reply.kind,
        reply.service,
        reply.recipient,
        reply.rate_key,
        reply.envelope_from,
        reply.message_id,
        reply.body,
        reply.verp_token
    ])?;
    Ok(conn.last_insert_rowid())
}

/// An address's replies of the last day: bounded by the per-address limits.
pub(super) const HISTORY: &str =
    "SELECT MAX(created_at), COUNT(*) FROM outbox WHERE rate_key = ?1 AND created_at > ?2";

/// Replies queued to an address (by rate key) recently.
pub fn history(conn: &Connection, rate_key: &str, now: i64) -> rusqlite::Result<ReplyHistory> {
    conn.prepare_cached(HISTORY)?
        .query_row(params![rate_key, now - DAY_SECS], |row| {
            Ok(ReplyHistory {
                last_reply_at: row.get(0)?,
                replies_last_day: row.get(1)?,
                bouncing: Bouncing::No,
            })
        })
}

/// The outbox's claim: the oldest due reply, from the `outbox_due` index.
pub(super) const NEXT_DUE: &str =
    "SELECT id, service, recipient, envelope_from, body, attempts FROM outbox
     WHERE status = 'queued' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT 1";

/// The oldest queued reply that is due.
pub fn next_due(conn: &Connection, now: i64) -> rusqlite::Result<Option<DueReply>> {
    conn.prepare_cached(NEXT_DUE)?
        .query_row([now], |row| {
            Ok(DueReply {
                id: row.get(0)?,
                service: row.get(1)?,
                recipient: row.get(2)?,
                envelope_from: row.get(3)?,
                body: row.get(4)?,
                attempts: row.get(5)?,
            })
        })
        .optional()
}

pub(super) const NEXT_DUE_AT: &str =
    "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'queued'";

/// When the next queued reply falls due, if any.
pub fn next_due_at(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(NEXT_DUE_AT)?
        .query_row([], |row| row.get(0))
}

/// One delivery attempt: when, and what the relay answered (no code when
/// none answered: the connection failed or timed out).
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub at: i64,
    pub code: Option<u16>,
    pub reply: &'a str,
}

pub(super) const MARK_SENT: &str = "UPDATE outbox
     SET status = 'sent', sent_at = ?2, body = NULL, attempts = attempts + 1, last_error = NULL,
         last_attempt_at = ?2, last_reply_code = ?3, last_reply = ?4
     WHERE id = ?1";

/// Marks a reply delivered (the relay's `250`) and erases its body.
pub fn mark_sent(conn: &Connection, id: i64, attempt: Attempt<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(MARK_SENT)?.execute(params![
        id,
        attempt.at,
        attempt.code,
        attempt.reply
    ])?;
    Ok(())
}

/// Records a failed attempt and when to try again.
pub fn mark_retry(
    conn: &Connection,
    id: i64,
    next_attempt_at: i64,
    attempt: Attempt<'_>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?4,
                           last_attempt_at = ?3, last_reply_code = ?5, last_reply = ?4
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        next_attempt_at,
        attempt.at,
        attempt.reply,
        attempt.code
    ])?;
    Ok(())
}

/// Gives up on a reply after its last attempt (or a permanent refusal); the
/// body is erased.
pub fn mark_dead(conn: &Connection, id: i64, attempt: Attempt<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'dead', attempts = attempts + 1, body = NULL, last_error = ?3,
                           last_attempt_at = ?2, last_reply_code = ?4, last_reply = ?3
         WHERE id = ?1",
    )?
    .execute(params![id, attempt.at, attempt.reply, attempt.code])?;
    Ok(())
}

/// One mail as an operator sees it (`registrar customers show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    pub id: i64,
    pub created_at: i64,
    pub kind: String,
    pub service: Option<String>,
    pub recipient: String,
    pub status: String,
    pub attempts: u32,
    pub last_attempt_at: Option<i64>,
    pub last_reply_code: Option<u16>,
    pub last_reply: Option<String>,
    pub sent_at: Option<i64>,
    pub bounced_at: Option<i64>,
    pub bounce_status: Option<String>,
    pub bounce_diagnostic: Option<String>,
}

/// Every mail queued to an address (by rate key, so plus-tagged variants
/// too), oldest first.
pub fn mails_to(conn: &Connection, rate_key: &str) -> rusqlite::Result<Vec<SentMail>> {
    conn.prepare_cached(
        "SELECT id, created_at, kind, service, recipient, status, attempts, last_attempt_at,
                last_reply_code, last_reply, sent_at, bounced_at, bounce_status, bounce_diagnostic
         FROM outbox WHERE rate_key = ?1 ORDER BY created_at, id",
    )?
    .query_map([rate_key], |row| {
        Ok(SentMail {
            id: row.get(0)?,
            created_at: row.get(1)?,
            kind: row.get(2)?,
            service: row.get(3)?,
            recipient: row.get(4)?,
            status: row.get(5)?,
            attempts: row.get(6)?,
            last_attempt_at: row.get(7)?,
            last_reply_code: row.get(8)?,
            last_reply: row.get(9)?,
            sent_at: row.get(10)?,
            bounced_at: row.get(11)?,
            bounce_status: row.get(12)?,
            bounce_diagnostic: row.get(13)?,
        })
    })?
    .collect()
}

/// Counts of replies by status, for `/metrics`.
pub fn counts(conn: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(status = 'queued'), 0), COALESCE(SUM(status = 'sent'), 0), COALESCE(SUM(status = 'dead'), 0)
         FROM outbox",
    )?
    .query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
}

/// Gives up on every reply still queued to one recipient (an address that
/// asked never to be mailed); their bodies are erased. Returns how many.
pub fn cancel_queued_to(
    conn: &Connection,
    rate_key: &str,
    recipient: &str,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'dead', body = NULL, last_error = 'the recipient opted out'
         WHERE rate_key = ?1 AND recipient = ?2 AND status = 'queued'",
    )?
    .execute(params![rate_key, recipient])
}
