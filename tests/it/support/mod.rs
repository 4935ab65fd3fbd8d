//! Test support: `TestApp` (the daemon on port 0 with a temp database),
//! `CaptureRelay` (a real SMTP server recording what we send), and clients
//! for SMTP (the library's own, shared with replay and the bench) and HTTP.

pub mod app;
pub mod customer;
pub mod mail;
pub mod metrics;
pub mod relay;
pub mod web;

pub use app::TestApp;
pub use mail::{Mail, activation_link};
pub use metrics::{Scrape, scrape};
pub use registrar::replay::smtp_client::{Reply, SmtpClient};
pub use web::{form_page, hidden_field};

use std::time::Duration;

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
