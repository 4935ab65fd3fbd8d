//! Sender authentication: whether the From domain of a registration mail
//! really sent it (DMARC). Three modes, chosen per service:
//!
//! - `off`: nobody is authenticated (policy then requires the envelope sender
//!   to name the From address). For loopback demos only; start-up warns
//!   about it.
//! - `authentication-results`: trust the `Authentication-Results` headers of
//!   one authserv-id, and only when the SMTP peer is a trusted relay
//!   (`results`). Pure: no IO.
//! - `dmarc`: verify SPF, DKIM and DMARC here with mail-auth (`dmarc`), using
//!   the client IP, HELO and envelope sender. DNS answers come through
//!   `dns::Dns`, which tests and `registrar explain` can feed fixed records.
//!
//! The outcome is a `policy::AuthVerdict` that `policy` judges; the modes
//! themselves are `policy::SenderAuthMode`, part of a service's policy. This
//! module decides nothing about registration itself and reads no settings:
//! `registration` builds the authenticator from them.

mod dmarc;
pub mod dns;
mod results;

pub use dns::{Dns, DnsSource, FixedZone};
pub use results::check_authentication_results;

use crate::message::InboundMessage;
use crate::policy::{AuthVerdict, SenderAuthMode};
use std::time::Duration;

/// Runs the verification a service's mode asks for.
pub struct SenderAuthenticator {
    dns: Dns,
    /// `smtp.hostname`: our name, used by SPF macros.
    hostname: String,
    /// Longest the DNS work for one message may take; then it is a
    /// temporary error.
    deadline: Duration,
}

impl SenderAuthenticator {
    pub fn new(dns: Dns, hostname: &str, deadline: Duration) -> Self {
        Self {
            dns,
            hostname: hostname.to_owned(),
            deadline,
        }
    }

    /// Authenticates the sender of `message` (raw bytes `raw`) per `mode`.
    pub async fn verify(
        &self,
        mode: &SenderAuthMode,
        message: &InboundMessage,
        raw: &[u8],
    ) -> AuthVerdict {
        match mode {
            SenderAuthMode::Off => AuthVerdict::Off,
            SenderAuthMode::AuthenticationResults(trusted) => {
                check_authentication_results(trusted, message)
            }
            SenderAuthMode::Dmarc => {
                let verify = dmarc::verify(&self.dns, &self.hostname, message, raw);
                tokio::time::timeout(self.deadline, verify)
                    .await
                    .unwrap_or_else(|_| {
                        AuthVerdict::TemporaryError(format!(
                            "DNS lookups took longer than {}s",
                            self.deadline.as_secs()
                        ))
                    })
            }
        }
    }
}
