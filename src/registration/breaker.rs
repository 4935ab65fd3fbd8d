//! The circuit breaker on new senders: how many addresses we never saw were
//! registered in the last minute, all services and channels together.
//!
//! Help desks have been used to mail "your request was received" to
//! thousands of addresses that never wrote. Our replies carry nothing the
//! sender wrote, but a flood of forged senders would still become a flood of
//! activation mail; past `new_senders_per_minute` further new senders are
//! told to try later (`451 4.7.1` for mail) and nothing is sent or stored.
//!
//! Kept in memory: the decisions that count it all run on the store's one
//! writer thread, so counting and checking never race, and a restart only
//! forgets a minute.

use crate::policy::NewSenders;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Registrations of new senders in the last minute.
#[derive(Debug)]
pub(super) struct NewSenderBreaker {
    per_minute: u32,
    registered: Mutex<VecDeque<Instant>>,
}

impl NewSenderBreaker {
    pub(super) fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            registered: Mutex::new(VecDeque::new()),
        }
    }

    /// The count policy reads.
    pub(super) fn count(&self) -> NewSenders {
        let mut registered = self.lock();
        prune(&mut registered, Instant::now());
        NewSenders {
            last_minute: u32::try_from(registered.len()).unwrap_or(u32::MAX),
            per_minute: self.per_minute,
        }
    }

    /// Whether the next new sender would have to wait.
    pub(super) fn is_open(&self) -> bool {
        self.count().open()
    }

    /// Counts one new sender registered now.
    pub(super) fn record(&self) {
        let mut registered = self.lock();
        let now = Instant::now();
        prune(&mut registered, now);
        registered.push_back(now);
        // Only the newest `per_minute` matter; this bounds the memory.
        while registered.len() > self.per_minute as usize {
            registered.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Instant>> {
        self.registered
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

fn prune(registered: &mut VecDeque<Instant>, now: Instant) {
    while registered
        .front()
        .is_some_and(|&at| now.duration_since(at) >= WINDOW)
    {
        registered.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_at_the_rate_and_not_before() {
        let breaker = NewSenderBreaker::new(2);
        assert!(!breaker.is_open());
        breaker.record();
        assert!(!breaker.is_open());
        breaker.record();
        assert!(breaker.is_open());
        breaker.record();
        assert_eq!(breaker.count().last_minute, 2, "the count is bounded");
    }
}
