//! The `activation_tokens` table: only hashes (`Token::stamped_hash`, or
//! plain SHA-256 for links made before stamps), single use, expiring.

use crate::domain::TokenHash;
use rusqlite::{Connection, OptionalExtension, params};

pub(super) const DELETE_UNUSED: &str =
    "DELETE FROM activation_tokens WHERE customer_id = ?1 AND used_at IS NULL";

/// Replaces every unused token of a customer with a new one, so only the
/// newest link works.
pub fn replace(
    conn: &Connection,
    customer_id: i64,
    hash: &TokenHash,
    now: i64,
    expires_at: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(DELETE_UNUSED)?.execute([customer_id])?;
    conn.prepare_cached(
        "INSERT INTO activation_tokens (hash, customer_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![&hash.0[..], customer_id, now, expires_at])?;
    Ok(())
}

pub(super) const LIVE_CUSTOMER: &str = "SELECT t.customer_id
     FROM activation_tokens t JOIN customers c ON c.id = t.customer_id
     WHERE t.hash IN (?1, ?3) AND t.used_at IS NULL AND t.expires_at > ?2 AND c.status = 'pending'";

/// The pending customer a live token belongs to, by the token's
/// `link_keys`; reads only.
pub fn live_customer(
    conn: &Connection,
    keys: &[TokenHash; 2],
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(LIVE_CUSTOMER)?
        .query_row(params![&keys[0].0[..], now, &keys[1].0[..]], |row| {
            row.get(0)
        })
        .optional()
}

pub(super) const CONSUME: &str = "UPDATE activation_tokens SET used_at = ?2
     WHERE hash IN (?1, ?3) AND used_at IS NULL AND expires_at > ?2
     RETURNING customer_id";

/// Marks a live token used, by its `link_keys`, and returns its customer.
/// The conditional UPDATE makes this single-use even under concurrent
/// requests.
pub fn consume(
    conn: &Connection,
    keys: &[TokenHash; 2],
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(CONSUME)?
        .query_row(params![&keys[0].0[..], now, &keys[1].0[..]], |row| {
            row.get(0)
        })
        .optional()
}

/// Deletes every token of a customer, used or not; returns how many.
pub fn delete_for_customer(conn: &Connection, customer_id: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM activation_tokens WHERE customer_id = ?1")?
        .execute([customer_id])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Token;
    use crate::store::migrations;

    const NOW: i64 = 1_767_225_600;

    /// A database with one pending customer; returns it and the customer's id.
    fn with_customer() -> (Connection, i64) {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        migrations::run(&mut conn).expect("migrations run");
        conn.execute(
            "INSERT INTO customers (email, identity, service, status, source, created_at, updated_at)
             VALUES ('jane@example.com', 'jane@example.com', 'desk', 'pending', 'recipient', ?1, ?1)",
            [NOW],
        )
        .expect("a customer");
        let id = conn.last_insert_rowid();
        (conn, id)
    }

    #[test]
    fn a_stamped_link_and_one_stored_before_stamps_are_both_found_and_used_once() {
        let stamped = Token::generate_stamped();
        let earlier = Token::generate();
        for (token, stored) in [
            (&stamped, stamped.stamped_hash()),
            (&earlier, earlier.hash()),
        ] {
            let (conn, id) = with_customer();
            replace(&conn, id, &stored, NOW, NOW + 3600).expect("stored");
            let presented = Token::parse(&token.expose()).expect("parses");
            let keys = presented.link_keys();
            assert_eq!(live_customer(&conn, &keys, NOW).expect("reads"), Some(id));
            assert_eq!(consume(&conn, &keys, NOW).expect("writes"), Some(id));
            assert_eq!(
                consume(&conn, &keys, NOW).expect("writes"),
                None,
                "single use"
            );
            assert_eq!(live_customer(&conn, &keys, NOW).expect("reads"), None);
        }
    }

    #[test]
    fn another_token_or_the_other_kind_of_key_finds_nothing() {
        let (conn, id) = with_customer();
        let token = Token::generate_stamped();
        // Stored under its stamped key, the token is not found by its plain
        // hash alone, nor by any other token.
        replace(&conn, id, &token.stamped_hash(), NOW, NOW + 3600).expect("stored");
        let stranger = Token::generate_stamped();
        assert_eq!(
            live_customer(&conn, &stranger.link_keys(), NOW).expect("reads"),
            None
        );
        assert_eq!(
            consume(&conn, &[token.hash(), token.hash()], NOW).expect("writes"),
            None
        );
        assert_eq!(
            live_customer(&conn, &token.link_keys(), NOW + 3600).expect("reads"),
            None,
            "expired"
        );
    }
}
