//! The use cases every way in shares, each one store transaction, and the
//! only door from the ways in (`smtp`, `web`) to `store`.
//!
//! One file per way in: `mail` (a message to a support address), `portal`
//! ("Create an account" and resend), `operator` (invitations, hand-over
//! links, account state), `activation` (the activation page) and `sign_in`
//! (a proof of identity to a session); `purge` is the periodic clean-up.
//! What they share: `decide` (load → evaluate → apply → record, the only
//! writer of decision rows), `facts` (what policy needs to know about a
//! sender; `registrar explain` loads it the same way), `outgoing` (the mail
//! a use case queues, prepared before the transaction), `observe` (health
//! and counters) and `error`.
//!
//! A use case writes a decision with all its consequences (inbound record,
//! customer, token hash, outbox row) in one transaction, so a caller that
//! hears "done" knows all of it is durable, and a failure leaves nothing
//! behind. Registration speaks no protocol: how SMTP words its answer is
//! handed in (`MailAnswers`).

mod activation;
mod decide;
mod error;
mod facts;
mod mail;
mod observe;
mod operator;
mod outgoing;
mod portal;
mod purge;
mod sign_in;

pub use activation::PendingCustomer;
pub use error::RegistrationError;
pub use facts::SenderFacts;
pub use mail::{Answer, MailAnswers, MailOutcome, dropped, sender_authenticator};
pub use observe::Counters;
pub use operator::{HandOver, InviteOutcome, StatusChange};
pub use purge::{PurgeState, Purged};
pub use sign_in::{Account, Proof, SignIn};

use crate::sender_auth::SenderAuthenticator;
use crate::settings::{LiveSettings, Settings};
use crate::store::Store;
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
}

impl Registrar {
    /// Builds the registrar and its sender authenticator.
    pub fn new(settings: Arc<Settings>, store: Store, outbox_wake: Arc<Notify>) -> Self {
        let sender_auth = Arc::new(sender_authenticator(&settings, true));
        Self {
            settings: LiveSettings::new(Settings::clone(&settings)),
            store,
            outbox_wake,
            sender_auth,
        }
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

    /// The handle a reload (SIGHUP) swaps the services through.
    pub fn live_settings(&self) -> &LiveSettings {
        &self.settings
    }
}

/// A duration in whole seconds, as the store keeps times.
fn secs(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
