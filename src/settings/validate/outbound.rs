//! The `[outbound]` section: the relay (or folder) replies go to, their
//! sender, and the retry schedule.

use crate::domain::EmailAddress;
use crate::settings::OutboundSettings;
use crate::settings::raw::RawOutbound;
use crate::settings::validate::Problems;
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
        (1..=256).contains(&raw.parallel_deliveries),
        "outbound.parallel_deliveries: must be between 1 and 256",
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
            .map(Some)
    };
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
    Some(OutboundSettings {
        relay: relay?,
        username: raw.username,
        password: SecretString::from(raw.password),
        folder: raw.folder,
        from_address: from_address?,
        envelope_from: envelope_from?,
        send_timeout: Duration::from_secs(raw.send_timeout_secs),
        retry_base: Duration::from_secs(raw.retry_base_secs),
        retry_max: Duration::from_secs(raw.retry_max_secs.max(raw.retry_base_secs)),
        max_attempts: raw.max_attempts,
        poll_interval: Duration::from_secs(raw.poll_secs),
        parallel_deliveries: raw.parallel_deliveries,
    })
}
