//! Sign-in limits as a client sees them: counted per client (behind a
//! trusted proxy, the forwarded client; IPv6 per /64) and per account from
//! that client, so one client locks out nobody but itself; reserved before
//! the password is checked, so a burst gets no more guesses than the limit;
//! and a bounded queue of password checks.

use crate::support::customer::{PASSWORD, active_customer};
use crate::support::{TestApp, form_page, hidden_field, scrape};
use registrar::domain::IpRange;
use reqwest::{Client, StatusCode};

const WRONG: &str = "guess guess guess guess";

/// A form's CSRF value for `http`'s cookie.
async fn csrf(app: &TestApp, http: &Client) -> String {
    hidden_field(&form_page(http, &app.url("/login")).await, "csrf")
}

/// Signs in with `password`, the request claiming to come from `forwarded`
/// (an `X-Forwarded-For` value).
async fn login_from(
    app: &TestApp,
    http: &Client,
    csrf: &str,
    forwarded: &str,
    email: &str,
    password: &str,
) -> StatusCode {
    http.post(app.url("/login"))
        .header("x-forwarded-for", forwarded)
        .form(&[("csrf", csrf), ("email", email), ("password", password)])
        .send()
        .await
        .expect("POST /login")
        .status()
}

fn behind_a_proxy(settings: &mut registrar::settings::Settings) {
    settings.http.trusted_proxies = vec![IpRange::parse("127.0.0.1").expect("range")];
    settings.rate_limits.failed_logins_per_account = 5;
    settings.rate_limits.failed_logins_per_ip = 20;
}

/// Argon2id verifications run: the histogram's count, a whole number.
async fn verifies(app: &TestApp) -> u64 {
    let count = scrape(app).await.value(
        "registrar_password_hash_seconds_count",
        &[("operation", "verify")],
    );
    count as u64
}

#[tokio::test]
async fn bad_sign_ins_through_a_trusted_proxy_lock_out_only_their_own_client() {
    let app = TestApp::spawn_with(behind_a_proxy).await;
    active_customer(&app, "Jane", "jane@example.com").await;
    let http = app.http();
    let csrf = csrf(&app, &http).await;

    // One client guesses 25 times: its own five, then it waits.
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(
            login_from(
                &app,
                &http,
                &csrf,
                "198.51.100.66",
                "jane@example.com",
                WRONG,
            )
            .await,
        );
    }
    assert!(
        statuses[..5]
            .iter()
            .all(|s| *s == StatusCode::UNPROCESSABLE_ENTITY),
        "{statuses:?}"
    );
    assert!(
        statuses[5..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );

    // 25 other clients each guess once: none is locked out by the others.
    for n in 1..=25 {
        let status = login_from(
            &app,
            &http,
            &csrf,
            &format!("198.51.100.{n}"),
            "jane@example.com",
            WRONG,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "client {n}");
    }

    // Jane, from her own network, signs in; the guesser still waits, even
    // with the right password.
    assert_eq!(
        login_from(
            &app,
            &http,
            &csrf,
            "203.0.113.7",
            "jane@example.com",
            PASSWORD
        )
        .await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        login_from(
            &app,
            &http,
            &csrf,
            "198.51.100.66",
            "jane@example.com",
            PASSWORD
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_change_nothing() {
    let app = TestApp::spawn_with(|s| {
        s.rate_limits.failed_logins_per_account = 5;
        s.rate_limits.failed_logins_per_ip = 20;
    })
    .await;
    active_customer(&app, "Jane", "jane@example.com").await;
    let http = app.http();
    let csrf = csrf(&app, &http).await;
    for n in 1..=5 {
        let status = login_from(
            &app,
            &http,
            &csrf,
            &format!("198.51.100.{n}"),
            "jane@example.com",
            WRONG,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(
        login_from(
            &app,
            &http,
            &csrf,
            "198.51.100.99",
            "jane@example.com",
            PASSWORD
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        "a header from an untrusted peer does not make a new client"
    );
    let forwarded = http
        .post(app.url("/login"))
        .header("forwarded", "for=198.51.100.98")
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "jane@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("POST /login");
    assert_eq!(forwarded.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn an_ipv6_client_is_counted_per_64() {
    let app = TestApp::spawn_with(|s| {
        behind_a_proxy(s);
        s.rate_limits.failed_logins_per_ip = 3;
    })
    .await;
    let http = app.http();
    let csrf = csrf(&app, &http).await;
    for n in 1..=3 {
        let status = login_from(
            &app,
            &http,
            &csrf,
            &format!("2001:db8:1:2::{n}"),
            &format!("user{n}@example.com"),
            WRONG,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(
        login_from(
            &app,
            &http,
            &csrf,
            "2001:db8:1:2:ffff::9",
            "x@example.com",
            WRONG
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        "another address in the same /64 is the same client"
    );
    assert_eq!(
        login_from(
            &app,
            &http,
            &csrf,
            "2001:db8:1:3::1",
            "x@example.com",
            WRONG
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the next /64 is another client"
    );
}

#[tokio::test]
async fn thirty_concurrent_wrong_passwords_for_one_account_get_at_most_the_limit_of_verifies() {
    let app = TestApp::spawn_with(|s| {
        s.rate_limits.failed_logins_per_account = 5;
        s.rate_limits.failed_logins_per_ip = 100;
    })
    .await;
    active_customer(&app, "Jane", "jane@example.com").await;
    let http = app.http();
    let csrf = csrf(&app, &http).await;
    let before = verifies(&app).await;

    let guesses: Vec<_> = (0..30)
        .map(|_| {
            let http = http.clone();
            let url = app.url("/login");
            let csrf = csrf.clone();
            tokio::spawn(async move {
                http.post(url)
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("email", "jane@example.com"),
                        ("password", WRONG),
                    ])
                    .send()
                    .await
                    .map(|response| response.status())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.expect("task").expect("POST /login"));
    }

    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY)
        .count();
    assert!(
        refused <= 5,
        "at most five guesses were checked: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| matches!(
            *s,
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::TOO_MANY_REQUESTS
        )),
        "{statuses:?}"
    );
    let verified = verifies(&app).await - before;
    println!(
        "30 concurrent wrong passwords for one account: {verified} argon2 verifications, {refused} answered 422, the rest 429"
    );
    assert!(
        verified <= 5,
        "{verified} argon2 verifications for 30 guesses"
    );
    assert_eq!(verified, refused as u64);
}

#[tokio::test]
async fn beyond_the_queue_of_password_checks_the_answer_is_503_with_retry_after() {
    let app = TestApp::spawn_with(|s| {
        behind_a_proxy(s);
        s.password.max_concurrent_hashes = 1;
        s.password.max_queued_hashes = 1;
        s.rate_limits.failed_logins_per_ip = 1;
        // Slow enough that ten concurrent sign-ins overlap.
        s.password.argon2_iterations = 20;
    })
    .await;
    let http = app.http();
    let csrf = csrf(&app, &http).await;
    let attempts: Vec<_> = (1..=10)
        .map(|n| {
            let http = http.clone();
            let url = app.url("/login");
            let csrf = csrf.clone();
            tokio::spawn(async move {
                http.post(url)
                    .header("x-forwarded-for", format!("198.51.100.{n}"))
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("email", format!("user{n}@example.com").as_str()),
                        ("password", WRONG),
                    ])
                    .send()
                    .await
                    .map(|response| {
                        let retry_after = response.headers().get("retry-after").cloned();
                        (n, response.status(), retry_after)
                    })
            })
        })
        .collect();
    let mut busy = Vec::new();
    for attempt in attempts {
        let (n, status, retry_after) = attempt.await.expect("task").expect("POST /login");
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(retry_after.is_some(), "a busy answer says when to retry");
                busy.push(n);
            }
            other => assert_eq!(other, StatusCode::UNPROCESSABLE_ENTITY),
        }
    }
    let Some(&n) = busy.first() else {
        panic!("ten concurrent checks do not all wait in a queue of one");
    };
    // Nothing was checked for a busy answer, so it did not count against
    // the client (whose limit is one failure): it may try again.
    let status = login_from(
        &app,
        &http,
        &csrf,
        &format!("198.51.100.{n}"),
        &format!("user{n}@example.com"),
        WRONG,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
