//! "Forgot your password?" and "Email me a sign-in link", end to end over
//! HTTP with mail through the capturing relay: the same answer whatever the
//! address's state, single-use hashed links that a GET never consumes, the
//! old password dead and every other session ended after a reset, and the
//! limits of /resend. The reset in Chromium is in browser.rs.

use crate::support::customer::{PASSWORD, active_customer, login, mail_number, register};
use crate::support::{Mail, TestApp, form_page, hidden_field, scrape};
use reqwest::StatusCode;

pub(crate) const NEW_PASSWORD: &str = "quiet harbour lantern meadow";

/// The link in a mail's text part, to `path` on our listener.
pub(crate) fn link_in(mail: &Mail, app: &TestApp, path: &str) -> String {
    let prefix = app.url(path);
    let start = mail.text.find(&prefix).expect("our link in the mail");
    mail.text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

/// Sends the address form at `path`; returns status and body.
pub(crate) async fn ask(app: &TestApp, path: &str, email: &str) -> (StatusCode, String) {
    let http = app.http();
    let page = form_page(&http, &app.url(path)).await;
    let answer = http
        .post(app.url(path))
        .form(&[
            ("csrf", hidden_field(&page, "csrf").as_str()),
            ("email", email),
        ])
        .send()
        .await
        .expect("POST");
    (answer.status(), answer.text().await.expect("body"))
}

#[tokio::test]
async fn forgot_answers_the_same_bytes_whatever_the_address_and_mails_only_an_active_customer() {
    let app = TestApp::spawn().await;
    let _signed_in = active_customer(&app, "Jane Doe", "jane@example.com").await;
    register(&app, &app.http(), "Pat Pending", "pat@example.com").await;
    let mails_before = app.relay.wait_for(3).await.len();

    let (status, unknown) = ask(&app, "/forgot", "nobody@example.com").await;
    assert_eq!(status, StatusCode::OK);
    let (_, pending) = ask(&app, "/forgot", "pat@example.com").await;
    let (_, active) = ask(&app, "/forgot", "jane@example.com").await;
    assert_eq!(unknown, pending, "unknown and pending get the same bytes");
    assert_eq!(unknown, active, "unknown and active get the same bytes");
    assert!(active.contains("Check your inbox"));

    let (to, mail) = mail_number(&app, mails_before + 1).await;
    assert_eq!(to, "jane@example.com");
    assert_eq!(mail.subject, "Reset your Demo Help Desk password");
    app.settle().await;
    assert_eq!(app.relay.mails().len(), mails_before + 1, "one mail only");
    let raw_token_stored: i64 = app
        .db()
        .query_row(
            "SELECT COUNT(*) FROM account_tokens WHERE length(hash) = 32",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(raw_token_stored, 1, "only the hash is stored");
    assert_eq!(
        app.count("decisions WHERE channel = 'password_reset'"),
        3,
        "every request is recorded"
    );
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_ends_every_other_session_and_works_once() {
    let app = TestApp::spawn().await;
    let elsewhere = active_customer(&app, "Jane Doe", "jane@example.com").await;
    assert_eq!(
        elsewhere
            .get(app.url("/portal"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    ask(&app, "/forgot", "jane@example.com").await;
    let (_, mail) = mail_number(&app, 3).await;
    let link = link_in(&mail, &app, "/reset?token=");

    // A scanner's GET changes nothing.
    let scanner = app.http();
    for _ in 0..2 {
        let page = scanner.get(&link).send().await.expect("GET");
        assert_eq!(page.status(), StatusCode::OK);
    }
    assert_eq!(app.count("account_tokens WHERE used_at IS NULL"), 1);

    let browser = app.http();
    let page = form_page(&browser, &link).await;
    assert!(page.contains("jane@example.com"));
    let weak = browser
        .post(app.url("/reset"))
        .form(&[
            ("csrf", hidden_field(&page, "csrf").as_str()),
            ("token", &hidden_field(&page, "token")),
            ("password", "short"),
            ("confirm", "short"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.count("account_tokens WHERE used_at IS NULL"),
        1,
        "still live"
    );
    let saved = browser
        .post(app.url("/reset"))
        .form(&[
            ("csrf", hidden_field(&page, "csrf").as_str()),
            ("token", &hidden_field(&page, "token")),
            ("password", NEW_PASSWORD),
            ("confirm", NEW_PASSWORD),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert_eq!(saved.headers()["location"], "/portal");
    assert_eq!(
        browser
            .get(app.url("/portal"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::OK,
        "signed in here"
    );
    assert_eq!(
        elsewhere
            .get(app.url("/portal"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::SEE_OTHER,
        "the other session ended"
    );
    assert_eq!(
        login(&app, &app.http(), "jane@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "the old password stopped working"
    );
    assert_eq!(
        login(&app, &app.http(), "jane@example.com", NEW_PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let dead = app.http().get(&link).send().await.expect("GET");
    assert_eq!(dead.status(), StatusCode::NOT_FOUND);
    assert!(
        dead.text()
            .await
            .expect("body")
            .contains("This link no longer works")
    );
    let shown = app.cli(&["customers", "show", "jane@example.com"]).await;
    assert!(shown.stdout.contains("password_reset"), "{}", shown.stdout);
}

#[tokio::test]
async fn a_reset_asked_in_another_spelling_goes_to_the_address_as_registered() {
    let app = TestApp::spawn().await;
    let _signed_in = active_customer(&app, "Jane Doe", "Jane.Doe@example.com").await;
    let mails_before = app.relay.wait_for(2).await.len();

    let (status, _) = ask(&app, "/forgot", "jane.doe@EXAMPLE.com").await;
    assert_eq!(status, StatusCode::OK);
    let (to, mail) = mail_number(&app, mails_before + 1).await;
    assert_eq!(to, "Jane.Doe@example.com");
    let header = mail.header("To").unwrap_or_default();
    assert!(
        header.contains("Jane.Doe@example.com"),
        "the header names the address as registered: {header}"
    );
    let link = link_in(&mail, &app, "/reset");
    assert_eq!(
        app.http().get(&link).send().await.expect("GET").status(),
        StatusCode::OK
    );
    assert_eq!(app.count("account_tokens"), 1, "one live link");
}

#[tokio::test]
async fn forgot_is_limited_like_resend() {
    let app = TestApp::spawn_with(|settings| {
        settings.rate_limits.registrations_per_address = 2;
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            ask(&app, "/forgot", "jane@example.com").await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        ask(&app, "/forgot", "jane@example.com").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn an_emailed_sign_in_link_signs_in_once_where_the_service_offers_it() {
    let off = TestApp::spawn().await;
    let login_page = form_page(&off.http(), &off.url("/login")).await;
    assert!(
        !login_page.contains("Email me a sign-in link"),
        "off by default"
    );
    assert_eq!(
        off.http()
            .get(off.url("/login/email"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::NOT_FOUND
    );

    let app = TestApp::spawn_with(|settings| settings.services[0].policy.email_link = true).await;
    let login_page = form_page(&app.http(), &app.url("/login")).await;
    assert!(login_page.contains(r#"href="/login/email">Email me a sign-in link"#));
    let _jane = active_customer(&app, "Jane Doe", "jane@example.com").await;
    let (_, unknown) = ask(&app, "/login/email", "nobody@example.com").await;
    let (_, known) = ask(&app, "/login/email", "jane@example.com").await;
    assert_eq!(unknown, known, "the same bytes");
    let (to, mail) = mail_number(&app, 3).await;
    assert_eq!(to, "jane@example.com");
    assert_eq!(mail.subject, "Your Demo Help Desk sign-in link");
    let link = link_in(&mail, &app, "/login/link?token=");

    let browser = app.http();
    let page = form_page(&browser, &link).await;
    assert!(page.contains("sign in as jane@example.com"), "{page}");
    assert_eq!(
        browser
            .get(app.url("/portal"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::SEE_OTHER,
        "opening the link signs nobody in"
    );
    let signed_in = browser
        .post(app.url("/login/link"))
        .form(&[
            ("csrf", hidden_field(&page, "csrf").as_str()),
            ("token", &hidden_field(&page, "token")),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        browser
            .get(app.url("/portal"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    let again = app.http().get(&link).send().await.expect("GET");
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.count("decisions WHERE channel = 'email_link' AND outcome = 'already_active'"),
        1
    );
    let scraped = scrape(&app).await;
    assert_eq!(
        scraped.value(
            "registrar_sign_ins_total",
            &[("method", "email_link"), ("result", "signed_in")]
        ),
        1.0,
        "counted by its method"
    );
    assert_eq!(
        scraped.value(
            "registrar_sign_ins_total",
            &[("method", "email_link"), ("result", "declined")]
        ),
        0.0,
        "opening a used link again is no sign-in attempt"
    );
}

#[tokio::test]
async fn the_purge_removes_used_and_expired_links_and_keeps_live_ones() {
    let app = TestApp::spawn_with(|settings| {
        settings.activation.purge_interval = std::time::Duration::from_millis(100);
        settings.services[0].policy.email_link = true;
    })
    .await;
    let _jane = active_customer(&app, "Jane Doe", "jane@example.com").await;
    ask(&app, "/forgot", "jane@example.com").await;
    ask(&app, "/login/email", "jane@example.com").await;
    app.relay.wait_for(4).await;
    assert_eq!(app.count("account_tokens"), 2);
    app.db()
        .execute(
            "UPDATE account_tokens SET expires_at = 0 WHERE purpose = 'reset'",
            [],
        )
        .expect("expire the reset link");
    crate::support::eventually("the purge", || app.count("account_tokens") == 1).await;
    let left: String = app
        .db()
        .query_row("SELECT purpose FROM account_tokens", [], |r| r.get(0))
        .expect("one link");
    assert_eq!(left, "sign_in", "the live link stays");
}

#[tokio::test]
async fn no_reset_or_sign_in_link_is_mailed_to_an_address_whose_owner_opted_out() {
    let app = TestApp::spawn_with(|settings| settings.services[0].policy.email_link = true).await;
    let _signed_in = active_customer(&app, "Jane Doe", "jane@example.com").await;
    let (_, activation) = mail_number(&app, 1).await;
    // The "account activated" notice arrives before the opt-out: one still
    // being delivered when the opt-out cancels what is queued would land
    // after the count below is taken.
    mail_number(&app, 2).await;
    let start = activation
        .text
        .find(&app.url("/not-me"))
        .expect("an opt-out link");
    let link: String = activation.text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let http = app.http();
    let page = form_page(&http, &link).await;
    let confirmed = http
        .post(app.url("/not-me"))
        .form(&[
            ("csrf", hidden_field(&page, "csrf")),
            ("token", hidden_field(&page, "token")),
        ])
        .send()
        .await
        .expect("POST /not-me");
    assert_eq!(confirmed.status(), StatusCode::OK);
    app.settle().await;
    let mails_before = app.relay.mails().len();

    let (_, reset) = ask(&app, "/forgot", "jane@example.com").await;
    let (_, sign_in_link) = ask(&app, "/login/email", "jane@example.com").await;

    assert!(
        reset.contains("Check your inbox"),
        "the same answer as ever"
    );
    assert!(sign_in_link.contains("Check your inbox"));
    app.settle().await;
    assert_eq!(app.relay.mails().len(), mails_before, "no link was mailed");
    assert_eq!(
        app.count(
            "decisions WHERE reason = 'opted_out' AND channel IN ('password_reset', 'email_link')"
        ),
        2,
        "each request is recorded as not mailed"
    );
    assert_eq!(app.count("account_tokens"), 0, "no link was made");
    assert_eq!(
        login(&app, &app.http(), "jane@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER,
        "the account itself still works"
    );
}
