//! The `outbox` table: replies waiting for delivery, with their retry state
//! and what the relay answered to the last attempt. Their rendered bodies
//! are rows of `outbox_bodies`, deleted once the reply is delivered or given
//! up, because they hold live activation links; the outbox row stays, so an
//! operator can see what became of each mail. Kept apart, a delivered
//! body's page is freed and reused, and the outbox rows pack densely.

use crate::policy::{Bouncing, ReplyHistory};
use crate::store::walk::{Walk, Walked};
use rusqlite::{Connection, params};

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

/// The insert behind `enqueue`: the reply's row.
pub(super) const ENQUEUE: &str =
    "INSERT INTO outbox (created_at, kind, service, recipient, rate_key, envelope_from, message_id,
                         status, next_attempt_at, verp_token)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?1, ?8)";

/// The insert behind `enqueue`: the reply's body.
pub(super) const ENQUEUE_BODY: &str = "INSERT INTO outbox_bodies (outbox_id, body) VALUES (?1, ?2)";

/// Queues a reply, due at once.
pub fn enqueue(conn: &Connection, reply: &NewReply<'_>, now: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached(ENQUEUE)?.execute(params![
        now,
        reply.kind,
        reply.service,
        reply.recipient,
        reply.rate_key,
        reply.envelope_from,
        reply.message_id,
        reply.verp_token
    ])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached(ENQUEUE_BODY)?
        .execute(params![id, reply.body])?;
    Ok(id)
}

/// Deletes a reply's body, once it is delivered or given up.
pub(super) const DELETE_BODY: &str = "DELETE FROM outbox_bodies WHERE outbox_id = ?1";

fn delete_body(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(DELETE_BODY)?.execute([id])?;
    Ok(())
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

/// The outbox's claim: the oldest due replies, from the `outbox_due` index;
/// bodies are read only for the rows the limit takes.
pub(super) const NEXT_DUE: &str =
    "SELECT o.id, o.service, o.recipient, o.envelope_from, b.body, o.attempts
     FROM outbox o JOIN outbox_bodies b ON b.outbox_id = o.id
     WHERE o.status = 'queued' AND o.next_attempt_at <= ?1
     ORDER BY o.next_attempt_at, o.id LIMIT ?2";

/// Up to `limit` queued replies due at `now`, oldest first.
pub fn next_due(conn: &Connection, now: i64, limit: usize) -> rusqlite::Result<Vec<DueReply>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached(NEXT_DUE)?
        .query_map(params![now, limit], |row| {
            Ok(DueReply {
                id: row.get(0)?,
                service: row.get(1)?,
                recipient: row.get(2)?,
                envelope_from: row.get(3)?,
                body: row.get(4)?,
                attempts: row.get(5)?,
            })
        })?
        .collect()
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
     SET status = 'sent', sent_at = ?2, attempts = attempts + 1, last_error = NULL,
         last_attempt_at = ?2, last_reply_code = ?3, last_reply = ?4
     WHERE id = ?1";

/// Marks a reply delivered (the relay's `250`) and deletes its body.
pub fn mark_sent(conn: &Connection, id: i64, attempt: Attempt<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(MARK_SENT)?.execute(params![
        id,
        attempt.at,
        attempt.code,
        attempt.reply
    ])?;
    delete_body(conn, id)
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
/// body is deleted.
pub fn mark_dead(conn: &Connection, id: i64, attempt: Attempt<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = ?3,
                           last_attempt_at = ?2, last_reply_code = ?4, last_reply = ?3
         WHERE id = ?1",
    )?
    .execute(params![id, attempt.at, attempt.reply, attempt.code])?;
    delete_body(conn, id)
}

/// What became of one delivery attempt, as the row records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered: the body is deleted.
    Sent,
    /// Failed; tried again at this Unix time.
    Retry(i64),
    /// Failed for good: the body is deleted.
    Dead,
}

/// One reply's attempt in a round of deliveries.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub id: i64,
    pub at: i64,
    pub code: Option<u16>,
    pub reply: String,
    pub outcome: Outcome,
}

/// Records every attempt of one round of deliveries: the outbox's one
/// write job per round, whatever the number of replies in it.
pub fn record_round(conn: &Connection, round: &[Recorded]) -> rusqlite::Result<()> {
    for recorded in round {
        let attempt = Attempt {
            at: recorded.at,
            code: recorded.code,
            reply: &recorded.reply,
        };
        match recorded.outcome {
            Outcome::Sent => mark_sent(conn, recorded.id, attempt)?,
            Outcome::Retry(at) => mark_retry(conn, recorded.id, at, attempt)?,
            Outcome::Dead => mark_dead(conn, recorded.id, attempt)?,
        }
    }
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

/// The queued replies, counted from the partial index `outbox_due` (never
/// the history of sent ones), and when the first of them was queued: ids
/// follow time, so the lowest id is the reply queued first. The index is
/// named: for the lowest id alone, the planner would walk the table in id
/// order, sent replies and all, to the first queued one.
pub(super) const QUEUED: &str = "SELECT q.queued, o.created_at
     FROM (SELECT COUNT(*) AS queued, MIN(id) AS first FROM outbox INDEXED BY outbox_due
           WHERE status = 'queued') AS q
     LEFT JOIN outbox o ON o.id = q.first";

/// The outbox as `/metrics` and `/healthz` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    /// Replies waiting to be delivered.
    pub queued: i64,
    /// When the oldest of them was queued (Unix seconds).
    pub oldest_queued_at: Option<i64>,
}

/// How many replies wait, and since when the oldest.
pub fn depth(conn: &Connection) -> rusqlite::Result<Depth> {
    conn.prepare_cached(QUEUED)?.query_row([], |row| {
        Ok(Depth {
            queued: row.get(0)?,
            oldest_queued_at: row.get(1)?,
        })
    })
}

/// A reply's metadata, as a data-protection export shows it: never the
/// body, which held a live link.
#[derive(Debug, Clone)]
pub struct ReplyRecord {
    pub id: i64,
    pub created_at: i64,
    pub kind: String,
    pub recipient: String,
    pub status: String,
    pub attempts: u32,
    pub sent_at: Option<i64>,
}

/// Replies queued under a rate key (plus-tag ignored), oldest first, from
/// `outbox_by_rate_key`; the caller picks the recipient it asks about.
pub(super) const BY_RATE_KEY: &str =
    "SELECT id, created_at, kind, recipient, status, attempts, sent_at FROM outbox
     WHERE rate_key = ?1 ORDER BY created_at, id";

/// Every reply queued under `rate_key`, whatever its status.
pub fn by_rate_key(conn: &Connection, rate_key: &str) -> rusqlite::Result<Vec<ReplyRecord>> {
    let mut statement = conn.prepare(BY_RATE_KEY)?;
    statement
        .query_map([rate_key], |row| {
            Ok(ReplyRecord {
                id: row.get(0)?,
                created_at: row.get(1)?,
                kind: row.get(2)?,
                recipient: row.get(3)?,
                status: row.get(4)?,
                attempts: row.get(5)?,
                sent_at: row.get(6)?,
            })
        })?
        .collect()
}

/// Deletes a reply, queued or not (its body with it: `ON DELETE CASCADE`).
pub fn delete(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(DELETE)?.execute([id])?;
    FINISHED_WALK.pull_back(conn)
}

/// Gives up on every reply still queued to one recipient (an address that
/// asked never to be mailed); their bodies are deleted. Returns how many.
pub fn cancel_queued_to(
    conn: &Connection,
    rate_key: &str,
    recipient: &str,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM outbox_bodies WHERE outbox_id IN
           (SELECT id FROM outbox WHERE rate_key = ?1 AND recipient = ?2 AND status = 'queued')",
    )?
    .execute(params![rate_key, recipient])?;
    conn.prepare_cached(
        "UPDATE outbox SET status = 'dead', last_error = 'the recipient opted out'
         WHERE rate_key = ?1 AND recipient = ?2 AND status = 'queued'",
    )?
    .execute(params![rate_key, recipient])
}

/// The walk that deletes delivered or given-up replies past their
/// retention. It stops at a reply still queued, whatever its age: that
/// one is delivered, or given up after `outbound.max_attempts` (within a
/// day on the defaults), and the walk goes on past it then.
pub(super) const FINISHED_WALK: Walk = Walk {
    name: "outbox",
    rows: "SELECT id, created_at < ?2 AND status <> 'queued', 1 FROM outbox
           WHERE id > ?1 ORDER BY id LIMIT ?3",
    last_id: "SELECT COALESCE(MAX(id), 0) FROM outbox",
};
pub(super) const DELETE: &str = "DELETE FROM outbox WHERE id = ?1";

/// Deletes the delivered or given-up replies queued before `before`,
/// walking up to `limit` of them. Queued replies stay whatever their age.
pub fn purge_finished(conn: &Connection, before: i64, limit: usize) -> rusqlite::Result<Walked> {
    let mut delete = conn.prepare_cached(DELETE)?;
    FINISHED_WALK.step(conn, before, limit, |id| delete.execute([id]).map(drop))
}

#[cfg(test)]
mod tests {
    use super::{Attempt, NewReply, depth, enqueue, mark_sent};
    use crate::store::migrations;
    use rusqlite::Connection;

    fn reply(message_id: &str) -> NewReply<'_> {
        NewReply {
            kind: "activation",
            service: "support",
            recipient: "jane@example.com",
            rate_key: "jane@example.com",
            envelope_from: "",
            message_id,
            body: b"body",
            verp_token: None,
        }
    }

    #[test]
    fn the_depth_counts_the_queued_replies_and_dates_the_first_still_queued() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        migrations::run(&mut conn).expect("migrations run");
        let empty = depth(&conn).expect("depth");
        assert_eq!((empty.queued, empty.oldest_queued_at), (0, None));

        let first = enqueue(&conn, &reply("a@x"), 1_000).expect("queued");
        enqueue(&conn, &reply("b@x"), 1_010).expect("queued");
        enqueue(&conn, &reply("c@x"), 1_020).expect("queued");
        let three = depth(&conn).expect("depth");
        assert_eq!((three.queued, three.oldest_queued_at), (3, Some(1_000)));

        // Once the first is sent, the oldest is the next one queued.
        let attempt = Attempt {
            at: 1_030,
            code: Some(250),
            reply: "ok",
        };
        mark_sent(&conn, first, attempt).expect("sent");
        let two = depth(&conn).expect("depth");
        assert_eq!((two.queued, two.oldest_queued_at), (2, Some(1_010)));
    }
}
