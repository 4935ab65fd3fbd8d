//! `Admission`: who may open a session. A global cap on concurrent
//! sessions, and per client address a cap on concurrent sessions and on new
//! connections in any 60 seconds. It also says when the listener is under
//! stress (Postfix's word): at `stress_sessions` open sessions or more, every
//! session, open ones included, switches to the short stress timeouts until
//! the count drops again.
//!
//! A client address is the IPv4 address, or the /64 prefix of an IPv6
//! address (one host usually holds a whole /64, so counting single IPv6
//! addresses would cap nothing). Limits inside a session (messages, errors,
//! timeouts) live in `session`; this module only admits or refuses, and
//! counts.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

/// The window the connection rate is counted over.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Addresses tracked before idle ones are first forgotten.
const PRUNE_ABOVE: usize = 1024;

/// The caps `Admission` enforces.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    pub max_sessions: u32,
    pub max_sessions_per_client: u32,
    pub max_connections_per_client_per_minute: u32,
    /// Open sessions at which the listener is under stress.
    pub stress_sessions: u32,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManySessions,
    TooManySessionsFromClient,
    TooManyConnectionsFromClient,
}

pub struct Admission {
    limits: AdmissionLimits,
    sessions: Arc<Semaphore>,
    clients: Mutex<Clients>,
    /// Open sessions now (under the `clients` lock) and whether that is
    /// stress; sessions watch the flag.
    open: Mutex<u32>,
    stress: watch::Sender<bool>,
}

/// A client address as limits count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(prefix.into()))
                }
            },
        }
    }
}

/// The tracked addresses, and when to forget idle ones next: when the map
/// has doubled since the last pruning. Pruning at a fixed size would walk
/// the whole map on every connection once more addresses than that were
/// active within the rate window (a load from many addresses).
struct Clients {
    records: HashMap<ClientKey, ClientRecord>,
    prune_above: usize,
}

#[derive(Debug, Default)]
struct ClientRecord {
    sessions: u32,
    /// Times of the latest connection attempts, at most the rate limit.
    recent: VecDeque<Instant>,
}

/// An admitted session; dropping it frees its places.
pub struct Ticket {
    admission: Arc<Admission>,
    client: ClientKey,
    _session: OwnedSemaphorePermit,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        {
            let mut clients = self.admission.lock();
            if let Some(record) = clients.records.get_mut(&self.client) {
                record.sessions = record.sessions.saturating_sub(1);
            }
        }
        self.admission.count_open(-1);
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            sessions: Arc::new(Semaphore::new(limits.max_sessions as usize)),
            clients: Mutex::new(Clients {
                records: HashMap::new(),
                prune_above: PRUNE_ABOVE,
            }),
            open: Mutex::new(0),
            stress: watch::Sender::new(false),
        })
    }

    /// Whether the listener is under stress, now and as it changes.
    pub fn stress(&self) -> watch::Receiver<bool> {
        self.stress.subscribe()
    }

    /// Counts a session opened (`+1`) or closed (`-1`), and flips the
    /// stress flag when the count crosses the threshold.
    fn count_open(&self, change: i32) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *open = open.saturating_add_signed(change);
        let stressed = *open >= self.limits.stress_sessions;
        let sessions = *open;
        self.stress.send_if_modified(|flag| {
            let changed = *flag != stressed;
            if changed {
                tracing::info!(
                    event = if stressed { "stress_on" } else { "stress_off" },
                    smtp.sessions = sessions,
                    "SMTP stress mode {}",
                    if stressed {
                        "on: short timeouts"
                    } else {
                        "off"
                    }
                );
            }
            *flag = stressed;
            changed
        });
    }

    /// Admits a connection from `ip` at `now`, or says why not. Every
    /// attempt counts toward the rate, refused ones too, so a client that
    /// keeps hammering stays refused.
    ///
    /// # Errors
    /// The cap the connection would break.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Ticket, Refusal> {
        let client = ClientKey::of(ip);
        let mut guard = self.lock();
        let clients = &mut *guard;
        if clients.records.len() > clients.prune_above {
            clients.records.retain(|_, record| {
                record.sessions > 0
                    || record
                        .recent
                        .back()
                        .is_some_and(|last| now.duration_since(*last) < RATE_WINDOW)
            });
            clients.prune_above = (clients.records.len() * 2).max(PRUNE_ABOVE);
        }
        let record = clients.records.entry(client).or_default();
        let rate = self.limits.max_connections_per_client_per_minute as usize;
        let too_fast = record.recent.len() >= rate
            && record
                .recent
                .front()
                .is_some_and(|oldest| now.duration_since(*oldest) < RATE_WINDOW);
        record.recent.push_back(now);
        while record.recent.len() > rate {
            record.recent.pop_front();
        }
        if too_fast {
            return Err(Refusal::TooManyConnectionsFromClient);
        }
        if record.sessions >= self.limits.max_sessions_per_client {
            return Err(Refusal::TooManySessionsFromClient);
        }
        let permit = Arc::clone(&self.sessions)
            .try_acquire_owned()
            .map_err(|_| Refusal::TooManySessions)?;
        record.sessions += 1;
        drop(guard);
        self.count_open(1);
        Ok(Ticket {
            admission: Arc::clone(self),
            client,
            _session: permit,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clients> {
        // Only counters live here; a panic mid-update leaves them usable.
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(sessions: u32, per_client: u32, rate: u32) -> Arc<Admission> {
        Admission::new(AdmissionLimits {
            max_sessions: sessions,
            max_sessions_per_client: per_client,
            max_connections_per_client_per_minute: rate,
            stress_sessions: sessions,
        })
    }

    #[test]
    fn stress_begins_at_the_threshold_and_passes_when_sessions_close() {
        let admission = Admission::new(AdmissionLimits {
            max_sessions: 4,
            max_sessions_per_client: 4,
            max_connections_per_client_per_minute: 100,
            stress_sessions: 3,
        });
        let stress = admission.stress();
        let ip = |n: u8| IpAddr::from([192, 0, 2, n]);
        let first = admission.admit(ip(1), Instant::now()).expect("first");
        let second = admission.admit(ip(2), Instant::now()).expect("second");
        assert!(!*stress.borrow(), "two of four is no stress");
        let third = admission.admit(ip(3), Instant::now()).expect("third");
        assert!(*stress.borrow(), "three of four is");
        drop(first);
        assert!(!*stress.borrow(), "the pressure passed");
        drop((second, third));
    }

    #[test]
    fn the_connection_rate_window_slides() {
        let admission = limits(10, 10, 2);
        let ip = IpAddr::from([192, 0, 2, 1]);
        let start = Instant::now();
        drop(admission.admit(ip, start).expect("first"));
        drop(admission.admit(ip, start).expect("second"));
        assert_eq!(
            admission.admit(ip, start + Duration::from_secs(59)).err(),
            Some(Refusal::TooManyConnectionsFromClient)
        );
        // Past 60 s after the first attempt there is room for one more ...
        assert!(admission.admit(ip, start + Duration::from_secs(61)).is_ok());
        // ... and the refused attempt at 59 s counts, so this one is refused.
        assert_eq!(
            admission.admit(ip, start + Duration::from_secs(100)).err(),
            Some(Refusal::TooManyConnectionsFromClient)
        );
    }

    #[test]
    fn a_closed_session_frees_its_place() {
        let admission = limits(1, 1, 100);
        let ip = IpAddr::from([192, 0, 2, 1]);
        let ticket = admission.admit(ip, Instant::now()).expect("first");
        assert_eq!(
            admission.admit(ip, Instant::now()).err(),
            Some(Refusal::TooManySessionsFromClient)
        );
        assert_eq!(
            admission
                .admit(IpAddr::from([192, 0, 2, 2]), Instant::now())
                .err(),
            Some(Refusal::TooManySessions)
        );
        drop(ticket);
        assert!(admission.admit(ip, Instant::now()).is_ok());
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_prefix() {
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("address");
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("address");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("address");
        assert_eq!(ClientKey::of(one), ClientKey::of(other));
        assert_eq!(
            ClientKey::of(mapped),
            ClientKey::of(IpAddr::from([192, 0, 2, 1]))
        );
    }
}
