//! `dmarc` mode: SPF (client IP, HELO, envelope sender), DKIM and DMARC
//! verified in-process with mail-auth.
//!
//! Only `dmarc=pass` for the From domain authenticates: DMARC is about the
//! From domain, so a forwarder's SRS envelope (whose SPF is the forwarder's)
//! passes only by a DKIM signature aligned with From. A domain without a
//! DMARC policy (`none`) is not authenticated. A temporary DNS failure is a
//! `TemporaryError`, which the SMTP session answers `451 4.7.1` so the sender
//! retries later.

use crate::message::{EnvelopeSender, FromHeader, InboundMessage};
use crate::policy::AuthVerdict;
use crate::sender_auth::dns::{Caches, Dns, ZoneCache};
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult, MX, Parameters, RecordSet, Txt};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

type Cached<'x, P> = Parameters<
    'x,
    P,
    ZoneCache<Box<str>, Txt>,
    ZoneCache<Box<str>, RecordSet<MX>>,
    ZoneCache<Box<str>, RecordSet<Ipv4Addr>>,
    ZoneCache<Box<str>, RecordSet<Ipv6Addr>>,
    ZoneCache<IpAddr, RecordSet<Box<str>>>,
>;

fn cached<P>(params: P, caches: &Caches) -> Cached<'_, P> {
    Parameters::new(params)
        .with_txt_cache(&caches.txt)
        .with_mx_cache(&caches.mx)
        .with_ptr_cache(&caches.ptr)
        .with_ipv4_cache(&caches.ipv4)
        .with_ipv6_cache(&caches.ipv6)
}

/// Verifies SPF, DKIM and DMARC for `message`.
pub(super) async fn verify(
    dns: &Dns,
    hostname: &str,
    message: &InboundMessage,
    raw: &[u8],
) -> AuthVerdict {
    let Some(authenticator) = &dns.authenticator else {
        return AuthVerdict::TemporaryError("no DNS resolver is available".into());
    };
    let EnvelopeSender::Address(sender) = &message.sender else {
        return AuthVerdict::Fail("no envelope sender to authenticate".into());
    };
    let Some(parsed) = AuthenticatedMessage::parse(raw) else {
        return AuthVerdict::Fail("the message cannot be read for DKIM".into());
    };
    let caches = &dns.caches;
    let dkim = authenticator.verify_dkim(cached(&parsed, caches)).await;
    let mail_from = sender.delivery_address();
    let helo = message.envelope.helo.as_str();
    let spf = authenticator
        .verify_spf(cached(
            SpfParameters::verify_mail_from(message.envelope.client_ip, helo, hostname, &mail_from),
            caches,
        ))
        .await;
    let dmarc = authenticator
        .verify_dmarc(cached(
            DmarcParameters::new(&parsed, &dkim, sender.domain(), &spf),
            caches,
        ))
        .await;
    let dkim_summary = if dkim.is_empty() {
        "none".to_owned()
    } else {
        dkim.iter()
            .map(|output| match (output.result(), output.signature()) {
                (DkimResult::Pass, Some(signature)) => format!("pass (d={})", signature.d),
                (result, _) => result.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let summary = format!(
        "spf={} for {}, dkim={dkim_summary}",
        spf.result().to_string().to_ascii_lowercase(),
        spf.domain()
    );
    let domain = if dmarc.domain().is_empty() {
        "the From domain"
    } else {
        dmarc.domain()
    };
    match dmarc.result() {
        // mail-auth reads the From header itself; a pass counts only for the
        // domain of the From address policy registers, whatever the
        // envelope, so the two readings of From can never disagree quietly.
        DmarcResult::Pass if !is_from_domain(message, dmarc.domain()) => {
            AuthVerdict::Fail(format!(
                "dmarc=pass for {domain}, which is not the domain of the From address; {summary}"
            ))
        }
        DmarcResult::Pass => AuthVerdict::Pass(format!("dmarc=pass for {domain}; {summary}")),
        DmarcResult::TempError(error) => AuthVerdict::TemporaryError(format!(
            "dmarc=temperror for {domain} ({error}); {summary}"
        )),
        DmarcResult::None => AuthVerdict::Fail(format!(
            "dmarc=none: {domain} publishes no DMARC policy; {summary}"
        )),
        DmarcResult::Fail(error) => {
            AuthVerdict::Fail(format!("dmarc=fail for {domain} ({error}); {summary}"))
        }
        DmarcResult::PermError(error) => {
            AuthVerdict::Fail(format!("dmarc=permerror for {domain} ({error}); {summary}"))
        }
    }
}

/// Whether `domain` (as mail-auth reports it) is the domain of the single
/// From address.
fn is_from_domain(message: &InboundMessage, domain: &str) -> bool {
    let FromHeader::Single { address, .. } = &message.from else {
        return false;
    };
    let domain = domain.trim_end_matches('.');
    idna::domain_to_ascii(domain).is_ok_and(|ascii| ascii.eq_ignore_ascii_case(address.domain()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Envelope;

    fn from(header: &str) -> InboundMessage {
        let envelope = Envelope {
            client_ip: IpAddr::from([192, 0, 2, 1]),
            helo: "mx.example.com".into(),
            mail_from: "SRS0=HHH=TT=example.com=jane@forwarder.example".into(),
            recipients: vec!["support@helpdesk.example".into()],
            relay_ip: None,
        };
        let raw = format!("{header}\r\nSubject: hi\r\n\r\nbody\r\n");
        InboundMessage::parse(envelope, raw.as_bytes()).expect("parses")
    }

    #[test]
    fn a_dmarc_domain_counts_only_when_it_is_the_from_domain() {
        let cases = [
            ("From: jane@example.com", "example.com", true),
            ("From: jane@Example.COM", "EXAMPLE.com.", true),
            ("From: jana@bücher.example", "xn--bcher-kva.example", true),
            ("From: jana@bücher.example", "bücher.example", true),
            ("From: jane@example.com", "forwarder.example", false),
            ("From: jane@example.com", "", false),
            (
                "From: jane@example.com, joe@example.com",
                "example.com",
                false,
            ),
        ];
        for (header, domain, expected) in cases {
            assert_eq!(
                is_from_domain(&from(header), domain),
                expected,
                "{header} / {domain:?}"
            );
        }
    }
}
