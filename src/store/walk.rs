//! Purges that walk a table in id order from where the last walk stopped
//! (a cursor per walk in `purge_cursors`).
//!
//! A row's id is the next one when it is written, so in the tables walked
//! the ids follow time: the oldest rows are the first after the cursor, and
//! no index on their age is needed. Intake then writes one b-tree less for
//! each such index (issue 9). A walk stops at the first row still within
//! its retention (or still in use), and the next walk starts there.
//!
//! SQLite gives a new row the id after the largest one in its table, so the
//! ids of the newest rows come back once those rows are deleted. A cursor
//! therefore never points past its table's last row: a step pulls it back
//! after deleting, and so does every other delete from a walked table
//! (`Walk::pull_back`), in the same transaction.

use super::sql_limit;
use rusqlite::{Connection, params};

/// One walk over a table.
#[derive(Debug, Clone, Copy)]
pub(super) struct Walk {
    /// The cursor's name in `purge_cursors`.
    pub name: &'static str,
    /// The rows after the cursor, in id order: `?1` is the cursor, `?2` the
    /// cut-off time, `?3` the limit. Columns: the id, whether the row is
    /// past its retention (the walk stops at the first that is not), and
    /// whether it is to be acted on (a row past its retention that is not
    /// is kept, and walked past).
    pub rows: &'static str,
    /// The largest id in the table, or 0 when it is empty.
    pub last_id: &'static str,
}

/// What one step of a walk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    /// Rows acted on (deleted or erased).
    pub changed: usize,
    /// The walk reached rows within the retention, or the end of the table:
    /// nothing older is left after the cursor.
    pub done: bool,
}

/// The stored position of a walk: every row up to it was dealt with.
const CURSOR: &str = "SELECT COALESCE((SELECT after_id FROM purge_cursors WHERE name = ?1), 0)";
const SAVE_CURSOR: &str = "INSERT INTO purge_cursors (name, after_id) VALUES (?1, ?2)
     ON CONFLICT (name) DO UPDATE SET after_id = excluded.after_id";
const PULL_BACK: &str = "UPDATE purge_cursors SET after_id = ?2 WHERE name = ?1 AND after_id > ?2";

impl Walk {
    /// Looks at up to `limit` rows after the cursor, runs `act` on each one
    /// past the cut-off `before` that is to be acted on, and moves the
    /// cursor past what it dealt with.
    pub(super) fn step(
        &self,
        conn: &Connection,
        before: i64,
        limit: usize,
        mut act: impl FnMut(i64) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<Walked> {
        let mut cursor: i64 = conn
            .prepare_cached(CURSOR)?
            .query_row([self.name], |row| row.get(0))?;
        let rows: Vec<(i64, bool, bool)> = conn
            .prepare_cached(self.rows)?
            .query_map(params![cursor, before, sql_limit(limit)], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut walked = Walked {
            changed: 0,
            done: rows.len() < limit,
        };
        for (id, past, to_act) in rows {
            if !past {
                walked.done = true;
                break;
            }
            if to_act {
                act(id)?;
                walked.changed += 1;
            }
            cursor = id;
        }
        conn.prepare_cached(SAVE_CURSOR)?
            .execute(params![self.name, cursor])?;
        // The step may have deleted the table's last rows.
        self.pull_back(conn)?;
        Ok(walked)
    }

    /// After rows were deleted from the walked table: pulls the cursor back
    /// to the table's last row, if it points past it.
    pub(super) fn pull_back(&self, conn: &Connection) -> rusqlite::Result<()> {
        let last: i64 = conn
            .prepare_cached(self.last_id)?
            .query_row([], |row| row.get(0))?;
        conn.prepare_cached(PULL_BACK)?
            .execute(params![self.name, last])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::message;
    use super::super::{inbound, migrations, outbox};
    use super::Walked;
    use rusqlite::{Connection, params};

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        migrations::run(&mut conn).expect("migrates");
        conn
    }

    fn reply(conn: &Connection, created_at: i64, status: &str) -> i64 {
        conn.execute(
            "INSERT INTO outbox (created_at, kind, recipient, rate_key, envelope_from, message_id,
                                 status, next_attempt_at)
             VALUES (?1, 'activation', 'a@example.com', 'a@example.com', '', 'm', ?2, 1)",
            params![created_at, status],
        )
        .expect("a reply");
        conn.last_insert_rowid()
    }

    /// How many rows a walk's step acted on.
    fn changed(step: rusqlite::Result<Walked>) -> usize {
        step.expect("walks").changed
    }

    fn ids(conn: &Connection, sql: &str) -> Vec<i64> {
        conn.prepare(sql)
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .expect("ids read")
    }

    #[test]
    fn the_reply_walk_stops_at_a_reply_still_queued_and_goes_on_once_it_is_sent() {
        let conn = store();
        let old_sent = reply(&conn, 10, "sent");
        let old_queued = reply(&conn, 10, "queued");
        let old_dead = reply(&conn, 10, "dead");
        let young = reply(&conn, 5000, "sent");

        let walked = outbox::purge_finished(&conn, 100, 10).expect("walks");
        assert_eq!(
            walked,
            Walked {
                changed: 1,
                done: true
            }
        );
        let all = "SELECT id FROM outbox ORDER BY id";
        assert_eq!(ids(&conn, all), [old_queued, old_dead, young]);

        conn.execute(
            "UPDATE outbox SET status = 'sent' WHERE id = ?1",
            [old_queued],
        )
        .expect("sent");
        let walked = outbox::purge_finished(&conn, 100, 10).expect("walks");
        assert_eq!(walked.changed, 2);
        assert_eq!(ids(&conn, all), [young]);
        assert!(old_sent < old_queued);
    }

    #[test]
    fn a_walk_takes_a_batch_at_a_time() {
        let conn = store();
        for _ in 0..5 {
            reply(&conn, 10, "sent");
        }
        let walked = outbox::purge_finished(&conn, 100, 2).expect("walks");
        assert_eq!(
            walked,
            Walked {
                changed: 2,
                done: false
            }
        );
        assert_eq!(changed(outbox::purge_finished(&conn, 100, 2)), 2);
        let last = outbox::purge_finished(&conn, 100, 2).expect("walks");
        assert_eq!(
            last,
            Walked {
                changed: 1,
                done: true
            }
        );
    }

    #[test]
    fn ids_that_come_back_once_the_newest_rows_are_deleted_are_walked_again() {
        let conn = store();
        // The walk deletes every row: the next one gets id 1 again.
        for _ in 0..3 {
            reply(&conn, 10, "sent");
        }
        assert_eq!(changed(outbox::purge_finished(&conn, 100, 10)), 3);
        let again = reply(&conn, 10, "sent");
        assert_eq!(again, 1, "SQLite gives the id after the largest one left");
        assert_eq!(changed(outbox::purge_finished(&conn, 100, 10)), 1);

        // Another delete (an erasure) takes the rows after the cursor.
        reply(&conn, 10, "sent");
        reply(&conn, 10, "sent");
        let erased = reply(&conn, 5000, "sent");
        assert_eq!(changed(outbox::purge_finished(&conn, 100, 10)), 2);
        outbox::delete(&conn, erased).expect("deletes");
        let reused = reply(&conn, 10, "sent");
        assert_eq!(reused, 1, "ids start again in the empty table");
        assert_eq!(
            changed(outbox::purge_finished(&conn, 100, 10)),
            1,
            "the row whose id came back is walked"
        );
        assert!(ids(&conn, "SELECT id FROM outbox").is_empty());
    }

    #[test]
    fn the_raw_walk_erases_old_bytes_keeps_the_records_and_walks_past_erased_ones() {
        let conn = store();
        let erased = message(&conn, 10, Some(b"old"));
        let without = message(&conn, 10, None);
        let older = message(&conn, 20, Some(b"old too"));
        let young = message(&conn, 5000, Some(b"new"));

        let walked = inbound::erase_raw_before(&conn, 100, 10).expect("walks");
        assert_eq!(
            walked,
            Walked {
                changed: 2,
                done: true
            }
        );
        let kept = "SELECT id FROM inbound WHERE raw IS NOT NULL";
        assert_eq!(ids(&conn, kept), [young]);
        let all = "SELECT id FROM inbound ORDER BY id";
        assert_eq!(ids(&conn, all), [erased, without, older, young]);

        let walked = inbound::delete_before(&conn, 100, 10).expect("walks");
        assert_eq!(walked.changed, 3);
        assert_eq!(ids(&conn, all), [young]);
    }

    #[test]
    fn an_erased_senders_messages_leave_no_cursor_past_the_last_one() {
        let conn = store();
        let sender = |received_at: i64| {
            let id = message(&conn, received_at, Some(b"raw"));
            conn.execute(
                "INSERT INTO decisions (decided_at, inbound_id, channel, service, address, identity,
                                        outcome, reason, dropped)
                 VALUES (?1, ?2, 'mail', 'desk', 'a@example.com', 'a@example.com', 'ignore',
                         'auto_submitted', 0)",
                params![received_at, id],
            )
            .expect("a decision");
            id
        };
        sender(10);
        sender(20);
        assert_eq!(changed(inbound::erase_raw_before(&conn, 100, 10)), 2);
        let forgotten = inbound::forget(&conn, "a@example.com", "erased").expect("forgets");
        assert_eq!(forgotten.messages, 2);

        let reused = message(&conn, 30, Some(b"raw"));
        assert_eq!(reused, 1, "ids start again in the empty table");
        assert_eq!(
            changed(inbound::erase_raw_before(&conn, 100, 10)),
            1,
            "the message whose id came back has its bytes erased"
        );
        assert_eq!(changed(inbound::delete_before(&conn, 100, 10)), 1);
    }
}
