//! `DATA`: the command, the message read to its end, and the answer.
//!
//! `MessageBody` is the message fed piece by piece. It finds the end of the
//! message (only `CRLF.CRLF`: a `.` line that follows a CRLF and ends in
//! CRLF), undoes dot-stuffing, counts the message and its header section
//! against their caps, and reports any bare CR or LF at once. Past a cap it
//! keeps counting but stops keeping bytes, so the message is read to its end
//! and answered `552` with memory bounded.
//!
//! The session reads the body within the idle, data-rate and session
//! deadlines (the short ones under stress, noticed as it waits), then hands the message to `intake` on a task of its own and
//! sends its answer: `250` only once the decision is committed. Nothing here
//! decides the message itself.

use crate::message::{Envelope, ParseError};
use crate::settings::Service;
use crate::smtp::answer;
use crate::smtp::connection::{ReadError, has_bare_line_ending};
use crate::smtp::intake::{Decided, Intake, log_transaction};
use crate::smtp::mail::Transaction;
use crate::smtp::reply::{self, SmtpReply};
use crate::smtp::session::{End, Session, Timeouts, earliest, stress_changed};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument as _;

/// How much of a message body is handed out at once. Lines in a body may be
/// longer (they are read in pieces); only the message size is capped.
const DATA_PIECE: usize = 64 * 1024;

/// What one piece did to the message.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// The message goes on.
    More,
    /// The piece was the terminating `.` line.
    End,
    /// A bare CR or LF: the SMTP-smuggling pattern; the session must close.
    BareLineEnding,
}

/// Why a message read to its end is still refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Oversize {
    Message,
    HeaderSection,
}

pub struct MessageBody {
    max_bytes: usize,
    max_header_bytes: usize,
    /// The message, while it is within the caps.
    bytes: Vec<u8>,
    size: usize,
    header_bytes: usize,
    /// The last piece ended in CRLF (true at the start: the DATA line did).
    at_line_start: bool,
    in_header_section: bool,
    oversize: Option<Oversize>,
}

impl MessageBody {
    pub fn new(max_bytes: usize, max_header_bytes: usize) -> Self {
        Self {
            max_bytes,
            max_header_bytes,
            bytes: Vec::new(),
            size: 0,
            header_bytes: 0,
            at_line_start: true,
            in_header_section: true,
            oversize: None,
        }
    }

    /// Takes the next piece of input: a line ending in LF, or part of a long
    /// line (never ending between CR and LF).
    pub fn feed(&mut self, piece: &[u8]) -> Fed {
        if has_bare_line_ending(piece) {
            return Fed::BareLineEnding;
        }
        let starts_line = self.at_line_start;
        self.at_line_start = piece.ends_with(b"\r\n");
        if starts_line && piece == b".\r\n" {
            return Fed::End;
        }
        let content = match piece.strip_prefix(b".") {
            Some(unstuffed) if starts_line => unstuffed,
            _ => piece,
        };
        if self.in_header_section {
            if starts_line && content == b"\r\n" {
                self.in_header_section = false;
            } else {
                self.header_bytes += content.len();
                if self.header_bytes > self.max_header_bytes && self.oversize.is_none() {
                    self.refuse(Oversize::HeaderSection);
                }
            }
        }
        self.size += content.len();
        if self.size > self.max_bytes && self.oversize.is_none() {
            self.refuse(Oversize::Message);
        }
        if self.oversize.is_none() {
            self.bytes.extend_from_slice(content);
        }
        Fed::More
    }

    /// Message bytes received so far (dot-unstuffed), kept or not.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The whole message, or why it is refused.
    ///
    /// # Errors
    /// The message or its header section went over its cap.
    pub fn finish(self) -> Result<Vec<u8>, Oversize> {
        match self.oversize {
            Some(reason) => Err(reason),
            None => Ok(self.bytes),
        }
    }

    fn refuse(&mut self, reason: Oversize) {
        self.oversize = Some(reason);
        self.bytes = Vec::new();
    }
}

impl<I: Intake> Session<I> {
    /// DATA: refused to a client that pipelined where it may not; otherwise
    /// the engine checks the sequence, and the message is read and answered.
    pub(super) async fn data(&mut self, line: &[u8]) -> Result<(), End> {
        if self.improper_pipelining {
            return self.refuse(answer::improper_pipelining()).await;
        }
        let response = self.engine.process(line);
        if response.code != 354 {
            return self.answer_engine(&response).await;
        }
        if self.context.shutdown.is_triggered() {
            // Shutdown began after the loop last looked: no new message.
            return self.refuse(answer::shutting_down()).await;
        }
        self.send(&answer::from_engine(&response)).await?;
        self.receive_message().await
    }

    /// Reads a message to its `CRLF.CRLF`, then answers for it.
    async fn receive_message(&mut self) -> Result<(), End> {
        let smtp = self.context.smtp();
        let min_rate = smtp.min_data_rate;
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
            // Under stress the short timeouts apply here too.
            let Timeouts {
                idle,
                command: grace,
            } = self.timeouts();
            let (deadline, timeout) = earliest(
                earliest(
                    (last_input + idle, answer::idle_timeout()),
                    (started + grace + earned, answer::data_too_slow()),
                ),
                (self.ends_at, answer::session_timeout()),
            );
            let filled = tokio::select! {
                filled = self.conn.fill(deadline) => filled,
                () = stress_changed(&mut self.stress) => continue,
            };
            match filled {
                Ok(_) => last_input = Instant::now(),
                Err(ReadError::TimedOut) => return Err(End::Reply(timeout)),
                Err(ReadError::Closed | ReadError::Io(_)) => return Err(End::Silent),
            }
        }
        // The engine leaves DATA; its reply is a placeholder for ours.
        let _ = self.engine.process(b".\r\n");
        self.message_received();
        let transaction = self.transaction.take();
        let Some((job, mail, origin, recipients)) = transaction.and_then(Job::of) else {
            // The engine takes DATA only after an accepted RCPT, so this is
            // a guard, not a path.
            self.end_transaction();
            return self.send(&answer::no_valid_recipients()).await;
        };
        let envelope = Envelope {
            client_ip: origin.client_ip,
            helo: origin.helo,
            relay_ip: origin.relay_ip,
            mail_from: mail.sender,
            recipients,
        };
        let reply = match body.finish() {
            Err(oversize) => {
                let (reply, reason) = match oversize {
                    Oversize::Message => (answer::message_too_big(), "message_too_big"),
                    Oversize::HeaderSection => {
                        (answer::header_section_too_big(), "header_section_too_big")
                    }
                };
                let refused = Decided::new("refuse", reason);
                log_transaction(&envelope, job.service_id(), refused, reply.code);
                reply
            }
            Ok(raw) => decide_isolated(Arc::clone(&self.intake), job, envelope, raw).await,
        };
        // The transaction, its XFORWARD attributes and its forwarded
        // client's place end with the answer.
        self.end_transaction();
        if reply.code == 421 {
            return Err(End::Reply(reply));
        }
        self.send(&reply).await
    }
}

/// What a received message is: mail to a service's support address, or a
/// delivery report to one of our VERP bounce addresses.
enum Job {
    Mail(Box<Service>),
    Bounce(String),
}

impl Job {
    /// The service a transaction line names: the support address's, or
    /// `bounce` for a delivery report.
    fn service_id(&self) -> &str {
        match self {
            Job::Mail(service) => &service.id,
            Job::Bounce(_) => "bounce",
        }
    }

    /// The job of a transaction with its sender, origin and recipients;
    /// `None` without an accepted recipient.
    fn of(
        transaction: Transaction,
    ) -> Option<(
        Self,
        crate::smtp::mail::MailFrom,
        crate::smtp::xforward::Origin,
        Vec<String>,
    )> {
        let job = match (transaction.service, transaction.bounce) {
            (Some(service), _) => Job::Mail(Box::new(service)),
            (None, Some(token)) => Job::Bounce(token),
            (None, None) => return None,
        };
        Some((
            job,
            transaction.mail,
            transaction.origin,
            transaction.recipients,
        ))
    }
}

/// Runs the end-of-DATA decision on a task of its own. If it panics (a bug
/// of ours or of a library), the client still gets an answer, a temporary
/// one so it keeps its copy, and the session and the process go on.
async fn decide_isolated<I: Intake>(
    intake: Arc<I>,
    job: Job,
    envelope: Envelope,
    raw: Vec<u8>,
) -> SmtpReply {
    let logged = (envelope.clone(), job.service_id().to_owned());
    // Boxed, as a session is: the decision's future is large.
    let decision = tokio::spawn(
        Box::pin(async move {
            match job {
                Job::Mail(service) => intake.decide(*service, envelope, raw).await,
                Job::Bounce(token) => intake.bounce(token, envelope, raw).await,
            }
        })
        .instrument(tracing::Span::current()),
    );
    match decision.await {
        Ok(reply) => reply,
        Err(error) => {
            tracing::error!(error.message = %error, "the end-of-DATA decision failed");
            let reply = reply::for_parse_error(&ParseError::ParserPanicked);
            let (envelope, service) = logged;
            let failed = Decided::new("error", "intake_failed");
            log_transaction(&envelope, &service, failed, reply.code);
            reply
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(body: &mut MessageBody, pieces: &[&[u8]]) -> Vec<Fed> {
        pieces.iter().map(|piece| body.feed(piece)).collect()
    }

    #[test]
    fn only_a_dot_line_after_crlf_ends_the_message_and_dots_are_unstuffed() {
        let mut body = MessageBody::new(1024, 1024);
        let fed = feed_all(
            &mut body,
            &[b"Subject: x\r\n", b"\r\n", b"..leading dot\r\n", b".\r\n"],
        );
        assert_eq!(fed, [Fed::More, Fed::More, Fed::More, Fed::End]);
        assert_eq!(
            body.finish().expect("within the caps"),
            b"Subject: x\r\n\r\n.leading dot\r\n"
        );
    }

    #[test]
    fn a_dot_line_continuing_a_long_line_does_not_end_the_message() {
        let mut body = MessageBody::new(1024, 1024);
        assert_eq!(body.feed(b"long line without end"), Fed::More);
        assert_eq!(body.feed(b".\r\n"), Fed::More);
        assert_eq!(body.feed(b".\r\n"), Fed::End);
    }

    #[test]
    fn every_smuggling_ending_is_a_bare_line_ending() {
        let endings: [&[u8]; 6] = [b"\n", b"x\n", b"x\r", b"\r", b".\r", b"\r.\r\n"];
        for ending in endings {
            let mut body = MessageBody::new(1024, 1024);
            assert_eq!(body.feed(ending), Fed::BareLineEnding, "{ending:?}");
        }
    }

    #[test]
    fn a_message_over_the_cap_is_read_to_the_end_and_refused() {
        let mut body = MessageBody::new(10, 10);
        let fed = feed_all(
            &mut body,
            &[b"A: 1\r\n", b"\r\n", b"0123456789\r\n", b".\r\n"],
        );
        assert_eq!(fed.last(), Some(&Fed::End));
        assert_eq!(body.finish(), Err(Oversize::Message));
    }

    #[test]
    fn a_header_section_over_its_cap_is_refused() {
        let mut body = MessageBody::new(1000, 10);
        feed_all(&mut body, &[b"Subject: 0123456789\r\n", b"\r\n", b".\r\n"]);
        assert_eq!(body.finish(), Err(Oversize::HeaderSection));
    }
}
