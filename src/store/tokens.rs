//! The `activation_tokens` table: only SHA-256 hashes, single use, expiring.

use crate::domain::TokenHash;
use rusqlite::{Connection, OptionalExtension, params};

/// Replaces every unused token of a customer with a new one, so only the
/// newest link works.
pub fn replace(
    conn: &Connection,
    customer_id: i64,
    hash: &TokenHash,
    now: i64,
    expires_at: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM activation_tokens WHERE customer_id = ?1 AND used_at IS NULL",
    )?
    .execute([customer_id])?;
    conn.prepare_cached(
        "INSERT INTO activation_tokens (hash, customer_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![&hash.0[..], customer_id, now, expires_at])?;
    Ok(())
}

/// The pending customer a live token belongs to; reads only.
pub fn live_customer(
    conn: &Connection,
    hash: &TokenHash,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT t.customer_id FROM activation_tokens t JOIN customers c ON c.id = t.customer_id
         WHERE t.hash = ?1 AND t.used_at IS NULL AND t.expires_at > ?2 AND c.status = 'pending'",
    )?
    .query_row(params![&hash.0[..], now], |row| row.get(0))
    .optional()
}

/// Marks a live token used and returns its customer. The conditional UPDATE
/// makes this single-use even under concurrent requests.
pub fn consume(conn: &Connection, hash: &TokenHash, now: i64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "UPDATE activation_tokens SET used_at = ?2
         WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2
         RETURNING customer_id",
    )?
    .query_row(params![&hash.0[..], now], |row| row.get(0))
    .optional()
}
