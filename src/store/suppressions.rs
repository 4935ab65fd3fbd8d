//! The `suppressions` and `opt_out_tokens` tables: addresses that are never
//! mailed again, and the "I did not ask for this" links (by hash) that
//! put an address there.

use crate::domain::TokenHash;
use rusqlite::{Connection, OptionalExtension, params};

/// Who put an address on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Its owner, with the link in a mail.
    Recipient,
    Operator,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Recipient => "recipient",
            Source::Operator => "operator",
        }
    }
}

/// An address on the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub email: String,
    pub source: String,
    pub created_at: i64,
}

/// The suppression of an identity, if any.
pub fn find(conn: &Connection, identity: &str) -> rusqlite::Result<Option<Suppression>> {
    conn.prepare_cached("SELECT email, source, created_at FROM suppressions WHERE identity = ?1")?
        .query_row([identity], |row| {
            Ok(Suppression {
                email: row.get(0)?,
                source: row.get(1)?,
                created_at: row.get(2)?,
            })
        })
        .optional()
}

/// Deletes the "I did not ask for this" links mailed to an identity;
/// returns how many.
pub fn delete_opt_out_tokens_for(conn: &Connection, identity: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM opt_out_tokens WHERE identity = ?1")?
        .execute([identity])
}

/// Whether an identity is never to be mailed.
pub fn contains(conn: &Connection, identity: &str) -> rusqlite::Result<bool> {
    Ok(find(conn, identity)?.is_some())
}

/// Puts an identity on the list; returns false when it already was.
pub fn add(
    conn: &Connection,
    identity: &str,
    email: &str,
    source: Source,
    now: i64,
) -> rusqlite::Result<bool> {
    let added = conn
        .prepare_cached(
            "INSERT INTO suppressions (identity, email, source, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (identity) DO NOTHING",
        )?
        .execute(params![identity, email, source.as_str(), now])?;
    Ok(added == 1)
}

/// Takes an identity off the list; returns false when it was not on it.
pub fn remove(conn: &Connection, identity: &str) -> rusqlite::Result<bool> {
    let removed = conn
        .prepare_cached("DELETE FROM suppressions WHERE identity = ?1")?
        .execute([identity])?;
    Ok(removed == 1)
}

/// Stores the hash of a new "I did not ask for this" link for an address.
pub fn add_opt_out_token(
    conn: &Connection,
    hash: &TokenHash,
    identity: &str,
    email: &str,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO opt_out_tokens (hash, identity, email, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![&hash.0[..], identity, email, now])?;
    Ok(())
}

/// The address an opt-out link was made for (identity, email as mailed),
/// by the link token's `link_keys`, when the link is younger than `since`.
pub fn opt_out_address(
    conn: &Connection,
    keys: &[TokenHash; 2],
    since: i64,
) -> rusqlite::Result<Option<(String, String)>> {
    conn.prepare_cached(OPT_OUT_ADDRESS)?
        .query_row(params![&keys[0].0[..], since, &keys[1].0[..]], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
}

pub(super) const OPT_OUT_ADDRESS: &str =
    "SELECT identity, email FROM opt_out_tokens WHERE hash IN (?1, ?3) AND created_at > ?2";

/// The oldest "I did not ask for this" links, from `opt_out_tokens_by_age`.
pub(super) const PURGE_OPT_OUT_BEFORE: &str = "DELETE FROM opt_out_tokens WHERE hash IN
     (SELECT hash FROM opt_out_tokens WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)";

/// Drops up to `limit` opt-out links made before `before`; returns how many.
pub fn purge_opt_out_tokens_before(
    conn: &Connection,
    before: i64,
    limit: usize,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(PURGE_OPT_OUT_BEFORE)?
        .execute(rusqlite::params![before, crate::store::sql_limit(limit)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Token;
    use crate::store::migrations;

    const NOW: i64 = 1_767_225_600;

    #[test]
    fn an_opt_out_link_is_found_under_a_stamped_key_or_a_plain_one_stored_before() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        migrations::run(&mut conn).expect("migrations run");
        let stamped = Token::generate_stamped();
        let earlier = Token::generate();
        add_opt_out_token(
            &conn,
            &stamped.stamped_hash(),
            "a@example.com",
            "A@example.com",
            NOW,
        )
        .expect("stored");
        add_opt_out_token(
            &conn,
            &earlier.hash(),
            "b@example.com",
            "b@example.com",
            NOW,
        )
        .expect("stored");
        let found = |token: &Token, since| {
            opt_out_address(&conn, &token.link_keys(), since)
                .expect("reads")
                .map(|(identity, _)| identity)
        };
        assert_eq!(found(&stamped, NOW - 1).as_deref(), Some("a@example.com"));
        assert_eq!(found(&earlier, NOW - 1).as_deref(), Some("b@example.com"));
        assert_eq!(found(&Token::generate_stamped(), NOW - 1), None);
        assert_eq!(found(&stamped, NOW), None, "too old");
    }
}
