//! Rate limits for the web side: how many times one client IP or one address
//! did something within a sliding window, kept in memory.
//!
//! Counting in memory keeps GET and HEAD free of writes (a scanner fetching a
//! dead link adds to a counter, never to the database) and costs nothing per
//! request. A restart forgets the counts; the durable per-address reply
//! limits of `policy` still hold across restarts. The table is bounded: when
//! it is full, stale keys are dropped, and if none are stale it starts over.

use crate::metrics::Metrics;
use crate::settings::RateLimitSettings;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys kept at once (about 100 bytes each plus the events).
const MAX_KEYS: usize = 100_000;

/// What is being counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// "Create an account" and "send me a new link", per client IP ...
    RegistrationIp,
    /// ... and per address (rate key: plus-tag ignored).
    RegistrationAddress,
    /// Failed sign-ins per address (known or not) ...
    FailedLoginAccount,
    /// ... and per client IP.
    FailedLoginIp,
    /// Requests with an unknown, expired or used activation token, per IP.
    InvalidTokenIp,
    /// Activations that reached the password hash, per IP.
    ActivationIp,
}

impl Kind {
    /// The limit's stable name (its setting's), as the metrics count it.
    pub fn limit(self) -> &'static str {
        match self {
            Kind::RegistrationIp => "registrations_per_ip",
            Kind::RegistrationAddress => "registrations_per_address",
            Kind::FailedLoginAccount => "failed_logins_per_account",
            Kind::FailedLoginIp => "failed_logins_per_ip",
            Kind::InvalidTokenIp => "invalid_tokens_per_ip",
            Kind::ActivationIp => "activations_per_ip",
        }
    }
}

/// The web side's rate limits.
pub struct WebLimits {
    settings: RateLimitSettings,
    events: Mutex<HashMap<(Kind, String), VecDeque<Instant>>>,
    /// Counts every request a limit stops.
    metrics: Metrics,
}

impl WebLimits {
    pub fn new(settings: RateLimitSettings, metrics: Metrics) -> Self {
        Self {
            settings,
            events: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The window, for a `Retry-After` header and the page's wording.
    pub fn window(&self) -> Duration {
        self.settings.window
    }

    fn limit(&self, kind: Kind) -> usize {
        let limit = match kind {
            Kind::RegistrationIp => self.settings.registrations_per_ip,
            Kind::RegistrationAddress => self.settings.registrations_per_address,
            Kind::FailedLoginAccount => self.settings.failed_logins_per_account,
            Kind::FailedLoginIp => self.settings.failed_logins_per_ip,
            Kind::InvalidTokenIp => self.settings.invalid_tokens_per_ip,
            Kind::ActivationIp => self.settings.activations_per_ip,
        };
        usize::try_from(limit).unwrap_or(usize::MAX)
    }

    /// True when `key` has used up its allowance of `kind` in the window
    /// (the caller then refuses the request, so this counts a hit).
    pub fn exhausted(&self, kind: Kind, key: &str) -> bool {
        let now = Instant::now();
        let window = self.settings.window;
        let mut events = self.lock();
        let exhausted = events
            .get_mut(&(kind, key.to_owned()))
            .is_some_and(|times| {
                prune(times, now, window);
                times.len() >= self.limit(kind)
            });
        if exhausted {
            self.metrics.rate_limit_hit(kind.limit());
        }
        exhausted
    }

    /// Counts one event of `kind` for `key`.
    pub fn record(&self, kind: Kind, key: &str) {
        let now = Instant::now();
        let window = self.settings.window;
        let limit = self.limit(kind);
        let mut events = self.lock();
        if events.len() >= MAX_KEYS && !events.contains_key(&(kind, key.to_owned())) {
            events.retain(|_, times| {
                prune(times, now, window);
                !times.is_empty()
            });
            if events.len() >= MAX_KEYS {
                tracing::warn!(keys = events.len(), "rate-limit table full; starting over");
                events.clear();
            }
        }
        let times = events.entry((kind, key.to_owned())).or_default();
        prune(times, now, window);
        times.push_back(now);
        // Only the newest `limit` events matter.
        while times.len() > limit {
            times.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Kind, String), VecDeque<Instant>>> {
        self.events
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|&at| now.duration_since(at) >= window)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RateLimitSettings {
        RateLimitSettings {
            window: Duration::from_secs(60),
            registrations_per_ip: 2,
            registrations_per_address: 1,
            failed_logins_per_account: 3,
            failed_logins_per_ip: 5,
            invalid_tokens_per_ip: 5,
            activations_per_ip: 5,
        }
    }

    #[test]
    fn a_key_is_limited_after_its_allowance_and_others_are_not() {
        let limits = WebLimits::new(settings(), Metrics::new());
        assert!(!limits.exhausted(Kind::RegistrationIp, "192.0.2.1"));
        limits.record(Kind::RegistrationIp, "192.0.2.1");
        assert!(!limits.exhausted(Kind::RegistrationIp, "192.0.2.1"));
        limits.record(Kind::RegistrationIp, "192.0.2.1");
        assert!(limits.exhausted(Kind::RegistrationIp, "192.0.2.1"));
        assert!(!limits.exhausted(Kind::RegistrationIp, "192.0.2.2"));
        assert!(!limits.exhausted(Kind::FailedLoginIp, "192.0.2.1"));
    }

    #[test]
    fn events_older_than_the_window_no_longer_count() {
        let limits = WebLimits::new(
            RateLimitSettings {
                window: Duration::ZERO,
                ..settings()
            },
            Metrics::new(),
        );
        limits.record(Kind::RegistrationAddress, "a@example.com");
        assert!(!limits.exhausted(Kind::RegistrationAddress, "a@example.com"));
    }
}
