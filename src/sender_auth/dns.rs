//! `Dns`: where the `dmarc` mode gets its DNS answers.
//!
//! In production that is a hickory resolver (the system's name servers, or
//! configured ones). For tests and for `registrar explain` it can be a
//! `FixedZone`: records given up front that answer every lookup, so no query
//! leaves the process. Names not in the zone do not exist (NXDOMAIN), and a
//! name can be made to fail temporarily, as a broken name server would.
//!
//! Both go through mail-auth's resolver caches: a fixed zone is a cache that
//! always answers, the live resolver a cache that never does.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dmarc::Dmarc;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::Spf;
use mail_auth::{
    DnsError, DnssecStatus, Error, MX, MessageAuthenticator, RecordSet, ResolverCache, Txt,
};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

/// Where DNS answers come from, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsSource {
    /// A live resolver: these name servers, or the system's when empty.
    Resolver {
        nameservers: Vec<IpAddr>,
        timeout: Duration,
    },
    /// Only these records; nothing is queried.
    Fixed(FixedZone),
}

/// DNS records given up front.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixedZone {
    txt: Vec<(String, FixedTxt)>,
    a: Vec<(String, Ipv4Addr)>,
    aaaa: Vec<(String, Ipv6Addr)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FixedTxt {
    Record(String),
    TemporaryFailure,
}

impl FixedZone {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a TXT record (SPF at the domain, DMARC at `_dmarc.`, a DKIM key
    /// at `selector._domainkey.`).
    #[must_use]
    pub fn txt(mut self, name: &str, value: &str) -> Self {
        self.txt
            .push((fqdn(name), FixedTxt::Record(value.to_owned())));
        self
    }

    /// Makes TXT lookups of `name` fail temporarily (SERVFAIL, timeout).
    #[must_use]
    pub fn txt_temporary_failure(mut self, name: &str) -> Self {
        self.txt.push((fqdn(name), FixedTxt::TemporaryFailure));
        self
    }

    /// Adds an A record.
    #[must_use]
    pub fn a(mut self, name: &str, address: Ipv4Addr) -> Self {
        self.a.push((fqdn(name), address));
        self
    }

    /// Adds an AAAA record.
    #[must_use]
    pub fn aaaa(mut self, name: &str, address: Ipv6Addr) -> Self {
        self.aaaa.push((fqdn(name), address));
        self
    }
}

/// A resolver plus the caches mail-auth consults first.
pub struct Dns {
    /// `None` when the live resolver could not be set up: every lookup is
    /// then a temporary error, so mail is deferred, never wrongly refused.
    pub(super) authenticator: Option<MessageAuthenticator>,
    pub(super) caches: Caches,
}

impl Dns {
    /// Builds the resolver for `source`.
    ///
    /// # Errors
    /// A live resolver that cannot be set up (unreadable resolv.conf).
    pub fn new(source: &DnsSource) -> Result<Self, String> {
        match source {
            DnsSource::Resolver {
                nameservers,
                timeout,
            } => {
                let authenticator = if nameservers.is_empty() {
                    MessageAuthenticator::new_system_conf()
                } else {
                    let mut options = ResolverOpts::default();
                    options.timeout = *timeout;
                    MessageAuthenticator::new(
                        ResolverConfig::from_name_servers(
                            nameservers
                                .iter()
                                .map(|ip| NameServerConfig::udp_and_tcp(*ip))
                                .collect(),
                        ),
                        options,
                    )
                }
                .map_err(|e| format!("cannot set up the DNS resolver: {e}"))?;
                Ok(Self {
                    authenticator: Some(authenticator),
                    caches: Caches::pass_through(),
                })
            }
            DnsSource::Fixed(zone) => {
                // The resolver behind a fixed zone is never asked: every
                // lookup is answered by the caches.
                let authenticator = MessageAuthenticator::new(
                    ResolverConfig::from_name_servers(Vec::new()),
                    ResolverOpts::default(),
                )
                .map_err(|e| format!("cannot set up the fixed DNS zone: {e}"))?;
                Ok(Self {
                    authenticator: Some(authenticator),
                    caches: Caches::fixed(zone),
                })
            }
        }
    }

    /// A resolver that cannot answer: every lookup fails temporarily.
    pub fn unavailable() -> Self {
        Self {
            authenticator: None,
            caches: Caches::pass_through(),
        }
    }
}

/// The five caches mail-auth takes.
pub(super) struct Caches {
    pub txt: ZoneCache<Box<str>, Txt>,
    pub mx: ZoneCache<Box<str>, RecordSet<MX>>,
    pub ptr: ZoneCache<IpAddr, RecordSet<Box<str>>>,
    pub ipv4: ZoneCache<Box<str>, RecordSet<Ipv4Addr>>,
    pub ipv6: ZoneCache<Box<str>, RecordSet<Ipv6Addr>>,
}

impl Caches {
    fn pass_through() -> Self {
        Self {
            txt: ZoneCache::empty(None),
            mx: ZoneCache::empty(None),
            ptr: ZoneCache::empty(None),
            ipv4: ZoneCache::empty(None),
            ipv6: ZoneCache::empty(None),
        }
    }

    fn fixed(zone: &FixedZone) -> Self {
        let nxdomain = Txt::Error(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain)));
        let mut txt = ZoneCache::empty(Some(nxdomain));
        for (name, record) in &zone.txt {
            let value = match record {
                FixedTxt::TemporaryFailure => Txt::Error(Error::Dns(DnsError::Resolver(
                    "temporary failure (fixed zone)".into(),
                ))),
                FixedTxt::Record(text) => parse_txt(name, text.as_bytes()),
            };
            txt.map.insert(name.clone().into_boxed_str(), value);
        }
        let mut ipv4 = ZoneCache::empty(Some(empty_set()));
        for (name, address) in &zone.a {
            push(&mut ipv4.map, name, *address);
        }
        let mut ipv6 = ZoneCache::empty(Some(empty_set()));
        for (name, address) in &zone.aaaa {
            push(&mut ipv6.map, name, *address);
        }
        Self {
            txt,
            mx: ZoneCache::empty(Some(empty_set())),
            ptr: ZoneCache::empty(Some(empty_set())),
            ipv4,
            ipv6,
        }
    }
}

/// Parses a TXT record as the type its name asks for.
fn parse_txt(name: &str, record: &[u8]) -> Txt {
    if name.starts_with("_dmarc.") {
        Dmarc::parse(record).into()
    } else if name.contains("._domainkey.") {
        DomainKey::parse(record).into()
    } else {
        Spf::parse(record).into()
    }
}

fn empty_set<T>() -> RecordSet<T> {
    RecordSet {
        rrset: Arc::from(Vec::new()),
        dnssec_status: DnssecStatus::Indeterminate,
    }
}

fn push<T: Clone>(map: &mut HashMap<Box<str>, RecordSet<T>>, name: &str, value: T) {
    let entry = map.entry(name.into()).or_insert_with(empty_set);
    let mut values = entry.rrset.to_vec();
    values.push(value);
    entry.rrset = Arc::from(values);
}

/// mail-auth asks for lower-case names with a trailing dot.
fn fqdn(name: &str) -> String {
    let mut name = name.trim().to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

/// A cache that answers from a map, and for every other name with `default`
/// (or not at all, leaving the lookup to the resolver).
pub(super) struct ZoneCache<K, V> {
    map: HashMap<K, V>,
    default: Option<V>,
}

impl<K, V> ZoneCache<K, V> {
    fn empty(default: Option<V>) -> Self {
        Self {
            map: HashMap::new(),
            default,
        }
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for ZoneCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(name).cloned().or_else(|| self.default.clone())
    }

    fn remove<Q>(&self, _name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _key: K, _value: V, _valid_until: std::time::Instant) {}
}
