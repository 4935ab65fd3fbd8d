//! `IntakeHandler`: mailin's callbacks for one SMTP session.
//!
//! It refuses unknown recipients at RCPT, caps the message size while reading
//! DATA, refuses new transactions while shutting down, and at end of DATA asks
//! `registration` for a decision, answering only after it is committed. It
//! runs on a mailin session thread, never on a tokio worker, so waiting for the
//! store writer here blocks nobody else.

use super::reply::{self, SmtpReply};
use crate::domain::{AddressError, EmailAddress};
use crate::message::{self, Envelope, EnvelopeSender, InboundMessage};
use crate::registration::Registrar;
use mailin_embedded::{Action, Handler, Response};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What every session shares.
struct Shared {
    registrar: Registrar,
    /// Set once shutdown starts: new transactions get `421`.
    shutting_down: Arc<AtomicBool>,
    max_message_bytes: usize,
}

/// One SMTP session's handler; mailin clones a fresh one per connection.
#[derive(Clone)]
pub struct IntakeHandler {
    shared: Arc<Shared>,
    client_ip: IpAddr,
    helo: String,
    transaction: Transaction,
}

/// State of the current mail transaction (MAIL .. end of DATA).
#[derive(Clone, Default)]
struct Transaction {
    mail_from: String,
    /// Index of the service in the settings, fixed by the first recipient.
    service: Option<usize>,
    /// Accepted recipients, as identity keys.
    recipients: Vec<String>,
    data: Vec<u8>,
    /// The message grew past the size cap; the rest is read and discarded.
    oversize: bool,
    /// A line ended in a bare LF or carried a bare CR.
    bare_line_ending: bool,
}

impl IntakeHandler {
    pub fn new(
        registrar: Registrar,
        shutting_down: Arc<AtomicBool>,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                registrar,
                shutting_down,
                max_message_bytes,
            }),
            client_ip: IpAddr::from([0, 0, 0, 0]),
            helo: String::new(),
            transaction: Transaction::default(),
        }
    }

    fn shutting_down(&self) -> bool {
        self.shared.shutting_down.load(Ordering::Relaxed)
    }

    /// Decides the message received in this transaction.
    fn finish_message(&mut self) -> SmtpReply {
        let transaction = std::mem::take(&mut self.transaction);
        if transaction.oversize {
            return SmtpReply {
                code: 552,
                text: "5.3.4 message too big".into(),
            };
        }
        if transaction.bare_line_ending {
            return SmtpReply {
                code: 550,
                text: "5.5.2 bare CR or LF line endings are not accepted".into(),
            };
        }
        let settings = self.shared.registrar.settings();
        let Some(service) = transaction
            .service
            .and_then(|index| settings.services.get(index))
        else {
            return SmtpReply {
                code: 503,
                text: "5.5.1 no valid recipients".into(),
            };
        };
        let envelope = Envelope {
            client_ip: self.client_ip,
            helo: self.helo.clone(),
            mail_from: transaction.mail_from,
            recipients: transaction.recipients,
        };
        let message = match InboundMessage::parse(envelope, &transaction.data) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(error.message = %error, smtp.remote_ip = %self.client_ip, "unreadable message");
                return reply::for_parse_error(&error);
            }
        };
        let span = tracing::info_span!(
            "decision",
            service = %service.id,
            message.id = message.message_id.as_deref().unwrap_or("-"),
            smtp.remote_ip = %self.client_ip,
        );
        let _entered = span.enter();
        match self
            .shared
            .registrar
            .from_mail_blocking(service, message, transaction.data)
        {
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
}

/// A reply that keeps mailin's state machine moving: after an error reply
/// from `data_end` mailin would stay in DATA and swallow the next command, so
/// every end-of-DATA answer is marked as not an error (the code the client
/// sees is unchanged).
fn end_of_data(answer: SmtpReply) -> Response {
    let mut response = Response::custom(answer.code, answer.text);
    response.is_error = false;
    if matches!(answer.code, 421) {
        response.action = Action::Close;
    }
    response
}

fn respond(code: u16, text: &str) -> Response {
    Response::custom(code, text.to_owned())
}

impl Handler for IntakeHandler {
    fn helo(&mut self, ip: IpAddr, domain: &str) -> Response {
        self.client_ip = ip;
        self.helo = domain.to_owned();
        respond(250, "OK")
    }

    fn mail(&mut self, ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.client_ip = ip;
        self.transaction = Transaction::default();
        if self.shutting_down() {
            return respond(421, "4.3.2 service shutting down; try again later");
        }
        if let EnvelopeSender::Invalid(AddressError::NonAsciiLocalPart) =
            message::judge_envelope_sender(from)
        {
            return respond(553, "5.6.7 non-ASCII local parts are not supported");
        }
        self.transaction.mail_from = from.to_owned();
        respond(250, "2.1.0 OK")
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let settings = self.shared.registrar.settings();
        let found = EmailAddress::parse(to).ok().and_then(|address| {
            settings
                .services
                .iter()
                .position(|service| {
                    service
                        .support_addresses
                        .iter()
                        .any(|s| s.identity_key() == address.identity_key())
                })
                .map(|index| (index, address.identity_key()))
        });
        let Some((index, key)) = found else {
            return respond(550, "5.1.1 no such support address here");
        };
        match self.transaction.service {
            Some(current) if current != index => respond(
                452,
                "4.5.3 one service per message; send a separate message for this recipient",
            ),
            _ => {
                self.transaction.service = Some(index);
                if !self.transaction.recipients.contains(&key) {
                    self.transaction.recipients.push(key);
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
            return respond(421, "4.3.2 service shutting down; try again later");
        }
        self.transaction.data.clear();
        respond(354, "end data with <CR><LF>.<CR><LF>")
    }

    fn data(&mut self, line: &[u8]) -> std::io::Result<()> {
        // Never return Err here: mailin would answer 554 mid-DATA and lose
        // sync with the client. Flags are judged at the end instead.
        let transaction = &mut self.transaction;
        let body = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"));
        let bare_lf = line.ends_with(b"\n") && !line.ends_with(b"\r\n");
        if bare_lf || body.unwrap_or(line).contains(&b'\r') {
            transaction.bare_line_ending = true;
        }
        if transaction.oversize
            || transaction.data.len() + line.len() > self.shared.max_message_bytes
        {
            transaction.oversize = true;
            transaction.data = Vec::new();
        } else {
            transaction.data.extend_from_slice(line);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        end_of_data(self.finish_message())
    }
}
