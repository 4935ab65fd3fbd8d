//! The `reply_counts` table: replies queued per service, per (service,
//! sender domain) and per (service, client network), in hourly buckets, for
//! the daily reply budgets. Reading a day costs at most 24 rows of one key of
//! the primary key, however much was ever sent; old buckets leave with the
//! purge. Hours, not days: the budgets are "per 24 hours", and a calendar
//! day's row would let twice the budget through across midnight.

use rusqlite::types::ToSql;
use rusqlite::{Connection, params, params_from_iter};

const HOUR_SECS: i64 = 3600;

/// The counts behind `last_day`: one range of the primary key per scope,
/// read in one statement. A key bound to NULL (no domain, no counted
/// network) matches nothing.
pub(super) const LAST_DAY: &str = "SELECT
     (SELECT COALESCE(SUM(replies), 0) FROM reply_counts
       WHERE scope = 'service' AND service = ?1 AND key = '' AND hour > ?4),
     (SELECT COALESCE(SUM(replies), 0) FROM reply_counts
       WHERE scope = 'domain' AND service = ?1 AND key = ?2 AND hour > ?4),
     (SELECT COALESCE(SUM(replies), 0) FROM reply_counts
       WHERE scope = 'network' AND service = ?1 AND key = ?3 AND hour > ?4)";

/// The keys a reply is counted under, besides its service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keys<'a> {
    /// The A-label domain of the address replied to.
    pub domain: Option<&'a str>,
    /// The client network, when it is counted.
    pub network: Option<&'a str>,
}

/// Replies counted in the 24 hours before `now` (the current hour and the
/// 23 before it), per scope; `None` for a key that was not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCounts {
    pub service: u32,
    pub domain: Option<u32>,
    pub network: Option<u32>,
}

/// The day's counts of `service` and of its `keys`.
pub fn last_day(
    conn: &Connection,
    service: &str,
    keys: Keys<'_>,
    now: i64,
) -> rusqlite::Result<DayCounts> {
    conn.prepare_cached(LAST_DAY)?.query_row(
        params![service, keys.domain, keys.network, now / HOUR_SECS - 24],
        |row| {
            Ok(DayCounts {
                service: row.get(0)?,
                domain: keys.domain.map(|_| row.get(1)).transpose()?,
                network: keys.network.map(|_| row.get(2)).transpose()?,
            })
        },
    )
}

/// The upsert of one reply's counts: the service's row, then one row per
/// further key (`?3`/`?4` its scope and key, `?5`/`?6` the next one's).
macro_rules! add_reply_sql {
    ($($row:literal),*) => {
        concat!(
            "INSERT INTO reply_counts (scope, service, key, hour, replies)
             VALUES ('service', ?1, '', ?2, 1)",
            $(", ", $row,)*
            " ON CONFLICT (scope, service, key, hour) DO UPDATE SET replies = replies + 1"
        )
    };
}

/// `add_reply`'s statement by the number of keys besides the service.
pub(super) const ADD_REPLY: [&str; 3] = [
    add_reply_sql!(),
    add_reply_sql!("(?3, ?1, ?4, ?2, 1)"),
    add_reply_sql!("(?3, ?1, ?4, ?2, 1)", "(?5, ?1, ?6, ?2, 1)"),
];

/// Counts one reply for `service` and each of its `keys` at `now`, in one
/// statement.
pub fn add_reply(
    conn: &Connection,
    service: &str,
    keys: Keys<'_>,
    now: i64,
) -> rusqlite::Result<()> {
    let hour = now / HOUR_SECS;
    let further: Vec<(&str, &str)> = [
        keys.domain.map(|domain| ("domain", domain)),
        keys.network.map(|network| ("network", network)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut values: Vec<&dyn ToSql> = vec![&service, &hour];
    for (scope, key) in &further {
        values.push(scope);
        values.push(key);
    }
    conn.prepare_cached(ADD_REPLY[further.len()])?
        .execute(params_from_iter(values))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrations;

    fn counters() -> Connection {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        migrations::run(&mut conn).expect("migrations run");
        conn
    }

    const NOW: i64 = 1_767_225_600;

    fn keys<'a>(domain: Option<&'a str>, network: Option<&'a str>) -> Keys<'a> {
        Keys { domain, network }
    }

    #[test]
    fn a_reply_is_counted_once_under_the_service_and_each_key_it_has() {
        let conn = counters();
        let net = "192.0.2.0/24";
        add_reply(&conn, "desk", keys(Some("a.test"), Some(net)), NOW).expect("counted");
        add_reply(&conn, "desk", keys(Some("a.test"), Some(net)), NOW + 60).expect("counted");
        add_reply(&conn, "desk", keys(Some("b.test"), None), NOW).expect("counted");
        add_reply(&conn, "desk", keys(None, None), NOW).expect("counted");
        add_reply(&conn, "other", keys(Some("a.test"), Some(net)), NOW).expect("counted");

        let day = |domain, network| {
            last_day(&conn, "desk", keys(domain, network), NOW + 120).expect("read")
        };
        assert_eq!(
            day(Some("a.test"), Some(net)),
            DayCounts {
                service: 4,
                domain: Some(2),
                network: Some(2)
            }
        );
        assert_eq!(
            day(Some("b.test"), Some("198.51.100.0/24")),
            DayCounts {
                service: 4,
                domain: Some(1),
                network: Some(0)
            }
        );
        assert_eq!(
            day(None, None),
            DayCounts {
                service: 4,
                domain: None,
                network: None
            }
        );
    }

    #[test]
    fn the_day_is_the_current_hour_and_the_23_before_it() {
        let conn = counters();
        let both = keys(Some("a.test"), Some("192.0.2.0/24"));
        add_reply(&conn, "desk", both, NOW - 24 * HOUR_SECS).expect("counted");
        add_reply(&conn, "desk", both, NOW - 23 * HOUR_SECS).expect("counted");
        add_reply(&conn, "desk", Keys::default(), NOW).expect("counted");
        assert_eq!(
            last_day(&conn, "desk", both, NOW).expect("read"),
            DayCounts {
                service: 2,
                domain: Some(1),
                network: Some(1)
            }
        );
    }
}
