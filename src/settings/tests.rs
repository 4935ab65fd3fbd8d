//! Tests of loading and validating settings.

use super::*;
use crate::policy::{Access, LimitAction, SenderAuthMode};

#[test]
fn embedded_defaults_are_valid() {
    let settings = load(None).expect("defaults load");
    assert_eq!(settings.smtp.listen.to_string(), "127.0.0.1:2525");
    assert_eq!(settings.http.listen.to_string(), "127.0.0.1:8080");
    assert!(settings.outbound.relay.is_none());
    assert_eq!(settings.services.len(), 1);
    assert_eq!(settings.services[0].policy.access, Access::Anyone);
}

#[test]
fn every_bad_key_is_reported_at_once() {
    let mut raw = load_raw(None).expect("defaults load");
    raw.smtp.listen = "nowhere".into();
    raw.http.public_url = "ftp://x".into();
    raw.password.min_length = 4;
    raw.password.argon2_memory_kib = 4096;
    raw.policy.self_registration = Some("everybody".into());
    let Err(SettingsError::Invalid(errors)) = raw.validate() else {
        panic!("invalid settings were accepted");
    };
    let text = errors.join("\n");
    for key in [
        "smtp.listen",
        "http.public_url",
        "password.min_length",
        "password.argon2_memory_kib",
        "self_registration",
    ] {
        assert!(text.contains(key), "{key} missing from {text}");
    }
}

#[test]
fn smtp_limits_default_to_sane_values_and_tls_is_off() {
    let smtp = load(None).expect("defaults load").smtp;
    assert_eq!(smtp.null_sender, NullSender::Accept);
    assert!(smtp.tls.is_none());
    assert!(smtp.max_header_bytes <= smtp.max_message_bytes);
    assert!(smtp.session_timeout >= smtp.idle_timeout);
}

#[test]
fn a_tls_certificate_without_a_key_is_refused() {
    let mut raw = load_raw(None).expect("defaults load");
    raw.smtp.tls_certificate = "cert.pem".into();
    raw.smtp.null_sender = "bounce".into();
    let Err(SettingsError::Invalid(errors)) = raw.validate() else {
        panic!("invalid settings were accepted");
    };
    let text = errors.join("\n");
    assert!(text.contains("smtp.tls_key"), "{text}");
    assert!(text.contains("smtp.null_sender"), "{text}");
}

#[test]
fn sender_auth_modes_are_validated() {
    let mut raw = load_raw(None).expect("defaults load");
    raw.services[0].policy.sender_auth = Some("authentication-results".into());
    let Err(SettingsError::Invalid(errors)) = raw.clone().validate() else {
        panic!("authentication-results without an authserv-id was accepted");
    };
    let text = errors.join("\n");
    assert!(text.contains("authserv_id"), "{text}");
    assert!(text.contains("trusted_relays"), "{text}");
    raw.services[0].policy.authserv_id = Some("mx.helpdesk.example".into());
    raw.services[0].policy.trusted_relays = Some(vec!["192.0.2.0/24".into()]);
    let settings = raw.clone().validate().expect("valid");
    assert!(matches!(
        settings.services[0].policy.sender_auth,
        SenderAuthMode::AuthenticationResults(_)
    ));
    raw.services[0].policy.sender_auth = Some("spf".into());
    assert!(raw.validate().is_err());
}

#[test]
fn trusted_relays_default_to_the_smtp_relays() {
    let mut raw = load_raw(None).expect("defaults load");
    raw.services[0].policy.sender_auth = Some("authentication-results".into());
    raw.services[0].policy.authserv_id = Some("mx.helpdesk.example".into());
    raw.smtp.relays = vec!["192.0.2.25".into(), "2001:db8::/64".into()];

    let settings = raw.clone().validate().expect("valid");

    assert!(settings.smtp.is_relay("192.0.2.25".parse().expect("ip")));
    assert!(settings.smtp.is_relay("2001:db8::9".parse().expect("ip")));
    assert!(!settings.smtp.is_relay("192.0.2.26".parse().expect("ip")));
    let SenderAuthMode::AuthenticationResults(trusted) = &settings.services[0].policy.sender_auth
    else {
        panic!("authentication-results expected");
    };
    assert_eq!(trusted.trusted_relays, settings.smtp.relays);
    raw.services[0].policy.trusted_relays = Some(vec!["198.51.100.1".into()]);
    let own = raw.clone().validate().expect("valid");
    let SenderAuthMode::AuthenticationResults(trusted) = &own.services[0].policy.sender_auth else {
        panic!("authentication-results expected");
    };
    assert_eq!(trusted.trusted_relays.len(), 1, "a policy's own list wins");
    raw.smtp.relays = vec!["mx.example.com".into()];
    let Err(SettingsError::Invalid(errors)) = raw.validate() else {
        panic!("a relay that is no address was accepted");
    };
    assert!(
        errors.iter().any(|e| e.starts_with("smtp.relays:")),
        "{errors:?}"
    );
}

#[test]
fn the_demo_service_does_not_authenticate_senders() {
    let settings = load(None).expect("defaults load");
    assert_eq!(settings.services[0].policy.sender_auth, SenderAuthMode::Off);
    assert_eq!(
        settings.services[0].policy.limits.action,
        LimitAction::Refuse
    );
}

#[test]
fn a_service_overrides_the_global_policy() {
    let mut raw = load_raw(None).expect("defaults load");
    raw.services[0].policy.email = Some(false);
    let settings = raw.validate().expect("valid");
    assert!(!settings.services[0].policy.email);
    assert!(settings.services[0].policy.portal);
}

#[test]
fn a_public_url_with_a_path_is_refused() {
    let mut raw = load_raw(None).expect("defaults load");
    raw.http.public_url = "https://help.example/portal".into();
    let Err(SettingsError::Invalid(errors)) = raw.clone().validate() else {
        panic!("a public URL with a path was accepted");
    };
    assert!(
        errors
            .join("\n")
            .contains("http.public_url: must be the bare origin")
    );
    raw.http.public_url = "https://help.example/".into();
    assert!(raw.validate().is_ok());
}

#[test]
fn the_log_is_text_by_default_and_a_format_outside_the_list_is_reported() {
    let settings = load(None).expect("defaults load");
    assert_eq!(settings.log.format, LogFormat::Text);
    assert_eq!(
        settings.outbound.max_queue_age,
        Duration::from_secs(3600),
        "/healthz tolerates an hour of relay trouble by default"
    );
    let mut raw = load_raw(None).expect("defaults load");
    raw.log.format = "json".into();
    assert_eq!(
        raw.clone().validate().expect("valid").log.format,
        LogFormat::Json
    );
    raw.log.format = "xml".into();
    let Err(SettingsError::Invalid(errors)) = raw.validate() else {
        panic!("an unknown log format was accepted");
    };
    assert_eq!(errors, ["log.format: \"xml\" is not one of text, json"]);
}

#[test]
fn stress_mode_begins_at_three_quarters_of_the_sessions_with_ten_second_timeouts() {
    let smtp = load(None).expect("defaults load").smtp;
    assert_eq!(smtp.stress_sessions_percent, 75);
    assert_eq!(smtp.stress_sessions(), 75, "of 100 sessions");
    assert_eq!(smtp.stress_idle_timeout.as_secs(), 10);
    assert_eq!(smtp.stress_command_timeout.as_secs(), 10);
    let mut raw = load_raw(None).expect("defaults load");
    raw.smtp.stress_sessions_percent = 0;
    raw.smtp.stress_idle_timeout_secs = raw.smtp.idle_timeout_secs + 1;
    raw.smtp.stress_command_timeout_secs = 0;
    let Err(SettingsError::Invalid(errors)) = raw.validate() else {
        panic!("invalid settings were accepted");
    };
    let text = errors.join("\n");
    for key in [
        "smtp.stress_sessions_percent",
        "smtp.stress_idle_timeout_secs",
        "smtp.stress_command_timeout_secs",
    ] {
        assert!(text.contains(key), "{key} missing from {text}");
    }
    let mut raw = load_raw(None).expect("defaults load");
    raw.smtp.stress_sessions_percent = 101;
    assert!(raw.validate().is_err(), "more than all sessions");
}

#[test]
fn stress_begins_at_the_share_of_sessions_rounded_up() {
    let mut smtp = load(None).expect("defaults load").smtp;
    for (max_sessions, percent, threshold) in [
        (100, 75, 75),
        (8, 75, 6),
        (3, 50, 2),
        (1, 1, 1),
        (20, 100, 20),
    ] {
        smtp.max_sessions = max_sessions;
        smtp.stress_sessions_percent = percent;
        assert_eq!(
            smtp.stress_sessions(),
            threshold,
            "{percent}% of {max_sessions} sessions"
        );
    }
}

#[test]
fn parallel_deliveries_default_to_eight_and_stay_between_one_and_sixty_four() {
    assert_eq!(
        load(None)
            .expect("defaults load")
            .outbound
            .parallel_deliveries,
        8
    );
    for (parallel, valid) in [(0, false), (1, true), (64, true), (65, false)] {
        let mut raw = load_raw(None).expect("defaults load");
        raw.outbound.parallel_deliveries = parallel;
        match raw.validate() {
            Ok(settings) => {
                assert!(valid, "{parallel} was accepted");
                assert_eq!(settings.outbound.parallel_deliveries, parallel);
            }
            Err(SettingsError::Invalid(errors)) => {
                assert!(!valid, "{parallel} was refused: {errors:?}");
                assert_eq!(
                    errors,
                    ["outbound.parallel_deliveries: must be between 1 and 64"]
                );
            }
            Err(other) => panic!("{parallel}: {other}"),
        }
    }
}
