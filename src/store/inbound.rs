//! The `inbound` and `decisions` tables: what arrived, and what was decided
//! about it and why.

use crate::store::walk::{Walk, Walked};
use rusqlite::{Connection, OptionalExtension, params};

/// An accepted message, as recorded.
#[derive(Debug, Clone)]
pub struct NewInbound<'a> {
    pub service: &'a str,
    /// The client the message came from (the original client, when a relay
    /// named it with XFORWARD) and its HELO name.
    pub client_ip: &'a str,
    pub helo: &'a str,
    /// The relay that handed the message over, when it named the client.
    pub relay_ip: Option<&'a str>,
    pub envelope_from: &'a str,
    pub envelope_to: &'a str,
    pub message_id: Option<&'a str>,
    pub content_sha256: &'a [u8; 32],
    /// The bytes kept (the whole message, its header section only, or
    /// nothing); `size` records the message's own size either way.
    pub raw: Option<&'a [u8]>,
    pub size: usize,
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
    /// What else there is to say, for a person (how an envelope was read).
    pub note: Option<&'a str>,
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
    pub note: Option<String>,
    pub dropped: bool,
    pub reply_code: Option<u16>,
}

/// The period the copy indexes lead with: eight days of received time, so
/// that the entries of new messages go to the newest period's part of each
/// index instead of a random page of the whole history (schema 18). The SQL
/// below and the indexes spell it out as `received_at / 691200`, which is
/// how SQLite matches a query to an index on an expression.
pub const COPY_PERIOD_SECS: i64 = 8 * 86_400;

/// An earlier copy by Message-ID from the same registered address
/// (identity; a forwarder's envelope may differ between copies) received in
/// one period (`?4`), newest first. `CROSS JOIN` keeps `inbound` the outer
/// loop: SQLite would otherwise start from every decision ever recorded
/// about the identity.
pub(super) const EARLIER_BY_MESSAGE_ID: &str = "SELECT i.received_at, i.id, d.outcome, d.reason
     FROM inbound i CROSS JOIN decisions d ON d.inbound_id = i.id
     WHERE i.received_at / 691200 = ?4 AND i.message_id = ?1 AND d.identity = ?2
       AND i.received_at >= ?3
     ORDER BY i.received_at DESC, i.id DESC LIMIT 1";

/// An earlier copy by content received in one period (`?3`), newest first.
pub(super) const EARLIER_BY_CONTENT: &str = "SELECT i.received_at, i.id, d.outcome, d.reason
     FROM inbound i JOIN decisions d ON d.inbound_id = i.id
     WHERE i.received_at / 691200 = ?3 AND i.content_sha256 = ?1 AND i.received_at >= ?2
     ORDER BY i.received_at DESC, i.id DESC LIMIT 1";

/// The decision recorded for an earlier copy of the same message received at
/// or after `since` (the idempotency window, `store.idempotency_days`): the
/// same Message-ID from the same registered address, or the same bytes. Two
/// indexed lookups rather than one join with `OR`: SQLite plans the `OR` as a
/// scan of every decision ever recorded. Both look in each period from the
/// one of `now` back to the one of `since`, newest first, and stop at the
/// first period with a copy; each lookup reads only its period's copies of
/// one key, so the cost does not grow with history. Newest means latest
/// received (then highest id), the order of the indexes (whose last column
/// is the row id), so no lookup sorts. A copy stamped later than `now` (a
/// clock set back by more than the rest of the period) is not seen.
pub fn earlier_copy(
    conn: &Connection,
    message_id: Option<&str>,
    identity: Option<&str>,
    content_sha256: &[u8; 32],
    since: i64,
    now: i64,
) -> rusqlite::Result<Option<(String, String)>> {
    type Copy = ((i64, i64), String, String);
    let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<Copy> {
        Ok(((row.get(0)?, row.get(1)?), row.get(2)?, row.get(3)?))
    };
    let (oldest, newest) = (
        since.div_euclid(COPY_PERIOD_SECS),
        now.div_euclid(COPY_PERIOD_SECS),
    );
    let mut message_id_lookup = match message_id {
        Some(message_id) => Some((message_id, conn.prepare_cached(EARLIER_BY_MESSAGE_ID)?)),
        None => None,
    };
    let mut content_lookup = conn.prepare_cached(EARLIER_BY_CONTENT)?;
    for period in (oldest..=newest).rev() {
        let by_id = match message_id_lookup {
            Some((message_id, ref mut statement)) => statement
                .query_row(params![message_id, identity, since, period], read)
                .optional()?,
            None => None,
        };
        let by_content = content_lookup
            .query_row(params![&content_sha256[..], since, period], read)
            .optional()?;
        // The newest copy wins, as one query in the same order would have it.
        if let Some((_, outcome, reason)) = by_id
            .into_iter()
            .chain(by_content)
            .max_by_key(|copy| copy.0)
        {
            return Ok(Some((outcome, reason)));
        }
    }
    Ok(None)
}

/// Records an accepted message and returns its id.
pub fn insert(conn: &Connection, message: &NewInbound<'_>, now: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO inbound (received_at, service, client_ip, helo, relay_ip, envelope_from, envelope_to,
                              message_id, content_sha256, size, raw)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        now,
        message.service,
        message.client_ip,
        message.helo,
        message.relay_ip,
        message.envelope_from,
        message.envelope_to,
        message.message_id,
        &message.content_sha256[..],
        i64::try_from(message.size).unwrap_or(i64::MAX),
        message.raw
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The walk that erases raw bytes past their retention (`store.raw_retention_days`).
pub(super) const RAW_WALK: Walk = Walk {
    name: "inbound_raw",
    rows: "SELECT id, received_at < ?2, raw IS NOT NULL FROM inbound
           WHERE id > ?1 ORDER BY id LIMIT ?3",
    last_id: LAST_INBOUND,
};
const LAST_INBOUND: &str = "SELECT COALESCE(MAX(id), 0) FROM inbound";
pub(super) const ERASE_RAW: &str = "UPDATE inbound SET raw = NULL WHERE id = ?1";

/// Erases the raw bytes of the messages received before `before`, walking
/// up to `limit` of them.
pub fn erase_raw_before(conn: &Connection, before: i64, limit: usize) -> rusqlite::Result<Walked> {
    let mut erase = conn.prepare_cached(ERASE_RAW)?;
    RAW_WALK.step(conn, before, limit, |id| erase.execute([id]).map(drop))
}

/// The walk that deletes inbound records past their retention
/// (`store.inbound_retention_days`).
pub(super) const INBOUND_WALK: Walk = Walk {
    name: "inbound",
    rows: "SELECT id, received_at < ?2, 1 FROM inbound WHERE id > ?1 ORDER BY id LIMIT ?3",
    last_id: LAST_INBOUND,
};
/// A decision keeps its record of what was decided, not of the message
/// (from `decisions_by_inbound`).
pub(super) const UNLINK_DECISIONS: &str =
    "UPDATE decisions SET inbound_id = NULL WHERE inbound_id = ?1";
pub(super) const DELETE_INBOUND: &str = "DELETE FROM inbound WHERE id = ?1";

/// Deletes the inbound records received before `before`, walking up to
/// `limit` of them; their decisions stay, no longer linked to a message.
pub fn delete_before(conn: &Connection, before: i64, limit: usize) -> rusqlite::Result<Walked> {
    let mut unlink = conn.prepare_cached(UNLINK_DECISIONS)?;
    let mut delete = conn.prepare_cached(DELETE_INBOUND)?;
    INBOUND_WALK.step(conn, before, limit, |id| {
        unlink.execute([id])?;
        delete.execute([id]).map(drop)
    })
}

/// The walk through the decisions: each past its retention goes unless it
/// is about a customer that still exists (a customer's own history stays
/// as long as the customer); those are kept and walked past.
pub(super) const DECISION_WALK: Walk = Walk {
    name: "decisions",
    rows: "SELECT d.id, d.decided_at < ?2,
                  NOT EXISTS (SELECT 1 FROM customers c WHERE c.identity = d.identity)
           FROM decisions d WHERE d.id > ?1 ORDER BY d.id LIMIT ?3",
    last_id: "SELECT COALESCE(MAX(id), 0) FROM decisions",
};
pub(super) const DELETE_DECISION: &str = "DELETE FROM decisions WHERE id = ?1";

/// Deletes the decisions recorded before `before` that are not about an
/// existing customer, walking up to `limit` of them.
pub fn purge_decisions(conn: &Connection, before: i64, limit: usize) -> rusqlite::Result<Walked> {
    let mut delete = conn.prepare_cached(DELETE_DECISION)?;
    DECISION_WALK.step(conn, before, limit, |id| delete.execute([id]).map(drop))
}

/// Records a decision.
pub fn record_decision(
    conn: &Connection,
    decision: &NewDecision<'_>,
    now: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO decisions (decided_at, inbound_id, channel, service, address, identity, outcome, reason,
                                note, dropped, reply_code)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
        decision.note,
        decision.dropped,
        decision.reply_code
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Columns of `DecisionRecord`, in the order `decision_from_row` reads them.
const DECISION_COLUMNS: &str =
    "decided_at, channel, service, outcome, reason, note, dropped, reply_code";

fn decision_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DecisionRecord> {
    Ok(DecisionRecord {
        decided_at: row.get(0)?,
        channel: row.get(1)?,
        service: row.get(2)?,
        outcome: row.get(3)?,
        reason: row.get(4)?,
        note: row.get(5)?,
        dropped: row.get(6)?,
        reply_code: row.get(7)?,
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

/// A stored message's metadata, as a data-protection export shows it: the
/// envelope and the Message-ID, never the bytes.
#[derive(Debug, Clone)]
pub struct MessageRecord {
    pub received_at: i64,
    pub service: String,
    pub client_ip: String,
    pub helo: String,
    /// The relay that named the client with XFORWARD, if one did.
    pub relay_ip: Option<String>,
    pub envelope_from: String,
    pub envelope_to: String,
    pub message_id: Option<String>,
    pub size: i64,
    /// Whether the raw bytes are still kept (`store.raw_retention_days`).
    pub raw_kept: bool,
}

/// The messages decided about an identity, through `decisions_by_identity`.
pub(super) const MESSAGES_OF: &str =
    "SELECT i.received_at, i.service, i.client_ip, i.helo, i.envelope_from,
            i.envelope_to, i.message_id, i.size, i.raw IS NOT NULL, i.relay_ip
     FROM decisions d JOIN inbound i ON i.id = d.inbound_id
     WHERE d.identity = ?1 ORDER BY i.id";

/// The stored messages an identity sent, oldest first.
pub fn messages_for(conn: &Connection, identity: &str) -> rusqlite::Result<Vec<MessageRecord>> {
    let mut statement = conn.prepare(MESSAGES_OF)?;
    statement
        .query_map([identity], |row| {
            Ok(MessageRecord {
                received_at: row.get(0)?,
                service: row.get(1)?,
                client_ip: row.get(2)?,
                helo: row.get(3)?,
                envelope_from: row.get(4)?,
                envelope_to: row.get(5)?,
                message_id: row.get(6)?,
                size: row.get(7)?,
                raw_kept: row.get(8)?,
                relay_ip: row.get(9)?,
            })
        })?
        .collect()
}

/// What `forget` removed or anonymised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Decisions kept, with the address replaced by `anonymous`.
    pub decisions: usize,
    /// Stored messages deleted (envelope, Message-ID, bytes).
    pub messages: usize,
}

/// Forgets an identity in the decision records: every decision about it
/// keeps its time, channel, service, outcome, reason and reply code, but
/// its address becomes `anonymous`, its identity, its note (which may name
/// envelope addresses) and its link to the message are cleared; the
/// messages themselves are deleted.
pub fn forget(conn: &Connection, identity: &str, anonymous: &str) -> rusqlite::Result<Forgotten> {
    let messages: Vec<i64> = conn
        .prepare_cached(
            "SELECT inbound_id FROM decisions WHERE identity = ?1 AND inbound_id IS NOT NULL",
        )?
        .query_map([identity], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let decisions = conn
        .prepare_cached(
            "UPDATE decisions SET address = ?2, identity = NULL, inbound_id = NULL, note = NULL
             WHERE identity = ?1",
        )?
        .execute(params![identity, anonymous])?;
    let mut deleted = 0;
    for id in messages {
        // Another decision may still name the message (none does today);
        // it then stays for that one.
        deleted += conn
            .prepare_cached(
                "DELETE FROM inbound WHERE id = ?1
                 AND NOT EXISTS (SELECT 1 FROM decisions WHERE inbound_id = ?1)",
            )?
            .execute([id])?;
    }
    if deleted > 0 {
        INBOUND_WALK.pull_back(conn)?;
        RAW_WALK.pull_back(conn)?;
    }
    Ok(Forgotten {
        decisions,
        messages: deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrations;

    const DAY: i64 = 86_400;

    /// A message with `content` and `message_id` received at `at`, and a
    /// `register` decision about a@example.com with `reason` recorded for it.
    fn copy(conn: &Connection, at: i64, content: u8, message_id: &str, reason: &str) {
        conn.execute(
            "INSERT INTO inbound (received_at, service, client_ip, helo, envelope_from, envelope_to,
                                  message_id, content_sha256, size)
             VALUES (?1, 'desk', '192.0.2.1', 'mx.example', 'a@example.com', 'help@desk.example',
                     ?2, ?3, 10)",
            params![at, message_id, &[content; 32][..]],
        )
        .expect("a message");
        conn.execute(
            "INSERT INTO decisions (decided_at, inbound_id, channel, service, address, identity,
                                    outcome, reason)
             VALUES (?1, ?2, 'mail', 'desk', 'a@example.com', 'a@example.com', 'register', ?3)",
            params![at, conn.last_insert_rowid(), reason],
        )
        .expect("a decision");
    }

    #[test]
    fn a_copy_is_found_in_every_period_the_window_touches_and_nowhere_else() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        migrations::run(&mut conn).expect("migrations run");
        // Within a period, then across the whole thirty-day window: the
        // lookup must visit each period, however the window falls on them.
        let now = 1_767_225_600 + COPY_PERIOD_SECS / 3;
        let since = now - 30 * DAY;
        let find = |content: u8, message_id: Option<&str>| {
            earlier_copy(
                &conn,
                message_id,
                Some("a@example.com"),
                &[content; 32],
                since,
                now,
            )
            .expect("reads")
            .map(|(_, reason)| reason)
        };
        for (n, at) in [now, now - 1, now - 5 * DAY, now - 17 * DAY, since]
            .into_iter()
            .enumerate()
        {
            let content = u8::try_from(n).expect("small");
            copy(
                &conn,
                at,
                content,
                &format!("<{n}@example.com>"),
                &format!("copy {n}"),
            );
            assert_eq!(
                find(content, None),
                Some(format!("copy {n}")),
                "by content, at {at}"
            );
            assert_eq!(
                find(200, Some(&format!("<{n}@example.com>"))),
                Some(format!("copy {n}")),
                "by Message-ID, at {at}"
            );
        }
        // Just before the window: not a copy.
        copy(&conn, since - 1, 100, "<old@example.com>", "too old");
        assert_eq!(find(100, Some("<old@example.com>")), None);
        // Copies in two periods: the newest is the answer.
        copy(&conn, now - 20 * DAY, 101, "<twice@example.com>", "older");
        copy(&conn, now - 2 * DAY, 101, "<twice@example.com>", "newer");
        assert_eq!(find(101, None).as_deref(), Some("newer"));
        assert_eq!(
            find(200, Some("<twice@example.com>")).as_deref(),
            Some("newer")
        );
    }
}
