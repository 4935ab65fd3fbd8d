//! The `[circuit_breaker]` section: the global brake on registrations of
//! new senders.

use crate::settings::CircuitBreakerSettings;
use crate::settings::raw::RawCircuitBreaker;
use crate::settings::validate::Problems;

pub(super) fn validate(raw: &RawCircuitBreaker, problems: &mut Problems) -> CircuitBreakerSettings {
    problems.check(
        raw.new_senders_per_minute >= 1,
        "circuit_breaker.new_senders_per_minute: must be at least 1",
    );
    CircuitBreakerSettings {
        new_senders_per_minute: raw.new_senders_per_minute,
    }
}
