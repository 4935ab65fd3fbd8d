//! Reply budgets in layers: one sender domain or one client network spends
//! only its own budget, new senders are the first to wait when the
//! service's budget runs low, and the operator hears about it.

use crate::support::app::SUPPORT;
use crate::support::customer::register;
use crate::support::mail::person;
use crate::support::{TestApp, form_page, hidden_field, scrape};
use registrar::domain::IpRange;

fn last_decision(app: &TestApp) -> (String, String) {
    app.db()
        .query_row(
            "SELECT outcome, reason FROM decisions ORDER BY id DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("a decision")
}

async fn alarms(app: &TestApp, limit: &str) -> f64 {
    scrape(app)
        .await
        .value("registrar_limit_reached_total", &[("limit", limit)])
}

#[tokio::test]
async fn one_domain_spending_its_budget_leaves_another_domains_registration_answered() {
    let app = TestApp::spawn_with(|s| s.services[0].policy.limits.domain_per_day = 3).await;
    for n in 0..3 {
        let sender = format!("user{n}@spender.example");
        app.send(
            &sender,
            SUPPORT,
            &person("A", &sender, SUPPORT, &format!("d{n}@spender.example")),
        )
        .await
        .assert_code(250);
    }
    let fourth = app
        .mail_support("D", "user3@spender.example", "d3@spender.example")
        .await;
    fourth.assert_code(550);
    assert_eq!(
        last_decision(&app),
        ("refuse".into(), "domain_budget".into())
    );

    app.mail_support("Jane", "jane@other.example", "j@other.example")
        .await
        .assert_code(250);
    // Replies go out side by side: in any order.
    let mails = app.relay.wait_for(4).await;
    assert!(
        mails
            .iter()
            .any(|mail| mail.rcpt_to == ["jane@other.example"]),
        "another domain is answered"
    );
    app.settle().await;
    assert_eq!(app.relay.mails().len(), 4);
    assert!(alarms(&app, "domain_budget").await >= 1.0);
}

#[tokio::test]
async fn one_client_network_spending_its_budget_leaves_another_clients_registration_answered() {
    let app = TestApp::spawn_with(|s| {
        s.http.trusted_proxies = vec![IpRange::parse("127.0.0.1").expect("range")];
        s.services[0].policy.limits.network_per_day = 2;
    })
    .await;
    let http = app.http();
    let register_from = |client: &'static str, email: &'static str| {
        let http = http.clone();
        let app = &app;
        async move {
            let page = form_page(&http, &app.url("/register")).await;
            http.post(app.url("/register"))
                .header("x-forwarded-for", client)
                .form(&[
                    ("csrf", hidden_field(&page, "csrf").as_str()),
                    ("service", &hidden_field(&page, "service")),
                    ("name", "Someone"),
                    ("email", email),
                ])
                .send()
                .await
                .expect("POST /register")
                .status()
        }
    };
    for email in ["a@one.example", "b@two.example", "c@three.example"] {
        assert_eq!(register_from("198.51.100.7", email).await, 200);
    }
    assert_eq!(
        last_decision(&app),
        ("refuse".into(), "network_budget".into())
    );
    assert_eq!(register_from("203.0.113.9", "d@four.example").await, 200);
    // Replies go out side by side: in any order.
    let mails = app.relay.wait_for(3).await;
    assert!(
        mails.iter().any(|mail| mail.rcpt_to == ["d@four.example"]),
        "another client is answered"
    );
    app.settle().await;
    assert_eq!(
        app.relay.mails().len(),
        3,
        "the third from the busy network got none"
    );
}

#[tokio::test]
async fn new_senders_wait_first_when_the_service_budget_runs_low_and_the_operator_is_told() {
    let app = TestApp::spawn_with(|s| {
        s.services[0].policy.limits.service_per_day = 10;
        s.services[0].policy.limits.min_interval_secs = 0;
    })
    .await;
    for n in 0..9 {
        app.mail_support("A", &format!("user{n}@example{n}.com"), &format!("s{n}@x"))
            .await
            .assert_code(250);
    }
    let tenth = app.mail_support("New", "new@example.org", "s-new@x").await;
    tenth.assert_code(550);
    assert_eq!(
        last_decision(&app),
        ("refuse".into(), "service_budget".into())
    );
    // A customer we know still gets a new link from the reserve.
    app.mail_support("A", "user0@example0.com", "s0-again@x")
        .await
        .assert_code(250);
    assert_eq!(
        last_decision(&app),
        ("resend_activation".into(), "pending_customer".into())
    );
    app.relay.wait_for(10).await;
    assert!(alarms(&app, "service_budget").await >= 1.0);
    // The portal answers alike; the new sender gets no mail.
    let http = app.http();
    assert_eq!(
        register(&app, &http, "Other", "other@example.net")
            .await
            .status(),
        200
    );
    app.settle().await;
    assert_eq!(app.relay.mails().len(), 10);
}
