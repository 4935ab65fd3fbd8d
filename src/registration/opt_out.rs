//! "I did not ask for this": the link every activation mail carries. Its
//! page (GET) changes nothing; confirming it (POST) puts the address on the
//! "never mail" list for good, removes a pending account someone else made
//! with it, cancels mail still queued to it, and records all of it. Only an
//! operator takes an address off the list (`registrar customers
//! unsuppress`).

use crate::domain::{Channel, EmailAddress, EventKind, Token};
use crate::registration::decide::{About, Kept, Outcome, record};
use crate::registration::error::RegistrationError;
use crate::registration::events::{self, emit};
use crate::registration::{Registrar, secs};
use crate::settings::Settings;
use crate::store::suppressions::{self, Source};
use crate::store::{self, customers, outbox, webhook_events};
use rusqlite::Connection;

/// What confirming an opt-out link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptOut {
    /// The address (as mailed) is never mailed again.
    Done { email: String },
    /// The link is unknown or too old.
    Unknown,
}

/// The transaction behind `opt_out`; `true` with `Done` when the address
/// was not on the list before (a repeated confirmation is not counted).
fn opt_out_tx(
    conn: &Connection,
    settings: &Settings,
    token: &Token,
    valid_since: i64,
    now: i64,
) -> anyhow::Result<(OptOut, bool)> {
    let Some((identity, email)) =
        suppressions::opt_out_address(conn, &token.link_keys(), valid_since)?
    else {
        return Ok((OptOut::Unknown, false));
    };
    if !suppressions::add(conn, &identity, &email, Source::Recipient, now)? {
        // Confirmed before: nothing more to do.
        return Ok((OptOut::Done { email }, false));
    }
    let pending =
        customers::by_identity(conn, &identity)?.filter(|c| c.status == customers::Status::Pending);
    let removed = customers::delete_pending(conn, &identity)?;
    if let Some(customer) = pending.filter(|_| removed.is_some()) {
        // The help desk heard of the pending customer; it hears that it is
        // gone, and nothing more about it.
        webhook_events::forget(conn, &identity)?;
        let data = events::CustomerData {
            status: "erased",
            ..events::data(&customer)
        };
        emit(
            conn,
            settings,
            EventKind::Erased,
            (&data, None),
            Channel::OptOut,
            now,
        )?;
    }
    let account = customers::by_identity(conn, &identity)?.map(|c| c.service);
    if let Ok(address) = EmailAddress::parse(&email) {
        outbox::cancel_queued_to(conn, &address.rate_key(), &address.delivery_address())?;
    }
    let service = removed
        .or(account)
        .unwrap_or_else(|| settings.services[0].id.clone());
    record(
        conn,
        Channel::OptOut,
        &About {
            service: &service,
            address: &email,
            identity: Some(identity),
        },
        Outcome::of("suppressed", "recipient_opted_out"),
        Kept::default(),
        now,
    )?;
    Ok((OptOut::Done { email }, true))
}

impl Registrar {
    /// The address a live opt-out link stops mail to, for its page; changes
    /// nothing (mail scanners fetch links).
    ///
    /// # Errors
    /// A storage failure.
    pub async fn opt_out_address(
        &self,
        token: &Token,
    ) -> Result<Option<String>, RegistrationError> {
        let keys = token.link_keys();
        let lifetime = secs(self.settings().activation.pending_expiry);
        Ok(self
            .store
            .read(move |conn| {
                let since = store::now().saturating_sub(lifetime);
                Ok(suppressions::opt_out_address(conn, &keys, since)?.map(|(_, email)| email))
            })
            .await?)
    }

    /// Confirms an opt-out link: the address is never mailed again.
    ///
    /// # Errors
    /// A storage failure; nothing changed.
    pub async fn opt_out(&self, token: Token) -> Result<OptOut, RegistrationError> {
        let settings = self.settings();
        let lifetime = secs(settings.activation.pending_expiry);
        let (outcome, added) = self
            .store
            .write(move |conn| {
                let now = store::now();
                opt_out_tx(conn, &settings, &token, now.saturating_sub(lifetime), now)
            })
            .await?;
        if matches!(outcome, OptOut::Done { .. }) {
            tracing::info!(event = "opted_out");
            self.wake_webhooks();
        }
        if added {
            self.metrics.opt_out();
        }
        Ok(outcome)
    }
}
