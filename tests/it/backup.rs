//! `registrar backup` and `registrar restore`, the real binary against a
//! running daemon's database: a backup taken under load is a consistent,
//! checked copy holding everyone answered `250` before it began; a restore
//! refuses while the daemon holds the database and checks its file first.

use crate::support::app::SUPPORT;
use crate::support::mail::person;
use crate::support::{DEADLINE, SmtpClient, TestApp};
use rusqlite::{Connection, OpenFlags};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SENDERS: usize = 8;
const PER_SENDER: usize = 125;

fn open_read_only(path: &std::path::Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open the copy")
}

fn integrity(conn: &Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check")
}

fn identities(conn: &Connection) -> HashSet<String> {
    conn.prepare("SELECT identity FROM customers")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// One SMTP session sending `PER_SENDER` registrations, noting each
/// address as soon as it is answered `250`.
async fn sender(app_smtp: std::net::SocketAddr, worker: usize, accepted: Arc<Mutex<Vec<String>>>) {
    let (mut client, greeting) = SmtpClient::connect(app_smtp).await.expect("connect");
    greeting.assert_code(220);
    for n in 0..PER_SENDER {
        let address = format!("load{worker}-{n}@example.com");
        let message = person("Load", &address, SUPPORT, &format!("{address}.id"));
        client
            .send_mail(&address, SUPPORT, &message)
            .await
            .expect("SMTP reply")
            .assert_code(250);
        accepted.lock().expect("lock").push(address);
    }
    let _ = client.command("QUIT").await;
}

#[tokio::test]
async fn a_backup_taken_while_a_thousand_registrations_arrive_holds_everyone_answered_before_it() {
    let app = TestApp::spawn_with(|s| {
        // Eight clients on one loopback address send everything.
        s.smtp.max_messages_per_session = u32::MAX;
        s.smtp.max_sessions_per_ip = u32::MAX;
        s.smtp.max_connections_per_ip_per_minute = u32::MAX;
        s.services[0].policy.limits.service_per_day = u32::MAX;
        // A burst of new customers from one network and one domain is the
        // point here: the circuit breaker and the domain and network budgets
        // have tests of their own.
        s.circuit_breaker.new_senders_per_minute = u32::MAX;
        s.services[0].policy.limits.domain_per_day = u32::MAX;
        s.services[0].policy.limits.network_per_day = u32::MAX;
    })
    .await;
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..SENDERS)
        .map(|worker| tokio::spawn(sender(app.smtp_addr, worker, Arc::clone(&accepted))))
        .collect();
    // Let the load get going, then note who has heard 250 so far.
    let start = tokio::time::Instant::now();
    while accepted.lock().expect("lock").len() < 100 {
        assert!(
            start.elapsed() < DEADLINE * 3,
            "the load does not get going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before: Vec<String> = accepted.lock().expect("lock").clone();
    let copy = tempfile::tempdir().expect("temp dir");
    let file = copy.path().join("registrar-backup.sqlite3");

    let output = app
        .cli(&["backup", file.to_str().expect("utf-8 path")])
        .await;

    let during = accepted.lock().expect("lock").len();
    assert!(output.success, "backup failed: {}", output.stderr);
    assert!(output.stdout.contains("integrity ok"), "{}", output.stdout);
    for sender in senders {
        sender.await.expect("a sender");
    }
    assert_eq!(accepted.lock().expect("lock").len(), SENDERS * PER_SENDER);
    assert!(
        before.len() < SENDERS * PER_SENDER && during < SENDERS * PER_SENDER,
        "registrations were still arriving while the backup ran ({} before, {during} after)",
        before.len()
    );
    let backup = open_read_only(&file);
    assert_eq!(integrity(&backup), "ok");
    let mode: String = backup
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .expect("journal mode");
    assert_eq!(mode, "delete", "the backup is one self-contained file");
    let kept = identities(&backup);
    let missing: Vec<&String> = before.iter().filter(|a| !kept.contains(*a)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} customers answered 250 before the backup are missing from it: {:?}",
        missing.len(),
        before.len(),
        &missing[..missing.len().min(5)]
    );
    let partials = std::fs::read_dir(copy.path())
        .expect("list")
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().contains("partial"))
        .count();
    assert_eq!(partials, 0, "no half-written file is left behind");
}

#[tokio::test]
async fn restore_refuses_while_the_daemon_runs_checks_its_file_and_then_brings_the_backup_back() {
    let mut app = TestApp::spawn().await;
    app.mail_support("Jane", "jane@example.com", "before@example.com")
        .await
        .assert_code(250);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("backup.sqlite3");
    let file_arg = file.to_str().expect("utf-8 path").to_owned();
    assert!(app.cli(&["backup", &file_arg]).await.success);
    app.mail_support("Joe", "joe@example.com", "after@example.com")
        .await
        .assert_code(250);

    let refused = app.cli(&["restore", &file_arg]).await;

    assert!(!refused.success, "a restore under a running daemon");
    assert!(
        refused.stderr.contains("in use by another registrar"),
        "{}",
        refused.stderr
    );
    assert_eq!(app.count("customers"), 2, "nothing was touched");

    app.stop().await;
    let garbage = dir.path().join("garbage.sqlite3");
    std::fs::write(&garbage, b"not a database at all").expect("write");
    let checked = app
        .cli(&["restore", garbage.to_str().expect("utf-8 path")])
        .await;
    assert!(!checked.success, "a file that is no database was restored");
    assert_eq!(app.count("customers"), 2, "a bad file touches nothing");

    let restored = app.cli(&["restore", &file_arg]).await;
    assert!(restored.success, "restore failed: {}", restored.stderr);
    assert!(
        restored.stdout.contains("integrity ok"),
        "{}",
        restored.stdout
    );
    let db = open_read_only(&app.db_path);
    assert_eq!(
        identities(&db),
        HashSet::from(["jane@example.com".to_owned()]),
        "the database is the backup again"
    );
    assert_eq!(integrity(&db), "ok");
    let kept = std::fs::read_dir(app.db_path.parent().expect("data dir"))
        .expect("list")
        .flatten()
        .find(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .contains(".before-restore-")
        })
        .expect("the replaced database is kept");
    assert_eq!(identities(&open_read_only(&kept.path())).len(), 2);

    // The daemon starts on the restored database and takes mail again.
    let app = app.restart_with(|_| {}).await;
    app.mail_support("Joe", "joe@example.com", "again@example.com")
        .await
        .assert_code(250);
    assert_eq!(app.count("customers"), 2);
}
