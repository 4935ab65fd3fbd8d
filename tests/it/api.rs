//! The customer API on the admin listener, over real HTTP: bearer tokens,
//! listing and looking up customers, and the operator's use cases (invite,
//! disable, enable) recorded under the channel `api`.

use crate::support::TestApp;
use crate::support::customer::{active_customer, mail_number};
use crate::support::receiver::{Receiver, SECRET};
use registrar::domain::{ApiTokens, EventKind, WebhookSecret};
use registrar::settings::{Settings, WebhookEndpoint};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A daemon whose API accepts the returned token.
async fn with_api(adjust: impl FnOnce(&mut Settings)) -> (TestApp, String) {
    let (token, digest) = ApiTokens::generate();
    let app = TestApp::spawn_with(|settings| {
        settings
            .admin
            .api_tokens
            .add_digest(&digest)
            .expect("a digest");
        adjust(settings);
    })
    .await;
    (app, token)
}

async fn get(app: &TestApp, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut request = app.http().get(app.admin_url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("GET")
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> reqwest::Response {
    app.http()
        .post(app.admin_url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST")
}

/// A body as JSON.
fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A problem answer's status, content type and `code`.
async fn problem(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: Value = response.text().await.map(|t| parse(&t)).expect("a body");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    let code = body["code"].as_str().unwrap_or_default().to_owned();
    (status, content_type, code)
}

#[tokio::test]
async fn no_token_or_a_wrong_one_is_401_and_a_good_one_lists_the_customer() {
    let (app, token) = with_api(|_| {}).await;
    app.mail_support("Ann Lee", "ann@example.com", "<ann@example.com>")
        .await
        .assert_code(250);

    let none = get(&app, None, "/api/v1/customers").await;
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"registrar\""
    );
    assert_eq!(
        problem(none).await,
        (
            StatusCode::UNAUTHORIZED,
            "application/problem+json".into(),
            "missing_token".into()
        )
    );
    let (wrong, _) = ApiTokens::generate();
    let refused = get(&app, Some(&wrong), "/api/v1/customers").await;
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(problem(refused).await.0, StatusCode::UNAUTHORIZED);

    let listed = get(&app, Some(&token), "/api/v1/customers").await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(listed.headers()["content-type"], "application/json");
    let page: Value = listed.text().await.map(|t| parse(&t)).expect("a body");
    let customers = page["customers"].as_array().expect("a list");
    assert_eq!(customers.len(), 1, "{page}");
    assert_eq!(customers[0]["email"], "ann@example.com");
    assert_eq!(customers[0]["name"], "Ann Lee");
    assert_eq!(customers[0]["status"], "pending");
    assert_eq!(customers[0]["channel"], "mail");
    assert_eq!(customers[0]["service"], "demo");
    assert_eq!(page["next_cursor"], Value::Null);

    let one = get(
        &app,
        Some(&token),
        "/api/v1/customers/lookup?email=Ann%40Example.com",
    )
    .await;
    assert_eq!(one.status(), StatusCode::OK);
    let customer: Value = one.text().await.map(|t| parse(&t)).expect("a body");
    assert_eq!(customer["email"], "ann@example.com");
    let unknown = get(
        &app,
        Some(&token),
        "/api/v1/customers/lookup?email=bo%40example.com",
    )
    .await;
    assert_eq!(
        problem(unknown).await.2,
        "unknown_customer",
        "a 404 names what is missing"
    );

    // Only the admin listener serves the API.
    let public = app
        .http()
        .get(app.url("/api/v1/customers"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_configured_token_there_is_no_api() {
    let app = TestApp::spawn().await;
    let (token, _) = ApiTokens::generate();
    assert_eq!(
        get(&app, Some(&token), "/api/v1/customers").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_invitation_through_the_api_sends_the_invitation_mail() {
    let (app, token) = with_api(|_| {}).await;

    let created = post(
        &app,
        &token,
        "/api/v1/customers/invite",
        &json!({"email": "Jo@Example.com", "service": "demo", "name": "Jo Smith"}),
    )
    .await;

    assert_eq!(created.status(), StatusCode::CREATED);
    let customer: Value = created.text().await.map(|t| parse(&t)).expect("a body");
    assert_eq!(customer["email"], "Jo@Example.com", "as given");
    assert_eq!(customer["status"], "pending");
    assert_eq!(customer["channel"], "invitation");
    let (to, mail) = mail_number(&app, 1).await;
    assert_eq!(to, "Jo@example.com");
    assert_eq!(
        mail.subject,
        "You were invited to the Demo Help Desk customer portal"
    );
    assert!(mail.text.contains("Hello Jo Smith"));
    let channel: String = app
        .db()
        .query_row(
            "SELECT channel FROM decisions WHERE outcome = 'invite'",
            [],
            |row| row.get(0),
        )
        .expect("the invitation's decision");
    assert_eq!(channel, "api");

    let again = post(
        &app,
        &token,
        "/api/v1/customers/invite",
        &json!({"email": "jo@example.com", "service": "demo"}),
    )
    .await;
    assert_eq!(again.status(), StatusCode::OK, "invited again: a new link");
    mail_number(&app, 2).await;

    for (body, status, code) in [
        (
            json!({"email": "x@example.com", "service": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_service",
        ),
        (
            json!({"email": "not an address", "service": "demo"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        ),
        (
            json!({"email": "x@example.com", "service": "demo", "admin": true}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
    ] {
        let answer = post(&app, &token, "/api/v1/customers/invite", &body).await;
        let (got, content_type, got_code) = problem(answer).await;
        assert_eq!((got, got_code.as_str()), (status, code), "{body}");
        assert_eq!(content_type, "application/problem+json");
    }
    let not_json = app
        .http()
        .post(app.admin_url("/api/v1/customers/invite"))
        .bearer_auth(&token)
        .form(&[("email", "x@example.com"), ("service", "demo")])
        .send()
        .await
        .expect("POST");
    assert_eq!(
        problem(not_json).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(app.count("customers"), 1, "no refused request created one");
}

#[tokio::test]
async fn disable_and_enable_through_the_api_follow_the_operator_rules_and_are_announced() {
    let receiver = Receiver::start().await;
    let (app, token) = with_api(|settings| {
        settings.webhooks = vec![WebhookEndpoint {
            name: "crm".into(),
            url: url::Url::parse(&receiver.url()).expect("url"),
            secret: WebhookSecret::parse(SECRET).expect("secret"),
            events: EventKind::LIFECYCLE.to_vec(),
        }];
    })
    .await;
    let browser = active_customer(&app, "Di Ray", "di@example.com").await;
    receiver.wait_for(2).await;

    let disabled = post(
        &app,
        &token,
        "/api/v1/customers/disable",
        &json!({"email": "di@example.com"}),
    )
    .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let customer: Value = disabled.text().await.map(|t| parse(&t)).expect("a body");
    assert_eq!(customer["status"], "disabled");
    let portal = browser
        .get(app.url("/portal"))
        .send()
        .await
        .expect("GET /portal");
    assert_ne!(portal.status(), StatusCode::OK, "signed out everywhere");

    let invited = post(
        &app,
        &token,
        "/api/v1/customers/invite",
        &json!({"email": "di@example.com", "service": "demo"}),
    )
    .await;
    assert_eq!(problem(invited).await.2, "disabled");

    let enabled = post(
        &app,
        &token,
        "/api/v1/customers/enable",
        &json!({"email": "di@example.com"}),
    )
    .await;
    let customer: Value = enabled.text().await.map(|t| parse(&t)).expect("a body");
    assert_eq!(customer["status"], "active");
    let unknown = post(
        &app,
        &token,
        "/api/v1/customers/disable",
        &json!({"email": "nobody@example.com"}),
    )
    .await;
    assert_eq!(problem(unknown).await.0, StatusCode::NOT_FOUND);

    let events = receiver.wait_for(4).await;
    let seen: Vec<(&str, Option<&str>)> = events[2..]
        .iter()
        .map(|e| (e.kind(), e.data("via")))
        .collect();
    assert_eq!(
        seen,
        [
            ("customer.disabled", Some("api")),
            ("customer.enabled", Some("api"))
        ]
    );
    let channels: Vec<String> = {
        let db = app.db();
        let mut statement = db
            .prepare(
                "SELECT channel || ':' || outcome FROM decisions WHERE channel = 'api' ORDER BY id",
            )
            .expect("prepare");
        statement
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(channels, ["api:disable", "api:invite", "api:enable"]);
}

#[tokio::test]
async fn the_list_pages_with_a_cursor_and_filters() {
    let (app, token) = with_api(|_| {}).await;
    for n in 1..=3 {
        app.mail_support(
            "X",
            &format!("x{n}@example.com"),
            &format!("<x{n}@example.com>"),
        )
        .await
        .assert_code(250);
    }
    // Their activation mails first: `active_customer` opens the next one.
    app.relay.wait_for(3).await;
    let _ = active_customer(&app, "Ada", "ada@example.com").await;

    let mut seen = Vec::new();
    let mut path = "/api/v1/customers?status=pending&limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page: Value = get(&app, Some(&token), &path)
            .await
            .text()
            .await
            .map(|t| parse(&t))
            .expect("a body");
        pages += 1;
        for customer in page["customers"].as_array().expect("a list") {
            seen.push(customer["email"].as_str().expect("email").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/v1/customers?status=pending&limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["x1@example.com", "x2@example.com", "x3@example.com"]);
    assert_eq!(pages, 2);

    let active: Value = get(
        &app,
        Some(&token),
        "/api/v1/customers?status=active&service=demo",
    )
    .await
    .text()
    .await
    .map(|t| parse(&t))
    .expect("a body");
    assert_eq!(active["customers"][0]["email"], "ada@example.com");
    assert!(active["customers"][0]["activated_at"].is_string());
    let later: Value = get(
        &app,
        Some(&token),
        "/api/v1/customers?updated_since=2999-01-01T00:00:00Z",
    )
    .await
    .text()
    .await
    .map(|t| parse(&t))
    .expect("a body");
    assert_eq!(later["customers"], json!([]));

    for (query, code) in [
        ("status=gone", "invalid_status"),
        ("limit=0", "invalid_limit"),
        ("cursor=%21", "invalid_cursor"),
        ("updated_since=yesterday", "invalid_time"),
        ("sort=name", "unknown_parameter"),
    ] {
        let answer = get(&app, Some(&token), &format!("/api/v1/customers?{query}")).await;
        assert_eq!(
            problem(answer).await,
            (
                StatusCode::BAD_REQUEST,
                "application/problem+json".into(),
                code.into()
            ),
            "{query}"
        );
    }
}
