//! Wording operators own, in the customer's language, over real sockets: an
//! operator's template overrides one mail of one service only (and stays
//! escaped); a message's Content-Language picks the reply's language unless
//! the service sets one; a browser's Accept-Language picks the page's.

use crate::support::TestApp;
use crate::support::app::SUPPORT;
use crate::support::mail::{Mail, person};
use registrar::domain::{EmailAddress, Language};
use registrar::wording::Wording;
use std::sync::Arc;

const OTHER: &str = "help@other.example";

/// `raw` from `person`, with a `Content-Language` header.
fn in_language(language: &str, from: &str, to: &str, id: &str) -> Vec<u8> {
    let mut raw = format!("Content-Language: {language}\r\n").into_bytes();
    raw.extend_from_slice(&person("Jane Doe", from, to, id));
    raw
}

#[tokio::test]
async fn an_operator_template_overrides_one_mail_of_one_service_only() {
    let templates = tempfile::tempdir().expect("temp dir");
    let own = templates.path().join("other").join("mail");
    std::fs::create_dir_all(&own).expect("folders");
    std::fs::write(
        own.join("activation_subject.txt"),
        "Welcome aboard, {{ service }}",
    )
    .expect("write");
    std::fs::write(
        own.join("activation.html"),
        "<p>Hi from {{ service }}: <a href=\"{{ link }}\">go</a></p>\n",
    )
    .expect("write");
    let dir = templates.path().to_owned();
    let app = TestApp::spawn_with(move |s| {
        let mut other = s.services[0].clone();
        other.id = "other".into();
        other.name = "Other <Desk>".into();
        other.support_addresses = vec![EmailAddress::parse(OTHER).expect("valid")];
        s.services.push(other);
        s.wording =
            Arc::new(Wording::load(Some(&dir), &["demo", "other"]).expect("the templates load"));
    })
    .await;

    app.send(
        "jane@example.com",
        OTHER,
        &person("Jane", "jane@example.com", OTHER, "w1@example.com"),
    )
    .await
    .assert_code(250);
    app.mail_support("Joe", "joe@example.com", "w2@example.com")
        .await
        .assert_code(250);
    let mails = app.relay.wait_for(2).await;
    let to = |who: &str| {
        Mail::parse(
            &mails
                .iter()
                .find(|m| m.rcpt_to == vec![who.to_owned()])
                .expect("a mail")
                .data,
        )
    };
    let other = to("jane@example.com");
    let demo = to("joe@example.com");

    assert_eq!(other.subject, "Welcome aboard, Other <Desk>");
    assert!(
        other.html.contains("Hi from Other &lt;Desk&gt;"),
        "{}",
        other.html
    );
    assert!(
        other
            .text
            .contains("You asked to register for Other <Desk>"),
        "the text part keeps the embedded template"
    );
    assert_eq!(demo.subject, "Activate your Demo Help Desk account");
    assert!(!demo.html.contains("Hi from"));
}

#[tokio::test]
async fn the_reply_speaks_the_messages_content_language_unless_the_service_sets_one() {
    let app = TestApp::spawn().await;
    app.send(
        "jane@example.com",
        SUPPORT,
        &in_language("fr-FR", "jane@example.com", SUPPORT, "l1@example.com"),
    )
    .await
    .assert_code(250);
    let french = Mail::parse(&app.relay.wait_for(1).await[0].data);
    assert_eq!(french.subject, "Activez votre compte Demo Help Desk");
    assert!(french.text.starts_with("Bonjour,"), "{}", french.text);

    let app = TestApp::spawn_with(|s| s.services[0].language = Some(Language::Es)).await;
    app.send(
        "jane@example.com",
        SUPPORT,
        &in_language("de", "jane@example.com", SUPPORT, "l2@example.com"),
    )
    .await
    .assert_code(250);
    let spanish = Mail::parse(&app.relay.wait_for(1).await[0].data);
    assert_eq!(spanish.subject, "Active su cuenta de Demo Help Desk");
}

#[tokio::test]
async fn a_german_accept_language_gets_the_german_page() {
    let app = TestApp::spawn().await;
    let http = app.http();

    let german = http
        .get(app.url("/login"))
        .header("Accept-Language", "de-CH, de;q=0.9, en;q=0.5")
        .send()
        .await
        .expect("GET /login");
    let english = http
        .get(app.url("/login"))
        .send()
        .await
        .expect("GET /login");

    assert_eq!(german.status(), 200);
    assert_eq!(
        german
            .headers()
            .get("content-language")
            .map(|v| v.as_bytes()),
        Some(&b"de"[..])
    );
    let german = german.text().await.expect("body");
    assert!(german.contains("<html lang=\"de\">"), "{german}");
    assert!(german.contains("Passwort vergessen?"), "{german}");
    let english = english.text().await.expect("body");
    assert!(english.contains("Forgot your password?"));
    let missing = http
        .get(app.url("/no-such-page"))
        .header("Accept-Language", "es")
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);
    assert!(
        missing
            .text()
            .await
            .expect("body")
            .contains("Página no encontrada")
    );
}
