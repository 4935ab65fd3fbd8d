//! The SMTP listener: recipients, size cap, storage faults, the null
//! sender, smuggling in DATA, and shutdown.

use crate::support::app::SUPPORT;
use crate::support::assert_closed;
use crate::support::mail::person;
use crate::support::{SmtpClient, TestApp};
use registrar::settings::NullSender;

#[tokio::test]
async fn an_unknown_recipient_is_refused_at_rcpt() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await?;
    client.command("EHLO client.test").await?.assert_code(250);
    client
        .command("MAIL FROM:<jane@example.com>")
        .await?
        .assert_code(250);

    let reply = client.command("RCPT TO:<sales@helpdesk.example>").await?;

    reply.assert_code(550);
    assert!(reply.text.starts_with("5.1.1"));
    client
        .command("RCPT TO:<Support@HelpDesk.example>")
        .await?
        .assert_code(250);
    Ok(())
}

#[tokio::test]
async fn a_refused_command_leaves_the_sequence_where_it_was() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let mut client = app.greeted().await;

    let refused_sender = client.command("MAIL FROM:<jöran@example.com>").await?;
    let rcpt_without_mail = client.command(&format!("RCPT TO:<{SUPPORT}>")).await?;
    client
        .command("MAIL FROM:<jane@example.com>")
        .await?
        .assert_code(250);
    let refused_recipient = client.command("RCPT TO:<sales@helpdesk.example>").await?;
    let data_without_recipient = client.command("DATA").await?;

    refused_sender.assert_code(553);
    rcpt_without_mail.assert_code(503);
    refused_recipient.assert_code(550);
    data_without_recipient.assert_code(503);
    client
        .command(&format!("RCPT TO:<{SUPPORT}>"))
        .await?
        .assert_code(250);
    client.command("DATA").await?.assert_code(354);
    Ok(())
}

#[tokio::test]
async fn a_message_over_the_size_cap_is_answered_552_and_the_session_goes_on() -> anyhow::Result<()>
{
    let app = TestApp::spawn_with(|s| s.smtp.max_message_bytes = 4096).await;
    let mut big = person("Jane", "jane@example.com", SUPPORT, "big@example.com");
    big.extend(
        std::iter::repeat_n(
            b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n".to_vec(),
            100,
        )
        .flatten(),
    );
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await?;

    let reply = client.send_mail("jane@example.com", SUPPORT, &big).await?;

    reply.assert_code(552);
    assert!(reply.text.starts_with("5.3.4"));
    assert_eq!(app.count("customers"), 0);
    // The session is still in step: a normal message goes through.
    let small = person("Jane", "jane@example.com", SUPPORT, "small@example.com");
    client
        .command("MAIL FROM:<jane@example.com>")
        .await?
        .assert_code(250);
    client
        .command(&format!("RCPT TO:<{SUPPORT}>"))
        .await?
        .assert_code(250);
    client.command("DATA").await?.assert_code(354);
    client.send_body(&small).await?.assert_code(250);
    Ok(())
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
async fn bare_line_feeds_in_data_are_refused_with_521_and_the_connection_closes()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let mut client = app.in_data("jane@example.com").await;

    client
        .send_raw(b"From: jane@example.com\r\nSubject: x\r\n\r\nline\nsmuggled\r\n.\r\n")
        .await?;

    let reply = client.read_reply().await?;
    reply.assert_code(521);
    assert!(reply.text.starts_with("5.5.2"));
    assert_closed(&mut client).await;
    assert_eq!(app.count("customers"), 0);
    Ok(())
}

#[tokio::test]
async fn after_shutdown_new_transactions_get_421() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await?;
    client.command("EHLO client.test").await?.assert_code(250);

    app.shutdown_handle().trigger();

    let reply = client.command("MAIL FROM:<jane@example.com>").await?;
    reply.assert_code(421);
    assert!(reply.text.starts_with("4.3.2"));
    Ok(())
}

#[tokio::test]
async fn a_bounce_from_the_null_sender_is_accepted_recorded_and_registers_nobody() {
    let app = TestApp::spawn().await;
    let bounce = person(
        "Mail Delivery System",
        "mailer-daemon@example.com",
        SUPPORT,
        "bounce@example.com",
    );

    let reply = app.send("", SUPPORT, &bounce).await;

    reply.assert_code(250);
    assert_eq!(app.count("customers"), 0);
    assert_eq!(app.count("outbox"), 0);
    let recorded: String = app
        .db()
        .query_row("SELECT envelope_from FROM inbound", [], |row| row.get(0))
        .expect("the bounce is recorded");
    assert_eq!(recorded, "");
}

#[tokio::test]
async fn bounces_are_refused_at_mail_when_so_configured() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| s.smtp.null_sender = NullSender::Refuse).await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await?;
    client.command("EHLO client.test").await?.assert_code(250);

    let reply = client.command("MAIL FROM:<>").await?;

    reply.assert_code(550);
    assert!(reply.text.starts_with("5.7.1"), "{}", reply.text);
    Ok(())
}

#[tokio::test]
async fn a_space_after_mail_from_is_accepted_and_the_sender_registers() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await?;
    client.command("EHLO client.test").await?.assert_code(250);

    client
        .command("MAIL FROM: <jane@example.com>")
        .await?
        .assert_code(250);

    client
        .command(&format!("RCPT TO: <{SUPPORT}>"))
        .await?
        .assert_code(250);
    client.command("DATA").await?.assert_code(354);
    let message = person("Jane", "jane@example.com", SUPPORT, "space@example.com");
    client.send_body(&message).await?.assert_code(250);
    assert_eq!(app.count("customers"), 1);
    Ok(())
}

#[tokio::test]
async fn at_shutdown_a_session_in_data_finishes_its_250_is_durable_and_then_it_closes()
-> anyhow::Result<()> {
    let mut app = TestApp::spawn().await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await?;
    for line in [
        "EHLO client.test".to_owned(),
        "MAIL FROM:<jane@example.com>".to_owned(),
        format!("RCPT TO:<{SUPPORT}>"),
    ] {
        client.command(&line).await?.assert_code(250);
    }
    client.command("DATA").await?.assert_code(354);
    let message = person("Jane", "jane@example.com", SUPPORT, "drain@example.com");
    let (head, tail) = message.split_at(40);
    client.send_raw(head).await?;

    app.shutdown_handle().trigger();
    listener_closes(app.smtp_addr).await;
    let reply = client.send_body(tail).await?;

    reply.assert_code(250);
    let closing = client.next_reply().await?.expect("a closing reply");
    closing.assert_code(421);
    assert!(closing.text.starts_with("4.3.2"), "{}", closing.text);
    assert_closed(&mut client).await;
    drop(client);
    app.stop().await;
    assert_eq!(app.count("customers"), 1);
    Ok(())
}

#[tokio::test]
async fn at_shutdown_a_session_stuck_in_data_is_cut_after_the_grace_and_stores_nothing()
-> anyhow::Result<()> {
    let mut app = TestApp::spawn_with(|s| {
        s.smtp.shutdown_grace = std::time::Duration::from_millis(300);
    })
    .await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await?;
    let message = person("Jane", "jane@example.com", SUPPORT, "stuck@example.com");
    for line in [
        "EHLO client.test".to_owned(),
        "MAIL FROM:<jane@example.com>".to_owned(),
        format!("RCPT TO:<{SUPPORT}>"),
    ] {
        client.command(&line).await?.assert_code(250);
    }
    client.command("DATA").await?.assert_code(354);
    client.send_raw(&message[..40]).await?;

    tokio::time::timeout(crate::support::DEADLINE, app.stop())
        .await
        .expect("the daemon stops within a bounded time");

    assert_closed(&mut client).await;
    assert_eq!(app.count("inbound"), 0);
    Ok(())
}

/// Waits until new connections to `addr` are refused.
async fn listener_closes(addr: std::net::SocketAddr) {
    let started = tokio::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            started.elapsed() < crate::support::DEADLINE,
            "the SMTP listener still accepts connections"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
