//! The one SMTP client of the project: replay delivers fixtures with it, and
//! the integration tests and the intake bench speak raw SMTP with it.
//!
//! It sends bytes as they are (invalid UTF-8 included), only turning bare LF
//! line endings into CRLF and dot-stuffing message bodies, because fixtures
//! are stored with LF endings. It does not speak TLS or extensions: our
//! listener needs neither (the STARTTLS test uses lettre). Every read has a
//! deadline, so a silent server fails a delivery instead of hanging it.

use crate::replay::case::Envelope;
use anyhow::Context as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

/// How long one reply may take before the client gives up.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A reply: its code and the text of its last line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    /// Panics unless the code is `code`, naming the reply (for tests and
    /// benches, where a wrong answer ends the run).
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

/// The answer that ended a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalReply {
    /// `connect`, `mail`, `rcpt`, `data` or `message`.
    pub stage: &'static str,
    pub code: u16,
    pub text: String,
}

/// Delivers `raw` with `envelope` to the listener at `server` in one
/// session, the way a sending server would, and reports the step that gave
/// the final answer.
///
/// The connection comes from `envelope.client_ip` when that is a loopback
/// address (so the daemon sees it); any other address cannot be presented
/// over a real socket, and the connection comes from the loopback address.
///
/// # Errors
/// The connection fails or a reply does not come in time.
pub async fn deliver(
    server: SocketAddr,
    envelope: &Envelope,
    raw: &[u8],
) -> anyhow::Result<FinalReply> {
    let (mut client, greeting) = SmtpClient::connect_from(server, envelope.client_ip).await?;
    if greeting.code != 220 {
        return Ok(greeting.at("connect"));
    }
    let ehlo = client.command(&format!("EHLO {}", envelope.helo)).await?;
    if ehlo.code != 250 {
        return Ok(ehlo.at("connect"));
    }
    let mail = client
        .command(&format!("MAIL FROM:<{}>", envelope.mail_from))
        .await?;
    if mail.code >= 300 {
        return Ok(mail.at("mail"));
    }
    let mut accepted = 0;
    let mut refused = None;
    for rcpt in &envelope.rcpt_to {
        let reply = client.command(&format!("RCPT TO:<{rcpt}>")).await?;
        if reply.code < 300 {
            accepted += 1;
        } else {
            refused = Some(reply);
        }
    }
    if accepted == 0 {
        let reply = refused.unwrap_or(Reply {
            code: 503,
            text: "no recipients given".into(),
        });
        return Ok(reply.at("rcpt"));
    }
    let data = client.command("DATA").await?;
    if data.code != 354 {
        return Ok(data.at("data"));
    }
    let end = client.send_body(raw).await?;
    // The answer is in; a failed QUIT changes nothing about it.
    let _ = client.command("QUIT").await;
    Ok(end.at("message"))
}

/// The message as it goes over the wire after DATA: CRLF line endings,
/// leading dots doubled, terminated by `.` on a line of its own.
pub fn wire_body(raw: &[u8]) -> Vec<u8> {
    let mut wire = Vec::with_capacity(raw.len() + raw.len() / 40 + 5);
    let mut at_line_start = true;
    let mut previous = 0u8;
    for &byte in raw {
        if at_line_start && byte == b'.' {
            wire.push(b'.');
        }
        if byte == b'\n' && previous != b'\r' {
            wire.push(b'\r');
        }
        wire.push(byte);
        at_line_start = byte == b'\n';
        previous = byte;
    }
    if !at_line_start {
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b".\r\n");
    wire
}

impl Reply {
    fn at(self, stage: &'static str) -> FinalReply {
        FinalReply {
            stage,
            code: self.code,
            text: self.text,
        }
    }
}

/// One SMTP session as the client sees it: commands line by line, replies
/// read one at a time.
pub struct SmtpClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl SmtpClient {
    /// Connects and reads the greeting.
    ///
    /// # Errors
    /// The connection fails or no greeting comes in time.
    pub async fn connect(server: SocketAddr) -> anyhow::Result<(Self, Reply)> {
        let mut client = Self::connect_quietly(server).await?;
        let greeting = client.read_reply().await?;
        Ok((client, greeting))
    }

    /// Connects from `source` when that is a loopback address of the
    /// server's family (any other address cannot be presented over a real
    /// socket), and reads the greeting.
    ///
    /// # Errors
    /// The connection fails or no greeting comes in time.
    pub async fn connect_from(server: SocketAddr, source: IpAddr) -> anyhow::Result<(Self, Reply)> {
        if !(source.is_loopback() && source.is_ipv4() == server.is_ipv4()) {
            return Self::connect(server).await;
        }
        let socket = if source.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket
            .bind(SocketAddr::new(source, 0))
            .with_context(|| format!("cannot connect from {source}"))?;
        let stream = socket
            .connect(server)
            .await
            .with_context(|| format!("cannot connect to the SMTP listener at {server}"))?;
        let mut client = Self::from_stream(stream);
        let greeting = client.read_reply().await?;
        Ok((client, greeting))
    }

    /// Connects without reading the greeting (to talk before it).
    ///
    /// # Errors
    /// The connection fails.
    pub async fn connect_quietly(server: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(server)
            .await
            .with_context(|| format!("cannot connect to the SMTP listener at {server}"))?;
        Ok(Self::from_stream(stream))
    }

    fn from_stream(stream: TcpStream) -> Self {
        let (read, writer) = stream.into_split();
        Self {
            reader: BufReader::new(read),
            writer,
        }
    }

    /// Sends one command line (CRLF added) and reads the reply.
    ///
    /// # Errors
    /// The connection fails or closes, or no reply comes in time.
    pub async fn command(&mut self, line: &str) -> anyhow::Result<Reply> {
        self.send_raw(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply().await
    }

    /// Sends EHLO and returns the text of every line of its `250` reply.
    ///
    /// # Errors
    /// The connection fails, EHLO is refused, or no reply comes in time.
    pub async fn ehlo_lines(&mut self, name: &str) -> anyhow::Result<Vec<String>> {
        self.send_raw(format!("EHLO {name}\r\n").as_bytes()).await?;
        let mut lines = Vec::new();
        loop {
            let (code, last, text) = self
                .read_line()
                .await?
                .context("the SMTP listener closed the connection")?;
            anyhow::ensure!(code == 250, "EHLO refused: {code} {text}");
            lines.push(text);
            if last {
                return Ok(lines);
            }
        }
    }

    /// Sends the message after `DATA` was accepted (see `wire_body`) and
    /// reads the end-of-DATA reply.
    ///
    /// # Errors
    /// The connection fails or closes, or no reply comes in time.
    pub async fn send_body(&mut self, raw: &[u8]) -> anyhow::Result<Reply> {
        self.send_raw(&wire_body(raw)).await?;
        self.read_reply().await
    }

    /// A whole transaction: EHLO, MAIL, RCPT, DATA, body. Returns the first
    /// reply that is not a success, or the end-of-DATA reply.
    ///
    /// # Errors
    /// The connection fails or closes, or a reply does not come in time.
    pub async fn send_mail(&mut self, from: &str, to: &str, raw: &[u8]) -> anyhow::Result<Reply> {
        for line in [
            "EHLO client.test".to_owned(),
            format!("MAIL FROM:<{from}>"),
            format!("RCPT TO:<{to}>"),
        ] {
            let reply = self.command(&line).await?;
            if reply.code >= 300 {
                return Ok(reply);
            }
        }
        let reply = self.command("DATA").await?;
        if reply.code != 354 {
            return Ok(reply);
        }
        self.send_body(raw).await
    }

    /// Writes bytes as they are.
    ///
    /// # Errors
    /// The server has closed the connection.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.writer
            .write_all(bytes)
            .await
            .context("the SMTP listener closed the connection")
    }

    /// Writes `chunk` once per `every` until the server says something;
    /// returns what it said (`None` when it closed). For clients that are
    /// slow on purpose: the pacing is the behavior under test.
    ///
    /// # Errors
    /// The server says nothing within `REPLY_TIMEOUT`, or sends no reply.
    pub async fn send_slowly_until_answered(
        &mut self,
        chunk: &[u8],
        every: Duration,
    ) -> anyhow::Result<Option<Reply>> {
        let mut ticks = tokio::time::interval(every);
        let started = tokio::time::Instant::now();
        loop {
            anyhow::ensure!(
                started.elapsed() < REPLY_TIMEOUT,
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

    /// Reads one (possibly multi-line) reply.
    ///
    /// # Errors
    /// The connection closes first, or no reply comes in time.
    pub async fn read_reply(&mut self) -> anyhow::Result<Reply> {
        self.next_reply()
            .await?
            .context("the SMTP listener closed the connection while a reply was due")
    }

    /// Reads the next reply, or `None` once the server has closed the
    /// connection (end of stream or reset).
    ///
    /// # Errors
    /// No reply or close comes in time, or a line is not an SMTP reply.
    pub async fn next_reply(&mut self) -> anyhow::Result<Option<Reply>> {
        loop {
            let Some((code, last, text)) = self.read_line().await? else {
                return Ok(None);
            };
            if last {
                return Ok(Some(Reply { code, text }));
            }
        }
    }

    /// Reads every reply until the server closes the connection.
    ///
    /// # Errors
    /// As `next_reply`.
    pub async fn replies_until_closed(&mut self) -> anyhow::Result<Vec<Reply>> {
        let mut replies = Vec::new();
        while let Some(reply) = self.next_reply().await? {
            replies.push(reply);
        }
        Ok(replies)
    }

    /// Reads one reply line: its code, whether it is the last line, and its
    /// text; `None` when the connection closed or was reset.
    async fn read_line(&mut self) -> anyhow::Result<Option<(u16, bool, String)>> {
        let mut line = Vec::new();
        let read = tokio::time::timeout(REPLY_TIMEOUT, self.reader.read_until(b'\n', &mut line))
            .await
            .context("the SMTP listener did not answer in time")?;
        if matches!(read, Ok(0) | Err(_)) {
            return Ok(None);
        }
        let line = String::from_utf8_lossy(&line);
        let code = line
            .get(..3)
            .and_then(|code| code.parse::<u16>().ok())
            .with_context(|| format!("not an SMTP reply: {line:?}"))?;
        let last = line.as_bytes().get(3) != Some(&b'-');
        let text = line.get(4..).unwrap_or_default().trim_end().to_owned();
        Ok(Some((code, last, text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_sent_with_crlf_and_doubled_leading_dots() {
        let wire = wire_body(b"Subject: x\n\n.hidden\r\nlast");
        assert_eq!(wire, b"Subject: x\r\n\r\n..hidden\r\nlast\r\n.\r\n");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_sent_unchanged() {
        let wire = wire_body(b"Subject: \xff\xfe\n\nbody\n");
        assert_eq!(wire, b"Subject: \xff\xfe\r\n\r\nbody\r\n.\r\n");
    }
}
