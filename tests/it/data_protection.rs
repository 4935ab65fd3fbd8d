//! A data-protection request, through the real binary beside the running
//! daemon: `customers export` shows what is kept about an address (never a
//! token, hash, password or body), `customers erase` removes it and keeps
//! the decisions anonymised, and a second export finds nothing.

use crate::recovery::ask;
use crate::support::customer::{PASSWORD, activate, login, mail_number};
use crate::support::{TestApp, activation_link};

const BODY: &str = "Hello, I would like an account.";

fn rows(app: &TestApp, sql: &str) -> i64 {
    app.db()
        .query_row(sql, [], |row| row.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn export_then_erase_then_export_finds_nothing_and_leaves_others_alone() {
    let app = TestApp::spawn().await;
    app.mail_support("Jane Doe", "jane@example.com", "jane-1@example.com")
        .await
        .assert_code(250);
    let (_, mail) = mail_number(&app, 1).await;
    let link = activation_link(&mail, app.http_addr);
    let token = link.split("token=").nth(1).expect("token").to_owned();
    let browser = app.http();
    assert_eq!(activate(&app, &browser, &link, "Jane").await.status(), 303);
    assert_eq!(
        login(&app, &app.http(), "jane@example.com", PASSWORD)
            .await
            .status(),
        303
    );
    // A password-reset link mailed to her, not used.
    ask(&app, "/forgot", "jane@example.com").await;
    mail_number(&app, 3).await;
    app.mail_support("Joe", "joe@example.com", "joe-1@example.com")
        .await
        .assert_code(250);
    app.settle().await;
    let password_hash: String = app
        .db()
        .query_row(
            "SELECT password_hash FROM customers WHERE identity = 'jane@example.com'",
            [],
            |row| row.get(0),
        )
        .expect("jane's hash");

    let export = app.cli(&["customers", "export", "jane@example.com"]).await;

    assert!(export.success, "{}", export.stderr);
    let json: serde_json::Value = serde_json::from_str(&export.stdout).expect("JSON");
    assert_eq!(json["account"]["email"], "jane@example.com");
    assert_eq!(json["account"]["status"], "active");
    assert_eq!(json["account"]["name"], "Jane");
    assert_eq!(json["account"]["has_password"], true);
    assert_eq!(json["sessions"].as_array().expect("sessions").len(), 2);
    let decisions = json["decisions"].as_array().expect("decisions");
    assert_eq!(decisions[0]["outcome"], "register");
    assert_eq!(decisions[0]["reply_code"], 250);
    let messages = json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["envelope_from"], "jane@example.com");
    assert_eq!(messages[0]["message_id"], "jane-1@example.com");
    assert_eq!(messages[0]["raw_kept"], true);
    let replies = json["replies"].as_array().expect("replies");
    assert_eq!(
        replies.len(),
        3,
        "the activation mail, the notice and the reset link"
    );
    assert!(replies.iter().all(|r| r["status"] == "sent"));
    for (what, secret) in [
        ("activation token", token.as_str()),
        ("password", PASSWORD),
        ("password hash", password_hash.as_str()),
        ("message body", BODY),
        ("someone else", "joe@example.com"),
    ] {
        assert!(!export.stdout.contains(secret), "the {what} is exported");
    }

    let erase = app.cli(&["customers", "erase", "jane@example.com"]).await;

    assert!(erase.success, "{}", erase.stderr);
    assert!(
        erase.stdout.contains("erased jane@example.com"),
        "{}",
        erase.stdout
    );
    let about_jane = "LIKE '%jane%'";
    assert_eq!(
        rows(
            &app,
            &format!("SELECT COUNT(*) FROM customers WHERE identity {about_jane}")
        ),
        0
    );
    assert_eq!(
        rows(&app, "SELECT COUNT(*) FROM activation_tokens"),
        1,
        "only Joe's token is left"
    );
    assert_eq!(rows(&app, "SELECT COUNT(*) FROM sessions"), 0);
    assert_eq!(
        rows(&app, "SELECT COUNT(*) FROM account_tokens"),
        0,
        "her reset link is gone"
    );
    assert_eq!(
        rows(
            &app,
            &format!("SELECT COUNT(*) FROM opt_out_tokens WHERE identity {about_jane}")
        ),
        0,
        "so is the \"I did not ask for this\" link mailed to her"
    );
    assert_eq!(
        rows(&app, "SELECT COUNT(*) FROM opt_out_tokens"),
        1,
        "Joe's stays"
    );
    assert_eq!(
        rows(
            &app,
            &format!(
                "SELECT COUNT(*) FROM inbound WHERE envelope_from {about_jane} OR envelope_to {about_jane}"
            )
        ),
        0
    );
    assert_eq!(
        rows(&app, "SELECT COUNT(*) FROM inbound"),
        1,
        "Joe's message stays"
    );
    assert_eq!(
        rows(
            &app,
            &format!("SELECT COUNT(*) FROM outbox WHERE recipient {about_jane}")
        ),
        0
    );
    assert_eq!(
        rows(&app, "SELECT COUNT(*) FROM outbox"),
        1,
        "Joe's reply stays"
    );
    assert_eq!(
        rows(
            &app,
            &format!(
                "SELECT COUNT(*) FROM decisions WHERE address {about_jane} OR identity {about_jane} OR note {about_jane}"
            )
        ),
        0
    );
    assert_eq!(
        rows(
            &app,
            "SELECT COUNT(*) FROM decisions WHERE address = 'erased' AND outcome = 'register'"
        ),
        1,
        "the decision stays, anonymised"
    );
    assert_eq!(
        rows(
            &app,
            "SELECT COUNT(*) FROM decisions WHERE outcome = 'erase' AND reason = 'data_protection_request'"
        ),
        1,
        "the erasure is recorded"
    );
    let portal = browser
        .get(app.url("/portal"))
        .send()
        .await
        .expect("GET /portal");
    assert_eq!(
        portal.headers()["location"],
        "/login",
        "the erased customer's session is gone"
    );

    let again = app.cli(&["customers", "export", "jane@example.com"]).await;
    assert!(!again.success);
    assert!(
        again.stderr.contains("nothing is known"),
        "{}",
        again.stderr
    );
    let joe = app.cli(&["customers", "export", "joe@example.com"]).await;
    assert!(joe.success, "{}", joe.stderr);
}
