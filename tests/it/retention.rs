//! Retention: the periodic purge deletes inbound records, finished replies
//! and decision records past their retention, in batches, and keeps a
//! customer's own decision history as long as the customer (issue 9).

use crate::support::TestApp;
use crate::support::app::SUPPORT;
use crate::support::mail::person;
use std::time::Duration;

/// An automatic mail (accepted and answered by nobody): a decision about a
/// sender who never becomes a customer.
fn automatic(from: &str, id: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {SUPPORT}\r\nSubject: Out of office\r\n\
         Auto-Submitted: auto-replied\r\nMessage-ID: <{id}>\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nI am away.\r\n"
    )
    .into_bytes()
}

fn count(app: &TestApp, sql: &str) -> i64 {
    app.db()
        .query_row(sql, [], |row| row.get(0))
        .expect("count")
}

#[tokio::test]
async fn old_records_leave_in_batches_and_a_customers_own_history_stays() {
    let app = TestApp::spawn_with(|s| {
        s.activation.purge_interval = Duration::from_millis(100);
        // Smaller than what is to be purged, so that it takes several steps.
        s.store.purge_batch_rows = 10;
    })
    .await;
    let customers = ["ann@example.com", "bob@example.com", "cy@example.com"];
    for (n, address) in customers.iter().enumerate() {
        app.send(
            address,
            SUPPORT,
            &person(
                "Someone",
                address,
                SUPPORT,
                &format!("keep-{n}@example.com"),
            ),
        )
        .await
        .assert_code(250);
    }
    for n in 0..25 {
        let from = format!("away{n}@example.net");
        app.send(
            &from,
            SUPPORT,
            &automatic(&from, &format!("away-{n}@example.net")),
        )
        .await
        .assert_code(250);
    }
    app.settle().await;
    assert_eq!(count(&app, "SELECT COUNT(*) FROM inbound"), 28);
    let about_customers = "SELECT COUNT(*) FROM decisions d WHERE EXISTS (SELECT 1 FROM customers c WHERE c.identity = d.identity)";
    let kept_decisions = count(&app, about_customers);
    assert_eq!(kept_decisions, 3, "one decision per customer");
    assert!(count(&app, "SELECT COUNT(*) FROM decisions") >= 28);

    // Everything is older than its retention: 31 days for the messages
    // and replies (30 by default), 401 days for the decisions (400).
    let db = app.db();
    db.execute_batch(
        "UPDATE inbound SET received_at = received_at - 31 * 86400;
         UPDATE outbox SET created_at = created_at - 31 * 86400;
         UPDATE decisions SET decided_at = decided_at - 401 * 86400;",
    )
    .expect("age the records");

    crate::support::eventually("the old records to be purged", || {
        count(&app, "SELECT COUNT(*) FROM inbound") == 0
            && count(&app, "SELECT COUNT(*) FROM outbox") == 0
            && count(&app, "SELECT COUNT(*) FROM decisions") == kept_decisions
    })
    .await;
    assert_eq!(app.count("customers"), 3, "customers stay");
    assert_eq!(count(&app, about_customers), kept_decisions);
    let shown = app.cli(&["customers", "show", customers[0]]).await;
    assert!(shown.success, "{}", shown.stderr);
    assert!(
        shown.stdout.contains("register"),
        "the customer's own decision is still shown: {}",
        shown.stdout
    );

    // Intake goes on: a new message is decided and recorded.
    app.send(
        "dee@example.com",
        SUPPORT,
        &person("Dee", "dee@example.com", SUPPORT, "dee-1@example.com"),
    )
    .await
    .assert_code(250);
    assert_eq!(app.count("customers"), 4);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM inbound"), 1);
}

#[tokio::test]
async fn a_retry_is_recognised_within_the_idempotency_window_and_decided_again_after_it() {
    let app = TestApp::spawn_with(|s| {
        s.store.idempotency_window = Duration::from_secs(2 * 86400);
    })
    .await;
    let message = person("Eve", "eve@example.com", SUPPORT, "eve-1@example.com");
    app.send("eve@example.com", SUPPORT, &message)
        .await
        .assert_code(250);
    app.settle().await;
    let decisions = || count(&app, "SELECT COUNT(*) FROM decisions");
    let first = decisions();

    // A day later, still inside the two-day window: a copy, nothing decided.
    app.db()
        .execute("UPDATE inbound SET received_at = received_at - 86400", [])
        .expect("age the message");
    app.send("eve@example.com", SUPPORT, &message)
        .await
        .assert_code(250);
    assert_eq!(decisions(), first, "the retry inside the window is a copy");

    // Three days later, outside it: the same bytes are a new request, and
    // policy decides it (here: the address already had its reply lately).
    app.db()
        .execute(
            "UPDATE inbound SET received_at = received_at - 2 * 86400",
            [],
        )
        .expect("age the message");
    let again = app.send("eve@example.com", SUPPORT, &message).await;
    assert_eq!(
        decisions(),
        first + 1,
        "outside the window it is decided again"
    );
    assert_eq!(again.code, 550, "{}", again.text);
}
