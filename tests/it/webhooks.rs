//! Webhooks, end to end: the daemon decides, queues the event with the
//! decision, and a worker delivers it to the test's own receiver, which
//! checks every signature with its own implementation of the Standard
//! Webhooks scheme.

use crate::support::TestApp;
use crate::support::app::SUPPORT;
use crate::support::customer::{PASSWORD, activate, active_customer, login, mail_number};
use crate::support::mail::person;
use crate::support::receiver::{Receiver, SECRET};
use crate::support::{SmtpClient, activation_link, eventually, form_page, hidden_field};
use registrar::domain::{EventKind, WebhookSecret};
use registrar::settings::{Settings, WebhookEndpoint};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// An endpoint at `url` for `events`, signed with the receiver's secret.
fn endpoint(name: &str, url: &str, events: &[EventKind]) -> WebhookEndpoint {
    WebhookEndpoint {
        name: name.into(),
        url: url::Url::parse(url).expect("url"),
        secret: WebhookSecret::parse(SECRET).expect("secret"),
        events: events.to_vec(),
    }
}

fn with_endpoints(endpoints: Vec<WebhookEndpoint>) -> impl FnOnce(&mut Settings) {
    move |settings| settings.webhooks = endpoints
}

/// Registers `address` by mail and activates the account from the link in
/// the `mail_count`th mail.
async fn register_and_activate(app: &TestApp, address: &str, mail_count: usize) {
    app.mail_support("Ann Lee", address, &format!("<{mail_count}@example.com>"))
        .await
        .assert_code(250);
    let (_, mail) = mail_number(app, mail_count).await;
    let link = activation_link(&mail, app.http_addr);
    let http = app.http();
    assert_eq!(activate(app, &http, &link, "Ann Lee").await.status(), 303);
}

#[tokio::test]
async fn a_registration_by_mail_and_its_activation_are_two_signed_events_in_order() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(with_endpoints(vec![endpoint(
        "crm",
        &receiver.url(),
        &EventKind::LIFECYCLE,
    )]))
    .await;

    register_and_activate(&app, "ann@example.com", 1).await;

    let events = receiver.wait_for(2).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e.verified), "{events:?}");
    assert_eq!(events[0].kind(), "customer.registered");
    assert_eq!(events[1].kind(), "customer.activated");
    assert_ne!(events[0].id, events[1].id);
    assert!(events.iter().all(|e| e.id.starts_with("msg_")));
    for (event, status, via) in [
        (&events[0], "pending", "mail"),
        (&events[1], "active", "activation"),
    ] {
        assert_eq!(event.data("email"), Some("ann@example.com"));
        assert_eq!(event.data("service"), Some("demo"));
        assert_eq!(event.data("channel"), Some("mail"));
        assert_eq!(event.data("status"), Some(status));
        assert_eq!(event.data("via"), Some(via));
        let timestamp = event.body["timestamp"].as_str().expect("a timestamp");
        assert!(
            timestamp.ends_with('Z') && timestamp.contains('T'),
            "{timestamp}"
        );
    }
    assert_eq!(
        events[0].data("name"),
        Some("Ann Lee"),
        "From's display name"
    );
    assert_eq!(events[0].body["data"]["company"], serde_json::Value::Null);
    eventually("delivered events to keep no customer data", || {
        app.db()
            .query_row(
                "SELECT COUNT(*) FROM webhook_events WHERE status = 'delivered' AND body IS NULL",
                [],
                |row| row.get::<_, i64>(0),
            )
            .expect("count")
            == 2
    })
    .await;
}

#[tokio::test]
async fn a_receiver_failing_three_times_gets_each_event_once_more_and_then_no_more() {
    let receiver = Receiver::start().await;
    receiver.answer(&[500, 500, 500]);
    let app = TestApp::spawn_with(with_endpoints(vec![endpoint(
        "crm",
        &receiver.url(),
        &EventKind::LIFECYCLE,
    )]))
    .await;

    register_and_activate(&app, "bo@example.com", 1).await;

    // The activation's event comes after the registration's in the
    // endpoint's queue: once it is delivered, the registration's retries
    // are over, and any further copy would have come before it.
    let delivered = receiver.wait_for(2).await;
    let requests = receiver.requests();
    let answers: Vec<(String, u16)> = requests
        .iter()
        .map(|r| (r.kind().to_owned(), r.answered))
        .collect();
    assert_eq!(
        answers,
        vec![
            ("customer.registered".to_owned(), 500),
            ("customer.registered".to_owned(), 500),
            ("customer.registered".to_owned(), 500),
            ("customer.registered".to_owned(), 200),
            ("customer.activated".to_owned(), 200),
        ]
    );
    assert!(requests.iter().all(|r| r.verified));
    assert!(
        requests[..4].iter().all(|r| r.id == delivered[0].id),
        "every attempt carries the event's one id"
    );
    assert!(
        requests
            .windows(2)
            .all(|w| w[0].timestamp <= w[1].timestamp),
        "each attempt is signed at its own time"
    );
    let (status, attempts): (String, i64) = app
        .db()
        .query_row(
            "SELECT status, attempts FROM webhook_events WHERE kind = 'customer.registered'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the registration's event");
    assert_eq!((status.as_str(), attempts), ("delivered", 4));

    // The worker counts an attempt once its outcome is committed, which
    // may be just after the receiver answered.
    let start = tokio::time::Instant::now();
    let metrics = loop {
        let metrics = crate::support::metrics::scrape(&app).await;
        let delivered = metrics.value(
            "registrar_webhook_deliveries_total",
            &[("endpoint", "crm"), ("result", "delivered")],
        );
        if delivered >= 2.0 || start.elapsed() > crate::support::DEADLINE {
            break metrics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let deliveries = |result| {
        metrics.value(
            "registrar_webhook_deliveries_total",
            &[("endpoint", "crm"), ("result", result)],
        )
    };
    assert_eq!(
        (
            deliveries("retry"),
            deliveries("delivered"),
            deliveries("dead")
        ),
        (3.0, 2.0, 0.0)
    );
    assert_eq!(
        metrics.value("registrar_webhook_events_queued", &[("endpoint", "crm")]),
        0.0
    );
}

#[tokio::test]
async fn a_dead_endpoint_holds_up_no_other() {
    let receiver = Receiver::start().await;
    let nowhere = Receiver::free_addr().await;
    let app = TestApp::spawn_with(with_endpoints(vec![
        endpoint(
            "down",
            &format!("http://{nowhere}/hook"),
            &EventKind::LIFECYCLE,
        ),
        endpoint("crm", &receiver.url(), &EventKind::LIFECYCLE),
    ]))
    .await;

    for n in 1..=3 {
        app.mail_support(
            "X",
            &format!("x{n}@example.com"),
            &format!("<x{n}@example.com>"),
        )
        .await
        .assert_code(250);
    }

    let events = receiver.wait_for(3).await;
    assert_eq!(events.len(), 3);
    let down: Vec<(String, i64)> = {
        let db = app.db();
        let mut statement = db
            .prepare("SELECT status, attempts FROM webhook_events WHERE endpoint = 'down'")
            .expect("prepare");
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(down.len(), 3, "the same events wait for the other endpoint");
    assert!(
        down.iter().all(|(status, _)| status == "queued"),
        "{down:?}"
    );
}

#[tokio::test]
async fn signed_in_goes_only_to_endpoints_that_ask_for_it() {
    let lifecycle = Receiver::start().await;
    let sign_ins = Receiver::start().await;
    let app = TestApp::spawn_with(with_endpoints(vec![
        endpoint("crm", &lifecycle.url(), &EventKind::LIFECYCLE),
        endpoint("portal", &sign_ins.url(), &[EventKind::SignedIn]),
    ]))
    .await;

    let _ = active_customer(&app, "Cy Fox", "cy@example.com").await;
    let http = app.http();
    assert_eq!(
        login(&app, &http, "cy@example.com", PASSWORD)
            .await
            .status(),
        303
    );

    let signed_in = sign_ins.wait_for(1).await;
    assert_eq!(signed_in[0].kind(), "customer.signed_in");
    assert_eq!(signed_in[0].data("via"), Some("password"));
    assert_eq!(signed_in[0].data("channel"), Some("portal"));
    assert!(signed_in[0].verified);
    let kinds: Vec<String> = lifecycle
        .wait_for(2)
        .await
        .iter()
        .map(|e| e.kind().to_owned())
        .collect();
    assert_eq!(kinds, ["customer.registered", "customer.activated"]);
}

#[tokio::test]
async fn disabling_and_enabling_at_the_command_line_are_announced_with_who_did_it() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(with_endpoints(vec![endpoint(
        "crm",
        &receiver.url(),
        &EventKind::LIFECYCLE,
    )]))
    .await;
    let _ = active_customer(&app, "Di Ray", "di@example.com").await;
    receiver.wait_for(2).await;
    // The command line queues events for the endpoints in its own
    // configuration: the daemon's.
    let config = format!(
        "\n[[webhooks]]\nname = \"crm\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
        receiver.url()
    );

    for args in [
        &["customers", "disable", "di@example.com"][..],
        &["customers", "enable", "di@example.com"],
        // Enabling an enabled account changes nothing and announces nothing.
        &["customers", "enable", "di@example.com"],
        &["invite", "ed@example.com", "--service", "demo"],
    ] {
        let out = app.cli_with(&config, args).await;
        assert!(out.success, "{args:?}: {}", out.stderr);
    }

    let events = receiver.wait_for(5).await;
    let seen: Vec<(&str, Option<&str>, Option<&str>)> = events[2..]
        .iter()
        .map(|e| (e.kind(), e.data("status"), e.data("via")))
        .collect();
    assert_eq!(
        seen,
        [
            ("customer.disabled", Some("disabled"), Some("operator")),
            ("customer.enabled", Some("active"), Some("operator")),
            ("customer.registered", Some("pending"), Some("operator")),
        ]
    );
    assert_eq!(events[4].data("channel"), Some("invitation"));
}

#[tokio::test]
async fn a_customer_purged_for_never_activating_is_announced_as_erased() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(|settings| {
        settings.activation.purge_interval = std::time::Duration::from_millis(100);
        with_endpoints(vec![endpoint(
            "crm",
            &receiver.url(),
            &EventKind::LIFECYCLE,
        )])(settings);
    })
    .await;
    app.mail_support("Hal", "hal@example.com", "<hal@example.com>")
        .await
        .assert_code(250);
    receiver.wait_for(1).await;

    // Registered 31 days ago, as far as the purge can tell.
    app.db()
        .execute(
            "UPDATE customers SET created_at = created_at - 31 * 86400",
            [],
        )
        .expect("age the customer");

    let events = receiver.wait_for(2).await;
    assert_eq!(events[1].kind(), "customer.erased");
    assert_eq!(events[1].data("email"), Some("hal@example.com"));
    assert_eq!(events[1].data("status"), Some("erased"));
    assert_eq!(events[1].data("via"), Some("purge"));
    assert!(events[1].verified);
    eventually(
        "nothing about the customer to be left but the erasure",
        || {
            let db = app.db();
            let about: i64 = db
                .query_row(
                    "SELECT COUNT(*) FROM webhook_events WHERE identity IS NOT NULL",
                    [],
                    |row| row.get(0),
                )
                .expect("count");
            let bodies: i64 = db
                .query_row(
                    "SELECT COUNT(*) FROM webhook_events WHERE body IS NOT NULL",
                    [],
                    |row| row.get(0),
                )
                .expect("count");
            about == 0 && bodies == 0
        },
    )
    .await;
}

#[tokio::test]
async fn a_pending_customer_removed_by_i_did_not_ask_for_this_is_announced_as_erased() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(with_endpoints(vec![endpoint(
        "crm",
        &receiver.url(),
        &EventKind::LIFECYCLE,
    )]))
    .await;
    app.mail_support("Ivy", "ivy@example.com", "<ivy@example.com>")
        .await
        .assert_code(250);
    // Delivered before the opt-out (which would drop it from the queue).
    receiver.wait_for(1).await;
    let (_, mail) = mail_number(&app, 1).await;
    let start = mail.text.find("/not-me?token=").expect("an opt-out link");
    let begin = mail.text[..start]
        .rfind("http://")
        .expect("an absolute link");
    let link: String = mail.text[begin..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();

    let http = app.http();
    let page = form_page(&http, &link).await;
    let confirmed = http
        .post(app.url("/not-me"))
        .form(&[
            ("csrf", hidden_field(&page, "csrf")),
            ("token", hidden_field(&page, "token")),
        ])
        .send()
        .await
        .expect("POST /not-me");
    assert_eq!(confirmed.status(), 200);

    let events = receiver.wait_for(2).await;
    let erased = events.last().expect("an event");
    assert_eq!(erased.kind(), "customer.erased");
    assert_eq!(erased.data("email"), Some("ivy@example.com"));
    assert_eq!(erased.data("via"), Some("opt_out"));
    assert!(erased.verified);
}

#[tokio::test]
async fn an_erasure_removes_the_events_about_the_customer_and_announces_it() {
    let receiver = Receiver::start().await;
    let nowhere = Receiver::free_addr().await;
    let app = TestApp::spawn_with(with_endpoints(vec![
        endpoint("crm", &receiver.url(), &EventKind::LIFECYCLE),
        // Down: the events for it wait in its queue until the erasure.
        endpoint(
            "archive",
            &format!("http://{nowhere}/hook"),
            &EventKind::LIFECYCLE,
        ),
    ]))
    .await;
    let _ = active_customer(&app, "Kim Lo", "kim@example.com").await;
    receiver.wait_for(2).await;
    let config = format!(
        "[[webhooks]]\nname = \"crm\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\n\
         [[webhooks]]\nname = \"archive\"\nurl = \"http://{nowhere}/hook\"\nsecret = \"{SECRET}\"\n",
        receiver.url()
    );

    let export = app
        .cli_with(&config, &["customers", "export", "kim@example.com"])
        .await;
    assert!(export.success, "{}", export.stderr);
    let exported: serde_json::Value = serde_json::from_str(&export.stdout).expect("JSON");
    assert_eq!(
        exported["webhook_events"].as_array().map(Vec::len),
        Some(4),
        "two events for each endpoint: {}",
        export.stdout
    );
    let erase = app
        .cli_with(&config, &["customers", "erase", "kim@example.com"])
        .await;
    assert!(erase.success, "{}", erase.stderr);
    assert!(
        erase
            .stdout
            .contains("4 webhook events (customer.erased queued for the webhook endpoints)"),
        "{}",
        erase.stdout
    );

    let events = receiver.wait_for(3).await;
    assert_eq!(events[2].kind(), "customer.erased");
    assert_eq!(events[2].data("email"), Some("kim@example.com"));
    assert_eq!(events[2].data("status"), Some("erased"));
    assert_eq!(events[2].data("via"), Some("operator"));
    let db = app.db();
    let left: Vec<(String, String, Option<String>)> = db
        .prepare("SELECT endpoint, kind, identity FROM webhook_events ORDER BY id")
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        left,
        [
            ("crm".to_owned(), "customer.erased".to_owned(), None),
            ("archive".to_owned(), "customer.erased".to_owned(), None),
        ],
        "the archive's queue lost the old events and got the erasure"
    );
}

#[tokio::test]
async fn an_endpoint_that_is_gone_gets_nothing_more_until_an_operator_retries() {
    let receiver = Receiver::start().await;
    receiver.answer(&[410]);
    let app = TestApp::spawn_with(with_endpoints(vec![endpoint(
        "crm",
        &receiver.url(),
        &EventKind::LIFECYCLE,
    )]))
    .await;
    app.mail_support("Flo", "flo@example.com", "<flo@example.com>")
        .await
        .assert_code(250);
    eventually("the event to be dead", || {
        app.db()
            .query_row(
                "SELECT COUNT(*) FROM webhook_events WHERE status = 'dead'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .expect("count")
            == 1
    })
    .await;
    let gone = receiver.requests();
    assert_eq!(gone.len(), 1, "410 Gone is not retried");

    let config = format!(
        "\n[[webhooks]]\nname = \"crm\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
        receiver.url()
    );
    let list = app
        .cli_with(&config, &["webhooks", "list", "--status", "dead"])
        .await;
    assert!(list.success, "{}", list.stderr);
    assert!(
        list.stdout
            .contains(&format!("crm\t0\t0\t1\t{}", receiver.url())),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout
            .contains(&format!("{}\tcrm\tcustomer.registered\tdead", gone[0].id)),
        "{}",
        list.stdout
    );
    assert!(list.stdout.contains("410 Gone"), "{}", list.stdout);

    let retry = app
        .cli_with(&config, &["webhooks", "retry", &gone[0].id])
        .await;
    assert!(retry.success, "{}", retry.stderr);
    assert!(
        retry.stdout.starts_with("1 dead event queued again"),
        "{}",
        retry.stdout
    );
    let delivered = receiver.wait_for(1).await;
    assert_eq!(delivered[0].id, gone[0].id, "the same event, the same id");
    assert!(delivered[0].verified);
}

#[tokio::test]
async fn webhooks_test_sends_a_signed_test_event_and_reports_the_answer() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn().await;
    let config = format!(
        "\n[[webhooks]]\nname = \"crm\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
        receiver.url()
    );

    let out = app.cli_with(&config, &["webhooks", "test"]).await;

    assert!(out.success, "{}", out.stderr);
    let delivered = receiver.wait_for(1).await;
    assert_eq!(delivered[0].kind(), "webhook.test");
    assert!(delivered[0].verified);
    assert_eq!(
        out.stdout,
        format!("crm: delivered {} (200)\n", delivered[0].id)
    );

    receiver.answer(&[503]);
    let out = app.cli_with(&config, &["webhooks", "test"]).await;
    assert!(!out.success);
    assert!(
        out.stderr.contains("503 Service Unavailable"),
        "{}",
        out.stderr
    );

    let secret = app.cli(&["webhooks", "secret"]).await;
    assert!(secret.success, "{}", secret.stderr);
    assert!(
        WebhookSecret::parse(secret.stdout.trim()).is_ok(),
        "{}",
        secret.stdout
    );
}

/// `registrar serve` on free ports with `dir`'s database and one endpoint
/// at `hook`; returns the child and its SMTP address. Its output is
/// drained on a thread, so logging never blocks it.
fn start_daemon(dir: &std::path::Path, hook: SocketAddr) -> (Child, SocketAddr) {
    let config = dir.join("registrar.toml");
    std::fs::write(
        &config,
        format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [store]\npath = \"{}\"\n[outbound]\nfolder = \"{}\"\n\
             [webhook_delivery]\nretry_base_secs = 1\nretry_max_secs = 1\npoll_secs = 1\n\
             [[webhooks]]\nname = \"crm\"\nurl = \"http://{hook}/hook\"\nsecret = \"{SECRET}\"\n",
            dir.join("db.sqlite3").display(),
            dir.join("outbound").display()
        ),
    )
    .expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_registrar"))
        .args(["--config", config.to_str().expect("utf-8 path"), "serve"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start registrar");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let smtp = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split("smtp.addr=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|addr| addr.parse().ok())
        })
        .expect("the daemon logs its SMTP address");
    std::thread::spawn(move || lines.for_each(drop));
    (child, smtp)
}

fn queued_event_ids(dir: &std::path::Path) -> Vec<String> {
    let db = rusqlite::Connection::open(dir.join("db.sqlite3")).expect("open the database");
    let mut statement = db
        .prepare("SELECT event_id FROM webhook_events WHERE status = 'queued'")
        .expect("prepare");
    statement
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test]
async fn an_event_decided_before_the_daemon_is_killed_is_delivered_after_the_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hook = Receiver::free_addr().await;
    let (mut child, smtp) = start_daemon(dir.path(), hook);
    let (mut client, _) = SmtpClient::connect(smtp).await.expect("SMTP connect");
    client
        .send_mail(
            "gus@example.com",
            SUPPORT,
            &person("Gus", "gus@example.com", SUPPORT, "<kill@example.com>"),
        )
        .await
        .expect("SMTP reply")
        .assert_code(250);

    // The receiver is down: the event waits in the queue. Then the daemon
    // dies without a chance to tidy up.
    let queued = queued_event_ids(dir.path());
    assert_eq!(queued.len(), 1, "the 250 came with the event queued");
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");

    let receiver = Receiver::start_on(hook).await;
    let (mut child, _) = start_daemon(dir.path(), hook);
    let delivered = receiver.wait_for(1).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();

    assert_eq!(
        delivered[0].id, queued[0],
        "the event queued before the kill"
    );
    assert_eq!(delivered[0].kind(), "customer.registered");
    assert!(delivered[0].verified);
}
