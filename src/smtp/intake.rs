//! The end-of-DATA step: a received message in, the reply to give out.
//!
//! `RegistrarIntake` parses the message's headers (mail-parser, inside
//! `catch_unwind` in `message`): on this task when the message is small,
//! which is quicker than a hand-off, else on the blocking pool; then it
//! waits for `Registrar::from_mail` to commit, without blocking a tokio
//! worker. The
//! `Intake` trait is the seam the session loop calls through, so a test can
//! put a step there that panics and show the loop survives it.

use crate::message::{Envelope, InboundMessage, ParseError};
use crate::policy::Decision;
use crate::registration::{Answer, MailAnswers, Registrar};
use crate::settings::Service;
use crate::smtp::reply::{self, SmtpReply};
use std::future::Future;
use tracing::Instrument as _;

/// Messages up to this size are parsed on the session's own task (tens of
/// microseconds); bigger ones on the blocking pool, so that no tokio worker
/// is held for long.
const INLINE_PARSE_BYTES: usize = 64 * 1024;

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
}

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
        let parsed = if raw.len() <= INLINE_PARSE_BYTES {
            Ok((InboundMessage::parse(envelope, &raw), raw))
        } else {
            tokio::task::spawn_blocking(move || {
                let message = InboundMessage::parse(envelope, &raw);
                (message, raw)
            })
            .await
        };
        let (message, raw) = match parsed {
            Ok((Ok(message), raw)) => (message, raw),
            Ok((Err(error), _)) => {
                tracing::warn!(error.message = %error, smtp.remote_ip = %client_ip, "unreadable message");
                return reply::for_parse_error(&error);
            }
            // The parse itself is panic-safe; this is the blocking task
            // failing around it, which is as much our fault.
            Err(error) => {
                tracing::error!(error.message = %error, smtp.remote_ip = %client_ip, "the parse task failed");
                return reply::for_parse_error(&ParseError::ParserPanicked);
            }
        };
        let span = tracing::info_span!(
            "decision",
            service = %service.id,
            message.id = message.message_id.as_deref().unwrap_or("-"),
            smtp.remote_ip = %client_ip,
        );
        async {
            match self.registrar.from_mail(&service, message, raw, MAIL_ANSWERS).await {
                Ok(outcome) => {
                    let answer = reply::for_outcome(&outcome);
                    tracing::info!(event = "decided", outcome = ?outcome, smtp.code = answer.code);
                    answer
                }
                Err(error) => {
                    tracing::error!(error.message = %error, error.cause_chain = ?error, "failed to record the decision");
                    reply::for_store_error(&error)
                }
            }
        }
        .instrument(span)
        .await
    }
}
