//! A minimal SMTP client for load: connects from a chosen loopback address
//! and reads reply codes; every wait is bounded.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The client address of connection number `n`: 127.a.b.c, never 127.0.0.1
/// (the server's own) and distinct for the first 15 million connections.
pub fn client_address(n: u64) -> Ipv4Addr {
    let n = n % (254 * 250 * 250);
    let a = 1 + (n / (250 * 250)) as u8;
    let b = ((n / 250) % 250) as u8;
    let c = (n % 250) as u8 + 2;
    Ipv4Addr::new(127, a, b, c)
}

/// Where a transaction ended, for the counts by code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    End,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "ehlo",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Data => "data",
            Stage::End => "end",
        }
    }
}

/// A failed step: the reply code (or none for a network error) and where.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: Option<u16>,
    pub stage: Stage,
    pub detail: String,
}

impl Failure {
    /// The label counted in the report, e.g. `421@greeting`, `io@end`.
    pub fn label(&self) -> String {
        match self.code {
            Some(code) => format!("{code}@{}", self.stage.as_str()),
            None => format!("{}@{}", self.detail, self.stage.as_str()),
        }
    }
}

pub struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    timeout: Duration,
    line: Vec<u8>,
    /// MAIL, RCPT and DATA go out in one group, as Postfix's client sends
    /// them to a server that offers PIPELINING.
    pipelining: bool,
}

impl Connection {
    /// Binds `source` (port chosen by the kernel), connects, reads the
    /// greeting and says EHLO.
    pub async fn open(
        target: SocketAddr,
        source: Ipv4Addr,
        timeout: Duration,
    ) -> Result<Self, Failure> {
        let fail = |stage: Stage, error: io::Error| Failure {
            code: None,
            stage,
            detail: kind_name(&error),
        };
        let socket = TcpSocket::new_v4().map_err(|e| fail(Stage::Connect, e))?;
        socket
            .bind(SocketAddr::new(source.into(), 0))
            .map_err(|e| fail(Stage::Connect, e))?;
        let stream = tokio::time::timeout(timeout, socket.connect(target))
            .await
            .map_err(|_| fail(Stage::Connect, io::ErrorKind::TimedOut.into()))?
            .map_err(|e| fail(Stage::Connect, e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| fail(Stage::Connect, e))?;
        let (read, writer) = stream.into_split();
        let mut connection = Self {
            reader: BufReader::new(read),
            writer,
            timeout,
            line: Vec::with_capacity(256),
            pipelining: false,
        };
        connection.expect(Stage::Greeting, 220).await?;
        connection
            .command("EHLO loadgen.test", Stage::Ehlo, 250)
            .await?;
        Ok(connection)
    }

    /// Sends MAIL, RCPT and DATA as one pipelined group from now on.
    pub fn pipelined(mut self, on: bool) -> Self {
        self.pipelining = on;
        self
    }

    /// Sends one message; `Ok` means the end of DATA was answered `250`.
    pub async fn send(&mut self, from: &str, rcpt: &str, body: &[u8]) -> Result<(), Failure> {
        if self.pipelining {
            return self.send_pipelined(from, rcpt, body).await;
        }
        self.command(&format!("MAIL FROM:<{from}>"), Stage::Mail, 250)
            .await?;
        self.command(&format!("RCPT TO:<{rcpt}>"), Stage::Rcpt, 250)
            .await?;
        self.command("DATA", Stage::Data, 354).await?;
        self.write(body, Stage::End).await?;
        self.expect(Stage::End, 250).await
    }

    /// `send` with MAIL, RCPT and DATA in one write; all three replies are
    /// read before the first unexpected one is reported, so the session
    /// stays in step.
    async fn send_pipelined(&mut self, from: &str, rcpt: &str, body: &[u8]) -> Result<(), Failure> {
        let group = format!("MAIL FROM:<{from}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n");
        self.write(group.as_bytes(), Stage::Mail).await?;
        let mail = self.expect(Stage::Mail, 250).await;
        let rcpt = self.expect(Stage::Rcpt, 250).await;
        let data = self.expect(Stage::Data, 354).await;
        if let Err(failure) = mail.and(rcpt) {
            if data.is_ok() {
                // No server should say 354 here; end the message unsent.
                self.command(".", Stage::End, 250).await.ok();
            }
            return Err(failure);
        }
        data?;
        self.write(body, Stage::End).await?;
        self.expect(Stage::End, 250).await
    }

    /// Says QUIT and waits (briefly) for the answer, so the server closes
    /// first and keeps the TIME_WAIT.
    pub async fn quit(mut self) {
        if self.write(b"QUIT\r\n", Stage::End).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.read_reply()).await;
        }
    }

    /// Sends a command line and expects `want`.
    pub async fn command(&mut self, line: &str, stage: Stage, want: u16) -> Result<(), Failure> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write(&bytes, stage).await?;
        self.expect(stage, want).await
    }

    async fn write(&mut self, bytes: &[u8], stage: Stage) -> Result<(), Failure> {
        match tokio::time::timeout(self.timeout, self.writer.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Failure {
                code: None,
                stage,
                detail: kind_name(&error),
            }),
            Err(_) => Err(Failure {
                code: None,
                stage,
                detail: "timeout".into(),
            }),
        }
    }

    async fn expect(&mut self, stage: Stage, want: u16) -> Result<(), Failure> {
        match tokio::time::timeout(self.timeout, self.read_reply()).await {
            Ok(Ok(code)) if code == want => Ok(()),
            Ok(Ok(code)) => Err(Failure {
                code: Some(code),
                stage,
                detail: String::new(),
            }),
            Ok(Err(error)) => Err(Failure {
                code: None,
                stage,
                detail: kind_name(&error),
            }),
            Err(_) => Err(Failure {
                code: None,
                stage,
                detail: "timeout".into(),
            }),
        }
    }

    /// Reads one (possibly multi-line) reply and returns its code.
    pub async fn read_reply(&mut self) -> io::Result<u16> {
        loop {
            self.line.clear();
            let read = self.reader.read_until(b'\n', &mut self.line).await?;
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let code = std::str::from_utf8(self.line.get(..3).unwrap_or_default())
                .ok()
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad reply line"))?;
            if self.line.get(3) != Some(&b'-') {
                return Ok(code);
            }
        }
    }
}

/// A short name for a network error, for the counts.
fn kind_name(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "refused".into(),
        io::ErrorKind::ConnectionReset => "reset".into(),
        io::ErrorKind::UnexpectedEof => "closed".into(),
        io::ErrorKind::TimedOut => "timeout".into(),
        io::ErrorKind::BrokenPipe => "broken_pipe".into(),
        io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable => "no_source_port".into(),
        _ => "io".into(),
    }
}

/// A message of about `size` bytes from `from` to `rcpt`, dot-terminated.
pub fn message(from: &str, rcpt: &str, message_id: &str, size: usize) -> Vec<u8> {
    let mut out = format!(
        "From: Load Generator <{from}>\r\nTo: <{rcpt}>\r\nSubject: account please\r\n\
         Message-ID: <{message_id}>\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    let line = [b'x'; 78];
    while out.len() < size {
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}
