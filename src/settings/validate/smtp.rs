//! The `[smtp]` section: the listener, every limit it enforces (each must
//! leave a usable listener) and the relays in front of it.

use crate::domain::IpRange;
use crate::settings::raw::RawSmtp;
use crate::settings::validate::Problems;
use crate::settings::{NullSender, SmtpSettings, TlsFiles};
use std::net::SocketAddr;
use std::time::Duration;

pub(super) fn validate(raw: RawSmtp, problems: &mut Problems) -> Option<SmtpSettings> {
    problems.check(
        raw.max_message_bytes >= 1024,
        "smtp.max_message_bytes: must be at least 1024",
    );
    problems.check(
        !raw.hostname.trim().is_empty(),
        "smtp.hostname: must not be empty",
    );
    problems.check(
        raw.max_header_bytes >= 1024 && raw.max_header_bytes <= raw.max_message_bytes,
        "smtp.max_header_bytes: must be at least 1024 and at most smtp.max_message_bytes",
    );
    problems.check(
        raw.max_command_line_bytes >= 512,
        "smtp.max_command_line_bytes: must be at least 512 (RFC 5321)",
    );
    for (key, value) in [
        ("max_recipients", raw.max_recipients),
        ("max_sessions", raw.max_sessions),
        ("max_sessions_per_ip", raw.max_sessions_per_ip),
        (
            "max_connections_per_ip_per_minute",
            raw.max_connections_per_ip_per_minute,
        ),
        ("max_messages_per_session", raw.max_messages_per_session),
        ("max_errors_per_session", raw.max_errors_per_session),
        (
            "min_data_rate_bytes_per_sec",
            raw.min_data_rate_bytes_per_sec,
        ),
    ] {
        problems.check(value >= 1, &format!("smtp.{key}: must be at least 1"));
    }
    problems.check(
        raw.idle_timeout_secs >= 1,
        "smtp.idle_timeout_secs: must be at least 1",
    );
    problems.check(
        raw.command_timeout_secs >= 1,
        "smtp.command_timeout_secs: must be at least 1",
    );
    problems.check(
        raw.session_timeout_secs >= raw.idle_timeout_secs.max(raw.command_timeout_secs),
        "smtp.session_timeout_secs: must be at least smtp.idle_timeout_secs and smtp.command_timeout_secs",
    );
    problems.check(
        raw.greeting_delay_ms < raw.idle_timeout_secs.saturating_mul(1000),
        "smtp.greeting_delay_ms: must be shorter than smtp.idle_timeout_secs",
    );
    problems.check(
        (1..=100).contains(&raw.stress_sessions_percent),
        "smtp.stress_sessions_percent: must be between 1 and 100",
    );
    // Stress only ever shortens a timeout.
    problems.check(
        (1..=raw.idle_timeout_secs).contains(&raw.stress_idle_timeout_secs),
        "smtp.stress_idle_timeout_secs: must be at least 1 and at most smtp.idle_timeout_secs",
    );
    problems.check(
        (1..=raw.command_timeout_secs).contains(&raw.stress_command_timeout_secs),
        "smtp.stress_command_timeout_secs: must be at least 1 and at most smtp.command_timeout_secs",
    );
    problems.check(
        raw.tls_certificate.as_os_str().is_empty() == raw.tls_key.as_os_str().is_empty(),
        "smtp.tls_certificate, smtp.tls_key: set both (STARTTLS on) or neither (off)",
    );
    let null_sender = problems.choice::<NullSender>("smtp.null_sender", &raw.null_sender);
    let relays = raw
        .relays
        .iter()
        .filter_map(|relay| problems.parse("smtp.relays", IpRange::parse(relay)))
        .collect();
    let listen = problems.parse("smtp.listen", raw.listen.parse::<SocketAddr>());
    let tls = (!raw.tls_certificate.as_os_str().is_empty()).then_some(TlsFiles {
        certificate: raw.tls_certificate,
        key: raw.tls_key,
    });
    Some(SmtpSettings {
        listen: listen?,
        hostname: raw.hostname.trim().to_owned(),
        max_message_bytes: raw.max_message_bytes,
        max_header_bytes: raw.max_header_bytes,
        max_command_line_bytes: raw.max_command_line_bytes,
        max_recipients: raw.max_recipients,
        max_sessions: raw.max_sessions,
        max_sessions_per_ip: raw.max_sessions_per_ip,
        max_connections_per_ip_per_minute: raw.max_connections_per_ip_per_minute,
        max_messages_per_session: raw.max_messages_per_session,
        max_errors_per_session: raw.max_errors_per_session,
        idle_timeout: Duration::from_secs(raw.idle_timeout_secs),
        command_timeout: Duration::from_secs(raw.command_timeout_secs),
        session_timeout: Duration::from_secs(raw.session_timeout_secs),
        min_data_rate: raw.min_data_rate_bytes_per_sec,
        greeting_delay: Duration::from_millis(raw.greeting_delay_ms),
        shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
        stress_sessions_percent: raw.stress_sessions_percent,
        stress_idle_timeout: Duration::from_secs(raw.stress_idle_timeout_secs),
        stress_command_timeout: Duration::from_secs(raw.stress_command_timeout_secs),
        null_sender: null_sender?,
        relays,
        tls,
    })
}
