//! `ClientNetwork`: the network a client is counted as, for every limit and
//! budget that is kept per client.
//!
//! An IPv4 address counts as itself; an IPv6 address counts as its /64,
//! because one host (or one customer of a provider) usually holds a whole
//! /64 and would otherwise rotate through addresses to escape any limit.
//! An IPv4-mapped IPv6 address counts as the IPv4 address it carries.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// A client address as limits count it: IPv4 as is, IPv6 per /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientNetwork(IpAddr);

impl ClientNetwork {
    /// The network `ip` is counted in.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = v6.to_bits() & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from_bits(prefix)))
                }
            },
        }
    }

    /// A fixed-size form of the network, for keys: IPv4 as an IPv4-mapped
    /// IPv6 address.
    pub fn to_bytes(self) -> [u8; 16] {
        match self.0 {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        }
    }
}

impl fmt::Display for ClientNetwork {
    /// `192.0.2.1`, or `2001:db8::/64` for an IPv6 network.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(ip: &str) -> ClientNetwork {
        ClientNetwork::of(ip.parse().expect("an address"))
    }

    #[test]
    fn ipv6_counts_per_64_and_ipv4_per_address() {
        assert_eq!(network("2001:db8:1:2::1"), network("2001:db8:1:2:ffff::9"));
        assert_ne!(network("2001:db8:1:2::1"), network("2001:db8:1:3::1"));
        assert_ne!(network("192.0.2.1"), network("192.0.2.2"));
        assert_eq!(network("::ffff:192.0.2.1"), network("192.0.2.1"));
        assert_eq!(network("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(network("192.0.2.1").to_string(), "192.0.2.1");
    }
}
