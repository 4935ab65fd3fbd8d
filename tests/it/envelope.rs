//! Who registers by mail when the envelope sender is not simply the From
//! address: forged SRS and BATV envelopes never register anyone without
//! sender authentication and never make us mail anyone but From; the
//! registered address is the one mailed, rate-limited and recorded, and the
//! record says how the envelope was read.

use crate::support::TestApp;
use crate::support::app::SUPPORT;
use crate::support::mail::person;
use base64::Engine as _;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::DkimSigner;
use registrar::policy::SenderAuthMode;
use registrar::sender_auth::FixedZone;
use registrar::sender_auth::dns::DnsSource;

const JANE: &str = "jane@example.com";
const MALLORY: &str = "mallory@evil.example";

fn customers(app: &TestApp) -> Vec<String> {
    let db = app.db();
    let mut statement = db
        .prepare("SELECT email FROM customers ORDER BY id")
        .expect("a query");
    statement
        .query_map([], |row| row.get(0))
        .expect("customers")
        .collect::<Result<_, _>>()
        .expect("customers")
}

fn last_decision(app: &TestApp) -> (String, String) {
    app.db()
        .query_row(
            "SELECT outcome, reason FROM decisions ORDER BY id DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("a decision is recorded")
}

#[tokio::test]
async fn forged_srs_and_batv_envelopes_register_nobody_and_mail_nobody_without_authentication() {
    // The demo service authenticates nobody (sender_auth = "off").
    let app = TestApp::spawn().await;
    let cases = [
        (
            "SRS encoding Jane, From Mallory",
            "SRS0=fAkE=TT=example.com=jane@forwarder.example",
            MALLORY,
            "forwarded_not_authenticated",
        ),
        (
            "SRS encoding Jane, From Jane",
            "SRS0=fAkE=TT=example.com=jane@forwarder.example",
            JANE,
            "forwarded_not_authenticated",
        ),
        (
            "Microsoft 365 SRS, From Jane",
            "bounces+SRS=fAkE=TT=example.com=jane@contoso.onmicrosoft.com",
            JANE,
            "forwarded_not_authenticated",
        ),
        (
            "BATV tag before Jane, From Mallory",
            "prvs=0123456789=jane@example.com",
            MALLORY,
            "sender_mismatch",
        ),
        (
            "BATV tag before Mallory, From Jane",
            "btv1==0123456789a==mallory@evil.example",
            JANE,
            "sender_mismatch",
        ),
    ];
    for (index, (description, envelope, from, reason)) in cases.into_iter().enumerate() {
        let message = person(
            "Someone",
            from,
            SUPPORT,
            &format!("forged{index}@x.example"),
        );

        let reply = app.send(envelope, SUPPORT, &message).await;

        assert_eq!(reply.code, 550, "{description}: {}", reply.text);
        assert_eq!(
            last_decision(&app),
            ("refuse".to_owned(), reason.to_owned()),
            "{description}"
        );
    }
    app.settle().await;
    assert!(customers(&app).is_empty(), "nobody is registered");
    assert_eq!(app.count("outbox"), 0, "no reply is queued");
    assert!(app.relay.mails().is_empty(), "nobody is mailed");
}

#[tokio::test]
async fn an_authenticated_message_with_a_forged_srs_envelope_mails_only_its_from_address() {
    let pkcs8 = Ed25519Key::generate_pkcs8().expect("a key");
    let key = || Ed25519Key::from_pkcs8_der(&pkcs8).expect("the key loads");
    let public = base64::engine::general_purpose::STANDARD.encode(key().public_key());
    // Mallory owns evil.example and signs for it; the SRS envelope she writes
    // encodes Jane's address.
    let zone = FixedZone::new()
        .txt("_dmarc.evil.example", "v=DMARC1; p=reject")
        .txt(
            "m1._domainkey.evil.example",
            &format!("v=DKIM1; k=ed25519; p={public}"),
        );
    let app = TestApp::spawn_with(|settings| {
        settings.services[0].policy.sender_auth = SenderAuthMode::Dmarc;
        settings.sender_auth.dns = DnsSource::Fixed(zone);
    })
    .await;
    let sign = |raw: &[u8]| {
        let signature = DkimSigner::from_key(key())
            .domain("evil.example")
            .selector("m1")
            .headers(["From", "To", "Subject", "Message-ID", "Date"])
            .sign(raw)
            .expect("the message signs");
        [signature.to_header().as_bytes(), raw].concat()
    };

    let srs = app
        .send(
            "SRS0=fAkE=TT=example.com=jane@forwarder.example",
            SUPPORT,
            &sign(&person("Mallory", MALLORY, SUPPORT, "f1@evil.example")),
        )
        .await;
    let batv = app
        .send(
            "prvs=0123456789=jane@example.com",
            SUPPORT,
            &sign(&person("Mallory", MALLORY, SUPPORT, "f2@evil.example")),
        )
        .await;

    srs.assert_code(250);
    batv.assert_code(550);
    assert_eq!(
        last_decision(&app),
        ("refuse".to_owned(), "sender_mismatch".to_owned()),
        "a BATV tag naming another mailbox is another sender, authenticated or not"
    );
    app.relay.wait_for(1).await;
    app.settle().await;
    let mails = app.relay.mails();
    assert_eq!(mails.len(), 1, "one reply in all");
    assert_eq!(mails[0].rcpt_to, vec![MALLORY.to_owned()]);
    assert_eq!(customers(&app), vec![MALLORY.to_owned()]);
}

#[tokio::test]
async fn the_registered_address_is_the_one_mailed_limited_deduplicated_and_shown() {
    let app = TestApp::spawn().await;
    let first = person("Jane", JANE, SUPPORT, "first@example.com");

    // Through a Cisco gateway: a BATV tag on the envelope, in other case.
    app.send("prvs=0153a4c2e9=Jane@Example.com", SUPPORT, &first)
        .await
        .assert_code(250);

    let mails = app.relay.wait_for(1).await;
    assert_eq!(
        mails[0].rcpt_to,
        vec![JANE.to_owned()],
        "the link goes to From"
    );
    assert_eq!(customers(&app), vec![JANE.to_owned()], "From is registered");
    let recipient: String = app
        .db()
        .query_row("SELECT recipient FROM outbox", [], |row| row.get(0))
        .expect("one outbox row");
    assert_eq!(recipient, JANE);

    // The same message again by another path (another tag, a Received header
    // more): a copy of the message already accepted, found by Message-ID and
    // the registered address.
    let copy = [b"Received: from gw2.example.com\r\n".as_slice(), &first].concat();
    let reply = app
        .send("btv1==50d7a14c2f3==jane@example.com", SUPPORT, &copy)
        .await;
    reply.assert_code(250);
    assert_eq!(reply.text, "2.0.0 message already accepted");

    // A new message with another envelope spelling counts against the same
    // address's reply limit.
    app.send(
        "JANE@example.com",
        SUPPORT,
        &person("Jane", JANE, SUPPORT, "second@example.com"),
    )
    .await
    .assert_code(550);
    assert_eq!(
        last_decision(&app),
        ("refuse".to_owned(), "rate_limited".to_owned())
    );
    app.settle().await;
    assert_eq!(app.relay.mails().len(), 1);

    let shown = app.cli(&["customers", "show", JANE]).await;
    assert!(shown.success, "{}", shown.stderr);
    assert!(
        shown
            .stdout
            .contains("envelope <prvs=0153a4c2e9=Jane@Example.com>: BATV prvs tag removed"),
        "{}",
        shown.stdout
    );
}
