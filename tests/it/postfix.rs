//! The daemon behind a real Postfix, set up as README's "Behind Postfix"
//! says: a private instance of Debian's Postfix relays the support domain
//! to it, and customers from 300 distinct loopback addresses mail Postfix.
//! Postfix's own log tells what happened to each message (`status=sent`,
//! `status=deferred`, `status=bounced`), and the inbound records who we
//! saw.
//!
//! These tests need root and the `postfix` package, so they are
//! `#[ignore]`d and `cargo nextest run` reports them as skipped; .ci/run
//! installs Postfix, sets REGISTRAR_POSTFIX_TESTS=1 and runs them. Run by
//! hand without that variable, they fail and say what is missing. Each
//! prints Postfix's counts (`--no-capture` shows them).

use crate::support::TestApp;
use crate::support::app::{Origin, SUPPORT};
use crate::support::mail::person;
use crate::support::postfix::{Postfix, Relaying, Statuses};
use registrar::domain::IpRange;
use registrar::policy::SenderAuthMode;
use registrar::sender_auth::FixedZone;
use registrar::sender_auth::dns::DnsSource;
use registrar::settings::Settings;
use std::net::IpAddr;
use std::sync::Arc;

const CUSTOMERS: usize = 300;

/// Customers' mail servers talking to Postfix at once.
const CONCURRENT: usize = 10;

/// Postfix's smtp client connects to the daemon from here.
const POSTFIX_ADDRESS: &str = "127.0.0.1";

fn opted_in() {
    assert!(
        std::env::var_os("REGISTRAR_POSTFIX_TESTS").is_some(),
        "set REGISTRAR_POSTFIX_TESTS=1 after `apt-get install postfix`, and run as root"
    );
}

/// A customer's mail server: its own loopback address and HELO name, and
/// the customer's address.
#[derive(Debug, Clone)]
struct Customer {
    ip: IpAddr,
    helo: String,
    address: String,
}

fn customers(count: usize) -> Vec<Customer> {
    (0..count)
        .map(|n| Customer {
            ip: IpAddr::from([127, 10, (n / 250) as u8, (n % 250 + 2) as u8]),
            helo: format!("mail{n}.sender{}.example", n % 7),
            address: format!("customer{n}@sender{}.example", n % 7),
        })
        .collect()
}

/// Every customer mails the support address through Postfix, which must
/// accept each message (then delivers it on its own).
async fn mail_through(postfix: &Arc<Postfix>, customers: &[Customer]) {
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENT {
        let postfix = Arc::clone(postfix);
        let mine: Vec<Customer> = customers
            .iter()
            .skip(worker)
            .step_by(CONCURRENT)
            .cloned()
            .collect();
        workers.spawn(async move {
            for customer in mine {
                let message = person(
                    "Customer",
                    &customer.address,
                    SUPPORT,
                    &format!("{}.{}@sender.example", customer.ip, worker),
                );
                postfix
                    .submit(
                        customer.ip,
                        &customer.helo,
                        &customer.address,
                        SUPPORT,
                        &message,
                    )
                    .await
                    .assert_code(250);
            }
        });
    }
    while let Some(worker) = workers.join_next().await {
        worker.expect("a customer's server");
    }
}

/// 127.0.0.1, where Postfix connects from, is a relay.
fn postfix_is_a_relay(settings: &mut Settings) {
    settings.smtp.relays = vec![IpRange::parse(POSTFIX_ADDRESS).expect("range")];
    a_burst_of_new_customers_is_welcome(settings);
}

/// These tests send 300 new customers at once: the circuit breaker, which
/// would rightly make most of them wait (`451 4.7.1`, deferred by Postfix),
/// and the per-network budget, which would count Postfix as one client when
/// it names none, are lifted; they have tests of their own.
fn a_burst_of_new_customers_is_welcome(settings: &mut Settings) {
    settings.circuit_breaker.new_senders_per_minute = u32::MAX;
    settings.services[0].policy.limits.network_per_day = u32::MAX;
}

/// The most messages Postfix sent over one connection (`conn_use=N`).
fn most_per_connection(log: &str) -> usize {
    log.lines()
        .filter_map(|line| line.split(" conn_use=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse().ok())
        .max()
        .unwrap_or(1)
}

fn report(test: &str, statuses: Statuses) {
    println!(
        "{test}: Postfix status=sent {}, status=deferred {}, status=bounced {}",
        statuses.sent, statuses.deferred, statuses.bounced
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs postfix (.ci/run installs it)"]
async fn three_hundred_registrations_through_postfix_all_arrive_none_deferred_each_with_its_client()
{
    opted_in();
    let app = TestApp::spawn_with(postfix_is_a_relay).await;
    let postfix = Arc::new(Postfix::start(Relaying {
        next_hop: app.smtp_addr,
        xforward: true,
    }));
    let customers = customers(CUSTOMERS);

    mail_through(&postfix, &customers).await;
    let statuses = postfix.wait_for_deliveries(CUSTOMERS).await;

    report("relay with XFORWARD", statuses);
    assert_eq!(
        statuses,
        Statuses {
            sent: CUSTOMERS,
            deferred: 0,
            bounced: 0,
        },
        "{}",
        postfix.log()
    );
    let mut seen = app.inbound_origins();
    let mut expected: Vec<Origin> = customers
        .iter()
        .map(|c| Origin::new(&c.ip.to_string(), &c.helo, Some(POSTFIX_ADDRESS)))
        .collect();
    seen.sort_by(|a, b| a.client_ip.cmp(&b.client_ip));
    expected.sort_by(|a, b| a.client_ip.cmp(&b.client_ip));
    assert_eq!(seen, expected, "every record holds the original client");
    assert_eq!(
        app.count("customers WHERE status = 'pending'"),
        CUSTOMERS as i64
    );
}

/// Postfix not listed as a relay: it is one client with its per-client
/// caps (raised by hand here), and XFORWARD is not offered to it. Postfix
/// reuses its connections up to the per-session message cap (3 here, so
/// that it surely reaches it) and then, when its RSET before the next reuse
/// is answered 421, opens a new one: nothing is deferred.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs postfix (.ci/run installs it)"]
async fn without_relays_the_per_session_message_cap_defers_nothing() {
    opted_in();
    let app = TestApp::spawn_with(|settings| {
        settings.smtp.max_sessions_per_ip = 100;
        settings.smtp.max_connections_per_ip_per_minute = 100_000;
        settings.smtp.max_messages_per_session = 3;
        a_burst_of_new_customers_is_welcome(settings);
    })
    .await;
    let postfix = Arc::new(Postfix::start(Relaying {
        next_hop: app.smtp_addr,
        xforward: true,
    }));
    let customers = customers(CUSTOMERS);

    mail_through(&postfix, &customers).await;
    let statuses = postfix.wait_for_deliveries(CUSTOMERS).await;

    report("not a relay, message cap", statuses);
    assert_eq!(statuses.deferred, 0, "{}", postfix.log());
    assert_eq!(statuses.sent, CUSTOMERS);
    assert_eq!(
        most_per_connection(&postfix.log()),
        3,
        "Postfix reused connections up to the cap, never past it"
    );
    let origins = app.inbound_origins();
    assert_eq!(origins.len(), CUSTOMERS);
    assert!(
        origins
            .iter()
            .all(|origin| *origin == Origin::new(POSTFIX_ADDRESS, "mx.helpdesk.test", None)),
        "XFORWARD is offered to relays only: {:?}",
        origins.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs postfix (.ci/run installs it)"]
async fn spf_in_dmarc_mode_is_checked_against_the_address_postfix_forwards() {
    opted_in();
    // example.com's mail leaves from 127.7.0.0/16 only.
    let zone = FixedZone::new()
        .txt("_dmarc.example.com", "v=DMARC1; p=reject")
        .txt("example.com", "v=spf1 ip4:127.7.0.0/16 -all");
    let app = TestApp::spawn_with(move |settings| {
        postfix_is_a_relay(settings);
        settings.services[0].policy.sender_auth = SenderAuthMode::Dmarc;
        settings.sender_auth.dns = DnsSource::Fixed(zone);
    })
    .await;
    let postfix = Postfix::start(Relaying {
        next_hop: app.smtp_addr,
        xforward: true,
    });
    let listed = IpAddr::from([127, 7, 0, 2]);
    let elsewhere = IpAddr::from([127, 8, 0, 2]);

    for (client, sender, id) in [
        (listed, "jane@example.com", "spf-listed@example.com"),
        (elsewhere, "john@example.com", "spf-elsewhere@example.com"),
    ] {
        let message = person("Customer", sender, SUPPORT, id);
        postfix
            .submit(client, "mail.example.com", sender, SUPPORT, &message)
            .await
            .assert_code(250);
    }
    let statuses = postfix.wait_for_deliveries(2).await;

    report("dmarc mode", statuses);
    assert_eq!(
        statuses,
        Statuses {
            sent: 1,
            deferred: 0,
            bounced: 1,
        },
        "{}",
        postfix.log()
    );
    assert!(
        postfix
            .log()
            .contains("550 5.7.1 the sender could not be authenticated (DMARC)"),
        "{}",
        postfix.log()
    );
    assert_eq!(
        app.inbound_origins(),
        [Origin::new(
            "127.7.0.2",
            "mail.example.com",
            Some(POSTFIX_ADDRESS)
        )],
        "only the message from a listed address is accepted"
    );
    let mails = app.relay.wait_for(1).await;
    assert_eq!(mails[0].rcpt_to, vec!["jane@example.com".to_owned()]);
}
