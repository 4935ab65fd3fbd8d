//! A real OpenID provider for the tests: npm `oidc-provider` (OpenID
//! Certified), run by Node.js from tests/browser/oidc-provider.mjs on a
//! loopback port it picks itself, with the clients and accounts a test gives.
//! And `through_provider`, which walks its login and consent pages over HTTP
//! the way a browser does.

use serde_json::{Value, json};
use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::Instant;
use url::Url;

/// How long the provider may take to answer a launch or a configuration.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);
/// Launches tried before giving up: Node.js has been seen to stall for good
/// at start-up on a loaded machine, a main thread waiting on a lock with no
/// CPU used; another process starts normally.
const LAUNCHES: usize = 3;

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

/// The running provider.
pub struct Provider {
    issuer: Url,
    node: Node,
}

/// The node process behind a provider, the lines it prints, and its log;
/// killed on drop.
struct Node {
    child: Child,
    commands: ChildStdin,
    lines: UnboundedReceiver<String>,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Provider {
    /// Starts the provider on a loopback port of its choosing. Its issuer is
    /// known at once (for the daemon's settings); it answers 503 until
    /// `configure`. A launch that does not report its port in time is ended
    /// and tried again.
    pub async fn launch() -> Self {
        let mut failures = Vec::new();
        for _ in 0..LAUNCHES {
            let mut node = Node::spawn();
            match node.next("port").await {
                Ok(port) => {
                    let issuer = Url::parse(&format!("http://127.0.0.1:{port}")).expect("issuer");
                    return Self { issuer, node };
                }
                Err(failure) => {
                    eprintln!("the OpenID provider did not start, trying again: {failure}");
                    failures.push(failure);
                }
            }
        }
        panic!("the OpenID provider did not start: {}", failures.join("\n"));
    }

    /// The issuer as settings take it.
    pub fn issuer(&self) -> Url {
        self.issuer.clone()
    }

    /// Gives the provider these clients and accounts and a new signing key;
    /// called again, it rotates the key on the same issuer.
    pub async fn configure(&mut self, clients: &[ClientSpec<'_>], accounts: &[AccountSpec<'_>]) {
        let clients: Vec<Value> = clients
            .iter()
            .map(|c| json!({"client_id": c.id, "client_secret": c.secret, "redirect_uris": [c.redirect]}))
            .collect();
        let accounts: Vec<Value> = accounts
            .iter()
            .map(|a| json!({"id": a.id, "email": a.email, "email_verified": a.verified, "name": a.name}))
            .collect();
        self.node
            .send(&json!({"clients": clients, "accounts": accounts}));
        let issuer =
            self.node.next("issuer").await.unwrap_or_else(|failure| {
                panic!("the OpenID provider was not configured: {failure}")
            });
        assert_eq!(issuer, self.issuer.as_str().trim_end_matches('/'));
    }
}

impl Node {
    /// Starts tests/browser/oidc-provider.mjs, its stderr into a file.
    fn spawn() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr = dir.path().join("stderr.log");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/oidc-provider.mjs"
        );
        let mut child = Command::new("node")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).expect("the provider's log"))
            .spawn()
            .expect("start node (Node.js and `npm ci` in tests/browser are needed)");
        let commands = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        // Keep reading to the end: a closed pipe would make the provider's
        // next write fail.
        let (sender, lines) = unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Self {
            child,
            commands,
            lines,
            stderr,
            _dir: dir,
        }
    }

    /// Writes one JSON line to its stdin.
    fn send(&mut self, command: &Value) {
        writeln!(self.commands, "{command}")
            .and_then(|()| self.commands.flush())
            .expect("write to the provider");
    }

    /// The value of `key` in its next JSON line holding it.
    async fn next(&mut self, key: &str) -> Result<String, String> {
        let deadline = Instant::now() + ANSWER_WITHIN;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    let found = serde_json::from_str::<Value>(&line)
                        .ok()
                        .and_then(|value| value.get(key).cloned());
                    match found {
                        Some(Value::String(text)) => return Ok(text),
                        Some(other) => return Ok(other.to_string()),
                        None => continue,
                    }
                }
                Ok(None) => {
                    let status = self.child.wait();
                    return Err(format!("it exited ({status:?}): {}", self.log()));
                }
                Err(_) => {
                    return Err(format!("no {key} within {ANSWER_WITHIN:?}: {}", self.log()));
                }
            }
        }
    }

    /// The end of what it wrote to stderr.
    fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let start = log.len().saturating_sub(2000);
        log.get(start..).unwrap_or(&log).to_owned()
    }
}

impl Drop for Node {
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
