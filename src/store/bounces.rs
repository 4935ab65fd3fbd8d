//! The `bouncing` table: addresses whose mail bounced for good, and the
//! outbox rows a delivery report names (by the random token of their VERP
//! envelope sender).

use rusqlite::{Connection, OptionalExtension, params};

/// The reply a VERP token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BouncedReply {
    pub outbox_id: i64,
    pub service: Option<String>,
    pub kind: String,
    /// As it was mailed.
    pub recipient: String,
    pub created_at: i64,
}

pub(super) const BY_VERP_TOKEN: &str =
    "SELECT id, service, kind, recipient, created_at FROM outbox WHERE verp_token = ?1";

/// The outbox row sent with the envelope sender carrying `token`.
pub fn reply_for_token(conn: &Connection, token: &str) -> rusqlite::Result<Option<BouncedReply>> {
    conn.prepare_cached(BY_VERP_TOKEN)?
        .query_row([token], |row| {
            Ok(BouncedReply {
                outbox_id: row.get(0)?,
                service: row.get(1)?,
                kind: row.get(2)?,
                recipient: row.get(3)?,
                created_at: row.get(4)?,
            })
        })
        .optional()
}

/// A delivery report's verdict on one reply.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    /// The status code, like `5.1.1`.
    pub status: &'a str,
    pub diagnostic: Option<&'a str>,
    pub at: i64,
}

/// Notes on the outbox row that its mail bounced.
pub fn mark_reply_bounced(
    conn: &Connection,
    outbox_id: i64,
    report: Report<'_>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET bounced_at = ?2, bounce_status = ?3, bounce_diagnostic = ?4 WHERE id = ?1",
    )?
    .execute(params![outbox_id, report.at, report.status, report.diagnostic])?;
    Ok(())
}

/// Marks an address bouncing (or updates the report it bounces by).
pub fn mark(
    conn: &Connection,
    identity: &str,
    email: &str,
    outbox_id: i64,
    report: Report<'_>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO bouncing (identity, email, outbox_id, status, diagnostic, bounced_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (identity) DO UPDATE SET email = ?2, outbox_id = ?3, status = ?4,
                                              diagnostic = ?5, bounced_at = ?6",
    )?
    .execute(params![
        identity,
        email,
        outbox_id,
        report.status,
        report.diagnostic,
        report.at
    ])?;
    Ok(())
}

pub(super) const IS_BOUNCING: &str = "SELECT 1 FROM bouncing WHERE identity = ?1";

/// Whether replies to an identity bounce.
pub fn is_bouncing(conn: &Connection, identity: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(IS_BOUNCING)?
        .query_row([identity], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Clears an identity; returns whether it was bouncing.
pub fn lift(conn: &Connection, identity: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM bouncing WHERE identity = ?1")?
        .execute([identity])?
        == 1)
}
