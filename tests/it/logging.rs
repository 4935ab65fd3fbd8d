//! What the daemon writes to its log: the real binary at RUST_LOG=trace,
//! through a whole registration and activation, a password reset, and
//! sign-ins by the directory and Google (both unreachable), never logs the
//! activation or reset token, a password, a client or service-account
//! secret, a webhook secret or the credential in a webhook URL (the
//! endpoint is unreachable, so its failures are logged), a cookie or the
//! message body, in text or in JSON; and each SMTP
//! transaction is one line holding the client, the envelope, the service,
//! the decision and the reply code.

use crate::support::app::SUPPORT;
use crate::support::mail::{mail_files, person};
use crate::support::{Mail, SmtpClient, eventually, hidden_field};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

const PASSWORD: &str = "violet staple orbit canyon";
const BODY: &str = "Hello, I would like an account.";
const NEW_PASSWORD: &str = "quiet harbour lantern meadow";
const DIRECTORY_PASSWORD: &str = "typed-into-the-company-form";
const LDAP_SECRET: &str = "ldap-service-account-secret";
const OIDC_SECRET: &str = "oidc-client-secret-value";
const WEBHOOK_SECRET: &str = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY";
const WEBHOOK_URL_KEY: &str = "query-credential-of-the-endpoint";

/// What one run of the daemon logged, and the secrets it was given.
struct Run {
    /// Standard output, where the log goes.
    stdout: String,
    /// Standard output and error together.
    everything: String,
    secrets: Vec<(&'static str, String)>,
}

/// Runs the real binary at RUST_LOG=trace with `format` (`None`: the
/// default) through a registration by mail, an activation and a portal
/// visit, then kills it.
async fn registration_and_activation(format: Option<&str>) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("registrar.toml");
    std::fs::write(
        &config,
        format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:0/\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [store]\npath = \"{db}\"\n[outbound]\nfolder = \"{out}\"\n\
             [oidc.google]\nclient_id = \"registrar\"\nclient_secret = \"{OIDC_SECRET}\"\nissuer = \"http://127.0.0.1:{port}\"\n\
             [ldap]\nurl = \"ldap://127.0.0.1:{port}\"\nbind_dn = \"cn=registrar\"\nbind_password = \"{LDAP_SECRET}\"\nbase_dn = \"dc=x\"\n\
             [webhook_delivery]\nretry_base_secs = 1\n\
             [[webhooks]]\nurl = \"http://127.0.0.1:{port}/hook?key={WEBHOOK_URL_KEY}\"\nsecret = \"{WEBHOOK_SECRET}\"\n\
             events = [\"customer.registered\", \"customer.activated\", \"customer.signed_in\"]\n",
            db = dir.path().join("db.sqlite3").display(),
            out = dir.path().join("outbound").display(),
            port = crate::support::NOWHERE_PORT,
        ),
    )
    .expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_registrar"));
    command
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(format) = format {
        command.env("REGISTRAR__LOG__FORMAT", format);
    }
    let mut daemon = command.spawn().expect("start the daemon");
    let stdout = Arc::new(Mutex::new(String::new()));
    let everything = Arc::new(Mutex::new(String::new()));
    for (stream, is_stdout) in [
        (
            Box::new(daemon.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            true,
        ),
        (Box::new(daemon.stderr.take().expect("stderr")), false),
    ] {
        let stdout = Arc::clone(&stdout);
        let everything = Arc::clone(&everything);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if is_stdout {
                    let mut log = stdout.lock().expect("log lock");
                    log.push_str(&line);
                    log.push('\n');
                }
                let mut log = everything.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    eventually("the daemon to listen", || {
        stdout.lock().expect("log lock").contains("listening")
    })
    .await;
    // `smtp.addr=127.0.0.1:1234` in text, `"smtp.addr":"127.0.0.1:1234"` in
    // JSON.
    let address = |key: &str| -> SocketAddr {
        let log = stdout.lock().expect("log lock");
        let start = log.find(key).expect("address logged") + key.len();
        log[start..]
            .trim_start_matches(['=', ':', '"'])
            .split(|c: char| c.is_whitespace() || c == '"')
            .next()
            .expect("address")
            .parse()
            .expect("socket address")
    };
    let (smtp, http) = (address("smtp.addr"), address("http.addr"));

    let (mut client, _) = SmtpClient::connect(smtp).await.expect("SMTP connect");
    let mut message = person("Jane Doe", "jane@example.com", SUPPORT, "log@example.com");
    message.extend_from_slice(format!("{BODY}\r\n").as_bytes());
    client
        .send_mail("jane@example.com", SUPPORT, &message)
        .await
        .expect("SMTP reply")
        .assert_code(250);
    let outbound = dir.path().join("outbound");
    eventually("the activation mail", || !mail_files(&outbound).is_empty()).await;
    let file = mail_files(&outbound).remove(0);
    let mail = Mail::parse(&std::fs::read(file).expect("read mail"));
    let link = crate::support::activation_link(&mail, http);
    let token = link.split("token=").nth(1).expect("token").to_owned();

    crate::support::default_tls_provider();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = browser
        .get(&link)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let csrf = hidden_field(&form, "csrf");
    let saved = browser
        .post(format!("http://{http}/activate"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", &token),
            ("name", "Jane"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(saved.status(), 303);
    let session = saved.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("cookie")
        .to_owned();
    let session_value = session.split('=').nth(1).expect("cookie value").to_owned();
    assert_eq!(
        browser
            .get(format!("http://{http}/portal"))
            .send()
            .await
            .expect("GET portal")
            .status(),
        200
    );

    // A password reset.
    let forgot = browser
        .get(format!("http://{http}/forgot"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    browser
        .post(format!("http://{http}/forgot"))
        .form(&[
            ("csrf", hidden_field(&forgot, "csrf").as_str()),
            ("email", "jane@example.com"),
        ])
        .send()
        .await
        .expect("POST /forgot");
    let reset_link = || {
        mail_files(&outbound).into_iter().find_map(|path| {
            let mail = Mail::parse(&std::fs::read(path).ok()?);
            let start = mail.text.find("/reset?token=")?;
            let rest = &mail.text[start + "/reset?token=".len()..];
            Some(rest.split_whitespace().next()?.to_owned())
        })
    };
    eventually("the reset mail", || reset_link().is_some()).await;
    let reset_token = reset_link().expect("a reset link");
    let form = browser
        .get(format!("http://{http}/reset?token={reset_token}"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let reset = browser
        .post(format!("http://{http}/reset"))
        .form(&[
            ("csrf", hidden_field(&form, "csrf").as_str()),
            ("token", &reset_token),
            ("password", NEW_PASSWORD),
            ("confirm", NEW_PASSWORD),
        ])
        .send()
        .await
        .expect("POST /reset");
    assert_eq!(reset.status(), 303);

    // The directory and Google, both unreachable: their errors are logged.
    let directory = browser
        .get(format!("http://{http}/login/directory"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let down = browser
        .post(format!("http://{http}/login/directory"))
        .form(&[
            ("csrf", hidden_field(&directory, "csrf").as_str()),
            ("login", "jane@example.com"),
            ("password", DIRECTORY_PASSWORD),
        ])
        .send()
        .await
        .expect("POST /login/directory");
    assert_eq!(down.status(), 503);
    let google = browser
        .get(format!("http://{http}/login/google"))
        .send()
        .await
        .expect("GET /login/google");
    assert_eq!(google.status(), 503);

    // SIGTERM through the standard library is not available; ending the
    // process is enough, since everything asserted below is already logged.
    daemon.kill().expect("stop the daemon");
    let _ = daemon.wait();
    let stdout = stdout.lock().expect("log lock").clone();
    let everything = everything.lock().expect("log lock").clone();
    Run {
        stdout,
        everything,
        secrets: vec![
            ("activation token", token),
            ("password", PASSWORD.to_owned()),
            ("reset token", reset_token),
            ("new password", NEW_PASSWORD.to_owned()),
            ("directory password", DIRECTORY_PASSWORD.to_owned()),
            ("service account's password", LDAP_SECRET.to_owned()),
            ("client secret", OIDC_SECRET.to_owned()),
            ("webhook secret", WEBHOOK_SECRET[6..].to_owned()),
            ("credential in the webhook URL", WEBHOOK_URL_KEY.to_owned()),
            ("CSRF value", csrf),
            ("session cookie", session_value),
            ("message body", BODY.to_owned()),
        ],
    }
}

fn assert_no_secrets(run: &Run) {
    for (what, secret) in &run.secrets {
        assert!(
            !run.everything.contains(secret.as_str()),
            "the {what} is in the log"
        );
    }
}

#[tokio::test]
async fn the_log_never_holds_tokens_passwords_cookies_or_bodies() {
    let run = registration_and_activation(None).await;

    let line = run
        .stdout
        .lines()
        .find(|line| line.contains("event=\"smtp.transaction\""))
        .unwrap_or_else(|| panic!("no transaction line:\n{}", run.stdout));
    for field in [
        "client.ip=127.0.0.1",
        "envelope.from=jane@example.com",
        "envelope.to=support@helpdesk.example",
        "service=\"demo\"",
        "decision=\"register\"",
        "reason=\"new_customer\"",
        "smtp.code=250",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
    assert!(
        run.stdout.contains("event=\"retry_scheduled\"") && run.stdout.contains("webhook.id=msg_"),
        "the webhook's failures are logged:\n{}",
        run.stdout
    );
    assert_no_secrets(&run);
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_hold_the_transaction_and_no_secrets() {
    let run = registration_and_activation(Some("json")).await;

    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.len() > 10, "{}", run.stdout);
    assert!(
        lines
            .iter()
            .all(|l| l["timestamp"].is_string() && l["level"].is_string())
    );
    let transactions: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["event"] == "smtp.transaction")
        .collect();
    assert_eq!(transactions.len(), 1, "one message, one line");
    let line = transactions[0];
    assert_eq!(line["client.ip"], "127.0.0.1");
    assert_eq!(line["client.helo"], "client.test", "{line}");
    assert_eq!(line["envelope.from"], "jane@example.com");
    assert_eq!(line["envelope.to"], "support@helpdesk.example");
    assert_eq!(line["service"], "demo");
    assert_eq!(line["decision"], "register");
    assert_eq!(line["reason"], "new_customer");
    assert_eq!(line["smtp.code"], 250);
    assert_no_secrets(&run);
}
