//! `CaptureRelay`: a small real SMTP server on 127.0.0.1:0 that records every
//! message it accepts and wakes waiters. It can be told to answer `451` to
//! every MAIL, to exercise retries, to give chosen answers to the next
//! MAIL, RCPT or end of DATA (`answer_next`), or to refuse chosen recipients
//! every time (`refuse_recipient`), as a real relay refusing or deferring a
//! message would. It counts the connections it accepted, can hold new
//! connections before their greeting (`hold`) until released, so that
//! replies pile up in the outbox meanwhile, can require `AUTH PLAIN`
//! with one user name and password (`require_auth`), and can hang up after
//! every accepted message without a word (`hang_up_after_each_mail`), as a
//! relay closing idle connections does. It offers PIPELINING, as real
//! relays do, unless told not to (`offer_pipelining`), and counts the
//! transactions whose MAIL, RCPT and DATA came as one group.

use super::DEADLINE;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// One message as the relay received it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

/// Where in a transaction a chosen answer is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Mail,
    Rcpt,
    /// The answer to the message itself, after its final dot.
    Data,
}

struct Shared {
    mails: Mutex<Vec<Captured>>,
    arrived: Notify,
    failing: AtomicBool,
    /// Closes the connection after each accepted message.
    hang_up: AtomicBool,
    /// Chosen answers, each used once, in order, at its stage.
    script: Mutex<VecDeque<(Stage, String)>>,
    /// Recipients refused at every RCPT, with the answer given.
    refused: Mutex<HashMap<String, String>>,
    /// Connections accepted so far.
    connections: AtomicUsize,
    /// While true, new connections wait before their greeting.
    held: watch::Sender<bool>,
    /// The one user name and password `AUTH PLAIN` takes, when required.
    login: Mutex<Option<(String, String)>>,
    /// User names that authenticated, one per successful AUTH.
    logins: Mutex<Vec<String>>,
    /// Whether EHLO offers PIPELINING.
    pipelining: AtomicBool,
    /// MAIL commands that arrived with their DATA already behind them.
    pipelined: AtomicUsize,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            mails: Mutex::default(),
            arrived: Notify::new(),
            failing: AtomicBool::new(false),
            hang_up: AtomicBool::new(false),
            script: Mutex::default(),
            refused: Mutex::default(),
            connections: AtomicUsize::new(0),
            held: watch::Sender::new(false),
            login: Mutex::default(),
            logins: Mutex::default(),
            pipelining: AtomicBool::new(true),
            pipelined: AtomicUsize::new(0),
        }
    }
}

impl Shared {
    /// The next chosen answer for `stage`, if one is waiting.
    fn scripted(&self, stage: Stage) -> Option<Vec<u8>> {
        let mut script = self.script.lock().expect("relay lock");
        let at = script.iter().position(|(s, _)| *s == stage)?;
        script
            .remove(at)
            .map(|(_, reply)| format!("{reply}\r\n").into_bytes())
    }
}

#[derive(Clone)]
pub struct CaptureRelay {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl CaptureRelay {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let shared = Arc::new(Shared::default());
        let accept_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&accept_shared)));
            }
        });
        Self { addr, shared }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// While failing, every MAIL is answered `451`.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Answers the next command at `stage` with `reply` (a whole reply
    /// line, like `451 4.3.0 try later`) instead of accepting it; a refused
    /// message is not recorded.
    pub fn answer_next(&self, stage: Stage, reply: &str) {
        self.shared
            .script
            .lock()
            .expect("relay lock")
            .push_back((stage, reply.to_owned()));
    }

    /// Refuses `address` at every RCPT with `reply` (a whole reply line).
    pub fn refuse_recipient(&self, address: &str, reply: &str) {
        self.shared
            .refused
            .lock()
            .expect("relay lock")
            .insert(address.to_owned(), reply.to_owned());
    }

    /// New connections wait before their greeting until `release`.
    pub fn hold(&self) {
        self.shared.held.send_replace(true);
    }

    /// Greets the connections waiting since `hold`, and every later one.
    pub fn release(&self) {
        self.shared.held.send_replace(false);
    }

    /// Advertises `AUTH PLAIN` and takes MAIL only after an AUTH with this
    /// user name and password.
    pub fn require_auth(&self, user: &str, password: &str) {
        *self.shared.login.lock().expect("relay lock") =
            Some((user.to_owned(), password.to_owned()));
    }

    /// The user names that authenticated, one per AUTH.
    pub fn logins(&self) -> Vec<String> {
        self.shared.logins.lock().expect("relay lock").clone()
    }

    /// Closes each connection, without a reply to what comes next, once it
    /// has accepted a message on it.
    pub fn hang_up_after_each_mail(&self) {
        self.shared.hang_up.store(true, Ordering::SeqCst);
    }

    /// Whether EHLO offers PIPELINING (it does unless told otherwise).
    pub fn offer_pipelining(&self, offer: bool) {
        self.shared.pipelining.store(offer, Ordering::SeqCst);
    }

    /// How many transactions came as one group: MAIL read with RCPT and
    /// DATA already received behind it.
    pub fn pipelined_transactions(&self) -> usize {
        self.shared.pipelined.load(Ordering::SeqCst)
    }

    /// How many connections the relay has accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Everything received so far.
    pub fn mails(&self) -> Vec<Captured> {
        self.shared.mails.lock().expect("relay lock").clone()
    }

    /// Waits until at least `count` messages have arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Captured> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let notified = self.shared.arrived.notified();
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "timed out waiting for {count} mails at the relay; got {}",
                    self.mails().len()
                );
            }
        }
    }
}

async fn serve(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let mut held = shared.held.subscribe();
    if held.wait_for(|held| !held).await.is_err() {
        return;
    }
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if write
        .write_all(b"220 capture.test ESMTP\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut current = Captured {
        mail_from: String::new(),
        rcpt_to: Vec::new(),
        data: Vec::new(),
    };
    let login = shared.login.lock().expect("relay lock").clone();
    let mut authenticated = login.is_none();
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        let upper = text.to_ascii_uppercase();
        let scripted;
        let answer: &[u8] = if upper.starts_with("EHLO") {
            scripted = format!(
                "250-capture.test\r\n{}{}250 8BITMIME\r\n",
                if login.is_some() {
                    "250-AUTH PLAIN\r\n"
                } else {
                    ""
                },
                if shared.pipelining.load(Ordering::SeqCst) {
                    "250-PIPELINING\r\n"
                } else {
                    ""
                },
            )
            .into_bytes();
            &scripted
        } else if upper.starts_with("AUTH PLAIN ") {
            match (&login, plain_credentials(&text[11..])) {
                (Some((user, password)), Some((given_user, given_password)))
                    if *user == given_user && *password == given_password =>
                {
                    authenticated = true;
                    shared.logins.lock().expect("relay lock").push(given_user);
                    b"235 2.7.0 authenticated\r\n"
                }
                _ => b"535 5.7.8 authentication failed\r\n",
            }
        } else if upper.starts_with("MAIL FROM:") && !authenticated {
            b"530 5.7.0 authentication required\r\n"
        } else if upper.starts_with("HELO")
            || upper.starts_with("RSET")
            || upper.starts_with("NOOP")
        {
            current = Captured {
                mail_from: String::new(),
                rcpt_to: Vec::new(),
                data: Vec::new(),
            };
            b"250 OK\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            let behind = String::from_utf8_lossy(lines.buffer()).to_ascii_uppercase();
            if behind.contains("\r\nDATA\r\n") || behind.starts_with("DATA\r\n") {
                shared.pipelined.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(reply) = shared.scripted(Stage::Mail) {
                scripted = reply;
                &scripted
            } else if shared.failing.load(Ordering::SeqCst) {
                b"451 4.3.0 try again later\r\n"
            } else {
                // MAIL starts a new transaction (RFC 5321 4.1.4), as on a
                // connection reused after an earlier mail.
                current = Captured {
                    mail_from: address_of(&text[10..]),
                    rcpt_to: Vec::new(),
                    data: Vec::new(),
                };
                b"250 OK\r\n"
            }
        } else if upper.starts_with("RCPT TO:") {
            let recipient = address_of(&text[8..]);
            let refusal = shared
                .refused
                .lock()
                .expect("relay lock")
                .get(&recipient)
                .map(|reply| format!("{reply}\r\n").into_bytes());
            if let Some(reply) = refusal.or_else(|| shared.scripted(Stage::Rcpt)) {
                scripted = reply;
                &scripted
            } else {
                current.rcpt_to.push(recipient);
                b"250 OK\r\n"
            }
        } else if upper == "DATA" {
            if write.write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            let mut data = Vec::new();
            loop {
                line.clear();
                match lines.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if line == b".\r\n" {
                    break;
                }
                let unstuffed = if line.starts_with(b"..") {
                    &line[1..]
                } else {
                    &line[..]
                };
                data.extend_from_slice(unstuffed);
            }
            if let Some(reply) = shared.scripted(Stage::Data) {
                scripted = reply;
                if write.write_all(&scripted).await.is_err() {
                    return;
                }
                continue;
            }
            current.data = data;
            shared
                .mails
                .lock()
                .expect("relay lock")
                .push(current.clone());
            shared.arrived.notify_waiters();
            if shared.hang_up.load(Ordering::SeqCst) {
                let _ = write.write_all(b"250 OK queued\r\n").await;
                return;
            }
            b"250 OK queued\r\n"
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"502 not implemented\r\n"
        };
        if write.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// The user name and password of an `AUTH PLAIN` initial response
/// (base64 of `authzid NUL user NUL password`).
fn plain_credentials(encoded: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let mut parts = text.split('\0').skip(1);
    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
}

fn address_of(argument: &str) -> String {
    argument
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default()
        .to_owned()
}
