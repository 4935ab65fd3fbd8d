//! Outbound delivery: retries while the relay refuses, a restart loses
//! nothing queued, replies go out side by side and each exactly once, and
//! every relay URL form reaches the relay.

use crate::support::mail::mail_files;
use crate::support::metrics::scrape;
use crate::support::relay::Stage;
use crate::support::{TestApp, eventually};
use registrar::settings::RelayUrl;
use std::collections::HashMap;
use std::time::Duration;

/// Waits until the one reply in the outbox has had an attempt.
async fn a_failed_attempt(app: &TestApp) {
    eventually("a failed attempt", || {
        app.db()
            .query_row("SELECT attempts FROM outbox", [], |r| r.get::<_, i64>(0))
            .is_ok_and(|attempts| attempts >= 1)
    })
    .await;
}

#[tokio::test]
async fn a_reply_is_retried_until_the_relay_takes_it() {
    let app = TestApp::spawn().await;
    app.relay.set_failing(true);

    app.mail_support("Jane", "jane@example.com", "m1@example.com")
        .await
        .assert_code(250);
    a_failed_attempt(&app).await;
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
async fn replies_go_out_as_one_group_where_the_relay_offers_pipelining_and_one_by_one_elsewhere() {
    for offered in [true, false] {
        let app = TestApp::spawn().await;
        app.relay.offer_pipelining(offered);
        app.mail_support("Jane", "jane@example.com", "m1@example.com")
            .await
            .assert_code(250);
        app.relay.wait_for(1).await;
        // The second reply goes out over the connection the first opened.
        app.mail_support("John", "john@example.com", "m2@example.com")
            .await
            .assert_code(250);
        let mails = app.relay.wait_for(2).await;
        let recipients: Vec<_> = mails.iter().map(|mail| mail.rcpt_to.clone()).collect();
        assert_eq!(
            recipients,
            vec![
                vec!["jane@example.com".to_owned()],
                vec!["john@example.com".to_owned()]
            ],
            "pipelining offered: {offered}"
        );
        assert_eq!(app.relay.connections(), 1, "pipelining offered: {offered}");
        let grouped = if offered { 2 } else { 0 };
        assert_eq!(
            app.relay.pipelined_transactions(),
            grouped,
            "pipelining offered: {offered}"
        );
    }
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
    let files = mail_files(&folder);
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).expect("read the .eml");
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

/// Queues one reply to each address while the relay holds every new
/// connection before its greeting, so that the outbox's first round waits
/// and the rest pile up; then lets the relay go.
async fn queue_while_the_relay_holds(app: &TestApp, addresses: &[String]) {
    app.relay.hold();
    for (n, address) in addresses.iter().enumerate() {
        app.mail_support("Customer", address, &format!("m{n}@example.com"))
            .await
            .assert_code(250);
    }
    app.relay.release();
}

/// Each outbox row as (status, attempts, last reply code, body kept), by
/// recipient.
fn rows_by_recipient(app: &TestApp) -> HashMap<String, (String, i64, Option<i64>, bool)> {
    let db = app.db();
    let mut statement = db
        .prepare(
            "SELECT recipient, status, attempts, last_reply_code,
                    EXISTS (SELECT 1 FROM outbox_bodies b WHERE b.outbox_id = outbox.id)
             FROM outbox",
        )
        .expect("prepare");
    statement
        .query_map([], |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        })
        .and_then(Iterator::collect)
        .expect("outbox rows")
}

#[tokio::test]
async fn many_replies_go_out_side_by_side_each_exactly_once_over_reused_connections() {
    let app = TestApp::spawn_with(|s| {
        s.outbound.parallel_deliveries = 8;
        // The first round waits for the held relay; it must not time out.
        s.outbound.send_timeout = Duration::from_secs(300);
    })
    .await;
    let customers: Vec<String> = (0..20)
        .map(|n| format!("customer{n}@example.com"))
        .collect();

    queue_while_the_relay_holds(&app, &customers).await;
    app.relay.wait_for(customers.len()).await;
    app.settle().await;

    let mails = app.relay.mails();
    let mut delivered: Vec<String> = mails.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    delivered.sort();
    let mut expected = customers.clone();
    expected.sort();
    assert_eq!(
        delivered, expected,
        "one reply to each customer, none twice"
    );
    let message_ids: HashMap<String, String> = app
        .db()
        .prepare("SELECT recipient, message_id FROM outbox")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(Iterator::collect)
        .expect("message ids");
    for mail in &mails {
        let text = String::from_utf8_lossy(&mail.data);
        let stored = &message_ids[&mail.rcpt_to[0]];
        assert!(
            text.contains(&format!("Message-ID: <{stored}>")),
            "the reply to {} carries its row's Message-ID {stored}",
            mail.rcpt_to[0]
        );
    }
    let rows = rows_by_recipient(&app);
    assert_eq!(rows.len(), customers.len());
    for (recipient, row) in &rows {
        assert_eq!(
            row,
            &("sent".to_owned(), 1, Some(250), false),
            "{recipient}: sent at the first attempt, body erased"
        );
    }
    let metrics = scrape(&app).await;
    assert_eq!(
        metrics.value(
            "registrar_outbox_deliveries_total",
            &[("result", "delivered")]
        ),
        20.0
    );
    // Eight replies at once need eight connections; later rounds reuse them.
    let connections = app.relay.connections();
    assert!(
        (2..=8).contains(&connections),
        "20 replies over {connections} connections"
    );
}

#[tokio::test]
async fn a_relay_refusing_some_recipients_gets_them_retried_or_dead_while_the_rest_are_sent() {
    let app = TestApp::spawn_with(|s| {
        s.outbound.parallel_deliveries = 8;
        s.outbound.send_timeout = Duration::from_secs(300);
        // Keep the deferred reply waiting: no second attempt in this test.
        s.outbound.retry_base = Duration::from_secs(3600);
        s.outbound.retry_max = Duration::from_secs(3600);
    })
    .await;
    let customers: Vec<String> = (0..6).map(|n| format!("customer{n}@example.com")).collect();
    app.relay
        .refuse_recipient(&customers[2], "550 5.1.1 no such mailbox here");
    app.relay
        .refuse_recipient(&customers[3], "451 4.2.1 mailbox busy, try later");

    queue_while_the_relay_holds(&app, &customers).await;
    eventually("every reply to have had its attempt", || {
        rows_by_recipient(&app)
            .values()
            .all(|(_, attempts, _, _)| *attempts == 1)
    })
    .await;

    let rows = rows_by_recipient(&app);
    for (n, customer) in customers.iter().enumerate() {
        let expected = match n {
            2 => ("dead".to_owned(), 1, Some(550), false),
            3 => ("queued".to_owned(), 1, Some(451), true),
            _ => ("sent".to_owned(), 1, Some(250), false),
        };
        assert_eq!(rows[customer], expected, "{customer}");
    }
    let mut delivered: Vec<String> = app
        .relay
        .mails()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    delivered.sort();
    let others: Vec<String> = [0, 1, 4, 5].map(|n| customers[n].clone()).to_vec();
    assert_eq!(delivered, others);
    let metrics = scrape(&app).await;
    for (result, count) in [("delivered", 4.0), ("dead", 1.0), ("retry", 1.0)] {
        assert_eq!(
            metrics.value("registrar_outbox_deliveries_total", &[("result", result)]),
            count,
            "{result}"
        );
    }
}

/// The test relay's URL rewritten into another form lettre reads.
fn relay_url(s: &registrar::settings::Settings, form: &str) -> RelayUrl {
    let current = s.outbound.relay.as_ref().expect("the test relay");
    let port = current.expose().port().expect("a port");
    RelayUrl::new(url::Url::parse(&form.replace("PORT", &port.to_string())).expect("url"))
}

#[tokio::test]
async fn every_relay_url_form_reaches_the_relay() {
    // (what the case shows, URL, credentials in the settings, login the relay requires)
    let cases = [
        ("a host name", "smtp://localhost:PORT", None, None),
        (
            "STARTTLS when offered, plain when not",
            "smtp://127.0.0.1:PORT?tls=opportunistic",
            None,
            None,
        ),
        (
            "percent-encoded credentials in the URL",
            "smtp://ops%40desk:s%3Acret@127.0.0.1:PORT",
            None,
            Some(("ops@desk", "s:cret")),
        ),
        (
            "credentials in the settings win over the URL's",
            "smtp://old:stale@127.0.0.1:PORT",
            Some(("ops", "fresh")),
            Some(("ops", "fresh")),
        ),
    ];
    for (case, form, settings_login, relay_login) in cases {
        let app = TestApp::spawn_with(|s| {
            s.outbound.relay = Some(relay_url(s, form));
            if let Some((user, password)) = settings_login {
                s.outbound.username = user.to_owned();
                s.outbound.password = password.to_owned().into();
            }
        })
        .await;
        if let Some((user, password)) = relay_login {
            app.relay.require_auth(user, password);
        }

        app.mail_support("Jane", "jane@example.com", "m1@example.com")
            .await
            .assert_code(250);
        let mails = app.relay.wait_for(1).await;

        assert_eq!(
            mails[0].rcpt_to,
            vec!["jane@example.com".to_owned()],
            "{case}"
        );
        let logins: Vec<String> = relay_login
            .iter()
            .map(|(user, _)| (*user).to_owned())
            .collect();
        assert_eq!(app.relay.logins(), logins, "{case}");
    }
}

#[tokio::test]
async fn a_relay_url_requiring_tls_never_falls_back_to_plain() {
    // The test relay offers no STARTTLS.
    let app = TestApp::spawn_with(|s| {
        s.outbound.relay = Some(relay_url(s, "smtp://127.0.0.1:PORT?tls=required"));
    })
    .await;

    app.mail_support("Jane", "jane@example.com", "m1@example.com")
        .await
        .assert_code(250);
    a_failed_attempt(&app).await;

    let (status, reply): (String, String) = app
        .db()
        .query_row("SELECT status, last_reply FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("one outbox row");
    assert_eq!(status, "queued", "tried again later");
    assert!(reply.contains("STARTTLS"), "{reply}");
    assert!(app.relay.mails().is_empty());
}

#[tokio::test]
async fn a_relay_connection_closed_while_idle_is_replaced_without_a_failed_attempt() {
    let app = TestApp::spawn().await;
    app.relay.hang_up_after_each_mail();
    app.mail_support("Jane", "jane@example.com", "m1@example.com")
        .await
        .assert_code(250);
    app.relay.wait_for(1).await;
    app.settle().await;

    app.mail_support("John", "john@example.com", "m2@example.com")
        .await
        .assert_code(250);
    let mails = app.relay.wait_for(2).await;
    app.settle().await;

    assert_eq!(mails[1].rcpt_to, vec!["john@example.com".to_owned()]);
    let rows = rows_by_recipient(&app);
    assert_eq!(
        rows["john@example.com"],
        ("sent".to_owned(), 1, Some(250), false),
        "delivered at its first attempt over a new connection"
    );
    assert_eq!(app.relay.connections(), 2);
}
