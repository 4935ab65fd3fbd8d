//! `Admission`: who may open a session. A global cap on concurrent
//! sessions, and per client address a cap on concurrent sessions and on new
//! connections in any 60 seconds.
//!
//! A client address is the IPv4 address, or the /64 prefix of an IPv6
//! address (one host usually holds a whole /64, so counting single IPv6
//! addresses would cap nothing). Limits inside a session (messages, errors,
//! timeouts) live in `session`; this module only admits or refuses.
//!
//! The relays in front of us (`smtp.relays`) carry the mail of many clients,
//! so they take only a place under the global cap. The original client a
//! relay names with XFORWARD is counted instead, as Postfix's anvil counts
//! clients at the edge: each message it sends through the relay is one
//! connection and, while it lasts, one session (`admit_forwarded`).

use crate::domain::{ClientNetwork, IpRange};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The window the connection rate is counted over.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Addresses tracked before idle ones are forgotten.
const PRUNE_ABOVE: usize = 1024;

/// The caps `Admission` enforces.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    pub max_sessions: u32,
    pub max_sessions_per_client: u32,
    pub max_connections_per_client_per_minute: u32,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManySessions,
    TooManySessionsFromClient,
    TooManyConnectionsFromClient,
}

impl Refusal {
    /// The limit's stable name, as the metrics count it.
    pub fn limit(self) -> &'static str {
        match self {
            Refusal::TooManySessions => "sessions",
            Refusal::TooManySessionsFromClient => "sessions_per_client",
            Refusal::TooManyConnectionsFromClient => "connections_per_client",
        }
    }
}

pub struct Admission {
    limits: AdmissionLimits,
    /// The MTAs in front of us, exempt from the per-client caps.
    relays: Vec<IpRange>,
    sessions: Arc<Semaphore>,
    clients: Mutex<HashMap<ClientNetwork, ClientRecord>>,
}

#[derive(Debug, Default)]
struct ClientRecord {
    sessions: u32,
    /// Times of the latest connection attempts, at most the rate limit.
    recent: VecDeque<Instant>,
}

/// An admitted session, or a forwarded client's message; dropping it frees
/// its places.
pub struct Ticket {
    admission: Arc<Admission>,
    /// The client's place under the per-client caps; `None` for a relay.
    client: Option<ClientNetwork>,
    /// The place under the global cap; `None` for a forwarded client, whose
    /// relay holds one.
    _session: Option<OwnedSemaphorePermit>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(client) = self.client else { return };
        let mut clients = self.admission.lock();
        if let Some(record) = clients.get_mut(&client) {
            record.sessions = record.sessions.saturating_sub(1);
        }
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits, relays: Vec<IpRange>) -> Arc<Self> {
        Arc::new(Self {
            limits,
            relays,
            sessions: Arc::new(Semaphore::new(limits.max_sessions as usize)),
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// Admits a connection from `ip` at `now`, or says why not. Every
    /// attempt counts toward the rate, refused ones too, so a client that
    /// keeps hammering stays refused. A relay needs only a place under the
    /// global cap.
    ///
    /// # Errors
    /// The cap the connection would break.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Ticket, Refusal> {
        if self.is_relay(ip) {
            return Ok(Ticket {
                admission: Arc::clone(self),
                client: None,
                _session: Some(self.global_place()?),
            });
        }
        self.count_client(ip, now, true)
    }

    /// Admits one message of the original client `ip` that a relay named
    /// with XFORWARD, under the same per-client caps as a connection of its
    /// own; the relay already holds the place under the global cap. The
    /// ticket is held until the message ends.
    ///
    /// # Errors
    /// The per-client cap the message would break.
    pub fn admit_forwarded(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Ticket, Refusal> {
        if self.is_relay(ip) {
            return Ok(Ticket {
                admission: Arc::clone(self),
                client: None,
                _session: None,
            });
        }
        self.count_client(ip, now, false)
    }

    fn is_relay(&self, ip: IpAddr) -> bool {
        self.relays.iter().any(|range| range.contains(ip))
    }

    fn global_place(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        Arc::clone(&self.sessions)
            .try_acquire_owned()
            .map_err(|_| Refusal::TooManySessions)
    }

    /// Counts an arrival of `ip` against its rate and concurrency caps and,
    /// within them and when `global`, takes a place under the global cap.
    fn count_client(
        self: &Arc<Self>,
        ip: IpAddr,
        now: Instant,
        global: bool,
    ) -> Result<Ticket, Refusal> {
        let client = ClientNetwork::of(ip);
        let mut clients = self.lock();
        if clients.len() > PRUNE_ABOVE {
            clients.retain(|_, record| {
                record.sessions > 0
                    || record
                        .recent
                        .back()
                        .is_some_and(|last| now.duration_since(*last) < RATE_WINDOW)
            });
        }
        let record = clients.entry(client).or_default();
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
        let permit = global.then(|| self.global_place()).transpose()?;
        record.sessions += 1;
        Ok(Ticket {
            admission: Arc::clone(self),
            client: Some(client),
            _session: permit,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientNetwork, ClientRecord>> {
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
        with_relays(sessions, per_client, rate, &[])
    }

    fn with_relays(sessions: u32, per_client: u32, rate: u32, relays: &[&str]) -> Arc<Admission> {
        Admission::new(
            AdmissionLimits {
                max_sessions: sessions,
                max_sessions_per_client: per_client,
                max_connections_per_client_per_minute: rate,
            },
            relays
                .iter()
                .map(|relay| IpRange::parse(relay).expect("range"))
                .collect(),
        )
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
    fn a_relay_is_held_only_to_the_global_cap() {
        let admission = with_relays(3, 1, 1, &["192.0.2.0/28"]);
        let relay = IpRange::parse("192.0.2.0/28").expect("range");
        let ip = IpAddr::from([192, 0, 2, 1]);
        assert!(relay.contains(ip));
        let now = Instant::now();
        let first = admission.admit(ip, now).expect("first");
        let second = admission.admit(ip, now).expect("over the per-client caps");
        let third = admission
            .admit(IpAddr::from([192, 0, 2, 2]), now)
            .expect("same block");

        assert_eq!(
            admission.admit(ip, now).err(),
            Some(Refusal::TooManySessions),
            "the global cap still applies"
        );
        drop((first, second, third));
        assert!(admission.admit(ip, now).is_ok());
    }

    #[test]
    fn a_forwarded_client_is_counted_like_a_client_of_its_own() {
        let admission = with_relays(1, 1, 2, &["192.0.2.1"]);
        let now = Instant::now();
        let _relay = admission
            .admit(IpAddr::from([192, 0, 2, 1]), now)
            .expect("the relay takes the one session");
        let client = IpAddr::from([203, 0, 113, 9]);

        let message = admission
            .admit_forwarded(client, now)
            .expect("the relay's place covers the global cap");
        assert_eq!(
            admission.admit_forwarded(client, now).err(),
            Some(Refusal::TooManySessionsFromClient),
            "one message at a time, as one session"
        );
        drop(message);
        assert_eq!(
            admission.admit_forwarded(client, now).err(),
            Some(Refusal::TooManyConnectionsFromClient),
            "each message counts as a connection"
        );
        assert!(
            admission
                .admit_forwarded(IpAddr::from([203, 0, 113, 10]), now)
                .is_ok(),
            "other clients go on"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_prefix() {
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("address");
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("address");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("address");
        assert_eq!(ClientNetwork::of(one), ClientNetwork::of(other));
        assert_eq!(
            ClientNetwork::of(mapped),
            ClientNetwork::of(IpAddr::from([192, 0, 2, 1]))
        );
    }
}
