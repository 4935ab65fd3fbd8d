//! A service's `policy`: its own keys over the global `[policy]`, each
//! checked; enum keys are parsed by their types' `FromStr`.

use crate::domain::{EmailAddress, IpRange};
use crate::policy::{
    Access, Company, Denylist, LimitAction, RefusalMode, ReplyLimits, SelfRegistration,
    SenderAuthKind, SenderAuthMode, ServicePolicy, TrustedResults,
};
use crate::settings::raw::{RawCompany, RawPolicy};
use crate::settings::validate::Problems;

/// Merges a service's overrides over the global policy and validates it;
/// `None` when any key is missing or bad (each is reported). `relays` (the
/// `smtp.relays`) are the trusted relays when the policy names none.
pub(super) fn resolve(
    global: &RawPolicy,
    own: &RawPolicy,
    relays: &[IpRange],
    key: &str,
    problems: &mut Problems,
) -> Option<ServicePolicy> {
    let before = problems.count();
    macro_rules! pick {
        ($field:ident) => {
            match own.$field.clone().or_else(|| global.$field.clone()) {
                Some(value) => Some(value),
                None => {
                    problems.push(format!("{key}.{}: missing", stringify!($field)));
                    None
                }
            }
        };
    }
    let mode = pick!(self_registration);
    let email = pick!(email);
    let portal = pick!(portal);
    let google = pick!(google);
    let directory = pick!(directory);
    let email_link = pick!(email_link);
    let denylist = pick!(denylist);
    let refusal = pick!(refusal);
    let notify_active = pick!(notify_active);
    let interval = pick!(reply_interval_minutes);
    let per_day = pick!(max_replies_per_day);
    let companies = pick!(companies);
    let subjects = pick!(auto_reply_subjects);
    let max_received = pick!(max_received);
    let service_per_day = pick!(service_replies_per_day);
    let domain_per_day = pick!(domain_replies_per_day);
    let network_per_day = pick!(network_replies_per_day);
    let action = pick!(rate_limit_action);
    let auth_kind = pick!(sender_auth);

    let companies = companies.map(|companies| self::companies(companies, key, problems));
    let mode = mode.and_then(|mode| {
        problems.choice::<SelfRegistration>(&format!("{key}.self_registration"), &mode)
    });
    let access = access(mode, companies, key, problems);
    let denylist = denylist.and_then(|entries| {
        problems.parse(
            &format!("{key}.denylist"),
            Denylist::parse(entries.iter().map(String::as_str)),
        )
    });
    let refusal =
        refusal.and_then(|text| problems.choice::<RefusalMode>(&format!("{key}.refusal"), &text));
    let action = action.and_then(|text| {
        problems.choice::<LimitAction>(&format!("{key}.rate_limit_action"), &text)
    });
    let sender_auth = auth_kind
        .and_then(|text| problems.choice::<SenderAuthKind>(&format!("{key}.sender_auth"), &text))
        .and_then(|kind| sender_auth(kind, global, own, relays, key, problems));
    if interval.is_some_and(|minutes| minutes < 0) {
        problems.push(format!(
            "{key}.reply_interval_minutes: must not be negative"
        ));
    }
    if problems.count() > before {
        return None;
    }
    Some(ServicePolicy {
        access: access?,
        email: email?,
        portal: portal?,
        google: google?,
        directory: directory?,
        email_link: email_link?,
        denylist: denylist?,
        refusal: refusal?,
        notify_active: notify_active?,
        limits: ReplyLimits {
            min_interval_secs: interval? * 60,
            max_per_day: per_day?,
            domain_per_day: domain_per_day?,
            network_per_day: network_per_day?,
            service_per_day: service_per_day?,
            action: action?,
        },
        auto_reply_subjects: subjects?.iter().map(|s| s.trim().to_lowercase()).collect(),
        max_received: max_received?,
        sender_auth: sender_auth?,
    })
}

/// Companies with their domains in A-label form.
fn companies(raw: Vec<RawCompany>, key: &str, problems: &mut Problems) -> Vec<Company> {
    raw.into_iter()
        .map(|company| {
            let domains = company
                .domains
                .iter()
                .filter_map(|domain| match EmailAddress::parse(&format!("x@{domain}")) {
                    Ok(probe) => Some(probe.domain().to_owned()),
                    Err(_) => {
                        problems.push(format!("{key}.companies: {domain:?} is not a domain"));
                        None
                    }
                })
                .collect();
            Company {
                name: company.name,
                domains,
            }
        })
        .collect()
}

/// The access mode with its companies attached.
fn access(
    mode: Option<SelfRegistration>,
    companies: Option<Vec<Company>>,
    key: &str,
    problems: &mut Problems,
) -> Option<Access> {
    match (mode?, companies) {
        (SelfRegistration::Anyone, _) => Some(Access::Anyone),
        (SelfRegistration::NoOne, _) => Some(Access::NoOne),
        (SelfRegistration::Companies, Some(companies)) => {
            if companies.is_empty() {
                problems.push(format!(
                    "{key}.companies: \"companies\" access needs at least one company"
                ));
            }
            Some(Access::Companies(companies))
        }
        (SelfRegistration::Companies, None) => None,
    }
}

/// The sender-authentication mode, with the trusted results that
/// `authentication-results` needs. Its trusted relays are the policy's own,
/// or else the `smtp.relays`: one list then describes the MTA in front.
fn sender_auth(
    kind: SenderAuthKind,
    global: &RawPolicy,
    own: &RawPolicy,
    smtp_relays: &[IpRange],
    key: &str,
    problems: &mut Problems,
) -> Option<SenderAuthMode> {
    match kind {
        SenderAuthKind::Off => Some(SenderAuthMode::Off),
        SenderAuthKind::Dmarc => Some(SenderAuthMode::Dmarc),
        SenderAuthKind::AuthenticationResults => {
            let authserv_id = own
                .authserv_id
                .clone()
                .or_else(|| global.authserv_id.clone())
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty());
            let trusted_relays = own
                .trusted_relays
                .clone()
                .or_else(|| global.trusted_relays.clone())
                .unwrap_or_default();
            if authserv_id.is_none() {
                problems.push(format!(
                    "{key}.authserv_id: \"authentication-results\" needs the authserv-id of your border MTA"
                ));
            }
            let mut relays = Vec::new();
            for relay in &trusted_relays {
                match IpRange::parse(relay) {
                    Ok(range) => relays.push(range),
                    Err(e) => problems.push(format!("{key}.trusted_relays: {e}")),
                }
            }
            if trusted_relays.is_empty() {
                relays = smtp_relays.to_vec();
            }
            if relays.is_empty() && trusted_relays.is_empty() {
                problems.push(format!(
                    "{key}.trusted_relays: \"authentication-results\" needs at least one trusted relay address (here or in smtp.relays)"
                ));
            }
            authserv_id.map(|authserv_id| {
                SenderAuthMode::AuthenticationResults(TrustedResults {
                    authserv_id,
                    trusted_relays: relays,
                })
            })
        }
    }
}
