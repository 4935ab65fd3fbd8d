//! The use cases every way in shares, each one store transaction, and the
//! only door from the ways in (`smtp`, `web`) to `store`.
//!
//! One file per way in: `mail` (a message to a support address), `portal`
//! ("Create an account" and resend), `operator` (invitations, hand-over
//! links, account state, purge), `activation` (the activation page) and
//! `sign_in` (a proof of identity to a session; `sign_in_methods` holds the
//! proofs other than a password), `recovery` (the "Forgot your password?"
//! and "Email me a sign-in link" requests), `bounce` (delivery reports for
//! our replies). What they share: `decide`
//! (load → evaluate → apply → record, the only writer of decision rows),
//! `facts` (what policy needs to know about a sender; `registrar explain`
//! loads it the same way), `outgoing` (the mail a use case queues),
//! `events` (the webhook events a use case queues), `observe` (health,
//! readiness, the metrics text and the counting of decisions) and `error`.
//! `data_protection` exports and erases what is kept about one address.
//! What protects everybody from any one sender lives beside them: the
//! circuit breaker on new senders (`breaker`), the quota on raw mail kept
//! (`raw_quota`) and the alarms that tell the operator when a shared limit
//! is reached (`alarms`). `opt_out` is the "I did not ask for this" link
//! every activation mail carries.
//!
//! A use case writes a decision with all its consequences (inbound record,
//! customer, token hash, outbox row) in one transaction, so a caller that
//! hears "done" knows all of it is durable, and a failure leaves nothing
//! behind. Registration speaks no protocol: how SMTP words its answer is
//! handed in (`MailAnswers`).

mod activation;
mod alarms;
mod bounce;
mod breaker;
mod data_protection;
mod decide;
mod error;
mod events;
mod facts;
mod mail;
mod observe;
mod operator;
mod opt_out;
mod outgoing;
mod portal;
mod purge;
mod raw_quota;
mod recovery;
mod sign_in;
mod sign_in_methods;

pub use crate::store::customers::{After as CustomerCursor, Customer, Status as CustomerStatus};
pub use activation::PendingCustomer;
pub use alarms::Alarm;
pub use bounce::BounceOutcome;
pub use data_protection::{Erased, Export};
pub use error::RegistrationError;
pub use facts::SenderFacts;
pub use mail::{Answer, MailAnswers, MailOutcome, client_network, dropped, sender_authenticator};
pub use observe::{Health, LISTENERS};
pub use operator::{Actor, HandOver, InviteOutcome, StatusChange, Unsuppressed};
pub use opt_out::OptOut;
pub use purge::Purged;
pub use recovery::LinkHolder;
pub use sign_in::{Account, Declined, Proof, SignIn};

use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::oidc::OidcClient;
use crate::registration::alarms::Alarms;
use crate::registration::breaker::NewSenderBreaker;
use crate::registration::observe::WriteProbe;
use crate::registration::raw_quota::RawBytesQuota;
use crate::sender_auth::SenderAuthenticator;
use crate::settings::{LiveSettings, Settings};
use crate::store::Store;
use crate::webhooks;
use std::sync::Arc;
use tokio::sync::Notify;

/// Runs the registration use cases against the store.
#[derive(Clone)]
pub struct Registrar {
    /// Reloadable settings; each use case works on one snapshot.
    settings: LiveSettings,
    store: Store,
    /// Wakes the outbox worker when a reply was queued.
    outbox_wake: Arc<Notify>,
    /// Verifies senders before the store transaction (DNS for `dmarc`).
    sender_auth: Arc<SenderAuthenticator>,
    /// What the use cases count.
    metrics: Metrics,
    /// The last answer of `/healthz`'s write probe.
    write_probe: Arc<WriteProbe>,
    /// The limits no one sender may take from the others.
    guards: Arc<Guards>,
    /// The identity providers the sign-in methods ask, when configured.
    providers: Arc<Providers>,
    /// Wakes the webhook workers when an event was queued.
    webhooks: webhooks::Wake,
}

/// What protects everybody from any one sender, shared by every use case.
#[derive(Debug)]
struct Guards {
    breaker: NewSenderBreaker,
    raw_quota: RawBytesQuota,
    alarms: Alarms,
}

/// The identity providers behind "Sign in with Google" and "Sign in with
/// your company account"; fixed at start-up.
#[derive(Default)]
struct Providers {
    oidc: Option<OidcClient>,
    directory: Option<Directory>,
}

impl Registrar {
    /// Builds the registrar and its sender authenticator; the use cases
    /// report to `metrics`.
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        outbox_wake: Arc<Notify>,
        metrics: Metrics,
    ) -> Self {
        let sender_auth = Arc::new(sender_authenticator(&settings, true));
        let guards = Arc::new(Guards {
            breaker: NewSenderBreaker::new(settings.circuit_breaker.new_senders_per_minute),
            raw_quota: RawBytesQuota::new(settings.store.raw_quota),
            alarms: Alarms::new(metrics.clone()),
        });
        Self {
            settings: LiveSettings::new(Settings::clone(&settings)),
            store,
            outbox_wake,
            sender_auth,
            metrics,
            write_probe: observe::write_probe(),
            guards,
            providers: Arc::default(),
            webhooks: webhooks::Wake::default(),
        }
    }

    /// Wakes `wake`'s webhook workers after a use case queued an event
    /// (without it, the workers find events at their next poll).
    #[must_use]
    pub fn with_webhook_wake(mut self, wake: webhooks::Wake) -> Self {
        self.webhooks = wake;
        self
    }

    /// Sets up the identity providers the settings configure (the OpenID
    /// Connect client, the directory); they reach no server until used.
    ///
    /// # Errors
    /// A provider's settings cannot be turned into a client (a bad URL, an
    /// unreadable CA file).
    pub fn with_identity_providers(mut self) -> anyhow::Result<Self> {
        let settings = self.settings();
        let oidc = match &settings.oidc {
            Some(oidc) => {
                let callback = settings.http.public_url.join("login/google/callback")?;
                Some(OidcClient::new(oidc, &callback)?)
            }
            None => None,
        };
        let directory = settings.ldap.as_ref().map(Directory::new).transpose()?;
        self.providers = Arc::new(Providers { oidc, directory });
        Ok(self)
    }

    /// The store, for the process's own plumbing (the outbox worker, the
    /// operator CLI, replay); the ways in use the use cases instead.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settings in force now (services and policies may be reloaded).
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.current()
    }

    /// Tells the webhook workers that a commit may have queued events.
    fn wake_webhooks(&self) {
        self.webhooks.wake();
    }

    /// The handle a reload (SIGHUP) swaps the services through.
    pub fn live_settings(&self) -> &LiveSettings {
        &self.settings
    }
}

/// A duration in whole seconds, as the store keeps times.
fn secs(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
