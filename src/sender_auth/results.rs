//! `authentication-results` mode: reading the `Authentication-Results`
//! headers (RFC 8601) that our own border MTA added.
//!
//! Anyone can write such a header into a message, so a header counts only
//! when the SMTP peer that handed us the message is a trusted relay, and
//! only when our relay put it there: relays add their headers on top, so
//! only the topmost run of `Authentication-Results` headers is read
//! (`message` keeps no other), and of that run only the headers with the
//! configured authserv-id above any other one. A header with our id further
//! down came with the message and counts for nothing. Among the headers that
//! count, the worst DMARC verdict for the From domain wins, and only
//! `dmarc=pass` authenticates.

use crate::message::{FromHeader, InboundMessage};
use crate::policy::{AuthVerdict, TrustedResults};

/// Judges the `Authentication-Results` headers of `message`.
pub fn check_authentication_results(
    trusted: &TrustedResults,
    message: &InboundMessage,
) -> AuthVerdict {
    // The peer, not the original client a relay named: the header was
    // written by whoever handed the message to us.
    let peer = message.envelope.peer_ip();
    if !trusted
        .trusted_relays
        .iter()
        .any(|range| range.contains(peer))
    {
        return AuthVerdict::Fail(format!(
            "the SMTP peer {peer} is not a trusted relay, so no Authentication-Results header counts"
        ));
    }
    let FromHeader::Single { address, .. } = &message.from else {
        return AuthVerdict::Fail("no single From address to authenticate".into());
    };
    let from_domain = address.domain();
    let ours: Vec<ResultsHeader> = message
        .authentication_results
        .iter()
        .map(|value| ResultsHeader::parse(value))
        .take_while(|header| {
            header.as_ref().is_some_and(|header| {
                header
                    .authserv_id
                    .eq_ignore_ascii_case(&trusted.authserv_id)
            })
        })
        .flatten()
        .collect();
    if ours.is_empty() {
        return AuthVerdict::Fail(format!(
            "the topmost Authentication-Results header is not from {}",
            trusted.authserv_id
        ));
    }
    let worst = ours
        .iter()
        .flat_map(|header| &header.results)
        .filter(|result| result.method.eq_ignore_ascii_case("dmarc"))
        .filter(|result| {
            result
                .property("header.from")
                .is_some_and(|domain| same_domain(domain, from_domain))
        })
        .map(|result| result.result.to_ascii_lowercase())
        .max_by_key(|result| severity(result));
    match worst.as_deref() {
        Some("pass") => AuthVerdict::Pass(format!(
            "dmarc=pass for {from_domain} from {}",
            trusted.authserv_id
        )),
        Some(other) => AuthVerdict::Fail(format!(
            "dmarc={other} for {from_domain} from {}",
            trusted.authserv_id
        )),
        None => AuthVerdict::Fail(format!(
            "{} reported no DMARC result for {from_domain}",
            trusted.authserv_id
        )),
    }
}

/// How bad a result is; the worst one wins.
fn severity(result: &str) -> u8 {
    match result {
        "pass" => 0,
        "none" => 1,
        "neutral" | "policy" | "softfail" => 2,
        "temperror" => 3,
        "permerror" => 4,
        // "fail" and anything unknown.
        _ => 5,
    }
}

fn same_domain(reported: &str, from_domain: &str) -> bool {
    let reported = reported.trim().trim_end_matches('.');
    let reported = reported
        .rsplit_once('@')
        .map_or(reported, |(_, domain)| domain);
    idna::domain_to_ascii(reported).is_ok_and(|ascii| ascii.eq_ignore_ascii_case(from_domain))
}

/// One parsed `Authentication-Results` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResultsHeader {
    authserv_id: String,
    results: Vec<MethodResult>,
}

/// One `method=result` with its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MethodResult {
    method: String,
    result: String,
    /// `ptype.property` (lowercased) and value.
    properties: Vec<(String, String)>,
}

impl MethodResult {
    fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl ResultsHeader {
    /// Parses a header value; `None` when it has no authserv-id.
    fn parse(value: &str) -> Option<Self> {
        let text = strip_comments(value);
        let mut parts = split_outside_quotes(&text, ';').into_iter();
        let authserv_id = parts.next()?.split_whitespace().next()?.to_owned();
        let mut results = Vec::new();
        for part in parts {
            // `method = result` may carry spaces around `=` and `.`.
            let compact = part
                .replace(" =", "=")
                .replace("= ", "=")
                .replace(" .", ".")
                .replace(". ", ".");
            let mut tokens = compact.split_whitespace();
            let Some((method, result)) = tokens.next().and_then(|t| t.split_once('=')) else {
                continue; // `none`, or garbage
            };
            let method = method.split('/').next().unwrap_or(method).to_owned();
            let properties = tokens
                .filter_map(|token| token.split_once('='))
                .filter(|(key, _)| key.contains('.'))
                .map(|(key, value)| (key.to_ascii_lowercase(), value.trim_matches('"').to_owned()))
                .collect();
            results.push(MethodResult {
                method,
                result: result.to_owned(),
                properties,
            });
        }
        Some(Self {
            authserv_id,
            results,
        })
    }
}

/// Removes `(comments)`, which may nest, outside quoted strings.
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                out.push(' ');
            }
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn split_outside_quotes(text: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == separator && !quoted {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts.into_iter().map(|p| p.trim().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IpRange;
    use crate::message::Envelope;
    use std::net::IpAddr;

    fn trusted() -> TrustedResults {
        TrustedResults {
            authserv_id: "mx.helpdesk.example".into(),
            trusted_relays: vec![IpRange::parse("192.0.2.0/24").expect("range")],
        }
    }

    fn message(peer: [u8; 4], results: &[&str]) -> InboundMessage {
        forwarded(peer, None, results)
    }

    /// A message from `client`, handed over by `relay` when there is one.
    fn forwarded(client: [u8; 4], relay: Option<[u8; 4]>, results: &[&str]) -> InboundMessage {
        let envelope = Envelope {
            client_ip: IpAddr::from(client),
            relay_ip: relay.map(IpAddr::from),
            helo: "mx.helpdesk.example".into(),
            mail_from: "jane@example.com".into(),
            recipients: vec!["support@helpdesk.example".into()],
        };
        let mut raw = String::new();
        for value in results {
            raw.push_str(&format!("Authentication-Results: {value}\r\n"));
        }
        raw.push_str("From: Jane <jane@Example.com>\r\nSubject: hi\r\n\r\nbody\r\n");
        InboundMessage::parse(envelope, raw.as_bytes()).expect("parses")
    }

    #[test]
    fn verdicts_follow_the_trusted_headers() {
        let pass = "mx.helpdesk.example; spf=pass smtp.mailfrom=example.com; dkim=pass header.d=example.com; dmarc=pass (p=reject) header.from=example.com";
        let fail = "mx.helpdesk.example; dmarc=fail header.from=example.com";
        let cases: Vec<(&str, [u8; 4], Vec<&str>, bool)> = vec![
            (
                "a trusted pass authenticates",
                [192, 0, 2, 7],
                vec![pass],
                true,
            ),
            (
                "an untrusted peer never authenticates",
                [203, 0, 113, 5],
                vec![pass],
                false,
            ),
            (
                "another authserv-id does not count",
                [192, 0, 2, 7],
                vec!["mx.attacker.example; dmarc=pass header.from=example.com"],
                false,
            ),
            (
                "the worst verdict wins",
                [192, 0, 2, 7],
                vec![pass, fail],
                false,
            ),
            (
                "a pass for another domain does not count",
                [192, 0, 2, 7],
                vec!["mx.helpdesk.example; dmarc=pass header.from=other.example"],
                false,
            ),
            (
                "none is not authenticated",
                [192, 0, 2, 7],
                vec!["mx.helpdesk.example; none"],
                false,
            ),
            (
                "dmarc=none is not authenticated",
                [192, 0, 2, 7],
                vec!["mx.helpdesk.example 1; dmarc=none header.from=example.com"],
                false,
            ),
            (
                "spacing, comments and versions are tolerated",
                [192, 0, 2, 7],
                vec![
                    "MX.Helpdesk.Example 1 (our border); dmarc = pass (p=none) header . from = EXAMPLE.com",
                ],
                true,
            ),
            (
                "no header is not authenticated",
                [192, 0, 2, 7],
                vec![],
                false,
            ),
            (
                "our id below another one's came with the message",
                [192, 0, 2, 7],
                vec!["mx.other.example; dmarc=fail header.from=example.com", pass],
                false,
            ),
        ];
        for (description, peer, headers, expected) in cases {
            let verdict = check_authentication_results(&trusted(), &message(peer, &headers));
            assert_eq!(
                matches!(verdict, AuthVerdict::Pass(_)),
                expected,
                "{description}: {verdict:?}"
            );
        }
    }

    #[test]
    fn a_forwarded_client_is_judged_by_the_relay_that_handed_it_over() {
        let pass = "mx.helpdesk.example; dmarc=pass header.from=example.com";
        let outside = [203, 0, 113, 5];

        let through_relay = forwarded(outside, Some([192, 0, 2, 7]), &[pass]);
        let through_stranger = forwarded([192, 0, 2, 7], Some(outside), &[pass]);

        let verdict = check_authentication_results(&trusted(), &through_relay);
        assert!(matches!(verdict, AuthVerdict::Pass(_)), "{verdict:?}");
        let verdict = check_authentication_results(&trusted(), &through_stranger);
        assert!(matches!(verdict, AuthVerdict::Fail(_)), "{verdict:?}");
    }
}
