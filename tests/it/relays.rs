//! The MTAs in front of us (`smtp.relays`) over real sockets: XFORWARD
//! offered to relays only and refused to anyone else, the original client
//! it names in the inbound record, in SPF and in the per-client caps, its
//! reset at the end of each transaction, and the relays' exemption from the
//! per-client caps. tests/it/postfix.rs does the same with a real Postfix.

use crate::support::app::{Origin, SUPPORT};
use crate::support::mail::person;
use crate::support::{Reply, SmtpClient, TestApp, assert_closed};
use registrar::domain::IpRange;
use registrar::policy::{SenderAuthMode, TrustedResults};
use registrar::sender_auth::FixedZone;
use registrar::sender_auth::dns::DnsSource;
use registrar::settings::Settings;
use std::net::IpAddr;

const RELAY: &str = "127.0.0.1";
const STRANGER: &str = "127.0.0.2";

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

/// 127.0.0.1, the address test clients connect from, is a relay.
fn relayed(settings: &mut Settings) {
    settings.smtp.relays = vec![IpRange::parse(RELAY).expect("range")];
}

async fn connect(app: &TestApp, from: &str) -> SmtpClient {
    let (mut client, greeting) = SmtpClient::connect_from(app.smtp_addr, ip(from))
        .await
        .expect("SMTP connect");
    greeting.assert_code(220);
    client
        .command("EHLO mx.relay.test")
        .await
        .expect("SMTP reply")
        .assert_code(250);
    client
}

/// Sends `commands` (XFORWARD lines, say), then one message from `sender`;
/// returns the first reply that is not a success, or the end-of-DATA reply.
async fn forward(client: &mut SmtpClient, commands: &[&str], sender: &str, id: &str) -> Reply {
    for command in commands {
        let reply = client.command(command).await.expect("SMTP reply");
        if reply.code != 250 {
            return reply;
        }
    }
    let message = person("Customer", sender, SUPPORT, id);
    for line in [
        format!("MAIL FROM:<{sender}>"),
        format!("RCPT TO:<{SUPPORT}>"),
    ] {
        let reply = client.command(&line).await.expect("SMTP reply");
        if reply.code != 250 {
            return reply;
        }
    }
    client
        .command("DATA")
        .await
        .expect("SMTP reply")
        .assert_code(354);
    client.send_body(&message).await.expect("SMTP reply")
}

/// What Postfix sends for a client it received mail from.
const POSTFIX_XFORWARD: [&str; 2] = [
    "XFORWARD NAME=mail.example.net ADDR=192.0.2.7",
    "XFORWARD PROTO=ESMTP HELO=mail.example.net IDENT=4Fk2x1 SOURCE=REMOTE",
];

#[tokio::test]
async fn xforward_is_offered_to_relays_only() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(relayed).await;
    let (mut relay, _) = SmtpClient::connect_from(app.smtp_addr, ip(RELAY)).await?;
    let (mut stranger, _) = SmtpClient::connect_from(app.smtp_addr, ip(STRANGER)).await?;

    let offered = relay.ehlo_lines("mx.relay.test").await?;
    let not_offered = stranger.ehlo_lines("client.test").await?;

    assert!(
        offered.contains(&"XFORWARD NAME ADDR PROTO HELO IDENT SOURCE".to_owned()),
        "{offered:?}"
    );
    assert!(
        !not_offered.iter().any(|line| line.starts_with("XFORWARD")),
        "{not_offered:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_relay_names_the_original_client_for_one_transaction() {
    let app = TestApp::spawn_with(relayed).await;
    let mut relay = connect(&app, RELAY).await;

    forward(
        &mut relay,
        &POSTFIX_XFORWARD,
        "jane@example.com",
        "x1@example.com",
    )
    .await
    .assert_code(250);
    forward(&mut relay, &[], "john@example.com", "x2@example.com")
        .await
        .assert_code(250);

    assert_eq!(
        app.inbound_origins(),
        [
            Origin::new("192.0.2.7", "mail.example.net", Some(RELAY)),
            Origin::new(RELAY, "mx.relay.test", None),
        ],
        "the attributes end with the transaction"
    );
}

#[tokio::test]
async fn xforward_from_a_client_that_is_not_a_relay_is_refused_and_its_claims_are_not_used() {
    let app = TestApp::spawn_with(relayed).await;
    let mut stranger = connect(&app, STRANGER).await;

    let refusal = stranger
        .command("XFORWARD ADDR=192.0.2.7 HELO=trusted.example")
        .await
        .expect("SMTP reply");
    forward(&mut stranger, &[], "jane@example.com", "x3@example.com")
        .await
        .assert_code(250);

    refusal.assert_code(550);
    assert!(refusal.text.starts_with("5.7.0 "), "{}", refusal.text);
    assert_eq!(
        app.inbound_origins(),
        [Origin::new(STRANGER, "mx.relay.test", None)]
    );
}

#[tokio::test]
async fn xforward_is_refused_in_a_transaction_and_forgotten_at_rset() {
    let app = TestApp::spawn_with(relayed).await;
    let mut relay = connect(&app, RELAY).await;
    relay
        .command("XFORWARD ADDR=192.0.2.7")
        .await
        .expect("SMTP reply")
        .assert_code(250);
    relay
        .command("RSET")
        .await
        .expect("SMTP reply")
        .assert_code(250);
    relay
        .command("MAIL FROM:<jane@example.com>")
        .await
        .expect("SMTP reply")
        .assert_code(250);

    let inside = relay
        .command("XFORWARD ADDR=192.0.2.8")
        .await
        .expect("SMTP reply");
    relay
        .command("RSET")
        .await
        .expect("SMTP reply")
        .assert_code(250);
    forward(&mut relay, &[], "jane@example.com", "x4@example.com")
        .await
        .assert_code(250);

    inside.assert_code(503);
    assert_eq!(
        app.inbound_origins(),
        [Origin::new(RELAY, "mx.relay.test", None)]
    );
}

#[tokio::test]
async fn bad_xforward_attributes_are_refused_501_and_change_nothing() {
    let app = TestApp::spawn_with(relayed).await;
    let mut relay = connect(&app, RELAY).await;
    relay
        .command("XFORWARD ADDR=192.0.2.7")
        .await
        .expect("SMTP reply")
        .assert_code(250);

    for line in [
        "XFORWARD",
        "XFORWARD ADDR=[192.0.2.9]",
        "XFORWARD HELO=ok.example USER=root",
    ] {
        relay
            .command(line)
            .await
            .expect("SMTP reply")
            .assert_code(501);
    }
    forward(
        &mut relay,
        &[
            "XFORWARD HELO=[UNAVAILABLE]",
            "XFORWARD ADDR=IPV6:2001:db8::7",
        ],
        "jane@example.com",
        "x5@example.com",
    )
    .await
    .assert_code(250);

    assert_eq!(
        app.inbound_origins(),
        [Origin::new("2001:db8::7", "", Some(RELAY))]
    );
}

#[tokio::test]
async fn a_relay_is_exempt_from_the_per_client_caps() {
    let app = TestApp::spawn_with(|settings| {
        relayed(settings);
        settings.smtp.max_sessions_per_ip = 1;
        settings.smtp.max_connections_per_ip_per_minute = 1;
        settings.smtp.max_messages_per_session = 1;
    })
    .await;
    let _first = connect(&app, RELAY).await;
    let _second = connect(&app, RELAY).await;
    let mut third = connect(&app, RELAY).await;

    for n in 0..3 {
        forward(
            &mut third,
            &[],
            &format!("jane{n}@example.com"),
            &format!("x6-{n}@example.com"),
        )
        .await
        .assert_code(250);
    }

    let _stranger = connect(&app, STRANGER).await;
    let (mut refused, greeting) = SmtpClient::connect_from(app.smtp_addr, ip(STRANGER))
        .await
        .expect("SMTP connect");
    greeting.assert_code(421);
    assert_closed(&mut refused).await;
}

#[tokio::test]
async fn a_forwarded_client_is_held_to_its_own_per_client_caps() {
    let app = TestApp::spawn_with(|settings| {
        relayed(settings);
        settings.smtp.max_connections_per_ip_per_minute = 2;
    })
    .await;
    let mut relay = connect(&app, RELAY).await;
    for n in 0..2 {
        forward(
            &mut relay,
            &["XFORWARD ADDR=192.0.2.7"],
            &format!("jane{n}@example.com"),
            &format!("x7-{n}@example.com"),
        )
        .await
        .assert_code(250);
    }

    let third = forward(
        &mut relay,
        &["XFORWARD ADDR=192.0.2.7"],
        "jane2@example.com",
        "x7-2@example.com",
    )
    .await;
    relay
        .command("RSET")
        .await
        .expect("SMTP reply")
        .assert_code(250);
    let other = forward(
        &mut relay,
        &["XFORWARD ADDR=192.0.2.8"],
        "john@example.com",
        "x7-3@example.com",
    )
    .await;

    third.assert_code(450);
    assert!(third.text.starts_with("4.7.1 "), "{}", third.text);
    other.assert_code(250);
    assert_eq!(app.inbound_origins().len(), 3);
}

#[tokio::test]
async fn spf_is_checked_against_the_client_a_relay_names() {
    let zone = FixedZone::new()
        .txt("_dmarc.example.com", "v=DMARC1; p=reject")
        .txt("example.com", "v=spf1 ip4:192.0.2.7 -all");
    let app = TestApp::spawn_with(move |settings| {
        relayed(settings);
        settings.services[0].policy.sender_auth = SenderAuthMode::Dmarc;
        settings.sender_auth.dns = DnsSource::Fixed(zone);
    })
    .await;
    let mut relay = connect(&app, RELAY).await;

    let named = forward(
        &mut relay,
        &POSTFIX_XFORWARD,
        "jane@example.com",
        "spf1@example.com",
    )
    .await;
    let unnamed = forward(&mut relay, &[], "jane@example.com", "spf2@example.com").await;

    named.assert_code(250);
    unnamed.assert_code(550);
    assert!(unnamed.text.contains("(DMARC)"), "{}", unnamed.text);
    app.relay.wait_for(1).await;
}

#[tokio::test]
async fn a_relay_s_authentication_results_count_for_the_client_it_names() {
    let app = TestApp::spawn_with(|settings| {
        relayed(settings);
        settings.services[0].policy.sender_auth =
            SenderAuthMode::AuthenticationResults(TrustedResults {
                authserv_id: "mx.helpdesk.example".into(),
                trusted_relays: settings.smtp.relays.clone(),
            });
    })
    .await;
    let mut relay = connect(&app, RELAY).await;
    let mut raw =
        b"Authentication-Results: mx.helpdesk.example; dmarc=pass header.from=example.com\r\n"
            .to_vec();
    raw.extend_from_slice(&person(
        "Jane",
        "jane@example.com",
        SUPPORT,
        "ar@example.com",
    ));
    for line in POSTFIX_XFORWARD
        .iter()
        .map(|line| (*line).to_owned())
        .chain([
            "MAIL FROM:<jane@example.com>".into(),
            format!("RCPT TO:<{SUPPORT}>"),
        ])
    {
        relay
            .command(&line)
            .await
            .expect("SMTP reply")
            .assert_code(250);
    }
    relay
        .command("DATA")
        .await
        .expect("SMTP reply")
        .assert_code(354);

    let reply = relay.send_body(&raw).await.expect("SMTP reply");

    reply.assert_code(250);
    app.relay.wait_for(1).await;
    assert_eq!(
        app.inbound_origins(),
        [Origin::new("192.0.2.7", "mail.example.net", Some(RELAY))]
    );
}

#[tokio::test]
async fn the_network_budget_counts_the_client_a_relay_names_and_never_the_relay() {
    let app = TestApp::spawn_with(|settings| {
        relayed(settings);
        settings.services[0].policy.limits.network_per_day = 1;
    })
    .await;
    let mut relay = connect(&app, RELAY).await;
    let named = |addr: &'static str| [format!("XFORWARD ADDR={addr} HELO=mail.example.net")];

    for (client, sender, code) in [
        (Some("192.0.2.7"), "jane@one.example", 250),
        (Some("192.0.2.7"), "john@two.example", 550),
        (Some("192.0.2.8"), "ann@three.example", 250),
        // The relay naming nobody is not a client network: it carries
        // everybody's mail.
        (None, "bob@four.example", 250),
        (None, "carl@five.example", 250),
    ] {
        let commands = client.map(named);
        let commands: Vec<&str> = commands.iter().flatten().map(String::as_str).collect();
        let reply = forward(&mut relay, &commands, sender, &format!("nb-{sender}")).await;
        assert_eq!(reply.code, code, "{sender} from {client:?}: {}", reply.text);
    }

    let mails = app.relay.wait_for(4).await;
    assert!(
        mails
            .iter()
            .all(|mail| mail.rcpt_to != vec!["john@two.example".to_owned()]),
        "the second registration from 192.0.2.7 got no mail"
    );
}
