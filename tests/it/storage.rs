//! Storage bounded by design: mail we do not answer keeps its header section
//! only, raw bytes kept are capped per client per hour, a full database is
//! answered `452 4.3.1` and intake recovers by itself once space returns,
//! erased bytes are gone from the file and its WAL, and everything written
//! is private to the daemon's user.

use crate::support::app::SUPPORT;
use crate::support::mail::{mail_files, person};
use crate::support::{TestApp, eventually, scrape};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database's size as SQLite counts it (its pages, WAL included).
fn database_bytes(app: &TestApp) -> i64 {
    app.db()
        .query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |row| row.get(0),
        )
        .expect("the database size")
}

/// A message from a person with a body of `body_bytes` (a marker repeated).
fn large_mail(from: &str, id: &str, marker: &str, body_bytes: usize) -> Vec<u8> {
    let mut message = person("Jane", from, SUPPORT, id);
    let line = format!("{marker} {}\r\n", "x".repeat(70));
    while message.len() < body_bytes {
        message.extend_from_slice(line.as_bytes());
    }
    message
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn automatic_mail_of_almost_a_megabyte_grows_the_database_by_its_headers_only() {
    let app = TestApp::spawn().await;
    // Warm up: the first message creates the tables' first pages.
    app.mail_support("Jane", "jane@example.com", "warm@example.com")
        .await
        .assert_code(250);
    let before = database_bytes(&app);
    for n in 0..20 {
        let from = format!("robot{n}@example.com");
        let mut message = format!(
            "From: Robot <{from}>\r\nTo: {SUPPORT}\r\nSubject: Out of office\r\n\
             Auto-Submitted: auto-replied\r\nMessage-ID: <auto{n}@example.com>\r\n\r\n"
        )
        .into_bytes();
        while message.len() < 900_000 {
            message.extend_from_slice(b"I am away until Monday and read no mail at all.\r\n");
        }
        app.send(&from, SUPPORT, &message).await.assert_code(250);
    }
    let grown = database_bytes(&app) - before;
    println!("20 automatic mails of 0.9 MB grew the database by {grown} bytes");
    assert!(
        grown < 20 * 4096,
        "20 automatic mails of 0.9 MB grew the database by {grown} bytes"
    );
    let (kept, size): (i64, i64) = app
        .db()
        .query_row(
            "SELECT MAX(LENGTH(raw)), MIN(size) FROM inbound WHERE envelope_from LIKE 'robot%'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the stored messages");
    assert!(
        kept < 1024,
        "only the header section is kept ({kept} bytes)"
    );
    assert!(size >= 900_000, "the record keeps the message's size");
    app.settle().await;
    assert_eq!(
        app.relay.mails().len(),
        1,
        "automatic mail is never answered"
    );
}

#[tokio::test]
async fn past_a_clients_hourly_quota_raw_bytes_are_not_kept_and_mail_is_still_answered() {
    let app = TestApp::spawn_with(|s| s.store.raw_quota.per_client_per_hour = 50_000).await;
    for n in 0..3 {
        let from = format!("person{n}@example.com");
        let message = large_mail(&from, &format!("q{n}@example.com"), "quota", 30_000);
        app.send(&from, SUPPORT, &message).await.assert_code(250);
    }
    let kept: Vec<bool> = {
        let db = app.db();
        let mut statement = db
            .prepare("SELECT raw IS NOT NULL FROM inbound ORDER BY id")
            .expect("prepare");
        statement
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(
        kept,
        vec![true, false, false],
        "the quota is 50,000 bytes an hour"
    );
    assert_eq!(
        app.relay.wait_for(3).await.len(),
        3,
        "all three are answered"
    );
    let quota = scrape(&app)
        .await
        .value("registrar_limit_reached_total", &[("limit", "raw_quota")]);
    assert!(quota >= 2.0, "{quota}");
}

#[tokio::test]
async fn a_full_database_answers_452_4_3_1_and_intake_recovers_by_itself() {
    let app = TestApp::spawn_with(|s| {
        s.store.max_size_bytes = Some(512 * 1024);
        s.activation.purge_interval = Duration::from_millis(200);
        s.circuit_breaker.new_senders_per_minute = 1000;
    })
    .await;
    // Replies stay queued: a delivered reply's body is erased, and the room
    // it frees would let the retry below fit.
    app.relay.set_failing(true);
    // Large messages fill the file; a refused one leaves the room it did not
    // fit in, so smaller ones, down to a registration of the late sender's
    // size, fill that too.
    let mut full = None;
    let mut n = 0;
    for size in [100_000, 10_000, 0] {
        loop {
            n += 1;
            assert!(n < 500, "the capped database fills up");
            let from = format!("late{n:04}@example.com");
            let message = large_mail(&from, &format!("fill{n}@example.com"), "filler", size);
            let reply = app.send(&from, SUPPORT, &message).await;
            if reply.code != 250 {
                full = Some(reply);
                break;
            }
        }
    }
    let full = full.expect("the capped database fills up");
    full.assert_code(452);
    assert!(full.text.starts_with("4.3.1"), "{}", full.text);
    let retry = app
        .mail_support("Late", "late@example.com", "late@example.com")
        .await;
    retry.assert_code(452);

    // Space returns: the raw bytes age past their retention and the purge
    // erases them. Nobody restarts anything.
    app.db()
        .execute(
            "UPDATE inbound SET received_at = received_at - 31 * 86400",
            [],
        )
        .expect("age the messages");
    let mut answered = None;
    for _ in 0..100 {
        let reply = app
            .mail_support("Late", "late@example.com", "late@example.com")
            .await;
        if reply.code == 250 {
            answered = Some(reply);
            break;
        }
        reply.assert_code(452);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answered.is_some(),
        "intake recovers once the purge frees space"
    );
    assert_eq!(
        app.db()
            .query_row(
                "SELECT COUNT(*) FROM customers WHERE email = 'late@example.com'",
                [],
                |row| row.get::<_, i64>(0)
            )
            .expect("count"),
        1,
        "the retried message registered once"
    );
}

#[tokio::test]
async fn erased_raw_bytes_are_gone_from_the_database_file_and_its_wal() {
    let app = TestApp::spawn_with(|s| {
        s.activation.purge_interval = Duration::from_millis(100);
        // The record outlives the raw bytes (30 days by default).
        s.store.inbound_retention = Duration::from_secs(60 * 86400);
    })
    .await;
    let marker = "Zq7-unmistakable-marker-Wk2";
    let message = large_mail("jane@example.com", "erase@example.com", marker, 20_000);
    app.send("jane@example.com", SUPPORT, &message)
        .await
        .assert_code(250);
    let files = |app: &TestApp| -> Vec<PathBuf> {
        ["", "-wal"]
            .iter()
            .map(|suffix| PathBuf::from(format!("{}{suffix}", app.db_path.display())))
            .collect()
    };
    let holds_marker = |path: &Path| -> bool {
        std::fs::read(path).is_ok_and(|bytes| {
            bytes
                .windows(marker.len())
                .any(|window| window == marker.as_bytes())
        })
    };
    assert!(
        files(&app).iter().any(|path| holds_marker(path)),
        "the raw message is stored"
    );
    app.db()
        .execute(
            "UPDATE inbound SET received_at = received_at - 31 * 86400",
            [],
        )
        .expect("age the message");
    eventually("the erased bytes to leave the files", || {
        files(&app).iter().all(|path| !holds_marker(path))
    })
    .await;
    assert_eq!(app.count("inbound"), 1, "the record stays");
}

#[tokio::test]
async fn everything_written_is_private_and_mail_files_leave_after_their_retention() {
    let app = TestApp::spawn_with(|s| {
        let data = s.store.path.parent().expect("a folder").join("data");
        s.store.path = data.join("registrar.sqlite3");
        s.outbound.relay = None;
    })
    .await;
    app.mail_support("Jane", "jane@example.com", "private@example.com")
        .await
        .assert_code(250);
    let outbound = app.settings.outbound.folder.clone();
    eventually("the mail file", || !mail_files(&outbound).is_empty()).await;
    let data = app.db_path.parent().expect("the data folder").to_owned();
    assert_eq!(mode(&data), 0o700, "the data folder");
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let file = PathBuf::from(format!("{}{suffix}", app.db_path.display()));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&outbound), 0o700, "the outbound folder");
    let mail = mail_files(&outbound).remove(0);
    assert_eq!(mode(&mail), 0o600, "{}", mail.display());

    // Past the retention, the purge removes delivered files.
    let app = app
        .restart_with(|s| {
            let data = s.store.path.parent().expect("a folder").join("data");
            s.store.path = data.join("registrar.sqlite3");
            s.outbound.relay = None;
            s.outbound.folder_retention = Duration::ZERO;
            s.activation.purge_interval = Duration::from_millis(100);
        })
        .await;
    eventually("the delivered file to be removed", || !mail.exists()).await;
    drop(app);
}
