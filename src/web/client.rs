//! Who the client is: the TCP peer, or, when the peer is one of
//! `http.trusted_proxies`, the address that proxy names in the configured
//! forwarded header (`X-Forwarded-For` or `Forwarded`).
//!
//! A header can be written by anyone, so it is read only from a trusted peer,
//! and then from the right: each proxy appends the address it saw, so the
//! rightmost hop that is not itself a trusted proxy is the client. Anything
//! the client wrote further left is ignored. A hop that cannot be read stops
//! the walk at the last trusted proxy, which is then what is counted. The
//! other header is never read, so a client cannot slip an address past a
//! proxy that only maintains one of them.

use crate::domain::{ClientNetwork, IpRange};
use crate::settings::ForwardedHeader;
use crate::web::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The client of a request, as limits and budgets count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    /// The network limits count: IPv4 as is, IPv6 per /64.
    pub network: ClientNetwork,
}

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Always present when served by `web::serve`; a router driven without
        // it (a unit test) counts as one unknown client.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        let http = &state.settings.http;
        let ip = client_address(
            peer,
            &parts.headers,
            &http.trusted_proxies,
            http.forwarded_header,
        );
        Ok(Self {
            ip,
            network: ClientNetwork::of(ip),
        })
    }
}

/// The client's address: `peer`, unless `peer` is a trusted proxy, in which
/// case the rightmost hop of `header` that is not a trusted proxy.
pub fn client_address(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpRange],
    header: ForwardedHeader,
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops = match header {
        ForwardedHeader::XForwardedFor => hops(headers, "x-forwarded-for", Some),
        ForwardedHeader::Forwarded => hops(headers, "forwarded", forwarded_for),
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_node(hop) {
            Some(ip) if is_trusted(ip) => client = ip,
            Some(ip) => return ip,
            // An unreadable or hidden hop ("unknown", "_secret"): nothing
            // to its left can be believed.
            None => return client,
        }
    }
    client
}

/// Every element of every `name` header, in order, each turned into a node
/// by `node` (`None` drops an element that names no node).
fn hops<'h>(
    headers: &'h HeaderMap,
    name: &str,
    node: impl Fn(&'h str) -> Option<&'h str>,
) -> Vec<&'h str> {
    headers
        .get_all(name)
        .iter()
        // A header that is not text names nobody we can count; the walk
        // treats it as unreadable.
        .flat_map(|value| value.to_str().unwrap_or("unknown").split(','))
        .map(str::trim)
        .filter_map(node)
        .collect()
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.1;proto=https`);
/// an element without one is unreadable.
fn forwarded_for(element: &str) -> Option<&str> {
    Some(
        element
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
            .map_or("unknown", |(_, value)| value.trim()),
    )
}

/// An address from a node: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, quoted or not.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = node.rsplit_once(':')?;
    port.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| host.parse::<Ipv4Addr>().ok().map(IpAddr::V4))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(name, HeaderValue::from_str(value).expect("a header value"));
        }
        map
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_then_from_the_right() {
        let trusted = [
            IpRange::parse("10.0.0.0/8").expect("range"),
            IpRange::parse("192.0.2.9").expect("range"),
        ];
        let xff = ForwardedHeader::XForwardedFor;
        let forwarded = ForwardedHeader::Forwarded;
        let cases = [
            // (peer, header name, values, header read, expected client)
            (
                "203.0.113.5",
                "x-forwarded-for",
                vec!["198.51.100.7"],
                xff,
                "203.0.113.5",
            ),
            (
                "10.0.0.1",
                "x-forwarded-for",
                vec!["198.51.100.7"],
                xff,
                "198.51.100.7",
            ),
            (
                "10.0.0.1",
                "x-forwarded-for",
                vec!["6.6.6.6, 198.51.100.7, 192.0.2.9"],
                xff,
                "198.51.100.7",
            ),
            (
                "10.0.0.1",
                "x-forwarded-for",
                vec!["6.6.6.6", "198.51.100.7"],
                xff,
                "198.51.100.7",
            ),
            (
                "10.0.0.1",
                "x-forwarded-for",
                vec!["garbage, 10.0.0.2"],
                xff,
                "10.0.0.2",
            ),
            ("10.0.0.1", "x-forwarded-for", vec![], xff, "10.0.0.1"),
            (
                "10.0.0.1",
                "forwarded",
                vec!["for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https"],
                forwarded,
                "2001:db8::1",
            ),
            (
                "10.0.0.1",
                "forwarded",
                vec!["for=198.51.100.7:8080;by=10.0.0.1"],
                forwarded,
                "198.51.100.7",
            ),
            (
                "10.0.0.1",
                "forwarded",
                vec!["for=_hidden"],
                forwarded,
                "10.0.0.1",
            ),
            // The header not configured is never read.
            (
                "10.0.0.1",
                "forwarded",
                vec!["for=6.6.6.6"],
                xff,
                "10.0.0.1",
            ),
            (
                "10.0.0.1",
                "x-forwarded-for",
                vec!["6.6.6.6"],
                forwarded,
                "10.0.0.1",
            ),
        ];
        for (peer, name, values, header, expected) in cases {
            let found = client_address(ip(peer), &headers(name, &values), &trusted, header);
            assert_eq!(found, ip(expected), "{peer} {name}: {values:?}");
        }
    }
}
