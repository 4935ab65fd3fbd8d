//! `Relay`: delivery to the configured SMTP relay over connections of our
//! own, kept open and reused between replies (at most one idle connection
//! per parallel delivery).
//!
//! lettre speaks the protocol (`AsyncSmtpConnection`), but we open the
//! socket: lettre's transport leaves Nagle's algorithm on and writes a
//! message's body and its final `.` in two writes, so the `.` waits for the
//! relay to acknowledge the body, which a relay waiting for that `.` delays
//! (delayed ACK, 40 ms on Linux): every mail took 40 ms longer than it
//! needs. lettre has no setting for it, so every socket here is opened with
//! `TCP_NODELAY`. STARTTLS is lettre's; implicit TLS (`smtps://`) is a rustls
//! client of our own (aws-lc-rs, the roots lettre uses), because lettre
//! only wraps sockets it opened itself.
//!
//! When the relay offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out
//! as one group: two round trips a mail instead of four. lettre keeps no
//! note of PIPELINING from its EHLO, so a new connection asks with a second
//! EHLO of its own, and the group is written and its answers read through
//! lettre's `command` and `read_response`.
//!
//! The URL is read as lettre's `from_url` reads it: `smtp://host[:25]`,
//! `smtp://host[:587]?tls=required|opportunistic`, `smtps://host[:465]`,
//! credentials as `user:password@` (percent-encoded); `outbound.username`
//! and `password` take precedence, and EHLO names `smtp.hostname`.

use crate::mailer::{RelayAnswer, SendError};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use url::Url;

/// An idle connection older than this is checked with RSET before it
/// carries a mail: relays close idle connections after a while, and a
/// connection found dead before MAIL costs nothing but a reconnect.
const CHECK_AFTER: Duration = Duration::from_secs(2);
/// An idle connection older than this is closed instead of reused (Postfix
/// closes idle clients after 300 s; many relays sooner).
const DROP_AFTER: Duration = Duration::from_secs(60);

/// How the connection to the relay is secured, as the URL says.
enum Security {
    /// `smtp://host` without `tls`.
    Plain,
    /// `smtp://host?tls=opportunistic`: STARTTLS when offered.
    Opportunistic(TlsParameters),
    /// `smtp://host?tls=required`: STARTTLS or no delivery.
    Required(TlsParameters),
    /// `smtps://host`: TLS from the first byte.
    Implicit(TlsConnector, ServerName<'static>),
}

impl Security {
    fn name(&self) -> &'static str {
        match self {
            Security::Plain => "plain",
            Security::Opportunistic(_) => "opportunistic",
            Security::Required(_) => "required",
            Security::Implicit(..) => "implicit",
        }
    }
}

/// The relay: where it is, how we greet and authenticate, and the
/// connections parked between deliveries.
pub(super) struct Relay {
    host: String,
    port: u16,
    security: Security,
    hello: ClientId,
    credentials: Option<Credentials>,
    parked: Mutex<Vec<Parked>>,
    max_parked: usize,
}

struct Parked {
    conn: Connection,
    since: Instant,
}

/// A connection to the relay, and whether the relay offered PIPELINING on
/// it.
struct Connection {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
}

impl Connection {
    /// Sends one mail: MAIL, RCPT and DATA as one group where the relay
    /// takes it, else one by one as lettre sends them. A mail that needs
    /// SMTPUTF8 or 8BITMIME goes through lettre's `send`, which asks for
    /// them (our replies are ASCII: their MIME parts are encoded).
    async fn send(&mut self, envelope: &Envelope, body: &[u8]) -> Result<Response, LettreError> {
        let plain = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .all(|address| AsRef::<str>::as_ref(address).is_ascii())
            && body.is_ascii();
        if !(self.pipelining && plain) {
            return self.smtp.send(envelope, body).await;
        }
        let result = self.send_pipelined(envelope, body).await;
        if result.is_err() {
            // As lettre's `send` does after any refusal: the answers still
            // unread would otherwise be taken for the next mail's.
            self.smtp.abort().await;
        }
        result
    }

    async fn send_pipelined(
        &mut self,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<Response, LettreError> {
        let mut group = Mail::new(envelope.from().cloned(), Vec::new()).to_string();
        for recipient in envelope.to() {
            group.push_str(&Rcpt::new(recipient.clone(), Vec::new()).to_string());
        }
        group.push_str(&Data.to_string());
        // The first failure is the answer: MAIL's, then each RCPT's, then
        // DATA's.
        self.smtp.command(group).await?;
        for _ in envelope.to() {
            self.smtp.read_response().await?;
        }
        self.smtp.read_response().await?;
        self.smtp.message(body).await
    }
}

type LettreError = lettre::transport::smtp::Error;

/// What the settings say about the relay besides its URL.
pub(super) struct RelayOptions<'a> {
    /// Our name in EHLO (`smtp.hostname`).
    pub hostname: &'a str,
    /// `outbound.username` and `password`; `None` leaves the URL's.
    pub credentials: Option<Credentials>,
    /// Idle connections kept (`outbound.parallel_deliveries`).
    pub max_idle: usize,
}

impl Relay {
    /// Reads the relay URL.
    ///
    /// # Errors
    /// The URL names no host, an unknown scheme or `tls` value, or carries
    /// credentials that are not valid UTF-8 once decoded.
    pub(super) fn new(url: &Url, options: RelayOptions<'_>) -> anyhow::Result<Self> {
        // The error never shows the URL itself: it may carry a password.
        let invalid =
            |what: &dyn std::fmt::Display| anyhow::anyhow!("invalid outbound.relay: {what}");
        let host = url
            .host_str()
            .ok_or_else(|| invalid(&"no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = url
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        let parameters = || TlsParameters::new(host.clone()).map_err(|e| invalid(&e));
        let (security, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::Plain, 25),
            ("smtp", Some("required")) => (Security::Required(parameters()?), 587),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic(parameters()?), 587),
            ("smtps", _) => {
                let name = ServerName::try_from(host.clone()).map_err(|e| invalid(&e))?;
                (Security::Implicit(tls_connector()?, name), 465)
            }
            (scheme, tls) => {
                return Err(invalid(&format!(
                    "unknown scheme {scheme:?} or tls value {tls:?}"
                )));
            }
        };
        let credentials = match options.credentials {
            Some(credentials) => Some(credentials),
            None => url_credentials(url).map_err(|e| invalid(&e))?,
        };
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            hello: ClientId::Domain(options.hostname.to_owned()),
            credentials,
            parked: Mutex::new(Vec::new()),
            max_parked: options.max_idle.max(1),
        })
    }

    /// Delivers one message over an idle connection or a new one, and keeps
    /// the connection for the next. An idle connection the relay closed
    /// meanwhile fails before any reply to this message; then a new
    /// connection is tried once.
    ///
    /// # Errors
    /// `Permanent` for a 5xx answer, `Temporary` for anything else.
    pub(super) async fn send(
        &self,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<RelayAnswer, SendError> {
        if let Some(mut conn) = self.unpark().await {
            match conn.send(envelope, body).await {
                Ok(response) => {
                    self.park(conn);
                    return Ok(answer_of(&response));
                }
                // The relay answered: that answer stands.
                Err(error) if error.status().is_some() => return Err(classify(&error)),
                // The connection was gone: try a fresh one.
                Err(error) => {
                    tracing::debug!(error.message = %error, "an idle relay connection had closed");
                }
            }
        }
        let mut conn = self.connect().await?;
        let response = conn
            .send(envelope, body)
            .await
            .map_err(|error| classify(&error))?;
        self.park(conn);
        Ok(answer_of(&response))
    }

    /// An idle connection, checked with RSET when it has idled a while.
    async fn unpark(&self) -> Option<Connection> {
        loop {
            let parked = self.lock().pop()?;
            let idle = parked.since.elapsed();
            if idle > DROP_AFTER {
                continue;
            }
            let mut conn = parked.conn;
            if idle > CHECK_AFTER && conn.smtp.command(Rset).await.is_err() {
                continue;
            }
            return Some(conn);
        }
    }

    /// Keeps a connection for the next mail, unless lettre gave up on it (it
    /// does after any refusal) or enough are kept already.
    fn park(&self, conn: Connection) {
        if conn.smtp.has_broken() {
            return;
        }
        let mut parked = self.lock();
        if parked.len() < self.max_parked {
            parked.push(Parked {
                conn,
                since: Instant::now(),
            });
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Parked>> {
        // Only idle connections live here; a panic elsewhere leaves them usable.
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a connection: TCP with `TCP_NODELAY`, TLS as configured,
    /// greeting, EHLO (and ours, to learn of PIPELINING), and
    /// authentication when credentials are set.
    async fn connect(&self) -> Result<Connection, SendError> {
        let tcp = self.tcp().await?;
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit(connector, name) => {
                let tls = connector.connect(name.clone(), tcp).await.map_err(|e| {
                    SendError::Temporary(RelayAnswer::without_code(format!(
                        "TLS with the relay failed: {e}"
                    )))
                })?;
                Box::new(TlsTcp(tls))
            }
            _ => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(|error| classify(&error))?;
        let starttls = match &self.security {
            Security::Required(parameters) => Some(parameters),
            Security::Opportunistic(parameters) if conn.can_starttls() => Some(parameters),
            _ => None,
        };
        if let Some(parameters) = starttls {
            conn.starttls(parameters.clone(), &self.hello)
                .await
                .map_err(|error| classify(&error))?;
        }
        // Before AUTH: an EHLO resets the session, and some relays forget
        // a login with it.
        let hello = conn
            .command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(|error| classify(&error))?;
        let pipelining = offers_pipelining(&hello);
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(|error| classify(&error))?;
        }
        tracing::debug!(
            relay.security = self.security.name(),
            relay.pipelining = pipelining,
            "opened a connection to the relay"
        );
        Ok(Connection {
            smtp: conn,
            pipelining,
        })
    }

    /// The first address of the relay that accepts a TCP connection.
    async fn tcp(&self) -> Result<TcpStream, SendError> {
        let unreachable = |e: io::Error| {
            SendError::Temporary(RelayAnswer::without_code(format!(
                "the relay is unreachable: {e}"
            )))
        };
        let mut last = None;
        for addr in tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(unreachable)?
        {
            match connect_nodelay(addr).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last = Some(error),
            }
        }
        Err(unreachable(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "no address for the relay")
        })))
    }
}

async fn connect_nodelay(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_nodelay(true)?;
    socket.connect(addr).await
}

/// Credentials written into the URL (`smtp://user:password@host`), decoded
/// as lettre decodes them; none without a password.
fn url_credentials(url: &Url) -> Result<Option<Credentials>, std::str::Utf8Error> {
    let Some(password) = url.password() else {
        return Ok(None);
    };
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map(std::borrow::Cow::into_owned)
    };
    Ok(Some(Credentials::new(
        decode(url.username())?,
        decode(password)?,
    )))
}

/// Whether an EHLO answer offers PIPELINING: a line of its own after the
/// greeting line, as a keyword in any case (RFC 5321 4.1.1.1).
fn offers_pipelining(hello: &Response) -> bool {
    hello.message().skip(1).any(|line| {
        line.split_ascii_whitespace()
            .next()
            .is_some_and(|keyword| keyword.eq_ignore_ascii_case("PIPELINING"))
    })
}

/// A relay's success: its code and text.
fn answer_of(response: &Response) -> RelayAnswer {
    RelayAnswer {
        code: Some(u16::from(response.code())),
        text: response.message().collect::<Vec<_>>().join(" "),
    }
}

/// A relay's refusal for good is permanent; anything else may pass.
fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    let answer = super::relay_error_answer(error);
    if error.is_permanent() {
        SendError::Permanent(answer)
    } else {
        SendError::Temporary(answer)
    }
}

/// The client side of implicit TLS: the roots lettre trusts (Mozilla's,
/// from webpki-roots) and aws-lc-rs, the one provider the process links.
fn tls_connector() -> anyhow::Result<TlsConnector> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("failed to set TLS protocol versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A TLS stream in the shape lettre takes a transport in.
#[derive(Debug)]
struct TlsTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for TlsTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(url: &str, credentials: Option<Credentials>) -> anyhow::Result<Relay> {
        let options = RelayOptions {
            hostname: "registrar.test",
            credentials,
            max_idle: 8,
        };
        Relay::new(&Url::parse(url).expect("url"), options)
    }

    #[test]
    fn the_relay_url_says_port_and_security_as_lettre_reads_it() {
        let cases = [
            ("smtp://mail.example", 25, "plain"),
            ("smtp://mail.example:2525", 2525, "plain"),
            ("smtp://mail.example?tls=required", 587, "required"),
            (
                "smtp://mail.example:25?tls=opportunistic",
                25,
                "opportunistic",
            ),
            ("smtps://mail.example", 465, "implicit"),
            ("smtps://mail.example:4465", 4465, "implicit"),
            ("smtp://[::1]:2525", 2525, "plain"),
        ];
        for (url, port, security) in cases {
            let relay = relay(url, None).expect(url);
            let host = if url.contains("[::1]") {
                "::1"
            } else {
                "mail.example"
            };
            assert_eq!(
                (relay.host.as_str(), relay.port, relay.security.name()),
                (host, port, security),
                "{url}"
            );
        }
        for bad in ["smtp://mail.example?tls=sometimes", "lmtp://mail.example"] {
            let error = relay(bad, None).err().expect(bad).to_string();
            assert!(error.starts_with("invalid outbound.relay"), "{error}");
        }
    }

    #[test]
    fn pipelining_is_a_keyword_line_of_the_ehlo_answer_after_the_greeting() {
        let offers = |answer: &str| {
            let hello: Response = answer.parse().expect("an EHLO answer");
            offers_pipelining(&hello)
        };
        assert!(offers(
            "250-relay.example\r\n250-SIZE 10240000\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        ));
        assert!(offers("250-relay.example\r\n250 pipelining\r\n"));
        assert!(!offers("250-relay.example\r\n250 8BITMIME\r\n"));
        assert!(!offers("250 PIPELINING.example greets you\r\n"));
        assert!(!offers("250-relay.example\r\n250 X-PIPELINING-LATER\r\n"));
    }

    #[test]
    fn credentials_come_from_the_settings_or_else_the_url() {
        let from_url = relay("smtp://jane%40example:s%3Acret@mail.example", None).expect("url");
        assert_eq!(
            from_url.credentials,
            Some(Credentials::new("jane@example".into(), "s:cret".into()))
        );
        let error = relay("smtp://jane:%FF@mail.example", None)
            .err()
            .expect("not UTF-8")
            .to_string();
        assert!(!error.contains("jane"), "{error}");
        let settings = Credentials::new("ops".into(), "other".into());
        let overridden =
            relay("smtp://jane:secret@mail.example", Some(settings.clone())).expect("url");
        assert_eq!(overridden.credentials, Some(settings));
        assert_eq!(
            relay("smtp://jane@mail.example", None)
                .expect("url")
                .credentials,
            None
        );
    }
}
