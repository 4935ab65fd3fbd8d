//! The `reply_counts` table: replies queued per key and hour, for the reply
//! limits. Bumped in the transaction that queues the reply; read as the
//! last 24 hours of one key (at most 25 rows of the primary key), so the
//! cost of a check never depends on how much was ever sent.

use rusqlite::{Connection, params};

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// What a count is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One address, by its rate key (the identity without plus-tag).
    Address,
    /// One service, on every channel.
    Service,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Address => "address",
            Scope::Service => "service",
        }
    }
}

/// A key's replies in the last 24 hours (counted by the hour, so up to an
/// hour more), and when the newest was queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LastDay {
    pub replies: u32,
    pub last_at: Option<i64>,
}

pub(super) const BUMP: &str = "INSERT INTO reply_counts (scope, key, hour, replies, last_at)
     VALUES (?1, ?2, ?3, 1, ?4)
     ON CONFLICT (scope, key, hour) DO UPDATE
     SET replies = replies + 1, last_at = MAX(last_at, excluded.last_at)";

/// Counts one reply queued for `key` at `now`.
///
/// # Errors
/// A storage failure.
pub fn bump(conn: &Connection, scope: Scope, key: &str, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(BUMP)?
        .execute(params![scope.as_str(), key, now.div_euclid(HOUR), now])?;
    Ok(())
}

pub(super) const LAST_DAY: &str = "SELECT COALESCE(SUM(replies), 0), MAX(last_at) FROM reply_counts
     WHERE scope = ?1 AND key = ?2 AND hour >= ?3";

/// `key`'s replies of the last 24 hours at `now`.
///
/// # Errors
/// A storage failure.
pub fn last_day(conn: &Connection, scope: Scope, key: &str, now: i64) -> rusqlite::Result<LastDay> {
    conn.prepare_cached(LAST_DAY)?.query_row(
        params![scope.as_str(), key, (now - DAY).div_euclid(HOUR)],
        |row| {
            let replies: i64 = row.get(0)?;
            Ok(LastDay {
                replies: u32::try_from(replies).unwrap_or(u32::MAX),
                last_at: row.get(1)?,
            })
        },
    )
}

pub(super) const PURGE: &str = "DELETE FROM reply_counts WHERE (scope, key, hour) IN
     (SELECT scope, key, hour FROM reply_counts WHERE hour < ?1 LIMIT ?2)";

/// Deletes up to `limit` counts that no window reads any more (older than
/// two days at `now`); returns how many.
///
/// # Errors
/// A storage failure.
pub fn purge(conn: &Connection, now: i64, limit: usize) -> rusqlite::Result<usize> {
    conn.prepare_cached(PURGE)?.execute(params![
        (now - 2 * DAY).div_euclid(HOUR),
        i64::try_from(limit).unwrap_or(i64::MAX)
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        super::super::migrations::run(&mut conn).expect("migrations run");
        conn
    }

    #[test]
    fn the_last_day_sums_its_hours_and_forgets_older_ones() {
        let conn = database();
        let now = 1_000 * DAY + 5 * HOUR;
        bump(&conn, Scope::Address, "jane@example.com", now - 3 * DAY).expect("bump");
        bump(&conn, Scope::Address, "jane@example.com", now - 20 * HOUR).expect("bump");
        bump(&conn, Scope::Address, "jane@example.com", now - 60).expect("bump");
        bump(&conn, Scope::Address, "jane@example.com", now - 30).expect("bump");
        bump(&conn, Scope::Service, "jane@example.com", now).expect("bump");

        let counted = last_day(&conn, Scope::Address, "jane@example.com", now).expect("read");

        assert_eq!(
            counted,
            LastDay {
                replies: 3,
                last_at: Some(now - 30)
            }
        );
        assert_eq!(
            last_day(&conn, Scope::Address, "john@example.com", now).expect("read"),
            LastDay::default()
        );
        assert_eq!(purge(&conn, now, 10).expect("purge"), 1);
        assert_eq!(
            last_day(&conn, Scope::Address, "jane@example.com", now).expect("read"),
            counted,
            "the purge keeps every hour a window reads"
        );
    }
}
