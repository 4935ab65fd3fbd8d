//! Bounces over real sockets: replies go out from a VERP envelope sender; a
//! delivery report to that address, arriving at our SMTP listener, marks the
//! address bouncing and suppresses the next reply to it (reason
//! `bouncing`); a later mail from it that passes sender authentication lifts
//! that. A report to a token we never sent changes nothing.

use crate::support::app::SUPPORT;
use crate::support::mail::person;
use crate::support::{TestApp, form_page, hidden_field};
use registrar::domain::{EmailAddress, IpRange, Verp};
use registrar::policy::{SenderAuthMode, TrustedResults};
use registrar::settings::Settings;

const JANE: &str = "jane@example.com";
const BOUNCES: &str = "bounces@registrar.localhost";
const PASS: &str =
    "mx.helpdesk.example; spf=pass smtp.mailfrom=example.com; dmarc=pass header.from=example.com";

/// VERP on, replies not spaced out, and the demo service trusting the
/// Authentication-Results of the test client's address.
fn verp(settings: &mut Settings) {
    let base = EmailAddress::parse(BOUNCES).expect("valid");
    settings.outbound.envelope_from = Some(base.clone());
    settings.outbound.verp = Some(Verp::new(base));
    let policy = &mut settings.services[0].policy;
    policy.limits.min_interval_secs = 0;
    policy.sender_auth = SenderAuthMode::AuthenticationResults(TrustedResults {
        authserv_id: "mx.helpdesk.example".into(),
        trusted_relays: vec![IpRange::parse("127.0.0.1").expect("a range")],
    });
}

/// A person's mail from Jane that passed DMARC at the (trusted) border.
fn authenticated(message_id: &str) -> Vec<u8> {
    let mut raw = format!("Authentication-Results: {PASS}\r\n").into_bytes();
    raw.extend_from_slice(&person("Jane Doe", JANE, SUPPORT, message_id));
    raw
}

/// The report a receiving MTA sends back for a reply it refused.
fn delivery_report(to: &str, action: &str, status: &str) -> Vec<u8> {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n\
         To: {to}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"R\"\r\n\
         \r\n\
         --R\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         Your message could not be delivered.\r\n\
         --R\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.com\r\n\
         \r\n\
         Final-Recipient: rfc822; {JANE}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{JANE}>: Recipient address rejected: User unknown\r\n\
         \r\n\
         --R--\r\n"
    )
    .into_bytes()
}

/// Sends `raw` from the null sender to `to`, answering each step; returns
/// the RCPT and the final reply codes.
async fn send_report(app: &TestApp, to: &str, raw: &[u8]) -> (u16, u16, String) {
    let mut client = app.greeted().await;
    client
        .command("MAIL FROM:<>")
        .await
        .expect("reply")
        .assert_code(250);
    let rcpt = client
        .command(&format!("RCPT TO:<{to}>"))
        .await
        .expect("reply");
    if rcpt.code != 250 {
        return (rcpt.code, 0, rcpt.text);
    }
    client
        .command("DATA")
        .await
        .expect("reply")
        .assert_code(354);
    let done = client.send_body(raw).await.expect("reply");
    let _ = client.command("QUIT").await;
    (rcpt.code, done.code, done.text)
}

fn decisions(app: &TestApp) -> Vec<(String, String, String)> {
    let db = app.db();
    let mut statement = db
        .prepare("SELECT channel, outcome, reason FROM decisions ORDER BY id")
        .expect("prepare");
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// POSTs "send me a new link" for Jane from the portal.
async fn resend(app: &TestApp) {
    let http = app.http();
    let page = form_page(&http, &app.url("/resend")).await;
    let csrf = hidden_field(&page, "csrf");
    let response = http
        .post(app.url("/resend"))
        .form(&[("csrf", csrf.as_str()), ("email", JANE)])
        .send()
        .await
        .expect("POST /resend");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_report_to_the_verp_address_suppresses_the_next_reply_until_authenticated_mail_lifts_it()
{
    let app = TestApp::spawn_with(verp).await;
    app.send(JANE, SUPPORT, &authenticated("b1@example.com"))
        .await
        .assert_code(250);
    let first = app.relay.wait_for(1).await.remove(0);
    assert!(
        first.mail_from.starts_with("bounces+")
            && first.mail_from.ends_with("@registrar.localhost"),
        "a VERP envelope sender: {}",
        first.mail_from
    );

    // The receiving MTA refuses it and reports back to the envelope sender.
    let (rcpt, done, text) = send_report(
        &app,
        &first.mail_from,
        &delivery_report(&first.mail_from, "failed", "5.1.1"),
    )
    .await;
    assert_eq!((rcpt, done), (250, 250), "{text}");
    assert!(text.contains("delivery report received"), "{text}");

    // The next reply to Jane is suppressed and says why.
    resend(&app).await;
    app.settle().await;
    assert_eq!(app.relay.mails().len(), 1, "nothing more was sent");
    let recorded = decisions(&app);
    assert!(
        recorded.contains(&(
            "bounce".into(),
            "bouncing".into(),
            "permanent_failure".into()
        )),
        "{recorded:?}"
    );
    assert_eq!(
        recorded.last(),
        Some(&("resend".into(), "suppress".into(), "bouncing".into()))
    );
    let shown = app.cli(&["customers", "show", JANE]).await;
    assert!(shown.stdout.contains("bounced "), "{}", shown.stdout);
    assert!(shown.stdout.contains("5.1.1"), "{}", shown.stdout);

    // Jane writes again, and her mail passes authentication: she gets a
    // new link.
    app.send(JANE, SUPPORT, &authenticated("b2@example.com"))
        .await
        .assert_code(250);
    let mails = app.relay.wait_for(2).await;
    assert_eq!(mails[1].rcpt_to, vec![JANE.to_owned()]);
    let recorded = decisions(&app);
    let tail: Vec<_> = recorded.iter().rev().take(2).rev().cloned().collect();
    assert_eq!(
        tail,
        vec![
            (
                "bounce".into(),
                "bounce_lifted".into(),
                "authenticated_mail".into()
            ),
            (
                "mail".into(),
                "resend_activation".into(),
                "pending_customer".into()
            ),
        ]
    );
}

#[tokio::test]
async fn a_delay_report_and_a_report_for_a_token_we_never_sent_mark_nobody() {
    let app = TestApp::spawn_with(verp).await;
    app.send(JANE, SUPPORT, &authenticated("b3@example.com"))
        .await
        .assert_code(250);
    let first = app.relay.wait_for(1).await.remove(0);

    let (_, delayed, _) = send_report(
        &app,
        &first.mail_from,
        &delivery_report(&first.mail_from, "delayed", "4.4.1"),
    )
    .await;
    let forged_to = format!("bounces+{}@registrar.localhost", Verp::new_token());
    let (rcpt, forged, _) = send_report(
        &app,
        &forged_to,
        &delivery_report(&forged_to, "failed", "5.1.1"),
    )
    .await;
    let (refused, _, _) = send_report(
        &app,
        "bounces+not-a-token@registrar.localhost",
        b"Subject: x\r\n\r\nx\r\n",
    )
    .await;

    assert_eq!((delayed, rcpt, forged), (250, 250, 250));
    assert_eq!(refused, 550, "only our own VERP addresses are recipients");
    assert_eq!(app.count("bouncing"), 0);
    resend(&app).await;
    app.relay.wait_for(2).await;
    let recorded = decisions(&app);
    assert!(
        recorded.contains(&(
            "bounce".into(),
            "delivery_report".into(),
            "not_a_failure".into()
        )),
        "{recorded:?}"
    );
}
