//! Never a loop, never a reflector: automatic mail is accepted and never
//! answered, loops are refused, and an auto-responder that answers every mail
//! gets no more than the rate limit. Every case checks the SMTP answer *and*
//! that nothing reached the capturing relay.

use crate::support::TestApp;
use crate::support::app::SUPPORT;
use crate::support::mail::person;
use crate::support::{Reply, SmtpClient};
use registrar::policy::LimitAction;

/// A message from a person at `from`, with `extra` header lines on top.
fn message_with(from: &str, id: &str, extra: &str) -> Vec<u8> {
    let mut raw = extra.as_bytes().to_vec();
    raw.extend_from_slice(&person("Sender", from, SUPPORT, id));
    raw
}

/// The outcome and reason of the last recorded decision.
fn last_decision(app: &TestApp) -> (String, String) {
    app.db()
        .query_row(
            "SELECT outcome, reason FROM decisions ORDER BY id DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("a decision is recorded")
}

/// Nothing is queued and nothing reached the relay. Decisions commit before
/// the SMTP answer, so an empty outbox now means no mail will ever go out.
async fn assert_nothing_sent(app: &TestApp, what: &str) {
    app.settle().await;
    assert_eq!(app.count("outbox"), 0, "{what}: a reply was queued");
    assert!(
        app.relay.mails().is_empty(),
        "{what}: a mail reached the relay"
    );
}

#[tokio::test]
async fn every_kind_of_automatic_mail_is_accepted_recorded_and_never_answered() {
    let app = TestApp::spawn().await;
    let dsn = "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n";
    let mdn =
        "Content-Type: multipart/report; report-type=disposition-notification; boundary=\"b\"\r\n";
    // (description, envelope sender, extra headers, Subject override, reason)
    let cases: Vec<(&str, &str, String, Option<&str>, &str)> = vec![
        (
            "Auto-Submitted: auto-replied",
            "a1@example.com",
            "Auto-Submitted: auto-replied\r\n".into(),
            None,
            "auto_submitted",
        ),
        (
            "Auto-Submitted: auto-generated",
            "a2@example.com",
            "Auto-Submitted: auto-generated\r\n".into(),
            None,
            "auto_submitted",
        ),
        (
            "Precedence: bulk",
            "p1@example.com",
            "Precedence: bulk\r\n".into(),
            None,
            "precedence",
        ),
        (
            "Precedence: list",
            "p2@example.com",
            "Precedence: list\r\n".into(),
            None,
            "precedence",
        ),
        (
            "Precedence: junk",
            "p3@example.com",
            "Precedence: junk\r\n".into(),
            None,
            "precedence",
        ),
        (
            "Precedence: auto_reply",
            "p4@example.com",
            "Precedence: auto_reply\r\n".into(),
            None,
            "precedence",
        ),
        (
            "List-Id",
            "l1@example.com",
            "List-Id: Users <users.lists.example.com>\r\n".into(),
            None,
            "mailing_list",
        ),
        (
            "List-Unsubscribe",
            "l2@example.com",
            "List-Unsubscribe: <mailto:leave@lists.example.com>\r\n".into(),
            None,
            "mailing_list",
        ),
        (
            "a DSN (multipart/report)",
            "r1@example.com",
            dsn.into(),
            None,
            "delivery_report",
        ),
        (
            "an MDN (multipart/report)",
            "r2@example.com",
            mdn.into(),
            None,
            "delivery_report",
        ),
        (
            "MAILER-DAEMON",
            "MAILER-DAEMON@example.com",
            String::new(),
            None,
            "system_sender",
        ),
        (
            "postmaster",
            "postmaster@example.com",
            String::new(),
            None,
            "system_sender",
        ),
        (
            "noreply",
            "noreply@example.com",
            String::new(),
            None,
            "system_sender",
        ),
        (
            "no-reply",
            "no-reply@example.com",
            String::new(),
            None,
            "system_sender",
        ),
        (
            "owner-*",
            "owner-users@example.com",
            String::new(),
            None,
            "system_sender",
        ),
        (
            "*-request",
            "users-request@example.com",
            String::new(),
            None,
            "system_sender",
        ),
        (
            "X-Auto-Response-Suppress: All",
            "x1@example.com",
            "X-Auto-Response-Suppress: All\r\n".into(),
            None,
            "auto_response_suppress",
        ),
        (
            "X-Auto-Response-Suppress: OOF",
            "x2@example.com",
            "X-Auto-Response-Suppress: DR, OOF\r\n".into(),
            None,
            "auto_response_suppress",
        ),
        (
            "our X-Loop stamp",
            "o1@example.com",
            format!("X-Loop: {SUPPORT}\r\n"),
            None,
            "own_loop",
        ),
        (
            "Out of Office",
            "s1@example.com",
            String::new(),
            Some("Out of Office: back on Monday"),
            "auto_reply_subject",
        ),
        (
            "Automatic reply",
            "s2@example.com",
            String::new(),
            Some("Automatic reply: Please register me"),
            "auto_reply_subject",
        ),
        (
            "Abwesenheitsnotiz",
            "s3@example.com",
            String::new(),
            Some("Abwesenheitsnotiz: Bitte registrieren"),
            "auto_reply_subject",
        ),
        (
            "Réponse automatique",
            "s4@example.com",
            String::new(),
            Some("=?UTF-8?Q?R=C3=A9ponse_automatique?= : absent"),
            "auto_reply_subject",
        ),
    ];
    for (index, (description, sender, extra, subject, reason)) in cases.into_iter().enumerate() {
        let mut raw = message_with(sender, &format!("auto{index}@example.com"), &extra);
        if let Some(subject) = subject {
            let text = String::from_utf8(raw).expect("utf-8");
            raw = text
                .replace(
                    "Subject: Please register me",
                    &format!("Subject: {subject}"),
                )
                .into_bytes();
        }

        let reply = app.send(sender, SUPPORT, &raw).await;

        assert_eq!(
            reply.code, 250,
            "{description}: {} {}",
            reply.code, reply.text
        );
        assert_eq!(
            last_decision(&app),
            ("suppress".to_owned(), reason.to_owned()),
            "{description}"
        );
        assert_nothing_sent(&app, description).await;
    }
    assert_eq!(app.count("customers"), 0);
}

#[tokio::test]
async fn a_message_id_at_our_own_domain_is_never_answered() {
    let app = TestApp::spawn().await;
    let own = format!("abc@{}", app.settings.smtp.hostname);

    let reply = app
        .send(
            "jane@example.com",
            SUPPORT,
            &person("Jane", "jane@example.com", SUPPORT, &own),
        )
        .await;

    reply.assert_code(250);
    assert_eq!(last_decision(&app), ("suppress".into(), "own_loop".into()));
    assert_nothing_sent(&app, "our own Message-ID").await;
}

#[tokio::test]
async fn the_null_sender_is_never_answered() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let (mut client, greeting) = SmtpClient::connect(app.smtp_addr).await?;
    greeting.assert_code(220);
    client
        .command("EHLO mx.example.com")
        .await?
        .assert_code(250);

    let mail = client.command("MAIL FROM:<>").await?;

    // mailin's command parser answers `MAIL FROM:<>` itself (500) before our
    // handler sees it; a listener that lets it through must reach the
    // `null_sender` rule and answer 250. Either way nothing is sent.
    if mail.code == 250 {
        client
            .command(&format!("RCPT TO:<{SUPPORT}>"))
            .await?
            .assert_code(250);
        client.command("DATA").await?.assert_code(354);
        let dsn = message_with("jane@example.com", "bounce1@example.com", "");
        client.send_body(&dsn).await?.assert_code(250);
        assert_eq!(
            last_decision(&app),
            ("suppress".into(), "null_sender".into())
        );
    } else {
        assert!(
            mail.code >= 500,
            "unexpected answer {} {}",
            mail.code,
            mail.text
        );
    }
    assert_nothing_sent(&app, "null sender").await;
    Ok(())
}

#[tokio::test]
async fn auto_submitted_no_is_a_human_and_gets_an_answer() {
    let app = TestApp::spawn().await;
    let raw = message_with(
        "jane@example.com",
        "human@example.com",
        "Auto-Submitted: no\r\n",
    );

    app.send("jane@example.com", SUPPORT, &raw)
        .await
        .assert_code(250);

    let mails = app.relay.wait_for(1).await;
    assert_eq!(mails[0].rcpt_to, vec!["jane@example.com".to_owned()]);
}

#[tokio::test]
async fn more_received_headers_than_allowed_is_a_loop_answered_554() {
    let app = TestApp::spawn().await;
    let hops = "Received: from relay.example by mx.example; Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        .repeat(51);
    let raw = message_with("jane@example.com", "hops@example.com", &hops);

    let reply = app.send("jane@example.com", SUPPORT, &raw).await;

    reply.assert_code(554);
    assert!(reply.text.starts_with("5.4.6"), "{}", reply.text);
    assert_eq!(
        last_decision(&app),
        ("refuse".into(), "too_many_hops".into())
    );
    assert_nothing_sent(&app, "too many hops").await;
    assert_eq!(app.count("customers"), 0);
}

#[tokio::test]
async fn exactly_the_configured_number_of_received_headers_is_no_loop() {
    let app = TestApp::spawn_with(|s| s.services[0].policy.max_received = 3).await;
    let hops = "Received: from relay.example by mx.example\r\n".repeat(3);
    let raw = message_with("jane@example.com", "hops3@example.com", &hops);

    app.send("jane@example.com", SUPPORT, &raw)
        .await
        .assert_code(250);

    app.relay.wait_for(1).await;
}

#[tokio::test]
async fn the_auto_reply_subject_list_is_a_setting() {
    let app = TestApp::spawn_with(|s| {
        s.services[0].policy.auto_reply_subjects = vec!["ticket received".into()];
    })
    .await;
    let raw = String::from_utf8(person("Bot", "bot@example.com", SUPPORT, "t1@example.com"))
        .expect("utf-8")
        .replace(
            "Subject: Please register me",
            "Subject: Ticket received #4711",
        )
        .into_bytes();

    app.send("bot@example.com", SUPPORT, &raw)
        .await
        .assert_code(250);

    assert_eq!(
        last_decision(&app),
        ("suppress".into(), "auto_reply_subject".into())
    );
    assert_nothing_sent(&app, "configured subject").await;
}

#[tokio::test]
async fn plus_tags_share_one_rate_limit() {
    let app = TestApp::spawn().await;
    app.mail_support("Jane", "jane+a@example.com", "pa@example.com")
        .await
        .assert_code(250);

    let second = app
        .mail_support("Jane", "jane+b@example.com", "pb@example.com")
        .await;

    second.assert_code(550);
    assert_eq!(
        last_decision(&app),
        ("refuse".into(), "rate_limited".into())
    );
    app.settle().await;
    assert_eq!(
        app.relay.mails().len(),
        1,
        "only the first address got a mail"
    );
}

#[tokio::test]
async fn over_the_limit_with_suppress_is_answered_250_and_recorded() {
    let app =
        TestApp::spawn_with(|s| s.services[0].policy.limits.action = LimitAction::Suppress).await;
    app.mail_support("Jane", "jane@example.com", "s1@example.com")
        .await
        .assert_code(250);

    let second = app
        .mail_support("Jane", "jane@example.com", "s2@example.com")
        .await;

    second.assert_code(250);
    assert_eq!(
        last_decision(&app),
        ("suppress".into(), "rate_limited".into())
    );
    app.settle().await;
    assert_eq!(app.relay.mails().len(), 1);
}

#[tokio::test]
async fn the_service_budget_caps_replies_to_everyone_together() {
    let app = TestApp::spawn_with(|s| s.services[0].policy.limits.service_per_day = 2).await;
    for (index, sender) in ["a@example.com", "b@example.com"].into_iter().enumerate() {
        app.send(
            sender,
            SUPPORT,
            &person("A", sender, SUPPORT, &format!("b{index}@example.com")),
        )
        .await
        .assert_code(250);
    }

    let third = app
        .mail_support("C", "c@example.com", "b3@example.com")
        .await;

    third.assert_code(550);
    assert!(third.text.starts_with("5.7.1"), "{}", third.text);
    assert_eq!(
        last_decision(&app),
        ("refuse".into(), "service_budget".into())
    );
    app.settle().await;
    assert_eq!(app.relay.mails().len(), 2);
}

/// A test peer that answers every mail we send, at once, to the address it
/// came from, without any RFC 3834 manners: no Auto-Submitted, an ordinary
/// subject, a fresh Message-ID at its own domain, our X-Loop not copied.
/// Our From is set to the support address so its answers reach us (with the
/// default no-reply From they would be refused at RCPT, ending the game
/// early). Real time, not simulated: `policy::tests` plays 24 simulated hours.
#[tokio::test]
async fn an_auto_responder_that_answers_everything_gets_one_reply() {
    let app = TestApp::spawn_with(|s| {
        s.outbound.from_address = registrar::domain::EmailAddress::parse(SUPPORT).expect("valid");
    })
    .await;
    let responder = "responder@example.com";
    let started = std::time::Instant::now();
    let first = app
        .send(
            responder,
            SUPPORT,
            &person("Responder", responder, SUPPORT, "start@example.com"),
        )
        .await;
    first.assert_code(250);

    // The responder answers our reply, then keeps answering as if every
    // answer of its own had been answered too (a responder stuck in a loop).
    let mut answers: Vec<Reply> = Vec::new();
    for round in 0..10 {
        app.settle().await;
        let raw = format!(
            "From: {responder}\r\nTo: {SUPPORT}\r\nSubject: Thank you for your message\r\n\
             Message-ID: <answer{round}@example.com>\r\n\r\nWe received your message.\r\n"
        );
        answers.push(app.send(responder, SUPPORT, raw.as_bytes()).await);
    }
    app.settle().await;
    let replies = app.relay.mails();
    let elapsed = started.elapsed();

    println!(
        "ping-pong (real run): {} responder mails, {} replies from us in {:.1}s",
        answers.len() + 1,
        replies.len(),
        elapsed.as_secs_f64()
    );
    assert_eq!(replies.len(), 1, "one reply within the 10-minute interval");
    assert!(
        replies
            .iter()
            .all(|m| m.rcpt_to == vec![responder.to_owned()])
    );
    for answer in &answers {
        answer.assert_code(550);
        assert!(answer.text.starts_with("5.7.1"), "{}", answer.text);
    }
}

/// `registrar explain` reads the same database and runs the same rules: for
/// a second mail inside the reply interval it names the rule that the daemon
/// then applies.
#[tokio::test]
async fn explain_and_the_daemon_agree_on_a_rate_limited_sender() {
    let app = TestApp::spawn().await;
    app.mail_support("Jane", "jane@example.com", "e1@example.com")
        .await
        .assert_code(250);
    let second = person("Jane", "jane@example.com", SUPPORT, "e2@example.com");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("second.eml");
    std::fs::write(&file, &second).expect("write the message");
    let request = registrar::explain::ExplainRequest {
        file,
        envelope_from: Some("jane@example.com".into()),
        db: Some(app.db_path.clone()),
        ..Default::default()
    };
    let mut out = Vec::new();

    let explained = registrar::explain::explain(
        &app.settings,
        &request,
        registrar::smtp::intake::MAIL_ANSWERS,
        &mut out,
    )
    .await
    .expect("explains");
    let answer = app.send("jane@example.com", SUPPORT, &second).await;

    let text = String::from_utf8(out).expect("utf-8");
    assert!(
        text.contains("reply_interval             DECIDES"),
        "{text}"
    );
    assert_eq!(
        explained.as_ref().map(|d| (d.name(), d.reason())),
        Some(("refuse", "rate_limited"))
    );
    answer.assert_code(550);
    assert_eq!(
        last_decision(&app),
        ("refuse".into(), "rate_limited".into())
    );
}
