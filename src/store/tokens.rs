//! The `activation_tokens` table: only SHA-256 hashes, single use, expiring.

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
     WHERE t.hash = ?1 AND t.used_at IS NULL AND t.expires_at > ?2 AND c.status = 'pending'";

/// The pending customer a live token belongs to; reads only.
pub fn live_customer(
    conn: &Connection,
    hash: &TokenHash,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(LIVE_CUSTOMER)?
        .query_row(params![&hash.0[..], now], |row| row.get(0))
        .optional()
}

pub(super) const CONSUME: &str = "UPDATE activation_tokens SET used_at = ?2
     WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2
     RETURNING customer_id";

/// Marks a live token used and returns its customer. The conditional UPDATE
/// makes this single-use even under concurrent requests.
pub fn consume(conn: &Connection, hash: &TokenHash, now: i64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(CONSUME)?
        .query_row(params![&hash.0[..], now], |row| row.get(0))
        .optional()
}

/// Deletes every token of a customer, used or not; returns how many.
pub fn delete_for_customer(conn: &Connection, customer_id: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM activation_tokens WHERE customer_id = ?1")?
        .execute([customer_id])
}
