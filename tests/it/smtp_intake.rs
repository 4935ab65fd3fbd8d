//! The SMTP listener: recipients, size cap, storage faults, shutdown.

use crate::support::app::SUPPORT;
use crate::support::mail::person;
use crate::support::{SmtpClient, TestApp};

#[tokio::test]
async fn an_unknown_recipient_is_refused_at_rcpt() {
    let app = TestApp::spawn().await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await;
    client.command("EHLO client.test").await.assert_code(250);
    client
        .command("MAIL FROM:<jane@example.com>")
        .await
        .assert_code(250);

    let reply = client.command("RCPT TO:<sales@helpdesk.example>").await;

    reply.assert_code(550);
    assert!(reply.text.starts_with("5.1.1"));
    client
        .command("RCPT TO:<Support@HelpDesk.example>")
        .await
        .assert_code(250);
}

#[tokio::test]
async fn a_message_over_the_size_cap_is_answered_552_and_the_session_goes_on() {
    let app = TestApp::spawn_with(|s| s.smtp.max_message_bytes = 4096).await;
    let mut big = person("Jane", "jane@example.com", SUPPORT, "big@example.com");
    big.extend(
        std::iter::repeat_n(
            b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n".to_vec(),
            100,
        )
        .flatten(),
    );
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await;

    let reply = client.send_mail("jane@example.com", SUPPORT, &big).await;

    reply.assert_code(552);
    assert!(reply.text.starts_with("5.3.4"));
    assert_eq!(app.count("customers"), 0);
    // The session is still in step: a normal message goes through.
    let small = person("Jane", "jane@example.com", SUPPORT, "small@example.com");
    client
        .command("MAIL FROM:<jane@example.com>")
        .await
        .assert_code(250);
    client
        .command(&format!("RCPT TO:<{SUPPORT}>"))
        .await
        .assert_code(250);
    client.command("DATA").await.assert_code(354);
    client.send_body(&small).await.assert_code(250);
}

#[tokio::test]
async fn a_storage_fault_answers_451_leaves_nothing_and_a_retry_registers_once() {
    let app = TestApp::spawn().await;
    // A real fault inside the end-of-DATA transaction: the outbox insert fails.
    app.db()
        .execute_batch("CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'injected fault'); END;")
        .expect("install the fault");
    let message = person("Jane", "jane@example.com", SUPPORT, "fault@example.com");

    let failed = app.send("jane@example.com", SUPPORT, &message).await;

    failed.assert_code(451);
    assert!(failed.text.starts_with("4.3.0"));
    for table in [
        "customers",
        "activation_tokens",
        "outbox",
        "inbound",
        "decisions",
    ] {
        assert_eq!(app.count(table), 0, "{table} should be empty after a fault");
    }

    app.db()
        .execute_batch("DROP TRIGGER fail_outbox")
        .expect("remove the fault");
    app.send("jane@example.com", SUPPORT, &message)
        .await
        .assert_code(250);
    app.send("jane@example.com", SUPPORT, &message)
        .await
        .assert_code(250);
    assert_eq!(app.count("customers"), 1);
    assert_eq!(app.relay.wait_for(1).await.len(), 1);
}

#[tokio::test]
async fn bare_line_feeds_in_data_are_refused_with_521_and_the_connection_closes() {
    let app = TestApp::spawn().await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await;
    client.command("EHLO client.test").await.assert_code(250);
    client
        .command("MAIL FROM:<jane@example.com>")
        .await
        .assert_code(250);
    client
        .command(&format!("RCPT TO:<{SUPPORT}>"))
        .await
        .assert_code(250);
    client.command("DATA").await.assert_code(354);

    client
        .send_raw(b"From: jane@example.com\r\nSubject: x\r\n\r\nline\nsmuggled\r\n.\r\n")
        .await;

    let reply = client.read_reply().await;
    reply.assert_code(521);
    assert!(reply.text.starts_with("5.5.2"));
    client.assert_closed().await;
    assert_eq!(app.count("customers"), 0);
}

#[tokio::test]
async fn after_shutdown_new_transactions_get_421() {
    let app = TestApp::spawn().await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await;
    client.command("EHLO client.test").await.assert_code(250);

    app.shutdown_handle().trigger();

    let reply = client.command("MAIL FROM:<jane@example.com>").await;
    reply.assert_code(421);
    assert!(reply.text.starts_with("4.3.2"));
}
