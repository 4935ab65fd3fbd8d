//! Test support: `TestApp` (the daemon on port 0 with a temp database),
//! `CaptureRelay` (a real SMTP server recording what we send), `Receiver` (a
//! webhook endpoint checking signatures), `Postfix` (a private Postfix in
//! front of the daemon), and clients for SMTP (the library's own, shared
//! with replay and the bench) and HTTP.

pub mod app;
pub mod customer;
pub mod ldap;
pub mod mail;
pub mod metrics;
pub mod oidc;
pub mod optin;
pub mod postfix;
pub mod receiver;
pub mod relay;
pub mod web;

pub use app::TestApp;
pub use mail::{Mail, activation_link};
pub use metrics::{Scrape, scrape};
pub use registrar::replay::smtp_client::{Reply, SmtpClient};
pub use web::{form_page, hidden_field};

use std::time::Duration;

/// Installs aws-lc-rs as the process's rustls provider. reqwest's rustls
/// is built without a provider of its own (the daemon's one TLS stack is
/// aws-lc-rs), so a test client needs this before it is built; `TestApp`
/// does it, a test without one calls this.
pub fn default_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A loopback port where nothing listens, for an address that must be
/// down: the discard port, below the range the kernel hands out for port 0,
/// so no server a test starts can be given it (a port probed free could be).
pub const NOWHERE_PORT: u16 = 9;

/// How long a wait may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `condition` until it holds or the deadline passes.
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut condition: F) {
    let start = tokio::time::Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts the server closes the connection without another reply.
pub async fn assert_closed(client: &mut SmtpClient) {
    if let Some(reply) = client.next_reply().await.expect("SMTP reply or close") {
        panic!(
            "expected the connection to close, got {} {}",
            reply.code, reply.text
        );
    }
}
