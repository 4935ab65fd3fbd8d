//! The `[http]` section: the listener and the public URL every link is
//! built from.

use crate::settings::HttpSettings;
use crate::settings::raw::RawHttp;
use crate::settings::validate::Problems;
use std::net::SocketAddr;
use url::Url;

pub(super) fn validate(raw: RawHttp, problems: &mut Problems) -> Option<HttpSettings> {
    let listen = problems.parse("http.listen", raw.listen.parse::<SocketAddr>());
    let public_url = problems
        .parse("http.public_url", Url::parse(&raw.public_url))
        .filter(|url| {
            let ok = matches!(url.scheme(), "http" | "https") && url.host().is_some();
            if !ok {
                problems.push("http.public_url: must be an http or https URL with a host".into());
            }
            // Pages link to /login, /static/… at the root, and mail links are
            // joined onto this URL: a path prefix would give broken links.
            let at_root = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
            if ok && !at_root {
                problems.push(
                    "http.public_url: must be the bare origin (like https://portal.example.com); \
                     registrar serves its pages at the root, so give it its own host name"
                        .into(),
                );
            }
            ok && at_root
        });
    Some(HttpSettings {
        listen: listen?,
        public_url: public_url?,
        max_body_bytes: raw.max_body_bytes,
    })
}
