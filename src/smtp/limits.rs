//! `Admission`: who may open a session. A global cap on concurrent
//! sessions, and per client address a cap on concurrent sessions and on new
//! connections in any 60 seconds.
//!
//! It also says when the listener is under stress (Postfix's word): with
//! `stress_sessions` or more places under the global cap taken, every
//! session, open ones included, switches to the short stress timeouts until
//! the count drops a tenth of `max_sessions` below it (at least one place;
//! `Admission::stress`, a watch channel the sessions select on). The switch
//! is logged and counted, once per change. The margin is what keeps a load
//! hovering at the threshold, or a client opening and closing one
//! connection there, from flipping the flag, and so waking every session
//! and logging twice, on every connection.
//!
//! A client address is the IPv4 address, or the /64 prefix of an IPv6
//! address (one host usually holds a whole /64, so counting single IPv6
//! addresses would cap nothing). Limits inside a session (messages, errors,
//! timeouts) live in `session`; this module only admits or refuses, and
//! counts.
//!
//! The relays in front of us (`smtp.relays`) carry the mail of many clients,
//! so they take only a place under the global cap. The original client a
//! relay names with XFORWARD is counted instead, as Postfix's anvil counts
//! clients at the edge: each message it sends through the relay is one
//! connection and, while it lasts, one session (`admit_forwarded`). Such a
//! message takes no place under the global cap, so it does not count toward
//! stress either: its relay's session already does.

use crate::domain::{ClientNetwork, IpRange};
use crate::metrics::Metrics;
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
    /// Places taken under the global cap at which the listener is under
    /// stress (`SmtpSettings::stress_sessions`).
    pub stress_sessions: u32,
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
    clients: Mutex<Clients>,
    /// Places taken under the global cap now. The stress flag is set under
    /// this lock, so concurrent opens and closes publish it in order.
    open: Mutex<u32>,
    /// Whether `open` reached `stress_sessions` and has not since dropped
    /// to `calm_sessions`; sessions watch it.
    stress: watch::Sender<bool>,
    /// Places taken at or below which stress passes.
    calm_sessions: u32,
    /// Where the switches are counted.
    metrics: Metrics,
}

/// The tracked addresses, and when to forget idle ones next: once the map
/// has doubled since it was last pruned. Pruning at a fixed size would walk
/// the whole map on every connection once more addresses than that were
/// active within the rate window (a load from many addresses).
struct Clients {
    records: HashMap<ClientNetwork, ClientRecord>,
    prune_above: usize,
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
    session: Option<OwnedSemaphorePermit>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(place) = self.session.take() {
            drop(place);
            self.admission.count_open(false);
        }
        let Some(client) = self.client else { return };
        let mut clients = self.admission.lock();
        if let Some(record) = clients.records.get_mut(&client) {
            record.sessions = record.sessions.saturating_sub(1);
        }
    }
}

/// The places taken at or below which stress passes: a tenth of
/// `max_sessions` under the threshold, at least one.
fn calm_sessions(limits: AdmissionLimits) -> u32 {
    let margin = (limits.max_sessions / 10).max(1);
    limits.stress_sessions.saturating_sub(margin)
}

impl Admission {
    pub fn new(limits: AdmissionLimits, relays: Vec<IpRange>, metrics: Metrics) -> Arc<Self> {
        Arc::new(Self {
            limits,
            relays,
            sessions: Arc::new(Semaphore::new(limits.max_sessions as usize)),
            clients: Mutex::new(Clients {
                records: HashMap::new(),
                prune_above: PRUNE_ABOVE,
            }),
            open: Mutex::new(0),
            stress: watch::Sender::new(false),
            calm_sessions: calm_sessions(limits),
            metrics,
        })
    }

    /// Whether the listener is under stress, now and as it changes. A new
    /// receiver has seen the current value.
    pub fn stress(&self) -> watch::Receiver<bool> {
        self.stress.subscribe()
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
                session: Some(self.global_place()?),
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
                session: None,
            });
        }
        self.count_client(ip, now, false)
    }

    fn is_relay(&self, ip: IpAddr) -> bool {
        self.relays.iter().any(|range| range.contains(ip))
    }

    /// Takes a place under the global cap, and counts it toward stress.
    fn global_place(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        let place = Arc::clone(&self.sessions)
            .try_acquire_owned()
            .map_err(|_| Refusal::TooManySessions)?;
        self.count_open(true);
        Ok(place)
    }

    /// Counts a place under the global cap taken (`true`) or given back,
    /// and flips the stress flag when the count reaches the threshold, or
    /// back when it has dropped to the calm level.
    fn count_open(&self, taken: bool) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *open = if taken {
            open.saturating_add(1)
        } else {
            open.saturating_sub(1)
        };
        let mut stressed = false;
        let changed = self.stress.send_if_modified(|flag| {
            stressed = if *flag {
                *open > self.calm_sessions
            } else {
                *open >= self.limits.stress_sessions
            };
            let changed = *flag != stressed;
            *flag = stressed;
            changed
        });
        if changed {
            self.metrics.smtp_stress(stressed);
            if stressed {
                tracing::info!(
                    event = "smtp_stress",
                    smtp.sessions = *open,
                    "SMTP under stress: short idle and command timeouts"
                );
            } else {
                tracing::info!(
                    event = "smtp_stress_passed",
                    smtp.sessions = *open,
                    "SMTP stress passed: normal timeouts"
                );
            }
        }
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
        let permit = global.then(|| self.global_place()).transpose()?;
        record.sessions += 1;
        Ok(Ticket {
            admission: Arc::clone(self),
            client: Some(client),
            session: permit,
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
        with_relays(sessions, per_client, rate, &[])
    }

    fn with_relays(sessions: u32, per_client: u32, rate: u32, relays: &[&str]) -> Arc<Admission> {
        stressed_at(sessions, sessions, per_client, rate, relays, Metrics::new())
    }

    fn stressed_at(
        sessions: u32,
        stress_sessions: u32,
        per_client: u32,
        rate: u32,
        relays: &[&str],
        metrics: Metrics,
    ) -> Arc<Admission> {
        Admission::new(
            AdmissionLimits {
                max_sessions: sessions,
                max_sessions_per_client: per_client,
                max_connections_per_client_per_minute: rate,
                stress_sessions,
            },
            relays
                .iter()
                .map(|relay| IpRange::parse(relay).expect("range"))
                .collect(),
            metrics,
        )
    }

    #[test]
    fn stress_passes_only_a_tenth_of_the_sessions_below_its_threshold() {
        let metrics = Metrics::new();
        let admission = stressed_at(100, 75, 100, 1000, &[], metrics.clone());
        let stress = admission.stress();
        let now = Instant::now();
        let ip = IpAddr::from([192, 0, 2, 1]);
        let mut open: Vec<Ticket> = (0..75)
            .map(|_| admission.admit(ip, now).expect("admitted"))
            .collect();
        assert!(*stress.borrow(), "75 of 100 is stress");

        // A client hovering at the threshold: one connection closed and
        // opened again, many times over, is one switch, not one per change.
        for _ in 0..20 {
            open.pop();
            assert!(*stress.borrow(), "74 open is not calm yet");
            open.push(admission.admit(ip, now).expect("admitted"));
        }
        open.truncate(66);
        assert!(*stress.borrow(), "66 open is not calm yet");
        open.pop();
        assert!(!*stress.borrow(), "65 open is calm");
        open.push(admission.admit(ip, now).expect("admitted"));
        assert!(!*stress.borrow(), "and stays so below the threshold");
        let text = metrics.encode();
        assert!(
            text.contains("registrar_smtp_stress_entered_total 1"),
            "{text}"
        );
    }

    #[test]
    fn stress_begins_at_the_threshold_and_passes_when_sessions_close() {
        let metrics = Metrics::new();
        let admission = stressed_at(4, 3, 4, 100, &[], metrics.clone());
        let stress = admission.stress();
        let ip = |n: u8| IpAddr::from([192, 0, 2, n]);
        let now = Instant::now();
        let first = admission.admit(ip(1), now).expect("first");
        let second = admission.admit(ip(2), now).expect("second");
        assert!(!*stress.borrow(), "two of four is no stress");

        let third = admission.admit(ip(3), now).expect("third");
        assert!(*stress.borrow(), "three of four is");
        drop(first);
        assert!(!*stress.borrow(), "the pressure passed");
        let again = admission.admit(ip(1), now).expect("again");
        assert!(*stress.borrow(), "and came back");

        let text = metrics.encode();
        assert!(text.contains("registrar_smtp_stress 1"), "{text}");
        assert!(
            text.contains("registrar_smtp_stress_entered_total 2"),
            "{text}"
        );
        drop((second, third, again));
        assert!(!*stress.borrow());
        assert!(metrics.encode().contains("registrar_smtp_stress 0"));
    }

    #[test]
    fn a_forwarded_client_does_not_count_toward_stress_twice() {
        let admission = stressed_at(4, 2, 4, 100, &["192.0.2.1"], Metrics::new());
        let stress = admission.stress();
        let now = Instant::now();
        let relay = admission
            .admit(IpAddr::from([192, 0, 2, 1]), now)
            .expect("the relay");
        let forwarded = admission
            .admit_forwarded(IpAddr::from([203, 0, 113, 9]), now)
            .expect("its client");
        assert!(!*stress.borrow(), "one session, not two");

        let other = admission
            .admit(IpAddr::from([198, 51, 100, 7]), now)
            .expect("another client");
        assert!(*stress.borrow(), "two sessions");
        drop((relay, forwarded, other));
        assert!(!*stress.borrow());
    }

    #[test]
    fn idle_addresses_are_forgotten_once_the_map_has_doubled() {
        let admission = limits(10, 10, 100);
        let start = Instant::now();
        let ip = |n: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
        for n in 0..=PRUNE_ABOVE as u32 {
            drop(admission.admit(ip(n), start).expect("admitted"));
        }
        assert_eq!(admission.lock().prune_above, PRUNE_ABOVE, "not yet");

        // Every address is still within the rate window: nothing can be
        // forgotten, so the next pruning waits until the map has doubled
        // instead of walking it on every connection.
        drop(admission.admit(ip(5000), start).expect("admitted"));
        let clients = admission.lock();
        assert_eq!(clients.records.len(), PRUNE_ABOVE + 2);
        assert_eq!(clients.prune_above, 2 * (PRUNE_ABOVE + 1));
        drop(clients);

        // A minute later the idle ones go at the next pruning: when the
        // map has doubled again.
        let later = start + RATE_WINDOW + Duration::from_secs(1);
        for n in 0..PRUNE_ABOVE as u32 + 2 {
            drop(admission.admit(ip(10_000 + n), later).expect("admitted"));
        }
        let clients = admission.lock();
        assert_eq!(
            clients.records.len(),
            PRUNE_ABOVE + 2,
            "only the recent ones"
        );
        assert_eq!(clients.prune_above, 2 * (PRUNE_ABOVE + 1));
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
