//! The `reply_counts` table: replies queued per service, per (service,
//! sender domain) and per (service, client network), in hourly buckets, for
//! the daily reply budgets. Reading a day costs at most 24 rows of one key of
//! the primary key, however much was ever sent; old buckets leave with the
//! purge. Hours, not days: the budgets are "per 24 hours", and a calendar
//! day's row would let twice the budget through across midnight.

use rusqlite::{Connection, params};

const HOUR_SECS: i64 = 3600;

/// What a count is kept per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The service itself (its key is empty).
    Service,
    /// The A-label domain of the address replied to.
    Domain,
    /// The network of the client whose request was answered.
    Network,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Service => "service",
            Scope::Domain => "domain",
            Scope::Network => "network",
        }
    }
}

/// The count behind `last_day`: one range of the primary key.
pub(super) const LAST_DAY: &str = "SELECT COALESCE(SUM(replies), 0) FROM reply_counts
     WHERE scope = ?1 AND service = ?2 AND key = ?3 AND hour > ?4";

/// Replies counted for `key` of `service` (`""` for `Scope::Service`) in the
/// 24 hours before `now` (the current hour and the 23 before it).
pub fn last_day(
    conn: &Connection,
    scope: Scope,
    service: &str,
    key: &str,
    now: i64,
) -> rusqlite::Result<u32> {
    conn.prepare_cached(LAST_DAY)?.query_row(
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

/// The oldest buckets no day's count reads any more, from `reply_counts_by_hour`.
pub(super) const PURGE_BEFORE: &str = "DELETE FROM reply_counts
     WHERE (scope, service, key, hour) IN
           (SELECT scope, service, key, hour FROM reply_counts WHERE hour <= ?1 LIMIT ?2)";

/// Drops up to `limit` buckets that no day's count reads any more; returns
/// how many.
pub fn purge_before(conn: &Connection, now: i64, limit: usize) -> rusqlite::Result<usize> {
    conn.prepare_cached(PURGE_BEFORE)?
        .execute(params![now / HOUR_SECS - 25, super::sql_limit(limit)])
}
