//! Every protocol reply we send, each a named function built by the one
//! constructor `answer`: the greeting and EHLO, each verb's acceptances and
//! refusals, limits, timeouts, shutdown, and the end-of-DATA answers, plus
//! the one place engine replies are turned into our `SmtpReply` with an
//! enhanced status code.
//!
//! Which answer a decided message gets is chosen in `reply`; the wording and
//! the codes are here, so a code is written once.

use crate::smtp::reply::SmtpReply;
use crate::smtp::xforward;
use mailin_embedded::Response;

/// The one constructor of a reply: every other function here names one.
fn answer(code: u16, text: &str) -> SmtpReply {
    SmtpReply {
        code,
        text: text.to_owned(),
    }
}

/// An end-of-DATA refusal that says so: nothing was registered.
fn nobody_registered(reply: SmtpReply) -> SmtpReply {
    answer(
        reply.code,
        &format!("{}; nobody was registered", reply.text),
    )
}

pub fn greeting(hostname: &str) -> SmtpReply {
    answer(220, &format!("{hostname} ESMTP"))
}

/// What our EHLO reply offers beyond the fixed extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub starttls: bool,
    /// XFORWARD, to the relays in front of us only.
    pub xforward: bool,
}

/// Our EHLO reply: mailin's own advertises neither SIZE nor PIPELINING.
pub fn ehlo(hostname: &str, max_message_bytes: usize, offer: Offer) -> Vec<u8> {
    let mut lines = vec![
        hostname.to_owned(),
        "PIPELINING".into(),
        format!("SIZE {max_message_bytes}"),
        "8BITMIME".into(),
        "ENHANCEDSTATUSCODES".into(),
    ];
    if offer.starttls {
        lines.push("STARTTLS".into());
    }
    if offer.xforward {
        lines.push(format!("XFORWARD {}", xforward::OFFERED));
    }
    let last = lines.len() - 1;
    lines
        .iter()
        .enumerate()
        .flat_map(|(at, line)| {
            let separator = if at == last { ' ' } else { '-' };
            format!("250{separator}{line}\r\n").into_bytes()
        })
        .collect()
}

/// Writes a one-line reply.
pub fn render(reply: &SmtpReply) -> Vec<u8> {
    format!("{} {}\r\n", reply.code, reply.text).into_bytes()
}

/// An engine reply as we send it: its text, with an enhanced status code
/// put in front when the engine gave none (we advertise
/// ENHANCEDSTATUSCODES, so every 2xx/4xx/5xx reply carries one).
pub fn from_engine(response: &Response) -> SmtpReply {
    let written = response.buffer().unwrap_or_default();
    let written = String::from_utf8_lossy(&written);
    let text = written
        .lines()
        .last()
        .and_then(|line| line.get(4..))
        .unwrap_or_default()
        .trim_end();
    if has_enhanced_code(text) || response.code == 354 {
        return answer(response.code, text);
    }
    let enhanced = match response.code {
        200..=299 => "2.0.0",
        421 => "4.3.0",
        500 => "5.5.2",
        501 | 502 | 504 => "5.5.4",
        503 => "5.5.1",
        400..=499 => "4.0.0",
        _ => "5.0.0",
    };
    answer(response.code, &format!("{enhanced} {text}"))
}

fn has_enhanced_code(text: &str) -> bool {
    let code = text.split(' ').next().unwrap_or_default();
    let parts: Vec<&str> = code.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

// Connection admission (sent instead of the greeting, then the connection
// closes).

pub fn too_many_sessions() -> SmtpReply {
    answer(421, "4.7.0 too many sessions; try again later")
}

pub fn too_many_sessions_from_address() -> SmtpReply {
    answer(
        421,
        "4.7.0 too many sessions from your address; try again later",
    )
}

pub fn too_many_connections_from_address() -> SmtpReply {
    answer(
        421,
        "4.7.0 too many connections from your address; try again later",
    )
}

// Session limits (each closes the session).

/// The first command after the session's last message: a Postfix in front
/// hears it in reply to the RSET it sends before reusing a connection, and
/// opens a new one without deferring anything. Measured with Postfix 3.7
/// and 300 messages: this answer defers none; 421 at MAIL defers the
/// message at hand (20 of 300), and 452 at MAIL with the session going on
/// defers that message and every later one sent on the session (73).
pub fn too_many_messages() -> SmtpReply {
    answer(
        421,
        "4.7.0 too many messages in this session; reconnect to send more",
    )
}

pub fn too_many_errors() -> SmtpReply {
    answer(421, "4.7.0 too many errors")
}

pub fn idle_timeout() -> SmtpReply {
    answer(421, "4.4.2 idle too long; closing connection")
}

pub fn command_timeout() -> SmtpReply {
    answer(421, "4.4.2 command line took too long; closing connection")
}

pub fn session_timeout() -> SmtpReply {
    answer(421, "4.4.2 session time limit reached; closing connection")
}

pub fn data_too_slow() -> SmtpReply {
    answer(
        421,
        "4.4.2 message data arriving too slowly; closing connection",
    )
}

pub fn shutting_down() -> SmtpReply {
    answer(421, "4.3.2 service shutting down; try again later")
}

pub fn bare_line_ending() -> SmtpReply {
    answer(
        521,
        "5.5.2 bare CR or LF line endings are not accepted; closing connection",
    )
}

pub fn input_before_tls() -> SmtpReply {
    answer(
        554,
        "5.5.1 input sent after STARTTLS before the TLS handshake; closing connection",
    )
}

// HELO, XFORWARD, MAIL, RCPT and DATA.

pub fn hello() -> SmtpReply {
    answer(250, "2.0.0 OK")
}

pub fn xforward_ok() -> SmtpReply {
    answer(250, "2.0.0 OK")
}

pub fn sender_ok() -> SmtpReply {
    answer(250, "2.1.0 OK")
}

pub fn recipient_ok() -> SmtpReply {
    answer(250, "2.1.5 OK")
}

// Command refusals (the session goes on; each counts as an error).

pub fn xforward_in_transaction() -> SmtpReply {
    answer(503, "5.5.1 XFORWARD is not allowed in a mail transaction")
}

pub fn xforward_syntax() -> SmtpReply {
    answer(501, "5.5.4 syntax: XFORWARD attribute=value ...")
}

/// Its values are not read: only a relay in front of us may name a client.
pub fn xforward_not_authorized() -> SmtpReply {
    answer(550, "5.7.0 XFORWARD is not authorized for your address")
}

pub fn xforward_bad_value() -> SmtpReply {
    answer(501, "5.5.4 bad XFORWARD attribute value")
}

pub fn xforward_unknown_attribute() -> SmtpReply {
    answer(501, "5.5.4 unknown XFORWARD attribute")
}

/// A client a relay named is over its per-client caps: only this message
/// waits (the relay retries it), as with Postfix's own client message rate
/// limit.
pub fn forwarded_client_limited() -> SmtpReply {
    answer(
        450,
        "4.7.1 too much mail from the original client; try again later",
    )
}

pub fn mail_syntax() -> SmtpReply {
    answer(501, "5.5.4 syntax: MAIL FROM:<address>")
}

pub fn bad_sender_syntax() -> SmtpReply {
    answer(501, "5.1.7 bad sender address syntax")
}

pub fn size_not_a_number() -> SmtpReply {
    answer(501, "5.5.4 SIZE needs a number of bytes")
}

pub fn rcpt_syntax() -> SmtpReply {
    answer(501, "5.5.4 syntax: RCPT TO:<address>")
}

pub fn bad_recipient_syntax() -> SmtpReply {
    answer(501, "5.1.3 bad recipient address syntax")
}

pub fn unsupported_parameter() -> SmtpReply {
    answer(555, "5.5.4 unsupported parameter")
}

/// We do not offer SMTPUTF8, so such a sender can never be answered.
pub fn non_ascii_local_part() -> SmtpReply {
    answer(553, "5.6.7 non-ASCII local parts are not supported")
}

pub fn no_such_recipient() -> SmtpReply {
    answer(550, "5.1.1 no such support address here")
}

pub fn one_service_per_message() -> SmtpReply {
    answer(
        452,
        "4.5.3 one service per message; send a separate message for this recipient",
    )
}

pub fn line_too_long() -> SmtpReply {
    answer(500, "5.5.2 line too long")
}

pub fn improper_pipelining() -> SmtpReply {
    answer(503, "5.5.0 improper use of SMTP command pipelining")
}

pub fn declared_size_too_big() -> SmtpReply {
    answer(552, "5.3.4 message size exceeds fixed maximum message size")
}

pub fn null_sender_refused() -> SmtpReply {
    answer(
        550,
        "5.7.1 mail from the null sender is not accepted here; nobody is registered by it",
    )
}

pub fn too_many_recipients() -> SmtpReply {
    answer(452, "4.5.3 too many recipients")
}

// End of DATA, before registration.

pub fn message_too_big() -> SmtpReply {
    answer(552, "5.3.4 message too big")
}

pub fn header_section_too_big() -> SmtpReply {
    answer(552, "5.3.4 message header section too big")
}

pub fn no_valid_recipients() -> SmtpReply {
    answer(503, "5.5.1 no valid recipients")
}

// End of DATA: the message's fate (chosen in `reply`).

pub fn accepted_reply_on_its_way() -> SmtpReply {
    answer(250, "2.0.0 message accepted; a reply is on its way")
}

pub fn accepted() -> SmtpReply {
    answer(250, "2.0.0 message accepted")
}

pub fn already_accepted() -> SmtpReply {
    answer(250, "2.0.0 message already accepted")
}

pub fn sender_auth_unavailable() -> SmtpReply {
    answer(
        451,
        "4.7.1 the sender could not be authenticated right now (DNS); try again later",
    )
}

/// The circuit breaker is open: a new sender waits, so a flood of new
/// senders never becomes outbound mail.
pub fn new_senders_wait() -> SmtpReply {
    answer(
        451,
        "4.7.1 too many new registrations right now; try again later",
    )
}

pub fn self_registration_off() -> SmtpReply {
    answer(
        550,
        "5.7.1 self-registration by mail is not available for this service",
    )
}

pub fn domain_not_allowed() -> SmtpReply {
    answer(
        550,
        "5.7.1 self-registration is not available for addresses at this domain",
    )
}

/// Denied and disabled addresses get the same words, so the answer does not
/// tell which.
pub fn address_not_allowed() -> SmtpReply {
    answer(
        550,
        "5.7.1 self-registration is not available for this address",
    )
}

pub fn sender_mismatch() -> SmtpReply {
    nobody_registered(answer(
        550,
        "5.7.1 the From address must be exactly one address equal to the envelope sender",
    ))
}

pub fn invalid_sender() -> SmtpReply {
    nobody_registered(answer(
        550,
        "5.7.1 the envelope sender cannot be registered",
    ))
}

pub fn non_ascii_sender() -> SmtpReply {
    nobody_registered(non_ascii_local_part())
}

pub fn sender_rate_limited() -> SmtpReply {
    answer(
        550,
        "5.7.1 too many registration mails for this address; try again later",
    )
}

pub fn service_budget_spent() -> SmtpReply {
    answer(
        550,
        "5.7.1 this service has sent too many registration mails today; try again tomorrow",
    )
}

pub fn domain_budget_spent() -> SmtpReply {
    answer(
        550,
        "5.7.1 too many registration mails for addresses at this domain today; try again tomorrow",
    )
}

pub fn network_budget_spent() -> SmtpReply {
    answer(
        550,
        "5.7.1 too many registration mails from your network today; try again tomorrow",
    )
}

pub fn not_authenticated() -> SmtpReply {
    nobody_registered(answer(
        550,
        "5.7.1 the sender could not be authenticated (DMARC)",
    ))
}

pub fn forwarded_not_authenticated() -> SmtpReply {
    answer(
        550,
        "5.7.1 a forwarder rewrote the envelope sender (SRS) and the From address could not be authenticated, so we cannot tell who sent this; nobody was registered; use \"Create an account\" on the customer portal instead",
    )
}

pub fn too_many_hops() -> SmtpReply {
    answer(554, "5.4.6 too many Received headers; mail loop suspected")
}

pub fn unreadable_message() -> SmtpReply {
    answer(550, "5.6.0 the message has no readable header section")
}

// End of DATA: our own faults, always temporary so the sender retries.

pub fn storage_full() -> SmtpReply {
    answer(452, "4.3.1 insufficient system storage; try again later")
}

pub fn storage_failed() -> SmtpReply {
    answer(451, "4.3.0 temporary storage failure; try again later")
}

pub fn processing_failed() -> SmtpReply {
    answer(
        451,
        "4.3.0 the message could not be processed; try again later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_replies_get_an_enhanced_code_once() {
        let bare = from_engine(&Response::custom(503, "Bad sequence of commands".into()));
        assert_eq!(bare.text, "5.5.1 Bad sequence of commands");
        let ours = from_engine(&Response::custom(250, "2.1.0 OK".into()));
        assert_eq!(ours.text, "2.1.0 OK");
    }

    #[test]
    fn ehlo_advertises_size_and_pipelining_and_ends_with_a_space_line() {
        let nothing = Offer {
            starttls: false,
            xforward: false,
        };
        let text = String::from_utf8(ehlo("mx.test", 4096, nothing)).expect("ascii");
        assert!(text.starts_with("250-mx.test\r\n"));
        assert!(text.contains("250-PIPELINING\r\n"));
        assert!(text.contains("250-SIZE 4096\r\n"));
        assert!(text.ends_with("250 ENHANCEDSTATUSCODES\r\n"));
        assert!(!text.contains("STARTTLS"));
        assert!(!text.contains("XFORWARD"));
    }

    #[test]
    fn ehlo_offers_xforward_with_its_attributes_when_asked() {
        let relay = Offer {
            starttls: false,
            xforward: true,
        };
        let text = String::from_utf8(ehlo("mx.test", 4096, relay)).expect("ascii");
        assert!(
            text.ends_with("250 XFORWARD NAME ADDR PROTO HELO IDENT SOURCE\r\n"),
            "{text}"
        );
    }
    #[test]
    fn every_reply_carries_an_enhanced_code_of_its_own_class() {
        let replies = [
            too_many_sessions(),
            too_many_sessions_from_address(),
            too_many_connections_from_address(),
            too_many_messages(),
            too_many_errors(),
            idle_timeout(),
            command_timeout(),
            session_timeout(),
            data_too_slow(),
            shutting_down(),
            bare_line_ending(),
            input_before_tls(),
            hello(),
            xforward_ok(),
            xforward_in_transaction(),
            xforward_syntax(),
            xforward_not_authorized(),
            xforward_bad_value(),
            xforward_unknown_attribute(),
            forwarded_client_limited(),
            sender_ok(),
            recipient_ok(),
            mail_syntax(),
            bad_sender_syntax(),
            size_not_a_number(),
            rcpt_syntax(),
            bad_recipient_syntax(),
            unsupported_parameter(),
            non_ascii_local_part(),
            no_such_recipient(),
            one_service_per_message(),
            line_too_long(),
            improper_pipelining(),
            declared_size_too_big(),
            null_sender_refused(),
            too_many_recipients(),
            message_too_big(),
            header_section_too_big(),
            no_valid_recipients(),
            accepted_reply_on_its_way(),
            accepted(),
            already_accepted(),
            sender_auth_unavailable(),
            new_senders_wait(),
            self_registration_off(),
            domain_not_allowed(),
            address_not_allowed(),
            sender_mismatch(),
            invalid_sender(),
            non_ascii_sender(),
            sender_rate_limited(),
            service_budget_spent(),
            domain_budget_spent(),
            network_budget_spent(),
            not_authenticated(),
            too_many_hops(),
            unreadable_message(),
            storage_full(),
            storage_failed(),
            processing_failed(),
        ];
        for reply in replies {
            let class = char::from(b'0' + (reply.code / 100) as u8);
            assert!(has_enhanced_code(&reply.text), "{reply:?}");
            assert!(reply.text.starts_with(class), "{reply:?}");
        }
    }

    #[test]
    fn end_of_data_refusals_say_nobody_was_registered_once() {
        let refusal = non_ascii_sender();
        assert_eq!(refusal.code, non_ascii_local_part().code);
        assert_eq!(
            refusal.text,
            "5.6.7 non-ASCII local parts are not supported; nobody was registered"
        );
    }
}
