//! The SMTP listener under abuse: every session, size and timing limit,
//! SMTP smuggling and pipelining, each spoken as raw SMTP over a socket.

use crate::support::app::SUPPORT;
use crate::support::assert_closed;
use crate::support::mail::person;
use crate::support::{SmtpClient, TestApp, scrape};
use std::net::IpAddr;
use std::time::Duration;

#[track_caller]
fn assert_reply(reply: &crate::support::Reply, code: u16, text: &str) {
    reply.assert_code(code);
    assert!(
        reply.text.starts_with(text),
        "expected {code} {text}…, got {} {}",
        reply.code,
        reply.text
    );
}

fn customers_with(app: &TestApp, email: &str) -> i64 {
    app.db()
        .query_row(
            "SELECT COUNT(*) FROM customers WHERE email = ?1",
            [email],
            |row| row.get(0),
        )
        .expect("count customers")
}

// Sessions

#[tokio::test]
async fn connections_over_the_global_session_cap_get_421_4_7_0_and_are_closed() -> anyhow::Result<()>
{
    let app = TestApp::spawn_with(|s| s.smtp.max_sessions = 2).await;
    let _first = app.greeted().await;
    let _second = app.greeted().await;

    let (mut third, refusal) = SmtpClient::connect(app.smtp_addr).await?;

    assert_reply(&refusal, 421, "4.7.0 too many sessions");
    assert_closed(&mut third).await;
    Ok(())
}

#[tokio::test]
async fn connections_over_the_per_address_session_cap_get_421_4_7_0_and_are_closed()
-> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| s.smtp.max_sessions_per_ip = 2).await;
    let _first = app.greeted().await;
    let _second = app.greeted().await;

    let (mut third, refusal) = SmtpClient::connect(app.smtp_addr).await?;

    assert_reply(&refusal, 421, "4.7.0 too many sessions from your address");
    assert_closed(&mut third).await;
    Ok(())
}

#[tokio::test]
async fn connections_over_the_per_address_rate_get_421_4_7_0() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| s.smtp.max_connections_per_ip_per_minute = 3).await;
    for _ in 0..3 {
        let (mut client, greeting) = SmtpClient::connect(app.smtp_addr).await?;
        greeting.assert_code(220);
        client.command("QUIT").await?.assert_code(221);
    }

    let (mut fourth, refusal) = SmtpClient::connect(app.smtp_addr).await?;

    assert_reply(
        &refusal,
        421,
        "4.7.0 too many connections from your address",
    );
    assert_closed(&mut fourth).await;
    Ok(())
}

#[tokio::test]
async fn the_message_after_the_per_session_cap_gets_421_4_7_0_and_the_session_closes()
-> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| s.smtp.max_messages_per_session = 2).await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await?;
    for n in 1..=2 {
        let sender = format!("jane{n}@example.com");
        let message = person("Jane", &sender, SUPPORT, &format!("cap{n}@example.com"));
        client
            .send_mail(&sender, SUPPORT, &message)
            .await?
            .assert_code(250);
    }

    let refusal = client.command("MAIL FROM:<jane3@example.com>").await?;

    assert_reply(&refusal, 421, "4.7.0 too many messages");
    assert_closed(&mut client).await;
    assert_eq!(app.count("customers"), 2);
    Ok(())
}

/// Postfix sends RSET before it reuses a connection; refused, it opens a
/// new one and defers nothing (tests/it/postfix.rs shows it with a real
/// Postfix).
#[tokio::test]
async fn after_the_last_message_of_a_session_even_rset_gets_421_and_quit_221() -> anyhow::Result<()>
{
    let app = TestApp::spawn_with(|s| s.smtp.max_messages_per_session = 1).await;
    let message = person("Jane", "jane@example.com", SUPPORT, "rset1@example.com");
    let mut probed = app.greeted().await;
    probed
        .send_mail("jane@example.com", SUPPORT, &message)
        .await?
        .assert_code(250);
    let mut quitting = app.greeted().await;
    let other = person("John", "john@example.com", SUPPORT, "rset2@example.com");
    quitting
        .send_mail("john@example.com", SUPPORT, &other)
        .await?
        .assert_code(250);

    let refusal = probed.command("RSET").await?;

    assert_reply(&refusal, 421, "4.7.0 too many messages");
    assert_closed(&mut probed).await;
    quitting.command("QUIT").await?.assert_code(221);
    Ok(())
}

#[tokio::test]
async fn too_many_refused_commands_end_the_session_with_421_4_7_0() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| s.smtp.max_errors_per_session = 3).await;
    let mut client = app.greeted().await;
    client.command("FOO").await?.assert_code(500);
    client.command("BAR").await?.assert_code(500);

    let third = client.command("RCPT TO:<nobody@helpdesk.example>").await?;

    third.assert_code(503);
    let last = client.next_reply().await?.expect("a closing reply");
    assert_reply(&last, 421, "4.7.0 too many errors");
    assert_closed(&mut client).await;
    Ok(())
}

#[tokio::test]
async fn an_idle_client_gets_421_4_4_2_and_is_closed() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| s.smtp.idle_timeout = Duration::from_millis(300)).await;
    let mut client = app.greeted().await;

    let reply = client.next_reply().await?.expect("an unsolicited reply");

    assert_reply(&reply, 421, "4.4.2 idle too long");
    assert_closed(&mut client).await;
    Ok(())
}

#[tokio::test]
async fn under_stress_idle_sessions_from_many_addresses_cannot_keep_a_real_sender_out()
-> anyhow::Result<()> {
    // Postfix's stress mode: from 15 of 20 sessions (75 %) on, the idle
    // timeout drops from five minutes to two seconds, for the sessions
    // already open too.
    let app = TestApp::spawn_with(|s| {
        s.smtp.max_sessions = 20;
        s.smtp.idle_timeout = Duration::from_secs(300);
        s.smtp.command_timeout = Duration::from_secs(300);
        s.smtp.stress_idle_timeout = Duration::from_secs(2);
        s.smtp.stress_command_timeout = Duration::from_secs(2);
    })
    .await;
    // Every place is taken by an idle client, each from an address of its
    // own, so no per-address limit stops them.
    let mut idle = Vec::new();
    for n in 1..=20u8 {
        let from = IpAddr::from([127, 0, 9, n]);
        let (mut client, greeting) = SmtpClient::connect_from(app.smtp_addr, from).await?;
        greeting.assert_code(220);
        client.command("EHLO idle.test").await?.assert_code(250);
        idle.push(client);
    }
    let (_, full) = SmtpClient::connect(app.smtp_addr).await?;
    assert_reply(&full, 421, "4.7.0 too many sessions");

    // Like an MTA, the real sender tries again until it gets in. The idle
    // sessions are closed after the stress timeout, not after five minutes.
    let message = person("Jane", "jane@example.com", SUPPORT, "stress@example.com");
    let start = tokio::time::Instant::now();
    loop {
        let (mut client, greeting) = SmtpClient::connect(app.smtp_addr).await?;
        if greeting.code == 220 {
            let reply = client
                .send_mail("jane@example.com", SUPPORT, &message)
                .await?;
            assert_reply(&reply, 250, "2.");
            break;
        }
        assert_reply(&greeting, 421, "4.7.0 too many sessions");
        assert!(
            start.elapsed() < crate::support::DEADLINE,
            "idle sessions kept the real sender out"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The idle sessions that went were told why. Their reply is already
    // waiting; the ones left open (the stress passed) say nothing.
    let mut told = 0;
    for client in &mut idle {
        if let Ok(Ok(Some(reply))) =
            tokio::time::timeout(Duration::from_millis(100), client.next_reply()).await
        {
            assert_reply(&reply, 421, "4.4.2 idle too long");
            told += 1;
        }
    }
    assert!(told >= 1, "no idle session was closed with 421 4.4.2");
    let metrics = scrape(&app).await;
    assert!(metrics.value("registrar_smtp_stress_entered_total", &[]) >= 1.0);
    Ok(())
}

#[tokio::test]
async fn a_command_line_that_never_ends_gets_421_4_4_2() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| s.smtp.command_timeout = Duration::from_millis(300)).await;
    let mut client = app.greeted().await;

    client.send_raw(b"MAIL FROM:<jane@exa").await?;

    let reply = client.next_reply().await?.expect("an unsolicited reply");
    assert_reply(&reply, 421, "4.4.2 command line took too long");
    assert_closed(&mut client).await;
    Ok(())
}

#[tokio::test]
async fn the_whole_session_is_capped_even_for_a_busy_client() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| s.smtp.session_timeout = Duration::from_millis(500)).await;
    let mut client = app.greeted().await;

    // Never idle: a NOOP as soon as the last one was answered.
    let last = loop {
        client.send_raw(b"NOOP\r\n").await?;
        let reply = client.next_reply().await?.expect("a reply");
        if reply.code != 250 {
            break reply;
        }
    };

    assert_reply(&last, 421, "4.4.2 session time limit");
    assert_closed(&mut client).await;
    Ok(())
}

#[tokio::test]
async fn a_sender_below_the_minimum_data_rate_gets_421_4_4_2_and_nothing_is_stored()
-> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| {
        s.smtp.command_timeout = Duration::from_millis(200);
        s.smtp.min_data_rate = 1000;
    })
    .await;
    let mut client = app.in_data("jane@example.com").await;

    // About 200 bytes per second: a fifth of the minimum.
    let reply = client
        .send_slowly_until_answered(b"X-Slow: 0\r\n", Duration::from_millis(50))
        .await?;

    let reply = reply.expect("a reply before the connection closes");
    assert_reply(&reply, 421, "4.4.2 message data arriving too slowly");
    assert_eq!(app.count("inbound"), 0);
    Ok(())
}

// Sizes

#[tokio::test]
async fn size_is_advertised_and_a_bigger_declared_size_is_refused_552_5_3_4_at_mail()
-> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| s.smtp.max_message_bytes = 4096).await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await?;

    let extensions = client.ehlo_lines("client.test").await?;

    assert!(
        extensions.iter().any(|e| e == "SIZE 4096"),
        "{extensions:?}"
    );
    assert!(
        extensions.iter().any(|e| e == "PIPELINING"),
        "{extensions:?}"
    );
    let refusal = client
        .command("MAIL FROM:<jane@example.com> SIZE=4097")
        .await?;
    assert_reply(&refusal, 552, "5.3.4");
    client
        .command("MAIL FROM:<jane@example.com> SIZE=4096")
        .await?
        .assert_code(250);
    Ok(())
}

#[tokio::test]
async fn an_overlong_command_line_is_answered_500_5_5_2_and_the_session_goes_on()
-> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| s.smtp.max_command_line_bytes = 512).await;
    let mut client = app.greeted().await;

    let reply = client
        .command(&format!("MAIL FROM:<{}@example.com>", "a".repeat(4000)))
        .await?;

    assert_reply(&reply, 500, "5.5.2 line too long");
    client.command("NOOP").await?.assert_code(250);
    Ok(())
}

#[tokio::test]
async fn a_header_section_over_its_cap_is_read_to_the_end_and_answered_552_5_3_4()
-> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| s.smtp.max_header_bytes = 1024).await;
    let mut client = app.in_data("jane@example.com").await;
    let filler = "X-Filler: 0123456789012345678901234567890123456789\r\n".repeat(40);
    let message = [
        filler.as_bytes(),
        &person("Jane", "jane@example.com", SUPPORT, "hdr@example.com"),
    ]
    .concat();

    let reply = client.send_body(&message).await?;

    assert_reply(&reply, 552, "5.3.4 message header section too big");
    client.command("RSET").await?.assert_code(250);
    assert_eq!(app.count("customers"), 0);
    Ok(())
}

#[tokio::test]
async fn recipients_over_the_cap_get_452_4_5_3() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| s.smtp.max_recipients = 2).await;
    let mut client = app.greeted().await;
    client
        .command("MAIL FROM:<jane@example.com>")
        .await?
        .assert_code(250);
    for _ in 0..2 {
        client
            .command(&format!("RCPT TO:<{SUPPORT}>"))
            .await?
            .assert_code(250);
    }

    let reply = client.command(&format!("RCPT TO:<{SUPPORT}>")).await?;

    assert_reply(&reply, 452, "4.5.3 too many recipients");
    Ok(())
}

// SMTP smuggling

#[tokio::test]
async fn no_smuggling_ending_lets_a_second_message_through() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let endings: [(&str, &[u8]); 9] = [
        ("<LF>.<LF>", b"\n.\n"),
        ("<LF>.<CR><LF>", b"\n.\r\n"),
        ("<CR><LF>.<LF>", b"\r\n.\n"),
        ("<CR>.<CR>", b"\r.\r"),
        ("<CR><LF>.<CR>", b"\r\n.\r"),
        ("<CR>.<CR><LF>", b"\r.\r\n"),
        ("<LF>.<CR>", b"\n.\r"),
        ("<CR>.<LF>", b"\r.\n"),
        ("<CR><LF><NUL>.<CR><LF>", b"\r\n\x00.\r\n"),
    ];
    for (name, ending) in endings {
        let mut client = app.in_data("jane@example.com").await;
        let smuggled = person(
            "Mallory",
            "mallory@example.com",
            SUPPORT,
            "smuggled@example.com",
        );
        let wire = [
            b"From: jane@example.com\r\nSubject: hello\r\n\r\nfirst message".as_slice(),
            ending,
            b"MAIL FROM:<mallory@example.com>\r\n",
            format!("RCPT TO:<{SUPPORT}>\r\n").as_bytes(),
            b"DATA\r\n",
            &smuggled,
            b"\r\n.\r\nQUIT\r\n",
        ]
        .concat();

        let _ = client.send_raw(&wire).await.is_ok();

        let replies = client.replies_until_closed().await?;
        assert!(
            replies.iter().all(|r| r.code != 354),
            "{name}: the smuggled DATA was accepted: {replies:?}"
        );
        assert_eq!(
            customers_with(&app, "mallory@example.com"),
            0,
            "{name}: the smuggled message registered somebody"
        );
        let bare = !ending.contains(&0);
        if bare {
            assert_eq!(
                replies.first().map(|r| r.code),
                Some(521),
                "{name}: {replies:?}"
            );
        }
    }
    assert_eq!(customers_with(&app, "mallory@example.com"), 0);
    Ok(())
}

#[tokio::test]
async fn bare_line_feeds_in_commands_are_refused_with_521_and_the_connection_closes()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let mut client = app.greeted().await;

    client
        .send_raw(format!("MAIL FROM:<jane@example.com>\nRCPT TO:<{SUPPORT}>\r\n").as_bytes())
        .await?;

    let reply = client.next_reply().await?.expect("a reply");
    assert_reply(&reply, 521, "5.5.2");
    assert_closed(&mut client).await;
    Ok(())
}

// Pipelining and early talkers

#[tokio::test]
async fn a_pipelined_transaction_after_ehlo_is_accepted() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let mut client = app.greeted().await;

    client
        .send_raw(
            format!("MAIL FROM:<jane@example.com>\r\nRCPT TO:<{SUPPORT}>\r\nDATA\r\n").as_bytes(),
        )
        .await?;

    client.read_reply().await?.assert_code(250);
    client.read_reply().await?.assert_code(250);
    client.read_reply().await?.assert_code(354);
    let message = person("Jane", "jane@example.com", SUPPORT, "piped@example.com");
    client.send_body(&message).await?.assert_code(250);
    assert_eq!(app.count("customers"), 1);
    Ok(())
}

#[tokio::test]
async fn the_replies_to_a_pipelined_group_go_out_before_the_listener_waits_for_more()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let mut client = app.greeted().await;

    // The group ends in half a command. MAIL's and RCPT's replies wait for
    // the rest of the group; they must not wait for the rest of a command
    // the client may send only once it has them.
    client
        .send_raw(format!("MAIL FROM:<jane@example.com>\r\nRCPT TO:<{SUPPORT}>\r\nNO").as_bytes())
        .await?;

    client.read_reply().await?.assert_code(250);
    client.read_reply().await?.assert_code(250);
    client.send_raw(b"OP\r\n").await?;
    client.read_reply().await?.assert_code(250);
    client.command("DATA").await?.assert_code(354);
    let message = person("Jane", "jane@example.com", SUPPORT, "halfway@example.com");
    client.send_body(&message).await?.assert_code(250);
    assert_eq!(app.count("customers"), 1);
    Ok(())
}

#[tokio::test]
async fn a_refusal_in_a_pipelined_group_comes_in_order_and_the_group_goes_on() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await;
    let mut client = app.greeted().await;

    client
        .send_raw(
            format!(
                "MAIL FROM:<jane@example.com>\r\nRCPT TO:<nobody@elsewhere.test>\r\nRCPT TO:<{SUPPORT}>\r\nDATA\r\n"
            )
            .as_bytes(),
        )
        .await?;

    client.read_reply().await?.assert_code(250);
    let refused = client.read_reply().await?;
    assert!(refused.code >= 500, "{refused:?}");
    client.read_reply().await?.assert_code(250);
    client.read_reply().await?.assert_code(354);
    let message = person("Jane", "jane@example.com", SUPPORT, "grouped@example.com");
    client.send_body(&message).await?.assert_code(250);
    assert_eq!(app.count("customers"), 1);
    Ok(())
}

#[tokio::test]
async fn a_body_sent_without_waiting_for_354_is_refused_503_5_5_0() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let mut client = app.greeted().await;
    let message = person("Jane", "jane@example.com", SUPPORT, "eager@example.com");
    let wire = [
        format!("MAIL FROM:<jane@example.com>\r\nRCPT TO:<{SUPPORT}>\r\nDATA\r\n").as_bytes(),
        &message,
        b".\r\nQUIT\r\n",
    ]
    .concat();

    client.send_raw(&wire).await?;

    let replies = client.replies_until_closed().await?;
    assert_eq!(replies[0].code, 250, "{replies:?}");
    assert_eq!(replies[1].code, 250, "{replies:?}");
    assert_reply(&replies[2], 503, "5.5.0");
    assert!(replies.iter().all(|r| r.code != 354), "{replies:?}");
    assert_eq!(app.count("inbound"), 0);
    Ok(())
}

#[tokio::test]
async fn an_early_talker_is_served_but_its_data_is_refused_503_5_5_0() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|s| s.smtp.greeting_delay = Duration::from_millis(300)).await;
    let mut client = SmtpClient::connect_quietly(app.smtp_addr).await?;

    client.send_raw(b"EHLO early.test\r\n").await?;

    client
        .next_reply()
        .await?
        .expect("greeting")
        .assert_code(220);
    client
        .next_reply()
        .await?
        .expect("EHLO reply")
        .assert_code(250);
    client
        .command("MAIL FROM:<jane@example.com>")
        .await?
        .assert_code(250);
    client
        .command(&format!("RCPT TO:<{SUPPORT}>"))
        .await?
        .assert_code(250);
    assert_reply(&client.command("DATA").await?, 503, "5.5.0");
    Ok(())
}

#[tokio::test]
async fn a_helo_client_may_not_pipeline() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await?;
    client.command("HELO client.test").await?.assert_code(250);

    client
        .send_raw(format!("MAIL FROM:<jane@example.com>\r\nRCPT TO:<{SUPPORT}>\r\n").as_bytes())
        .await?;

    client.read_reply().await?.assert_code(250);
    client.read_reply().await?.assert_code(250);
    assert_reply(&client.command("DATA").await?, 503, "5.5.0");
    Ok(())
}
