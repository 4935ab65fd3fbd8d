//! The `reply_counts` table: replies queued per (service, sender domain) and
//! per (service, client network), in hourly buckets, for the budgets that
//! come before the service's own. Reading a day costs at most 24 rows of one
//! key; old buckets leave with the purge.

use rusqlite::{Connection, params};

const HOUR_SECS: i64 = 3600;

/// What a count is kept per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The A-label domain of the address replied to.
    Domain,
    /// The network of the client whose request was answered.
    Network,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Domain => "domain",
            Scope::Network => "network",
        }
    }
}

/// Replies counted for `key` of `service` in the 24 hours before `now`.
pub fn last_day(
    conn: &Connection,
    scope: Scope,
    service: &str,
    key: &str,
    now: i64,
) -> rusqlite::Result<u32> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(replies), 0) FROM reply_counts
         WHERE scope = ?1 AND service = ?2 AND key = ?3 AND hour > ?4",
    )?
    .query_row(
        params![scope.as_str(), service, key, now / HOUR_SECS - 24],
        |row| row.get(0),
    )
}

/// Counts one reply for `key` of `service` at `now`.
pub fn add(
    conn: &Connection,
    scope: Scope,
    service: &str,
    key: &str,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO reply_counts (scope, service, key, hour, replies) VALUES (?1, ?2, ?3, ?4, 1)
         ON CONFLICT (scope, service, key, hour) DO UPDATE SET replies = replies + 1",
    )?
    .execute(params![scope.as_str(), service, key, now / HOUR_SECS])?;
    Ok(())
}

/// Drops buckets that no day's count reads any more; returns how many.
pub fn purge_before(conn: &Connection, now: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM reply_counts WHERE hour <= ?1")?
        .execute([now / HOUR_SECS - 25])
}
