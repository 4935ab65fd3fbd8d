//! The `customers` table: pending, active and disabled customers.

use crate::policy::SenderState;
use rusqlite::{Connection, OptionalExtension, params};

/// Lifecycle of a customer account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Active,
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Disabled => "disabled",
        }
    }

    /// Parses a status as stored or typed on the command line.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Status::Pending),
            "active" => Some(Status::Active),
            "disabled" => Some(Status::Disabled),
            _ => None,
        }
    }
}

/// A customer row.
#[derive(Debug, Clone)]
pub struct Customer {
    pub id: i64,
    pub email: String,
    pub identity: String,
    pub name: Option<String>,
    pub company: Option<String>,
    pub service: String,
    pub status: Status,
    pub password_hash: Option<String>,
    pub source: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    /// When the row last changed (kept by triggers).
    pub updated_at: i64,
}

impl Customer {
    /// The customer's state as policy sees it.
    pub fn sender_state(&self) -> SenderState {
        match self.status {
            Status::Pending => SenderState::Pending,
            Status::Active => SenderState::Active,
            Status::Disabled => SenderState::Disabled,
        }
    }
}

/// What is needed to create a pending customer.
#[derive(Debug, Clone)]
pub struct NewCustomer<'a> {
    pub email: &'a str,
    pub identity: &'a str,
    pub name: Option<&'a str>,
    pub company: Option<&'a str>,
    pub service: &'a str,
    pub source: &'a str,
}

const COLUMNS: &str = "id, email, identity, name, company, service, status, password_hash, source, created_at, activated_at, updated_at";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Customer> {
    let status: String = row.get(6)?;
    Ok(Customer {
        id: row.get(0)?,
        email: row.get(1)?,
        identity: row.get(2)?,
        name: row.get(3)?,
        company: row.get(4)?,
        service: row.get(5)?,
        status: Status::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("unknown status {status:?}").into(),
            )
        })?,
        password_hash: row.get(7)?,
        source: row.get(8)?,
        created_at: row.get(9)?,
        activated_at: row.get(10)?,
        updated_at: row.get::<_, Option<i64>>(11)?.unwrap_or_default(),
    })
}

pub(super) fn by_identity_sql() -> String {
    format!("SELECT {COLUMNS} FROM customers WHERE identity = ?1")
}

/// The customer with this identity key.
pub fn by_identity(conn: &Connection, identity: &str) -> rusqlite::Result<Option<Customer>> {
    conn.prepare_cached(&by_identity_sql())?
        .query_row([identity], from_row)
        .optional()
}

/// The customer with this id.
pub fn by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<Customer>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM customers WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// Customers, newest first, optionally filtered.
pub fn list(
    conn: &Connection,
    status: Option<Status>,
    service: Option<&str>,
) -> rusqlite::Result<Vec<Customer>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM customers
         WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR service = ?2)
         ORDER BY created_at DESC, id DESC"
    ))?;
    statement
        .query_map(params![status.map(Status::as_str), service], from_row)?
        .collect()
}

/// Which customers a page of the API lists.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub status: Option<Status>,
    pub service: Option<&'a str>,
    /// Only customers changed at or after this Unix time.
    pub updated_since: Option<i64>,
}

/// Where a page starts: after this (updated_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    pub updated_at: i64,
    pub id: i64,
}

/// A page of the API's list, through the `customers_by_update` index.
pub(super) fn page_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM customers
         WHERE (updated_at, id) > (?1, ?2) AND updated_at >= ?3
           AND (?4 IS NULL OR status = ?4) AND (?5 IS NULL OR service = ?5)
         ORDER BY updated_at, id LIMIT ?6"
    )
}

/// Up to `limit` customers matching `filter`, in the order they last
/// changed (then by id), starting after `after`: a cursor that survives
/// changes between pages, since a customer that changes moves to the end.
pub fn page(
    conn: &Connection,
    filter: &Filter<'_>,
    after: Option<After>,
    limit: usize,
) -> rusqlite::Result<Vec<Customer>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let (after_time, after_id) = after.map_or((i64::MIN, i64::MIN), |a| (a.updated_at, a.id));
    let since = filter.updated_since.unwrap_or(i64::MIN);
    let mut statement = conn.prepare_cached(&page_sql())?;
    statement
        .query_map(
            params![
                after_time,
                after_id,
                since,
                filter.status.map(Status::as_str),
                filter.service,
                limit
            ],
            from_row,
        )?
        .collect()
}

/// The insert behind `insert_pending`.
pub(super) const INSERT_PENDING: &str =
    "INSERT INTO customers (email, identity, name, company, service, status, source, created_at,
                            updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7)";

/// Inserts a pending customer and returns its id.
pub fn insert_pending(
    conn: &Connection,
    customer: &NewCustomer<'_>,
    now: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(INSERT_PENDING)?.execute(params![
        customer.email,
        customer.identity,
        customer.name,
        customer.company,
        customer.service,
        customer.source,
        now
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Inserts a customer who is active from the start (a sign-in method proved
/// the address; there is no password until they set one) and returns its id.
pub fn insert_active(
    conn: &Connection,
    customer: &NewCustomer<'_>,
    now: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO customers (email, identity, name, company, service, status, source, created_at,
                                activated_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?7, ?7, ?7)",
    )?
    .execute(params![
        customer.email,
        customer.identity,
        customer.name,
        customer.company,
        customer.service,
        customer.source,
        now
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Makes a pending customer active without a password (a sign-in method
/// proved the address), keeping their name or taking `name` when they have
/// none. Returns false when the customer is not pending.
pub fn activate_proven(
    conn: &Connection,
    id: i64,
    name: Option<&str>,
    now: i64,
) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE customers SET status = 'active', name = COALESCE(name, ?2), activated_at = ?3
             WHERE id = ?1 AND status = 'pending'",
        )?
        .execute(params![id, name, now])?;
    Ok(changed == 1)
}

/// Sets an active customer's password; returns false when they are not
/// active.
pub fn set_password(conn: &Connection, id: i64, password_hash: &str) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE customers SET password_hash = ?2 WHERE id = ?1 AND status = 'active'",
        )?
        .execute(params![id, password_hash])?;
    Ok(changed == 1)
}

/// Makes a pending customer active with a name and password.
/// Returns false when the customer is not pending.
pub fn activate(
    conn: &Connection,
    id: i64,
    name: &str,
    password_hash: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE customers SET status = 'active', name = ?2, password_hash = ?3, activated_at = ?4
             WHERE id = ?1 AND status = 'pending'",
        )?
        .execute(params![id, name, password_hash, now])?;
    Ok(changed == 1)
}

/// Sets a customer's status; returns false when no such customer exists.
pub fn set_status(conn: &Connection, identity: &str, status: Status) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached("UPDATE customers SET status = ?2 WHERE identity = ?1")?
        .execute(params![identity, status.as_str()])?;
    Ok(changed == 1)
}

/// An account brought back by `enable`: active again when it had been
/// activated, otherwise pending.
pub fn enable(conn: &Connection, identity: &str) -> rusqlite::Result<Option<Status>> {
    conn.prepare_cached(
        "UPDATE customers
         SET status = CASE WHEN activated_at IS NULL THEN 'pending' ELSE 'active' END
         WHERE identity = ?1
         RETURNING status",
    )?
    .query_row([identity], |row| row.get::<_, String>(0))
    .optional()
    .map(|status| status.as_deref().and_then(Status::parse))
}

/// A pending customer removed by the purge.
#[derive(Debug, Clone)]
pub struct Purged {
    pub email: String,
    pub identity: String,
    pub service: String,
    pub name: Option<String>,
    pub company: Option<String>,
    pub source: String,
}

pub(super) const PURGE_PENDING_BEFORE: &str = "DELETE FROM customers WHERE id IN
         (SELECT id FROM customers WHERE status = 'pending' AND created_at < ?1 LIMIT ?2)
     RETURNING email, identity, service, name, company, source";

/// Deletes up to `limit` pending customers created before `cutoff` (their
/// tokens and sessions go with them) and returns who was deleted.
pub fn purge_pending_before(
    conn: &Connection,
    cutoff: i64,
    limit: usize,
) -> rusqlite::Result<Vec<Purged>> {
    let mut statement = conn.prepare_cached(PURGE_PENDING_BEFORE)?;
    statement
        .query_map(params![cutoff, crate::store::sql_limit(limit)], |row| {
            Ok(Purged {
                email: row.get(0)?,
                identity: row.get(1)?,
                service: row.get(2)?,
                name: row.get(3)?,
                company: row.get(4)?,
                source: row.get(5)?,
            })
        })?
        .collect()
}

/// Deletes a customer row (its tokens and sessions go with it).
pub fn delete(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    let deleted = conn
        .prepare_cached("DELETE FROM customers WHERE id = ?1")?
        .execute([id])?;
    Ok(deleted == 1)
}

/// Deletes the customer with this identity if it is pending (its tokens
/// and sessions go with it) and returns its service.
pub fn delete_pending(conn: &Connection, identity: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "DELETE FROM customers WHERE identity = ?1 AND status = 'pending' RETURNING service",
    )?
    .query_row([identity], |row| row.get(0))
    .optional()
}
