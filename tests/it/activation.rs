//! The activation page: link, form, password, signed in; and everything that
//! must not consume a token.

use crate::support::app::SUPPORT;
use crate::support::customer::{PASSWORD, activate, login, mail_number};
use crate::support::mail::person;
use crate::support::{Mail, TestApp, activation_link, hidden_field};
use reqwest::Client;

/// Registers `email` by mail and returns the activation link.
async fn registered(app: &TestApp, name: &str, email: &str) -> String {
    app.send(
        email,
        SUPPORT,
        &person(name, email, SUPPORT, &format!("{email}.id")),
    )
    .await
    .assert_code(250);
    let mails = app.relay.wait_for(1).await;
    activation_link(
        &Mail::parse(&mails.last().expect("a mail").data),
        app.http_addr,
    )
}

/// GETs the form and returns its CSRF value and token field.
async fn open_form(http: &Client, link: &str) -> (String, String, String) {
    let response = http.get(link).send().await.expect("GET activation page");
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("body");
    (
        hidden_field(&html, "csrf"),
        hidden_field(&html, "token"),
        html,
    )
}

#[tokio::test]
async fn the_whole_path_from_mail_to_portal_and_back_in() {
    let app = TestApp::spawn().await;
    let link = registered(&app, "Jane Doe", "jane@example.com").await;
    let http = app.http();

    let (csrf, token, html) = open_form(&http, &link).await;
    assert!(
        html.contains("value=\"jane@example.com\""),
        "the email is shown"
    );
    assert!(
        html.contains("value=\"Jane Doe\""),
        "the name is pre-filled from From:"
    );

    let saved = http
        .post(app.url("/activate"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", &token),
            ("name", "Jane Q. Doe"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ])
        .send()
        .await
        .expect("POST activation");
    assert_eq!(saved.status(), 303);
    assert_eq!(saved.headers()["location"], "/portal");
    let cookie = saved.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );

    let portal = http
        .get(app.url("/portal"))
        .send()
        .await
        .expect("GET portal");
    assert_eq!(portal.status(), 200);
    assert!(
        portal
            .text()
            .await
            .expect("body")
            .contains("Welcome, Jane Q. Doe")
    );

    // The link is spent.
    let again = http.get(&link).send().await.expect("GET used link");
    assert_eq!(again.status(), 404);

    // A new browser signs in with the password.
    let fresh = app.http();
    let signed_in = login(&app, &fresh, "jane@example.com", PASSWORD).await;
    assert_eq!(signed_in.status(), 303);
    let portal = fresh
        .get(app.url("/portal"))
        .send()
        .await
        .expect("GET portal")
        .text()
        .await
        .expect("body");
    assert!(portal.contains("Welcome, Jane Q. Doe"));

    // A wrong password does not.
    let other = app.http();
    let refused = login(&app, &other, "jane@example.com", "not the password at all").await;
    assert_eq!(refused.status(), 422);
    assert_eq!(
        other
            .get(app.url("/portal"))
            .send()
            .await
            .expect("GET portal")
            .status(),
        303
    );
}

#[tokio::test]
async fn get_and_head_never_consume_the_token() {
    let app = TestApp::spawn().await;
    let link = registered(&app, "Jane", "jane@example.com").await;
    let http = app.http();

    for _ in 0..2 {
        assert_eq!(http.get(&link).send().await.expect("GET").status(), 200);
    }
    assert_eq!(http.head(&link).send().await.expect("HEAD").status(), 200);
    assert_eq!(
        app.http()
            .get(&link)
            .send()
            .await
            .expect("GET without cookies")
            .status(),
        200
    );

    assert!(!app.token_used());
    assert_eq!(app.count("sessions"), 0);
}

#[tokio::test]
async fn a_wrong_csrf_value_or_an_empty_password_leaves_the_token_unused() {
    let app = TestApp::spawn().await;
    let link = registered(&app, "Jane", "jane@example.com").await;
    let http = app.http();
    let (csrf, token, _) = open_form(&http, &link).await;

    let forged = http
        .post(app.url("/activate"))
        .form(&[
            ("csrf", "forged"),
            ("token", &token),
            ("name", "Jane"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), 403);

    let cross_site = http
        .post(app.url("/activate"))
        .header("Origin", "https://evil.example")
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", &token),
            ("name", "Jane"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(cross_site.status(), 403);

    let empty = http
        .post(app.url("/activate"))
        .form(&[("csrf", csrf.as_str()), ("token", &token)])
        .send()
        .await
        .expect("POST");
    assert_eq!(empty.status(), 422);

    let short = http
        .post(app.url("/activate"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", &token),
            ("name", "Jane"),
            ("password", "short"),
            ("confirm", "short"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(short.status(), 422);
    assert!(
        short
            .text()
            .await
            .expect("body")
            .contains("at least 15 characters")
    );

    assert!(!app.token_used());
    assert_eq!(app.count("sessions"), 0);
    assert_eq!(
        http.get(&link).send().await.expect("GET").status(),
        200,
        "the link still works"
    );
}

#[tokio::test]
async fn a_link_mailed_before_links_were_stamped_still_activates() {
    let app = TestApp::spawn().await;
    let stamped = registered(&app, "Jane", "jane@example.com").await;
    // An earlier build stored a link token under its plain SHA-256.
    let earlier = registrar::domain::Token::generate();
    let changed = app
        .db()
        .execute(
            "UPDATE activation_tokens SET hash = ?1",
            [&earlier.hash().0[..]],
        )
        .expect("store the token as an earlier build did");
    assert_eq!(changed, 1);
    let link = app.url(&format!("/activate?token={}", earlier.expose()));
    let http = app.http();

    assert_eq!(
        http.get(&stamped).send().await.expect("GET").status(),
        404,
        "the stamped link's key is gone"
    );
    let saved = activate(&app, &http, &link, "Jane").await;
    assert_eq!(saved.status(), 303);
    assert_eq!(saved.headers()["location"], "/portal");
    assert_eq!(app.count("activation_tokens WHERE used_at IS NOT NULL"), 1);
    assert_eq!(http.get(&link).send().await.expect("GET").status(), 404);
}

#[tokio::test]
async fn an_expired_token_gets_the_same_page_as_an_unknown_one() {
    let app = TestApp::spawn().await;
    let link = registered(&app, "Jane", "jane@example.com").await;
    // Let the token expire without waiting 72 hours.
    app.db()
        .execute("UPDATE activation_tokens SET expires_at = 0", [])
        .expect("expire the token");
    let http = app.http();

    let expired = http.get(&link).send().await.expect("GET expired");
    let unknown = http
        .get(app.url("/activate?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
        .send()
        .await
        .expect("GET unknown");
    let garbage = http
        .get(app.url("/activate?token=<script>"))
        .send()
        .await
        .expect("GET garbage");

    assert_eq!(expired.status(), 404);
    assert_eq!(unknown.status(), 404);
    assert_eq!(garbage.status(), 404);
    let expired = expired.text().await.expect("body");
    assert_eq!(expired, unknown.text().await.expect("body"));
    assert_eq!(expired, garbage.text().await.expect("body"));
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let http = app.http();
    for path in [
        "/login",
        "/register",
        "/activate?token=x",
        "/portal",
        "/nowhere",
        "/not-me?token=x",
    ] {
        let response = http.get(app.url(path)).send().await.expect("GET");
        let headers = response.headers();
        assert!(
            headers["content-security-policy"]
                .to_str()
                .expect("ascii")
                .contains("default-src 'none'"),
            "{path}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .expect("ascii")
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    }
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = TestApp::spawn().await;
    let link = registered(&app, "Jane", "jane@example.com").await;
    let http = app.http();
    let (csrf, token, _) = open_form(&http, &link).await;
    http.post(app.url("/activate"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", &token),
            ("name", "Jane"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ])
        .send()
        .await
        .expect("POST activation");
    let portal = http
        .get(app.url("/portal"))
        .send()
        .await
        .expect("GET portal")
        .text()
        .await
        .expect("body");

    let out = http
        .post(app.url("/logout"))
        .form(&[("csrf", hidden_field(&portal, "csrf"))])
        .send()
        .await
        .expect("POST logout");

    assert_eq!(out.status(), 303);
    assert_eq!(
        http.get(app.url("/portal"))
            .send()
            .await
            .expect("GET portal")
            .status(),
        303
    );
    assert_eq!(app.count("sessions"), 0);
}

#[tokio::test]
async fn the_activated_notice_greets_the_customer_by_the_name_they_saved() {
    let app = TestApp::spawn().await;
    let link = registered(&app, "Pat", "pat@example.com").await;
    let http = app.http();

    // The notice is prepared before the transaction, under the name in the
    // form, not the one the mail was registered with.
    assert_eq!(
        activate(&app, &http, &link, "Patricia Jones")
            .await
            .status(),
        303
    );
    let (to, notice) = mail_number(&app, 2).await;
    assert_eq!(to, "pat@example.com");
    assert_eq!(notice.subject, "Your Demo Help Desk account is active");
    assert!(
        notice.text.contains("Hello Patricia Jones,"),
        "{}",
        notice.text
    );
    assert_eq!(app.count("outbox WHERE kind = 'account_activated'"), 1);
    assert_eq!(
        http.get(&link).send().await.expect("GET").status(),
        404,
        "the token worked once"
    );
    app.settle().await;
    assert_eq!(app.relay.mails().len(), 2, "one notice only");
}
