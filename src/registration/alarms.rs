//! Telling the operator when a limit that protects everybody is reached:
//! a counter for `/metrics` and a warning in the log, at most one a minute
//! per kind so a flood cannot flood the log too.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Between two warnings of one kind.
const QUIET: Duration = Duration::from_secs(60);

/// A limit that was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// A service's daily reply budget (or the new senders' share of it).
    ServiceBudget,
    /// One sender domain's daily budget.
    DomainBudget,
    /// One client network's daily budget.
    NetworkBudget,
    /// The circuit breaker on new senders.
    NewSenderFlood,
    /// The hourly quota of raw message bytes kept.
    RawQuota,
}

impl Alarm {
    pub const ALL: [Alarm; 5] = [
        Alarm::ServiceBudget,
        Alarm::DomainBudget,
        Alarm::NetworkBudget,
        Alarm::NewSenderFlood,
        Alarm::RawQuota,
    ];

    /// Stable name, as `/metrics` labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            Alarm::ServiceBudget => "service_budget",
            Alarm::DomainBudget => "domain_budget",
            Alarm::NetworkBudget => "network_budget",
            Alarm::NewSenderFlood => "new_sender_flood",
            Alarm::RawQuota => "raw_quota",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn warning(self) -> &'static str {
        match self {
            Alarm::ServiceBudget => {
                "a service's daily reply budget is spent: new senders wait first, then everyone; raise policy.service_replies_per_day if this is real demand"
            }
            Alarm::DomainBudget => "one sender domain spent its daily reply budget",
            Alarm::NetworkBudget => "one client network spent its daily reply budget",
            Alarm::NewSenderFlood => {
                "the circuit breaker is open: too many new senders this minute; new senders get 451 4.7.1 and no mail"
            }
            Alarm::RawQuota => {
                "the hourly quota of raw mail kept is reached; messages are decided but their raw bytes are not kept"
            }
        }
    }
}

/// Counts of each alarm since start, and when each was last logged.
#[derive(Debug, Default)]
pub(super) struct Alarms {
    counts: [AtomicU64; 5],
    logged: Mutex<[Option<Instant>; 5]>,
}

impl Alarms {
    /// Counts `alarm` (for `service`) and logs it unless it was logged in
    /// the last minute.
    pub(super) fn raise(&self, alarm: Alarm, service: &str) {
        self.counts[alarm.index()].fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut logged = self
            .logged
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let last = &mut logged[alarm.index()];
        if last.is_none_or(|at| now.duration_since(at) >= QUIET) {
            *last = Some(now);
            tracing::warn!(alarm = alarm.as_str(), service, "{}", alarm.warning());
        }
    }

    /// How often each alarm was raised since start.
    pub(super) fn counts(&self) -> Vec<(Alarm, u64)> {
        Alarm::ALL
            .iter()
            .map(|&alarm| (alarm, self.counts[alarm.index()].load(Ordering::Relaxed)))
            .collect()
    }
}
