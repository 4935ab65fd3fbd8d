//! `Session`: one client connection, from greeting to close.
//!
//! The loop reads every byte itself through `Connection`, enforces the
//! session's limits (line cap, timeouts, data rate, messages and errors per
//! session), refuses bare CR and LF, judges pipelining as Postfix does,
//! parses MAIL and RCPT before the engine, and drives mailin's sans-IO
//! `Session` with `IntakeHandler` for the command sequence. DATA is read here
//! too, so only `CRLF.CRLF` ends a message, and the end-of-DATA decision is
//! awaited here, on a task of its own, so a panic in it costs one reply and
//! not the session or the process.

use super::answer;
use super::command::{self, Verb};
use super::connection::{Connection, Piece, ReadError, has_bare_line_ending};
use super::data::{Fed, MessageBody, Oversize};
use super::handler::{IntakeHandler, SharedFacts};
use super::intake::Intake;
use super::reply::{self, SmtpReply};
use crate::message::{Envelope, ParseError};
use crate::settings::{LiveSettings, NullSender, Service, Settings, SmtpSettings};
use crate::shutdown::Shutdown;
use mailin::SessionBuilder;
use mailin_embedded::{Action, Response};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument as _;

/// How much of a message body is handed out at once. Lines in a body may be
/// longer (they are read in pieces); only the message size is capped.
const DATA_PIECE: usize = 64 * 1024;

/// What every session shares.
pub struct SessionContext {
    /// The settings at start-up: listener limits, which need a restart.
    pub settings: Arc<Settings>,
    /// The reloadable settings: each session takes a snapshot of the
    /// services when it starts.
    pub live: LiveSettings,
    /// `Some` when STARTTLS is offered.
    pub tls: Option<TlsAcceptor>,
    pub engine: SessionBuilder,
    pub shutdown: Shutdown,
}

impl SessionContext {
    pub fn new(live: LiveSettings, tls: Option<TlsAcceptor>, shutdown: Shutdown) -> Self {
        let settings = live.current();
        let mut engine = SessionBuilder::new(settings.smtp.hostname.clone());
        if tls.is_some() {
            engine.enable_start_tls();
        }
        Self {
            settings,
            live,
            tls,
            engine,
            shutdown,
        }
    }

    fn smtp(&self) -> &SmtpSettings {
        &self.settings.smtp
    }
}

/// Why the session ends.
enum End {
    /// Send this reply, then close.
    Reply(SmtpReply),
    /// The client left or the socket failed: close without a word.
    Silent,
}

pub struct Session<I: Intake> {
    context: Arc<SessionContext>,
    intake: Arc<I>,
    conn: Connection,
    engine: mailin::Session<IntakeHandler>,
    facts: SharedFacts,
    client_ip: IpAddr,
    /// The whole-session cap.
    ends_at: Instant,
    errors: u32,
    messages: u32,
    /// The client said EHLO, so PIPELINING was offered.
    pipelining: bool,
    /// The client sent ahead where it may not: its DATA is refused.
    improper_pipelining: bool,
    tls_active: bool,
}

impl<I: Intake> Session<I> {
    pub fn new(
        context: Arc<SessionContext>,
        intake: Arc<I>,
        conn: Connection,
        client_ip: IpAddr,
    ) -> Self {
        let facts = SharedFacts::default();
        let handler = IntakeHandler::new(
            context.live.current(),
            context.shutdown.flag(),
            facts.clone(),
        );
        let engine = context.engine.build(client_ip, handler);
        let ends_at = Instant::now() + context.smtp().session_timeout;
        Self {
            context,
            intake,
            conn,
            engine,
            facts,
            client_ip,
            ends_at,
            errors: 0,
            messages: 0,
            pipelining: false,
            improper_pipelining: false,
            tls_active: false,
        }
    }

    /// Serves the client until the session ends, then closes.
    pub async fn run(mut self) {
        let end = self.serve().await;
        if let End::Reply(reply) = &end {
            tracing::debug!(smtp.code = reply.code, smtp.reply = %reply.text, "closing the session");
            let deadline = Instant::now() + Duration::from_secs(5);
            let _ = self.conn.write(&answer::render(reply), deadline).await;
        }
        self.conn.close().await;
    }

    async fn serve(&mut self) -> End {
        if let Err(end) = self.greet().await {
            return end;
        }
        loop {
            if self.context.shutdown.is_triggered() {
                return End::Reply(answer::shutting_down());
            }
            // A client quick enough never to wait for input would otherwise
            // never meet the session deadline.
            if Instant::now() >= self.ends_at {
                return End::Reply(answer::session_timeout());
            }
            let step = match self.read_command_line().await {
                Ok(Some(line)) => self.command(line).await,
                Ok(None) => Ok(()),
                Err(end) => Err(end),
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Sends the greeting, after the configured pause. Input before it
    /// marks an early talker, whose DATA is refused (Postfix's
    /// `reject_unauth_pipelining`).
    async fn greet(&mut self) -> Result<(), End> {
        let delay = self.context.smtp().greeting_delay;
        let early = if delay.is_zero() {
            // Only input already waiting counts: poll once, never wait.
            tokio::select! {
                biased;
                read = self.conn.fill(self.ends_at) => Some(read),
                () = std::future::ready(()) => None,
            }
        } else {
            match self.conn.fill(Instant::now() + delay).await {
                Err(ReadError::TimedOut) => None,
                read => Some(read),
            }
        };
        match early {
            None => {}
            Some(Ok(_)) => {
                tracing::info!(
                    event = "early_talker",
                    "the client talked before the greeting"
                );
                self.improper_pipelining = true;
            }
            Some(Err(_)) => return Err(End::Silent),
        }
        let greeting = answer::greeting(&self.context.smtp().hostname);
        self.send(&greeting).await
    }

    /// Reads one command line within the idle, command and session
    /// timeouts. `Ok(None)` when an overlong line was read to its end and
    /// answered.
    async fn read_command_line(&mut self) -> Result<Option<Vec<u8>>, End> {
        let smtp = self.context.smtp();
        let cap = smtp.max_command_line_bytes;
        let (idle, per_command) = (smtp.idle_timeout, smtp.command_timeout);
        let shutdown = self.context.shutdown.clone();
        let mut started = (self.conn.buffered() > 0).then(Instant::now);
        let mut too_long = false;
        loop {
            if let Some(piece) = self.conn.take_piece(cap) {
                if has_bare_line_ending(piece.bytes()) {
                    return Err(End::Reply(answer::bare_line_ending()));
                }
                match piece {
                    Piece::Partial(_) => too_long = true,
                    Piece::Line(line) if !too_long => return Ok(Some(line)),
                    Piece::Line(_) => {
                        self.refuse(answer::line_too_long()).await?;
                        return Ok(None);
                    }
                }
                continue;
            }
            let (deadline, timeout) = match started {
                None => earliest(
                    (Instant::now() + idle, answer::idle_timeout()),
                    (self.ends_at, answer::session_timeout()),
                ),
                Some(first_byte) => earliest(
                    (first_byte + per_command, answer::command_timeout()),
                    (self.ends_at, answer::session_timeout()),
                ),
            };
            let filled = tokio::select! {
                filled = self.conn.fill(deadline) => filled,
                () = shutdown.wait() => return Err(End::Reply(answer::shutting_down())),
            };
            match filled {
                Ok(_) => {
                    started.get_or_insert_with(Instant::now);
                }
                Err(ReadError::TimedOut) => return Err(End::Reply(timeout)),
                Err(ReadError::Closed | ReadError::Io(_)) => return Err(End::Silent),
            }
        }
    }

    async fn command(&mut self, line: Vec<u8>) -> Result<(), End> {
        let verb = Verb::of(&line);
        if self.conn.buffered() > 0 && !(self.pipelining && verb.may_be_followed_in_a_group()) {
            if !self.improper_pipelining {
                tracing::info!(event = "improper_pipelining", smtp.command = ?verb, "the client sent ahead of a reply it had to wait for");
            }
            self.improper_pipelining = true;
        }
        match verb {
            Verb::Ehlo => self.ehlo(&line).await,
            Verb::Helo => {
                self.pipelining = false;
                self.engine_command(&line).await
            }
            Verb::Mail => self.mail(&line).await,
            Verb::Rcpt => match command::parse_rcpt(&line) {
                Ok(path) => self.engine_command(&command::rcpt_engine_line(&path)).await,
                Err(refusal) => self.refuse(refusal).await,
            },
            Verb::Data => self.data(&line).await,
            Verb::StartTls => self.starttls(&line).await,
            Verb::Rset | Verb::Noop | Verb::Quit | Verb::Vrfy | Verb::Expn | Verb::Other => {
                self.engine_command(&line).await
            }
        }
    }

    async fn ehlo(&mut self, line: &[u8]) -> Result<(), End> {
        let response = self.engine.process(line);
        if response.code != 250 || response.action != Action::Reply {
            return self.answer_engine(&response).await;
        }
        self.pipelining = true;
        let smtp = self.context.smtp();
        let starttls = self.context.tls.is_some() && !self.tls_active;
        let lines = answer::ehlo(&smtp.hostname, smtp.max_message_bytes, starttls);
        self.write(&lines).await
    }

    async fn mail(&mut self, line: &[u8]) -> Result<(), End> {
        let smtp = self.context.smtp();
        if self.messages >= smtp.max_messages_per_session {
            return Err(End::Reply(answer::too_many_messages()));
        }
        let mail = match command::parse_mail(line) {
            Ok(mail) => mail,
            Err(refusal) => return self.refuse(refusal).await,
        };
        if mail
            .declared_size
            .is_some_and(|size| size > smtp.max_message_bytes as u64)
        {
            return self.refuse(answer::declared_size_too_big()).await;
        }
        if mail.is_null_sender() && smtp.null_sender == NullSender::Refuse {
            return self.refuse(answer::null_sender_refused()).await;
        }
        self.facts.lock().next_sender = Some(mail.sender.clone());
        self.engine_command(&mail.engine_line()).await
    }

    async fn data(&mut self, line: &[u8]) -> Result<(), End> {
        if self.improper_pipelining {
            return self.refuse(answer::improper_pipelining()).await;
        }
        let response = self.engine.process(line);
        if response.code != 354 {
            return self.answer_engine(&response).await;
        }
        self.send(&answer::from_engine(&response)).await?;
        self.receive_message().await
    }

    /// Reads a message to its `CRLF.CRLF`, then answers for it.
    async fn receive_message(&mut self) -> Result<(), End> {
        let smtp = self.context.smtp();
        let (idle, grace, min_rate) = (smtp.idle_timeout, smtp.command_timeout, smtp.min_data_rate);
        let mut body = MessageBody::new(smtp.max_message_bytes, smtp.max_header_bytes);
        let started = Instant::now();
        let mut last_input = started;
        loop {
            if let Some(piece) = self.conn.take_piece(DATA_PIECE) {
                match body.feed(piece.bytes()) {
                    Fed::More => continue,
                    Fed::End => break,
                    Fed::BareLineEnding => return Err(End::Reply(answer::bare_line_ending())),
                }
            }
            // A body gets the grace period plus one second per `min_rate`
            // bytes received: a sender below the rate runs out of time.
            let earned = Duration::from_secs_f64(body.size() as f64 / f64::from(min_rate));
            let (deadline, timeout) = earliest(
                earliest(
                    (last_input + idle, answer::idle_timeout()),
                    (started + grace + earned, answer::data_too_slow()),
                ),
                (self.ends_at, answer::session_timeout()),
            );
            match self.conn.fill(deadline).await {
                Ok(_) => last_input = Instant::now(),
                Err(ReadError::TimedOut) => return Err(End::Reply(timeout)),
                Err(ReadError::Closed | ReadError::Io(_)) => return Err(End::Silent),
            }
        }
        // The engine leaves DATA; its reply is a placeholder for ours.
        let _ = self.engine.process(b".\r\n");
        self.messages += 1;
        let (transaction, helo) = {
            let mut facts = self.facts.lock();
            (std::mem::take(&mut facts.transaction), facts.helo.clone())
        };
        let reply = match body.finish() {
            Err(Oversize::Message) => answer::message_too_big(),
            Err(Oversize::HeaderSection) => answer::header_section_too_big(),
            Ok(raw) => match transaction.service {
                None => SmtpReply {
                    code: 503,
                    text: "5.5.1 no valid recipients".into(),
                },
                Some(service) => {
                    let envelope = Envelope {
                        client_ip: self.client_ip,
                        helo,
                        mail_from: transaction.mail_from,
                        recipients: transaction.recipients,
                    };
                    decide_isolated(Arc::clone(&self.intake), service, envelope, raw).await
                }
            },
        };
        if reply.code == 421 {
            return Err(End::Reply(reply));
        }
        self.send(&reply).await
    }

    async fn starttls(&mut self, line: &[u8]) -> Result<(), End> {
        let Some(acceptor) = self.context.tls.clone().filter(|_| !self.tls_active) else {
            return self.engine_command(line).await;
        };
        // Plaintext sent after STARTTLS must never be read as if it came
        // through TLS (CVE-2011-0411): refuse and close.
        if self.conn.buffered() > 0 {
            return Err(End::Reply(answer::input_before_tls()));
        }
        let response = self.engine.process(line);
        if response.action != Action::UpgradeTls {
            return self.answer_engine(&response).await;
        }
        self.send(&answer::from_engine(&response)).await?;
        let deadline = (Instant::now() + self.context.smtp().command_timeout).min(self.ends_at);
        if let Err(error) = self.conn.upgrade(&acceptor, deadline).await {
            tracing::info!(error.message = %error, "TLS handshake failed");
            return Err(End::Silent);
        }
        // RFC 3207: forget everything learned before TLS.
        self.engine.tls_active();
        self.tls_active = true;
        self.pipelining = false;
        self.improper_pipelining = false;
        *self.facts.lock() = Default::default();
        Ok(())
    }

    async fn engine_command(&mut self, line: &[u8]) -> Result<(), End> {
        let response = self.engine.process(line);
        self.answer_engine(&response).await
    }

    async fn answer_engine(&mut self, response: &Response) -> Result<(), End> {
        let reply = answer::from_engine(response);
        match response.action {
            Action::NoReply => Ok(()),
            Action::Close => Err(End::Reply(reply)),
            Action::Reply | Action::UpgradeTls if reply.code >= 400 => self.refuse(reply).await,
            Action::Reply | Action::UpgradeTls => self.send(&reply).await,
        }
    }

    /// Sends a refusal and counts it; too many end the session.
    async fn refuse(&mut self, reply: SmtpReply) -> Result<(), End> {
        self.send(&reply).await?;
        self.errors += 1;
        if self.errors >= self.context.smtp().max_errors_per_session {
            return Err(End::Reply(answer::too_many_errors()));
        }
        Ok(())
    }

    async fn send(&mut self, reply: &SmtpReply) -> Result<(), End> {
        self.write(&answer::render(reply)).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), End> {
        // A client that stops reading gets as long as an idle one.
        let deadline = Instant::now() + self.context.smtp().idle_timeout;
        self.conn
            .write(bytes, deadline)
            .await
            .map_err(|_| End::Silent)
    }
}

/// Runs the end-of-DATA decision on a task of its own. If it panics (a bug
/// of ours or of a library), the client still gets an answer, a temporary
/// one so it keeps its copy, and the session and the process go on.
async fn decide_isolated<I: Intake>(
    intake: Arc<I>,
    service: Service,
    envelope: Envelope,
    raw: Vec<u8>,
) -> SmtpReply {
    let decision = tokio::spawn(
        async move { intake.decide(service, envelope, raw).await }
            .instrument(tracing::Span::current()),
    );
    match decision.await {
        Ok(reply) => reply,
        Err(error) => {
            tracing::error!(error.message = %error, "the end-of-DATA decision failed");
            reply::for_parse_error(&ParseError::ParserPanicked)
        }
    }
}

/// The earlier of two deadlines, with the answer for it.
fn earliest<A>(first: (Instant, A), second: (Instant, A)) -> (Instant, A) {
    if second.0 < first.0 { second } else { first }
}
