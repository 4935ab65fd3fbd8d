//! `registrar explain FILE.eml`: what the daemon would decide for one message
//! under the current configuration, with every rule it checks and what each
//! one saw, for an operator asking "why did this customer get no mail?".
//!
//! The rules come from `policy::evaluate_mail_traced`, the very function the
//! daemon decides with, so the explanation cannot drift from the behavior.
//! Sender authentication runs as in the daemon (live DNS for `dmarc`). The
//! sender's state and reply history are read from the database when it
//! exists; nothing is ever written, and no mail is sent.

use crate::domain::EmailAddress;
use crate::message::{Envelope, InboundMessage};
use crate::policy::{
    self, AuthVerdict, Decision, MAIL_RULES, MailRequest, OwnIdentity, ReplyHistory, SenderState,
    ServiceLoad,
};
use crate::registration::{
    MailAnswers, SenderFacts, client_network, dropped, sender_authenticator,
};
use crate::settings::{Service, Settings};
use crate::store;
use anyhow::Context as _;
use mail_parser::MessageParser;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

/// What to explain, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct ExplainRequest {
    pub file: PathBuf,
    /// Service id; default: the service whose support address the message is
    /// addressed to, else the first.
    pub service: Option<String>,
    /// `MAIL FROM`; default: Return-Path, else the From address.
    pub envelope_from: Option<String>,
    /// SMTP client address; default 127.0.0.1. With `relay`, the original
    /// client the relay named (the inbound record's `client_ip`).
    pub client_ip: Option<IpAddr>,
    /// HELO name; default `localhost`.
    pub helo: Option<String>,
    /// The relay in front of us that handed the message over and named the
    /// client with XFORWARD (the inbound record's `relay_ip`); default none:
    /// the client is the SMTP peer.
    pub relay: Option<IpAddr>,
    /// Database to read the sender's state from; default `store.path`.
    pub db: Option<PathBuf>,
}

/// Explains one message, writing the report to `out`; returns the decision.
/// `answers` are the words the daemon answers with (the SMTP intake's).
///
/// # Errors
/// The file cannot be read, the service is unknown, or the database exists
/// but cannot be read.
pub async fn explain(
    settings: &Settings,
    request: &ExplainRequest,
    answers: MailAnswers,
    out: &mut impl Write,
) -> anyhow::Result<Option<Decision>> {
    let bytes = std::fs::read(&request.file)
        .with_context(|| format!("cannot read {}", request.file.display()))?;
    let raw = crlf(&bytes);
    let service = pick_service(settings, request, &raw)?;
    let (mail_from, from_source) = match &request.envelope_from {
        Some(address) => (address.clone(), "given"),
        None => guess_envelope_from(&raw),
    };
    let client_ip = request.client_ip.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let helo = request.helo.clone().unwrap_or_else(|| "localhost".into());
    writeln!(out, "message   {}", request.file.display())?;
    writeln!(
        out,
        "service   {} ({})",
        service.id,
        service
            .support_addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(out, "envelope  MAIL FROM:<{mail_from}> ({from_source})")?;
    writeln!(
        out,
        "client    {client_ip}{}, HELO {helo}{}{}",
        if request.client_ip.is_some() {
            ""
        } else {
            " (assumed)"
        },
        if request.helo.is_some() {
            ""
        } else {
            " (assumed)"
        },
        match request.relay {
            Some(relay) => format!(", forwarded by the relay {relay} (XFORWARD)"),
            None => String::new(),
        }
    )?;
    let envelope = Envelope {
        client_ip,
        helo,
        relay_ip: request.relay,
        mail_from,
        recipients: vec![service.support_addresses[0].identity_key()],
    };
    let message = match InboundMessage::parse(envelope, &raw) {
        Ok(message) => message,
        Err(error) => {
            let answer = (answers.unreadable)(&error);
            writeln!(out, "\nthe message cannot be read: {error}")?;
            writeln!(out, "answer    {} {}", answer.code, answer.text)?;
            return Ok(None);
        }
    };
    let own = OwnIdentity {
        support_addresses: &service.support_addresses,
        message_id_domain: &settings.smtp.hostname,
    };
    let auth = if policy::needs_sender_auth(&service.policy, own, &message) {
        sender_authenticator(settings, false)
            .verify(&service.policy.sender_auth, &message, &raw)
            .await
    } else {
        AuthVerdict::Off
    };
    let now = store::now();
    let (sender, history, load) = sender_facts(settings, request, service, &message, now, out)?;

    let evaluation = policy::evaluate_mail_traced(
        &service.policy,
        own,
        MailRequest {
            message: &message,
            auth: &auth,
            sender,
            history,
            load,
            now,
        },
    );
    writeln!(out, "\n{:<26} {:<12} detail", "rule", "result")?;
    for rule in MAIL_RULES {
        match evaluation.checks.iter().find(|check| check.rule == *rule) {
            Some(check) => writeln!(
                out,
                "{:<26} {:<12} {}",
                rule,
                if check.decided { "DECIDES" } else { "pass" },
                check.detail
            )?,
            None => writeln!(out, "{rule:<26} not reached")?,
        }
    }
    let decision = evaluation.decision;
    let dropped = dropped(service, &decision);
    let answer = (answers.decided)(&decision, dropped);
    writeln!(
        out,
        "\ndecision  {} ({}){}",
        decision.name(),
        decision.reason(),
        if dropped {
            ", dropped: refusal = \"drop\""
        } else {
            ""
        }
    )?;
    writeln!(out, "answer    {} {}", answer.code, answer.text)?;
    if let Some(note) = &evaluation.note {
        writeln!(out, "recorded  {note}")?;
    }
    // The reply goes to the registered address, From, and to no other.
    let mail = match (message.from_address(), decision.sends_mail() && !dropped) {
        (Some(to), true) => format!("one reply to <{}>", to.delivery_address()),
        _ => "none".to_owned(),
    };
    writeln!(out, "mail      {mail}")?;
    Ok(Some(decision))
}

/// The state and reply history of the From address (the one that would
/// register) and the service's load, from the database when there is one.
fn sender_facts(
    settings: &Settings,
    request: &ExplainRequest,
    service: &Service,
    message: &InboundMessage,
    now: i64,
    out: &mut impl Write,
) -> anyhow::Result<(SenderState, ReplyHistory, ServiceLoad)> {
    let path = request.db.as_deref().unwrap_or(&settings.store.path);
    // The facts are those of the address that would register: From.
    let Some(address) = message.from_address() else {
        return Ok((
            SenderState::New,
            ReplyHistory::default(),
            ServiceLoad::default(),
        ));
    };
    if !path.exists() {
        writeln!(
            out,
            "sender    no database at {}: assuming a new sender with no replies",
            path.display()
        )?;
        return Ok((
            SenderState::New,
            ReplyHistory::default(),
            ServiceLoad::default(),
        ));
    }
    let client = client_network(settings, service, message);
    let facts = SenderFacts::read_only(path, service, address, client, now)?;
    let (state, history, load) = (facts.state(), facts.history, facts.load);
    writeln!(
        out,
        "sender    {state:?}; {} replies to {} in 24 hours; its domain got {}, its network {}, the service sent {} in 24 hours",
        history.replies_last_day,
        address.rate_key(),
        load.domain_replies_last_day.unwrap_or(0),
        load.network_replies_last_day
            .map_or_else(|| "(not counted)".to_owned(), |n| n.to_string()),
        load.replies_last_day.unwrap_or(0)
    )?;
    Ok((state, history, load))
}

fn pick_service<'s>(
    settings: &'s Settings,
    request: &ExplainRequest,
    raw: &[u8],
) -> anyhow::Result<&'s Service> {
    if let Some(id) = &request.service {
        return settings
            .service(id)
            .with_context(|| format!("no service {id:?} in the settings"));
    }
    let addressed = MessageParser::default().parse(raw).and_then(|message| {
        let to = message.to()?;
        to.iter().find_map(|addr| {
            let address = EmailAddress::parse(addr.address()?).ok()?;
            settings.service_for_address(&address)
        })
    });
    addressed
        .or_else(|| settings.services.first())
        .context("the settings have no service")
}

/// Return-Path, else the single From address.
fn guess_envelope_from(raw: &[u8]) -> (String, &'static str) {
    let Some(message) = MessageParser::default().parse(raw) else {
        return (String::new(), "unreadable message: null sender assumed");
    };
    if let Some(path) = message.return_path_raw() {
        return (path, "from Return-Path");
    }
    match message
        .from()
        .and_then(|from| from.first())
        .and_then(|a| a.address())
    {
        Some(address) => (address.to_owned(), "assumed from the From header"),
        None => (String::new(), "no From header: null sender assumed"),
    }
}

/// Line endings as an SMTP transfer delivers them: bare LF becomes CRLF.
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 40);
    let mut previous = 0u8;
    for &byte in bytes {
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        previous = byte;
    }
    out
}

/// The Return-Path address, when the header is present.
trait ReturnPath {
    fn return_path_raw(&self) -> Option<String>;
}

impl ReturnPath for mail_parser::Message<'_> {
    fn return_path_raw(&self) -> Option<String> {
        self.headers()
            .iter()
            .find(|header| header.name().eq_ignore_ascii_case("return-path"))
            .and_then(|header| match header.value() {
                mail_parser::HeaderValue::Address(address) => {
                    address.first().and_then(|a| a.address()).map(str::to_owned)
                }
                mail_parser::HeaderValue::Text(text) => Some(
                    text.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_owned(),
                ),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::SenderAuthMode;
    use crate::sender_auth::{DnsSource, FixedZone};
    use crate::smtp::intake::MAIL_ANSWERS;
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter as _;
    use mail_auth::dkim::DkimSigner;

    #[test]
    fn bare_line_feeds_become_crlf_and_crlf_stays() {
        assert_eq!(crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n".to_vec());
    }

    /// Explains `raw` (written to a temp file) under `settings`.
    async fn run(
        settings: &Settings,
        raw: &[u8],
        envelope_from: &str,
    ) -> (Option<Decision>, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("message.eml");
        std::fs::write(&file, raw).expect("write the message");
        let request = ExplainRequest {
            file,
            envelope_from: Some(envelope_from.into()),
            db: Some(dir.path().join("none.sqlite3")),
            ..ExplainRequest::default()
        };
        let mut out = Vec::new();
        let decision = explain(settings, &request, MAIL_ANSWERS, &mut out)
            .await
            .expect("explains");
        (decision, String::from_utf8(out).expect("utf-8"))
    }

    #[tokio::test]
    async fn every_rule_is_listed_with_its_result() {
        let settings = crate::settings::load(None).expect("defaults");
        let raw = b"From: jane@example.com\nTo: support@helpdesk.example\nSubject: hi\nMessage-ID: <e1@example.com>\n\nhello\n";
        let (decision, text) = run(&settings, raw, "jane@example.com").await;
        assert_eq!(decision, Some(Decision::Register { company: None }));
        for rule in MAIL_RULES {
            assert!(text.contains(rule), "{rule} missing from\n{text}");
        }
        assert!(
            text.contains("off: senders are not authenticated"),
            "{text}"
        );
        assert!(text.contains("answer    250"), "{text}");
        assert!(text.contains("one reply to <jane@example.com>"), "{text}");
    }

    #[tokio::test]
    async fn how_the_envelope_was_read_is_explained_and_the_reply_goes_to_from() {
        let settings = crate::settings::load(None).expect("defaults");
        let raw = b"From: jane@example.com\nTo: support@helpdesk.example\nSubject: hi\nMessage-ID: <e3@example.com>\n\nhello\n";

        let (decision, text) = run(&settings, raw, "prvs=0123456789=Jane@example.com").await;
        assert_eq!(decision, Some(Decision::Register { company: None }));
        assert!(text.contains("envelope_names_from"), "{text}");
        assert!(
            text.contains(
                "recorded  envelope <prvs=0123456789=Jane@example.com>: BATV prvs tag removed"
            ),
            "{text}"
        );
        assert!(text.contains("one reply to <jane@example.com>"), "{text}");

        let srs = "SRS0=HHH=TT=example.com=jane@forwarder.example";
        let (decision, text) = run(&settings, raw, srs).await;
        assert_eq!(
            decision,
            Some(Decision::Refuse(
                crate::policy::RefuseReason::ForwardedNotAuthenticated
            ))
        );
        assert!(
            text.contains("rewritten by a forwarder (SRS0) and is not decoded"),
            "{text}"
        );
        assert!(text.contains("Create an account"), "{text}");
        assert!(text.contains("mail      none"), "{text}");
    }

    #[tokio::test]
    async fn dmarc_results_are_explained_with_what_dns_said() {
        let pkcs8 = Ed25519Key::generate_pkcs8().expect("key");
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).expect("key");
        let public = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(key.public_key())
        };
        let mut settings = crate::settings::load(None).expect("defaults");
        settings.services[0].policy.sender_auth = SenderAuthMode::Dmarc;
        let raw = b"From: jane@example.com\r\nTo: support@helpdesk.example\r\nSubject: hi\r\nMessage-ID: <e2@example.com>\r\n\r\nhello\r\n";
        let signature = DkimSigner::from_key(key)
            .domain("example.com")
            .selector("test")
            .headers(["From", "To", "Subject"])
            .sign(raw)
            .expect("signs");
        let signed = [signature.to_header().as_bytes(), raw.as_slice()].concat();
        let with_key = FixedZone::new().txt(
            "test._domainkey.example.com",
            &format!("v=DKIM1; k=ed25519; p={public}"),
        );

        settings.sender_auth.dns = DnsSource::Fixed(
            with_key
                .clone()
                .txt("_dmarc.example.com", "v=DMARC1; p=none"),
        );
        let (decision, text) = run(&settings, &signed, "jane@example.com").await;
        assert_eq!(
            decision,
            Some(Decision::Register { company: None }),
            "{text}"
        );
        assert!(text.contains("dmarc=pass for example.com"), "{text}");
        assert!(text.contains("dkim=pass (d=example.com)"), "{text}");

        settings.sender_auth.dns = DnsSource::Fixed(with_key.clone());
        let (_, text) = run(&settings, &signed, "jane@example.com").await;
        assert!(text.contains("dmarc=none"), "{text}");
        assert!(text.contains("answer    550 5.7.1"), "{text}");

        let altered = String::from_utf8_lossy(raw).replace("hello", "HELLO");
        let tampered = [signature.to_header().as_bytes(), altered.as_bytes()].concat();
        settings.sender_auth.dns =
            DnsSource::Fixed(with_key.txt("_dmarc.example.com", "v=DMARC1; p=reject"));
        let (_, text) = run(&settings, &tampered, "jane@example.com").await;
        assert!(text.contains("dmarc=fail"), "{text}");
    }

    #[tokio::test]
    async fn a_message_a_relay_forwarded_is_judged_by_its_original_client() {
        let mut settings = crate::settings::load(None).expect("defaults");
        settings.services[0].policy.sender_auth = SenderAuthMode::Dmarc;
        settings.sender_auth.dns = DnsSource::Fixed(
            FixedZone::new()
                .txt("_dmarc.example.com", "v=DMARC1; p=reject")
                .txt("example.com", "v=spf1 ip4:192.0.2.7 -all"),
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("message.eml");
        std::fs::write(&file, b"From: jane@example.com\r\nTo: support@helpdesk.example\r\nSubject: hi\r\nMessage-ID: <e3@example.com>\r\n\r\nhello\r\n").expect("write");
        let request = ExplainRequest {
            file,
            envelope_from: Some("jane@example.com".into()),
            client_ip: Some(IpAddr::from([192, 0, 2, 7])),
            helo: Some("mail.example.net".into()),
            relay: Some(IpAddr::from([127, 0, 0, 1])),
            db: Some(dir.path().join("none.sqlite3")),
            ..ExplainRequest::default()
        };
        let mut out = Vec::new();

        let decision = explain(&settings, &request, MAIL_ANSWERS, &mut out)
            .await
            .expect("explains");

        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            decision,
            Some(Decision::Register { company: None }),
            "{text}"
        );
        assert!(
            text.contains(
                "client    192.0.2.7, HELO mail.example.net, forwarded by the relay 127.0.0.1"
            ),
            "{text}"
        );
    }
}
