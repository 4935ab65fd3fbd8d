//! `CaptureRelay`: a small real SMTP server on 127.0.0.1:0 that records every
//! message it accepts and wakes waiters. It can be told to answer `451` to
//! every MAIL, to exercise retries.

use super::DEADLINE;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One message as the relay received it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    mails: Mutex<Vec<Captured>>,
    arrived: Notify,
    failing: AtomicBool,
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
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        let upper = text.to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("EHLO") {
            b"250-capture.test\r\n250 8BITMIME\r\n"
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
            if shared.failing.load(Ordering::SeqCst) {
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
            current.rcpt_to.push(address_of(&text[8..]));
            b"250 OK\r\n"
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
            current.data = data;
            shared
                .mails
                .lock()
                .expect("relay lock")
                .push(current.clone());
            shared.arrived.notify_waiters();
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

fn address_of(argument: &str) -> String {
    argument
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default()
        .to_owned()
}
