//! `IntakeHandler`: mailin's callbacks for one SMTP session, and
//! `SessionFacts`, what the handler and the session loop both know about it.
//!
//! The handler refuses new transactions while shutting down, refuses
//! non-ASCII senders, refuses unknown recipients at RCPT, caps recipients per
//! message and keeps one service per message. It never blocks and never
//! decides a message: the session loop reads DATA itself and, after the
//! engine's end of DATA, asks `intake` for the decision asynchronously.

use super::answer;
use crate::domain::{AddressError, EmailAddress};
use crate::message::{self, EnvelopeSender};
use crate::settings::{Service, Settings};
use mailin_embedded::{Handler, Response};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What the session loop and the handler share about one session.
///
/// Behind a std mutex: it is only ever held for a few field updates, never
/// across an await, and the engine owns the handler, so the loop has no
/// other way to reach it.
#[derive(Debug, Default)]
pub struct SessionFacts {
    /// The name the client gave in HELO/EHLO.
    pub helo: String,
    /// The sender the loop parsed from the current MAIL line; the engine
    /// only ever sees a stand-in for the null sender.
    pub next_sender: Option<String>,
    pub transaction: Transaction,
}

/// The current mail transaction (MAIL until end of DATA).
#[derive(Debug, Default, Clone)]
pub struct Transaction {
    /// `MAIL FROM` without brackets; empty for the null sender.
    pub mail_from: String,
    /// The service, as the session's settings snapshot has it, fixed by the
    /// first recipient.
    pub service: Option<Service>,
    /// Accepted recipients, as identity keys, each once.
    pub recipients: Vec<String>,
    /// Accepted RCPT commands, duplicates included (the recipients cap).
    pub accepted_rcpts: u32,
}

/// Cloneable access to one session's facts.
#[derive(Debug, Clone, Default)]
pub struct SharedFacts(Arc<Mutex<SessionFacts>>);

impl SharedFacts {
    pub fn lock(&self) -> MutexGuard<'_, SessionFacts> {
        // A poisoned lock means a panic while a field was being set; the
        // facts are plain data and still usable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One SMTP session's handler.
pub struct IntakeHandler {
    settings: Arc<Settings>,
    /// Set once shutdown starts: new transactions get `421`.
    shutting_down: Arc<AtomicBool>,
    facts: SharedFacts,
}

impl IntakeHandler {
    pub fn new(
        settings: Arc<Settings>,
        shutting_down: Arc<AtomicBool>,
        facts: SharedFacts,
    ) -> Self {
        Self {
            settings,
            shutting_down,
            facts,
        }
    }

    fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

fn respond(code: u16, text: &str) -> Response {
    Response::custom(code, text.to_owned())
}

fn from_answer(answer: super::reply::SmtpReply) -> Response {
    Response::custom(answer.code, answer.text)
}

impl Handler for IntakeHandler {
    fn helo(&mut self, _ip: IpAddr, domain: &str) -> Response {
        let mut facts = self.facts.lock();
        facts.helo = domain.to_owned();
        facts.transaction = Transaction::default();
        respond(250, "2.0.0 OK")
    }

    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        if self.shutting_down() {
            return from_answer(answer::shutting_down());
        }
        let mut facts = self.facts.lock();
        let sender = facts.next_sender.take().unwrap_or_else(|| from.to_owned());
        facts.transaction = Transaction::default();
        if let EnvelopeSender::Invalid(AddressError::NonAsciiLocalPart) =
            message::judge_envelope_sender(&sender)
        {
            return respond(553, "5.6.7 non-ASCII local parts are not supported");
        }
        facts.transaction.mail_from = sender;
        respond(250, "2.1.0 OK")
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let mut facts = self.facts.lock();
        let transaction = &mut facts.transaction;
        if transaction.accepted_rcpts >= self.settings.smtp.max_recipients {
            return from_answer(answer::too_many_recipients());
        }
        let found = EmailAddress::parse(to).ok().and_then(|address| {
            self.settings
                .service_for_address(&address)
                .map(|service| (service, address.identity_key()))
        });
        let Some((service, key)) = found else {
            return respond(550, "5.1.1 no such support address here");
        };
        match &transaction.service {
            Some(current) if current.id != service.id => respond(
                452,
                "4.5.3 one service per message; send a separate message for this recipient",
            ),
            _ => {
                if transaction.service.is_none() {
                    transaction.service = Some(service.clone());
                }
                transaction.accepted_rcpts += 1;
                if !transaction.recipients.contains(&key) {
                    transaction.recipients.push(key);
                }
                respond(250, "2.1.5 OK")
            }
        }
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        if self.shutting_down() {
            return from_answer(answer::shutting_down());
        }
        respond(354, "end data with <CR><LF>.<CR><LF>")
    }

    /// The loop has read the message itself and decides it after this
    /// returns; this only moves the engine out of DATA. The reply is marked
    /// as no error so the engine leaves DATA whatever the loop answers.
    fn data_end(&mut self) -> Response {
        let mut response = respond(250, "2.0.0 end of data");
        response.is_error = false;
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailin::SessionBuilder;

    fn session(settings: Settings) -> (mailin::Session<IntakeHandler>, SharedFacts) {
        let facts = SharedFacts::default();
        let handler = IntakeHandler::new(
            Arc::new(settings),
            Arc::new(AtomicBool::new(false)),
            facts.clone(),
        );
        let session = SessionBuilder::new("test").build(IpAddr::from([127, 0, 0, 1]), handler);
        (session, facts)
    }

    #[test]
    fn recipients_beyond_the_cap_are_answered_452() {
        let mut settings = crate::settings::load(None).expect("defaults");
        settings.smtp.max_recipients = 2;
        let (mut engine, facts) = session(settings);
        engine.process(b"EHLO client.test\r\n");
        facts.lock().next_sender = Some("jane@example.com".into());
        assert_eq!(
            engine.process(b"MAIL FROM:<jane@example.com>\r\n").code,
            250
        );
        for _ in 0..2 {
            assert_eq!(
                engine
                    .process(b"RCPT TO:<support@helpdesk.example>\r\n")
                    .code,
                250
            );
        }
        let refused = engine.process(b"RCPT TO:<support@helpdesk.example>\r\n");
        assert_eq!(refused.code, 452);
    }

    #[test]
    fn the_null_sender_reaches_the_transaction_as_empty() {
        let (mut engine, facts) = session(crate::settings::load(None).expect("defaults"));
        engine.process(b"EHLO client.test\r\n");
        facts.lock().next_sender = Some(String::new());
        assert_eq!(engine.process(b"MAIL FROM:<null-sender>\r\n").code, 250);
        assert_eq!(facts.lock().transaction.mail_from, "");
    }
}
