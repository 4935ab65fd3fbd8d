//! What an operator's monitoring sees: `/metrics` parsed as Prometheus
//! parses it, moving by exactly one per event; `/healthz` turning `503` when
//! the database refuses writes or a reply waits too long; `/readyz`.

use crate::support::app::SUPPORT;
use crate::support::customer::{PASSWORD, activate, login};
use crate::support::mail::person;
use crate::support::{DEADLINE, Mail, Scrape, SmtpClient, TestApp, activation_link, scrape};
use std::time::Duration;

/// How much a sample moved between two scrapes.
fn moved(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(name, labels) - before.value(name, labels)
}

fn moved_in_all(before: &Scrape, after: &Scrape, name: &str) -> f64 {
    after.total(name) - before.total(name)
}

/// Scrapes until `holds` is true of the scrape (a gauge that follows a
/// session's end, which the client does not wait for).
async fn scrape_until(app: &TestApp, what: &str, holds: impl Fn(&Scrape) -> bool) -> Scrape {
    let start = tokio::time::Instant::now();
    loop {
        let scraped = scrape(app).await;
        if holds(&scraped) {
            return scraped;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(app: &TestApp, path: &str) -> (u16, String) {
    let response = app
        .http()
        .get(app.admin_url(path))
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// Polls `path` until it answers `status`; returns the body.
async fn answers(app: &TestApp, path: &str, status: u16) -> String {
    let start = tokio::time::Instant::now();
    loop {
        let (got, body) = get(app, path).await;
        if got == status {
            return body;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{path} kept answering {got}, not {status}:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_registration_a_refusal_an_activation_and_a_sign_in_each_move_their_counter_by_one() {
    let app = TestApp::spawn().await;
    let before = scrape(&app).await;

    // A registration by mail.
    app.mail_support("Jane Doe", "jane@example.com", "reg@example.com")
        .await
        .assert_code(250);
    // A refusal: the From address is not the envelope sender.
    app.send(
        "mallory@example.com",
        SUPPORT,
        &person("Mallory", "victim@example.com", SUPPORT, "ref@example.com"),
    )
    .await
    .assert_code(550);
    // An activation.
    let mails = app.relay.wait_for(1).await;
    let link = activation_link(&Mail::parse(&mails[0].data), app.http_addr);
    let browser = app.http();
    assert_eq!(activate(&app, &browser, &link, "Jane").await.status(), 303);
    // A sign-in, in another browser.
    let other = app.http();
    assert_eq!(
        login(&app, &other, "jane@example.com", PASSWORD)
            .await
            .status(),
        303
    );
    app.settle().await;
    // The outbox worker counts a delivery just after it commits it, so the
    // scrape waits for the count as it waits for the sessions to close.
    let delivered = [("result", "delivered")];
    let after = scrape_until(&app, "the SMTP sessions to close and two deliveries", |s| {
        s.value("registrar_smtp_sessions_open", &[]) == 0.0
            && moved(&before, s, "registrar_outbox_deliveries_total", &delivered) >= 2.0
    })
    .await;

    let messages = "registrar_messages_total";
    let register = [
        ("decision", "register"),
        ("reason", "new_customer"),
        ("service", "demo"),
    ];
    let refuse = [
        ("decision", "refuse"),
        ("reason", "sender_mismatch"),
        ("service", "demo"),
    ];
    assert_eq!(moved(&before, &after, messages, &register), 1.0);
    assert_eq!(moved(&before, &after, messages, &refuse), 1.0);
    assert_eq!(moved_in_all(&before, &after, messages), 2.0);
    let registrations = "registrar_registrations_total";
    assert_eq!(
        moved(&before, &after, registrations, &[("channel", "mail")]),
        1.0
    );
    assert_eq!(moved_in_all(&before, &after, registrations), 1.0);
    assert_eq!(
        moved(&before, &after, "registrar_activations_total", &[]),
        1.0
    );
    let sign_ins = "registrar_sign_ins_total";
    let signed_in = [("method", "password"), ("result", "signed_in")];
    assert_eq!(moved(&before, &after, sign_ins, &signed_in), 1.0);
    assert_eq!(moved_in_all(&before, &after, sign_ins), 1.0);
    let replies = "registrar_smtp_replies_total";
    assert_eq!(moved(&before, &after, replies, &[("code", "550")]), 1.0);
    assert_eq!(moved(&before, &after, replies, &[("code", "354")]), 2.0);
    assert_eq!(moved(&before, &after, replies, &[("code", "220")]), 2.0);
    let hashes = "registrar_password_hash_seconds_count";
    assert_eq!(
        moved(&before, &after, hashes, &[("operation", "hash")]),
        1.0,
        "the activation hashed the new password once"
    );
    assert_eq!(
        moved(&before, &after, hashes, &[("operation", "verify")]),
        1.0,
        "the sign-in verified it once"
    );
    assert_eq!(
        moved(
            &before,
            &after,
            "registrar_outbox_deliveries_total",
            &[("result", "delivered")]
        ),
        2.0,
        "the activation mail and the account-activated notice"
    );
    assert!(moved(&before, &after, "registrar_store_batch_jobs_count", &[]) >= 1.0);
    assert_eq!(
        moved_in_all(&before, &after, "registrar_rate_limit_hits_total"),
        0.0
    );
    assert_eq!(after.value("registrar_outbox_queued", &[]), 0.0);
    assert_eq!(
        after.value("registrar_outbox_oldest_queued_age_seconds", &[]),
        0.0
    );
    for listener in ["smtp", "http", "admin"] {
        assert_eq!(
            after.value("registrar_listener_up", &[("listener", listener)]),
            1.0
        );
    }
}

#[tokio::test]
async fn a_rate_limited_sign_in_counts_a_hit_of_its_limit() {
    let app = TestApp::spawn_with(|s| s.rate_limits.failed_logins_per_ip = 1).await;
    let browser = app.http();
    assert_eq!(
        login(&app, &browser, "nobody@example.com", "not the password")
            .await
            .status(),
        422
    );
    let before = scrape(&app).await;

    let limited = login(&app, &browser, "nobody@example.com", "not the password").await;

    assert_eq!(limited.status(), 429);
    let after = scrape(&app).await;
    assert_eq!(
        moved(
            &before,
            &after,
            "registrar_rate_limit_hits_total",
            &[("limit", "failed_logins_per_ip")]
        ),
        1.0
    );
    assert_eq!(
        moved_in_all(&before, &after, "registrar_sign_ins_total"),
        0.0,
        "a refused attempt checks no password"
    );
}

#[tokio::test]
async fn healthz_turns_503_while_the_database_refuses_writes_and_readyz_stays_ready() {
    let app = TestApp::spawn().await;
    let body = answers(&app, "/healthz", 200).await;
    assert!(body.starts_with("ok\n"), "{body}");
    assert!(body.contains("database: writable"), "{body}");
    answers(&app, "/readyz", 200).await;

    // The database refuses every write to the row the probe writes, as a
    // read-only database refuses them all.
    app.db()
        .execute_batch(
            "CREATE TRIGGER read_only_insert BEFORE INSERT ON health
                 BEGIN SELECT RAISE(ABORT, 'attempt to write a readonly database'); END;
             CREATE TRIGGER read_only_update BEFORE UPDATE ON health
                 BEGIN SELECT RAISE(ABORT, 'attempt to write a readonly database'); END;",
        )
        .expect("make the database refuse writes");

    let body = answers(&app, "/healthz", 503).await;
    assert!(body.starts_with("unhealthy\n"), "{body}");
    assert!(body.contains("database: not writable"), "{body}");
    assert!(body.contains("listener smtp: up"), "{body}");
    assert!(body.contains("listener admin: up"), "{body}");
    let (status, _) = get(&app, "/readyz").await;
    assert_eq!(status, 200, "reads still work: the daemon takes traffic");

    app.db()
        .execute_batch("DROP TRIGGER read_only_insert; DROP TRIGGER read_only_update;")
        .expect("writable again");
    answers(&app, "/healthz", 200).await;
}

#[tokio::test]
async fn healthz_turns_503_while_a_reply_waits_longer_than_the_limit() {
    let app = TestApp::spawn_with(|s| s.outbound.max_queue_age = Duration::ZERO).await;
    app.relay.set_failing(true);
    app.mail_support("Jane", "jane@example.com", "wait@example.com")
        .await
        .assert_code(250);

    let body = answers(&app, "/healthz", 503).await;
    assert!(
        body.contains("outbox: oldest queued reply waited"),
        "{body}"
    );
    assert!(body.contains("database: writable"), "{body}");
    let scraped = scrape(&app).await;
    assert_eq!(scraped.value("registrar_outbox_queued", &[]), 1.0);
    assert!(
        scraped.value("registrar_outbox_oldest_queued_age_seconds", &[]) >= 1.0,
        "the age is what made it unhealthy"
    );

    app.relay.set_failing(false);
    app.settle().await;
    answers(&app, "/healthz", 200).await;
    assert!(
        scrape(&app)
            .await
            .value("registrar_outbox_deliveries_total", &[("result", "retry")])
            >= 1.0
    );
}

#[tokio::test]
async fn a_connection_over_the_per_client_limit_is_counted_by_its_limit() {
    let app = TestApp::spawn_with(|s| s.smtp.max_sessions_per_ip = 1).await;
    let first = app.greeted().await;
    let before = scrape(&app).await;

    let (_, refused) = SmtpClient::connect(app.smtp_addr).await.expect("connect");

    refused.assert_code(421);
    let after = scrape(&app).await;
    assert_eq!(
        moved(
            &before,
            &after,
            "registrar_smtp_sessions_refused_total",
            &[("limit", "sessions_per_client")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            &before,
            &after,
            "registrar_smtp_replies_total",
            &[("code", "421")]
        ),
        1.0
    );
    assert_eq!(after.value("registrar_smtp_sessions_open", &[]), 1.0);
    drop(first);
}
