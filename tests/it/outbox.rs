//! Outbound delivery: retries while the relay refuses, and a restart loses
//! nothing queued.

use crate::support::metrics::scrape;
use crate::support::relay::Stage;
use crate::support::{TestApp, eventually};

#[tokio::test]
async fn a_reply_is_retried_until_the_relay_takes_it() {
    let app = TestApp::spawn().await;
    app.relay.set_failing(true);

    app.mail_support("Jane", "jane@example.com", "m1@example.com")
        .await
        .assert_code(250);
    eventually("a failed attempt", || {
        app.db()
            .query_row("SELECT attempts FROM outbox", [], |r| r.get::<_, i64>(0))
            .is_ok_and(|attempts| attempts >= 1)
    })
    .await;
    assert!(app.relay.mails().is_empty());

    app.relay.set_failing(false);
    let mails = app.relay.wait_for(1).await;

    assert_eq!(mails[0].rcpt_to, vec!["jane@example.com".to_owned()]);
    app.settle().await;
    let (status, attempts): (String, i64) = app
        .db()
        .query_row("SELECT status, attempts FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("one outbox row");
    assert_eq!(status, "sent");
    assert!(attempts >= 2);
}

#[tokio::test]
async fn a_restart_loses_nothing_queued() {
    let app = TestApp::spawn_with(|s| {
        // A relay port nobody listens on: every attempt fails.
        s.outbound.relay = Some(registrar::settings::RelayUrl::new(
            url::Url::parse("smtp://127.0.0.1:9").expect("url"),
        ));
    })
    .await;
    app.mail_support("Jane", "jane@example.com", "m1@example.com")
        .await
        .assert_code(250);
    assert!(app.relay.mails().is_empty());

    let app = app.restart_with(|_| {}).await;

    let mails = app.relay.wait_for(1).await;
    assert_eq!(mails[0].rcpt_to, vec!["jane@example.com".to_owned()]);
    assert_eq!(app.count("customers"), 1);
}

#[tokio::test]
async fn without_a_relay_mail_is_written_to_the_outbound_folder() {
    let app = TestApp::spawn_with(|s| s.outbound.relay = None).await;
    app.mail_support("Jane", "jane@example.com", "m1@example.com")
        .await
        .assert_code(250);
    app.settle().await;
    let folder = app.settings.outbound.folder.clone();
    let files: Vec<_> = std::fs::read_dir(&folder)
        .expect("the outbound folder exists")
        .flatten()
        .collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].path()).expect("read the .eml");
    assert!(text.contains("To: jane@example.com"));
    assert!(text.contains("/activate?token="));
}

/// The rows of `customers show` below its `mails:` line.
fn mails_section(shown: &str) -> &str {
    shown.split("mails:\n").nth(1).unwrap_or_default()
}

#[tokio::test]
async fn a_relay_that_defers_then_takes_a_reply_is_recorded_and_shown() {
    let app = TestApp::spawn().await;
    app.relay
        .answer_next(Stage::Data, "451 4.3.0 mailbox busy, try later");

    app.mail_support("Jane", "jane@example.com", "m1@example.com")
        .await
        .assert_code(250);
    app.relay.wait_for(1).await;
    app.settle().await;
    let shown = app.cli(&["customers", "show", "jane@example.com"]).await;

    assert!(shown.success, "{}", shown.stderr);
    let mails = mails_section(&shown.stdout);
    assert!(
        mails.contains("activation        demo       delivered to jane@example.com"),
        "{}",
        shown.stdout
    );
    assert!(mails.contains("2 attempts, last "), "{}", shown.stdout);
    assert!(mails.contains(": 250 OK queued"), "{}", shown.stdout);
    let (code, reply, attempts): (i64, String, i64) = app
        .db()
        .query_row(
            "SELECT last_reply_code, last_reply, attempts FROM outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("one outbox row");
    assert_eq!((code, reply.as_str(), attempts), (250, "OK queued", 2));
}

#[tokio::test]
async fn a_relay_that_refuses_a_reply_for_good_makes_it_dead_with_its_answer_shown() {
    let app = TestApp::spawn().await;
    app.relay
        .answer_next(Stage::Rcpt, "550 5.1.1 no such mailbox here");

    app.mail_support("Jane", "jane@example.com", "m1@example.com")
        .await
        .assert_code(250);
    eventually("the reply to be given up", || {
        app.db()
            .query_row("SELECT status FROM outbox", [], |r| r.get::<_, String>(0))
            .is_ok_and(|status| status == "dead")
    })
    .await;
    let shown = app.cli(&["customers", "show", "jane@example.com"]).await;
    let metrics = scrape(&app).await;

    assert!(app.relay.mails().is_empty());
    let mails = mails_section(&shown.stdout);
    assert!(
        mails.contains("dead     to jane@example.com"),
        "{}",
        shown.stdout
    );
    assert!(
        mails.contains("1 attempt, last ") && mails.contains(": 550 5.1.1 no such mailbox here"),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("dead mails: 1"), "{}", shown.stdout);
    assert_eq!(
        metrics.value("registrar_outbox_deliveries_total", &[("result", "dead")]),
        1.0
    );
}
