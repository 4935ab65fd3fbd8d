//! `TestApp`: the real daemon on port 0 with a temp SQLite file and a
//! `CaptureRelay` as its outbound relay.

use super::relay::CaptureRelay;
use super::{Reply, SmtpClient};
use registrar::app::Application;
use registrar::settings::{self, RelayUrl, Settings};
use registrar::shutdown::Shutdown;
use registrar::telemetry::LogFormat;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;
use tempfile::TempDir;

static TRACING: LazyLock<()> = LazyLock::new(|| {
    super::default_tls_provider();
    if std::env::var_os("TEST_LOG").is_some() {
        registrar::telemetry::init("debug", LogFormat::Text, std::io::stdout);
    } else {
        registrar::telemetry::init("off", LogFormat::Text, std::io::sink);
    }
});

/// The support address of the embedded demo service.
pub const SUPPORT: &str = "support@helpdesk.example";

/// Who an inbound message came from, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub client_ip: String,
    pub helo: String,
    pub relay_ip: Option<String>,
}

impl Origin {
    pub fn new(client_ip: &str, helo: &str, relay_ip: Option<&str>) -> Self {
        Self {
            client_ip: client_ip.into(),
            helo: helo.into(),
            relay_ip: relay_ip.map(Into::into),
        }
    }
}

pub struct TestApp {
    pub smtp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The admin listener (`/metrics`, `/healthz`).
    pub admin_addr: SocketAddr,
    pub relay: CaptureRelay,
    pub db_path: PathBuf,
    pub settings: std::sync::Arc<Settings>,
    shutdown: Shutdown,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dir: TempDir,
}

/// Embedded defaults adjusted for a test: loopback port 0, quick retries.
pub fn test_settings(dir: &std::path::Path, relay: SocketAddr) -> Settings {
    let mut settings = settings::load(None).expect("embedded defaults load");
    settings.smtp.listen = "127.0.0.1:0".parse().expect("address");
    settings.http.listen = "127.0.0.1:0".parse().expect("address");
    settings.http.public_url = url::Url::parse("http://127.0.0.1:0/").expect("url");
    settings.admin.listen = Some("127.0.0.1:0".parse().expect("address"));
    settings.store.path = dir.join("registrar.sqlite3");
    settings.outbound.relay = Some(RelayUrl::new(
        url::Url::parse(&format!("smtp://{relay}")).expect("url"),
    ));
    settings.outbound.folder = dir.join("outbound");
    settings.outbound.retry_base = Duration::from_secs(1);
    settings.outbound.retry_max = Duration::from_secs(1);
    settings.outbound.poll_interval = Duration::from_millis(200).max(Duration::from_secs(1));
    settings.outbound.send_timeout = Duration::from_secs(5);
    // Webhook retries in tens of milliseconds, so a test sees several.
    settings.webhook_delivery.retry_base = Duration::from_millis(50);
    settings.webhook_delivery.retry_max = Duration::from_millis(400);
    settings.webhook_delivery.timeout = Duration::from_secs(5);
    settings.webhook_delivery.poll_interval = Duration::from_secs(1);
    settings
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        LazyLock::force(&TRACING);
        let dir = tempfile::tempdir().expect("temp dir");
        let relay = CaptureRelay::start().await;
        let mut settings = test_settings(dir.path(), relay.addr());
        adjust(&mut settings);
        Self::start(settings, relay, dir).await
    }

    async fn start(settings: Settings, relay: CaptureRelay, dir: TempDir) -> Self {
        let db_path = settings.store.path.clone();
        let app = Application::build(settings)
            .await
            .expect("the daemon builds");
        let smtp_addr = app.smtp_addr();
        let http_addr = app.http_addr();
        let admin_addr = app.admin_addr().expect("the tests' admin listener");
        let settings = app.settings();
        let shutdown = app.shutdown_handle();
        let running = Some(tokio::spawn(app.run_until_stopped()));
        Self {
            smtp_addr,
            http_addr,
            admin_addr,
            relay,
            db_path,
            settings,
            shutdown,
            running,
            dir,
        }
    }

    /// Stops this instance and starts a new one on the same database, with
    /// `adjust` applied to the same settings.
    pub async fn restart_with(mut self, adjust: impl FnOnce(&mut Settings)) -> Self {
        self.stop().await;
        let mut settings = test_settings(self.dir.path(), self.relay.addr());
        adjust(&mut settings);
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        Self::start(settings, self.relay.clone(), dir).await
    }

    /// Triggers shutdown and waits for HTTP and the outbox to stop.
    pub async fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(running) = self.running.take() {
            running
                .await
                .expect("the daemon task")
                .expect("the daemon stops cleanly");
        }
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Sends a message over SMTP in one session and returns the final reply.
    pub async fn send(&self, from: &str, to: &str, raw: &[u8]) -> Reply {
        let (mut client, greeting) = SmtpClient::connect(self.smtp_addr)
            .await
            .expect("SMTP connect");
        greeting.assert_code(220);
        let reply = client.send_mail(from, to, raw).await.expect("SMTP reply");
        let _ = client.command("QUIT").await.expect("SMTP reply");
        reply
    }

    /// A session past EHLO.
    pub async fn greeted(&self) -> SmtpClient {
        let (mut client, greeting) = SmtpClient::connect(self.smtp_addr)
            .await
            .expect("SMTP connect");
        greeting.assert_code(220);
        client
            .command("EHLO client.test")
            .await
            .expect("SMTP reply")
            .assert_code(250);
        client
    }

    /// A session in DATA, the 354 read.
    pub async fn in_data(&self, from: &str) -> SmtpClient {
        let mut client = self.greeted().await;
        client
            .command(&format!("MAIL FROM:<{from}>"))
            .await
            .expect("SMTP reply")
            .assert_code(250);
        client
            .command(&format!("RCPT TO:<{SUPPORT}>"))
            .await
            .expect("SMTP reply")
            .assert_code(250);
        client
            .command("DATA")
            .await
            .expect("SMTP reply")
            .assert_code(354);
        client
    }

    /// Sends a person's mail from `address` (envelope and From alike) to the
    /// demo service's support address; returns the final reply.
    pub async fn mail_support(&self, name: &str, address: &str, message_id: &str) -> Reply {
        let message = super::mail::person(name, address, SUPPORT, message_id);
        self.send(address, SUPPORT, &message).await
    }

    /// An HTTP client with a cookie store that does not follow redirects.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// A read connection to the database, for facts that cannot be observed
    /// from outside.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db_path).expect("open the test database")
    }

    /// Counts rows of a table.
    pub fn count(&self, table: &str) -> i64 {
        self.db()
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .expect("count rows")
    }

    /// Who each recorded inbound message came from, oldest first: the
    /// client's address, its HELO, and the relay that named it.
    pub fn inbound_origins(&self) -> Vec<Origin> {
        let db = self.db();
        let mut statement = db
            .prepare("SELECT client_ip, helo, relay_ip FROM inbound ORDER BY id")
            .expect("prepare");
        statement
            .query_map([], |row| {
                Ok(Origin {
                    client_ip: row.get(0)?,
                    helo: row.get(1)?,
                    relay_ip: row.get(2)?,
                })
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("read the inbound records")
    }

    /// Whether the one activation token in the database has been used.
    pub fn token_used(&self) -> bool {
        self.db()
            .query_row(
                "SELECT used_at IS NOT NULL FROM activation_tokens",
                [],
                |r| r.get(0),
            )
            .expect("one token")
    }

    /// Waits until the outbox has nothing queued.
    pub async fn settle(&self) {
        super::eventually("the outbox to drain", || {
            let queued: i64 = self
                .db()
                .query_row(
                    "SELECT COUNT(*) FROM outbox WHERE status = 'queued'",
                    [],
                    |row| row.get(0),
                )
                .expect("count queued");
            queued == 0
        })
        .await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// What the `registrar` binary printed and how it exited.
pub struct CliOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl TestApp {
    /// Runs the real `registrar` binary with `args` against this daemon's
    /// database while it runs, through a config file naming the database,
    /// the public URL and the relay.
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        self.cli_with("", args).await
    }

    /// `cli`, with `extra` TOML (whole sections) added to its config file.
    pub async fn cli_with(&self, extra: &str, args: &[&str]) -> CliOutput {
        let config = self.dir.path().join("cli.toml");
        let text = format!(
            "[store]\npath = {:?}\n\n[http]\npublic_url = {:?}\n\n[outbound]\nrelay = {:?}\n\n{extra}",
            self.db_path.display().to_string(),
            self.settings.http.public_url.as_str(),
            format!("smtp://{}", self.relay.addr()),
        );
        std::fs::write(&config, text).expect("write the CLI config");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_registrar"));
        command.arg("--config").arg(&config).args(args);
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("the CLI task")
            .expect("run the registrar binary");
        CliOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}
