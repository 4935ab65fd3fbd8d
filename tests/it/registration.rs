//! Registration by mail: who registers, each access mode, the denylist, and
//! what a second mail does.

use crate::support::app::SUPPORT;
use crate::support::mail::person;
use crate::support::{Mail, TestApp, activation_link};
use registrar::policy::{Access, Company, Denylist};

#[tokio::test]
async fn a_new_sender_gets_exactly_one_activation_mail() {
    let app = TestApp::spawn().await;

    let reply = app
        .mail_support("Jane Doe", "jane@example.com", "m1@example.com")
        .await;

    reply.assert_code(250);
    let mails = app.relay.wait_for(1).await;
    assert_eq!(mails[0].rcpt_to, vec!["jane@example.com".to_owned()]);
    assert_eq!(
        mails[0].mail_from, "",
        "replies use the null envelope sender"
    );
    let mail = Mail::parse(&mails[0].data);
    assert_eq!(mail.subject, "Activate your Demo Help Desk account");
    assert_eq!(mail.header("Auto-Submitted"), Some("auto-replied"));
    assert_eq!(mail.header("In-Reply-To"), Some("<m1@example.com>"));
    assert!(mail.html.contains("Activate your account"));
    activation_link(&mail, app.http_addr);
    app.settle().await;
    assert_eq!(app.relay.mails().len(), 1);
    let status: String = app
        .db()
        .query_row("SELECT status FROM customers", [], |r| r.get(0))
        .expect("one customer");
    assert_eq!(status, "pending");
}

#[tokio::test]
async fn the_raw_token_is_never_stored() {
    let app = TestApp::spawn().await;
    app.mail_support("Jane", "jane@example.com", "m1@example.com")
        .await
        .assert_code(250);
    let mails = app.relay.wait_for(1).await;
    let link = activation_link(&Mail::parse(&mails[0].data), app.http_addr);
    let token = link
        .split("token=")
        .nth(1)
        .expect("token in link")
        .to_owned();
    app.settle().await;

    let db = app.db();
    let stored: Vec<u8> = db
        .query_row("SELECT hash FROM activation_tokens", [], |r| r.get(0))
        .expect("a token row");
    let parsed = registrar::domain::Token::parse(&token).expect("a well-formed token");
    assert_eq!(
        stored,
        parsed.stamped_hash().0.to_vec(),
        "only the token's stamp and a hash of it are stored"
    );
    let (replies, bodies): (i64, i64) = db
        .query_row(
            "SELECT (SELECT COUNT(*) FROM outbox), (SELECT COUNT(*) FROM outbox_bodies)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("counts the outbox");
    assert_eq!(replies, 1, "the reply's row stays");
    assert_eq!(bodies, 0, "the delivered body (with the link) is deleted");
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", app.db_path.display());
        let dump: Vec<u8> = std::fs::read(&path).unwrap_or_default();
        assert!(
            !dump.windows(token.len()).any(|w| w == token.as_bytes()),
            "the raw token is in {path}"
        );
    }
}

#[tokio::test]
async fn a_from_address_other_than_the_envelope_sender_registers_nobody() {
    let app = TestApp::spawn().await;

    let reply = app
        .send(
            "mallory@evil.example",
            SUPPORT,
            &person("Boss", "boss@example.com", SUPPORT, "m1@evil.example"),
        )
        .await;

    reply.assert_code(550);
    assert!(reply.text.starts_with("5.7.1"), "{}", reply.text);
    assert!(reply.text.contains("envelope sender"), "{}", reply.text);
    assert_eq!(app.count("customers"), 0);
    assert_eq!(app.count("outbox"), 0);
}

#[tokio::test]
async fn email_self_registration_off_refuses_and_stores_nothing() {
    let app = TestApp::spawn_with(|s| s.services[0].policy.email = false).await;

    let reply = app
        .mail_support("Jane", "jane@example.com", "m1@example.com")
        .await;

    reply.assert_code(550);
    assert!(reply.text.starts_with("5.7.1"));
    for table in ["customers", "activation_tokens", "outbox", "inbound"] {
        assert_eq!(app.count(table), 0, "{table} should be empty");
    }
    let reason: String = app
        .db()
        .query_row("SELECT reason FROM decisions", [], |r| r.get(0))
        .expect("the decision is recorded");
    assert_eq!(reason, "self_registration_off");
}

#[tokio::test]
async fn certain_companies_attaches_the_customer_to_its_company() {
    let app = TestApp::spawn_with(|s| {
        s.services[0].policy.access = Access::Companies(vec![Company {
            name: "Acme".into(),
            domains: vec!["acme.example".into()],
        }]);
    })
    .await;

    let accepted = app
        .mail_support("Jane", "jane@acme.example", "m1@acme.example")
        .await;
    let refused = app
        .mail_support("Joe", "joe@other.example", "m2@other.example")
        .await;

    accepted.assert_code(250);
    refused.assert_code(550);
    let (email, company): (String, Option<String>) = app
        .db()
        .query_row("SELECT email, company FROM customers", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("exactly one customer");
    assert_eq!(email, "jane@acme.example");
    assert_eq!(company.as_deref(), Some("Acme"));
    assert_eq!(app.relay.wait_for(1).await.len(), 1);
}

#[tokio::test]
async fn no_one_may_self_register_when_access_is_closed() {
    let app = TestApp::spawn_with(|s| s.services[0].policy.access = Access::NoOne).await;
    let reply = app
        .mail_support("Jane", "jane@example.com", "m1@example.com")
        .await;
    reply.assert_code(550);
    assert_eq!(app.count("customers"), 0);
}

#[tokio::test]
async fn the_denylist_always_wins() {
    let app = TestApp::spawn_with(|s| {
        s.services[0].policy.denylist =
            Denylist::parse(["spam.example", "bad@example.com"]).expect("valid");
    })
    .await;

    let by_domain = app
        .mail_support("X", "x@mail.spam.example", "m1@spam.example")
        .await;
    let by_address = app
        .mail_support("B", "Bad@Example.com", "m2@example.com")
        .await;
    let allowed = app
        .mail_support("G", "good@example.com", "m3@example.com")
        .await;

    by_domain.assert_code(550);
    by_address.assert_code(550);
    allowed.assert_code(250);
    assert_eq!(app.count("customers"), 1);
}

#[tokio::test]
async fn a_second_mail_from_a_pending_customer_sends_a_new_link_and_kills_the_old() {
    let app = TestApp::spawn_with(|s| s.services[0].policy.limits.min_interval_secs = 0).await;
    app.mail_support("Jane", "jane@example.com", "m1@example.com")
        .await
        .assert_code(250);
    let first = activation_link(
        &Mail::parse(&app.relay.wait_for(1).await[0].data),
        app.http_addr,
    );

    app.mail_support("Jane", "jane@example.com", "m2@example.com")
        .await
        .assert_code(250);
    let second = activation_link(
        &Mail::parse(&app.relay.wait_for(2).await[1].data),
        app.http_addr,
    );

    assert_ne!(first, second);
    let http = app.http();
    let old = http.get(&first).send().await.expect("GET old link");
    let new = http.get(&second).send().await.expect("GET new link");
    assert_eq!(old.status(), 404);
    assert!(
        old.text()
            .await
            .expect("body")
            .contains("This link no longer works")
    );
    assert_eq!(new.status(), 200);
    assert_eq!(app.count("customers"), 1);
}

#[tokio::test]
async fn a_second_mail_within_the_reply_interval_is_refused() {
    let app = TestApp::spawn().await;
    app.mail_support("Jane", "jane@example.com", "m1@example.com")
        .await
        .assert_code(250);
    let reply = app
        .mail_support("Jane", "jane@example.com", "m2@example.com")
        .await;
    reply.assert_code(550);
    assert!(reply.text.contains("try again later"), "{}", reply.text);
    app.settle().await;
    assert_eq!(app.relay.mails().len(), 1);
}

#[tokio::test]
async fn the_same_message_retried_after_a_lost_250_creates_nothing_twice() {
    let app = TestApp::spawn().await;
    let message = person("Jane", "jane@example.com", SUPPORT, "retry@example.com");
    app.send("jane@example.com", SUPPORT, &message)
        .await
        .assert_code(250);
    let again = app.send("jane@example.com", SUPPORT, &message).await;
    again.assert_code(250);
    app.settle().await;
    assert_eq!(app.count("customers"), 1);
    assert_eq!(app.count("inbound"), 1);
    assert_eq!(app.relay.mails().len(), 1);
}

#[tokio::test]
async fn mail_from_an_active_customer_creates_nothing() {
    let app = TestApp::spawn_with(|s| s.services[0].policy.limits.min_interval_secs = 0).await;
    app.mail_support("Jane", "jane@example.com", "m1@example.com")
        .await
        .assert_code(250);
    app.relay.wait_for(1).await;
    app.db()
        .execute(
            "UPDATE customers SET status = 'active', password_hash = 'x'",
            [],
        )
        .expect("activate");
    let tokens_before = app.count("activation_tokens");

    let reply = app
        .mail_support("Jane", "jane@example.com", "m2@example.com")
        .await;

    reply.assert_code(250);
    let mails = app.relay.wait_for(2).await;
    let note = Mail::parse(&mails[1].data);
    assert_eq!(note.subject, "You already have a Demo Help Desk account");
    assert!(
        !note.text.contains("/activate"),
        "no activation link for an active customer"
    );
    assert!(note.text.contains("/login"));
    assert_eq!(app.count("customers"), 1);
    assert_eq!(app.count("activation_tokens"), tokens_before);
}

#[tokio::test]
async fn raw_messages_are_erased_after_the_retention_period_and_the_record_stays() {
    let app = TestApp::spawn_with(|s| {
        s.activation.purge_interval = std::time::Duration::from_millis(100);
        // The record outlives the raw bytes (30 days by default).
        s.store.inbound_retention = std::time::Duration::from_secs(60 * 86400);
    })
    .await;
    app.mail_support("Jane", "jane@example.com", "old@example.com")
        .await
        .assert_code(250);
    // The message arrived 31 days ago, as far as the purge can tell.
    app.db()
        .execute(
            "UPDATE inbound SET received_at = received_at - 31 * 86400",
            [],
        )
        .expect("age the message");

    crate::support::eventually("the raw bytes to be erased", || {
        app.db()
            .query_row("SELECT raw IS NULL FROM inbound", [], |r| {
                r.get::<_, bool>(0)
            })
            .expect("the inbound row stays")
    })
    .await;

    // The record stays, and idempotency does not need the raw bytes: back
    // inside the idempotency window (7 days), the copy is still recognised.
    app.db()
        .execute(
            "UPDATE inbound SET received_at = received_at + 31 * 86400",
            [],
        )
        .expect("bring the message back into the window");
    app.mail_support("Jane", "jane@example.com", "old@example.com")
        .await
        .assert_code(250);
    assert_eq!(app.count("inbound"), 1);
    assert_eq!(app.count("customers"), 1);
}
