//! `[[webhooks]]` (the endpoints customer events go to: a URL, a Standard
//! Webhooks secret inline or in a file, the events) and `[webhook_delivery]`
//! (timeouts and the retry schedule, shared by every endpoint).

use crate::domain::{EventKind, WebhookSecret};
use crate::settings::raw::{RawWebhook, RawWebhookDelivery};
use crate::settings::validate::Problems;
use crate::settings::validate::sign_in::secret;
use crate::settings::{WebhookDelivery, WebhookEndpoint};
use secrecy::ExposeSecret as _;
use std::collections::HashSet;
use std::time::Duration;
use url::Url;

pub(super) fn delivery(
    raw: &RawWebhookDelivery,
    problems: &mut Problems,
) -> Option<WebhookDelivery> {
    let before = problems.count();
    problems.check(
        (1..=120).contains(&raw.timeout_secs),
        "webhook_delivery.timeout_secs: must be between 1 and 120",
    );
    problems.check(
        raw.retry_base_secs >= 1,
        "webhook_delivery.retry_base_secs: must be at least 1",
    );
    problems.check(
        raw.max_age_hours >= 1,
        "webhook_delivery.max_age_hours: must be at least 1",
    );
    problems.check(
        raw.poll_secs >= 1,
        "webhook_delivery.poll_secs: must be at least 1",
    );
    problems.check(
        (1..=1000).contains(&raw.batch),
        "webhook_delivery.batch: must be between 1 and 1000",
    );
    if problems.count() > before {
        return None;
    }
    Some(WebhookDelivery {
        timeout: Duration::from_secs(raw.timeout_secs),
        retry_base: Duration::from_secs(raw.retry_base_secs),
        retry_max: Duration::from_secs(raw.retry_max_secs.max(raw.retry_base_secs)),
        max_age: Duration::from_secs(raw.max_age_hours.saturating_mul(3600)),
        poll_interval: Duration::from_secs(raw.poll_secs),
        batch: raw.batch,
    })
}

pub(super) fn endpoints(raw: &[RawWebhook], problems: &mut Problems) -> Vec<WebhookEndpoint> {
    let mut names = HashSet::new();
    let mut endpoints = Vec::new();
    for (index, raw) in raw.iter().enumerate() {
        let key = format!("webhooks[{index}]");
        if let Some(endpoint) = endpoint(&key, raw, problems) {
            if names.insert(endpoint.name.clone()) {
                endpoints.push(endpoint);
            } else {
                problems.push(format!(
                    "{key}.name: {:?} names another endpoint too; give each a name",
                    endpoint.name
                ));
            }
        }
    }
    endpoints
}

fn endpoint(key: &str, raw: &RawWebhook, problems: &mut Problems) -> Option<WebhookEndpoint> {
    let before = problems.count();
    let url = problems
        .parse(&format!("{key}.url"), Url::parse(raw.url.trim()))
        .filter(|url| {
            // Customer data and signatures in clear text only on this host
            // (a test receiver); anywhere else they could be read in transit.
            let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            let ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
            if !ok {
                problems.push(format!(
                    "{key}.url: must be an https URL (http only on loopback)"
                ));
            }
            ok
        });
    let secret = secret(
        &format!("{key}.secret"),
        &raw.secret,
        &raw.secret_file,
        problems,
    )
    .and_then(|text| {
        problems.parse(
            &format!("{key}.secret"),
            WebhookSecret::parse(text.expose_secret()),
        )
    });
    let mut events = Vec::new();
    for name in &raw.events {
        if let Some(kind) = problems.choice::<EventKind>(&format!("{key}.events"), name)
            && !events.contains(&kind)
        {
            events.push(kind);
        }
    }
    if raw.events.is_empty() {
        events = EventKind::LIFECYCLE.to_vec();
    }
    let url = url?;
    let name = if raw.name.trim().is_empty() {
        default_name(&url)
    } else {
        raw.name.trim().to_owned()
    };
    let usable = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | ':'));
    problems.check(
        usable,
        &format!("{key}.name: use 1 to 100 letters, digits and . - _ / :"),
    );
    if problems.count() > before {
        return None;
    }
    Some(WebhookEndpoint {
        name,
        url,
        secret: secret?,
        events,
    })
}

/// The URL's host, port and path: what tells endpoints apart, without a
/// query string or credentials that may hold a secret.
fn default_name(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let port = url
        .port()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    let path = url.path().trim_end_matches('/');
    format!("{host}{port}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: &str, secret: &str, events: &[&str]) -> RawWebhook {
        RawWebhook {
            name: String::new(),
            url: url.into(),
            secret: secret.into(),
            secret_file: Default::default(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
        }
    }

    #[test]
    fn an_endpoint_gets_the_lifecycle_events_unless_it_lists_its_own() {
        let secret = WebhookSecret::generate();
        let mut problems = Problems::default();
        let endpoints = endpoints(
            &[
                raw("https://crm.example/hooks/registrar?key=x", &secret, &[]),
                raw(
                    "http://127.0.0.1:9000/",
                    &secret,
                    &["customer.signed_in", "customer.activated"],
                ),
            ],
            &mut problems,
        );
        assert!(problems.0.is_empty(), "{:?}", problems.0);
        assert_eq!(endpoints[0].name, "crm.example/hooks/registrar");
        assert_eq!(endpoints[0].events, EventKind::LIFECYCLE.to_vec());
        assert_eq!(endpoints[1].name, "127.0.0.1:9000");
        assert!(endpoints[1].wants(EventKind::SignedIn));
        assert!(!endpoints[1].wants(EventKind::Registered));
    }

    #[test]
    fn bad_endpoints_are_named_key_by_key() {
        let secret = WebhookSecret::generate();
        let mut problems = Problems::default();
        let endpoints = endpoints(
            &[
                raw(
                    "http://crm.example/hook",
                    "not-a-secret",
                    &["customer.made"],
                ),
                raw("https://a.example/x", &secret, &[]),
                raw("https://a.example/x/", &secret, &[]),
            ],
            &mut problems,
        );
        assert_eq!(endpoints.len(), 1);
        let text = problems.0.join("\n");
        for expected in [
            "webhooks[0].url: must be an https URL",
            "webhooks[0].secret: must start with whsec_",
            "webhooks[0].events: unknown event \"customer.made\"",
            "webhooks[2].name: \"a.example/x\" names another endpoint too",
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
    }
}
