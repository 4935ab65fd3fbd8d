//! The portal's ways in: "Create an account", "send me a new link", sign-in
//! and sign-out, disabled accounts, and the purge of expired pending
//! customers. Everything over real sockets, with mail through the relay.

use crate::support::customer::{PASSWORD, activate, active_customer, login, mail_number, register};
use crate::support::{Mail, TestApp, activation_link, eventually, form_page, hidden_field};
use reqwest::StatusCode;

#[tokio::test]
async fn create_an_account_on_the_portal_ends_signed_in_with_an_activated_notice() {
    let app = TestApp::spawn().await;
    let http = app.http();

    let login_page = form_page(&http, &app.url("/login")).await;
    assert!(
        login_page.contains("href=\"/register\""),
        "linked from /login"
    );
    let answer = register(&app, &http, "Jane Doe", "jane@example.com").await;
    assert_eq!(answer.status(), 200);
    assert!(
        answer
            .text()
            .await
            .expect("body")
            .contains("Check your inbox")
    );

    let (to, mail) = mail_number(&app, 1).await;
    assert_eq!(to, "jane@example.com");
    assert_eq!(mail.subject, "Activate your Demo Help Desk account");
    let link = activation_link(&mail, app.http_addr);
    let page = form_page(&http, &link).await;
    assert!(
        page.contains("value=\"Jane Doe\""),
        "the name is pre-filled"
    );
    let saved = activate(&app, &http, &link, "Jane Doe").await;
    assert_eq!(saved.status(), 303);
    assert_eq!(saved.headers()["location"], "/portal");

    let (to, notice) = mail_number(&app, 2).await;
    assert_eq!(to, "jane@example.com");
    assert_eq!(notice.subject, "Your Demo Help Desk account is active");
    assert!(notice.text.contains("/login"), "{}", notice.text);
    assert!(
        !notice.text.contains("token="),
        "the notice carries no token"
    );

    let portal = form_page(&http, &app.url("/portal")).await;
    assert!(portal.contains("Welcome, Jane Doe"));
    let out = http
        .post(app.url("/logout"))
        .form(&[("csrf", hidden_field(&portal, "csrf"))])
        .send()
        .await
        .expect("POST /logout");
    assert_eq!(out.status(), 303);
    assert_eq!(
        http.get(app.url("/portal"))
            .send()
            .await
            .expect("GET")
            .status(),
        303
    );
    assert_eq!(
        login(&app, &http, "jane@example.com", PASSWORD)
            .await
            .status(),
        303
    );
    assert_eq!(
        http.get(app.url("/portal"))
            .send()
            .await
            .expect("GET")
            .status(),
        200
    );
}

#[tokio::test]
async fn register_answers_byte_identically_whether_or_not_the_address_has_an_account() {
    let app = TestApp::spawn().await;
    active_customer(&app, "Active", "active@example.com").await;
    let http = app.http();
    assert_eq!(
        register(&app, &http, "Pending", "pending@example.com")
            .await
            .status(),
        200
    );
    app.settle().await;
    app.db()
        .execute(
            "INSERT INTO customers (email, identity, service, status, source, created_at, updated_at)
             VALUES ('off@example.com', 'off@example.com', 'demo', 'disabled', 'mail', 0, 0)",
            [],
        )
        .expect("a disabled customer");

    let mut answers = Vec::new();
    for email in [
        "new@example.com",
        "pending@example.com",
        "active@example.com",
        "off@example.com",
    ] {
        let response = register(&app, &app.http(), "Someone", email).await;
        let status = response.status();
        let cookies = response.headers().get_all("set-cookie").iter().count();
        answers.push((
            email,
            status,
            cookies,
            response.bytes().await.expect("body"),
        ));
    }
    let (_, status, cookies, body) = &answers[0];
    assert_eq!(*status, StatusCode::OK);
    for (email, other_status, other_cookies, other_body) in &answers[1..] {
        assert_eq!(other_status, status, "{email}");
        assert_eq!(other_cookies, cookies, "{email}");
        assert_eq!(other_body, body, "{email}: the page differs");
    }
}

#[tokio::test]
async fn resend_from_the_dead_link_page_mails_a_new_link_and_answers_alike_for_unknown_addresses() {
    let app = TestApp::spawn_with(|settings| {
        settings.services[0].policy.limits.min_interval_secs = 0;
    })
    .await;
    let http = app.http();
    assert_eq!(
        register(&app, &http, "Jane", "jane@example.com")
            .await
            .status(),
        200
    );
    let (_, first) = mail_number(&app, 1).await;
    let old_link = activation_link(&first, app.http_addr);
    app.db()
        .execute("UPDATE activation_tokens SET expires_at = 0", [])
        .expect("expire the token");

    let dead = http.get(&old_link).send().await.expect("GET dead link");
    assert_eq!(dead.status(), 404);
    let dead = dead.text().await.expect("body");
    assert!(
        dead.contains("action=\"/resend\""),
        "the page offers a new link"
    );
    let csrf = hidden_field(&dead, "csrf");

    let mut answers = Vec::new();
    for email in ["jane@example.com", "nobody@example.com"] {
        let response = http
            .post(app.url("/resend"))
            .form(&[("csrf", csrf.as_str()), ("email", email)])
            .send()
            .await
            .expect("POST /resend");
        answers.push((response.status(), response.bytes().await.expect("body")));
    }
    assert_eq!(answers[0].0, StatusCode::OK);
    assert_eq!(
        answers[0], answers[1],
        "known and unknown get the same bytes"
    );

    let (to, second) = mail_number(&app, 2).await;
    assert_eq!(to, "jane@example.com");
    let new_link = activation_link(&second, app.http_addr);
    assert_ne!(new_link, old_link);
    assert_eq!(activate(&app, &http, &new_link, "Jane").await.status(), 303);
    app.settle().await;
    let recipients: Vec<String> = app
        .relay
        .mails()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    assert!(
        !recipients.iter().any(|r| r == "nobody@example.com"),
        "an unknown address gets no mail"
    );
}

#[tokio::test]
async fn register_and_resend_are_limited_per_address_and_per_ip() {
    let app = TestApp::spawn_with(|settings| {
        settings.rate_limits.registrations_per_address = 2;
        settings.rate_limits.registrations_per_ip = 4;
    })
    .await;
    let http = app.http();
    for _ in 0..2 {
        assert_eq!(
            register(&app, &http, "Jane", "jane@example.com")
                .await
                .status(),
            200
        );
    }
    let limited = register(&app, &http, "Jane", "jane+again@example.com").await;
    assert_eq!(
        limited.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the plus-tag does not escape the per-address limit"
    );
    assert!(limited.headers().contains_key("retry-after"));
    assert!(limited.text().await.expect("body").contains("try again"));
    // Another address still works until the IP's allowance is used up.
    assert_eq!(
        register(&app, &http, "Joe", "joe@example.com")
            .await
            .status(),
        200
    );
    let page = form_page(&http, &app.url("/resend")).await;
    let resent = http
        .post(app.url("/resend"))
        .form(&[
            ("csrf", hidden_field(&page, "csrf").as_str()),
            ("email", "joe@example.com"),
        ])
        .send()
        .await
        .expect("POST /resend");
    assert_eq!(resent.status(), 200);
    assert_eq!(
        register(&app, &http, "Ann", "ann@example.com")
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS,
        "five requests from one IP"
    );
    assert_eq!(app.count("customers"), 2, "jane and joe only");
}

#[tokio::test]
async fn sign_in_refuses_a_wrong_password_an_unknown_address_and_a_disabled_account() {
    let app = TestApp::spawn().await;
    active_customer(&app, "Jane", "jane@example.com").await;
    let sessions_before = app.count("sessions");

    let stranger = app.http();
    let wrong = login(
        &app,
        &stranger,
        "jane@example.com",
        "not the password at all",
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let wrong = wrong.text().await.expect("body");
    let unknown = login(&app, &stranger, "nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = unknown.text().await.expect("body");
    assert!(wrong.contains("The email or password is not right."));
    assert_eq!(
        wrong.replace("jane@example.com", "X"),
        unknown.replace("nobody@example.com", "X"),
        "a wrong password and an unknown address read the same"
    );

    app.db()
        .execute(
            "UPDATE customers SET status = 'disabled' WHERE identity = 'jane@example.com'",
            [],
        )
        .expect("disable");
    let http = app.http();
    let disabled = login(&app, &http, "jane@example.com", PASSWORD).await;
    assert_eq!(disabled.status(), StatusCode::FORBIDDEN);
    assert!(disabled.text().await.expect("body").contains("disabled"));
    assert_eq!(
        http.get(app.url("/portal"))
            .send()
            .await
            .expect("GET")
            .status(),
        303
    );
    assert_eq!(app.count("sessions"), sessions_before, "no new session");
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_account_then_per_ip() {
    let app = TestApp::spawn_with(|settings| {
        settings.rate_limits.failed_logins_per_account = 3;
        settings.rate_limits.failed_logins_per_ip = 5;
    })
    .await;
    active_customer(&app, "Jane", "jane@example.com").await;
    let http = app.http();
    for _ in 0..3 {
        assert_eq!(
            login(&app, &http, "jane@example.com", "guess guess guess guess")
                .await
                .status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    let locked = login(&app, &http, "jane@example.com", PASSWORD).await;
    assert_eq!(
        locked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(locked.headers().contains_key("retry-after"));
    assert!(locked.text().await.expect("body").contains("try again"));

    for _ in 0..2 {
        login(
            &app,
            &http,
            "someone@example.com",
            "guess guess guess guess",
        )
        .await;
    }
    assert_eq!(
        login(&app, &http, "other@example.com", "guess guess guess guess")
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the IP has used up its failures"
    );
}

#[tokio::test]
async fn signing_in_again_rotates_the_session_id() {
    let app = TestApp::spawn().await;
    let http = active_customer(&app, "Jane", "jane@example.com").await;
    assert_eq!(app.count("sessions"), 1);
    let first: Vec<u8> = app
        .db()
        .query_row("SELECT hash FROM sessions", [], |row| row.get(0))
        .expect("a session");

    assert_eq!(
        login(&app, &http, "jane@example.com", PASSWORD)
            .await
            .status(),
        303
    );

    let hashes: Vec<Vec<u8>> = {
        let db = app.db();
        let mut statement = db.prepare("SELECT hash FROM sessions").expect("query");
        statement
            .query_map([], |row| row.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("hashes")
    };
    assert_eq!(hashes.len(), 1, "the old session ended");
    assert_ne!(hashes[0], first, "a new id");
    assert_eq!(
        http.get(app.url("/portal"))
            .send()
            .await
            .expect("GET")
            .status(),
        200
    );
}

#[tokio::test]
async fn pending_customers_past_the_expiry_are_purged_and_the_purge_is_recorded() {
    let app = TestApp::spawn_with(|settings| {
        settings.activation.purge_interval = std::time::Duration::from_millis(100);
    })
    .await;
    let http = app.http();
    register(&app, &http, "Old", "old@example.com").await;
    register(&app, &http, "Young", "young@example.com").await;
    app.settle().await;
    let mails = app.relay.wait_for(2).await;
    let to_old = mails
        .iter()
        .find(|m| m.rcpt_to == ["old@example.com"])
        .expect("a mail to old@example.com");
    let old_link = activation_link(&Mail::parse(&to_old.data), app.http_addr);
    app.db()
        .execute(
            "UPDATE customers SET created_at = created_at - 31 * 86400 WHERE identity = 'old@example.com'",
            [],
        )
        .expect("age the customer");

    eventually("the purge", || app.count("customers") == 1).await;

    let remaining: String = app
        .db()
        .query_row("SELECT identity FROM customers", [], |row| row.get(0))
        .expect("one customer");
    assert_eq!(remaining, "young@example.com");
    assert_eq!(app.count("activation_tokens"), 1, "its token went with it");
    let recorded: (String, String, String) = app
        .db()
        .query_row(
            "SELECT channel, outcome, reason FROM decisions WHERE identity = 'old@example.com' ORDER BY id DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("a recorded purge");
    assert_eq!(
        recorded,
        ("purge".into(), "purged".into(), "pending_expired".into())
    );
    assert_eq!(
        http.get(&old_link).send().await.expect("GET").status(),
        404,
        "the purged customer's link is dead"
    );
}
