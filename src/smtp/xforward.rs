//! `XFORWARD`: a relay in front of us (`smtp.relays`) names the original
//! client of its next message, as Postfix does with
//! `smtp_send_xforward_command = yes` (Postfix's XFORWARD_README).
//!
//! mailin does not know the command, so it is handled here, before the
//! engine, which never sees it. The rules are the README's: the command is
//! offered in EHLO (to relays only) with the attributes we take; it is
//! allowed outside a mail transaction only (`503` inside one); anyone but a
//! relay is refused `550 5.7.0` and nothing it claims is read. Values are
//! xtext (RFC 3461), `[UNAVAILABLE]` (or `[TEMPUNAVAIL]`) in any case means
//! "not known", an IPv6 `ADDR` carries the `IPV6:` prefix. The first
//! XFORWARD after a transaction sets every attribute to unknown, each one
//! then updates those it names, and MAIL takes them for its transaction;
//! the end of that transaction (end of DATA, RSET), a refused MAIL, EHLO or
//! HELO forgets them.
//!
//! `Origin` is what a transaction then stands on: the original client's
//! address and HELO (never mixed with the relay's own, as the README asks),
//! or the peer itself.

use crate::smtp::answer;
use crate::smtp::intake::Intake;
use crate::smtp::reply::SmtpReply;
use crate::smtp::session::{End, Session};
use std::net::IpAddr;

/// The attributes offered in EHLO. `PORT` is read too (Postfix's own server
/// takes it) but not asked for: we have no use for it.
pub const OFFERED: &str = "NAME ADDR PROTO HELO IDENT SOURCE";

/// The longest attribute value, before decoding (the README's note 1).
const MAX_VALUE: usize = 255;

/// The longest `PROTO` value.
const MAX_PROTO: usize = 64;

/// Where the relay got the message from (`SOURCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From the relay host itself.
    Local,
    Remote,
}

/// The XFORWARD attributes of the next transaction; `None` is unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// The client's host name.
    pub name: Option<String>,
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    /// The protocol the relay received the message with (`ESMTP`, ...).
    pub proto: Option<String>,
    /// The name the client gave in its HELO/EHLO.
    pub helo: Option<String>,
    /// The relay's own identifier of the message (its queue id).
    pub ident: Option<String>,
    pub source: Option<Source>,
}

/// One `name=value` of an XFORWARD command, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    Name(Option<String>),
    Addr(Option<IpAddr>),
    Port(Option<u16>),
    Proto(Option<String>),
    Helo(Option<String>),
    Ident(Option<String>),
    Source(Option<Source>),
}

/// Who a transaction comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The client: the original one a relay named, or the peer itself.
    pub client_ip: IpAddr,
    /// Its HELO name; empty when a relay named the client but not its HELO.
    pub helo: String,
    /// The relay that named the client; `None` when the client is the peer.
    pub relay_ip: Option<IpAddr>,
}

impl Origin {
    /// The transaction of `peer_ip` (HELO `peer_helo`), with the attributes
    /// it forwarded, if any.
    ///
    /// Without an address there is no original client to stand on: Postfix
    /// sends none for a message submitted on the relay host itself, which
    /// then is the origin, with its own HELO. Otherwise only forwarded facts
    /// are used, never the relay's HELO beside the client's address.
    pub fn of(forwarded: Option<&Forwarded>, peer_ip: IpAddr, peer_helo: &str) -> Self {
        match forwarded {
            Some(Forwarded {
                addr: Some(client_ip),
                helo,
                ..
            }) => Self {
                client_ip: *client_ip,
                helo: helo.clone().unwrap_or_default(),
                relay_ip: Some(peer_ip),
            },
            _ => Self {
                client_ip: peer_ip,
                helo: peer_helo.to_owned(),
                relay_ip: None,
            },
        }
    }
}

impl Forwarded {
    /// Updates the attributes `attributes` name; the rest keep their value.
    pub fn apply(&mut self, attributes: Vec<Attribute>) {
        for attribute in attributes {
            match attribute {
                Attribute::Name(name) => self.name = name,
                Attribute::Addr(addr) => self.addr = addr,
                Attribute::Port(port) => self.port = port,
                Attribute::Proto(proto) => self.proto = proto,
                Attribute::Helo(helo) => self.helo = helo,
                Attribute::Ident(ident) => self.ident = ident,
                Attribute::Source(source) => self.source = source,
            }
        }
    }
}

/// The `name=value` words of an XFORWARD line, undecoded; `None` without
/// any (a syntax error, whoever sends it).
pub fn words(line: &[u8]) -> Option<Vec<&str>> {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let line = std::str::from_utf8(line).ok()?;
    let words: Vec<&str> = line.split(' ').skip(1).filter(|w| !w.is_empty()).collect();
    (!words.is_empty()).then_some(words)
}

/// Reads the `name=value` words of an XFORWARD line, all or none.
///
/// # Errors
/// The reply for the first word that cannot be read.
pub fn parse(words: &[&str]) -> Result<Vec<Attribute>, SmtpReply> {
    words.iter().map(|word| attribute(word)).collect()
}

fn attribute(word: &str) -> Result<Attribute, SmtpReply> {
    let (name, raw) = word
        .split_once('=')
        .filter(|(_, raw)| !raw.is_empty())
        .ok_or_else(answer::xforward_syntax)?;
    if raw.len() > MAX_VALUE {
        return Err(answer::xforward_bad_value());
    }
    // Postfix before 2.3 sent values unencoded; such a value stays as sent.
    let value = xtext_decode(raw).unwrap_or_else(|| raw.to_owned());
    let known = !is_unavailable(&value);
    let text = || known.then(|| neuter(&value));
    let attribute = match name.to_ascii_uppercase().as_str() {
        "NAME" => Attribute::Name(text()),
        "HELO" => Attribute::Helo(text()),
        "IDENT" => Attribute::Ident(text()),
        "PROTO" if value.len() > MAX_PROTO => return Err(answer::xforward_bad_value()),
        "PROTO" => Attribute::Proto(text()),
        "ADDR" if known => Attribute::Addr(Some(address(&value)?)),
        "ADDR" => Attribute::Addr(None),
        "PORT" if known => Attribute::Port(Some(
            value
                .parse()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(answer::xforward_bad_value)?,
        )),
        "PORT" => Attribute::Port(None),
        "SOURCE" if !known => Attribute::Source(None),
        "SOURCE" if value.eq_ignore_ascii_case("LOCAL") => Attribute::Source(Some(Source::Local)),
        "SOURCE" if value.eq_ignore_ascii_case("REMOTE") => Attribute::Source(Some(Source::Remote)),
        "SOURCE" => return Err(answer::xforward_bad_value()),
        _ => return Err(answer::xforward_unknown_attribute()),
    };
    Ok(attribute)
}

/// `[UNAVAILABLE]`, or Postfix's `[TEMPUNAVAIL]` (a lookup that failed for
/// now), in any case.
fn is_unavailable(value: &str) -> bool {
    value.eq_ignore_ascii_case("[UNAVAILABLE]") || value.eq_ignore_ascii_case("[TEMPUNAVAIL]")
}

/// An `ADDR`: an IPv4 address, or an IPv6 address with (or, as Postfix
/// also takes it, without) the `IPV6:` prefix; never in brackets.
fn address(value: &str) -> Result<IpAddr, SmtpReply> {
    let prefixed = value
        .get(..5)
        .filter(|prefix| prefix.eq_ignore_ascii_case("IPV6:"))
        .map(|_| &value[5..]);
    match prefixed {
        Some(v6) => v6.parse().map(IpAddr::V6).ok(),
        None => value.parse().ok(),
    }
    .ok_or_else(answer::xforward_bad_value)
}

/// Decodes xtext (RFC 3461): `+XX` is the byte with that hex value, and
/// every other character stands for itself; `None` when the text is not
/// xtext.
pub fn xtext_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'+' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// Replaces what may not stand in a header or a log line (controls,
/// whitespace, non-ASCII, and Postfix's `<>()\";@`) with `?`, as Postfix
/// does with forwarded names: the values are for the record, and a strange
/// character in a client's HELO is no reason to refuse its mail.
fn neuter(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !"<>()\\\";@".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

impl<I: Intake> Session<I> {
    /// XFORWARD: checked in Postfix's order (a transaction in progress, the
    /// syntax, the client's right to it), then read all or nothing.
    pub(super) async fn xforward(&mut self, line: &[u8]) -> Result<(), End> {
        if self.transaction.is_some() {
            return self.refuse(answer::xforward_in_transaction()).await;
        }
        let Some(words) = words(line) else {
            return self.refuse(answer::xforward_syntax()).await;
        };
        if !self.relay {
            tracing::info!(
                event = "xforward_refused",
                "XFORWARD from a client that is not a relay"
            );
            return self.refuse(answer::xforward_not_authorized()).await;
        }
        match parse(&words) {
            Ok(attributes) => {
                self.forwarded
                    .get_or_insert_with(Forwarded::default)
                    .apply(attributes);
                self.send(&answer::xforward_ok()).await
            }
            Err(refusal) => self.refuse(refusal).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str) -> Result<Forwarded, u16> {
        let words = words(line.as_bytes()).ok_or(501u16)?;
        let mut forwarded = Forwarded::default();
        forwarded.apply(parse(&words).map_err(|reply| reply.code)?);
        Ok(forwarded)
    }

    #[test]
    fn postfix_s_two_commands_name_the_client() {
        let mut forwarded = read("XFORWARD NAME=mail.example.net ADDR=192.0.2.7\r\n").expect("ok");
        forwarded.apply(
            parse(
                &words(
                    b"XFORWARD PROTO=ESMTP HELO=mail.example.net IDENT=4Fk2x1 SOURCE=REMOTE\r\n",
                )
                .expect("words"),
            )
            .expect("ok"),
        );
        assert_eq!(
            forwarded,
            Forwarded {
                name: Some("mail.example.net".into()),
                addr: Some(IpAddr::from([192, 0, 2, 7])),
                port: None,
                proto: Some("ESMTP".into()),
                helo: Some("mail.example.net".into()),
                ident: Some("4Fk2x1".into()),
                source: Some(Source::Remote),
            }
        );
    }

    #[test]
    fn values_are_xtext_and_names_any_case() {
        let forwarded = read("xforward helo=[192.0.2.7] Ident=a+2Bb+3Dc\r\n").expect("ok");
        assert_eq!(forwarded.helo.as_deref(), Some("[192.0.2.7]"));
        assert_eq!(forwarded.ident.as_deref(), Some("a+b=c"));
        assert_eq!(xtext_decode("x+2"), None, "a cut-off +XX is not xtext");
    }

    #[test]
    fn unavailable_in_any_case_is_unknown() {
        let mut forwarded = read("XFORWARD ADDR=192.0.2.7 HELO=a.example\r\n").expect("ok");
        forwarded.apply(
            parse(&[
                "ADDR=[unavailable]",
                "HELO=[TempUnavail]",
                "SOURCE=[UNAVAILABLE]",
            ])
            .expect("ok"),
        );
        assert_eq!(forwarded, Forwarded::default());
    }

    #[test]
    fn ipv6_addresses_carry_their_prefix() {
        let expected: IpAddr = "2001:db8::7".parse().expect("address");
        for line in [
            "XFORWARD ADDR=IPV6:2001:db8::7",
            "XFORWARD ADDR=ipv6:2001:DB8::7",
            "XFORWARD ADDR=2001:db8::7",
        ] {
            assert_eq!(read(line).expect(line).addr, Some(expected), "{line}");
        }
        assert_eq!(read("XFORWARD ADDR=IPV6:192.0.2.7"), Err(501));
    }

    #[test]
    fn bad_words_are_refused_501_and_nothing_is_taken() {
        let long = format!("XFORWARD NAME={}", "a".repeat(256));
        let cases = [
            "XFORWARD",
            "XFORWARD   \r\n",
            "XFORWARD ADDR",
            "XFORWARD ADDR=",
            "XFORWARD ADDR=[192.0.2.7]",
            "XFORWARD ADDR=mail.example.net",
            "XFORWARD PORT=70000",
            "XFORWARD PORT=+2B25",
            "XFORWARD SOURCE=ELSEWHERE",
            "XFORWARD USER=root",
            "XFORWARD HELO=ok.example FOO=bar",
            &long,
        ];
        for line in cases {
            assert_eq!(read(line), Err(501), "{line}");
        }
        assert_eq!(
            read(&format!("XFORWARD PROTO={}", "P".repeat(65))),
            Err(501),
            "PROTO is at most 64 characters"
        );
    }

    #[test]
    fn characters_that_do_not_belong_in_a_record_become_question_marks() {
        let forwarded =
            read("XFORWARD HELO=evil+0D+0AX-Header:+20y<z> NAME=caf+C3+A9\r\n").expect("ok");
        assert_eq!(forwarded.helo.as_deref(), Some("evil??X-Header:?y?z?"));
        assert_eq!(forwarded.name.as_deref(), Some("caf?"));
    }

    #[test]
    fn the_origin_is_the_forwarded_client_or_the_peer_never_a_mix() {
        let relay = IpAddr::from([127, 0, 0, 1]);
        let client = IpAddr::from([192, 0, 2, 7]);
        let named = Forwarded {
            addr: Some(client),
            helo: Some("client.example".into()),
            ..Forwarded::default()
        };
        assert_eq!(
            Origin::of(Some(&named), relay, "mx.example"),
            Origin {
                client_ip: client,
                helo: "client.example".into(),
                relay_ip: Some(relay),
            }
        );
        let without_helo = Forwarded {
            addr: Some(client),
            ..Forwarded::default()
        };
        assert_eq!(
            Origin::of(Some(&without_helo), relay, "mx.example").helo,
            ""
        );
        let local = Forwarded {
            helo: Some("client.example".into()),
            ..Forwarded::default()
        };
        for forwarded in [None, Some(&local)] {
            assert_eq!(
                Origin::of(forwarded, relay, "mx.example"),
                Origin {
                    client_ip: relay,
                    helo: "mx.example".into(),
                    relay_ip: None,
                }
            );
        }
    }
}
