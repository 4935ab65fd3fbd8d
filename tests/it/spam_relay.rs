//! We are never a spam relay: every activation mail carries an "I did not
//! ask for this" link that stops all mail to the address for good (undone
//! only by an operator), and a flood of new senders is told to try later
//! instead of becoming outbound mail.

use crate::support::app::SUPPORT;
use crate::support::customer::register;
use crate::support::mail::person;
use crate::support::{Mail, TestApp, hidden_field, scrape};
use reqwest::StatusCode;

/// The "I did not ask for this" link in a mail's text.
fn opt_out_link(mail: &Mail) -> String {
    let start = mail.text.find("/not-me?token=").expect("an opt-out link");
    let begin = mail.text[..start]
        .rfind("http://")
        .expect("an absolute link");
    mail.text[begin..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

fn count_where(app: &TestApp, sql: &str) -> i64 {
    app.db()
        .query_row(sql, [], |row| row.get(0))
        .expect("a count")
}

#[tokio::test]
async fn the_opt_out_link_stops_all_further_mail_until_an_operator_undoes_it() {
    let app = TestApp::spawn_with(|s| s.services[0].policy.limits.min_interval_secs = 0).await;
    app.mail_support("Jane", "jane@example.com", "first@example.com")
        .await
        .assert_code(250);
    let mails = app.relay.wait_for(1).await;
    let link = opt_out_link(&Mail::parse(&mails[0].data));

    // GET shows the page and changes nothing; so does a scanner's HEAD.
    let http = app.http();
    assert_eq!(http.head(&link).send().await.expect("HEAD").status(), 200);
    let page = http.get(&link).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("the page");
    assert!(page.contains("jane@example.com"));
    assert_eq!(count_where(&app, "SELECT COUNT(*) FROM suppressions"), 0);
    // A POST without the page's CSRF cookie changes nothing either.
    let forged = reqwest::Client::new()
        .post(app.url("/not-me"))
        .form(&[("token", hidden_field(&page, "token"))])
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(count_where(&app, "SELECT COUNT(*) FROM suppressions"), 0);

    let confirmed = http
        .post(app.url("/not-me"))
        .form(&[
            ("csrf", hidden_field(&page, "csrf")),
            ("token", hidden_field(&page, "token")),
        ])
        .send()
        .await
        .expect("POST /not-me");
    assert_eq!(confirmed.status(), 200);
    assert_eq!(count_where(&app, "SELECT COUNT(*) FROM suppressions"), 1);
    assert_eq!(
        app.count("customers"),
        0,
        "the pending account someone made is gone"
    );
    assert_eq!(
        count_where(
            &app,
            "SELECT COUNT(*) FROM decisions WHERE channel = 'opt_out'"
        ),
        1,
        "the opt-out is recorded"
    );
    assert_eq!(
        scrape(&app).await.value("registrar_opt_outs_total", &[]),
        1.0,
        "and counted"
    );

    // Mail, the portal and an operator's invitation all stay silent.
    let again = app
        .mail_support("Jane", "jane@example.com", "second@example.com")
        .await;
    again.assert_code(250);
    assert_eq!(again.text, "2.0.0 message accepted");
    assert_eq!(
        register(&app, &http, "Jane", "jane@example.com")
            .await
            .status(),
        200
    );
    let invited = app
        .cli(&["invite", "jane@example.com", "--service", "demo"])
        .await;
    assert!(!invited.success);
    assert!(invited.stderr.contains("unsuppress"), "{}", invited.stderr);
    app.settle().await;
    assert_eq!(app.relay.mails().len(), 1, "no mail since the opt-out");

    // Only an operator undoes it.
    let undone = app
        .cli(&["customers", "unsuppress", "jane@example.com"])
        .await;
    assert!(undone.success, "{}", undone.stderr);
    app.mail_support("Jane", "jane@example.com", "third@example.com")
        .await
        .assert_code(250);
    app.relay.wait_for(2).await;
}

#[tokio::test]
async fn the_circuit_breaker_turns_a_flood_of_new_senders_into_451_and_no_mail() {
    let app = TestApp::spawn_with(|s| {
        s.circuit_breaker.new_senders_per_minute = 3;
        s.services[0].policy.limits.min_interval_secs = 0;
    })
    .await;
    let mut codes = Vec::new();
    for n in 0..10 {
        let sender = format!("victim{n}@example{n}.com");
        let reply = app
            .send(
                &sender,
                SUPPORT,
                &person("V", &sender, SUPPORT, &format!("flood{n}@x")),
            )
            .await;
        if reply.code == 451 {
            assert!(reply.text.starts_with("4.7.1"), "{}", reply.text);
        }
        codes.push(reply.code);
    }
    assert_eq!(codes[..3], [250, 250, 250]);
    assert!(codes[3..].iter().all(|code| *code == 451), "{codes:?}");
    assert_eq!(app.count("customers"), 3);
    assert_eq!(
        app.count("inbound"),
        3,
        "nothing of a deferred message is stored"
    );

    // A customer we know is not a new sender: still answered.
    app.mail_support("V", "victim0@example0.com", "flood0-again@x")
        .await
        .assert_code(250);

    // The portal puts off everybody alike while the breaker is open.
    let http = app.http();
    let known = register(&app, &http, "V", "victim1@example1.com").await;
    let unknown = register(&app, &http, "W", "someone@else.example").await;
    assert_eq!(known.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(unknown.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        known.text().await.expect("body"),
        unknown.text().await.expect("body"),
        "the same answer whatever the address"
    );

    app.settle().await;
    assert_eq!(
        app.relay.mails().len(),
        4,
        "three activations and one new link"
    );
    let flood = scrape(&app).await.value(
        "registrar_limit_reached_total",
        &[("limit", "new_sender_flood")],
    );
    assert!(flood >= 7.0, "{flood}");
}
