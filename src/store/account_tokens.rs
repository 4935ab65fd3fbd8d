//! The `account_tokens` table: single-use links for active customers (a
//! password reset, an emailed sign-in link). Only SHA-256 hashes, expiring;
//! a new link of a purpose replaces the customer's unused one.

use crate::domain::TokenHash;
use rusqlite::{Connection, OptionalExtension, params};

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// "Forgot your password?": set a new password.
    Reset,
    /// "Email me a sign-in link".
    SignIn,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Reset => "reset",
            Purpose::SignIn => "sign_in",
        }
    }
}

/// Replaces the customer's unused link of `purpose` with a new one.
pub fn replace(
    conn: &Connection,
    customer_id: i64,
    purpose: Purpose,
    hash: &TokenHash,
    now: i64,
    expires_at: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM account_tokens WHERE customer_id = ?1 AND purpose = ?2 AND used_at IS NULL",
    )?
    .execute(params![customer_id, purpose.as_str()])?;
    conn.prepare_cached(
        "INSERT INTO account_tokens (hash, customer_id, purpose, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        &hash.0[..],
        customer_id,
        purpose.as_str(),
        now,
        expires_at
    ])?;
    Ok(())
}

/// The active customer a live link of `purpose` belongs to; reads only.
pub fn live_customer(
    conn: &Connection,
    hash: &TokenHash,
    purpose: Purpose,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT t.customer_id FROM account_tokens t JOIN customers c ON c.id = t.customer_id
         WHERE t.hash = ?1 AND t.purpose = ?2 AND t.used_at IS NULL AND t.expires_at > ?3
           AND c.status = 'active'",
    )?
    .query_row(params![&hash.0[..], purpose.as_str(), now], |row| {
        row.get(0)
    })
    .optional()
}

/// Marks a live link used and returns its active customer. The conditional
/// UPDATE keeps it single-use under concurrent requests.
pub fn consume(
    conn: &Connection,
    hash: &TokenHash,
    purpose: Purpose,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "UPDATE account_tokens SET used_at = ?3
         WHERE hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3
           AND customer_id IN (SELECT id FROM customers WHERE status = 'active')
         RETURNING customer_id",
    )?
    .query_row(params![&hash.0[..], purpose.as_str(), now], |row| {
        row.get(0)
    })
    .optional()
}

/// Deletes every link of a customer, used or not; returns how many.
pub fn delete_for_customer(conn: &Connection, customer_id: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM account_tokens WHERE customer_id = ?1")?
        .execute([customer_id])
}

/// Links past their expiry, from `account_tokens_by_expiry`.
pub(super) const PURGE_EXPIRED: &str = "DELETE FROM account_tokens WHERE expires_at <= ?1";
/// Links used already, from the partial index `account_tokens_used`. (One
/// statement with `OR` is planned as a scan of every link.)
pub(super) const PURGE_USED: &str = "DELETE FROM account_tokens WHERE used_at IS NOT NULL";

/// Removes links that expired or were used before `now` (the periodic
/// purge); returns how many.
pub fn purge_dead(conn: &Connection, now: i64) -> rusqlite::Result<usize> {
    let expired = conn.prepare_cached(PURGE_EXPIRED)?.execute([now])?;
    let used = conn.prepare_cached(PURGE_USED)?.execute([])?;
    Ok(expired + used)
}
