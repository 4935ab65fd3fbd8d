//! Sender authentication: whether the envelope sender of a registration mail
//! really sent it. Three modes, chosen per service:
//!
//! - `off`: nobody is authenticated (policy still requires From: to be the
//!   envelope sender). For loopback demos only; start-up warns about it.
//! - `authentication-results`: trust the `Authentication-Results` headers of
//!   one authserv-id, and only when the SMTP peer is a trusted relay
//!   (`results`). Pure: no IO.
//! - `dmarc`: verify SPF, DKIM and DMARC here with mail-auth (`dmarc`), using
//!   the client IP, HELO and envelope sender. DNS answers come through
//!   `dns::Dns`, which tests and `registrar explain` can feed fixed records.
//!
//! The outcome is an `AuthVerdict` that `policy` judges; this module decides
//! nothing about registration itself.

mod dmarc;
pub mod dns;
mod results;

pub use dns::{Dns, DnsSource, FixedZone};
pub use results::check_authentication_results;

use crate::message::InboundMessage;
use crate::settings::Settings;
use std::net::IpAddr;
use std::time::Duration;

/// How a service authenticates senders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderAuthMode {
    Off,
    AuthenticationResults(TrustedResults),
    Dmarc,
}

/// Whose `Authentication-Results` headers count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedResults {
    /// The authserv-id of our own border MTA, compared case-insensitively.
    pub authserv_id: String,
    /// SMTP peers allowed to hand us such headers.
    pub trusted_relays: Vec<IpRange>,
}

/// An address or a CIDR block (`192.0.2.0/24`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses `addr` or `addr/prefix`.
    ///
    /// # Errors
    /// Says what is wrong with the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a bad prefix length"))?,
            None => max,
        };
        Ok(Self { network, prefix })
    }

    /// Whether `ip` lies in this range (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        let (network, ip, bits) = match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                (u128::from(n.to_bits()), u128::from(i.to_bits()), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => (n.to_bits(), i.to_bits(), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (network >> shift) == (ip >> shift)
    }
}

/// The outcome of sender authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthVerdict {
    /// The service does not authenticate senders.
    Off,
    /// Authenticated; the text says how.
    Pass(String),
    /// Not authenticated (a failure, or no result at all: `none`).
    Fail(String),
    /// A DNS lookup failed for now: answer `451 4.7.1`, store nothing.
    TemporaryError(String),
}

/// Runs the verification a service's mode asks for.
pub struct SenderAuthenticator {
    dns: Dns,
    /// `smtp.hostname`: our name, used by SPF macros.
    hostname: String,
    /// Longest the DNS work for one message may take; then it is a
    /// temporary error.
    deadline: Duration,
}

impl SenderAuthenticator {
    pub fn new(dns: Dns, hostname: &str, deadline: Duration) -> Self {
        Self {
            dns,
            hostname: hostname.to_owned(),
            deadline,
        }
    }

    /// Builds the authenticator the settings ask for; DNS is set up only when
    /// a service uses `dmarc`. With `warn`, logs a warning for every service
    /// that authenticates nobody (start-up).
    pub fn from_settings(settings: &Settings, warn: bool) -> Self {
        for service in settings.services.iter().filter(|_| warn) {
            if service.policy.sender_auth == SenderAuthMode::Off {
                tracing::warn!(
                    service = %service.id,
                    "sender_auth = \"off\": senders of registration mail are not authenticated, \
                     so anyone can have an activation mail sent to any address; use \"dmarc\" or \
                     \"authentication-results\" for a service that faces the internet"
                );
            }
        }
        let needs_dns = settings
            .services
            .iter()
            .any(|service| service.policy.sender_auth == SenderAuthMode::Dmarc);
        let dns = if needs_dns {
            Dns::new(&settings.sender_auth.dns).unwrap_or_else(|error| {
                tracing::error!(
                    error.message = %error,
                    "no DNS for sender authentication: mail to dmarc services is deferred (451)"
                );
                Dns::unavailable()
            })
        } else {
            Dns::unavailable()
        };
        let timeout = match &settings.sender_auth.dns {
            DnsSource::Resolver { timeout, .. } => *timeout,
            DnsSource::Fixed(_) => Duration::from_secs(5),
        };
        // A message needs a handful of lookups (SPF includes, DKIM keys,
        // the DMARC tree walk); each may take up to `timeout`.
        Self::new(dns, &settings.smtp.hostname, timeout * 4)
    }

    /// Authenticates the sender of `message` (raw bytes `raw`) per `mode`.
    pub async fn verify(
        &self,
        mode: &SenderAuthMode,
        message: &InboundMessage,
        raw: &[u8],
    ) -> AuthVerdict {
        match mode {
            SenderAuthMode::Off => AuthVerdict::Off,
            SenderAuthMode::AuthenticationResults(trusted) => {
                check_authentication_results(trusted, message)
            }
            SenderAuthMode::Dmarc => {
                let verify = dmarc::verify(&self.dns, &self.hostname, message, raw);
                tokio::time::timeout(self.deadline, verify)
                    .await
                    .unwrap_or_else(|_| {
                        AuthVerdict::TemporaryError(format!(
                            "DNS lookups took longer than {}s",
                            self.deadline.as_secs()
                        ))
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_addresses_and_blocks() {
        let cases = [
            ("192.0.2.1", "192.0.2.1", true),
            ("192.0.2.1", "192.0.2.2", false),
            ("192.0.2.0/24", "192.0.2.200", true),
            ("192.0.2.0/24", "192.0.3.1", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("2001:db8::/32", "2001:db8:1::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("192.0.2.1", "::ffff:192.0.2.1", true),
            ("192.0.2.1", "2001:db8::1", false),
        ];
        for (range, ip, expected) in cases {
            let range = IpRange::parse(range).expect("valid range");
            let ip: IpAddr = ip.parse().expect("valid ip");
            assert_eq!(range.contains(ip), expected, "{range:?} contains {ip}");
        }
        assert!(IpRange::parse("192.0.2.0/33").is_err());
        assert!(IpRange::parse("relay.example").is_err());
    }
}
