//! The one way we build an outgoing HTTP client (for the OpenID provider and
//! webhook endpoints): reqwest on rustls with the aws-lc-rs provider (the
//! process's one TLS stack) and the public web roots, redirects off (a
//! redirect could point the client at an internal address), and a timeout on
//! every request, connecting included.

use std::sync::Arc;
use std::time::Duration;

/// A client whose every request gives up after `timeout`.
///
/// # Errors
/// The TLS configuration or the client cannot be built.
pub fn build(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()?)
}
