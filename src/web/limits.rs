//! Rate limits for the web side: how many times one client network, one
//! address, or one client trying one account did something within a sliding
//! window, kept in memory.
//!
//! Counting in memory keeps GET and HEAD free of writes (a scanner fetching a
//! dead link adds to a counter, never to the database) and costs nothing per
//! request. A restart forgets the counts; the durable per-address reply
//! limits of `policy` still hold across restarts.
//!
//! Keys are fixed-size: a client network, or a SHA-256 prefix of what the
//! visitor typed, so a 16 KiB "address" costs what a short one does. The
//! table is bounded: when it is full, stale keys go first and then the keys
//! idle longest, never the whole table, so flooding it with fresh keys cannot
//! wipe a victim's recent count.
//!
//! A limit on something that is only known afterwards (a wrong password) is
//! taken as a `Reservation` before the work: concurrent attempts each hold
//! one place, so a burst gets no more tries than the limit, and a success
//! gives its place back.

use crate::domain::ClientNetwork;
use crate::metrics::Metrics;
use crate::settings::RateLimitSettings;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys kept at once (about 100 bytes each plus the events).
const MAX_KEYS: usize = 100_000;

/// What is being counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// "Create an account" and "send me a new link", per client network ...
    RegistrationClient,
    /// ... and per address (rate key: plus-tag ignored).
    RegistrationAddress,
    /// Failed sign-ins per account from one client network ...
    FailedLoginClientAccount,
    /// ... and per client network.
    FailedLoginClient,
    /// Requests with an unknown, expired or used link, per client network.
    InvalidTokenClient,
    /// Activations that reached the password hash, per client network.
    ActivationClient,
}

impl Kind {
    /// The limit's stable name (its setting's), as the metrics count it.
    pub fn limit(self) -> &'static str {
        match self {
            Kind::RegistrationClient => "registrations_per_ip",
            Kind::RegistrationAddress => "registrations_per_address",
            Kind::FailedLoginClientAccount => "failed_logins_per_account",
            Kind::FailedLoginClient => "failed_logins_per_ip",
            Kind::InvalidTokenClient => "invalid_tokens_per_ip",
            Kind::ActivationClient => "activations_per_ip",
        }
    }
}

/// What a count is kept for: a client network, or a digest of text (an
/// address, or a client network with the account it tried).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LimitKey([u8; 16]);

impl LimitKey {
    pub fn client(client: ClientNetwork) -> Self {
        Self(client.to_bytes())
    }

    /// An address or account as typed: only a digest is kept.
    pub fn text(text: &str) -> Self {
        Self::digest(&[text.as_bytes()])
    }

    /// One client network trying one account.
    pub fn client_account(client: ClientNetwork, account: &str) -> Self {
        Self::digest(&[&client.to_bytes(), account.as_bytes()])
    }

    fn digest(parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
            hasher.update(part);
        }
        let digest = hasher.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        Self(key)
    }
}

type Table = HashMap<(Kind, LimitKey), VecDeque<Instant>>;

/// The web side's rate limits.
pub struct WebLimits {
    settings: RateLimitSettings,
    events: Mutex<Table>,
    /// Counts every request a limit stops.
    metrics: Metrics,
}

/// Places taken under one or more limits before the work they limit; kept
/// when dropped (the attempt counts), given back with `refund`.
pub struct Reservation<'a> {
    limits: &'a WebLimits,
    keys: Vec<(Kind, LimitKey)>,
    at: Instant,
}

impl Reservation<'_> {
    /// Gives the places back: the attempt turned out not to count (a
    /// successful sign-in).
    pub fn refund(self) {
        let mut events = self.limits.lock();
        for key in &self.keys {
            if let Some(times) = events.get_mut(key)
                && let Some(at) = times.iter().rposition(|&t| t == self.at)
            {
                times.remove(at);
            }
        }
    }
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
            Kind::RegistrationClient => self.settings.registrations_per_ip,
            Kind::RegistrationAddress => self.settings.registrations_per_address,
            Kind::FailedLoginClientAccount => self.settings.failed_logins_per_account,
            Kind::FailedLoginClient => self.settings.failed_logins_per_ip,
            Kind::InvalidTokenClient => self.settings.invalid_tokens_per_ip,
            Kind::ActivationClient => self.settings.activations_per_ip,
        };
        usize::try_from(limit).unwrap_or(usize::MAX)
    }

    /// True when `key` has used up its allowance of `kind` in the window
    /// (the caller then refuses the request, so this counts a hit).
    pub fn exhausted(&self, kind: Kind, key: LimitKey) -> bool {
        let now = Instant::now();
        let mut events = self.lock();
        let exhausted = self.exhausted_in(&mut events, kind, key, now);
        if exhausted {
            self.metrics.rate_limit_hit(kind.limit());
        }
        exhausted
    }

    /// Counts one event of `kind` for `key`.
    pub fn record(&self, kind: Kind, key: LimitKey) {
        let now = Instant::now();
        let mut events = self.lock();
        self.record_in(&mut events, kind, key, now);
    }

    /// Takes one place under every limit in `keys` at once, or none when any
    /// of them is used up: checking and counting in one step, so concurrent
    /// requests cannot all pass the check before any of them is counted.
    pub fn reserve(&self, keys: &[(Kind, LimitKey)]) -> Option<Reservation<'_>> {
        let now = Instant::now();
        let mut events = self.lock();
        if let Some(&(kind, _)) = keys
            .iter()
            .find(|&&(kind, key)| self.exhausted_in(&mut events, kind, key, now))
        {
            self.metrics.rate_limit_hit(kind.limit());
            return None;
        }
        for &(kind, key) in keys {
            self.record_in(&mut events, kind, key, now);
        }
        Some(Reservation {
            limits: self,
            keys: keys.to_vec(),
            at: now,
        })
    }

    fn exhausted_in(&self, events: &mut Table, kind: Kind, key: LimitKey, now: Instant) -> bool {
        let window = self.settings.window;
        events.get_mut(&(kind, key)).is_some_and(|times| {
            prune(times, now, window);
            times.len() >= self.limit(kind)
        })
    }

    fn record_in(&self, events: &mut Table, kind: Kind, key: LimitKey, now: Instant) {
        let window = self.settings.window;
        let limit = self.limit(kind);
        if events.len() >= MAX_KEYS && !events.contains_key(&(kind, key)) {
            make_room(events, now, window);
        }
        let times = events.entry((kind, key)).or_default();
        prune(times, now, window);
        times.push_back(now);
        // Only the newest `limit` events matter.
        while times.len() > limit {
            times.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.events
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Frees places in a full table: stale keys first; if that is not enough,
/// the tenth of the keys idle longest (their newest event is the oldest).
/// Done once per tenth of the table, so its cost spreads over many inserts.
fn make_room(events: &mut Table, now: Instant, window: Duration) {
    events.retain(|_, times| {
        prune(times, now, window);
        !times.is_empty()
    });
    if events.len() < MAX_KEYS {
        return;
    }
    let mut newest: Vec<Instant> = events
        .values()
        .filter_map(|times| times.back().copied())
        .collect();
    let cut = newest.len() / 10;
    let (_, &mut oldest_kept, _) = newest.select_nth_unstable(cut);
    tracing::warn!(
        keys = events.len(),
        "rate-limit table full; forgetting the keys idle longest"
    );
    events.retain(|_, times| times.back().is_some_and(|&at| at >= oldest_kept));
    // Keys that tie with the cut (same instant) may have kept it full.
    let excess = events.len().saturating_sub(MAX_KEYS - MAX_KEYS / 10);
    let ties: Vec<(Kind, LimitKey)> = events
        .iter()
        .filter(|(_, times)| times.back() == Some(&oldest_kept))
        .map(|(key, _)| *key)
        .take(excess)
        .collect();
    for key in ties {
        events.remove(&key);
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

    fn client(ip: &str) -> ClientNetwork {
        ClientNetwork::of(ip.parse().expect("an address"))
    }

    #[test]
    fn a_key_is_limited_after_its_allowance_and_others_are_not() {
        let limits = WebLimits::new(settings(), Metrics::new());
        let one = LimitKey::client(client("192.0.2.1"));
        assert!(!limits.exhausted(Kind::RegistrationClient, one));
        limits.record(Kind::RegistrationClient, one);
        assert!(!limits.exhausted(Kind::RegistrationClient, one));
        limits.record(Kind::RegistrationClient, one);
        assert!(limits.exhausted(Kind::RegistrationClient, one));
        let other = LimitKey::client(client("192.0.2.2"));
        assert!(!limits.exhausted(Kind::RegistrationClient, other));
        assert!(!limits.exhausted(Kind::FailedLoginClient, one));
    }

    #[test]
    fn one_ipv6_64_is_one_client() {
        let limits = WebLimits::new(settings(), Metrics::new());
        limits.record(
            Kind::RegistrationClient,
            LimitKey::client(client("2001:db8::1")),
        );
        limits.record(
            Kind::RegistrationClient,
            LimitKey::client(client("2001:db8::2")),
        );
        assert!(limits.exhausted(
            Kind::RegistrationClient,
            LimitKey::client(client("2001:db8::ffff"))
        ));
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
        let key = LimitKey::text("a@example.com");
        limits.record(Kind::RegistrationAddress, key);
        assert!(!limits.exhausted(Kind::RegistrationAddress, key));
    }

    #[test]
    fn reservations_are_all_or_nothing_and_a_refund_gives_the_place_back() {
        let limits = WebLimits::new(settings(), Metrics::new());
        let keys = [
            (
                Kind::FailedLoginClientAccount,
                LimitKey::client_account(client("192.0.2.1"), "jane@example.com"),
            ),
            (
                Kind::FailedLoginClient,
                LimitKey::client(client("192.0.2.1")),
            ),
        ];
        let held: Vec<_> = (0..3).map(|_| limits.reserve(&keys)).collect();
        assert!(held.iter().all(Option::is_some));
        assert!(limits.reserve(&keys).is_none(), "the account's 3 are taken");
        let mut held = held.into_iter().flatten();
        held.next().expect("one").refund();
        assert!(limits.reserve(&keys).is_some(), "a refund frees one place");
        assert!(limits.reserve(&keys).is_none());
    }

    #[test]
    fn a_full_table_forgets_the_keys_idle_longest_not_the_newest() {
        let limits = WebLimits::new(settings(), Metrics::new());
        let victim = LimitKey::text("victim@example.com");
        for n in 0..MAX_KEYS {
            limits.record(Kind::RegistrationAddress, LimitKey::text(&n.to_string()));
        }
        limits.record(Kind::RegistrationAddress, victim);
        assert!(limits.exhausted(Kind::RegistrationAddress, victim));
        for n in 0..MAX_KEYS / 5 {
            limits.record(
                Kind::RegistrationAddress,
                LimitKey::text(&format!("flood-{n}")),
            );
        }
        assert!(
            limits.exhausted(Kind::RegistrationAddress, victim),
            "a flood of new keys does not reset a recent count"
        );
        assert!(limits.lock().len() <= MAX_KEYS);
    }
}
