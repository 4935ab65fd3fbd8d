//! The `[outbound]` section: the relay (or folder) replies go to, their
//! sender, the retry schedule, how many replies go out at once, and how long
//! a reply may wait before the daemon counts as unhealthy.

use crate::domain::{EmailAddress, Verp};
use crate::settings::raw::RawOutbound;
use crate::settings::validate::Problems;
use crate::settings::{OutboundSettings, RelayUrl};
use secrecy::SecretString;
use std::time::Duration;
use url::Url;

pub(super) fn validate(raw: RawOutbound, problems: &mut Problems) -> Option<OutboundSettings> {
    problems.check(
        raw.max_attempts >= 1,
        "outbound.max_attempts: must be at least 1",
    );
    problems.check(
        raw.send_timeout_secs >= 1,
        "outbound.send_timeout_secs: must be at least 1",
    );
    problems.check(raw.poll_secs >= 1, "outbound.poll_secs: must be at least 1");
    problems.check(
        (1..=64).contains(&raw.parallel_deliveries),
        "outbound.parallel_deliveries: must be between 1 and 64",
    );
    let relay = if raw.relay.trim().is_empty() {
        Some(None)
    } else {
        problems
            .parse("outbound.relay", Url::parse(&raw.relay))
            .filter(|url| {
                let ok = matches!(url.scheme(), "smtp" | "smtps") && url.host().is_some();
                if !ok {
                    problems.push(
                        "outbound.relay: must be smtp://host:port or smtps://host:port".into(),
                    );
                }
                ok
            })
            .map(|url| Some(RelayUrl::new(url)))
    };
    problems.check(
        raw.folder_retention_hours >= 1,
        "outbound.folder_retention_hours: must be at least 1",
    );
    let from_address = problems.parse(
        "outbound.from_address",
        EmailAddress::parse(&raw.from_address),
    );
    let envelope_from = if raw.envelope_from.trim().is_empty() {
        Some(None)
    } else {
        problems
            .parse(
                "outbound.envelope_from",
                EmailAddress::parse(&raw.envelope_from),
            )
            .map(Some)
    };
    let envelope_from: Option<Option<EmailAddress>> = envelope_from;
    let verp = match (&envelope_from, raw.verp) {
        (_, false) => None,
        (Some(Some(base)), true) => Some(Verp::new(base.clone())),
        (Some(None), true) => {
            problems.push(
                "outbound.verp: needs outbound.envelope_from (like bounces@your-domain, a domain \
                 whose MX delivers to registrar's SMTP listener)"
                    .into(),
            );
            None
        }
        (None, true) => None,
    };
    Some(OutboundSettings {
        relay: relay?,
        username: raw.username,
        password: SecretString::from(raw.password),
        folder: raw.folder,
        folder_retention: Duration::from_secs(raw.folder_retention_hours * 3600),
        from_address: from_address?,
        envelope_from: envelope_from?,
        verp,
        send_timeout: Duration::from_secs(raw.send_timeout_secs),
        retry_base: Duration::from_secs(raw.retry_base_secs),
        retry_max: Duration::from_secs(raw.retry_max_secs.max(raw.retry_base_secs)),
        max_attempts: raw.max_attempts,
        poll_interval: Duration::from_secs(raw.poll_secs),
        max_queue_age: Duration::from_secs(raw.max_queue_age_secs),
        parallel_deliveries: raw.parallel_deliveries,
    })
}
