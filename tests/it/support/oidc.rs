//! A real OpenID provider for the tests: npm `oidc-provider` (OpenID
//! Certified), run by Node.js from tests/browser/oidc-provider.mjs on a
//! loopback port with the clients and accounts a test gives. And
//! `through_provider`, which walks its login and consent pages over HTTP the
//! way a browser does.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use url::Url;

/// A client registered at the provider.
pub struct ClientSpec<'a> {
    pub id: &'a str,
    pub secret: &'a str,
    pub redirect: &'a str,
}

/// An account at the provider; its login name is `id`.
pub struct AccountSpec<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub verified: bool,
    pub name: &'a str,
}

/// The running provider; killed on drop.
pub struct Provider {
    pub issuer: Url,
    child: Child,
    _dir: tempfile::TempDir,
}

/// A loopback port free a moment ago (the provider's port must be known
/// before the daemon, which is configured with the issuer, starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl Provider {
    /// Starts the provider on `port` and waits until it listens.
    pub async fn start(
        port: u16,
        clients: &[ClientSpec<'_>],
        accounts: &[AccountSpec<'_>],
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let clients: Vec<String> = clients
            .iter()
            .map(|c| {
                format!(
                    r#"{{"client_id":"{}","client_secret":"{}","redirect_uris":["{}"]}}"#,
                    c.id, c.secret, c.redirect
                )
            })
            .collect();
        let accounts: Vec<String> = accounts
            .iter()
            .map(|a| {
                format!(
                    r#"{{"id":"{}","email":"{}","email_verified":{},"name":"{}"}}"#,
                    a.id, a.email, a.verified, a.name
                )
            })
            .collect();
        let config = dir.path().join("provider.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"port":{port},"clients":[{}],"accounts":[{}]}}"#,
                clients.join(","),
                accounts.join(",")
            ),
        )
        .expect("write the provider's config");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/oidc-provider.mjs"
        );
        let mut child = Command::new("node")
            .arg(script)
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node (Node.js and `npm ci` in tests/browser are needed)");
        let stdout = child.stdout.take().expect("stdout");
        // Read the issuer line, then keep draining: a closed pipe would make
        // the provider's next write fail.
        let (found, issuer) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(start) = line.find(r#""issuer":""#).map(|i| i + 10)
                    && let Some(sender) = found.take()
                {
                    let _ = sender.send(line[start..].split('"').next().unwrap_or("").to_owned());
                }
            }
        });
        let issuer = issuer.await.ok();
        let issuer = issuer.unwrap_or_else(|| {
            let status = child.wait().ok();
            panic!("the OpenID provider did not start (exit {status:?}; port {port} taken?)")
        });
        Self {
            issuer: Url::parse(&issuer).expect("issuer URL"),
            child,
            _dir: dir,
        }
    }

    /// The issuer as settings take it.
    pub fn issuer(&self) -> Url {
        self.issuer.clone()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Follows a sign-in from `start` (our `/login/google`) through the
/// provider's login page (as `login`) and consent page, until the provider
/// sends the browser to a URL starting with `back_to`; returns that URL
/// without following it.
pub async fn through_provider(
    http: &reqwest::Client,
    start: &str,
    login: &str,
    back_to: &str,
) -> String {
    let mut next = Url::parse(start).expect("start URL");
    for _ in 0..20 {
        let response = http.get(next.clone()).send().await.expect("GET");
        if response.status().is_redirection() {
            next = follow(&next, &response);
            if next.as_str().starts_with(back_to) {
                return next.into();
            }
            continue;
        }
        let status = response.status();
        let page = response.text().await.expect("body");
        assert_eq!(status, 200, "the provider's page at {next}:\n{page}");
        let action = between(&page, "action=\"", "\"");
        let prompt = between(&page, "name=\"prompt\" value=\"", "\"");
        let form: Vec<(&str, &str)> = match prompt.as_str() {
            "login" => vec![("prompt", "login"), ("login", login), ("password", "any")],
            _ => vec![("prompt", "consent")],
        };
        let target = next.join(&action).expect("form action");
        let response = http.post(target).form(&form).send().await.expect("POST");
        assert!(
            response.status().is_redirection(),
            "the provider answered {} to its own form",
            response.status()
        );
        next = follow(&next, &response);
        if next.as_str().starts_with(back_to) {
            return next.into();
        }
    }
    panic!("the provider never sent the browser back to {back_to}");
}

fn follow(current: &Url, response: &reqwest::Response) -> Url {
    let location = response.headers()[reqwest::header::LOCATION]
        .to_str()
        .expect("location");
    current.join(location).expect("a redirect URL")
}

fn between(text: &str, before: &str, after: &str) -> String {
    let start = text
        .find(before)
        .unwrap_or_else(|| panic!("no {before} in:\n{text}"))
        + before.len();
    text[start..]
        .split(after)
        .next()
        .unwrap_or_default()
        .replace("&amp;", "&")
}
