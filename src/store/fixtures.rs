//! Rows for the store's unit tests, written as plain SQL so that they are
//! valid at every schema version the tests migrate to.

use rusqlite::{Connection, params};

/// Stores a received message (with its raw bytes, if any) and returns its id.
pub(super) fn message(conn: &Connection, received_at: i64, raw: Option<&[u8]>) -> i64 {
    conn.execute(
        "INSERT INTO inbound (received_at, service, client_ip, helo, envelope_from, envelope_to,
                              content_sha256, size, raw)
         VALUES (?1, 'desk', '192.0.2.1', 'mx.example', 'a@example.com', 'help@desk.example',
                 x'00', 10, ?2)",
        params![received_at, raw],
    )
    .expect("a message");
    conn.last_insert_rowid()
}
