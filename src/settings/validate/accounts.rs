//! The sections about customers' accounts: `[activation]` (links and the
//! purge), `[password]` (rules and argon2id cost), `[session]` and the web
//! side's `[rate_limits]`.

use crate::settings::raw::{RawActivation, RawPassword, RawRateLimits, RawSession};
use crate::settings::validate::Problems;
use crate::settings::{
    ARGON2_MIN_ITERATIONS, ARGON2_MIN_MEMORY_KIB, ActivationSettings, PasswordSettings,
    RateLimitSettings, SessionSettings,
};
use std::time::Duration;

pub(super) fn activation(raw: &RawActivation, problems: &mut Problems) -> ActivationSettings {
    problems.check(
        raw.token_ttl_hours >= 1,
        "activation.token_ttl_hours: must be at least 1",
    );
    problems.check(
        raw.pending_expiry_days >= 1,
        "activation.pending_expiry_days: must be at least 1",
    );
    problems.check(
        raw.purge_interval_minutes >= 1,
        "activation.purge_interval_minutes: must be at least 1",
    );
    problems.check(
        (1..=24 * 60).contains(&raw.reset_ttl_minutes),
        "activation.reset_ttl_minutes: must be between 1 and 1440",
    );
    problems.check(
        (1..=24 * 60).contains(&raw.sign_in_link_ttl_minutes),
        "activation.sign_in_link_ttl_minutes: must be between 1 and 1440",
    );
    ActivationSettings {
        reset_ttl: Duration::from_secs(raw.reset_ttl_minutes * 60),
        sign_in_link_ttl: Duration::from_secs(raw.sign_in_link_ttl_minutes * 60),
        token_ttl: Duration::from_secs(raw.token_ttl_hours * 3600),
        pending_expiry: Duration::from_secs(raw.pending_expiry_days * 24 * 3600),
        purge_interval: Duration::from_secs(raw.purge_interval_minutes * 60),
    }
}

pub(super) fn password(raw: &RawPassword, problems: &mut Problems) -> PasswordSettings {
    problems.check(
        raw.min_length >= 8,
        "password.min_length: must be at least 8",
    );
    problems.check(
        raw.max_length >= raw.min_length.max(64),
        "password.max_length: must be at least 64 and at least password.min_length",
    );
    problems.check(
        raw.max_concurrent_hashes >= 1,
        "password.max_concurrent_hashes: must be at least 1",
    );
    problems.check(
        raw.argon2_memory_kib >= ARGON2_MIN_MEMORY_KIB,
        "password.argon2_memory_kib: must be at least 19456 (19 MiB)",
    );
    problems.check(
        raw.argon2_iterations >= ARGON2_MIN_ITERATIONS,
        "password.argon2_iterations: must be at least 2",
    );
    problems.check(
        (1..=64).contains(&raw.argon2_parallelism),
        "password.argon2_parallelism: must be between 1 and 64",
    );
    PasswordSettings {
        min_length: raw.min_length,
        max_length: raw.max_length,
        max_concurrent_hashes: raw.max_concurrent_hashes,
        max_queued_hashes: raw.max_queued_hashes,
        argon2_memory_kib: raw.argon2_memory_kib,
        argon2_iterations: raw.argon2_iterations,
        argon2_parallelism: raw.argon2_parallelism,
    }
}

pub(super) fn session(raw: &RawSession, problems: &mut Problems) -> SessionSettings {
    problems.check(
        raw.idle_timeout_minutes >= 1,
        "session.idle_timeout_minutes: must be at least 1",
    );
    problems.check(
        raw.absolute_timeout_hours >= 1,
        "session.absolute_timeout_hours: must be at least 1",
    );
    SessionSettings {
        idle_timeout: Duration::from_secs(raw.idle_timeout_minutes * 60),
        absolute_timeout: Duration::from_secs(raw.absolute_timeout_hours * 3600),
    }
}

pub(super) fn rate_limits(raw: &RawRateLimits, problems: &mut Problems) -> RateLimitSettings {
    problems.check(
        raw.window_minutes >= 1,
        "rate_limits.window_minutes: must be at least 1",
    );
    for (key, value) in [
        ("registrations_per_ip", raw.registrations_per_ip),
        ("registrations_per_address", raw.registrations_per_address),
        ("failed_logins_per_account", raw.failed_logins_per_account),
        ("failed_logins_per_ip", raw.failed_logins_per_ip),
        ("invalid_tokens_per_ip", raw.invalid_tokens_per_ip),
        ("activations_per_ip", raw.activations_per_ip),
    ] {
        problems.check(
            value >= 1,
            &format!("rate_limits.{key}: must be at least 1"),
        );
    }
    RateLimitSettings {
        window: Duration::from_secs(raw.window_minutes * 60),
        registrations_per_ip: raw.registrations_per_ip,
        registrations_per_address: raw.registrations_per_address,
        failed_logins_per_account: raw.failed_logins_per_account,
        failed_logins_per_ip: raw.failed_logins_per_ip,
        invalid_tokens_per_ip: raw.invalid_tokens_per_ip,
        activations_per_ip: raw.activations_per_ip,
    }
}
