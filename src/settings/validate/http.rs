//! The `[http]` section: the listener, the public URL every link is built
//! from, the caps on connections and requests, and the proxies whose
//! forwarded-client header is believed.

use crate::domain::IpRange;
use crate::settings::raw::RawHttp;
use crate::settings::validate::Problems;
use crate::settings::{ForwardedHeader, HttpSettings};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use url::{Host, Url};

pub(super) fn validate(raw: RawHttp, problems: &mut Problems) -> Option<HttpSettings> {
    let listen = problems.parse("http.listen", raw.listen.parse::<SocketAddr>());
    let allow_insecure = raw.allow_insecure_http;
    let public_url = problems
        .parse("http.public_url", Url::parse(&raw.public_url))
        .filter(|url| public_url_ok(url, allow_insecure, problems));
    problems.check(
        (1..=1_000_000).contains(&raw.max_connections),
        "http.max_connections: must be between 1 and 1000000",
    );
    problems.check(
        raw.header_read_timeout_secs >= 1,
        "http.header_read_timeout_secs: must be at least 1",
    );
    problems.check(
        raw.request_timeout_secs >= 1,
        "http.request_timeout_secs: must be at least 1",
    );
    problems.check(
        (1..=raw.header_read_timeout_secs.max(1)).contains(&raw.keep_alive_secs),
        "http.keep_alive_secs: must be at least 1 and at most http.header_read_timeout_secs",
    );
    let mut trusted_proxies = Vec::new();
    for proxy in &raw.trusted_proxies {
        match IpRange::parse(proxy) {
            Ok(range) => trusted_proxies.push(range),
            Err(e) => problems.push(format!("http.trusted_proxies: {e}")),
        }
    }
    let forwarded_header =
        problems.choice::<ForwardedHeader>("http.forwarded_header", &raw.forwarded_header);
    Some(HttpSettings {
        listen: listen?,
        public_url: public_url?,
        max_body_bytes: raw.max_body_bytes,
        max_connections: raw.max_connections,
        header_read_timeout: Duration::from_secs(raw.header_read_timeout_secs),
        request_timeout: Duration::from_secs(raw.request_timeout_secs),
        keep_alive: Duration::from_secs(raw.keep_alive_secs),
        trusted_proxies,
        forwarded_header: forwarded_header?,
    })
}

/// An http(s) URL with a host and no path; plain `http` only on loopback
/// unless `allow_insecure`: over http cookies lose `Secure` and the
/// `__Host-` prefix, and anyone on the path can read and set them.
fn public_url_ok(url: &Url, allow_insecure: bool, problems: &mut Problems) -> bool {
    let ok = matches!(url.scheme(), "http" | "https") && url.host().is_some();
    if !ok {
        problems.push("http.public_url: must be an http or https URL with a host".into());
        return false;
    }
    // Pages link to /login, /static/… at the root, and mail links are
    // joined onto this URL: a path prefix would give broken links.
    let at_root = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !at_root {
        problems.push(
            "http.public_url: must be the bare origin (like https://portal.example.com); \
             registrar serves its pages at the root, so give it its own host name"
                .into(),
        );
    }
    let insecure = url.scheme() == "http" && !is_loopback(url) && !allow_insecure;
    if insecure {
        problems.push(
            "http.public_url: http:// is only for loopback (127.0.0.1, ::1, localhost); \
             use https, or set http.allow_insecure_http = true if you really mean it"
                .into(),
        );
    }
    at_root && !insecure
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name.eq_ignore_ascii_case("localhost")
                || name.to_ascii_lowercase().ends_with(".localhost")
        }
        None => false,
    }
}
