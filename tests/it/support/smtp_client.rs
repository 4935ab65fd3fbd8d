//! A plain SMTP client for tests: sends commands line by line and reads
//! replies, so tests can assert the code of every step.

use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A reply: code and the text of its last line.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    #[track_caller]
    pub fn assert_code(&self, code: u16) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected SMTP reply: {} {}",
            self.code, self.text
        );
        self
    }
}

pub struct SmtpClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl SmtpClient {
    /// Connects and reads the greeting.
    pub async fn connect(addr: SocketAddr) -> (Self, Reply) {
        let stream = TcpStream::connect(addr).await.expect("connect to SMTP");
        let (read, writer) = stream.into_split();
        let mut client = Self {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = client.read_reply().await;
        (client, greeting)
    }

    /// Connects without reading the greeting (to talk before it).
    pub async fn connect_quietly(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect to SMTP");
        let (read, writer) = stream.into_split();
        Self {
            reader: BufReader::new(read),
            writer,
        }
    }

    /// Reads the next reply, or `None` once the server has closed the
    /// connection (end of stream or reset). Fails after the test deadline.
    pub async fn next_reply(&mut self) -> Option<Reply> {
        loop {
            let mut line = Vec::new();
            let read =
                tokio::time::timeout(super::DEADLINE, self.reader.read_until(b'\n', &mut line))
                    .await
                    .expect("the server answers or closes within the deadline");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&line);
            let code = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("bad SMTP reply line {line:?}"));
            if line.as_bytes().get(3) != Some(&b'-') {
                let text = line.get(4..).unwrap_or_default().trim_end().to_owned();
                return Some(Reply { code, text });
            }
        }
    }

    /// Reads every reply until the server closes the connection.
    pub async fn replies_until_closed(&mut self) -> Vec<Reply> {
        let mut replies = Vec::new();
        while let Some(reply) = self.next_reply().await {
            replies.push(reply);
        }
        replies
    }

    /// Writes `chunk` once per `every` until the server says something;
    /// returns what it said (`None` when it closed). For clients that are
    /// slow on purpose: the pacing is the behavior under test.
    pub async fn send_slowly_until_answered(
        &mut self,
        chunk: &[u8],
        every: std::time::Duration,
    ) -> Option<Reply> {
        let mut ticks = tokio::time::interval(every);
        let started = tokio::time::Instant::now();
        loop {
            assert!(
                started.elapsed() < super::DEADLINE,
                "the server never answered the slow client"
            );
            tokio::select! {
                // fill_buf consumes nothing, so dropping it on a tick loses
                // no reply bytes.
                _ = self.reader.fill_buf() => break,
                _ = ticks.tick() => {
                    if self.writer.write_all(chunk).await.is_err() {
                        break;
                    }
                }
            }
        }
        self.next_reply().await
    }

    /// Asserts the server closes the connection without another reply.
    pub async fn assert_closed(&mut self) {
        if let Some(reply) = self.next_reply().await {
            panic!(
                "expected the connection to close, got {} {}",
                reply.code, reply.text
            );
        }
    }

    /// Sends the EHLO command and returns every line of its reply.
    pub async fn ehlo_lines(&mut self, name: &str) -> Vec<String> {
        self.send_raw(format!("EHLO {name}\r\n").as_bytes()).await;
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            self.reader
                .read_line(&mut line)
                .await
                .expect("read SMTP reply");
            assert!(line.starts_with("250"), "EHLO refused: {line}");
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line.get(4..).unwrap_or_default().trim_end().to_owned());
            if last {
                return lines;
            }
        }
    }

    /// Sends one command line (CRLF added) and reads the reply.
    pub async fn command(&mut self, line: &str) -> Reply {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
        self.read_reply().await
    }

    /// Writes bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write to SMTP");
    }

    /// Writes bytes as they are; `false` when the server has already closed.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> bool {
        self.writer.write_all(bytes).await.is_ok()
    }

    /// Reads one (possibly multi-line) reply.
    pub async fn read_reply(&mut self) -> Reply {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self
                .reader
                .read_line(&mut line)
                .await
                .expect("read SMTP reply");
            assert!(read > 0, "SMTP connection closed while waiting for a reply");
            let code = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("bad SMTP reply line {line:?}"));
            if line.as_bytes().get(3) != Some(&b'-') {
                return Reply {
                    code,
                    text: line.get(4..).unwrap_or_default().trim_end().to_owned(),
                };
            }
        }
    }

    /// Sends the message body after `DATA` was accepted: lines normalised to
    /// CRLF, dot-stuffed, terminated; returns the end-of-DATA reply.
    pub async fn send_body(&mut self, raw: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
        let mut wire = Vec::with_capacity(raw.len() + 64);
        for line in text.trim_end_matches('\n').split('\n') {
            if line.starts_with('.') {
                wire.push(b'.');
            }
            wire.extend_from_slice(line.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\n");
        self.send_raw(&wire).await;
        self.read_reply().await
    }

    /// A whole transaction: EHLO, MAIL, RCPT, DATA, body. Returns the first
    /// reply that is not a success, or the end-of-DATA reply.
    pub async fn send_mail(&mut self, from: &str, to: &str, raw: &[u8]) -> Reply {
        for line in [
            "EHLO client.test".to_owned(),
            format!("MAIL FROM:<{from}>"),
            format!("RCPT TO:<{to}>"),
        ] {
            let reply = self.command(&line).await;
            if reply.code >= 300 {
                return reply;
            }
        }
        let reply = self.command("DATA").await;
        if reply.code != 354 {
            return reply;
        }
        self.send_body(raw).await
    }
}
