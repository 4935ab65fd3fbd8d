//! `Session`: one client connection, from greeting to close.
//!
//! The loop reads every byte itself through `Connection`, enforces the
//! session's limits (line cap, timeouts, messages and errors per session),
//! refuses bare CR and LF, judges pipelining as Postfix does (and sends the
//! replies to a pipelined group together, RFC 2920), and hands each
//! command line to its verb: `ehlo`, `xforward`, `mail`, `rcpt`, `data` and
//! `tls` (STARTTLS) each add their part to `Session` in their own file, with
//! the parsing, checks and replies of that verb; everything else goes to the
//! engine (`engine`, the mailin glue), which also keeps the command
//! sequence. The facts of a session (the client's name, whether it is a
//! relay, the XFORWARD attributes it sent, the open transaction) are fields
//! here, owned by the session alone.
//!
//! The message cap ends a session after its last message: the next command
//! is answered `421` and the connection closes. Postfix sends RSET before it
//! reuses a connection and, when that fails, opens a new one without
//! deferring anything; a `4xx` at MAIL would defer the message instead (and
//! a session that went on would defer every later one too). Relays carry
//! many clients' mail and are exempt; their error count starts again with
//! each message, which is someone else's.
//!
//! Under stress (`limits::Admission`: most places under the global cap
//! taken) the short stress timeouts replace the idle and command timeouts,
//! as in Postfix. A session waiting for input notices the switch at once
//! and works its deadline out again from when the wait began, so a session
//! already idle longer than the stress timeout is closed there and then.

use crate::metrics::Metrics;
use crate::settings::{LiveSettings, Settings, SmtpSettings};
use crate::shutdown::Shutdown;
use crate::smtp::answer;
use crate::smtp::command::Verb;
use crate::smtp::connection::{Connection, Piece, ReadError, has_bare_line_ending};
use crate::smtp::engine::{self, Engine};
use crate::smtp::intake::Intake;
use crate::smtp::limits::{Admission, AdmissionLimits, Ticket};
use crate::smtp::mail::Transaction;
use crate::smtp::reply::SmtpReply;
use crate::smtp::xforward::Forwarded;
use mailin::SessionBuilder;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// At most this many bytes of replies wait for the rest of a pipelined
/// group; a fuller queue goes out at once.
const MAX_QUEUED_REPLIES: usize = 4 * 1024;

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
    /// The per-client and global caps: the listener admits connections,
    /// and a relay's session admits the clients it names with XFORWARD.
    pub admission: Arc<Admission>,
    pub shutdown: Shutdown,
    /// Counts every reply sent.
    pub metrics: Metrics,
}

impl SessionContext {
    pub fn new(
        live: LiveSettings,
        tls: Option<TlsAcceptor>,
        shutdown: Shutdown,
        metrics: Metrics,
    ) -> Self {
        let settings = live.current();
        let engine = engine::builder(&settings.smtp.hostname, tls.is_some());
        let smtp = &settings.smtp;
        let admission = Admission::new(
            AdmissionLimits {
                max_sessions: smtp.max_sessions,
                max_sessions_per_client: smtp.max_sessions_per_ip,
                max_connections_per_client_per_minute: smtp.max_connections_per_ip_per_minute,
                stress_sessions: smtp.stress_sessions(),
            },
            smtp.relays.clone(),
            metrics.clone(),
        );
        Self {
            settings,
            live,
            tls,
            engine,
            admission,
            shutdown,
            metrics,
        }
    }

    pub(super) fn smtp(&self) -> &SmtpSettings {
        &self.settings.smtp
    }
}

/// The idle and command timeouts in force.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// Longest wait for the next input.
    pub(super) idle: Duration,
    /// Longest a command line may take once started; a body's grace period.
    pub(super) command: Duration,
}

/// Why the session ends.
pub(super) enum End {
    /// Send this reply, then close.
    Reply(SmtpReply),
    /// The client left or the socket failed: close without a word.
    Silent,
}

/// One session. The verb files (`ehlo`, `mail`, `rcpt`, `data`, `tls`)
/// read and write these fields; nothing outside `smtp` sees them.
pub struct Session<I: Intake> {
    pub(super) context: Arc<SessionContext>,
    /// The settings snapshot this session took when it started: services
    /// for RCPT, and the recipients cap.
    pub(super) settings: Arc<Settings>,
    pub(super) intake: Arc<I>,
    pub(super) conn: Connection,
    pub(super) engine: Engine,
    /// The SMTP peer.
    pub(super) client_ip: IpAddr,
    /// The name the client gave in HELO/EHLO.
    pub(super) helo: String,
    /// The peer is one of the relays in front of us (`smtp.relays`).
    pub(super) relay: bool,
    /// The XFORWARD attributes for the next transaction, from the first
    /// XFORWARD after the last transaction ended until MAIL takes them.
    pub(super) forwarded: Option<Forwarded>,
    /// The open mail transaction, from an accepted MAIL to the end of DATA
    /// or RSET.
    pub(super) transaction: Option<Transaction>,
    /// The forwarded client's place under its per-client caps, held while
    /// its transaction is open.
    pub(super) forwarded_client: Option<Ticket>,
    /// The whole-session cap.
    pub(super) ends_at: Instant,
    errors: u32,
    messages: u32,
    /// The client said EHLO, so PIPELINING was offered.
    pub(super) pipelining: bool,
    /// The client sent ahead where it may not: its DATA is refused.
    pub(super) improper_pipelining: bool,
    /// The command being answered may be followed in a pipelined group:
    /// while more input waits, its reply is queued to leave with the next.
    may_queue_reply: bool,
    pub(super) tls_active: bool,
    /// Whether the listener is under stress: while it is, the short
    /// timeouts apply (`timeouts`).
    pub(super) stress: watch::Receiver<bool>,
}

impl<I: Intake> Session<I> {
    pub fn new(
        context: Arc<SessionContext>,
        intake: Arc<I>,
        conn: Connection,
        client_ip: IpAddr,
    ) -> Self {
        let settings = context.live.current();
        let engine = engine::start(&context.engine, client_ip);
        let ends_at = Instant::now() + context.smtp().session_timeout;
        let relay = context.smtp().is_relay(client_ip);
        let stress = context.admission.stress();
        Self {
            context,
            settings,
            intake,
            conn,
            engine,
            client_ip,
            helo: String::new(),
            relay,
            forwarded: None,
            transaction: None,
            forwarded_client: None,
            ends_at,
            errors: 0,
            messages: 0,
            pipelining: false,
            improper_pipelining: false,
            may_queue_reply: false,
            tls_active: false,
            stress,
        }
    }

    /// The timeouts in force now: under stress the stress values (Postfix's
    /// stress mode), else the normal ones. Stress never lengthens one.
    pub(super) fn timeouts(&mut self) -> Timeouts {
        let smtp = self.context.smtp();
        let normal = Timeouts {
            idle: smtp.idle_timeout,
            command: smtp.command_timeout,
        };
        // Marks the value seen, so `stress_changed` waits for the next one.
        if *self.stress.borrow_and_update() {
            Timeouts {
                idle: normal.idle.min(smtp.stress_idle_timeout),
                command: normal.command.min(smtp.stress_command_timeout),
            }
        } else {
            normal
        }
    }

    /// Serves the client until the session ends, then closes.
    pub async fn run(mut self) {
        let end = self.serve().await;
        if let End::Reply(reply) = &end {
            tracing::debug!(smtp.code = reply.code, smtp.reply = %reply.text, "closing the session");
            let deadline = Instant::now() + Duration::from_secs(5);
            self.context.metrics.smtp_reply(reply.code);
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
    /// answered. When stress begins or passes while it waits, the deadline
    /// is worked out again from when the wait (or the line) began.
    async fn read_command_line(&mut self) -> Result<Option<Vec<u8>>, End> {
        let cap = self.context.smtp().max_command_line_bytes;
        let shutdown = self.context.shutdown.clone();
        let waiting_since = Instant::now();
        let mut started = (self.conn.buffered() > 0).then(Instant::now);
        let mut too_long = false;
        loop {
            if let Some(piece) = self.conn.take_piece(cap) {
                if has_bare_line_ending(piece.bytes()) {
                    return Err(End::Reply(answer::bare_line_ending()));
                }
                match piece {
                    Piece::Partial(_) => too_long = true,
                    Piece::Line(line) if !too_long => return Ok(Some(line.to_vec())),
                    Piece::Line(_) => {
                        self.refuse(answer::line_too_long()).await?;
                        return Ok(None);
                    }
                }
                continue;
            }
            // No waiting for input with replies still queued: the client
            // may be waiting for them before it sends the rest.
            self.flush().await?;
            let Timeouts { idle, command } = self.timeouts();
            let (deadline, timeout) = match started {
                None => earliest(
                    (waiting_since + idle, answer::idle_timeout()),
                    (self.ends_at, answer::session_timeout()),
                ),
                Some(first_byte) => earliest(
                    (first_byte + command, answer::command_timeout()),
                    (self.ends_at, answer::session_timeout()),
                ),
            };
            // `fill` is cancel-safe: a switch loses no input.
            let filled = tokio::select! {
                filled = self.conn.fill(deadline) => filled,
                () = shutdown.wait() => return Err(End::Reply(answer::shutting_down())),
                () = stress_changed(&mut self.stress) => continue,
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
        if !self.relay
            && self.messages >= self.context.smtp().max_messages_per_session
            && verb != Verb::Quit
        {
            return Err(End::Reply(answer::too_many_messages()));
        }
        self.may_queue_reply = self.pipelining && verb.may_be_followed_in_a_group();
        if self.conn.buffered() > 0 && !(self.pipelining && verb.may_be_followed_in_a_group()) {
            if !self.improper_pipelining {
                tracing::info!(event = "improper_pipelining", smtp.command = ?verb, "the client sent ahead of a reply it had to wait for");
            }
            self.improper_pipelining = true;
        }
        match verb {
            Verb::Ehlo => self.ehlo(&line).await,
            Verb::Helo => self.helo(&line).await,
            Verb::Xforward => self.xforward(&line).await,
            Verb::Mail => self.mail(&line).await,
            Verb::Rcpt => self.rcpt(&line).await,
            Verb::Data => self.data(&line).await,
            Verb::StartTls => self.starttls(&line).await,
            Verb::Rset => {
                self.end_transaction();
                self.engine_command(&line).await
            }
            Verb::Noop | Verb::Quit | Verb::Vrfy | Verb::Expn | Verb::Other => {
                self.engine_command(&line).await
            }
        }
    }

    /// Ends the open transaction, if any (end of DATA, RSET, a new MAIL,
    /// EHLO or HELO): the XFORWARD attributes go with it, and so does the
    /// forwarded client's place under its caps.
    pub(super) fn end_transaction(&mut self) -> Option<Transaction> {
        self.forwarded = None;
        self.forwarded_client = None;
        self.transaction.take()
    }

    /// Counts a message read to its end. A relay's errors start again: the
    /// next message is someone else's.
    pub(super) fn message_received(&mut self) {
        self.messages += 1;
        if self.relay {
            self.errors = 0;
        }
    }

    /// Sends a refusal and counts it; too many end the session.
    pub(super) async fn refuse(&mut self, reply: SmtpReply) -> Result<(), End> {
        self.send(&reply).await?;
        self.errors += 1;
        if self.errors >= self.context.smtp().max_errors_per_session {
            return Err(End::Reply(answer::too_many_errors()));
        }
        Ok(())
    }

    pub(super) async fn send(&mut self, reply: &SmtpReply) -> Result<(), End> {
        self.context.metrics.smtp_reply(reply.code);
        self.write(&answer::render(reply)).await
    }

    /// Sends `bytes`, or queues them while the client's next pipelined
    /// command is already here (RFC 2920, 3.2: the replies to a group leave
    /// together; a full queue goes out at once). Whatever is queued goes out
    /// before the session waits for input.
    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), End> {
        if self.may_queue_reply
            && self.conn.buffered() > 0
            && self.conn.queued() + bytes.len() <= MAX_QUEUED_REPLIES
        {
            self.conn.queue(bytes);
            return Ok(());
        }
        // A client that stops reading gets as long as an idle one.
        let deadline = Instant::now() + self.timeouts().idle;
        self.conn
            .write(bytes, deadline)
            .await
            .map_err(|_| End::Silent)
    }

    /// Sends the queued replies, if any.
    async fn flush(&mut self) -> Result<(), End> {
        let deadline = Instant::now() + self.timeouts().idle;
        self.conn.flush(deadline).await.map_err(|_| End::Silent)
    }
}

/// Waits until stress begins or passes; never, once nobody can change it
/// (the listener is gone).
pub(super) async fn stress_changed(stress: &mut watch::Receiver<bool>) {
    if stress.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The earlier of two deadlines, with the answer for it.
pub(super) fn earliest<A>(first: (Instant, A), second: (Instant, A)) -> (Instant, A) {
    if second.0 < first.0 { second } else { first }
}
