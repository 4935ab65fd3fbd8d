//! The operator's command line, run as the real binary against the test's
//! database while the daemon serves it: invite, link, customers.

use crate::support::customer::{PASSWORD, activate, active_customer, login, mail_number, register};
use crate::support::{TestApp, activation_link, form_page};
use reqwest::StatusCode;

#[tokio::test]
async fn an_invitation_from_the_cli_is_mailed_by_the_running_daemon_and_activates() {
    let app = TestApp::spawn().await;

    let out = app
        .cli(&[
            "invite",
            "Jo@Example.com",
            "--service",
            "demo",
            "--name",
            "Jo Smith",
        ])
        .await;
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stdout.contains("invited Jo@Example.com"),
        "{}",
        out.stdout
    );

    let (to, mail) = mail_number(&app, 1).await;
    assert_eq!(to, "Jo@example.com");
    assert_eq!(
        mail.subject,
        "You were invited to the Demo Help Desk customer portal"
    );
    assert!(mail.text.contains("You were invited by Demo Help Desk"));
    assert!(mail.text.contains("Hello Jo Smith"));
    let link = activation_link(&mail, app.http_addr);
    let http = app.http();
    let page = form_page(&http, &link).await;
    assert!(page.contains("value=\"Jo Smith\""));
    assert_eq!(activate(&app, &http, &link, "Jo Smith").await.status(), 303);
    let source: String = app
        .db()
        .query_row("SELECT source FROM customers", [], |row| row.get(0))
        .expect("one customer");
    assert_eq!(source, "invitation");

    let again = app
        .cli(&["invite", "jo@example.com", "--service", "demo"])
        .await;
    assert!(!again.success, "an active customer is not invited again");
    assert!(
        again.stderr.contains("already has an active account"),
        "{}",
        again.stderr
    );
}

#[tokio::test]
async fn an_invitation_without_a_name_greets_a_pending_customer_by_the_name_they_gave() {
    let app = TestApp::spawn().await;
    let http = app.http();
    assert_eq!(
        register(&app, &http, "Pat Pending", "pat@example.com")
            .await
            .status(),
        200
    );
    let (_, registered) = mail_number(&app, 1).await;

    // The invitation is prepared before its transaction, without a name;
    // the transaction finds Pat's, and the mail is prepared again.
    let out = app
        .cli(&["invite", "pat@example.com", "--service", "demo"])
        .await;
    assert!(out.success, "{}", out.stderr);
    let (to, invitation) = mail_number(&app, 2).await;
    assert_eq!(to, "pat@example.com");
    assert!(
        invitation.text.contains("Hello Pat Pending"),
        "{}",
        invitation.text
    );
    let link = activation_link(&invitation, app.http_addr);
    assert_eq!(
        http.get(activation_link(&registered, app.http_addr))
            .send()
            .await
            .expect("GET")
            .status(),
        404,
        "the invitation's link replaced the first one"
    );
    assert_eq!(
        activate(&app, &http, &link, "Pat Pending").await.status(),
        303
    );
    assert_eq!(app.count("outbox WHERE kind = 'invitation'"), 1);
}

#[tokio::test]
async fn link_prints_a_fresh_link_and_the_previous_one_stops_working() {
    let app = TestApp::spawn().await;
    assert!(
        app.cli(&["invite", "jo@example.com", "--service", "demo"])
            .await
            .success
    );
    let (_, mail) = mail_number(&app, 1).await;
    let mailed = activation_link(&mail, app.http_addr);

    let out = app.cli(&["link", "jo@example.com"]).await;
    assert!(out.success, "{}", out.stderr);
    let handed = out.stdout.trim().to_owned();
    assert!(handed.contains("/activate?token="), "{handed}");
    assert_ne!(handed, mailed);

    let http = app.http();
    assert_eq!(http.get(&mailed).send().await.expect("GET").status(), 404);
    assert_eq!(http.get(&handed).send().await.expect("GET").status(), 200);
    let token = handed.rsplit('=').next().expect("a token");
    let token = registrar::domain::Token::parse(token).expect("a well-formed token");
    let stored: Vec<u8> = app
        .db()
        .query_row("SELECT hash FROM activation_tokens", [], |row| row.get(0))
        .expect("one token row");
    assert_eq!(
        stored,
        token.stamped_hash().0.to_vec(),
        "only the hash is stored"
    );
    assert_eq!(app.count("activation_tokens"), 1);

    let unknown = app.cli(&["link", "nobody@example.com"]).await;
    assert!(!unknown.success);
    assert!(unknown.stderr.contains("no customer"), "{}", unknown.stderr);
}

#[tokio::test]
async fn customers_list_show_disable_and_enable_work_while_the_daemon_runs() {
    let app = TestApp::spawn().await;
    let jane = active_customer(&app, "Jane", "jane@example.com").await;
    assert!(
        app.cli(&["invite", "jo@example.com", "--service", "demo"])
            .await
            .success
    );

    let all = app.cli(&["customers", "list"]).await;
    assert!(all.success, "{}", all.stderr);
    assert!(
        all.stdout
            .contains("jane@example.com\tactive\tdemo\tportal"),
        "{}",
        all.stdout
    );
    assert!(
        all.stdout
            .contains("jo@example.com\tpending\tdemo\tinvitation"),
        "{}",
        all.stdout
    );
    let pending = app.cli(&["customers", "list", "--status", "pending"]).await;
    assert!(pending.stdout.contains("jo@example.com"));
    assert!(!pending.stdout.contains("jane@example.com"));
    let other = app.cli(&["customers", "list", "--service", "other"]).await;
    assert_eq!(other.stdout.lines().count(), 1, "only the header");

    let shown = app.cli(&["customers", "show", "jane@example.com"]).await;
    assert!(shown.success, "{}", shown.stderr);
    assert!(
        shown.stdout.contains("status:     active"),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("portal"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("register / new_customer"),
        "{}",
        shown.stdout
    );

    let disabled = app.cli(&["customers", "disable", "jane@example.com"]).await;
    assert!(disabled.success, "{}", disabled.stderr);
    assert!(
        disabled.stdout.contains("active -> disabled"),
        "{}",
        disabled.stdout
    );
    assert_eq!(
        jane.get(app.url("/portal"))
            .send()
            .await
            .expect("GET")
            .status(),
        303,
        "disabling ends the session"
    );
    assert_eq!(
        login(&app, &app.http(), "jane@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    let enabled = app.cli(&["customers", "enable", "jane@example.com"]).await;
    assert!(
        enabled.stdout.contains("disabled -> active"),
        "{}",
        enabled.stdout
    );
    assert_eq!(
        login(&app, &app.http(), "jane@example.com", PASSWORD)
            .await
            .status(),
        303
    );
    let shown = app.cli(&["customers", "show", "jane@example.com"]).await;
    assert!(
        shown.stdout.contains("disable / disabled"),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("enable / active"), "{}", shown.stdout);
}

#[tokio::test]
async fn cli_mistakes_get_clear_messages_and_a_failing_exit() {
    let app = TestApp::spawn().await;
    let cases: [(&[&str], &str); 4] = [
        (
            &["invite", "jo@example.com", "--service", "nope"],
            "unknown service \"nope\"; services are: demo",
        ),
        (
            &["invite", "not an address", "--service", "demo"],
            "is not a usable address",
        ),
        (
            &["customers", "show", "nobody@example.com"],
            "nothing is known about",
        ),
        (
            &["customers", "disable", "nobody@example.com"],
            "no customer has the address",
        ),
    ];
    for (args, message) in cases {
        let out = app.cli(args).await;
        assert!(!out.success, "{args:?}");
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
    }
    assert_eq!(app.count("customers"), 0);
}
