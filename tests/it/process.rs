//! The binary as systemd runs it: `READY=1` on NOTIFY_SOCKET once both
//! listeners are bound, and SIGTERM answered by draining and a clean exit.

use crate::support::SmtpClient;
use crate::support::app::SUPPORT;
use crate::support::mail::{mail_files, person};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `registrar serve` on free ports in `dir`, with NOTIFY_SOCKET set,
/// and returns the child, its SMTP address and the notification socket.
fn start(dir: &std::path::Path) -> (std::process::Child, SocketAddr, UnixDatagram) {
    let config = dir.join("registrar.toml");
    std::fs::write(
        &config,
        format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [store]\npath = \"{}\"\n[outbound]\nfolder = \"{}\"\n",
            dir.join("db.sqlite3").display(),
            dir.join("outbound").display()
        ),
    )
    .expect("write config");
    let socket_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_registrar"))
        .args(["--config", config.to_str().expect("utf-8 path"), "serve"])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start registrar");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut smtp = None;
    for line in stdout.lines().map_while(Result::ok) {
        if let Some(rest) = line.split("smtp.addr=").nth(1) {
            smtp = rest.split_whitespace().next().and_then(|a| a.parse().ok());
            break;
        }
    }
    (
        child,
        smtp.expect("the daemon logs its SMTP address"),
        notify,
    )
}

#[tokio::test]
async fn systemd_hears_ready_after_both_listeners_are_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, smtp, notify) = start(dir.path());

    let mut buffer = [0u8; 256];
    let received = notify.recv(&mut buffer).expect("a notification");
    let message = String::from_utf8_lossy(&buffer[..received]).into_owned();

    assert!(message.contains("READY=1"), "{message}");
    let (_, greeting) = SmtpClient::connect(smtp).await.expect("SMTP connect");
    greeting.assert_code(220);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[tokio::test]
async fn sigterm_refuses_new_mail_keeps_what_was_accepted_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, smtp, notify) = start(dir.path());
    let mut buffer = [0u8; 256];
    notify.recv(&mut buffer).expect("ready");
    let (mut accepted, _) = SmtpClient::connect(smtp).await.expect("SMTP connect");
    accepted
        .send_mail(
            "jane@example.com",
            SUPPORT,
            &person("Jane", "jane@example.com", SUPPORT, "term@example.com"),
        )
        .await
        .expect("SMTP reply")
        .assert_code(250);
    let (mut waiting, _) = SmtpClient::connect(smtp).await.expect("SMTP connect");
    waiting
        .command("EHLO client.test")
        .await
        .expect("SMTP reply")
        .assert_code(250);

    let asked = Instant::now();
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());

    let reply = waiting.read_reply().await.expect("SMTP reply");
    reply.assert_code(421);
    assert!(reply.text.starts_with("4.3.2"), "{}", reply.text);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "exit status {status}");
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "shutdown took {:?}",
        asked.elapsed()
    );
    let db = rusqlite::Connection::open(dir.path().join("db.sqlite3")).expect("open the database");
    let customers: i64 = db
        .query_row("SELECT COUNT(*) FROM customers", [], |r| r.get(0))
        .expect("count");
    assert_eq!(customers, 1, "the message answered 250 is in the database");
}

#[tokio::test]
async fn everything_the_daemon_writes_is_private_to_its_user() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, smtp, notify) = start(dir.path());
    let mut buffer = [0u8; 256];
    notify.recv(&mut buffer).expect("ready");
    let (mut client, _) = SmtpClient::connect(smtp).await.expect("SMTP connect");
    client
        .send_mail(
            "jane@example.com",
            SUPPORT,
            &person("Jane", "jane@example.com", SUPPORT, "umask@example.com"),
        )
        .await
        .expect("send")
        .assert_code(250);
    let outbound = dir.path().join("outbound");
    crate::support::eventually("the mail file", || !mail_files(&outbound).is_empty()).await;
    let mut written = vec![outbound.clone()];
    written.extend(mail_files(&outbound));
    for suffix in ["", "-wal", "-shm"] {
        written.push(dir.path().join(format!("db.sqlite3{suffix}")));
    }
    for path in written {
        let mode = std::fs::metadata(&path)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{} is mode {:o}",
            path.display(),
            mode & 0o777
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[tokio::test]
async fn sighup_reloads_the_policy_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, smtp, notify) = start(dir.path());
    let mut buffer = [0u8; 256];
    notify.recv(&mut buffer).expect("ready");
    let send = |from: &'static str, id: &'static str| async move {
        let (mut client, _) = SmtpClient::connect(smtp).await.expect("SMTP connect");
        client
            .send_mail(from, SUPPORT, &person("X", from, SUPPORT, id))
            .await
            .expect("SMTP reply")
    };
    send("first@blocked.example", "1@blocked.example")
        .await
        .assert_code(250);

    // The operator adds the domain to the denylist and reloads.
    let config = dir.path().join("registrar.toml");
    let mut text = std::fs::read_to_string(&config).expect("read config");
    text.push_str("[policy]\ndenylist = [\"blocked.example\"]\n");
    std::fs::write(&config, text).expect("write config");
    let sent = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut attempt = 0;
    let refused = loop {
        attempt += 1;
        // A new address each time, so no reply limit can be what refuses it.
        let from: &'static str = Box::leak(format!("n{attempt}@blocked.example").into_boxed_str());
        let id: &'static str = Box::leak(format!("{attempt}@blocked.example").into_boxed_str());
        let reply = send(from, id).await;
        if reply.code == 550 || Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    refused.assert_code(550);
    assert_eq!(
        refused.text, "5.7.1 self-registration is not available for this address",
        "{attempt} attempts"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(
        child.wait().expect("wait").success(),
        "the daemon kept running through the reload"
    );
}
