//! `MAIL FROM`: parsed here in full, checked, and answered; a mail
//! transaction (`Transaction`) starts when it is accepted, standing on its
//! `Origin`: the client a relay named with XFORWARD (counted under its own
//! per-client caps here) or the peer itself.
//!
//! mailin's own parser answers a bare `500` to the null sender `<>`, to a
//! space after the colon (`MAIL FROM: <x>`) and to every parameter but
//! `BODY=`, so the line is parsed here and the engine is handed a canonical
//! one, only to keep the command sequence. Nothing here decides whether an
//! address may register; that is policy's job.

use crate::domain::AddressError;
use crate::message::{self, EnvelopeSender};
use crate::settings::{NullSender, Service};
use crate::smtp::answer;
use crate::smtp::command::{check_path, split_path};
use crate::smtp::engine;
use crate::smtp::intake::Intake;
use crate::smtp::limits::Ticket;
use crate::smtp::reply::SmtpReply;
use crate::smtp::session::{End, Session};
use crate::smtp::xforward::Origin;
use tokio::time::Instant;

/// `MAIL FROM`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    /// The reverse path without brackets; empty for the null sender.
    pub sender: String,
    /// `SIZE=` as declared by the client.
    pub declared_size: Option<u64>,
    /// `BODY=8BITMIME`.
    pub eight_bit: bool,
}

/// The current mail transaction, from an accepted MAIL to the end of DATA.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub mail: MailFrom,
    /// Who the message comes from.
    pub origin: Origin,
    /// The service, as the session's settings snapshot has it, fixed by the
    /// first recipient.
    pub service: Option<Service>,
    /// The VERP token when the recipient is one of our bounce addresses: the
    /// message is a delivery report for that reply, not a registration.
    pub bounce: Option<String>,
    /// Accepted recipients, as identity keys, each once.
    pub recipients: Vec<String>,
    /// Accepted RCPT commands, duplicates included (the recipients cap).
    pub accepted_rcpts: u32,
}

impl MailFrom {
    pub fn is_null_sender(&self) -> bool {
        self.sender.is_empty()
    }

    /// The line mailin's parser accepts for this command. The null sender
    /// gets a stand-in path, because mailin cannot parse `<>`; the
    /// transaction keeps the real sender, and the engine's copy is never
    /// read.
    pub fn engine_line(&self) -> Vec<u8> {
        let path = if self.is_null_sender() {
            "null-sender"
        } else {
            &self.sender
        };
        let body = if self.eight_bit { " BODY=8BITMIME" } else { "" };
        format!("MAIL FROM:<{path}>{body}\r\n").into_bytes()
    }
}

/// Parses `MAIL FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME]`.
///
/// # Errors
/// The reply for a line that cannot be accepted as written.
pub fn parse(line: &[u8]) -> Result<MailFrom, SmtpReply> {
    let (sender, parameters) = split_path(line, b"MAIL FROM:").ok_or_else(answer::mail_syntax)?;
    let sender = check_path(sender).ok_or_else(answer::bad_sender_syntax)?;
    let mut mail = MailFrom {
        sender,
        declared_size: None,
        eight_bit: false,
    };
    for parameter in parameters.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if key.eq_ignore_ascii_case("SIZE") {
            let size = value
                .parse::<u64>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()));
            mail.declared_size = Some(size.ok_or_else(answer::size_not_a_number)?);
        } else if key.eq_ignore_ascii_case("BODY") && value.eq_ignore_ascii_case("8BITMIME") {
            mail.eight_bit = true;
        } else if !(key.eq_ignore_ascii_case("BODY") && value.eq_ignore_ascii_case("7BIT")) {
            return Err(answer::unsupported_parameter());
        }
    }
    Ok(mail)
}

/// Opens a transaction from `origin` for a MAIL the engine found in
/// sequence, or refuses it. We do not offer SMTPUTF8, so a sender with a
/// non-ASCII local part could never be answered.
///
/// # Errors
/// The refusal for this sender.
pub fn open(mail: MailFrom, origin: Origin) -> Result<Transaction, SmtpReply> {
    if let EnvelopeSender::Invalid(AddressError::NonAsciiLocalPart) =
        message::judge_envelope_sender(&mail.sender)
    {
        return Err(answer::non_ascii_local_part());
    }
    Ok(Transaction {
        mail,
        origin,
        service: None,
        bounce: None,
        recipients: Vec::new(),
        accepted_rcpts: 0,
    })
}

impl<I: Intake> Session<I> {
    /// MAIL: the line itself, the declared size and the null sender are
    /// checked before the engine; the sender and a forwarded client's caps
    /// after it, so a command out of sequence hears that first.
    pub(super) async fn mail(&mut self, line: &[u8]) -> Result<(), End> {
        let smtp = self.context.smtp();
        let mail = match parse(line) {
            Ok(mail) => mail,
            Err(refusal) => return self.refuse(refusal).await,
        };
        // A MAIL that can be read uses up the XFORWARD attributes, whatever
        // its answer (as Postfix's server forgets them on a refused MAIL).
        let forwarded = self.forwarded.take();
        if mail
            .declared_size
            .is_some_and(|size| size > smtp.max_message_bytes as u64)
        {
            return self.refuse(answer::declared_size_too_big()).await;
        }
        if mail.is_null_sender() && smtp.null_sender == NullSender::Refuse {
            return self.refuse(answer::null_sender_refused()).await;
        }
        let response = self.engine.process(&mail.engine_line());
        if response.code != 250 {
            return self.answer_engine(&response).await;
        }
        // A new MAIL always ends what an earlier one left.
        self.end_transaction();
        let origin = Origin::of(forwarded.as_ref(), self.client_ip, &self.helo);
        let opened = if self.context.shutdown.is_triggered() {
            Err(answer::shutting_down())
        } else {
            self.admit_forwarded(&origin)
                .and_then(|ticket| Ok((open(mail, origin)?, ticket)))
        };
        match opened {
            Ok((transaction, ticket)) => {
                if let Some(relay) = transaction.origin.relay_ip {
                    tracing::debug!(
                        event = "forwarded",
                        smtp.client_ip = %transaction.origin.client_ip,
                        smtp.helo = %transaction.origin.helo,
                        smtp.relay_ip = %relay,
                        xforward.ident = forwarded.as_ref().and_then(|f| f.ident.as_deref()),
                        "a relay named the original client"
                    );
                }
                self.transaction = Some(transaction);
                self.forwarded_client = ticket;
                self.send(&answer::sender_ok()).await
            }
            Err(refusal) => {
                engine::rewind_mail(&mut self.engine);
                self.refuse(refusal).await
            }
        }
    }

    /// Counts a client a relay named under its own per-client caps, for as
    /// long as its transaction lasts; the peer itself was counted when it
    /// connected.
    fn admit_forwarded(&self, origin: &Origin) -> Result<Option<Ticket>, SmtpReply> {
        if origin.relay_ip.is_none() {
            return Ok(None);
        }
        self.context
            .admission
            .admit_forwarded(origin.client_ip, Instant::now())
            .map(Some)
            .map_err(|refusal| {
                tracing::info!(
                    event = "refused",
                    smtp.client_ip = %origin.client_ip,
                    reason = ?refusal,
                    "a forwarded client is over its caps"
                );
                self.context.metrics.smtp_session_refused(refusal.limit());
                answer::forwarded_client_limited()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn peer() -> Origin {
        Origin::of(None, IpAddr::from([192, 0, 2, 1]), "client.example")
    }

    #[test]
    fn mail_from_is_read_in_every_accepted_spelling() {
        let cases: [(&[u8], &str, Option<u64>); 5] = [
            (
                b"MAIL FROM:<jane@example.com>\r\n",
                "jane@example.com",
                None,
            ),
            (
                b"mail from: <jane@example.com>\r\n",
                "jane@example.com",
                None,
            ),
            (b"MAIL FROM:<>\r\n", "", None),
            (
                b"MAIL FROM:<jane@example.com> SIZE=100 BODY=8BITMIME\r\n",
                "jane@example.com",
                Some(100),
            ),
            (b"MAIL FROM:jane@example.com\r\n", "jane@example.com", None),
        ];
        for (line, sender, size) in cases {
            let mail = parse(line).unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
            assert_eq!(mail.sender, sender, "{line:?}");
            assert_eq!(mail.declared_size, size, "{line:?}");
        }
    }

    #[test]
    fn bad_mail_from_lines_get_their_own_codes() {
        let cases: [(&[u8], u16); 5] = [
            (b"MAIL FROM:<a b@example.com>\r\n", 501),
            (b"MAIL FROM:<jane@example.com\r\n", 501),
            (b"MAIL FROM:<jane@example.com> SIZE=big\r\n", 501),
            (b"MAIL FROM:<jane@example.com> SMTPUTF8\r\n", 555),
            (b"MAIL TO:<jane@example.com>\r\n", 501),
        ];
        for (line, code) in cases {
            let reply = parse(line).expect_err("refused");
            assert_eq!(reply.code, code, "{line:?}");
        }
    }

    #[test]
    fn the_engine_sees_a_line_it_can_parse_for_the_null_sender() {
        let mail = parse(b"MAIL FROM:<>\r\n").expect("null sender");
        assert!(mail.is_null_sender());
        assert_eq!(mail.engine_line(), b"MAIL FROM:<null-sender>\r\n");
    }

    #[test]
    fn the_null_sender_opens_a_transaction_with_an_empty_sender() {
        let mail = parse(b"MAIL FROM:<>\r\n").expect("null sender");
        let transaction = open(mail, peer()).expect("accepted");
        assert_eq!(transaction.mail.sender, "");
    }

    #[test]
    fn a_non_ascii_local_part_is_refused_553_5_6_7() {
        let mail = parse("MAIL FROM:<jöran@example.com>\r\n".as_bytes()).expect("syntax");
        let refusal = open(mail, peer()).expect_err("refused");
        assert_eq!(refusal.code, 553);
        assert!(refusal.text.starts_with("5.6.7"), "{}", refusal.text);
    }
}
