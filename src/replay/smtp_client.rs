//! A small SMTP client that delivers one message to our listener the way a
//! sending server would, and reports the step that gave the final answer.
//!
//! It sends bytes as they are (invalid UTF-8 included), only turning bare LF
//! line endings into CRLF and dot-stuffing, because fixtures are stored with
//! LF endings. It does not speak TLS or extensions: our listener needs
//! neither.

use super::case::Envelope;
use anyhow::Context as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

/// How long one reply may take before the delivery is abandoned.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer that ended a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalReply {
    /// `connect`, `mail`, `rcpt`, `data` or `message`.
    pub stage: &'static str,
    pub code: u16,
    pub text: String,
}

/// Delivers `raw` with `envelope` to the listener at `server`.
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
    let mut client = Client::connect(server, envelope.client_ip).await?;
    let greeting = client.read_reply().await?;
    if greeting.0 != 220 {
        return Ok(greeting.at("connect"));
    }
    let ehlo = client.command(&format!("EHLO {}", envelope.helo)).await?;
    if ehlo.0 != 250 {
        return Ok(ehlo.at("connect"));
    }
    let mail = client
        .command(&format!("MAIL FROM:<{}>", envelope.mail_from))
        .await?;
    if mail.0 >= 300 {
        return Ok(mail.at("mail"));
    }
    let mut accepted = 0;
    let mut refused = None;
    for rcpt in &envelope.rcpt_to {
        let reply = client.command(&format!("RCPT TO:<{rcpt}>")).await?;
        if reply.0 < 300 {
            accepted += 1;
        } else {
            refused = Some(reply);
        }
    }
    if accepted == 0 {
        let reply = refused.unwrap_or((503, "no recipients given".into()));
        return Ok(reply.at("rcpt"));
    }
    let data = client.command("DATA").await?;
    if data.0 != 354 {
        return Ok(data.at("data"));
    }
    client.send(&wire_body(raw)).await?;
    let end = client.read_reply().await?;
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

type Reply = (u16, String);

trait At {
    fn at(self, stage: &'static str) -> FinalReply;
}

impl At for Reply {
    fn at(self, stage: &'static str) -> FinalReply {
        FinalReply {
            stage,
            code: self.0,
            text: self.1,
        }
    }
}

struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    async fn connect(server: SocketAddr, source: IpAddr) -> anyhow::Result<Self> {
        let stream = if source.is_loopback() && source.is_ipv4() == server.is_ipv4() {
            let socket = if source.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket
                .bind(SocketAddr::new(source, 0))
                .with_context(|| format!("cannot connect from {source}"))?;
            socket.connect(server).await
        } else {
            TcpStream::connect(server).await
        }
        .with_context(|| format!("cannot connect to the SMTP listener at {server}"))?;
        let (read, writer) = stream.into_split();
        Ok(Self {
            reader: BufReader::new(read),
            writer,
        })
    }

    async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.writer
            .write_all(bytes)
            .await
            .context("the SMTP listener closed the connection")
    }

    async fn command(&mut self, line: &str) -> anyhow::Result<Reply> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply().await
    }

    /// Reads one reply; a multi-line reply gives the code and its last line.
    async fn read_reply(&mut self) -> anyhow::Result<Reply> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let read =
                tokio::time::timeout(REPLY_TIMEOUT, self.reader.read_until(b'\n', &mut line))
                    .await
                    .context("the SMTP listener did not answer in time")?
                    .context("cannot read from the SMTP listener")?;
            anyhow::ensure!(read > 0, "the SMTP listener closed the connection");
            let text = String::from_utf8_lossy(&line);
            let code = text
                .get(..3)
                .and_then(|code| code.parse::<u16>().ok())
                .with_context(|| format!("not an SMTP reply: {text:?}"))?;
            if text.as_bytes().get(3) != Some(&b'-') {
                return Ok((
                    code,
                    text.get(4..).unwrap_or_default().trim_end().to_owned(),
                ));
            }
        }
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
