//! The `[sender_auth]` section: how the `dmarc` mode reaches DNS.

use crate::sender_auth::DnsSource;
use crate::settings::SenderAuthSettings;
use crate::settings::raw::RawSenderAuth;
use crate::settings::validate::Problems;
use std::net::IpAddr;
use std::time::Duration;

pub(super) fn validate(raw: &RawSenderAuth, problems: &mut Problems) -> SenderAuthSettings {
    let mut nameservers = Vec::new();
    for server in &raw.nameservers {
        match server.trim().parse::<IpAddr>() {
            Ok(ip) => nameservers.push(ip),
            Err(_) => problems.push(format!(
                "sender_auth.nameservers: {server:?} is not an IP address"
            )),
        }
    }
    problems.check(
        raw.dns_timeout_secs != 0,
        "sender_auth.dns_timeout_secs: must be at least 1",
    );
    SenderAuthSettings {
        dns: DnsSource::Resolver {
            nameservers,
            timeout: Duration::from_secs(raw.dns_timeout_secs),
        },
    }
}
