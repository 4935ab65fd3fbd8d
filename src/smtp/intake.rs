//! The end-of-DATA step: a received message in, the reply to give out.
//!
//! `RegistrarIntake` parses the message (mail-parser, inside
//! `catch_unwind` in `message`) on the session's task when it is small and
//! on the blocking pool when it is not, as that is CPU work, and waits for
//! `Registrar::from_mail` to commit, without blocking a tokio worker. The
//! `Intake` trait is the seam the session loop calls through, so a test can
//! put a step there that panics and show the loop survives it.
//!
//! Every message read to its end is logged on one line
//! (`event = "smtp.transaction"`, `log_transaction`): the client, the
//! envelope, the service, what was decided and why, and the reply code.
//! Never the message's bytes, nor anything from the web side.

use crate::dsn::DeliveryReport;
use crate::message::{Envelope, InboundMessage, ParseError};
use crate::policy::Decision;
use crate::registration::{Answer, MailAnswers, MailOutcome, Registrar, RegistrationError};
use crate::settings::Service;
use crate::smtp::answer;
use crate::smtp::reply::{self, SmtpReply};
use std::future::Future;
use tracing::Instrument as _;

/// Our SMTP answers, handed to registration (which records the code with
/// the decision) and to `registrar explain` (which prints them).
pub const MAIL_ANSWERS: MailAnswers = MailAnswers {
    decided: decided_answer,
    unreadable: unreadable_answer,
};

fn decided_answer(decision: &Decision, dropped: bool) -> Answer {
    let SmtpReply { code, text } = reply::for_decision(decision, dropped);
    Answer { code, text }
}

fn unreadable_answer(error: &ParseError) -> Answer {
    let SmtpReply { code, text } = reply::for_parse_error(error);
    Answer { code, text }
}

/// What was decided about a message, for its log line: stable names.
#[derive(Debug, Clone, Copy)]
pub struct Decided {
    pub decision: &'static str,
    pub reason: &'static str,
    /// A refusal answered as accepted (`refusal = "drop"`).
    pub dropped: bool,
}

impl Decided {
    pub fn new(decision: &'static str, reason: &'static str) -> Self {
        Self {
            decision,
            reason,
            dropped: false,
        }
    }

    fn of(outcome: &MailOutcome) -> Self {
        match outcome {
            MailOutcome::Decided { decision, dropped } => Self {
                decision: decision.name(),
                reason: decision.reason(),
                dropped: *dropped,
            },
            MailOutcome::Duplicate => Self::new("duplicate", "already_accepted"),
        }
    }

    fn failed(error: &RegistrationError) -> Self {
        let reason = match error {
            RegistrationError::Full => "storage_full",
            RegistrationError::Closed => "shutting_down",
            RegistrationError::Failed(_) => "storage_failed",
        };
        Self::new("error", reason)
    }

    fn unreadable(error: &ParseError) -> Self {
        let reason = match error {
            ParseError::ParserPanicked => "parser_panicked",
            ParseError::Unparseable => "unparseable",
        };
        Self::new("unreadable", reason)
    }
}

/// The one log line of an SMTP transaction, once its message was answered.
pub fn log_transaction(envelope: &Envelope, service: &str, decided: Decided, code: u16) {
    tracing::info!(
        event = "smtp.transaction",
        client.ip = %envelope.client_ip,
        client.helo = %envelope.helo,
        relay.ip = envelope.relay_ip.map(tracing::field::display),
        envelope.from = %envelope.mail_from,
        envelope.to = %envelope.recipients.join(","),
        service,
        decision = decided.decision,
        reason = decided.reason,
        dropped = decided.dropped,
        smtp.code = code,
        "SMTP transaction"
    );
}

/// Decides one received message and answers for it.
pub trait Intake: Send + Sync + 'static {
    /// Decides `raw`, received with `envelope` for `service` (as the
    /// session's settings snapshot has it). The reply is given only after
    /// everything the decision implies is durable.
    fn decide(
        &self,
        service: Service,
        envelope: Envelope,
        raw: Vec<u8>,
    ) -> impl Future<Output = SmtpReply> + Send;

    /// Takes `raw`, sent to the VERP bounce address carrying `token`: a
    /// delivery report for one of our replies (or mail that only looks like
    /// one). Answered after what it changes is durable.
    fn bounce(
        &self,
        token: String,
        envelope: Envelope,
        raw: Vec<u8>,
    ) -> impl Future<Output = SmtpReply> + Send;
}

/// Messages up to this size are parsed on the session's task: tens of
/// microseconds of work at most, where the blocking pool's hand-over costs
/// two thread wake-ups.
const INLINE_PARSE_BYTES: usize = 32 * 1024;

/// The production intake: registration by mail.
#[derive(Clone)]
pub struct RegistrarIntake {
    registrar: Registrar,
}

impl RegistrarIntake {
    pub fn new(registrar: Registrar) -> Self {
        Self { registrar }
    }
}

impl Intake for RegistrarIntake {
    async fn decide(&self, service: Service, envelope: Envelope, raw: Vec<u8>) -> SmtpReply {
        let client_ip = envelope.client_ip;
        let logged = envelope.clone();
        let raw_len = raw.len();
        let parse = move || {
            let message = InboundMessage::parse(envelope, &raw);
            (message, raw)
        };
        // A message as small as most are parses in a few microseconds, less
        // than the hand-over to the blocking pool and back costs.
        let parsed = if raw_len <= INLINE_PARSE_BYTES {
            Ok(parse())
        } else {
            tokio::task::spawn_blocking(parse).await
        };
        let (message, raw) = match parsed {
            Ok((Ok(message), raw)) => (message, raw),
            Ok((Err(error), _)) => {
                let answer = reply::for_parse_error(&error);
                log_transaction(
                    &logged,
                    &service.id,
                    Decided::unreadable(&error),
                    answer.code,
                );
                return answer;
            }
            // The parse itself is panic-safe; this is the blocking task
            // failing around it, which is as much our fault.
            Err(error) => {
                tracing::error!(error.message = %error, smtp.remote_ip = %client_ip, "the parse task failed");
                let error = ParseError::ParserPanicked;
                let answer = reply::for_parse_error(&error);
                log_transaction(
                    &logged,
                    &service.id,
                    Decided::unreadable(&error),
                    answer.code,
                );
                return answer;
            }
        };
        let span = tracing::info_span!(
            "decision",
            service = %service.id,
            message.id = message.message_id.as_deref().unwrap_or("-"),
            smtp.remote_ip = %client_ip,
            smtp.relay_ip = message.envelope.relay_ip.map(tracing::field::display),
        );
        async {
            let (answer, decided) =
                match self.registrar.from_mail(&service, message, raw, MAIL_ANSWERS).await {
                    Ok(outcome) => (reply::for_outcome(&outcome), Decided::of(&outcome)),
                    Err(error) => {
                        tracing::error!(error.message = %error, error.cause_chain = ?error, "failed to record the decision");
                        (reply::for_store_error(&error), Decided::failed(&error))
                    }
                };
            log_transaction(&logged, &service.id, decided, answer.code);
            answer
        }
        .instrument(span)
        .await
    }

    async fn bounce(&self, token: String, envelope: Envelope, raw: Vec<u8>) -> SmtpReply {
        let client_ip = envelope.client_ip;
        let report = match tokio::task::spawn_blocking(move || DeliveryReport::parse(&raw)).await {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(error.message = %error, smtp.remote_ip = %client_ip, "the report parse task failed");
                return reply::for_parse_error(&ParseError::ParserPanicked);
            }
        };
        match self.registrar.from_bounce(token, report).await {
            Ok(outcome) => {
                tracing::info!(event = "delivery_report", outcome = ?outcome, smtp.remote_ip = %client_ip);
                answer::report_received()
            }
            Err(error) => {
                tracing::error!(error.message = %error, error.cause_chain = ?error, "failed to record the delivery report");
                reply::for_store_error(&error)
            }
        }
    }
}
