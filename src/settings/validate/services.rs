//! The `[[services]]`: ids, support addresses (each belongs to one service)
//! and each service's policy (`policy`).

use crate::domain::{EmailAddress, IpRange};
use crate::settings::Service;
use crate::settings::raw::{RawPolicy, RawService};
use crate::settings::validate::Problems;
use crate::settings::validate::policy;
use std::collections::HashSet;

pub(super) fn validate(
    global: &RawPolicy,
    raws: &[RawService],
    relays: &[IpRange],
    problems: &mut Problems,
) -> Vec<Service> {
    problems.check(!raws.is_empty(), "services: at least one service is needed");
    let mut services = Vec::new();
    for (index, raw) in raws.iter().enumerate() {
        let key = format!("services[{index}]");
        if raw.id.is_empty()
            || !raw
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            problems.push(format!("{key}.id: must be letters, digits, '-' or '_'"));
        }
        if raws[..index].iter().any(|other| other.id == raw.id) {
            problems.push(format!("{key}.id: {:?} is used twice", raw.id));
        }
        if raw.support_addresses.is_empty() {
            problems.push(format!(
                "{key}.support_addresses: at least one address is needed"
            ));
        }
        let mut addresses = Vec::new();
        for address in &raw.support_addresses {
            match EmailAddress::parse(address) {
                Ok(address) => addresses.push(address),
                Err(e) => problems.push(format!("{key}.support_addresses: {address:?}: {e}")),
            }
        }
        let policy = policy::resolve(
            global,
            &raw.policy,
            relays,
            &format!("{key}.policy"),
            problems,
        );
        if let Some(policy) = policy {
            services.push(Service {
                id: raw.id.clone(),
                name: raw.name.clone(),
                support_addresses: addresses,
                policy,
            });
        }
    }
    let mut seen = HashSet::new();
    for address in services.iter().flat_map(|s| &s.support_addresses) {
        if !seen.insert(address.identity_key()) {
            problems.push(format!(
                "services: support address {address} belongs to two services"
            ));
        }
    }
    services
}
