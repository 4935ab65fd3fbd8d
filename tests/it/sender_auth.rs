//! Sender authentication over real sockets: `authentication-results` with
//! trusted and forged headers, in-process DMARC against fixed DNS records
//! (pass, fail, none, temporary error) with messages DKIM-signed at test time
//! by a key made for the test, a forwarder's SRS envelope with and without a
//! DKIM signature aligned with From, and the address identity rules.

use crate::support::SmtpClient;
use crate::support::TestApp;
use crate::support::app::SUPPORT;
use crate::support::mail::person;
use crate::support::scrape;
use base64::Engine as _;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::DkimSigner;
use registrar::domain::IpRange;
use registrar::policy::RefusalMode;
use registrar::policy::{SenderAuthMode, TrustedResults};
use registrar::sender_auth::FixedZone;
use registrar::sender_auth::dns::DnsSource;
use registrar::settings::Settings;

const JANE: &str = "jane@example.com";

/// An Ed25519 signing key made for one test run; nothing secret is stored.
struct TestKey(Vec<u8>);

impl TestKey {
    fn generate() -> Self {
        Self(Ed25519Key::generate_pkcs8().expect("an ed25519 key"))
    }

    /// The DKIM key record for DNS (RFC 8463).
    fn record(&self) -> String {
        let key = Ed25519Key::from_pkcs8_der(&self.0).expect("the key loads");
        let public = base64::engine::general_purpose::STANDARD.encode(key.public_key());
        format!("v=DKIM1; k=ed25519; p={public}")
    }

    /// `raw` with a DKIM-Signature for example.com, selector `test`.
    fn sign(&self, raw: &[u8]) -> Vec<u8> {
        self.sign_as("example.com", raw)
    }

    /// `raw` with a DKIM-Signature for `domain`, selector `test`.
    fn sign_as(&self, domain: &str, raw: &[u8]) -> Vec<u8> {
        let key = Ed25519Key::from_pkcs8_der(&self.0).expect("the key loads");
        let signature = DkimSigner::from_key(key)
            .domain(domain)
            .selector("test")
            .headers(["From", "To", "Subject", "Message-ID", "Date"])
            .sign(raw)
            .expect("the message signs");
        [signature.to_header().as_bytes(), raw].concat()
    }
}

fn last_decision(app: &TestApp) -> (String, String, bool) {
    app.db()
        .query_row(
            "SELECT outcome, reason, dropped FROM decisions ORDER BY id DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("a decision is recorded")
}

/// How many DMARC verdicts of this kind `/metrics` has counted.
async fn dmarc_verdicts(app: &TestApp, verdict: &str) -> f64 {
    scrape(app).await.value(
        "registrar_sender_auth_verdicts_total",
        &[("mode", "dmarc"), ("verdict", verdict)],
    )
}

async fn assert_nothing_sent(app: &TestApp) {
    app.settle().await;
    assert_eq!(app.count("outbox"), 0, "a reply was queued");
    assert!(app.relay.mails().is_empty(), "a mail reached the relay");
}

fn dmarc_with(zone: FixedZone) -> impl FnOnce(&mut Settings) {
    move |settings| {
        settings.services[0].policy.sender_auth = SenderAuthMode::Dmarc;
        settings.sender_auth.dns = DnsSource::Fixed(zone);
    }
}

/// example.com publishes a strict DMARC policy and `key` under selector test.
fn example_com(key: &TestKey) -> FixedZone {
    FixedZone::new()
        .txt("_dmarc.example.com", "v=DMARC1; p=reject")
        .txt("test._domainkey.example.com", &key.record())
}

#[tokio::test]
async fn dmarc_pass_by_an_aligned_dkim_signature_registers() {
    let key = TestKey::generate();
    let app = TestApp::spawn_with(dmarc_with(example_com(&key))).await;

    let reply = app
        .send(
            JANE,
            SUPPORT,
            &key.sign(&person("Jane", JANE, SUPPORT, "d1@example.com")),
        )
        .await;

    reply.assert_code(250);
    let mails = app.relay.wait_for(1).await;
    assert_eq!(mails[0].rcpt_to, vec![JANE.to_owned()]);
    assert_eq!(last_decision(&app).0, "register");
    assert_eq!(dmarc_verdicts(&app, "pass").await, 1.0);
}

#[tokio::test]
async fn dmarc_pass_by_aligned_spf_registers_an_unsigned_message() {
    let zone = FixedZone::new()
        .txt("_dmarc.example.com", "v=DMARC1; p=reject")
        .txt("example.com", "v=spf1 ip4:127.0.0.1 -all");
    let app = TestApp::spawn_with(dmarc_with(zone)).await;

    let reply = app
        .send(
            JANE,
            SUPPORT,
            &person("Jane", JANE, SUPPORT, "d2@example.com"),
        )
        .await;

    reply.assert_code(250);
    app.relay.wait_for(1).await;
}

#[tokio::test]
async fn dmarc_fail_is_refused_550_and_nobody_is_mailed() {
    let published = TestKey::generate();
    let forger = TestKey::generate();
    let zone = example_com(&published).txt("example.com", "v=spf1 ip4:192.0.2.1 -all");
    let app = TestApp::spawn_with(dmarc_with(zone)).await;

    let reply = app
        .send(
            JANE,
            SUPPORT,
            &forger.sign(&person("Jane", JANE, SUPPORT, "d3@example.com")),
        )
        .await;

    reply.assert_code(550);
    assert!(reply.text.starts_with("5.7.1"), "{}", reply.text);
    assert_eq!(last_decision(&app).1, "not_authenticated");
    assert_eq!(app.count("customers"), 0);
    assert_nothing_sent(&app).await;
    assert_eq!(dmarc_verdicts(&app, "fail").await, 1.0);
    assert_eq!(dmarc_verdicts(&app, "pass").await, 0.0);
}

#[tokio::test]
async fn a_domain_without_dmarc_is_not_authenticated() {
    let key = TestKey::generate();
    // A valid DKIM signature, but example.com publishes no DMARC policy.
    let zone = FixedZone::new().txt("test._domainkey.example.com", &key.record());
    let app = TestApp::spawn_with(dmarc_with(zone)).await;

    let reply = app
        .send(
            JANE,
            SUPPORT,
            &key.sign(&person("Jane", JANE, SUPPORT, "d4@example.com")),
        )
        .await;

    reply.assert_code(550);
    assert_eq!(last_decision(&app).1, "not_authenticated");
    assert_nothing_sent(&app).await;
}

#[tokio::test]
async fn a_temporary_dns_error_answers_451_stores_nothing_and_the_retry_registers() {
    let key = TestKey::generate();
    let broken = FixedZone::new()
        .txt_temporary_failure("_dmarc.example.com")
        .txt("test._domainkey.example.com", &key.record());
    let app = TestApp::spawn_with(dmarc_with(broken)).await;
    let message = key.sign(&person("Jane", JANE, SUPPORT, "d5@example.com"));

    let reply = app.send(JANE, SUPPORT, &message).await;

    reply.assert_code(451);
    assert!(reply.text.starts_with("4.7.1"), "{}", reply.text);
    for table in [
        "inbound",
        "decisions",
        "customers",
        "activation_tokens",
        "outbox",
    ] {
        assert_eq!(app.count(table), 0, "{table} should be empty");
    }
    assert_nothing_sent(&app).await;
    assert_eq!(dmarc_verdicts(&app, "temporary_error").await, 1.0);
    let deferred = [
        ("decision", "defer"),
        ("reason", "sender_auth_temporary_error"),
        ("service", "demo"),
    ];
    assert_eq!(
        scrape(&app)
            .await
            .value("registrar_messages_total", &deferred),
        1.0,
        "a deferred message is counted though nothing of it is stored"
    );

    // DNS recovers; the sender's retry of the same message registers once.
    let app = app.restart_with(dmarc_with(example_com(&key))).await;
    app.send(JANE, SUPPORT, &message).await.assert_code(250);
    app.relay.wait_for(1).await;
    assert_eq!(app.count("customers"), 1);
}

#[tokio::test]
async fn with_refusal_drop_an_unauthenticated_sender_gets_250_and_a_recorded_drop() {
    let key = TestKey::generate();
    let app = TestApp::spawn_with(|settings| {
        dmarc_with(example_com(&key))(settings);
        settings.services[0].policy.refusal = RefusalMode::Drop;
    })
    .await;

    let reply = app
        .send(
            JANE,
            SUPPORT,
            &person("Jane", JANE, SUPPORT, "d6@example.com"),
        )
        .await;

    reply.assert_code(250);
    assert_eq!(
        last_decision(&app),
        ("refuse".to_owned(), "not_authenticated".to_owned(), true)
    );
    assert_eq!(app.count("customers"), 0);
    assert_nothing_sent(&app).await;
}

/// A forwarder's SRS envelope for Jane's message: it names the forwarder.
const SRS_JANE: &str = "SRS0=aW3k=TT=example.com=jane@forwarder.example";

/// The recorded decision about Jane: outcome, reason and note.
fn decision_about_jane(app: &TestApp) -> (String, String, Option<String>) {
    app.db()
        .query_row(
            "SELECT outcome, reason, note FROM decisions WHERE identity = ?1 ORDER BY id DESC LIMIT 1",
            [JANE],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("a decision about jane is recorded")
}

#[tokio::test]
async fn a_forwarded_message_with_dkim_aligned_to_from_registers_from_and_mails_only_from() {
    let key = TestKey::generate();
    // The forwarder's SPF passes for its own domain, which is not aligned
    // with From: only the DKIM signature of example.com can pass DMARC.
    let zone = example_com(&key).txt("forwarder.example", "v=spf1 ip4:127.0.0.1 -all");
    let app = TestApp::spawn_with(dmarc_with(zone)).await;

    let reply = app
        .send(
            SRS_JANE,
            SUPPORT,
            &key.sign(&person("Jane", JANE, SUPPORT, "srs1@example.com")),
        )
        .await;

    reply.assert_code(250);
    let mails = app.relay.wait_for(1).await;
    assert_eq!(mails[0].rcpt_to, vec![JANE.to_owned()]);
    let email: String = app
        .db()
        .query_row("SELECT email FROM customers", [], |row| row.get(0))
        .expect("one customer");
    assert_eq!(email, JANE);
    let (outcome, _, note) = decision_about_jane(&app);
    assert_eq!(outcome, "register");
    let note = note.expect("the record says why the envelope did not matter");
    assert!(
        note.contains(SRS_JANE) && note.contains("did not matter") && note.contains("dmarc=pass"),
        "{note}"
    );
    app.settle().await;
    assert_eq!(app.relay.mails().len(), 1, "one mail, to From only");
}

#[tokio::test]
async fn a_forwarded_message_without_dkim_aligned_to_from_is_refused_and_nobody_is_mailed() {
    let published = TestKey::generate();
    let forwarder = TestKey::generate();
    // The forwarder re-signs as itself and its SPF passes: both pass, neither
    // is aligned with example.com, so DMARC fails for the From domain.
    let zone = example_com(&published)
        .txt("forwarder.example", "v=spf1 ip4:127.0.0.1 -all")
        .txt("test._domainkey.forwarder.example", &forwarder.record());
    let app = TestApp::spawn_with(dmarc_with(zone)).await;

    let reply = app
        .send(
            SRS_JANE,
            SUPPORT,
            &forwarder.sign_as(
                "forwarder.example",
                &person("Jane", JANE, SUPPORT, "srs2@example.com"),
            ),
        )
        .await;

    reply.assert_code(550);
    assert!(reply.text.starts_with("5.7.1"), "{}", reply.text);
    assert!(reply.text.contains("Create an account"), "{}", reply.text);
    let (outcome, reason, note) = decision_about_jane(&app);
    assert_eq!(
        (outcome.as_str(), reason.as_str()),
        ("refuse", "forwarded_not_authenticated")
    );
    assert!(
        note.is_some_and(|note| note.contains("not decoded")),
        "the record says the envelope was a forwarder's"
    );
    assert_eq!(app.count("customers"), 0);
    assert_nothing_sent(&app).await;
}

fn authentication_results(relays: &[&str]) -> impl FnOnce(&mut Settings) {
    let trusted_relays = relays
        .iter()
        .map(|relay| IpRange::parse(relay).expect("a range"))
        .collect();
    move |settings| {
        settings.services[0].policy.sender_auth =
            SenderAuthMode::AuthenticationResults(TrustedResults {
                authserv_id: "mx.helpdesk.example".into(),
                trusted_relays,
            });
    }
}

fn with_results(results: &[&str], id: &str) -> Vec<u8> {
    let mut raw = Vec::new();
    for value in results {
        raw.extend_from_slice(format!("Authentication-Results: {value}\r\n").as_bytes());
    }
    raw.extend_from_slice(&person("Jane", JANE, SUPPORT, id));
    raw
}

const PASS: &str = "mx.helpdesk.example; spf=pass smtp.mailfrom=example.com; dmarc=pass (p=reject) header.from=example.com";

#[tokio::test]
async fn authentication_results_from_a_trusted_relay_authenticate() {
    // The test client connects from 127.0.0.1.
    let app = TestApp::spawn_with(authentication_results(&["127.0.0.1"])).await;

    let reply = app
        .send(JANE, SUPPORT, &with_results(&[PASS], "ar1@example.com"))
        .await;

    reply.assert_code(250);
    app.relay.wait_for(1).await;
}

#[tokio::test]
async fn a_forged_authentication_results_from_an_untrusted_peer_does_not_authenticate() {
    let app = TestApp::spawn_with(authentication_results(&["192.0.2.25"])).await;

    let reply = app
        .send(JANE, SUPPORT, &with_results(&[PASS], "ar2@example.com"))
        .await;

    reply.assert_code(550);
    assert!(reply.text.starts_with("5.7.1"), "{}", reply.text);
    assert_eq!(last_decision(&app).1, "not_authenticated");
    assert_nothing_sent(&app).await;
}

#[tokio::test]
async fn the_worst_trusted_verdict_wins() {
    let app = TestApp::spawn_with(authentication_results(&["127.0.0.0/8"])).await;
    let fail = "mx.helpdesk.example; dmarc=fail header.from=example.com";

    let reply = app
        .send(
            JANE,
            SUPPORT,
            &with_results(&[PASS, fail], "ar3@example.com"),
        )
        .await;

    reply.assert_code(550);
    assert_nothing_sent(&app).await;
}

#[tokio::test]
async fn a_header_with_our_authserv_id_below_the_relays_own_counts_for_nothing() {
    let app = TestApp::spawn_with(authentication_results(&["127.0.0.1"])).await;
    // What our relay added on top says nothing about DMARC; the sender wrote
    // a passing verdict under our name further down, below a Received.
    let mut raw =
        b"Authentication-Results: mx.helpdesk.example; spf=none smtp.mailfrom=example.com\r\n\
                    Received: from attacker.example by mx.helpdesk.example\r\n"
            .to_vec();
    raw.extend_from_slice(&with_results(&[PASS], "ar4@example.com"));

    let reply = app.send(JANE, SUPPORT, &raw).await;

    reply.assert_code(550);
    assert_eq!(last_decision(&app).1, "not_authenticated");
    assert_nothing_sent(&app).await;
}

#[tokio::test]
async fn a_non_ascii_local_part_is_refused_553_5_6_7() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let (mut client, greeting) = SmtpClient::connect(app.smtp_addr).await?;
    greeting.assert_code(220);
    client.command("EHLO client.test").await?.assert_code(250);

    let reply = client.command("MAIL FROM:<jörg@example.com>").await?;

    reply.assert_code(553);
    assert!(reply.text.starts_with("5.6.7"), "{}", reply.text);
    assert_nothing_sent(&app).await;
    Ok(())
}

#[tokio::test]
async fn ip_literals_and_quoted_local_parts_never_register() {
    let app = TestApp::spawn().await;
    for sender in ["jane@[127.0.0.1]", "\"jane doe\"@example.com"] {
        let reply = app
            .send(
                sender,
                SUPPORT,
                &person("Jane", sender, SUPPORT, "odd@example.com"),
            )
            .await;
        assert!(reply.code >= 500, "{sender}: {} {}", reply.code, reply.text);
    }
    assert_eq!(app.count("customers"), 0);
    assert_nothing_sent(&app).await;
}

#[tokio::test]
async fn display_names_are_decoded_and_stripped_of_control_and_bidi_characters() {
    let app = TestApp::spawn().await;
    // "Ev<RLO>il<BEL>" in RFC 2047 Q encoding.
    let raw = String::from_utf8(person("X", JANE, SUPPORT, "name@example.com"))
        .expect("utf-8")
        .replace(
            "From: X <",
            "From: =?UTF-8?Q?Ev=E2=80=AEil=07_M=C3=BCller?= <",
        )
        .into_bytes();

    app.send(JANE, SUPPORT, &raw).await.assert_code(250);

    let name: String = app
        .db()
        .query_row("SELECT name FROM customers", [], |row| row.get(0))
        .expect("a customer");
    assert_eq!(name, "Evil Müller");
    let mails = app.relay.wait_for(1).await;
    let text = String::from_utf8_lossy(&mails[0].data);
    assert!(!text.contains("Evil"), "the display name is never echoed");
}
