//! `ReturnPath`: what an envelope sender (`MAIL FROM`) says about who sent a
//! message, and `EnvelopeMatch`: how it relates to the From address.
//!
//! Mail systems rewrite the envelope sender on the way. A company gateway
//! signs it with a BATV tag (`prvs=TAG=jane@example.com`, Barracuda's
//! `btv1==TAG==jane@example.com`) so that it can recognise bounces of its own
//! mail; the mailbox behind the tag is still the sender's, so the tag is
//! removed. A forwarder rewrites it with SRS (`SRS0=HHH=TT=example.com=jane@
//! forwarder.example`, `SRS1=…`, Microsoft 365's `bounces+SRS=…`) so that SPF
//! passes for its own domain; that address names the forwarder, not the
//! sender. It is recognised as such and never decoded: its hash is the
//! forwarder's, which we cannot check, so a forged SRS address would name
//! whomever its writer wanted.
//!
//! Pure: this reads addresses and decides nothing; `policy` judges the match.

use crate::domain::EmailAddress;
use std::fmt;

/// Longest BATV tag accepted; real ones are 10 characters (draft-levine-smtp-
/// batv: one key digit, three day digits, six hash characters).
const MAX_TAG_LEN: usize = 32;

/// An envelope sender, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnPath {
    /// A mailbox as it is: the sender's own, as far as the envelope tells.
    Plain(EmailAddress),
    /// A mailbox behind a BATV tag its gateway added.
    Tagged {
        /// The envelope sender as received.
        envelope: EmailAddress,
        /// The mailbox behind the tag.
        mailbox: EmailAddress,
        tag: BatvTag,
    },
    /// A forwarder's rewrite (SRS): it names the forwarder, and what it
    /// encodes is never read.
    Forwarded {
        /// The envelope sender as received.
        envelope: EmailAddress,
        scheme: SrsScheme,
    },
}

/// The BATV form a gateway used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatvTag {
    /// `prvs=TAG=local@domain` (draft-levine-smtp-batv; Cisco Secure Email
    /// and most others).
    Prvs,
    /// `btv1==TAG==local@domain` (Barracuda).
    Btv1,
}

/// The SRS form a forwarder used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrsScheme {
    /// `SRS0=HHH=TT=domain=local@forwarder`: one forwarder.
    Srs0,
    /// `SRS1=HHH=first-forwarder==…@forwarder`: a forwarder of a forwarder.
    Srs1,
    /// `bounces+SRS=…@tenant.onmicrosoft.com`: Microsoft 365.
    Microsoft,
}

/// How an envelope sender relates to the From address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeMatch {
    /// The From address itself (the case of the domain aside).
    Same,
    /// The From address with other ASCII case in the local part.
    OtherCase,
    /// The From address once the BATV tag is removed.
    Untagged(BatvTag),
    /// A forwarder's rewrite: it says nothing about the sender.
    Forwarder(SrsScheme),
    /// A mailbox in another domain than From's: a forwarder that does not
    /// use SRS, a sending service's bounce address.
    OtherDomain,
    /// Another mailbox: in From's own domain, or behind a BATV tag.
    OtherMailbox,
}

impl ReturnPath {
    /// Reads an envelope sender. A prefix that looks like BATV but does not
    /// leave a valid address behind is not a tag: the address is plain.
    pub fn read(envelope: &EmailAddress) -> Self {
        let local = envelope.local_part();
        if let Some(scheme) = srs_scheme(local) {
            return Self::Forwarded {
                envelope: envelope.clone(),
                scheme,
            };
        }
        let untagged = batv_inner(local).and_then(|(tag, inner)| {
            let domain = envelope
                .as_str()
                .rsplit_once('@')
                .map_or("", |(_, domain)| domain);
            let mailbox = EmailAddress::parse(&format!("{inner}@{domain}")).ok()?;
            Some((tag, mailbox))
        });
        match untagged {
            Some((tag, mailbox)) => Self::Tagged {
                envelope: envelope.clone(),
                mailbox,
                tag,
            },
            None => Self::Plain(envelope.clone()),
        }
    }

    /// The envelope sender as received.
    pub fn envelope(&self) -> &EmailAddress {
        match self {
            Self::Plain(envelope)
            | Self::Tagged { envelope, .. }
            | Self::Forwarded { envelope, .. } => envelope,
        }
    }

    /// The mailbox the envelope names as the sender, a BATV tag removed;
    /// `None` when a forwarder rewrote it.
    pub fn mailbox(&self) -> Option<&EmailAddress> {
        match self {
            Self::Plain(mailbox) | Self::Tagged { mailbox, .. } => Some(mailbox),
            Self::Forwarded { .. } => None,
        }
    }

    /// How this envelope sender relates to `from`. Addresses are compared by
    /// identity (`EmailAddress::identity_key`): the ASCII case of the local
    /// part does not tell two mailboxes apart.
    pub fn against(&self, from: &EmailAddress) -> EnvelopeMatch {
        let envelope = self.envelope();
        if envelope.identity_key() == from.identity_key() {
            return if envelope.local_part() == from.local_part() {
                EnvelopeMatch::Same
            } else {
                EnvelopeMatch::OtherCase
            };
        }
        match self {
            Self::Tagged { mailbox, tag, .. } if mailbox.identity_key() == from.identity_key() => {
                EnvelopeMatch::Untagged(*tag)
            }
            // A gateway that tags the envelope names the sender exactly, so
            // another mailbox behind the tag is another sender.
            Self::Tagged { .. } => EnvelopeMatch::OtherMailbox,
            Self::Forwarded { scheme, .. } => EnvelopeMatch::Forwarder(*scheme),
            Self::Plain(mailbox) if mailbox.domain() != from.domain() => EnvelopeMatch::OtherDomain,
            Self::Plain(_) => EnvelopeMatch::OtherMailbox,
        }
    }
}

impl fmt::Display for ReturnPath {
    /// For a person: the envelope and how it was read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(envelope) => write!(f, "<{envelope}>"),
            Self::Tagged {
                envelope,
                mailbox,
                tag,
            } => write!(f, "<{envelope}>, {tag} tag removed: <{mailbox}>"),
            Self::Forwarded { envelope, scheme } => write!(
                f,
                "<{envelope}>, rewritten by a forwarder ({scheme}); not decoded"
            ),
        }
    }
}

impl EnvelopeMatch {
    /// Whether the envelope names the From address, so that From may
    /// register without sender authentication.
    pub fn names_from(self) -> bool {
        matches!(self, Self::Same | Self::OtherCase | Self::Untagged(_))
    }
}

impl BatvTag {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prvs => "BATV prvs",
            Self::Btv1 => "BATV btv1",
        }
    }
}

impl fmt::Display for BatvTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl SrsScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Srs0 => "SRS0",
            Self::Srs1 => "SRS1",
            Self::Microsoft => "Microsoft 365 SRS",
        }
    }
}

impl fmt::Display for SrsScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SRS form of a local part, if it has one. SRS separators are `=`,
/// `+` or `-` after the `SRS0`/`SRS1` prefix; the prefix is matched without
/// regard to case, as forwarders and the mail systems after them vary.
fn srs_scheme(local: &str) -> Option<SrsScheme> {
    // Something must follow the prefix and its separator.
    let prefixed = |prefix: &str| {
        strip_prefix_ignore_case(local, prefix)
            .is_some_and(|rest| rest.len() > 1 && matches!(rest.as_bytes()[0], b'=' | b'+' | b'-'))
    };
    if prefixed("SRS0") {
        Some(SrsScheme::Srs0)
    } else if prefixed("SRS1") {
        Some(SrsScheme::Srs1)
    } else if strip_prefix_ignore_case(local, "bounces+SRS=").is_some_and(|rest| !rest.is_empty()) {
        Some(SrsScheme::Microsoft)
    } else {
        None
    }
}

/// The tag form and the local part behind a BATV tag, if the local part has
/// one: `prvs=TAG=inner` or `btv1==TAG==inner`, TAG letters and digits.
fn batv_inner(local: &str) -> Option<(BatvTag, &str)> {
    let (tag, rest, separator) = if let Some(rest) = strip_prefix_ignore_case(local, "prvs=") {
        (BatvTag::Prvs, rest, "=")
    } else if let Some(rest) = strip_prefix_ignore_case(local, "btv1==") {
        (BatvTag::Btv1, rest, "==")
    } else {
        return None;
    };
    let (value, inner) = rest.split_once(separator)?;
    let valid_value = !value.is_empty()
        && value.len() <= MAX_TAG_LEN
        && value.bytes().all(|b| b.is_ascii_alphanumeric());
    (valid_value && !inner.is_empty()).then_some((tag, inner))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> EmailAddress {
        EmailAddress::parse(text).expect("a valid address")
    }

    #[test]
    fn envelopes_are_read_by_shape() {
        let cases: Vec<(&str, &str, Option<&str>, &str)> = vec![
            (
                "a plain address is the sender's",
                "jane@example.com",
                Some("jane@example.com"),
                "<jane@example.com>",
            ),
            (
                "a prvs tag is removed",
                "prvs=0123456789=jane@example.com",
                Some("jane@example.com"),
                "<prvs=0123456789=jane@example.com>, BATV prvs tag removed: <jane@example.com>",
            ),
            (
                "the prvs prefix is read in any case",
                "PRVS=1a2b3c4d5e=Jane.Doe@Example.com",
                Some("Jane.Doe@Example.com"),
                "<PRVS=1a2b3c4d5e=Jane.Doe@Example.com>, BATV prvs tag removed: <Jane.Doe@Example.com>",
            ),
            (
                "a Barracuda btv1 tag is removed",
                "btv1==5f2a17c8e1d==jane@example.com",
                Some("jane@example.com"),
                "<btv1==5f2a17c8e1d==jane@example.com>, BATV btv1 tag removed: <jane@example.com>",
            ),
            (
                "a prvs prefix without a tag is no tag",
                "prvs==jane@example.com",
                Some("prvs==jane@example.com"),
                "<prvs==jane@example.com>",
            ),
            (
                "a prvs tag with other characters is no tag",
                "prvs=ab+cd=jane@example.com",
                Some("prvs=ab+cd=jane@example.com"),
                "<prvs=ab+cd=jane@example.com>",
            ),
            (
                "a prvs tag with nothing behind it is no tag",
                "prvs=0123456789=@example.com",
                Some("prvs=0123456789=@example.com"),
                "<prvs=0123456789=@example.com>",
            ),
            (
                "a prvs tag before an invalid local part is no tag",
                "prvs=0123456789=.jane@example.com",
                Some("prvs=0123456789=.jane@example.com"),
                "<prvs=0123456789=.jane@example.com>",
            ),
            (
                "a btv1 tag with single separators is no tag",
                "btv1=5f2a=jane@example.com",
                Some("btv1=5f2a=jane@example.com"),
                "<btv1=5f2a=jane@example.com>",
            ),
            (
                "a mailbox that merely starts with prvs is plain",
                "prvsmith@example.com",
                Some("prvsmith@example.com"),
                "<prvsmith@example.com>",
            ),
            (
                "SRS0 is a forwarder's",
                "SRS0=HHH=TT=example.com=jane@forwarder.example",
                None,
                "<SRS0=HHH=TT=example.com=jane@forwarder.example>, rewritten by a forwarder (SRS0); not decoded",
            ),
            (
                "SRS0 with + and in lower case is a forwarder's",
                "srs0+x1Y2=TT=example.com=jane@forwarder.example",
                None,
                "<srs0+x1Y2=TT=example.com=jane@forwarder.example>, rewritten by a forwarder (SRS0); not decoded",
            ),
            (
                "SRS1 is a forwarder's",
                "SRS1=HHH=first.example==HHH=TT=example.com=jane@second.example",
                None,
                "<SRS1=HHH=first.example==HHH=TT=example.com=jane@second.example>, rewritten by a forwarder (SRS1); not decoded",
            ),
            (
                "Microsoft 365 SRS is a forwarder's",
                "bounces+SRS=44ldt=IX=example.com=jane@contoso.onmicrosoft.com",
                None,
                "<bounces+SRS=44ldt=IX=example.com=jane@contoso.onmicrosoft.com>, rewritten by a forwarder (Microsoft 365 SRS); not decoded",
            ),
            (
                "a mailbox that merely starts with srs is plain",
                "srs0@example.com",
                Some("srs0@example.com"),
                "<srs0@example.com>",
            ),
            (
                "an SRS address is never read as BATV",
                "SRS0=prvs=1234=jane@forwarder.example",
                None,
                "<SRS0=prvs=1234=jane@forwarder.example>, rewritten by a forwarder (SRS0); not decoded",
            ),
        ];
        for (description, envelope, mailbox, shown) in cases {
            let envelope = address(envelope);
            let path = ReturnPath::read(&envelope);
            assert_eq!(path.envelope(), &envelope, "{description}");
            assert_eq!(
                path.mailbox().map(EmailAddress::as_str),
                mailbox,
                "{description}"
            );
            assert_eq!(path.to_string(), shown, "{description}");
        }
    }

    #[test]
    fn envelopes_are_matched_with_from_by_identity() {
        let cases = [
            (
                "the same address",
                "jane@example.com",
                "jane@example.com",
                EnvelopeMatch::Same,
            ),
            (
                "the domain in other case",
                "jane@EXAMPLE.com",
                "jane@example.com",
                EnvelopeMatch::Same,
            ),
            (
                "the local part in other case",
                "Jane.Doe@Example.com",
                "jane.doe@example.com",
                EnvelopeMatch::OtherCase,
            ),
            (
                "a prvs tag before From",
                "prvs=0123456789=jane@example.com",
                "jane@example.com",
                EnvelopeMatch::Untagged(BatvTag::Prvs),
            ),
            (
                "a prvs tag before From in other case",
                "prvs=0123456789=Jane@Example.com",
                "jane@example.com",
                EnvelopeMatch::Untagged(BatvTag::Prvs),
            ),
            (
                "a btv1 tag before From",
                "btv1==5f2a17c8e1d==jane@example.com",
                "jane@example.com",
                EnvelopeMatch::Untagged(BatvTag::Btv1),
            ),
            (
                "a prvs tag before another mailbox",
                "prvs=0123456789=boss@example.com",
                "jane@example.com",
                EnvelopeMatch::OtherMailbox,
            ),
            (
                "a prvs tag before a mailbox in another domain",
                "prvs=0123456789=jane@example.net",
                "jane@example.com",
                EnvelopeMatch::OtherMailbox,
            ),
            (
                "SRS0, whatever it encodes",
                "SRS0=HHH=TT=example.com=jane@forwarder.example",
                "jane@example.com",
                EnvelopeMatch::Forwarder(SrsScheme::Srs0),
            ),
            (
                "SRS0 encoding another sender",
                "SRS0=HHH=TT=evil.example=mallory@forwarder.example",
                "jane@example.com",
                EnvelopeMatch::Forwarder(SrsScheme::Srs0),
            ),
            (
                "Microsoft 365 SRS",
                "bounces+SRS=44ldt=IX=example.com=jane@contoso.onmicrosoft.com",
                "jane@example.com",
                EnvelopeMatch::Forwarder(SrsScheme::Microsoft),
            ),
            (
                "another domain",
                "bounce-77@mailer.example.net",
                "jane@example.com",
                EnvelopeMatch::OtherDomain,
            ),
            (
                "a subdomain is another domain",
                "jane@mail.example.com",
                "jane@example.com",
                EnvelopeMatch::OtherDomain,
            ),
            (
                "another mailbox in From's domain",
                "boss@example.com",
                "jane@example.com",
                EnvelopeMatch::OtherMailbox,
            ),
            (
                "a plus-tag is another mailbox",
                "jane+x@example.com",
                "jane@example.com",
                EnvelopeMatch::OtherMailbox,
            ),
        ];
        for (description, envelope, from, expected) in cases {
            let found = ReturnPath::read(&address(envelope)).against(&address(from));
            assert_eq!(found, expected, "{description}");
        }
    }

    #[test]
    fn only_envelopes_that_name_from_register_without_authentication() {
        assert!(EnvelopeMatch::Same.names_from());
        assert!(EnvelopeMatch::OtherCase.names_from());
        assert!(EnvelopeMatch::Untagged(BatvTag::Btv1).names_from());
        assert!(!EnvelopeMatch::Forwarder(SrsScheme::Srs0).names_from());
        assert!(!EnvelopeMatch::OtherDomain.names_from());
        assert!(!EnvelopeMatch::OtherMailbox.names_from());
    }
}
