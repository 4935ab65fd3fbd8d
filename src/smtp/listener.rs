//! `SmtpServer`: the accept loop. It admits each connection through the
//! sessions' shared `Admission` (refusing with `421 4.7.0`), runs every admitted session on a
//! task of its own, and at shutdown stops accepting and drains the sessions
//! within `shutdown_grace`.

use crate::metrics::{Metrics, OpenSession};
use crate::settings::LiveSettings;
use crate::shutdown::Shutdown;
use crate::smtp::answer;
use crate::smtp::connection::Connection;
use crate::smtp::intake::{Intake, RegistrarIntake};
use crate::smtp::limits::{Refusal, Ticket};
use crate::smtp::session::{Session, SessionContext};
use crate::smtp::tls;
use anyhow::Context as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument as _;

/// How long a refused client gets to read its `421`.
const REFUSAL_TIME: Duration = Duration::from_secs(5);

/// A bound SMTP listener, ready to serve.
pub struct SmtpServer<I: Intake = RegistrarIntake> {
    listener: TcpListener,
    context: Arc<SessionContext>,
    intake: Arc<I>,
    /// Caps the short tasks that tell refused clients why, so a flood of
    /// refused connections cannot grow without bound either.
    refusals: Arc<Semaphore>,
    /// Numbers sessions for the logs.
    next_session: AtomicU64,
}

impl<I: Intake> SmtpServer<I> {
    /// Takes a bound listener (port 0 allowed) and loads the STARTTLS
    /// certificate when one is configured. Must run inside the runtime.
    ///
    /// # Errors
    /// The listener cannot be handed to tokio, or the certificate or key
    /// cannot be loaded.
    pub fn new(
        listener: std::net::TcpListener,
        live: LiveSettings,
        intake: I,
        shutdown: Shutdown,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        listener
            .set_nonblocking(true)
            .context("failed to configure the SMTP listener")?;
        let listener =
            TcpListener::from_std(listener).context("failed to configure the SMTP listener")?;
        let settings = live.current();
        let tls = settings.smtp.tls.as_ref().map(tls::acceptor).transpose()?;
        let refusals = Arc::new(Semaphore::new(settings.smtp.max_sessions as usize));
        Ok(Self {
            listener,
            context: Arc::new(SessionContext::new(live, tls, shutdown, metrics)),
            intake: Arc::new(intake),
            refusals,
            next_session: AtomicU64::new(1),
        })
    }

    /// The address actually bound.
    ///
    /// # Errors
    /// The socket cannot tell.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts and serves until shutdown, then drains the sessions.
    pub async fn run(self) {
        let shutdown = self.context.shutdown.clone();
        let metrics = self.context.metrics.clone();
        let mut sessions = JoinSet::new();
        metrics.listener_up("smtp", true);
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => self.start(stream, peer.ip(), &mut sessions),
                    Err(error) => {
                        // Out of file descriptors and the like: back off a
                        // little instead of spinning on the error.
                        tracing::warn!(error.message = %error, "failed to accept an SMTP connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(finished) = sessions.join_next(), if !sessions.is_empty() => {
                    report(finished);
                }
            }
        }
        drop(self.listener);
        metrics.listener_up("smtp", false);
        drain(sessions, self.context.settings.smtp.shutdown_grace).await;
    }

    fn start(&self, stream: TcpStream, ip: IpAddr, sessions: &mut JoinSet<()>) {
        // Replies are small and answer a command each: send them at once.
        let _ = stream.set_nodelay(true);
        match self.context.admission.admit(ip, Instant::now()) {
            Ok(ticket) => {
                let id = self.next_session.fetch_add(1, Ordering::Relaxed);
                let span = tracing::info_span!("smtp", smtp.session = id, smtp.remote_ip = %ip);
                let session = Session::new(
                    Arc::clone(&self.context),
                    Arc::clone(&self.intake),
                    Connection::new(stream),
                    ip,
                );
                let open = self.context.metrics.smtp_session();
                // Boxed: the session's future is large, and spawning moves
                // it several times on its way into the task; a box moves as
                // a pointer.
                sessions.spawn(Box::pin(serve(session, ticket, open)).instrument(span));
            }
            Err(refusal) => {
                tracing::info!(event = "refused", smtp.remote_ip = %ip, reason = ?refusal, "SMTP connection refused");
                self.context.metrics.smtp_session_refused(refusal.limit());
                // With every refusal slot busy, close without a word.
                if let Ok(slot) = Arc::clone(&self.refusals).try_acquire_owned() {
                    self.context.metrics.smtp_reply(421);
                    sessions.spawn(async move {
                        refuse(stream, refusal).await;
                        drop(slot);
                    });
                }
            }
        }
    }
}

async fn serve<I: Intake>(session: Session<I>, ticket: Ticket, open: OpenSession) {
    session.run().await;
    drop(ticket);
    drop(open);
}

async fn refuse(stream: TcpStream, refusal: Refusal) {
    let reply = match refusal {
        Refusal::TooManySessions => answer::too_many_sessions(),
        Refusal::TooManySessionsFromClient => answer::too_many_sessions_from_address(),
        Refusal::TooManyConnectionsFromClient => answer::too_many_connections_from_address(),
    };
    let mut conn = Connection::new(stream);
    let _ = conn
        .write(&answer::render(&reply), Instant::now() + REFUSAL_TIME)
        .await;
    conn.close().await;
}

fn report(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished
        && error.is_panic()
    {
        tracing::error!(error.message = %error, "an SMTP session panicked");
    }
}

/// Waits for the sessions to end, at most `grace`; then cuts the rest.
async fn drain(mut sessions: JoinSet<()>, grace: Duration) {
    let all_done = async {
        while let Some(finished) = sessions.join_next().await {
            report(finished);
        }
    };
    if tokio::time::timeout(grace, all_done).await.is_err() {
        tracing::warn!(
            smtp.sessions = sessions.len(),
            "cutting SMTP sessions still open after the shutdown grace"
        );
        sessions.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Envelope;
    use crate::settings::Service;
    use crate::smtp::reply::SmtpReply;
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

    /// An end-of-DATA step that panics, standing in for a parser or store
    /// bug. mail-parser 0.11.9 has no known input that panics (and
    /// `message` already catches its panics), so the only way to prove the
    /// loop's own isolation is to put a panic behind the seam it calls.
    struct PanickingIntake;

    impl Intake for PanickingIntake {
        async fn decide(&self, _: Service, _: Envelope, _: Vec<u8>) -> SmtpReply {
            panic!("injected end-of-DATA panic");
        }

        async fn bounce(&self, _: String, _: Envelope, _: Vec<u8>) -> SmtpReply {
            panic!("injected end-of-DATA panic");
        }
    }

    struct Client {
        reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
        writer: tokio::net::tcp::OwnedWriteHalf,
    }

    impl Client {
        async fn connect(addr: SocketAddr) -> Self {
            let (read, writer) = TcpStream::connect(addr)
                .await
                .expect("connect")
                .into_split();
            let mut client = Self {
                reader: BufReader::new(read),
                writer,
            };
            assert_eq!(client.reply().await, 220);
            client
        }

        async fn command(&mut self, line: &str) -> u16 {
            self.writer
                .write_all(format!("{line}\r\n").as_bytes())
                .await
                .expect("write");
            self.reply().await
        }

        async fn reply(&mut self) -> u16 {
            loop {
                let mut line = String::new();
                let read = self.reader.read_line(&mut line).await.expect("read");
                assert!(read > 0, "connection closed");
                if line.as_bytes().get(3) != Some(&b'-') {
                    return line[..3].parse().expect("code");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_panic_at_end_of_data_is_answered_451_and_harms_no_other_session() {
        let mut settings = crate::settings::load(None).expect("defaults");
        settings.smtp.listen = "127.0.0.1:0".parse().expect("address");
        let listener = std::net::TcpListener::bind(settings.smtp.listen).expect("bind");
        let shutdown = Shutdown::new();
        let server = SmtpServer::new(
            listener,
            LiveSettings::new(settings),
            PanickingIntake,
            shutdown.clone(),
            Metrics::new(),
        )
        .expect("server");
        let addr = server.local_addr().expect("address");
        let running = tokio::spawn(server.run());
        let mut bystander = Client::connect(addr).await;
        assert_eq!(bystander.command("EHLO bystander.test").await, 250);
        let mut client = Client::connect(addr).await;
        assert_eq!(client.command("EHLO client.test").await, 250);
        assert_eq!(client.command("MAIL FROM:<jane@example.com>").await, 250);
        assert_eq!(
            client.command("RCPT TO:<support@helpdesk.example>").await,
            250
        );
        assert_eq!(client.command("DATA").await, 354);

        let answer = client.command("Subject: boom\r\n\r\nbody\r\n.").await;

        assert_eq!(answer, 451, "a temporary answer keeps the sender's copy");
        assert_eq!(client.command("RSET").await, 250, "the session goes on");
        assert_eq!(bystander.command("NOOP").await, 250, "other sessions go on");
        let newcomer = Client::connect(addr).await;
        drop(newcomer);
        shutdown.trigger();
        running.await.expect("the accept loop ends cleanly");
    }
}
