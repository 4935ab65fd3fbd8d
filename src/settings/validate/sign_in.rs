//! The sign-in methods' sections: `[oidc.google]` (any OpenID Connect
//! issuer) and `[ldap]` (the directory). Each is off unless its table is
//! present; a secret comes from the key or from a file, never both.

use crate::settings::raw::{RawLdap, RawOidc};
use crate::settings::validate::Problems;
use crate::settings::{LdapSecurity, LdapSettings, OidcSettings};
use secrecy::SecretString;
use std::path::Path;
use std::time::Duration;
use url::Url;

pub(super) fn oidc(
    raw: &RawOidc,
    services: &[&str],
    problems: &mut Problems,
) -> Option<OidcSettings> {
    let before = problems.count();
    problems.check(
        !raw.client_id.trim().is_empty(),
        "oidc.google.client_id: missing",
    );
    let secret = secret(
        "oidc.google.client_secret",
        &raw.client_secret,
        &raw.client_secret_file,
        problems,
    );
    let issuer = problems
        .parse("oidc.google.issuer", Url::parse(&raw.issuer))
        .filter(|url| {
            // Plain http only on loopback (a test provider); an issuer on a
            // network must be https or its keys could be swapped in transit.
            let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            let ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
            if !ok {
                problems.push("oidc.google.issuer: must be an https URL".into());
            }
            ok
        });
    let service = service("oidc.google.service", &raw.service, services, problems);
    problems.check(
        (1..=120).contains(&raw.timeout_secs),
        "oidc.google.timeout_secs: must be between 1 and 120",
    );
    if problems.count() > before {
        return None;
    }
    Some(OidcSettings {
        client_id: raw.client_id.trim().to_owned(),
        client_secret: secret?,
        issuer: issuer?,
        service: service?,
        timeout: Duration::from_secs(raw.timeout_secs),
    })
}

pub(super) fn ldap(
    raw: &RawLdap,
    services: &[&str],
    problems: &mut Problems,
) -> Option<LdapSettings> {
    let before = problems.count();
    let url = problems
        .parse("ldap.url", Url::parse(&raw.url))
        .and_then(|url| {
            let security = match (url.scheme(), raw.starttls) {
                ("ldaps", false) => Some(LdapSecurity::Ldaps),
                ("ldap", true) => Some(LdapSecurity::StartTls),
                ("ldap", false) => Some(LdapSecurity::Plain),
                ("ldaps", true) => {
                    problems.push("ldap.starttls: not with an ldaps:// url".into());
                    None
                }
                _ => {
                    problems.push("ldap.url: must be ldap://host:port or ldaps://host:port".into());
                    None
                }
            };
            if url.host_str().is_none() {
                problems.push("ldap.url: needs a host".into());
                return None;
            }
            security.map(|security| (url, security))
        });
    let password = secret(
        "ldap.bind_password",
        &raw.bind_password,
        &raw.bind_password_file,
        problems,
    );
    problems.check(!raw.bind_dn.trim().is_empty(), "ldap.bind_dn: missing");
    problems.check(!raw.base_dn.trim().is_empty(), "ldap.base_dn: missing");
    problems.check(
        raw.user_filter.contains("{login}")
            && raw.user_filter.starts_with('(')
            && raw.user_filter.ends_with(')'),
        "ldap.user_filter: must be a parenthesised filter containing {login}",
    );
    problems.check(
        (1..=60).contains(&raw.timeout_secs),
        "ldap.timeout_secs: must be between 1 and 60",
    );
    let ca_file = (!raw.ca_file.as_os_str().is_empty()).then(|| raw.ca_file.clone());
    if let Some(path) = &ca_file {
        problems.check(
            path.is_file(),
            &format!("ldap.ca_file: {} is not a readable file", path.display()),
        );
    }
    let service = service("ldap.service", &raw.service, services, problems);
    if problems.count() > before {
        return None;
    }
    let (url, security) = url?;
    let group = raw.required_group.trim();
    Some(LdapSettings {
        url,
        security,
        ca_file,
        bind_dn: raw.bind_dn.trim().to_owned(),
        bind_password: password?,
        base_dn: raw.base_dn.trim().to_owned(),
        user_filter: raw.user_filter.clone(),
        required_group: (!group.is_empty()).then(|| group.to_owned()),
        mail_attribute: raw.mail_attribute.clone(),
        name_attribute: raw.name_attribute.clone(),
        timeout: Duration::from_secs(raw.timeout_secs),
        service: service?,
    })
}

/// A secret given inline or in a file (trailing newline trimmed); exactly
/// one of the two.
fn secret(key: &str, inline: &str, file: &Path, problems: &mut Problems) -> Option<SecretString> {
    let from_file = !file.as_os_str().is_empty();
    match (inline.is_empty(), from_file) {
        (false, false) => Some(SecretString::from(inline.to_owned())),
        (true, true) => match std::fs::read_to_string(file) {
            Ok(text) => Some(SecretString::from(
                text.trim_end_matches(['\r', '\n']).to_owned(),
            )),
            Err(error) => {
                problems.push(format!(
                    "{key}_file: cannot read {}: {error}",
                    file.display()
                ));
                None
            }
        },
        (false, true) => {
            problems.push(format!("{key}: give it or {key}_file, not both"));
            None
        }
        (true, false) => {
            problems.push(format!("{key}: missing (or set {key}_file)"));
            None
        }
    }
}

/// The service a method's new customers join: the named one, or the first.
fn service(key: &str, named: &str, services: &[&str], problems: &mut Problems) -> Option<String> {
    let named = named.trim();
    if named.is_empty() {
        return services.first().map(|id| (*id).to_owned());
    }
    if services.contains(&named) {
        Some(named.to_owned())
    } else {
        problems.push(format!("{key}: no service with id {named:?}"));
        None
    }
}
