//! `Relay`: delivery to the configured SMTP relay over connections of our
//! own, kept open and reused between replies.
//!
//! lettre speaks the protocol (`AsyncSmtpConnection`), but we open the
//! socket: lettre's own transport leaves Nagle's algorithm on and writes a
//! message's body and its final `.` in two writes, so the `.` waits for the
//! relay to acknowledge the body, which a relay waiting for that `.` delays
//! (delayed ACK: 40 ms on Linux) — every mail took 40 ms more than it needs.
//! Here every socket has `TCP_NODELAY`. Implicit TLS (`smtps://`) is our own
//! rustls client (aws-lc-rs, Mozilla's roots); STARTTLS is lettre's.

use crate::mailer::SendError;
use crate::settings::OutboundSettings;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use secrecy::ExposeSecret as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
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

/// A parked connection idle longer than this is checked with NOOP before
/// it carries a mail; relays close idle connections after a while.
const CHECK_AFTER: Duration = Duration::from_secs(2);
/// A parked connection idle longer than this is closed instead of reused.
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

/// The relay: where it is, how we greet and authenticate, and the
/// connections parked between deliveries.
pub(super) struct Relay {
    host: String,
    port: u16,
    security: Security,
    hello: ClientId,
    credentials: Option<Credentials>,
    connect_timeout: Duration,
    parked: Mutex<Vec<Parked>>,
    max_parked: usize,
}

struct Parked {
    conn: AsyncSmtpConnection,
    since: Instant,
}

impl Relay {
    /// Reads the relay URL (`smtp://host:port[?tls=required|opportunistic]`
    /// or `smtps://host:port`, as lettre reads it) and the credentials.
    ///
    /// # Errors
    /// The URL names no host or an unknown scheme or `tls` value.
    pub(super) fn new(
        url: &Url,
        hostname: &str,
        settings: &OutboundSettings,
    ) -> anyhow::Result<Self> {
        let host = url
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("invalid outbound.relay {url}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = url
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        let parameters = || {
            TlsParameters::new(host.clone())
                .map_err(|e| anyhow::anyhow!("invalid outbound.relay {url}: {e}"))
        };
        let (security, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::Plain, 25),
            ("smtp", Some("required")) => (Security::Required(parameters()?), 587),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic(parameters()?), 587),
            ("smtps", _) => {
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| anyhow::anyhow!("invalid outbound.relay {url}: {e}"))?;
                (Security::Implicit(tls_connector()?, name), 465)
            }
            (scheme, tls) => anyhow::bail!(
                "invalid outbound.relay {url}: unknown scheme {scheme:?} or tls value {tls:?}"
            ),
        };
        let credentials = (!settings.username.is_empty()).then(|| {
            Credentials::new(
                settings.username.clone(),
                settings.password.expose_secret().to_owned(),
            )
        });
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            hello: ClientId::Domain(hostname.to_owned()),
            credentials,
            connect_timeout: settings.send_timeout,
            parked: Mutex::new(Vec::new()),
            max_parked: settings.parallel_deliveries.max(1),
        })
    }

    /// Delivers one message over a parked connection or a new one, and parks
    /// the connection again. A parked connection the relay closed meanwhile
    /// fails before the message is sent; then a new connection is tried
    /// once.
    ///
    /// # Errors
    /// `Permanent` for a 5xx answer, `Temporary` for anything else.
    pub(super) async fn send(&self, envelope: &Envelope, body: &[u8]) -> Result<(), SendError> {
        if let Some(mut conn) = self.unpark().await {
            match conn.send(envelope, body).await {
                Ok(_) => {
                    self.park(conn);
                    return Ok(());
                }
                // The relay answered: that answer stands.
                Err(error) if error.is_response() => return Err(classify(&error)),
                // The connection was gone: try a fresh one.
                Err(_) => {}
            }
        }
        let mut conn = self.connect().await?;
        conn.send(envelope, body)
            .await
            .map_err(|error| classify(&error))?;
        self.park(conn);
        Ok(())
    }

    /// A parked connection, checked with NOOP when it has idled a while.
    async fn unpark(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let parked = self.lock().pop()?;
            let idle = parked.since.elapsed();
            if idle > DROP_AFTER {
                continue;
            }
            let mut conn = parked.conn;
            if idle > CHECK_AFTER && !conn.test_connected().await {
                continue;
            }
            return Some(conn);
        }
    }

    fn park(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Parked>> {
        // Only idle connections live here; a panic elsewhere leaves them usable.
        self.parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a connection: TCP with `TCP_NODELAY`, TLS as configured,
    /// greeting, EHLO, and authentication when credentials are set.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let tcp = tokio::time::timeout(self.connect_timeout, self.tcp())
            .await
            .map_err(|_| SendError::Temporary("connecting to the relay timed out".into()))??;
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit(connector, name) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| SendError::Temporary(format!("TLS with the relay failed: {e}")))?;
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
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|error| classify(&error))?;
        }
        Ok(conn)
    }

    /// The first address of the relay that accepts a TCP connection.
    async fn tcp(&self) -> Result<TcpStream, SendError> {
        let unreachable = |e: io::Error| SendError::Temporary(format!("relay unreachable: {e}"));
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

/// A relay's refusal for good is permanent; anything else may pass.
fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    if error.is_permanent() {
        SendError::Permanent(error.to_string())
    } else {
        SendError::Temporary(error.to_string())
    }
}

/// The client side of implicit TLS: Mozilla's roots, aws-lc-rs (the one
/// provider the process links).
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

    fn relay(url: &str) -> anyhow::Result<Relay> {
        let settings = crate::settings::load(None).expect("defaults").outbound;
        Relay::new(&Url::parse(url).expect("url"), "registrar.test", &settings)
    }

    #[test]
    fn the_relay_url_says_port_and_security_as_lettre_reads_it() {
        let cases = [
            ("smtp://mail.example", 25, "plain"),
            ("smtp://mail.example:2525", 2525, "plain"),
            ("smtp://mail.example?tls=required", 587, "required"),
            (
                "smtp://mail.example?tls=opportunistic",
                587,
                "opportunistic",
            ),
            ("smtps://mail.example", 465, "implicit"),
        ];
        for (url, port, security) in cases {
            let relay = relay(url).expect(url);
            let found = match relay.security {
                Security::Plain => "plain",
                Security::Opportunistic(_) => "opportunistic",
                Security::Required(_) => "required",
                Security::Implicit(..) => "implicit",
            };
            assert_eq!(
                (relay.host.as_str(), relay.port, found),
                ("mail.example", port, security),
                "{url}"
            );
        }
        assert!(relay("smtp://mail.example?tls=sometimes").is_err());
    }
}
