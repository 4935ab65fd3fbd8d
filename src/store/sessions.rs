//! The `sessions` table: portal sessions by SHA-256 of the session id.

use crate::domain::TokenHash;
use rusqlite::{Connection, OptionalExtension, params};

/// Opens a session for a customer.
pub fn create(
    conn: &Connection,
    hash: &TokenHash,
    customer_id: i64,
    now: i64,
    expires_at: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sessions (hash, customer_id, created_at, last_seen_at, expires_at) VALUES (?1, ?2, ?3, ?3, ?4)",
    )?
    .execute(params![&hash.0[..], customer_id, now, expires_at])?;
    Ok(())
}

pub(super) const CUSTOMER: &str = "SELECT s.customer_id
     FROM sessions s JOIN customers c ON c.id = s.customer_id
     WHERE s.hash = ?1 AND s.expires_at > ?2 AND s.last_seen_at > ?2 - ?3 AND c.status = 'active'";

/// The active customer of a live session: not past its absolute expiry, seen
/// within the idle timeout.
pub fn customer(
    conn: &Connection,
    hash: &TokenHash,
    now: i64,
    idle_secs: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(CUSTOMER)?
        .query_row(params![&hash.0[..], now, idle_secs], |row| row.get(0))
        .optional()
}

/// Records activity on a session (extends its idle timeout).
pub fn touch(conn: &Connection, hash: &TokenHash, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE sessions SET last_seen_at = ?2 WHERE hash = ?1")?
        .execute(params![&hash.0[..], now])?;
    Ok(())
}

/// Ends a session.
pub fn delete(conn: &Connection, hash: &TokenHash) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM sessions WHERE hash = ?1")?
        .execute([&hash.0[..]])?;
    Ok(())
}

/// Ends every session of a customer (the account was disabled).
pub fn delete_for_customer(conn: &Connection, customer_id: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM sessions WHERE customer_id = ?1")?
        .execute([customer_id])
}

/// Sessions past their absolute expiry, from `sessions_by_expiry`.
pub(super) const PURGE_EXPIRED: &str = "DELETE FROM sessions WHERE expires_at <= ?1";
/// Sessions idle too long, from `sessions_by_last_seen`. (One statement
/// with `OR` is planned as a scan of every session.)
pub(super) const PURGE_IDLE: &str = "DELETE FROM sessions WHERE last_seen_at <= ?1";

/// Removes sessions past their absolute expiry or idle for longer than
/// `idle_secs`; returns how many.
pub fn purge_expired(conn: &Connection, now: i64, idle_secs: i64) -> rusqlite::Result<usize> {
    let expired = conn.prepare_cached(PURGE_EXPIRED)?.execute([now])?;
    let idle = conn
        .prepare_cached(PURGE_IDLE)?
        .execute([now.saturating_sub(idle_secs)])?;
    Ok(expired + idle)
}

/// A session's times, as a data-protection export shows them (never the
/// hash).
#[derive(Debug, Clone, Copy)]
pub struct SessionRecord {
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// A customer's sessions, oldest first.
pub fn for_customer(conn: &Connection, customer_id: i64) -> rusqlite::Result<Vec<SessionRecord>> {
    let mut statement = conn.prepare_cached(
        "SELECT created_at, last_seen_at, expires_at FROM sessions
         WHERE customer_id = ?1 ORDER BY created_at",
    )?;
    statement
        .query_map([customer_id], |row| {
            Ok(SessionRecord {
                created_at: row.get(0)?,
                last_seen_at: row.get(1)?,
                expires_at: row.get(2)?,
            })
        })?
        .collect()
}
