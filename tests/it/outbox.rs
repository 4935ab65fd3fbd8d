//! Outbound delivery: retries while the relay refuses, and a restart loses
//! nothing queued.

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
        s.outbound.relay = Some(url::Url::parse("smtp://127.0.0.1:9").expect("url"));
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

#[tokio::test]
async fn many_replies_are_delivered_side_by_side_and_all_marked_sent() {
    let app = TestApp::spawn_with(|s| {
        s.outbound.parallel_deliveries = 4;
        // Twenty sessions at once from the test's one address.
        s.smtp.max_sessions_per_ip = 100;
    })
    .await;
    let senders: Vec<String> = (0..20)
        .map(|n| format!("customer{n}@example.com"))
        .collect();
    let mut sessions = Vec::new();
    for (n, sender) in senders.iter().enumerate() {
        let app = &app;
        sessions.push(async move {
            app.mail_support("Customer", sender, &format!("m{n}@example.com"))
                .await
                .assert_code(250);
        });
    }
    futures_join_all(sessions).await;

    let mails = app.relay.wait_for(20).await;
    app.settle().await;

    let mut delivered: Vec<String> = mails.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    delivered.sort();
    let mut expected = senders.clone();
    expected.sort();
    assert_eq!(delivered, expected, "one reply each, to its sender");
    let sent: i64 = app
        .db()
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE status = 'sent' AND body IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(sent, 20);
}

/// Runs the futures to completion side by side (on this task).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut set = Vec::from_iter(futures.into_iter().map(Box::pin));
    std::future::poll_fn(|cx| {
        set.retain_mut(|future| future.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
