//! The quota on raw message bytes kept: per client network and in all, per
//! clock hour. Past a quota a message is still decided and answered; only
//! its raw copy (kept for `registrar explain` and an operator's questions)
//! is not stored. So one client cannot fill the disk through mail we keep,
//! and nobody is refused because of what another client sent.
//!
//! Kept in memory and charged on the store's writer thread; a restart starts
//! the hour over, which at worst doubles one hour's quota.

use crate::domain::ClientNetwork;
use crate::settings::RawQuota;
use std::collections::HashMap;
use std::sync::Mutex;

/// Client networks tracked at once; the oldest hours go first when full.
const MAX_CLIENTS: usize = 65_536;

const HOUR_SECS: i64 = 3600;

#[derive(Debug)]
pub(super) struct RawBytesQuota {
    quota: RawQuota,
    used: Mutex<Used>,
}

#[derive(Debug, Default)]
struct Used {
    hour: i64,
    total: u64,
    per_client: HashMap<ClientNetwork, u64>,
}

impl RawBytesQuota {
    pub(super) fn new(quota: RawQuota) -> Self {
        Self {
            quota,
            used: Mutex::new(Used::default()),
        }
    }

    /// Charges `bytes` to `client` (when counted) and to the total at `now`
    /// (Unix seconds); `false`, charging nothing, when either quota would be
    /// exceeded.
    pub(super) fn take(&self, client: Option<ClientNetwork>, bytes: u64, now: i64) -> bool {
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let hour = now.div_euclid(HOUR_SECS);
        if used.hour != hour {
            *used = Used {
                hour,
                ..Used::default()
            };
        }
        let client_used = client.map_or(0, |c| used.per_client.get(&c).copied().unwrap_or(0));
        let fits = used.total.saturating_add(bytes) <= self.quota.per_hour
            && (client.is_none()
                || client_used.saturating_add(bytes) <= self.quota.per_client_per_hour);
        if !fits {
            return false;
        }
        used.total += bytes;
        if let Some(client) = client {
            if used.per_client.len() >= MAX_CLIENTS && !used.per_client.contains_key(&client) {
                // An hour with this many clients: forget the smallest users,
                // who are the furthest from their quota.
                let mut sizes: Vec<u64> = used.per_client.values().copied().collect();
                let cut = sizes.len() / 2;
                let (_, median, _) = sizes.select_nth_unstable(cut);
                let median = *median;
                used.per_client.retain(|_, size| *size > median);
            }
            *used.per_client.entry(client).or_default() += bytes;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ip: &str) -> Option<ClientNetwork> {
        Some(ClientNetwork::of(ip.parse().expect("an address")))
    }

    #[test]
    fn each_client_and_the_total_are_capped_per_hour() {
        let quota = RawBytesQuota::new(RawQuota {
            per_client_per_hour: 100,
            per_hour: 250,
        });
        let now = 1_800_000_000;
        assert!(quota.take(client("192.0.2.1"), 60, now));
        assert!(
            !quota.take(client("192.0.2.1"), 60, now),
            "over its own quota"
        );
        assert!(quota.take(client("192.0.2.2"), 100, now));
        assert!(quota.take(None, 90, now));
        assert!(!quota.take(client("192.0.2.3"), 10, now), "over the total");
        assert!(
            quota.take(client("192.0.2.1"), 60, now + 3600),
            "the next hour starts over"
        );
    }
}
