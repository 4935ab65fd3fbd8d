//! Validation: every key of `RawSettings` checked, all problems reported at
//! once, and the result converted into typed settings.

use super::*;
use crate::domain::IpRange;
use crate::policy::{
    Access, Company, Denylist, LimitAction, RefusalMode, ReplyLimits, SenderAuthMode,
    TrustedResults,
};

impl RawSettings {
    /// Checks every key and converts to typed settings.
    ///
    /// # Errors
    /// `SettingsError::Invalid` naming every bad key.
    pub fn validate(self) -> Result<Settings, SettingsError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, message: &str| {
            if !ok {
                errors.push(message.to_owned());
            }
        };
        check(
            self.smtp.max_message_bytes >= 1024,
            "smtp.max_message_bytes: must be at least 1024",
        );
        check(
            !self.smtp.hostname.trim().is_empty(),
            "smtp.hostname: must not be empty",
        );
        check(
            self.store.max_batch >= 1,
            "store.max_batch: must be at least 1",
        );
        check(
            self.store.raw_retention_days >= 1,
            "store.raw_retention_days: must be at least 1",
        );
        check(
            self.outbound.max_attempts >= 1,
            "outbound.max_attempts: must be at least 1",
        );
        check(
            self.outbound.send_timeout_secs >= 1,
            "outbound.send_timeout_secs: must be at least 1",
        );
        check(
            self.outbound.poll_secs >= 1,
            "outbound.poll_secs: must be at least 1",
        );
        check(
            self.activation.token_ttl_hours >= 1,
            "activation.token_ttl_hours: must be at least 1",
        );
        check(
            self.password.min_length >= 8,
            "password.min_length: must be at least 8",
        );
        check(
            self.password.max_length >= self.password.min_length.max(64),
            "password.max_length: must be at least 64 and at least password.min_length",
        );
        check(
            self.password.max_concurrent_hashes >= 1,
            "password.max_concurrent_hashes: must be at least 1",
        );
        check(
            self.password.argon2_memory_kib >= ARGON2_MIN_MEMORY_KIB,
            "password.argon2_memory_kib: must be at least 19456 (19 MiB)",
        );
        check(
            self.password.argon2_iterations >= ARGON2_MIN_ITERATIONS,
            "password.argon2_iterations: must be at least 2",
        );
        check(
            (1..=64).contains(&self.password.argon2_parallelism),
            "password.argon2_parallelism: must be between 1 and 64",
        );
        check(
            self.activation.pending_expiry_days >= 1,
            "activation.pending_expiry_days: must be at least 1",
        );
        check(
            self.activation.purge_interval_minutes >= 1,
            "activation.purge_interval_minutes: must be at least 1",
        );
        check(
            self.rate_limits.window_minutes >= 1,
            "rate_limits.window_minutes: must be at least 1",
        );
        for (key, value) in [
            (
                "registrations_per_ip",
                self.rate_limits.registrations_per_ip,
            ),
            (
                "registrations_per_address",
                self.rate_limits.registrations_per_address,
            ),
            (
                "failed_logins_per_account",
                self.rate_limits.failed_logins_per_account,
            ),
            (
                "failed_logins_per_ip",
                self.rate_limits.failed_logins_per_ip,
            ),
            (
                "invalid_tokens_per_ip",
                self.rate_limits.invalid_tokens_per_ip,
            ),
            ("activations_per_ip", self.rate_limits.activations_per_ip),
        ] {
            check(
                value >= 1,
                &format!("rate_limits.{key}: must be at least 1"),
            );
        }
        check(
            self.session.idle_timeout_minutes >= 1,
            "session.idle_timeout_minutes: must be at least 1",
        );
        check(
            self.session.absolute_timeout_hours >= 1,
            "session.absolute_timeout_hours: must be at least 1",
        );
        check(
            !self.services.is_empty(),
            "services: at least one service is needed",
        );

        validate_smtp(&self.smtp, &mut errors);
        let null_sender = match self.smtp.null_sender.as_str() {
            "accept" => Some(NullSender::Accept),
            "refuse" => Some(NullSender::Refuse),
            other => {
                errors.push(format!(
                    "smtp.null_sender: {other:?} is not one of accept, refuse"
                ));
                None
            }
        };
        let smtp_listen = parse_or(
            &mut errors,
            "smtp.listen",
            self.smtp.listen.parse::<SocketAddr>(),
        );
        let http_listen = parse_or(
            &mut errors,
            "http.listen",
            self.http.listen.parse::<SocketAddr>(),
        );
        let public_url = parse_or(
            &mut errors,
            "http.public_url",
            Url::parse(&self.http.public_url),
        )
        .filter(|url| {
            let ok = matches!(url.scheme(), "http" | "https") && url.host().is_some();
            if !ok {
                errors.push("http.public_url: must be an http or https URL with a host".into());
            }
            // Pages link to /login, /static/… at the root, and mail links are
            // joined onto this URL: a path prefix would give broken links.
            let at_root = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
            if ok && !at_root {
                errors.push(
                    "http.public_url: must be the bare origin (like https://portal.example.com); \
                     registrar serves its pages at the root, so give it its own host name"
                        .into(),
                );
            }
            ok && at_root
        });
        let relay = if self.outbound.relay.trim().is_empty() {
            Some(None)
        } else {
            parse_or(
                &mut errors,
                "outbound.relay",
                Url::parse(&self.outbound.relay),
            )
            .filter(|url| {
                let ok = matches!(url.scheme(), "smtp" | "smtps") && url.host().is_some();
                if !ok {
                    errors.push(
                        "outbound.relay: must be smtp://host:port or smtps://host:port".into(),
                    );
                }
                ok
            })
            .map(Some)
        };
        let from_address = parse_or(
            &mut errors,
            "outbound.from_address",
            EmailAddress::parse(&self.outbound.from_address),
        );
        let envelope_from = if self.outbound.envelope_from.trim().is_empty() {
            Some(None)
        } else {
            parse_or(
                &mut errors,
                "outbound.envelope_from",
                EmailAddress::parse(&self.outbound.envelope_from),
            )
            .map(Some)
        };

        let mut nameservers = Vec::new();
        for server in &self.sender_auth.nameservers {
            match server.trim().parse::<std::net::IpAddr>() {
                Ok(ip) => nameservers.push(ip),
                Err(_) => errors.push(format!(
                    "sender_auth.nameservers: {server:?} is not an IP address"
                )),
            }
        }
        if self.sender_auth.dns_timeout_secs == 0 {
            errors.push("sender_auth.dns_timeout_secs: must be at least 1".into());
        }
        let sender_auth = SenderAuthSettings {
            dns: DnsSource::Resolver {
                nameservers,
                timeout: Duration::from_secs(self.sender_auth.dns_timeout_secs),
            },
        };

        let mut services = Vec::new();
        for (index, raw) in self.services.iter().enumerate() {
            let key = format!("services[{index}]");
            if raw.id.is_empty()
                || !raw
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                errors.push(format!("{key}.id: must be letters, digits, '-' or '_'"));
            }
            if self.services[..index]
                .iter()
                .any(|other| other.id == raw.id)
            {
                errors.push(format!("{key}.id: {:?} is used twice", raw.id));
            }
            if raw.support_addresses.is_empty() {
                errors.push(format!(
                    "{key}.support_addresses: at least one address is needed"
                ));
            }
            let mut addresses = Vec::new();
            for address in &raw.support_addresses {
                match EmailAddress::parse(address) {
                    Ok(address) => addresses.push(address),
                    Err(e) => errors.push(format!("{key}.support_addresses: {address:?}: {e}")),
                }
            }
            let policy = resolve_policy(
                &self.policy,
                &raw.policy,
                &format!("{key}.policy"),
                &mut errors,
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
        let mut seen = std::collections::HashSet::new();
        for address in services.iter().flat_map(|s| &s.support_addresses) {
            if !seen.insert(address.identity_key()) {
                errors.push(format!(
                    "services: support address {address} belongs to two services"
                ));
            }
        }

        match (
            smtp_listen,
            http_listen,
            public_url,
            relay,
            from_address,
            envelope_from,
            null_sender,
        ) {
            (
                Some(smtp_listen),
                Some(http_listen),
                Some(public_url),
                Some(relay),
                Some(from_address),
                Some(envelope_from),
                Some(null_sender),
            ) if errors.is_empty() => Ok(Settings {
                smtp: smtp_settings(self.smtp, smtp_listen, null_sender),
                http: HttpSettings {
                    listen: http_listen,
                    public_url,
                    max_body_bytes: self.http.max_body_bytes,
                },
                store: StoreSettings {
                    path: self.store.path,
                    max_batch: self.store.max_batch,
                    raw_retention: Duration::from_secs(self.store.raw_retention_days * 24 * 3600),
                },
                outbound: OutboundSettings {
                    relay,
                    username: self.outbound.username,
                    password: SecretString::from(self.outbound.password),
                    folder: self.outbound.folder,
                    from_address,
                    envelope_from,
                    send_timeout: Duration::from_secs(self.outbound.send_timeout_secs),
                    retry_base: Duration::from_secs(self.outbound.retry_base_secs),
                    retry_max: Duration::from_secs(
                        self.outbound
                            .retry_max_secs
                            .max(self.outbound.retry_base_secs),
                    ),
                    max_attempts: self.outbound.max_attempts,
                    poll_interval: Duration::from_secs(self.outbound.poll_secs),
                },
                activation: ActivationSettings {
                    token_ttl: Duration::from_secs(self.activation.token_ttl_hours * 3600),
                    pending_expiry: Duration::from_secs(
                        self.activation.pending_expiry_days * 24 * 3600,
                    ),
                    purge_interval: Duration::from_secs(
                        self.activation.purge_interval_minutes * 60,
                    ),
                },
                password: PasswordSettings {
                    min_length: self.password.min_length,
                    max_length: self.password.max_length,
                    max_concurrent_hashes: self.password.max_concurrent_hashes,
                    argon2_memory_kib: self.password.argon2_memory_kib,
                    argon2_iterations: self.password.argon2_iterations,
                    argon2_parallelism: self.password.argon2_parallelism,
                },
                rate_limits: RateLimitSettings {
                    window: Duration::from_secs(self.rate_limits.window_minutes * 60),
                    registrations_per_ip: self.rate_limits.registrations_per_ip,
                    registrations_per_address: self.rate_limits.registrations_per_address,
                    failed_logins_per_account: self.rate_limits.failed_logins_per_account,
                    failed_logins_per_ip: self.rate_limits.failed_logins_per_ip,
                    invalid_tokens_per_ip: self.rate_limits.invalid_tokens_per_ip,
                    activations_per_ip: self.rate_limits.activations_per_ip,
                },
                session: SessionSettings {
                    idle_timeout: Duration::from_secs(self.session.idle_timeout_minutes * 60),
                    absolute_timeout: Duration::from_secs(
                        self.session.absolute_timeout_hours * 3600,
                    ),
                },
                sender_auth,
                services,
            }),
            _ => Err(SettingsError::Invalid(errors)),
        }
    }
}

/// Checks the SMTP limits; every one must leave a usable listener.
fn validate_smtp(smtp: &RawSmtp, errors: &mut Vec<String>) {
    let mut check = |ok: bool, message: &str| {
        if !ok {
            errors.push(message.to_owned());
        }
    };
    check(
        smtp.max_header_bytes >= 1024 && smtp.max_header_bytes <= smtp.max_message_bytes,
        "smtp.max_header_bytes: must be at least 1024 and at most smtp.max_message_bytes",
    );
    check(
        smtp.max_command_line_bytes >= 512,
        "smtp.max_command_line_bytes: must be at least 512 (RFC 5321)",
    );
    check(
        smtp.max_recipients >= 1,
        "smtp.max_recipients: must be at least 1",
    );
    check(
        smtp.max_sessions >= 1,
        "smtp.max_sessions: must be at least 1",
    );
    check(
        smtp.max_sessions_per_ip >= 1,
        "smtp.max_sessions_per_ip: must be at least 1",
    );
    check(
        smtp.max_connections_per_ip_per_minute >= 1,
        "smtp.max_connections_per_ip_per_minute: must be at least 1",
    );
    check(
        smtp.max_messages_per_session >= 1,
        "smtp.max_messages_per_session: must be at least 1",
    );
    check(
        smtp.max_errors_per_session >= 1,
        "smtp.max_errors_per_session: must be at least 1",
    );
    check(
        smtp.idle_timeout_secs >= 1,
        "smtp.idle_timeout_secs: must be at least 1",
    );
    check(
        smtp.command_timeout_secs >= 1,
        "smtp.command_timeout_secs: must be at least 1",
    );
    check(
        smtp.session_timeout_secs >= smtp.idle_timeout_secs.max(smtp.command_timeout_secs),
        "smtp.session_timeout_secs: must be at least smtp.idle_timeout_secs and smtp.command_timeout_secs",
    );
    check(
        smtp.min_data_rate_bytes_per_sec >= 1,
        "smtp.min_data_rate_bytes_per_sec: must be at least 1",
    );
    check(
        smtp.greeting_delay_ms < smtp.idle_timeout_secs.saturating_mul(1000),
        "smtp.greeting_delay_ms: must be shorter than smtp.idle_timeout_secs",
    );
    check(
        smtp.tls_certificate.as_os_str().is_empty() == smtp.tls_key.as_os_str().is_empty(),
        "smtp.tls_certificate, smtp.tls_key: set both (STARTTLS on) or neither (off)",
    );
}

/// Converts validated raw SMTP keys into typed settings.
fn smtp_settings(raw: RawSmtp, listen: SocketAddr, null_sender: NullSender) -> SmtpSettings {
    let tls = (!raw.tls_certificate.as_os_str().is_empty()).then_some(TlsFiles {
        certificate: raw.tls_certificate,
        key: raw.tls_key,
    });
    SmtpSettings {
        listen,
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
        null_sender,
        tls,
    }
}

fn parse_or<T, E: std::fmt::Display>(
    errors: &mut Vec<String>,
    key: &str,
    result: Result<T, E>,
) -> Option<T> {
    result.map_err(|e| errors.push(format!("{key}: {e}"))).ok()
}

/// Merges a service's overrides over the global policy and validates it.
fn resolve_policy(
    global: &RawPolicy,
    own: &RawPolicy,
    key: &str,
    errors: &mut Vec<String>,
) -> Option<ServicePolicy> {
    let before = errors.len();
    macro_rules! pick {
        ($field:ident) => {
            match own.$field.clone().or_else(|| global.$field.clone()) {
                Some(value) => Some(value),
                None => {
                    errors.push(format!("{key}.{}: missing", stringify!($field)));
                    None
                }
            }
        };
    }
    let mode = pick!(self_registration);
    let email = pick!(email);
    let portal = pick!(portal);
    let denylist = pick!(denylist);
    let refusal = pick!(refusal);
    let notify_active = pick!(notify_active);
    let interval = pick!(reply_interval_minutes);
    let per_day = pick!(max_replies_per_day);
    let companies = pick!(companies);
    let subjects = pick!(auto_reply_subjects);
    let max_received = pick!(max_received);
    let service_per_day = pick!(service_replies_per_day);
    let action = pick!(rate_limit_action);
    let auth_mode = pick!(sender_auth);
    let authserv_id = own
        .authserv_id
        .clone()
        .or_else(|| global.authserv_id.clone());
    let trusted_relays = own
        .trusted_relays
        .clone()
        .or_else(|| global.trusted_relays.clone())
        .unwrap_or_default();

    let companies = companies.map(|companies| {
        companies
            .into_iter()
            .map(|company| {
                let domains = company
                    .domains
                    .iter()
                    .filter_map(|domain| match EmailAddress::parse(&format!("x@{domain}")) {
                        Ok(probe) => Some(probe.domain().to_owned()),
                        Err(_) => {
                            errors.push(format!("{key}.companies: {domain:?} is not a domain"));
                            None
                        }
                    })
                    .collect();
                Company {
                    name: company.name,
                    domains,
                }
            })
            .collect::<Vec<_>>()
    });
    let access = match (mode.as_deref(), companies) {
        (Some("anyone"), _) => Some(Access::Anyone),
        (Some("no-one"), _) => Some(Access::NoOne),
        (Some("companies"), Some(companies)) => {
            if companies.is_empty() {
                errors.push(format!(
                    "{key}.companies: \"companies\" access needs at least one company"
                ));
            }
            Some(Access::Companies(companies))
        }
        (Some(other), _) if !matches!(other, "companies") => {
            errors.push(format!(
                "{key}.self_registration: {other:?} is not one of anyone, companies, no-one"
            ));
            None
        }
        _ => None,
    };
    let denylist = denylist.and_then(|entries| {
        Denylist::parse(entries.iter().map(String::as_str))
            .map_err(|e| errors.push(format!("{key}.denylist: {e}")))
            .ok()
    });
    let refusal = match refusal.as_deref() {
        Some("reject") => Some(RefusalMode::Reject),
        Some("drop") => Some(RefusalMode::Drop),
        Some(other) => {
            errors.push(format!(
                "{key}.refusal: {other:?} is not one of reject, drop"
            ));
            None
        }
        None => None,
    };
    let action = match action.as_deref() {
        Some("refuse") => Some(LimitAction::Refuse),
        Some("suppress") => Some(LimitAction::Suppress),
        Some(other) => {
            errors.push(format!(
                "{key}.rate_limit_action: {other:?} is not one of refuse, suppress"
            ));
            None
        }
        None => None,
    };
    let sender_auth = match auth_mode.as_deref() {
        Some("off") => Some(SenderAuthMode::Off),
        Some("dmarc") => Some(SenderAuthMode::Dmarc),
        Some("authentication-results") => {
            let authserv_id = authserv_id
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty());
            if authserv_id.is_none() {
                errors.push(format!(
                    "{key}.authserv_id: \"authentication-results\" needs the authserv-id of your border MTA"
                ));
            }
            let mut relays = Vec::new();
            for relay in &trusted_relays {
                match IpRange::parse(relay) {
                    Ok(range) => relays.push(range),
                    Err(e) => errors.push(format!("{key}.trusted_relays: {e}")),
                }
            }
            if trusted_relays.is_empty() {
                errors.push(format!(
                    "{key}.trusted_relays: \"authentication-results\" needs at least one trusted relay address"
                ));
            }
            authserv_id.map(|authserv_id| {
                SenderAuthMode::AuthenticationResults(TrustedResults {
                    authserv_id,
                    trusted_relays: relays,
                })
            })
        }
        Some(other) => {
            errors.push(format!(
                "{key}.sender_auth: {other:?} is not one of off, authentication-results, dmarc"
            ));
            None
        }
        None => None,
    };
    if interval.is_some_and(|minutes| minutes < 0) {
        errors.push(format!(
            "{key}.reply_interval_minutes: must not be negative"
        ));
    }
    if errors.len() > before {
        return None;
    }
    Some(ServicePolicy {
        access: access?,
        email: email?,
        portal: portal?,
        denylist: denylist?,
        refusal: refusal?,
        notify_active: notify_active?,
        limits: ReplyLimits {
            min_interval_secs: interval? * 60,
            max_per_day: per_day?,
            service_per_day: service_per_day?,
            action: action?,
        },
        auto_reply_subjects: subjects?.iter().map(|s| s.trim().to_lowercase()).collect(),
        max_received: max_received?,
        sender_auth: sender_auth?,
    })
}
