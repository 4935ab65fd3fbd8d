//! Telling the operator when a limit that protects everybody is reached:
//! `registrar_limit_reached_total{limit}` on `/metrics` and a warning in the
//! log, at most one a minute per kind so a flood cannot flood the log too.

use crate::metrics::Metrics;
use std::sync::Mutex;
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
    /// Stable name, as `/metrics` labels it (`metrics::LIMITS_REACHED`
    /// lists the same names, so each series is there from the start).
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

/// The counter each alarm moves, and when each was last logged.
#[derive(Debug)]
pub(super) struct Alarms {
    metrics: Metrics,
    logged: Mutex<[Option<Instant>; 5]>,
}

impl Alarms {
    pub(super) fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            logged: Mutex::new([None; 5]),
        }
    }

    /// Counts `alarm` (for `service`) and logs it unless it was logged in
    /// the last minute.
    pub(super) fn raise(&self, alarm: Alarm, service: &str) {
        self.metrics.limit_reached(alarm.as_str());
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
}
