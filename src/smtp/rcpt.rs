//! `RCPT TO`: parsed here, checked against the session's settings snapshot
//! (the recipients cap, a known support address, one service per message),
//! and answered.
//!
//! Unknown recipients are refused here, at RCPT, never after DATA.

use crate::domain::EmailAddress;
use crate::settings::Settings;
use crate::smtp::answer;
use crate::smtp::command::{check_path, split_path};
use crate::smtp::engine;
use crate::smtp::intake::Intake;
use crate::smtp::mail::Transaction;
use crate::smtp::reply::SmtpReply;
use crate::smtp::session::{End, Session};

/// Parses `RCPT TO:<path>` and returns the path.
///
/// # Errors
/// The reply for a line that cannot be accepted as written.
pub fn parse(line: &[u8]) -> Result<String, SmtpReply> {
    let (path, parameters) = split_path(line, b"RCPT TO:").ok_or_else(answer::rcpt_syntax)?;
    if !parameters.trim().is_empty() {
        return Err(answer::unsupported_parameter());
    }
    check_path(path)
        .filter(|path| !path.is_empty())
        .ok_or_else(answer::bad_recipient_syntax)
}

/// The line mailin's parser accepts for a recipient.
pub fn engine_line(path: &str) -> Vec<u8> {
    format!("RCPT TO:<{path}>\r\n").into_bytes()
}

/// Adds the recipient `path` to `transaction`, or refuses it.
///
/// # Errors
/// The refusal: over the recipients cap, no such support address, or a
/// second service in one message.
pub fn add(
    transaction: &mut Transaction,
    settings: &Settings,
    path: &str,
) -> Result<(), SmtpReply> {
    if transaction.accepted_rcpts >= settings.smtp.max_recipients {
        return Err(answer::too_many_recipients());
    }
    let (service, key) = EmailAddress::parse(path)
        .ok()
        .and_then(|address| {
            settings
                .service_for_address(&address)
                .map(|service| (service, address.identity_key()))
        })
        .ok_or_else(answer::no_such_recipient)?;
    match &transaction.service {
        Some(current) if current.id != service.id => Err(answer::one_service_per_message()),
        current => {
            if current.is_none() {
                transaction.service = Some(service.clone());
            }
            transaction.accepted_rcpts += 1;
            if !transaction.recipients.contains(&key) {
                transaction.recipients.push(key);
            }
            Ok(())
        }
    }
}

impl<I: Intake> Session<I> {
    /// RCPT: the line is checked before the engine, the recipient after it,
    /// so a RCPT without MAIL hears `503` first.
    pub(super) async fn rcpt(&mut self, line: &[u8]) -> Result<(), End> {
        let path = match parse(line) {
            Ok(path) => path,
            Err(refusal) => return self.refuse(refusal).await,
        };
        let response = self.engine.process(&engine_line(&path));
        // The engine accepts RCPT only inside a transaction, and one is
        // always open when it does; without one, its refusal stands.
        let Some(transaction) = self.transaction.as_mut().filter(|_| response.code == 250) else {
            return self.answer_engine(&response).await;
        };
        match add(transaction, &self.settings, &path) {
            Ok(()) => self.send(&answer::recipient_ok()).await,
            Err(refusal) => {
                if transaction.accepted_rcpts == 0 {
                    engine::rewind_rcpt(&mut self.engine, &transaction.mail);
                }
                self.refuse(refusal).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::mail;
    use crate::smtp::xforward::Origin;
    use std::net::IpAddr;

    fn transaction() -> Transaction {
        let peer = Origin::of(None, IpAddr::from([192, 0, 2, 1]), "client.example");
        mail::open(
            mail::parse(b"MAIL FROM:<jane@example.com>\r\n").expect("syntax"),
            peer,
        )
        .expect("accepted")
    }

    #[test]
    fn rcpt_to_refuses_empty_paths_and_parameters() {
        assert_eq!(
            parse(b"RCPT TO: <support@example.com>\r\n").expect("space"),
            "support@example.com"
        );
        assert_eq!(parse(b"RCPT TO:<>\r\n").expect_err("empty").code, 501);
        assert_eq!(
            parse(b"RCPT TO:<a@example.com> NOTIFY=NEVER\r\n")
                .expect_err("parameter")
                .code,
            555
        );
    }

    #[test]
    fn recipients_beyond_the_cap_are_answered_452() {
        let mut settings = crate::settings::load(None).expect("defaults");
        settings.smtp.max_recipients = 2;
        let mut transaction = transaction();
        for _ in 0..2 {
            add(&mut transaction, &settings, "support@helpdesk.example").expect("accepted");
        }

        let refused = add(&mut transaction, &settings, "support@helpdesk.example");

        assert_eq!(refused.expect_err("over the cap").code, 452);
        assert_eq!(transaction.recipients.len(), 1, "each recipient once");
    }

    #[test]
    fn unknown_recipients_are_refused_550_5_1_1() {
        let settings = crate::settings::load(None).expect("defaults");
        let mut transaction = transaction();

        let refused = add(&mut transaction, &settings, "nobody@elsewhere.example");

        let refusal = refused.expect_err("unknown");
        assert_eq!((refusal.code, &refusal.text[..5]), (550, "5.1.1"));
        assert!(transaction.service.is_none());
    }
}
