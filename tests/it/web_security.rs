//! The web side against scanners and attackers: nothing but a complete,
//! same-origin POST changes anything; one token activates once however many
//! requests race for it; limits per IP; headers and cookies on every answer.

use crate::support::app::SUPPORT;
use crate::support::customer::{PASSWORD, activate, register};
use crate::support::mail::person;
use crate::support::{Mail, TestApp, activation_link, form_page, hidden_field, scrape};
use reqwest::{Client, Response, StatusCode};

/// Registers `email` by mail and returns the activation link.
async fn mailed_link(app: &TestApp, email: &str) -> String {
    let before = app.relay.mails().len();
    app.send(
        email,
        SUPPORT,
        &person("Jane", email, SUPPORT, &format!("{email}.id")),
    )
    .await
    .assert_code(250);
    let mails = app.relay.wait_for(before + 1).await;
    activation_link(&Mail::parse(&mails[before].data), app.http_addr)
}

async fn hashes_computed(app: &TestApp) -> f64 {
    scrape(app).await.value(
        "registrar_password_hash_seconds_count",
        &[("operation", "hash")],
    )
}

#[tokio::test]
async fn scanners_fetching_and_posting_empty_forms_change_nothing() {
    let app = TestApp::spawn().await;
    let link = mailed_link(&app, "jane@example.com").await;
    let http = app.http();

    assert_eq!(http.head(&link).send().await.expect("HEAD").status(), 200);
    assert_eq!(http.get(&link).send().await.expect("GET").status(), 200);
    let page = form_page(&http, &link).await;
    let no_cookies = Client::new();
    assert_eq!(
        no_cookies.get(&link).send().await.expect("GET").status(),
        200
    );
    assert_eq!(
        no_cookies.head(&link).send().await.expect("HEAD").status(),
        200
    );

    let token = hidden_field(&page, "token");
    let csrf = hidden_field(&page, "csrf");
    let empty_with_csrf = http
        .post(app.url("/activate"))
        .form(&[("csrf", csrf.as_str()), ("token", &token)])
        .send()
        .await
        .expect("POST");
    assert_eq!(empty_with_csrf.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let empty_fields = http
        .post(app.url("/activate"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", &token),
            ("name", ""),
            ("password", ""),
            ("confirm", ""),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(empty_fields.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let cookieless_post = no_cookies
        .post(app.url("/activate"))
        .form(&[
            ("token", token.as_str()),
            ("name", "Jane"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(cookieless_post.status(), StatusCode::FORBIDDEN);

    app.settle().await;
    assert!(!app.token_used(), "the token is unused");
    assert_eq!(app.count("sessions"), 0, "no session");
    assert_eq!(app.count("outbox"), 1, "no mail beyond the activation mail");
    assert_eq!(app.relay.mails().len(), 1);
    assert_eq!(hashes_computed(&app).await, 0.0, "no argon2 work was done");
    assert_eq!(http.get(&link).send().await.expect("GET").status(), 200);
}

#[tokio::test]
async fn fifty_concurrent_posts_of_one_token_activate_exactly_once() {
    let app = TestApp::spawn().await;
    let link = mailed_link(&app, "jane@example.com").await;
    let http = app.http();
    let page = form_page(&http, &link).await;
    let form = [
        ("csrf", hidden_field(&page, "csrf")),
        ("token", hidden_field(&page, "token")),
        ("name", "Jane".to_owned()),
        ("password", PASSWORD.to_owned()),
        ("confirm", PASSWORD.to_owned()),
    ];

    let requests: Vec<_> = (0..50)
        .map(|_| {
            let http = http.clone();
            let url = app.url("/activate");
            let form = form.clone();
            tokio::spawn(async move { http.post(url).form(&form).send().await })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        let response: Response = request.await.expect("task").expect("POST");
        statuses.push(response.status());
    }

    let successes = statuses
        .iter()
        .filter(|s| **s == StatusCode::SEE_OTHER)
        .count();
    assert_eq!(successes, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| matches!(
            *s,
            StatusCode::SEE_OTHER | StatusCode::NOT_FOUND | StatusCode::TOO_MANY_REQUESTS
        )),
        "{statuses:?}"
    );
    let hashed: i64 = app
        .db()
        .query_row(
            "SELECT COUNT(*) FROM customers WHERE password_hash IS NOT NULL",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(hashed, 1, "one stored password hash");
    assert_eq!(hashes_computed(&app).await, 1.0, "one argon2 hash computed");
    assert_eq!(app.count("sessions"), 1, "one session");
    assert!(app.token_used());
}

#[tokio::test]
async fn requests_with_dead_tokens_are_limited_per_ip() {
    let app = TestApp::spawn_with(|settings| settings.rate_limits.invalid_tokens_per_ip = 3).await;
    let link = mailed_link(&app, "jane@example.com").await;
    let http = app.http();
    for _ in 0..3 {
        let dead = http
            .get(app.url("/activate?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
            .send()
            .await
            .expect("GET");
        assert_eq!(dead.status(), StatusCode::NOT_FOUND);
    }
    let limited = http.get(&link).send().await.expect("GET");
    assert_eq!(
        limited.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "guessing stops, even for a real link"
    );
    assert!(limited.headers().contains_key("retry-after"));
    assert!(!app.token_used());
}

#[tokio::test]
async fn activations_are_limited_per_ip() {
    let app = TestApp::spawn_with(|settings| settings.rate_limits.activations_per_ip = 1).await;
    let first = mailed_link(&app, "one@example.com").await;
    let second = mailed_link(&app, "two@example.com").await;
    let http = app.http();
    assert_eq!(activate(&app, &http, &first, "One").await.status(), 303);
    let limited = activate(&app, &app.http(), &second, "Two").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let pending: i64 = app
        .db()
        .query_row(
            "SELECT COUNT(*) FROM customers WHERE status = 'pending'",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(pending, 1, "the second account is untouched");
}

#[tokio::test]
async fn cross_site_posts_are_refused_on_every_form() {
    let app = TestApp::spawn().await;
    let http = app.http();
    let page = form_page(&http, &app.url("/register")).await;
    let csrf = hidden_field(&page, "csrf");
    for (path, fields) in [
        (
            "/register",
            vec![
                ("service", "demo"),
                ("name", "Eve"),
                ("email", "eve@example.com"),
            ],
        ),
        (
            "/login",
            vec![("email", "eve@example.com"), ("password", PASSWORD)],
        ),
        ("/resend", vec![("email", "eve@example.com")]),
        ("/logout", vec![]),
    ] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        for (header, value) in [
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ] {
            // A cross-site page can also send `Origin: null`; with
            // Sec-Fetch-Site saying cross-site it is refused too (below).
            let response = http
                .post(app.url(path))
                .header(header, value)
                .form(&form)
                .send()
                .await
                .expect("POST");
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{path} with {header}"
            );
        }
    }
    let null_cross_site = http
        .post(app.url("/register"))
        .header("origin", "null")
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("csrf", csrf.as_str()),
            ("service", "demo"),
            ("name", "Eve"),
            ("email", "eve@example.com"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(null_cross_site.status(), StatusCode::FORBIDDEN);
    app.settle().await;
    assert_eq!(app.count("customers"), 0);
    assert_eq!(app.count("outbox"), 0);
}

/// What Chromium sends when a customer submits our own form: our
/// `Referrer-Policy: no-referrer` turns its Origin into `null`.
#[tokio::test]
async fn a_browser_post_from_our_own_page_with_a_null_origin_is_accepted() {
    let app = TestApp::spawn().await;
    let http = app.http();
    let page = form_page(&http, &app.url("/register")).await;
    let csrf = hidden_field(&page, "csrf");

    let response = http
        .post(app.url("/register"))
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("csrf", csrf.as_str()),
            ("service", "demo"),
            ("name", "Amy Pond"),
            ("email", "amy@example.com"),
        ])
        .send()
        .await
        .expect("POST");

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.relay.wait_for(1).await[0].rcpt_to,
        vec!["amy@example.com".to_owned()]
    );
}

fn assert_security_headers(response: &Response, what: &str) {
    let headers = response.headers();
    let csp = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"))
        .to_str()
        .expect("ascii");
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(
        !csp.contains("script-src"),
        "{what}: no script allowed: {csp}"
    );
    assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(headers["cache-control"], "no-store", "{what}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
}

#[tokio::test]
async fn every_page_and_every_answer_carries_the_security_headers() {
    let app =
        TestApp::spawn_with(|settings| settings.rate_limits.registrations_per_address = 1).await;
    let link = mailed_link(&app, "jane@example.com").await;
    let http = app.http();
    for path in [
        "/",
        "/login",
        "/register",
        "/resend",
        "/portal",
        "/not-me?token=x",
        "/static/style.css",
        "/nowhere",
        "/activate?token=x",
    ] {
        let url = app.url(path);
        assert_security_headers(
            &http.get(&url).send().await.expect("GET"),
            &format!("GET {path}"),
        );
        assert_security_headers(
            &http.head(&url).send().await.expect("HEAD"),
            &format!("HEAD {path}"),
        );
    }
    assert_security_headers(
        &http.get(&link).send().await.expect("GET"),
        "the activation form",
    );

    let page = form_page(&http, &link).await;
    let csrf = hidden_field(&page, "csrf");
    let answers = [
        (
            "forged CSRF",
            http.post(app.url("/login"))
                .form(&[("csrf", "forged")])
                .send()
                .await,
        ),
        (
            "bad activation",
            http.post(app.url("/activate"))
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("token", &hidden_field(&page, "token")),
                ])
                .send()
                .await,
        ),
        (
            "failed login",
            http.post(app.url("/login"))
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("email", "x@example.com"),
                    ("password", "y"),
                ])
                .send()
                .await,
        ),
    ];
    for (what, response) in answers {
        assert_security_headers(&response.expect("POST"), what);
    }
    assert_security_headers(
        &register(&app, &http, "A", "a@example.com").await,
        "registered",
    );
    let limited = register(&app, &http, "A", "a@example.com").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_security_headers(&limited, "rate limited");
    let activated = activate(&app, &http, &link, "Jane").await;
    assert_eq!(activated.status(), StatusCode::SEE_OTHER);
    assert_security_headers(&activated, "activated");
    assert_security_headers(
        &http.get(app.url("/portal")).send().await.expect("GET"),
        "portal",
    );
}

#[tokio::test]
async fn over_https_cookies_are_host_prefixed_secure_http_only_and_the_session_is_lax() {
    let app = TestApp::spawn_with(|settings| {
        settings.http.public_url = url::Url::parse("https://127.0.0.1:0/").expect("url");
    })
    .await;
    app.mail_support("Jane", "jane@example.com", "https.id")
        .await
        .assert_code(250);
    let mails = app.relay.wait_for(1).await;
    let text = Mail::parse(&mails[0].data).text;
    let start = text.find("token=").expect("a link") + "token=".len();
    let token = &text[start..start + 43];
    assert!(
        text.contains("https://127.0.0.1:"),
        "links use the public URL"
    );

    // No cookie store: cookies marked Secure would not come back over http.
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = http
        .get(app.url(&format!("/activate?token={token}")))
        .send()
        .await
        .expect("GET");
    let csrf_cookie = form.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csrf_cookie.starts_with("__Host-csrf="), "{csrf_cookie}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            csrf_cookie.contains(attribute),
            "{attribute} in {csrf_cookie}"
        );
    }
    assert!(!csrf_cookie.contains("Domain="), "{csrf_cookie}");
    let pair = csrf_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    let csrf = pair.split_once('=').expect("=").1.to_owned();

    let saved = http
        .post(app.url("/activate"))
        .header("cookie", &pair)
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", token),
            ("name", "Jane"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let session = saved.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(session.starts_with("__Host-session="), "{session}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    let value = session
        .split(';')
        .next()
        .expect("pair")
        .split_once('=')
        .expect("=")
        .1;
    assert_eq!(value.len(), 43, "a 256-bit id");
    let stored: Vec<u8> = app
        .db()
        .query_row("SELECT hash FROM sessions", [], |row| row.get(0))
        .expect("a session");
    assert_ne!(stored, value.as_bytes(), "the id is stored hashed");
}
