//! Parsing inbound mail: raw bytes plus the SMTP envelope in, an
//! `InboundMessage` holding only what policy needs out.
//!
//! mail-parser accepts nearly anything, so this module checks what policy
//! relies on itself (how many From headers, how many addresses in them) and
//! runs the parser inside `catch_unwind`: a message that makes the parser
//! panic is reported as such and never takes a session thread down with it.

use crate::domain::{AddressError, CustomerName, EmailAddress};
use mail_parser::{HeaderName, HeaderValue, MessageParser};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What the SMTP session learned before the message arrived.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Address of the client the message came from: the SMTP peer, or the
    /// original client a relay in front of us named with `XFORWARD`.
    pub client_ip: IpAddr,
    /// Name that client gave in HELO/EHLO.
    pub helo: String,
    /// The relay that handed the message over and named the client with
    /// `XFORWARD`; `None` when the client is the SMTP peer itself.
    pub relay_ip: Option<IpAddr>,
    /// `MAIL FROM` as given; empty for the null sender `<>`.
    pub mail_from: String,
    /// Accepted recipients (support addresses).
    pub recipients: Vec<String>,
}

impl Envelope {
    /// The SMTP peer that handed us the message: the relay, or else the
    /// client itself.
    pub fn peer_ip(&self) -> IpAddr {
        self.relay_ip.unwrap_or(self.client_ip)
    }
}

/// The envelope sender, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeSender {
    /// `MAIL FROM:<>`: a bounce or other automatic notice.
    Null,
    /// A usable address.
    Address(EmailAddress),
    /// An address that can never own an account.
    Invalid(AddressError),
}

/// The `From:` header section, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromHeader {
    /// No From header at all.
    Missing,
    /// More than one From header, more than one address, or a group.
    Ambiguous,
    /// Exactly one address that is not usable.
    Invalid(AddressError),
    /// Exactly one usable address, with its cleaned display name.
    Single {
        address: EmailAddress,
        display_name: Option<CustomerName>,
    },
}

/// Everything policy and storage need to know about one inbound message.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub envelope: Envelope,
    pub sender: EnvelopeSender,
    pub from: FromHeader,
    /// Message-ID without angle brackets, when present.
    pub message_id: Option<String>,
    /// Decoded subject, used only to recognise auto-replies; never echoed.
    pub subject: Option<String>,
    /// `Auto-Submitted` value, lowercased, without parameters.
    pub auto_submitted: Option<String>,
    /// `Precedence` value, lowercased.
    pub precedence: Option<String>,
    /// Whether any `List-*` header is present.
    pub has_list_headers: bool,
    /// `X-Auto-Response-Suppress` value, as sent.
    pub auto_response_suppress: Option<String>,
    /// Whether the top-level type is `multipart/report` (DSN, MDN).
    pub is_report: bool,
    /// The language the sender's software says the message is in
    /// (`Content-Language`, else Outlook's `Accept-Language`), as sent; the
    /// reply is written in it when we ship it.
    pub language: Option<String>,
    /// Every `X-Loop` value.
    pub loop_stamps: Vec<String>,
    /// Number of `Received` headers.
    pub received_count: usize,
    /// The topmost `Authentication-Results` values, unfolded, as sent: the
    /// first run of such headers with no other header between them, which
    /// is where the relay that handed us the message put its own. Any
    /// further down came with the message and are not kept. Only
    /// `sender_auth` reads them, and only from a trusted relay.
    pub authentication_results: Vec<String>,
    /// SHA-256 of the raw bytes, for idempotency.
    pub content_hash: [u8; 32],
    /// Size of the raw message in bytes.
    pub size: usize,
}

/// Why a message could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message has no header section")]
    Unparseable,
    #[error("the mail parser panicked on this message")]
    ParserPanicked,
}

impl InboundMessage {
    /// Parses raw message bytes received with `envelope`.
    ///
    /// # Errors
    /// `ParseError::Unparseable` when there are no headers to read;
    /// `ParseError::ParserPanicked` when mail-parser panicked.
    pub fn parse(envelope: Envelope, raw: &[u8]) -> Result<Self, ParseError> {
        let sender = judge_envelope_sender(&envelope.mail_from);
        let content_hash: [u8; 32] = Sha256::digest(raw).into();
        let parsed = catch_unwind(AssertUnwindSafe(|| extract_headers(raw)))
            .map_err(|_| ParseError::ParserPanicked)?
            .ok_or(ParseError::Unparseable)?;
        Ok(Self {
            envelope,
            sender,
            from: parsed.from,
            message_id: parsed.message_id,
            subject: parsed.subject,
            auto_submitted: parsed.auto_submitted,
            precedence: parsed.precedence,
            has_list_headers: parsed.has_list_headers,
            auto_response_suppress: parsed.auto_response_suppress,
            is_report: parsed.is_report,
            language: parsed.content_language.or(parsed.accept_language),
            loop_stamps: parsed.loop_stamps,
            received_count: parsed.received_count,
            authentication_results: parsed.authentication_results,
            content_hash,
            size: raw.len(),
        })
    }

    /// The single From address, when the header is usable: the address that
    /// registers by mail and gets the reply.
    pub fn from_address(&self) -> Option<&EmailAddress> {
        match &self.from {
            FromHeader::Single { address, .. } => Some(address),
            _ => None,
        }
    }

    /// The display name from `From:`, when the header is usable.
    pub fn display_name(&self) -> Option<&CustomerName> {
        match &self.from {
            FromHeader::Single { display_name, .. } => display_name.as_ref(),
            _ => None,
        }
    }
}

/// The header section of a raw message: everything up to and including the
/// empty line that ends it (the whole message when there is none). What we
/// keep of mail we do not answer.
pub fn header_section(raw: &[u8]) -> &[u8] {
    let crlf = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|at| at + 2);
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => raw.len(),
    };
    &raw[..end]
}

/// Judges `MAIL FROM` as the SMTP layer received it (brackets removed).
pub fn judge_envelope_sender(mail_from: &str) -> EnvelopeSender {
    let trimmed = mail_from
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    if trimmed.is_empty() {
        return EnvelopeSender::Null;
    }
    // A source route (`@relay:user@host`) never registers anyone.
    if trimmed.starts_with('@') {
        return EnvelopeSender::Invalid(AddressError::InvalidLocalPart);
    }
    match EmailAddress::parse(trimmed) {
        Ok(address) => EnvelopeSender::Address(address),
        Err(error) => EnvelopeSender::Invalid(error),
    }
}

/// Header facts, gathered in one pass.
struct HeaderFacts {
    from: FromHeader,
    message_id: Option<String>,
    subject: Option<String>,
    auto_submitted: Option<String>,
    precedence: Option<String>,
    has_list_headers: bool,
    auto_response_suppress: Option<String>,
    is_report: bool,
    content_language: Option<String>,
    accept_language: Option<String>,
    loop_stamps: Vec<String>,
    received_count: usize,
    authentication_results: Vec<String>,
}

/// Reads the header section only: nothing here needs the body, and the
/// body of a large message (its MIME parts, a base64 attachment decoded)
/// would cost far more than its headers.
fn extract_headers(raw: &[u8]) -> Option<HeaderFacts> {
    let message = MessageParser::default().parse_headers(raw)?;
    if message.headers().is_empty() {
        return None;
    }
    let mut facts = HeaderFacts {
        from: FromHeader::Missing,
        message_id: message.message_id().map(str::to_owned),
        subject: message.subject().map(str::to_owned),
        auto_submitted: None,
        precedence: None,
        has_list_headers: false,
        auto_response_suppress: None,
        is_report: false,
        content_language: None,
        accept_language: None,
        loop_stamps: Vec::new(),
        received_count: 0,
        authentication_results: Vec::new(),
    };
    let mut from_headers = 0usize;
    // Where the topmost run of Authentication-Results headers is.
    let mut results_run = Run::NotYet;
    for header in message.headers() {
        let name = header.name();
        let is_results = name.eq_ignore_ascii_case("authentication-results");
        if results_run == Run::Open && !is_results {
            results_run = Run::Closed;
        }
        match &header.name {
            HeaderName::From => {
                from_headers += 1;
                facts.from = judge_from(header.value());
            }
            HeaderName::Received => facts.received_count += 1,
            HeaderName::ContentType => {
                // Any report Content-Type counts: with two of them, erring
                // towards silence is the safe side.
                if let Some(content_type) = header.value().as_content_type() {
                    facts.is_report |= content_type.ctype().eq_ignore_ascii_case("multipart")
                        && content_type
                            .subtype()
                            .is_some_and(|s| s.eq_ignore_ascii_case("report"));
                }
            }
            _ if name.len() > 5 && name[..5].eq_ignore_ascii_case("list-") => {
                facts.has_list_headers = true;
            }
            _ if name.eq_ignore_ascii_case("auto-submitted") => {
                facts.auto_submitted = text_of(header.value()).map(|v| first_token(&v));
            }
            _ if name.eq_ignore_ascii_case("precedence") => {
                facts.precedence = text_of(header.value()).map(|v| first_token(&v));
            }
            _ if name.eq_ignore_ascii_case("x-auto-response-suppress") => {
                facts.auto_response_suppress = text_of(header.value());
            }
            _ if name.eq_ignore_ascii_case("content-language") => {
                facts.content_language = text_of(header.value());
            }
            _ if name.eq_ignore_ascii_case("accept-language") => {
                facts.accept_language = text_of(header.value());
            }
            _ if name.eq_ignore_ascii_case("x-loop") => {
                facts.loop_stamps.extend(text_of(header.value()));
            }
            _ if is_results => {
                if results_run == Run::Closed {
                    continue;
                }
                results_run = Run::Open;
                // The raw value keeps comments and quoting, which the
                // unstructured-text parser would rewrite.
                let value = raw
                    .get(header.offset_start() as usize..header.offset_end() as usize)
                    .map(|bytes| unfold(&String::from_utf8_lossy(bytes)))
                    .unwrap_or_default();
                facts.authentication_results.push(value);
            }
            _ => {}
        }
    }
    if from_headers > 1 {
        facts.from = FromHeader::Ambiguous;
    }
    Some(facts)
}

/// The topmost run of `Authentication-Results` headers: not reached yet,
/// being read, or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    NotYet,
    Open,
    Closed,
}

fn judge_from(value: &HeaderValue<'_>) -> FromHeader {
    let Some(address) = value.as_address() else {
        return FromHeader::Missing;
    };
    let Some(list) = address.as_list() else {
        return FromHeader::Ambiguous;
    };
    let [single] = list else {
        return if list.is_empty() {
            FromHeader::Missing
        } else {
            FromHeader::Ambiguous
        };
    };
    let Some(text) = single.address() else {
        return FromHeader::Missing;
    };
    match EmailAddress::parse(text) {
        Ok(address) => FromHeader::Single {
            address,
            display_name: single.name().and_then(CustomerName::parse),
        },
        Err(error) => FromHeader::Invalid(error),
    }
}

/// The text of an unstructured header, trimmed.
fn text_of(value: &HeaderValue<'_>) -> Option<String> {
    match value {
        HeaderValue::Text(text) => Some(text.trim().to_owned()),
        HeaderValue::TextList(list) => Some(list.join(", ").trim().to_owned()),
        _ => None,
    }
}

/// A raw header value on one line: folding removed, trimmed.
fn unfold(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first token of a header value, lowercased: `auto-replied; x=1` is
/// `auto-replied`.
fn first_token(value: &str) -> String {
    value
        .split(|c: char| c == ';' || c == '(' || c.is_whitespace())
        .find(|part| !part.is_empty())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(mail_from: &str) -> Envelope {
        Envelope {
            client_ip: IpAddr::from([127, 0, 0, 1]),
            helo: "client.example".into(),
            relay_ip: None,
            mail_from: mail_from.into(),
            recipients: vec!["support@helpdesk.example".into()],
        }
    }

    #[test]
    fn a_plain_message_yields_its_sender_and_name() {
        let raw = b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@example.com>\r\n\
                    To: support@helpdesk.example\r\nSubject: hi\r\nMessage-ID: <a1@example.com>\r\n\
                    Received: from a\r\nReceived: from b\r\n\r\nbody\r\n";
        let message = InboundMessage::parse(envelope("jm@example.com"), raw).expect("parses");
        let FromHeader::Single {
            address,
            display_name,
        } = &message.from
        else {
            panic!("from: {:?}", message.from);
        };
        assert_eq!(address.as_str(), "jm@example.com");
        assert_eq!(
            display_name.as_ref().map(AsRef::as_ref),
            Some("Jürgen Müller")
        );
        assert_eq!(message.message_id.as_deref(), Some("a1@example.com"));
        assert_eq!(message.received_count, 2);
        assert!(matches!(message.sender, EnvelopeSender::Address(_)));
    }

    #[test]
    fn two_from_headers_are_ambiguous() {
        let raw = b"From: a@example.com\r\nFrom: b@example.com\r\nSubject: x\r\n\r\nbody\r\n";
        let message = InboundMessage::parse(envelope("b@example.com"), raw).expect("parses");
        assert_eq!(message.from, FromHeader::Ambiguous);
        let raw = b"From: a@example.com, b@example.com\r\n\r\nbody\r\n";
        let message = InboundMessage::parse(envelope("a@example.com"), raw).expect("parses");
        assert_eq!(message.from, FromHeader::Ambiguous);
    }

    #[test]
    fn automatic_mail_markers_are_read() {
        let raw = b"From: a@example.com\r\nAuto-Submitted: Auto-Replied; owner=x\r\n\
                    Precedence: Bulk\r\nList-Id: <x.example.com>\r\nX-Loop: support@helpdesk.example\r\n\
                    Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b--\r\n";
        let message = InboundMessage::parse(envelope(""), raw).expect("parses");
        assert_eq!(message.sender, EnvelopeSender::Null);
        assert_eq!(message.auto_submitted.as_deref(), Some("auto-replied"));
        assert_eq!(message.precedence.as_deref(), Some("bulk"));
        assert!(message.has_list_headers);
        assert!(message.is_report);
        assert_eq!(
            message.loop_stamps,
            vec!["support@helpdesk.example".to_owned()]
        );
    }

    #[test]
    fn only_the_topmost_run_of_authentication_results_is_kept() {
        let raw = b"Authentication-Results: mx.ours; dmarc=fail header.from=example.com\r\n\
                    Authentication-Results: mx.ours; dkim=pass\r\n\
                    Received: from a by mx.ours\r\n\
                    Authentication-Results: mx.ours; dmarc=pass header.from=example.com\r\n\
                    From: a@example.com\r\n\r\nbody\r\n";
        let message = InboundMessage::parse(envelope("a@example.com"), raw).expect("parses");
        assert_eq!(
            message.authentication_results,
            vec![
                "mx.ours; dmarc=fail header.from=example.com".to_owned(),
                "mx.ours; dkim=pass".to_owned()
            ]
        );
        let below_received = b"Received: from a by mx.ours\r\n\
                    Authentication-Results: mx.ours; dmarc=pass header.from=example.com\r\n\
                    From: a@example.com\r\n\r\nbody\r\n";
        let message =
            InboundMessage::parse(envelope("a@example.com"), below_received).expect("parses");
        assert_eq!(
            message.authentication_results.len(),
            1,
            "a relay may put its own below its Received"
        );
    }

    #[test]
    fn the_header_section_ends_at_the_first_empty_line() {
        let raw = b"From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n\r\nmore\r\n";
        assert_eq!(
            header_section(raw),
            b"From: a@example.com\r\nSubject: x\r\n\r\n"
        );
        assert_eq!(
            header_section(b"From: a@example.com\r\n"),
            b"From: a@example.com\r\n"
        );
    }

    #[test]
    fn source_routes_never_register() {
        assert!(matches!(
            judge_envelope_sender("@relay.example:a@example.com"),
            EnvelopeSender::Invalid(_)
        ));
    }
}
